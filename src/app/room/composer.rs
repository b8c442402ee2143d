//! The box to write in, with the attachment being uploaded or waiting to be sent, the
//! message being replied to, and why the words in it were not sent; Up in the empty box
//! edits the user's last message.

use crate::app::client::{use_chat_client, ConnStatus, Feed, Notice, NoticeKind, Pending};
use crate::chat::history::window_start;
use crate::chat::model::{human_size, HISTORY_LIMIT};
use leptos::either::Either;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::prelude::*;

/// How long "sending too fast" is shown when nothing else clears it first.
#[cfg(feature = "hydrate")]
const TOO_FAST_SHOWN: std::time::Duration = std::time::Duration::from_secs(4);

/// Puts the focus in the message box.
#[cfg(feature = "hydrate")]
fn focus_box() {
    crate::app::drawer::focus_by_id("message-input");
}

/// The box to write in: Enter sends, Shift+Enter starts a new line. It grows with its words
/// up to half the window (CSS), keeps them as the room's draft, and gets them back with the
/// reason when the server refuses the message or the connection drops. A file chosen with the
/// picker, dropped on the box or pasted into it is uploaded at once (with progress) and goes
/// with the next message. Takes the focus when a room is opened or created in the app, and
/// once the user has chosen a name. While the next message answers another ("Reply" on a
/// message), "Replying to {author}" shows above the box, with Cancel (Escape in the box
/// cancels too).
#[component]
pub fn Composer(feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let draft = feed.draft;
    let pending = feed.pending;
    let dragging = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    {
        // Opened inside the app (a room chosen or created), not by loading the page: a page
        // load leaves the focus at the document's start, where "Skip to message box" is.
        let in_app = client.hydrated.get_untracked();
        let needs_name = Memo::new(move |_| client.needs_name());
        Effect::new(move |needed_before: Option<bool>| {
            let needed = needs_name.get();
            let just_named = needed_before == Some(true);
            if !needed && (just_named || (in_app && needed_before.is_none())) {
                // After the render that shows and enables the box.
                request_animation_frame(focus_box);
            }
            needed
        });
    }
    Effect::new(move || {
        if client.status.get() == ConnStatus::Connected {
            feed.clear_notice(|k| k == NoticeKind::Offline);
        }
    });
    #[cfg(feature = "hydrate")]
    Effect::new(move || {
        if feed
            .notice
            .with(|n| n.as_ref().is_some_and(|n| n.kind == NoticeKind::TooFast))
        {
            set_timeout(
                move || feed.clear_notice(|k| k == NoticeKind::TooFast),
                TOO_FAST_SHOWN,
            );
        }
    });
    let send = move || {
        let attachment = match pending.get_untracked() {
            Some(Pending::Ready(a)) => Some(a),
            Some(Pending::Uploading { .. }) => {
                feed.notice
                    .set(Some(Notice::local("Wait for the upload to finish.")));
                return;
            }
            None => None,
        };
        match client.send_message(&draft.get_untracked(), attachment.as_ref()) {
            Ok(()) => {
                feed.edit(String::new());
                pending.set(None);
                feed.replying.set(None);
                feed.error.set(None);
            }
            Err(notice) => feed.notice.set(Some(notice)),
        }
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        send();
    };
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Escape" && feed.replying.with_untracked(Option::is_some) {
            ev.prevent_default();
            feed.replying.set(None);
        }
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            send();
        }
        // Up in an empty box edits the user's last message the server still holds.
        let plain = !(ev.shift_key() || ev.alt_key() || ev.ctrl_key() || ev.meta_key());
        if ev.key() == "ArrowUp" && plain && draft.with_untracked(String::is_empty) {
            let me = client.my_id();
            let from = window_start(feed.cursor().map_or(0, |c| c.seq), HISTORY_LIMIT);
            let last = feed.messages.with_untracked(|held| {
                held.iter()
                    .rev()
                    .find(|m| Some(m.author.id) == me && m.seq >= from)
                    .map(|m| m.id)
            });
            if let Some(id) = last {
                ev.prevent_default();
                feed.editing.set(Some((id, true)));
            }
        }
    };
    #[cfg(feature = "hydrate")]
    let start_upload = move |file: web_sys::File| {
        let Some(token) = client.token() else {
            feed.notice.set(Some(Notice::from_error(
                &crate::chat::model::ChatError::NotIdentified,
            )));
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
            feed.notice.set(Some(Notice::from_error(
                &crate::chat::model::ChatError::FileTooLarge { max_bytes },
            )));
            return;
        }
        let name = file.name();
        feed.clear_notice(|k| k == NoticeKind::Local);
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
                    feed.notice.try_set(Some(Notice::local(&e)));
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
    let on_paste = move |_ev: leptos::ev::ClipboardEvent| {
        // A pasted file (an image copied from another program) is attached; pasted text is
        // left to the browser.
        #[cfg(feature = "hydrate")]
        if let Some(file) = _ev
            .clipboard_data()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0))
        {
            _ev.prevent_default();
            start_upload(file);
        }
    };
    let error = move || {
        feed.notice
            .with(|n| n.as_ref().map(|n| n.text.clone()))
            .or_else(|| feed.error.get())
    };
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
            {move || feed.replying.get().map(|reply| view! {
                <div class="replying">
                    <span class="replying-to">{format!("Replying to {}", reply.author.name)}</span>
                    <span class="excerpt">{reply.excerpt}</span>
                    <button
                        type="button"
                        class="link-button"
                        aria-label="Cancel reply"
                        on:click=move |_| {
                            feed.replying.set(None);
                            feed.focus_on("message-input".to_owned());
                        }
                    >
                        "Cancel"
                    </button>
                </div>
            })}
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
                    feed.edit(text);
                }
                on:keydown=on_keydown
                on:paste=on_paste
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
