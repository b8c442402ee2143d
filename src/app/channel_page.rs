//! A room's page: a channel (`/c/{name}`, rendered on the server for the first load, then
//! live) or a private conversation (`/dm/{user id}`, loaded in the browser, which holds the
//! token). Both show the room's name, the connection state, its messages and the box to
//! write in; channels also show who is online.

use super::client::{use_chat_client, ChatClient, Feed};
use super::message_item::MessageItem;
use super::nav::{direct_path, use_location, Location};
use crate::api::{channel_history, direct_history};
use crate::chat::model::{human_size, Attachment, ChatError, HistoryPage, UserInfo};
use leptos::either::Either;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;

/// A room's history once it has arrived, or why it cannot be shown.
type Loaded = Result<HistoryPage, ChatError>;

/// The page of the channel named in the address.
#[component]
pub fn ChannelPage(name: String) -> impl IntoView {
    // The server renders the channel with its history and puts that history into the HTML,
    // where hydration finds it. A channel opened later in the browser is fetched with the
    // `history` server function.
    let first = SharedValue::new({
        let name = name.clone();
        move || rendered_on_server(&name)
    })
    .into_inner();
    let page = RwSignal::new(first);
    if page.with_untracked(Option::is_none) {
        spawn_local(async move { page.set(Some(channel_history(name).await)) });
    }
    move || shown(page.get(), "Loading messages…", "Channel not found")
}

/// The channel's history, when rendering on the server; nothing in the browser.
fn rendered_on_server(name: &str) -> Option<Loaded> {
    #[cfg(feature = "ssr")]
    return Some(crate::api::hub().and_then(|hub| hub.channel_page(name)));
    #[cfg(not(feature = "ssr"))]
    {
        let _ = name;
        None
    }
}

/// The private conversation with the user whose id is in the address (`None` if it is not a
/// number).
#[component]
pub fn DirectPage(peer: Option<u64>) -> impl IntoView {
    let client = use_chat_client();
    let page = RwSignal::new(None);
    // Only the browser holds the token, so the conversation is fetched there, once the user
    // is known.
    Effect::new(move |_| match (client.token(), peer) {
        (Some(token), Some(peer)) => spawn_local(async move {
            match direct_history(token, peer).await {
                Err(ChatError::NotIdentified) => {}
                loaded => page.set(Some(loaded)),
            }
        }),
        (None, _) => {}
        (_, None) => page.set(Some(Err(ChatError::NoSuchUser))),
    });
    move || {
        shown(
            page.get(),
            "Loading conversation…",
            "Conversation not available",
        )
    }
}

/// The room once it has arrived (or why it cannot be shown), and `waiting` until then.
fn shown(page: Option<Loaded>, waiting: &'static str, heading: &'static str) -> impl IntoView {
    match page {
        None => Either::Left(view! { <p class="hint">{waiting}</p> }),
        // Opening the room reads signals; only the arrival of the page should redraw it.
        Some(page) => Either::Right(untrack(|| room_or_error(page, heading))),
    }
}

/// The room's view, or why it cannot be shown (with status 404 on the server).
fn room_or_error(page: Loaded, heading: &'static str) -> impl IntoView {
    let client = use_chat_client();
    match page {
        Ok(page) => {
            let feed = client.open_room(page);
            Either::Left(view! { <RoomView feed/> })
        }
        Err(e) => {
            #[cfg(feature = "ssr")]
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(axum::http::StatusCode::NOT_FOUND);
            }
            Either::Right(view! {
                <h1>{heading}</h1>
                <p class="hint">{e.to_string()}</p>
            })
        }
    }
}

/// An open room.
#[component]
fn RoomView(feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let is_channel = feed.peer.is_none();
    // The document title outlives this view inside leptos_meta, so it must not assume the
    // feed's signals are still alive.
    let title = move || {
        let name = feed.title.try_get().unwrap_or_default();
        if is_channel {
            format!("#{name} · Flack")
        } else {
            format!("{name} · Flack")
        }
    };
    view! {
        <Title text=title/>
        <header class="channel-header" class:direct=!is_channel>
            <h1>{move || feed.title.get()}</h1>
            <p class="status" role="status" data-state=move || client.status.get().key()>
                {move || client.status.get().label()}
            </p>
        </header>
        <div class="room">
            <div class="room-main">
                <MessageLog feed/>
                <Composer feed/>
            </div>
            {is_channel.then(|| view! { <OnlineList feed/> })}
        </div>
    }
}

/// Who is in the channel now; everyone but oneself gets a button to message them privately.
#[component]
fn OnlineList(feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let location = use_location();
    // Short lists are drawn again whole when they change. A keyed `<For>` costs about 1.5 KB
    // of WebAssembly per use, and only the message log is long enough to need one.
    let entries = move || {
        feed.online
            .get()
            .into_iter()
            .map(|user| online_entry(user, client, location))
            .collect_view()
    };
    view! {
        <section class="online" aria-labelledby="online-title">
            <h2 id="online-title" class="nav-title">"Online"</h2>
            <ul aria-label="Online">{entries}</ul>
        </section>
    }
}

/// One person in the online list.
fn online_entry(user: UserInfo, client: ChatClient, location: Location) -> impl IntoView {
    let is_me = move || client.my_id() == Some(user.id);
    let name = user.name.to_string();
    let label = format!("Message {name}");
    let path = direct_path(user.id);
    view! {
        <li>
            <span class="presence-dot" aria-hidden="true"></span>
            <span class="online-name">{name}</span>
            <Show when=move || !is_me()>
                {
                    let path = path.clone();
                    view! {
                        <button
                            type="button"
                            class="link-button"
                            aria-label=label.clone()
                            title=label.clone()
                            on:click=move |_| location.navigate(&path, false)
                        >
                            "Message"
                        </button>
                    }
                }
            </Show>
        </li>
    }
}

/// The open room's messages, oldest first, scrolled to the newest.
#[component]
fn MessageLog(feed: Feed) -> impl IntoView {
    let container = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        feed.messages.track();
        if let Some(el) = container.get() {
            el.set_scroll_top(el.scroll_height());
        }
    });
    view! {
        <div class="log-scroll" node_ref=container>
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
fn Composer(feed: Feed) -> impl IntoView {
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
            local_error.set(Some(ChatError::NotIdentified.to_string()));
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
        let name = file.name();
        local_error.set(None);
        pending.set(Some(Pending::Uploading {
            name: name.clone(),
            fraction: 0.0,
        }));
        super::client::browser::upload(
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
                on:input=move |ev| draft.set(event_target_value(&ev))
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
