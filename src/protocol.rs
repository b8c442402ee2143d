//! The WebSocket wire protocol: one enum of events per direction, shared by the browser and
//! the server, encoded as JSON text frames tagged by `"type"`. `docs/PROTOCOL.md` documents
//! every event; keep the two in step.

pub use crate::chat::model::Cursor;
use crate::chat::model::{ChannelInfo, ChatError, FileId, Message, MessageId, Room, UserInfo};
use serde::{Deserialize, Serialize};

/// The path the WebSocket endpoint is served at.
pub const WS_PATH: &str = "/ws";

/// Everything a client may send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientEvent {
    /// Proves who this connection is, with the token from registration.
    Auth {
        /// The session token.
        token: String,
    },
    /// Subscribes to a room's live events, after first receiving what was missed.
    Join {
        /// The room.
        room: Room,
        /// What the client already holds, if anything.
        #[serde(default)]
        since: Option<Cursor>,
        /// An opaque token echoed in the `error` that refuses this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
    /// Stops receiving a channel's live events.
    Leave {
        /// The room.
        room: Room,
    },
    /// Posts a message to a room.
    Send {
        /// The room.
        room: Room,
        /// The message text (may be empty when there is an attachment).
        body: String,
        /// A file uploaded for this room by this user, not yet sent.
        #[serde(default)]
        attachment: Option<FileId>,
        /// An opaque token echoed in the `ack` or `error` that answers this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
    /// Deletes one of the user's own messages.
    Delete {
        /// The room the message is in.
        room: Room,
        /// The message.
        id: MessageId,
        /// An opaque token echoed in the `error` that refuses this event.
        #[serde(default)]
        client_ref: Option<String>,
    },
    /// Changes the user's display name.
    Rename {
        /// The new name.
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

/// Everything the server may send. Its `type` is always the frame's first member, which lets
/// [`ServerEvent::decode`] read a frame in one pass (see [`read`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// First event on every connection: the epoch and the current channel list.
    Welcome {
        /// Changes whenever sequence numbers from before it can no longer be trusted.
        epoch: u64,
        /// Every channel, sorted by name.
        channels: Vec<ChannelInfo>,
    },
    /// Answers `auth`: who this connection now acts as.
    Authenticated {
        /// The user.
        user: UserInfo,
    },
    /// Someone created a channel.
    ChannelCreated {
        /// The new channel.
        channel: ChannelInfo,
    },
    /// Answers `join`, before any live event of that room.
    Joined {
        /// The room joined.
        room: Room,
        /// The current epoch.
        epoch: u64,
        /// True: `messages` is the whole history and replaces what the client holds.
        /// False: `messages` are exactly the ones after the client's cursor.
        reset: bool,
        /// The sequence number of the room's newest message (0 if none): the cursor to
        /// continue from.
        last_seq: u64,
        /// Oldest first.
        messages: Vec<Message>,
        /// For a channel, the users connected to it now, sorted by name.
        online: Vec<UserInfo>,
    },
    /// A live message in a joined room.
    Message {
        /// The message.
        message: Message,
    },
    /// A message was deleted by its author.
    MessageDeleted {
        /// Its room.
        room: Room,
        /// The message.
        id: MessageId,
    },
    /// A user changed their display name (sent to every connection).
    UserRenamed {
        /// The user, with the new name.
        user: UserInfo,
    },
    /// A user came online in a channel, or left it.
    Presence {
        /// The channel.
        room: Room,
        /// The user.
        user: UserInfo,
        /// True when they arrived, false when their last connection left.
        online: bool,
    },
    /// The server accepted a `send`.
    Ack {
        /// The `client_ref` of the `send`, if it had one.
        client_ref: Option<String>,
        /// The new message's id.
        id: MessageId,
        /// The new message's sequence number in its room.
        seq: u64,
    },
    /// A client event was refused or could not be understood. Nothing changed.
    Error {
        /// Machine-readable cause.
        code: String,
        /// A sentence for people.
        message: String,
        /// The `client_ref` of the refused event, if it had one.
        client_ref: Option<String>,
    },
}

impl ServerEvent {
    /// Builds the error event for a refused chat action.
    pub fn chat_error(error: &ChatError, client_ref: Option<String>) -> ServerEvent {
        ServerEvent::Error {
            code: error.code().to_owned(),
            message: error.to_string(),
            client_ref,
        }
    }

    /// Builds the error event for input that is not a valid client event.
    pub fn protocol_error(error: &ProtocolError) -> ServerEvent {
        ServerEvent::Error {
            code: error.code().to_owned(),
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

/// The hub's events, as the wire carries them.
#[cfg(feature = "ssr")]
impl From<crate::chat::hub::HubEvent> for ServerEvent {
    fn from(event: crate::chat::hub::HubEvent) -> ServerEvent {
        use crate::chat::hub::HubEvent;
        match event {
            HubEvent::Welcome { epoch, channels } => ServerEvent::Welcome { epoch, channels },
            HubEvent::ChannelCreated { channel } => ServerEvent::ChannelCreated { channel },
            HubEvent::Joined {
                room,
                epoch,
                reset,
                last_seq,
                messages,
                online,
            } => ServerEvent::Joined {
                room,
                epoch,
                reset,
                last_seq,
                messages,
                online,
            },
            HubEvent::Message { message } => ServerEvent::Message { message },
            HubEvent::MessageDeleted { room, id } => ServerEvent::MessageDeleted { room, id },
            HubEvent::UserRenamed { user } => ServerEvent::UserRenamed { user },
            HubEvent::Presence { room, user, online } => {
                ServerEvent::Presence { room, user, online }
            }
        }
    }
}

/// The [`Encoder`](crate::chat::hub::Encoder) the server hands the hub: each event as this
/// protocol's JSON text frame.
#[cfg(feature = "ssr")]
pub fn encode_hub_event(event: crate::chat::hub::HubEvent) -> crate::chat::hub::Frame {
    ServerEvent::from(event).frame()
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

/// Reading server events in one pass. serde's derived reader for an enum tagged by a member
/// first copies the whole event into an intermediate tree, because the tag could come last;
/// that reader and its second copy of every payload type's reader cost the browser's
/// WebAssembly about 11 KB gzip. The server writes `type` first, so this reader takes the
/// type, then every member as it comes, then builds the event.
mod read {
    use super::*;
    use serde::de::{Error, IgnoredAny, MapAccess, Visitor};

    /// The `type` of a server event.
    #[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Welcome,
        Authenticated,
        ChannelCreated,
        Joined,
        Message,
        MessageDeleted,
        UserRenamed,
        Presence,
        Ack,
        Error,
    }

    /// Every member name of any server event. Members this version does not know are
    /// skipped.
    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum Member {
        Type,
        Epoch,
        Channels,
        User,
        Channel,
        Room,
        Reset,
        LastSeq,
        Messages,
        Online,
        Message,
        Id,
        ClientRef,
        Seq,
        Code,
        #[serde(other)]
        Unknown,
    }

    /// The members read so far. `online` and `message` differ in type between events.
    #[derive(Default)]
    struct Members {
        epoch: Option<u64>,
        channels: Option<Vec<ChannelInfo>>,
        user: Option<UserInfo>,
        channel: Option<ChannelInfo>,
        room: Option<Room>,
        reset: Option<bool>,
        last_seq: Option<u64>,
        messages: Option<Vec<Message>>,
        online_users: Option<Vec<UserInfo>>,
        online: Option<bool>,
        message: Option<Message>,
        text: Option<String>,
        id: Option<MessageId>,
        client_ref: Option<Option<String>>,
        seq: Option<u64>,
        code: Option<String>,
    }

    /// A required member, or the error that names it.
    fn need<T, E: Error>(value: Option<T>, name: &'static str) -> Result<T, E> {
        value.ok_or_else(|| E::missing_field(name))
    }

    pub(super) struct EventVisitor;

    impl<'de> Visitor<'de> for EventVisitor {
        type Value = ServerEvent;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a server event: an object whose first member is \"type\"")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ServerEvent, A::Error> {
            if !matches!(map.next_key::<Member>()?, Some(Member::Type)) {
                return Err(A::Error::custom("the first member must be \"type\""));
            }
            let kind: Kind = map.next_value()?;
            let mut m = Members::default();
            while let Some(member) = map.next_key::<Member>()? {
                match member {
                    Member::Epoch => m.epoch = Some(map.next_value()?),
                    Member::Channels => m.channels = Some(map.next_value()?),
                    Member::User => m.user = Some(map.next_value()?),
                    Member::Channel => m.channel = Some(map.next_value()?),
                    Member::Room => m.room = Some(map.next_value()?),
                    Member::Reset => m.reset = Some(map.next_value()?),
                    Member::LastSeq => m.last_seq = Some(map.next_value()?),
                    Member::Messages => m.messages = Some(map.next_value()?),
                    Member::Online if kind == Kind::Joined => {
                        m.online_users = Some(map.next_value()?)
                    }
                    Member::Online if kind == Kind::Presence => m.online = Some(map.next_value()?),
                    Member::Message if kind == Kind::Message => m.message = Some(map.next_value()?),
                    Member::Message if kind == Kind::Error => m.text = Some(map.next_value()?),
                    Member::Id => m.id = Some(map.next_value()?),
                    Member::ClientRef => m.client_ref = Some(map.next_value()?),
                    Member::Seq => m.seq = Some(map.next_value()?),
                    Member::Code => m.code = Some(map.next_value()?),
                    Member::Type | Member::Online | Member::Message | Member::Unknown => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(match kind {
                Kind::Welcome => ServerEvent::Welcome {
                    epoch: need(m.epoch, "epoch")?,
                    channels: need(m.channels, "channels")?,
                },
                Kind::Authenticated => ServerEvent::Authenticated {
                    user: need(m.user, "user")?,
                },
                Kind::ChannelCreated => ServerEvent::ChannelCreated {
                    channel: need(m.channel, "channel")?,
                },
                Kind::Joined => ServerEvent::Joined {
                    room: need(m.room, "room")?,
                    epoch: need(m.epoch, "epoch")?,
                    reset: need(m.reset, "reset")?,
                    last_seq: need(m.last_seq, "last_seq")?,
                    messages: need(m.messages, "messages")?,
                    online: need(m.online_users, "online")?,
                },
                Kind::Message => ServerEvent::Message {
                    message: need(m.message, "message")?,
                },
                Kind::MessageDeleted => ServerEvent::MessageDeleted {
                    room: need(m.room, "room")?,
                    id: need(m.id, "id")?,
                },
                Kind::UserRenamed => ServerEvent::UserRenamed {
                    user: need(m.user, "user")?,
                },
                Kind::Presence => ServerEvent::Presence {
                    room: need(m.room, "room")?,
                    user: need(m.user, "user")?,
                    online: need(m.online, "online")?,
                },
                Kind::Ack => ServerEvent::Ack {
                    client_ref: m.client_ref.flatten(),
                    id: need(m.id, "id")?,
                    seq: need(m.seq, "seq")?,
                },
                Kind::Error => ServerEvent::Error {
                    code: need(m.code, "code")?,
                    message: need(m.text, "message")?,
                    client_ref: m.client_ref.flatten(),
                },
            })
        }
    }
}

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
mod tests {
    use super::*;
    use crate::chat::model::{ChannelName, DirectKey, UserId};

    /// Client events use the documented JSON shape, and decode back to the same event.
    #[test]
    fn client_events_round_trip_in_the_documented_shape() {
        let join = ClientEvent::decode(
            r#"{"type":"join","room":{"channel":"general"},"since":{"epoch":7,"seq":3}}"#,
        )
        .unwrap();
        assert_eq!(
            join,
            ClientEvent::Join {
                room: Room::Channel(ChannelName::parse("general").unwrap()),
                since: Some(Cursor { epoch: 7, seq: 3 }),
                client_ref: None,
            }
        );
        assert_eq!(ClientEvent::decode(&join.encode()).unwrap(), join);
        let send =
            ClientEvent::decode(r#"{"type":"send","room":{"direct":[9,4]},"body":"hi"}"#).unwrap();
        assert_eq!(
            send,
            ClientEvent::Send {
                room: Room::Direct(DirectKey::between(UserId(4), UserId(9)).unwrap()),
                body: "hi".into(),
                attachment: None,
                client_ref: None
            }
        );
    }

    /// Rooms are validated as they are decoded: bad channel names and a conversation with
    /// oneself are malformed.
    #[test]
    fn rooms_are_validated_while_decoding() {
        for bad in [
            r#"{"type":"leave","room":{"channel":""}}"#,
            r#"{"type":"leave","room":{"channel":"a/b"}}"#,
            r#"{"type":"leave","room":{"direct":[3,3]}}"#,
            r#"{"type":"leave","room":{"direct":[3]}}"#,
            r#"{"type":"leave","room":{"lobby":"x"}}"#,
        ] {
            assert!(ClientEvent::decode(bad).is_err(), "{bad}");
        }
    }

    /// Garbage, unknown events, unknown fields and wrong field types are all refused with a
    /// `malformed` error rather than a panic.
    #[test]
    fn malformed_frames_are_refused() {
        for bad in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"type":"dance"}"#,
            r#"{"type":"send","room":{"channel":"g"}}"#,
            r#"{"type":"send","room":{"channel":5},"body":"x"}"#,
            r#"{"type":"auth","token":"a","admin":true}"#,
        ] {
            let err = ClientEvent::decode(bad).unwrap_err();
            assert_eq!(err.code(), "malformed", "{bad:?}");
        }
    }

    /// One event of every kind, with every optional part filled in.
    fn every_server_event() -> Vec<ServerEvent> {
        use crate::chat::model::{Attachment, ChannelInfo, DisplayName, FileId, MessageBody};
        use crate::chat::timestamp::Timestamp;
        let general = Room::Channel(ChannelName::parse("general").unwrap());
        let ada = UserInfo {
            id: UserId(1),
            name: DisplayName::parse("Ada").unwrap(),
        };
        let channel = ChannelInfo {
            name: ChannelName::parse("café \"quoted\"").unwrap(),
            created_at: Timestamp::from_millis(1_795_338_000_123),
        };
        let message = Message {
            id: MessageId(7),
            room: Room::Direct(DirectKey::between(UserId(1), UserId(2)).unwrap()),
            seq: 3,
            author: ada.clone(),
            body: MessageBody::parse("hi <b>there</b>\n", 100).unwrap(),
            attachment: Some(Attachment {
                id: FileId::parse("0123456789abcdef0123456789abcdef").unwrap(),
                name: "plan.png".into(),
                size: 1234,
                content_type: "image/png".into(),
                image: true,
            }),
            sent_at: Timestamp::from_millis(1_795_338_000_456),
        };
        vec![
            ServerEvent::Welcome {
                epoch: 9,
                channels: vec![channel.clone()],
            },
            ServerEvent::Authenticated { user: ada.clone() },
            ServerEvent::ChannelCreated { channel },
            ServerEvent::Joined {
                room: general.clone(),
                epoch: 9,
                reset: true,
                last_seq: 3,
                messages: vec![message.clone()],
                online: vec![ada.clone()],
            },
            ServerEvent::Message { message },
            ServerEvent::MessageDeleted {
                room: general.clone(),
                id: MessageId(7),
            },
            ServerEvent::UserRenamed { user: ada.clone() },
            ServerEvent::Presence {
                room: general,
                user: ada,
                online: false,
            },
            ServerEvent::Ack {
                client_ref: Some("r1".into()),
                id: MessageId(8),
                seq: 4,
            },
            ServerEvent::Ack {
                client_ref: None,
                id: MessageId(9),
                seq: 5,
            },
            ServerEvent::chat_error(&ChatError::MessageEmpty, None),
        ]
    }

    /// Every kind of server event is written with `type` first and decodes back to itself.
    #[test]
    fn server_events_round_trip() {
        for event in every_server_event() {
            let text = event.encode();
            assert!(text.starts_with("{\"type\":"), "{text}");
            assert_eq!(ServerEvent::decode(&text).unwrap(), event, "{text}");
        }
    }

    /// The one-pass reader skips members it does not know, fills a missing `client_ref`
    /// with nothing, and refuses events whose `type` is not first, is unknown, or that lack
    /// a member.
    #[test]
    fn server_events_are_read_strictly_but_tolerantly() {
        let ack = ServerEvent::decode(r#"{"type":"ack","id":3,"seq":4,"later":{"x":[1]}}"#);
        assert_eq!(
            ack.unwrap(),
            ServerEvent::Ack {
                client_ref: None,
                id: MessageId(3),
                seq: 4
            }
        );
        for bad in [
            r#"{"id":3,"type":"ack","seq":4}"#,
            r#"{"type":"dance"}"#,
            r#"{"type":"ack","seq":4}"#,
            r#"{"type":"presence","room":{"channel":"g"},"user":{"id":1,"name":"A"},"online":[]}"#,
            r#"{}"#,
            r#"[]"#,
        ] {
            assert_eq!(
                ServerEvent::decode(bad).unwrap_err().code(),
                "malformed",
                "{bad}"
            );
        }
    }

    /// Error events carry the chat error's code and its sentence.
    #[test]
    fn chat_errors_become_error_events() {
        let event = ServerEvent::chat_error(&ChatError::MessageEmpty, Some("r1".into()));
        let json: serde_json::Value = serde_json::from_str(&event.encode()).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "message_empty");
        assert_eq!(json["client_ref"], "r1");
        assert_eq!(json["message"], "Messages can't be empty.");
    }

    /// A small deterministic generator (xorshift), so the fuzz test needs no extra crates and
    /// is the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Fuzz: tens of thousands of random and mutated frames never make the decoder panic; it
    /// either decodes an event or reports `malformed`.
    #[test]
    fn the_decoder_survives_random_input() {
        let seeds = [
            r#"{"type":"auth","token":"abc"}"#,
            r#"{"type":"join","room":{"channel":"general"},"since":{"epoch":1,"seq":2}}"#,
            r#"{"type":"join","room":{"direct":[1,2]}}"#,
            r#"{"type":"leave","room":{"channel":"x"}}"#,
            r#"{"type":"send","room":{"channel":"g"},"body":"hi","client_ref":"r"}"#,
            r#"{"type":"send","room":{"direct":[3,9]},"body":"","attachment":"0123456789abcdef0123456789abcdef"}"#,
            r#"{"type":"delete","room":{"channel":"g"},"id":5}"#,
            r#"{"type":"rename","name":"Ada"}"#,
        ];
        let pieces = [
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            ",",
            "null",
            "true",
            "-1",
            "1e999",
            "18446744073709551616",
            "\"type\"",
            "\"room\"",
            "\"channel\"",
            "\"direct\"",
            "\\u0000",
            "\\ud800",
            "é",
            "\u{202E}",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut decoded = 0;
        for round in 0..30_000 {
            let text = match round % 3 {
                // Mutate a valid event: delete, duplicate or replace a span of characters.
                0 | 1 => {
                    let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
                    for _ in 0..=rng.below(4) {
                        let at = rng.below(chars.len() + 1);
                        match rng.below(3) {
                            0 if at < chars.len() => {
                                chars.remove(at);
                            }
                            1 => {
                                let piece = pieces[rng.below(pieces.len())];
                                for (i, c) in piece.chars().enumerate() {
                                    chars.insert((at + i).min(chars.len()), c);
                                }
                            }
                            _ => {
                                if at < chars.len() {
                                    chars[at] = char::from(rng.below(128) as u8);
                                }
                            }
                        }
                    }
                    chars.into_iter().collect::<String>()
                }
                // Random bytes, read as text the way the socket layer would refuse or accept.
                _ => {
                    let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            };
            match ClientEvent::decode(&text) {
                Ok(event) => {
                    decoded += 1;
                    // Whatever decodes re-encodes and decodes to the same event.
                    assert_eq!(ClientEvent::decode(&event.encode()).unwrap(), event);
                }
                Err(error) => assert_eq!(error.code(), "malformed"),
            }
        }
        assert!(
            decoded > 100,
            "mutations still produce valid events sometimes ({decoded})"
        );
    }
}
