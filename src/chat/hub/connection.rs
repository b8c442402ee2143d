//! [`Connection`]: one client connection's view of the hub, and everything a connection
//! does: authenticate, join and leave rooms, post, edit, react, delete and rename.

use super::directory::Allowance;
use super::fanout::{publish_to_everyone, publish_to_room, HubEvent};
use super::files::remove_files_once_stored;
use super::outbox::ConnId;
use super::reads::announce_activity;
use super::rooms::{CatchUp, Member};
use super::saved::Saved;
use super::Durable;
use super::{Hub, State};
use crate::chat::model::{
    ChatError, Cursor, DisplayName, Emoji, FileId, Message, MessageBody, MessageId, Reply, Room,
    RoomKey, Timestamp, UserId, UserInfo,
};
use crate::chat::replica::{Proposal, Replicated};

/// One client connection's view of the hub. Dropping it unsubscribes it everywhere.
pub struct Connection {
    pub(super) hub: Hub,
    pub(super) id: ConnId,
}

impl Connection {
    /// This connection's identity inside the hub.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The user this connection authenticated as, if it did.
    pub fn user_id(&self) -> Option<UserId> {
        self.hub.lock().connections.user(self.id)
    }

    pub(super) fn user(&self, state: &State) -> Result<UserId, ChatError> {
        state
            .connections
            .user(self.id)
            .ok_or(ChatError::NotIdentified)
    }

    /// Proves who this connection is. From now on its actions are that user's, and it
    /// receives that user's private conversations live.
    pub fn authenticate(&self, token: &str) -> Result<UserInfo, ChatError> {
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let info = state.directory.by_token(token)?.info.clone();
        let conn = state
            .connections
            .map
            .get_mut(&self.id)
            .ok_or_else(|| ChatError::Unavailable("connection closed".into()))?;
        if conn.user.is_some_and(|u| u != info.id) {
            return Err(ChatError::Forbidden);
        }
        conn.user = Some(info.id);
        if let Some(user) = state.directory.users.get_mut(&info.id) {
            user.conns.insert(self.id);
        }
        // Channels joined before authenticating now count this user as online.
        let mut changed = false;
        for key in &conn.rooms {
            let Some(room) = state.rooms.map.get_mut(key) else {
                continue;
            };
            let (first, came) = room.identify_member(self.id, info.id, &state.directory);
            if first {
                self.hub.shared.presence_moved.notify_one();
            }
            changed |= came;
        }
        // Private conversations are always live for their participants.
        for (key, room) in state.rooms.map.iter_mut() {
            if let RoomKey::Direct(direct) = key {
                if direct.includes(info.id) {
                    conn.rooms.insert(key.clone());
                    room.members
                        .insert(self.id, Member::live(conn, room.last_seq()));
                }
            }
        }
        if changed {
            self.hub.presence_later(state);
        }
        Ok(info)
    }

    /// Subscribes to a room: queues a `joined` event holding what the client missed since
    /// `since` (or a snapshot), then live events, with no gap and no duplicate (invariant 2).
    pub fn join(&self, room: &Room, since: Option<Cursor>) -> Result<(), ChatError> {
        let shared = &self.hub.shared;
        let epoch = shared.epoch;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = state.connections.user(self.id);
        let target = state
            .rooms
            .open(room, user, &mut state.directory, &mut state.connections)?;
        // Private conversations have no presence: their participants are always members.
        let was_present = target.channel.is_none() || user.is_some_and(|u| target.is_online(u));
        if let (Some(user), false) = (user, was_present) {
            // Each join may announce the user to everyone there: limited per user, across
            // their connections (one connection is also read more slowly; see the server).
            state.directory.allow(user, Allowance::Joins)?;
        }
        let conn = state
            .connections
            .map
            .get_mut(&self.id)
            .ok_or_else(|| ChatError::Unavailable("connection closed".into()))?;
        // The `joined` carries the online window the members were last told, which the
        // joiner is on from the next presence tick (invariant 8).
        let (first, came) = target.add_member(self.id, Member::live(conn, 0), &state.directory);
        if first {
            shared.presence_moved.notify_one();
        }
        let cursor = since.filter(|c| c.epoch == epoch).map(|c| c.seq);
        let (joined, reset) = target.joined_frame(shared.encode, epoch, cursor, &state.directory);
        let sent = conn.outbox.offer(joined);
        let newest = target.last_seq();
        if let Some(member) = target.members.get_mut(&self.id) {
            if sent {
                member.last_seq = newest;
            } else {
                member.last_seq = cursor.unwrap_or(0);
                member.behind = Some(if reset {
                    CatchUp::Reset
                } else {
                    CatchUp::After
                });
            }
        }
        conn.rooms.insert(room.key());
        if came {
            self.hub.presence_later(state);
        }
        Ok(())
    }

