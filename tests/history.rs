//! History that lasts (issue 17, item 1), against a real server on 127.0.0.1: the "before"
//! history calls page back through the store's archive to the room's beginning, private
//! conversations' older pages are for their participants only, and `data.retain_messages`
//! cuts the archive (saying so), with 100 keeping exactly the window of before.

mod common;

use common::{channel, fast, http, start_on, start_with, Client, TestServer};
use flack::chat::hub::Store;
use flack::chat::model::{DirectKey, HistoryPage, HistoryTop, OlderPage, Room};
use flack::chat::sqlite::SqliteStore;
use flack::chat::store::Retention;
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fresh SQLite file for one test.
fn fresh_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flack-history-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("flack.db")
}

/// A server on the SQLite file at `path`, keeping `retention`; also returns the store, so a
/// test can stop it cleanly before starting another server on the same file.
async fn server_on(path: &Path, retention: Retention) -> (TestServer, Arc<SqliteStore>) {
    let mut config = fast();
    config.data.retain_messages = retention;
    let store = Arc::new(SqliteStore::open_keeping(path, 100, retention).expect("opens"));
    let handle = store.clone();
    let server = start_on(config, move |_| store as Arc<dyn Store>).await;
    (server, handle)
}

/// Posts messages "m1" to "m{count}" to `room`, waiting for every acknowledgement (in
/// batches, so no outbox overflows).
async fn post_many(client: &mut Client, room: &Room, count: u64) {
    let mut seq = 1;
    while seq <= count {
        let batch = (count - seq + 1).min(50);
        for n in seq..seq + batch {
            client.post(room, &format!("m{n}")).await;
        }
        client.acks(batch as usize).await;
        seq += batch;
    }
}

