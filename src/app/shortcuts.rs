//! Keys that work anywhere on the page (issue 18, item 8): Ctrl+K (Cmd+K) opens the quick
//! switcher, Escape closes the drawer, and Alt+Up / Alt+Down open the room above or below
//! the open one in the sidebar's order (channels by name, then private conversations).

use crate::app::client::ChatClient;
use crate::app::drawer::Drawer;
use crate::app::nav::Location;
#[cfg(feature = "hydrate")]
use crate::app::nav::{channel_path, direct_path};
use crate::app::switcher::Switcher;
#[cfg(feature = "hydrate")]
use leptos::prelude::*;

/// The page to open from the current one (the room `is_current` says) going `down` (or up)
/// through `rooms`, in the sidebar's order; `None` at either end or when the current page
/// is not a room of the list.
pub fn neighbour(
    rooms: &[String],
    is_current: impl Fn(&str) -> bool,
    down: bool,
) -> Option<&String> {
    let at = rooms.iter().position(|path| is_current(path))?;
    if down {
        rooms.get(at + 1)
    } else {
        at.checked_sub(1).and_then(|above| rooms.get(above))
    }
}

/// Every room's page, in the sidebar's order.
#[cfg(feature = "hydrate")]
fn room_paths(client: &ChatClient) -> Vec<String> {
    let mut paths: Vec<String> = client
        .channels
        .with_untracked(|list| list.iter().map(|c| channel_path(c.name.as_str())).collect());
    client.directs.with_untracked(|list| {
        paths.extend(list.iter().map(|entry| direct_path(entry.peer.id)));
    });
    paths
}

/// Listens for the page-wide keys for as long as the app lives (in the browser).
pub fn listen(_client: ChatClient, _drawer: Drawer, _switcher: Switcher, _location: Location) {
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.default_prevented() || ev.is_composing() {
                return;
            }
            match ev.key().as_str() {
                "k" | "K" if (ev.ctrl_key() || ev.meta_key()) && !ev.alt_key() => {
                    ev.prevent_default();
                    _drawer.open.set(false);
                    _switcher.open.set(true);
                }
                "Escape" if _drawer.open.get_untracked() => {
                    ev.prevent_default();
                    _drawer.close();
                }
                key @ ("ArrowUp" | "ArrowDown") if ev.alt_key() && !ev.ctrl_key() => {
                    let rooms = room_paths(&_client);
                    let is_current = |path: &str| _location.is_current(path);
                    if let Some(next) = neighbour(&rooms, is_current, key == "ArrowDown") {
                        ev.prevent_default();
                        _location.navigate(next, false);
                    }
                }
                _ => {}
            }
        });
        on_cleanup(move || handle.remove());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alt+Down and Alt+Up walk the sidebar's list and stop at its ends; from a page that is
    /// not a room of the list they do nothing.
    #[test]
    fn neighbours_follow_the_sidebar_order() {
        let rooms: Vec<String> = ["/c/a", "/c/b", "/d/7"].map(String::from).to_vec();
        let at = |here: &'static str| move |path: &str| path == here;
        assert_eq!(
            neighbour(&rooms, at("/c/a"), true).map(String::as_str),
            Some("/c/b")
        );
        assert_eq!(
            neighbour(&rooms, at("/c/b"), true).map(String::as_str),
            Some("/d/7")
        );
        assert_eq!(neighbour(&rooms, at("/d/7"), true), None);
        assert_eq!(
            neighbour(&rooms, at("/c/b"), false).map(String::as_str),
            Some("/c/a")
        );
        assert_eq!(neighbour(&rooms, at("/c/a"), false), None);
        assert_eq!(neighbour(&rooms, at("/"), true), None);
    }
}
