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
//!    connection later receives a catch-up from history (see [`Hub::resync`]). The transport
//!    may also mark a connection behind whose reader lags in its socket
//!    ([`Outbox::fall_behind`]); a connection behind takes no frame offered until the resync.
//! 4. **Identity comes from tokens.** Every action's author is the user the connection
//!    authenticated as; the hub keeps only SHA-256 hashes of tokens. No new display name or
//!    channel name looks like one in use (the same but for case, or a look-alike:
//!    [`crate::chat::model::LookAlike`]); names stored before that rule keep loading.
//!    Histories keep the name a message was posted under; every message leaving the hub
//!    (snapshot, catch-up, page) carries its author's current name, and its reacting users'
//!    and quoted author's, so a rename rewrites nothing.
//! 5. **Private means private.** A direct room's messages are offered only to connections of
//!    its two participants, and only they can read its history.
//! 6. **Pages know when they are stale.** Every change a rendered page can show (a channel
//!    created, a message posted, edited, reacted to or deleted, a user renamed) bumps [`Hub::generation`] before
//!    the lock is released, so a page rendered at one generation is current while it holds.
//! 7. **Acknowledged means stored; the lock never waits for the disk.** Every change is
//!    written behind (delivery never waits for the disk), but whoever asked for it is
//!    answered only once it is on disk ([`Saved::stored`]). A change that could not be
//!    stored stays in memory until the next restart and its requester gets an error.
//! 8. **Presence is bounded and coalesced per channel and tick.** Members see a channel's
//!    online users as a window, the first [`crate::chat::model::ONLINE_SHOWN`] by name
//!    (without regard to case), and the count of all of them. Each channel indexes its
//!    online users by name ([`online`]), so a user coming or going (their first connection
//!    there joining or authenticating, their last one leaving, another instance's report in
//!    cluster mode) or being renamed costs the same whatever the channel's size; it only
//!    marks the channel changed. The channel remembers the window and count it last told:
//!    a joiner's `joined` carries exactly those (so the joiner is on its own list from the
//!    next tick, not before), and at most [`PRESENCE_TICK`] after a change
//!    [`Hub::flush_presence`] sends every member one `presence` event with the delta from
//!    the told window to the current one (`went`: on it no longer, `came`: newly on it) and
//!    the current count, which become the told ones; nothing is sent if neither changed.
//!    Every member thus holds the same told window, and applying each delta to it gives the
//!    current one. A channel with more than `ONLINE_SHOWN` online whose changes keep
//!    coming (a change since the previous tick) is told at most once per
//!    [`BIG_ROOM_TICK`] (a crowd reconnecting at once would otherwise cost each member ten
//!    frames a second, most of them a new count only); the first tick that finds it quiet
//!    tells it. So a member gets at most ten `presence` frames a second, one a second in a
//!    big channel while people keep coming and going, each of at most twice
//!    `ONLINE_SHOWN` names, however many come and go: N people joining cost O(N) frames and
//!    bytes per second of the crowd, not N². A channel with no member
//!    here tells nobody: its told window becomes the current one unheard. A tick is due
//!    while some channel's change is untold (`State::presence_due`), and one timer runs per
//!    hub at a time.
//! 9. **Reactions are sets, held with their message.** A message's reactions list each
//!    emoji once, each with the users who gave it, each once; they live in the message
//!    itself (in the history, the store and every page), within the limits of
//!    [`crate::chat::model::MAX_REACTIONS_PER_USER`] and
//!    [`crate::chat::model::MAX_REACTIONS_PER_MESSAGE`]. A reaction that changes nothing is
//!    neither stored nor sent; one that changes something is stored, sent to the room as
//!    `reaction`, and, like an edit, makes clients whose cursor is not past it catch up by
//!    a snapshot.
//!
//! # Layout
//! The state behind the lock is split by concern, so each method borrows the part it needs:
//! - [`directory`]: users, their token hashes, unique names and allowances;
//! - [`rooms`]: each room's history, sequence numbers and members;
//! - [`online`]: who is online in each channel, by name, and what its members were told;
//! - [`connections`]: each live connection's outbox, user and rooms;
//! - [`files`]: the upload registry, and deleting files off the async threads;
//! - [`reads`]: each user's read position in each room, and the unread counts that follow.
//!
//! [`older`] answers history calls with a "before" cursor from the store's archive, and
//! [`search`] message searches, through the store's full-text index.
//! [`connection`] holds what a connection does, [`outbox`] the bounded queues and frames,
//! [`saved`] the wait for the store, and [`fanout`] the one seam the domain events (declared
//! in [`crate::chat::event`]) leave through (where a second instance would publish and receive). Storage sits behind
//! the [`Store`] trait (the in-memory default keeps nothing beyond what is here).
//!
//! The hub knows nothing of the wire: it emits [`HubEvent`]s and is handed the [`Encoder`]
//! that turns them into frames.

