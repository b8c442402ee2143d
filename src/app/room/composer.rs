//! The box to write in, with the attachment being uploaded or waiting to be sent.

use crate::app::client::{use_chat_client, Feed};
use crate::chat::model::{human_size, Attachment};
use leptos::either::Either;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::prelude::*;

/// An attachment being uploaded, or uploaded and waiting to be sent.
#[derive(Clone, Debug, PartialEq)]
// Uploads happen only in the browser; the server renders an empty composer.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Pending {
    Uploading { name: String, fraction: f64 },
    Ready(Attachment),
}

/// The box to write in: Enter sends, Shift+Enter starts a new line. A file chosen with the
/// picker or dropped on the box is uploaded at once (with progress) and goes with the next
/// message.
#[component]
pub fn Composer(feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let draft = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(None::<Pending>);
    let dragging = RwSignal::new(false);
    let send = move || {
        let attachment = match pending.get_untracked() {
            Some(Pending::Ready(a)) => Some(a),
            Some(Pending::Uploading { .. }) => {
                local_error.set(Some("Wait for the upload to finish.".into()));
                return;
            }
            None => None,
        };
        match client.send_message(&draft.get_untracked(), attachment.as_ref()) {
            Ok(()) => {
                draft.set(String::new());
                pending.set(None);
                local_error.set(None);
                feed.error.set(None);
            }
            Err(e) => local_error.set(Some(e)),
        }
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        send();
    };
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            send();
        }
    };
    #[cfg(feature = "hydrate")]
    let start_upload = move |file: web_sys::File| {
        let Some(token) = client.token() else {
            local_error.set(Some(
                crate::chat::model::ChatError::NotIdentified.to_string(),
            ));
            return;
        };
        let room = feed.room.get_value();
        let query = match (feed.peer, room.channel()) {
            (Some(peer), _) => format!("peer={peer}"),
            (None, Some(name)) => format!(
                "channel={}",
                crate::app::percent::encode_path_segment(name.as_str())
            ),
            (None, None) => return,
        };
        let max_bytes = client.limits().max_upload_bytes;
        if file.size() > max_bytes as f64 {
            local_error.set(Some(
                crate::chat::model::ChatError::FileTooLarge { max_bytes }.to_string(),
            ));
            return;
        }
        let name = file.name();
        local_error.set(None);
        pending.set(Some(Pending::Uploading {
            name: name.clone(),
            fraction: 0.0,
        }));
        crate::app::client::upload::upload(
            file,
            query,
            token,
            move |fraction| {
                pending.try_set(Some(Pending::Uploading {
                    name: name.clone(),
                    fraction,
                }));
            },
            move |result| match result {
                Ok(attachment) => {
                    pending.try_set(Some(Pending::Ready(attachment)));
                }
                Err(e) => {
                    pending.try_set(None);
                    local_error.try_set(Some(e));
                }
            },
        );
    };
    let on_pick = move |_ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let input: Option<web_sys::HtmlInputElement> =
                _ev.target().and_then(|t| t.dyn_into().ok());
            if let Some(input) = input {
                if let Some(file) = input.files().and_then(|f| f.get(0)) {
                    start_upload(file);
                }
                input.set_value("");
            }
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        #[cfg(feature = "hydrate")]
        if let Some(file) = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0))
        {
            start_upload(file);
        }
    };
    let error = move || local_error.get().or_else(|| feed.error.get());
    let placeholder = move || {
        let title = feed.title.get();
        if feed.peer.is_some() {
            format!("Message {title}")
        } else {
            format!("Message #{title}")
        }
    };
    view! {
        <form
            class="composer"
            class:dragging=move || dragging.get()
            on:submit=on_submit
            on:dragover=move |ev: leptos::ev::DragEvent| {
                ev.prevent_default();
                dragging.set(true);
            }
            on:dragleave=move |_| dragging.set(false)
            on:drop=on_drop
        >
            <label for="message-input" class="visually-hidden">"Message"</label>
            <textarea
                id="message-input"
                rows="2"
                placeholder=placeholder
                disabled=move || !client.hydrated.get()
                prop:value=move || draft.get()
                on:input=move |ev| {
                    let text = event_target_value(&ev);
                    if !text.trim().is_empty() {
                        client.typed();
                    }
                    draft.set(text);
                }
                on:keydown=on_keydown
            ></textarea>
            <div class="composer-actions">
                <label for="attach-input" class="attach-button" title="Attach a file (or drop it on the box)">
                    "Attach file"
                </label>
                <input
                    id="attach-input"
                    class="visually-hidden"
                    type="file"
                    disabled=move || !client.hydrated.get()
                    on:change=on_pick
                />
                <button type="submit" disabled=move || !client.hydrated.get()>"Send"</button>
            </div>
            {move || pending.get().map(|p| match p {
                Pending::Uploading { name, fraction } => Either::Left(view! {
                    <div class="pending">
                        <span>{format!("Uploading {name}…")}</span>
                        <progress
                            max="100"
                            value=(fraction * 100.0).clamp(0.0, 100.0) as u32
                            aria-label="Upload progress"
                        ></progress>
                    </div>
                }),
                Pending::Ready(attachment) => Either::Right(view! {
                    <div class="pending">
                        <span>{format!("{} ({}) will be sent with your message", attachment.name, human_size(attachment.size))}</span>
                        <button type="button" class="link-button" on:click=move |_| pending.set(None)>
                            "Remove attachment"
                        </button>
                    </div>
                }),
            })}
            <p class="form-error" role="alert">{error}</p>
        </form>
    }
}
