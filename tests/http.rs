//! Integration tests of the HTTP side against the real router: server functions,
//! server-rendered pages and built assets.

mod common;

use common::{
    fast, form_value, general, http, request, start, start_with, Client, HttpResponse, TestServer,
};
use std::io::{Read, Write};

/// Creating a channel through the server function works once, with a valid token; the same
/// name in another case or with spaces is a conflict with a clear message, and invalid names
/// and missing or wrong tokens are refused.
#[tokio::test]
async fn channel_creation_server_function() {
    let server = start().await;
    let token = server
        .hub
        .register("creator")
        .unwrap()
        .stored()
        .await
        .expect("stored")
        .token;
    let created = http(
        &server,
        "POST",
        "/api/create_channel",
        Some(&format!("token={token}&name=Ops")),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(
        created.body.contains("\"name\":\"Ops\""),
        "{}",
        created.body
    );

    let again = http(
        &server,
        "POST",
        "/api/create_channel",
        Some(&format!("token={token}&name={}", form_value("  ops "))),
    )
    .await;
    assert_eq!(
        again.status, 409,
        "a taken name is a conflict, not a server failure"
    );
    assert!(again.body.contains("channel_exists"), "{}", again.body);

    let empty = http(
        &server,
        "POST",
        "/api/create_channel",
        Some(&format!("token={token}&name=")),
    )
    .await;
    assert!(empty.body.contains("channel_name_empty"), "{}", empty.body);

    let forged = http(
        &server,
        "POST",
        "/api/create_channel",
        Some("token=guessed&name=Forged"),
    )
    .await;
    assert!(forged.body.contains("unauthorized"), "{}", forged.body);
    let missing = http(&server, "POST", "/api/create_channel", Some("name=Forged")).await;
    assert_ne!(missing.status, 200, "{}", missing.body);

    let names = common::channel_names(&server.hub);
    assert_eq!(names, ["general", "Ops"]);
}

/// Registration returns a long random token; a name already in use (in any case) is refused.
#[tokio::test]
async fn registration_server_function() {
    let server = start().await;
    let ok = http(&server, "POST", "/api/register", Some("name=Ada")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let session: flack::chat::model::Session = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(session.user.name.as_str(), "Ada");
    assert!(session.token.len() >= 32);
    let taken = http(&server, "POST", "/api/register", Some("name=ADA")).await;
    assert!(taken.body.contains("display_name_taken"), "{}", taken.body);
}

/// A private conversation's history is served only to its participants.
#[tokio::test]
async fn direct_history_is_only_for_participants() {
    let server = start().await;
    let ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    let eve = server
        .hub
        .register("Eve")
        .unwrap()
        .stored()
        .await
        .expect("stored");
    let direct = flack::chat::model::Room::Direct(
        flack::chat::model::DirectKey::between(ada.id(), bob.id()).unwrap(),
    );
    bob.post(&direct, "secret plans").await;
    bob.acks(1).await;

    let mine = http(
        &server,
        "POST",
        "/api/direct_history",
        Some(&format!("token={}&peer={}", ada.token(), bob.id())),
    )
    .await;
    assert!(mine.body.contains("secret plans"), "{}", mine.body);
    let eves = http(
        &server,
        "POST",
        "/api/direct_history",
        Some(&format!("token={}&peer={}", eve.token, bob.id())),
    )
    .await;
    assert!(!eves.body.contains("secret plans"), "{}", eves.body);
    let forged = http(
        &server,
        "POST",
        "/api/direct_history",
        Some(&format!("token=nope&peer={}", bob.id())),
    )
    .await;
    assert!(forged.body.contains("unauthorized"), "{}", forged.body);
    assert!(!forged.body.contains("secret plans"));
}

/// The channel list and history server functions return what the hub holds.
#[tokio::test]
async fn list_and_history_server_functions() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    ada.post(&general(), "first!").await;
    ada.next_message().await;

    let list = http(&server, "POST", "/api/channels", Some("")).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("\"general\""));

    let history = http(&server, "POST", "/api/history", Some("channel=GENERAL")).await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert!(history.body.contains("first!"), "{}", history.body);

    let missing = http(&server, "POST", "/api/history", Some("channel=nowhere")).await;
    assert!(missing.body.contains("no_such_channel"), "{}", missing.body);
}

