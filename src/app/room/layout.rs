//! How the message list is laid out: which messages start a group under their author's name,
//! where a day begins, above which message the "New" divider goes, and where the message a
//! reply quotes is. Plain functions of
//! the messages, so the rules are tested without a browser.

use crate::chat::model::{HistoryTop, LocalTime, Message, Timestamp, UserId};

/// Messages from one author closer together than this (and on the same day) share a group.
pub const GROUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// One message and what is drawn with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub message: Message,
    /// True when the message starts a group, shown with its author's name and time; false
    /// when it continues the group of the message before it.
    pub starts_group: bool,
    /// The day on the reader's clock, when the message is the first of its day: a separator
    /// naming it goes above the message.
    pub day: Option<LocalTime>,
    /// True for the first message the reader had not seen: the "New" divider goes above it.
    pub first_unread: bool,
}

/// What the layout needs to know about the reader.
pub struct Reader<'a> {
    /// The reader's offset from UTC at a moment, in minutes east (UTC when unknown).
    pub offset_at: &'a dyn Fn(Timestamp) -> Option<i32>,
    /// The sequence number the reader had read up to when the room opened, if known.
    pub read_up_to: Option<u64>,
    /// The reader, whose own messages never count as unread.
    pub me: Option<UserId>,
}

/// Lays out `messages` (in sequence order, oldest first) for `reader`.
pub fn lay_out(messages: &[Message], reader: &Reader<'_>) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::with_capacity(messages.len());
    let mut unread_found = false;
    let mut previous: Option<(&Message, i64)> = None;
    for message in messages {
        let local = message
            .sent_at
            .local((reader.offset_at)(message.sent_at).unwrap_or(0));
        let new_day = previous.is_none_or(|(_, day)| day != local.day);
        let first_unread = !unread_found
            && reader
                .read_up_to
                .is_some_and(|read| message.seq > read && Some(message.author.id) != reader.me);
        unread_found |= first_unread;
        let continues = previous.is_some_and(|(before, _)| {
            before.author.id == message.author.id
                && (0..GROUP_WINDOW_MS)
                    .contains(&(message.sent_at.millis() - before.sent_at.millis()))
        });
        rows.push(Row {
            message: message.clone(),
            starts_group: new_day || first_unread || !continues,
            day: new_day.then_some(local),
            first_unread,
        });
        previous = Some((message, local.day));
    }
    rows
}

/// Where the message a reply quotes is, as far as the log knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Original {
    /// In the log: the quote scrolls to it.
    Here,
    /// Older than the log's oldest message, with older pages to load: the quote loads them
    /// until it is found.
    Older,
    /// Deleted: the log covers its place and it is not there (numbers are never reused).
    Deleted,
    /// Older than anything the server keeps.
    NotKept,
}

