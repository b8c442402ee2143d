//! The hub's side of cluster mode (see [`crate::chat::replica`]): proposing a change to the
//! sequencer, and applying what the database committed, in each room's `seq` order, whether
//! it was proposed here or on another instance; and who is online in each channel through
//! other instances, as the cluster reads it from Redis.
//!
//! # Invariants (cluster mode only)
//! 1. A room's messages are delivered in `seq` order with no duplicate: a message ahead of
//!    the room's next number waits in the room's `pending` until the numbers before it come
//!    (by event, or read back by [`Hub::repair`]).
//! 2. The database is the truth: [`Hub::repair`] takes every number below the database's
//!    next as settled, so numbers the database does not hold (deleted, or older than its
//!    ring) are skipped, and clients whose cursor is before a skip get a snapshot.
//! 3. A channel's online users are its members' users here plus those Redis last said are
//!    online through other instances (read for channels in use here, forgotten when the
//!    last member here leaves); every change is announced to the members here as the hub's
//!    invariant 8 says.

use super::fanout::{publish_to_everyone, publish_to_room, HubEvent};
use super::rooms::RoomState;
use super::{Hub, State};
use crate::chat::model::{ChatError, Message, MessageId, Room, RoomKey, UserId, UserInfo};
use crate::chat::replica::{Applied, Proposal, Replicated, Submitted};
use std::collections::HashSet;
use tokio::sync::oneshot;

/// Most messages a room holds waiting for a missing number: memory stays bounded while a
/// gap cannot be repaired.
const MAX_PENDING: usize = 4096;

/// Where a room stands, for comparing with the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub room: Room,
    /// The number the room's next message gets.
    pub next_seq: u64,
    /// Deletions applied (as the database last counted them, plus those applied since).
    pub deletions: u64,
}

impl Position {
    fn of(room: &RoomState) -> Position {
        Position {
            room: room.room.clone(),
            next_seq: room.next_seq,
            deletions: room.deletions,
        }
    }
}

impl Hub {
    /// True in cluster mode: changes are proposed to the sequencer, not applied here first.
    pub fn is_replica(&self) -> bool {
        self.shared.cluster.is_some()
    }

    /// Hands a proposal to the sequencer; the receiver hears what was committed. Only
    /// called in cluster mode.
    pub(super) fn propose(
        &self,
        proposal: Proposal,
    ) -> oneshot::Receiver<Result<Replicated, ChatError>> {
        let (reply, committed) = oneshot::channel();
        if let Some(cluster) = &self.shared.cluster {
            // A closed sequencer drops the reply, which the waiter reads as "stopping".
            let _ = cluster.send(Submitted { proposal, reply });
        }
        committed
    }

    /// A user's public description, if this instance knows them.
    pub fn user_info(&self, user: UserId) -> Option<crate::chat::model::UserInfo> {
        self.lock().directory.info(user)
    }

    /// The number a room's next message gets here, if this instance knows the room.
    pub fn next_seq(&self, room: &Room) -> Option<u64> {
        self.lock().rooms.map.get(&room.key()).map(|r| r.next_seq)
    }

    /// True when a room holds messages that wait for missing numbers, or heard news of a
    /// number it could not tell yet.
    pub fn waiting(&self, room: &Room) -> bool {
        self.lock()
            .rooms
            .map
            .get(&room.key())
            .is_some_and(|r| !r.pending.is_empty() || r.heard > r.newest_known())
    }

    /// The channels whose copy here is behind what the news told of them: what a summary
    /// of unread counts needs caught up first (`reads`, invariant 4).
    pub fn stale_channels(&self) -> Vec<Room> {
        self.lock()
            .rooms
            .map
            .values()
            // `told` never passes `heard` but by the room's own messages.
            .filter(|r| r.channel.is_some() && r.heard > r.last_seq())
            .map(|r| r.room.clone())
            .collect()
    }

    /// The newest number of `room` told to unread followers here (its newest message, or
    /// newer news), if this instance holds the room.
    pub fn told(&self, room: &Room) -> Option<u64> {
        self.lock()
            .rooms
            .map
            .get(&room.key())
            .map(|r| r.newest_known())
    }

