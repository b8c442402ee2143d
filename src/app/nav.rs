//! Moving between Flack's pages without reloading: which page an address shows, the current
//! address as a signal, links, and `navigate`.
//!
//! Flack has three pages, so this small module stands in for a general-purpose router (which
//! cost the browser's WebAssembly more than this whole module; see BENCHMARKS.md). Its
//! [`Route`] is the one place page addresses are spelled: [`Route::from_path`] reads them,
//! [`Route::path`] writes them, and the server builds its routes from [`CHANNEL_PREFIX`] and
//! [`DIRECT_PREFIX`].

use super::percent::{decode_path_segment, encode_path_segment};
use crate::chat::model::UserId;
use leptos::prelude::*;

/// What a channel page's address starts with; the channel's name follows, percent-encoded.
pub const CHANNEL_PREFIX: &str = "/c/";
/// What a private conversation's address starts with; the other participant's id follows.
pub const DIRECT_PREFIX: &str = "/dm/";

/// A page, as named by an address path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/`: sends the user on to the room they were last in.
    Home,
    /// `/c/{name}`: a channel. The name is decoded from the address.
    Channel(String),
    /// `/dm/{user id}`: a private conversation, if the id is a number.
    Direct(Option<u64>),
    /// Anything else.
    NotFound,
}

/// The one segment after `prefix`, if `path` is exactly that.
fn segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

impl Route {
    /// The page an address path (as the browser or the request has it, percent-encoded)
    /// shows.
    pub fn from_path(path: &str) -> Route {
        if path == "/" {
            Route::Home
        } else if let Some(name) = segment(path, CHANNEL_PREFIX) {
            Route::Channel(decode_path_segment(name))
        } else if let Some(id) = segment(path, DIRECT_PREFIX) {
            Route::Direct(id.parse().ok())
        } else {
            Route::NotFound
        }
    }

    /// The address path of this page, percent-encoded: the inverse of [`Route::from_path`].
    /// `None` for the routes no address names exactly (a conversation whose id is not a
    /// number, and "not found").
    pub fn path(&self) -> Option<String> {
        match self {
            Route::Home => Some("/".to_owned()),
            Route::Channel(name) => Some(channel_path(name)),
            Route::Direct(Some(id)) => Some(direct_path(UserId(*id))),
            Route::Direct(None) | Route::NotFound => None,
        }
    }
}

/// The address of the page of the channel called `name` (as displayed, not encoded).
pub fn channel_path(name: &str) -> String {
    format!("{CHANNEL_PREFIX}{}", encode_path_segment(name))
}

/// The address of the private conversation with `peer`.
pub fn direct_path(peer: UserId) -> String {
    format!("{DIRECT_PREFIX}{peer}")
}

/// The address path the page shows, shared through context.
#[derive(Clone, Copy)]
pub struct Location {
    path: RwSignal<String>,
}

impl Location {
    /// The page the current address shows.
    pub fn route(&self) -> Route {
        self.path.with(|path| Route::from_path(path))
    }

    /// Whether `href` is the address shown now (compared decoded, since the browser and
    /// [`Route::path`] may escape differently).
    pub fn is_current(&self, href: &str) -> bool {
        self.path
            .with(|path| decode_path_segment(path) == decode_path_segment(href))
    }

    /// Shows the page at `path` without reloading, adding it to the browser's history (or,
    /// with `replace`, in place of the current entry). Does nothing on the server.
    pub fn navigate(&self, path: &str, replace: bool) {
        #[cfg(feature = "hydrate")]
        {
            let Ok(history) = window().history() else {
                return;
            };
            let null = wasm_bindgen::JsValue::NULL;
            let moved = if replace {
                history.replace_state_with_url(&null, "", Some(path))
            } else {
                history.push_state_with_url(&null, "", Some(path))
            };
            if moved.is_ok() {
                self.path.set(browser_path());
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (path, replace);
    }
}

/// Provides the [`Location`]: the request's path on the server, the address bar's in the
/// browser (kept current when the user goes back or forward).
pub fn provide_location() -> Location {
    let location = Location {
        path: RwSignal::new(initial_path()),
    };
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::popstate, move |_| {
            location.path.set(browser_path());
        });
        on_cleanup(move || handle.remove());
    }
    provide_context(location);
    location
}

