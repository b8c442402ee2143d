//! The open room's messages, as a log that stays scrolled to the newest.

use super::older_messages::OlderMessages;
use crate::app::client::Feed;
use crate::app::message_item::MessageItem;
use leptos::prelude::*;

/// The open room's messages, oldest first, scrolled to the newest.
#[component]
pub fn MessageLog(feed: Feed) -> impl IntoView {
    let container = NodeRef::<leptos::html::Div>::new();
    // Only a new newest message scrolls down: older pages go in above without moving.
    Effect::new(move |shown: Option<Option<Option<u64>>>| {
        let newest = feed.messages.with(|m| m.last().map(|m| m.seq));
        let el = container.get()?;
        if shown.flatten() != Some(newest) {
            el.set_scroll_top(el.scroll_height());
        }
        Some(newest)
    });
    view! {
        <div class="log-scroll" node_ref=container>
            <OlderMessages feed scroller=container/>
            <Show when=move || feed.messages.with(Vec::is_empty)>
                <p class="hint">"No messages yet. Say hello!"</p>
            </Show>
            <ol class="log" role="log" aria-label="Chat history">
                <For
                    each=move || feed.messages.get()
                    key=|message| (message.id, message.author.name.to_string())
                    children=|message| view! { <MessageItem message/> }
                />
            </ol>
        </div>
    }
}
