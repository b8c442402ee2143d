//! The reader's unread counts in the browser: the server's summary and news applied to one
//! list, live messages counted with the same mention rule the server uses, and read
//! positions sent back at most once a second (the server keeps them; see
//! `docs/PROTOCOL.md`, "Unread counts and read positions").

use super::{ChatClient, ConnStatus};
use crate::chat::model::{mentions_name, Message, Room, RoomUnread};
use crate::protocol::ClientEvent;
use leptos::prelude::*;

/// How long the client waits between two `read` events it sends.
#[cfg(feature = "hydrate")]
const READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Replaces the entries of the rooms in `rooms` (adding new ones).
pub(super) fn replace_entries(list: &mut Vec<RoomUnread>, rooms: Vec<RoomUnread>) {
    for room in rooms {
        match list.iter_mut().find(|e| e.room == room.room) {
            Some(entry) => *entry = room,
            None => list.push(room),
        }
    }
}

/// The entry of `room`, made empty if there is none yet.
pub(super) fn entry_mut<'a>(list: &'a mut Vec<RoomUnread>, room: &Room) -> &'a mut RoomUnread {
    let at = match list.iter().position(|e| e.room == *room) {
        Some(at) => at,
        None => {
            list.push(RoomUnread {
                room: room.clone(),
                read: 0,
                last_seq: 0,
                unread: 0,
                mentions: 0,
            });
            list.len() - 1
        }
    };
    &mut list[at]
}

/// What the tab title counts: mentions in channels plus unread private messages (a private
/// message is meant for the reader as much as a mention is).
pub fn attention(list: &[RoomUnread]) -> u32 {
    list.iter()
        .map(|e| match e.room {
            Room::Channel(_) => e.mentions,
            Room::Direct(_) => e.unread,
        })
        .fold(0u32, u32::saturating_add)
}

/// A count as shown: at most "99+".
pub fn short_count(n: u32) -> String {
    if n > 99 {
        "99+".to_owned()
    } else {
        n.to_string()
    }
}

/// The words that describe a room's counts to assistive technology ("2 mentions, 5 unread"),
/// empty when there is nothing unread.
pub fn describe(entry: &RoomUnread) -> String {
    let mut parts = Vec::new();
    match entry.mentions {
        0 => {}
        1 => parts.push("1 mention".to_owned()),
        n => parts.push(format!("{} mentions", short_count(n))),
    }
    if entry.unread > 0 {
        parts.push(format!("{} unread", short_count(entry.unread)));
    }
    parts.join(", ")
}

impl ChatClient {
    /// The reader's state in `room`, once known (tracked).
    pub fn unread_of(&self, room: &Room) -> Option<RoomUnread> {
        self.unread
            .with(|list| list.iter().find(|e| e.room == *room).cloned())
    }

    /// The number the tab title carries (tracked): see [`attention`].
    pub fn attention(&self) -> u32 {
        self.unread.with(|list| attention(list))
    }

    /// Counts a live message by someone else, unless it was read already; says whether it
    /// mentions the reader.
    pub(super) fn count_message(&self, message: &Message) -> bool {
        let Some(me) = self
            .session
            .with_untracked(|s| s.as_ref().map(|s| s.user.clone()))
        else {
            return false;
        };
        if message.author.id == me.id {
            return false;
        }
        let mention = mentions_name(message.body.as_str(), me.name.as_str());
        self.unread.update(|list| {
            entry_mut(list, &message.room).add(message.seq, mention);
        });
        mention
    }

