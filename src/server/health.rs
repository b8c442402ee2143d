//! Health endpoints for a load balancer: `GET /healthz` (liveness: the process answers) and
//! `GET /readyz` (readiness: the store can write, and the server is not stopping). They sit
//! outside the host, origin and rate checks, since a balancer probes by address, often.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::time::Duration;

/// The path of the liveness check.
pub const HEALTHZ_PATH: &str = "/healthz";
/// The path of the readiness check.
pub const READYZ_PATH: &str = "/readyz";
/// How long readiness waits for the store to show it can write.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 while the process serves requests at all.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// `GET /readyz`: 200 when the store completes a write round trip within [`STORE_WAIT`] and
/// the server is not shutting down; otherwise 503, so a balancer sends new clients elsewhere.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if *state.stopping.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".to_owned());
    }
    match tokio::time::timeout(STORE_WAIT, state.hub.store_ping().wait()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_owned()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store cannot write");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store cannot write\n".to_owned(),
            )
        }
        Err(_) => {
            tracing::warn!("not ready: the store did not answer in time");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store did not answer in time\n".to_owned(),
            )
        }
    }
}
