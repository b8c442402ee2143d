//! Rendered channel pages, kept until the chat changes: a first load of a channel's page is
//! served from memory while [`Hub::generation`] stays where it was when the page was rendered.
//!
//! A channel has one address: any other spelling of it (`/c/GENERAL`, `/c/%67eneral`) is
//! redirected there, so the cache holds one page per channel, not one per spelling.
//!
//! A channel page is the same for every visitor in one time zone on one day, except for its
//! CSP nonce (the session lives in the browser's storage, not in cookies sent to pages; the
//! zone cookie, see `app::local_time`, sets the offset its times and day separators are shown
//! at, and the local day decides what is "Today"). So pages are kept per address, offset and
//! local day; the cache keeps the rendered body cut at each occurrence of the nonce, and
//! every response gets a fresh nonce, both in the body and in its `Content-Security-Policy`:
//! nonces are never reused across responses.

use crate::app::local_time;
use crate::app::nav::{channel_path, Route};
use crate::chat::hub::Hub;
use crate::chat::model::Timestamp;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Pages kept at most; past this the cache starts over (channel names are bounded, but
/// requests for many different addresses must not grow memory without end).
const MAX_PAGES: usize = 1024;
/// Largest page body the cache will hold; a larger one is served uncached.
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Bytes all kept pages may hold together; past this the cache starts over.
const MAX_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The cache of rendered channel pages. Cheap to clone.
#[derive(Clone)]
pub struct PageCache {
    hub: Hub,
    pages: Arc<Mutex<Pages>>,
}

/// The kept pages, by [`page_key`], and the bytes they hold together.
#[derive(Default)]
struct Pages {
    map: HashMap<String, Arc<CachedPage>>,
    bytes: usize,
}

/// One rendered page.
struct CachedPage {
    /// The hub generation read before rendering: the page is current while it holds.
    generation: u64,
    /// The response headers, without the Content-Security-Policy (it carries the nonce).
    headers: HeaderMap,
    /// The body, split where the nonce stood.
    parts: Vec<Bytes>,
}

impl PageCache {
    pub fn new(hub: Hub) -> PageCache {
        PageCache {
            hub,
            pages: Arc::default(),
        }
    }

    fn get(&self, key: &str, generation: u64) -> Option<Arc<CachedPage>> {
        let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages
            .map
            .get(key)
            .filter(|page| page.generation == generation)
            .cloned()
    }

    /// Keeps a page, starting over first if it would pass [`MAX_PAGES`] or
    /// [`MAX_CACHE_BYTES`].
    fn put(&self, key: String, page: CachedPage) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = pages.map.remove(&key) {
            pages.bytes -= old.size();
        }
        if pages.map.len() >= MAX_PAGES || pages.bytes + page.size() > MAX_CACHE_BYTES {
            pages.map.clear();
            pages.bytes = 0;
        }
        pages.bytes += page.size();
        pages.map.insert(key, Arc::new(page));
    }
}

/// What a page is kept under: its address, the reader's offset from UTC (from the zone
/// cookie) and the reader's current day at that offset.
fn page_key(path: &str, headers: &HeaderMap) -> String {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let offset = local_time::offset_from_cookies(cookies);
    let today = Timestamp::now().local(offset.unwrap_or(0)).day;
    match offset {
        Some(offset) => format!("{path} {offset} {today}"),
        None => format!("{path} - {today}"),
    }
}