/// The [`Location`] the app provided (there is one, so one popstate listener).
pub fn use_location() -> Location {
    expect_context::<Location>()
}

#[cfg(feature = "ssr")]
fn initial_path() -> String {
    use_context::<axum::http::request::Parts>()
        .map(|parts| parts.uri.path().to_owned())
        .unwrap_or_else(|| "/".to_owned())
}

#[cfg(feature = "hydrate")]
fn initial_path() -> String {
    browser_path()
}

#[cfg(not(any(feature = "ssr", feature = "hydrate")))]
fn initial_path() -> String {
    "/".to_owned()
}

#[cfg(feature = "hydrate")]
fn browser_path() -> String {
    window()
        .location()
        .pathname()
        .unwrap_or_else(|_| "/".to_owned())
}

/// A link to one of Flack's pages: opens it without reloading (unless a modifier key asks the
/// browser for a new tab or window), and carries `aria-current="page"` while it is open, and
/// `aria-describedby` while `described_by` names an element.
#[component]
pub fn Link(
    href: String,
    children: Children,
    #[prop(optional, into)] described_by: Option<Signal<Option<String>>>,
) -> impl IntoView {
    let location = use_location();
    let current = {
        let href = href.clone();
        move || location.is_current(&href).then_some("page")
    };
    let target = href.clone();
    let on_click = move |ev: leptos::ev::MouseEvent| {
        let modified = ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.alt_key();
        if ev.default_prevented() || ev.button() != 0 || modified {
            return;
        }
        ev.prevent_default();
        location.navigate(&target, false);
    };
    view! {
        <a
            href=href
            aria-current=current
            aria-describedby=move || described_by.and_then(|d| d.get())
            on:click=on_click
        >
            {children()}
        </a>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each address shows the page it names; anything else is "not found".
    #[test]
    fn addresses_name_their_pages() {
        assert_eq!(Route::from_path("/"), Route::Home);
        assert_eq!(
            Route::from_path("/c/general"),
            Route::Channel("general".into())
        );
        assert_eq!(
            Route::from_path("/c/caf%C3%A9%20talk"),
            Route::Channel("café talk".into())
        );
        assert_eq!(Route::from_path("/dm/42"), Route::Direct(Some(42)));
        assert_eq!(Route::from_path("/dm/x"), Route::Direct(None));
        for other in ["", "/c/", "/c/a/b", "/dm/", "/dm/1/", "/x", "//c/a", "/c"] {
            assert_eq!(Route::from_path(other), Route::NotFound, "{other:?}");
        }
    }

    /// Channel paths percent-encode everything but unreserved characters.
    #[test]
    fn channel_paths_are_encoded() {
        assert_eq!(
            Route::Channel("dev ops".into()).path().as_deref(),
            Some("/c/dev%20ops")
        );
        assert_eq!(channel_path("é<"), "/c/%C3%A9%3C");
        assert_eq!(direct_path(UserId(42)), "/dm/42");
    }

    /// `path` and `from_path` are inverses: every page with an address reads back as itself
    /// from that address, and every address a page reads back to writes as the same page.
    #[test]
    fn paths_round_trip() {
        let pages = [
            Route::Home,
            Route::Channel("general".into()),
            Route::Channel("café talk".into()),
            Route::Channel("a/b?c#d%e".into()),
            Route::Channel("<img src=x>".into()),
            Route::Direct(Some(0)),
            Route::Direct(Some(u64::MAX)),
        ];
        for page in pages {
            let path = page.path().unwrap_or_default();
            assert_eq!(Route::from_path(&path), page, "{path:?}");
        }
        for path in [
            "/",
            "/c/general",
            "/c/caf%C3%A9%20talk",
            "/c/caf%c3%a9",
            "/dm/7",
        ] {
            let page = Route::from_path(path);
            let written = page.path().unwrap_or_default();
            assert_eq!(Route::from_path(&written), page, "{path:?}");
        }
        assert_eq!(Route::Direct(None).path(), None);
        assert_eq!(Route::NotFound.path(), None);
    }
}
