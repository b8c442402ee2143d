//! The hub: the one owner of chat state (users, rooms and their histories, who is connected
//! and where) and the place every event is fanned out from.
//!
//! # Invariants
//! All state sits behind one mutex, which is never held across an `.await`.
//! 1. **One order.** A message's sequence number is assigned, the message is handed to the
//!    store, appended to the history and offered to every member while the lock is held, so
//!    every member of a room receives its events in one order, no two messages share a
//!    number, and the store writes them in that order.
//! 2. **No gap, no duplicate.** Joining takes the history reply and registers the member under
//!    the same lock, so the live stream starts exactly after the reply.
//! 3. **Slow clients are resynced, never silently dropped.** Delivery never waits: a frame that
//!    does not fit in a connection's bounded outbox marks that membership as behind, and the
//!    connection later receives a catch-up from history (see [`Hub::resync`]).
//! 4. **Identity comes from tokens.** Every action's author is the user the connection
//!    authenticated as; the hub keeps only SHA-256 hashes of tokens. Display names are unique
//!    without regard to case.
//! 5. **Private means private.** A direct room's messages are offered only to connections of
//!    its two participants, and only they can read its history.
//! 6. **Pages know when they are stale.** Every change a rendered page can show (a channel
//!    created, a message posted or deleted, a user renamed) bumps [`Hub::generation`] before
//!    the lock is released, so a page rendered at one generation is current while it holds.
//! 7. **Acknowledged means stored; the lock never waits for the disk.** Every change is
//!    written behind (delivery never waits for the disk), but whoever asked for it is
//!    answered only once it is on disk ([`Saved::stored`]). A change
//!    that could not be stored stays in memory until the next restart and its requester
//!    gets an error.
//!
//! Storage sits behind the [`Store`] trait (the in-memory default keeps nothing beyond what is
//! here); fan-out to local connections happens in `RoomState::broadcast` and
//! `State::broadcast_all`, which is where a multi-instance backplane would publish and receive.

use super::history::History;
use super::model::{
    Attachment, ChannelInfo, ChannelName, ChatError, DirectKey, DirectSummary, DisplayName, FileId,
    HistoryPage, Message, MessageBody, MessageId, Room, RoomKey, Session, Timestamp, UserId,
    UserInfo,
};
use super::rate::TokenBucket;
pub use super::store::{Durable, Loaded, MemoryStore, Store, StoreError, StoredRoom, TokenHash};
use crate::protocol::{Cursor, ServerEvent};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
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

/// Tunables the hub enforces.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Longest message body, in characters.
    pub max_message_chars: usize,
    /// Messages each room keeps.
    pub history: usize,
    /// Where uploaded files are kept; the hub deletes a message's file when the message is
    /// deleted or leaves the history.
    pub files_dir: Option<std::path::PathBuf>,
    /// Messages a user may post per second, on average.
    pub messages_per_second: u32,
    /// Messages a user may post at once.
    pub message_burst: u32,
    /// Channels a user may create per minute.
    pub channels_per_minute: u32,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            max_message_chars: super::model::DEFAULT_MAX_MESSAGE_CHARS,
            history: super::model::HISTORY_LIMIT,
            files_dir: None,
            messages_per_second: 10,
            message_burst: 20,
            channels_per_minute: 5,
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
    /// Durable copy of users, channels and messages.
    store: Arc<dyn Store>,
    /// What the hub enforces.
    limits: HubSettings,
    /// Identifies this history's sequence numbers; clients holding another epoch get a
    /// snapshot.
    epoch: u64,
    /// Counts changes that pages show (invariant 6).
    generation: AtomicU64,
}

#[derive(Default)]
struct State {
    rooms: HashMap<RoomKey, RoomState>,
    users: HashMap<UserId, UserEntry>,
    user_by_token: HashMap<TokenHash, UserId>,
    /// Case-folded display name to user: names are unique.
    user_by_name: HashMap<String, UserId>,
    connections: HashMap<ConnId, ConnEntry>,
    /// Uploaded files, attached to a message or waiting to be.
    files: HashMap<FileId, FileEntry>,
    next_conn: u64,
    next_message_id: u64,
    next_user_id: u64,
}

struct RoomState {
    room: Room,
    /// Set for channels.
    channel: Option<ChannelInfo>,
    history: History,
    /// The number the next message gets.
    next_seq: u64,
    /// Connections receiving the live stream.
    members: HashMap<ConnId, Member>,
}

