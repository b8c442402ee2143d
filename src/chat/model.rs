//! The chat domain's validated values: channel names, display names, message bodies and
//! messages, plus the one error type every rule violation is reported with.
//!
//! Every value here is checked once, when it is made from user input, so the rest of the code
//! can trust it. Deserialising a value runs the same checks, so a value that arrives over the
//! network is no less trustworthy than one made here.

pub use super::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest channel name, in characters, after trimming.
pub const MAX_CHANNEL_NAME_CHARS: usize = 40;
/// Longest display name, in characters, after trimming.
pub const MAX_DISPLAY_NAME_CHARS: usize = 32;
/// Longest message body, in characters, unless the server is configured otherwise.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 4000;
/// How many messages a channel keeps: the server stores and serves only the most recent ones.
pub const HISTORY_LIMIT: usize = 100;
/// Characters a channel name cannot contain, because they have meaning in a URL path.
pub const CHANNEL_NAME_FORBIDDEN: &[char] = &['/', '\\', '?', '#', '%'];

/// Everything that can go wrong in a chat action, each with the sentence a user is shown.
///
/// The same type travels in server-function results and in the WebSocket protocol's error
/// events (as its [`ChatError::code`] and its `Display` text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(
    tag = "code",
    content = "detail",
    rename_all = "snake_case",
    try_from = "WireError"
)]
pub enum ChatError {
    #[error("Channel names can't be empty.")]
    ChannelNameEmpty,
    #[error("Channel names can be at most {max} characters long.")]
    ChannelNameTooLong { max: usize },
    #[error("Channel names can't contain control characters or any of / \\ ? # %.")]
    ChannelNameInvalid,
    #[error("A channel named \u{201c}{0}\u{201d} already exists.")]
    ChannelExists(String),
    #[error("There is no channel named \u{201c}{0}\u{201d}.")]
    NoSuchChannel(String),
    #[error("Display names can't be empty.")]
    DisplayNameEmpty,
    #[error("Display names can be at most {max} characters long.")]
    DisplayNameTooLong { max: usize },
    #[error("Display names can't contain control characters.")]
    DisplayNameInvalid,
    #[error("Messages can't be empty.")]
    MessageEmpty,
    #[error("Messages can be at most {max} characters long.")]
    MessageTooLong { max: usize },
    #[error("Messages can't contain control characters other than tabs and line breaks.")]
    MessageInvalid,
    #[error("The display name \u{201c}{0}\u{201d} is taken; choose another.")]
    DisplayNameTaken(String),
    #[error("Choose a display name before doing that.")]
    NotIdentified,
    #[error("Your session is not recognised; choose your display name again.")]
    Unauthorized,
    #[error("There is no such user.")]
    NoSuchUser,
    #[error("You can't open a private conversation with yourself.")]
    DirectWithSelf,
    #[error("That conversation is private.")]
    Forbidden,
    #[error("That message does not exist (it may have been deleted).")]
    NoSuchMessage,
    #[error("You can only delete your own messages.")]
    NotYourMessage,
    #[error("Files can be at most {} large.", human_size(*max_bytes))]
    FileTooLarge { max_bytes: u64 },
    #[error("That file is empty.")]
    FileEmpty,
    #[error("File names can't be empty, contain / or \\, or contain control characters.")]
    FileNameInvalid,
    #[error("That attachment does not exist, or is not yours to send here.")]
    NoSuchFile,
    #[error("You are sending messages too fast; wait a moment and try again.")]
    RateLimited,
    #[error("You are creating channels too fast; wait a minute and try again.")]
    ChannelRateLimited,
    #[error("Something went wrong on the server: {0}")]
    Unavailable(String),
}

