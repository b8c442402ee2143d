//! The WebSocket wire protocol: one enum of events per direction, shared by the browser and
//! the server, encoded as JSON text frames tagged by `"type"`. `docs/PROTOCOL.md` documents
//! every event; keep the two in step.

pub use crate::chat::event::HubEvent;
pub use crate::chat::model::Cursor;
use crate::chat::model::{ChatError, Detail, FileId, MessageId, Room, UserInfo};
use serde::{Deserialize, Serialize};

/// The path the WebSocket endpoint is served at.
pub const WS_PATH: &str = "/ws";

/// Everything a client may send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientEvent {
    /// Proves who this connection is, with the token from registration.
    Auth { token: String },
    /// Subscribes to a room's live events, after first receiving what was missed.
    Join {
        room: Room,
        /// What the client already holds, if anything.
        #[serde(default)]
        since: Option<Cursor>,
        /// An opaque token echoed in the `error` that refuses this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
    /// Stops receiving a channel's live events.
    Leave { room: Room },
    /// Posts a message to a room.
    Send {
        room: Room,
        /// The message text (may be empty when there is an attachment).
        body: String,
        /// A file uploaded for this room by this user, not yet sent.
        #[serde(default)]
        attachment: Option<FileId>,
        /// The message this one answers: one still in the same room's history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageId>,
        /// An opaque token echoed in the `ack` or `error` that answers this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
    /// Deletes one of the user's own messages.
    Delete {
        /// The room the message is in.
        room: Room,
        id: MessageId,
        /// An opaque token echoed in the `error` that refuses this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
    /// Replaces the text of one of the user's own messages.
    Edit {
        /// The room the message is in.
        room: Room,
        id: MessageId,
        /// The new text, checked as a `send`'s is.
        body: String,
        /// An opaque token echoed in the `ack` or `error` that answers this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
    /// Adds (`on`) or takes away the user's reaction `emoji` on a message of a room they may
    /// read. `emoji` is checked by the server (`emoji_invalid`), not by the decoder.
    React {
        room: Room,
        id: MessageId,
        emoji: String,
        on: bool,
        /// An opaque token echoed in the `error` that refuses this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
    /// Asks for the user's unread state in every room, then news of it as it changes
    /// (`unread` and `activity` events).
    Unread,
    /// Moves the user's read position in a room forward to `seq`: they have seen the room up
    /// to that message.
    Read { room: Room, seq: u64 },
    /// Says the user is typing in a room they are in: its other members get `typing`. At
    /// most one per room every 3 seconds goes out; the rest are dropped without an error.
    Typing { room: Room },
    /// Changes the user's display name.
    Rename {
        name: String,
        /// An opaque token echoed in the `error` that refuses this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
}

impl ClientEvent {
    /// Decodes one text frame. This is the protocol's only parse edge for client input.
    pub fn decode(text: &str) -> Result<ClientEvent, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    /// Encodes the event as a text frame.
    pub fn encode(&self) -> String {
        // Serialising these plain enums of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Everything the server may send: what the hub publishes ([`HubEvent`], the same frame for
/// every receiver), and the three events a connection gets only for itself. Its `type` is
/// always the frame's first member, which lets [`ServerEvent::decode`] read a frame in one
/// pass (see [`read`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// Answers `auth`: who this connection now acts as.
    Authenticated { user: UserInfo },
    /// The server accepted a `send` (or an `edit`), and stored it.
    Ack {
        /// The `client_ref` of the `send`, if it had one.
        client_ref: Option<String>,
        id: MessageId,
        /// The new message's sequence number in its room.
        seq: u64,
    },
    /// A client event was refused or could not be understood. Nothing changed. `code`,
    /// `detail` and `message` are the error body every transport uses (see [`ChatError`]);
    /// [`ChatError::from_code`] reads the chat error back from `code` and `detail`.
    Error {
        /// Machine-readable cause: a [`ChatError`] code, or a [`ProtocolError`] code.
        code: String,
        /// What the error carries besides its code (a name, or a limit), if anything.
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<Detail>,
        /// A sentence for people.
        message: String,
        /// The `client_ref` of the refused event, if it had one.
        client_ref: Option<String>,
    },
    /// `welcome`, `channel_created`, `joined`, `message`, `message_deleted`, `message_edited`,
    /// `reaction`, `user_renamed`, `presence`, `unread`, `activity` and `typing`: written exactly as the hub declares them, tag
    /// included.
    #[serde(untagged)]
    Hub(HubEvent),
}

impl ServerEvent {
    /// Builds the error event for a refused chat action.
    pub fn chat_error(error: &ChatError, client_ref: Option<String>) -> ServerEvent {
        ServerEvent::Error {
            code: error.code().to_owned(),
            detail: error.detail(),
            message: error.to_string(),
            client_ref,
        }
    }

    /// Builds the error event for input that is not a valid client event.
    pub fn protocol_error(error: &ProtocolError) -> ServerEvent {
        ServerEvent::Error {
            code: error.code().to_owned(),
            detail: None,
            message: error.to_string(),
            client_ref: None,
        }
    }

    /// Encodes the event as a text frame.
    pub fn encode(&self) -> String {
        // Serialising these plain enums of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes one text frame from the server.
    pub fn decode(text: &str) -> Result<ServerEvent, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }
}

impl From<HubEvent> for ServerEvent {
    fn from(event: HubEvent) -> ServerEvent {
        ServerEvent::Hub(event)
    }
}

/// The [`Encoder`](crate::chat::hub::Encoder) the server hands the hub: each event as this
/// protocol's JSON text frame.
#[cfg(feature = "ssr")]
pub fn encode_hub_event(event: HubEvent) -> crate::chat::hub::Frame {
    ServerEvent::Hub(event).frame()
}

#[cfg(feature = "ssr")]
impl ServerEvent {
    /// The event encoded as a frame for one connection's outbox.
    pub fn frame(&self) -> crate::chat::hub::Frame {
        crate::chat::hub::Frame::from_text(self.encode())
    }
}

impl<'de> Deserialize<'de> for ServerEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(read::EventVisitor)
    }
}

mod read;

/// Input that is not a valid event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, an unknown `type`, or fields of the wrong kind.
    #[error("That frame is not a valid event: {0}")]
    Malformed(String),
    /// A binary frame: the protocol is text only.
    #[error("Binary frames are not part of the protocol; send JSON text.")]
    Binary,
}

impl ProtocolError {
    /// The stable, machine-readable name of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::Malformed(_) => "malformed",
            ProtocolError::Binary => "binary_frame",
        }
    }
}

#[cfg(test)]
mod tests;
