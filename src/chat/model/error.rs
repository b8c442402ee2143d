//! [`ChatError`]: every way a chat action can be refused, with the sentence a user is shown
//! and the stable code the wire carries.

use super::file::human_size;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares [`ChatError`] from one table: each variant with its sentence (for `thiserror`)
/// and its wire code. The enum, [`ChatError::code`], [`ChatError::CODES`],
/// [`ChatError::detail`] and [`ChatError::from_code`] (which the JSON reader uses) are all
/// generated from it, so a code is spelled once. A variant carries nothing, a text
/// (`(String)`) or one limit (`{ name: type }`).
///
/// The table has two parts. `shared` errors exist in every build. `server` errors only ever
/// come from the server (limits, quotas, HTTP refusals): they exist only in the server's
/// build, so their sentences cost the browser's WebAssembly nothing; the browser reads them
/// as [`ChatError::Refused`], with the server's own sentence.
macro_rules! chat_errors {
    (
        shared { $(
            #[error($($message:tt)*)]
            $variant:ident $(($text:ty))? $({ $limit:ident: $limit_ty:ty })? = $code:literal,
        )* }
        server { $(
            #[error($($s_message:tt)*)]
            $s_variant:ident $(($s_text:ty))? $({ $s_limit:ident: $s_limit_ty:ty })? = $s_code:literal,
        )* }
    ) => {
        /// Everything that can go wrong in a chat action, each with the sentence a user is
        /// shown.
        ///
        /// The same type travels in server-function results and in the WebSocket
        /// protocol's error events (as its [`ChatError::code`] and its `Display` text).
        #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
        pub enum ChatError {
            $(
                #[error($($message)*)]
                $variant $(($text))? $({ $limit: $limit_ty })?,
            )*
            $(
                #[cfg(feature = "ssr")]
                #[error($($s_message)*)]
                $s_variant $(($s_text))? $({ $s_limit: $s_limit_ty })?,
            )*
        }

        impl ChatError {
            /// Every wire code this build knows, in declaration order.
            #[cfg(feature = "ssr")]
            pub const CODES: &[&str] = &[$($code,)* $($s_code,)*];
            /// Every wire code this build knows, in declaration order.
            #[cfg(not(feature = "ssr"))]
            pub const CODES: &[&str] = &[$($code,)*];

            /// The stable, machine-readable name of this error, as used in the wire protocol.
            pub fn code(&self) -> &'static str {
                match self {
                    $(ChatError::$variant { .. } => $code,)*
                    $(#[cfg(feature = "ssr")] ChatError::$s_variant { .. } => $s_code,)*
                }
            }

            /// The error a wire code and its detail describe: the inverse of
            /// [`ChatError::code`] and [`ChatError::detail`].
            pub fn from_code(code: &str, detail: Option<Detail>) -> Result<ChatError, String> {
                ChatError::read(code, detail)
                    .unwrap_or_else(|| Err(format!("unknown error code {code:?}")))
            }

            /// [`ChatError::from_code`], with `None` for a code this build does not know.
            fn read(code: &str, detail: Option<Detail>) -> Option<Result<ChatError, String>> {
                Some(match code {
                    $($code => chat_errors!(@read $variant, code, detail $(, ($text))? $(, { $limit: $limit_ty })?),)*
                    $(#[cfg(feature = "ssr")] $s_code => chat_errors!(@read $s_variant, code, detail $(, ($s_text))? $(, { $s_limit: $s_limit_ty })?),)*
                    _ => return None,
                })
            }

            /// What the error carries besides its code: a name, or a limit.
            pub fn detail(&self) -> Option<Detail> {
                match self {
                    $(chat_errors!(@pattern $variant, detail $(, ($text))? $(, { $limit })?) => {
                        chat_errors!(@detail detail $(, ($text))? $(, { $limit })?)
                    })*
                    $(#[cfg(feature = "ssr")] chat_errors!(@pattern $s_variant, detail $(, ($s_text))? $(, { $s_limit })?) => {
                        chat_errors!(@detail detail $(, ($s_text))? $(, { $s_limit })?)
                    })*
                }
            }
        }
    };
    (@read $variant:ident, $code:ident, $detail:ident) => { Ok(ChatError::$variant) };
    (@read $variant:ident, $code:ident, $detail:ident, ($text:ty)) => {
        detail_text($code, $detail).map(ChatError::$variant)
    };
    (@read $variant:ident, $code:ident, $detail:ident, { $limit:ident: $limit_ty:ty }) => {
        detail_limit::<$limit_ty>($code, $detail).map(|$limit| ChatError::$variant { $limit })
    };
    (@pattern $variant:ident, $detail:ident) => { ChatError::$variant };
    (@pattern $variant:ident, $detail:ident, ($text:ty)) => { ChatError::$variant($detail) };
    (@pattern $variant:ident, $detail:ident, { $limit:ident }) => { ChatError::$variant { $limit } };
    (@detail $detail:ident) => { None };
    (@detail $detail:ident, ($text:ty)) => { Some(Detail::Text($detail.clone())) };
    (@detail $detail:ident, { $limit:ident }) => {
        Some(Detail::Limit(stringify!($limit).to_owned(), *$limit as u64))
    };
}

