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
            room.last_seq(),
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
            .filter(|room| room.last_seq() > 0 && may_read(&room.room, user))
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
        let seq = seq.min(target.last_seq());
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
                Some(target) if may_read(&room, user) => target.last_seq(),
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
        let user = state
            .connections
            .user(self.id)
            .ok_or(ChatError::NotIdentified)?;
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
        let user = state
            .connections
            .user(self.id)
            .ok_or(ChatError::NotIdentified)?;
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
        if seq > target.last_seq() {
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
    let Room::Channel(_) = &message.room else {
        return;
    };
    let key = message.room.key();
    let body = message.body.as_str();
    let may_mention = body.contains('@');
    let (mut plain, mut mentioned) = (None, None);
    for conn in connections.map.values_mut() {
        let Some(user) = conn.user else {
            continue;
        };
        if !conn.follows_unread || user == message.author.id || conn.rooms.contains(&key) {
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
                    room: message.room.clone(),
                    seq: message.seq,
                    mention,
                })
            })
            .clone();
        if !conn.outbox.offer(frame) {
            conn.missed_directory = true;
        }
    }
}
