//! History calls with a "before" cursor: a room's messages older than those a client holds,
//! read from the store's archive without holding the hub's lock while it reads.
//!
//! The hub's lock is taken twice, briefly: to find the room (and check who may read it),
//! then to put each author's current name on what the archive returned (invariant 4) and to
//! drop messages the hub has deleted whose deletion the store may not have committed yet
//! (only messages in the hub's window can be deleted, so only those are checked).

use super::Hub;
use crate::chat::history::window_start;
use crate::chat::model::{
    ChannelName, ChatError, DirectKey, HistoryTop, Message, OlderPage, Room, RoomKey, UserId,
    HISTORY_LIMIT,
};

impl Hub {
    /// Up to [`HISTORY_LIMIT`] messages of a channel numbered below `before`, oldest first,
    /// and what lies above them. Channels are public: no token needed.
    pub async fn channel_before(
        &self,
        raw_name: &str,
        before: u64,
    ) -> Result<OlderPage, ChatError> {
        let name = ChannelName::parse(raw_name)?;
        let room = {
            let state = self.lock();
            let room = state
                .rooms
                .map
                .get(&RoomKey::Channel(name.key()))
                .ok_or_else(|| ChatError::NoSuchChannel(name.to_string()))?;
            room.room.clone()
        };
        self.older(room, before).await
    }

    /// [`Hub::channel_before`] for the private conversation between the token's user and
    /// `peer`: only its two participants can read it.
    pub async fn direct_before(
        &self,
        token: &str,
        peer: UserId,
        before: u64,
    ) -> Result<OlderPage, ChatError> {
        let room = {
            let state = self.lock();
            let me = state.directory.by_token(token)?.info.id;
            let key = DirectKey::between(me, peer)?;
            state.directory.info(peer).ok_or(ChatError::NoSuchUser)?;
            Room::Direct(key)
        };
        self.older(room, before).await
    }

    /// What [`HistoryPage::top`](crate::chat::model::HistoryPage) says above a room's window
    /// when its newest number is `last_seq`: the beginning when the window reaches number 1,
    /// otherwise more to ask the store for, or, with a store that keeps nothing beyond the
    /// window, nothing more kept.
    pub(super) fn top_of_window(&self, last_seq: u64) -> HistoryTop {
        if window_start(last_seq, self.shared.limits.history) <= 1 {
            HistoryTop::Beginning
        } else if self.shared.store.archive().is_some() {
            HistoryTop::More
        } else {
            HistoryTop::NotKept
        }
    }

    async fn older(&self, room: Room, before: u64) -> Result<OlderPage, ChatError> {
        let Some(archive) = self.shared.store.archive() else {
            return Ok(self.older_in_memory(&room, before));
        };
        let page = archive
            .before(&room, before, HISTORY_LIMIT)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "older messages could not be read");
                ChatError::Unavailable("older messages could not be read".into())
            })?;
        let state = self.lock();
        let held = state.rooms.map.get(&room.key());
        let capacity = self.shared.limits.history;
        let messages: Vec<Message> = page
            .messages
            .into_iter()
            .filter(|m| match held {
                Some(held) if m.seq >= window_start(held.last_seq(), capacity) => {
                    held.history.get(m.id).is_some()
                }
                _ => true,
            })
            .collect();
        Ok(OlderPage {
            messages: state.directory.with_current_names(messages),
            top: page.top,
        })
    }

    /// The in-memory mode's answer: whatever of the window lies below `before` (a client
    /// holds it all already, unless it asks from inside the window).
    fn older_in_memory(&self, room: &Room, before: u64) -> OlderPage {
        let state = self.lock();
        let Some(held) = state.rooms.map.get(&room.key()) else {
            return OlderPage {
                messages: Vec::new(),
                top: HistoryTop::Beginning,
            };
        };
        let mut messages: Vec<Message> = held
            .history
            .snapshot()
            .into_iter()
            .filter(|m| m.seq < before)
            .collect();
        let extra = messages.len().saturating_sub(HISTORY_LIMIT);
        messages.drain(..extra);
        let top = if extra > 0 {
            HistoryTop::More
        } else {
            self.top_of_window(held.last_seq())
        };
        OlderPage {
            messages: state.directory.with_current_names(messages),
            top,
        }
    }
}
