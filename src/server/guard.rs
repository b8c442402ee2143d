//! Checks on every request before it is routed: the `Host` it names must be one the server
//! answers for (when `server.allowed_hosts` is set), and a request that may change something
//! (any method but `GET`, `HEAD`, `OPTIONS` and `TRACE`) must come from one of our own pages,
//! or from a client that is not a browser.

use super::AppState;
use crate::chat::model::ChatError;
use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Browsers always send `Origin` on WebSocket upgrades and cross-origin posts; it must be the
/// server's own address (the `Host` the browser connected to) or one configured in
/// `server.allowed_origins` (a trailing `/` on either is ignored). Clients that are not
/// browsers send none and are allowed: they cannot carry a victim's page session anyway.
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return !headers.contains_key(header::ORIGIN);
    };
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((host, origin_host), (Some(host), Some(origin_host)) if host.eq_ignore_ascii_case(origin_host))
}

/// Whether a request that may change something is one of our own pages' (or a non-browser
/// client's). A browser's `Sec-Fetch-Site` is trusted when it says `same-origin` or `none`
/// (typed in the address bar); `same-site` and `cross-site` requests pass only from an origin
/// [`origin_allowed`] accepts. Browsers too old for `Sec-Fetch-Site` still send `Origin` on
/// cross-origin posts, which is then checked alone. A request with neither header is not
/// from a page.
pub(crate) fn may_change_state(headers: &HeaderMap, allowed: &[String]) -> bool {
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"same-origin" | b"none") => true,
        Some(_) => headers.contains_key(header::ORIGIN) && origin_allowed(headers, allowed),
        None => origin_allowed(headers, allowed),
    }
}

/// Refuses, with 403 and [`ChatError::CrossSite`], a request that may change something but
/// was sent by another site's page (a form posted to `/api/register` would otherwise replace
/// the visitor's session cookie).
pub async fn refuse_cross_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !request.method().is_safe()
        && !may_change_state(request.headers(), &state.config.server.allowed_origins)
    {
        tracing::warn!(
            method = %request.method(),
            path = request.uri().path(),
            origin = ?request.headers().get(header::ORIGIN),
            "refused a request from another site"
        );
        return (StatusCode::FORBIDDEN, Json(ChatError::CrossSite)).into_response();
    }
    next.run(request).await
}

/// Whether `host` (a request's `Host`) is one of `allowed`: the same name, in any case, and the
/// same port if the entry names one. An empty list allows every host; a list refuses a
/// request that names none.
pub(crate) fn host_allowed(host: Option<&str>, allowed: &[Authority]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(host) = host.and_then(|h| h.parse::<Authority>().ok()) else {
        return false;
    };
    allowed.iter().any(|entry| {
        entry.host().eq_ignore_ascii_case(host.host())
            && entry
                .port_u16()
                .is_none_or(|port| host.port_u16() == Some(port))
    })
}

/// Refuses, with 421 (Misdirected Request) and [`ChatError::UnknownHost`], a request whose
/// `Host` is not in `server.allowed_hosts`: a page on a rebound DNS name then cannot read or
/// drive an intranet instance through its visitors' browsers.
pub async fn refuse_unknown_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .uri()
        .authority()
        .map(Authority::as_str)
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        });
    if !host_allowed(host, &state.config.server.allowed_hosts) {
        tracing::warn!(?host, "refused a request for another host");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            Json(ChatError::UnknownHost),
        )
            .into_response();
    }
    next.run(request).await
}
