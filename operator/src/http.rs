//! `/livez`, `/readyz` (ready once every watch has synced, while the API server answers and no watch
//! has failed lately, and, with leader election, while this replica leads or follows) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// How long after a watch's last error readiness stays off. A failing watch retries at least every
/// 5 s and fails again, so a quiet spell this long means every watch is through; "the first event after
/// an error" would not do, as a watch resumed from its resourceVersion may see no event for minutes.
pub const WATCH_ERROR_GRACE: Duration = Duration::from_secs(10);

/// What the HTTP endpoints report.
pub struct Health {
    /// Set once every reflector has listed its objects.
    pub synced: AtomicBool,
    /// Cleared when the operator loses its leadership task.
    pub healthy: AtomicBool,
    /// Whether the API server answered its last readiness check (see `run::watch_api_server`).
    pub api_server_up: AtomicBool,
    epoch: Instant,
    /// When a watch last failed: milliseconds after `epoch`, plus one (0: never).
    last_watch_error: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            synced: AtomicBool::new(false),
            healthy: AtomicBool::new(false),
            api_server_up: AtomicBool::new(false),
            epoch: Instant::now(),
            last_watch_error: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// Ready: watches synced, the API server answering, no watch error for [`WATCH_ERROR_GRACE`], and
    /// nothing broken.
    pub fn ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
            && self.healthy.load(Ordering::Relaxed)
            && self.api_server_up.load(Ordering::Relaxed)
            && self.watches_quiet()
    }

    /// Records that a watch failed (it retries by itself).
    pub fn watch_failed(&self) {
        self.last_watch_error
            .store(self.millis() + 1, Ordering::Relaxed);
    }

    fn watches_quiet(&self) -> bool {
        match self.last_watch_error.load(Ordering::Relaxed) {
            0 => true,
            at => self.millis() + 1 >= at + WATCH_ERROR_GRACE.as_millis() as u64,
        }
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
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
            get(|State(s): State<AppState>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        crate::metrics::CONTENT_TYPE,
                    )],
                    s.metrics.encode(),
                )
            }),
        )
        .with_state(AppState { health, metrics });
    tracing::info!(addr = ?listener.local_addr().ok(), "serving /livez, /readyz and /metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_health() -> Health {
        let h = Health::default();
        h.synced.store(true, Ordering::Relaxed);
        h.healthy.store(true, Ordering::Relaxed);
        h.api_server_up.store(true, Ordering::Relaxed);
        h
    }

    #[test]
    fn a_watch_error_makes_it_unready_until_the_grace_has_passed() {
        let mut h = ready_health();
        assert!(h.ready());
        h.watch_failed();
        assert!(!h.ready());
        // As if the error happened a grace period ago.
        h.epoch -= WATCH_ERROR_GRACE;
        assert!(h.ready());
    }

    #[test]
    fn each_condition_is_required() {
        for flag in [0, 1, 2] {
            let h = ready_health();
            [&h.synced, &h.healthy, &h.api_server_up][flag].store(false, Ordering::Relaxed);
            assert!(!h.ready(), "flag {flag}");
        }
    }
}
