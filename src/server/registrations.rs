//! New accounts per client address: `POST /api/register` takes one from the address's
//! allowance (`limits.registrations_per_hour`, counted per address as connections are:
//! through trusted proxies, and IPv6 per /64), so one host cannot make free accounts without
//! end. A refusal is `too_many_registrations`, in the server functions' error body.

use super::listen::counted_as;
use super::ws::admission::client_ip;
use super::AppState;
use crate::chat::model::ChatError;
use crate::chat::rate::TokenBucket;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

/// The server function this limits.
const REGISTER_PATH: &str = "/api/register";
/// Addresses remembered at most; past this the table starts over (an address then gets a
/// full allowance again, which needs this many other addresses to arrange).
const MAX_ADDRESSES: usize = 100_000;

/// Each address's allowance of new accounts.
#[derive(Default)]
pub struct Registrations {
    by_ip: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl Registrations {
    /// Takes one registration from `ip`'s allowance of `per_hour` (also the burst).
    fn try_take(&self, ip: IpAddr, per_hour: u32) -> bool {
        let now = tokio::time::Instant::now().into_std();
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if by_ip.len() >= MAX_ADDRESSES && !by_ip.contains_key(&ip) {
            by_ip.clear();
        }
        by_ip
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(per_hour, Duration::from_secs(3600), per_hour, now))
            .try_take(now)
    }
}

/// Middleware: refuses a registration from an address that has used up its allowance.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || request.uri().path() != REGISTER_PATH {
        return next.run(request).await;
    }
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return next.run(request).await;
    };
    let ip = client_ip(
        peer.ip(),
        request.headers(),
        &state.config.server.trusted_proxies,
    );
    let per_hour = state.config.limits.registrations_per_hour;
    if !state.registrations.try_take(counted_as(ip), per_hour) {
        tracing::info!(%ip, "refused a registration: the address's allowance is used up");
        let refusal = ChatError::TooManyRegistrations;
        return (StatusCode::TOO_MANY_REQUESTS, Json(refusal)).into_response();
    }
    next.run(request).await
}
