//! The sidebar: who you are (and renaming), desktop notifications, the live channel list and
//! your private conversations, each in bold with its counts while it has unread messages,
//! message search, and the form that creates a channel.

use super::client::unread::{describe, short_count};
use super::client::{use_chat_client, ChatClient};
use super::drawer::{use_drawer, CloseSidebarButton, SIDEBAR_ID};
use super::nav::{channel_path, direct_path, use_location, Link};
use super::notifications::Notifications;
use super::search::MessageSearch;
use crate::api::{find_people, my_directs, CreateChannel};
use crate::chat::model::{ChannelName, ChatError, DirectKey, Room, UserInfo};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

#[component]
pub fn Sidebar() -> impl IntoView {
    let client = use_chat_client();
    let drawer = use_drawer();
    // The server puts the channel list into the HTML with the page, where hydration finds
    // it; the live connection keeps it current from then on.
    let channels = SharedValue::new(|| {
        #[cfg(feature = "ssr")]
        return crate::api::hub()
            .map(|hub| hub.channels())
            .unwrap_or_default();
        #[cfg(not(feature = "ssr"))]
        Vec::new()
    })
    .into_inner();
    client.seed_channels(channels);
    // Private conversations need the token, which only the browser has.
    Effect::new(move |_| {
        if let Some(token) = client.token() {
            spawn_local(async move {
                match my_directs(token).await {
                    Ok(list) => client.seed_directs(list),
                    Err(e) => leptos::logging::warn!("cannot load conversations: {e}"),
                }
            });
        }
    });
    view! {
        <aside class="sidebar" id=SIDEBAR_ID aria-label="Sidebar" class:open=move || drawer.open.get()>
            <CloseSidebarButton/>
            <header class="sidebar-header">
                <a class="brand" href="/">"Flack"</a>
                <Me/>
                <Notifications/>
            </header>
            <MessageSearch/>
            <nav aria-label="Channels" class="channel-nav">
                <h2 class="nav-title">"Channels"</h2>
                <ChannelLinks/>
            </nav>
            <DirectLinks/>
            <People/>
            <NewChannelForm/>
        </aside>
    }
}

/// The signed-in user's name, and the form that changes it.
#[component]
fn Me() -> impl IntoView {
    let client = use_chat_client();
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    // Closing the form (Escape, Cancel, the new name confirmed) gives the focus back to the
    // button that opened it, once that button is drawn again.
    let opener = NodeRef::<leptos::html::Button>::new();
    let refocus = StoredValue::new(false);
    let close = move || {
        refocus.set_value(true);
        editing.set(false);
    };
    Effect::new(move |_| {
        if let Some(button) = opener.get() {
            if refocus.get_value() {
                refocus.set_value(false);
                let _ = button.focus();
            }
        }
    });
    // Close the form once the server confirms the new name.
    Effect::new(move |previous: Option<Option<String>>| {
        let name = client.me().map(|u| u.name.to_string());
        if previous.is_some_and(|p| p != name) && editing.get_untracked() {
            close();
        }
        name
    });
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match client.rename(&draft.get_untracked()) {
            Ok(()) => local_error.set(None),
            Err(e) => local_error.set(Some(e.to_string())),
        }
    };
    let open = move |_| {
        draft.set(client.me().map(|u| u.name.to_string()).unwrap_or_default());
        local_error.set(None);
        client.name_error.set(None);
        editing.set(true);
    };
    let error = move || local_error.get().or_else(|| client.name_error.get());
    view! {
        <Show when=move || client.session.with(Option::is_some)>
            <p class="me">
                "Signed in as " <strong class="me-name">{move || client.me().map(|u| u.name.to_string())}</strong>
            </p>
            <Show
                when=move || editing.get()
                fallback=move || view! {
                    <button type="button" class="link-button" node_ref=opener on:click=open>"Change display name"</button>
                }
            >
                <form
                    class="rename"
                    on:submit=on_submit
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Escape" {
                            ev.prevent_default();
                            close();
                        }
                    }
                >
                    <label for="rename-input">"Display name"</label>
                    <input
                        id="rename-input"
                        type="text"
                        autocomplete="nickname"
                        prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                    />
                    <div class="row">
                        <button type="submit">"Save name"</button>
                        <button type="button" class="secondary" on:click=move |_| close()>"Cancel"</button>
                    </div>
                    <p class="form-error" role="alert">{error}</p>
                </form>
            </Show>
        </Show>
    }
}

/// One link per channel, kept current by the live connection. (The list is drawn again
/// whole when it changes; see `OnlineList` for why.)
#[component]
fn ChannelLinks() -> impl IntoView {
    let client = use_chat_client();
    // Each link marks itself with aria-current="page" while its channel is open.
    let links = move || {
        client
            .channels
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, channel)| {
                let room = Signal::stored(Some(Room::Channel(channel.name.clone())));
                let (unread, described_by, counts) =
                    room_counts(client, room, format!("channel-counts-{i}"));
                view! {
                    <li class:unread=move || unread.get()>
                        <Link href=channel_path(channel.name.as_str()) described_by>
                            <span class="hash" aria-hidden="true">"# "</span>
                            {channel.name.to_string()}
                        </Link>
                        {counts}
                    </li>
                }
            })
            .collect_view()
    };
    view! { <ul class="channel-list">{links}</ul> }
}

