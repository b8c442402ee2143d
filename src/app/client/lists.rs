//! The plain list updates behind the client's signals: kept sorted, without duplicates, and
//! (for messages) within the same window of sequence numbers as the server's history.

use super::DirectEntry;
use crate::chat::history::window_start;
use crate::chat::model::{ChannelInfo, Message, UserInfo, HISTORY_LIMIT};

/// Inserts a channel into a sorted list unless a channel with the same name is there.
pub(super) fn insert_channel(list: &mut Vec<ChannelInfo>, channel: ChannelInfo) {
    let key = channel.name.key();
    if let Err(at) = list.binary_search_by(|c| c.name.key().cmp(&key)) {
        list.insert(at, channel);
    }
}

/// Adds a conversation if it is new (or updates its peer's name); keeps the list sorted by
/// name.
pub(super) fn upsert_direct(entries: &mut Vec<DirectEntry>, peer: UserInfo) {
    match entries.iter_mut().find(|e| e.peer.id == peer.id) {
        Some(entry) => entry.peer = peer,
        None => entries.push(DirectEntry { peer }),
    }
    entries.sort_by_key(|e| e.peer.name.key());
}

/// Applies a `presence` event to an online list sorted by name: who went leaves it, who
/// came is on it once (with the name the event gives).
pub(super) fn apply_presence(list: &mut Vec<UserInfo>, came: Vec<UserInfo>, went: Vec<UserInfo>) {
    list.retain(|u| !went.iter().chain(&came).any(|v| v.id == u.id));
    list.extend(came);
    list.sort_by_key(|u| u.name.key());
}

