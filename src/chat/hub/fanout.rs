//! What the hub tells connections, and the one place it is sent from.
//!
//! The hub speaks in domain events ([`HubEvent`], declared in [`crate::chat::event`] so the
//! browser can read them too); the transport hands it an [`Encoder`] at
//! construction, and every event is encoded once, under the lock, into a [`Frame`] shared
//! by all its receivers. [`publish_to_room`] and [`publish_to_everyone`] are the seam a
//! second instance would plug into: an event published here would also go to the other
//! instances, and an event received from one would be delivered through these same two
//! functions.

use super::connections::Connections;
use super::outbox::Frame;
use super::rooms::{CatchUp, RoomState};
pub use crate::chat::event::HubEvent;

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
    // Every room event changes what a snapshot of the room holds.
    room.forget_frames();
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