    /// Stops the live stream of a channel. Leaving a channel one is not in, or a private
    /// conversation (always live for its participants), does nothing.
    pub fn leave(&self, room: &Room) -> Result<(), ChatError> {
        if let Room::Channel(_) = room {
            let mut state = self.hub.lock();
            if state.leave(self.id, &room.key()) {
                self.hub.shared.presence_moved.notify_one();
                self.hub.presence_later(&mut state);
            }
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
        self.post_once(room, raw_body, attachment, None, None)
    }

    /// [`Connection::post`] answering the message `reply_to` (which must be in the same
    /// room's history: else `no_such_reply`, checked after the room and before the user's
    /// allowance), with the client's reference for the post: a resent post with a reference
    /// its author already used is answered with the first one and not stored twice (one
    /// instance: among the author's latest posts, while the first is still in the room's
    /// history in memory; cluster mode: by the database).
    pub fn post_once(
        &self,
        room: &Room,
        raw_body: &str,
        attachment: Option<&FileId>,
        reply_to: Option<MessageId>,
        client_ref: Option<&str>,
    ) -> Result<Saved<Message>, ChatError> {
        let shared = &self.hub.shared;
        let body = MessageBody::for_post(
            raw_body,
            shared.limits.max_message_chars,
            attachment.is_some(),
        )?;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = self.user(state)?;
        let attachment = match attachment {
            Some(id) => Some(
                state
                    .files
                    .unsent(id, user, &room.key())
                    .cloned()
                    .ok_or(ChatError::NoSuchFile)?,
            ),
            None => None,
        };
        let id = MessageId(state.rooms.next_message_id);
        // The room must exist (and be the user's to post in) before the post counts against
        // the user's allowance.
        let target = state.rooms.open(
            room,
            Some(user),
            &mut state.directory,
            &mut state.connections,
        )?;
        // The same post again (its `ack` was lost with the connection, and the browser
        // resent it): answered with the first, once that is stored, and not charged again.
        if !self.hub.is_replica() {
            let held = client_ref
                .and_then(|r| state.directory.posted_as(user, &target.room.key(), r))
                .and_then(|first| target.history.get(first).cloned());
            if let Some(first) = held {
                let mut first = state.directory.with_current_names(vec![first]);
                if let Some(first) = first.pop() {
                    return Ok(Saved::new(first, shared.store.barrier(), "message"));
                }
            }
        }
        // Only a message of this room the server still holds: one of another room is as
        // unknown here as one that never was (a private room's messages stay private).
        let reply = match reply_to {
            Some(original) => Some(Box::new(Reply::to(
                target.history.get(original).ok_or(ChatError::NoSuchReply)?,
            ))),
            None => None,
        };
        state.directory.allow(user, Allowance::Messages)?;
        let author = state.directory.info(user).ok_or(ChatError::Unauthorized)?;
        let message = Message {
            id,
            room: target.room.clone(),
            seq: target.next_seq,
            author,
            body,
            attachment,
            sent_at: Timestamp::now(),
            edited_at: None,
            reactions: Vec::new(),
            reply,
        };
        if self.hub.is_replica() {
            drop(guard);
            // The database numbers and stamps it; every instance delivers it once committed.
            let committed = self.hub.propose(Proposal::Post {
                message,
                client_ref: client_ref.map(str::to_owned),
            });
            return Ok(Saved::proposed(committed, "message", |done| match done {
                Replicated::Message { message } => Ok(message),
                other => Err(super::unexpected(other)),
            }));
        }
        // Handed to the store under the lock, so the store writes messages in their order;
        // the write itself happens behind (see `Saved`).
        let durable = shared.store.put_message(&message);
        target.next_seq += 1;
        let evicted = target.history.push(message.clone());
        let seq = message.seq;
        publish_to_room(
            shared.encode,
            target,
            HubEvent::Message {
                message: message.clone(),
            },
            Some(seq),
        );
        announce_activity(
            shared.encode,
            &mut state.connections,
            &state.directory,
            &message,
        );
        state.rooms.next_message_id += 1;
        if let Some(client_ref) = client_ref {
            state
                .directory
                .remember_post(user, message.room.key(), client_ref, message.id);
        }
        self.hub.changed();
        if let Some(file) = &message.attachment {
            state.files.mark_attached(&file.id);
        }
        // Evicted messages stay in a durable store's archive, and their files with them.
        let archived = shared.store.archive().is_some();
        let dropped = state.files.forget_evicted(evicted, archived);
        // Only a post that evicted files queues a barrier (most evict none): under the lock,
        // behind the message that evicted them.
        let evicted_stored = (!dropped.is_empty()).then(|| shared.store.barrier());
        drop(guard);
        if let Some(stored) = evicted_stored {
            remove_files_once_stored(shared.limits.files_dir.as_deref(), dropped, stored);
        }
        Ok(Saved::new(message, durable, "message"))
    }

    /// Deletes one of this user's own messages, for everyone.
    pub fn delete(&self, room: &Room, id: MessageId) -> Result<(), ChatError> {
        let shared = &self.hub.shared;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = self.user(state)?;
        let target = state.rooms.open(
            room,
            Some(user),
            &mut state.directory,
            &mut state.connections,
        )?;
        target.own_message(id, user)?;
        if self.hub.is_replica() {
            let (room, hub) = (target.room.clone(), self.hub.clone());
            drop(guard);
            // Applied everywhere once committed; a failure is the sequencer's to log.
            drop(hub.propose(Proposal::Delete { room, id }));
            return Ok(());
        }
        // Written behind; a failure is logged by the store, and the message comes back only
        // if the server restarts (with its file: see below).
        let deleted = shared.store.delete_message(&target.room, id);
        let removed = target.history.remove(id, target.last_seq());
        let event = HubEvent::MessageDeleted {
            room: target.room.clone(),
            id,
        };
        publish_to_room(shared.encode, target, event, None);
        self.hub.changed();
        let dropped = state.files.forget_files_of(removed);
        drop(guard);
        remove_files_once_stored(shared.limits.files_dir.as_deref(), dropped, deleted);
        Ok(())
    }

    /// Replaces the text of one of this user's own messages, for everyone. Checked as a post
    /// is (the body's rules, then identity, the room, and the user's allowance of messages:
    /// an edit costs what a post does); only messages still in the room's history can be
    /// edited. The author is to be told only once [`Saved::stored`] resolves.
    pub fn edit(
        &self,
        room: &Room,
        id: MessageId,
        raw_body: &str,
    ) -> Result<Saved<Message>, ChatError> {
        let shared = &self.hub.shared;
        let max = shared.limits.max_message_chars;
        // The body's own rules first, as for a post (a blank text is judged once the
        // message is found: one with a file may have none).
        MessageBody::for_edit(raw_body, max, true)?;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = self.user(state)?;
        let target = state.rooms.open(
            room,
            Some(user),
            &mut state.directory,
            &mut state.connections,
        )?;
        let message = target.own_message(id, user)?;
        let body = MessageBody::for_edit(raw_body, max, message.attachment.is_some())?;
        state.directory.allow(user, Allowance::Messages)?;
        let edited_at = Timestamp::now().max(message.sent_at);
        if self.hub.is_replica() {
            let mut edited = message.clone();
            edited.body = body;
            edited.edited_at = Some(edited_at);
            drop(guard);
            // Applied everywhere once committed, this instance included.
            let committed = self.hub.propose(Proposal::Edit { message: edited });
            return Ok(Saved::proposed(committed, "edit", |done| match done {
                Replicated::Edited { message } => Ok(message),
                other => Err(super::unexpected(other)),
            }));
        }
        let last_seq = target.last_seq();
        let Some(edited) = target.history.edit(id, body, edited_at, last_seq).cloned() else {
            return Err(ChatError::NoSuchMessage);
        };
        // Handed to the store under the lock, behind the post it edits.
        let durable = shared.store.edit_message(&edited);
        let event = HubEvent::MessageEdited {
            room: target.room.clone(),
            id,
            body: edited.body.clone(),
            edited_at,
        };
        publish_to_room(shared.encode, target, event, None);
        self.hub.changed();
        Ok(Saved::new(edited, durable, "edit"))
    }

    /// Adds (`on`) or takes away this user's reaction `raw_emoji` on a message of a room they
    /// may read, for everyone. Checked in this order: the emoji, identity, the room, the
    /// message (still in the room's history), the limits of a new reaction, then the user's
    /// allowance of messages (a reaction costs what a post does, even one that changes
    /// nothing). One that changes nothing (given twice, or taken away when absent) is not
    /// stored and not sent. The reacting user is to be told only of a failure, once
    /// [`Saved::stored`] resolves: the write failed (the reaction is lost at the next
    /// restart), or, in cluster mode, the database refused it (the message deleted, or a
    /// limit reached through another instance, meanwhile).
    pub fn react(
        &self,
        room: &Room,
        id: MessageId,
        raw_emoji: &str,
        on: bool,
    ) -> Result<Saved<()>, ChatError> {
        let emoji = Emoji::parse(raw_emoji)?;
        let shared = &self.hub.shared;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = self.user(state)?;
        let target = state.rooms.open(
            room,
            Some(user),
            &mut state.directory,
            &mut state.connections,
        )?;
        let message = target.history.get(id).ok_or(ChatError::NoSuchMessage)?;
        if on {
            message.may_react(emoji, user)?;
        }
        state.directory.allow(user, Allowance::Messages)?;
        let info = state.directory.info(user).ok_or(ChatError::Unauthorized)?;
        if self.hub.is_replica() {
            let room = target.room.clone();
            drop(guard);
            // Applied everywhere once committed, this instance included.
            let committed = self.hub.propose(Proposal::React {
                room,
                id,
                emoji,
                user: info,
                on,
            });
            return Ok(Saved::proposed(committed, "reaction", |done| match done {
                Replicated::Reacted { .. } => Ok(()),
                other => Err(super::unexpected(other)),
            }));
        }
        let last_seq = target.last_seq();
        let Some(reacted) = target.history.react(id, emoji, &info, on, last_seq) else {
            return Ok(Saved::new((), Durable::done(Ok(())), "reaction"));
        };
        // Handed to the store under the lock, behind the post it reacts to; the whole
        // message is written again, with its reactions.
        let durable = shared.store.edit_message(reacted);
        let event = HubEvent::Reaction {
            room: target.room.clone(),
            id,
            emoji,
            user: info,
            on,
        };
        publish_to_room(shared.encode, target, event, None);
        self.hub.changed();
        Ok(Saved::new((), durable, "reaction"))
    }

    /// Changes this user's display name, everywhere and for everyone.
    pub fn rename(&self, raw_name: &str) -> Result<Saved<UserInfo>, ChatError> {
        let name = DisplayName::parse_new(raw_name)?;
        let shared = &self.hub.shared;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = self.user(state)?;
        state.directory.check_free(&name, Some(user))?;
        state.directory.allow(user, Allowance::Renames)?;
        let info = UserInfo { id: user, name };
        if self.hub.is_replica() {
            drop(guard);
            let committed = self.hub.propose(Proposal::Rename(info));
            return Ok(Saved::proposed(committed, "name", |done| match done {
                Replicated::Renamed { user } => Ok(user),
                other => Err(super::unexpected(other)),
            }));
        }
        let durable = shared.store.rename_user(&info);
        state.directory.rename(&info);
        // Held messages keep the name they were posted under; every way they leave the hub
        // puts the current one on (see `Directory::with_current_names`), so a rename
        // touches no message. Snapshots already encoded carry the old name: drop them.
        if state.renamed_in_rooms(&info) {
            self.hub.presence_later(state);
        }
        publish_to_everyone(
            shared.encode,
            &mut state.connections,
            HubEvent::UserRenamed { user: info.clone() },
        );
        self.hub.changed();
        Ok(Saved::new(info, durable, "name"))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        for key in state.connections.rooms_of(self.id) {
            if state.leave(self.id, &key) {
                self.hub.shared.presence_moved.notify_one();
                self.hub.presence_later(state);
            }
        }
        if let Some(conn) = state.connections.map.remove(&self.id) {
            if let Some(user) = conn.user.and_then(|u| state.directory.users.get_mut(&u)) {
                user.conns.remove(&self.id);
            }
        }
    }
}