struct Member {
    outbox: Outbox,
    /// Who the connection is, if it authenticated.
    user: Option<UserId>,
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

struct UserEntry {
    info: UserInfo,
    /// Live connections authenticated as this user.
    conns: HashSet<ConnId>,
    /// How fast this user may post, across all their connections.
    messages: TokenBucket,
    /// How fast this user may create channels.
    channels: TokenBucket,
}

impl UserEntry {
    fn new(info: UserInfo, limits: &HubSettings) -> UserEntry {
        let now = Instant::now();
        UserEntry {
            info,
            conns: HashSet::new(),
            messages: TokenBucket::new(
                limits.messages_per_second,
                Duration::from_secs(1),
                limits.message_burst,
                now,
            ),
            channels: TokenBucket::new(
                limits.channels_per_minute,
                Duration::from_secs(60),
                limits.channels_per_minute,
                now,
            ),
        }
    }
}

struct FileEntry {
    attachment: Attachment,
    /// The room it was uploaded for; only that room's readers may download it.
    room: RoomKey,
    owner: UserId,
    /// True once a message carries it.
    attached: bool,
    /// When it was uploaded (or, for files of restored messages, loaded).
    uploaded: Instant,
}

struct ConnEntry {
    outbox: Outbox,
    user: Option<UserId>,
    /// Rooms this connection is a member of.
    rooms: HashSet<RoomKey>,
    /// A channel-list or user event did not fit in the outbox.
    missed_directory: bool,
}

/// Hashes a session token for lookup and storage.
pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A new session token: 256 random bits, hex-encoded.
fn new_token() -> Result<String, ChatError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a session token");
        ChatError::Unavailable("could not create a session".into())
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn name_of(room: &Room) -> String {
    room.channel().map(ToString::to_string).unwrap_or_default()
}

fn store_failed(what: &'static str) -> impl FnOnce(StoreError) -> ChatError {
    move |e| {
        tracing::error!(error = %e, what, "storage failed");
        ChatError::Unavailable(format!("the {what} could not be saved"))
    }
}

impl Hub {
    /// A hub with in-memory storage and default limits, holding one channel, "general".
    pub fn in_memory() -> Hub {
        Hub::open(Arc::new(MemoryStore), HubSettings::default())
            .unwrap_or_else(|_| unreachable!("the memory store never fails"))
    }

    /// Loads the hub's state from a store. A store with no channels gets "general".
    pub fn open(store: Arc<dyn Store>, limits: HubSettings) -> Result<Hub, StoreError> {
        let loaded = store.load()?;
        let epoch = loaded
            .epoch
            .unwrap_or_else(|| Timestamp::now().millis().max(1) as u64);
        let mut state = State {
            next_conn: 1,
            next_message_id: 1,
            next_user_id: 1,
            ..State::default()
        };
        for (info, token_hash) in loaded.users {
            state.next_user_id = state.next_user_id.max(info.id.0 + 1);
            state.user_by_token.insert(token_hash, info.id);
            state.user_by_name.insert(info.name.key(), info.id);
            state.users.insert(info.id, UserEntry::new(info, &limits));
        }
        for stored in loaded.rooms {
            let mut history = History::with_capacity(limits.history);
            for mut message in stored.messages {
                state.next_message_id = state.next_message_id.max(message.id.0 + 1);
                // Names may have changed since the message was stored.
                if let Some(user) = state.users.get(&message.author.id) {
                    message.author = user.info.clone();
                }
                if let Some(attachment) = &message.attachment {
                    state.files.insert(
                        attachment.id.clone(),
                        FileEntry {
                            attachment: attachment.clone(),
                            room: stored.room.key(),
                            owner: message.author.id,
                            attached: true,
                            uploaded: Instant::now(),
                        },
                    );
                }
                history.push(message);
            }
            history.mark_restored(stored.next_seq.saturating_sub(1));
            state.rooms.insert(
                stored.room.key(),
                RoomState {
                    room: stored.room,
                    channel: stored.channel,
                    history,
                    next_seq: stored.next_seq,
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
                generation: AtomicU64::new(0),
            }),
        };
        hub.remove_orphan_files();
        let has_channels = hub.lock().rooms.values().any(|r| r.channel.is_some());
        if !has_channels {
            let general = ChannelName::parse("general").map_err(|e| StoreError(e.to_string()))?;
            // Written behind like any channel; were that to fail, the next start makes it again.
            hub.create(general).map_err(|e| StoreError(e.to_string()))?;
        }
        Ok(hub)
    }

