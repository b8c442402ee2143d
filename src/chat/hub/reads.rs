//! Read positions: how far each user has read in each room, and the unread counts that
//! follow from them, told to the connections that follow them (issue 17, item 3).
//!
//! # Invariants
//! 1. **Bounded.** A position is kept only for a room that exists and that the user may read
//!    (any channel, a private conversation of theirs), and never beyond the room's newest
//!    `seq`; so there are at most users × rooms of them, and each user moves theirs at most
//!    [`READS_PER_SECOND`] times a second (bursts of [`READ_BURST`]).
//! 2. **Forward only, stored behind.** A position only moves forward; each move is handed to
//!    the store under the lock, like every change, and written behind. A position loaded
//!    from the store that is beyond its room's newest `seq` (an unclean stop lost messages)
//!    is taken as the newest.
//! 3. **Counts agree.** A connection that follows unread counts gets its user's summary
//!    under the lock, so everything queued after it (messages of rooms it joined,
//!    `activity` for channels it did not, a one-room `unread` whenever the user's position
//!    moves on any connection) applies on top of it without a gap or a double count.
//!
//! 4. **Told once (cluster mode).** A channel's `activity` is told for each number once, in
//!    order: from the room's own changes when it is followed here, otherwise from the
//!    cluster's news ([`crate::chat::hub::Hub::hear_news`]). A number is told only right
//!    after the one before it (`told + 1`); news further ahead waits for the room's repair,
//!    whose messages are told from `told + 1` on. A room whose news ran ahead of its copy
//!    here is caught up before a connection's summary is counted, so the summary agrees.
//!
//! Counts cover what the hub holds in memory (each room's newest
//! [`crate::chat::model::HISTORY_LIMIT`] numbers), so a room shows at most that many unread.
//! A room the user never read counts every message it holds as unread.

use super::connections::Connections;
use super::directory::{Allowance, Directory};
use super::fanout::{Encoder, HubEvent};
use super::rooms::RoomState;
use super::{Connection, State};
use crate::chat::model::{mentions_name, ChatError, Message, Room, RoomKey, RoomUnread, UserId};
use std::collections::HashMap;

/// Read positions a user may move per second, on average, across all their connections.
pub(super) const READS_PER_SECOND: u32 = 5;

/// Read positions a user may move at once.
pub(super) const READ_BURST: u32 = 20;

/// Every user's read position in each room they have read.
#[derive(Default)]
pub(super) struct Reads {
    by_user: HashMap<UserId, HashMap<RoomKey, u64>>,
}

impl Reads {
    /// How far `user` has read in the room (0: nothing).
    pub(super) fn position(&self, user: UserId, key: &RoomKey) -> u64 {
        self.by_user
            .get(&user)
            .and_then(|rooms| rooms.get(key))
            .copied()
            .unwrap_or(0)
    }

    /// Records a position (already checked against invariant 1).
    pub(super) fn set(&mut self, user: UserId, key: RoomKey, seq: u64) {
        self.by_user.entry(user).or_default().insert(key, seq);
    }
}

/// Whether `user` may read `room` (invariant 1).
fn may_read(room: &Room, user: UserId) -> bool {
    match room {
        Room::Channel(_) => true,
        Room::Direct(direct) => direct.includes(user),
    }
}

impl State {
    /// Puts positions loaded from the store in place, keeping invariants 1 and 2.
    pub(super) fn load_reads(&mut self, positions: Vec<(UserId, Room, u64)>) {
        for (user, room, seq) in positions {
            let key = room.key();
            let Some(target) = self.rooms.map.get(&key) else {
                continue;
            };
            if may_read(&room, user) && self.directory.users.contains_key(&user) && seq > 0 {
                self.reads.set(user, key, seq.min(target.last_seq()));
            }
        }
    }

    /// `user`'s state in one room, counted under their current name.
    fn room_unread(&self, user: UserId, room: &RoomState) -> RoomUnread {
        let read = self.reads.position(user, &room.room.key());
        let name = self
            .directory
            .users
            .get(&user)
            .map(|u| u.info.name.as_str())
            .unwrap_or_default();
        RoomUnread::count(
            room.room.clone(),
            read,
            room.newest_known(),
            room.history.after(read),
            user,
            name,
        )
    }

    /// `user`'s state in every room they may read that has messages, channels first, in no
    /// particular order.
    pub(super) fn unread_summary(&self, user: UserId) -> Vec<RoomUnread> {
        self.rooms
            .map
            .values()
            .filter(|room| room.newest_known() > 0 && may_read(&room.room, user))
            .map(|room| self.room_unread(user, room))
            .collect()
    }

    /// Moves `user`'s position in `room` forward to `seq` as another instance stored it, and
    /// tells their connections here that follow unread counts (cluster mode). A position
    /// this instance cannot check (an unknown room, a number it has not applied yet) is
    /// taken up to what it holds; one not ahead of the current changes nothing.
    pub(super) fn apply_read(&mut self, encode: Encoder, user: UserId, room: &Room, seq: u64) {
        let key = room.key();
        let Some(target) = self.rooms.map.get(&key) else {
            return;
        };
        if !may_read(room, user) {
            return;
        }
        let seq = seq.min(target.newest_known());
        if seq <= self.reads.position(user, &key) {
            return;
        }
        self.reads.set(user, key, seq);
        let entry = self.room_unread(user, target);
        self.tell_followers(encode, user, HubEvent::Unread { rooms: vec![entry] });
    }

