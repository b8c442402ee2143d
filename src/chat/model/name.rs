//! Names people type: channel names (compared without regard to case) and display names.

use super::error::ChatError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest channel name, in characters, after trimming.
pub const MAX_CHANNEL_NAME_CHARS: usize = 40;
/// Longest display name, in characters, after trimming.
pub const MAX_DISPLAY_NAME_CHARS: usize = 32;
/// Characters a channel name cannot contain, because they have meaning in a URL path.
pub const CHANNEL_NAME_FORBIDDEN: &[char] = &['/', '\\', '?', '#', '%'];

/// True for characters that reorder or hide text (bidirectional overrides and isolates,
/// zero-width marks); names may not contain them, so a name always reads as what it is.
pub(super) fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// What a kind of name allows, and the error for each way a name breaks it. Names are
/// trimmed, not empty, at most `max_chars` long, and free of control characters, invisible
/// formatting characters and the kind's `forbidden` characters.
struct NameRules {
    max_chars: usize,
    forbidden: &'static [char],
    empty: ChatError,
    too_long: ChatError,
    invalid: ChatError,
}

impl NameRules {
    /// The trimmed name, or the error for the first rule it breaks.
    fn check(self, raw: &str) -> Result<&str, ChatError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(self.empty);
        }
        if name.chars().count() > self.max_chars {
            return Err(self.too_long);
        }
        if name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c) || self.forbidden.contains(&c))
        {
            return Err(self.invalid);
        }
        Ok(name)
    }
}

/// A channel's name as its creator typed it, trimmed; compared without regard to case.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(String);

impl ChannelName {
    /// Checks and trims a channel name typed by a user.
    pub fn parse(raw: &str) -> Result<Self, ChatError> {
        let rules = NameRules {
            max_chars: MAX_CHANNEL_NAME_CHARS,
            forbidden: CHANNEL_NAME_FORBIDDEN,
            empty: ChatError::ChannelNameEmpty,
            too_long: ChatError::ChannelNameTooLong {
                max: MAX_CHANNEL_NAME_CHARS,
            },
            invalid: ChatError::ChannelNameInvalid,
        };
        rules.check(raw).map(|name| ChannelName(name.to_owned()))
    }

    /// Checks a name for a channel about to be created: [`ChannelName::parse`], and not `.`
    /// or `..`, which are dot segments a browser resolves away, so no page of such a channel
    /// could be opened. (Only new names: a channel stored under such a name still loads.)
    pub fn parse_new(raw: &str) -> Result<Self, ChatError> {
        let name = ChannelName::parse(raw)?;
        if matches!(name.as_str(), "." | "..") {
            return Err(ChatError::ChannelNameInvalid);
        }
        Ok(name)
    }

    /// The name as it is displayed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity of the channel: two names with the same key name the same channel.
    pub fn key(&self) -> ChannelKey {
        ChannelKey(self.0.to_lowercase())
    }
}

impl PartialEq for ChannelName {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for ChannelName {}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ChannelName {
    type Error = ChatError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ChannelName::parse(&value)
    }
}

impl From<ChannelName> for String {
    fn from(value: ChannelName) -> Self {
        value.0
    }
}

/// The case-folded form of a channel name, used to look channels up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey(String);

impl ChannelKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's display name, trimmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// Checks and trims a display name typed by a user.
    pub fn parse(raw: &str) -> Result<Self, ChatError> {
        let rules = NameRules {
            max_chars: MAX_DISPLAY_NAME_CHARS,
            forbidden: &[],
            empty: ChatError::DisplayNameEmpty,
            too_long: ChatError::DisplayNameTooLong {
                max: MAX_DISPLAY_NAME_CHARS,
            },
            invalid: ChatError::DisplayNameInvalid,
        };
        rules.check(raw).map(|name| DisplayName(name.to_owned()))
    }

    /// The name as it is displayed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity of the name: two names with the same key cannot both be in use.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DisplayName {
    type Error = ChatError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        DisplayName::parse(&value)
    }
}

impl From<DisplayName> for String {
    fn from(value: DisplayName) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are trimmed, and two names that differ only in case or surrounding spaces are the
    /// same channel.
    #[test]
    fn channel_names_trim_and_ignore_case() {
        let a = ChannelName::parse("General").unwrap();
        let b = ChannelName::parse("  general ").unwrap();
        assert_eq!(b.as_str(), "general");
        assert_eq!(a, b);
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), ChannelName::parse("random").unwrap().key());
    }

    /// Empty, over-long and control-character channel names are refused with their own error.
    #[test]
    fn bad_channel_names_are_refused() {
        assert_eq!(ChannelName::parse("   "), Err(ChatError::ChannelNameEmpty));
        let long = "x".repeat(MAX_CHANNEL_NAME_CHARS + 1);
        assert_eq!(
            ChannelName::parse(&long),
            Err(ChatError::ChannelNameTooLong {
                max: MAX_CHANNEL_NAME_CHARS
            })
        );
        assert!(ChannelName::parse(&"x".repeat(MAX_CHANNEL_NAME_CHARS)).is_ok());
        for bad in ["a\u{0}b", "tab\there", "a/b", "rtl\u{202E}x", "q?x"] {
            assert_eq!(
                ChannelName::parse(bad),
                Err(ChatError::ChannelNameInvalid),
                "{bad:?}"
            );
        }
        // A page at `/c/.` or `/c/..` could never be opened: the browser drops dot segments,
        // so no new channel may take those names (one already stored still loads).
        for dots in [".", "..", " .. "] {
            assert_eq!(
                ChannelName::parse_new(dots),
                Err(ChatError::ChannelNameInvalid),
                "{dots:?}"
            );
            assert!(ChannelName::parse(dots).is_ok(), "{dots:?}");
        }
        assert!(ChannelName::parse_new("...").is_ok());
        assert!(ChannelName::parse_new(".hidden").is_ok());
        // Markup is only text: allowed, and rendered as text by the UI.
        assert!(ChannelName::parse("<img src=x onerror=alert(1)>").is_ok());
    }

    /// Display names follow the same trimming and refusal rules.
    #[test]
    fn display_names_are_checked() {
        assert_eq!(DisplayName::parse(" Ada ").unwrap().as_str(), "Ada");
        assert_eq!(DisplayName::parse(""), Err(ChatError::DisplayNameEmpty));
        assert!(matches!(
            DisplayName::parse(&"n".repeat(MAX_DISPLAY_NAME_CHARS + 1)),
            Err(ChatError::DisplayNameTooLong { .. })
        ));
        assert_eq!(
            DisplayName::parse("a\nb"),
            Err(ChatError::DisplayNameInvalid)
        );
    }

    /// Values that arrive as JSON are validated exactly like typed input.
    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<ChannelName>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<ChannelName>("\"\"").is_err());
        assert!(serde_json::from_str::<DisplayName>("\"a\\u0000\"").is_err());
    }
}
