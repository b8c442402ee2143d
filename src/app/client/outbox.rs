//! Messages on their way, and the words in each room's box (issue 18, item 6). Each `send`
//! carries its own `client_ref`; the message is held until the server's `ack` (then it is
//! gone from the box for good) or its `error` (then it goes back into its room's box with the
//! server's sentence), and a dropped connection gives back everything not yet answered. The
//! reason shown beside the box goes away once it no longer applies. A message the connection
//! lost keeps its reference when it is sent again unchanged: if it was stored after all, a
//! cluster answers with the first `ack` instead of posting it twice.

use super::{ChatClient, ConnStatus, Feed};
use crate::chat::model::{Attachment, ChatError, MessageBody, Reply, Room};
use crate::protocol::ClientEvent;
use leptos::prelude::*;

/// An attachment being uploaded, or uploaded and waiting to be sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Pending {
    /// On its way to the server; `fraction` of it has arrived (0 to 1).
    Uploading { name: String, fraction: f64 },
    /// Uploaded: goes with the next message.
    Ready(Attachment),
}

/// How many messages lost to a dropped connection are remembered, to be sent again under the
/// same reference.
const LOST_KEPT: usize = 20;

/// A message sent and not yet answered.
#[derive(Clone, Debug)]
pub(super) struct Outgoing {
    client_ref: String,
    room: Room,
    text: String,
    attachment: Option<Attachment>,
    /// The message it answers.
    reply: Option<Reply>,
}

/// What the reason beside the box is about, which decides when it goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    /// There is no connection: goes when it is back.
    Offline,
    /// Sent too fast: goes after a moment, or when a message is accepted.
    TooFast,
    /// Longer than `max` characters: goes as soon as the text fits.
    TooLong { max: usize },
    /// Found in the browser (empty, invalid characters, upload unfinished): goes when the
    /// text changes.
    Local,
    /// Another refusal by the server: goes when a message is accepted.
    Refused,
}

/// Why the words in the box were not sent, as shown beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub text: String,
}

impl Notice {
    /// A refusal with the error's own sentence.
    pub fn from_error(error: &ChatError) -> Notice {
        Notice::with_sentence(error, error.to_string())
    }

    /// A refusal the server explained with `text`.
    fn with_sentence(error: &ChatError, text: String) -> Notice {
        let kind = match error {
            ChatError::RateLimited => NoticeKind::TooFast,
            ChatError::MessageTooLong { max } => NoticeKind::TooLong { max: *max },
            ChatError::MessageEmpty | ChatError::MessageInvalid => NoticeKind::Local,
            _ => NoticeKind::Refused,
        };
        Notice { kind, text }
    }

    /// Found in the browser, before sending.
    pub fn local(text: &str) -> Notice {
        Notice {
            kind: NoticeKind::Local,
            text: text.to_owned(),
        }
    }

    /// Not sent for want of a connection.
    pub fn offline() -> Notice {
        Notice {
            kind: NoticeKind::Offline,
            text: "Not connected right now; your message was not sent.".to_owned(),
        }
    }

    /// Whether the notice still holds once the box's text became `text`.
    fn holds_after_edit(&self, text: &str) -> bool {
        match self.kind {
            NoticeKind::TooLong { max } => text.chars().count() > max,
            NoticeKind::Local => false,
            NoticeKind::Offline | NoticeKind::TooFast | NoticeKind::Refused => true,
        }
    }
}

impl Feed {
    /// The user changed the text in the box: kept as the room's draft, and a reason that no
    /// longer applies to the new text goes away.
    pub fn edit(&self, text: String) {
        self.given_back.try_update_value(|given| {
            if !text.starts_with(given.as_str()) {
                given.clear();
            }
        });
        self.notice
            .try_update(|n| *n = n.take().filter(|n| n.holds_after_edit(&text)));
        self.set_draft(text);
    }

    /// Sets the box's text and remembers it as the room's draft.
    fn set_draft(&self, text: String) {
        #[cfg(feature = "hydrate")]
        if let Some(room) = self.room.try_get_value() {
            super::storage::remember_draft(&room, &text);
        }
        self.draft.try_set(text);
    }

