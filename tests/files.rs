//! Integration tests of file attachments against the real router: uploads, limits, safe
//! serving, private files, cleanup when messages go, and files of archived messages (on
//! SQLite and on PostgreSQL) that keep working until retention or their author lets go.

mod common;

use common::{download, general, request, start, start_in, start_with, Client, TestServer};
use flack::chat::hub::Store;
use flack::chat::model::{Attachment, ChatError, DirectKey, Room};
use flack::chat::postgres::PostgresStore;
use flack::chat::sqlite::SqliteStore;
use flack::chat::store::Retention;
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn upload(
    server: &TestServer,
    token: Option<&str>,
    query: &str,
    name: &str,
    bytes: &[u8],
) -> common::HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("X-File-Name", name),
        ("Content-Type", "application/octet-stream"),
    ];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    request(server, "POST", &format!("/files?{query}"), &headers, bytes).await
}

fn stored_files(server: &TestServer) -> usize {
    std::fs::read_dir(server.config.data.dir.join("files"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// The number of stored files once pending deletions have run: files are deleted from disk
/// off the async threads, a moment after the hub forgets them. Waits up to two seconds for
/// the count to reach `expected`, then returns it as it is.
async fn stored_files_settled(server: &TestServer, expected: usize) -> usize {
    for _ in 0..100 {
        if stored_files(server) == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stored_files(server)
}

async fn send_with(client: &mut Client, room: &Room, body: &str, attachment: &Attachment) {
    client
        .send(ClientEvent::Send {
            room: room.clone(),
            body: body.into(),
            attachment: Some(attachment.id.clone()),
            reply_to: None,
            client_ref: None,
        })
        .await;
}

/// An image is recognised by its content, attached to a message, and served inline with its
/// type and `nosniff`.
#[tokio::test]
async fn images_are_recognised_and_served_inline() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let up = upload(
        &server,
        Some(&ada.token()),
        "channel=general",
        "cat.txt",
        PNG,
    )
    .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let attachment: Attachment = serde_json::from_str(&up.body).unwrap();
    assert!(
        attachment.image,
        "sniffed from the bytes, not the .txt name"
    );
    assert_eq!(attachment.content_type, "image/png");
    assert_eq!(attachment.size, PNG.len() as u64);

    send_with(&mut ada, &general(), "", &attachment).await;
    let message = ada.next_message().await;
    assert_eq!(message.attachment.as_ref(), Some(&attachment));

    let got = request(&server, "GET", &attachment.url(), &[], b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(
        got.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(got.header("content-disposition").as_deref(), Some("inline"));
}

/// Anything that is not an image is served as an opaque download, even if it looks like HTML.
#[tokio::test]
async fn other_files_are_downloads() {
    let server = start().await;
    let ada = Client::joined(&server, "Ada").await;
    let up = upload(
        &server,
        Some(&ada.token()),
        "channel=general",
        "page.html",
        b"<html><script>alert(1)</script></html>",
    )
    .await;
    let attachment: Attachment = serde_json::from_str(&up.body).unwrap();
    assert!(!attachment.image);
    let got = request(&server, "GET", &attachment.url(), &[], b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        got.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        got.header("content-disposition").as_deref(),
        Some("attachment; filename*=UTF-8''page.html")
    );
}

/// Empty files, files over the limit, bad names, and missing or wrong tokens are refused with
/// a clear error, and nothing is stored.
#[tokio::test]
async fn bad_uploads_store_nothing() {
    let mut config = common::fast();
    config.limits.max_upload_bytes = 1024;
    let server = start_with(config).await;
    let ada = Client::joined(&server, "Ada").await;
    let token = ada.token();
    /// token, query, file name, content, expected status, expected error code
    type Case<'a> = (Option<&'a str>, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: [Case; 6] = [
        (
            Some(&token),
            "channel=general",
            "empty.txt",
            vec![],
            400,
            "file_empty",
        ),
        (
            Some(&token),
            "channel=general",
            "big.bin",
            vec![7; 2048],
            413,
            "file_too_large",
        ),
        (
            Some(&token),
            "channel=general",
            "..%2Fetc%2Fpasswd",
            vec![1],
            400,
            "file_name_invalid",
        ),
        (
            None,
            "channel=general",
            "a.txt",
            vec![1],
            401,
            "unauthorized",
        ),
        (
            Some("forged"),
            "channel=general",
            "a.txt",
            vec![1],
            401,
            "unauthorized",
        ),
        (
            Some(&token),
            "channel=nowhere",
            "a.txt",
            vec![1],
            404,
            "no_such_channel",
        ),
    ];
    for (token, query, name, bytes, status, code) in cases {
        let got = upload(&server, token, query, name, &bytes).await;
        assert_eq!(got.status, status, "{name}: {}", got.body);
        assert!(got.body.contains(code), "{name}: {}", got.body);
    }
    assert_eq!(stored_files(&server), 0);
}

/// A private conversation's file is served to its two participants only; a third user with
/// a valid token, or nobody at all, is refused.
#[tokio::test]
async fn private_files_are_private() {
    let server = start().await;
    let mut ada = Client::user(&server, "Ada").await;
    let bob = Client::user(&server, "Bob").await;
    let eve = Client::user(&server, "Eve").await;
    let direct = Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap());
    let up = upload(
        &server,
        Some(&ada.token()),
        &format!("peer={}", bob.id()),
        "plan.txt",
        b"secret",
    )
    .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let attachment: Attachment = serde_json::from_str(&up.body).unwrap();
    send_with(&mut ada, &direct, "the plan", &attachment).await;
    ada.next_message().await;

    let fetch = |token: Option<String>| {
        let (server, attachment) = (&server, &attachment);
        async move { download(server, token.as_deref(), attachment).await }
    };
    assert_eq!(fetch(Some(bob.token())).await.status, 200);
    assert_eq!(fetch(Some(ada.token())).await.status, 200);
    let eves = fetch(Some(eve.token())).await;
    assert_eq!(eves.status, 403);
    assert!(!eves.body.contains("secret"));
    assert_eq!(fetch(None).await.status, 401);
    // The cookie works like the header, for <img> tags.
    let cookie = format!("flack_token={}", eve.token());
    let by_cookie = request(
        &server,
        "GET",
        &attachment.url(),
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(by_cookie.status, 403);
}

/// Only the uploader can attach a file, only in the room it was uploaded for, and only once.
#[tokio::test]
async fn attachments_belong_to_their_uploader() {
    let server = start().await;
    let ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let up = upload(&server, Some(&ada.token()), "channel=general", "a.png", PNG).await;
    let attachment: Attachment = serde_json::from_str(&up.body).unwrap();
    send_with(&mut bob, &general(), "mine now", &attachment).await;
    loop {
        match bob.next().await {
            ServerEvent::Error { code, .. } => {
                assert_eq!(code, "no_such_file");
                break;
            }
            ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

/// In the in-memory mode, which keeps nothing beyond the window, deleting a message deletes
/// its file, and so does the message leaving the 100-message window.
#[tokio::test]
async fn files_go_with_their_messages() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut ids = Vec::new();
    for name in ["one.png", "two.png"] {
        let up = upload(&server, Some(&ada.token()), "channel=general", name, PNG).await;
        let attachment: Attachment = serde_json::from_str(&up.body).unwrap();
        send_with(&mut ada, &general(), name, &attachment).await;
        let message = ada.next_message().await;
        ids.push((message.id, attachment));
    }
    assert_eq!(stored_files(&server), 2);

    ada.send(ClientEvent::Delete {
        room: general(),
        id: ids[0].0,
        client_ref: None,
    })
    .await;
    let mut gone = false;
    for _ in 0..50 {
        if request(&server, "GET", &ids[0].1.url(), &[], b"")
            .await
            .status
            == 404
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "the deleted message's file is no longer served");
    assert_eq!(stored_files_settled(&server, 1).await, 1);

    for i in 0..100 {
        ada.post(&general(), &format!("filler {i}")).await;
    }
    ada.acks(100).await;
    assert_eq!(
        request(&server, "GET", &ids[1].1.url(), &[], b"")
            .await
            .status,
        404
    );
    assert_eq!(stored_files_settled(&server, 0).await, 0);
}

/// Uploads stop with a clear error before the disk fills: when the data directory's disk has
/// less than `limits.min_free_disk_bytes` plus one largest upload free, an upload is refused
/// with 507 `disk_full` and nothing is left on disk.
#[tokio::test]
async fn uploads_stop_when_the_disk_is_short_of_space() {
    let mut config = common::fast();
    config.limits.min_free_disk_bytes = u64::MAX / 2;
    let server = start_with(config).await;
    let ada = server
        .hub
        .register("ada")
        .expect("registers")
        .stored()
        .await
        .expect("stored");
    let refused = upload(
        &server,
        Some(&ada.token),
        "channel=general",
        "a.txt",
        b"hello",
    )
    .await;
    assert_eq!(refused.status, 507, "{}", refused.body);
    assert!(refused.body.contains("disk_full"), "{}", refused.body);
    assert_eq!(stored_files_settled(&server, 0).await, 0);
}

/// An upload past the uploader's quota of waiting files is refused with
/// `too_many_unsent_files` before its body is stored, and nothing more is kept on disk.
#[tokio::test]
async fn unsent_uploads_are_limited_per_user_over_http() {
    let mut config = common::fast();
    config.limits.unsent_files = 2;
    let server = start_with(config).await;
    let ada = server
        .hub
        .register("ada")
        .expect("registers")
        .stored()
        .await
        .expect("stored");
    for name in ["a.txt", "b.txt"] {
        let stored = upload(&server, Some(&ada.token), "channel=general", name, b"x").await;
        assert_eq!(stored.status, 200, "{}", stored.body);
    }
    let refused = upload(&server, Some(&ada.token), "channel=general", "c.txt", b"x").await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("too_many_unsent_files"),
        "{}",
        refused.body
    );
    assert_eq!(stored_files_settled(&server, 2).await, 2);
}

/// Where the durable store of an archived-files test keeps its data.
#[derive(Clone)]
enum Kept {
    /// The SQLite file at this path.
    Sqlite(PathBuf),
    /// The PostgreSQL database at this URL.
    Postgres(String),
}

impl Kept {
    fn open(&self, retention: Retention) -> Arc<dyn Store> {
        match self {
            Kept::Sqlite(path) => {
                Arc::new(SqliteStore::open_keeping(path, 100, retention).expect("opens"))
            }
            Kept::Postgres(url) => Arc::new(
                PostgresStore::open_keeping(url, 100, retention)
                    .expect("PostgreSQL at 127.0.0.1:5432"),
            ),
        }
    }
}

/// Runs `test` on a fresh SQLite file, with a fresh data folder.
async fn on_sqlite<F: std::future::Future<Output = ()>>(
    name: &str,
    test: impl FnOnce(Kept, PathBuf) -> F,
) {
    let dir = std::env::temp_dir().join(format!("flack-archived-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    test(Kept::Sqlite(dir.join("flack.db")), dir.clone()).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `test` on a fresh PostgreSQL database (made by the store, dropped after), with a
/// fresh data folder.
async fn on_postgres<F: std::future::Future<Output = ()>>(
    name: &str,
    test: impl FnOnce(Kept, PathBuf) -> F,
) {
    let database = format!("flack_test_{}_{name}", std::process::id());
    common::drop_database(&database).await;
    let dir = std::env::temp_dir().join(format!("flack-archived-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    test(Kept::Postgres(url), dir.clone()).await;
    common::drop_database(&database).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server keeping `retention` on `kept`, with its data folder `dir`; and its store, to
/// stop before another server starts in its place.
async fn archived_server(
    kept: &Kept,
    dir: &Path,
    retention: Retention,
) -> (TestServer, Arc<dyn Store>) {
    let mut config = common::fast();
    config.data.retain_messages = retention;
    let store = kept.open(retention);
    let handle = store.clone();
    let server = start_in(config, Some(dir.to_path_buf()), move |_| store).await;
    (server, handle)
}

/// Uploads `bytes` as `name` for the room `query` names.
async fn upload_ok(
    server: &TestServer,
    token: &str,
    query: &str,
    name: &str,
    bytes: &[u8],
) -> Attachment {
    let up = upload(server, Some(token), query, name, bytes).await;
    assert_eq!(up.status, 200, "{}", up.body);
    serde_json::from_str(&up.body).expect("an attachment")
}

/// Where a file's bytes are on disk.
fn on_disk(dir: &Path, attachment: &Attachment) -> PathBuf {
    dir.join("files").join(attachment.id.as_str())
}

/// Waits up to two seconds for a file's bytes to leave the disk; true if they did.
async fn leaves_the_disk(path: &Path) -> bool {
    for _ in 0..100 {
        if !path.exists() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    !path.exists()
}

/// A channel's picture and a private conversation's file, both older than their rooms'
/// windows, download as before: the picture for anyone, the private file for its two
/// participants only (a stranger is refused, nobody at all too). So after a restart, whose
/// sweep of the files folder deletes a stray file and keeps the archived ones.
async fn archived_files_keep_working(kept: Kept, dir: PathBuf) {
    let (server, store) = archived_server(&kept, &dir, Retention::All).await;
    let mut ada = Client::user(&server, "Ada").await;
    let bob = Client::user(&server, "Bob").await;
    let eve = Client::user(&server, "Eve").await;
    let picture = upload_ok(&server, &ada.token(), "channel=general", "cat.png", PNG).await;
    send_with(&mut ada, &general(), "look", &picture).await;
    ada.acks(1).await;
    let direct = Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap());
    let peer = format!("peer={}", bob.id());
    let plan = upload_ok(&server, &ada.token(), &peer, "plan.txt", b"the secret plan").await;
    send_with(&mut ada, &direct, "the plan", &plan).await;
    ada.acks(1).await;
    ada.fill(&general(), 101).await;
    ada.fill(&direct, 101).await;
    assert_eq!(
        server.hub.file_for(&picture.id, None),
        Err(ChatError::NoSuchFile),
        "the hub no longer holds it: the store answers"
    );

    let check = |server: TestServer| {
        let (picture, plan) = (picture.clone(), plan.clone());
        let (bob, eve) = (bob.token(), eve.token());
        async move {
            let got = download(&server, None, &picture).await;
            assert_eq!(got.status, 200, "{}", got.body);
            assert_eq!(got.bytes, PNG);
            assert_eq!(got.header("content-type").as_deref(), Some("image/png"));
            let bobs = download(&server, Some(&bob), &plan).await;
            assert_eq!(bobs.status, 200, "{}", bobs.body);
            assert_eq!(bobs.bytes, b"the secret plan");
            assert_eq!(
                bobs.header("content-disposition").as_deref(),
                Some("attachment; filename*=UTF-8''plan.txt")
            );
            let eves = download(&server, Some(&eve), &plan).await;
            assert_eq!(eves.status, 403, "{}", eves.body);
            assert!(!eves.body.contains("secret"));
            assert_eq!(download(&server, None, &plan).await.status, 401);
        }
    };
    check(server).await;

    store.close();
    let stray = dir.join("files").join("0".repeat(32));
    std::fs::write(&stray, b"no message carries me").unwrap();
    let (again, store) = archived_server(&kept, &dir, Retention::All).await;
    check(again).await;
    assert!(leaves_the_disk(&stray).await, "the stray file is swept");
    assert!(on_disk(&dir, &picture).exists() && on_disk(&dir, &plan).exists());
    store.close();
}

/// On SQLite.
#[tokio::test]
async fn archived_files_download_after_the_window_and_a_restart_on_sqlite() {
    on_sqlite("keep", archived_files_keep_working).await;
}

/// On PostgreSQL (`data.store = "postgres"`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_files_download_after_the_window_and_a_restart_on_postgres() {
    on_postgres("files_keep", archived_files_keep_working).await;
}

/// With `data.retain_messages = kept_messages`: a file whose message its author deletes
/// answers 404 and leaves the disk; a file whose message is the oldest one kept still
/// downloads, and the next message, which makes retention let go of it, takes it off the
/// disk and its download answers 404. With 100 that is today's rule: a file goes as its
/// message leaves the window.
async fn files_go_when_their_message_goes(kept: Kept, dir: PathBuf, kept_messages: u64) {
    let (server, store) = archived_server(&kept, &dir, Retention::Newest(kept_messages)).await;
    let mut ada = Client::joined(&server, "Ada").await;
    let oldest = upload_ok(&server, &ada.token(), "channel=general", "old.png", PNG).await;
    send_with(&mut ada, &general(), "first", &oldest).await;
    ada.acks(1).await;
    let regretted = upload_ok(&server, &ada.token(), "channel=general", "oops.png", PNG).await;
    send_with(&mut ada, &general(), "oops", &regretted).await;
    let id = loop {
        if let ServerEvent::Ack { id, .. } = ada.next().await {
            break id;
        }
    };
    ada.send(ClientEvent::Delete {
        room: general(),
        id,
        client_ref: None,
    })
    .await;
    assert!(
        leaves_the_disk(&on_disk(&dir, &regretted)).await,
        "a deleted message's file goes"
    );
    assert_eq!(download(&server, None, &regretted).await.status, 404);

    ada.fill(&general(), kept_messages as usize - 2).await;
    let got = download(&server, None, &oldest).await;
    assert_eq!(got.status, 200, "still kept: {}", got.body);
    assert_eq!(got.bytes, PNG);
    ada.fill(&general(), 1).await;
    assert_eq!(download(&server, None, &oldest).await.status, 404);
    assert!(
        leaves_the_disk(&on_disk(&dir, &oldest)).await,
        "retention let go of it"
    );
    store.close();
}

/// On SQLite, keeping 150.
#[tokio::test]
async fn files_go_when_retention_or_their_author_lets_go_on_sqlite() {
    on_sqlite("go150", |kept, dir| {
        files_go_when_their_message_goes(kept, dir, 150)
    })
    .await;
}

/// On SQLite, keeping 100: files go with the window, as before the archive.
#[tokio::test]
async fn keeping_a_hundred_files_go_with_the_window_on_sqlite() {
    on_sqlite("go100", |kept, dir| {
        files_go_when_their_message_goes(kept, dir, 100)
    })
    .await;
}

/// On PostgreSQL, keeping 150.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_when_retention_or_their_author_lets_go_on_postgres() {
    on_postgres("files_go150", |kept, dir| {
        files_go_when_their_message_goes(kept, dir, 150)
    })
    .await;
}

/// On PostgreSQL, keeping 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_a_hundred_files_go_with_the_window_on_postgres() {
    on_postgres("files_go100", |kept, dir| {
        files_go_when_their_message_goes(kept, dir, 100)
    })
    .await;
}
