//! One message in the log: author, time and text, all rendered as text, and a delete button
//! on one's own messages.

use super::client::use_chat_client;
use crate::chat::model::Timestamp;
use crate::chat::model::{human_size, Message};
use leptos::either::Either;
use leptos::prelude::*;

/// A message. Its time is shown in UTC until the page hydrates, then in local time.
#[component]
pub fn MessageItem(message: Message) -> impl IntoView {
    let client = use_chat_client();
    let sent_at = message.sent_at;
    let label = move || {
        if client.hydrated.get() {
            local_time_label(sent_at)
        } else {
            format!("{} UTC", sent_at.utc_hours_minutes())
        }
    };
    let author_id = message.author.id;
    let is_mine = move || client.my_id() == Some(author_id);
    let room = message.room.clone();
    let id = message.id;
    view! {
        <li class="message">
            <div class="meta">
                <span class="author">{message.author.name.to_string()}</span>
                <time datetime=sent_at.to_string()>
                    {label}
                </time>
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
                <p class="body">{message.body.as_str().to_owned()}</p>
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
        </li>
    }
}

/// Hours and minutes in the browser's time zone.
#[cfg(feature = "hydrate")]
fn local_time_label(at: Timestamp) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.millis() as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// On the server there is no local time zone to speak of: UTC.
#[cfg(not(feature = "hydrate"))]
fn local_time_label(at: Timestamp) -> String {
    format!("{} UTC", at.utc_hours_minutes())
}
