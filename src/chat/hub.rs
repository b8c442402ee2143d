//! The hub: the one owner of chat state (channels, their histories, who is connected and
//! subscribed) and the place every event is fanned out from.
//!
//! # Invariants
//! All state sits behind one mutex, which is never held across an `.await`.
//! 1. **One order.** A message's sequence number is assigned, the message is stored, appended
//!    to the history and offered to every subscriber while the lock is held, so every member of
//!    a channel receives its messages in sequence order and no two messages share a number.
//! 2. **No gap, no duplicate.** Joining takes the history reply and registers the subscriber
//!    under the same lock, so the live stream starts exactly after the last message of the
//!    reply.
//! 3. **Slow clients are resynced, never silently dropped.** Delivery never waits: a frame that
//!    does not fit in a connection's bounded outbox marks that subscription as behind, and the
//!    connection later receives a catch-up from history (see [`Hub::resync`]).
//!
//! Storage sits behind the [`Store`] trait (the in-memory default keeps nothing beyond the
//! histories here); fan-out to local connections happens in one place, `State::deliver`, which
//! is where a multi-instance backplane would publish and receive.

use super::history::History;
use super::model::{
    ChannelInfo, ChannelKey, ChannelName, ChatError, DisplayName, HistoryPage, Message,
    MessageBody, MessageId,
};
use crate::protocol::{Cursor, ServerEvent};
use bytes::Bytes;
use chrono::Utc;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// An encoded server event, shared by every connection it is sent to (encoded once).
#[derive(Clone, Debug)]
pub struct Frame(Bytes);

impl Frame {
    /// Encodes an event once, to be sent to any number of connections.
    pub fn encode(event: &ServerEvent) -> Frame {
        Frame(Bytes::from(event.encode()))
    }

    /// The JSON text of the event.
    pub fn as_str(&self) -> &str {
        // Frames are only ever made from `String`s, so they are always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The encoded bytes (valid UTF-8 JSON).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// Identifies one live connection inside the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

/// The sending half of a connection's bounded queue of outgoing frames.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Frame>,
    /// Set when a frame did not fit: the connection must call [`Hub::resync`] once its queue
    /// has drained.
    behind: Arc<AtomicBool>,
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames, and the receiver that drains it.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Outbox {
            tx,
            behind: Arc::new(AtomicBool::new(false)),
        };
        (outbox, rx)
    }

    /// True when a frame was refused since the last resync.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Acquire)
    }

    /// Queues a frame without waiting; a full queue marks the connection as behind.
    fn offer(&self, frame: Frame) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.behind.store(true, Ordering::Release);
                false
            }
            // The connection is going away; its cleanup removes it from the hub.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a reply to this connection, waiting for room.
    pub async fn send(&self, event: &ServerEvent) -> bool {
        self.tx.send(Frame::encode(event)).await.is_ok()
    }
}

/// A store failure: the action that needed it did not happen.
#[derive(Debug, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StoreError(pub String);

/// Everything a store holds, as loaded at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The epoch sequence numbers belong to; `None` lets the hub pick a fresh one.
    pub epoch: Option<u64>,
    /// Each channel with its retained messages, oldest first.
    pub channels: Vec<(ChannelInfo, Vec<Message>)>,
}

/// Where the hub keeps what must outlive the process. Called with the hub's lock held, in the
/// order the hub applies changes.
pub trait Store: Send + Sync + 'static {
    /// Reads everything back at start-up.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Records a new channel.
    fn put_channel(&self, channel: &ChannelInfo) -> Result<(), StoreError>;
    /// Records a new message; the store keeps the same most-recent window as the history.
    fn put_message(&self, message: &Message) -> Result<(), StoreError>;
}

/// The in-memory mode: nothing is written anywhere, everything is lost on restart, and each
/// start has a new epoch.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }
    fn put_channel(&self, _: &ChannelInfo) -> Result<(), StoreError> {
        Ok(())
    }
    fn put_message(&self, _: &Message) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Tunables the hub enforces.
#[derive(Clone, Debug)]
pub struct HubLimits {
    /// Longest message body, in characters.
    pub max_message_chars: usize,
    /// Messages each channel keeps.
    pub history: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            max_message_chars: super::model::DEFAULT_MAX_MESSAGE_CHARS,
            history: super::model::HISTORY_LIMIT,
        }
    }
}

