//! The browser's chat client: the signals the UI reads (connection state, channels, the open
//! channel's messages, the display name) and, in the browser only, the WebSocket that feeds
//! them and reconnects by itself.
//!
//! On the server the same type exists with the same signals, so components render identically
//! on both sides; only the socket and local storage are browser-only.

use crate::chat::model::{
    ChannelInfo, ChannelName, ChatError, DisplayName, HistoryPage, Message, MessageBody,
    DEFAULT_MAX_MESSAGE_CHARS, HISTORY_LIMIT,
};
use crate::protocol::{ClientEvent, Cursor, ServerEvent};
use leptos::prelude::*;

/// The state of the live connection, as shown to the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnStatus {
    /// Opening the first connection (also what the server renders).
    Connecting,
    /// Live.
    Connected,
    /// The connection dropped; a new one is being opened.
    Reconnecting,
}

impl ConnStatus {
    /// The words shown to the user.
    pub fn label(self) -> &'static str {
        match self {
            ConnStatus::Connecting => "Connecting…",
            ConnStatus::Connected => "Connected",
            ConnStatus::Reconnecting => "Reconnecting…",
        }
    }

    /// A stable name for styling and tests.
    pub fn key(self) -> &'static str {
        match self {
            ConnStatus::Connecting => "connecting",
            ConnStatus::Connected => "connected",
            ConnStatus::Reconnecting => "reconnecting",
        }
    }
}

/// The open channel's live state. Its signals belong to the channel view that created it, so
/// they are disposed with that view; the client only ever updates them with `try_` methods.
#[derive(Clone, Copy)]
pub struct Feed {
    /// The channel shown.
    pub channel: StoredValue<ChannelName>,
    /// Its messages, oldest first, at most [`HISTORY_LIMIT`].
    pub messages: RwSignal<Vec<Message>>,
    /// The latest error the server reported for something done here.
    pub error: RwSignal<Option<String>>,
    /// The server epoch `messages` belong to.
    epoch: StoredValue<u64>,
    /// The highest sequence number received for the channel.
    cursor: StoredValue<u64>,
}

impl Feed {
    fn is_for(&self, name: &ChannelName) -> bool {
        self.channel.try_with_value(|c| c == name).unwrap_or(false)
    }
}

/// The chat client, shared with every component through context. Copy: all fields are
/// reactive or arena handles.
#[derive(Clone, Copy)]
pub struct ChatClient {
    /// Connection state.
    pub status: RwSignal<ConnStatus>,
    /// The display name, once known.
    pub name: RwSignal<Option<DisplayName>>,
    /// True once the browser's stored name and channel have been read (never on the server).
    pub storage_ready: RwSignal<bool>,
    /// True once the app has hydrated (never on the server); times switch to local time then.
    pub hydrated: RwSignal<bool>,
    /// Every channel, sorted by name.
    pub channels: RwSignal<Vec<ChannelInfo>>,
    /// The open channel, if any. Not reactive: views get their feed from
    /// [`ChatClient::open_channel`].
    feed: StoredValue<Option<Feed>>,
    #[cfg(feature = "hydrate")]
    socket: StoredValue<Option<browser::Live>, LocalStorage>,
    #[cfg(feature = "hydrate")]
    attempts: StoredValue<u32>,
}

/// Provides a new client to the component tree and returns it.
pub fn provide_chat_client() -> ChatClient {
    let client = ChatClient {
        status: RwSignal::new(ConnStatus::Connecting),
        name: RwSignal::new(None),
        storage_ready: RwSignal::new(false),
        hydrated: RwSignal::new(false),
        channels: RwSignal::new(Vec::new()),
        feed: StoredValue::new(None),
        #[cfg(feature = "hydrate")]
        socket: StoredValue::new_local(None),
        #[cfg(feature = "hydrate")]
        attempts: StoredValue::new(0),
    };
    provide_context(client);
    client
}

/// The client provided by [`provide_chat_client`].
pub fn use_chat_client() -> ChatClient {
    expect_context::<ChatClient>()
}