/// The first load of a channel page carries the channel list and the channel's messages in
/// the HTML itself, with markup in messages escaped as text.
#[tokio::test]
async fn channel_page_is_rendered_on_the_server() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada <admin>").await;
    server.hub.create_channel(&ada.token(), "Design").unwrap();
    ada.post(&general(), "<script>alert(1)</script> hello")
        .await;
    ada.next_message().await;

    let page = http(&server, "GET", "/c/general", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>general</h1>"), "{}", page.body);
    assert!(page.body.contains("Design"));
    assert!(page.body.contains("Ada &lt;admin&gt;"));
    assert!(page
        .body
        .contains("&lt;script&gt;alert(1)&lt;/script&gt; hello"));
    assert!(!page.body.contains("<script>alert(1)"));
    assert!(page.body.contains("role=\"log\""));
}

/// A page for a channel that does not exist says so, with status 404.
#[tokio::test]
async fn unknown_channel_page_is_not_found() {
    let server = start().await;
    let page = http(&server, "GET", "/c/nowhere", None).await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("Channel not found"));
}

/// Text that compresses about as well as a build's WebAssembly: varied, but repetitive.
fn asset_like(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("fn_{} ", x % 4_000).as_bytes());
    }
    out.truncate(len);
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

fn ungzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// A site folder of this test's own holding one built asset, `pkg/flack.test.wasm`.
fn site_with_asset(test: &str, original: &[u8]) -> std::path::PathBuf {
    let site = std::env::temp_dir().join(format!("flack-assets-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&site);
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("pkg/flack.test.wasm"), original).unwrap();
    site
}

/// `GET /pkg/flack.test.wasm` with an `Accept-Encoding`.
async fn get_asset(server: &TestServer, encoding: &str) -> HttpResponse {
    let response = request(
        server,
        "GET",
        "/pkg/flack.test.wasm",
        &[("Accept-Encoding", encoding)],
        b"",
    )
    .await;
    assert_eq!(response.status, 200);
    response
}

/// A release build's best-level copies (brotli 11 and gzip 9, written beside each asset by
/// `cargo leptos build --release --precompress`) are what is served to a browser that
/// accepts them, byte for byte, decoding to the asset, with caching headers that say the
/// encoding depends on the request; a browser that accepts neither gets the file itself.
#[tokio::test]
async fn assets_are_served_at_the_best_compression() {
    let original = asset_like(300_000, 7);
    let site = site_with_asset("best", &original);
    let mut best_brotli = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut original.as_slice(), &mut best_brotli, &params).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&original).unwrap();
    let best_gzip = gzip.finish().unwrap();
    std::fs::write(site.join("pkg/flack.test.wasm.br"), &best_brotli).unwrap();
    std::fs::write(site.join("pkg/flack.test.wasm.gz"), &best_gzip).unwrap();
    let mut config = fast();
    config.server.site_root = site.clone();
    config.server.site_pkg_dir = "pkg".into();
    let server = start_with(config).await;

    for (encoding, coding, best, decode) in [
        (
            "gzip, deflate, br",
            "br",
            &best_brotli,
            unbrotli as fn(&[u8]) -> Vec<u8>,
        ),
        ("gzip", "gzip", &best_gzip, ungzip),
    ] {
        let response = get_asset(&server, encoding).await;
        assert_eq!(response.header("content-encoding").as_deref(), Some(coding));
        assert_eq!(&response.bytes, best, "{encoding}: the build's copy");
        assert_eq!(decode(&response.bytes), original, "{encoding}");
        assert!(response.header("cache-control").is_some());
        assert_eq!(response.header("vary").as_deref(), Some("accept-encoding"));
    }

    let plain = get_asset(&server, "identity").await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.bytes, original);
    let _ = std::fs::remove_dir_all(&site);
}