mod connection;
mod connections;
mod directory;
mod fanout;
mod files;
mod older;
mod online;
mod outbox;
mod reads;
mod replicas;
mod rooms;
mod saved;
mod search;
mod typing;

pub use self::connection::Connection;
pub use self::directory::hash_token;
pub use self::fanout::{Encoder, HubEvent};
pub use self::outbox::{ConnId, Frame, Outbox, OutboxRx, DEFAULT_OUTBOX_BYTES};
pub use self::reads::News;
pub use self::replicas::Position;
pub use self::saved::Saved;
pub use super::store::{Durable, Loaded, MemoryStore, Store, StoreError, StoredRoom, TokenHash};

use self::connections::Connections;
use self::directory::{new_token, Allowance, Directory};
use self::fanout::{publish_to_everyone, publish_to_room};
use self::files::Files;
use self::online::Tell;
use self::rooms::{name_of, CatchUp, Rooms};
use super::model::{
    ChannelInfo, ChannelName, ChatError, DirectKey, DirectSummary, DisplayName, HistoryPage,
    Limits, Room, RoomKey, Session, Timestamp, UserId, UserInfo,
};
use super::replica::{Proposal, Replicated, Sequencer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How often, at most, a channel's members are told who came and went (invariant 8): the
/// delay between the first change after a quiet spell and its `presence` event.
pub const PRESENCE_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// How often, at most, the members of a big channel (more than
/// [`crate::chat::model::ONLINE_SHOWN`] online) are told who came and went while people
/// keep coming and going (invariant 8): there, a crowd coming back at once would otherwise
/// cost every member ten frames a second, most of them telling only a new count.
pub const BIG_ROOM_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Most people [`Hub::people`] answers with.
pub const PEOPLE_PAGE: usize = 50;

/// Longest search for people, in characters (a longer one is cut).
const MAX_PEOPLE_QUERY: usize = 64;

/// The time allowances are counted in: tokio's clock, so a test about them can pause and
/// advance it instead of sleeping (outside a paused test it is the system's clock).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Tunables the hub enforces.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Longest message body, in characters.
    pub max_message_chars: usize,
    /// Messages each room keeps.
    pub history: usize,
    /// Where uploaded files are kept; a message's file is deleted when the message is
    /// deleted, or when no stored message carries it any more (see the `files` module).
    pub files_dir: Option<std::path::PathBuf>,
    /// Messages a user may post per second, on average.
    pub messages_per_second: u32,
    /// Messages a user may post at once.
    pub message_burst: u32,
    /// Channels a user may create per minute.
    pub channels_per_minute: u32,
    /// Channels a user may join per second, on average, across all their connections (each
    /// join may announce them to every member; leaving follows a join, so it is not counted).
    pub joins_per_second: u32,
    /// Channels a user may join at once.
    pub join_burst: u32,
    /// Times a user may change their name per minute (each rename goes to every connection).
    pub renames_per_minute: u32,
    /// Private conversations a user may start per minute (each appears in the other's list).
    pub directs_per_minute: u32,
    /// Channels the server holds at most (every page and every `welcome` lists them all).
    pub max_channels: usize,
    /// Users the server registers at most.
    pub max_users: usize,
    /// Uploads a user may have waiting for the message that carries them.
    pub unsent_files: usize,
    /// Bytes a user's waiting uploads may hold together.
    pub unsent_file_bytes: u64,
    /// Largest attachment, in bytes: enforced by the server's upload route, announced to
    /// clients by the hub with the other [`Limits`].
    pub max_upload_bytes: u64,
}

impl HubSettings {
    /// What clients are told in `welcome`.
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_chars: self.max_message_chars,
            max_upload_bytes: self.max_upload_bytes,
        }
    }
}

