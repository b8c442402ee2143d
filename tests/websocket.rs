//! Integration tests of the WebSocket protocol against the real router on 127.0.0.1:0, with
//! several real WebSocket clients.

mod common;

use common::{general, general_history, start, start_with, Client};
use flack::chat::model::{DirectKey, MessageId, Room};
use flack::protocol::{ClientEvent, Cursor, HubEvent, ServerEvent};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A message posted by one client reaches every member of the channel, with the sender's name
/// and a server id, sequence number and timestamp; the sender gets an ack.
#[tokio::test]
async fn messages_fan_out_to_every_member() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let mut cy = Client::joined(&server, "Cy").await;

    ada.send(ClientEvent::Send {
        room: general(),
        body: "hello, team".into(),
        attachment: None,
        reply_to: None,
        client_ref: Some("r1".into()),
    })
    .await;

    let own = ada.next_message().await;
    loop {
        match ada.next().await {
            ServerEvent::Ack {
                client_ref,
                id,
                seq,
            } => {
                assert_eq!(client_ref.as_deref(), Some("r1"));
                assert_eq!((id, seq), (own.id, own.seq));
                break;
            }
            ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
            other => panic!("expected ack, got {other:?}"),
        }
    }
    for client in [&mut bob, &mut cy] {
        let got = client.next_message().await;
        assert_eq!(got, own);
        assert_eq!(got.author.name.as_str(), "Ada");
        assert_eq!(got.author.id, ada.id());
        assert_eq!(got.body.as_str(), "hello, team");
        assert_eq!(got.seq, 1);
    }
}

/// With several clients posting at once, every member sees the same messages in the same
/// order, numbered consecutively.
#[tokio::test]
async fn every_member_sees_one_order() {
    let server = start().await;
    let mut readers = Vec::new();
    for i in 0..2 {
        readers.push(Client::joined(&server, &format!("reader{i}")).await);
    }
    let mut posters = Vec::new();
    for p in 0..3 {
        let mut client = Client::user(&server, &format!("poster{p}")).await;
        posters.push(tokio::spawn(async move {
            for i in 0..40 {
                client.post(&general(), &format!("p{p} m{i}")).await;
            }
            // Closing with answers unread would reset the connection, and the kernel may then
            // drop posts the server has not read yet (they were never acknowledged).
            client.acks(40).await;
            client
        }));
    }
    for poster in posters {
        poster.await.expect("poster task");
    }
    let mut orders = Vec::new();
    for reader in &mut readers {
        let mut order = Vec::new();
        for _ in 0..120 {
            let m = reader.next_message().await;
            order.push((m.seq, m.id, m.body.as_str().to_owned()));
        }
        let seqs: Vec<u64> = order.iter().map(|o| o.0).collect();
        assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
        orders.push(order);
    }
    assert_eq!(orders[0], orders[1]);
}

/// After 150 messages, a client that joins receives exactly the last 100, oldest first.
#[tokio::test]
async fn joining_gets_exactly_the_last_hundred() {
    let server = start().await;
    let mut sender = Client::user(&server, "sender").await;
    for i in 1..=150 {
        sender.post(&general(), &format!("message {i}")).await;
    }
    sender.acks(150).await;
    let mut late = Client::connect(&server).await;
    match late.join(&general()).await {
        ServerEvent::Hub(HubEvent::Joined {
            messages, reset, ..
        }) => {
            assert!(reset);
            assert_eq!(messages.len(), 100);
            assert_eq!(messages[0].body.as_str(), "message 51");
            assert_eq!(messages[99].body.as_str(), "message 150");
            assert!(messages.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        }
        other => panic!("expected joined, got {other:?}"),
    }
    assert_eq!(common::general_history(&server).len(), 100);
}

/// A client that reconnects with its cursor receives exactly the messages it missed, once.
#[tokio::test]
async fn reconnecting_catches_up_exactly() {
    let server = start().await;
    let mut poster = Client::joined(&server, "poster").await;
    let mut reader = Client::joined(&server, "reader").await;
    for i in 1..=5 {
        poster.post(&general(), &format!("m{i}")).await;
    }
    let mut last = 0;
    for _ in 0..5 {
        last = reader.next_message().await.seq;
    }
    let token = reader.token();
    reader.close().await;
    for i in 6..=9 {
        poster.post(&general(), &format!("m{i}")).await;
    }
    for _ in 6..=9 {
        poster.next_message().await;
    }
    let mut back = Client::connect(&server).await;
    back.auth(&token).await;
    back.send(ClientEvent::Join {
        room: general(),
        since: Some(Cursor {
            epoch: server.hub.epoch(),
            seq: last,
        }),
        client_ref: None,
    })
    .await;
    match back.next().await {
        ServerEvent::Hub(HubEvent::Joined {
            reset, messages, ..
        }) => {
            assert!(!reset);
            let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, vec![6, 7, 8, 9]);
        }
        other => panic!("expected joined, got {other:?}"),
    }
    poster.post(&general(), "m10").await;
    assert_eq!(back.next_message().await.seq, 10);
}