    /// Takes away a reason of one of `kinds`.
    pub fn clear_notice(&self, kinds: impl Fn(NoticeKind) -> bool) {
        let shown = self
            .notice
            .try_with_untracked(|n| n.as_ref().is_some_and(|n| kinds(n.kind)))
            .unwrap_or(false);
        if shown {
            self.notice.try_set(None);
        }
    }

    /// Puts a message that was not sent back in the box, with the reason (and what it
    /// answers, unless the box answers another message meanwhile).
    fn give_back(&self, sent: Outgoing, notice: Notice) {
        let Outgoing {
            text,
            attachment,
            reply,
            ..
        } = sent;
        if let Some(reply) = reply {
            self.replying.try_update(|r| {
                r.get_or_insert(reply);
            });
        }
        let given = self.given_back.try_get_value().unwrap_or_default();
        let current = self.draft.try_get_untracked().unwrap_or_default();
        let (box_text, given) = super::drafts::give_back(&current, &given, &text);
        self.set_draft(box_text);
        self.given_back.try_set_value(given);
        if let Some(attachment) = attachment {
            // An attachment chosen since keeps its place; the returned one stays uploaded.
            self.pending.try_update(|p| {
                p.get_or_insert(Pending::Ready(attachment));
            });
        }
        self.notice.try_set(Some(notice));
    }
}

impl ChatClient {
    /// Sends a message to the open room, with an uploaded attachment if given, as a reply to
    /// the message the room's box answers if any, and holds it until the server answers. Refused here, with the reason, when it is empty (and has no
    /// attachment) or too long, or when there is no live connection to send it on.
    pub fn send_message(&self, raw: &str, attachment: Option<&Attachment>) -> Result<(), Notice> {
        let max_chars = self.limits.get_value().max_message_chars;
        let body = MessageBody::for_post(raw, max_chars, attachment.is_some())
            .map_err(|e| Notice::from_error(&e))?;
        let Some(room) = self.current() else {
            return Err(Notice::local("Open a channel first."));
        };
        if self.session.with_untracked(Option::is_none) {
            return Err(Notice::local(&ChatError::NotIdentified.to_string()));
        }
        if self.status.get_untracked() != ConnStatus::Connected {
            return Err(Notice::offline());
        }
        let reply = self
            .feed_for(&room)
            .and_then(|feed| feed.replying.try_get_untracked().flatten());
        let client_ref = self.lost_ref(&room, raw, attachment).unwrap_or_else(|| {
            let number = self.next_ref.get_value();
            self.next_ref.set_value(number + 1);
            format!("m{number}")
        });
        self.outbox.update_value(|outbox| {
            outbox.push(Outgoing {
                client_ref: client_ref.clone(),
                room: room.clone(),
                text: raw.to_owned(),
                attachment: attachment.cloned(),
                reply: reply.clone(),
            })
        });
        self.send_event(&ClientEvent::Send {
            room,
            body: body.into(),
            attachment: attachment.map(|a| a.id.clone()),
            reply_to: reply.map(|r| r.id),
            client_ref: Some(client_ref),
        });
        Ok(())
    }

    /// The server stored the message sent as `client_ref`: the room's reasons about sending
    /// (too fast, refused) no longer apply.
    pub(super) fn accepted(&self, client_ref: &str) {
        let Some(sent) = self.take_outgoing(client_ref) else {
            return;
        };
        if let Some(feed) = self.feed_for(&sent.room) {
            feed.clear_notice(|k| matches!(k, NoticeKind::TooFast | NoticeKind::Refused));
            feed.error.try_set(None);
        }
    }

    /// The server refused the message sent as `client_ref` (code and sentence): it goes back
    /// to its room's box, still answering the message it answered unless that is what was
    /// refused. False if no message of ours was sent with that reference.
    pub(super) fn refused(
        &self,
        client_ref: &str,
        error: Result<ChatError, String>,
        sentence: String,
    ) -> bool {
        let Some(mut sent) = self.take_outgoing(client_ref) else {
            return false;
        };
        if error == Ok(ChatError::NoSuchReply) {
            // Its text comes back, no longer answering what is gone.
            sent.reply = None;
        }
        let notice = match error {
            Ok(error) => Notice::with_sentence(&error, sentence),
            Err(_) => Notice {
                kind: NoticeKind::Refused,
                text: sentence,
            },
        };
        self.give_back(sent, notice);
        true
    }

