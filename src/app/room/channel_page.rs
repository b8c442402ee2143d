//! The page of a channel ([`Route::Channel`](crate::app::nav::Route::Channel)): its history
//! comes with the server's HTML on a first load, and from the `history` server function when
//! the channel is opened later in the browser.

use super::room_view::{shown, Loaded};
use crate::api::channel_history;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The page of the channel named in the address.
#[component]
pub fn ChannelPage(name: String) -> impl IntoView {
    // The server renders the channel with its history and puts that history into the HTML,
    // where hydration finds it. A channel opened later in the browser is fetched with the
    // `history` server function.
    let first = SharedValue::new({
        let name = name.clone();
        move || rendered_on_server(&name)
    })
    .into_inner();
    let page = RwSignal::new(first);
    if page.with_untracked(Option::is_none) {
        spawn_local(async move { page.set(Some(channel_history(name).await)) });
    }
    move || shown(page.get(), "Loading messages…", "Channel not found")
}

/// The channel's history, when rendering on the server; nothing in the browser.
fn rendered_on_server(name: &str) -> Option<Loaded> {
    #[cfg(feature = "ssr")]
    return Some(crate::api::hub().and_then(|hub| hub.channel_page(name)));
    #[cfg(not(feature = "ssr"))]
    {
        let _ = name;
        None
    }
}