impl Default for HubSettings {
    /// The built-in limits. The server's configuration takes its defaults for these settings
    /// from here, so each is written once.
    fn default() -> Self {
        HubSettings {
            max_message_chars: super::model::DEFAULT_MAX_MESSAGE_CHARS,
            history: super::model::HISTORY_LIMIT,
            files_dir: None,
            messages_per_second: 10,
            message_burst: 20,
            channels_per_minute: 5,
            joins_per_second: 5,
            join_burst: 20,
            renames_per_minute: 5,
            directs_per_minute: 10,
            max_channels: 1000,
            max_users: 100_000,
            unsent_files: 10,
            unsent_file_bytes: 50 << 20,
            max_upload_bytes: super::model::DEFAULT_MAX_UPLOAD_BYTES,
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
    /// Turns events into frames (the transport's wire encoding).
    encode: Encoder,
    limits: HubSettings,
    /// Identifies this history's sequence numbers; clients holding another epoch get a
    /// snapshot.
    epoch: u64,
    /// Counts changes that pages show (invariant 6).
    generation: AtomicU64,
    /// Cluster mode: where changes are proposed (see [`replicas`]); `None` for one instance.
    cluster: Option<Sequencer>,
    /// Woken when a user's first connection here joins a channel or their last one leaves
    /// it (see [`Hub::presence_moved`]).
    presence_moved: tokio::sync::Notify,
}

/// Everything behind the lock, by concern.
struct State {
    directory: Directory,
    rooms: Rooms,
    connections: Connections,
    files: Files,
    /// How far each user has read in each room.
    reads: reads::Reads,
    /// True while a presence tick is due: some room has presence changes not yet told, and
    /// a timer will call [`Hub::flush_presence`] (invariant 8).
    presence_due: bool,
}

impl Hub {
    /// A hub with in-memory storage and default limits, holding one channel, "general".
    pub fn in_memory(encode: Encoder) -> Hub {
        Hub::open(Arc::new(MemoryStore), HubSettings::default(), encode)
            .unwrap_or_else(|_| unreachable!("the memory store never fails"))
    }

    /// Loads the hub's state from a store. A store with no channels gets "general". Every
    /// event the hub sends goes through `encode`.
    pub fn open(
        store: Arc<dyn Store>,
        limits: HubSettings,
        encode: Encoder,
    ) -> Result<Hub, StoreError> {
        Hub::open_with(store, limits, encode, None)
    }

    /// [`Hub::open`] in cluster mode: `store` loads what the shared database holds, and
    /// every change is proposed to `cluster` and applied once committed ([`Hub::apply`]).
    pub fn open_replica(
        store: Arc<dyn Store>,
        limits: HubSettings,
        encode: Encoder,
        cluster: Sequencer,
    ) -> Result<Hub, StoreError> {
        Hub::open_with(store, limits, encode, Some(cluster))
    }

    fn open_with(
        store: Arc<dyn Store>,
        limits: HubSettings,
        encode: Encoder,
        cluster: Option<Sequencer>,
    ) -> Result<Hub, StoreError> {
        let loaded = store.load()?;
        let epoch = loaded
            .epoch
            .unwrap_or_else(|| Timestamp::now().millis().max(1) as u64);
        let mut state = State {
            directory: Directory::new(),
            rooms: Rooms::new(limits.history),
            connections: Connections::new(),
            files: Files::default(),
            reads: Default::default(),
            presence_due: false,
        };
        for (info, token_hash) in loaded.users {
            state.directory.insert(info, token_hash, &limits);
        }
        for stored in loaded.rooms {
            let mut room = state.rooms.new_room(stored.room, stored.channel);
            for mut message in stored.messages {
                state.rooms.next_message_id = state.rooms.next_message_id.max(message.id.0 + 1);
                // Names may have changed since the message was stored.
                if let Some(author) = state.directory.info(message.author.id) {
                    message.author = author;
                }
                if let Some(attachment) = &message.attachment {
                    let key = room.room.key();
                    state
                        .files
                        .add(attachment.clone(), key, message.author.id, true);
                }
                room.history.push(message);
            }
            room.history
                .mark_restored(stored.next_seq.saturating_sub(1));
            room.next_seq = stored.next_seq;
            // Two stored channels whose names now count as look-alikes both load, each under
            // its own key; only new channels are refused for looking like one.
            state.rooms.insert(room);
        }
        state.load_reads(loaded.reads);
        let hub = Hub {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                store,
                encode,
                limits,
                epoch,
                generation: AtomicU64::new(0),
                cluster,
                presence_moved: tokio::sync::Notify::new(),
            }),
        };
        hub.shared
            .store
            .release_files_with(files::releaser(hub.shared.limits.files_dir.clone()));
        hub.remove_orphan_files();
        let has_channels = hub.lock().rooms.map.values().any(|r| r.channel.is_some());
        // In cluster mode the proposal waits for the sequencer to start, and another
        // instance making "general" at the same time is no error.
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
        self.lock().connections.map.len()
    }

