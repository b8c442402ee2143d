//! A room's recent messages: the window of the last [`HISTORY_LIMIT`] sequence numbers, in
//! order, from which messages can be deleted, whose text can be edited and which can be
//! reacted to.

use super::model::{Emoji, Message, MessageBody, MessageId, Timestamp, UserInfo, HISTORY_LIMIT};
use std::collections::VecDeque;

/// The oldest sequence number a room's history keeps once its newest is `newest_seq`, with a
/// window of `capacity` numbers: messages numbered below it have left. The one statement of
/// the window, for [`History`] and for the browser's copy of a room.
pub fn window_start(newest_seq: u64, capacity: usize) -> u64 {
    newest_seq.saturating_add(1).saturating_sub(capacity as u64)
}

/// The most recent messages of one room, oldest first.
///
/// Invariants: every message held has a `seq` within `capacity` of the newest one pushed, so
/// at most `capacity` are held; their `seq` numbers strictly increase (the hub appends in
/// order; deletions leave gaps). Every message with a `seq` above `evicted_through` that was
/// not deleted is held.
///
/// The window counts sequence numbers, not messages, because that is what the SQLite store
/// keeps (a ring of `capacity` slots indexed by `seq`): a room whose messages were deleted
/// shows the same messages before and after a restart.
#[derive(Debug, Clone)]
pub struct History {
    messages: VecDeque<Message>,
    capacity: usize,
    /// The highest sequence number that left the window by eviction (0 if none did).
    evicted_through: u64,
    /// Clients whose cursor is at or below this get a snapshot, not a catch-up: set by
    /// deletions and edits (they could have missed one) and by restoring from storage.
    snapshot_through: Option<u64>,
}

impl Default for History {
    fn default() -> Self {
        History::with_capacity(HISTORY_LIMIT)
    }
}

impl History {
    /// An empty history that keeps at most `capacity` messages.
    pub fn with_capacity(capacity: usize) -> Self {
        History {
            messages: VecDeque::with_capacity(capacity.min(HISTORY_LIMIT)),
            capacity,
            evicted_through: 0,
            snapshot_through: None,
        }
    }

    /// Appends a message, returning the messages that left the window with it (none, one,
    /// or, after deletions, none for a while), oldest first.
    pub fn push(&mut self, message: Message) -> Vec<Message> {
        debug_assert!(self
            .messages
            .back()
            .is_none_or(|last| message.seq > last.seq));
        let oldest_kept = window_start(message.seq, self.capacity);
        let mut evicted = Vec::new();
        while let Some(front) = self.messages.front() {
            if front.seq >= oldest_kept {
                break;
            }
            self.evicted_through = front.seq;
            evicted.extend(self.messages.pop_front());
        }
        self.messages.push_back(message);
        evicted
    }

    /// Deletes a message; `room_last_seq` is the room's newest sequence number now. Clients
    /// that were behind at this point get a snapshot instead of a catch-up, so they cannot
    /// keep showing the deleted message.
    pub fn remove(&mut self, id: MessageId, room_last_seq: u64) -> Option<Message> {
        let at = self.messages.iter().position(|m| m.id == id)?;
        self.snapshot_through = Some(room_last_seq);
        self.messages.remove(at)
    }

    /// Replaces a held message's text, stamped `edited_at`; `room_last_seq` is the room's
    /// newest sequence number now. As for a deletion, clients that were behind at this
    /// point get a snapshot instead of a catch-up, so they cannot keep showing the old text.
    /// Returns the message as edited.
    pub fn edit(
        &mut self,
        id: MessageId,
        body: MessageBody,
        edited_at: Timestamp,
        room_last_seq: u64,
    ) -> Option<&Message> {
        let message = self.messages.iter_mut().find(|m| m.id == id)?;
        message.body = body;
        message.edited_at = Some(edited_at);
        self.snapshot_through = Some(
            self.snapshot_through
                .map_or(room_last_seq, |d| d.max(room_last_seq)),
        );
        Some(message)
    }

    /// Adds (`on`) or takes away `user`'s reaction `emoji` on a held message; `room_last_seq`
    /// is the room's newest sequence number now. Returns the message as it is then, only if
    /// that changed it (see [`Message::react`]); as for an edit, clients that were behind
    /// at this point then get a snapshot, so they cannot keep showing the old reactions.
    pub fn react(
        &mut self,
        id: MessageId,
        emoji: Emoji,
        user: &UserInfo,
        on: bool,
        room_last_seq: u64,
    ) -> Option<&Message> {
        let message = self.messages.iter_mut().find(|m| m.id == id)?;
        if !message.react(emoji, user, on) {
            return None;
        }
        self.snapshot_through = Some(
            self.snapshot_through
                .map_or(room_last_seq, |d| d.max(room_last_seq)),
        );
        Some(message)
    }

