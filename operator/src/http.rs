//! `/livez`, `/readyz` (ready once every watch has synced, while the API server answers and no watch
//! is failing, and, with leader election, while this replica leads or follows) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the HTTP endpoints report.
#[derive(Default)]
pub struct Health {
    /// Set once every reflector has listed its objects.
    pub synced: AtomicBool,
    /// Cleared when the operator loses its leadership task.
    pub healthy: AtomicBool,
    /// Whether the API server answered its last readiness check (see `run::watch_api_server`).
    pub api_server_up: AtomicBool,
    /// How many watches failed on their last attempt and are retrying.
    pub failing_watches: AtomicUsize,
}

impl Health {
    /// Ready: watches synced, the API server answering, and nothing broken.
    pub fn ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
            && self.healthy.load(Ordering::Relaxed)
            && self.api_server_up.load(Ordering::Relaxed)
            && self.failing_watches.load(Ordering::Relaxed) == 0
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

/// Binds the endpoints' address (a taken port fails the start, not a background task).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.health.ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.encode() }),
        )
        .with_state(AppState { health, metrics });
    tracing::info!(addr = ?listener.local_addr().ok(), "serving /livez, /readyz and /metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
