//! Reactions: the emoji a message may be reacted with (those of the shortcode table, so the
//! picker searches them by name), who reacted with which, and the limits on them.

use super::error::ChatError;
use super::markup::emoji;
use super::message::Message;
use super::user::{UserId, UserInfo};
use serde::{Deserialize, Serialize};

/// Most different emoji one user may put on one message.
pub const MAX_REACTIONS_PER_USER: usize = 20;
/// Most different emoji one message may carry, whoever put them there.
pub const MAX_REACTIONS_PER_MESSAGE: usize = 50;

/// The emoji the picker offers first, by shortcode name (each one in the shortcode table).
pub const COMMON: &[&str] = &[
    "+1",
    "heart",
    "joy",
    "tada",
    "open_mouth",
    "cry",
    "eyes",
    "pray",
    "fire",
    "white_check_mark",
    "rocket",
    "thinking",
];

/// An emoji a message may be reacted with: one of the shortcode table's (see
/// [`emoji::all`]), and no other text. Checked whenever one is made or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Emoji(&'static str);

impl Emoji {
    /// The emoji `raw` is, if it is one reactions may use.
    pub fn parse(raw: &str) -> Result<Emoji, ChatError> {
        emoji::all()
            .iter()
            .find(|(_, e)| *e == raw)
            .map(|(_, e)| Emoji(e))
            .ok_or(ChatError::EmojiInvalid)
    }

    /// The emoji called `name` in the shortcode table.
    pub fn named(name: &str) -> Option<Emoji> {
        emoji::lookup(name).map(Emoji)
    }

    /// The emoji itself.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Its first shortcode name (`+1` for 👍), which the picker shows and searches.
    pub fn name(self) -> &'static str {
        emoji::all()
            .iter()
            .find(|(_, e)| *e == self.0)
            .map_or("", |(n, _)| *n)
    }
}

/// Every emoji reactions may use, each once (the table names some twice: `+1` and
/// `thumbsup`), in the table's order.
pub fn every_emoji() -> Vec<Emoji> {
    let mut every: Vec<Emoji> = Vec::new();
    for (_, e) in emoji::all() {
        if !every.iter().any(|d| d.0 == *e) {
            every.push(Emoji(e));
        }
    }
    every
}

/// Read as a string, then checked (written by hand: derived, the `&'static str` inside
/// would ask every reader to borrow for `'static`).
impl<'de> Deserialize<'de> for Emoji {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Emoji::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl From<Emoji> for String {
    fn from(value: Emoji) -> Self {
        value.0.to_owned()
    }
}

/// One emoji on a message and everyone who reacted with it, first to react first. Never
/// empty while held by a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: Emoji,
    pub users: Vec<UserInfo>,
}

impl Message {
    /// Adds (`on`) or takes away `user`'s reaction `emoji`, and says whether that changed
    /// anything: adding one already there or taking away one that is not changes nothing.
    /// Limits are not checked here (see [`Message::may_react`]): this also applies what a
    /// server already accepted.
    pub fn react(&mut self, emoji: Emoji, user: &UserInfo, on: bool) -> bool {
        let at = self.reactions.iter().position(|r| r.emoji == emoji);
        match (at, on) {
            (Some(at), true) => {
                let users = &mut self.reactions[at].users;
                if users.iter().any(|u| u.id == user.id) {
                    return false;
                }
                users.push(user.clone());
            }
            (None, true) => self.reactions.push(Reaction {
                emoji,
                users: vec![user.clone()],
            }),
            (Some(at), false) => {
                let users = &mut self.reactions[at].users;
                let Some(i) = users.iter().position(|u| u.id == user.id) else {
                    return false;
                };
                users.remove(i);
                if users.is_empty() {
                    self.reactions.remove(at);
                }
            }
            (None, false) => return false,
        }
        true
    }

    /// Whether `user` reacted with `emoji`.
    pub fn reacted(&self, emoji: Emoji, user: UserId) -> bool {
        self.reactions
            .iter()
            .any(|r| r.emoji == emoji && r.users.iter().any(|u| u.id == user))
    }

