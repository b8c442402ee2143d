//! Message search: the messages holding some words, newest first, among the rooms the
//! searcher may read (every channel, and their own private conversations: invariant 5),
//! read through the store's full-text index without holding the hub's lock while it reads.
//!
//! As with "before" history calls ([`super::older`]), the lock is taken twice, briefly: to
//! find who searches (and take one search from their allowance), then to check what the
//! store found. That check drops anything in another pair's conversation (the store already
//! leaves those out; this is the second lock on the door), and messages the hub has deleted
//! whose deletion the store may not have committed yet, and puts each author's current name
//! on the rest (invariant 4).
//!
//! A store without an archive (the in-memory mode) has no index: the messages the hub holds
//! in memory (each room's most recent) are searched instead, and the answer says so.

use super::directory::Allowance;
use super::{Hub, State};
use crate::chat::history::window_start;
use crate::chat::model::{
    ChatError, Message, MessageId, Room, SearchHit, SearchPage, SearchTerms, UserId, SEARCH_PAGE,
};
use crate::chat::store::ArchiveSearch;

/// Searches a user may make per second, on average.
pub(super) const SEARCHES_PER_SECOND: u32 = 2;
/// Searches a user may make at once.
pub(super) const SEARCH_BURST: u32 = 10;

/// Whether `user` may read `room`: every channel, and only their own conversations.
fn readable(room: &Room, user: UserId) -> bool {
    match room {
        Room::Channel(_) => true,
        Room::Direct(key) => key.includes(user),
    }
}

impl Hub {
    /// The newest messages (at most [`SEARCH_PAGE`]) holding every word of `text`, among
    /// the rooms the token's user may read, older than the message `before` if given.
    pub async fn search(
        &self,
        token: &str,
        text: &str,
        before: Option<u64>,
    ) -> Result<SearchPage, ChatError> {
        let (me, archive, settled, terms) = {
            let mut state = self.lock();
            let me = state.directory.by_token(token)?.info.id;
            let terms = SearchTerms::parse(text)?;
            state.directory.allow(me, Allowance::Searches)?;
            let Some(archive) = self.shared.store.archive() else {
                return Ok(self.search_in_memory(&state, me, &terms, before));
            };
            // Handed to the store under the lock, behind every change already delivered: once
            // it is stored, so are they, and a message the searcher has seen can be found
            // (the store commits at most every few tens of milliseconds).
            let settled = self.shared.store.ping();
            (me, archive, settled, terms)
        };
        if let Err(e) = settled.wait().await {
            tracing::warn!(error = %e, "searching without knowing the latest changes are stored");
        }
        let mut found = archive
            .search(ArchiveSearch {
                terms,
                reader: me,
                before: before.map(MessageId),
                limit: SEARCH_PAGE + 1,
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "a search could not be read");
                ChatError::Unavailable("the search could not be done".into())
            })?;
        let more = (found.len() > SEARCH_PAGE).then(|| found[SEARCH_PAGE - 1].id);
        found.truncate(SEARCH_PAGE);
        let state = self.lock();
        let capacity = self.shared.limits.history;
        let kept: Vec<Message> = found
            .into_iter()
            .filter(|m| {
                if !readable(&m.room, me) {
                    tracing::error!(room = %m.room, "the store's search found another pair's message; dropped");
                    return false;
                }
                // Only numbers this hub has given out or applied can have been deleted here
                // (in cluster mode the store may hold a message this instance has yet to
                // apply).
                match state.rooms.map.get(&m.room.key()) {
                    Some(held)
                        if m.seq >= window_start(held.last_seq(), capacity)
                            && m.seq <= held.last_seq() =>
                    {
                        held.history.get(m.id).is_some()
                    }
                    _ => true,
                }
            })
            .collect();
        Ok(SearchPage {
            hits: hits(&state, me, kept),
            more,
            whole_history: true,
        })
    }

    /// The in-memory mode's search: each readable room's window, newest first.
    fn search_in_memory(
        &self,
        state: &State,
        me: UserId,
        terms: &SearchTerms,
        before: Option<u64>,
    ) -> SearchPage {
        let before = before.unwrap_or(u64::MAX);
        let mut found: Vec<Message> = state
            .rooms
            .map
            .values()
            .filter(|held| readable(&held.room, me))
            .flat_map(|held| held.history.snapshot())
            .filter(|m| m.id.0 < before && terms.matches(m.body.as_str()))
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse(m.id));
        let more = (found.len() > SEARCH_PAGE).then(|| found[SEARCH_PAGE - 1].id);
        found.truncate(SEARCH_PAGE);
        SearchPage {
            hits: hits(state, me, found),
            more,
            whole_history: false,
        }
    }
}

/// The found messages as results: each author's current name, and each room's title as
/// `me` sees it.
fn hits(state: &State, me: UserId, found: Vec<Message>) -> Vec<SearchHit> {
    state
        .directory
        .with_current_names(found)
        .into_iter()
        .map(|message| {
            let title = match &message.room {
                Room::Channel(name) => name.to_string(),
                Room::Direct(key) => state
                    .directory
                    .info(key.other(me))
                    .map_or_else(|| "someone".to_owned(), |u| u.name.to_string()),
            };
            SearchHit { message, title }
        })
        .collect()
}
