//! Unsent words, one draft per room, as the browser keeps them across room switches and
//! reloads (issue 18, item 6): only rooms whose box holds words, the most recently written
//! first, bounded in number and length so the stored list cannot grow without end.

use crate::chat::model::Room;
use serde::{Deserialize, Serialize};

/// How many rooms' drafts are kept; writing in one more forgets the least recently written.
pub const MAX_DRAFTS: usize = 20;

/// The longest draft kept, in characters (five times the default message limit, which a
/// message cannot pass anyway); a longer draft is kept cut to this length.
pub const MAX_DRAFT_CHARS: usize = 20_000;

/// The drafts, most recently written first; no room twice, none blank.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Drafts(Vec<(Room, String)>);

impl Drafts {
    /// The draft for `room`, or "" when there is none.
    pub fn get(&self, room: &Room) -> &str {
        self.0
            .iter()
            .find(|(r, _)| r == room)
            .map_or("", |(_, text)| text.as_str())
    }

    /// Keeps `text` as the draft for `room` (forgets it when blank), as the most recent.
    pub fn set(&mut self, room: &Room, text: &str) {
        self.0.retain(|(r, _)| r != room);
        if text.trim().is_empty() {
            return;
        }
        let kept = match text.char_indices().nth(MAX_DRAFT_CHARS) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        self.0.insert(0, (room.clone(), kept.to_owned()));
        self.0.truncate(MAX_DRAFTS);
    }
}

/// The box's text once a message the server refused (or could not send) is given back, and
/// the new run of given-back words it starts with. `given` is that run before (a prefix of
/// `current`, or "" if the user has since changed it). Every message given back was written
/// before anything typed since it was sent, so it goes behind the given-back run and before
/// the rest: messages come back in the order they were written.
pub fn give_back(current: &str, given: &str, returned: &str) -> (String, String) {
    let given = if current.starts_with(given) {
        given
    } else {
        ""
    };
    let rest = &current[given.len()..];
    let rest = rest.strip_prefix('\n').unwrap_or(rest);
    let run = if given.is_empty() {
        returned.to_owned()
    } else {
        format!("{given}\n{returned}")
    };
    let text = if rest.trim().is_empty() {
        run.clone()
    } else {
        format!("{run}\n{rest}")
    };
    (text, run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::ChannelName;

    fn channel(name: &str) -> Room {
        Room::Channel(ChannelName::parse(name).unwrap())
    }

    /// Each room keeps its own draft; a blank one is forgotten rather than stored.
    #[test]
    fn each_room_keeps_its_own_draft() {
        let mut drafts = Drafts::default();
        drafts.set(&channel("one"), "first words");
        drafts.set(&channel("two"), "other words");
        assert_eq!(drafts.get(&channel("one")), "first words");
        assert_eq!(drafts.get(&channel("two")), "other words");
        drafts.set(&channel("one"), "  \n");
        assert_eq!(drafts.get(&channel("one")), "");
        assert_eq!(drafts, {
            let mut only = Drafts::default();
            only.set(&channel("two"), "other words");
            only
        });
    }

    /// The store is bounded: past [`MAX_DRAFTS`] rooms the least recently written is
    /// forgotten (a room written again counts as recent), and a draft is cut to
    /// [`MAX_DRAFT_CHARS`] characters, at a character boundary.
    #[test]
    fn the_store_is_bounded() {
        let mut drafts = Drafts::default();
        for n in 0..MAX_DRAFTS {
            drafts.set(&channel(&format!("room{n}")), "words");
        }
        drafts.set(&channel("room0"), "written again");
        drafts.set(&channel("newest"), "words");
        assert_eq!(drafts.0.len(), MAX_DRAFTS);
        assert_eq!(drafts.get(&channel("room1")), "", "the oldest is forgotten");
        assert_eq!(drafts.get(&channel("room0")), "written again");
        assert_eq!(drafts.get(&channel("newest")), "words");

        let long = "é".repeat(MAX_DRAFT_CHARS + 5);
        drafts.set(&channel("long"), &long);
        assert_eq!(
            drafts.get(&channel("long")).chars().count(),
            MAX_DRAFT_CHARS
        );
    }

    /// Given-back messages keep the order they were written in: one alone fills an empty
    /// box, a second follows the first, and both stay before words typed since; once the
    /// user changed the given-back words, the next one goes first.
    #[test]
    fn given_back_messages_keep_their_order() {
        let (text, run) = give_back("", "", "one");
        assert_eq!((text.as_str(), run.as_str()), ("one", "one"));
        let typed = format!("{text}\ntyped since");
        let (text, run) = give_back(&typed, &run, "two");
        assert_eq!(text, "one\ntwo\ntyped since");
        assert_eq!(run, "one\ntwo");
        let (text, run) = give_back("edited", &run, "three");
        assert_eq!((text.as_str(), run.as_str()), ("three\nedited", "three"));
    }
}
