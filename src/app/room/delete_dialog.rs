//! The dialog that asks before one's own message is deleted: one per log, open while
//! [`Feed::deleting`] names a message. "Cancel" (or Escape, or a click beside it) gives the
//! focus back to the message's "Delete message" button; "Delete" deletes it for everyone and
//! leaves the focus on the next message, or on the box after the last one.

use crate::app::client::{use_chat_client, Feed};
use crate::app::drawer::{focus_by_id, focus_soon};
use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

/// The confirmation dialog for [`Feed::deleting`].
#[component]
pub fn DeleteDialog(feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let cancel = move || {
        if let Some(id) = feed.deleting.get_untracked() {
            feed.deleting.set(None);
            focus_by_id(&format!("delete-{}", id.0));
        }
    };
    let confirm = move || {
        let (Some(id), Some(room)) = (feed.deleting.get_untracked(), feed.room.try_get_value())
        else {
            return;
        };
        feed.deleting.set(None);
        let next = feed.messages.with_untracked(|held| {
            let at = held.iter().position(|m| m.id == id)?;
            held.get(at + 1).map(|m| super::entry_id(m.seq))
        });
        client.delete_message(room, id);
        feed.focus_on(next.unwrap_or_else(|| "message-input".to_owned()));
    };
    // Two buttons: Tab goes from one to the other, never out.
    let on_key = move |ev: KeyboardEvent| {
        if ev.key() == "Tab" {
            ev.prevent_default();
            let on_cancel = document()
                .active_element()
                .is_some_and(|e| e.id() == "delete-cancel");
            focus_by_id(if on_cancel {
                "delete-confirm"
            } else {
                "delete-cancel"
            });
        }
    };
    // Escape cancels wherever the focus is (it reaches "Cancel" only once the dialog is
    // drawn).
    #[cfg(feature = "hydrate")]
    {
        let escape = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() == "Escape" && feed.deleting.try_get_untracked().flatten().is_some() {
                ev.prevent_default();
                cancel();
            }
        });
        on_cleanup(move || escape.remove());
    }
    // The safe choice has the focus while the dialog is open.
    Effect::new(move |_| {
        if feed.deleting.get().is_some() {
            focus_soon("delete-cancel".to_owned());
        }
    });
    view! {
        <Show when=move || feed.deleting.get().is_some()>
            <div class="modal-backdrop" on:click=move |_| cancel()>
                <div
                    class="modal confirm"
                    role="dialog"
                    aria-modal="true"
                    aria-labelledby="delete-title"
                    on:click=|ev| ev.stop_propagation()
                    on:keydown=on_key
                >
                    <h2 id="delete-title">"Delete this message?"</h2>
                    <p>"It is removed for everyone, and cannot be brought back."</p>
                    <div class="modal-actions">
                        <button
                            type="button"
                            id="delete-cancel"
                            class="secondary"
                            on:click=move |_| cancel()
                        >
                            "Cancel"
                        </button>
                        <button
                            type="button"
                            id="delete-confirm"
                            class="danger"
                            on:click=move |_| confirm()
                        >
                            "Delete"
                        </button>
                    </div>
                </div>
            </div>
        </Show>
    }
}