impl ChatClient {
    /// True when the user must choose a display name before doing anything else.
    pub fn needs_name(&self) -> bool {
        self.storage_ready.get() && self.name.with(Option::is_none)
    }

    /// Replaces the channel list with one fetched from the server.
    pub fn seed_channels(&self, channels: Vec<ChannelInfo>) {
        self.channels.set(channels);
    }

    /// Adds a channel to the list unless it is already there, keeping the list sorted.
    pub fn add_channel(&self, channel: ChannelInfo) {
        self.channels.update(|list| insert_channel(list, channel));
    }

    /// Makes a channel's history the open feed and subscribes to its live messages from where
    /// the history ends. Call from the view that shows it: the feed's signals belong to it.
    pub fn open_channel(&self, page: HistoryPage) -> Feed {
        let name = page.channel.name.clone();
        let cursor = page.messages.last().map_or(0, |m| m.seq);
        let feed = Feed {
            channel: StoredValue::new(name.clone()),
            messages: RwSignal::new(page.messages),
            error: RwSignal::new(None),
            epoch: StoredValue::new(page.epoch),
            cursor: StoredValue::new(cursor),
        };
        let previous = self.current();
        self.feed.set_value(Some(feed));
        if let Some(previous) = previous.filter(|p| *p != name) {
            self.send_event(&ClientEvent::Leave {
                channel: previous.to_string(),
            });
        }
        self.join_current();
        #[cfg(feature = "hydrate")]
        browser::remember_channel(&name);
        feed
    }

    /// The open channel's name.
    pub fn current(&self) -> Option<ChannelName> {
        self.feed
            .with_value(|f| f.and_then(|f| f.channel.try_get_value()))
    }

    /// Sets and remembers the display name.
    pub fn set_name(&self, raw: &str) -> Result<(), ChatError> {
        let name = DisplayName::parse(raw)?;
        #[cfg(feature = "hydrate")]
        browser::remember_name(&name);
        self.send_event(&ClientEvent::Identify {
            name: name.to_string(),
        });
        self.name.set(Some(name));
        Ok(())
    }

    /// Sends a message to the open channel. Refused locally, with the reason, when it is empty
    /// or too long, or when there is no live connection to send it on.
    pub fn send_message(&self, raw: &str) -> Result<(), String> {
        let body = MessageBody::parse(raw, DEFAULT_MAX_MESSAGE_CHARS).map_err(|e| e.to_string())?;
        let Some(channel) = self.current() else {
            return Err("Open a channel first.".into());
        };
        if self.name.with_untracked(Option::is_none) {
            return Err(ChatError::NotIdentified.to_string());
        }
        if self.status.get_untracked() != ConnStatus::Connected {
            return Err("Not connected right now; your message was not sent.".into());
        }
        self.send_event(&ClientEvent::Send {
            channel: channel.to_string(),
            body: body.into(),
            client_ref: None,
        });
        Ok(())
    }

    /// Updates the signals from one server event.
    pub fn apply(&self, event: ServerEvent) {
        match event {
            ServerEvent::Welcome { channels, .. } => self.channels.set(channels),
            ServerEvent::ChannelCreated { channel } => self.add_channel(channel),
            ServerEvent::Joined {
                channel,
                epoch,
                reset,
                last_seq,
                messages,
            } => {
                let Some(feed) = self.feed_for(&channel.name) else {
                    return;
                };
                feed.epoch.set_value(epoch);
                feed.cursor.set_value(last_seq);
                if reset {
                    feed.messages.try_set(messages);
                } else {
                    feed.messages
                        .try_update(|held| append_after(held, messages));
                }
            }
            ServerEvent::Message { message } => {
                let Some(feed) = self.feed_for(&message.channel) else {
                    return;
                };
                let cursor = feed.cursor.get_value();
                if message.seq <= cursor {
                    // Already held: a duplicate.
                } else if message.seq == cursor + 1 {
                    feed.cursor.set_value(message.seq);
                    feed.messages
                        .try_update(|held| append_after(held, vec![message]));
                } else {
                    // A gap: ask again from what is held.
                    self.join_current();
                }
            }
            ServerEvent::Identified { .. } | ServerEvent::Ack { .. } => {}
            ServerEvent::Error { message, .. } => {
                if let Some(feed) = self.feed.get_value() {
                    feed.error.try_set(Some(message));
                }
            }
        }
    }