/// A cheap-to-clone handle to the chat state.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    /// All mutable chat state; see the module's invariants.
    state: Mutex<State>,
    /// Durable copy of channels and messages.
    store: Arc<dyn Store>,
    /// What the hub enforces.
    limits: HubLimits,
    /// Identifies this run's sequence numbers; clients holding another epoch get a snapshot.
    epoch: u64,
}

struct State {
    channels: HashMap<ChannelKey, Channel>,
    connections: HashMap<ConnId, ConnEntry>,
    next_conn: u64,
    next_message_id: u64,
}

struct Channel {
    info: ChannelInfo,
    history: History,
    /// The number the next message gets.
    next_seq: u64,
    /// Connections subscribed to the live stream.
    members: HashMap<ConnId, Member>,
}

struct Member {
    outbox: Outbox,
    /// The newest sequence number this member has been sent (or told it holds).
    last_seq: u64,
    /// `None` while live; otherwise what the member needs before it is live again.
    behind: Option<CatchUp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CatchUp {
    /// Everything after `last_seq`.
    After,
    /// A whole new snapshot (its cursor was unusable).
    Reset,
}

struct ConnEntry {
    outbox: Outbox,
    name: Option<DisplayName>,
    channels: HashSet<ChannelKey>,
    /// A channel-list event did not fit in the outbox.
    missed_channel_list: bool,
}

impl Hub {
    /// A hub with in-memory storage and default limits, holding one channel, "general".
    pub fn in_memory() -> Hub {
        // The memory store cannot fail to load.
        Hub::open(Arc::new(MemoryStore), HubLimits::default())
            .unwrap_or_else(|_| unreachable!("the memory store never fails"))
    }

    /// Loads the hub's state from a store. A store with no channels gets "general".
    pub fn open(store: Arc<dyn Store>, limits: HubLimits) -> Result<Hub, StoreError> {
        let loaded = store.load()?;
        let epoch = loaded
            .epoch
            .unwrap_or_else(|| Utc::now().timestamp_millis().max(1) as u64);
        let mut state = State {
            channels: HashMap::new(),
            connections: HashMap::new(),
            next_conn: 1,
            next_message_id: 1,
        };
        for (info, messages) in loaded.channels {
            let mut history = History::with_capacity(limits.history);
            let mut next_seq = 1;
            for message in messages {
                next_seq = message.seq + 1;
                state.next_message_id = state.next_message_id.max(message.id.0 + 1);
                history.push(message);
            }
            state.channels.insert(
                info.name.key(),
                Channel {
                    info,
                    history,
                    next_seq,
                    members: HashMap::new(),
                },
            );
        }
        let hub = Hub {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                store,
                limits,
                epoch,
            }),
        };
        if hub.lock().channels.is_empty() {
            let general = ChannelName::parse("general").map_err(|e| StoreError(e.to_string()))?;
            hub.create(general).map_err(|e| StoreError(e.to_string()))?;
        }
        Ok(hub)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than stopping the whole chat, so keep serving.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The epoch sequence numbers belong to.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// The limits this hub enforces.
    pub fn limits(&self) -> &HubLimits {
        &self.shared.limits
    }