/// Bad input gets a clear error event and changes nothing: empty and over-long messages,
/// unknown channels, posting before authenticating.
#[tokio::test]
async fn invalid_input_gets_error_events() {
    let server = start().await;
    let mut anon = Client::connect(&server).await;
    anon.post(&general(), "hi").await;
    assert_error(&mut anon, "not_identified").await;
    let session = server
        .hub
        .register("Ada")
        .unwrap()
        .stored()
        .await
        .expect("stored");
    anon.auth(&session.token).await;
    anon.post(&general(), "   ").await;
    assert_error(&mut anon, "message_empty").await;
    anon.post(&general(), &"x".repeat(4001)).await;
    assert_error(&mut anon, "message_too_long").await;
    anon.post(&common::channel("no-such-place"), "hi").await;
    assert_error(&mut anon, "no_such_channel").await;
    anon.send(ClientEvent::Rename {
        name: "".into(),
        client_ref: None,
    })
    .await;
    assert_error(&mut anon, "display_name_empty").await;
    assert!(common::general_history(&server).is_empty());
}

/// Identity comes only from the token: a wrong token is refused, nothing can be posted
/// without one, and there is no way to name an author in an event.
#[tokio::test]
async fn tokens_decide_who_acts() {
    let server = start().await;
    let ada = Client::user(&server, "Ada").await;
    let mut mallory = Client::connect(&server).await;
    mallory
        .send(ClientEvent::Auth {
            token: "0".repeat(64),
        })
        .await;
    assert_error(&mut mallory, "unauthorized").await;
    mallory.post(&general(), "I am Ada").await;
    assert_error(&mut mallory, "not_identified").await;
    // Naming an author is not part of the protocol.
    mallory
        .send_raw(WsMessage::text(format!(
            r#"{{"type":"send","room":{{"channel":"general"}},"body":"hi","author":{{"id":{},"name":"Ada"}}}}"#,
            ada.id()
        )))
        .await;
    assert_error(&mut mallory, "malformed").await;
    assert!(common::general_history(&server).is_empty());
}

