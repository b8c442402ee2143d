//! The live connections: each one's outbox, who it authenticated as and which rooms it is in.

use super::outbox::{ConnId, Outbox};
use crate::chat::model::{RoomKey, UserId};
use std::collections::{HashMap, HashSet};

/// Every open connection.
pub(super) struct Connections {
    pub(super) map: HashMap<ConnId, ConnEntry>,
    next_id: u64,
}

pub(super) struct ConnEntry {
    pub(super) outbox: Outbox,
    pub(super) user: Option<UserId>,
    /// Rooms this connection is a member of.
    pub(super) rooms: HashSet<RoomKey>,
    /// A channel-list or user event did not fit in the outbox.
    pub(super) missed_directory: bool,
    /// The connection asked for its user's unread counts and their news (see
    /// [`super::reads`]).
    pub(super) follows_unread: bool,
}

impl Connections {
    pub(super) fn new() -> Connections {
        Connections {
            map: HashMap::new(),
            next_id: 1,
        }
    }

    /// Adds a connection that has not authenticated or joined anything yet.
    pub(super) fn add(&mut self, outbox: Outbox, missed_directory: bool) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.map.insert(
            id,
            ConnEntry {
                outbox,
                user: None,
                rooms: HashSet::new(),
                missed_directory,
                follows_unread: false,
            },
        );
        id
    }

    /// The user a connection authenticated as, if it did.
    pub(super) fn user(&self, id: ConnId) -> Option<UserId> {
        self.map.get(&id).and_then(|c| c.user)
    }

    /// The rooms a connection is in.
    pub(super) fn rooms_of(&self, id: ConnId) -> Vec<RoomKey> {
        self.map
            .get(&id)
            .map(|c| c.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }
}