    /// Records that this history was loaded from storage when the room's newest sequence
    /// number was `room_last_seq`: what was evicted or deleted before is unknown, so clients
    /// whose cursor is not past that point get a snapshot.
    pub fn mark_restored(&mut self, room_last_seq: u64) {
        self.snapshot_through = Some(
            self.snapshot_through
                .map_or(room_last_seq, |d| d.max(room_last_seq)),
        );
    }

    /// A held message by id.
    pub fn get(&self, id: MessageId) -> Option<&Message> {
        self.messages.iter().find(|m| m.id == id)
    }

    /// The held messages numbered after `seq`, oldest first, without copying them.
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Message> {
        let from = self.messages.partition_point(|m| m.seq <= seq);
        self.messages.range(from..)
    }

    /// Every message held, oldest first.
    pub fn snapshot(&self) -> Vec<Message> {
        self.messages.iter().cloned().collect()
    }

    /// The messages after `cursor`, oldest first, or `None` when a client holding everything up
    /// to `cursor` cannot be brought up to date by appending (messages it lacks were evicted, a
    /// deletion may have happened since, or the cursor is ahead of `room_last_seq`).
    pub fn since(&self, cursor: u64, room_last_seq: u64) -> Option<Vec<Message>> {
        if cursor > room_last_seq || cursor < self.evicted_through {
            return None;
        }
        if self.snapshot_through.is_some_and(|at| cursor <= at) {
            return None;
        }
        Some(
            self.messages
                .iter()
                .filter(|m| m.seq > cursor)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::{
        ChannelName, DisplayName, MessageBody, Room, Timestamp, UserId, UserInfo,
    };

    fn message(seq: u64) -> Message {
        Message {
            id: MessageId(seq * 10),
            room: Room::Channel(ChannelName::parse("test").unwrap()),
            seq,
            author: UserInfo {
                id: UserId(1),
                name: DisplayName::parse("ada").unwrap(),
            },
            body: MessageBody::parse(&format!("message {seq}"), 100).unwrap(),
            attachment: None,
            sent_at: Timestamp::from_millis((1_700_000_000 + seq as i64) * 1_000),
            edited_at: None,
            reactions: Vec::new(),
            reply: None,
        }
    }

    fn seqs(v: Option<Vec<Message>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|m| m.seq).collect())
    }

    /// The 101st message evicts the oldest; the history keeps exactly the last 100 in order.
    #[test]
    fn keeps_the_most_recent_hundred() {
        let mut history = History::default();
        for seq in 1..=100 {
            assert!(history.push(message(seq)).is_empty());
        }
        let evicted = history.push(message(101));
        assert_eq!(evicted.iter().map(|m| m.seq).collect::<Vec<_>>(), [1]);
        for seq in 102..=150 {
            history.push(message(seq));
        }
        let all: Vec<u64> = history.snapshot().iter().map(|m| m.seq).collect();
        assert_eq!(all, (51..=150).collect::<Vec<_>>());
    }

    /// `since` returns exactly the messages after a cursor while they are held, and asks for a
    /// snapshot once some were evicted or the cursor is from the future.
    #[test]
    fn since_returns_only_what_was_missed() {
        let mut history = History::with_capacity(5);
        assert_eq!(seqs(history.since(0, 0)), Some(vec![]));
        assert_eq!(seqs(history.since(3, 0)), None);
        for seq in 1..=8 {
            history.push(message(seq));
        }
        // Holds 4..=8.
        assert_eq!(seqs(history.since(8, 8)), Some(vec![]));
        assert_eq!(seqs(history.since(5, 8)), Some(vec![6, 7, 8]));
        assert_eq!(seqs(history.since(3, 8)), Some(vec![4, 5, 6, 7, 8]));
        assert_eq!(seqs(history.since(2, 8)), None, "message 3 was evicted");
        assert_eq!(seqs(history.since(9, 8)), None, "message 9 does not exist");
    }

    /// A deleted message is gone from snapshots, and a client whose cursor is not past the
    /// deletion gets a snapshot rather than a catch-up that would leave the message on screen.
    #[test]
    fn deletions_force_a_snapshot_for_clients_behind_them() {
        let mut history = History::default();
        for seq in 1..=5 {
            history.push(message(seq));
        }
        assert_eq!(history.remove(MessageId(30), 5).map(|m| m.seq), Some(3));
        assert!(history.remove(MessageId(30), 5).is_none(), "already gone");
        let all: Vec<u64> = history.snapshot().iter().map(|m| m.seq).collect();
        assert_eq!(all, [1, 2, 4, 5]);
        assert_eq!(seqs(history.since(4, 5)), None);
        assert_eq!(seqs(history.since(5, 5)), None);
        history.push(message(6));
        assert_eq!(seqs(history.since(6, 6)), Some(vec![]));
    }

