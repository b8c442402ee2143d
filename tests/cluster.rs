//! Cluster mode with real processes: Flack instances started from the built binary on
//! 127.0.0.1, one PostgreSQL database and one Redis (the machine's, or ones a test starts
//! for itself when it kills or restarts them). Each test uses a fresh database and a fresh
//! Redis channel prefix.

mod common;

use common::{download, general, http, request, Addressed, Client};
use flack::chat::cluster::files::SharedFiles;
use flack::chat::model::{Attachment, DirectKey, Message, MessageId, Room, RoomUnread, Session};
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

    /// Waits up to `limit` for the process to exit by itself; its exit code, if it did.
    async fn exited_within(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
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
            reply_to: None,
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

/// Waits for a presence event about `user` saying `online`, skipping others.
async fn presence(client: &mut Client, user: flack::chat::model::UserId, online: bool) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.next_within(left).await {
            Some(ServerEvent::Hub(HubEvent::Presence { came, went, .. }))
                if (if online { &came } else { &went })
                    .iter()
                    .any(|u| u.id == user) =>
            {
                return
            }
            Some(_) => {}
            None => panic!("no presence event for {user:?} (online: {online}) in time"),
        }
    }
}

/// Waits for a presence event about `user` saying `online`, skipping others; how long it
/// took.
async fn presence_within(
    client: &mut Client,
    user: flack::chat::model::UserId,
    online: bool,
) -> Duration {
    let started = Instant::now();
    presence(client, user, online).await;
    started.elapsed()
}

/// The users a fresh connection of `client`'s user to `instance` sees online on joining
/// `room`.
async fn online_list(
    instance: &Instance,
    client: &Client,
    room: &Room,
) -> Vec<flack::chat::model::UserId> {
    let mut look = Client::connect(instance).await;
    look.auth(&client.token()).await;
    match look.join(room).await {
        ServerEvent::Hub(HubEvent::Joined { online, .. }) => online.iter().map(|u| u.id).collect(),
        other => panic!("expected joined, got {other:?}"),
    }
}

/// Test 6 (presence): someone joining a channel through one instance shows as online to
/// its members on another, and is on the online list of whoever joins there next, even
/// the first reader of a channel nobody used through that instance yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_holds_across_instances() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut bob = user(&b, "bob").await;
    bob.join(&general()).await;
    let mut ann = user(&a, "ann").await;
    ann.join(&general()).await;
    presence(&mut bob, ann.id(), true).await;
    // A second look: the online list bob gets on joining again names ann.
    assert!(online_list(&b, &bob, &general()).await.contains(&ann.id()));
    // A channel used only through A: its first reader on B sees ann at once (once A
    // has written her entry, and B knows the channel).
    let side = create_and_join(&a, &mut ann, "side").await;
    until_set(&cluster, "c:side", |e| e.len() == 1).await;
    loop {
        if let ServerEvent::Hub(HubEvent::ChannelCreated { .. }) = bob.next().await {
            break;
        }
    }
    let seen = online_list(&b, &bob, &side).await;
    assert!(seen.contains(&ann.id()), "{seen:?}");
}

/// Test 6 (presence): a user who leaves a channel, or disconnects, through one instance
/// goes offline for the channel's members on another within about one heartbeat, well
/// before their entry would have expired, and is off the online list there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_shows_on_other_instances_within_a_beat() {
    let cluster = Cluster::new();
    // A beat every 0.5 s; an entry lives 3 s.
    let beats = [("FLACK_CLUSTER_CHECK_SECS", "0.5")];
    let a = cluster.instance(&beats).await;
    let b = cluster.instance(&beats).await;
    let mut bob = user(&b, "bob").await;
    bob.join(&general()).await;
    let mut ann = user(&a, "ann").await;
    ann.join(&general()).await;
    presence(&mut bob, ann.id(), true).await;
    // One at a time: news of two users read in one beat may come in either order.
    let mut cat = user(&a, "cat").await;
    cat.join(&general()).await;
    presence(&mut bob, cat.id(), true).await;
    ann.send(ClientEvent::Leave { room: general() }).await;
    let took = presence_within(&mut bob, ann.id(), false).await;
    assert!(took < Duration::from_secs(2), "ann's leaving took {took:?}");
    let seen = online_list(&b, &bob, &general()).await;
    assert!(
        !seen.contains(&ann.id()) && seen.contains(&cat.id()),
        "{seen:?}"
    );
    let cat_id = cat.id();
    cat.close().await;
    let took = presence_within(&mut bob, cat_id, false).await;
    assert!(
        took < Duration::from_secs(2),
        "cat's disconnecting took {took:?}"
    );
}

/// Test 6 (presence): when an instance is killed, its users go offline for the members on
/// another instance once their entries expire (3 s after its last heartbeat), not later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_users_go_offline_when_their_entries_expire() {
    let cluster = Cluster::new();
    let beats = [("FLACK_CLUSTER_CHECK_SECS", "0.5")];
    let mut a = cluster.instance(&beats).await;
    let b = cluster.instance(&beats).await;
    let mut bob = user(&b, "bob").await;
    bob.join(&general()).await;
    let mut cat = user(&a, "cat").await;
    cat.join(&general()).await;
    presence(&mut bob, cat.id(), true).await;
    a.kill();
    let took = presence_within(&mut bob, cat.id(), false).await;
    // The entry's lifetime, one of B's beats, and room for a busy machine.
    assert!(
        took < Duration::from_secs(5),
        "cat went offline after {took:?}"
    );
    assert!(!online_list(&b, &bob, &general()).await.contains(&cat.id()));
}

/// A channel's presence set in Redis: `(score, member)` pairs, and the time on Redis's
/// clock (ms).
fn presence_set(cluster: &Cluster, room_key: &str) -> (Vec<(String, u64)>, u64, i64) {
    let client = redis::Client::open(cluster.redis.as_str()).expect("a Redis URL");
    let mut connection = client.get_connection().expect("Redis answers");
    let key = format!("{}:presence:{room_key}", cluster.prefix);
    let entries: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut connection)
        .expect("ZRANGE");
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query(&mut connection).expect("TIME");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query(&mut connection)
        .expect("PTTL");
    let entries = entries.into_iter().map(|(m, s)| (m, s as u64)).collect();
    (entries, seconds * 1000 + micros / 1000, ttl)
}

