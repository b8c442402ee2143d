//! Rooms: each one's history, sequence numbers and members (who receives its live stream),
//! and the presence that follows from its members.

use super::connections::{ConnEntry, Connections};
use super::directory::{Allowance, Directory};
use super::fanout::{Encoder, HubEvent};
use super::online::Online;
use super::outbox::{ConnId, Frame, Outbox};
use crate::chat::history::History;
use crate::chat::model::{
    ChannelInfo, ChannelKey, ChannelName, ChatError, LookAlike, Message, MessageId, Room, RoomKey,
    UserId,
};
use std::collections::HashMap;

/// Every room the hub knows, and the id the next message gets.
pub(super) struct Rooms {
    pub(super) map: HashMap<RoomKey, RoomState>,
    /// Which channel each look of a channel name belongs to, so no new channel looks like
    /// one that exists. Channels stored before look-alikes were refused may share a look;
    /// the first loaded is recorded, and all of them keep their own keys in `map`.
    looks: HashMap<LookAlike, ChannelKey>,
    /// Message ids are unique across all rooms.
    pub(super) next_message_id: u64,
    /// How many messages each room's history keeps.
    history: usize,
}

pub(super) struct RoomState {
    pub(super) room: Room,
    /// Set for channels.
    pub(super) channel: Option<ChannelInfo>,
    pub(super) history: History,
    /// The number the next message gets.
    pub(super) next_seq: u64,
    /// Connections receiving the live stream.
    pub(super) members: HashMap<ConnId, Member>,
    /// The room's whole-history `joined` frame, as it is now, once one was built: joins and
    /// resyncs that need a snapshot share it instead of each copying and encoding the
    /// history. Whatever changes the history, the told online list or a name clears it
    /// ([`RoomState::forget_frames`]): every room event passes [`publish_to_room`] (a
    /// `presence` too), a rename clears every room's, and so does a told list changed
    /// unheard in a room nobody is in.
    snapshot: Option<Frame>,
    /// The catch-up `joined` frame for the latest cursor a join asked with, as it is now:
    /// a crowd reconnecting from one cursor (after a restart) shares one. Cleared with
    /// `snapshot`.
    catch_up: Option<(u64, Frame)>,
    /// Cluster mode: committed messages that arrived ahead of their turn, by `seq` (see
    /// [`super::replicas`]).
    pub(super) pending: std::collections::BTreeMap<u64, crate::chat::model::Message>,
    /// Cluster mode: the deletions this room has seen, compared with the database's count.
    pub(super) deletions: u64,
    /// Channels: who is online here and through other instances (cluster mode: current
    /// for channels with a member here, emptied when the last member here leaves), by
    /// name, and the window of them the members were last told (invariant 8).
    pub(super) online: Online,
    /// Cluster mode: the newest number whose `activity` this instance has told its unread
    /// followers, from the room's own changes or from the news of a room it does not follow
    /// ([`super::reads`], invariant 4). Numbers are told once each, in order.
    pub(super) told: u64,
    /// Cluster mode: the newest number heard of in the news, told or not yet (a number
    /// above `told + 1` waits for the room's repair).
    pub(super) heard: u64,
}

pub(super) struct Member {
    pub(super) outbox: Outbox,
    /// Who the connection is, if it authenticated.
    pub(super) user: Option<UserId>,
    /// The newest sequence number this member has been sent (or told it holds).
    pub(super) last_seq: u64,
    /// `None` while live; otherwise what the member needs before it is live again.
    pub(super) behind: Option<CatchUp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CatchUp {
    /// Everything after `last_seq`.
    After,
    /// A whole new snapshot (its cursor was unusable).
    Reset,
}

impl Member {
    pub(super) fn live(conn: &ConnEntry, last_seq: u64) -> Member {
        Member {
            outbox: conn.outbox.clone(),
            user: conn.user,
            last_seq,
            behind: None,
        }
    }
}

/// A channel's name for people, or "" for a private conversation.
pub(super) fn name_of(room: &Room) -> String {
    room.channel().map(ToString::to_string).unwrap_or_default()
}

impl Rooms {
    pub(super) fn new(history: usize) -> Rooms {
        Rooms {
            map: HashMap::new(),
            looks: HashMap::new(),
            next_message_id: 1,
            history,
        }
    }

    /// A new room, not yet added, whose history keeps the configured number of messages.
    pub(super) fn new_room(&self, room: Room, channel: Option<ChannelInfo>) -> RoomState {
        RoomState::new(room, channel, self.history)
    }

