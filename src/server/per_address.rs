//! Allowances per client address, for requests that cost the server far more than they cost
//! the client: registrations (`limits.registrations_per_hour`: one host cannot make free
//! accounts without end) and page loads (`limits.pages_per_minute`: a rendered page can be
//! megabytes, and loading one back to back would take a core). An address is counted as
//! connections are: through trusted proxies, and IPv6 per /64.

use super::listen::counted_as;
use super::ws::admission::client_ip;
use super::AppState;
use crate::chat::model::ChatError;
use crate::chat::rate::TokenBucket;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

/// The server function registrations go through.
const REGISTER_PATH: &str = "/api/register";
/// Addresses remembered at most per allowance; past this the table starts over (an address
/// then gets a full allowance again, which needs this many other addresses to arrange).
const MAX_ADDRESSES: usize = 100_000;

/// Each address's allowance of one kind of request: `rate` per `per`, and as many at once.
pub struct PerAddress {
    by_ip: Mutex<HashMap<IpAddr, TokenBucket>>,
    rate: u32,
    per: Duration,
}

impl PerAddress {
    pub fn new(rate: u32, per: Duration) -> PerAddress {
        PerAddress {
            by_ip: Mutex::default(),
            rate,
            per,
        }
    }

    /// Takes one request from `ip`'s allowance.
    fn try_take(&self, ip: IpAddr) -> bool {
        let now = tokio::time::Instant::now().into_std();
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if by_ip.len() >= MAX_ADDRESSES && !by_ip.contains_key(&ip) {
            by_ip.clear();
        }
        by_ip
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(self.rate, self.per, self.rate, now))
            .try_take(now)
    }
}

/// The address a request counts against, if the server knows its peer.
fn counted_client(state: &AppState, request: &Request) -> Option<IpAddr> {
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    let ip = client_ip(
        peer.ip(),
        request.headers(),
        &state.config.server.trusted_proxies,
    );
    Some(counted_as(ip))
}

/// Middleware: refuses a registration from an address that has used up its allowance, with
/// 429 `too_many_registrations` in the server functions' error body.
pub async fn limit_registrations(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || request.uri().path() != REGISTER_PATH {
        return next.run(request).await;
    }
    if let Some(ip) = counted_client(&state, &request) {
        if !state.registrations.try_take(ip) {
            tracing::info!(%ip, "refused a registration: the address's allowance is used up");
            let refusal = ChatError::TooManyRegistrations;
            return (StatusCode::TOO_MANY_REQUESTS, Json(refusal)).into_response();
        }
    }
    next.run(request).await
}

/// The server functions that read a page's worth of chat (a room's history, an older page
/// of it, the people finder): each call counts as a page load, so reading them in a loop
/// uses up an address's allowance as loading pages does.
fn reads_a_page(path: &str) -> bool {
    use crate::api::{
        ChannelHistory, ChannelHistoryBefore, DirectHistory, DirectHistoryBefore, FindPeople,
    };
    use leptos::server_fn::ServerFn;
    [
        ChannelHistory::PATH,
        ChannelHistoryBefore::PATH,
        DirectHistory::PATH,
        DirectHistoryBefore::PATH,
        FindPeople::PATH,
    ]
    .contains(&path)
}

/// Middleware in front of the pages: refuses a page load from an address that has used up
/// its allowance, with 429 and a `Retry-After`. Built assets are not counted; the server
/// functions that read history or people are ([`reads_a_page`]).
pub async fn limit_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let asset_prefix = format!("/{}/", state.config.server.site_pkg_dir);
    let counted = match *request.method() {
        Method::GET | Method::HEAD => !request.uri().path().starts_with(&asset_prefix),
        Method::POST => reads_a_page(request.uri().path()),
        _ => false,
    };
    if counted {
        if let Some(ip) = counted_client(&state, &request) {
            if !state.page_loads.try_take(ip) {
                tracing::info!(%ip, "refused a page load: the address's allowance is used up");
                let mut refusal = (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many pages were loaded from your address; try again in a minute.",
                )
                    .into_response();
                refusal
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
                return refusal;
            }
        }
    }
    next.run(request).await
}
