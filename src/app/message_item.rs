//! One message in the log: author, time and formatted text (`markup`: elements around
//! text, never the body read as HTML; mentions of the reader marked), "(edited)" once its
//! author changed it, and on one's own messages the buttons "Edit message" (the text becomes
//! a box: Enter saves, Escape cancels) and "Delete message" (asked first, in a dialog); on
//! every message still held by the server, "Add reaction" (the log's one picker), and under
//! the text the message's reactions, each a button that gives or takes away the reader's.

use super::client::{use_chat_client, Feed};
use super::drawer::focus_by_id;
use super::local_time::{clock_label, full_label, use_reader_clock};
use super::markup::body_view;
use crate::chat::model::{human_size, Emoji, Message, MessageBody, MessageId};
use leptos::either::Either;
use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

/// A message, in the reader's local time (see `local_time`). One that continues a group
/// (`starts_group` false) shows its author's name only to assistive technology and its time
/// only on hover or focus; both stay in the text, so every message reads whole on its own.
/// Its author may edit or delete it, and anyone signed in react to it, while `deletable`
/// (the server still holds it in memory; older messages, read back from the store, stay as
/// they are).
#[component]
pub fn MessageItem(
    feed: Feed,
    message: Message,
    starts_group: bool,
    deletable: Signal<bool>,
) -> impl IntoView {
    let client = use_chat_client();
    let clock = use_reader_clock();
    let sent_at = message.sent_at;
    let label = move || clock_label(sent_at, clock.offset_at(sent_at));
    let full = move || full_label(sent_at, clock.offset_at(sent_at));
    let author_id = message.author.id;
    let room = message.room.clone();
    let id = message.id;
    let (edit_id, delete_id, box_id) = (
        format!("edit-{}", id.0),
        format!("delete-{}", id.0),
        format!("edit-box-{}", id.0),
    );
    let editing = Memo::new(move |_| feed.editing.with(|e| e.is_some_and(|(m, _)| m == id)));
    let confirming = RwSignal::new(false);
    // Where the focus goes once the edit is over: back to the box if it began there (Up).
    let after_edit = {
        let edit_id = edit_id.clone();
        move || match feed.editing.get_untracked() {
            Some((_, true)) => "message-input".to_owned(),
            _ => edit_id.clone(),
        }
    };
    let original = message.body.as_str().to_owned();
    let has_file = message.attachment.is_some();
    let on_edit_key = {
        let (room, after_edit) = (room.clone(), after_edit.clone());
        move |ev: KeyboardEvent| {
            let key = ev.key();
            if key == "Escape" || (key == "Enter" && !ev.shift_key() && !ev.is_composing()) {
                ev.prevent_default();
            } else {
                return;
            }
            if key == "Enter" {
                let text = event_target_value(&ev);
                if text != original {
                    if let Err(e) =
                        MessageBody::for_edit(&text, client.limits().max_message_chars, has_file)
                    {
                        feed.error.set(Some(e.to_string()));
                        return;
                    }
                    client.edit_message(room.clone(), id, text);
                }
            }
            let back = after_edit();
            feed.editing.set(None);
            feed.focus_on(back);
        }
    };
    {
        // Once the box is drawn, it takes the focus; an element of this message that was
        // asked for the focus while it was being drawn again takes it.
        let (box_id, edit_id, delete_id) = (box_id.clone(), edit_id.clone(), delete_id.clone());
        let react_id = react_button_id(id);
        let chips: Vec<String> = message
            .reactions
            .iter()
            .map(|r| reaction_id(id, r.emoji))
            .collect();
        Effect::new(move |_| {
            if editing.get() {
                focus_soon(box_id.clone());
            } else {
                feed.drawn(&edit_id);
                feed.drawn(&delete_id);
                feed.drawn(&react_id);
                for chip in &chips {
                    feed.drawn(chip);
                }
            }
        });
        // The dialog's safe choice has the focus while it is open.
        Effect::new(move |_| {
            if confirming.get() {
                focus_soon("delete-cancel".to_owned());
            }
        });
    }
    let ask = move |_| confirming.set(true);
    let cancel = {
        let delete_id = delete_id.clone();
        move || {
            confirming.set(false);
            focus_by_id(&delete_id);
        }
    };
    let confirm = {
        let room = room.clone();
        move || {
            confirming.set(false);
            // The focus goes to the next message, or to the box after the last one.
            let next = feed.messages.with_untracked(|held| {
                let at = held.iter().position(|m| m.id == id)?;
                held.get(at + 1).map(|m| crate::app::room::entry_id(m.seq))
            });
            client.delete_message(room.clone(), id);
            feed.focus_on(next.unwrap_or_else(|| "message-input".to_owned()));
        }
    };
    let edited = message.edited_at.map(|at| {
        view! {
            <span class="edited" title=move || full_label(at, clock.offset_at(at))>
                "(edited)"
            </span>
        }
    });
    let body = message.body.as_str().to_owned();
    // Drawn again only when an edit ends (an edited message is a new item: see the log).
    let shown_body = {
        let body = body.clone();
        move || {
            (!body.is_empty()).then(|| {
                body_view(&body, move || {
                    client
                        .me()
                        .map(|me| me.name.to_string())
                        .unwrap_or_default()
                })
            })
        }
    };
    let title_id = format!("delete-title-{}", id.0);
    let react_id = react_button_id(id);
    let reactions = reactions_view(feed, &message, deletable);
    // The actions, while the reader may act on the message: anyone signed in may react to
    // a message the server still holds, its author edit and delete it too. (Drawn again only
    // when that changes, not with every change of the session.)
    let can_act = move || deletable.get() && client.my_id().is_some();
    let actions = {
        let (react_id, edit_id, delete_id) = (react_id.clone(), edit_id.clone(), delete_id.clone());
        move || {
            let own = (untrack(|| client.my_id()) == Some(author_id)).then(|| {
                view! {
                    <button
                        type="button"
                        id=edit_id.clone()
                        aria-label="Edit message"
                        title="Edit message"
                        on:click=move |_| feed.editing.set(Some((id, false)))
                    >
                        "✎"
                    </button>
                    <button
                        type="button"
                        id=delete_id.clone()
                        class="delete"
                        aria-label="Delete message"
                        title="Delete message"
                        on:click=ask
                    >
                        "×"
                    </button>
                }
            });
            view! {
                <span class="actions">
                    <button
                        type="button"
                        id=react_id.clone()
                        aria-label="Add reaction"
                        aria-haspopup="dialog"
                        title="Add reaction"
                        on:click=move |_| feed.reacting.set(Some(id))
                    >
                        "☺"
                    </button>
                    {own}
                </span>
            }
        }
    };
    view! {
        <div class="message" class:continued=!starts_group>
            <div class="meta">
                <span class="author" class:visually-hidden=!starts_group>
                    {message.author.name.to_string()}
                </span>
                // The short time is for the eye (the full one on hover); assistive technology
                // reads the full date and time instead, as text (a `<time>` cannot be named).
                <time
                    datetime=sent_at.to_string()
                    title=full
                    aria-hidden="true"
                    class:zone-unknown=move || clock.offset_at(sent_at).is_none()
                >
                    {label}
                </time>
                <span class="visually-hidden">{full}</span>
                {edited}
                <Show when=can_act>{actions.clone()}</Show>
            </div>
            <Show when=move || editing.get() fallback=shown_body.clone()>
                <textarea
                    id=box_id.clone()
                    class="edit-box"
                    aria-label="Edit message"
                    prop:value=body.clone()
                    on:keydown=on_edit_key.clone()
                ></textarea>
                <p class="hint">"Enter to save, Escape to cancel"</p>
            </Show>
            {reactions}
            {message.attachment.map(|file| {
                let url = file.url();
                if file.image {
                    let href = url.clone();
                    Either::Left(view! {
                        <a class="attachment-image" href=href target="_blank" rel="noopener">
                            <img src=url alt=file.name.clone() loading="lazy"/>
                        </a>
                    })
                } else {
                    Either::Right(view! {
                        <p class="attachment-file">
                            <a href=url download=file.name.clone()>{file.name.clone()}</a>
                            <span class="size">{human_size(file.size)}</span>
                        </p>
                    })
                }
            })}
            <Show when=move || confirming.get()>
                <div class="modal-backdrop" on:click={
                    let cancel = cancel.clone();
                    move |_| cancel()
                }>
                    <div
                        class="modal confirm"
                        role="dialog"
                        aria-modal="true"
                        aria-labelledby=title_id.clone()
                        on:click=|ev| ev.stop_propagation()
                        on:keydown={
                            let cancel = cancel.clone();
                            move |ev: KeyboardEvent| match ev.key().as_str() {
                                "Escape" => {
                                    ev.prevent_default();
                                    cancel();
                                }
                                // Two buttons: Tab goes from one to the other, never out.
                                "Tab" => {
                                    ev.prevent_default();
                                    let on_cancel = document()
                                        .active_element()
                                        .is_some_and(|e| e.id() == "delete-cancel");
                                    focus_by_id(if on_cancel { "delete-confirm" } else { "delete-cancel" });
                                }
                                _ => {}
                            }
                        }
                    >
                        <h2 id=title_id.clone()>"Delete this message?"</h2>
                        <p>"It is removed for everyone, and cannot be brought back."</p>
                        <div class="modal-actions">
                            <button type="button" id="delete-cancel" class="secondary" on:click={
                                let cancel = cancel.clone();
                                move |_| cancel()
                            }>
                                "Cancel"
                            </button>
                            <button type="button" id="delete-confirm" class="danger" on:click={
                                let confirm = confirm.clone();
                                move |_| confirm()
                            }>
                                "Delete"
                            </button>
                        </div>
                    </div>
                </div>
            </Show>
        </div>
    }
}

