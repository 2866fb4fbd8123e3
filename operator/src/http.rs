//! `/livez`, `/readyz` (ready once every watch has synced and, with leader election, this replica
//! leads or follows a healthy leader) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Cleared when the operator loses the API server or its leadership task.
    pub healthy: AtomicBool,
}

impl Health {
    /// Ready: watches synced and nothing broken.
    pub fn ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed) && self.healthy.load(Ordering::Relaxed)
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
