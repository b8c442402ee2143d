//! A channel's page (`/c/{name}`): its name, the connection state, its messages (rendered on
//! the server for the first load, then live) and the box to write in.

use super::client::{use_chat_client, Feed};
use super::message_item::MessageItem;
use crate::chat::api::channel_history;
use crate::chat::model::{decode_path_segment, ChannelInfo};
use leptos::either::Either;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// The page of the channel named in the address.
#[component]
pub fn ChannelPage() -> impl IntoView {
    let client = use_chat_client();
    let params = use_params_map();
    let name = move || decode_path_segment(&params.read().get("name").unwrap_or_default());
    let page = Resource::new(name, channel_history);

    view! {
        <Suspense fallback=|| view! { <p class="hint">"Loading messages…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(page) => {
                        let channel = page.channel.clone();
                        let feed = client.open_channel(page);
                        Either::Left(view! { <ChannelView channel feed/> })
                    }
                    Err(e) => {
                        #[cfg(feature = "ssr")]
                        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                            response.set_status(axum::http::StatusCode::NOT_FOUND);
                        }
                        Either::Right(view! {
                            <h1>"Channel not found"</h1>
                            <p class="hint">{e.to_string()}</p>
                        })
                    }
                }
            })}
        </Suspense>
    }
}

/// An open channel.
#[component]
fn ChannelView(channel: ChannelInfo, feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let title = format!("#{} · Flack", channel.name);
    view! {
        <Title text=title/>
        <header class="channel-header">
            <h1>{channel.name.to_string()}</h1>
            <p class="status" role="status" data-state=move || client.status.get().key()>
                {move || client.status.get().label()}
            </p>
        </header>
        <MessageLog feed/>
        <Composer feed/>
    }
}

/// The open channel's messages, oldest first, scrolled to the newest.
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
                    key=|message| message.id
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
    let placeholder = format!("Message #{}", feed.channel.get_value());
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
