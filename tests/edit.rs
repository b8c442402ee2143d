//! Editing one's own messages (issue 18, item 2), against a real server on 127.0.0.1 over
//! real WebSockets: only the author edits (others are refused `not_your_message`, a reader
//! who has not signed in `not_identified`); an edit reaches every member live and is
//! acknowledged once stored; it survives a restart of the SQLite store (and search finds the
//! new words, not the old); a client that missed it catches up through a reset; and an edit
//! is checked as a post is (empty, too long, control characters, the posting rate), a
//! refused one changing nothing.

mod common;

use common::{fast, general, start, start_with, Away, Client};
use flack::chat::hub::Store;
use flack::chat::model::{Cursor, MessageId};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};

/// Sends an edit of message `id` in `general`, with `client_ref`.
async fn edit(client: &mut Client, id: MessageId, body: &str, client_ref: &str) {
    client
        .send(ClientEvent::Edit {
            room: general(),
            id,
            body: body.into(),
            client_ref: Some(client_ref.into()),
        })
        .await;
}

/// The next error, skipping news; fails on an `ack` or an edit.
async fn refusal(client: &mut Client) -> (String, Option<String>) {
    let done = |e: &ServerEvent| {
        matches!(
            e,
            ServerEvent::Ack { .. } | ServerEvent::Hub(HubEvent::MessageEdited { .. })
        )
    };
    client.refusal_without(done).await
}

/// The next `message_edited`, skipping other news.
async fn edited(client: &mut Client) -> (MessageId, String, flack::chat::model::Timestamp) {
    loop {
        if let ServerEvent::Hub(HubEvent::MessageEdited {
            id,
            body,
            edited_at,
            room,
        }) = client.next().await
        {
            assert_eq!(room, general());
            return (id, body.as_str().to_owned(), edited_at);
        }
    }
}

/// Only the author edits: another user is refused `not_your_message`, a reader who has not
/// signed in `not_identified`, an unknown id `no_such_message`, each with the event's
/// `client_ref` and nothing changed. The author's edit reaches every member (readers who
/// have not signed in too) with the new text and its time, and the author's `ack` names the
/// message; history shows the new text, marked edited.
#[tokio::test]
async fn only_the_author_edits_and_everyone_sees_it() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let mut reader = Client::connect(&server).await;
    reader.join(&general()).await;
    let mine = ada.post_acked(&general(), "helo world").await;

    edit(&mut bob, mine.id, "hijacked", "b1").await;
    assert_eq!(
        refusal(&mut bob).await,
        ("not_your_message".into(), Some("b1".into()))
    );
    edit(&mut reader, mine.id, "anonymous", "r1").await;
    assert_eq!(
        refusal(&mut reader).await,
        ("not_identified".into(), Some("r1".into()))
    );
    edit(&mut ada, MessageId(999_999), "nothing", "a0").await;
    assert_eq!(
        refusal(&mut ada).await,
        ("no_such_message".into(), Some("a0".into()))
    );
    assert_eq!(common::held(&server, mine.id).body.as_str(), "helo world");
    assert_eq!(common::held(&server, mine.id).edited_at, None);

    edit(&mut ada, mine.id, "hello world", "a1").await;
    let mut acked = false;
    let mut seen = false;
    while !(acked && seen) {
        match ada.next().await {
            ServerEvent::Ack {
                client_ref,
                id,
                seq,
            } => {
                assert_eq!(
                    (client_ref.as_deref(), id, seq),
                    (Some("a1"), mine.id, mine.seq)
                );
                acked = true;
            }
            ServerEvent::Hub(HubEvent::MessageEdited { id, body, .. }) => {
                assert_eq!((id, body.as_str()), (mine.id, "hello world"));
                seen = true;
            }
            ServerEvent::Error { code, .. } => panic!("the edit was refused: {code}"),
            _ => {}
        }
    }
    for client in [&mut bob, &mut reader] {
        let (id, body, at) = edited(client).await;
        assert_eq!((id, body.as_str()), (mine.id, "hello world"));
        assert!(at >= mine.sent_at);
    }
    let now = common::held(&server, mine.id);
    assert_eq!(now.body.as_str(), "hello world");
    assert!(now.edited_at.is_some(), "marked as edited");
    assert_eq!((now.seq, now.sent_at), (mine.seq, mine.sent_at));
}