impl ChatError {
    /// The stable, machine-readable name of this error, as used in the wire protocol.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::ChannelNameEmpty => "channel_name_empty",
            ChatError::ChannelNameTooLong { .. } => "channel_name_too_long",
            ChatError::ChannelNameInvalid => "channel_name_invalid",
            ChatError::ChannelExists(_) => "channel_exists",
            ChatError::NoSuchChannel(_) => "no_such_channel",
            ChatError::DisplayNameEmpty => "display_name_empty",
            ChatError::DisplayNameTooLong { .. } => "display_name_too_long",
            ChatError::DisplayNameInvalid => "display_name_invalid",
            ChatError::MessageEmpty => "message_empty",
            ChatError::MessageTooLong { .. } => "message_too_long",
            ChatError::MessageInvalid => "message_invalid",
            ChatError::DisplayNameTaken(_) => "display_name_taken",
            ChatError::NotIdentified => "not_identified",
            ChatError::Unauthorized => "unauthorized",
            ChatError::NoSuchUser => "no_such_user",
            ChatError::DirectWithSelf => "direct_with_self",
            ChatError::Forbidden => "forbidden",
            ChatError::NoSuchMessage => "no_such_message",
            ChatError::NotYourMessage => "not_your_message",
            ChatError::FileTooLarge { .. } => "file_too_large",
            ChatError::FileEmpty => "file_empty",
            ChatError::FileNameInvalid => "file_name_invalid",
            ChatError::NoSuchFile => "no_such_file",
            ChatError::RateLimited => "rate_limited",
            ChatError::ChannelRateLimited => "channel_rate_limited",
            ChatError::Unavailable(_) => "unavailable",
        }
    }
}

/// A [`ChatError`] as read from JSON: its code and, for some codes, a detail (a name, or a
/// limit in an object such as `{"max": 40}`). Read through this rather than with the derived
/// reader of the adjacently tagged enum, which alone added about 20 KB to the browser's
/// WebAssembly; what is written is unchanged.
#[derive(Deserialize)]
struct WireError {
    code: String,
    #[serde(default)]
    detail: Option<Detail>,
}

/// The `detail` of an error on the wire.
enum Detail {
    Text(String),
    /// The one number in an object, whatever its key.
    Number(u64),
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
                let Some((_, number)) = map.next_entry::<serde::de::IgnoredAny, u64>()? else {
                    return Err(serde::de::Error::custom("an empty detail"));
                };
                if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom(
                        "a detail with more than one number",
                    ));
                }
                Ok(Detail::Number(number))
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl TryFrom<WireError> for ChatError {
    type Error = String;

    fn try_from(wire: WireError) -> Result<ChatError, String> {
        let code = wire.code.as_str();
        let (text, number) = match wire.detail {
            Some(Detail::Text(text)) => (Some(text), None),
            Some(Detail::Number(number)) => (None, Some(number)),
            None => (None, None),
        };
        let text = || text.ok_or_else(|| format!("{code}: its detail is missing"));
        let limit = || number.ok_or_else(|| format!("{code}: its limit is missing"));
        let max = || limit().and_then(|n| usize::try_from(n).map_err(|e| format!("{code}: {e}")));
        Ok(match code {
            "channel_name_empty" => ChatError::ChannelNameEmpty,
            "channel_name_too_long" => ChatError::ChannelNameTooLong { max: max()? },
            "channel_name_invalid" => ChatError::ChannelNameInvalid,
            "channel_exists" => ChatError::ChannelExists(text()?),
            "no_such_channel" => ChatError::NoSuchChannel(text()?),
            "display_name_empty" => ChatError::DisplayNameEmpty,
            "display_name_too_long" => ChatError::DisplayNameTooLong { max: max()? },
            "display_name_invalid" => ChatError::DisplayNameInvalid,
            "message_empty" => ChatError::MessageEmpty,
            "message_too_long" => ChatError::MessageTooLong { max: max()? },
            "message_invalid" => ChatError::MessageInvalid,
            "display_name_taken" => ChatError::DisplayNameTaken(text()?),
            "not_identified" => ChatError::NotIdentified,
            "unauthorized" => ChatError::Unauthorized,
            "no_such_user" => ChatError::NoSuchUser,
            "direct_with_self" => ChatError::DirectWithSelf,
            "forbidden" => ChatError::Forbidden,
            "no_such_message" => ChatError::NoSuchMessage,
            "not_your_message" => ChatError::NotYourMessage,
            "file_too_large" => ChatError::FileTooLarge {
                max_bytes: limit()?,
            },
            "file_empty" => ChatError::FileEmpty,
            "file_name_invalid" => ChatError::FileNameInvalid,
            "no_such_file" => ChatError::NoSuchFile,
            "rate_limited" => ChatError::RateLimited,
            "channel_rate_limited" => ChatError::ChannelRateLimited,
            "unavailable" => ChatError::Unavailable(text()?),
            other => return Err(format!("unknown error code {other:?}")),
        })
    }
}