/// Deleting someone else's message, or one that does not exist, is refused (the refusal
/// carries the event's `client_ref`) and changes nothing; deleting one's own reaches every
/// member and leaves history.
#[tokio::test]
async fn only_the_author_deletes() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    ada.post(&general(), "keep me").await;
    let message = bob.next_message().await;
    ada.next_message().await;

    bob.send(ClientEvent::Delete {
        room: general(),
        id: message.id,
        client_ref: Some("d1".into()),
    })
    .await;
    loop {
        match bob.next().await {
            ServerEvent::Error {
                code, client_ref, ..
            } => {
                assert_eq!(code, "not_your_message");
                assert_eq!(
                    client_ref.as_deref(),
                    Some("d1"),
                    "the refusal names the event"
                );
                break;
            }
            ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
            other => panic!("expected an error, got {other:?}"),
        }
    }
    bob.send(ClientEvent::Delete {
        room: general(),
        id: MessageId(424242),
        client_ref: None,
    })
    .await;
    assert_error(&mut bob, "no_such_message").await;
    assert_eq!(common::general_history(&server).len(), 1);

    ada.send(ClientEvent::Delete {
        room: general(),
        id: message.id,
        client_ref: None,
    })
    .await;
    for client in [&mut ada, &mut bob] {
        loop {
            match client.next().await {
                ServerEvent::Hub(HubEvent::MessageDeleted { id, .. }) => {
                    assert_eq!(id, message.id);
                    break;
                }
                ServerEvent::Ack { .. } | ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
                other => panic!("expected message_deleted, got {other:?}"),
            }
        }
    }
    assert!(common::general_history(&server).is_empty());
}

/// A private conversation reaches both participants and nobody else; a third user who names
/// it can neither join it, post in it, nor read its history.
#[tokio::test]
async fn private_conversations_are_private() {
    let server = start().await;
    let mut ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    let mut eve = Client::joined(&server, "Eve").await;
    let direct = Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap());

    ada.post(&direct, "just between us").await;
    for client in [&mut ada, &mut bob] {
        let got = client.next_message().await;
        assert_eq!(got.body.as_str(), "just between us");
    }
    eve.send(ClientEvent::Join {
        room: direct.clone(),
        since: None,
        client_ref: None,
    })
    .await;
    assert_error(&mut eve, "forbidden").await;
    eve.post(&direct, "let me in").await;
    assert_error(&mut eve, "forbidden").await;
    // Eve's own conversation with Ada is a different, empty one.
    let page = server.hub.direct_page(&eve.token(), ada.id()).unwrap();
    assert!(page.messages.is_empty());
    // Bob can read it.
    let page = server.hub.direct_page(&bob.token(), ada.id()).unwrap();
    assert_eq!(page.messages.len(), 1);
    // Nothing of it ever reached Eve.
    eve.post(&general(), "anyone?").await;
    let seen = eve.next_message().await;
    assert_eq!(seen.body.as_str(), "anyone?");
}

/// Renaming is seen live by others, on messages already posted too; a taken name is refused.
#[tokio::test]
async fn renames_are_seen_live() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    ada.post(&general(), "hi").await;
    bob.next_message().await;
    ada.send(ClientEvent::Rename {
        name: "bob".into(),
        client_ref: None,
    })
    .await;
    loop {
        match ada.next().await {
            ServerEvent::Error { code, .. } => {
                assert_eq!(code, "display_name_taken");
                break;
            }
            _ => continue,
        }
    }
    ada.send(ClientEvent::Rename {
        name: "Countess".into(),
        client_ref: None,
    })
    .await;
    loop {
        match bob.next().await {
            ServerEvent::Hub(HubEvent::UserRenamed { user }) => {
                assert_eq!(user.id, ada.id());
                assert_eq!(user.name.as_str(), "Countess");
                break;
            }
            _ => continue,
        }
    }
    let page = server.hub.channel_page("general").unwrap();
    assert_eq!(page.messages[0].author.name.as_str(), "Countess");
}

/// Presence: others see a user arrive in a channel and leave when their socket closes, in
/// `presence` deltas (who came, who went).
#[tokio::test]
async fn presence_changes_are_announced() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let bob = Client::joined(&server, "Bob").await;
    let bob_id = bob.id();
    // Ada's own arrival and Bob's come in one delta or two, depending on the tick.
    let mut came = Vec::new();
    while !(came.contains(&ada.id()) && came.contains(&bob_id)) {
        match ada.next().await {
            ServerEvent::Hub(HubEvent::Presence {
                came: now, went, ..
            }) => {
                assert!(went.is_empty(), "{went:?}");
                came.extend(now.iter().map(|u| u.id));
            }
            other => panic!("expected presence, got {other:?}"),
        }
    }
    bob.close().await;
    let departure = ada.next().await;
    assert!(
        matches!(&departure, ServerEvent::Hub(HubEvent::Presence { came, went, .. })
            if came.is_empty() && went.len() == 1 && went[0].id == bob_id),
        "{departure:?}"
    );
}