/// The channel's page, as the page load's server function returns it.
async fn page(server: &TestServer, channel: &str) -> HistoryPage {
    let response = http(
        server,
        "POST",
        "/api/history",
        Some(&format!("channel={channel}")),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("a history page")
}

/// A channel's messages before `before`, through the server function.
async fn before(server: &TestServer, channel: &str, before: u64) -> OlderPage {
    let response = http(
        server,
        "POST",
        "/api/history_before",
        Some(&format!("channel={channel}&before={before}")),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("an older page")
}

fn seqs(messages: &[flack::chat::model::Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// A room of 250 messages opens on its newest 100; "before" calls then page back 100 at a
/// time, oldest first, with the authors' current names, to "the beginning".
#[tokio::test]
async fn older_pages_come_from_the_store_back_to_the_beginning() {
    let path = fresh_db("pages");
    let (server, _store) = server_on(&path, Retention::All).await;
    let mut ada = Client::user(&server, "Ada").await;
    post_many(&mut ada, &channel("general"), 250).await;
    ada.send(ClientEvent::Rename {
        name: "Ada Lovelace".into(),
        client_ref: None,
    })
    .await;
    while !matches!(
        ada.next().await,
        ServerEvent::Hub(HubEvent::UserRenamed { .. })
    ) {}

    let first = page(&server, "general").await;
    assert_eq!(seqs(&first.messages), (151..=250).collect::<Vec<_>>());
    assert_eq!(first.top, HistoryTop::More);
    let older = before(&server, "GENERAL", 151).await;
    assert_eq!(seqs(&older.messages), (51..=150).collect::<Vec<_>>());
    assert_eq!(older.top, HistoryTop::More);
    assert!(older
        .messages
        .iter()
        .all(|m| m.author.name.as_str() == "Ada Lovelace"));
    let oldest = before(&server, "general", 51).await;
    assert_eq!(seqs(&oldest.messages), (1..=50).collect::<Vec<_>>());
    assert_eq!(oldest.messages[0].body.as_str(), "m1");
    assert_eq!(oldest.top, HistoryTop::Beginning);

    let missing = http(
        &server,
        "POST",
        "/api/history_before",
        Some("channel=nowhere&before=10"),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
}

/// Older pages of a private conversation are served only to its two participants: anyone
/// else asking about one of them gets their own (empty) conversation, and a forged token is
/// refused.
#[tokio::test]
async fn private_older_pages_are_for_participants_only() {
    let path = fresh_db("private");
    let (server, _store) = server_on(&path, Retention::All).await;
    let ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    let eve = Client::user(&server, "Eve").await;
    let direct = Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap());
    post_many(&mut bob, &direct, 150).await;
    let ask = |token: String, before: u64| {
        let form = format!("token={token}&peer={}&before={before}", bob.id());
        let server = &server;
        async move { http(server, "POST", "/api/direct_history_before", Some(&form)).await }
    };
    let adas = ask(ada.token(), 51).await;
    assert_eq!(adas.status, 200, "{}", adas.body);
    let adas: OlderPage = serde_json::from_str(&adas.body).unwrap();
    assert_eq!(seqs(&adas.messages), (1..=50).collect::<Vec<_>>());
    assert_eq!(adas.top, HistoryTop::Beginning);
    let eves = ask(eve.token(), 51).await;
    assert_eq!(eves.status, 200, "{}", eves.body);
    let eves: OlderPage = serde_json::from_str(&eves.body).unwrap();
    assert!(
        eves.messages.is_empty(),
        "Eve sees only her own conversation"
    );
    let forged = ask("nope".into(), 51).await;
    assert_eq!(forged.status, 401, "{}", forged.body);
    assert!(!forged.body.contains("m1"));
}

/// A number of messages kept cuts the archive: the page before the cut ends there and says
/// older messages are not kept.
#[tokio::test]
async fn a_retention_cuts_older_messages_and_says_so() {
    let path = fresh_db("retention");
    let (server, _store) = server_on(&path, Retention::Newest(150)).await;
    let mut ada = Client::user(&server, "Ada").await;
    post_many(&mut ada, &channel("general"), 250).await;
    let older = before(&server, "general", 151).await;
    assert_eq!(seqs(&older.messages), (101..=150).collect::<Vec<_>>());
    assert_eq!(older.top, HistoryTop::NotKept);
}

/// `data.retain_messages = 100` is the behaviour from before the archive: the room shows its
/// newest 100, before and after a restart, and nothing older is kept.
#[tokio::test]
async fn keeping_a_hundred_is_todays_behaviour() {
    let path = fresh_db("hundred");
    let (server, store) = server_on(&path, Retention::Newest(100)).await;
    let mut ada = Client::user(&server, "Ada").await;
    post_many(&mut ada, &channel("general"), 250).await;
    let shown = page(&server, "general").await;
    assert_eq!(seqs(&shown.messages), (151..=250).collect::<Vec<_>>());
    let older = before(&server, "general", 151).await;
    assert!(older.messages.is_empty());
    assert_eq!(older.top, HistoryTop::NotKept);
    store.close();

    let (again, _store) = server_on(&path, Retention::Newest(100)).await;
    let reloaded = page(&again, "general").await;
    assert_eq!(reloaded.messages, shown.messages);
    let older = before(&again, "general", 151).await;
    assert!(older.messages.is_empty());
    assert_eq!(older.top, HistoryTop::NotKept);
}

/// With `all` (the default), every message is still there after a restart, page by page.
#[tokio::test]
async fn everything_is_kept_across_a_restart() {
    let path = fresh_db("restart");
    let (server, store) = server_on(&path, Retention::All).await;
    let mut ada = Client::user(&server, "Ada").await;
    post_many(&mut ada, &channel("general"), 250).await;
    store.close();

    let (again, _store) = server_on(&path, Retention::All).await;
    let first = page(&again, "general").await;
    assert_eq!(seqs(&first.messages), (151..=250).collect::<Vec<_>>());
    let mut held = seqs(&first.messages);
    let mut top = first.top;
    while top == HistoryTop::More {
        let older = before(&again, "general", held[0]).await;
        held.splice(0..0, seqs(&older.messages));
        top = older.top;
    }
    assert_eq!(top, HistoryTop::Beginning);
    assert_eq!(held, (1..=250).collect::<Vec<_>>());
}

/// The in-memory mode keeps its 100 and says so at the top; a room that never reached 100
/// messages starts at its beginning.
#[tokio::test]
async fn memory_mode_keeps_its_hundred_and_says_so() {
    let server = start_with(fast()).await;
    let mut ada = Client::user(&server, "Ada").await;
    post_many(&mut ada, &channel("general"), 150).await;
    let shown = page(&server, "general").await;
    assert_eq!(shown.messages.len(), 100);
    assert_eq!(shown.top, HistoryTop::NotKept);
    let older = before(&server, "general", 51).await;
    assert!(older.messages.is_empty());
    assert_eq!(older.top, HistoryTop::NotKept);

    server.hub.create_channel(&ada.token(), "quiet").unwrap();
    post_many(&mut ada, &channel("quiet"), 5).await;
    assert_eq!(page(&server, "quiet").await.top, HistoryTop::Beginning);
}
