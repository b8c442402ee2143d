//! Rooms: public channels and private conversations, their identities, and what a client
//! is shown when it opens one.

use super::error::ChatError;
use super::message::Message;
use super::name::{ChannelKey, ChannelName};
use super::user::{UserId, UserInfo};
use crate::chat::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The two participants of a private conversation, the smaller id first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "[UserId; 2]", into = "[UserId; 2]")]
pub struct DirectKey(UserId, UserId);

impl DirectKey {
    /// The conversation between two different users.
    pub fn between(a: UserId, b: UserId) -> Result<DirectKey, ChatError> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Ok(DirectKey(a, b)),
            std::cmp::Ordering::Greater => Ok(DirectKey(b, a)),
            std::cmp::Ordering::Equal => Err(ChatError::DirectWithSelf),
        }
    }

    /// True when `user` is one of the two participants.
    pub fn includes(&self, user: UserId) -> bool {
        self.0 == user || self.1 == user
    }

    /// The participant who is not `user` (meaningful only for a participant).
    pub fn other(&self, user: UserId) -> UserId {
        if self.0 == user {
            self.1
        } else {
            self.0
        }
    }

    /// Both participants.
    pub fn users(&self) -> [UserId; 2] {
        [self.0, self.1]
    }
}

impl TryFrom<[UserId; 2]> for DirectKey {
    type Error = ChatError;
    fn try_from([a, b]: [UserId; 2]) -> Result<Self, Self::Error> {
        DirectKey::between(a, b)
    }
}

impl From<DirectKey> for [UserId; 2] {
    fn from(key: DirectKey) -> Self {
        [key.0, key.1]
    }
}

/// Where a message lives: a public channel or a private conversation between two users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Room {
    /// A channel anyone can read and post in.
    Channel(ChannelName),
    /// A conversation only its two participants can read or post in.
    Direct(DirectKey),
}

impl Room {
    /// The room's identity, for lookups.
    pub fn key(&self) -> RoomKey {
        match self {
            Room::Channel(name) => RoomKey::Channel(name.key()),
            Room::Direct(key) => RoomKey::Direct(*key),
        }
    }

    /// The channel's name, for a channel.
    pub fn channel(&self) -> Option<&ChannelName> {
        match self {
            Room::Channel(name) => Some(name),
            Room::Direct(_) => None,
        }
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Room::Channel(name) => write!(f, "#{name}"),
            Room::Direct(key) => write!(f, "direct {}-{}", key.0, key.1),
        }
    }
}

/// The identity of a room: equal keys name the same room.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomKey {
    /// A channel, by its case-folded name.
    Channel(ChannelKey),
    /// A private conversation.
    Direct(DirectKey),
}

/// Where a client's copy of a channel ends: the server epoch and the last sequence number it
/// has. Sent when (re)joining so the server can send only what was missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The server epoch the client's sequence numbers came from.
    pub epoch: u64,
    /// The highest sequence number the client holds for the channel.
    pub seq: u64,
}

/// A channel as everyone sees it in the channel list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// The channel's name as its creator typed it.
    pub name: ChannelName,
    /// When the server created it.
    pub created_at: Timestamp,
}

/// A room's recent history as served to a client that opens it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub room: Room,
    /// What to call it: the channel's name, or the other participant's display name.
    pub title: String,
    /// For a private conversation, the other participant.
    pub peer: Option<UserInfo>,
    /// The server epoch the sequence numbers belong to (see the protocol document).
    pub epoch: u64,
    /// The sequence number of the room's newest message, 0 if none.
    pub last_seq: u64,
    /// The messages numbered within [`HISTORY_LIMIT`](super::HISTORY_LIMIT) of `last_seq`, oldest first.
    pub messages: Vec<Message>,
    /// What lies above the oldest of `messages`.
    pub top: HistoryTop,
}

/// What lies above the oldest message a client holds of a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryTop {
    /// Older messages may be kept: ask for them with a "before" history call.
    More,
    /// Nothing: this is where the room began (deleted messages aside).
    Beginning,
    /// Older messages existed, and the server does not keep them (its retention setting, or
    /// a store that keeps only the 100 most recent in memory).
    NotKept,
}

/// Messages of a room older than a sequence number, as a "before" history call returns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OlderPage {
    /// At most [`HISTORY_LIMIT`](super::HISTORY_LIMIT) messages, the newest ones below the
    /// number asked about, oldest first, each with its author's current name.
    pub messages: Vec<Message>,
    /// What lies above the oldest of `messages` (or above the number asked about, when
    /// `messages` is empty).
    pub top: HistoryTop,
}

/// A private conversation as listed in its participant's sidebar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectSummary {
    pub key: DirectKey,
    /// The other participant.
    pub peer: UserInfo,
}