/// Waits (at most 1 s, less than a beat of the test using it) until a channel's presence
/// entries pass `check`.
async fn until_set(cluster: &Cluster, room_key: &str, check: impl Fn(&[(String, u64)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (entries, _, _) = presence_set(cluster, room_key);
        if check(&entries) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{room_key} still holds {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Presence is kept in Redis as one set per channel of `user/instance` entries scored
/// with their expiry on Redis's clock (the set expires too); an entry appears when its
/// user joins and goes the moment they leave, not at the next heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_kept_in_redis_per_channel() {
    let cluster = Cluster::new();
    // A beat every 5 s (an entry lives 15 s): what happens sooner is not the beat's doing.
    let slow = [("FLACK_CLUSTER_CHECK_SECS", "5")];
    let a = cluster.instance(&slow).await;
    let b = cluster.instance(&slow).await;
    let mut ann = user(&a, "ann").await;
    ann.join(&general()).await;
    let side = create_and_join(&a, &mut ann, "side").await;
    let mut bob = user(&b, "bob").await;
    bob.join(&general()).await;
    until_set(&cluster, "c:general", |e| e.len() == 2).await;
    let (entries, now, ttl) = presence_set(&cluster, "c:general");
    let entry = |user: flack::chat::model::UserId, entries: &[(String, u64)]| {
        entries
            .iter()
            .find_map(|(member, score)| {
                let (id, instance) = member.split_once('/')?;
                (id == user.0.to_string()).then(|| (instance.to_owned(), *score))
            })
            .unwrap_or_else(|| panic!("no entry of {user:?} in {entries:?}"))
    };
    let (ann_instance, ann_expires) = entry(ann.id(), &entries);
    let (bob_instance, bob_expires) = entry(bob.id(), &entries);
    assert_ne!(ann_instance, bob_instance, "entries name their instance");
    for expires in [ann_expires, bob_expires] {
        assert!(
            expires > now && expires <= now + 15_000,
            "{expires} against {now}"
        );
    }
    assert!(ttl > 0 && ttl <= 15_000, "the set expires too: {ttl}");
    let (entries, _, _) = presence_set(&cluster, "c:side");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entry(ann.id(), &entries).0, ann_instance);
    ann.send(ClientEvent::Leave { room: side }).await;
    until_set(&cluster, "c:side", |e| e.is_empty()).await;
    bob.close().await;
    until_set(&cluster, "c:general", |e| e.len() == 1).await;
}

/// Test 6 (allowances): a user posting through two instances has one allowance, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_posting_allowance_holds_across_instances() {
    let cluster = Cluster::new();
    let slow = [
        ("FLACK_LIMITS_MESSAGES_PER_SECOND", "1"),
        ("FLACK_LIMITS_MESSAGE_BURST", "4"),
        ("FLACK_LIMITS_CHANNELS_PER_MINUTE", "2"),
    ];
    let a = cluster.instance(&slow).await;
    let b = cluster.instance(&slow).await;
    let session = register(&a, "eager").await.expect("registers");
    let mut on_a = Client::connect(&a).await;
    on_a.auth(&session.token).await;
    let mut on_b = Client::connect(&b).await;
    on_b.auth(&session.token).await;
    for i in 0..4 {
        post(&mut on_a, &format!("hello {i}"), &format!("a{i}")).await;
    }
    acks(&mut on_a, 4).await;
    post(&mut on_b, "one too many", "b0").await;
    loop {
        match on_b.next().await {
            ServerEvent::Error { code, .. } => {
                assert_eq!(code, "rate_limited");
                break;
            }
            ServerEvent::Ack { .. } => panic!("the second instance gave a second allowance"),
            _ => {}
        }
    }
    // New channels too: two through A use up the minute's allowance on B as well.
    for (instance, name, status) in [(&a, "first", 200), (&a, "second", 200), (&b, "third", 429)] {
        let form = format!("token={}&name={name}", session.token);
        let answer = http(instance, "POST", "/api/create_channel", Some(&form)).await;
        assert_eq!(answer.status, status, "{name}: {}", answer.body);
        if status == 429 {
            assert!(
                answer.body.contains("channel_rate_limited"),
                "{}",
                answer.body
            );
        }
    }
}

/// Test 6 (allowances): starting private conversations takes from one allowance for the
/// whole cluster: two started through A use up the minute's allowance on B as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_conversations_holds_across_instances() {
    let cluster = Cluster::new();
    let few = [("FLACK_LIMITS_DIRECTS_PER_MINUTE", "2")];
    let a = cluster.instance(&few).await;
    let b = cluster.instance(&few).await;
    let mut on_a = user(&a, "opener").await;
    let first = user(&a, "first").await;
    let second = user(&a, "second").await;
    let third = user(&b, "third").await;
    for peer in [&first, &second] {
        let direct = Room::Direct(DirectKey::between(on_a.id(), peer.id()).expect("two users"));
        on_a.join(&direct).await;
    }
    let mut on_b = Client::connect(&b).await;
    on_b.auth(&on_a.token()).await;
    let direct = Room::Direct(DirectKey::between(on_a.id(), third.id()).expect("two users"));
    on_b.send(ClientEvent::Join {
        room: direct,
        since: None,
        client_ref: Some("third".into()),
    })
    .await;
    loop {
        match on_b.next().await {
            ServerEvent::Error { code, .. } => {
                assert_eq!(code, "direct_rate_limited");
                break;
            }
            ServerEvent::Hub(HubEvent::Joined { .. }) => {
                panic!("the second instance gave a second allowance of conversations")
            }
            _ => {}
        }
    }
}

