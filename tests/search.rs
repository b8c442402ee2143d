//! Message search (issue 17, item 6), against a real server on 127.0.0.1 with the SQLite
//! store: results are newest first with room, author and date; another pair's private
//! conversation is never found, whatever a hostile client asks; deleted messages are never
//! found; query syntax and nonsense in the text are answered plainly (never 500); searches
//! are rate-limited; the in-memory mode searches what it holds and says so.

mod common;

use common::{channel, fast, form_value, http, start_on, start_with, Client, TestServer};
use flack::chat::hub::Store;
use flack::chat::model::{DirectKey, MessageId, Room, SearchPage};
use flack::chat::sqlite::SqliteStore;
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use std::sync::Arc;

/// A server on a fresh SQLite file of the test's own.
async fn sqlite_server(name: &str) -> TestServer {
    let dir = std::env::temp_dir().join(format!("flack-search-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(SqliteStore::open(&dir.join("flack.db"), 100).expect("opens"));
    start_on(fast(), move |_| store as Arc<dyn Store>).await
}

/// The raw answer to a search for `query` with `token`.
async fn ask(server: &TestServer, token: &str, query: &str) -> common::HttpResponse {
    let form = format!("token={}&query={}", form_value(token), form_value(query));
    http(server, "POST", "/api/search", Some(&form)).await
}

/// The results of a search that must succeed.
async fn search(server: &TestServer, token: &str, query: &str) -> SearchPage {
    let response = ask(server, token, query).await;
    assert_eq!(response.status, 200, "{query:?}: {}", response.body);
    serde_json::from_str(&response.body).expect("a search page")
}

/// The texts of the results, newest first.
fn texts(page: &SearchPage) -> Vec<&str> {
    page.hits.iter().map(|h| h.message.body.as_str()).collect()
}

/// The token of a new user (each user has an allowance of searches; a test making many
/// searches spreads them over several users).
async fn fresh_token(server: &TestServer) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let session = server
        .hub
        .register(&format!("Searcher {n}"))
        .expect("registers");
    session.stored().await.expect("stored").token
}

/// Posts `body` to `room` and returns the new message's id once acknowledged.
async fn post(client: &mut Client, room: &Room, body: &str) -> MessageId {
    client.post(room, body).await;
    loop {
        if let ServerEvent::Ack { id, .. } = client.next().await {
            return id;
        }
    }
}

/// Results come newest first, each with its room's title, its author's current name and its
/// date, and only messages holding every word.
#[tokio::test]
async fn results_are_newest_first_with_room_author_and_date() {
    let server = sqlite_server("order").await;
    let mut ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    server.hub.create_channel(&ada.token(), "design").unwrap();
    post(&mut ada, &channel("general"), "The launch is on Friday").await;
    post(&mut bob, &channel("design"), "launch plan, draft").await;
    post(&mut bob, &channel("design"), "lunch plan").await;
    let page = search(&server, &ada.token(), "LAUNCH").await;
    assert_eq!(
        texts(&page),
        vec!["launch plan, draft", "The launch is on Friday"]
    );
    assert_eq!(page.hits[0].title, "design");
    assert_eq!(page.hits[0].message.author.name.as_str(), "Bob");
    assert_eq!(page.hits[1].title, "general");
    assert!(page.hits[1].message.sent_at <= page.hits[0].message.sent_at);
    assert!(page.whole_history);
    assert_eq!(page.more, None);
    assert_eq!(
        texts(&search(&server, &ada.token(), "plan launch").await),
        vec!["launch plan, draft"]
    );
}

/// A private conversation's words are found by its two participants only: a third user,
/// whatever words or names they try, finds nothing of it, and a forged token is refused.
#[tokio::test]
async fn another_pairs_private_words_are_never_found() {
    let server = sqlite_server("privacy").await;
    let mut ada = Client::user(&server, "Ada").await;
    let bob = Client::user(&server, "Bob").await;
    let eve = Client::user(&server, "Eve").await;
    let pair = Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap());
    post(&mut ada, &pair, "the rendezvous is at noon").await;
    post(&mut ada, &channel("general"), "public noon news").await;

    let adas = search(&server, &ada.token(), "rendezvous").await;
    assert_eq!(texts(&adas), vec!["the rendezvous is at noon"]);
    assert_eq!(
        adas.hits[0].title, "Bob",
        "named after the other participant"
    );
    let bobs = search(&server, &bob.token(), "rendezvous noon").await;
    assert_eq!(bobs.hits[0].title, "Ada");

    for guess in [
        "rendezvous",
        "noon",
        "Ada Bob rendezvous",
        "d:1:2 rendezvous",
        "direct rendezvous",
        "rendezvous*",
        "\"rendezvous\"",
        "rendezvous OR noon",
    ] {
        let response = ask(&server, &eve.token(), guess).await;
        assert!(
            !response.body.contains("rendezvous is at"),
            "{guess:?} leaked: {}",
            response.body
        );
    }
    assert_eq!(
        texts(&search(&server, &eve.token(), "noon").await),
        vec!["public noon news"]
    );
    let forged = ask(&server, "not-a-token", "rendezvous").await;
    assert_eq!(forged.status, 401, "{}", forged.body);
    assert!(!forged.body.contains("rendezvous is at"));
    let without = http(&server, "POST", "/api/search", Some("query=rendezvous")).await;
    assert_ne!(without.status, 200, "{}", without.body);
    assert!(!without.body.contains("rendezvous is at"));
}