    /// Registers a new user under a display name that looks like no one else's (see
    /// [`crate::chat::model::LookAlike`]) and returns their session token.
    pub fn register(&self, raw_name: &str) -> Result<Saved<Session>, ChatError> {
        let name = DisplayName::parse_new(raw_name)?;
        let token = new_token()?;
        let token_hash = hash_token(&token);
        let mut state = self.lock();
        state.directory.check_free(&name, None)?;
        let max = self.shared.limits.max_users;
        if state.directory.users.len() >= max {
            return Err(ChatError::TooManyUsers { max });
        }
        let info = UserInfo {
            id: state.directory.next_id(),
            name,
        };
        if self.is_replica() {
            drop(state);
            // The database assigns the id and has the last word on the name.
            let committed = self.propose(Proposal::User(info, token_hash));
            return Ok(Saved::proposed(committed, "user", move |done| match done {
                Replicated::User { user, .. } => Ok(Session { user, token }),
                other => Err(unexpected(other)),
            }));
        }
        let durable = self.shared.store.put_user(&info, &token_hash);
        state
            .directory
            .insert(info.clone(), token_hash, &self.shared.limits);
        tracing::info!(user = %info.id, "user registered");
        Ok(Saved::new(Session { user: info, token }, durable, "user"))
    }

    /// The user a token belongs to.
    pub fn user_for_token(&self, token: &str) -> Result<UserInfo, ChatError> {
        self.lock()
            .directory
            .by_token(token)
            .map(|u| u.info.clone())
    }

