//! An open room (its header with the connection state, the message log, the composer and,
//! for a channel, who is online), and what a room's page shows until the room has arrived or
//! when it cannot be shown.

use super::composer::Composer;
use super::message_log::MessageLog;
use super::online_list::OnlineList;
use crate::app::client::typing::typing_notice;
use crate::app::client::{use_chat_client, Feed};
use crate::app::drawer::OpenSidebarButton;
use crate::chat::model::{ChatError, HistoryPage};
use leptos::either::Either;
use leptos::prelude::*;
use leptos_meta::Title;

/// A room's history once it has arrived, or why it cannot be shown.
pub type Loaded = Result<HistoryPage, ChatError>;

/// The room once it has arrived (or why it cannot be shown), and `waiting` until then.
pub fn shown(page: Option<Loaded>, waiting: &'static str, heading: &'static str) -> impl IntoView {
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
pub fn RoomView(feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let is_channel = feed.peer.is_none();
    // The document title outlives this view inside leptos_meta, so it must not assume the
    // feed's signals are still alive.
    // Carries what calls for the reader's attention elsewhere (mentions and private
    // messages): "(3) #general · Flack".
    let title = move || {
        let name = feed.title.try_get().unwrap_or_default();
        let count = match client.attention() {
            0 => String::new(),
            n => format!("({}) ", crate::app::client::unread::short_count(n)),
        };
        if is_channel {
            format!("{count}#{name} · Flack")
        } else {
            format!("{count}{name} · Flack")
        }
    };
    // On the server the title is read once, while the page renders: leptos_meta reads it
    // again after the render, possibly on another thread where no reactive arena is set
    // (a page whose render waited for the cluster to catch up hit that).
    #[cfg(feature = "ssr")]
    let title = title();
    // On narrow screens the Online list is a panel the header's button shows.
    let show_online = RwSignal::new(false);
    view! {
        <Title text=title/>
        <header class="channel-header" class:direct=!is_channel>
            <OpenSidebarButton/>
            <h1>{move || feed.title.get()}</h1>
            {is_channel.then(|| view! {
                <button
                    type="button"
                    class="online-button"
                    aria-controls="online-list"
                    aria-expanded=move || show_online.get().to_string()
                    on:click=move |_| show_online.update(|shown| *shown = !*shown)
                >
                    "Online"
                </button>
            })}
            <p class="status" role="status" data-state=move || client.status.get().key()>
                {move || client.status.get().label()}
            </p>
        </header>
        <div class="room" class:show-online=move || show_online.get()>
            <div class="room-main">
                <MessageLog feed/>
                <p class="typing" aria-live="polite">
                    {move || feed.typing.with(|list| typing_notice(list))}
                </p>
                <Composer feed/>
            </div>
            {is_channel.then(|| view! { <OnlineList feed/> })}
        </div>
    }
}