    /// Every channel, sorted by name without regard to case.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.lock().channel_list()
    }

    /// Creates a channel from a name a user typed and tells every connection about it.
    pub fn create_channel(&self, raw_name: &str) -> Result<ChannelInfo, ChatError> {
        let name = ChannelName::parse(raw_name)?;
        self.create(name)
    }

    fn create(&self, name: ChannelName) -> Result<ChannelInfo, ChatError> {
        let mut state = self.lock();
        let key = name.key();
        if let Some(existing) = state.channels.get(&key) {
            return Err(ChatError::ChannelExists(existing.info.name.to_string()));
        }
        let info = ChannelInfo {
            name,
            created_at: Utc::now(),
        };
        self.shared.store.put_channel(&info).map_err(|e| {
            tracing::error!(error = %e, "could not store a new channel");
            ChatError::Unavailable("the channel could not be saved".into())
        })?;
        state.channels.insert(
            key,
            Channel {
                info: info.clone(),
                history: History::with_capacity(self.shared.limits.history),
                next_seq: 1,
                members: HashMap::new(),
            },
        );
        let frame = Frame::encode(&ServerEvent::ChannelCreated {
            channel: info.clone(),
        });
        for conn in state.connections.values_mut() {
            if !conn.outbox.offer(frame.clone()) {
                conn.missed_channel_list = true;
            }
        }
        tracing::info!(channel = %info.name, "channel created");
        Ok(info)
    }

    /// A channel's retained history, oldest first.
    pub fn history(&self, raw_name: &str) -> Result<HistoryPage, ChatError> {
        let name = ChannelName::parse(raw_name)?;
        let state = self.lock();
        let channel = state
            .channels
            .get(&name.key())
            .ok_or_else(|| ChatError::NoSuchChannel(name.to_string()))?;
        Ok(HistoryPage {
            channel: channel.info.clone(),
            epoch: self.shared.epoch,
            messages: channel.history.snapshot(),
        })
    }

    /// Registers a new connection and queues its `welcome` event.
    pub fn connect(&self, outbox: Outbox) -> Connection {
        let mut state = self.lock();
        let id = ConnId(state.next_conn);
        state.next_conn += 1;
        let welcome = Frame::encode(&ServerEvent::Welcome {
            epoch: self.shared.epoch,
            channels: state.channel_list(),
        });
        let missed_channel_list = !outbox.offer(welcome);
        state.connections.insert(
            id,
            ConnEntry {
                outbox: outbox.clone(),
                name: None,
                channels: HashSet::new(),
                missed_channel_list,
            },
        );
        Connection {
            hub: self.clone(),
            id,
        }
    }

    /// Sends a connection that fell behind what it missed: the channel list if a change did
    /// not fit, and for each channel it is behind in, the messages after the last one it got
    /// (or a fresh snapshot if those left the history). Call once its outbox has room.
    pub fn resync(&self, id: ConnId) {
        let mut state = self.lock();
        let epoch = self.shared.epoch;
        let State {
            channels,
            connections,
            ..
        } = &mut *state;
        let Some(conn) = connections.get_mut(&id) else {
            return;
        };
        conn.outbox.behind.store(false, Ordering::Release);
        if conn.missed_channel_list {
            let mut list: Vec<ChannelInfo> = channels.values().map(|c| c.info.clone()).collect();
            sort_channels(&mut list);
            let frame = Frame::encode(&ServerEvent::Welcome {
                epoch,
                channels: list,
            });
            conn.missed_channel_list = !conn.outbox.offer(frame);
        }
        for key in &conn.channels {
            let Some(channel) = channels.get_mut(key) else {
                continue;
            };
            let Some((catch_up, last_seq)) = channel
                .members
                .get(&id)
                .and_then(|m| m.behind.map(|b| (b, m.last_seq)))
            else {
                continue;
            };
            let cursor = (catch_up == CatchUp::After).then_some(last_seq);
            let (reset, messages) = channel.reply_after(cursor);
            let frame = Frame::encode(&ServerEvent::Joined {
                channel: channel.info.clone(),
                epoch,
                reset,
                last_seq: channel.next_seq - 1,
                messages,
            });
            let newest = channel.next_seq - 1;
            if let Some(member) = channel.members.get_mut(&id) {
                if member.outbox.offer(frame) {
                    member.behind = None;
                    member.last_seq = newest;
                }
            }
        }
    }
}

impl State {
    fn channel_list(&self) -> Vec<ChannelInfo> {
        let mut list: Vec<ChannelInfo> = self.channels.values().map(|c| c.info.clone()).collect();
        sort_channels(&mut list);
        list
    }
}

fn sort_channels(list: &mut [ChannelInfo]) {
    list.sort_by_key(|c| c.name.key());
}

impl Channel {
    /// What a (re)joining member needs: the messages after `cursor` if the history still has
    /// all of them (`reset` false), else the whole history (`reset` true).
    fn reply_after(&self, cursor: Option<u64>) -> (bool, Vec<Message>) {
        match cursor.and_then(|seq| self.history.since(seq)) {
            Some(missed) => (false, missed),
            None => (true, self.history.snapshot()),
        }
    }

