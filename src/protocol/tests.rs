//! Tests of the wire protocol: events round-trip, malformed input is refused.

use super::*;
use crate::chat::model::{ChannelName, DirectKey, Emoji, Limits, Message, UserId};

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
    assert_eq!(
        ClientEvent::decode(r#"{"type":"unread"}"#).unwrap(),
        ClientEvent::Unread
    );
    let read =
        ClientEvent::decode(r#"{"type":"read","room":{"channel":"general"},"seq":4}"#).unwrap();
    assert_eq!(
        read,
        ClientEvent::Read {
            room: Room::Channel(ChannelName::parse("general").unwrap()),
            seq: 4
        }
    );
    assert_eq!(ClientEvent::decode(&read.encode()).unwrap(), read);
    let typing = ClientEvent::decode(r#"{"type":"typing","room":{"channel":"general"}}"#).unwrap();
    assert_eq!(
        typing,
        ClientEvent::Typing {
            room: Room::Channel(ChannelName::parse("general").unwrap()),
        }
    );
    assert_eq!(ClientEvent::decode(&typing.encode()).unwrap(), typing);
    let send =
        ClientEvent::decode(r#"{"type":"send","room":{"direct":[9,4]},"body":"hi"}"#).unwrap();
    assert_eq!(
        send,
        ClientEvent::Send {
            room: Room::Direct(DirectKey::between(UserId(4), UserId(9)).unwrap()),
            body: "hi".into(),
            attachment: None,
            reply_to: None,
            client_ref: None
        }
    );
    let edit = ClientEvent::decode(
        r#"{"type":"edit","room":{"channel":"general"},"id":42,"body":"fixed","client_ref":"e-42"}"#,
    )
    .unwrap();
    assert_eq!(
        edit,
        ClientEvent::Edit {
            room: Room::Channel(ChannelName::parse("general").unwrap()),
            id: MessageId(42),
            body: "fixed".into(),
            client_ref: Some("e-42".into()),
        }
    );
    assert_eq!(ClientEvent::decode(&edit.encode()).unwrap(), edit);
    let react = ClientEvent::decode(
        r#"{"type":"react","room":{"channel":"general"},"id":42,"emoji":"👍","on":true}"#,
    )
    .unwrap();
    assert_eq!(
        react,
        ClientEvent::React {
            room: Room::Channel(ChannelName::parse("general").unwrap()),
            id: MessageId(42),
            emoji: "👍".into(),
            on: true,
            client_ref: None,
        }
    );
    assert_eq!(ClientEvent::decode(&react.encode()).unwrap(), react);
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
        r#"{"type":"edit","room":{"channel":"g"},"id":5}"#,
        r#"{"type":"edit","room":{"channel":"g"},"id":"5","body":"x"}"#,
        r#"{"type":"edit","room":{"channel":"g"},"id":5,"body":"x","author":1}"#,
        r#"{"type":"react","room":{"channel":"g"},"id":5,"emoji":"👍"}"#,
        r#"{"type":"react","room":{"channel":"g"},"id":5,"emoji":1,"on":true}"#,
        r#"{"type":"react","room":{"channel":"g"},"id":5,"emoji":"👍","on":"yes"}"#,
        r#"{"type":"react","room":{"channel":"g"},"id":5,"emoji":"👍","on":true,"user":2}"#,
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
        edited_at: Some(Timestamp::from_millis(1_795_338_009_000)),
        reactions: vec![crate::chat::model::Reaction {
            emoji: Emoji::parse("🎉").unwrap(),
            users: vec![ada.clone()],
        }],
        reply: Some(Box::new(crate::chat::model::Reply {
            id: MessageId(5),
            seq: 2,
            author: ada.clone(),
            excerpt: "the <i>plan</i>…".into(),
        })),
    };
    vec![
        ServerEvent::Hub(HubEvent::Welcome {
            epoch: 9,
            channels: vec![channel.clone()],
            limits: Limits {
                max_message_chars: 8000,
                max_upload_bytes: 1 << 20,
            },
        }),
        ServerEvent::Authenticated { user: ada.clone() },
        ServerEvent::Hub(HubEvent::ChannelCreated { channel }),
        ServerEvent::Hub(HubEvent::Joined {
            room: general.clone(),
            epoch: 9,
            reset: true,
            last_seq: 3,
            messages: vec![message.clone()],
            online: vec![ada.clone()],
            online_count: 1_234,
        }),
        ServerEvent::Hub(HubEvent::Message { message }),
        ServerEvent::Hub(HubEvent::MessageDeleted {
            room: general.clone(),
            id: MessageId(7),
        }),
        ServerEvent::Hub(HubEvent::MessageEdited {
            room: general.clone(),
            id: MessageId(7),
            body: MessageBody::parse("hi *there*", 100).unwrap(),
            edited_at: Timestamp::from_millis(1_795_338_009_000),
        }),
        ServerEvent::Hub(HubEvent::Reaction {
            room: general.clone(),
            id: MessageId(7),
            emoji: Emoji::parse("👍").unwrap(),
            user: ada.clone(),
            on: false,
        }),
        ServerEvent::Hub(HubEvent::UserRenamed { user: ada.clone() }),
        ServerEvent::Hub(HubEvent::Presence {
            room: general.clone(),
            came: vec![ada.clone()],
            went: Vec::new(),
            online_count: 1_234,
        }),
        ServerEvent::Hub(HubEvent::Typing {
            room: general.clone(),
            user: ada,
        }),
        ServerEvent::Hub(HubEvent::Unread {
            rooms: vec![crate::chat::model::RoomUnread {
                room: general.clone(),
                read: 2,
                last_seq: 5,
                unread: 3,
                mentions: 1,
            }],
        }),
        ServerEvent::Hub(HubEvent::Activity {
            room: general,
            seq: 6,
            mention: true,
        }),
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
        r#"{"type":"presence","room":{"channel":"g"},"came":[{"id":1,"name":"A"}]}"#,
        r#"{"type":"presence","room":{"channel":"g"},"came":true,"went":[]}"#,
        r#"{"type":"presence","room":{"channel":"g"},"came":[],"went":[]}"#,
        r#"{"type":"joined","room":{"channel":"g"},"epoch":1,"reset":true,"last_seq":0,"messages":[],"online":[]}"#,
        r#"{"type":"reaction","room":{"channel":"g"},"id":1,"emoji":"🐍🐍","user":{"id":1,"name":"A"},"on":true}"#,
        r#"{"type":"reaction","room":{"channel":"g"},"id":1,"emoji":"👍","user":{"id":1,"name":"A"}}"#,
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

/// `joined` and `presence` carry the channel's online count as `online_count`, a number
/// beside the bounded list, in the shape docs/PROTOCOL.md shows.
#[test]
fn online_counts_are_written_as_documented() {
    use crate::chat::model::DisplayName;
    let general = Room::Channel(ChannelName::parse("general").unwrap());
    let ada = UserInfo {
        id: UserId(1),
        name: DisplayName::parse("Ada").unwrap(),
    };
    let presence = ServerEvent::Hub(HubEvent::Presence {
        room: general.clone(),
        came: vec![ada.clone()],
        went: Vec::new(),
        online_count: 1_234,
    });
    assert_eq!(
        presence.encode(),
        r#"{"type":"presence","room":{"channel":"general"},"came":[{"id":1,"name":"Ada"}],"went":[],"online_count":1234}"#
    );
    let joined = ServerEvent::decode(
        r#"{"type":"joined","room":{"channel":"general"},"epoch":1,"reset":true,"last_seq":0,"messages":[],"online":[{"id":1,"name":"Ada"}],"online_count":101}"#,
    )
    .unwrap();
    match joined {
        ServerEvent::Hub(HubEvent::Joined {
            online,
            online_count,
            ..
        }) => assert_eq!((online, online_count), (vec![ada], 101)),
        other => panic!("unexpected {other:?}"),
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
        r#"{"type":"send","room":{"channel":"g"},"body":"yes","reply_to":41,"client_ref":"r2"}"#,
        r#"{"type":"delete","room":{"channel":"g"},"id":5}"#,
        r#"{"type":"edit","room":{"channel":"g"},"id":5,"body":"fixed","client_ref":"e1"}"#,
        r#"{"type":"edit","room":{"direct":[4,2]},"id":9,"body":"a\nb"}"#,
        r#"{"type":"react","room":{"channel":"g"},"id":5,"emoji":"👍","on":true,"client_ref":"x"}"#,
        r#"{"type":"react","room":{"direct":[4,2]},"id":9,"emoji":"🎉","on":false}"#,
        r#"{"type":"rename","name":"Ada"}"#,
        r#"{"type":"typing","room":{"channel":"general"}}"#,
        r#"{"type":"typing","room":{"direct":[2,7]}}"#,
        r#"{"type":"unread"}"#,
        r#"{"type":"read","room":{"channel":"g"},"seq":3}"#,
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

/// An error travels in one body on every transport: the WebSocket's `error` event holds
/// exactly the members a server function or a file route answers with (`code`, `detail`,
/// `message`), and the browser reads the error type back from the event.
#[test]
fn errors_have_one_body_on_every_transport() {
    for error in [
        ChatError::Unauthorized,
        ChatError::ChannelExists("Design".into()),
        ChatError::MessageTooLong { max: 4000 },
        ChatError::FileTooLarge {
            max_bytes: 10 << 20,
        },
    ] {
        let body = serde_json::to_value(&error).unwrap();
        let frame = ServerEvent::chat_error(&error, Some("r7".into())).encode();
        let mut event: serde_json::Value = serde_json::from_str(&frame).unwrap();
        let members = event.as_object_mut().unwrap();
        assert_eq!(members.remove("type"), Some("error".into()));
        assert_eq!(members.remove("client_ref"), Some("r7".into()));
        assert_eq!(event, body, "{error:?}");
        let decoded = ServerEvent::decode(&frame).unwrap();
        let ServerEvent::Error { code, detail, .. } = decoded else {
            panic!("an error event");
        };
        assert_eq!(ChatError::from_code(&code, detail), Ok(error));
    }
    let malformed = ServerEvent::protocol_error(&ProtocolError::Binary).encode();
    let Ok(ServerEvent::Error { code, detail, .. }) = ServerEvent::decode(&malformed) else {
        panic!("an error event");
    };
    assert!(
        ChatError::from_code(&code, detail).is_err(),
        "not a chat error"
    );
}
