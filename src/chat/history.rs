//! A channel's recent messages: a ring buffer of at most [`HISTORY_LIMIT`] messages in
//! sequence order, where adding one more evicts the oldest.

use super::model::{Message, HISTORY_LIMIT};
use std::collections::VecDeque;

/// The most recent messages of one channel, oldest first.
///
/// Invariants: holds at most `capacity` messages; their `seq` numbers are strictly
/// increasing and consecutive (the hub appends in order and never skips a number).
#[derive(Debug, Clone)]
pub struct History {
    messages: VecDeque<Message>,
    capacity: usize,
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
            messages: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends a message, returning the message it evicted, if any.
    pub fn push(&mut self, message: Message) -> Option<Message> {
        debug_assert!(self.last_seq().is_none_or(|last| message.seq == last + 1));
        let evicted = if self.messages.len() == self.capacity {
            self.messages.pop_front()
        } else {
            None
        };
        self.messages.push_back(message);
        evicted
    }

    /// Every message held, oldest first.
    pub fn snapshot(&self) -> Vec<Message> {
        self.messages.iter().cloned().collect()
    }

    /// The messages after `seq`, oldest first, or `None` when some of them were already
    /// evicted (the caller then needs a full snapshot instead).
    pub fn since(&self, seq: u64) -> Option<Vec<Message>> {
        let first = match self.messages.front() {
            Some(first) => first.seq,
            // Nothing held: only a caller that is already up to date can continue.
            None => return (seq == 0).then(Vec::new),
        };
        let last = self.messages.back().map_or(0, |m| m.seq);
        if seq > last {
            // The caller claims to have seen messages that do not exist here.
            return None;
        }
        if seq + 1 < first {
            return None;
        }
        Some(
            self.messages
                .iter()
                .filter(|m| m.seq > seq)
                .cloned()
                .collect(),
        )
    }

    /// The sequence number of the newest message held.
    pub fn last_seq(&self) -> Option<u64> {
        self.messages.back().map(|m| m.seq)
    }

    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when no message is held.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::{ChannelName, DisplayName, MessageBody, MessageId};
    use chrono::{TimeZone, Utc};

    fn message(seq: u64) -> Message {
        Message {
            id: MessageId(seq * 10),
            channel: ChannelName::parse("test").unwrap(),
            seq,
            author: DisplayName::parse("ada").unwrap(),
            body: MessageBody::parse(&format!("message {seq}"), 100).unwrap(),
            sent_at: Utc.timestamp_opt(1_700_000_000 + seq as i64, 0).unwrap(),
        }
    }

    /// The 101st message evicts the oldest; the history keeps exactly the last 100 in order.
    #[test]
    fn keeps_the_most_recent_hundred() {
        let mut history = History::default();
        for seq in 1..=100 {
            assert!(history.push(message(seq)).is_none());
        }
        let evicted = history.push(message(101)).expect("the oldest is evicted");
        assert_eq!(evicted.seq, 1);
        for seq in 102..=150 {
            history.push(message(seq));
        }
        let seqs: Vec<u64> = history.snapshot().iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (51..=150).collect::<Vec<_>>());
    }

    /// `since` returns exactly the messages after a sequence number while they are held, and
    /// asks for a snapshot once some were evicted or the number is from the future.
    #[test]
    fn since_returns_only_what_was_missed() {
        let mut history = History::with_capacity(5);
        assert_eq!(history.since(0), Some(vec![]));
        assert_eq!(history.since(3), None);
        for seq in 1..=8 {
            history.push(message(seq));
        }
        // Holds 4..=8.
        let seqs = |v: Option<Vec<Message>>| v.map(|v| v.iter().map(|m| m.seq).collect::<Vec<_>>());
        assert_eq!(seqs(history.since(8)), Some(vec![]));
        assert_eq!(seqs(history.since(5)), Some(vec![6, 7, 8]));
        assert_eq!(seqs(history.since(3)), Some(vec![4, 5, 6, 7, 8]));
        assert_eq!(seqs(history.since(2)), None, "message 3 was evicted");
        assert_eq!(seqs(history.since(9)), None, "message 9 does not exist");
    }
}
