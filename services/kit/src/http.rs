//! The HTTP server every service runs: `/healthz`, `/readyz`, `/metrics`, plus any routes the
//! service adds (the scheduler's REST API).

use crate::metrics::Metrics;
use crate::KitError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Readiness flag flipped by the service once its clients are connected.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct HealthState {
    metrics: Arc<Metrics>,
    ready: Readiness,
}

/// Routes shared by every service.
pub fn health_routes(metrics: Arc<Metrics>, ready: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(HealthState { metrics, ready })
}

async fn readyz(State(s): State<HealthState>) -> impl IntoResponse {
    if s.ready.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics_text(State(s): State<HealthState>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], s.metrics.encode())
}

/// Binds `addr` and serves `router` until `shutdown`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> Result<SocketAddr, KitError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| KitError::Http { addr: addr.to_string(), source })?;
    let bound = listener.local_addr().map_err(|source| KitError::Http { addr: addr.to_string(), source })?;
    tokio::spawn(async move {
        let result = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(e) = result {
            tracing::error!("HTTP server on {bound} failed: {e}");
        }
    });
    tracing::info!("serving health and metrics on http://{bound}");
    Ok(bound)
}
