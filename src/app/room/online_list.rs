//! Who is in a channel now, each with a button to message them privately.

use crate::app::client::{more_online, use_chat_client, ChatClient, Feed};
use crate::app::nav::{direct_path, use_location, Location};
use crate::chat::model::UserInfo;
use leptos::prelude::*;

/// Who is in the channel now; everyone but oneself gets a button to message them privately.
#[component]
pub fn OnlineList(feed: Feed) -> impl IntoView {
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
    // The list shows the first names only; the server counts the rest.
    let more = move || more_online(feed.online_count.get(), feed.online.with(Vec::len));
    view! {
        <section class="online" id="online-list" aria-labelledby="online-title">
            <h2 id="online-title" class="nav-title">"Online"</h2>
            <ul aria-label="Online">{entries}</ul>
            <p class="online-more">{more}</p>
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