/// Middleware in front of the page routes: answers `GET` for a channel's page
/// ([`Route::Channel`]) from the cache when the chat has not changed since the page was
/// rendered, and fills the cache otherwise.
pub async fn serve(State(cache): State<PageCache>, request: Request, next: Next) -> Response {
    let Route::Channel(name) = Route::from_path(request.uri().path()) else {
        return next.run(request).await;
    };
    if request.method() != Method::GET || request.uri().query().is_some() {
        return next.run(request).await;
    }
    // Read before rendering: a change during the render makes the stored page stale at once.
    let generation = cache.hub.generation();
    // Only a channel's own address is ever stored, so a hit needs no lookup in the hub.
    let key = page_key(request.uri().path(), request.headers());
    if let Some(page) = cache.get(&key, generation) {
        return page.respond();
    }
    // An unknown channel falls through to its "not found" page, which is never cached.
    let Some(channel) = cache.hub.channel_named(&name) else {
        return next.run(request).await;
    };
    let path = channel_path(channel.as_str());
    if request.uri().path() != path {
        return Redirect::permanent(&path).into_response();
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match read_up_to(body, MAX_PAGE_BYTES).await {
        Ok(Whole(bytes)) => bytes,
        // Too large to keep: sent as it is rendered, and rendered again next time.
        Ok(TooLarge(body)) => {
            tracing::debug!(%path, "a page too large for the cache is served uncached");
            return Response::from_parts(parts, body);
        }
        Err(e) => {
            tracing::warn!(error = %e, %path, "could not read a rendered page");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response();
        }
    };
    let nonce = parts
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|policy| policy.to_str().ok())
        .and_then(nonce_in_policy);
    if let Some(nonce) = nonce {
        let mut headers = parts.headers.clone();
        headers.remove(header::CONTENT_SECURITY_POLICY);
        headers.remove(header::CONTENT_LENGTH);
        let page = CachedPage {
            generation,
            headers,
            parts: split_at(&bytes, nonce.as_bytes()),
        };
        cache.put(key, page);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A rendered body, read whole or found too large to keep.
enum ReadBody {
    Whole(Bytes),
    /// What was read, followed by the rest, not yet read.
    TooLarge(Body),
}
use ReadBody::{TooLarge, Whole};

/// Reads `body` whole if it is at most `limit` bytes; otherwise stops reading and gives back
/// a body that sends what was read and then the rest.
async fn read_up_to(body: Body, limit: usize) -> Result<ReadBody, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut read = Vec::new();
    let mut len = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        len += chunk.len();
        read.push(chunk);
        if len > limit {
            let prefix = futures_util::stream::iter(read.into_iter().map(Ok::<_, axum::Error>));
            return Ok(TooLarge(Body::from_stream(prefix.chain(stream))));
        }
    }
    Ok(Whole(Bytes::from(read.concat())))
}

impl CachedPage {
    /// The bytes this page holds.
    fn size(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// The page with a fresh nonce.
    fn respond(&self) -> Response {
        let Some(nonce) = fresh_nonce() else {
            return (StatusCode::SERVICE_UNAVAILABLE, "Try again.").into_response();
        };
        let mut body = Vec::with_capacity(
            self.parts.iter().map(Bytes::len).sum::<usize>() + nonce.len() * self.parts.len(),
        );
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(nonce.as_bytes());
            }
            body.extend_from_slice(part);
        }
        let mut response = Response::new(Body::from(body));
        *response.headers_mut() = self.headers.clone();
        if let Ok(policy) = HeaderValue::from_str(&crate::app::page_csp(&nonce)) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        response
    }
}

/// The nonce in a policy made by [`crate::app::page_csp`].
fn nonce_in_policy(policy: &str) -> Option<String> {
    let start = policy.find("'nonce-")? + "'nonce-".len();
    let len = policy[start..].find('\'')?;
    let nonce = &policy[start..start + len];
    (nonce.len() >= 16).then(|| nonce.to_owned())
}

/// 128 random bits, hex-encoded (a valid CSP nonce).
fn fresh_nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "no randomness for a page nonce");
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `bytes` cut at every occurrence of `needle` (which is left out).
fn split_at(bytes: &Bytes, needle: &[u8]) -> Vec<Bytes> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            parts.push(bytes.slice(start..i));
            i += needle.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(bytes.slice(start..));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body is cut at each nonce and nowhere else, so joining the parts with the nonce gives
    /// the original back.
    #[test]
    fn split_and_join_round_trip() {
        let body = Bytes::from_static(b"<script nonce=\"abc\">1</script><p>abc</p>x");
        let parts = split_at(&body, b"abc");
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.join(&b"abc"[..]), body.to_vec());
        assert_eq!(split_at(&Bytes::from_static(b"none here"), b"abc").len(), 1);
    }

    /// The nonce is found in the page policy, and a policy without one yields none.
    #[test]
    fn nonce_is_read_from_the_policy() {
        let policy = crate::app::page_csp("0123456789abcdef0123");
        assert_eq!(
            nonce_in_policy(&policy).as_deref(),
            Some("0123456789abcdef0123")
        );
        assert_eq!(nonce_in_policy("default-src 'none'"), None);
    }

    /// Fresh nonces differ from each other.
    #[test]
    fn nonces_are_fresh() {
        assert_ne!(fresh_nonce(), fresh_nonce());
    }
}