    /// Grows with every change a rendered page could show (invariant 6): a page rendered
    /// after reading generation `g` is current for as long as this still returns `g`.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Records a change pages show; called with the state lock held.
    fn changed(&self) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
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

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    /// Registers a new user under a display name nobody else has (compared without regard to
    /// case) and returns their session token.
    pub fn register(&self, raw_name: &str) -> Result<Saved<Session>, ChatError> {
        let name = DisplayName::parse(raw_name)?;
        let token = new_token()?;
        let token_hash = hash_token(&token);
        let mut state = self.lock();
        if let Some(taken) = state.user_by_name.get(&name.key()) {
            let taken = state.users.get(taken).map(|u| u.info.name.to_string());
            return Err(ChatError::DisplayNameTaken(
                taken.unwrap_or_else(|| name.to_string()),
            ));
        }
        let info = UserInfo {
            id: UserId(state.next_user_id),
            name,
        };
        let durable = self.shared.store.put_user(&info, &token_hash);
        state.next_user_id += 1;
        state.user_by_token.insert(token_hash, info.id);
        state.user_by_name.insert(info.name.key(), info.id);
        state
            .users
            .insert(info.id, UserEntry::new(info.clone(), &self.shared.limits));
        tracing::info!(user = %info.id, "user registered");
        Ok(Saved::new(Session { user: info, token }, durable, "user"))
    }

    /// The user a token belongs to.
    pub fn user_for_token(&self, token: &str) -> Result<UserInfo, ChatError> {
        self.lock().user_by_token(token).map(|u| u.info.clone())
    }

    /// Every channel, sorted by name without regard to case.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.lock().channel_list()
    }

    /// Creates a channel from a name a user typed and tells every connection about it.
    pub fn create_channel(
        &self,
        token: &str,
        raw_name: &str,
    ) -> Result<Saved<ChannelInfo>, ChatError> {
        let name = ChannelName::parse(raw_name)?;
        {
            let mut state = self.lock();
            let id = state.user_by_token(token)?.info.id;
            // A refused name does not use up the user's allowance.
            if let Some(existing) = state.rooms.get(&RoomKey::Channel(name.key())) {
                return Err(ChatError::ChannelExists(name_of(&existing.room)));
            }
            let user = state.users.get_mut(&id).ok_or(ChatError::Unauthorized)?;
            if !user.channels.try_take(Instant::now()) {
                return Err(ChatError::ChannelRateLimited);
            }
        }
        self.create(name)
    }

    fn create(&self, name: ChannelName) -> Result<Saved<ChannelInfo>, ChatError> {
        let mut state = self.lock();
        let key = RoomKey::Channel(name.key());
        if let Some(existing) = state.rooms.get(&key) {
            return Err(ChatError::ChannelExists(name_of(&existing.room)));
        }
        let info = ChannelInfo {
            name: name.clone(),
            created_at: Timestamp::now(),
        };
        let durable = self.shared.store.put_channel(&info);
        state.rooms.insert(
            key,
            RoomState::new(Room::Channel(name), Some(info.clone()), &self.shared.limits),
        );
        state.broadcast_all(&ServerEvent::ChannelCreated {
            channel: info.clone(),
        });
        self.changed();
        tracing::info!(channel = %info.name, "channel created");
        Ok(Saved::new(info, durable, "channel"))
    }

    /// A channel's retained history, oldest first. Channels are public: no token needed.
    pub fn channel_page(&self, raw_name: &str) -> Result<HistoryPage, ChatError> {
        let name = ChannelName::parse(raw_name)?;
        let state = self.lock();
        let room = state
            .rooms
            .get(&RoomKey::Channel(name.key()))
            .ok_or_else(|| ChatError::NoSuchChannel(name.to_string()))?;
        Ok(HistoryPage {
            room: room.room.clone(),
            title: name_of(&room.room),
            peer: None,
            epoch: self.shared.epoch,
            last_seq: room.next_seq - 1,
            messages: room.history.snapshot(),
        })
    }

    /// The private conversation between the token's user and `peer`, for that user only.
    pub fn direct_page(&self, token: &str, peer: UserId) -> Result<HistoryPage, ChatError> {
        let state = self.lock();
        let me = state.user_by_token(token)?.info.id;
        let key = DirectKey::between(me, peer)?;
        let peer = state
            .users
            .get(&peer)
            .ok_or(ChatError::NoSuchUser)?
            .info
            .clone();
        let (last_seq, messages) = match state.rooms.get(&RoomKey::Direct(key)) {
            Some(room) => (room.next_seq - 1, room.history.snapshot()),
            None => (0, Vec::new()),
        };
        Ok(HistoryPage {
            room: Room::Direct(key),
            title: peer.name.to_string(),
            peer: Some(peer),
            epoch: self.shared.epoch,
            last_seq,
            messages,
        })
    }