    /// An edit changes the held text and stamps it, and, like a deletion, a client whose
    /// cursor is not past it gets a snapshot (with the new text) rather than a catch-up.
    #[test]
    fn edits_replace_the_text_and_force_a_snapshot_for_clients_behind_them() {
        let mut history = History::default();
        for seq in 1..=5 {
            history.push(message(seq));
        }
        let body = MessageBody::parse("fixed", 100).unwrap();
        let at = Timestamp::from_millis(1_800_000_000_000);
        let edited = history.edit(MessageId(20), body.clone(), at, 5).cloned();
        assert_eq!(edited.map(|m| (m.seq, m.edited_at)), Some((2, Some(at))));
        assert!(history.edit(MessageId(999), body.clone(), at, 5).is_none());
        assert_eq!(history.get(MessageId(20)).map(|m| &m.body), Some(&body));
        assert_eq!(seqs(history.since(5, 5)), None);
        history.push(message(6));
        assert_eq!(seqs(history.since(6, 6)), Some(vec![]));
        assert_eq!(seqs(history.since(5, 6)), None, "the edit was at 5");
    }

    /// A reaction that changes a message forces a snapshot for clients behind it, as an edit
    /// does; one that changes nothing (given twice, or taken away when absent) does not.
    #[test]
    fn reactions_force_a_snapshot_only_when_they_change_something() {
        let mut history = History::default();
        for seq in 1..=5 {
            history.push(message(seq));
        }
        let up = Emoji::named("+1").unwrap();
        let ada = message(1).author;
        let reacted = history.react(MessageId(20), up, &ada, true, 5).cloned();
        assert_eq!(reacted.map(|m| m.reactions[0].users.len()), Some(1));
        assert_eq!(seqs(history.since(5, 5)), None);
        history.push(message(6));
        assert_eq!(seqs(history.since(6, 6)), Some(vec![]));
        assert!(history.react(MessageId(20), up, &ada, true, 6).is_none());
        assert!(history.react(MessageId(30), up, &ada, false, 6).is_none());
        assert!(history.react(MessageId(999), up, &ada, true, 6).is_none());
        assert_eq!(seqs(history.since(6, 6)), Some(vec![]), "nothing changed");
        assert!(history.react(MessageId(20), up, &ada, false, 6).is_some());
        assert_eq!(seqs(history.since(6, 6)), None);
        assert!(history.get(MessageId(20)).unwrap().reactions.is_empty());
    }

    /// After a deletion the window still counts sequence numbers, as the SQLite ring does:
    /// the message 100 numbers older leaves when a new one comes, even though fewer than 100
    /// are held, so a restart shows exactly what was shown before it.
    #[test]
    fn the_window_counts_numbers_not_messages() {
        let mut history = History::with_capacity(5);
        for seq in 1..=5 {
            history.push(message(seq));
        }
        history.remove(MessageId(30), 5);
        let evicted: Vec<u64> = history.push(message(6)).iter().map(|m| m.seq).collect();
        assert_eq!(evicted, [1]);
        let all: Vec<u64> = history.snapshot().iter().map(|m| m.seq).collect();
        assert_eq!(all, [2, 4, 5, 6]);
        // A gap at the front leaves nothing to evict for the number it held.
        let evicted: Vec<u64> = history.push(message(7)).iter().map(|m| m.seq).collect();
        assert_eq!(evicted, [2]);
        assert!(history.push(message(8)).is_empty(), "message 3 was deleted");
        assert_eq!(
            seqs(history.since(3, 8)),
            None,
            "a cursor before the window"
        );
        // A jump in numbers (messages lost with a crash) empties the window at once.
        let evicted: Vec<u64> = history.push(message(20)).iter().map(|m| m.seq).collect();
        assert_eq!(evicted, [4, 5, 6, 7, 8]);
    }

    /// A history loaded from storage cannot know what was evicted or deleted before, so only
    /// clients that caught up after the load get a catch-up; older cursors get a snapshot.
    #[test]
    fn restored_histories_send_snapshots_to_older_cursors() {
        let mut history = History::default();
        for seq in 51..=60 {
            history.push(message(seq));
        }
        history.mark_restored(60);
        assert_eq!(seqs(history.since(55, 60)), None);
        assert_eq!(seqs(history.since(60, 60)), None);
        history.push(message(61));
        assert_eq!(seqs(history.since(61, 61)), Some(vec![]));
    }
}
