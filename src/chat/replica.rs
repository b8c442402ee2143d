//! The vocabulary between the hub and a cluster's sequencer (cluster mode, issue 16): what
//! an instance proposes ([`Proposal`]), what the shared database committed ([`Replicated`]),
//! and the queue proposals travel on ([`Sequencer`]).
//!
//! In cluster mode the hub decides nothing that must be the same on every instance: sequence
//! numbers, message and user ids, and whether a name is free are decided by the database. A
//! connection's action is checked locally (allowances, membership, length), proposed, and
//! applied on every instance, this one included, only once committed: the committing
//! instance through [`crate::chat::hub::Hub::apply`] and the others through the same call
//! when the event reaches them. So every instance applies one room's messages in `seq`
//! order, and an instance that dies loses nothing that was acknowledged.

use super::model::{ChannelInfo, ChatError, Emoji, Message, MessageId, Room, UserInfo};
use super::store::TokenHash;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// A change an instance asks the database to commit.
#[derive(Clone, Debug)]
pub enum Proposal {
    /// A message; its `id`, `seq` and `sent_at` are the database's to assign. A resent
    /// post with the same author and `client_ref` is answered with the first one.
    Post {
        message: Message,
        client_ref: Option<String>,
    },
    /// The deletion of a message by its author (checked by the proposer).
    Delete { room: Room, id: MessageId },
    /// A message as its author edited it (checked by the proposer): its new text and
    /// `edited_at` replace the stored ones.
    Edit { message: Message },
    /// A user's reaction given (`on`) or taken away, checked by the proposer against what it
    /// holds and by the database (the limits) against what is stored.
    React {
        room: Room,
        id: MessageId,
        emoji: Emoji,
        user: UserInfo,
        on: bool,
    },
    /// A new channel, if no channel name looks like it.
    Channel(ChannelInfo),
    /// A new user (the `id` is assigned by the database), if no name looks like theirs.
    User(UserInfo, TokenHash),
    /// A user's new name, if no other user's looks like it.
    Rename(UserInfo),
}

/// A change as committed, which every instance applies in the same way. This is also what
/// instances send each other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Replicated {
    Message {
        message: Message,
    },
    Deleted {
        room: Room,
        id: MessageId,
    },
    /// A message's new text (the whole message as edited, with its author's name as
    /// stored).
    Edited {
        message: Message,
    },
    /// A reaction given or taken away, committed only if it changed the stored message.
    Reacted {
        room: Room,
        id: MessageId,
        emoji: Emoji,
        user: UserInfo,
        on: bool,
    },
    Channel {
        channel: ChannelInfo,
    },
    User {
        user: UserInfo,
        token_hash: TokenHash,
    },
    Renamed {
        user: UserInfo,
    },
    /// A user is typing in a room (never stored; relayed to the room's members on every
    /// instance that has some).
    Typing {
        user: crate::chat::model::UserId,
        room: Room,
    },
    /// A user's read position moved (stored by the instance it moved on; positions only
    /// move forward, so applying one late or twice changes nothing).
    Read {
        user: crate::chat::model::UserId,
        room: Room,
        seq: u64,
    },
}

/// A proposal and who hears what became of it.
#[derive(Debug)]
pub struct Submitted {
    pub proposal: Proposal,
    pub reply: oneshot::Sender<Result<Replicated, ChatError>>,
}

/// The queue the hub hands proposals to; the cluster commits them in order of arrival.
pub type Sequencer = mpsc::UnboundedSender<Submitted>;

/// What applying a replicated change did to the room it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied (or already known): nothing is missing.
    Done,
    /// A message arrived ahead of its turn: the room waits for the numbers from `from`
    /// (its next) up to the one that arrived; if they do not come soon they are read back
    /// from the database.
    Gap { room: Room, from: u64 },
    /// The change refers to a channel or user this instance does not know yet; it was not
    /// applied. The directory must be read again first.
    Unknown,
}