    /// The private conversations the token's user takes part in, by the other's name.
    pub fn directs(&self, token: &str) -> Result<Vec<DirectSummary>, ChatError> {
        let state = self.lock();
        let me = state.user_by_token(token)?.info.id;
        let mut list: Vec<DirectSummary> = state
            .rooms
            .keys()
            .filter_map(|key| match key {
                RoomKey::Direct(direct) if direct.includes(me) => {
                    let peer = state.users.get(&direct.other(me))?.info.clone();
                    Some(DirectSummary { key: *direct, peer })
                }
                _ => None,
            })
            .collect();
        list.sort_by_key(|d| d.peer.name.key());
        Ok(list)
    }

    /// Records an uploaded file, waiting to be attached by its uploader to a message in
    /// `room` (which the uploader must be able to post in).
    pub fn add_file(
        &self,
        token: &str,
        room: &Room,
        attachment: Attachment,
    ) -> Result<(), ChatError> {
        let mut state = self.lock();
        let owner = state.user_by_token(token)?.info.id;
        state.room_for(room, Some(owner), &self.shared.limits)?;
        state.files.insert(
            attachment.id.clone(),
            FileEntry {
                attachment,
                room: room.key(),
                owner,
                attached: false,
                uploaded: Instant::now(),
            },
        );
        Ok(())
    }

    /// A file, if `token` may read it: files of channels are public, files of private
    /// conversations are for their two participants only.
    pub fn file_for(&self, id: &FileId, token: Option<&str>) -> Result<Attachment, ChatError> {
        let state = self.lock();
        let entry = state.files.get(id).ok_or(ChatError::NoSuchFile)?;
        if let RoomKey::Direct(direct) = &entry.room {
            let user = state
                .user_by_token(token.ok_or(ChatError::Unauthorized)?)?
                .info
                .id;
            if !direct.includes(user) {
                return Err(ChatError::Forbidden);
            }
        }
        Ok(entry.attachment.clone())
    }

    /// Forgets and deletes files uploaded more than `age` ago that no message carries (the
    /// upload was never sent); returns how many. The server calls this now and then.
    pub fn sweep_unsent_files(&self, age: Duration) -> usize {
        let unsent: Vec<FileId> = {
            let mut state = self.lock();
            let stale: Vec<FileId> = state
                .files
                .iter()
                .filter(|(_, f)| !f.attached && f.uploaded.elapsed() >= age)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &stale {
                state.files.remove(id);
            }
            stale
        };
        let count = unsent.len();
        if count > 0 {
            tracing::info!(count, "deleting uploads that were never sent");
        }
        self.remove_files(unsent);
        count
    }

    /// Deletes files in the files directory that no restored message carries: uploads never
    /// sent before a restart, or files of messages the store no longer holds.
    fn remove_orphan_files(&self) {
        let Some(dir) = &self.shared.limits.files_dir else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let orphans: Vec<FileId> = {
            let state = self.lock();
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter_map(|name| FileId::parse(&name).ok())
                .filter(|id| !state.files.contains_key(id))
                .collect()
        };
        if !orphans.is_empty() {
            tracing::info!(count = orphans.len(), "deleting files no message carries");
        }
        self.remove_files(orphans);
    }

    /// Deletes files from disk, after the lock is released.
    fn remove_files(&self, ids: Vec<FileId>) {
        let Some(dir) = &self.shared.limits.files_dir else {
            return;
        };
        for id in ids {
            if let Err(e) = std::fs::remove_file(dir.join(id.as_str())) {
                tracing::warn!(error = %e, file = id.as_str(), "could not delete a file");
            }
        }
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
        let missed_directory = !outbox.offer(welcome);
        state.connections.insert(
            id,
            ConnEntry {
                outbox,
                user: None,
                rooms: HashSet::new(),
                missed_directory,
            },
        );
        Connection {
            hub: self.clone(),
            id,
        }
    }