    /// Takes the news of a channel's message (cluster mode): tells the unread followers
    /// here that are not in the channel, if it is the number after the last one told;
    /// answers `Gap` if numbers before it were not told (the room's repair tells them),
    /// and `Unknown` for a channel this instance does not know yet.
    pub fn hear_news(&self, news: &super::reads::News<'_>) -> Applied {
        let encode = self.shared.encode;
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(target) = state.rooms.map.get_mut(&news.room.key()) else {
            return Applied::Unknown;
        };
        target.heard = target.heard.max(news.seq);
        let told = target.newest_known();
        if news.seq <= told {
            return Applied::Done;
        }
        if news.seq > told + 1 {
            return Applied::Gap {
                room: news.room.clone(),
                from: told + 1,
            };
        }
        target.told = news.seq;
        super::reads::announce_news(encode, &mut state.connections, &state.directory, news);
        Applied::Done
    }

    /// Every room's position, for the periodic comparison with the database.
    pub fn positions(&self) -> Vec<Position> {
        self.lock().rooms.map.values().map(Position::of).collect()
    }

    /// One room's position, if this instance holds the room.
    pub fn position(&self, room: &Room) -> Option<Position> {
        self.lock().rooms.map.get(&room.key()).map(Position::of)
    }

    /// Whether a connection here receives `room`'s live stream: cluster mode follows only
    /// rooms in use here.
    pub fn has_members(&self, room: &Room) -> bool {
        self.lock()
            .rooms
            .map
            .get(&room.key())
            .is_some_and(|r| !r.members.is_empty())
    }

    /// Whether a connection here follows unread counts (and so needs every channel's news).
    pub fn follows_unread_here(&self) -> bool {
        self.lock()
            .connections
            .map
            .values()
            .any(|conn| conn.follows_unread)
    }

    /// Whether `user` has a connection here.
    pub fn is_connected(&self, user: UserId) -> bool {
        self.lock()
            .directory
            .users
            .get(&user)
            .is_some_and(|u| !u.conns.is_empty())
    }

