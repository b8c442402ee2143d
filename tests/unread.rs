//! Read positions and unread counts kept on the server (issue 17, item 3), against a real
//! server on 127.0.0.1: the summary a following connection gets, live news of other
//! channels, positions agreeing across a user's connections, hostile input refused, privacy,
//! and positions surviving a restart on SQLite and on PostgreSQL.

mod common;

use common::{channel, drop_database, fast, general, start_on, start_with, Client, TestServer};
use flack::chat::hub::Store;
use flack::chat::model::{ChatError, DirectKey, Room, RoomUnread};
use flack::chat::postgres::PostgresStore;
use flack::chat::sqlite::SqliteStore;
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a test waits to be sure that nothing more arrives.
const QUIET: Duration = Duration::from_millis(300);

/// Asks for the unread summary on an authenticated client and returns it (skipping live
/// messages of private conversations, which an authenticated connection receives).
async fn follow(client: &mut Client) -> Vec<RoomUnread> {
    client.send(ClientEvent::Unread).await;
    loop {
        match client.next().await {
            ServerEvent::Hub(HubEvent::Unread { rooms }) => return rooms,
            ServerEvent::Hub(HubEvent::Message { .. }) => continue,
            other => panic!("expected unread, got {other:?}"),
        }
    }
}

/// A new connection for a client's user, following unread counts; returns its summary.
async fn another_tab(server: &TestServer, of: &Client) -> (Client, Vec<RoomUnread>) {
    let mut tab = Client::connect(server).await;
    tab.auth(&of.token()).await;
    tab.session = of.session.clone();
    let summary = follow(&mut tab).await;
    (tab, summary)
}

/// The entry of `room` in a summary.
fn entry<'a>(rooms: &'a [RoomUnread], room: &Room) -> &'a RoomUnread {
    rooms
        .iter()
        .find(|r| r.room == *room)
        .unwrap_or_else(|| panic!("no entry for {room:?} in {rooms:?}"))
}

/// Moves the client's read position.
async fn read(client: &mut Client, room: &Room, seq: u64) {
    client
        .send(ClientEvent::Read {
            room: room.clone(),
            seq,
        })
        .await;
}

/// The next `unread` event (skipping `activity`), with its one room.
async fn next_update(client: &mut Client) -> RoomUnread {
    loop {
        match client.next().await {
            ServerEvent::Hub(HubEvent::Unread { mut rooms }) if rooms.len() == 1 => {
                return rooms.remove(0)
            }
            ServerEvent::Hub(HubEvent::Activity { .. }) => continue,
            other => panic!("expected an unread update, got {other:?}"),
        }
    }
}