    /// Sends a connection that fell behind what it missed: the channel list if a change did
    /// not fit, and for each room it is behind in, the messages after the last one it got
    /// (or a fresh snapshot). Call once its outbox has room.
    pub fn resync(&self, id: ConnId) {
        let mut state = self.lock();
        let epoch = self.shared.epoch;
        let State {
            rooms,
            connections,
            users,
            ..
        } = &mut *state;
        let Some(conn) = connections.get_mut(&id) else {
            return;
        };
        conn.outbox.behind.store(false, Ordering::Release);
        // A missed `user_renamed` may have left old names on messages the client holds: every
        // room of the connection is then sent whole, with the names as they are now.
        let names_changed = conn.missed_directory;
        if names_changed {
            let frame = Frame::encode(&ServerEvent::Welcome {
                epoch,
                channels: channel_list(rooms),
            });
            conn.missed_directory = !conn.outbox.offer(frame);
        }
        for key in &conn.rooms {
            let Some(room) = rooms.get_mut(key) else {
                continue;
            };
            let Some(member) = room.members.get(&id) else {
                continue;
            };
            let catch_up = if names_changed {
                CatchUp::Reset
            } else {
                match member.behind {
                    Some(catch_up) => catch_up,
                    None => continue,
                }
            };
            let cursor = (catch_up == CatchUp::After).then_some(member.last_seq);
            let frame = Frame::encode(&room.joined_event(epoch, cursor, users));
            let newest = room.next_seq - 1;
            if let Some(member) = room.members.get_mut(&id) {
                if member.outbox.offer(frame) {
                    member.behind = None;
                    member.last_seq = newest;
                } else {
                    // Still full: the next resync tries again.
                    member.behind = Some(catch_up);
                }
            }
        }
    }
}

/// Every channel among `rooms`, sorted by name without regard to case.
fn channel_list(rooms: &HashMap<RoomKey, RoomState>) -> Vec<ChannelInfo> {
    let mut list: Vec<ChannelInfo> = rooms.values().filter_map(|r| r.channel.clone()).collect();
    list.sort_by_key(|c| c.name.key());
    list
}

impl State {
    fn channel_list(&self) -> Vec<ChannelInfo> {
        channel_list(&self.rooms)
    }

    fn user_by_token(&self, token: &str) -> Result<&UserEntry, ChatError> {
        self.user_by_token
            .get(&hash_token(token))
            .and_then(|id| self.users.get(id))
            .ok_or(ChatError::Unauthorized)
    }

    /// Offers an event to every connection (channel list and user directory changes).
    fn broadcast_all(&mut self, event: &ServerEvent) {
        let frame = Frame::encode(event);
        for conn in self.connections.values_mut() {
            if !conn.outbox.offer(frame.clone()) {
                conn.missed_directory = true;
            }
        }
    }

    /// The room a connection may use: channels must exist; private conversations are created
    /// on first use, only between existing users, only by a participant.
    fn room_for(
        &mut self,
        room: &Room,
        user: Option<UserId>,
        limits: &HubSettings,
    ) -> Result<&mut RoomState, ChatError> {
        let key = room.key();
        if let Room::Direct(direct) = room {
            let me = user.ok_or(ChatError::NotIdentified)?;
            if !direct.includes(me) {
                return Err(ChatError::Forbidden);
            }
            let peer = direct.other(me);
            if !self.users.contains_key(&peer) {
                return Err(ChatError::NoSuchUser);
            }
            if !self.rooms.contains_key(&key) {
                let mut state = RoomState::new(room.clone(), None, limits);
                // Every connection of both participants receives the conversation live.
                for user in direct.users() {
                    for conn_id in self
                        .users
                        .get(&user)
                        .map(|u| &u.conns)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(conn) = self.connections.get_mut(conn_id) {
                            conn.rooms.insert(key.clone());
                            state.members.insert(*conn_id, Member::live(conn, 0));
                        }
                    }
                }
                self.rooms.insert(key.clone(), state);
            }
        }
        self.rooms.get_mut(&key).ok_or_else(|| match room {
            Room::Channel(name) => ChatError::NoSuchChannel(name.to_string()),
            Room::Direct(_) => ChatError::NoSuchUser,
        })
    }
}

impl Member {
    fn live(conn: &ConnEntry, last_seq: u64) -> Member {
        Member {
            outbox: conn.outbox.clone(),
            user: conn.user,
            last_seq,
            behind: None,
        }
    }
}

impl RoomState {
    fn new(room: Room, channel: Option<ChannelInfo>, limits: &HubSettings) -> RoomState {
        RoomState {
            room,
            channel,
            history: History::with_capacity(limits.history),
            next_seq: 1,
            members: HashMap::new(),
        }
    }