/// The user's private conversations, each with its unread count.
#[component]
fn DirectLinks() -> impl IntoView {
    let client = use_chat_client();
    let links = move || {
        client
            .directs
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let peer = entry.peer.id;
                let room = Signal::derive(move || {
                    let me = client.my_id()?;
                    DirectKey::between(me, peer).ok().map(Room::Direct)
                });
                let (unread, described_by, counts) =
                    room_counts(client, room, format!("direct-counts-{i}"));
                view! {
                    <li class="direct" class:unread=move || unread.get()>
                        <Link href=direct_path(entry.peer.id) described_by>{entry.peer.name.to_string()}</Link>
                        {counts}
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <nav aria-label="Direct messages" class="channel-nav">
            <h2 class="nav-title">"Direct messages"</h2>
            <Show when=move || client.directs.with(Vec::is_empty)>
                <p class="hint small">"Message someone from People or the Online list."</p>
            </Show>
            <ul class="channel-list">{links}</ul>
        </nav>
    }
}

/// A room's place in a list: whether it has unread messages (for bold), the id of the
/// element describing its counts while it has any (the link's `aria-describedby`, so the
/// link's name stays the room's), and that element: the counts for the eye ("@2" for
/// mentions, then the unread count) and in words ("2 mentions, 5 unread").
fn room_counts(
    client: ChatClient,
    room: Signal<Option<Room>>,
    id: String,
) -> (Signal<bool>, Signal<Option<String>>, impl IntoView) {
    let entry = Memo::new(move |_| room.get().and_then(|room| client.unread_of(&room)));
    let unread = Signal::derive(move || entry.with(|e| e.as_ref().is_some_and(|e| e.unread > 0)));
    let described_by = {
        let id = id.clone();
        Signal::derive(move || unread.get().then(|| id.clone()))
    };
    let counts = move || {
        let entry = entry.get().filter(|e| e.unread > 0)?;
        let mentions = (entry.mentions > 0).then(|| {
            let shown = format!("@{}", short_count(entry.mentions));
            view! { <span class="mention-count" aria-hidden="true">{shown}</span> }
        });
        Some(view! {
            <span class="counts" id=id.clone()>
                {mentions}
                <span class="unread-count" aria-hidden="true">{short_count(entry.unread)}</span>
                <span class="visually-hidden">{describe(&entry)}</span>
            </span>
        })
    };
    (unread, described_by, counts)
}

/// The people finder: a button that opens a search over everyone registered, each found
/// person with a button that starts (or opens) a private conversation with them. It is in
/// the sidebar, so it is there on every screen size.
#[component]
fn People() -> impl IntoView {
    let client = use_chat_client();
    let location = use_location();
    let open = RwSignal::new(false);
    let query = RwSignal::new(String::new());
    let found = RwSignal::new(Vec::<UserInfo>::new());
    let error = RwSignal::new(None::<String>);
    // Answers can come back out of order: only the latest search's is shown.
    let asked = StoredValue::new(0u64);
    let search = move || {
        let Some(token) = client.token() else {
            error.set(Some(ChatError::NotIdentified.to_string()));
            return;
        };
        let number = asked.get_value() + 1;
        asked.set_value(number);
        let text = query.get_untracked();
        spawn_local(async move {
            let answer = find_people(token, text).await;
            if asked.get_value() != number {
                return;
            }
            match answer {
                Ok(people) => {
                    error.set(None);
                    found.set(people);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let toggle = move |_| {
        let now_open = !open.get_untracked();
        open.set(now_open);
        if now_open {
            search();
        }
    };
    let entries = move || {
        found
            .get()
            .into_iter()
            .map(|person| {
                let name = person.name.to_string();
                let label = format!("Message {name}");
                let path = direct_path(person.id);
                view! {
                    <li>
                        <button
                            type="button"
                            class="link-button person"
                            aria-label=label
                            on:click=move |_| {
                                open.set(false);
                                location.navigate(&path, false);
                            }
                        >
                            {name}
                        </button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <Show when=move || client.session.with(Option::is_some)>
            <section class="people">
                <button
                    type="button"
                    class="secondary people-toggle"
                    aria-expanded=move || open.get().to_string()
                    aria-controls="people-panel"
                    on:click=toggle
                >
                    "People"
                </button>
                <Show when=move || open.get()>
                    <div id="people-panel" class="people-panel">
                        <input
                            type="search"
                            aria-label="Find people"
                            placeholder="Find people"
                            autocomplete="off"
                            prop:value=move || query.get()
                            on:input=move |ev| {
                                query.set(event_target_value(&ev));
                                search();
                            }
                        />
                        <ul aria-label="People">{entries}</ul>
                        <Show when=move || found.with(Vec::is_empty) && error.with(Option::is_none)>
                            <p class="hint small">"Nobody by that name."</p>
                        </Show>
                        <p class="form-error" role="alert">{move || error.get()}</p>
                    </div>
                </Show>
            </section>
        </Show>
    }
}

/// Creates a channel and opens it; shows why a name was refused next to the form.
#[component]
fn NewChannelForm() -> impl IntoView {
    let client = use_chat_client();
    let create = ServerAction::<CreateChannel>::new();
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let location = use_location();

    Effect::new(move |_| match create.value().get() {
        Some(Ok(channel)) => {
            error.set(None);
            draft.set(String::new());
            let path = channel_path(channel.name.as_str());
            client.add_channel(channel);
            location.navigate(&path, false);
        }
        Some(Err(e)) => error.set(Some(e.to_string())),
        None => {}
    });

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let raw = draft.get_untracked();
        let Some(token) = client
            .session
            .with_untracked(|s| s.as_ref().map(|s| s.token.clone()))
        else {
            error.set(Some(ChatError::NotIdentified.to_string()));
            return;
        };
        // Refuse what the server would refuse without a round trip; it checks again anyway.
        match ChannelName::parse(&raw) {
            Ok(_) => {
                error.set(None);
                create.dispatch(CreateChannel { token, name: raw });
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