    /// Records that the reader has seen `room` up to `seq` (they are at the bottom of it,
    /// with the page visible): counts it read here at once, and tells the server, at most
    /// once every [`READ_EVERY`] (the last position of each room wins).
    pub fn mark_read(&self, room: Room, seq: u64) {
        let held = self.feed.get_value().filter(|f| f.is_for(&room));
        let me = self
            .session
            .with_untracked(|s| s.as_ref().map(|s| s.user.clone()));
        let mut moved = false;
        self.unread.update(|list| {
            let entry = entry_mut(list, &room);
            if seq <= entry.read && entry.unread == 0 {
                return;
            }
            moved = seq > entry.read;
            let read = entry.read.max(seq);
            let last_seq = entry.last_seq.max(seq);
            *entry = match (held, &me) {
                // The open room's messages are all here: count what is left after `read`.
                (Some(feed), Some(me)) => feed
                    .messages
                    .try_with_untracked(|held| {
                        RoomUnread::count(
                            room.clone(),
                            read,
                            last_seq,
                            held,
                            me.id,
                            me.name.as_str(),
                        )
                    })
                    .unwrap_or_else(|| read_through(room.clone(), read)),
                _ if read >= last_seq => read_through(room.clone(), read),
                // Elsewhere, what is left is not known here: the server's answer will say.
                _ => RoomUnread {
                    read,
                    ..entry.clone()
                },
            };
        });
        if moved {
            self.reads_pending.update_value(|pending| {
                pending.retain(|(r, _)| *r != room);
                pending.push((room, seq));
            });
            self.send_reads(false);
        }
    }

    /// Sends the read positions waiting: at once when none was sent in the last
    /// [`READ_EVERY`] or when `now` (the reader leaves the room or the page), otherwise once
    /// that time is up; and once the socket opens when it is closed.
    pub(super) fn send_reads(&self, now: bool) {
        if self.status.get_untracked() != ConnStatus::Connected
            || self.session.with_untracked(Option::is_none)
            || (self.reads_waiting.get_value() && !now)
        {
            return;
        }
        let pending = self.reads_pending.try_update_value(std::mem::take);
        let Some(pending) = pending.filter(|p| !p.is_empty()) else {
            return;
        };
        for (room, seq) in pending {
            self.send_event(&ClientEvent::Read { room, seq });
        }
        #[cfg(feature = "hydrate")]
        if !self.reads_waiting.get_value() {
            let client = *self;
            self.reads_waiting.set_value(true);
            set_timeout(
                move || {
                    client.reads_waiting.set_value(false);
                    client.send_reads(false);
                },
                READ_EVERY,
            );
        }
    }
}

/// A room read through `read`, with nothing left unread.
fn read_through(room: Room, read: u64) -> RoomUnread {
    RoomUnread {
        room,
        read,
        last_seq: read,
        unread: 0,
        mentions: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::{ChannelName, DirectKey, UserId};

    fn entry(room: Room, unread: u32, mentions: u32) -> RoomUnread {
        RoomUnread {
            room,
            read: 1,
            last_seq: 9,
            unread,
            mentions,
        }
    }

    /// The title counts channel mentions and private messages; the words name both counts.
    #[test]
    fn attention_counts_mentions_and_private_messages() {
        let general = Room::Channel(ChannelName::parse("general").unwrap());
        let direct = Room::Direct(DirectKey::between(UserId(1), UserId(2)).unwrap());
        let list = vec![entry(general.clone(), 5, 2), entry(direct, 3, 0)];
        assert_eq!(attention(&list), 5);
        assert_eq!(describe(&list[0]), "2 mentions, 5 unread");
        assert_eq!(
            describe(&entry(general.clone(), 1, 1)),
            "1 mention, 1 unread"
        );
        assert_eq!(describe(&entry(general.clone(), 0, 0)), "");
        assert_eq!(describe(&entry(general, 100, 0)), "99+ unread");
    }

    /// A summary replaces the entries of the rooms it names and keeps the others.
    #[test]
    fn summaries_replace_their_rooms() {
        let a = Room::Channel(ChannelName::parse("a").unwrap());
        let b = Room::Channel(ChannelName::parse("b").unwrap());
        let mut list = vec![entry(a.clone(), 5, 0), entry(b.clone(), 1, 0)];
        replace_entries(&mut list, vec![entry(a.clone(), 0, 0)]);
        assert_eq!(list[0].unread, 0);
        assert_eq!(list[1].unread, 1);
        entry_mut(&mut list, &Room::Channel(ChannelName::parse("c").unwrap())).add(3, true);
        assert_eq!((list[2].unread, list[2].mentions), (1, 1));
    }
}
