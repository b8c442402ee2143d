//! Replies (issue 18, item 4), against a real server on 127.0.0.1 over real WebSockets: a
//! reply carries a quote of the message it answers (its id, number, author and the first
//! line of its text, cut short and kept as text) to every member, and keeps it after the
//! original is deleted, after a rename (with the new name) and after a restart of the SQLite
//! store; a reply to a message that is not in the same room's history (unknown, in another
//! channel, in a private conversation) is refused with `no_such_reply` and stores nothing.

mod common;

use common::{general, start, Client};
use flack::chat::hub::Store;
use flack::chat::model::{DirectKey, Message, MessageId, Room, MAX_EXCERPT_CHARS};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};

/// The next error as (code, client_ref), skipping news; fails on an `ack` (the refused
/// reply posted after all).
async fn refusal(client: &mut Client) -> (String, Option<String>) {
    client
        .refusal_without(|e| matches!(e, ServerEvent::Ack { .. }))
        .await
}

/// Sends `body` to `room` as a reply to `reply_to`, with the reference `r`.
async fn send_reply(client: &mut Client, room: &Room, reply_to: MessageId, r: &str) {
    client
        .send(ClientEvent::Send {
            room: room.clone(),
            body: "an answer".into(),
            attachment: None,
            reply_to: Some(reply_to),
            client_ref: Some(r.into()),
        })
        .await;
}

/// What a message quotes: (id, seq, author's name, excerpt).
fn quote(message: &Message) -> (MessageId, u64, String, String) {
    let reply = message.reply.as_ref().expect("a reply");
    (
        reply.id,
        reply.seq,
        reply.author.name.to_string(),
        reply.excerpt.clone(),
    )
}

/// A reply reaches every member with its quote: the original's id, number, author, and its
/// first line of text without formatting marks. The quote stays when the original is
/// deleted, and shows the quoted author's new name after a rename.
#[tokio::test]
async fn a_reply_carries_its_quote_to_everyone() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let hers = ada
        .post_acked(&general(), "\nlunch at **noon**?\nor later")
        .await;
    bob.next_message().await;

    let answer = bob.reply_acked(&general(), "yes!", Some(hers.id)).await;
    let expected = (
        hers.id,
        hers.seq,
        "Ada".to_owned(),
        "lunch at noon?".to_owned(),
    );
    assert_eq!(quote(&answer), expected);
    assert_eq!(quote(&ada.next_message().await), expected);
    assert_eq!(quote(&common::held(&server, answer.id)), expected);
    let plain = bob.post_acked(&general(), "no reply").await;
    assert_eq!(plain.reply, None);

    ada.send(ClientEvent::Delete {
        room: general(),
        id: hers.id,
        client_ref: None,
    })
    .await;
    let messages = common::renamed_then_joined(&mut ada, &mut bob, "Ada L").await;
    assert!(messages.iter().all(|m| m.id != hers.id), "deleted");
    let got = messages.iter().find(|m| m.id == answer.id).expect("held");
    assert_eq!(
        quote(got),
        (
            hers.id,
            hers.seq,
            "Ada L".to_owned(),
            "lunch at noon?".to_owned()
        )
    );
}

/// A reply may only answer a message held in the same room: an unknown id, a message of
/// another channel, and one of a private conversation the sender is not in (from a channel,
/// or sent to that conversation) are refused with the event's `client_ref`, a reference of
/// the wrong kind is `malformed`, and nothing is posted.
#[tokio::test]
async fn replies_to_what_is_not_in_the_room_are_refused() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let bob = Client::joined(&server, "Bob").await;
    let mut eve = Client::joined(&server, "Eve").await;
    server.hub.create_channel(&ada.token(), "random").unwrap();
    while !matches!(
        ada.next().await,
        ServerEvent::Hub(HubEvent::ChannelCreated { .. })
    ) {}
    ada.join(&common::channel("random")).await;
    let here = ada.post_acked(&general(), "here").await;
    let elsewhere = ada.post_acked(&common::channel("random"), "there").await;
    let private = Room::Direct(DirectKey::between(ada.id(), bob.id()).expect("two users"));
    let secret = ada.post_acked(&private, "just us").await;
    let before = common::general_history(&server).len();

    for (reply_to, r) in [
        (MessageId(999_999), "unknown"),
        (elsewhere.id, "other room"),
        (secret.id, "private"),
    ] {
        send_reply(&mut eve, &general(), reply_to, r).await;
        assert_eq!(
            refusal(&mut eve).await,
            ("no_such_reply".into(), Some(r.into())),
            "{r}"
        );
    }
    send_reply(&mut eve, &private, secret.id, "spy").await;
    assert_eq!(
        refusal(&mut eve).await,
        ("forbidden".into(), Some("spy".into()))
    );
    // Ada's own conversation's message does not answer from the channel either.
    send_reply(&mut ada, &general(), secret.id, "mine").await;
    assert_eq!(
        refusal(&mut ada).await,
        ("no_such_reply".into(), Some("mine".into()))
    );
    eve.send_raw(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"send","room":{"channel":"general"},"body":"x","reply_to":"1"}"#,
    ))
    .await;
    assert_eq!(refusal(&mut eve).await.0, "malformed");
    assert_eq!(common::general_history(&server).len(), before);
    let fine = eve.reply_acked(&general(), "ok", Some(here.id)).await;
    assert_eq!(quote(&fine).0, here.id);
}

/// The excerpt is the first line, cut to 100 characters on a character boundary, and stays
/// the text typed: markup in it is text, never HTML, in the page the server draws too.
#[tokio::test]
async fn the_excerpt_is_cut_and_stays_text() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let long = format!("<img src=x onerror=alert(1)> {}", "ü".repeat(3900));
    let original = ada.post_acked(&general(), &long).await;
    let reply = ada
        .reply_acked(&general(), "what?", Some(original.id))
        .await;
    let excerpt = quote(&reply).3;
    assert_eq!(excerpt.chars().count(), MAX_EXCERPT_CHARS);
    assert!(
        excerpt.starts_with("<img src=x onerror=alert(1)> üü"),
        "{excerpt}"
    );
    assert!(excerpt.ends_with("ü…"), "{excerpt}");

    let page = common::http(&server, "GET", "/c/general", None).await;
    assert!(
        page.body
            .contains("<span class=\"excerpt\">&lt;img src=x onerror=alert(1)&gt; üü"),
        "the quote, as text"
    );
}

/// A reply is stored with its quote: after a restart of the SQLite store it is still a reply
/// to the same message, with the same excerpt.
#[tokio::test]
async fn a_reply_survives_a_restart() {
    let path = common::fresh_db("reply", "restart");
    let (server, store) = common::sqlite_server(&path).await;
    let mut ada = Client::joined(&server, "Ada").await;
    let original = ada.post_acked(&general(), "keep this").await;
    let reply = ada
        .reply_acked(&general(), "kept?", Some(original.id))
        .await;
    ada.close().await;
    store.close();

    let (again, _store) = common::sqlite_server(&path).await;
    let held = common::held(&again, reply.id);
    assert_eq!(held.reply, reply.reply);
    assert_eq!(quote(&held).3, "keep this");
}
