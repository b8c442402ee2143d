//! Reactions to messages (issue 18, item 3), against a real server on 127.0.0.1 over real
//! WebSockets: anyone who may read a room reacts to any of its messages and every member
//! sees it live; giving one twice or taking away one never given changes nothing and tells
//! nobody; a hostile client is refused with clear errors (an emoji not offered, a message
//! that is not there, another pair's private conversation, the limits per user and per
//! message, the posting rate); reactions survive a restart of the SQLite store, come with
//! history pages and search hits, and a client that missed one catches up through a reset.

mod common;

use common::{fast, general, start, start_with, Away, Client};
use flack::chat::hub::Store;
use flack::chat::model::{
    every_emoji, Cursor, DirectKey, Emoji, Message, MessageId, Room, COMMON_REACTIONS,
    MAX_REACTIONS_PER_MESSAGE, MAX_REACTIONS_PER_USER,
};
use flack::protocol::{HubEvent, ServerEvent};
use std::time::Duration;

/// Reads `reaction` events until the one giving (`on`) or taking away `emoji`.
async fn told(client: &mut Client, emoji: &str, on: bool) {
    loop {
        let (_, got, _, got_on) = client.next_reaction().await;
        if (got.as_str(), got_on) == (emoji, on) {
            return;
        }
    }
}

/// The next error as (code, client_ref), skipping news; fails on a `reaction`.
async fn refusal(client: &mut Client) -> (String, Option<String>) {
    client
        .refusal_without(|e| matches!(e, ServerEvent::Hub(HubEvent::Reaction { .. })))
        .await
}

/// The emoji and the names of who gave each, on `message`.
fn shown(message: &Message) -> Vec<(String, Vec<String>)> {
    message
        .reactions
        .iter()
        .map(|r| {
            let names = r.users.iter().map(|u| u.name.to_string()).collect();
            (r.emoji.as_str().to_owned(), names)
        })
        .collect()
}

fn counts(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    pairs
        .iter()
        .map(|(e, names)| (e.to_string(), names.iter().map(|n| n.to_string()).collect()))
        .collect()
}

/// Anyone signed in reacts to anyone's message (their own too): every member of the room,
/// readers who have not signed in included, is told who gave or took away which emoji, and
/// the message carries the reactions, in the order first given, each with who gave it. A
/// reader who has not signed in cannot react (`not_identified`, with the `client_ref`).
#[tokio::test]
async fn anyone_reacts_and_everyone_sees_it() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let mut reader = Client::connect(&server).await;
    reader.join(&general()).await;
    let hers = ada.post_acked(&general(), "lunch?").await;

    reader
        .react(&general(), hers.id, "👍", true, Some("r1"))
        .await;
    assert_eq!(
        refusal(&mut reader).await,
        ("not_identified".into(), Some("r1".into()))
    );

    bob.react(&general(), hers.id, "👍", true, Some("b1")).await;
    for client in [&mut ada, &mut bob, &mut reader] {
        assert_eq!(
            client.next_reaction().await,
            (hers.id, "👍".into(), "Bob".into(), true)
        );
    }
    ada.react(&general(), hers.id, "🎉", true, Some("a1")).await;
    ada.react(&general(), hers.id, "👍", true, Some("a2")).await;
    for client in [&mut ada, &mut bob] {
        for _ in 0..2 {
            assert_eq!(client.next_reaction().await.2, "Ada");
        }
    }
    assert_eq!(
        shown(&common::held(&server, hers.id)),
        counts(&[("👍", &["Bob", "Ada"]), ("🎉", &["Ada"])])
    );

    bob.react(&general(), hers.id, "👍", false, Some("b2"))
        .await;
    for client in [&mut ada, &mut bob] {
        assert_eq!(
            client.next_reaction().await,
            (hers.id, "👍".into(), "Bob".into(), false)
        );
    }
    ada.react(&general(), hers.id, "🎉", false, Some("a3"))
        .await;
    told(&mut bob, "🎉", false).await;
    assert_eq!(
        shown(&common::held(&server, hers.id)),
        counts(&[("👍", &["Ada"])]),
        "an emoji nobody gives any more is gone"
    );

    // A rename shows in the reactions of every message sent from then on.
    let messages = common::renamed_then_joined(&mut ada, &mut bob, "Ada L").await;
    let got = messages.iter().find(|m| m.id == hers.id).expect("held");
    assert_eq!(shown(got), counts(&[("👍", &["Ada L"])]));
}