/// A deleted message is never found, even before the store has committed its deletion.
#[tokio::test]
async fn deleted_messages_are_never_found() {
    let server = sqlite_server("deleted").await;
    let mut ada = Client::joined(&server, "Ada").await;
    let gone = post(&mut ada, &channel("general"), "ephemeral words").await;
    post(&mut ada, &channel("general"), "lasting words").await;
    ada.send(ClientEvent::Delete {
        room: channel("general"),
        id: gone,
        client_ref: None,
    })
    .await;
    let found = search(&server, &ada.token(), "words").await;
    assert_eq!(texts(&found), vec!["lasting words"]);
    while !matches!(
        ada.next().await,
        ServerEvent::Hub(HubEvent::MessageDeleted { .. })
    ) {}
    assert!(search(&server, &ada.token(), "ephemeral")
        .await
        .hits
        .is_empty());
}

/// Query syntax, quotes, stars, brackets, control characters and huge texts are answered
/// plainly: results for what has words, 400 `search_empty` for what has none, never 500.
#[tokio::test]
async fn hostile_search_text_is_answered_plainly() {
    let server = sqlite_server("hostile").await;
    let mut ada = Client::user(&server, "Ada").await;
    post(&mut ada, &channel("general"), "AND the NEAR gate").await;
    for text in [
        "AND (",
        "\"and",
        "near(gate, 2)",
        "gate*",
        "col:gate",
        "^gate",
        "NOT gate",
        "gate\u{0}",
        "'; DROP TABLE archive; --",
    ] {
        let response = ask(&server, &fresh_token(&server).await, text).await;
        assert_eq!(response.status, 200, "{text:?}: {}", response.body);
    }
    let token = fresh_token(&server).await;
    assert_eq!(
        texts(&search(&server, &token, "AND (").await),
        vec!["AND the NEAR gate"]
    );
    for text in ["\"", "*", "( ) - ^ :", "", "   "] {
        let response = ask(&server, &token, text).await;
        assert_eq!(response.status, 400, "{text:?}: {}", response.body);
        assert!(response.body.contains("search_empty"), "{}", response.body);
    }
    let huge = "gate ".repeat(20_000);
    let response = ask(&server, &token, &huge).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

/// More results than a page come a page at a time, through the `more` cursor.
#[tokio::test]
async fn results_page_back_through_the_cursor() {
    let server = sqlite_server("pages").await;
    let mut ada = Client::user(&server, "Ada").await;
    for n in 1..=60 {
        ada.post(&channel("general"), &format!("note {n}")).await;
    }
    ada.acks(60).await;
    let first = search(&server, &ada.token(), "note").await;
    assert_eq!(first.hits.len(), 50);
    assert_eq!(first.hits[0].message.body.as_str(), "note 60");
    let cursor = first.more.expect("more to come");
    let form = format!("token={}&query=note&before={}", ada.token(), cursor.0);
    let next = http(&server, "POST", "/api/search", Some(&form)).await;
    assert_eq!(next.status, 200, "{}", next.body);
    let next: SearchPage = serde_json::from_str(&next.body).unwrap();
    assert_eq!(next.hits.len(), 10);
    assert_eq!(next.hits[0].message.body.as_str(), "note 10");
    assert_eq!(next.more, None);
}

/// A user searching faster than their allowance is refused with 429 for a while.
#[tokio::test]
async fn searches_are_rate_limited() {
    let server = sqlite_server("rate").await;
    let ada = Client::user(&server, "Ada").await;
    let mut refused = None;
    for _ in 0..30 {
        let response = ask(&server, &ada.token(), "anything").await;
        if response.status != 200 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("refused within 30 searches in a row");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.body.contains("search_rate_limited"),
        "{}",
        refused.body
    );
}

/// Without a store (the in-memory mode) the messages held in memory are searched, with the
/// same privacy, and the answer says only recent messages were searched.
#[tokio::test]
async fn memory_mode_searches_what_it_holds_and_says_so() {
    let server = start_with(fast()).await;
    let mut ada = Client::user(&server, "Ada").await;
    let bob = Client::user(&server, "Bob").await;
    let eve = Client::user(&server, "Eve").await;
    let pair = Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap());
    post(&mut ada, &pair, "private memo").await;
    post(&mut ada, &channel("general"), "public memo").await;
    let adas = search(&server, &ada.token(), "memo").await;
    assert_eq!(texts(&adas), vec!["public memo", "private memo"]);
    assert!(!adas.whole_history);
    assert_eq!(
        texts(&search(&server, &eve.token(), "memo").await),
        vec!["public memo"]
    );
}

/// A message is found as soon as it has been delivered, before its sender's `ack`: the
/// store commits at most every 50 ms, and a search waits for what was delivered before it.
#[tokio::test]
async fn a_message_is_found_as_soon_as_it_is_delivered() {
    let server = sqlite_server("fresh").await;
    let mut ada = Client::joined(&server, "Ada").await;
    let room = channel("general");
    let token = fresh_token(&server).await;
    for i in 0..5 {
        let body = format!("justsent{i} now");
        ada.post(&room, &body).await;
        // Delivered to its sender (as to everyone in the room): the search must find it.
        loop {
            if let ServerEvent::Hub(HubEvent::Message { message }) = ada.next().await {
                assert_eq!(message.body.as_str(), body);
                break;
            }
        }
        let page = search(&server, &token, &format!("justsent{i}")).await;
        assert_eq!(texts(&page), [body.as_str()], "found at once");
    }
}
