//! Replies: what a reply carries of the message it answers (its id, number, author and a
//! short excerpt of its text), taken by the server when the reply is posted, so the quote
//! shows even after the original has left the history or was deleted.

use super::message::{Message, MessageId};
use super::user::UserInfo;
use serde::{Deserialize, Serialize};

/// Most characters of an excerpt, the "…" that marks a cut included.
pub const MAX_EXCERPT_CHARS: usize = 100;

/// The message a reply answers, as it was when the reply was posted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The original's id (unique across the server).
    pub id: MessageId,
    /// The original's number in the room: where the log finds it.
    pub seq: u64,
    /// Who wrote the original (with their current name wherever it is sent from).
    pub author: UserInfo,
    /// The original's first line of text, without formatting marks, cut to
    /// [`MAX_EXCERPT_CHARS`]; the file's name for a message that is only a file. Plain text,
    /// always shown as text. (Read back as stored: cut again, never refused.)
    #[serde(deserialize_with = "read_excerpt")]
    pub excerpt: String,
}

impl Reply {
    /// What a reply to `original` carries of it.
    pub fn to(original: &Message) -> Reply {
        let text = super::markup::plain_text(&super::markup::parse(original.body.as_str()));
        let line = text.lines().map(str::trim).find(|l| !l.is_empty());
        let file = original.attachment.as_ref().map(|a| a.name.as_str());
        Reply {
            id: original.id,
            seq: original.seq,
            author: original.author.clone(),
            excerpt: cut(line.or(file).unwrap_or_default()),
        }
    }
}

/// `text` without control characters, at most [`MAX_EXCERPT_CHARS`] characters long (cut on
/// a character, ending in "…" when cut).
fn cut(text: &str) -> String {
    let mut chars = text.chars().filter(|c| !c.is_control());
    let mut out: String = chars.by_ref().take(MAX_EXCERPT_CHARS - 1).collect();
    let rest: Vec<char> = chars.take(2).collect();
    match rest.len() {
        0 => {}
        1 => out.push(rest[0]),
        _ => out.push('…'),
    }
    out
}

fn read_excerpt<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(cut(&text))
}

#[cfg(test)]
mod tests {
    use super::super::message::fixture::saying as message;
    use super::*;

    /// The excerpt is the first line with text, without its formatting marks, and a long
    /// one is cut to 100 characters on a character (never inside one), ending in "…".
    #[test]
    fn the_excerpt_is_the_first_line_cut_short() {
        let reply = Reply::to(&message("\n  **Hello** there\nsecond line"));
        assert_eq!((reply.id, reply.seq), (MessageId(1), 1));
        assert_eq!(reply.excerpt, "Hello there");
        let long = Reply::to(&message(&"é".repeat(150))).excerpt;
        assert_eq!(long.chars().count(), MAX_EXCERPT_CHARS);
        assert!(long.ends_with("é…"));
        let exact = "x".repeat(MAX_EXCERPT_CHARS);
        assert_eq!(Reply::to(&message(&exact)).excerpt, exact, "not cut");
    }

    /// An excerpt read back is cut again, so a stored or forged one is never longer.
    #[test]
    fn an_excerpt_read_back_is_cut() {
        let json = format!(
            r#"{{"id":1,"seq":1,"author":{{"id":1,"name":"Ann"}},"excerpt":"{}\u0007"}}"#,
            "y".repeat(500)
        );
        let reply: Reply = serde_json::from_str(&json).unwrap();
        assert_eq!(reply.excerpt.chars().count(), MAX_EXCERPT_CHARS);
        assert!(!reply.excerpt.contains('\u{7}'));
    }
}