    /// How many channels there are.
    pub(super) fn channel_count(&self) -> usize {
        self.map.values().filter(|r| r.channel.is_some()).count()
    }

    /// Adds a room, loaded or new, recording a channel's look.
    pub(super) fn insert(&mut self, room: RoomState) {
        let key = room.room.key();
        if let (Some(name), RoomKey::Channel(channel)) = (room.room.channel(), &key) {
            self.looks
                .entry(name.look_alike())
                .or_insert_with(|| channel.clone());
        }
        self.map.insert(key, room);
    }

    /// The channel named `name`, or failing that one whose name looks like it (the same but
    /// for case, or a look-alike: see [`LookAlike`]).
    pub(super) fn channel_like(&self, name: &ChannelName) -> Option<&RoomState> {
        self.map.get(&RoomKey::Channel(name.key())).or_else(|| {
            let key = self.looks.get(&name.look_alike())?;
            self.map.get(&RoomKey::Channel(key.clone()))
        })
    }

    /// Adds a private conversation, live for every connection of both participants.
    pub(super) fn add_direct(
        &mut self,
        direct: crate::chat::model::DirectKey,
        directory: &Directory,
        connections: &mut Connections,
    ) {
        let room = Room::Direct(direct);
        let key = room.key();
        let mut state = self.new_room(room, None);
        for user in direct.users() {
            for conn_id in directory
                .users
                .get(&user)
                .map(|u| &u.conns)
                .into_iter()
                .flatten()
            {
                if let Some(conn) = connections.map.get_mut(conn_id) {
                    conn.rooms.insert(key.clone());
                    state.members.insert(*conn_id, Member::live(conn, 0));
                }
            }
        }
        self.map.insert(key, state);
    }

    /// Every channel, sorted by name without regard to case.
    pub(super) fn channel_list(&self) -> Vec<ChannelInfo> {
        let mut list: Vec<ChannelInfo> = self
            .map
            .values()
            .filter_map(|r| r.channel.clone())
            .collect();
        list.sort_by_key(|c| c.name.key());
        list
    }

    /// The room a connection of `user` may use: channels must exist; private conversations
    /// are created on first use, only between existing users, only by a participant.
    /// Starting a private conversation takes from the starter's allowance.
    pub(super) fn open(
        &mut self,
        room: &Room,
        user: Option<UserId>,
        directory: &mut Directory,
        connections: &mut Connections,
    ) -> Result<&mut RoomState, ChatError> {
        let key = room.key();
        if let Room::Direct(direct) = room {
            let me = user.ok_or(ChatError::NotIdentified)?;
            if !direct.includes(me) {
                return Err(ChatError::Forbidden);
            }
            if !directory.users.contains_key(&direct.other(me)) {
                return Err(ChatError::NoSuchUser);
            }
            if !self.map.contains_key(&key) {
                directory.allow(me, Allowance::Directs)?;
                self.add_direct(*direct, directory, connections);
            }
        }
        self.map.get_mut(&key).ok_or_else(|| match room {
            Room::Channel(name) => ChatError::NoSuchChannel(name.to_string()),
            Room::Direct(_) => ChatError::NoSuchUser,
        })
    }
}

impl RoomState {
    /// The message `id` of this room's history, if `user` wrote it: only its author may
    /// change or delete it (`no_such_message` if it is not held, `not_your_message` if it
    /// is someone else's).
    pub(super) fn own_message(&self, id: MessageId, user: UserId) -> Result<&Message, ChatError> {
        let message = self.history.get(id).ok_or(ChatError::NoSuchMessage)?;
        if message.author.id != user {
            return Err(ChatError::NotYourMessage);
        }
        Ok(message)
    }

    fn new(room: Room, channel: Option<ChannelInfo>, history: usize) -> RoomState {
        RoomState {
            room,
            channel,
            history: History::with_capacity(history),
            next_seq: 1,
            members: HashMap::new(),
            snapshot: None,
            catch_up: None,
            pending: Default::default(),
            deletions: 0,
            online: Online::default(),
            told: 0,
            heard: 0,
        }
    }

    /// The sequence number of the newest message (0 if none).
    pub(super) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The newest number this instance knows the room has: its own newest, or a newer one
    /// told by the news while it does not follow the room (cluster mode).
    pub(super) fn newest_known(&self) -> u64 {
        self.last_seq().max(self.told)
    }