chat_errors! {
    shared {
        #[error("Channel names can't be empty.")]
        ChannelNameEmpty = "channel_name_empty",
        #[error("Channel names can be at most {max} characters long.")]
        ChannelNameTooLong { max: usize } = "channel_name_too_long",
        #[error("Channel names can't contain control characters, invisible ones, stacked accents or any of / \\ ? # %, and can't be . or ..")]
        ChannelNameInvalid = "channel_name_invalid",
        #[error("Display names can't be empty.")]
        DisplayNameEmpty = "display_name_empty",
        #[error("Display names can be at most {max} characters long.")]
        DisplayNameTooLong { max: usize } = "display_name_too_long",
        #[error("Display names can't contain control or invisible characters, or stacked accents.")]
        DisplayNameInvalid = "display_name_invalid",
        #[error("Messages can't be empty.")]
        MessageEmpty = "message_empty",
        #[error("Messages can be at most {max} characters long.")]
        MessageTooLong { max: usize } = "message_too_long",
        #[error("Messages can't contain control characters other than tabs and line breaks.")]
        MessageInvalid = "message_invalid",
        #[error("The display name \u{201c}{0}\u{201d} is taken; choose another.")]
        DisplayNameTaken(String) = "display_name_taken",
        #[error("Choose a display name before doing that.")]
        NotIdentified = "not_identified",
        #[error("Your session is not recognised; choose your display name again.")]
        Unauthorized = "unauthorized",
        #[error("There is no such user.")]
        NoSuchUser = "no_such_user",
        #[error("You can't open a private conversation with yourself.")]
        DirectWithSelf = "direct_with_self",
        #[error("Files can be at most {} large.", human_size(*max_bytes))]
        FileTooLarge { max_bytes: u64 } = "file_too_large",
        #[error("That file is empty.")]
        FileEmpty = "file_empty",
        #[error("File names can't be empty, contain / or \\, or contain control characters.")]
        FileNameInvalid = "file_name_invalid",
        #[error("That attachment does not exist, or is not yours to send here.")]
        NoSuchFile = "no_such_file",
        #[error("Something went wrong on the server: {0}")]
        Unavailable(String) = "unavailable",
        #[error("{0}")]
        Refused(String) = "refused",
        #[error("Type a word to search for.")]
        SearchEmpty = "search_empty",
        #[error("You are sending messages too fast; wait a moment and try again.")]
        RateLimited = "rate_limited",
        #[error("That emoji can't be used as a reaction.")]
        EmojiInvalid = "emoji_invalid",
        #[error("The message you are replying to is no longer here (deleted, or too old to reply to).")]
        NoSuchReply = "no_such_reply",
    }
    server {
        #[error("A channel named \u{201c}{0}\u{201d} already exists.")]
        ChannelExists(String) = "channel_exists",
        #[error("There is no channel named \u{201c}{0}\u{201d}.")]
        NoSuchChannel(String) = "no_such_channel",
        #[error("That conversation is private.")]
        Forbidden = "forbidden",
        #[error("That message does not exist (it may have been deleted).")]
        NoSuchMessage = "no_such_message",
        #[error("You can only edit or delete your own messages.")]
        NotYourMessage = "not_your_message",
        #[error("You are creating channels too fast; wait a minute and try again.")]
        ChannelRateLimited = "channel_rate_limited",
        #[error("You have too many files waiting to be sent; send or remove some first.")]
        TooManyUnsentFiles = "too_many_unsent_files",
        #[error("The server is short of disk space; files can't be uploaded now.")]
        DiskFull = "disk_full",
        #[error("You are switching channels too fast; wait a moment and try again.")]
        JoinRateLimited = "join_rate_limited",
        #[error("You are changing your name too often; wait a minute and try again.")]
        RenameRateLimited = "rename_rate_limited",
        #[error("You are starting private conversations too fast; wait a minute and try again.")]
        DirectRateLimited = "direct_rate_limited",
        #[error("This server already has its {max} channels; no more can be created.")]
        TooManyChannels { max: usize } = "too_many_channels",
        #[error("This server already has its {max} users; no more can register.")]
        TooManyUsers { max: usize } = "too_many_users",
        #[error("Too many accounts were made from your address; try again in an hour.")]
        TooManyRegistrations = "too_many_registrations",
        #[error("Flack refused a request sent by another site's page.")]
        CrossSite = "cross_site",
        #[error("This server does not answer for that address.")]
        UnknownHost = "unknown_host",
        #[error("The request stopped arriving before it was complete; try again.")]
        RequestTimeout = "request_timeout",
        #[error("Too many connections are open; try again in a moment.")]
        TooManyConnections = "too_many_connections",
        #[error("You are marking messages read too fast; wait a moment and try again.")]
        ReadRateLimited = "read_rate_limited",
        #[error("You are searching too fast; wait a moment and try again.")]
        SearchRateLimited = "search_rate_limited",
        #[error("Open the room first: you are not in it.")]
        NotInRoom = "not_in_room",
        #[error("You can react to one message with at most {max} emoji.")]
        TooManyReactions { max: usize } = "too_many_reactions",
        #[error("This message already has {max} different reactions.")]
        ReactionsFull { max: usize } = "reactions_full",
    }
}

