//! Reading server events in one pass. serde's derived reader for an enum tagged by a member
//! first copies the whole event into an intermediate tree, because the tag could come last;
//! that reader and its second copy of every payload type's reader cost the browser's
//! WebAssembly about 11 KB gzip. The server writes `type` first, so this reader takes the
//! type, then every member as it comes, then builds the event.

use super::*;
use crate::chat::model::{ChannelInfo, Emoji, Limits, Message, MessageBody, Timestamp};
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
    MessageEdited,
    Reaction,
    UserRenamed,
    Presence,
    Ack,
    Error,
    Unread,
    Activity,
    Typing,
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
    OnlineCount,
    Message,
    Id,
    ClientRef,
    Seq,
    Code,
    Detail,
    Limits,
    Rooms,
    Mention,
    Body,
    EditedAt,
    Came,
    Went,
    Emoji,
    On,
    #[serde(other)]
    Unknown,
}

/// The members read so far. `message` differs in type between events.
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
    online_count: Option<usize>,
    came: Option<Vec<UserInfo>>,
    went: Option<Vec<UserInfo>>,
    message: Option<Message>,
    text: Option<String>,
    id: Option<MessageId>,
    client_ref: Option<Option<String>>,
    seq: Option<u64>,
    code: Option<String>,
    limits: Option<Limits>,
    detail: Option<Detail>,
    rooms: Option<Vec<crate::chat::model::RoomUnread>>,
    mention: Option<bool>,
    body: Option<MessageBody>,
    edited_at: Option<Timestamp>,
    emoji: Option<Emoji>,
    on: Option<bool>,
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
                Member::Online if kind == Kind::Joined => m.online_users = Some(map.next_value()?),
                Member::OnlineCount => m.online_count = Some(map.next_value()?),
                Member::Message if kind == Kind::Message => m.message = Some(map.next_value()?),
                Member::Message if kind == Kind::Error => m.text = Some(map.next_value()?),
                Member::Id => m.id = Some(map.next_value()?),
                Member::ClientRef => m.client_ref = Some(map.next_value()?),
                Member::Seq => m.seq = Some(map.next_value()?),
                Member::Code => m.code = Some(map.next_value()?),
                Member::Limits => m.limits = Some(map.next_value()?),
                Member::Detail => m.detail = Some(map.next_value()?),
                Member::Rooms => m.rooms = Some(map.next_value()?),
                Member::Mention => m.mention = Some(map.next_value()?),
                Member::Body => m.body = Some(map.next_value()?),
                Member::EditedAt => m.edited_at = Some(map.next_value()?),
                Member::Came => m.came = Some(map.next_value()?),
                Member::Went => m.went = Some(map.next_value()?),
                Member::Emoji => m.emoji = Some(map.next_value()?),
                Member::On => m.on = Some(map.next_value()?),
                Member::Type | Member::Online | Member::Message | Member::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match kind {
            Kind::Welcome => ServerEvent::Hub(HubEvent::Welcome {
                epoch: need(m.epoch, "epoch")?,
                channels: need(m.channels, "channels")?,
                // A server from before `limits` enforced the built-in ones.
                limits: m.limits.unwrap_or_default(),
            }),
            Kind::Authenticated => ServerEvent::Authenticated {
                user: need(m.user, "user")?,
            },
            Kind::ChannelCreated => ServerEvent::Hub(HubEvent::ChannelCreated {
                channel: need(m.channel, "channel")?,
            }),
            Kind::Joined => ServerEvent::Hub(HubEvent::Joined {
                room: need(m.room, "room")?,
                epoch: need(m.epoch, "epoch")?,
                reset: need(m.reset, "reset")?,
                last_seq: need(m.last_seq, "last_seq")?,
                messages: need(m.messages, "messages")?,
                online: need(m.online_users, "online")?,
                online_count: need(m.online_count, "online_count")?,
            }),
            Kind::Message => ServerEvent::Hub(HubEvent::Message {
                message: need(m.message, "message")?,
            }),
            Kind::MessageDeleted => ServerEvent::Hub(HubEvent::MessageDeleted {
                room: need(m.room, "room")?,
                id: need(m.id, "id")?,
            }),
            Kind::MessageEdited => ServerEvent::Hub(HubEvent::MessageEdited {
                room: need(m.room, "room")?,
                id: need(m.id, "id")?,
                body: need(m.body, "body")?,
                edited_at: need(m.edited_at, "edited_at")?,
            }),
            Kind::Reaction => ServerEvent::Hub(HubEvent::Reaction {
                room: need(m.room, "room")?,
                id: need(m.id, "id")?,
                emoji: need(m.emoji, "emoji")?,
                user: need(m.user, "user")?,
                on: need(m.on, "on")?,
            }),
            Kind::UserRenamed => ServerEvent::Hub(HubEvent::UserRenamed {
                user: need(m.user, "user")?,
            }),
            Kind::Presence => ServerEvent::Hub(HubEvent::Presence {
                room: need(m.room, "room")?,
                came: need(m.came, "came")?,
                went: need(m.went, "went")?,
                online_count: need(m.online_count, "online_count")?,
            }),
            Kind::Ack => ServerEvent::Ack {
                client_ref: m.client_ref.flatten(),
                id: need(m.id, "id")?,
                seq: need(m.seq, "seq")?,
            },
            Kind::Unread => ServerEvent::Hub(HubEvent::Unread {
                rooms: need(m.rooms, "rooms")?,
            }),
            Kind::Activity => ServerEvent::Hub(HubEvent::Activity {
                room: need(m.room, "room")?,
                seq: need(m.seq, "seq")?,
                mention: need(m.mention, "mention")?,
            }),
            Kind::Typing => ServerEvent::Hub(HubEvent::Typing {
                room: need(m.room, "room")?,
                user: need(m.user, "user")?,
            }),
            Kind::Error => ServerEvent::Error {
                code: need(m.code, "code")?,
                detail: m.detail,
                message: need(m.text, "message")?,
                client_ref: m.client_ref.flatten(),
            },
        })
    }
}