/// Lets server functions return [`ChatError`] directly: transport failures become
/// [`ChatError::Unavailable`].
impl leptos::server_fn::error::FromServerFnError for ChatError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        ChatError::Unavailable(value.to_string())
    }
}

/// True for characters that reorder or hide text (bidirectional overrides and isolates,
/// zero-width marks); names may not contain them, so a name always reads as what it is.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A channel's name as its creator typed it, trimmed; compared without regard to case.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(String);

impl ChannelName {
    /// Checks and trims a channel name typed by a user.
    pub fn parse(raw: &str) -> Result<Self, ChatError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ChatError::ChannelNameEmpty);
        }
        if name.chars().count() > MAX_CHANNEL_NAME_CHARS {
            return Err(ChatError::ChannelNameTooLong {
                max: MAX_CHANNEL_NAME_CHARS,
            });
        }
        if name.chars().any(|c| {
            c.is_control() || is_invisible_format(c) || CHANNEL_NAME_FORBIDDEN.contains(&c)
        }) {
            return Err(ChatError::ChannelNameInvalid);
        }
        Ok(ChannelName(name.to_owned()))
    }

    /// The name as it is displayed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity of the channel: two names with the same key name the same channel.
    pub fn key(&self) -> ChannelKey {
        ChannelKey(self.0.to_lowercase())
    }

    /// The site-relative address of this channel's page.
    pub fn path(&self) -> String {
        format!("/c/{}", encode_path_segment(&self.0))
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
        let name = raw.trim();
        if name.is_empty() {
            return Err(ChatError::DisplayNameEmpty);
        }
        if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(ChatError::DisplayNameTooLong {
                max: MAX_DISPLAY_NAME_CHARS,
            });
        }
        if name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
        {
            return Err(ChatError::DisplayNameInvalid);
        }
        Ok(DisplayName(name.to_owned()))
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

/// A registered user's server-assigned identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A user as others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Never changes.
    pub id: UserId,
    /// Changes when the user renames themselves.
    pub name: DisplayName,
}

/// What the browser keeps after choosing a name: who it is and the secret that proves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The user.
    pub user: UserInfo,
    /// The bearer token: presented on the socket and to server functions; the server keeps
    /// only its hash.
    pub token: String,
}

/// The two participants of a private conversation, the smaller id first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "[UserId; 2]", into = "[UserId; 2]")]
pub struct DirectKey(UserId, UserId);

impl DirectKey {
    /// The conversation between two different users.
    pub fn between(a: UserId, b: UserId) -> Result<DirectKey, ChatError> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Ok(DirectKey(a, b)),
            std::cmp::Ordering::Greater => Ok(DirectKey(b, a)),
            std::cmp::Ordering::Equal => Err(ChatError::DirectWithSelf),
        }
    }

    /// True when `user` is one of the two participants.
    pub fn includes(&self, user: UserId) -> bool {
        self.0 == user || self.1 == user
    }

    /// The participant who is not `user` (meaningful only for a participant).
    pub fn other(&self, user: UserId) -> UserId {
        if self.0 == user {
            self.1
        } else {
            self.0
        }
    }

    /// Both participants.
    pub fn users(&self) -> [UserId; 2] {
        [self.0, self.1]
    }
}

impl TryFrom<[UserId; 2]> for DirectKey {
    type Error = ChatError;
    fn try_from([a, b]: [UserId; 2]) -> Result<Self, Self::Error> {
        DirectKey::between(a, b)
    }
}

