//! The chat domain's validated values, one module per concept: names, users, rooms,
//! messages, reactions, replies, attachments, unread counts and mentions, search, the formatting a message body
//! is read with (`markup`), and the one error type every rule violation is reported with.
//!
//! Every value here is checked once, when it is made from user input, so the rest of the code
//! can trust it. Deserialising a value runs the same checks, so a value that arrives over the
//! network is no less trustworthy than one made here. Everything is re-exported here, so
//! users of the domain write `chat::model::X` whichever module `X` lives in.

mod error;
mod file;
mod limits;
pub mod markup;
mod message;
mod name;
mod reaction;
mod reply;
mod room;
mod search;
mod unread;
mod user;

pub use super::timestamp::{LocalTime, Timestamp};
pub use error::{ChatError, Detail};
pub use file::{human_size, parse_file_name, sniff_image, Attachment, FileId};
pub use limits::{Limits, DEFAULT_MAX_UPLOAD_BYTES, TYPING_EVERY};
pub use message::{Message, MessageBody, MessageId, DEFAULT_MAX_MESSAGE_CHARS, HISTORY_LIMIT};
#[cfg(feature = "ssr")]
pub use name::LookAlike;
pub use name::{
    ChannelKey, ChannelName, DisplayName, CHANNEL_NAME_FORBIDDEN, MAX_CHANNEL_NAME_CHARS,
    MAX_COMBINING_RUN, MAX_DISPLAY_NAME_CHARS,
};
pub use reaction::{
    every_emoji, Emoji, Reaction, COMMON as COMMON_REACTIONS, MAX_REACTIONS_PER_MESSAGE,
    MAX_REACTIONS_PER_USER,
};
pub use reply::{Reply, MAX_EXCERPT_CHARS};
pub use room::{
    ChannelInfo, Cursor, DirectKey, DirectSummary, HistoryPage, HistoryTop, OlderPage, Room,
    RoomKey,
};
pub use search::{
    words, SearchHit, SearchPage, SearchTerms, MAX_SEARCH_CHARS, MAX_SEARCH_WORDS, SEARCH_PAGE,
};
pub use unread::{mention_ranges, mentions_name, split_mentions, RoomUnread};
pub use user::{Session, UserId, UserInfo, ONLINE_SHOWN};
