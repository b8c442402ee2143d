//! [`Limits`]: the rules a client can check before it sends, as this server enforces them.

use super::message::DEFAULT_MAX_MESSAGE_CHARS;
use serde::{Deserialize, Serialize};

/// The shortest time between two typing notices of one user in one room that the server
/// relays (and so the longest a browser waits before telling it again).
pub const TYPING_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// Largest attachment, in bytes, unless the server is configured otherwise (10 MiB).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;

/// The limits a server enforces that a client can check before sending, so that it refuses
/// exactly what the server would. The server announces them in `welcome`; a client uses
/// these defaults until then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest message body, in characters.
    pub max_message_chars: usize,
    /// Largest attachment, in bytes.
    pub max_upload_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}