    /// Refuses a new reaction `emoji` by `user` that would pass a limit: more than
    /// [`MAX_REACTIONS_PER_USER`] of theirs on this message, or more than
    /// [`MAX_REACTIONS_PER_MESSAGE`] different emoji on it. One already there passes.
    #[cfg(feature = "ssr")]
    pub fn may_react(&self, emoji: Emoji, user: UserId) -> Result<(), ChatError> {
        if self.reacted(emoji, user) {
            return Ok(());
        }
        let mine = self
            .reactions
            .iter()
            .filter(|r| r.users.iter().any(|u| u.id == user))
            .count();
        if mine >= MAX_REACTIONS_PER_USER {
            return Err(ChatError::TooManyReactions {
                max: MAX_REACTIONS_PER_USER,
            });
        }
        let new_emoji = !self.reactions.iter().any(|r| r.emoji == emoji);
        if new_emoji && self.reactions.len() >= MAX_REACTIONS_PER_MESSAGE {
            return Err(ChatError::ReactionsFull {
                max: MAX_REACTIONS_PER_MESSAGE,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::DisplayName;

    fn user(id: u64) -> UserInfo {
        UserInfo {
            id: UserId(id),
            name: DisplayName::parse(&format!("u{id}")).unwrap(),
        }
    }

    fn message() -> Message {
        super::super::message::fixture::saying("hi")
    }

    /// Only the table's emoji are reactions; every common one is in it; text around an
    /// emoji, a shortcode's name or nothing at all is refused.
    #[test]
    fn only_the_tables_emoji_are_reactions() {
        assert_eq!(Emoji::parse("👍").map(Emoji::name), Ok("+1"));
        for name in COMMON {
            assert!(Emoji::named(name).is_some(), "{name}");
        }
        for bad in ["", "x", ":tada:", "tada", "👍👍", " 👍", "<b>"] {
            assert_eq!(Emoji::parse(bad), Err(ChatError::EmojiInvalid), "{bad:?}");
        }
        assert!(serde_json::from_str::<Emoji>("\"🐍🐍\"").is_err());
        let tada: Emoji = serde_json::from_str("\"🎉\"").unwrap();
        assert_eq!(serde_json::to_string(&tada).unwrap(), "\"🎉\"");
    }

    /// Adding and taking away are idempotent, an emoji nobody has left goes, and each user
    /// counts once per emoji.
    #[test]
    fn reacting_twice_changes_nothing() {
        let (mut m, up) = (message(), Emoji::named("+1").unwrap());
        assert!(m.react(up, &user(2), true));
        assert!(!m.react(up, &user(2), true));
        assert!(m.react(up, &user(3), true));
        assert_eq!(m.reactions[0].users, vec![user(2), user(3)]);
        assert!(m.react(up, &user(2), false));
        assert!(!m.react(up, &user(2), false));
        assert!(m.react(up, &user(3), false));
        assert!(m.reactions.is_empty());
        assert!(!m.react(up, &user(3), false));
    }

    /// A user may put at most 20 emoji on a message, a message carries at most 50; one
    /// already there always passes.
    #[cfg(feature = "ssr")]
    #[test]
    fn reactions_are_limited_per_user_and_per_message() {
        let mut m = message();
        let distinct = every_emoji();
        for e in &distinct[..MAX_REACTIONS_PER_USER] {
            m.may_react(*e, UserId(2)).unwrap();
            m.react(*e, &user(2), true);
        }
        let next = distinct[MAX_REACTIONS_PER_USER];
        assert_eq!(
            m.may_react(next, UserId(2)),
            Err(ChatError::TooManyReactions { max: 20 })
        );
        assert_eq!(m.may_react(distinct[0], UserId(2)), Ok(()));
        for (i, e) in distinct[MAX_REACTIONS_PER_USER..MAX_REACTIONS_PER_MESSAGE]
            .iter()
            .enumerate()
        {
            m.react(*e, &user(10 + i as u64), true);
        }
        assert_eq!(m.reactions.len(), MAX_REACTIONS_PER_MESSAGE);
        let more = distinct[MAX_REACTIONS_PER_MESSAGE];
        assert_eq!(
            m.may_react(more, UserId(3)),
            Err(ChatError::ReactionsFull { max: 50 })
        );
        assert_eq!(m.may_react(distinct[0], UserId(3)), Ok(()));
    }
}
