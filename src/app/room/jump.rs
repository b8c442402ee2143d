//! Opening a room at a message chosen in the search results: once the room's log is drawn,
//! older pages are loaded until the log holds the message (at most [`MAX_PAGES`] of them),
//! then the message is scrolled into view, highlighted and focused. A message the server no
//! longer keeps (deleted, or cut by retention) leaves the room open at its newest messages.

use crate::app::client::{use_chat_client, Feed};
use crate::app::search::FoundMessage;
use crate::chat::model::HistoryTop;
use leptos::prelude::*;

/// Most older pages loaded to reach a found message (each is 100 messages).
const MAX_PAGES: usize = 50;

/// The id of the log entry of message number `seq`, which [`reveal`] looks for.
pub fn entry_id(seq: u64) -> String {
    format!("message-{seq}")
}

/// Watches for a found message in `feed`'s room and brings it into view.
pub fn follow_found(feed: Feed) {
    let Some(found) = use_context::<FoundMessage>() else {
        return;
    };
    let client = use_chat_client();
    Effect::new(move |_| {
        let Some((room, seq)) = found.0.get() else {
            return;
        };
        if feed.room.try_with_value(|r| *r != room).unwrap_or(true) {
            return;
        }
        found.0.set(None);
        leptos::task::spawn_local(async move {
            for _ in 0..MAX_PAGES {
                let oldest = feed
                    .messages
                    .try_with_untracked(|m| m.first().map(|m| m.seq))
                    .flatten();
                let reached = oldest.is_none_or(|oldest| oldest <= seq);
                if reached || feed.top.try_get_untracked() != Some(HistoryTop::More) {
                    break;
                }
                if let Err(e) = client.load_older(feed).await {
                    leptos::logging::warn!("cannot load older messages: {e}");
                    break;
                }
            }
            request_animation_frame(move || reveal(seq));
        });
    });
}

/// Scrolls the log entry of message `seq` into view, marks it as the one found (the style
/// highlights it) and gives it the keyboard focus, if the log holds it.
fn reveal(seq: u64) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let Some(entry) = document().get_element_by_id(&entry_id(seq)) else {
            return;
        };
        if let Some(previous) = document().query_selector("[data-found]").ok().flatten() {
            let _ = previous.remove_attribute("data-found");
        }
        let _ = entry.set_attribute("data-found", "");
        let _ = entry.set_attribute("tabindex", "-1");
        entry.scroll_into_view_with_bool(false);
        if let Ok(entry) = entry.dyn_into::<web_sys::HtmlElement>() {
            let _ = entry.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = seq;
}
