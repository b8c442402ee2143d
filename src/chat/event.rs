//! What the hub publishes: the domain events every connection in a room (or every
//! connection) receives alike. Declared here, outside the server-only hub, because the
//! browser reads the very same values back: the wire protocol carries them as they are, with
//! `type` written first, beside the few events a connection gets only for itself (see
//! `protocol::ServerEvent`).

use super::model::{
    ChannelInfo, Emoji, Limits, Message, MessageBody, MessageId, Room, RoomUnread, Timestamp,
    UserInfo,
};
use serde::Serialize;

/// Everything the hub sends to connections. Member names are the wire's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubEvent {
    /// First event on every connection (and again after it missed a directory change): the
    /// epoch, the current channel list, sorted by name, and the limits clients should check.
    Welcome {
        /// Changes whenever sequence numbers from before it can no longer be trusted.
        epoch: u64,
        /// Every channel, sorted by name.
        channels: Vec<ChannelInfo>,
        /// What this server refuses, so the client can refuse it first.
        limits: Limits,
    },
    /// Someone created a channel.
    ChannelCreated { channel: ChannelInfo },
    /// The answer to a join, before any live event of that room.
    Joined {
        room: Room,
        epoch: u64,
        /// True: `messages` is the whole history and replaces what the client holds.
        /// False: `messages` are exactly the ones after the client's cursor.
        reset: bool,
        /// The sequence number of the room's newest message (0 if none): the cursor to
        /// continue from.
        last_seq: u64,
        /// Oldest first.
        messages: Vec<Message>,
        /// For a channel, who is online in it as its members were last told (the hub's
        /// invariant 8): at most [`crate::chat::model::ONLINE_SHOWN`] users, the first by
        /// name, sorted by name. The joiner is on it from the next `presence`.
        online: Vec<UserInfo>,
        /// For a channel, how many distinct users are online in it, as last told: `online`
        /// holds all of them when this is at most its length.
        online_count: usize,
    },
    /// A live message in a joined room.
    Message { message: Message },
    /// A message was deleted by its author.
    MessageDeleted { room: Room, id: MessageId },
    /// A message's author changed its text: `body` replaces it, `edited_at` says when.
    MessageEdited {
        room: Room,
        id: MessageId,
        body: MessageBody,
        edited_at: Timestamp,
    },
    /// `user` added (`on`) or took away their reaction `emoji` on message `id`: sent only
    /// when that changed something.
    Reaction {
        room: Room,
        id: MessageId,
        emoji: Emoji,
        user: UserInfo,
        on: bool,
    },
    /// A user changed their display name (sent to every connection).
    UserRenamed {
        /// The user, with the new name.
        user: UserInfo,
    },
    /// How a channel's online list changed since its last `presence` (or the `joined`
    /// since): at most one per channel per presence tick, however many people come and go,
    /// and at most one a second while more than [`crate::chat::model::ONLINE_SHOWN`] are
    /// online (see the hub's invariant 8). Removing `went` from the list last told, then
    /// adding `came`, gives the list as it is now.
    Presence {
        room: Room,
        /// Users now on the list who were not, sorted by name.
        came: Vec<UserInfo>,
        /// Users no longer on the list, sorted by name (gone, or pushed past the first
        /// [`crate::chat::model::ONLINE_SHOWN`] by others).
        went: Vec<UserInfo>,
        /// How many distinct users are online in the channel now.
        online_count: usize,
    },
    /// To a connection following unread counts (its user's own): the user's state in some
    /// rooms, which replaces what the client holds for them. All the rooms the user may read
    /// that have messages, when the connection asks; one room when the user's read position
    /// there moved (on any of their connections).
    Unread { rooms: Vec<RoomUnread> },
    /// To a connection following unread counts: a new message in a channel it has not
    /// joined, by someone else (its body stays in the channel).
    Activity {
        room: Room,
        seq: u64,
        /// True when the message mentions the connection's user by their current name.
        mention: bool,
    },
    /// To a room's other members: `user` is typing there (see `ClientEvent::Typing`).
    /// Clients forget it after a few seconds, or when a message of theirs arrives.
    Typing { room: Room, user: UserInfo },
}