/// Creates a channel through `instance` as `client`'s user, waits for the client to hear
/// of it, and joins it.
async fn create_and_join(instance: &Instance, client: &mut Client, name: &str) -> Room {
    let form = format!("token={}&name={name}", client.token());
    let answer = http(instance, "POST", "/api/create_channel", Some(&form)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    loop {
        if let ServerEvent::Hub(HubEvent::ChannelCreated { .. }) = client.next().await {
            break;
        }
    }
    let room = common::channel(name);
    client.join(&room).await;
    room
}

/// How many instances receive a Redis channel's changes.
fn subscribers(cluster: &Cluster, channel: &str) -> i64 {
    let client = redis::Client::open(cluster.redis.as_str()).expect("a Redis URL");
    let mut connection = client.get_connection().expect("Redis answers");
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{}:{channel}", cluster.prefix))
        .query(&mut connection)
        .expect("PUBSUB NUMSUB");
    count
}

/// Waits (at most 20 s) until `channel` has `count` subscribers.
async fn until_subscribers(cluster: &Cluster, channel: &str, count: i64) {
    let started = Instant::now();
    while subscribers(cluster, channel) != count {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{channel} kept {} subscribers, not {count}",
            subscribers(cluster, channel)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An instance receives a channel's changes only while the channel is used there: B, with
/// no reader of #quiet, is not subscribed to it; its first reader gets every message posted
/// meanwhile through A, then the live ones; once the reader leaves, B stops following the
/// channel. A private message reaches its recipient on B although B follows no room of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_follows_only_the_rooms_used_there() {
    let cluster = Cluster::new();
    // Unused rooms are followed for 30 checks: 3 s here.
    let quick = [("FLACK_CLUSTER_CHECK_SECS", "0.1")];
    let a = cluster.instance(&quick).await;
    let b = cluster.instance(&quick).await;
    let mut ann = user(&a, "ann").await;
    let quiet = create_and_join(&a, &mut ann, "quiet").await;
    for i in 0..3 {
        ann.post(&quiet, &format!("before {i}")).await;
    }
    ann.acks(3).await;
    until_subscribers(&cluster, "room:c:quiet", 1).await;

    // B knows the channel (the directory is always followed) without following it.
    let started = Instant::now();
    while !http(&b, "POST", "/api/channels", Some(""))
        .await
        .body
        .contains("quiet")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B learns of #quiet"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(subscribers(&cluster, "room:c:quiet"), 1);
    let mut bob = user(&b, "bob").await;
    let ServerEvent::Hub(HubEvent::Joined { messages, .. }) = bob.join(&quiet).await else {
        unreachable!("join answers joined");
    };
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["before 0", "before 1", "before 2"]);
    assert_eq!(subscribers(&cluster, "room:c:quiet"), 2);
    ann.post(&quiet, "live").await;
    assert_eq!(bob.next_message().await.body.as_str(), "live");

    // A private message from A reaches Bob on B, which follows his conversations.
    let direct = Room::Direct(DirectKey::between(ann.id(), bob.id()).expect("two users"));
    ann.post(&direct, "just us").await;
    assert_eq!(bob.next_message().await.body.as_str(), "just us");

    let bob_id = bob.id();
    bob.close().await;
    until_subscribers(&cluster, "room:c:quiet", 1).await;
    until_subscribers(&cluster, &format!("user:{}", bob_id.0), 0).await;
}

/// Waits for `client`'s summary of unread counts, and answers its entry for `room`.
async fn summary_of(client: &mut Client, room: &Room) -> Option<RoomUnread> {
    loop {
        if let ServerEvent::Hub(HubEvent::Unread { rooms }) = client.next().await {
            return rooms.into_iter().find(|entry| entry.room == *room);
        }
    }
}

/// Unread news crosses instances without the whole channel: a connection on B that
/// follows unread counts hears of each message (and its mention) in a channel nobody reads
/// through B once, in order, while B follows only the small news topic, not the channel;
/// a summary counted on B afterwards (a reconnect, another user) agrees with what was
/// posted, although B never held those messages until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_news_reaches_every_instance() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut ann = user(&a, "ann").await;
    let far = create_and_join(&a, &mut ann, "far").await;
    let mut carl = user(&b, "carl").await;
    carl.send(ClientEvent::Unread).await;
    assert_eq!(
        summary_of(&mut carl, &far).await,
        None,
        "#far has no messages yet"
    );
    until_subscribers(&cluster, "news", 1).await;
    let key = "room:c:far";
    assert_eq!(
        subscribers(&cluster, key),
        1,
        "only A, where #far is read, follows it"
    );

    for body in ["one", "hello @carl", "three"] {
        ann.post(&far, body).await;
    }
    ann.acks(3).await;
    let mut heard = Vec::new();
    while heard.len() < 3 {
        if let ServerEvent::Hub(HubEvent::Activity { room, seq, mention }) = carl.next().await {
            assert_eq!(room, far);
            heard.push((seq, mention));
        }
    }
    assert_eq!(heard, [(1, false), (2, true), (3, false)]);
    // Nothing is told twice, also not by the periodic checks (every second).
    let quiet = tokio::time::timeout(Duration::from_millis(2500), async {
        loop {
            if let ServerEvent::Hub(HubEvent::Activity { seq, .. }) = carl.next().await {
                return seq;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "activity told again: {quiet:?}");
    assert_eq!(
        subscribers(&cluster, key),
        1,
        "B still does not follow #far"
    );

    // A new summary on B counts what B heard only as news.
    let mut dave = user(&b, "dave").await;
    dave.send(ClientEvent::Unread).await;
    let entry = summary_of(&mut dave, &far).await.expect("#far is counted");
    assert_eq!((entry.last_seq, entry.unread, entry.mentions), (3, 3, 0));
    let token = carl.token();
    carl.close().await;
    let mut carl = Client::connect(&b).await;
    carl.auth(&token).await;
    carl.send(ClientEvent::Unread).await;
    let entry = summary_of(&mut carl, &far).await.expect("#far is counted");
    assert_eq!((entry.last_seq, entry.unread, entry.mentions), (3, 3, 1));
}

/// Test 6 (connections): an address's connections on one instance count against its limit
/// on the other (as of the first instance's next heartbeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_per_address_holds_across_instances() {
    let cluster = Cluster::new();
    let few = [
        ("FLACK_LIMITS_CONNECTIONS_PER_IP", "3"),
        ("FLACK_CLUSTER_CHECK_SECS", "0.2"),
    ];
    let a = cluster.instance(&few).await;
    let b = cluster.instance(&few).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Client::connect(&a).await);
    }
    // A's next heartbeats tell B.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", b.addr))
            .await
            .is_err();
        if refused {
            break;
        }
        assert!(Instant::now() < deadline, "B never counted A's connections");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
}

