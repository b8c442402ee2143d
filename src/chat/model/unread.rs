//! Unread counts and mentions: the one rule that says whether a message mentions a reader
//! (shared by the server, which counts, and the browser, which counts live and highlights),
//! and one room's unread state as the server reports it.

use super::message::Message;
use super::room::Room;
use super::user::UserId;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A reader's state in one room: how far they have read, and what lies after that within
/// the messages the server holds in memory (the newest [`super::HISTORY_LIMIT`] numbers), so
/// `unread` is at most that many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomUnread {
    pub room: Room,
    /// The reader's read position: the `seq` of the newest message they have seen (0: none).
    pub read: u64,
    /// The room's newest `seq` when this was counted.
    pub last_seq: u64,
    /// Messages by others after `read`.
    pub unread: u32,
    /// Of those, the ones that mention the reader by their current name.
    pub mentions: u32,
}

impl RoomUnread {
    /// Counts `messages` (any order) after `read` in `room` for the reader `me`, called `name`.
    pub fn count<'a>(
        room: Room,
        read: u64,
        last_seq: u64,
        messages: impl IntoIterator<Item = &'a Message>,
        me: UserId,
        name: &str,
    ) -> RoomUnread {
        let (mut unread, mut mentions) = (0u32, 0u32);
        for message in messages {
            if message.seq <= read || message.author.id == me {
                continue;
            }
            unread = unread.saturating_add(1);
            if mentions_name(message.body.as_str(), name) {
                mentions = mentions.saturating_add(1);
            }
        }
        RoomUnread {
            room,
            read,
            last_seq,
            unread,
            mentions,
        }
    }

    /// Takes in a new message by someone else numbered `seq`, mentioning the reader or not.
    pub fn add(&mut self, seq: u64, mention: bool) {
        if seq <= self.read {
            return;
        }
        self.last_seq = self.last_seq.max(seq);
        self.unread = self.unread.saturating_add(1);
        if mention {
            self.mentions = self.mentions.saturating_add(1);
        }
    }
}

/// Letters, digits and `_`: what may not touch a mention on either side.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Where `body` mentions `name`: each `@` followed by the name in any letter case, where the
/// `@` does not follow a letter, digit or `_` (so `ada@example.org` mentions nobody) and the
/// name is not followed by one (so `@adam` does not mention `ada`). The ranges are byte
/// ranges of `body`, each from the `@` to the end of the name.
pub fn mention_ranges<'a>(body: &'a str, name: &'a str) -> impl Iterator<Item = Range<usize>> + 'a {
    body.match_indices('@').filter_map(move |(at, _)| {
        if name.is_empty() || body[..at].chars().next_back().is_some_and(is_word) {
            return None;
        }
        let start = at + 1;
        let mut rest = body[start..].char_indices();
        let mut end = start;
        for wanted in name.chars() {
            let (offset, got) = rest.next()?;
            if !got.to_lowercase().eq(wanted.to_lowercase()) {
                return None;
            }
            end = start + offset + got.len_utf8();
        }
        if body[end..].chars().next().is_some_and(is_word) {
            return None;
        }
        Some(at..end)
    })
}

/// True when `body` mentions `name` (see [`mention_ranges`]).
pub fn mentions_name(body: &str, name: &str) -> bool {
    mention_ranges(body, name).next().is_some()
}

/// `body` cut into pieces, each marked true where it mentions `name`: what the message view
/// shows, one text span per piece (never as HTML).
pub fn split_mentions<'a>(body: &'a str, name: &str) -> Vec<(&'a str, bool)> {
    let mut pieces = Vec::new();
    let mut from = 0;
    for range in mention_ranges(body, name) {
        if range.start > from {
            pieces.push((&body[from..range.start], false));
        }
        pieces.push((&body[range.clone()], true));
        from = range.end;
    }
    if from < body.len() || pieces.is_empty() {
        pieces.push((&body[from..], false));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mention is `@` and the name, in any case, standing as a word of its own; names
    /// with spaces and non-ASCII letters work, and e-mail addresses or longer names do not
    /// count.
    #[test]
    fn mentions_are_case_insensitive_and_word_bounded() {
        assert!(mentions_name("hi @ada!", "Ada"));
        assert!(mentions_name("@ADA", "ada"));
        assert!(mentions_name("(@Ada Lovelace)", "ada lovelace"));
        assert!(mentions_name("ping @Zoë, please", "zoë"));
        assert!(mentions_name("@Ada.", "Ada"));
        assert!(!mentions_name("hi @adam", "Ada"));
        assert!(!mentions_name("ada@example.org", "ada"));
        assert!(!mentions_name("hi ada", "ada"));
        assert!(!mentions_name("@ad", "ada"));
        assert!(!mentions_name("@ada_x", "ada"));
        assert!(!mentions_name("anything @", ""));
    }

    /// The pieces put back together are the body, and only the mentions are marked.
    #[test]
    fn bodies_split_around_mentions() {
        let body = "@Ada and @ada, not @adam or x@ada";
        let pieces = split_mentions(body, "ada");
        assert_eq!(pieces.iter().map(|p| p.0).collect::<String>(), body);
        let marked: Vec<&str> = pieces.iter().filter(|p| p.1).map(|p| p.0).collect();
        assert_eq!(marked, ["@Ada", "@ada"]);
        assert_eq!(split_mentions("", "ada"), [("", false)]);
        assert_eq!(split_mentions("<b>@ada</b>", "ada")[1], ("@ada", true));
    }

    /// Counting skips what was read and the reader's own messages; a message mentioning the
    /// reader counts as unread and as a mention.
    #[test]
    fn counts_skip_read_and_own_messages() {
        use crate::chat::model::{
            ChannelName, DisplayName, MessageBody, MessageId, Timestamp, UserInfo,
        };
        let room = Room::Channel(ChannelName::parse("general").unwrap());
        let message = |seq: u64, author: u64, body: &str| Message {
            id: MessageId(seq),
            room: room.clone(),
            seq,
            author: UserInfo {
                id: UserId(author),
                name: DisplayName::parse("x").unwrap(),
            },
            body: MessageBody::parse(body, 100).unwrap(),
            attachment: None,
            sent_at: Timestamp::from_millis(0),
            edited_at: None,
            reactions: Vec::new(),
            reply: None,
        };
        let held = [
            message(1, 2, "@ada old"),
            message(2, 2, "hello"),
            message(3, 1, "@ada me"),
            message(4, 2, "@Ada new"),
        ];
        let mut counted = RoomUnread::count(room.clone(), 1, 4, &held, UserId(1), "Ada");
        assert_eq!((counted.unread, counted.mentions), (2, 1));
        counted.add(5, true);
        counted.add(1, true);
        assert_eq!(
            (counted.unread, counted.mentions, counted.last_seq),
            (3, 2, 5)
        );
    }
}
