//! The site's root: sends the user back to the room they were last in (or "general").

use super::nav::{channel_path, use_location};
use leptos::prelude::*;

/// The root page. Without JavaScript it invites the user to pick a channel from the list; in
/// the browser it goes straight to the remembered room.
#[component]
pub fn Home() -> impl IntoView {
    let location = use_location();
    Effect::new(move |_| {
        let target = remembered_room().unwrap_or_else(|| channel_path("general"));
        location.navigate(&target, true);
    });
    view! {
        <h1>"Flack"</h1>
        <p class="hint">"Pick a channel from the list to start chatting."</p>
    }
}

/// The page of the room the user was last in, as stored in the browser.
#[cfg(feature = "hydrate")]
fn remembered_room() -> Option<String> {
    super::client::storage::stored_room_path()
}

/// Effects never run on the server, so this is never called there.
#[cfg(not(feature = "hydrate"))]
fn remembered_room() -> Option<String> {
    None
}