    fn feed_for(&self, name: &ChannelName) -> Option<Feed> {
        self.feed.get_value().filter(|f| f.is_for(name))
    }

    /// Subscribes to the open channel from the last message received.
    fn join_current(&self) {
        let Some(feed) = self.feed.get_value() else {
            return;
        };
        let (Some(channel), Some(epoch), Some(seq)) = (
            feed.channel.try_get_value(),
            feed.epoch.try_get_value(),
            feed.cursor.try_get_value(),
        ) else {
            return;
        };
        self.send_event(&ClientEvent::Join {
            channel: channel.to_string(),
            since: Some(Cursor { epoch, seq }),
        });
    }

    /// Sends an event if the socket is open; otherwise it is dropped (what it asks for is
    /// sent again when the connection opens).
    fn send_event(&self, _event: &ClientEvent) {
        #[cfg(feature = "hydrate")]
        self.socket.with_value(|live| {
            if let Some(live) = live {
                live.send(_event);
            }
        });
    }

    /// Starts the client in the browser: reads the stored name, opens the socket.
    pub fn start(&self) {
        #[cfg(feature = "hydrate")]
        {
            self.hydrated.set(true);
            if let Some(name) = browser::stored_name() {
                self.name.set(Some(name));
            }
            self.storage_ready.set(true);
            browser::connect(*self);
        }
    }
}

/// Inserts a channel into a sorted list unless a channel with the same name is there.
fn insert_channel(list: &mut Vec<ChannelInfo>, channel: ChannelInfo) {
    let key = channel.name.key();
    if let Err(at) = list.binary_search_by(|c| c.name.key().cmp(&key)) {
        list.insert(at, channel);
    }
}

/// Appends the messages newer than the last one held, keeping at most [`HISTORY_LIMIT`].
fn append_after(held: &mut Vec<Message>, incoming: Vec<Message>) {
    let last = held.last().map_or(0, |m| m.seq);
    held.extend(incoming.into_iter().filter(|m| m.seq > last));
    if held.len() > HISTORY_LIMIT {
        held.drain(..held.len() - HISTORY_LIMIT);
    }
}

/// Browser-only parts: local storage and the WebSocket.
#[cfg(feature = "hydrate")]
pub mod browser {
    use super::{ChatClient, ConnStatus};
    use crate::chat::model::{ChannelName, DisplayName};
    use crate::protocol::{ClientEvent, ServerEvent, WS_PATH};
    use gloo_storage::{LocalStorage, Storage};
    use leptos::prelude::*;
    use std::time::Duration;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::{JsCast, JsValue};
    use web_sys::{MessageEvent, WebSocket};

    const NAME_KEY: &str = "flack.name";
    const CHANNEL_KEY: &str = "flack.channel";

    /// The stored display name, if a valid one is stored.
    pub fn stored_name() -> Option<DisplayName> {
        let raw: String = LocalStorage::get(NAME_KEY).ok()?;
        DisplayName::parse(&raw).ok()
    }

    /// Stores the display name.
    pub fn remember_name(name: &DisplayName) {
        if let Err(e) = LocalStorage::set(NAME_KEY, name.as_str()) {
            leptos::logging::warn!("cannot store the display name: {e}");
        }
    }

    /// The last channel the user was in, if a valid one is stored.
    pub fn stored_channel() -> Option<ChannelName> {
        let raw: String = LocalStorage::get(CHANNEL_KEY).ok()?;
        ChannelName::parse(&raw).ok()
    }

    /// Stores the channel the user is in.
    pub fn remember_channel(name: &ChannelName) {
        if let Err(e) = LocalStorage::set(CHANNEL_KEY, name.as_str()) {
            leptos::logging::warn!("cannot store the channel: {e}");
        }
    }

