//! Typing notices (issue 18, item 5): "Ann is typing..." for the other members of a room,
//! never stored. Each costs a frame per member, so a user's notices are bounded twice: one
//! per room every [`TYPING_EVERY`] (a client types on for longer than that between
//! notices), and at most [`TYPING_PER_SECOND`] a second across rooms (bursts of
//! [`TYPING_BURST`]). Notices beyond that are dropped without an error: the next one,
//! seconds later, says the same. Browsers forget a notice after a few seconds by themselves.

use super::fanout::{Encoder, HubEvent};
use super::rooms::RoomState;
use super::Connection;
use crate::chat::model::{ChatError, Room, UserId, UserInfo, TYPING_EVERY};
use crate::chat::rate::TokenBucket;
use std::time::{Duration, Instant};

/// Notices a user may have relayed per second, on average, across all rooms.
pub(super) const TYPING_PER_SECOND: u32 = 1;

/// Notices a user may have relayed at once.
pub(super) const TYPING_BURST: u32 = 3;

/// A user's typing allowance and last relayed notice.
#[derive(Debug)]
pub(super) struct Typing {
    bucket: TokenBucket,
    last: Option<(Room, Instant)>,
}

impl Typing {
    pub(super) fn new(now: Instant) -> Typing {
        Typing {
            bucket: TokenBucket::new(TYPING_PER_SECOND, Duration::from_secs(1), TYPING_BURST, now),
            last: None,
        }
    }

    /// Whether a notice for `room` goes out now (and, if so, counts it).
    fn allow(&mut self, room: &Room, now: Instant) -> bool {
        let repeat = self
            .last
            .as_ref()
            .is_some_and(|(last, at)| last == room && now.duration_since(*at) < TYPING_EVERY);
        if repeat || !self.bucket.try_take(now) {
            return false;
        }
        self.last = Some((room.clone(), now));
        true
    }
}

impl Connection {
    /// Tells the other members of `room` that this connection's user is typing there.
    /// Answers whether the notice went out (false: one went out a moment ago). Refused for
    /// a connection that has not authenticated or is not in the room (a private
    /// conversation is only ever joined by its two participants).
    pub fn typing(&self, room: &Room) -> Result<bool, ChatError> {
        let encode = self.hub.shared.encode;
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let user = self.user(state)?;
        let key = room.key();
        let joined = state
            .connections
            .map
            .get(&self.id)
            .is_some_and(|conn| conn.rooms.contains(&key));
        let Some(target) = state.rooms.map.get_mut(&key).filter(|_| joined) else {
            return Err(ChatError::NotInRoom);
        };
        let entry = state
            .directory
            .users
            .get_mut(&user)
            .ok_or(ChatError::Unauthorized)?;
        if !entry.typing.allow(room, super::now()) {
            return Ok(false);
        }
        relay_typing(encode, target, entry.info.clone());
        Ok(true)
    }
}

impl super::State {
    /// Relays another instance's typing notice to the room's members here (cluster mode).
    pub(super) fn relay_remote_typing(&mut self, encode: Encoder, room: &Room, user: UserId) {
        let (Some(info), Some(target)) = (
            self.directory.info(user),
            self.rooms.map.get_mut(&room.key()),
        ) else {
            return;
        };
        relay_typing(encode, target, info);
    }
}

/// Offers the notice to every live member of the room but the typist's own connections.
/// It is best effort: a member whose outbox is full misses it (and is not made to catch
/// up, as it changes nothing a member holds).
fn relay_typing(encode: Encoder, target: &mut RoomState, user: UserInfo) {
    let typist = user.id;
    let event = HubEvent::Typing {
        room: target.room.clone(),
        user,
    };
    let mut frame = None;
    for member in target.members.values_mut() {
        if member.behind.is_some() || member.user == Some(typist) {
            continue;
        }
        let frame = frame.get_or_insert_with(|| encode(event.clone())).clone();
        let _ = member.outbox.offer(frame);
    }
}