    /// Applies a committed change (invariant 1 of this module).
    pub fn apply(&self, change: Replicated) -> Applied {
        let shared = &self.shared;
        let encode = shared.encode;
        let mut guard = self.lock();
        let state = &mut *guard;
        match change {
            Replicated::User { user, token_hash } => {
                if !state.directory.users.contains_key(&user.id) {
                    state.directory.insert(user, token_hash, &shared.limits);
                }
                Applied::Done
            }
            Replicated::Typing { user, room } => {
                state.relay_remote_typing(encode, &room, user);
                Applied::Done
            }
            Replicated::Read { user, room, seq } => {
                state.apply_read(encode, user, &room, seq);
                Applied::Done
            }
            Replicated::Renamed { user } => {
                let Some(known) = state.directory.info(user.id) else {
                    return Applied::Unknown;
                };
                if known.name != user.name {
                    state.directory.rename(&user);
                    if state.renamed_in_rooms(&user) {
                        self.presence_later(state);
                    }
                    publish_to_everyone(
                        encode,
                        &mut state.connections,
                        HubEvent::UserRenamed { user },
                    );
                    self.changed();
                }
                Applied::Done
            }
            Replicated::Channel { channel } => {
                let room = Room::Channel(channel.name.clone());
                if !state.rooms.map.contains_key(&room.key()) {
                    let new = state.rooms.new_room(room, Some(channel.clone()));
                    state.rooms.insert(new);
                    publish_to_everyone(
                        encode,
                        &mut state.connections,
                        HubEvent::ChannelCreated { channel },
                    );
                    self.changed();
                }
                Applied::Done
            }
            Replicated::Deleted { room, id } => {
                let Some(target) = state.rooms.map.get_mut(&room.key()) else {
                    return Applied::Done;
                };
                target.pending.retain(|_, m| m.id != id);
                let removed = target.history.remove(id, target.last_seq());
                if removed.is_some() {
                    target.deletions += 1;
                    let event = HubEvent::MessageDeleted { room, id };
                    publish_to_room(encode, target, event, None);
                    self.changed();
                    let dropped = state.files.forget_files_of(removed);
                    self.remove_bytes(dropped);
                }
                Applied::Done
            }
            Replicated::Edited { message } => {
                let Some(target) = state.rooms.map.get_mut(&message.room.key()) else {
                    return Applied::Done;
                };
                let Some(edited_at) = message.edited_at else {
                    return Applied::Done;
                };
                // A message still waiting for its turn takes the new text with it.
                if let Some(waiting) = target.pending.get_mut(&message.seq) {
                    if waiting.id == message.id {
                        waiting.body = message.body.clone();
                        waiting.edited_at = Some(edited_at);
                    }
                }
                let last_seq = target.last_seq();
                let newer = target
                    .history
                    .get(message.id)
                    .is_some_and(|held| held.edited_at.is_none_or(|at| at <= edited_at));
                if newer {
                    // Counted with deletions, as the database counts it.
                    target.deletions += 1;
                    let (room, id, body) = (message.room, message.id, message.body);
                    target.history.edit(id, body.clone(), edited_at, last_seq);
                    let event = HubEvent::MessageEdited {
                        room,
                        id,
                        body,
                        edited_at,
                    };
                    publish_to_room(encode, target, event, None);
                    self.changed();
                }
                Applied::Done
            }
            Replicated::Reacted {
                room,
                id,
                emoji,
                user,
                on,
            } => {
                let Some(target) = state.rooms.map.get_mut(&room.key()) else {
                    return Applied::Done;
                };
                // A message still waiting for its turn takes the reaction with it.
                if let Some(waiting) = target.pending.values_mut().find(|m| m.id == id) {
                    waiting.react(emoji, &user, on);
                }
                let last_seq = target.last_seq();
                if target
                    .history
                    .react(id, emoji, &user, on, last_seq)
                    .is_some()
                {
                    // Counted with deletions, as the database counts it.
                    target.deletions += 1;
                    let event = HubEvent::Reaction {
                        room,
                        id,
                        emoji,
                        user,
                        on,
                    };
                    publish_to_room(encode, target, event, None);
                    self.changed();
                }
                Applied::Done
            }
            Replicated::Message { message } => {
                if !state.directory.users.contains_key(&message.author.id) {
                    return Applied::Unknown;
                }
                let Some(target) = state.room_for(&message.room) else {
                    return Applied::Unknown;
                };
                let (room, seq) = (message.room.clone(), message.seq);
                if seq < target.next_seq {
                    return Applied::Done;
                }
                if target.pending.len() >= MAX_PENDING {
                    // The gap is not being repaired (the database unreachable from here):
                    // what waits is dropped, to be read back by a later repair.
                    tracing::warn!(room = ?target.room, "too many messages waiting for a gap; dropping them");
                    target.pending.clear();
                }
                target.pending.insert(seq, message);
                let from = target.next_seq;
                self.drain(state, &room.key());
                match state.rooms.map.get(&room.key()) {
                    Some(target) if !target.pending.is_empty() => Applied::Gap { room, from },
                    _ => Applied::Done,
                }
            }
        }
    }

    /// Brings a room up to the database's state: `messages` are the ones it holds from the
    /// room's next number on, and `next_seq` is the number its next message gets
    /// (invariant 2 of this module). Returns `Applied::Unknown` if the room is a channel
    /// this instance does not know yet.
    pub fn repair(&self, room: &Room, messages: Vec<Message>, next_seq: u64) -> Applied {
        let mut guard = self.lock();
        let state = &mut *guard;
        if messages
            .iter()
            .any(|m| !state.directory.users.contains_key(&m.author.id))
        {
            return Applied::Unknown;
        }
        let Some(target) = state.room_for(room) else {
            return Applied::Unknown;
        };
        for message in messages {
            if message.seq >= target.next_seq && message.seq < next_seq {
                target.pending.insert(message.seq, message);
            }
        }
        let key = room.key();
        loop {
            self.drain(state, &key);
            let Some(target) = state.rooms.map.get_mut(&key) else {
                break;
            };
            if target.next_seq >= next_seq {
                break;
            }
            // The next number is not held and is below the database's next: it is gone for
            // good (deleted, or older than the database's ring).
            let to = target
                .pending
                .keys()
                .next()
                .copied()
                .filter(|seq| *seq < next_seq)
                .unwrap_or(next_seq);
            target.skip_to(to);
        }
        Applied::Done
    }