/// The next event, which must be an error; returns its code.
async fn next_error(client: &mut Client) -> String {
    match client.next().await {
        ServerEvent::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Posts `bodies` to `room` and waits for their acknowledgements.
async fn post_all(client: &mut Client, room: &Room, bodies: &[&str]) {
    for body in bodies {
        client.post(room, body).await;
    }
    client.acks(bodies.len()).await;
}

/// The summary counts messages by others after the read position, and mentions of the
/// reader's current name in any case; a connection that follows hears of new messages in
/// channels it has not joined (with whether they mention it), and nothing of its own.
#[tokio::test]
async fn summaries_and_activity_count_unread_and_mentions() {
    let server = start_with(fast()).await;
    let mut ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    post_all(&mut bob, &general(), &["hello", "hi @ADA!", "bye"]).await;
    post_all(&mut ada, &general(), &["mine, @ada"]).await;

    let summary = follow(&mut ada).await;
    let general_entry = entry(&summary, &general());
    assert_eq!(
        (general_entry.read, general_entry.last_seq),
        (0, 4),
        "never read"
    );
    assert_eq!((general_entry.unread, general_entry.mentions), (3, 1));

    bob.post(&general(), "@ada look").await;
    match ada.next().await {
        ServerEvent::Hub(HubEvent::Activity { room, seq, mention }) => {
            assert_eq!((room, seq, mention), (general(), 5, true));
        }
        other => panic!("expected activity, got {other:?}"),
    }
    bob.post(&general(), "@adam is someone else").await;
    match ada.next().await {
        ServerEvent::Hub(HubEvent::Activity { mention, .. }) => assert!(!mention),
        other => panic!("expected activity, got {other:?}"),
    }
    // Nobody hears of their own messages, and a joined channel's messages come as messages.
    ada.join(&general()).await;
    bob.post(&general(), "in the room").await;
    loop {
        match ada.next().await {
            ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
            ServerEvent::Hub(HubEvent::Message { .. }) => break,
            other => panic!("expected the message, got {other:?}"),
        }
    }
    let mut bob_follows = Client::connect(&server).await;
    bob_follows.auth(&bob.token()).await;
    follow(&mut bob_follows).await;
    bob.post(&general(), "again").await;
    assert!(bob_follows.next_within(QUIET).await.is_none());
}

/// A read position moved on one connection reaches every connection of that user that
/// follows unread counts, with the counts after it, and a new connection's summary starts
/// from it: two tabs agree.
#[tokio::test]
async fn read_positions_agree_across_connections() {
    let server = start_with(fast()).await;
    let mut ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    follow(&mut ada).await;
    let (mut tab, _) = another_tab(&server, &ada).await;
    post_all(&mut bob, &general(), &["one", "@ada two", "three"]).await;

    read(&mut ada, &general(), 2).await;
    for client in [&mut ada, &mut tab] {
        let update = next_update(client).await;
        assert_eq!(update.room, general());
        assert_eq!(
            (update.read, update.last_seq, update.unread, update.mentions),
            (2, 3, 1, 0)
        );
    }
    // Going back changes nothing and says nothing.
    read(&mut tab, &general(), 1).await;
    assert!(tab.next_within(QUIET).await.is_none());
    let (_third, summary) = another_tab(&server, &ada).await;
    let now = entry(&summary, &general());
    assert_eq!((now.read, now.unread), (2, 1));
}

/// Hostile reads are refused with a clear error and change nothing: before
/// authenticating, beyond the newest message, in a channel that does not exist, in
/// another pair's private conversation, with a malformed position; and a flood of reads
/// is limited per user.
#[tokio::test]
async fn hostile_reads_are_refused_and_limited() {
    let server = start_with(fast()).await;
    let mut ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    let carol = Client::user(&server, "Carol").await;
    let messages: Vec<String> = (1..=60).map(|n| format!("m{n}")).collect();
    let bodies: Vec<&str> = messages.iter().map(String::as_str).collect();
    post_all(&mut bob, &general(), &bodies).await;

    let mut anonymous = Client::connect(&server).await;
    read(&mut anonymous, &general(), 1).await;
    assert_eq!(next_error(&mut anonymous).await, "not_identified");
    anonymous.send(ClientEvent::Unread).await;
    assert_eq!(next_error(&mut anonymous).await, "not_identified");

    read(&mut ada, &general(), 61).await;
    assert_eq!(next_error(&mut ada).await, "no_such_message");
    read(&mut ada, &channel("nowhere"), 1).await;
    assert_eq!(next_error(&mut ada).await, "no_such_channel");
    let theirs = Room::Direct(DirectKey::between(bob.id(), carol.id()).unwrap());
    post_all(&mut bob, &theirs, &["private"]).await;
    read(&mut ada, &theirs, 1).await;
    assert_eq!(next_error(&mut ada).await, "forbidden");
    ada.send_raw(WsMessage::text(
        r#"{"type":"read","room":{"channel":"general"},"seq":-1}"#,
    ))
    .await;
    assert_eq!(next_error(&mut ada).await, "malformed");

    // Each forward move counts against the allowance (20 at once, then 5 a second).
    for seq in 1..=60 {
        read(&mut ada, &general(), seq).await;
    }
    let limited = ChatError::ReadRateLimited.code();
    let mut refused = 0;
    while let Some(event) = ada.next_within(QUIET).await {
        if let ServerEvent::Error { code, .. } = event {
            assert_eq!(code, limited);
            refused += 1;
        }
    }
    assert!(refused >= 10, "only {refused} reads were refused");
    let summary = follow(&mut ada).await;
    assert!(entry(&summary, &general()).read <= 50);
}

/// A user's summary names their own private conversations and never another pair's.
#[tokio::test]
async fn summaries_show_only_ones_own_private_conversations() {
    let server = start_with(fast()).await;
    let mut ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    let mut carol = Client::user(&server, "Carol").await;
    let ada_bob = Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap());
    let bob_carol = Room::Direct(DirectKey::between(bob.id(), carol.id()).unwrap());
    post_all(&mut bob, &ada_bob, &["psst"]).await;
    post_all(&mut bob, &bob_carol, &["secret"]).await;

    let ada_summary = follow(&mut ada).await;
    assert_eq!(entry(&ada_summary, &ada_bob).unread, 1);
    assert!(ada_summary.iter().all(|r| r.room != bob_carol));
    let carol_summary = follow(&mut carol).await;
    assert!(carol_summary.iter().all(|r| r.room != ada_bob));
    // Moving one's own position in one's own conversation is fine.
    read(&mut ada, &ada_bob, 1).await;
    assert_eq!(next_update(&mut ada).await.unread, 0);
}

/// Positions are stored: after a clean restart on the same store a user's summary starts
/// from where they had read, and counts what came after.
async fn positions_survive_a_restart(open: impl Fn() -> Arc<dyn Store>) {
    let store = open();
    let server = start_on(fast(), {
        let store = store.clone();
        move |_| store
    })
    .await;
    let mut ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    post_all(&mut bob, &general(), &["one", "two", "@ada three"]).await;
    follow(&mut ada).await;
    read(&mut ada, &general(), 2).await;
    assert_eq!(next_update(&mut ada).await.read, 2);
    // The move is handed to the store before the update goes out; wait until it is written.
    store.barrier().wait().await.expect("stored");
    let token = ada.token();
    drop((ada, bob));
    store.close();
    drop(server);

    let again = start_on(fast(), move |_| open()).await;
    let mut ada = Client::connect(&again).await;
    ada.auth(&token).await;
    let summary = follow(&mut ada).await;
    let now = entry(&summary, &general());
    assert_eq!(
        (now.read, now.last_seq, now.unread, now.mentions),
        (2, 3, 1, 1)
    );
}

/// On SQLite.
#[tokio::test]
async fn positions_survive_a_restart_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("flack-unread-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("flack.db");
    positions_survive_a_restart(move || {
        Arc::new(SqliteStore::open(&path, 100).expect("opens")) as Arc<dyn Store>
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// On PostgreSQL (a database of the test's own, created by the store and dropped after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_survive_a_restart_on_postgres() {
    let name = format!("flack_test_{}_unread", std::process::id());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    drop_database(&name).await;
    positions_survive_a_restart(move || {
        Arc::new(PostgresStore::open(&url, 100).expect("PostgreSQL at 127.0.0.1:5432"))
            as Arc<dyn Store>
    })
    .await;
    drop_database(&name).await;
}