    /// Offers a frame carrying message `seq` to every live member (invariant 1).
    fn deliver(&mut self, seq: u64, frame: &Frame) {
        for member in self.members.values_mut() {
            if member.behind.is_some() {
                continue;
            }
            if member.outbox.offer(frame.clone()) {
                member.last_seq = seq;
            } else {
                member.behind = Some(CatchUp::After);
            }
        }
    }
}

/// One client connection's view of the hub. Dropping it unsubscribes it everywhere.
pub struct Connection {
    hub: Hub,
    id: ConnId,
}

impl Connection {
    /// This connection's identity inside the hub.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Sets the display name this connection posts under.
    pub fn identify(&self, raw_name: &str) -> Result<DisplayName, ChatError> {
        let name = DisplayName::parse(raw_name)?;
        let mut state = self.hub.lock();
        if let Some(conn) = state.connections.get_mut(&self.id) {
            conn.name = Some(name.clone());
        }
        Ok(name)
    }

    /// Subscribes to a channel: queues a `joined` event holding what the client missed since
    /// `since` (or a snapshot), then live messages, with no gap and no duplicate (invariant 2).
    pub fn join(&self, raw_name: &str, since: Option<Cursor>) -> Result<(), ChatError> {
        let name = ChannelName::parse(raw_name)?;
        let key = name.key();
        let epoch = self.hub.shared.epoch;
        let mut state = self.hub.lock();
        let State {
            channels,
            connections,
            ..
        } = &mut *state;
        let conn = connections
            .get_mut(&self.id)
            .ok_or_else(|| ChatError::Unavailable("connection closed".into()))?;
        let channel = channels
            .get_mut(&key)
            .ok_or_else(|| ChatError::NoSuchChannel(name.to_string()))?;
        let cursor = since.filter(|c| c.epoch == epoch).map(|c| c.seq);
        let (reset, messages) = channel.reply_after(cursor);
        let frame = Frame::encode(&ServerEvent::Joined {
            channel: channel.info.clone(),
            epoch,
            reset,
            last_seq: channel.next_seq - 1,
            messages,
        });
        let member = if conn.outbox.offer(frame) {
            Member {
                outbox: conn.outbox.clone(),
                last_seq: channel.next_seq - 1,
                behind: None,
            }
        } else {
            Member {
                outbox: conn.outbox.clone(),
                last_seq: cursor.unwrap_or(0),
                behind: Some(if reset {
                    CatchUp::Reset
                } else {
                    CatchUp::After
                }),
            }
        };
        channel.members.insert(self.id, member);
        conn.channels.insert(key);
        Ok(())
    }

    /// Stops the live stream of a channel. Leaving a channel one is not in does nothing.
    pub fn leave(&self, raw_name: &str) -> Result<(), ChatError> {
        let name = ChannelName::parse(raw_name)?;
        let key = name.key();
        let mut state = self.hub.lock();
        if let Some(channel) = state.channels.get_mut(&key) {
            channel.members.remove(&self.id);
        }
        if let Some(conn) = state.connections.get_mut(&self.id) {
            conn.channels.remove(&key);
        }
        Ok(())
    }