    /// The connection dropped: every message not yet answered goes back to its box, in the
    /// order it was sent.
    pub fn connection_lost(&self) {
        let outbox = self
            .outbox
            .try_update_value(std::mem::take)
            .unwrap_or_default();
        self.lost.update_value(|lost| {
            lost.splice(0..0, outbox.iter().cloned());
            lost.truncate(LOST_KEPT);
        });
        for sent in outbox {
            self.give_back(sent, Notice::offline());
        }
    }

    /// The reference of a message the connection lost, if this is it again, unchanged.
    fn lost_ref(&self, room: &Room, text: &str, attachment: Option<&Attachment>) -> Option<String> {
        self.lost.try_update_value(|lost| {
            let at = lost.iter().position(|o| {
                o.room == *room && o.text == text && o.attachment.as_ref() == attachment
            })?;
            Some(lost.remove(at).client_ref)
        })?
    }

    fn take_outgoing(&self, client_ref: &str) -> Option<Outgoing> {
        self.outbox
            .try_update_value(|outbox| {
                let at = outbox.iter().position(|o| o.client_ref == client_ref)?;
                Some(outbox.remove(at))
            })
            .flatten()
    }

    /// Puts a message back in its room's box if the room is open, else in its stored draft.
    fn give_back(&self, sent: Outgoing, notice: Notice) {
        let Some(feed) = self.feed_for(&sent.room) else {
            #[cfg(feature = "hydrate")]
            {
                let stored = super::storage::stored_draft(&sent.room);
                let (text, _) = super::drafts::give_back(&stored, "", &sent.text);
                super::storage::remember_draft(&sent.room, &text);
            }
            return;
        };
        feed.give_back(sent, notice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::client::provide_chat_client;
    use crate::chat::model::{
        ChannelName, DisplayName, HistoryPage, HistoryTop, Session, UserId, UserInfo,
    };
    use crate::protocol::ServerEvent;

    /// A connected, signed-in client with `#general` open, and that room's feed.
    fn open_general() -> (ChatClient, Feed) {
        let client = provide_chat_client();
        client.session.set(Some(Session {
            user: UserInfo {
                id: UserId(1),
                name: DisplayName::parse("Ada").unwrap(),
            },
            token: "t".into(),
        }));
        client.status.set(ConnStatus::Connected);
        let feed = client.open_room(HistoryPage {
            room: Room::Channel(ChannelName::parse("general").unwrap()),
            title: "general".into(),
            peer: None,
            epoch: 1,
            last_seq: 0,
            messages: Vec::new(),
            top: HistoryTop::Beginning,
        });
        (client, feed)
    }

    /// Types `text` and sends it as the composer does (the box empties at once).
    fn send(client: &ChatClient, feed: &Feed, text: &str) {
        feed.edit(text.into());
        client.send_message(text, None).unwrap();
        feed.edit(String::new());
    }

    fn refusal(code: &str, client_ref: &str) -> ServerEvent {
        ServerEvent::Error {
            code: code.into(),
            detail: None,
            message: format!("refused: {code}"),
            client_ref: Some(client_ref.into()),
        }
    }

    /// Each send carries its own reference; the message the server refuses as too fast comes
    /// back into the box with the server's sentence, and the reason goes once a later
    /// message is accepted. A refusal for a reference never sent (or already answered)
    /// changes nothing in the box.
    #[test]
    fn a_refused_message_comes_back_with_its_reason() {
        Owner::new().with(|| {
            let (client, feed) = open_general();
            send(&client, &feed, "too quick");
            client.apply(refusal("rate_limited", "m0"));
            assert_eq!(feed.draft.get_untracked(), "too quick");
            let notice = feed.notice.get_untracked().unwrap();
            assert_eq!(notice.kind, NoticeKind::TooFast);
            assert_eq!(notice.text, "refused: rate_limited");
            client.apply(refusal("rate_limited", "m0"));
            assert_eq!(
                feed.draft.get_untracked(),
                "too quick",
                "not given back twice"
            );

            send(&client, &feed, "too quick");
            client.apply(ServerEvent::Ack {
                client_ref: Some("m1".into()),
                id: crate::chat::model::MessageId(7),
                seq: 1,
            });
            assert_eq!(feed.draft.get_untracked(), "");
            assert_eq!(feed.notice.get_untracked(), None);
        });
    }

    /// A message sent while the box answers another goes as a reply to it; refused, it comes
    /// back into the box still answering that message, unless the message answered is what
    /// the server refused (gone meanwhile): then the text comes back alone.
    #[test]
    fn a_refused_reply_comes_back_still_answering() {
        Owner::new().with(|| {
            let (client, feed) = open_general();
            let reply = crate::chat::model::Reply {
                id: crate::chat::model::MessageId(4),
                seq: 2,
                author: UserInfo {
                    id: UserId(2),
                    name: DisplayName::parse("Bob").unwrap(),
                },
                excerpt: "lunch?".into(),
            };
            for (code, answering) in [
                ("rate_limited", Some(reply.clone())),
                ("no_such_reply", None),
            ] {
                feed.replying.set(Some(reply.clone()));
                send(&client, &feed, "yes");
                // The composer stops answering once the message is sent.
                feed.replying.set(None);
                let reference = client.outbox.with_value(|o| {
                    assert_eq!(o[0].reply.as_ref(), Some(&reply));
                    o[0].client_ref.clone()
                });
                client.apply(refusal(code, &reference));
                assert_eq!(feed.draft.get_untracked(), "yes");
                assert_eq!(feed.replying.get_untracked(), answering, "{code}");
                feed.edit(String::new());
            }
        });
    }

    /// When the connection drops, every message not yet answered comes back in the order it
    /// was written, behind the ones already given back and before words typed since.
    #[test]
    fn a_dropped_connection_gives_back_unanswered_messages_in_order() {
        Owner::new().with(|| {
            let (client, feed) = open_general();
            send(&client, &feed, "one");
            send(&client, &feed, "two");
            send(&client, &feed, "three");
            client.apply(refusal("no_such_file", "m0"));
            assert_eq!(
                feed.notice.get_untracked().unwrap().kind,
                NoticeKind::Refused
            );
            feed.edit("one\ntyped since".into());
            client.connection_lost();
            assert_eq!(feed.draft.get_untracked(), "one\ntwo\nthree\ntyped since");
            assert_eq!(feed.notice.get_untracked(), Some(Notice::offline()));
            client.apply(refusal("rate_limited", "m2"));
            assert_eq!(
                feed.notice.get_untracked(),
                Some(Notice::offline()),
                "answered already"
            );

            // "two", sent again unchanged, goes under its first reference.
            send(&client, &feed, "two");
            assert!(client.outbox.with_value(|o| o[0].client_ref == "m1"));
        });
    }

    /// A "too long" reason goes as soon as the text fits, one found in the browser (such as
    /// "empty") with any change, and the others (offline, too fast, refused) stay until
    /// their own condition clears.
    #[test]
    fn a_reason_goes_once_it_no_longer_applies() {
        let too_long = Notice::from_error(&ChatError::MessageTooLong { max: 5 });
        assert!(too_long.holds_after_edit("sixsix"));
        assert!(!too_long.holds_after_edit("five5"));
        assert!(!Notice::from_error(&ChatError::MessageEmpty).holds_after_edit(""));
        assert!(Notice::offline().holds_after_edit("x"));
        let too_fast = Notice::with_sentence(&ChatError::RateLimited, "Slow down.".into());
        assert_eq!(too_fast.kind, NoticeKind::TooFast);
        assert_eq!(too_fast.text, "Slow down.");
        assert!(too_fast.holds_after_edit("x"));
    }
}