/// True when the tests run as root (services are then run as the `postgres` user).
fn root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A Redis server of the test's own, on a free loopback port, that it may kill and start.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let mut redis = OwnRedis {
            port: free_port(),
            child: None,
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again), and waits until it answers.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]).as_deref() != Some("PONG") {
            assert!(Instant::now() < deadline, "redis-server answers");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it at once.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server of the test's own (`initdb` and `pg_ctl`), on a free loopback port.
struct OwnPostgres {
    port: u16,
    dir: PathBuf,
}

impl OwnPostgres {
    const BIN: &'static str = "/usr/lib/postgresql/15/bin";

    fn start() -> OwnPostgres {
        let dir = std::env::temp_dir().join(fresh("pg"));
        std::fs::create_dir_all(&dir).expect("a folder");
        let postgres = OwnPostgres {
            port: free_port(),
            dir,
        };
        if root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&postgres.dir)
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let data = postgres.dir.join("data");
        let ok = postgres
            .as_owner(&format!("{}/initdb", Self::BIN))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(ok.success(), "initdb");
        postgres.ctl_start();
        postgres
    }

    fn as_owner(&self, program: &str) -> Command {
        if root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", program]);
            command
        } else {
            Command::new(program)
        }
    }

    fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.display()
        );
        let ok = self
            .as_owner(&format!("{}/pg_ctl", Self::BIN))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(ok.success(), "pg_ctl start");
    }

    /// Stops it the way a crash would (`immediate`: no checkpoint, connections cut).
    fn stop_immediately(&self) {
        let _ = self
            .as_owner(&format!("{}/pg_ctl", Self::BIN))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop_immediately();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Posts `count` messages with references `{tag}{i}`, one every `every`, and collects what
/// each became: its ack, or the error code it got.
async fn post_stream(
    client: &mut Client,
    tag: &str,
    count: usize,
    every: Duration,
) -> (HashMap<String, (MessageId, u64)>, HashMap<String, String>) {
    let mut acked = HashMap::new();
    let mut refused = HashMap::new();
    let mut tick = tokio::time::interval(every);
    let mut sent = 0;
    while acked.len() + refused.len() < count {
        tokio::select! {
            _ = tick.tick(), if sent < count => {
                post(client, &format!("{tag} {sent}"), &format!("{tag}{sent}")).await;
                sent += 1;
            }
            event = client.next_within(Duration::from_secs(15)) => match event {
                Some(ServerEvent::Ack { client_ref: Some(r), id, seq }) => {
                    acked.insert(r, (id, seq));
                }
                Some(ServerEvent::Error { client_ref: Some(r), code, .. }) => {
                    refused.insert(r, code);
                }
                Some(_) => {}
                None => panic!("the poster heard nothing for 15 s ({} acked, {} refused)", acked.len(), refused.len()),
            }
        }
    }
    (acked, refused)
}

/// Test 3: Redis restarting mid-stream stops nothing: posts are acknowledged throughout,
/// the other instance's members get every message in order (the gap is read back from
/// PostgreSQL), and presence is rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing() {
    let mut redis = OwnRedis::start();
    let cluster = Cluster::on(postgres_base(), redis.url());
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut watcher = user(&b, "watcher").await;
    watcher.join(&general()).await;
    let mut poster = user(&a, "poster").await;
    poster.join(&general()).await;
    presence(&mut watcher, poster.id(), true).await;
    let streaming = post_stream(&mut poster, "m", 60, Duration::from_millis(25));
    let restarting = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        redis.restart();
    };
    let ((acked, refused), ()) = tokio::join!(streaming, restarting);
    assert!(
        refused.is_empty(),
        "posting goes on without Redis: {refused:?}"
    );
    let seen = messages(&mut watcher, 60).await;
    let numbers: Vec<u64> = seen.iter().map(|m| m.seq).collect();
    assert_eq!(numbers, (1..=60).collect::<Vec<u64>>());
    for (id, seq) in acked.values() {
        assert!(seen.iter().any(|m| m.id == *id && m.seq == *seq));
    }
    // Presence comes back from the heartbeats into the new Redis.
    let mut again = Client::connect(&b).await;
    again.auth(&watcher.token()).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        match again.join(&general()).await {
            ServerEvent::Hub(HubEvent::Joined { online, .. })
                if online.iter().any(|u| u.id == poster.id()) =>
            {
                break
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "presence is rebuilt after the restart"
        );
        again.send(ClientEvent::Leave { room: general() }).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Test 5: a message published while an instance's subscription was cut reaches that
/// instance's members within one periodic check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_in_transit_arrives_by_the_periodic_check() {
    let redis = OwnRedis::start();
    let cluster = Cluster::on(postgres_base(), redis.url());
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut watcher = user(&b, "watcher").await;
    watcher.join(&general()).await;
    let mut poster = user(&a, "poster").await;
    for round in 0..5 {
        redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        post(&mut poster, &format!("round {round}"), &format!("k{round}")).await;
        let started = Instant::now();
        let message = watcher.next_message().await;
        assert_eq!(message.body.as_str(), format!("round {round}"));
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "arrived within a check (1 s) and its margin: {:?}",
            started.elapsed()
        );
    }
}

