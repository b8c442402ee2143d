//! What the hub tells connections, and the one place it is sent from.
//!
//! The hub speaks in domain events ([`HubEvent`]); the transport hands it an [`Encoder`] at
//! construction, and every event is encoded once, under the lock, into a [`Frame`] shared
//! by all its receivers. [`publish_to_room`] and [`publish_to_everyone`] are the seam a
//! second instance would plug into: an event published here would also go to the other
//! instances, and an event received from one would be delivered through these same two
//! functions.

use super::connections::Connections;
use super::outbox::Frame;
use super::rooms::{CatchUp, RoomState};
use crate::chat::model::{ChannelInfo, Limits, Message, MessageId, Room, UserInfo};

/// Everything the hub sends to connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubEvent {
    /// First event on every connection (and again after it missed a directory change): the
    /// epoch, the current channel list, sorted by name, and the limits clients should check.
    Welcome {
        epoch: u64,
        channels: Vec<ChannelInfo>,
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
        /// The sequence number of the room's newest message (0 if none).
        last_seq: u64,
        /// Oldest first.
        messages: Vec<Message>,
        /// For a channel, the users connected to it now, sorted by name.
        online: Vec<UserInfo>,
    },
    /// A live message in a joined room.
    Message { message: Message },
    /// A message was deleted by its author.
    MessageDeleted { room: Room, id: MessageId },
    /// A user changed their display name.
    UserRenamed { user: UserInfo },
    /// A user came online in a channel (`online`), or their last connection left it.
    Presence {
        room: Room,
        user: UserInfo,
        online: bool,
    },
}

/// Turns an event into the frame connections receive: the wire encoding, chosen by the
/// transport. Called with the hub's lock held, once per event whatever its audience.
pub type Encoder = fn(HubEvent) -> Frame;

/// Offers an event to every live member of a room. With `seq`, the event carries that
/// message, and members it reaches now hold everything up to it (invariant 1); a member
/// whose outbox is full is marked behind, to be resynced (invariant 3).
pub(super) fn publish_to_room(
    encode: Encoder,
    room: &mut RoomState,
    event: HubEvent,
    seq: Option<u64>,
) {
    let frame = encode(event);
    for member in room.members.values_mut() {
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

/// Offers an event to every connection (channel list and user directory changes); one that
/// does not fit is repaired by the connection's next resync.
pub(super) fn publish_to_everyone(encode: Encoder, connections: &mut Connections, event: HubEvent) {
    let frame = encode(event);
    for conn in connections.map.values_mut() {
        if !conn.outbox.offer(frame.clone()) {
            conn.missed_directory = true;
        }
    }
}