    /// Removes every held message of `room` the database no longer holds (`kept` are the
    /// messages it holds, by id), announcing each deletion, takes the text of each held
    /// message the database has a later edit of and the reactions the database holds,
    /// announcing them, and records the database's count of deletions, edits and reactions:
    /// the repair for a deletion, edit or reaction whose event was lost.
    ///
    /// Only messages numbered from `from` on are judged: the database's ring may already
    /// have let older ones go (a newer message this instance has not applied yet took
    /// their slot), and those are not deletions.
    pub fn reconcile_deletions(
        &self,
        room: &Room,
        kept: &std::collections::HashMap<MessageId, Message>,
        from: u64,
        deletions: u64,
    ) {
        let shared = &self.shared;
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(target) = state.rooms.map.get_mut(&room.key()) else {
            return;
        };
        let gone: Vec<MessageId> = target
            .history
            .snapshot()
            .iter()
            .filter(|m| m.seq >= from && !kept.contains_key(&m.id))
            .map(|m| m.id)
            .collect();
        let edited: Vec<Message> = target
            .history
            .snapshot()
            .iter()
            .filter_map(|m| {
                let stored = kept.get(&m.id)?;
                let newer = stored
                    .edited_at
                    .is_some_and(|at| m.edited_at.is_none_or(|held| held < at));
                newer.then(|| stored.clone())
            })
            .collect();
        for message in edited {
            let (Some(edited_at), last_seq) = (message.edited_at, target.last_seq()) else {
                continue;
            };
            target
                .history
                .edit(message.id, message.body.clone(), edited_at, last_seq);
            let event = HubEvent::MessageEdited {
                room: room.clone(),
                id: message.id,
                body: message.body,
                edited_at,
            };
            publish_to_room(shared.encode, target, event, None);
            self.changed();
        }
        // Reactions the database holds and this instance does not, then the reverse.
        let mut reactions = Vec::new();
        for held in target.history.snapshot() {
            if let Some(stored) = kept.get(&held.id) {
                reactions.extend(reaction_changes(stored, &held, true));
                reactions.extend(reaction_changes(&held, stored, false));
            }
        }
        for (id, emoji, user, on) in reactions {
            let last_seq = target.last_seq();
            if target
                .history
                .react(id, emoji, &user, on, last_seq)
                .is_some()
            {
                let room = room.clone();
                let event = HubEvent::Reaction {
                    room,
                    id,
                    emoji,
                    user,
                    on,
                };
                publish_to_room(shared.encode, target, event, None);
                self.changed();
            }
        }
        let mut dropped = Vec::new();
        for id in gone {
            if let Some(removed) = target.history.remove(id, target.last_seq()) {
                dropped.push(removed);
                let event = HubEvent::MessageDeleted {
                    room: room.clone(),
                    id,
                };
                publish_to_room(shared.encode, target, event, None);
            }
        }
        target.deletions = deletions;
        if !dropped.is_empty() {
            self.changed();
            let mut files = Vec::new();
            for message in dropped {
                files.extend(state.files.forget_files_of(Some(message)));
            }
            self.remove_bytes(files);
        }
    }

    /// Delivers a room's pending messages that are next in turn.
    fn drain(&self, state: &mut State, key: &RoomKey) {
        let shared = &self.shared;
        let Some(target) = state.rooms.map.get_mut(key) else {
            return;
        };
        let mut evicted = Vec::new();
        while let Some(message) = target.pending.remove(&target.next_seq) {
            target.next_seq = message.seq + 1;
            evicted.extend(target.history.push(message.clone()));
            if let Some(file) = &message.attachment {
                let (id, author) = (file.id.clone(), message.author.id);
                if state.files.contains(&id) {
                    state.files.mark_attached(&id);
                } else {
                    state.files.add(file.clone(), key.clone(), author, true);
                }
            }
            let seq = message.seq;
            if seq > target.told {
                // Not told by the news yet (`reads`, invariant 4).
                target.told = seq;
                super::reads::announce_activity(
                    shared.encode,
                    &mut state.connections,
                    &state.directory,
                    &message,
                );
            }
            publish_to_room(
                shared.encode,
                target,
                HubEvent::Message { message },
                Some(seq),
            );
            self.changed();
        }
        // Anything left below the next number arrived twice.
        let next = target.next_seq;
        target.pending.retain(|seq, _| *seq >= next);
        // The archive keeps evicted messages, and their files with them (the database lets
        // go of both when retention trims them).
        let archived = shared.store.archive().is_some();
        let dropped = state.files.forget_evicted(evicted, archived);
        self.remove_bytes(dropped);
    }
}

