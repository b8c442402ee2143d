//! One message in the log: author, time and formatted text (`markup`: elements around
//! text, never the body read as HTML; mentions of the reader marked), and a delete button
//! on one's own messages.

use super::client::use_chat_client;
use super::local_time::{clock_label, full_label, use_reader_clock};
use super::markup::body_view;
use crate::chat::model::{human_size, Message};
use leptos::either::Either;
use leptos::prelude::*;

/// A message, in the reader's local time (see `local_time`). One that continues a group
/// (`starts_group` false) shows its author's name only to assistive technology and its time
/// only on hover or focus; both stay in the text, so every message reads whole on its own.
/// Its author may delete it while `deletable` (the server still holds it in memory; older
/// messages, read back from the store, stay).
#[component]
pub fn MessageItem(message: Message, starts_group: bool, deletable: Signal<bool>) -> impl IntoView {
    let client = use_chat_client();
    let clock = use_reader_clock();
    let sent_at = message.sent_at;
    let label = move || clock_label(sent_at, clock.offset_at(sent_at));
    let full = move || full_label(sent_at, clock.offset_at(sent_at));
    let author_id = message.author.id;
    let is_mine = move || client.my_id() == Some(author_id) && deletable.get();
    let room = message.room.clone();
    let id = message.id;
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
                <Show when=is_mine>
                    {
                        let room = room.clone();
                        view! {
                            <button
                                type="button"
                                class="delete"
                                aria-label="Delete message"
                                title="Delete message"
                                on:click=move |_| client.delete_message(room.clone(), id)
                            >
                                "×"
                            </button>
                        }
                    }
                </Show>
            </div>
            <Show when={
                let empty = message.body.as_str().is_empty();
                move || !empty
            }>
                {body_view(
                    message.body.as_str(),
                    move || client.me().map(|me| me.name.to_string()).unwrap_or_default(),
                )}
            </Show>
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