/// Giving a reaction twice, or taking away one never given, changes nothing and tells
/// nobody: the next `reaction` anyone receives is the next real change.
#[tokio::test]
async fn reacting_twice_changes_nothing_and_tells_nobody() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let hers = ada.post_acked(&general(), "hello").await;
    bob.react(&general(), hers.id, "👀", true, Some("b1")).await;
    for client in [&mut ada, &mut bob] {
        assert_eq!(client.next_reaction().await.1, "👀");
    }

    bob.react(&general(), hers.id, "👀", true, Some("again"))
        .await;
    bob.react(&general(), hers.id, "🔥", false, Some("never given"))
        .await;
    ada.react(&general(), hers.id, "👀", false, Some("not hers"))
        .await;
    // The next change is the first thing either of them hears.
    bob.react(&general(), hers.id, "🚀", true, Some("b2")).await;
    for client in [&mut ada, &mut bob] {
        assert_eq!(
            client.next_reaction().await,
            (hers.id, "🚀".into(), "Bob".into(), true)
        );
    }
    assert_eq!(
        shown(&common::held(&server, hers.id)),
        counts(&[("👀", &["Bob"]), ("🚀", &["Bob"])])
    );
}

/// A hostile client is refused, with the event's `client_ref` and nothing changed: an emoji
/// that is not offered (text, a shortcode name, two emoji, markup), a message that is not
/// there or is in another room, another pair's private conversation, and a frame whose
/// fields are of the wrong kind (`malformed`).
#[tokio::test]
async fn hostile_reactions_are_refused() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let bob = Client::joined(&server, "Bob").await;
    let mut eve = Client::joined(&server, "Eve").await;
    let hers = ada.post_acked(&general(), "public").await;
    let private = Room::Direct(DirectKey::between(ada.id(), bob.id()).expect("two users"));
    let secret = ada.post_acked(&private, "just us").await;

    for (emoji, r) in [
        ("", "empty"),
        ("tada", "name"),
        (":tada:", "shortcode"),
        ("👍👍", "two"),
        ("<img src=x onerror=alert(1)>", "markup"),
        ("🐍", "not offered"),
    ] {
        eve.react(&general(), hers.id, emoji, true, Some(r)).await;
        assert_eq!(
            refusal(&mut eve).await,
            ("emoji_invalid".into(), Some(r.into())),
            "{emoji:?}"
        );
    }
    eve.react(&general(), MessageId(999_999), "👍", true, Some("gone"))
        .await;
    assert_eq!(
        refusal(&mut eve).await,
        ("no_such_message".into(), Some("gone".into()))
    );
    let elsewhere = common::channel("random");
    eve.react(&elsewhere, hers.id, "👍", true, Some("room"))
        .await;
    let (code, r) = refusal(&mut eve).await;
    assert_eq!(r.as_deref(), Some("room"));
    assert!(
        code == "no_such_channel" || code == "no_such_message",
        "{code}"
    );
    eve.react(&private, secret.id, "👍", true, Some("spy"))
        .await;
    assert_eq!(
        refusal(&mut eve).await,
        ("forbidden".into(), Some("spy".into()))
    );
    eve.send_raw(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"react","room":{"channel":"general"},"id":1,"emoji":1,"on":true}"#,
    ))
    .await;
    assert_eq!(refusal(&mut eve).await.0, "malformed");
    assert!(common::held(&server, hers.id).reactions.is_empty());
    assert!(ada
        .next_within(Duration::from_millis(200))
        .await
        .is_none_or(|e| !matches!(e, ServerEvent::Hub(HubEvent::Reaction { .. })),));
}

/// One user gives at most 20 different emoji to a message (`too_many_reactions`, with the
/// limit), and a message carries at most 50 different ones (`reactions_full`); an emoji
/// already there may still be given by others, and taking one away makes room again.
#[tokio::test]
async fn reactions_are_limited_per_user_and_per_message() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut others = Vec::new();
    for name in ["Bob", "Cy", "Di"] {
        others.push(Client::user(&server, name).await);
    }
    let hers = ada.post_acked(&general(), "react away").await;
    // Every distinct emoji reactions may use, in the table's order.
    let emoji: Vec<&str> = every_emoji().into_iter().map(Emoji::as_str).collect();
    assert!(emoji.len() > MAX_REACTIONS_PER_MESSAGE);
    let per = MAX_REACTIONS_PER_USER;
    for (i, e) in emoji[..per].iter().enumerate() {
        ada.react(&general(), hers.id, e, true, Some(&format!("a{i}")))
            .await;
        ada.next_reaction().await;
    }
    ada.react(&general(), hers.id, emoji[per], true, Some("one more"))
        .await;
    let refused = loop {
        if let ServerEvent::Error {
            code,
            detail,
            client_ref,
            ..
        } = ada.next().await
        {
            break (code, serde_json::to_value(detail).unwrap(), client_ref);
        }
    };
    assert_eq!(
        refused,
        (
            "too_many_reactions".into(),
            serde_json::json!({"max": 20}),
            Some("one more".into())
        )
    );
    // Others fill the message up to 50 different emoji.
    let mut next = per;
    for (n, other) in others.iter_mut().enumerate() {
        while next < MAX_REACTIONS_PER_MESSAGE && next < per * (n + 2) {
            other
                .react(&general(), hers.id, emoji[next], true, Some("fill"))
                .await;
            next += 1;
        }
    }
    for _ in per..MAX_REACTIONS_PER_MESSAGE {
        ada.next_reaction().await;
    }
    let di = &mut others[2];
    di.react(
        &general(),
        hers.id,
        emoji[MAX_REACTIONS_PER_MESSAGE],
        true,
        Some("51"),
    )
    .await;
    assert_eq!(
        refusal(di).await,
        ("reactions_full".into(), Some("51".into()))
    );
    di.react(&general(), hers.id, emoji[0], true, Some("same"))
        .await;
    assert_eq!(ada.next_reaction().await.1, emoji[0]);
    // Ada takes one of hers away: a new emoji fits again.
    ada.react(&general(), hers.id, emoji[1], false, Some("off"))
        .await;
    ada.next_reaction().await;
    let di = &mut others[2];
    di.react(
        &general(),
        hers.id,
        emoji[MAX_REACTIONS_PER_MESSAGE],
        true,
        Some("51b"),
    )
    .await;
    assert_eq!(
        ada.next_reaction().await.1,
        emoji[MAX_REACTIONS_PER_MESSAGE]
    );
    let held = common::held(&server, hers.id);
    assert_eq!(held.reactions.len(), MAX_REACTIONS_PER_MESSAGE);
}