/// Test 4: PostgreSQL stopping at once and starting again: posts meanwhile get a clear
/// `unavailable` error, nothing acknowledged is lost, the epoch stays, and `/readyz` fails
/// while it is down and recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_loses_nothing_acknowledged() {
    let postgres = OwnPostgres::start();
    let cluster = Cluster::on(postgres.base(), shared_redis());
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut welcome = Client::connect_raw(&b).await;
    let epoch = match welcome.next().await {
        ServerEvent::Hub(HubEvent::Welcome { epoch, .. }) => epoch,
        other => panic!("expected welcome, got {other:?}"),
    };
    let mut poster = user(&a, "poster").await;
    let (before, _) = post_stream(&mut poster, "before", 20, Duration::from_millis(10)).await;
    postgres.stop_immediately();
    let (during_acked, during_refused) =
        post_stream(&mut poster, "during", 5, Duration::from_millis(50)).await;
    assert!(
        during_refused.values().all(|code| code == "unavailable"),
        "{during_refused:?}"
    );
    assert!(
        !during_refused.is_empty(),
        "posts fail while the database is down"
    );
    // (Readiness answers are kept for a second.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while http(&a, "GET", "/readyz", None).await.status != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz fails while PostgreSQL is down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    postgres.ctl_start();
    let deadline = Instant::now() + Duration::from_secs(15);
    while http(&a, "GET", "/readyz", None).await.status != 200 {
        assert!(Instant::now() < deadline, "/readyz recovers");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (after, refused) = post_stream(&mut poster, "after", 20, Duration::from_millis(10)).await;
    assert!(refused.is_empty(), "{refused:?}");
    let stored = cluster.stored_ids().await;
    for (id, seq) in before
        .values()
        .chain(during_acked.values())
        .chain(after.values())
    {
        assert!(
            stored.contains(&(id.0, *seq)),
            "acknowledged #{seq} survived"
        );
    }
    let numbers: Vec<u64> = stored.iter().map(|(_, seq)| *seq).collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "no hole in the numbers: {numbers:?}"
    );
    let mut again = Client::connect_raw(&b).await;
    match again.next().await {
        ServerEvent::Hub(HubEvent::Welcome { epoch: now, .. }) => assert_eq!(now, epoch),
        other => panic!("expected welcome, got {other:?}"),
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

/// Posts a message carrying an attachment.
async fn post_file(client: &mut Client, room: &Room, body: &str, attachment: &Attachment) {
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
/// bytes from PostgreSQL; the sweep deletes only rows no stored message carries; and a
/// message leaving the window keeps its file, which the archive still carries.
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

    // The large file's message leaves the 100-message window: the archive keeps it (every
    // message, by default), and its bytes with it.
    for i in 0..100 {
        post(&mut ann, &format!("filler {i}"), &format!("f{i}")).await;
    }
    acks(&mut ann, 100).await;
    let got = download(&b, None, &archive).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(got.bytes == large, "the same bytes through B");
    assert_eq!(cluster.stored_files().await, carried);
}

/// Attachments of archived messages in cluster mode, keeping 150 messages: a picture and a
/// private conversation's file whose messages left their windows download through the
/// other instance (the private one for its participants only) and through an instance
/// started after they left; the files sweep counts archived messages as carriers and
/// deletes neither; once retention lets go of the picture's message, the commit that did
/// so deleted its row, and every instance answers 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_attachments_download_through_every_instance_until_retention_lets_go() {
    let cluster = Cluster::new();
    let keep = [("FLACK_DATA_RETAIN_MESSAGES", "150")];
    let a = cluster.instance(&keep).await;
    let mut b = cluster.instance(&keep).await;
    let mut ann = user(&a, "ann").await;
    let bob = user(&b, "bob").await;
    let eve = user(&b, "eve").await;
    let picture = upload(&a, &ann.token(), "channel=general", "cat.png", PNG).await;
    post_file(&mut ann, &general(), "look", &picture).await;
    ann.acks(1).await;
    let direct = Room::Direct(DirectKey::between(ann.id(), bob.id()).expect("two users"));
    let peer = format!("peer={}", bob.id());
    let plan = upload(&a, &ann.token(), &peer, "plan.txt", b"the secret plan").await;
    post_file(&mut ann, &direct, "the plan", &plan).await;
    ann.acks(1).await;
    ann.fill(&general(), 149).await;
    ann.fill(&direct, 101).await;

    let downloads = |instance: &Instance| {
        let (addr, picture, plan) = (instance.addr, picture.clone(), plan.clone());
        let (bob, eve) = (bob.token(), eve.token());
        async move {
            let got = download(&addr, None, &picture).await;
            assert_eq!(got.status, 200, "{}", got.body);
            assert_eq!(got.bytes, PNG);
            let bobs = download(&addr, Some(&bob), &plan).await;
            assert_eq!(bobs.status, 200, "{}", bobs.body);
            assert_eq!(bobs.bytes, b"the secret plan");
            let eves = download(&addr, Some(&eve), &plan).await;
            assert_eq!(eves.status, 403, "{}", eves.body);
            assert!(!eves.body.contains("secret"));
            assert_eq!(download(&addr, None, &plan).await.status, 401);
        }
    };
    downloads(&b).await;
    let files = SharedFiles::new(cluster.url().parse().expect("a PostgreSQL URL"));
    assert_eq!(files.sweep(Duration::ZERO).await.expect("sweeps"), 0);
    let mut both = vec![picture.id.as_str().to_owned(), plan.id.as_str().to_owned()];
    both.sort();
    assert_eq!(cluster.stored_files().await, both);

    b.kill();
    let c = cluster.instance(&keep).await;
    downloads(&c).await;

    // The 151st message of general lets go of the first, and of its picture.
    ann.post(&general(), "one more").await;
    ann.acks(1).await;
    assert_eq!(cluster.stored_files().await, [plan.id.as_str().to_owned()]);
    assert_eq!(download(&c, None, &picture).await.status, 404);
    assert_eq!(download(&a, None, &picture).await.status, 404);
}