    /// The `joined` frame for a member holding everything up to `cursor` (or nothing), and
    /// whether it is a whole new snapshot (`reset`). Snapshots are built once and shared.
    pub(super) fn joined_frame(
        &mut self,
        encode: Encoder,
        epoch: u64,
        cursor: Option<u64>,
        directory: &Directory,
    ) -> (Frame, bool) {
        let last_seq = self.last_seq();
        if let (Some((seq, frame)), Some(cursor)) = (&self.catch_up, cursor) {
            if *seq == cursor {
                return (frame.clone(), false);
            }
        }
        if let Some((seq, missed)) =
            cursor.and_then(|seq| Some((seq, self.history.since(seq, last_seq)?)))
        {
            let missed = directory.with_current_names(missed);
            let frame = encode(self.joined_event(epoch, false, missed));
            self.catch_up = Some((seq, frame.clone()));
            return (frame, false);
        }
        if let Some(frame) = &self.snapshot {
            return (frame.clone(), true);
        }
        let messages = directory.with_current_names(self.history.snapshot());
        let event = self.joined_event(epoch, true, messages);
        let frame = encode(event);
        self.snapshot = Some(frame.clone());
        (frame, true)
    }

    /// Forgets the `joined` frames built, now that what they hold changed.
    pub(super) fn forget_frames(&mut self) {
        self.snapshot = None;
        self.catch_up = None;
    }

    fn joined_event(
        &self,
        epoch: u64,
        reset: bool,
        messages: Vec<crate::chat::model::Message>,
    ) -> HubEvent {
        let (online, online_count) = self.online.told();
        HubEvent::Joined {
            room: self.room.clone(),
            epoch,
            reset,
            last_seq: self.last_seq(),
            messages,
            online,
            online_count,
        }
    }

    /// Registers a member connection (again, if it was one), counting its user as here in
    /// a channel: `(first, changed)`, whether it is the user's first connection here and
    /// whether who is online changed. A channel nobody was in first takes who is online now
    /// as what its members were told (nobody holds the old), so the joiner's `joined` and
    /// the next `presence` share one base.
    pub(super) fn add_member(
        &mut self,
        id: ConnId,
        member: Member,
        directory: &Directory,
    ) -> (bool, bool) {
        if self.channel.is_none() {
            self.members.insert(id, member);
            return (false, false);
        }
        if self.members.is_empty() && self.online.retell_unheard(directory) {
            self.forget_frames();
        }
        let user = member.user;
        let before = self.members.insert(id, member).and_then(|m| m.user);
        if before == user {
            // Joined again: counted already.
            return (false, false);
        }
        if let Some(old) = before {
            self.online.remove_here(old);
        }
        let Some(user) = user else {
            return (false, false);
        };
        self.count_here(user, directory)
    }

    /// Counts an existing member connection as `user`'s now that it authenticated:
    /// `(first, changed)` as for [`RoomState::add_member`].
    pub(super) fn identify_member(
        &mut self,
        id: ConnId,
        user: UserId,
        directory: &Directory,
    ) -> (bool, bool) {
        let Some(member) = self.members.get_mut(&id) else {
            return (false, false);
        };
        if member.user.is_some() {
            return (false, false);
        }
        member.user = Some(user);
        if self.channel.is_none() {
            return (false, false);
        }
        self.count_here(user, directory)
    }

    /// Counts one more connection of `user` here: `(first, changed)` as for
    /// [`RoomState::add_member`].
    fn count_here(&mut self, user: UserId, directory: &Directory) -> (bool, bool) {
        let was_online = self.online.is_online(user);
        let first = self.online.add_here(user, directory);
        (first, !was_online)
    }

    /// Removes a member connection: `(user, last)`, its user and whether it was their last
    /// connection here; `None` if it was not a member. Who is online elsewhere is read only
    /// for channels in use here, so the last member leaving forgets them.
    pub(super) fn remove_member(
        &mut self,
        id: ConnId,
        directory: &Directory,
    ) -> Option<(Option<UserId>, bool)> {
        let member = self.members.remove(&id)?;
        if self.members.is_empty() {
            self.online.set_remote(Default::default(), directory);
        }
        let last = member.user.is_some_and(|u| self.online.remove_here(u));
        Some((member.user, last))
    }

    /// True when `user` is online in this channel, here or through another instance.
    pub(super) fn is_online(&self, user: UserId) -> bool {
        self.online.is_online(user)
    }
}
