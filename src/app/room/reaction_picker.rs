//! The reaction picker: one dialog "Add reaction" per room, for the message whose "Add
//! reaction" button was pressed. It shows the common emoji, or those whose shortcode name
//! holds what is typed in its search box; choosing one gives the reader's reaction (or takes
//! it away if already given). Escape, or a click outside, closes it; the focus goes back to
//! the message's button.

use crate::app::client::{use_chat_client, Feed};
use crate::app::drawer::focus_by_id;
use crate::app::message_item::react_button_id;
use crate::chat::model::markup::emoji;
use crate::chat::model::{Emoji, MessageId, COMMON_REACTIONS};
use leptos::prelude::*;

/// Most emoji a search shows.
const MAX_FOUND: usize = 40;

/// The emoji offered for `query`: the common ones when it is blank, otherwise every emoji
/// whose shortcode name holds it (without colons, in any case), each emoji once.
pub fn offered(query: &str) -> Vec<Emoji> {
    let query = query.trim().trim_matches(':').to_lowercase();
    if query.is_empty() {
        return COMMON_REACTIONS
            .iter()
            .filter_map(|n| Emoji::named(n))
            .collect();
    }
    let mut found: Vec<Emoji> = Vec::new();
    for (name, _) in emoji::all().iter().filter(|(n, _)| n.contains(&query)) {
        match Emoji::named(name) {
            Some(e) if !found.contains(&e) => found.push(e),
            _ => {}
        }
        if found.len() == MAX_FOUND {
            break;
        }
    }
    found
}

/// The picker, while a message's is open.
#[component]
pub fn ReactionPicker(feed: Feed) -> impl IntoView {
    move || {
        feed.reacting
            .get()
            .map(|id| view! { <PickerDialog feed id/> })
    }
}

#[component]
fn PickerDialog(feed: Feed, id: MessageId) -> impl IntoView {
    let client = use_chat_client();
    let query = RwSignal::new(String::new());
    let close = move || {
        feed.reacting.set(None);
        focus_by_id(&react_button_id(id));
    };
    let choose = move |emoji: Emoji| {
        let mine = feed.messages.with_untracked(|held| {
            let me = client
                .session
                .with_untracked(|s| s.as_ref().map(|s| s.user.id));
            let message = held.iter().find(|m| m.id == id);
            me.zip(message).is_some_and(|(me, m)| m.reacted(emoji, me))
        });
        if let Some(room) = feed.room.try_get_value() {
            client.react(room, id, emoji, !mine);
        }
        feed.reacting.set(None);
        // The message is drawn anew with the reaction: its button takes the focus then.
        feed.focus_on(react_button_id(id));
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            ev.prevent_default();
            ev.stop_propagation();
            close();
        }
    };
    // Enter in the search box takes the first emoji found.
    let on_search_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" && !ev.is_composing() {
            ev.prevent_default();
            if let Some(first) = query.with_untracked(|q| offered(q).into_iter().next()) {
                choose(first);
            }
        }
    };
    let grid = move || {
        query
            .with(|q| offered(q))
            .into_iter()
            .map(|emoji| {
                view! {
                    <li>
                        <button
                            type="button"
                            class="pick"
                            title=format!(":{}:", emoji.name())
                            on:click=move |_| choose(emoji)
                        >
                            {emoji.as_str()}
                        </button>
                    </li>
                }
            })
            .collect_view()
    };
    Effect::new(move |_| focus_by_id("reaction-search"));
    view! {
        <div class="modal-backdrop picker-backdrop" on:click=move |_| close()>
            <div
                class="modal reaction-picker"
                role="dialog"
                aria-modal="true"
                aria-label="Add reaction"
                on:click=|ev| ev.stop_propagation()
                on:keydown=on_keydown
            >
                <input
                    id="reaction-search"
                    type="search"
                    autocomplete="off"
                    aria-label="Search emoji"
                    placeholder="Search emoji by name"
                    prop:value=move || query.get()
                    on:input=move |ev| query.set(event_target_value(&ev))
                    on:keydown=on_search_key
                />
                <ul class="picks" aria-label="Emoji">{grid}</ul>
                <Show when=move || query.with(|q| offered(q).is_empty())>
                    <p class="hint">"No emoji by that name."</p>
                </Show>
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blank search offers the common emoji; a search finds by shortcode name (colons and
    /// case aside), at most a screenful, and nothing for a name no emoji has.
    #[test]
    fn the_picker_offers_common_emoji_then_finds_by_name() {
        let common: Vec<&str> = offered(" ").iter().map(|e| e.as_str()).collect();
        assert_eq!(common.len(), COMMON_REACTIONS.len());
        assert_eq!(common[0], "👍");
        let hearts: Vec<&str> = offered(":HEART").iter().map(|e| e.as_str()).collect();
        assert!(
            hearts.contains(&"❤️") && hearts.contains(&"💚"),
            "{hearts:?}"
        );
        assert_eq!(offered("thumbsup").len(), 1);
        assert!(offered("no such emoji").is_empty());
        assert!(offered("e").len() <= MAX_FOUND);
    }
}