/// Where message number `seq` is for a log holding `messages` (in sequence order, oldest
/// first) with `top` above them.
pub fn find_original(messages: &[Message], top: HistoryTop, seq: u64) -> Original {
    match messages.first() {
        Some(oldest) if oldest.seq <= seq => match messages.binary_search_by_key(&seq, |m| m.seq) {
            Ok(_) => Original::Here,
            Err(_) => Original::Deleted,
        },
        _ => match top {
            HistoryTop::More => Original::Older,
            HistoryTop::Beginning => Original::Deleted,
            HistoryTop::NotKept => Original::NotKept,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::local_time::day_label;
    use crate::chat::model::{ChannelName, DisplayName, MessageBody, MessageId, Room, UserInfo};

    fn message(seq: u64, author: u64, at: &str) -> Message {
        Message {
            id: MessageId(seq),
            room: Room::Channel(ChannelName::parse("general").unwrap()),
            seq,
            author: UserInfo {
                id: UserId(author),
                name: DisplayName::parse(&format!("user{author}")).unwrap(),
            },
            body: MessageBody::for_post("hi", 100, false).unwrap(),
            attachment: None,
            sent_at: Timestamp::parse(at).unwrap(),
            edited_at: None,
            reactions: Vec::new(),
            reply: None,
        }
    }

    fn reader(read_up_to: Option<u64>) -> Reader<'static> {
        Reader {
            offset_at: &|_| Some(0),
            read_up_to,
            me: Some(UserId(1)),
        }
    }

    /// Messages from one author within five minutes of the one before share a group; another
    /// author, a longer pause or a new day starts a new one.
    #[test]
    fn groups_one_authors_messages_within_five_minutes() {
        let messages = [
            message(1, 1, "2026-11-30T09:00:00Z"),
            message(2, 1, "2026-11-30T09:04:59Z"),
            message(3, 1, "2026-11-30T09:09:58Z"),
            message(4, 2, "2026-11-30T09:10:00Z"),
            message(5, 1, "2026-11-30T09:10:30Z"),
            message(6, 1, "2026-11-30T09:15:30Z"),
        ];
        let rows = lay_out(&messages, &reader(None));
        let starts: Vec<bool> = rows.iter().map(|r| r.starts_group).collect();
        assert_eq!(starts, [true, false, false, true, true, true]);
    }

    /// A separator goes above the first message of each day (named from the reader's today),
    /// and a new day starts a new group even within five minutes.
    #[test]
    fn separates_days() {
        let messages = [
            message(1, 1, "2026-11-28T10:00:00Z"),
            message(2, 1, "2026-11-29T23:58:00Z"),
            message(3, 1, "2026-11-30T00:01:00Z"),
            message(4, 1, "2026-11-30T00:02:00Z"),
        ];
        let rows = lay_out(&messages, &reader(None));
        let today = Timestamp::parse("2026-11-30T12:00:00Z")
            .unwrap()
            .local(0)
            .day;
        let days: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.day.map(|day| day_label(&day, today)))
            .collect();
        let expected = ["Saturday 28 November 2026", "Yesterday", "Today"];
        let expected: Vec<Option<String>> = expected.map(|d| Some(d.to_owned())).into();
        assert_eq!(days[..3], expected[..]);
        assert_eq!(days[3], None);
        assert!(rows[2].starts_group);
        assert!(!rows[3].starts_group);
    }

    /// Day boundaries are the reader's: 23:30 UTC is already tomorrow two hours east.
    #[test]
    fn days_follow_the_readers_offset() {
        let messages = [
            message(1, 1, "2026-11-29T21:00:00Z"),
            message(2, 1, "2026-11-29T23:30:00Z"),
        ];
        let east = Reader {
            offset_at: &|_| Some(120),
            ..reader(None)
        };
        let rows = lay_out(&messages, &east);
        let (first, second) = (rows[0].day.unwrap(), rows[1].day.unwrap());
        assert_eq!((first.date, first.hour), (29, 23));
        assert_eq!((second.date, second.hour), (30, 1));
    }

    /// The "New" divider goes above the first message after the read position that someone
    /// else wrote, once; with no read position there is none.
    #[test]
    fn marks_the_first_unread_message() {
        let messages = [
            message(1, 2, "2026-11-30T09:00:00Z"),
            message(2, 1, "2026-11-30T09:01:00Z"),
            message(3, 2, "2026-11-30T09:02:00Z"),
            message(4, 2, "2026-11-30T09:03:00Z"),
        ];
        let rows = lay_out(&messages, &reader(Some(1)));
        let marked: Vec<bool> = rows.iter().map(|r| r.first_unread).collect();
        assert_eq!(marked, [false, false, true, false]);
        assert!(rows[2].starts_group);
        let unmarked = lay_out(&messages, &reader(None));
        assert!(unmarked.iter().all(|r| !r.first_unread));
        let all_read = lay_out(&messages, &reader(Some(4)));
        assert!(all_read.iter().all(|r| !r.first_unread));
    }

    /// A quoted message is found in the log, known deleted when the log covers its number
    /// and lacks it (or the room begins after it), older when more pages may hold it, and
    /// not kept when the server keeps nothing older.
    #[test]
    fn a_quoted_message_is_found_or_known_gone() {
        let at = "2026-03-10T09:00:00.000Z";
        let log = [message(5, 1, at), message(7, 1, at)];
        assert_eq!(find_original(&log, HistoryTop::More, 5), Original::Here);
        assert_eq!(find_original(&log, HistoryTop::More, 6), Original::Deleted);
        assert_eq!(find_original(&log, HistoryTop::More, 4), Original::Older);
        assert_eq!(
            find_original(&log, HistoryTop::Beginning, 4),
            Original::Deleted
        );
        assert_eq!(
            find_original(&log, HistoryTop::NotKept, 4),
            Original::NotKept
        );
        assert_eq!(find_original(&[], HistoryTop::More, 4), Original::Older);
    }
}