/// Pages stay current across instances: a channel page rendered (and cached) on one
/// instance shows a message posted through another the next time it is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_changes_made_through_other_instances() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let first = http(&b, "GET", "/c/general", None).await;
    assert_eq!(first.status, 200);
    assert!(!first.body.contains("posted through A"));
    let mut poster = user(&a, "poster").await;
    post(&mut poster, "posted through A", "p1").await;
    acks(&mut poster, 1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let page = http(&b, "GET", "/c/general", None).await;
        if page.body.contains("posted through A") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's page never showed A's message"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The epoch changes when PostgreSQL itself lost commits (here: its rows put back as an older
/// backup would have them): every instance notices, the cluster starts a new epoch, the
/// instances stop so as to be restarted, and restarted they serve the new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_lost_commits_starts_a_new_epoch() {
    let cluster = Cluster::new();
    let mut a = cluster.instance(&[]).await;
    let mut b = cluster.instance(&[]).await;
    let mut welcome = Client::connect_raw(&b).await;
    let epoch = match welcome.next().await {
        ServerEvent::Hub(HubEvent::Welcome { epoch, .. }) => epoch,
        other => panic!("expected welcome, got {other:?}"),
    };
    let mut watcher = user(&b, "watcher").await;
    watcher.join(&general()).await;
    let mut poster = user(&a, "poster").await;
    for i in 0..5 {
        post(&mut poster, &format!("m{i}"), &format!("r{i}")).await;
    }
    acks(&mut poster, 5).await;
    messages(&mut watcher, 5).await;
    let db = connect(&cluster.url()).await;
    db.batch_execute(
        "DELETE FROM recent_messages WHERE room_key = 'c:general' AND seq >= 3; \
         UPDATE rooms SET next_seq = 3 WHERE key = 'c:general';",
    )
    .await
    .expect("the rows are put back");
    assert_eq!(a.exited_within(Duration::from_secs(10)).await, Some(75));
    assert_eq!(b.exited_within(Duration::from_secs(10)).await, Some(75));
    let again = cluster.instance(&[]).await;
    let mut welcome = Client::connect_raw(&again).await;
    match welcome.next().await {
        ServerEvent::Hub(HubEvent::Welcome { epoch: now, .. }) => {
            assert_ne!(now, epoch, "a new epoch after lost commits")
        }
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// A channel's messages before `before`, through an instance's server function.
async fn older_page(
    instance: &impl Addressed,
    before: u64,
) -> (Vec<u64>, flack::chat::model::HistoryTop) {
    let answer = http(
        instance,
        "POST",
        "/api/history_before",
        Some(&format!("channel=general&before={before}")),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let page: flack::chat::model::OlderPage = serde_json::from_str(&answer.body).expect("a page");
    (page.messages.iter().map(|m| m.seq).collect(), page.top)
}

/// Posts `count` messages to `general` through `client`, waiting for every acknowledgement.
async fn post_many(client: &mut Client, count: u64) -> HashMap<String, (MessageId, u64)> {
    let mut acked = HashMap::new();
    let mut n = 1;
    while n <= count {
        let batch = (count - n + 1).min(50);
        for k in n..n + batch {
            post(client, &format!("m{k}"), &format!("p{k}")).await;
        }
        acked.extend(acks(client, batch as usize).await);
        n += batch;
    }
    acked
}

/// In cluster mode, messages older than the window are kept in PostgreSQL: posted through
/// one instance, another pages back through them to the beginning, a deletion leaves the
/// archive too, and an instance keeping 150 cuts there and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_messages_are_read_from_postgres_through_any_instance() {
    use flack::chat::model::HistoryTop;
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut poster = user(&a, "poster").await;
    let acked = post_many(&mut poster, 250).await;
    let (id, seq) = acked["p200"];
    assert_eq!(seq, 200);
    poster
        .send(ClientEvent::Delete {
            room: general(),
            id,
            client_ref: Some("d200".into()),
        })
        .await;
    // A deletion is not acknowledged: wait until it is committed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (newer, top) = older_page(&b, 201).await;
        assert_eq!(top, HistoryTop::More);
        if newer == (100..=199).collect::<Vec<_>>() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "200 was never deleted: {newer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        older_page(&b, 151).await,
        ((51..=150).collect(), HistoryTop::More)
    );
    assert_eq!(
        older_page(&b, 51).await,
        ((1..=50).collect(), HistoryTop::Beginning)
    );

    let cut = Cluster::new();
    let c = cut.instance(&[("FLACK_DATA_RETAIN_MESSAGES", "150")]).await;
    let mut poster = user(&c, "poster").await;
    post_many(&mut poster, 250).await;
    assert_eq!(
        older_page(&c, 151).await,
        ((101..=150).collect(), HistoryTop::NotKept)
    );
}

/// A read position moved through one instance reaches the user's tabs on another at once:
/// two tabs of one user on A and B agree without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_positions_reach_the_users_tabs_on_other_instances() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut bob = user(&a, "bob").await;
    for n in 1..=3 {
        post(&mut bob, &format!("m{n}"), &format!("r{n}")).await;
    }
    acks(&mut bob, 3).await;
    let mut ada = user(&a, "ada").await;
    let mut other_tab = Client::connect(&b).await;
    other_tab.auth(&ada.token()).await;
    for tab in [&mut ada, &mut other_tab] {
        tab.send(ClientEvent::Unread).await;
        loop {
            match tab.next().await {
                ServerEvent::Hub(HubEvent::Unread { rooms }) => {
                    let general = rooms.iter().find(|r| r.room == general()).expect("general");
                    assert_eq!((general.read, general.unread), (0, 3));
                    break;
                }
                ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
                other => panic!("expected unread, got {other:?}"),
            }
        }
    }
    ada.send(ClientEvent::Read {
        room: general(),
        seq: 3,
    })
    .await;
    loop {
        match other_tab.next().await {
            ServerEvent::Hub(HubEvent::Unread { rooms }) => {
                assert_eq!(rooms.len(), 1);
                assert_eq!((rooms[0].read, rooms[0].unread), (3, 0));
                break;
            }
            ServerEvent::Hub(HubEvent::Presence { .. } | HubEvent::Activity { .. }) => continue,
            other => panic!("expected unread, got {other:?}"),
        }
    }
}