/// Without the build's copies (a debug build), an asset is still sent compressed to a
/// browser that accepts it, decoding to the file as it is now.
#[tokio::test]
async fn assets_without_copies_are_compressed_per_request() {
    let original = asset_like(200_000, 99);
    let site = site_with_asset("plain", &original);
    let mut config = fast();
    config.server.site_root = site.clone();
    config.server.site_pkg_dir = "pkg".into();
    let server = start_with(config).await;
    let brotli = get_asset(&server, "br").await;
    assert_eq!(brotli.header("content-encoding").as_deref(), Some("br"));
    assert_eq!(unbrotli(&brotli.bytes), original);
    let gzip = get_asset(&server, "gzip").await;
    assert_eq!(gzip.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(ungzip(&gzip.bytes), original);
    let _ = std::fs::remove_dir_all(&site);
}

/// A load balancer can ask whether an instance lives (`/healthz`) and should get clients
/// (`/readyz`): both answer 200 whatever the `Host` (the host allow-list does not apply), and
/// `/readyz` answers 503 while the store cannot write (its database held by another
/// connection; noticed within a second), then 200 again once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_follow_the_store() {
    let mut config = common::fast();
    config.server.allowed_hosts = vec!["chat.example.com".parse().expect("a host")];
    let db = std::sync::Arc::new(std::sync::Mutex::new(None));
    let db_path = db.clone();
    let server = common::start_on(config, move |dir| {
        let path = dir.join("flack.db");
        *db_path.lock().expect("lock") = Some(path.clone());
        std::sync::Arc::new(flack::chat::sqlite::SqliteStore::open(&path, 100).expect("opens"))
    })
    .await;
    let path = db.lock().expect("lock").clone().expect("a database");
    assert_eq!(http(&server, "GET", "/healthz", None).await.status, 200);
    assert_eq!(http(&server, "GET", "/readyz", None).await.status, 200);

    let blocker = rusqlite::Connection::open(&path).expect("opens");
    blocker.execute_batch("BEGIN IMMEDIATE").expect("locks");
    // A readiness answer is given again for a second without asking the store.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(http(&server, "GET", "/readyz", None).await.status, 503);
    assert_eq!(http(&server, "GET", "/healthz", None).await.status, 200);
    blocker.execute_batch("COMMIT").expect("unlocks");
    let mut ready = 0;
    for _ in 0..50 {
        ready = http(&server, "GET", "/readyz", None).await.status;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "ready again once the store can write");
}

/// A store that keeps nothing and counts the readiness pings it is asked for.
#[derive(Default)]
struct CountingPings(std::sync::atomic::AtomicUsize);

impl flack::chat::hub::Store for CountingPings {
    fn load(&self) -> Result<flack::chat::hub::Loaded, flack::chat::hub::StoreError> {
        Ok(Default::default())
    }
    fn put_channel(&self, _: &flack::chat::model::ChannelInfo) -> flack::chat::hub::Durable {
        flack::chat::hub::Durable::done(Ok(()))
    }
    fn put_user(
        &self,
        _: &flack::chat::model::UserInfo,
        _: &flack::chat::hub::TokenHash,
    ) -> flack::chat::hub::Durable {
        flack::chat::hub::Durable::done(Ok(()))
    }
    fn rename_user(&self, _: &flack::chat::model::UserInfo) -> flack::chat::hub::Durable {
        flack::chat::hub::Durable::done(Ok(()))
    }
    fn put_message(&self, _: &flack::chat::model::Message) -> flack::chat::hub::Durable {
        flack::chat::hub::Durable::done(Ok(()))
    }
    fn delete_message(
        &self,
        _: &flack::chat::model::Room,
        _: flack::chat::model::MessageId,
    ) -> flack::chat::hub::Durable {
        flack::chat::hub::Durable::done(Ok(()))
    }
    fn edit_message(&self, _: &flack::chat::model::Message) -> flack::chat::hub::Durable {
        flack::chat::hub::Durable::done(Ok(()))
    }
    fn ping(&self) -> flack::chat::hub::Durable {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        flack::chat::hub::Durable::done(Ok(()))
    }
}

