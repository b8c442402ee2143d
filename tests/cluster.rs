//! Cluster mode with real processes: Flack instances started from the built binary on
//! 127.0.0.1, one PostgreSQL database and one Redis (the machine's, or ones a test starts
//! for itself when it kills or restarts them). Each test uses a fresh database and a fresh
//! Redis channel prefix.

mod common;

use common::{general, http, request, Addressed, Client};
use flack::chat::cluster::files::SharedFiles;
use flack::chat::model::{Attachment, DirectKey, Message, MessageId, Room, Session};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The PostgreSQL server tests make their databases on (`FLACK_TEST_POSTGRES` to change).
fn postgres_base() -> String {
    std::env::var("FLACK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The Redis tests share (`FLACK_TEST_REDIS` to change).
fn shared_redis() -> String {
    std::env::var("FLACK_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (in this run or another) uses.
fn fresh(kind: &str) -> String {
    let n = NAMES.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("flack_{kind}_{}_{n}_{nanos}", std::process::id())
}

/// A free loopback port (bound and released; the instance binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One cluster: a database and a Redis prefix, dropped with it.
struct Cluster {
    postgres: String,
    database: String,
    redis: String,
    prefix: String,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::on(postgres_base(), shared_redis())
    }

    fn on(postgres: String, redis: String) -> Cluster {
        Cluster {
            postgres,
            database: fresh("db"),
            redis,
            prefix: fresh("prefix"),
        }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.postgres, self.database)
    }

    /// Starts an instance with these extra settings (environment variables).
    async fn instance(&self, extra: &[(&str, &str)]) -> Instance {
        let port = free_port();
        let dir = std::env::temp_dir().join(fresh("instance"));
        std::fs::create_dir_all(&dir).expect("a data folder");
        let log = std::fs::File::create(dir.join("log")).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_flack"));
        command
            .current_dir(&dir)
            .env("FLACK_SERVER_ADDR", format!("127.0.0.1:{port}"))
            .env("FLACK_DATA_DIR", dir.join("data"))
            .env("FLACK_DATA_STORE", "postgres")
            .env("FLACK_DATA_POSTGRES_URL", self.url())
            .env("FLACK_CLUSTER_REDIS_URL", &self.redis)
            .env("FLACK_CLUSTER_PREFIX", &self.prefix)
            .env("FLACK_LIMITS_MESSAGES_PER_SECOND", "100000")
            .env("FLACK_LIMITS_MESSAGE_BURST", "100000")
            .env("FLACK_LIMITS_CHANNELS_PER_MINUTE", "1000")
            .env("FLACK_LIMITS_REGISTRATIONS_PER_HOUR", "100000")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("the flack binary starts");
        let instance = Instance {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        instance.wait_ready().await;
        instance
    }

    /// The ids of the messages PostgreSQL holds for `general`.
    async fn stored_ids(&self) -> Vec<(u64, u64)> {
        let client = connect(&self.url()).await;
        let rows = client
            .query(
                "SELECT id, seq FROM recent_messages WHERE room_key = 'c:general' ORDER BY seq",
                &[],
            )
            .await
            .expect("query");
        rows.iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Best effort, on a thread of its own (a runtime cannot block on another).
        let (base, database) = (self.postgres.clone(), self.database.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
                        .await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers");
    tokio::spawn(conn);
    client
}

/// A Flack process.
struct Instance {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Addressed for Instance {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Instance {
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Ok(mut stream)) = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(self.addr),
            )
            .await
            {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let ask = format!(
                    "GET /readyz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                if stream.write_all(ask.as_bytes()).await.is_ok() {
                    let mut answer = Vec::new();
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        stream.read_to_end(&mut answer),
                    )
                    .await;
                    if answer.starts_with(b"HTTP/1.1 200") {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the instance did not become ready:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Kills the process at once, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- log of the instance at {} ---\n{}",
                self.addr,
                self.log()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Registers a user through an instance's server function.
async fn register(instance: &impl Addressed, name: &str) -> Result<Session, String> {
    let answer = http(
        instance,
        "POST",
        "/api/register",
        Some(&format!("name={name}")),
    )
    .await;
    if answer.status == 200 {
        Ok(serde_json::from_str(&answer.body).expect("a session"))
    } else {
        Err(answer.body)
    }
}

/// A registered, authenticated client of an instance.
async fn user(instance: &impl Addressed, name: &str) -> Client {
    let session = register(instance, name).await.expect("registers");
    let mut client = Client::connect(instance).await;
    client.auth(&session.token).await;
    client.session = Some(session);
    client
}

/// Posts with a reference.
async fn post(client: &mut Client, body: &str, client_ref: &str) {
    client
        .send(ClientEvent::Send {
            room: general(),
            body: body.into(),
            attachment: None,
            client_ref: Some(client_ref.into()),
        })
        .await;
}

/// Reads until `count` messages arrived (live or in a catch-up), skipping other events.
async fn messages(client: &mut Client, count: usize) -> Vec<Message> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        seen.push(client.next_message().await);
    }
    seen
}

/// Reads acks until `count` arrived: each reference's id and number.
async fn acks(client: &mut Client, count: usize) -> HashMap<String, (MessageId, u64)> {
    let mut acked = HashMap::new();
    while acked.len() < count {
        if let ServerEvent::Ack {
            client_ref: Some(client_ref),
            id,
            seq,
        } = client.next().await
        {
            acked.insert(client_ref, (id, seq));
        }
    }
    acked
}

/// Posters on two instances post to one channel at once; observers on both see the same
/// messages numbered 1..N in one order, and every acknowledged message is in PostgreSQL.
async fn two_instances_agree(publish_delay: &str) {
    let cluster = Cluster::new();
    let a = cluster
        .instance(&[("FLACK_CLUSTER_PUBLISH_DELAY_MS", publish_delay)])
        .await;
    let b = cluster.instance(&[]).await;
    let mut watch_a = user(&a, "watcher-a").await;
    watch_a.join(&general()).await;
    let mut watch_b = user(&b, "watcher-b").await;
    watch_b.join(&general()).await;
    let mut ann = user(&a, "ann").await;
    let mut bob = user(&b, "bob").await;
    const EACH: usize = 40;
    let posting_a = async {
        for i in 0..EACH {
            post(&mut ann, &format!("ann {i}"), &format!("a{i}")).await;
        }
        acks(&mut ann, EACH).await
    };
    let posting_b = async {
        for i in 0..EACH {
            post(&mut bob, &format!("bob {i}"), &format!("b{i}")).await;
        }
        acks(&mut bob, EACH).await
    };
    let (acked_a, acked_b) = tokio::join!(posting_a, posting_b);
    let seen_a = messages(&mut watch_a, 2 * EACH).await;
    let seen_b = messages(&mut watch_b, 2 * EACH).await;
    let numbers: Vec<u64> = seen_a.iter().map(|m| m.seq).collect();
    assert_eq!(numbers, (1..=2 * EACH as u64).collect::<Vec<_>>());
    let order = |seen: &[Message]| {
        seen.iter()
            .map(|m| (m.id, m.seq, m.body.as_str().to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        order(&seen_a),
        order(&seen_b),
        "both instances deliver one order"
    );
    for pair in seen_a.windows(2) {
        assert!(
            pair[0].sent_at <= pair[1].sent_at,
            "time never goes backwards in a room"
        );
    }
    let stored = cluster.stored_ids().await;
    for (id, seq) in acked_a.values().chain(acked_b.values()) {
        assert!(
            stored.contains(&(id.0, *seq)),
            "acknowledged {id:?} #{seq} is stored"
        );
    }
    assert_eq!(stored.len(), 2 * EACH);
}

/// Test 1 of the cluster issue: one order across two instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_one_order() {
    two_instances_agree("0").await;
}

/// Test 1 with the first instance's publishing held back: the second instance receives
/// messages ahead of their turn and still delivers them in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_one_order_when_events_arrive_late() {
    two_instances_agree("50").await;
}

/// Test 2: a client of an instance that is killed reconnects to the other with its cursor
/// and receives every acknowledged message exactly once, in order; the epoch is the same,
/// and a post resent after its acknowledgement was lost is not stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_instance_resume_on_another() {
    let cluster = Cluster::new();
    let mut a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut watcher = Client::connect_raw(&a).await;
    let epoch = match watcher.next().await {
        ServerEvent::Hub(HubEvent::Welcome { epoch, .. }) => epoch,
        other => panic!("expected welcome, got {other:?}"),
    };
    watcher.join(&general()).await;
    let session = register(&a, "poster").await.expect("registers");
    let mut poster = Client::connect(&a).await;
    poster.auth(&session.token).await;
    for i in 0..30 {
        post(&mut poster, &format!("before {i}"), &format!("r{i}")).await;
    }
    let acked = acks(&mut poster, 30).await;
    // Some posts go out and the instance dies before answering them (or after).
    for i in 30..40 {
        post(&mut poster, &format!("before {i}"), &format!("r{i}")).await;
    }
    let seen = messages(&mut watcher, 20).await;
    a.kill();
    let last = seen.last().map_or(0, |m| m.seq);

    // The watcher comes back on B with its cursor.
    let mut watcher = Client::connect_raw(&b).await;
    match watcher.next().await {
        ServerEvent::Hub(HubEvent::Welcome { epoch: now, .. }) => {
            assert_eq!(now, epoch, "an instance dying does not change the epoch")
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    watcher
        .send(ClientEvent::Join {
            room: general(),
            since: Some(flack::chat::model::Cursor { epoch, seq: last }),
            client_ref: None,
        })
        .await;
    // The poster resends what was not acknowledged, with the same references.
    let mut poster = Client::connect(&b).await;
    poster.auth(&session.token).await;
    for i in 30..40 {
        post(&mut poster, &format!("before {i}"), &format!("r{i}")).await;
    }
    let resent = acks(&mut poster, 10).await;
    let mut all = acked.clone();
    all.extend(resent);
    let newest = all.values().map(|(_, seq)| *seq).max().expect("acks");
    let mut after: Vec<Message> = Vec::new();
    while after.last().map_or(last, |m| m.seq) < newest {
        after.push(watcher.next_message().await);
    }
    let numbers: Vec<u64> = seen.iter().chain(after.iter()).map(|m| m.seq).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate: {numbers:?}"
    );
    for (id, seq) in all.values() {
        assert!(
            seen.iter()
                .chain(after.iter())
                .any(|m| m.id == *id && m.seq == *seq),
            "acknowledged #{seq} reached the watcher"
        );
    }
    let stored = cluster.stored_ids().await;
    assert_eq!(stored.len(), 40, "each post stored once: {stored:?}");
}

/// Test 6 (names): two users racing for one display name on two instances, and two
/// channels racing for one name: one wins, the other gets the clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_unique_across_instances() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    for round in 0..5 {
        let name = format!("racer{round}");
        let look_alike = format!("RACER{round}");
        let (on_a, on_b) = tokio::join!(register(&a, &name), register(&b, &look_alike));
        assert!(
            on_a.is_ok() != on_b.is_ok(),
            "exactly one wins: {on_a:?} / {on_b:?}"
        );
        let loser = on_a.err().or(on_b.err()).expect("one lost");
        assert!(loser.contains("display_name_taken"), "{loser}");
    }
    let token_a = register(&a, "maker-a").await.expect("registers").token;
    let token_b = register(&b, "maker-b").await.expect("registers").token;
    for round in 0..5 {
        let form_a = format!("token={token_a}&name=design{round}");
        let form_b = format!("token={token_b}&name=Design{round}");
        let (on_a, on_b) = tokio::join!(
            http(&a, "POST", "/api/create_channel", Some(&form_a)),
            http(&b, "POST", "/api/create_channel", Some(&form_b))
        );
        assert!(
            (on_a.status == 200) != (on_b.status == 200),
            "exactly one channel: {} / {}",
            on_a.body,
            on_b.body
        );
        let loser = if on_a.status == 200 { on_b } else { on_a };
        assert!(loser.body.contains("channel_exists"), "{}", loser.body);
    }
    // Both instances list every channel.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list_a = http(&a, "POST", "/api/channels", None).await.body;
        let list_b = http(&b, "POST", "/api/channels", None).await.body;
        if (0..5).all(|r| {
            list_a.to_lowercase().contains(&format!("design{r}"))
                && list_b.to_lowercase().contains(&format!("design{r}"))
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "channel lists agree: {list_a} / {list_b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first bytes of a PNG image (enough to be recognised as one).
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// Uploads a file through an instance for the room `query` names, as the browser does.
async fn upload(
    instance: &impl Addressed,
    token: &str,
    query: &str,
    name: &str,
    bytes: &[u8],
) -> Attachment {
    let auth = format!("Bearer {token}");
    let headers = [
        ("X-File-Name", name),
        ("Content-Type", "application/octet-stream"),
        ("Authorization", auth.as_str()),
    ];
    let answer = request(
        instance,
        "POST",
        &format!("/files?{query}"),
        &headers,
        bytes,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    serde_json::from_str(&answer.body).expect("an attachment")
}

/// Downloads a file through an instance, with a bearer token or none.
async fn download(
    instance: &impl Addressed,
    token: Option<&str>,
    attachment: &Attachment,
) -> common::HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(instance, "GET", &attachment.url(), &headers, b"").await
}

/// Posts a message carrying an attachment.
async fn post_file(client: &mut Client, room: &Room, body: &str, attachment: &Attachment) {
    client
        .send(ClientEvent::Send {
            room: room.clone(),
            body: body.into(),
            attachment: Some(attachment.id.clone()),
            client_ref: None,
        })
        .await;
}

impl Cluster {
    /// The ids of the files PostgreSQL holds bytes for.
    async fn stored_files(&self) -> Vec<String> {
        let client = connect(&self.url()).await;
        let rows = client
            .query("SELECT id FROM files ORDER BY id", &[])
            .await
            .expect("query");
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    }
}

/// Issue 16, item 7: a picture uploaded and posted through one instance downloads through
/// the other, byte for byte and with the same headers (so does a file of several pieces);
/// a private conversation's file
/// downloads through the other instance for a participant and is refused there to anyone
/// else; an upload not yet sent is not served elsewhere; deleting the message deletes the
/// bytes from PostgreSQL, as does the message leaving the window; and the sweep deletes
/// only rows no stored message carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_download_through_every_instance() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut ann = user(&a, "ann").await;
    ann.join(&general()).await;
    let mut bob = user(&b, "bob").await;
    bob.join(&general()).await;
    let eve = user(&b, "eve").await;

    let picture = upload(&a, &ann.token(), "channel=general", "cat.png", PNG).await;
    assert!(picture.image);
    post_file(&mut ann, &general(), "look", &picture).await;
    let posted = ann.next_message().await;
    assert_eq!(posted.attachment.as_ref(), Some(&picture));
    let seen = bob.next_message().await;
    assert_eq!(seen.attachment.as_ref(), Some(&picture), "B delivers it");
    let got = download(&b, Some(&bob.token()), &picture).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.bytes, PNG, "the same bytes through B");
    assert_eq!(got.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(got.header("content-disposition").as_deref(), Some("inline"));
    assert_eq!(
        got.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    // A channel's file needs no token, as on one instance.
    assert_eq!(download(&b, None, &picture).await.bytes, PNG);
    // A file larger than one piece read from the database comes back whole.
    let large: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let archive = upload(&a, &ann.token(), "channel=general", "data.bin", &large).await;
    post_file(&mut ann, &general(), "data", &archive).await;
    ann.next_message().await;
    bob.next_message().await;
    let got = download(&b, None, &archive).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("content-length").as_deref(), Some("700000"));
    assert!(got.bytes == large, "the same bytes through B");

    let direct = Room::Direct(DirectKey::between(ann.id(), bob.id()).expect("two users"));
    let plan = upload(
        &a,
        &ann.token(),
        &format!("peer={}", bob.id()),
        "plan.txt",
        b"the secret plan",
    )
    .await;
    post_file(&mut ann, &direct, "the plan", &plan).await;
    let seen = bob.next_message().await;
    assert_eq!(
        seen.attachment.as_ref(),
        Some(&plan),
        "B delivers it to Bob"
    );
    let bobs = download(&b, Some(&bob.token()), &plan).await;
    assert_eq!(bobs.status, 200, "{}", bobs.body);
    assert_eq!(bobs.bytes, b"the secret plan");
    assert_eq!(
        bobs.header("content-disposition").as_deref(),
        Some("attachment; filename*=UTF-8''plan.txt")
    );
    let eves = download(&b, Some(&eve.token()), &plan).await;
    assert_eq!(eves.status, 403, "{}", eves.body);
    assert!(!eves.body.contains("secret"));
    assert_eq!(download(&b, None, &plan).await.status, 401);

    // An upload not sent yet is served only where it was received.
    let draft = upload(&a, &ann.token(), "channel=general", "draft.txt", b"draft").await;
    assert_eq!(download(&a, None, &draft).await.status, 200);
    assert_eq!(download(&b, None, &draft).await.status, 404);

    // Deleting the picture's message deletes its bytes from the database, and both
    // instances stop serving it.
    ann.send(ClientEvent::Delete {
        room: general(),
        id: posted.id,
        client_ref: None,
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored = cluster.stored_files().await;
        let gone_a = download(&a, None, &picture).await.status == 404;
        let gone_b = download(&b, None, &picture).await.status == 404;
        if gone_a && gone_b && !stored.contains(&picture.id.as_str().to_owned()) {
            assert_eq!(stored.len(), 3, "the other files stay: {stored:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the picture is deleted: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The sweep deletes the rows no stored message carries (here whatever their age): only
    // the draft's.
    let files = SharedFiles::new(cluster.url().parse().expect("a PostgreSQL URL"));
    assert_eq!(files.sweep(Duration::ZERO).await.expect("sweeps"), 1);
    let mut carried = vec![plan.id.as_str().to_owned(), archive.id.as_str().to_owned()];
    carried.sort();
    assert_eq!(cluster.stored_files().await, carried);

    // The large file's message leaves the 100-message window: its bytes go too.
    for i in 0..100 {
        post(&mut ann, &format!("filler {i}"), &format!("f{i}")).await;
    }
    acks(&mut ann, 100).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored = cluster.stored_files().await;
        if stored == [plan.id.as_str().to_owned()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the evicted file is deleted: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(download(&b, None, &archive).await.status, 404);
}