    /// Every channel, sorted by name without regard to case.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.lock().rooms.channel_list()
    }

    /// The channel a name refers to (compared without regard to case), spelled as it was
    /// created; `None` for an invalid name or a channel that does not exist.
    pub fn channel_named(&self, raw_name: &str) -> Option<ChannelName> {
        let key = RoomKey::Channel(ChannelName::parse(raw_name).ok()?.key());
        let state = self.lock();
        state.rooms.map.get(&key)?.room.channel().cloned()
    }

    /// Creates a channel from a name a user typed and tells every connection about it.
    pub fn create_channel(
        &self,
        token: &str,
        raw_name: &str,
    ) -> Result<Saved<ChannelInfo>, ChatError> {
        let name = ChannelName::parse_new(raw_name)?;
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            // A refused name does not use up the user's allowance.
            if let Some(existing) = state.rooms.channel_like(&name) {
                return Err(ChatError::ChannelExists(name_of(&existing.room)));
            }
            let max = self.shared.limits.max_channels;
            if state.rooms.channel_count() >= max {
                return Err(ChatError::TooManyChannels { max });
            }
            let id = state.directory.by_token(token)?.info.id;
            state.directory.allow(id, Allowance::Channels)?;
        }
        self.create(name)
    }

    fn create(&self, name: ChannelName) -> Result<Saved<ChannelInfo>, ChatError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if let Some(existing) = state.rooms.channel_like(&name) {
            return Err(ChatError::ChannelExists(name_of(&existing.room)));
        }
        let info = ChannelInfo {
            name: name.clone(),
            created_at: Timestamp::now(),
        };
        if self.is_replica() {
            drop(guard);
            let committed = self.propose(Proposal::Channel(info));
            return Ok(Saved::proposed(committed, "channel", |done| match done {
                Replicated::Channel { channel } => Ok(channel),
                other => Err(unexpected(other)),
            }));
        }
        let durable = self.shared.store.put_channel(&info);
        let room = state
            .rooms
            .new_room(Room::Channel(name), Some(info.clone()));
        state.rooms.insert(room);
        publish_to_everyone(
            self.shared.encode,
            &mut state.connections,
            HubEvent::ChannelCreated {
                channel: info.clone(),
            },
        );
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
            .map
            .get(&RoomKey::Channel(name.key()))
            .ok_or_else(|| ChatError::NoSuchChannel(name.to_string()))?;
        Ok(HistoryPage {
            room: room.room.clone(),
            title: name_of(&room.room),
            peer: None,
            epoch: self.shared.epoch,
            last_seq: room.last_seq(),
            messages: state.directory.with_current_names(room.history.snapshot()),
            top: self.top_of_window(room.last_seq()),
        })
    }

    /// The private conversation between the token's user and `peer`, for that user only.
    pub fn direct_page(&self, token: &str, peer: UserId) -> Result<HistoryPage, ChatError> {
        let state = self.lock();
        let me = state.directory.by_token(token)?.info.id;
        let key = DirectKey::between(me, peer)?;
        let peer = state.directory.info(peer).ok_or(ChatError::NoSuchUser)?;
        let (last_seq, messages) = match state.rooms.map.get(&RoomKey::Direct(key)) {
            Some(room) => (
                room.last_seq(),
                state.directory.with_current_names(room.history.snapshot()),
            ),
            None => (0, Vec::new()),
        };
        Ok(HistoryPage {
            room: Room::Direct(key),
            title: peer.name.to_string(),
            peer: Some(peer),
            epoch: self.shared.epoch,
            last_seq,
            messages,
            top: self.top_of_window(last_seq),
        })
    }

    /// Registered people whose name contains `query` (without regard to case), other than
    /// the token's user, sorted by name: at most [`PEOPLE_PAGE`] of them. For finding
    /// someone to message; only registered users may ask.
    pub fn people(&self, token: &str, query: &str) -> Result<Vec<UserInfo>, ChatError> {
        let query: String = query.trim().chars().take(MAX_PEOPLE_QUERY).collect();
        let query = query.to_lowercase();
        let state = self.lock();
        let me = state.directory.by_token(token)?.info.id;
        let mut found: Vec<UserInfo> = state
            .directory
            .users
            .values()
            .filter(|u| u.info.id != me && u.info.name.key().contains(&query))
            .map(|u| u.info.clone())
            .collect();
        found.sort_by_key(|u| u.name.key());
        found.truncate(PEOPLE_PAGE);
        Ok(found)
    }

    /// Whether acting in `room` would start a private conversation this instance does not
    /// hold yet: what the cluster-wide allowance of new conversations is taken for (one
    /// started through another instance that has no message yet counts again here).
    pub fn would_start(&self, room: &Room) -> bool {
        matches!(room, Room::Direct(_)) && !self.lock().rooms.map.contains_key(&room.key())
    }

    /// The private conversations the token's user takes part in, by the other's name.
    pub fn directs(&self, token: &str) -> Result<Vec<DirectSummary>, ChatError> {
        let state = self.lock();
        let me = state.directory.by_token(token)?.info.id;
        let mut list: Vec<DirectSummary> = state
            .rooms
            .map
            .iter()
            .filter_map(|(key, room)| match key {
                // A conversation someone only opened, without a message, is nobody's yet.
                RoomKey::Direct(direct) if direct.includes(me) && room.last_seq() > 0 => {
                    let peer = state.directory.info(direct.other(me))?;
                    Some(DirectSummary { key: *direct, peer })
                }
                _ => None,
            })
            .collect();
        list.sort_by_key(|d| d.peer.name.key());
        Ok(list)
    }

    /// Resolves once the store shows it can write ([`Store::ping`]): what a readiness check
    /// waits for.
    pub fn store_ping(&self) -> super::store::Durable {
        self.shared.store.ping()
    }

    /// Registers a new connection and queues its `welcome` event.
    pub fn connect(&self, outbox: Outbox) -> Connection {
        let mut state = self.lock();
        let welcome = (self.shared.encode)(HubEvent::Welcome {
            epoch: self.shared.epoch,
            channels: state.rooms.channel_list(),
            limits: self.shared.limits.limits(),
        });
        let missed_directory = !outbox.offer(welcome);
        let id = state.connections.add(outbox, missed_directory);
        Connection {
            hub: self.clone(),
            id,
        }
    }

    /// Sends a connection that fell behind what it missed: the channel list if a change did
    /// not fit, and for each room it is behind in, the messages after the last one it got
    /// (or a fresh snapshot). Call once its outbox has room.
    pub fn resync(&self, id: ConnId) {
        let encode = self.shared.encode;
        let epoch = self.shared.epoch;
        let mut guard = self.lock();
        let state = &mut *guard;
        // A follower that missed a directory change may have missed unread news too: it
        // gets a fresh summary after the `welcome`.
        let summary = state
            .connections
            .map
            .get(&id)
            .filter(|c| c.missed_directory && c.follows_unread)
            .and_then(|c| c.user)
            .map(|user| {
                encode(HubEvent::Unread {
                    rooms: state.unread_summary(user),
                })
            });
        let Some(conn) = state.connections.map.get_mut(&id) else {
            return;
        };
        conn.outbox.clear_behind();
        // A missed `user_renamed` may have left old names on messages the client holds: every
        // room of the connection is then sent whole, with the names as they are now.
        let names_changed = conn.missed_directory;
        if names_changed {
            let channels = state.rooms.channel_list();
            let limits = self.shared.limits.limits();
            let frame = encode(HubEvent::Welcome {
                epoch,
                channels,
                limits,
            });
            conn.missed_directory = !conn.outbox.offer(frame);
            if let Some(summary) = summary {
                conn.missed_directory |= !conn.outbox.offer(summary);
            }
        }
        for key in &conn.rooms {
            let Some(room) = state.rooms.map.get_mut(key) else {
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
            let (frame, _) = room.joined_frame(encode, epoch, cursor, &state.directory);
            let newest = room.last_seq();
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

impl Hub {
    /// Makes sure a presence tick is due, now that a room recorded a change (invariant 8):
    /// starts the hub's one timer unless it runs already. Called with the lock held. Outside
    /// a tokio runtime (unit tests) no timer starts, and the caller flushes by hand.
    fn presence_later(&self, state: &mut State) {
        if state.presence_due {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        state.presence_due = true;
        let hub = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(PRESENCE_TICK).await;
            hub.flush_presence();
        });
    }

    /// Tells each channel's members who came and went there since its last `presence`
    /// event, in one event per channel (invariant 8), and keeps the timer going while a big
    /// channel waits for its turn. The presence timer calls it.
    pub fn flush_presence(&self) {
        let encode = self.shared.encode;
        let now = now();
        let mut guard = self.lock();
        let state = &mut *guard;
        state.presence_due = false;
        let mut later = false;
        for room in state.rooms.map.values_mut() {
            if room.members.is_empty() {
                // Nobody here to tell; the next joiner is told who is online then.
                if room.online.retell_unheard(&state.directory) {
                    room.forget_frames();
                }
                continue;
            }
            match room.online.tell(&state.directory, now) {
                Tell::Nothing => {}
                Tell::Later => later = true,
                Tell::Delta { came, went, count } => {
                    let event = HubEvent::Presence {
                        room: room.room.clone(),
                        came,
                        went,
                        online_count: count,
                    };
                    publish_to_room(encode, room, event, None);
                }
            }
        }
        if later {
            self.presence_later(state);
        }
    }
}

/// A proposal answered with a change of another kind: a sequencer bug, reported as such.
fn unexpected(change: Replicated) -> ChatError {
    tracing::error!(
        ?change,
        "the sequencer answered with another kind of change"
    );
    ChatError::Unavailable("the change could not be saved".into())
}

impl State {
    /// Removes a connection from a room, recording its user's departure (invariant 8) if it
    /// was their last connection there. True if it was their last connection there (who is
    /// connected here changed: a presence tick must be due).
    fn leave(&mut self, conn: ConnId, key: &RoomKey) -> bool {
        if let Some(entry) = self.connections.map.get_mut(&conn) {
            entry.rooms.remove(key);
        }
        let Some(room) = self.rooms.map.get_mut(key) else {
            return false;
        };
        matches!(
            room.remove_member(conn, &self.directory),
            Some((Some(_), true))
        )
    }

    /// After `user`'s rename: drops every room's encoded snapshot (it carries the old name)
    /// and moves the user in the online index of the channels they are in, whose windows
    /// may change (invariant 8). True if any did: a presence tick must be due.
    fn renamed_in_rooms(&mut self, user: &UserInfo) -> bool {
        let mut online = false;
        for room in self.rooms.map.values_mut() {
            room.forget_frames();
            online |= room.online.renamed(user);
        }
        online
    }
}

#[cfg(test)]
mod tests;