    /// Offers an event to every connection of `user` that follows unread counts; one that
    /// does not fit is repaired by the connection's next resync (a fresh summary).
    fn tell_followers(&mut self, encode: Encoder, user: UserId, event: HubEvent) {
        let Some(entry) = self.directory.users.get(&user) else {
            return;
        };
        let mut frame = None;
        for id in &entry.conns {
            let Some(conn) = self.connections.map.get_mut(id) else {
                continue;
            };
            if !conn.follows_unread {
                continue;
            }
            let frame = frame.get_or_insert_with(|| encode(event.clone())).clone();
            if !conn.outbox.offer(frame) {
                conn.missed_directory = true;
            }
        }
    }
}

impl super::Hub {
    /// Brings the hub's copy of `user`'s read positions up to what the store holds, when
    /// other processes write them too (cluster mode; see [`super::Store::reads_of`]): a
    /// position another instance moved forward moves forward here. Nothing happens for a
    /// store only this process writes. Reads the store off the lock.
    pub async fn refresh_reads(&self, user: UserId) {
        let Some(read) = self.shared.store.reads_of(user) else {
            return;
        };
        let positions = match read.await {
            Ok(positions) => positions,
            Err(e) => {
                tracing::warn!(error = %e, "could not read a user's read positions again");
                return;
            }
        };
        let mut state = self.lock();
        for (room, seq) in positions {
            let key = room.key();
            let newest = match state.rooms.map.get(&key) {
                Some(target) if may_read(&room, user) => target.newest_known(),
                _ => continue,
            };
            let seq = seq.min(newest);
            if seq > state.reads.position(user, &key) {
                state.reads.set(user, key, seq);
            }
        }
    }
}

impl Connection {
    /// Follows the user's unread counts: queues their summary now (invariant 3), then news
    /// of it as it changes.
    pub fn follow_unread(&self) -> Result<(), ChatError> {
        let encode = self.hub.shared.encode;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = self.user(state)?;
        let rooms = state.unread_summary(user);
        let conn = state
            .connections
            .map
            .get_mut(&self.id)
            .ok_or_else(|| ChatError::Unavailable("connection closed".into()))?;
        conn.follows_unread = true;
        if !conn.outbox.offer(encode(HubEvent::Unread { rooms })) {
            conn.missed_directory = true;
        }
        Ok(())
    }

    /// Moves the user's read position in `room` forward to `seq`, stores it (behind) and
    /// tells every connection of theirs that follows unread counts. A position at or before
    /// the current one changes nothing and costs nothing.
    pub fn read(&self, room: &Room, seq: u64) -> Result<(), ChatError> {
        let shared = &self.hub.shared;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = self.user(state)?;
        if !may_read(room, user) {
            return Err(ChatError::Forbidden);
        }
        let key = room.key();
        let Some(target) = state.rooms.map.get(&key) else {
            return Err(match room {
                Room::Channel(name) => ChatError::NoSuchChannel(name.to_string()),
                // A conversation without messages has nothing to read.
                Room::Direct(_) => ChatError::NoSuchMessage,
            });
        };
        if seq > target.newest_known() {
            return Err(ChatError::NoSuchMessage);
        }
        if seq <= state.reads.position(user, &key) {
            return Ok(());
        }
        state.directory.allow(user, Allowance::Reads)?;
        // Written behind; a failure is logged by the store's writer, and after a restart the
        // position is where it was last stored.
        drop(shared.store.put_read(user, &target.room, seq));
        state.reads.set(user, key, seq);
        let entry = state.room_unread(user, target);
        state.tell_followers(shared.encode, user, HubEvent::Unread { rooms: vec![entry] });
        Ok(())
    }
}

/// Tells every connection that follows unread counts, is not in `message`'s channel and is
/// not its author's, that the channel has a new message, and whether it mentions them. (A
/// private conversation's messages already reach its participants' connections.) One frame
/// is encoded for those it mentions and one for the others.
pub(super) fn announce_activity(
    encode: Encoder,
    connections: &mut Connections,
    directory: &Directory,
    message: &Message,
) {
    let news = News {
        room: &message.room,
        seq: message.seq,
        author: message.author.id,
        body: message.body.as_str(),
    };
    announce_news(encode, connections, directory, &news);
}

/// A channel's new message as unread followers need to hear of it. `body` may be empty
/// when it cannot mention anyone (it holds no `@`).
pub struct News<'a> {
    pub room: &'a Room,
    pub seq: u64,
    pub author: UserId,
    pub body: &'a str,
}

/// [`announce_activity`] for a message known by its news only.
pub(super) fn announce_news(
    encode: Encoder,
    connections: &mut Connections,
    directory: &Directory,
    news: &News<'_>,
) {
    let Room::Channel(_) = news.room else {
        return;
    };
    let key = news.room.key();
    let body = news.body;
    let may_mention = body.contains('@');
    let (mut plain, mut mentioned) = (None, None);
    for conn in connections.map.values_mut() {
        let Some(user) = conn.user else {
            continue;
        };
        if !conn.follows_unread || user == news.author || conn.rooms.contains(&key) {
            continue;
        }
        let mention = may_mention
            && directory
                .users
                .get(&user)
                .is_some_and(|u| mentions_name(body, u.info.name.as_str()));
        let slot = if mention { &mut mentioned } else { &mut plain };
        let frame = slot
            .get_or_insert_with(|| {
                encode(HubEvent::Activity {
                    room: news.room.clone(),
                    seq: news.seq,
                    mention,
                })
            })
            .clone();
        if !conn.outbox.offer(frame) {
            conn.missed_directory = true;
        }
    }
}