impl Hub {
    /// Every channel with a member connection here, with the users those connections belong
    /// to (none for readers who did not sign in): the channels whose presence this instance
    /// reads, and who it reports online in each.
    pub fn channels_in_use(&self) -> Vec<(Room, Vec<UserId>)> {
        let state = self.lock();
        state
            .rooms
            .map
            .values()
            .filter(|r| r.channel.is_some() && !r.members.is_empty())
            .map(|r| (r.room.clone(), r.online.here().collect()))
            .collect()
    }

    /// Takes who is online in each of `rooms` through other instances, replacing what was
    /// known of those rooms, and announces each user who came or went as a result to the
    /// rooms' members here. Other rooms keep what they had.
    pub fn set_remote_presence(&self, rooms: Vec<(Room, HashSet<UserId>)>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut changed = false;
        for (room, users) in rooms {
            changed |= state.set_remote_users(&room.key(), users);
        }
        if changed {
            self.presence_later(state);
        }
    }

    /// Forgets who is online through other instances, in every room, announcing who went
    /// (Redis has been unreachable for longer than their entries live).
    pub fn forget_remote_presence(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let keys: Vec<RoomKey> = state
            .rooms
            .map
            .iter()
            .filter(|(_, r)| r.online.has_remote())
            .map(|(key, _)| key.clone())
            .collect();
        let mut changed = false;
        for key in keys {
            changed |= state.set_remote_users(&key, HashSet::new());
        }
        if changed {
            self.presence_later(state);
        }
    }

    /// Resolves once a user's first connection here joined a channel, or their last one
    /// here left it, since the last time it resolved: the cluster then tells the other
    /// instances at once rather than at its next heartbeat.
    pub async fn presence_moved(&self) {
        self.shared.presence_moved.notified().await;
    }
}

impl State {
    /// Replaces who is online in a channel through other instances (their connections here
    /// count too), for the next presence tick (invariant 8). True if who is online there
    /// changed for members here to be told.
    fn set_remote_users(&mut self, key: &RoomKey, users: HashSet<UserId>) -> bool {
        let Some(room) = self.rooms.map.get_mut(key) else {
            return false;
        };
        let changed = room.online.set_remote(users, &self.directory);
        // A room nobody here is in is told nothing; the next joiner hears who is online.
        changed && !room.members.is_empty()
    }

    /// The room a replicated message belongs to: a private conversation is made here on
    /// its first message (live for its participants' connections); an unknown channel is
    /// `None` (the directory is behind).
    fn room_for(&mut self, room: &Room) -> Option<&mut RoomState> {
        let key = room.key();
        if !self.rooms.map.contains_key(&key) {
            let Room::Direct(direct) = room else {
                return None;
            };
            self.rooms
                .add_direct(*direct, &self.directory, &mut self.connections);
        }
        self.rooms.map.get_mut(&key)
    }
}

impl RoomState {
    /// Moves the room's next number on to `seq` past numbers that will never come: clients
    /// that hold less than that get a snapshot rather than a catch-up.
    fn skip_to(&mut self, seq: u64) {
        if seq > self.next_seq {
            tracing::debug!(room = ?self.room, from = self.next_seq, to = seq, "skipping numbers the database does not hold");
            self.next_seq = seq;
            self.history.mark_restored(seq - 1);
            // The frames built for joins carry the old newest number.
            self.forget_frames();
        }
    }
}

/// The reactions `from` has that `other` lacks, each as the change (`on`) that would give
/// it to, or take it from, `other`'s message.
fn reaction_changes(
    from: &Message,
    other: &Message,
    on: bool,
) -> Vec<(MessageId, crate::chat::model::Emoji, UserInfo, bool)> {
    let mut changes = Vec::new();
    for reaction in &from.reactions {
        for user in &reaction.users {
            if !other.reacted(reaction.emoji, user.id) {
                changes.push((from.id, reaction.emoji, user.clone(), on));
            }
        }
    }
    changes
}