    /// Posts a message under this connection's display name and fans it out (invariant 1).
    pub fn post(&self, raw_channel: &str, raw_body: &str) -> Result<Message, ChatError> {
        let name = ChannelName::parse(raw_channel)?;
        let body = MessageBody::parse(raw_body, self.hub.shared.limits.max_message_chars)?;
        let mut state = self.hub.lock();
        let author = state
            .connections
            .get(&self.id)
            .and_then(|c| c.name.clone())
            .ok_or(ChatError::NotIdentified)?;
        let id = MessageId(state.next_message_id);
        let channel = state
            .channels
            .get_mut(&name.key())
            .ok_or_else(|| ChatError::NoSuchChannel(name.to_string()))?;
        let message = Message {
            id,
            channel: channel.info.name.clone(),
            seq: channel.next_seq,
            author,
            body,
            sent_at: Utc::now(),
        };
        self.hub.shared.store.put_message(&message).map_err(|e| {
            tracing::error!(error = %e, "could not store a message");
            ChatError::Unavailable("the message could not be saved".into())
        })?;
        channel.next_seq += 1;
        channel.history.push(message.clone());
        let frame = Frame::encode(&ServerEvent::Message {
            message: message.clone(),
        });
        channel.deliver(message.seq, &frame);
        state.next_message_id += 1;
        Ok(message)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(conn) = state.connections.remove(&self.id) {
            for key in conn.channels {
                if let Some(channel) = state.channels.get_mut(&key) {
                    channel.members.remove(&self.id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut mpsc::Receiver<Frame>) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            events.push(ServerEvent::decode(frame.as_str()).expect("valid event"));
        }
        events
    }

    fn seqs(events: &[ServerEvent]) -> Vec<u64> {
        let mut out = Vec::new();
        for event in events {
            match event {
                ServerEvent::Joined { messages, .. } => out.extend(messages.iter().map(|m| m.seq)),
                ServerEvent::Message { message } => out.push(message.seq),
                _ => {}
            }
        }
        out
    }

    fn identified(hub: &Hub, name: &str, capacity: usize) -> (Connection, mpsc::Receiver<Frame>) {
        let (outbox, rx) = Outbox::new(capacity);
        let conn = hub.connect(outbox);
        conn.identify(name).unwrap();
        (conn, rx)
    }

    /// A new hub has "general", and channel names conflict without regard to case or spaces.
    #[test]
    fn channel_names_never_conflict() {
        let hub = Hub::in_memory();
        assert_eq!(hub.channels().len(), 1);
        hub.create_channel("Random").unwrap();
        assert_eq!(
            hub.create_channel("  random "),
            Err(ChatError::ChannelExists("Random".into()))
        );
        assert_eq!(hub.create_channel(""), Err(ChatError::ChannelNameEmpty));
        let names: Vec<String> = hub.channels().iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["general", "Random"]);
    }

    /// Every connection hears about a new channel.
    #[test]
    fn channel_creation_is_broadcast() {
        let hub = Hub::in_memory();
        let (_a, mut rx) = identified(&hub, "a", 16);
        drain(&mut rx);
        hub.create_channel("news").unwrap();
        let events = drain(&mut rx);
        assert!(
            matches!(&events[..], [ServerEvent::ChannelCreated { channel }] if channel.name.as_str() == "news")
        );
    }

    /// The history keeps the last 100 messages, with consecutive sequence numbers.
    #[test]
    fn history_keeps_the_last_hundred() {
        let hub = Hub::in_memory();
        let (a, _rx) = identified(&hub, "a", 1024);
        for i in 1..=150 {
            a.post("general", &format!("m{i}")).unwrap();
        }
        let page = hub.history("GENERAL").unwrap();
        assert_eq!(page.messages.len(), 100);
        assert_eq!(page.messages[0].body.as_str(), "m51");
        assert_eq!(page.messages[99].seq, 150);
    }

    /// Joining while others post yields the history and then the live stream with no gap and
    /// no duplicate, whatever point the join happens at.
    #[test]
    fn join_has_no_gap_and_no_duplicate() {
        let hub = Hub::in_memory();
        let (poster, _prx) = identified(&hub, "poster", 4096);
        let mut receivers = Vec::new();
        for i in 1..=30u64 {
            poster.post("general", &format!("m{i}")).unwrap();
            if i % 7 == 0 {
                let (conn, rx) = identified(&hub, &format!("r{i}"), 4096);
                conn.join("general", None).unwrap();
                receivers.push((conn, rx));
            }
        }
        for (_conn, rx) in &mut receivers {
            let got = seqs(&drain(rx));
            assert_eq!(got, (1..=30).collect::<Vec<_>>());
        }
    }

    /// Rejoining with a cursor sends exactly the missed messages; a cursor from another epoch
    /// or one that fell out of the window gets a reset snapshot.
    #[test]
    fn rejoin_sends_only_what_was_missed() {
        let hub = Hub::in_memory();
        let (poster, _prx) = identified(&hub, "poster", 4096);
        for i in 1..=10 {
            poster.post("general", &format!("m{i}")).unwrap();
        }
        let (conn, mut rx) = identified(&hub, "reader", 4096);
        drain(&mut rx);
        let epoch = hub.epoch();
        conn.join("general", Some(Cursor { epoch, seq: 7 }))
            .unwrap();
        let events = drain(&mut rx);
        assert!(matches!(
            &events[..],
            [ServerEvent::Joined { reset: false, .. }]
        ));
        assert_eq!(seqs(&events), vec![8, 9, 10]);

        conn.join(
            "general",
            Some(Cursor {
                epoch: epoch + 1,
                seq: 7,
            }),
        )
        .unwrap();
        let events = drain(&mut rx);
        assert!(matches!(
            &events[..],
            [ServerEvent::Joined { reset: true, .. }]
        ));
        assert_eq!(seqs(&events), (1..=10).collect::<Vec<_>>());
    }

    /// All members of a channel see its messages in one order, even with several posters on
    /// several threads.
    #[test]
    fn all_members_see_one_order() {
        let hub = Hub::in_memory();
        let mut readers = Vec::new();
        for i in 0..3 {
            let (conn, rx) = identified(&hub, &format!("reader{i}"), 4096);
            conn.join("general", None).unwrap();
            readers.push((conn, rx));
        }
        std::thread::scope(|scope| {
            for t in 0..4 {
                let hub = hub.clone();
                scope.spawn(move || {
                    let (conn, _rx) = identified(&hub, &format!("poster{t}"), 1);
                    for i in 0..50 {
                        conn.post("general", &format!("t{t} m{i}")).unwrap();
                    }
                });
            }
        });
        let mut orders = Vec::new();
        for (_conn, rx) in &mut readers {
            let events = drain(rx);
            let ids: Vec<(u64, MessageId)> = events
                .iter()
                .filter_map(|e| match e {
                    ServerEvent::Message { message } => Some((message.seq, message.id)),
                    _ => None,
                })
                .collect();
            assert_eq!(ids.len(), 200);
            assert!(
                ids.windows(2).all(|w| w[1].0 == w[0].0 + 1),
                "consecutive seqs"
            );
            orders.push(ids);
        }
        assert_eq!(orders[0], orders[1]);
        assert_eq!(orders[1], orders[2]);
    }

    /// A member whose outbox is full is marked behind instead of blocking others; once it
    /// drains, a resync sends exactly what it missed and it is live again.
    #[test]
    fn slow_member_is_resynced_from_history() {
        let hub = Hub::in_memory();
        let (poster, _prx) = identified(&hub, "poster", 4096);
        let (fast, mut fast_rx) = identified(&hub, "fast", 4096);
        fast.join("general", None).unwrap();
        let (slow, mut slow_rx) = identified(&hub, "slow", 4);
        slow.join("general", None).unwrap();
        for i in 1..=20 {
            poster.post("general", &format!("m{i}")).unwrap();
        }
        assert_eq!(seqs(&drain(&mut fast_rx)), (1..=20).collect::<Vec<_>>());
        let first = drain(&mut slow_rx);
        assert!(slow_rx.try_recv().is_err());
        hub.resync(slow.id());
        poster.post("general", "m21").unwrap();
        let mut all = seqs(&first);
        all.extend(seqs(&drain(&mut slow_rx)));
        assert_eq!(all, (1..=21).collect::<Vec<_>>());
    }

    /// Posting needs a display name, an existing channel and a valid body, and a refused post
    /// changes nothing.
    #[test]
    fn refused_posts_change_nothing() {
        let hub = Hub::in_memory();
        let (outbox, _rx) = Outbox::new(8);
        let anon = hub.connect(outbox);
        assert_eq!(anon.post("general", "hi"), Err(ChatError::NotIdentified));
        anon.identify("ada").unwrap();
        assert_eq!(anon.post("general", "  "), Err(ChatError::MessageEmpty));
        assert!(matches!(
            anon.post("general", &"x".repeat(4001)),
            Err(ChatError::MessageTooLong { max: 4000 })
        ));
        assert_eq!(
            anon.post("nowhere", "hi"),
            Err(ChatError::NoSuchChannel("nowhere".into()))
        );
        assert!(hub.history("general").unwrap().messages.is_empty());
        let ok = anon.post("general", "hi").unwrap();
        assert_eq!(ok.seq, 1);
    }

    /// Dropping a connection removes its subscriptions.
    #[test]
    fn dropped_connections_unsubscribe() {
        let hub = Hub::in_memory();
        let (conn, rx) = identified(&hub, "gone", 8);
        conn.join("general", None).unwrap();
        drop(conn);
        drop(rx);
        let state = hub.lock();
        assert!(state.connections.is_empty());
        assert!(state.channels.values().all(|c| c.members.is_empty()));
    }
}
