//! The sidebar: who you are, the live channel list, and the form that creates a channel.

use super::client::use_chat_client;
use crate::chat::api::{list_channels, CreateChannel};
use crate::chat::model::ChannelName;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

/// The sidebar.
#[component]
pub fn Sidebar() -> impl IntoView {
    let client = use_chat_client();
    let initial = Resource::new(|| (), |_| list_channels());
    view! {
        <aside class="sidebar">
            <header class="sidebar-header">
                <a class="brand" href="/">"Flack"</a>
                <Show when=move || client.name.with(Option::is_some)>
                    <p class="me">
                        "Signed in as " <strong class="me-name">{move || client.name.get().map(|n| n.to_string())}</strong>
                    </p>
                </Show>
            </header>
            <nav aria-label="Channels" class="channel-nav">
                <h2 class="nav-title">"Channels"</h2>
                <Suspense fallback=|| view! { <p class="hint">"Loading channels…"</p> }>
                    {move || Suspend::new(async move {
                        match initial.await {
                            Ok(channels) => client.seed_channels(channels),
                            Err(e) => leptos::logging::warn!("cannot load the channel list: {e}"),
                        }
                        view! { <ChannelLinks/> }
                    })}
                </Suspense>
            </nav>
            <NewChannelForm/>
        </aside>
    }
}

/// One link per channel, kept current by the live connection.
#[component]
fn ChannelLinks() -> impl IntoView {
    let client = use_chat_client();
    view! {
        <ul class="channel-list">
            <For
                each=move || client.channels.get()
                key=|channel| channel.name.key()
                children=move |channel| {
                    // The link marks itself with aria-current="page" when it is the open page.
                    view! {
                        <li>
                            <A href=channel.name.path()>
                                <span class="hash" aria-hidden="true">"# "</span>
                                {channel.name.to_string()}
                            </A>
                        </li>
                    }
                }
            />
        </ul>
    }
}

/// Creates a channel and opens it; shows why a name was refused next to the form.
#[component]
fn NewChannelForm() -> impl IntoView {
    let client = use_chat_client();
    let create = ServerAction::<CreateChannel>::new();
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let navigate = use_navigate();

    Effect::new(move |_| match create.value().get() {
        Some(Ok(channel)) => {
            error.set(None);
            draft.set(String::new());
            let path = channel.name.path();
            client.add_channel(channel);
            navigate(&path, Default::default());
        }
        Some(Err(e)) => error.set(Some(e.to_string())),
        None => {}
    });

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let raw = draft.get_untracked();
        // Refuse what the server would refuse without a round trip; it checks again anyway.
        match ChannelName::parse(&raw) {
            Ok(_) => {
                error.set(None);
                create.dispatch(CreateChannel { name: raw });
            }
            Err(e) => error.set(Some(e.to_string())),
        }
    };

    view! {
        <form class="new-channel" on:submit=on_submit>
            <label for="new-channel-name">"Channel name"</label>
            <div class="row">
                <input
                    id="new-channel-name"
                    type="text"
                    autocomplete="off"
                    placeholder="e.g. design"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                />
                <button type="submit" disabled=move || create.pending().get()>"Create channel"</button>
            </div>
            <p class="form-error" role="alert">{move || error.get()}</p>
        </form>
    }
}
