//! Health endpoints for a load balancer: `GET /healthz` (liveness: the process answers) and
//! `GET /readyz` (readiness: the store can write, and the server is not stopping). They sit
//! outside the host, origin and rate checks, since a balancer probes by address, often; so
//! however often anyone asks, the store is pinged at most once per [`FRESH_FOR`].

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::time::Duration;
use tokio::time::Instant;

/// The path of the liveness check.
pub const HEALTHZ_PATH: &str = "/healthz";
/// The path of the readiness check.
pub const READYZ_PATH: &str = "/readyz";
/// How long readiness waits for the store to show it can write.
const STORE_WAIT: Duration = Duration::from_secs(2);
/// How long a readiness answer is given again without asking the store.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The last readiness answer and when it was found. Probes that arrive while the store is
/// being asked wait for that answer instead of asking again.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), &'static str>)>>,
}

impl Readiness {
    /// Whether the store can write: its answer of less than [`FRESH_FOR`] ago, or a new one.
    async fn check(&self, hub: &crate::chat::hub::Hub) -> Result<(), &'static str> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last {
            if at.elapsed() < FRESH_FOR {
                return answer;
            }
        }
        let answer = match tokio::time::timeout(STORE_WAIT, hub.store_ping().wait()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "not ready: the store cannot write");
                Err("the store cannot write\n")
            }
            Err(_) => {
                tracing::warn!("not ready: the store did not answer in time");
                Err("the store did not answer in time\n")
            }
        };
        *last = Some((Instant::now(), answer));
        answer
    }
}

/// `GET /healthz`: 200 while the process serves requests at all.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// `GET /readyz`: 200 when the store completed a write round trip within [`STORE_WAIT`] (in
/// the last [`FRESH_FOR`]) and the server is not shutting down; otherwise 503, so a balancer
/// sends new clients elsewhere.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if *state.stopping.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n");
    }
    match state.readiness.check(&state.hub).await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