/// Gives the focus to the element `id` once what is being drawn now is on the page.
fn focus_soon(_id: String) {
    #[cfg(feature = "hydrate")]
    request_animation_frame(move || focus_by_id(&_id));
}

/// The id of a message's "Add reaction" button, where the focus goes back from the picker.
pub fn react_button_id(id: MessageId) -> String {
    format!("react-{}", id.0)
}

/// The id of a message's reaction `emoji`.
fn reaction_id(id: MessageId, emoji: Emoji) -> String {
    format!("reaction-{}-{}", id.0, emoji.name())
}

/// A message's reactions, if it has any: one button each, named by the emoji and its count
/// ("👍 2"), pressed when one of them is the reader's, with who reacted on hover; pressing
/// it gives or takes away the reader's. Drawn once from the message (a reaction event
/// replaces the message, and the log draws it anew), so only `aria-pressed` follows the
/// reader. Pressing one does nothing once the message is no longer `deletable` (the server
/// no longer holds it: its reactions stay as they are).
fn reactions_view(feed: Feed, message: &Message, deletable: Signal<bool>) -> Option<impl IntoView> {
    if message.reactions.is_empty() {
        return None;
    }
    let client = use_chat_client();
    let (room, id) = (message.room.clone(), message.id);
    let chips = message.reactions.iter().map(|reaction| {
        let (emoji, room) = (reaction.emoji, room.clone());
        let names: Vec<String> = reaction.users.iter().map(|u| u.name.to_string()).collect();
        let ids: Vec<_> = reaction.users.iter().map(|u| u.id).collect();
        let mine = move || client.my_id().is_some_and(|me| ids.contains(&me));
        let title = format!("{} reacted with :{}:", names.join(", "), emoji.name());
        let chip_id = reaction_id(id, emoji);
        let last = reaction.users.len() == 1;
        let toggle = {
            let (mine, chip_id) = (mine.clone(), chip_id.clone());
            move |_| {
                if !deletable.get_untracked() {
                    return;
                }
                let on = !untrack(&mine);
                client.react(room.clone(), id, emoji, on);
                // The chip is drawn anew with its new count, or is gone with the reader's.
                let gone = !on && last;
                feed.focus_on(if gone {
                    react_button_id(id)
                } else {
                    chip_id.clone()
                });
            }
        };
        view! {
            <button
                type="button"
                class="reaction"
                id=chip_id
                title=title
                aria-pressed=move || if mine() { "true" } else { "false" }
                on:click=toggle
            >
                <span class="emoji">{emoji.as_str()}</span>
                " "
                <span class="count">{reaction.users.len().to_string()}</span>
            </button>
        }
    });
    Some(view! {
        <div class="reactions" role="group" aria-label="Reactions">
            {chips.collect_view()}
        </div>
    })
}