/// Frames that are not valid events get a `malformed` or `binary_frame` error, and the
/// connection keeps working.
#[tokio::test]
async fn malformed_frames_are_refused_without_harm() {
    let server = start().await;
    let mut client = Client::connect(&server).await;
    for bad in [
        "not json",
        "{}",
        r#"{"type":"fly"}"#,
        r#"{"type":"send","room":1}"#,
        r#"{"type":"join","room":{"direct":[5,5]}}"#,
    ] {
        client.send_raw(WsMessage::text(bad)).await;
        assert_error(&mut client, "malformed").await;
    }
    client.send_raw(WsMessage::binary(vec![1u8, 2, 3])).await;
    assert_error(&mut client, "binary_frame").await;
    let session = server
        .hub
        .register("still-here")
        .unwrap()
        .stored()
        .await
        .expect("stored");
    client.auth(&session.token).await;
}

/// A client that keeps sending garbage is disconnected with a policy-violation close.
#[tokio::test]
async fn garbage_floods_are_disconnected() {
    let server = start().await;
    let mut client = Client::connect(&server).await;
    for _ in 0..10 {
        client.send_raw(WsMessage::text("garbage")).await;
    }
    let mut errors = 0;
    loop {
        match client.next_raw().await {
            Some(WsMessage::Text(_)) => errors += 1,
            Some(WsMessage::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1008);
                break;
            }
            Some(WsMessage::Close(None)) | None => panic!("closed without a reason"),
            Some(_) => {}
        }
    }
    assert_eq!(errors, 10);
}

/// A frame over the configured size limit ends the connection instead of being processed.
#[tokio::test]
async fn oversized_frames_are_refused() {
    let mut config = common::fast();
    config.limits.max_frame_bytes = 2048;
    let server = start_with(config).await;
    let mut client = Client::joined(&server, "big").await;
    client.post(&general(), &"y".repeat(4096)).await;
    loop {
        match client.next_raw().await {
            None | Some(WsMessage::Close(_)) => break,
            Some(WsMessage::Text(text)) => {
                let event = ServerEvent::decode(text.as_str()).unwrap();
                assert!(
                    !matches!(event, ServerEvent::Hub(HubEvent::Message { .. })),
                    "must not be posted"
                );
            }
            Some(_) => {}
        }
    }
    assert!(common::general_history(&server).is_empty());
}

/// Channels created by anyone are announced live to every connection.
#[tokio::test]
async fn channel_creation_is_announced() {
    let server = start().await;
    let mut watcher = Client::connect(&server).await;
    let session = server
        .hub
        .register("creator")
        .unwrap()
        .stored()
        .await
        .expect("stored");
    server.hub.create_channel(&session.token, "Design").unwrap();
    match watcher.next().await {
        ServerEvent::Hub(HubEvent::ChannelCreated { channel }) => {
            assert_eq!(channel.name.as_str(), "Design")
        }
        other => panic!("expected channel_created, got {other:?}"),
    }
}

