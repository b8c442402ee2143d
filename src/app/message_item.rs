//! One message in the log: author, time and formatted text (`markup`: elements around
//! text, never the body read as HTML; mentions of the reader marked), "(edited)" once its
//! author changed it, and on one's own messages the buttons "Edit message" (the text becomes
//! a box: Enter saves, Escape cancels) and "Delete message" (asked first, in the log's
//! dialog: see `room::delete_dialog`); on every message still held by the server, "Add
//! reaction" (the log's one picker) and "Reply" (the box then answers it), under the text
//! the message's reactions, each a button that gives or takes away the reader's, and above
//! the text of a reply the line it quotes, which brings the original into view.

use super::client::{use_chat_client, Feed};
use super::local_time::{clock_label, full_label, use_reader_clock};
use super::markup::body_view;
use super::room::Original;
use super::search::FoundMessage;
use crate::chat::model::{human_size, Emoji, Message, MessageBody, MessageId, Reply};
use leptos::either::Either;
use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

/// A message, in the reader's local time (see `local_time`). One that continues a group
/// (`starts_group` false) shows its author's name only to assistive technology and its time
/// only on hover or focus; both stay in the text, so every message reads whole on its own.
/// Its author may edit or delete it, and anyone signed in react to it, while `deletable`
/// (the server still holds it in memory; older messages, read back from the store, stay as
/// they are). While `editing`, its text is a box: the log draws the message anew when an
/// edit begins or ends. A reply shows the line it quotes, and what the log knows of where
/// that message is (`quoted`: the log draws the reply anew when that changes).
///
/// A hundred of these hydrate with every page load, so each holds as little as it can: one
/// effect for its time, one for its actions and one for its mentions. What changes rarely
/// (an edit begun, a deletion asked about, a reaction, the focus after any of them) belongs
/// to the log.
#[component]
pub fn MessageItem(
    feed: Feed,
    message: Message,
    starts_group: bool,
    deletable: Signal<bool>,
    editing: bool,
    quoted: Option<Original>,
) -> impl IntoView {
    let client = use_chat_client();
    let clock = use_reader_clock();
    let sent_at = message.sent_at;
    let author_id = message.author.id;
    let room = message.room.clone();
    let id = message.id;
    let (edit_id, delete_id, box_id) = (
        format!("edit-{}", id.0),
        format!("delete-{}", id.0),
        format!("edit-box-{}", id.0),
    );
    let original = message.body.as_str().to_owned();
    let has_file = message.attachment.is_some();
    let on_edit_key = {
        let edit_id = edit_id.clone();
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
            // The focus goes back to the box if the edit began there (Up), else to the
            // message's Edit button.
            let back = match feed.editing.get_untracked() {
                Some((_, true)) => "message-input".to_owned(),
                _ => edit_id.clone(),
            };
            feed.editing.set(None);
            feed.focus_on(back);
        }
    };
    if editing {
        // Once the box is drawn, it takes the focus.
        super::drawer::focus_soon(box_id.clone());
    }
    let edited = message.edited_at.map(|at| {
        view! {
            <span class="edited" title=move || full_label(at, clock.offset_at(at))>
                "(edited)"
            </span>
        }
    });
    let body = message.body.as_str().to_owned();
    // Drawn by the server and now being hydrated (the client starts once hydration is over).
    let from_server = !client.hydrated.get_untracked();
    let text = if editing {
        Either::Left(view! {
            <textarea
                id=box_id
                class="edit-box"
                aria-label="Edit message"
                prop:value=body
                on:keydown=on_edit_key
            ></textarea>
            <p class="hint">"Enter to save, Escape to cancel"</p>
        })
    } else {
        Either::Right((!body.is_empty()).then(|| {
            body_view(&body, from_server, move || {
                client
                    .me()
                    .map(|me| me.name.to_string())
                    .unwrap_or_default()
            })
        }))
    };
    // The short time is for the eye (the full one on hover); assistive technology reads the
    // full date and time instead, as text (a `<time>` cannot be named). One effect draws
    // both, again when the reader's clock becomes known.
    let time = move || {
        let offset = clock.offset_at(sent_at);
        let full = full_label(sent_at, offset);
        view! {
            <time
                datetime=sent_at.to_string()
                title=full.clone()
                aria-hidden="true"
                class:zone-unknown=offset.is_none()
            >
                {clock_label(sent_at, offset)}
            </time>
            <span class="visually-hidden">{full}</span>
        }
    };
    let quote = message
        .reply
        .as_ref()
        .zip(quoted)
        .map(|(reply, quoted)| quote_view(reply, quoted, message.room.clone()));
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
                        on:click=move |_| feed.deleting.set(Some(id))
                    >
                        "×"
                    </button>
                }
            });
            view! {
                <span class="actions">
                    <button
                        type="button"
                        aria-label="Reply"
                        title="Reply"
                        on:click=move |_| reply_to(feed, id)
                    >
                        "↩"
                    </button>
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
                {time}
                {edited}
                <Show when=can_act>{actions.clone()}</Show>
            </div>
            {quote}
            {text}
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
        </div>
    }
}

/// Makes the next message sent from the box a reply to message `id`, and puts the focus in
/// the box.
fn reply_to(feed: Feed, id: MessageId) {
    let reply = feed
        .messages
        .with_untracked(|held| held.iter().find(|m| m.id == id).map(Reply::to));
    if reply.is_some() {
        feed.replying.set(reply);
        feed.focus_on("message-input".to_owned());
    }
}

/// The line a reply quotes, named "Reply to {author}: {excerpt}": pressed, it brings the
/// original into view (loading older pages if need be: see `room::jump`), or, when the
/// original is deleted or no longer kept, says so (and does nothing).
fn quote_view(reply: &Reply, original: Original, room: crate::chat::model::Room) -> impl IntoView {
    let found = use_context::<FoundMessage>().map(|found| found.0);
    let gone = match original {
        Original::Deleted => Some("Original message deleted"),
        Original::NotKept => Some("Original message is no longer kept"),
        Original::Here | Original::Older => None,
    };
    let author = reply.author.name.to_string();
    let label = match gone {
        Some(gone) => format!("Reply to {author}: {} ({gone})", reply.excerpt),
        None => format!("Reply to {author}: {}", reply.excerpt),
    };
    let seq = reply.seq;
    let show = move |_| {
        if let (None, Some(found)) = (gone, found) {
            found.set(Some((room.clone(), seq)));
        }
    };
    view! {
        <button
            type="button"
            class="quote"
            aria-label=label
            aria-disabled=gone.map(|_| "true")
            on:click=show
        >
            // What is seen is part of the name (WCAG 2.5.3).
            <span class="quote-author">{format!("{author}:")}</span>
            " "
            <span class="excerpt">{reply.excerpt.clone()}</span>
            {gone.map(|gone| view! { <span class="quote-gone">{format!("({gone})")}</span> })}
        </button>
    }
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