impl From<DirectKey> for [UserId; 2] {
    fn from(key: DirectKey) -> Self {
        [key.0, key.1]
    }
}

/// Where a message lives: a public channel or a private conversation between two users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Room {
    /// A channel anyone can read and post in.
    Channel(ChannelName),
    /// A conversation only its two participants can read or post in.
    Direct(DirectKey),
}

impl Room {
    /// The room's identity, for lookups.
    pub fn key(&self) -> RoomKey {
        match self {
            Room::Channel(name) => RoomKey::Channel(name.key()),
            Room::Direct(key) => RoomKey::Direct(*key),
        }
    }

    /// The channel's name, for a channel.
    pub fn channel(&self) -> Option<&ChannelName> {
        match self {
            Room::Channel(name) => Some(name),
            Room::Direct(_) => None,
        }
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Room::Channel(name) => write!(f, "#{name}"),
            Room::Direct(key) => write!(f, "direct {}-{}", key.0, key.1),
        }
    }
}

/// The identity of a room: equal keys name the same room.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomKey {
    /// A channel, by its case-folded name.
    Channel(ChannelKey),
    /// A private conversation.
    Direct(DirectKey),
}

/// Where a client's copy of a channel ends: the server epoch and the last sequence number it
/// has. Sent when (re)joining so the server can send only what was missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The server epoch the client's sequence numbers came from.
    pub epoch: u64,
    /// The highest sequence number the client holds for the channel.
    pub seq: u64,
}

/// A channel as everyone sees it in the channel list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// The channel's name as its creator typed it.
    pub name: ChannelName,
    /// When the server created it.
    pub created_at: Timestamp,
}

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
}

/// An uploaded file's unguessable identity: 128 random bits, hex-encoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileId(String);

impl FileId {
    /// Checks the form of a file id (32 lowercase hex digits).
    pub fn parse(raw: &str) -> Result<FileId, ChatError> {
        if raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(FileId(raw.to_owned()))
        } else {
            Err(ChatError::NoSuchFile)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FileId {
    type Error = ChatError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        FileId::parse(&value)
    }
}

impl From<FileId> for String {
    fn from(value: FileId) -> Self {
        value.0
    }
}

/// A file attached to a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Where it is served: `/files/{id}`.
    pub id: FileId,
    /// The name it was uploaded with (checked with [`parse_file_name`]).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The type it is served with, decided from its content.
    pub content_type: String,
    /// True for PNG, JPEG, GIF and WebP images, which are shown as previews.
    pub image: bool,
}

impl Attachment {
    /// The address the file is served at.
    pub fn url(&self) -> String {
        format!("/files/{}", self.id.as_str())
    }
}

/// Checks an uploaded file's name: trimmed, 1 to 200 characters, no path separators, no
/// control or invisible characters.
pub fn parse_file_name(raw: &str) -> Result<String, ChatError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > 200
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control() || is_invisible_format(c))
    {
        return Err(ChatError::FileNameInvalid);
    }
    Ok(name.to_owned())
}

/// Recognises the images Flack previews by their first bytes, whatever their name says.
pub fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A size in bytes as people read it: "512 B", "2.5 KB", "10 MB".
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    // Whole numbers only: formatting floating point would add its own code to the browser's
    // WebAssembly for this one label.
    let (unit, name) = match bytes {
        0..KIB => return format!("{bytes} B"),
        KIB..1_048_576 => (KIB, "KB"),
        _ => (KIB * KIB, "MB"),
    };
    let tenths = (u128::from(bytes) * 10 + u128::from(unit / 2)) / u128::from(unit);
    format!("{}.{} {name}", tenths / 10, tenths % 10)
}

/// A room's recent history as served to a client that opens it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The room.
    pub room: Room,
    /// What to call it: the channel's name, or the other participant's display name.
    pub title: String,
    /// For a private conversation, the other participant.
    pub peer: Option<UserInfo>,
    /// The server epoch the sequence numbers belong to (see the protocol document).
    pub epoch: u64,
    /// The sequence number of the room's newest message, 0 if none.
    pub last_seq: u64,
    /// The messages numbered within [`HISTORY_LIMIT`] of `last_seq`, oldest first.
    pub messages: Vec<Message>,
}