    /// An open socket and the callbacks it holds (dropped together).
    pub struct Live {
        ws: WebSocket,
        _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    }

    impl Live {
        /// Sends an event if the socket is open.
        pub fn send(&self, event: &ClientEvent) {
            if self.ws.ready_state() == WebSocket::OPEN {
                if let Err(e) = self.ws.send_with_str(&event.encode()) {
                    leptos::logging::warn!("send failed: {e:?}");
                }
            }
        }
    }

    fn socket_url() -> Option<String> {
        let location = window().location();
        let scheme = if location.protocol().ok()? == "https:" {
            "wss"
        } else {
            "ws"
        };
        Some(format!("{scheme}://{}{WS_PATH}", location.host().ok()?))
    }

    /// Opens the socket and wires its events to the client; reconnects after it drops.
    pub fn connect(client: ChatClient) {
        let Some(url) = socket_url() else { return };
        let ws = match WebSocket::new(&url) {
            Ok(ws) => ws,
            Err(e) => {
                leptos::logging::warn!("cannot open {url}: {e:?}");
                schedule_reconnect(client);
                return;
            }
        };
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            client.attempts.set_value(0);
            client.status.set(ConnStatus::Connected);
            if let Some(name) = client.name.get_untracked() {
                client.send_event(&ClientEvent::Identify {
                    name: name.to_string(),
                });
            }
            client.join_current();
        });
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let event: MessageEvent = event.unchecked_into();
            let Some(text) = event.data().as_string() else {
                return;
            };
            match ServerEvent::decode(&text) {
                Ok(event) => client.apply(event),
                Err(e) => leptos::logging::warn!("ignoring an event: {e}"),
            }
        });
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            client.status.set(ConnStatus::Reconnecting);
            schedule_reconnect(client);
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        client.socket.set_value(Some(Live {
            ws,
            _handlers: vec![on_open, on_message, on_close],
        }));
    }

    /// Reconnects after a delay that grows with each failed attempt (0.25 s up to 5 s).
    fn schedule_reconnect(client: ChatClient) {
        let attempt = client.attempts.get_value();
        client.attempts.set_value(attempt.saturating_add(1));
        let delay = Duration::from_millis((250u64 << attempt.min(5)).min(5000));
        set_timeout(
            move || {
                // Dropping the old socket's callbacks here, outside them, is safe.
                client.socket.set_value(None);
                connect(client);
            },
            delay,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::MessageId;
    use chrono::{TimeZone, Utc};

    fn message(seq: u64) -> Message {
        Message {
            id: MessageId(seq),
            channel: ChannelName::parse("c").unwrap(),
            seq,
            author: DisplayName::parse("a").unwrap(),
            body: MessageBody::parse("b", 10).unwrap(),
            sent_at: Utc.timestamp_opt(0, 0).unwrap(),
        }
    }

    /// Catch-up messages the client already holds are not shown twice, and the view keeps at
    /// most 100 messages.
    #[test]
    fn append_skips_duplicates_and_caps() {
        let mut held: Vec<Message> = (1..=3).map(message).collect();
        append_after(&mut held, (2..=5).map(message).collect());
        assert_eq!(
            held.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        append_after(&mut held, (6..=120).map(message).collect());
        assert_eq!(held.len(), HISTORY_LIMIT);
        assert_eq!(held[0].seq, 21);
    }

    /// New channels are inserted in name order, once.
    #[test]
    fn channels_stay_sorted_and_unique() {
        let info = |n: &str| ChannelInfo {
            name: ChannelName::parse(n).unwrap(),
            created_at: Utc.timestamp_opt(0, 0).unwrap(),
        };
        let mut list = vec![info("alpha"), info("gamma")];
        insert_channel(&mut list, info("Beta"));
        insert_channel(&mut list, info("beta"));
        let names: Vec<_> = list.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["alpha", "Beta", "gamma"]);
    }
}
