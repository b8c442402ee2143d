//! A room's page: a channel (`/c/{name}`, rendered on the server for the first load, then
//! live) or a private conversation (`/dm/{user id}`, loaded in the browser, which holds the
//! token). Both show the room's name, the connection state, its messages and the box to
//! write in; channels also show who is online.

use super::client::{use_chat_client, Feed};
use super::message_item::MessageItem;
use crate::chat::api::{channel_history, direct_history};
use crate::chat::model::{decode_path_segment, ChatError, HistoryPage};
use leptos::either::Either;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

/// The page of the channel named in the address.
#[component]
pub fn ChannelPage() -> impl IntoView {
    let params = use_params_map();
    let name = move || decode_path_segment(&params.read().get("name").unwrap_or_default());
    let page = Resource::new(name, channel_history);
    view! {
        <Suspense fallback=|| view! { <p class="hint">"Loading messages…"</p> }>
            {move || Suspend::new(async move { room_or_error(page.await, "Channel not found") })}
        </Suspense>
    }
}

/// The private conversation with the user whose id is in the address.
#[component]
pub fn DirectPage() -> impl IntoView {
    let client = use_chat_client();
    let params = use_params_map();
    let peer = move || {
        params
            .read()
            .get("id")
            .and_then(|id| id.parse::<u64>().ok())
    };
    let page = LocalResource::new(move || {
        let token = client.token();
        let peer = peer();
        async move {
            match (token, peer) {
                (Some(token), Some(peer)) => direct_history(token, peer).await,
                (None, _) => Err(ChatError::NotIdentified),
                (_, None) => Err(ChatError::NoSuchUser),
            }
        }
    });
    view! {
        <Suspense fallback=|| view! { <p class="hint">"Loading conversation…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(ChatError::NotIdentified) => {
                        Either::Left(view! { <p class="hint">"Loading conversation…"</p> })
                    }
                    other => Either::Right(room_or_error(other, "Conversation not available")),
                }
            })}
        </Suspense>
    }
}

/// The room's view, or why it cannot be shown (with status 404 on the server).
fn room_or_error(page: Result<HistoryPage, ChatError>, heading: &'static str) -> impl IntoView {
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
    let navigate = use_navigate();
    view! {
        <section class="online" aria-labelledby="online-title">
            <h2 id="online-title" class="nav-title">"Online"</h2>
            <ul aria-label="Online">
                <For
                    each=move || feed.online.get()
                    key=|user| (user.id, user.name.to_string())
                    children=move |user| {
                        let navigate = navigate.clone();
                        let is_me = move || client.my_id() == Some(user.id);
                        let name = user.name.to_string();
                        let label = format!("Message {name}");
                        let path = format!("/dm/{}", user.id);
                        view! {
                            <li>
                                <span class="presence-dot" aria-hidden="true"></span>
                                <span class="online-name">{name.clone()}</span>
                                <Show when=move || !is_me()>
                                    {
                                        let navigate = navigate.clone();
                                        let path = path.clone();
                                        view! {
                                            <button
                                                type="button"
                                                class="link-button"
                                                aria-label=label.clone()
                                                title=label.clone()
                                                on:click=move |_| navigate(&path, Default::default())
                                            >
                                                "Message"
                                            </button>
                                        }
                                    }
                                </Show>
                            </li>
                        }
                    }
                />
            </ul>
        </section>
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

/// The box to write in: Enter sends, Shift+Enter starts a new line.
#[component]
fn Composer(feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let draft = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let send = move || match client.send_message(&draft.get_untracked()) {
        Ok(()) => {
            draft.set(String::new());
            local_error.set(None);
            feed.error.set(None);
        }
        Err(e) => local_error.set(Some(e)),
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
        <form class="composer" on:submit=on_submit>
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
            <button type="submit" disabled=move || !client.hydrated.get()>"Send"</button>
            <p class="form-error" role="alert">{error}</p>
        </form>
    }
}