/// Read positions (issue 17, item 3) are stored in PostgreSQL, and an instance reads a
/// user's again when one of their connections asks for its unread counts: a position moved
/// through one instance is where a connection to another starts from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_positions_are_kept_in_postgres_for_every_instance() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut bob = user(&a, "bob").await;
    for n in 1..=3 {
        post(&mut bob, &format!("m{n}"), &format!("r{n}")).await;
    }
    acks(&mut bob, 3).await;
    let mut ada = user(&a, "ada").await;
    ada.send(ClientEvent::Unread).await;
    assert!(matches!(
        ada.next().await,
        ServerEvent::Hub(HubEvent::Unread { .. })
    ));
    ada.send(ClientEvent::Read {
        room: general(),
        seq: 2,
    })
    .await;
    match ada.next().await {
        ServerEvent::Hub(HubEvent::Unread { rooms }) => assert_eq!(rooms[0].read, 2),
        other => panic!("expected unread, got {other:?}"),
    }
    let db = connect(&cluster.url()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let row = db
            .query_opt(
                "SELECT seq FROM read_positions WHERE user_id = $1",
                &[&(ada.id().0 as i64)],
            )
            .await
            .expect("a query");
        if row.map(|r| r.get::<_, i64>(0)) == Some(2) {
            break;
        }
        assert!(Instant::now() < deadline, "the position was not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (An instance follows only the channels read through it: reading general there brings
    // its copy up to date.)
    let mut elsewhere = Client::connect(&b).await;
    elsewhere.auth(&ada.token()).await;
    elsewhere.join(&general()).await;
    elsewhere.send(ClientEvent::Unread).await;
    loop {
        match elsewhere.next().await {
            ServerEvent::Hub(HubEvent::Unread { rooms }) => {
                let now = rooms.iter().find(|r| r.room == general()).expect("general");
                assert_eq!((now.read, now.unread), (2, 1));
                break;
            }
            ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
            other => panic!("expected unread, got {other:?}"),
        }
    }
}

/// Search in cluster mode reads the shared database's index: a message posted through one
/// instance is found through another, and a private conversation only by its participants.
#[tokio::test]
async fn search_finds_messages_posted_through_another_instance() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut ada = user(&a, "ada").await;
    let bob = user(&b, "bob").await;
    let eve = user(&b, "eve").await;
    post(&mut ada, "the kiwi harvest", "public").await;
    ada.send(ClientEvent::Send {
        room: Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap()),
        body: "a private kiwi".into(),
        attachment: None,
        reply_to: None,
        client_ref: Some("private".into()),
    })
    .await;
    acks(&mut ada, 2).await;
    let found = |token: String| {
        let b = &b;
        async move {
            let form = format!("token={token}&query=kiwi");
            let answer = http(b, "POST", "/api/search", Some(&form)).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let page: flack::chat::model::SearchPage =
                serde_json::from_str(&answer.body).expect("a search page");
            page.hits
                .into_iter()
                .map(|h| h.message.body.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        found(bob.token()).await,
        vec!["a private kiwi", "the kiwi harvest"]
    );
    assert_eq!(found(eve.token()).await, vec!["the kiwi harvest"]);
}

/// A typing notice made through one instance reaches the room's members on another (it
/// crosses Redis, never the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_members_on_other_instances() {
    let cluster = Cluster::new();
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut ann = user(&a, "ann").await;
    let mut bob = user(&b, "bob").await;
    ann.join(&general()).await;
    bob.join(&general()).await;
    until_subscribers(&cluster, "room:c:general", 2).await;
    ann.send(ClientEvent::Typing { room: general() }).await;
    loop {
        if let ServerEvent::Hub(HubEvent::Typing { room, user }) = bob.next().await {
            assert_eq!((room, user.id), (general(), ann.id()));
            break;
        }
    }
}

/// Edits `id` in `general` with a reference.
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

/// The next `message_edited`, as (id, text), skipping other events.
async fn next_edit(client: &mut Client) -> (MessageId, String) {
    loop {
        if let ServerEvent::Hub(HubEvent::MessageEdited { id, body, .. }) = client.next().await {
            return (id, body.as_str().to_owned());
        }
    }
}

/// Two instances of `cluster`, `watcher` on the second in `general`, and `poster` on the
/// first, in `general` too, having posted `body`, which the watcher received: the instances,
/// the poster, the watcher and the message's id.
async fn watched_post(
    cluster: &Cluster,
    poster: &str,
    watcher: &str,
    body: &str,
) -> (Instance, Instance, Client, Client, MessageId) {
    let a = cluster.instance(&[]).await;
    let b = cluster.instance(&[]).await;
    let mut watching = user(&b, watcher).await;
    watching.join(&general()).await;
    let mut posting = user(&a, poster).await;
    posting.join(&general()).await;
    post(&mut posting, body, "p1").await;
    let (id, _) = acks(&mut posting, 1).await["p1"];
    assert_eq!(watching.next_message().await.id, id);
    (a, b, posting, watching, id)
}

/// An edit made through one instance is acknowledged once committed and reaches the room's
/// members on the other; another user is refused; a client joining afterwards on either
/// instance gets the new text, marked edited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_every_instance() {
    let cluster = Cluster::new();
    let (a, b, mut ann, mut watcher, id) = watched_post(&cluster, "ann", "watcher", "helo").await;

    edit(&mut watcher, id, "not mine", "w1").await;
    loop {
        match watcher.next().await {
            ServerEvent::Error { code, .. } => {
                assert_eq!(code, "not_your_message");
                break;
            }
            ServerEvent::Hub(HubEvent::MessageEdited { .. }) => panic!("edited by another"),
            _ => {}
        }
    }
    edit(&mut ann, id, "hello", "e1").await;
    assert_eq!(acks(&mut ann, 1).await["e1"].0, id);
    assert_eq!(next_edit(&mut watcher).await, (id, "hello".to_owned()));
    for instance in [&a, &b] {
        let mut late = Client::connect(instance).await;
        let ServerEvent::Hub(HubEvent::Joined { messages, .. }) = late.join(&general()).await
        else {
            unreachable!("join answers joined");
        };
        let held = messages.iter().find(|m| m.id == id).expect("held");
        assert_eq!(held.body.as_str(), "hello");
        assert!(held.edited_at.is_some());
    }
}

/// An edit published while an instance's subscription was cut reaches that instance's
/// members within one periodic check (the database counts edits with deletions), and no
/// text is ever shown that was not the latest at some point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_lost_in_transit_arrives_by_the_periodic_check() {
    let redis = OwnRedis::start();
    let cluster = Cluster::on(postgres_base(), redis.url());
    let (_a, _b, mut poster, mut watcher, id) =
        watched_post(&cluster, "poster", "watcher", "first draft").await;
    for round in 0..3 {
        redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        let text = format!("draft {round}");
        edit(&mut poster, id, &text, &format!("e{round}")).await;
        let started = Instant::now();
        loop {
            let (edited, got) = next_edit(&mut watcher).await;
            assert_eq!(edited, id);
            if got == text {
                break;
            }
            // A repair may tell an earlier edit once more (the same text again: harmless).
            assert!(
                (0..round).any(|r| got == format!("draft {r}")),
                "an edit never made: {got}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "arrived within a check (1 s) and its margin: {:?}",
            started.elapsed()
        );
    }
}

/// `general`'s reactions to `id` as a client joining `instance` now sees them: each emoji
/// with who gave it.
async fn reactions_seen(instance: &Instance, id: MessageId) -> Vec<(String, Vec<String>)> {
    let mut late = Client::connect(instance).await;
    let ServerEvent::Hub(HubEvent::Joined { messages, .. }) = late.join(&general()).await else {
        unreachable!("join answers joined");
    };
    let held = messages.iter().find(|m| m.id == id).expect("held");
    held.reactions
        .iter()
        .map(|r| {
            let names = r.users.iter().map(|u| u.name.to_string()).collect();
            (r.emoji.as_str().to_owned(), names)
        })
        .collect()
}