/// A client hammering `/readyz` (which no rate limit covers, so that balancers may probe as
/// they like) costs the store at most one write a second: 100 probes in a row, all answered
/// 200, ask the store once or twice.
#[tokio::test]
async fn readiness_probes_cost_the_store_one_write_a_second() {
    let store = std::sync::Arc::new(CountingPings::default());
    let counted = store.clone();
    let server = common::start_on(common::fast(), move |_| store).await;
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(http(&server, "GET", "/readyz", None).await.status, 200);
    }
    let seconds = started.elapsed().as_secs() as usize;
    let pings = counted.0.load(std::sync::atomic::Ordering::Relaxed);
    assert!(pings <= seconds + 1, "{pings} pings in {seconds} s");
}

/// People are found by any part of their name, without regard to case, sorted by name, and
/// never include the one asking; only a registered user may look.
#[tokio::test]
async fn people_are_found_by_name_for_registered_users() {
    let server = start().await;
    let ada = Client::user(&server, "Ada").await;
    for name in ["Bob", "bobby", "Rob", "Carol"] {
        server
            .hub
            .register(name)
            .unwrap()
            .stored()
            .await
            .expect("stored");
    }
    let ask = |token: String, query: &str| {
        let form = format!("token={token}&query={query}");
        let server = &server;
        async move { http(server, "POST", "/api/people", Some(&form)).await }
    };
    let found = ask(ada.token(), "OB").await;
    assert_eq!(found.status, 200, "{}", found.body);
    let names: Vec<String> = serde_json::from_str::<Vec<flack::chat::model::UserInfo>>(&found.body)
        .unwrap()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    assert_eq!(names, ["Bob", "bobby", "Rob"]);
    let everyone = ask(ada.token(), "").await;
    assert!(!everyone.body.contains("\"Ada\""), "{}", everyone.body);
    assert!(everyone.body.contains("Carol"), "{}", everyone.body);
    let stranger = ask("not-a-token".into(), "").await;
    assert_eq!(stranger.status, 401, "{}", stranger.body);
    assert!(!stranger.body.contains("Carol"));
}

/// A private conversation someone only opened, without a message, is not in the other's
/// list (nor in the opener's, once they reload); the first message puts it in both.
#[tokio::test]
async fn only_conversations_with_a_message_are_listed() {
    let server = start().await;
    let mut ada = Client::user(&server, "Ada").await;
    let bob = Client::user(&server, "Bob").await;
    let direct = flack::chat::model::Room::Direct(
        flack::chat::model::DirectKey::between(ada.id(), bob.id()).unwrap(),
    );
    ada.join(&direct).await;
    let listed = |token: String| {
        let form = format!("token={token}");
        let server = &server;
        async move { http(server, "POST", "/api/directs", Some(&form)).await.body }
    };
    assert!(!listed(bob.token()).await.contains("Ada"));
    assert!(!listed(ada.token()).await.contains("Bob"));
    ada.post(&direct, "hello").await;
    ada.acks(1).await;
    assert!(listed(bob.token()).await.contains("Ada"));
    assert!(listed(ada.token()).await.contains("Bob"));
}

/// Expected refusals are client errors with the error body, never server errors: a taken
/// name and an existing channel are 409, an unknown person 404.
#[tokio::test]
async fn expected_errors_are_client_errors() {
    let server = start().await;
    let ada = Client::user(&server, "Ada").await;
    let taken = http(&server, "POST", "/api/register", Some("name=ada")).await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(taken.body.contains("display_name_taken"), "{}", taken.body);
    let form = format!("token={}&name=General", ada.token());
    let exists = http(&server, "POST", "/api/create_channel", Some(&form)).await;
    assert_eq!(exists.status, 409, "{}", exists.body);
    assert!(exists.body.contains("channel_exists"), "{}", exists.body);
    let form = format!("token={}&peer=999999", ada.token());
    let nobody = http(&server, "POST", "/api/direct_history", Some(&form)).await;
    assert_eq!(nobody.status, 404, "{}", nobody.body);
    assert!(nobody.body.contains("no_such_user"), "{}", nobody.body);
}