/// A private conversation as listed in its participant's sidebar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectSummary {
    /// The conversation.
    pub key: DirectKey,
    /// The other participant.
    pub peer: UserInfo,
}

/// Percent-encodes a string for use as one URL path segment.
pub fn encode_path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes a percent-encoded URL path segment; invalid escapes are kept as they are.
pub fn decode_path_segment(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

    /// Values that arrive as JSON are validated exactly like typed input.
    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<ChannelName>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<ChannelName>("\"\"").is_err());
        assert!(serde_json::from_str::<DisplayName>("\"a\\u0000\"").is_err());
    }

    /// Channel paths percent-encode everything but unreserved characters.
    #[test]
    fn channel_paths_are_encoded() {
        assert_eq!(
            ChannelName::parse("dev ops").unwrap().path(),
            "/c/dev%20ops"
        );
        assert_eq!(ChannelName::parse("é<").unwrap().path(), "/c/%C3%A9%3C");
        assert_eq!(decode_path_segment("%C3%A9%3C"), "é<");
        assert_eq!(decode_path_segment("dev%20ops"), "dev ops");
        assert_eq!(decode_path_segment("plain"), "plain");
        assert_eq!(decode_path_segment("bad%2"), "bad%2");
        assert_eq!(decode_path_segment("%zz"), "%zz");
    }

    /// Images are recognised by their content, not their name; file names with separators or
    /// control characters are refused.
    #[test]
    fn files_are_checked() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_image(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff_image(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_image(b"<svg onload=alert(1)>"), None);
        assert_eq!(parse_file_name(" report.pdf ").unwrap(), "report.pdf");
        for bad in ["", "../etc/passwd", "a\\b", "x\u{0}y", "rtl\u{202E}fdp.exe"] {
            assert_eq!(
                parse_file_name(bad),
                Err(ChatError::FileNameInvalid),
                "{bad:?}"
            );
        }
        assert_eq!(human_size(10 * 1024 * 1024), "10.0 MB");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KB");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(1_048_575), "1024.0 KB");
        assert_eq!(human_size(5 * 1024 * 1024 + 52_429), "5.1 MB");
        assert!(FileId::parse("../../etc").is_err());
    }

    /// Every error, one of each kind.
    fn every_error() -> [ChatError; 26] {
        [
            ChatError::ChannelNameEmpty,
            ChatError::ChannelNameTooLong { max: 1 },
            ChatError::ChannelNameInvalid,
            ChatError::ChannelExists(String::new()),
            ChatError::NoSuchChannel(String::new()),
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
            ChatError::Forbidden,
            ChatError::NoSuchMessage,
            ChatError::NotYourMessage,
            ChatError::FileTooLarge { max_bytes: 1 },
            ChatError::FileEmpty,
            ChatError::FileNameInvalid,
            ChatError::NoSuchFile,
            ChatError::RateLimited,
            ChatError::ChannelRateLimited,
            ChatError::Unavailable("disk full".into()),
        ]
    }

    /// Every error has a distinct wire code.
    #[test]
    fn error_codes_are_distinct() {
        let all = every_error();
        let codes: std::collections::HashSet<_> = all.iter().map(ChatError::code).collect();
        assert_eq!(codes.len(), all.len());
    }

    /// Every error reads back as itself from the JSON it is written as (with its name or
    /// limit), and JSON that names no known error, or lacks a detail, is refused.
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
            r#"{"code":"message_too_long","detail":{"max":7}}"#,
            "the written form is unchanged"
        );
        for bad in [
            r#"{"code":"no_such_thing"}"#,
            r#"{"code":"channel_exists"}"#,
            r#"{"code":"message_too_long","detail":"seven"}"#,
            r#"{"code":"message_too_long","detail":{"max":7,"min":1}}"#,
            r#"{"detail":"x"}"#,
        ] {
            assert!(serde_json::from_str::<ChatError>(bad).is_err(), "{bad}");
        }
    }
}