/// `welcome` tells every client the limits this server was configured with, not the built-in
/// ones, so a browser refuses exactly what the server would; and the server accepts a
/// message as long as its own (raised) limit.
#[tokio::test]
async fn welcome_announces_the_configured_limits() {
    let mut config = common::fast();
    config.limits.max_message_chars = 8000;
    config.limits.max_upload_bytes = 1 << 20;
    let server = start_with(config).await;
    let mut client = Client::connect_raw(&server).await;
    match client.next().await {
        ServerEvent::Hub(HubEvent::Welcome { limits, .. }) => {
            assert_eq!(limits.max_message_chars, 8000);
            assert_eq!(limits.max_upload_bytes, 1 << 20);
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    let mut poster = Client::joined(&server, "long").await;
    poster.post(&general(), &"z".repeat(6000)).await;
    assert_eq!(poster.next_message().await.body.as_str().len(), 6000);
}

async fn assert_error(client: &mut Client, code: &str) {
    loop {
        match client.next().await {
            ServerEvent::Error {
                code: got, message, ..
            } => {
                assert_eq!(got, code, "{message}");
                assert!(!message.is_empty());
                return;
            }
            ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
            other => panic!("expected error {code}, got {other:?}"),
        }
    }
}

/// How long after it goes silent Bob, a member who stops reading (his client answers no
/// pings), is seen leaving by Ada, on a server with `config`. Time is tokio's paused clock:
/// the seconds pass without being waited for.
async fn time_until_a_silent_member_leaves(config: flack::server::config::Config) -> Duration {
    let server = start_with(config).await;
    let mut ada = Client::joined(&server, "Ada").await;
    let bob = Client::joined(&server, "Bob").await;
    let bob_id = bob.id();
    // From here the clock moves only when every task waits, straight to the next timer.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    loop {
        if let ServerEvent::Hub(HubEvent::Presence { went, .. }) = ada.next().await {
            if went.is_empty() {
                continue;
            }
            assert_eq!(went.iter().map(|u| u.id).collect::<Vec<_>>(), [bob_id]);
            break;
        }
    }
    let elapsed = started.elapsed();
    drop(bob);
    elapsed
}

/// A connection that stops answering pings is noticed as dead and dropped, and others see
/// its user leave.
#[tokio::test]
async fn dead_connections_are_noticed_by_heartbeat() {
    let mut config = common::fast();
    config.limits.heartbeat = Duration::from_secs(1);
    config.limits.dead_after = Duration::from_secs(2);
    assert!(time_until_a_silent_member_leaves(config).await < Duration::from_secs(5));
}

/// With the shipped heartbeat settings, a user whose connection is lost without a close (a
/// dropped network: nothing more arrives, not even pongs) leaves the Online list within
/// 15 s (the server drops it 10 to 12.5 s into the silence; the paused clock may run on to
/// a later timer while the news travels).
#[tokio::test]
async fn a_lost_connection_leaves_the_online_list_within_seconds() {
    let left = time_until_a_silent_member_leaves(common::fast()).await;
    assert!(left <= Duration::from_secs(15), "left after {left:?}");
}

/// A connection that answers pings but sends no event for `limits.idle_after_secs` is closed
/// as idle with code 4000, while one that keeps sending events stays open. Time is tokio's
/// paused clock: the seconds pass without being waited for.
#[tokio::test]
async fn idle_connections_are_closed() {
    let mut config = common::fast();
    config.limits.heartbeat = Duration::from_secs(1);
    config.limits.dead_after = Duration::from_secs(60);
    config.limits.idle_after = Duration::from_secs(2);
    let server = start_with(config).await;
    let mut idle = Client::joined(&server, "Idle").await;
    let mut busy = Client::joined(&server, "Busy").await;
    // From here the clock moves only when every task waits, straight to the next timer.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    // The idle client keeps reading, so its library answers every ping.
    let idle_closed = tokio::spawn(async move {
        loop {
            match idle.next_raw().await {
                Some(WsMessage::Close(Some(frame))) => return u16::from(frame.code),
                Some(WsMessage::Close(None)) | None => panic!("closed without a reason"),
                Some(_) => continue,
            }
        }
    });
    // Meanwhile the busy client sends an event twice a second for four seconds.
    while started.elapsed() < Duration::from_secs(4) {
        busy.join(&general()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let code = tokio::time::timeout(common::WAIT, idle_closed)
        .await
        .expect("the idle connection is closed")
        .expect("the idle reader finishes");
    assert_eq!(code, 4000);
    busy.post(&general(), "still here").await;
    assert_eq!(busy.next_message().await.body.as_str(), "still here");
}

/// A client that stops reading never holds up anyone else: another member receives every
/// message, in order, while the stuck one's socket is full, and once the stuck client is
/// far behind, a new message still reaches the other member at once (in well under the 10 s a
/// write to the stuck socket may block for).
#[tokio::test]
async fn a_stuck_client_does_not_delay_others() {
    let mut config = common::fast();
    config.limits.outbox_frames = 8;
    let server = start_with(config).await;
    let stuck = Client::joined(&server, "stuck").await;
    let mut fast = Client::joined(&server, "fast").await;
    let mut poster = Client::user(&server, "poster").await;
    let padding = "x".repeat(3900);
    let total = 2000u64;
    let probes = 5u64;
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut expected = 1;
        while expected <= total + probes {
            let message = fast.next_message().await;
            assert_eq!(message.seq, expected, "in order, nothing missing");
            let _ = arrived_tx.send((expected, std::time::Instant::now()));
            expected += 1;
        }
    });
    // In rounds of 50, each waiting for the reading member to have them all: it must never
    // fall a whole history window behind by its own slowness, while the stuck one takes
    // nothing at all.
    for round in 0..total / 50 {
        for i in 0..50 {
            poster
                .post(&general(), &format!("{} {padding}", round * 50 + i))
                .await;
        }
        poster.acks(50).await;
        loop {
            let (seq, _) = tokio::time::timeout(common::WAIT, arrived.recv())
                .await
                .expect("the reading member keeps receiving")
                .expect("the reader is running");
            if seq == (round + 1) * 50 {
                break;
            }
        }
    }
    // The stuck client's socket has been full for a while: time single messages now.
    for i in 0..probes {
        let sent = std::time::Instant::now();
        poster.post(&general(), &format!("probe {i}")).await;
        let (_, received) = tokio::time::timeout(common::WAIT, arrived.recv())
            .await
            .expect("the probe arrives")
            .expect("the reader is running");
        let latency = received.duration_since(sent);
        assert!(
            latency < std::time::Duration::from_secs(1),
            "probe {i} took {latency:?}"
        );
    }
    reader.await.expect("the fast client got everything");
    drop(stuck);
}

/// A member whose reader falls seconds behind while its queue still has room (the backlog
/// sits in its socket, where the outbox never sees it) stops being sent every frame: once it
/// reads again it gets what was already written, then one catch-up `joined` with the rest,
/// every message once and in order, rather than every frame with an ever-growing delay.
#[tokio::test]
async fn a_reader_seconds_behind_is_caught_up() {
    let mut config = common::fast();
    // Only its slowness can mark the reader behind: its queue never fills.
    config.limits.outbox_frames = 100_000;
    config.limits.outbox_bytes = 1 << 30;
    config.limits.behind_after = Duration::from_millis(500);
    config.limits.heartbeat = Duration::from_millis(200);
    // The stalled client answers no pings meanwhile.
    config.limits.dead_after = Duration::from_secs(60);
    let server = start_with(config).await;
    let mut slow = Client::joined(&server, "slow").await;
    let mut poster = Client::user(&server, "poster").await;
    let padding = "x".repeat(3900);
    // About 1.2 MB, more than the stalled reader's socket takes without reading.
    let (before, after) = (300u64, 50u64);
    for i in 0..before {
        poster.post(&general(), &format!("{i} {padding}")).await;
    }
    poster.acks(before as usize).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in before..before + after {
        poster.post(&general(), &format!("{i} {padding}")).await;
    }
    poster.acks(after as usize).await;
    let mut expected = 1;
    let mut catch_ups = 0;
    while expected <= before + after {
        match slow.next().await {
            ServerEvent::Hub(HubEvent::Message { message }) => {
                assert_eq!(
                    message.seq, expected,
                    "in order, nothing missing or repeated"
                );
                expected += 1;
            }
            ServerEvent::Hub(HubEvent::Joined {
                reset, messages, ..
            }) => {
                assert!(!reset, "the missed messages are all in the window");
                catch_ups += 1;
                for message in messages {
                    assert_eq!(message.seq, expected, "the catch-up continues the stream");
                    expected += 1;
                }
            }
            _ => {}
        }
    }
    assert!(
        catch_ups >= 1,
        "the reader was caught up instead of being sent every frame"
    );
    // Caught up, it is live again.
    poster.post(&general(), "live again").await;
    loop {
        if let ServerEvent::Hub(HubEvent::Message { message }) = slow.next().await {
            assert_eq!(message.seq, before + after + 1);
            break;
        }
    }
}

/// A connection that sends hundreds of joins in one go (no account needed) is read at the
/// join rate: within its first second it gets no more answers than the burst and a second's
/// allowance, while another user's messages are acknowledged at once; the flooding
/// connection is slowed, not dropped.
#[tokio::test]
async fn join_floods_are_read_at_the_join_rate() {
    let server = start().await;
    let limits = server.config.limits.clone();
    let mut bystander = Client::joined(&server, "bystander").await;
    let mut flooder = Client::connect(&server).await;
    let flood_start = std::time::Instant::now();
    for _ in 0..300 {
        flooder
            .send(ClientEvent::Join {
                room: general(),
                since: None,
                client_ref: None,
            })
            .await;
    }
    for i in 0..10 {
        let sent = std::time::Instant::now();
        bystander.post(&general(), &format!("still here {i}")).await;
        bystander.acks(1).await;
        let took = sent.elapsed();
        assert!(took < Duration::from_millis(500), "ack {i} took {took:?}");
    }
    let mut answered = 0u32;
    while let Some(event) = flooder
        .next_within(Duration::from_secs(1).saturating_sub(flood_start.elapsed()))
        .await
    {
        if matches!(event, ServerEvent::Hub(HubEvent::Joined { .. })) {
            answered += 1;
        }
    }
    let allowed = limits.join_burst + limits.joins_per_second + 1;
    assert!(
        (limits.join_burst..=allowed).contains(&answered),
        "{answered} joins answered in the first second, at most {allowed} allowed"
    );
    // Still served, at the join rate.
    assert!(matches!(
        flooder.next_within(Duration::from_secs(2)).await,
        Some(ServerEvent::Hub(HubEvent::Joined { .. }))
    ));
}

/// A post sent again under the same `client_ref` (its `ack` was lost with the connection, so
/// the browser resends it on the new one) is answered with the first message's id and
/// number, and nobody receives it twice or finds it twice in the history; another user's post
/// under the same reference is a post of its own.
#[tokio::test]
async fn a_resent_post_is_stored_once() {
    let server = start().await;
    let mut ada = Client::joined(&server, "ada").await;
    let mut bob = Client::joined(&server, "bob").await;
    let send = |body: &str| ClientEvent::Send {
        room: general(),
        body: body.into(),
        attachment: None,
        reply_to: None,
        client_ref: Some("m-1".into()),
    };
    ada.send(send("only once")).await;
    let first = bob.next_message().await;
    let token = ada.token();
    ada.close().await;

    let mut again = Client::connect(&server).await;
    again.auth(&token).await;
    again.join(&general()).await;
    again.send(send("only once")).await;
    loop {
        match again.next().await {
            ServerEvent::Ack {
                id,
                seq,
                client_ref,
            } => {
                assert_eq!((id, seq), (first.id, first.seq));
                assert_eq!(client_ref.as_deref(), Some("m-1"));
                break;
            }
            ServerEvent::Hub(HubEvent::Message { message }) => {
                panic!("the resent post was delivered again: {message:?}")
            }
            _ => {}
        }
    }
    let mut carl = Client::joined(&server, "carl").await;
    carl.send(send("carl's own")).await;
    assert_eq!(bob.next_message().await.body.as_str(), "carl's own");
    let bodies: Vec<String> = general_history(&server)
        .iter()
        .map(|m| m.body.as_str().to_owned())
        .collect();
    assert_eq!(bodies, ["only once", "carl's own"]);
}