/// Reactions cost what posts do: with a burst of three, a post and two reactions pass and
/// the next reaction is `rate_limited` (and changes nothing), even a flood of ones that
/// would change nothing.
#[tokio::test]
async fn reactions_count_against_the_posting_rate() {
    let mut config = fast();
    config.limits.messages_per_second = 1;
    config.limits.message_burst = 3;
    let server = start_with(config).await;
    let mut ada = Client::joined(&server, "Ada").await;
    let hers = ada.post_acked(&general(), "rate").await;
    ada.react(&general(), hers.id, "👍", true, Some("1")).await;
    ada.react(&general(), hers.id, "👍", true, Some("2 (changes nothing)"))
        .await;
    ada.react(&general(), hers.id, "🎉", true, Some("3")).await;
    assert_eq!(ada.next_reaction().await.1, "👍");
    assert_eq!(
        refusal(&mut ada).await,
        ("rate_limited".into(), Some("3".into()))
    );
    for i in 0..20 {
        ada.react(&general(), hers.id, "👍", true, Some(&format!("flood {i}")))
            .await;
    }
    // One may pass if a second went by meanwhile (it changes nothing, so nobody hears of it).
    let mut limited = 0;
    loop {
        let (code, r) = refusal(&mut ada).await;
        assert_eq!(code, "rate_limited");
        limited += 1;
        if r.as_deref() == Some("flood 19") {
            break;
        }
    }
    assert!(limited >= 19, "{limited}");
    assert_eq!(
        shown(&common::held(&server, hers.id)),
        counts(&[("👍", &["Ada"])])
    );
}

/// Reactions are stored with their message: after a restart of the SQLite store the
/// message has them (who, in order), and a history page read from the archive and a search
/// hit carry them too.
#[tokio::test]
async fn reactions_survive_a_restart() {
    let path = common::fresh_db("react", "restart");
    let (server, store) = common::sqlite_server(&path).await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let hers = ada.post_acked(&general(), "pelican sighting").await;
    for (by_ada, emoji, on) in [
        (false, "👍", true),
        (true, "👍", true),
        (false, "🎉", true),
        (false, "👀", true),
        (false, "👀", false),
    ] {
        let client = if by_ada { &mut ada } else { &mut bob };
        client
            .react(&general(), hers.id, emoji, on, Some("r"))
            .await;
        told(client, emoji, on).await;
    }
    let before = shown(&common::held(&server, hers.id));
    assert_eq!(before, counts(&[("👍", &["Bob", "Ada"]), ("🎉", &["Bob"])]));
    ada.close().await;
    bob.close().await;
    store.close();

    let (again, _store) = common::sqlite_server(&path).await;
    assert_eq!(shown(&common::held(&again, hers.id)), before);
    let found = common::search_as_newcomer(&again, &["pelican"])
        .await
        .remove(0);
    assert_eq!(found.hits.len(), 1);
    assert_eq!(shown(&found.hits[0].message), before);
}

/// A client that was away while someone reacted, reconnecting with its cursor, gets the
/// room again whole (`reset: true`) with the reactions as they are, though no message was
/// posted; one whose cursor is past the reaction catches up by appending (`reset: false`).
#[tokio::test]
async fn a_client_that_missed_a_reaction_gets_it_when_it_catches_up() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let hers = ada.post_acked(&general(), "before").await;
    let away = Away::after_joining(&server, "Bob").await;

    let common_emoji = flack::chat::model::Emoji::named(COMMON_REACTIONS[0]).expect("common");
    ada.react(&general(), hers.id, common_emoji.as_str(), true, Some("a1"))
        .await;
    ada.next_reaction().await;

    let (mut bob, reset, messages) = away.back(&server).await;
    assert!(
        reset,
        "a cursor from before the reaction gets the room again"
    );
    let got = messages.iter().find(|m| m.id == hers.id).expect("held");
    assert_eq!(shown(got), counts(&[("👍", &["Ada"])]));

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