    /// The `joined` event for a member holding everything up to `cursor` (or nothing).
    fn joined_event(
        &self,
        epoch: u64,
        cursor: Option<u64>,
        users: &HashMap<UserId, UserEntry>,
    ) -> ServerEvent {
        let last_seq = self.next_seq - 1;
        let (reset, messages) = match cursor.and_then(|seq| self.history.since(seq, last_seq)) {
            Some(missed) => (false, missed),
            None => (true, self.history.snapshot()),
        };
        ServerEvent::Joined {
            room: self.room.clone(),
            epoch,
            reset,
            last_seq,
            messages,
            online: self.online(users),
        }
    }

    /// The distinct users with a connection in this channel, sorted by name (empty for a
    /// private conversation, whose members are always its two participants).
    fn online(&self, users: &HashMap<UserId, UserEntry>) -> Vec<UserInfo> {
        if self.channel.is_none() {
            return Vec::new();
        }
        let ids: HashSet<UserId> = self.members.values().filter_map(|m| m.user).collect();
        let mut online: Vec<UserInfo> = ids
            .into_iter()
            .filter_map(|id| users.get(&id).map(|u| u.info.clone()))
            .collect();
        online.sort_by_key(|u| u.name.key());
        online
    }

    /// True when some member connection belongs to `user`.
    fn has_user(&self, user: UserId) -> bool {
        self.members.values().any(|m| m.user == Some(user))
    }

    /// Offers a frame to every live member. With `seq`, it carries that message (invariant 1).
    fn broadcast(&mut self, frame: &Frame, seq: Option<u64>) {
        for member in self.members.values_mut() {
            if member.behind.is_some() {
                continue;
            }
            if member.outbox.offer(frame.clone()) {
                if let Some(seq) = seq {
                    member.last_seq = seq;
                }
            } else {
                member.behind = Some(CatchUp::After);
            }
        }
    }

    /// Tells the channel's members that `user` came or went.
    fn announce_presence(&mut self, user: &UserInfo, online: bool) {
        if self.channel.is_none() {
            return;
        }
        let frame = Frame::encode(&ServerEvent::Presence {
            room: self.room.clone(),
            user: user.clone(),
            online,
        });
        self.broadcast(&frame, None);
    }
}

/// A change the hub has applied and sent out (a message, a registration, a new channel, a
/// new name), with its write to the store possibly still under way (invariant 7). A
/// message delivered but never stored is gone after a restart (see `super::sqlite`).
#[derive(Debug)]
pub struct Saved<T> {
    /// What the hub applied: for a message, the message as it was sent out.
    pub value: T,
    durable: Durable,
    what: &'static str,
}

impl<T> Saved<T> {
    fn new(value: T, durable: Durable, what: &'static str) -> Saved<T> {
        Saved {
            value,
            durable,
            what,
        }
    }

    /// Waits until the change is stored, and gives back what the hub applied: the answer
    /// for whoever asked.
    pub async fn stored(self) -> Result<T, ChatError> {
        self.durable.wait().await.map_err(store_failed(self.what))?;
        Ok(self.value)
    }