/// An edit is checked as a post is, with the same sentences: blank, over the length limit,
/// or holding a control character, it is refused with the post's error (the limit in its
/// detail) and the message keeps its text; edits count against the posting rate with posts.
#[tokio::test]
async fn edits_are_limited_like_posts() {
    let mut config = fast();
    config.limits.max_message_chars = 20;
    config.limits.messages_per_second = 1;
    config.limits.message_burst = 3;
    let server = start_with(config).await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mine = ada.post_acked(&general(), "first words").await;

    for (body, code) in [
        ("   \n ", "message_empty"),
        ("x".repeat(21).as_str(), "message_too_long"),
        ("bell\u{7}", "message_invalid"),
    ] {
        edit(&mut ada, mine.id, body, code).await;
        loop {
            match ada.next().await {
                ServerEvent::Error {
                    code: got,
                    detail,
                    client_ref,
                    ..
                } => {
                    assert_eq!((got.as_str(), client_ref.as_deref()), (code, Some(code)));
                    if code == "message_too_long" {
                        assert_eq!(
                            serde_json::to_value(detail).unwrap(),
                            serde_json::json!({"max": 20})
                        );
                    }
                    break;
                }
                ServerEvent::Ack { .. } => panic!("{code}: the edit was accepted"),
                _ => {}
            }
        }
    }
    assert_eq!(common::held(&server, mine.id).body.as_str(), "first words");

    // One post and two edits take the burst of three; the next edit is too fast.
    edit(&mut ada, mine.id, "second words", "e1").await;
    edit(&mut ada, mine.id, "third words", "e2").await;
    edit(&mut ada, mine.id, "fourth words", "e3").await;
    let mut acks = Vec::new();
    let mut refused = None;
    while acks.len() < 2 || refused.is_none() {
        match ada.next().await {
            ServerEvent::Ack { client_ref, .. } => acks.extend(client_ref),
            ServerEvent::Error {
                code, client_ref, ..
            } => refused = Some((code, client_ref)),
            _ => {}
        }
    }
    assert_eq!(acks, ["e1", "e2"]);
    assert_eq!(
        refused,
        Some(("rate_limited".to_owned(), Some("e3".to_owned())))
    );
    assert_eq!(common::held(&server, mine.id).body.as_str(), "third words");
}

/// An acknowledged edit is stored: after a restart the message has its new text and its
/// edit time, and search finds the new words and no longer the old ones.
#[tokio::test]
async fn edits_survive_a_restart() {
    let path = common::fresh_db("edit", "restart");
    let (server, store) = common::sqlite_server(&path).await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mine = ada.post_acked(&general(), "original zebra").await;
    ada.post_acked(&general(), "another message").await;
    edit(&mut ada, mine.id, "corrected giraffe", "e1").await;
    loop {
        match ada.next().await {
            ServerEvent::Ack { client_ref, .. } => {
                assert_eq!(client_ref.as_deref(), Some("e1"));
                break;
            }
            ServerEvent::Error { code, .. } => panic!("refused: {code}"),
            _ => {}
        }
    }
    let before = common::held(&server, mine.id);
    ada.close().await;
    store.close();

    let (again, _store) = common::sqlite_server(&path).await;
    let after = common::held(&again, mine.id);
    assert_eq!(after.body.as_str(), "corrected giraffe");
    assert_eq!(after.edited_at, before.edited_at);
    assert!(after.edited_at.is_some());
    let [found, old] = &common::search_as_newcomer(&again, &["giraffe", "zebra"]).await[..] else {
        unreachable!("two searches, two pages");
    };
    assert_eq!(found.hits.len(), 1);
    assert_eq!(found.hits[0].message.id, mine.id);
    assert!(old.hits.is_empty(), "the old words are gone from the index");
}

/// A client that was away during an edit, reconnecting with its cursor, gets the room again
/// whole (`reset: true`) with the new text, even though no new message was posted; one
/// whose cursor is past the edit catches up as usual (`reset: false`).
#[tokio::test]
async fn a_client_that_missed_an_edit_gets_it_when_it_catches_up() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mine = ada.post_acked(&general(), "before").await;
    let away = Away::after_joining(&server, "Bob").await;

    edit(&mut ada, mine.id, "after", "e1").await;
    edited(&mut ada).await;

    let (mut bob, reset, messages) = away.back(&server).await;
    assert!(
        reset,
        "a cursor from before the edit cannot be caught up by appending"
    );
    let got = messages.iter().find(|m| m.id == mine.id).expect("held");
    assert_eq!(got.body.as_str(), "after");
    assert!(got.edited_at.is_some());

    // A message after the edit: a cursor past both catches up by appending again.
    let later = ada.post_acked(&general(), "later").await;
    let cursor = Cursor {
        seq: later.seq,
        ..away.cursor
    };
    assert_eq!(
        bob.join_since(&general(), cursor).await,
        (false, Vec::new())
    );
}
