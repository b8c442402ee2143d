//! The page of a private conversation ([`Route::Direct`](crate::app::nav::Route::Direct)),
//! loaded in the browser: only the browser holds the token that may read it.

use super::room_view::shown;
use crate::api::direct_history;
use crate::app::client::use_chat_client;
use crate::chat::model::ChatError;
use leptos::prelude::*;
use leptos::task::spawn_local;

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