/// What the online list says below its names when more are online than it shows: "and
/// 1,234 more" (digits grouped by three).
pub fn more_online(count: usize, shown: usize) -> Option<String> {
    let more = count.checked_sub(shown).filter(|&n| n > 0)?.to_string();
    let mut grouped = String::new();
    for (i, digit) in more.chars().enumerate() {
        if i > 0 && (more.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    Some(format!("and {grouped} more"))
}

/// Appends the messages newer than the last one held, then, unless the reader loaded older
/// messages (`keep_older`), drops those that have left the room's history now that its
/// newest sequence number is `last_seq`: the window of [`HISTORY_LIMIT`] numbers the
/// server's history keeps (see [`window_start`]), so the client shows what a reload would.
pub(super) fn append_after(
    held: &mut Vec<Message>,
    incoming: Vec<Message>,
    last_seq: u64,
    keep_older: bool,
) {
    let last = held.last().map_or(0, |m| m.seq);
    held.extend(incoming.into_iter().filter(|m| m.seq > last));
    if keep_older {
        return;
    }
    let start = window_start(last_seq, HISTORY_LIMIT);
    let gone = held.partition_point(|m| m.seq < start);
    held.drain(..gone);
}

/// Puts a page of older messages (oldest first, all numbered below `before`) in front of
/// those held, if the oldest held is still numbered `before` (or none is held); returns
/// whether it did. A page asked for before the copy was replaced (a reconnection's
/// snapshot) no longer fits and is dropped.
pub(super) fn prepend_before(held: &mut Vec<Message>, older: Vec<Message>, before: u64) -> bool {
    if held.first().is_some_and(|m| m.seq != before) {
        return false;
    }
    let older = older.into_iter().filter(|m| m.seq < before);
    held.splice(0..0, older);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::{
        ChannelName, DisplayName, MessageBody, MessageId, Room, Timestamp, UserId,
    };

    fn message(seq: u64) -> Message {
        Message {
            id: MessageId(seq),
            room: Room::Channel(ChannelName::parse("c").unwrap()),
            seq,
            author: UserInfo {
                id: UserId(1),
                name: DisplayName::parse("a").unwrap(),
            },
            body: MessageBody::parse("b", 10).unwrap(),
            attachment: None,
            sent_at: Timestamp::from_millis(0),
            edited_at: None,
            reactions: Vec::new(),
            reply: None,
        }
    }

    /// Catch-up messages the client already holds are not shown twice, and the view keeps at
    /// most 100 messages.
    #[test]
    fn append_skips_duplicates_and_caps() {
        let mut held: Vec<Message> = (1..=3).map(message).collect();
        append_after(&mut held, (2..=5).map(message).collect(), 5, false);
        assert_eq!(
            held.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        append_after(&mut held, (6..=120).map(message).collect(), 120, false);
        assert_eq!(held.len(), HISTORY_LIMIT);
        assert_eq!(held[0].seq, 21);
    }

    /// After a deletion the client's window counts sequence numbers, as the server's history
    /// does: the message numbered [`HISTORY_LIMIT`] below a new one leaves even though fewer
    /// than that many are held.
    #[test]
    fn append_keeps_the_servers_window() {
        let mut held: Vec<Message> = (1..=100).filter(|&seq| seq != 50).map(message).collect();
        append_after(&mut held, vec![message(101)], 101, false);
        assert_eq!(held.len(), HISTORY_LIMIT - 1);
        assert_eq!(held[0].seq, 2);
        let mut server = crate::chat::history::History::default();
        for seq in (1..=101).filter(|&seq| seq != 50) {
            server.push(message(seq));
        }
        assert_eq!(server.snapshot(), held);
    }

    /// Older pages go in front of what is held, and once a reader has loaded them, new
    /// messages no longer push them out; a page that no longer fits (the copy was replaced
    /// meanwhile) is dropped.
    #[test]
    fn older_pages_go_in_front_and_stay() {
        let mut held: Vec<Message> = (101..=200).map(message).collect();
        assert!(prepend_before(
            &mut held,
            (1..=100).map(message).collect(),
            101
        ));
        assert_eq!(held.len(), 200);
        assert_eq!(held[0].seq, 1);
        append_after(&mut held, vec![message(201)], 201, true);
        assert_eq!(held.len(), 201, "loaded older messages stay");
        assert!(!prepend_before(&mut held, vec![message(0)], 50));
        assert_eq!(held[0].seq, 1);
    }

    /// A presence delta applied to the list last told gives the server's window: who went
    /// (or was pushed past the first shown) leaves, who came is added in name order; and
    /// the line below the names counts only those not shown.
    #[test]
    fn presence_moves_the_window_and_the_rest_is_counted() {
        let user = |id: u64, name: &str| UserInfo {
            id: UserId(id),
            name: DisplayName::parse(name).unwrap(),
        };
        let mut list = vec![user(1, "ada"), user(3, "cy")];
        apply_presence(&mut list, vec![user(2, "Bob")], vec![user(3, "cy")]);
        let names: Vec<_> = list.iter().map(|u| u.name.to_string()).collect();
        assert_eq!(names, ["ada", "Bob"]);
        assert_eq!(more_online(2, 2), None);
        assert_eq!(more_online(1, 2), None);
        assert_eq!(more_online(3, 2).as_deref(), Some("and 1 more"));
        assert_eq!(more_online(1_334, 100).as_deref(), Some("and 1,234 more"));
        assert_eq!(
            more_online(1_000_100, 100).as_deref(),
            Some("and 1,000,000 more")
        );
        assert_eq!(
            more_online(100_100, 100).as_deref(),
            Some("and 100,000 more")
        );
    }

    /// New channels are inserted in name order, once.
    #[test]
    fn channels_stay_sorted_and_unique() {
        let info = |n: &str| ChannelInfo {
            name: ChannelName::parse(n).unwrap(),
            created_at: Timestamp::from_millis(0),
        };
        let mut list = vec![info("alpha"), info("gamma")];
        insert_channel(&mut list, info("Beta"));
        insert_channel(&mut list, info("beta"));
        let names: Vec<_> = list.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["alpha", "Beta", "gamma"]);
    }
}
