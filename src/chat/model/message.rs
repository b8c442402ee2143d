//! Messages: their validated body, their identity, and the message as stored and sent.

use super::error::ChatError;
use super::file::Attachment;
use super::reaction::Reaction;
use super::reply::Reply;
use super::room::Room;
use super::user::UserInfo;
use crate::chat::timestamp::Timestamp;
use serde::{Deserialize, Serialize};

/// Longest message body, in characters, unless the server is configured otherwise.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 4000;
/// How many messages a channel keeps: the server stores and serves only the most recent ones.
pub const HISTORY_LIMIT: usize = 100;

/// The text of a message: not blank, not over the length limit, no control characters but
/// tabs and line breaks. Kept exactly as typed otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageBody(String);

impl MessageBody {
    /// Checks a message body against a length limit in characters.
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, ChatError> {
        if raw.trim().is_empty() {
            return Err(ChatError::MessageEmpty);
        }
        if raw.chars().count() > max_chars {
            return Err(ChatError::MessageTooLong { max: max_chars });
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        {
            return Err(ChatError::MessageInvalid);
        }
        Ok(MessageBody(raw.to_owned()))
    }

    /// The text as it is displayed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl MessageBody {
    /// The empty body of a message that is only an attachment.
    pub fn empty() -> Self {
        MessageBody(String::new())
    }

    /// The new body of a message being edited: the rules of [`MessageBody::for_post`],
    /// where `has_attachment` is whether the message edited carries a file.
    pub fn for_edit(raw: &str, max_chars: usize, has_attachment: bool) -> Result<Self, ChatError> {
        MessageBody::for_post(raw, max_chars, has_attachment)
    }

    /// The body of a message being posted: `raw` checked as [`MessageBody::parse`] does,
    /// except that a message carrying an attachment may leave it blank (it is then empty).
    /// The one statement of that rule, for the hub and for the browser's composer.
    pub fn for_post(raw: &str, max_chars: usize, has_attachment: bool) -> Result<Self, ChatError> {
        if has_attachment && raw.trim().is_empty() {
            Ok(MessageBody::empty())
        } else {
            MessageBody::parse(raw, max_chars)
        }
    }
}

impl TryFrom<String> for MessageBody {
    type Error = ChatError;
    /// Bodies that arrive already stored are checked against the largest limit a server may
    /// be configured with, and may be empty (a message that is only an attachment); the
    /// configured rules are applied where messages are posted.
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.is_empty() {
            return Ok(MessageBody::empty());
        }
        MessageBody::parse(&value, usize::MAX)
    }
}

impl From<MessageBody> for String {
    fn from(value: MessageBody) -> Self {
        value.0
    }
}

/// A message's server-assigned identity, unique across all rooms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

/// One chat message, as stored and as sent to every client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Unique across the server.
    pub id: MessageId,
    /// The room it was posted in.
    pub room: Room,
    /// Position in the room: 1 for the first message ever posted there, then 2, 3, ...
    /// Numbers are never reused, even after messages are deleted or leave the history.
    pub seq: u64,
    /// Who sent it (with their current name).
    pub author: UserInfo,
    /// What they wrote (may be empty when there is an attachment).
    pub body: MessageBody,
    /// A file sent with the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// When the server accepted it.
    pub sent_at: Timestamp,
    /// When its author last changed its text (absent if never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// Each emoji people reacted with and who did, in the order first given (absent if
    /// none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The message this one answers, as it was when this one was posted (absent if none).
    /// Boxed: most messages answer none, and every event holding a message is as large as
    /// its largest kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Box<Reply>>,
}

/// Messages for the model's tests.
#[cfg(test)]
pub(super) mod fixture {
    use super::*;
    use crate::chat::model::{ChannelName, DisplayName, UserId};

    /// Message 1 of `general`, by user 1 ("u1"), saying `body`.
    pub fn saying(body: &str) -> Message {
        Message {
            id: MessageId(1),
            room: Room::Channel(ChannelName::parse("general").unwrap()),
            seq: 1,
            author: UserInfo {
                id: UserId(1),
                name: DisplayName::parse("u1").unwrap(),
            },
            body: MessageBody::parse(body, DEFAULT_MAX_MESSAGE_CHARS).unwrap(),
            attachment: None,
            sent_at: Timestamp::from_millis(0),
            edited_at: None,
            reactions: Vec::new(),
            reply: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blank and over-long messages are refused; line breaks are kept.
    #[test]
    fn message_bodies_are_checked() {
        assert_eq!(
            MessageBody::parse(" \n\t ", 10),
            Err(ChatError::MessageEmpty)
        );
        assert_eq!(
            MessageBody::parse("12345678901", 10),
            Err(ChatError::MessageTooLong { max: 10 })
        );
        assert_eq!(
            MessageBody::parse("a\u{7}", 10),
            Err(ChatError::MessageInvalid)
        );
        assert_eq!(MessageBody::parse("a\nb", 10).unwrap().as_str(), "a\nb");
    }

    /// A posted message may have a blank body only when it carries an attachment (the body is
    /// then empty); the other rules hold either way.
    #[test]
    fn blank_bodies_need_an_attachment() {
        assert_eq!(
            MessageBody::for_post(" \n ", 10, false),
            Err(ChatError::MessageEmpty)
        );
        assert_eq!(
            MessageBody::for_post(" \n ", 10, true),
            Ok(MessageBody::empty())
        );
        assert_eq!(
            MessageBody::for_post("12345678901", 10, true),
            Err(ChatError::MessageTooLong { max: 10 })
        );
        assert_eq!(
            MessageBody::for_post(" hi ", 10, true).map(String::from),
            Ok(" hi ".to_owned())
        );
    }
}