/// Every transport carries an error in one body: `{"code": ..., "detail": ..., "message":
/// ...}`, the code from the table, the detail if the error has one (a name, or a limit as
/// `{"max": 40}`), and the sentence for people. Server functions and file routes send this
/// object as it is; the WebSocket's `error` event has the same members beside `type`.
impl Serialize for ChatError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let detail = self.detail();
        let mut out = serializer.serialize_struct("ChatError", 3)?;
        out.serialize_field("code", self.code())?;
        if let Some(detail) = &detail {
            out.serialize_field("detail", detail)?;
        }
        out.serialize_field("message", &self.to_string())?;
        out.end()
    }
}

/// A [`ChatError`] as read from JSON: its code and, for some codes, a detail (a name, or a
/// limit in an object such as `{"max": 40}`). Read through this rather than with the derived
/// reader of the adjacently tagged enum, which alone added about 20 KB to the browser's
/// WebAssembly.
#[derive(Deserialize)]
struct WireError {
    code: String,
    #[serde(default)]
    detail: Option<Detail>,
    /// The sentence, kept for a code this build does not know.
    #[serde(default)]
    message: String,
}

/// The `detail` of an error on the wire: a name, or one limit with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    Text(String),
    /// Written as `{"max": 40}`; read whatever its one key is.
    Limit(String, u64),
}