/// Reactions given at the same time through two instances to one message are both kept
/// (neither write loses the other's), reach the members of both instances live, and a
/// client joining either instance afterwards sees them; one given twice is told once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_reach_every_instance_and_none_is_lost() {
    let cluster = Cluster::new();
    let (a, b, mut ann, mut bea, id) = watched_post(&cluster, "ann", "bea", "vote").await;

    ann.react(&general(), id, "👍", true, None).await;
    bea.react(&general(), id, "👍", true, None).await;
    bea.react(&general(), id, "🎉", true, None).await;
    bea.react(&general(), id, "🎉", true, None).await;
    for client in [&mut ann, &mut bea] {
        let mut told = Vec::new();
        for _ in 0..3 {
            let (got, emoji, name, on) = client.next_reaction().await;
            assert!(got == id && on);
            told.push((emoji, name));
        }
        told.sort();
        let want = [("🎉", "bea"), ("👍", "ann"), ("👍", "bea")];
        assert_eq!(told, want.map(|(e, n)| (e.to_owned(), n.to_owned())));
    }
    for instance in [&a, &b] {
        let seen = reactions_seen(instance, id).await;
        assert_eq!(seen.len(), 2, "{seen:?}");
        let thumbs = seen.iter().find(|(e, _)| e == "👍").expect("👍");
        assert_eq!(thumbs.1.len(), 2, "both kept: {seen:?}");
    }
    bea.react(&general(), id, "👍", false, None).await;
    assert_eq!(
        ann.next_reaction().await,
        (id, "👍".to_owned(), "bea".to_owned(), false)
    );
}

/// A reaction published while an instance's subscription was cut reaches that instance's
/// members within one periodic check (the database counts reactions with deletions and
/// edits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_lost_in_transit_arrives_by_the_periodic_check() {
    let redis = OwnRedis::start();
    let cluster = Cluster::on(postgres_base(), redis.url());
    let (_a, b, mut poster, mut watcher, id) =
        watched_post(&cluster, "poster", "watcher", "react to me").await;
    for (emoji, on) in [("👀", true), ("🔥", true), ("👀", false)] {
        redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        poster.react(&general(), id, emoji, on, None).await;
        assert_eq!(poster.next_reaction().await.1, emoji);
        let started = Instant::now();
        assert_eq!(
            watcher.next_reaction().await,
            (id, emoji.to_owned(), "poster".to_owned(), on)
        );
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "arrived within a check (1 s) and its margin: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        reactions_seen(&b, id).await,
        vec![("🔥".to_owned(), vec!["poster".to_owned()])]
    );
}

/// The limits hold across instances: a user with 19 reactions to a message gives a 20th
/// through one instance and another through a second at the same moment; each instance,
/// not yet knowing of the other, lets its own through, and the database takes one and
/// refuses the other (`too_many_reactions`), so both instances end with the user's 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaction_limits_hold_across_instances() {
    let cluster = Cluster::new();
    let (a, b, mut poster, _watcher, id) =
        watched_post(&cluster, "poster", "watcher", "so many feelings").await;
    let emoji: Vec<&str> = flack::chat::model::every_emoji()
        .into_iter()
        .map(flack::chat::model::Emoji::as_str)
        .collect();
    let per = flack::chat::model::MAX_REACTIONS_PER_USER;
    for e in &emoji[..per - 1] {
        poster.react(&general(), id, e, true, None).await;
    }
    for _ in 1..per {
        poster.next_reaction().await;
    }
    let mut elsewhere = Client::connect(&b).await;
    elsewhere.auth(&poster.token()).await;
    elsewhere.join(&general()).await;
    poster
        .react(&general(), id, emoji[per - 1], true, Some("here"))
        .await;
    elsewhere
        .react(&general(), id, emoji[per], true, Some("there"))
        .await;
    // Each hears of the one the database took, and one of them is refused.
    let mut refused = Vec::new();
    for client in [&mut poster, &mut elsewhere] {
        let mut given = Vec::new();
        while let Some(event) = client.next_within(Duration::from_millis(1500)).await {
            match event {
                ServerEvent::Error {
                    code, client_ref, ..
                } => refused.push((code, client_ref)),
                ServerEvent::Hub(HubEvent::Reaction { emoji, .. }) => given.push(emoji),
                _ => {}
            }
        }
        assert_eq!(given.len(), 1, "{given:?}");
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "too_many_reactions");
    for instance in [&a, &b] {
        let seen = reactions_seen(instance, id).await;
        assert_eq!(seen.len(), per, "{seen:?}");
    }
}

/// A reply posted through one instance reaches the members on the other with its quote (the
/// instance it reached checked the original in its copy of the room and took the excerpt),
/// and a client joining either instance afterwards sees it; a reply to a message that is not
/// in the room is refused there as on a single server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_reaches_every_instance_with_its_quote() {
    let cluster = Cluster::new();
    let (a, b, mut ann, mut bea, id) =
        watched_post(&cluster, "ann", "bea", "the **plan**\nin detail").await;

    let sent = bea.reply_acked(&general(), "agreed", Some(id)).await;
    let quote = |message: &Message| {
        let reply = message.reply.clone().expect("a reply");
        (reply.id, reply.author.name.to_string(), reply.excerpt)
    };
    let want = (id, "ann".to_owned(), "the plan".to_owned());
    assert_eq!(quote(&sent), want);
    assert_eq!(quote(&ann.next_message().await), want);
    for instance in [&a, &b] {
        let mut late = Client::connect(instance).await;
        let ServerEvent::Hub(HubEvent::Joined { messages, .. }) = late.join(&general()).await
        else {
            unreachable!("join answers joined");
        };
        let held = messages.iter().find(|m| m.id == sent.id).expect("held");
        assert_eq!(quote(held), want);
    }

    bea.send(ClientEvent::Send {
        room: general(),
        body: "to nothing".into(),
        attachment: None,
        reply_to: Some(MessageId(999_999)),
        client_ref: Some("r2".into()),
    })
    .await;
    loop {
        match bea.next().await {
            ServerEvent::Error {
                code, client_ref, ..
            } => {
                assert_eq!(
                    (code.as_str(), client_ref.as_deref()),
                    ("no_such_reply", Some("r2"))
                );
                break;
            }
            ServerEvent::Hub(HubEvent::Message { message }) => {
                assert_ne!(message.body.as_str(), "to nothing", "posted")
            }
            _ => {}
        }
    }
}