    /// [`Saved::stored`] for a thread that may block (never one of the async runtime's).
    pub fn stored_blocking(self) -> Result<T, ChatError> {
        self.durable
            .wait_blocking()
            .map_err(store_failed(self.what))?;
        Ok(self.value)
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

    fn user(&self, state: &State) -> Result<UserId, ChatError> {
        state
            .connections
            .get(&self.id)
            .and_then(|c| c.user)
            .ok_or(ChatError::NotIdentified)
    }

    /// Proves who this connection is. From now on its actions are that user's, and it
    /// receives that user's private conversations live.
    pub fn authenticate(&self, token: &str) -> Result<UserInfo, ChatError> {
        let mut state = self.hub.lock();
        let info = state.user_by_token(token)?.info.clone();
        let conn = state
            .connections
            .get_mut(&self.id)
            .ok_or_else(|| ChatError::Unavailable("connection closed".into()))?;
        if conn.user.is_some_and(|u| u != info.id) {
            return Err(ChatError::Forbidden);
        }
        conn.user = Some(info.id);
        let outbox = conn.outbox.clone();
        if let Some(user) = state.users.get_mut(&info.id) {
            user.conns.insert(self.id);
        }
        let State {
            rooms, connections, ..
        } = &mut *state;
        // Channels joined before authenticating now count this user as online.
        let joined: Vec<RoomKey> = connections
            .get(&self.id)
            .map(|c| c.rooms.iter().cloned().collect())
            .unwrap_or_default();
        for key in joined {
            let Some(room) = rooms.get_mut(&key) else {
                continue;
            };
            let was_present = room.has_user(info.id);
            if let Some(member) = room.members.get_mut(&self.id) {
                member.user = Some(info.id);
            }
            if !was_present {
                room.announce_presence(&info, true);
            }
        }
        for (key, room) in rooms.iter_mut() {
            match key {
                RoomKey::Direct(direct) if direct.includes(info.id) => {
                    if let Some(conn) = connections.get_mut(&self.id) {
                        conn.rooms.insert(key.clone());
                    }
                    room.members.insert(
                        self.id,
                        Member {
                            outbox: outbox.clone(),
                            user: Some(info.id),
                            last_seq: room.next_seq - 1,
                            behind: None,
                        },
                    );
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// Subscribes to a room: queues a `joined` event holding what the client missed since
    /// `since` (or a snapshot), then live events, with no gap and no duplicate (invariant 2).
    pub fn join(&self, room: &Room, since: Option<Cursor>) -> Result<(), ChatError> {
        let epoch = self.hub.shared.epoch;
        let mut state = self.hub.lock();
        let user = state.connections.get(&self.id).and_then(|c| c.user);
        let limits = &self.hub.shared.limits;
        let key = room.key();
        let was_present = {
            let target = state.room_for(room, user, limits)?;
            user.is_some_and(|u| target.has_user(u))
        };
        let State {
            rooms,
            connections,
            users,
            ..
        } = &mut *state;
        let conn = connections
            .get_mut(&self.id)
            .ok_or_else(|| ChatError::Unavailable("connection closed".into()))?;
        let Some(target) = rooms.get_mut(&key) else {
            return Err(ChatError::NoSuchChannel(room.to_string()));
        };
        // Register first, so the `online` list includes the joiner.
        target.members.insert(self.id, Member::live(conn, 0));
        let cursor = since.filter(|c| c.epoch == epoch).map(|c| c.seq);
        let joined = target.joined_event(epoch, cursor, users);
        let reset = matches!(joined, ServerEvent::Joined { reset: true, .. });
        let sent = conn.outbox.offer(Frame::encode(&joined));
        if let Some(member) = target.members.get_mut(&self.id) {
            if sent {
                member.last_seq = target.next_seq - 1;
            } else {
                member.last_seq = cursor.unwrap_or(0);
                member.behind = Some(if reset {
                    CatchUp::Reset
                } else {
                    CatchUp::After
                });
            }
        }
        conn.rooms.insert(key);
        if let (Some(user), false) = (user, was_present) {
            if let Some(info) = users.get(&user).map(|u| u.info.clone()) {
                target.announce_presence(&info, true);
            }
        }
        Ok(())
    }

    /// Stops the live stream of a channel. Leaving a channel one is not in, or a private
    /// conversation (always live for its participants), does nothing.
    pub fn leave(&self, room: &Room) -> Result<(), ChatError> {
        if let Room::Channel(_) = room {
            let mut state = self.hub.lock();
            state.leave(self.id, &room.key());
        }
        Ok(())
    }

    /// Posts a message under this connection's user and fans it out (invariant 1). The body
    /// may be empty when the message carries an attachment. The sender is to be told only
    /// once [`Saved::stored`] resolves.
    pub fn post(
        &self,
        room: &Room,
        raw_body: &str,
        attachment: Option<&FileId>,
    ) -> Result<Saved<Message>, ChatError> {
        let limits = &self.hub.shared.limits;
        let body = if attachment.is_some() && raw_body.trim().is_empty() {
            MessageBody::empty()
        } else {
            MessageBody::parse(raw_body, limits.max_message_chars)?
        };
        let mut state = self.hub.lock();
        let user = self.user(&state)?;
        let attachment = match attachment {
            Some(id) => {
                let entry = state
                    .files
                    .get(id)
                    .filter(|f| f.owner == user && f.room == room.key() && !f.attached)
                    .ok_or(ChatError::NoSuchFile)?;
                Some(entry.attachment.clone())
            }
            None => None,
        };
        // The room must exist (and be the user's to post in) before the post counts against
        // the user's allowance.
        state.room_for(room, Some(user), limits)?;
        let entry = state.users.get_mut(&user).ok_or(ChatError::Unauthorized)?;
        if !entry.messages.try_take(Instant::now()) {
            return Err(ChatError::RateLimited);
        }
        let author = entry.info.clone();
        let id = MessageId(state.next_message_id);
        let target = state.room_for(room, Some(user), limits)?;
        let message = Message {
            id,
            room: target.room.clone(),
            seq: target.next_seq,
            author,
            body,
            attachment,
            sent_at: Timestamp::now(),
        };
        // Handed to the store under the lock, so the store writes messages in their order;
        // the write itself happens behind (see `Saved`).
        let durable = self.hub.shared.store.put_message(&message);
        target.next_seq += 1;
        let evicted = target.history.push(message.clone());
        let frame = Frame::encode(&ServerEvent::Message {
            message: message.clone(),
        });
        target.broadcast(&frame, Some(message.seq));
        state.next_message_id += 1;
        self.hub.changed();
        if let Some(file) = &message.attachment {
            if let Some(entry) = state.files.get_mut(&file.id) {
                entry.attached = true;
            }
        }
        let dropped = state.forget_files_of(evicted);
        drop(state);
        self.hub.remove_files(dropped);
        Ok(Saved::new(message, durable, "message"))
    }

    /// Deletes one of this user's own messages, for everyone.
    pub fn delete(&self, room: &Room, id: MessageId) -> Result<(), ChatError> {
        let mut state = self.hub.lock();
        let user = self.user(&state)?;
        let target = state.room_for(room, Some(user), &self.hub.shared.limits)?;
        let message = target.history.get(id).ok_or(ChatError::NoSuchMessage)?;
        if message.author.id != user {
            return Err(ChatError::NotYourMessage);
        }
        // Written behind; a failure is logged by the store, and the message comes back only
        // if the server restarts.
        let _ = self.hub.shared.store.delete_message(&target.room, id);
        let removed = target.history.remove(id, target.next_seq - 1);
        let frame = Frame::encode(&ServerEvent::MessageDeleted {
            room: target.room.clone(),
            id,
        });
        target.broadcast(&frame, None);
        self.hub.changed();
        let dropped = state.forget_files_of(removed);
        drop(state);
        self.hub.remove_files(dropped);
        Ok(())
    }

    /// Changes this user's display name, everywhere and for everyone.
    pub fn rename(&self, raw_name: &str) -> Result<Saved<UserInfo>, ChatError> {
        let name = DisplayName::parse(raw_name)?;
        let mut state = self.hub.lock();
        let user = self.user(&state)?;
        if let Some(other) = state.user_by_name.get(&name.key()) {
            if *other != user {
                let taken = state.users.get(other).map(|u| u.info.name.to_string());
                return Err(ChatError::DisplayNameTaken(
                    taken.unwrap_or_else(|| name.to_string()),
                ));
            }
        }
        let info = UserInfo { id: user, name };
        let durable = self.hub.shared.store.rename_user(&info);
        let old = state
            .users
            .get_mut(&user)
            .map(|u| std::mem::replace(&mut u.info, info.clone()));
        if let Some(old) = old {
            state.user_by_name.remove(&old.name.key());
        }
        state.user_by_name.insert(info.name.key(), user);
        for room in state.rooms.values_mut() {
            for message in room.history.iter_mut() {
                if message.author.id == user {
                    message.author.name = info.name.clone();
                }
            }
        }
        state.broadcast_all(&ServerEvent::UserRenamed { user: info.clone() });
        self.hub.changed();
        Ok(Saved::new(info, durable, "name"))
    }
}

impl State {
    /// Forgets the files of messages that left the history, returning them for deletion.
    fn forget_files_of(&mut self, messages: impl IntoIterator<Item = Message>) -> Vec<FileId> {
        messages
            .into_iter()
            .filter_map(|m| m.attachment)
            .filter_map(|a| self.files.remove(&a.id))
            .map(|entry| entry.attachment.id)
            .collect()
    }

    /// Removes a connection from a room, announcing its user's departure if it was their last
    /// connection there.
    fn leave(&mut self, conn: ConnId, key: &RoomKey) {
        if let Some(entry) = self.connections.get_mut(&conn) {
            entry.rooms.remove(key);
        }
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let Some(member) = room.members.remove(&conn) else {
            return;
        };
        if let Some(user) = member.user {
            if !room.has_user(user) {
                if let Some(info) = self.users.get(&user).map(|u| u.info.clone()) {
                    room.announce_presence(&info, false);
                }
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        let rooms: Vec<RoomKey> = state
            .connections
            .get(&self.id)
            .map(|c| c.rooms.iter().cloned().collect())
            .unwrap_or_default();
        for key in rooms {
            state.leave(self.id, &key);
        }
        if let Some(conn) = state.connections.remove(&self.id) {
            if let Some(user) = conn.user.and_then(|u| state.users.get_mut(&u)) {
                user.conns.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