impl Serialize for Detail {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Detail::Text(text) => serializer.serialize_str(text),
            Detail::Limit(name, value) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(name, value)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Detail {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = Detail;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a text or an object with one number")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Detail, E> {
                Ok(Detail::Text(text.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Detail, A::Error> {
                let Some((name, number)) = map.next_entry::<String, u64>()? else {
                    return Err(serde::de::Error::custom("an empty detail"));
                };
                if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom(
                        "a detail with more than one number",
                    ));
                }
                Ok(Detail::Limit(name, number))
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl<'de> Deserialize<'de> for ChatError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireError::deserialize(deserializer)?;
        ChatError::try_from(wire).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<WireError> for ChatError {
    type Error = String;

    /// A code this build does not know (a server-only error, read by the browser, or a
    /// newer server's) becomes [`ChatError::Refused`] with the server's sentence.
    fn try_from(wire: WireError) -> Result<ChatError, String> {
        ChatError::read(&wire.code, wire.detail).unwrap_or(Ok(ChatError::Refused(wire.message)))
    }
}

/// The text a code's detail must be.
fn detail_text(code: &str, detail: Option<Detail>) -> Result<String, String> {
    match detail {
        Some(Detail::Text(text)) => Ok(text),
        _ => Err(format!("{code}: its detail is missing")),
    }
}

/// The limit a code's detail must hold, in the type its variant keeps it in.
fn detail_limit<T: TryFrom<u64>>(code: &str, detail: Option<Detail>) -> Result<T, String> {
    match detail {
        Some(Detail::Limit(_, number)) => {
            T::try_from(number).map_err(|_| format!("{code}: its limit is out of range"))
        }
        _ => Err(format!("{code}: its limit is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error, one of each kind.
    fn every_error() -> [ChatError; 47] {
        [
            ChatError::ChannelNameEmpty,
            ChatError::ChannelNameTooLong { max: 1 },
            ChatError::ChannelNameInvalid,
            ChatError::DisplayNameEmpty,
            ChatError::DisplayNameTooLong { max: 1 },
            ChatError::DisplayNameInvalid,
            ChatError::MessageEmpty,
            ChatError::MessageTooLong { max: 1 },
            ChatError::MessageInvalid,
            ChatError::DisplayNameTaken(String::new()),
            ChatError::NotIdentified,
            ChatError::Unauthorized,
            ChatError::NoSuchUser,
            ChatError::DirectWithSelf,
            ChatError::FileTooLarge { max_bytes: 1 },
            ChatError::FileEmpty,
            ChatError::FileNameInvalid,
            ChatError::NoSuchFile,
            ChatError::Unavailable("disk full".into()),
            ChatError::Refused("The server said no.".into()),
            ChatError::SearchEmpty,
            ChatError::RateLimited,
            ChatError::EmojiInvalid,
            ChatError::NoSuchReply,
            ChatError::ChannelExists(String::new()),
            ChatError::NoSuchChannel(String::new()),
            ChatError::Forbidden,
            ChatError::NoSuchMessage,
            ChatError::NotYourMessage,
            ChatError::ChannelRateLimited,
            ChatError::TooManyUnsentFiles,
            ChatError::DiskFull,
            ChatError::JoinRateLimited,
            ChatError::RenameRateLimited,
            ChatError::DirectRateLimited,
            ChatError::TooManyChannels { max: 1 },
            ChatError::TooManyUsers { max: 1 },
            ChatError::TooManyRegistrations,
            ChatError::CrossSite,
            ChatError::UnknownHost,
            ChatError::RequestTimeout,
            ChatError::TooManyConnections,
            ChatError::ReadRateLimited,
            ChatError::SearchRateLimited,
            ChatError::NotInRoom,
            ChatError::TooManyReactions { max: 1 },
            ChatError::ReactionsFull { max: 1 },
        ]
    }

    /// Every error has a distinct wire code.
    #[test]
    fn error_codes_are_distinct() {
        let all = every_error();
        let codes: std::collections::HashSet<_> = all.iter().map(ChatError::code).collect();
        assert_eq!(codes.len(), all.len());
    }

    /// The table's code list names every error once, in the order `every_error` lists them,
    /// so a new variant cannot be left out of the round-trip test below.
    #[test]
    fn code_list_matches_the_variants() {
        let listed: Vec<&str> = every_error().iter().map(ChatError::code).collect();
        assert_eq!(listed, ChatError::CODES);
    }

    /// Every error reads back as itself from the JSON it is written as (with its name or
    /// limit); JSON naming a code this build does not know reads as `Refused` with its
    /// sentence, and JSON that lacks a detail its code needs is refused.
    #[test]
    fn errors_round_trip_through_json() {
        let mut all = every_error().to_vec();
        all.extend([
            ChatError::ChannelExists("Design".into()),
            ChatError::MessageTooLong { max: 4000 },
            ChatError::FileTooLarge {
                max_bytes: 10 << 20,
            },
        ]);
        for error in all {
            let json = serde_json::to_string(&error).unwrap();
            assert_eq!(
                serde_json::from_str::<ChatError>(&json).unwrap(),
                error,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&ChatError::MessageTooLong { max: 7 }).unwrap(),
            r#"{"code":"message_too_long","detail":{"max":7},"message":"Messages can be at most 7 characters long."}"#,
            "the one error body: code, detail, message"
        );
        assert_eq!(
            serde_json::from_str::<ChatError>(r#"{"code":"no_such_thing","message":"Not today."}"#)
                .unwrap(),
            ChatError::Refused("Not today.".into()),
            "a code this build does not know keeps the server's sentence"
        );
        for bad in [
            r#"{"code":"channel_exists"}"#,
            r#"{"code":"message_too_long","detail":"seven"}"#,
            r#"{"code":"message_too_long","detail":{"max":7,"min":1}}"#,
            r#"{"detail":"x"}"#,
        ] {
            assert!(serde_json::from_str::<ChatError>(bad).is_err(), "{bad}");
        }
    }
}
