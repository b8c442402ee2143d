//! Cluster mode (issue 16): two Flack instances, A and B, on one PostgreSQL database and one
//! Redis, measured against single-node Flack started in the same run. Three measurements on
//! each: delivery (posters on A, receivers on B; on a single node both on it) with the CPU of
//! every process involved, one room's acknowledged post rate (posters pipelining on both
//! instances), and, for the cluster, failover: A is killed under 1,000 joined clients, which
//! come back on B with their cursors while a poster on B goes on posting.

use crate::fanout::{new_histogram, now_nanos, send_times, Fleet, PADDING};
use crate::net::{self, Ws};
use crate::procstat;
use crate::report::Report;
use crate::servers::{drop_database, postgres_server, Kind, Server, Storage};
use flack::chat::model::{ChannelName, Cursor, Room};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// The channel the post-rate measurement posts in.
const RATE_CHANNEL: &str = "rate";
/// The most posts one poster makes in one measurement, whatever the time allows.
const MAX_POSTS: u64 = 1_000_000;
/// The channel the paced post-rate measurement posts in.
const PACED_CHANNEL: &str = "paced";
/// The channel the failover measurement posts in.
const FAILOVER_CHANNEL: &str = "failover";
/// Source-address numbers (see [`net::source_ip`]) of the post-rate posters and watchers,
/// and of the failover clients: above those of the delivery fleet.
const RATE_SOURCES: usize = 10_000;
const FAILOVER_SOURCES: usize = 20_000;

/// The total post rate of the paced post-rate measurement (issue 16's target), whose
/// acknowledgements then wait for the commit, not for a full window ahead of them.
const PACED_RATE: f64 = 2000.0;

/// Which single-node Flack the cluster is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// The default store.
    Sqlite,
    /// One instance on the PostgreSQL store, no Redis.
    Postgres,
}

impl Baseline {
    /// `sqlite`, `postgres` or `both`.
    pub fn parse(text: &str) -> Result<Vec<Baseline>, String> {
        match text {
            "sqlite" => Ok(vec![Baseline::Sqlite]),
            "postgres" => Ok(vec![Baseline::Postgres]),
            "both" => Ok(vec![Baseline::Sqlite, Baseline::Postgres]),
            other => Err(format!(
                "--baseline {other}: expected sqlite, postgres or both"
            )),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Baseline::Sqlite => "flack",
            Baseline::Postgres => "flackpg",
        }
    }
}

/// How big and how long each measurement is.
#[derive(Clone, Debug)]
pub struct Scale {
    /// Delivery: receivers, senders, their total rate and how long they send.
    pub receivers: usize,
    pub senders: usize,
    pub rate: f64,
    pub delivery: Duration,
    /// Post rate: posters on each instance (twice as many on a single node), posts each
    /// keeps unacknowledged at most, and how long they post.
    pub posters_per_instance: usize,
    pub window: usize,
    pub posting: Duration,
    /// Failover: clients joined on A, the poster's rate on B, and how long it posts before
    /// and after A is killed.
    pub clients: usize,
    pub failover_rate: f64,
    pub before_kill: Duration,
    pub after_kill: Duration,
    pub baselines: Vec<Baseline>,
}

impl Scale {
    /// The measured run: about a minute and a half with the start-ups.
    pub fn full() -> Scale {
        Scale {
            receivers: 100,
            senders: 10,
            rate: 100.0,
            delivery: Duration::from_secs(10),
            posters_per_instance: 4,
            window: 32,
            posting: Duration::from_secs(5),
            clients: 1000,
            failover_rate: 20.0,
            before_kill: Duration::from_secs(3),
            after_kill: Duration::from_secs(5),
            baselines: vec![Baseline::Sqlite, Baseline::Postgres],
        }
    }

    /// A few seconds of each, for CI.
    pub fn smoke() -> Scale {
        Scale {
            receivers: 5,
            senders: 2,
            rate: 20.0,
            delivery: Duration::from_secs(1),
            posters_per_instance: 1,
            window: 4,
            posting: Duration::from_secs(1),
            clients: 20,
            failover_rate: 10.0,
            before_kill: Duration::from_secs(1),
            after_kill: Duration::from_secs(1),
            baselines: vec![Baseline::Sqlite],
        }
    }
}

/// The PostgreSQL server the cluster's database goes on.
fn postgres_base() -> String {
    postgres_server().unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into())
}

/// The Redis the cluster uses (`FLACK_BENCH_REDIS` to change).
fn redis_url() -> String {
    std::env::var("FLACK_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// A cluster's shared parts: a fresh database and Redis prefix, the database dropped with it.
pub struct Rig {
    postgres: String,
    database: String,
    redis: String,
    prefix: String,
}

impl Rig {
    fn new() -> Rig {
        Rig::on_redis(redis_url(), None)
    }

    /// A rig whose instances use the Redis at `redis` (a URL), with names in it starting
    /// with `prefix` (by default one of the run's own, so runs can share a Redis).
    pub fn on_redis(redis: String, prefix: Option<&str>) -> Rig {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("flack_bench_cluster_{}_{nanos}", std::process::id());
        Rig {
            postgres: postgres_base(),
            prefix: prefix.map_or_else(|| name.clone(), str::to_owned),
            database: name,
            redis,
        }
    }

    async fn instance(&self) -> Result<Server, String> {
        self.instance_logging("warn").await
    }

    /// An instance logging what `filter` (`RUST_LOG`) lets through to its log file.
    pub async fn instance_logging(&self, filter: &'static str) -> Result<Server, String> {
        Server::start_flack(Storage::Cluster {
            postgres_url: format!("{}/{}", self.postgres, self.database),
            redis_url: self.redis.clone(),
            prefix: self.prefix.clone(),
            log_filter: filter,
        })
        .await
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        drop_database(&self.postgres, &self.database);
    }
}

/// Which process a CPU reading belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Server,
    Redis,
    /// A PostgreSQL backend serving one of the run's databases.
    PostgresOurs,
    /// Every other PostgreSQL process (WAL writer, checkpointer, other users' backends).
    PostgresOther,
}

/// CPU readings of the servers, Redis and PostgreSQL, and of the machine, at one moment.
struct Meter {
    servers: Vec<u32>,
    databases: Vec<String>,
    readings: HashMap<u32, (Group, f64)>,
    machine: f64,
    harness: f64,
    started: Instant,
}

/// CPU seconds used between a [`Meter`]'s start and stop.
#[derive(Default)]
struct Cpu {
    servers: f64,
    redis: f64,
    postgres_ours: f64,
    postgres_all: f64,
    harness: f64,
    other: f64,
    seconds: f64,
}

fn readings(servers: &[u32], databases: &[String]) -> HashMap<u32, (Group, f64)> {
    let mut map = HashMap::new();
    for &pid in servers {
        if let Some(s) = procstat::sample(pid) {
            map.insert(pid, (Group::Server, s.cpu_secs));
        }
    }
    let mut add = |pid: u32, group: Group| {
        if let Some(s) = procstat::sample(pid) {
            map.insert(pid, (group, s.cpu_secs));
        }
    };
    for (pid, _) in procstat::processes_named("redis-server") {
        add(pid, Group::Redis);
    }
    for (pid, line) in procstat::processes_named("postgres") {
        let ours = databases.iter().any(|d| line.contains(&format!(" {d} ")));
        add(
            pid,
            if ours {
                Group::PostgresOurs
            } else {
                Group::PostgresOther
            },
        );
    }
    map
}

impl Meter {
    fn start(servers: &[&Server], databases: &[String]) -> Meter {
        let servers: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
        Meter {
            readings: readings(&servers, databases),
            servers,
            databases: databases.to_vec(),
            machine: procstat::machine_busy_secs(),
            harness: procstat::own_cpu_secs(),
            started: Instant::now(),
        }
    }

    /// What each group used since the start. A process that started meanwhile counts in
    /// full; one that ended meanwhile is missed.
    fn stop(&self) -> Cpu {
        let now = readings(&self.servers, &self.databases);
        let mut cpu = Cpu {
            harness: procstat::own_cpu_secs() - self.harness,
            seconds: self.started.elapsed().as_secs_f64(),
            ..Cpu::default()
        };
        for (pid, (group, secs)) in &now {
            let before = self.readings.get(pid).map_or(0.0, |(_, b)| *b);
            let used = secs - before;
            match group {
                Group::Server => cpu.servers += used,
                Group::Redis => cpu.redis += used,
                Group::PostgresOurs => {
                    cpu.postgres_ours += used;
                    cpu.postgres_all += used;
                }
                Group::PostgresOther => cpu.postgres_all += used,
            }
        }
        let machine = procstat::machine_busy_secs() - self.machine;
        cpu.other = (machine - cpu.servers - cpu.redis - cpu.postgres_all - cpu.harness).max(0.0);
        cpu
    }
}

impl Cpu {
    /// Puts these figures in `report`; server CPU per unit is per `units`.
    fn fill(&self, report: &mut Report, units: u64) {
        report.server_cpu_secs = self.servers;
        report.server_cpu_us_per_unit = self.servers * 1e6 / units.max(1) as f64;
        report.redis_cpu_secs = self.redis;
        report.postgres_cpu_secs = self.postgres_ours;
        report.postgres_all_cpu_secs = self.postgres_all;
        report.harness_cpu_secs = self.harness;
        report.other_cpu_secs = self.other;
        report.machine_seconds = self.seconds;
    }
}

fn channel(name: &str) -> Result<Room, String> {
    ChannelName::parse(name)
        .map(Room::Channel)
        .map_err(|e| e.to_string())
}

/// The whole scenario: each single-node baseline, then the cluster.
pub async fn run(scale: &Scale) -> Result<Vec<Report>, String> {
    let mut reports = Vec::new();
    for &baseline in &scale.baselines {
        let storage = match baseline {
            Baseline::Sqlite => Storage::Sqlite,
            Baseline::Postgres => Storage::Postgres(postgres_base()),
        };
        let server = Server::start_flack(storage).await?;
        let databases: Vec<String> = server.database().into_iter().collect();
        let label = baseline.label();
        eprintln!("cluster: single-node baseline ({label}): delivery");
        reports.push(delivery(label, &server, &server, &[&server], &databases, scale).await?);
        eprintln!("cluster: single-node baseline ({label}): post rate");
        let posters = vec![server.addr; 2 * scale.posters_per_instance];
        for pace in [None, Some(PACED_RATE)] {
            reports.push(post_rate(label, &posters, &[&server], &databases, scale, pace).await?);
        }
    }
    let rig = Rig::new();
    let mut a = rig.instance().await?;
    let mut b = rig.instance().await?;
    let databases = vec![rig.database.clone()];
    let failed = async {
        eprintln!("cluster: delivery, posters on A, receivers on B");
        reports.push(delivery("cluster", &b, &a, &[&a, &b], &databases, scale).await?);
        eprintln!("cluster: post rate, posters on A and B");
        let posters: Vec<SocketAddr> = (0..2 * scale.posters_per_instance)
            .map(|i| if i % 2 == 0 { a.addr } else { b.addr })
            .collect();
        for pace in [None, Some(PACED_RATE)] {
            reports.push(post_rate("cluster", &posters, &[&a, &b], &databases, scale, pace).await?);
        }
        eprintln!(
            "cluster: failover, {} clients on A, A killed",
            scale.clients
        );
        failover(&mut a, &b, &databases, scale).await
    }
    .await;
    let logged: Vec<String> = [&a, &b].iter().flat_map(|s| s.logged_problems()).collect();
    if failed.is_err() {
        for (name, server) in [("A", &mut a), ("B", &mut b)] {
            for line in server.log_tail(15) {
                eprintln!("  instance {name}: {line}");
            }
        }
    }
    let mut report = failed?;
    report.logged_problems = logged.len() as u64;
    for line in logged.iter().take(20) {
        eprintln!("  instance log: {line}");
    }
    reports.push(report);
    drop(a);
    drop(b);
    drop(rig);
    for sidebar in [false, true] {
        // A cluster of its own (the fleet's names and channel are per instance pair).
        eprintln!(
            "cluster: delivery on A alone; the CPU of B, which has no reader of the room{}",
            if sidebar {
                " but a browser following unread counts"
            } else {
                ""
            }
        );
        let rig = Rig::new();
        let a = rig.instance().await?;
        let b = rig.instance().await?;
        let databases = vec![rig.database.clone()];
        let follower = match sidebar {
            true => Some(UnreadFollower::start(&b).await?),
            false => None,
        };
        let mut elsewhere = delivery("cluster", &a, &a, &[&b], &databases, scale).await?;
        elsewhere.scenario = match &follower {
            None => "cluster_elsewhere".into(),
            Some(follower) => {
                let heard = follower.heard.load(Ordering::Relaxed);
                eprintln!("  B's unread follower heard of {heard} messages");
                if heard == 0 {
                    return Err("the unread follower on B heard of no message".into());
                }
                "cluster_elsewhere_unread".into()
            }
        };
        reports.push(elsewhere);
    }
    Ok(reports)
}

/// A browser's sidebar on an instance: a user following unread counts, counting the
/// `activity` news it hears, until dropped.
struct UnreadFollower {
    heard: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl UnreadFollower {
    async fn start(server: &Server) -> Result<UnreadFollower, String> {
        let name = format!("bench-sidebar-{}", server.addr.port());
        let token = net::register(server.addr, &name).await?;
        let mut ws = net::websocket(server.addr, None).await?;
        for event in [ClientEvent::Auth { token }, ClientEvent::Unread] {
            ws.send(Message::text(event.encode()))
                .await
                .map_err(|e| e.to_string())?;
        }
        let heard = Arc::new(AtomicU64::new(0));
        let counting = heard.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Text(text) = frame else { continue };
                if let Ok(ServerEvent::Hub(HubEvent::Activity { .. })) =
                    ServerEvent::decode(text.as_str())
                {
                    counting.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(UnreadFollower { heard, task })
    }
}

impl Drop for UnreadFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Delivery from senders on `sending` to receivers on `receiving`, with the CPU of
/// `servers`, Redis and PostgreSQL meanwhile.
async fn delivery(
    label: &str,
    receiving: &Server,
    sending: &Server,
    servers: &[&Server],
    databases: &[String],
    scale: &Scale,
) -> Result<Report, String> {
    let fleet = Fleet::connect_split(receiving, sending, scale.receivers, scale.senders).await?;
    let meter = Meter::start(servers, databases);
    let phase = fleet
        .phase(sending, scale.rate, scale.delivery, false)
        .await;
    let cpu = meter.stop();
    drop(fleet);
    let mut report = Report::fanout(
        Kind::Flack,
        scale.receivers,
        scale.senders,
        scale.rate,
        &phase,
    );
    report.scenario = "cluster_delivery".into();
    report.server = label.into();
    cpu.fill(&mut report, phase.received);
    Ok(report)
}

/// What the post-rate posters count together.
struct Posting {
    deadline: Instant,
    sent: AtomicU64,
    acked: AtomicU64,
    /// Acks that came before the deadline: the sustained rate's numerator.
    acked_in_time: AtomicU64,
    refused: AtomicU64,
    acks: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

/// One room's post rate: a poster at each of `posters` (addresses), each keeping up to
/// `scale.window` posts unacknowledged, for `scale.posting`, as fast as acknowledgements
/// allow or at `pace` posts a second in all; a watcher on each server counts deliveries.
async fn post_rate(
    label: &str,
    posters: &[SocketAddr],
    servers: &[&Server],
    databases: &[String],
    scale: &Scale,
    pace: Option<f64>,
) -> Result<Report, String> {
    // Each measurement has its own channel and posters.
    let name = match pace {
        None => RATE_CHANNEL,
        Some(_) => PACED_CHANNEL,
    };
    let room = channel(name)?;
    let interval = pace.map(|rate| Duration::from_secs_f64(posters.len() as f64 / rate));
    let mut tokens = Vec::new();
    for (i, addr) in posters.iter().enumerate() {
        let poster = format!("{name}-poster-{i}-{}", addr.port());
        tokens.push(net::register(*addr, &poster).await?);
    }
    let (Some(first), Some(token)) = (posters.first(), tokens.first()) else {
        return Err("no posters".into());
    };
    net::create_channel(*first, token, name).await?;
    for server in servers {
        net::wait_for_channel(server.addr, name, Duration::from_secs(10)).await?;
    }
    let mut tasks = Vec::new();
    let mut watchers = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let source = net::source_ip(RATE_SOURCES + i);
        watchers.push(joined(server.addr, source, &room, None, None).await?.0);
    }
    let mut connections = Vec::new();
    for (i, (addr, token)) in posters.iter().zip(&tokens).enumerate() {
        let source = net::source_ip(RATE_SOURCES + servers.len() + i);
        let mut ws = net::websocket(*addr, Some(source)).await?;
        let auth = ClientEvent::Auth {
            token: token.clone(),
        };
        ws.send(Message::text(auth.encode()))
            .await
            .map_err(|e| e.to_string())?;
        connections.push(ws);
    }
    let shared = Arc::new(Posting {
        deadline: Instant::now() + scale.posting,
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        acked_in_time: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        acks: Mutex::new(new_histogram()),
        delivered: AtomicU64::new(0),
        latency: Mutex::new(new_histogram()),
    });
    for ws in watchers {
        tasks.push(tokio::spawn(watch(ws, shared.clone())));
    }
    let meter = Meter::start(servers, databases);
    let started = Instant::now();
    let mut writers = Vec::new();
    for ws in connections {
        let (sink, stream) = ws.split();
        let window = Arc::new(Semaphore::new(scale.window));
        tasks.push(tokio::spawn(read_acks(
            stream,
            window.clone(),
            shared.clone(),
        )));
        writers.push(tokio::spawn(pipeline(
            sink,
            room.clone(),
            window,
            interval,
            shared.clone(),
        )));
    }
    for writer in writers {
        let _ = writer.await;
    }
    let posting_time = started.elapsed().min(scale.posting).as_secs_f64();
    let answered = |s: &Posting| s.acked.load(Ordering::SeqCst) + s.refused.load(Ordering::SeqCst);
    let wait = Instant::now() + Duration::from_secs(5);
    while answered(&shared) < shared.sent.load(Ordering::SeqCst) && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked = shared.acked.load(Ordering::SeqCst);
    let expected = acked * servers.len() as u64;
    let wait = Instant::now() + Duration::from_secs(5);
    while shared.delivered.load(Ordering::SeqCst) < expected && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = meter.stop();
    for task in &tasks {
        task.abort();
    }
    let in_time = shared.acked_in_time.load(Ordering::SeqCst);
    let delivered = shared.delivered.load(Ordering::SeqCst);
    let mut report = Report {
        scenario: match pace {
            None => "cluster_post_rate".into(),
            Some(_) => "cluster_post_paced".into(),
        },
        server: label.into(),
        receivers: servers.len(),
        senders: posters.len(),
        target_rate: pace.unwrap_or(0.0),
        seconds: posting_time,
        sent: shared.sent.load(Ordering::SeqCst),
        expected,
        received: delivered,
        loss: expected.saturating_sub(delivered),
        per_second: in_time as f64 / posting_time.max(f64::EPSILON),
        refused: shared.refused.load(Ordering::SeqCst),
        ..Report::default()
    };
    if let Ok(h) = shared.latency.lock() {
        report.set_latency(&h);
    }
    if let Ok(h) = shared.acks.lock() {
        if !h.is_empty() {
            report.ack_p50_us = h.value_at_quantile(0.5);
            report.ack_p99_us = h.value_at_quantile(0.99);
            report.ack_max_us = h.max();
        }
    }
    cpu.fill(&mut report, acked);
    Ok(report)
}

/// Posts as fast as the window allows (and once per `interval`, if given) until the
/// deadline.
async fn pipeline(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    room: Room,
    window: Arc<Semaphore>,
    interval: Option<Duration>,
    shared: Arc<Posting>,
) {
    let mut ticker = interval.map(|every| {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        ticker
    });
    let mut n = 0u64;
    while n < MAX_POSTS {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        let now = Instant::now();
        if now >= shared.deadline {
            break;
        }
        match tokio::time::timeout(shared.deadline - now, window.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            _ => break,
        }
        n += 1;
        let t = now_nanos();
        let send = ClientEvent::Send {
            room: room.clone(),
            body: format!("t={t} {PADDING}"),
            attachment: None,
            reply_to: None,
            // Unique per poster (a resent reference would be taken for a retry).
            client_ref: Some(format!("{t}.{n}")),
        };
        if sink.send(Message::text(send.encode())).await.is_err() {
            break;
        }
        shared.sent.fetch_add(1, Ordering::SeqCst);
    }
}

/// The send time at the start of a post-rate `client_ref` (`<nanos>.<n>`), from its ack.
fn ref_send_time(ack: &str) -> Option<u64> {
    let pattern = "\"client_ref\":\"";
    let digits = &ack[ack.find(pattern)? + pattern.len()..];
    digits[..digits.find('.')?].parse().ok()
}

/// Reads a poster's acks and refusals, each giving its window a post back.
async fn read_acks(
    mut stream: futures_util::stream::SplitStream<Ws>,
    window: Arc<Semaphore>,
    shared: Arc<Posting>,
) {
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        let text = text.as_str();
        if text.starts_with("{\"type\":\"ack\"") {
            let now = now_nanos();
            if let (Some(sent_at), Ok(mut h)) = (ref_send_time(text), shared.acks.lock()) {
                let _ = h.record((now.saturating_sub(sent_at) / 1000).max(1));
            }
            shared.acked.fetch_add(1, Ordering::SeqCst);
            if Instant::now() <= shared.deadline {
                shared.acked_in_time.fetch_add(1, Ordering::SeqCst);
            }
            window.add_permits(1);
        } else if text.starts_with("{\"type\":\"error\"") {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            window.add_permits(1);
        }
    }
}

/// Counts a watcher's deliveries and their latency.
async fn watch(mut ws: Ws, shared: Arc<Posting>) {
    while let Some(Ok(frame)) = ws.next().await {
        let Message::Text(text) = frame else { continue };
        let now = now_nanos();
        let mut count = 0;
        if let Ok(mut h) = shared.latency.lock() {
            for sent_at in send_times(text.as_str()) {
                let _ = h.record((now.saturating_sub(sent_at) / 1000).max(1));
                count += 1;
            }
        }
        shared.delivered.fetch_add(count, Ordering::SeqCst);
    }
}

/// Connects from `source`, reads the welcome (its epoch), authenticates with `token` if
/// given, and joins `room` (from `since`); gives back the connection, the epoch and the
/// `joined` answer's message numbers and whether it replaced the history.
pub async fn joined(
    addr: SocketAddr,
    source: IpAddr,
    room: &Room,
    since: Option<Cursor>,
    token: Option<String>,
) -> Result<(Ws, u64, Vec<u64>, bool), String> {
    let within = Duration::from_secs(10);
    let mut ws = tokio::time::timeout(within, net::websocket(addr, Some(source)))
        .await
        .map_err(|_| "could not connect within 10 s".to_owned())??;
    let mut epoch = None;
    while epoch.is_none() {
        let frame = tokio::time::timeout(within, ws.next())
            .await
            .map_err(|_| "no welcome within 10 s".to_owned())?;
        if let Some(Ok(Message::Text(t))) = frame {
            if let Ok(ServerEvent::Hub(HubEvent::Welcome { epoch: e, .. })) =
                ServerEvent::decode(t.as_str())
            {
                epoch = Some(e);
            }
        } else if !matches!(frame, Some(Ok(_))) {
            return Err(format!("closed before the welcome: {frame:?}"));
        }
    }
    let join = ClientEvent::Join {
        room: room.clone(),
        since,
        client_ref: None,
    };
    let auth = token.map(|token| ClientEvent::Auth { token });
    for event in auth.into_iter().chain([join]) {
        ws.send(Message::text(event.encode()))
            .await
            .map_err(|e| e.to_string())?;
    }
    loop {
        let frame = tokio::time::timeout(within, ws.next())
            .await
            .map_err(|_| "no answer to the join within 10 s".to_owned())?;
        match frame {
            Some(Ok(Message::Text(t))) => match ServerEvent::decode(t.as_str()) {
                Ok(ServerEvent::Hub(HubEvent::Joined {
                    messages, reset, ..
                })) => {
                    let seqs = messages.iter().map(|m| m.seq).collect();
                    return Ok((ws, epoch.unwrap_or(0), seqs, reset));
                }
                Ok(ServerEvent::Error { .. }) => return Err(format!("join refused: {t}")),
                _ => continue,
            },
            Some(Ok(_)) => continue,
            other => return Err(format!("join failed: {other:?}")),
        }
    }
}

/// The sequence number of a live `message` frame, read without decoding the whole frame.
fn live_seq(frame: &str) -> Option<u64> {
    if !frame.starts_with("{\"type\":\"message\"") {
        return None;
    }
    let pattern = "\"seq\":";
    let digits = &frame[frame.find(pattern)? + pattern.len()..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// What the failover's clients and orchestration share.
struct Failover {
    /// The newest number acknowledged before the kill (`u64::MAX` until then).
    target: AtomicU64,
    /// The newest number acknowledged once the poster stopped (`u64::MAX` until then):
    /// a client that has it is done.
    last: AtomicU64,
    /// When A was killed (`now_nanos`; 0 until then).
    killed_at: AtomicU64,
    /// Nobody waits past this.
    hard_stop: Instant,
}

/// What one failover client saw.
#[derive(Default)]
struct Followed {
    seqs: Vec<u64>,
    /// Nanoseconds (`now_nanos`) when its join on B was answered, and when it then held
    /// every message acknowledged before the kill.
    rejoined_at: Option<u64>,
    caught_up_at: Option<u64>,
    /// The cursor it rejoined from, and the numbers the join's answer held.
    rejoined_from: u64,
    catch_up: Vec<u64>,
    /// Catch-ups the server sent while the client was joined (it had fallen behind).
    caught_up_while_live: u64,
    problems: Vec<String>,
}

impl Followed {
    fn push(&mut self, seq: u64, shared: &Failover) {
        self.seqs.push(seq);
        self.check_caught_up(shared);
    }

    fn check_caught_up(&mut self, shared: &Failover) {
        let last = self.seqs.last().copied().unwrap_or(0);
        if self.caught_up_at.is_none()
            && self.rejoined_at.is_some()
            && last >= shared.target.load(Ordering::SeqCst)
        {
            self.caught_up_at = Some(now_nanos());
        }
    }

    fn done(&self, shared: &Failover) -> bool {
        self.rejoined_at.is_some()
            && self.seqs.last().copied().unwrap_or(0) >= shared.last.load(Ordering::SeqCst)
    }
}

/// Reads live messages until the connection drops or the client is done.
async fn read_live(ws: &mut Ws, seen: &mut Followed, shared: &Failover) -> bool {
    loop {
        if seen.done(shared) {
            return true;
        }
        let until = tokio::time::Instant::from_std(shared.hard_stop);
        // Wake up now and then to notice being done without a new frame.
        let tick = tokio::time::Instant::now() + Duration::from_millis(200);
        match tokio::time::timeout_at(until.min(tick), ws.next()).await {
            Err(_) if Instant::now() >= shared.hard_stop => return true,
            Err(_) => continue,
            Ok(Some(Ok(Message::Text(t)))) => {
                let text = t.as_str();
                if let Some(seq) = live_seq(text) {
                    seen.push(seq, shared);
                } else if text.starts_with("{\"type\":\"joined\"") {
                    // A connection that fell behind gets what it missed this way.
                    seen.caught_up_while_live += 1;
                    if let Ok(ServerEvent::Hub(HubEvent::Joined {
                        messages, reset, ..
                    })) = ServerEvent::decode(text)
                    {
                        if reset {
                            seen.problems
                                .push("a catch-up while live replaced the history".into());
                        }
                        for message in messages {
                            seen.push(message.seq, shared);
                        }
                    }
                }
            }
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return false,
        }
    }
}

/// One client: joined on A, it follows the room; when A dies it joins again on B from its
/// cursor and follows on until it holds the last acknowledged message.
async fn follow(
    mut ws: Ws,
    epoch: u64,
    b: SocketAddr,
    source: IpAddr,
    room: Room,
    shared: Arc<Failover>,
) -> Followed {
    let mut seen = Followed::default();
    if read_live(&mut ws, &mut seen, &shared).await {
        return seen;
    }
    drop(ws);
    if shared.killed_at.load(Ordering::SeqCst) == 0 {
        seen.problems
            .push("connection to A dropped before A was killed".into());
    }
    while Instant::now() < shared.hard_stop {
        let since = Some(Cursor {
            epoch,
            seq: seen.seqs.last().copied().unwrap_or(0),
        });
        match joined(b, source, &room, since, None).await {
            Ok((mut ws, now_epoch, seqs, reset)) => {
                if now_epoch != epoch {
                    seen.problems
                        .push(format!("epoch changed: {epoch} then {now_epoch}"));
                }
                if reset {
                    seen.problems
                        .push("the join on B replaced the history".into());
                }
                seen.rejoined_at = Some(now_nanos());
                seen.rejoined_from = seen.seqs.last().copied().unwrap_or(0);
                seen.catch_up = seqs.clone();
                seen.check_caught_up(&shared);
                for seq in seqs {
                    seen.push(seq, &shared);
                }
                if !read_live(&mut ws, &mut seen, &shared).await {
                    seen.problems.push("connection to B dropped".into());
                    continue;
                }
                return seen;
            }
            Err(e) => {
                if seen.problems.len() < 5 {
                    seen.problems.push(format!("rejoining on B: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    seen
}

/// What the failover's poster on B counts.
#[derive(Default)]
struct Poster {
    acked: Mutex<Vec<u64>>,
    newest: AtomicU64,
    sent: AtomicU64,
    refused: AtomicU64,
    stop: AtomicBool,
}

/// Posts to the failover channel on `addr` at `rate` until told to stop (or the hard stop).
/// Gives back the reading task and the writing task, which ends when told to stop.
async fn post_steadily(
    ws: Ws,
    rate: f64,
    hard_stop: Instant,
    poster: Arc<Poster>,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let (mut sink, mut stream) = ws.split();
    let reading = poster.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let Message::Text(text) = frame else { continue };
            match ServerEvent::decode(text.as_str()) {
                Ok(ServerEvent::Ack { seq, .. }) => {
                    if let Ok(mut acked) = reading.acked.lock() {
                        acked.push(seq);
                    }
                    reading.newest.fetch_max(seq, Ordering::SeqCst);
                }
                Ok(ServerEvent::Error { .. }) => {
                    reading.refused.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    });
    let writer = tokio::spawn(async move {
        let Ok(room) = channel(FAILOVER_CHANNEL) else {
            return;
        };
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
        let mut n = 0u64;
        while !poster.stop.load(Ordering::SeqCst) && Instant::now() < hard_stop && n < MAX_POSTS {
            ticker.tick().await;
            n += 1;
            let send = ClientEvent::Send {
                room: room.clone(),
                body: format!("failover {n} {PADDING}"),
                attachment: None,
                reply_to: None,
                client_ref: Some(format!("f{n}")),
            };
            if sink.send(Message::text(send.encode())).await.is_err() {
                break;
            }
            poster.sent.fetch_add(1, Ordering::SeqCst);
        }
    });
    (reader, writer)
}

/// The q-quantile of `values` (sorted here), or 0 if there are none.
fn quantile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let at = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    values[at]
}

/// Failover: `scale.clients` clients joined on `a`, a poster on `b`; `a` is killed and the
/// clients resume on `b`.
async fn failover(
    a: &mut Server,
    b: &Server,
    databases: &[String],
    scale: &Scale,
) -> Result<Report, String> {
    let room = channel(FAILOVER_CHANNEL)?;
    let token = net::register(b.addr, &format!("failover-poster-{}", b.addr.port()))
        .await
        .map_err(|e| format!("registering the poster on B: {e}"))?;
    net::create_channel(b.addr, &token, FAILOVER_CHANNEL)
        .await
        .map_err(|e| format!("creating the channel on B: {e}"))?;
    net::wait_for_channel(a.addr, FAILOVER_CHANNEL, Duration::from_secs(10))
        .await
        .map_err(|e| format!("waiting for the channel on A: {e}"))?;
    let hard_stop = Instant::now() + scale.before_kill + scale.after_kill + Duration::from_secs(60);
    let shared = Arc::new(Failover {
        target: AtomicU64::new(u64::MAX),
        last: AtomicU64::new(u64::MAX),
        killed_at: AtomicU64::new(0),
        hard_stop,
    });
    // Every client joined on A before the poster starts, so each should get 1, 2, ...
    let gate = Arc::new(Semaphore::new(256));
    let mut connecting = Vec::new();
    for i in 0..scale.clients {
        let gate = gate.clone();
        let room = room.clone();
        let addr = a.addr;
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let source = net::source_ip(FAILOVER_SOURCES + i);
            let (ws, epoch, _, _) = joined(addr, source, &room, None, None)
                .await
                .map_err(|e| format!("a client joining on A from {source}: {e}"))?;
            Ok::<_, String>((ws, epoch, source))
        }));
    }
    let mut clients = Vec::new();
    for handle in connecting {
        let (ws, epoch, source) = handle.await.map_err(|e| e.to_string())??;
        clients.push(tokio::spawn(follow(
            ws,
            epoch,
            b.addr,
            source,
            room.clone(),
            shared.clone(),
        )));
    }
    let meter = Meter::start(&[a, b], databases);
    let mut ws = net::websocket(b.addr, Some(net::source_ip(FAILOVER_SOURCES - 1))).await?;
    ws.send(Message::text(ClientEvent::Auth { token }.encode()))
        .await
        .map_err(|e| e.to_string())?;
    let poster = Arc::new(Poster::default());
    let (reading, writing) =
        post_steadily(ws, scale.failover_rate, hard_stop, poster.clone()).await;
    tokio::time::sleep(scale.before_kill).await;
    shared
        .target
        .store(poster.newest.load(Ordering::SeqCst), Ordering::SeqCst);
    let overflows_before = procstat::listen_overflows();
    let killed_at = now_nanos();
    shared.killed_at.store(killed_at, Ordering::SeqCst);
    a.kill();
    tokio::time::sleep(scale.after_kill).await;
    poster.stop.store(true, Ordering::SeqCst);
    // The last post may be on its way: count it before waiting for its ack.
    let _ = tokio::time::timeout(Duration::from_secs(5), writing).await;
    let wait = Instant::now() + Duration::from_secs(5);
    let answered = |p: &Poster| {
        p.acked.lock().map_or(0, |a| a.len() as u64) + p.refused.load(Ordering::SeqCst)
    };
    while answered(&poster) < poster.sent.load(Ordering::SeqCst) && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shared
        .last
        .store(poster.newest.load(Ordering::SeqCst), Ordering::SeqCst);
    let mut followed = Vec::new();
    for client in clients {
        followed.push(client.await.unwrap_or_default());
    }
    let cpu = meter.stop();
    let overflows = procstat::listen_overflows().saturating_sub(overflows_before);
    reading.abort();
    let acked = poster.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let mut rejoined = Vec::new();
    let mut caught_up = Vec::new();
    let (mut missing, mut duplicates, mut out_of_order, mut behind) = (0u64, 0u64, 0u64, 0u64);
    let mut problems: Vec<String> = Vec::new();
    let mut received = 0u64;
    let mut live_catch_ups = 0;
    for seen in &followed {
        live_catch_ups += seen.caught_up_while_live;
        let set: HashSet<u64> = seen.seqs.iter().copied().collect();
        duplicates += (seen.seqs.len() - set.len()) as u64;
        out_of_order += seen.seqs.windows(2).filter(|w| w[1] < w[0]).count() as u64;
        let lost: Vec<u64> = acked.iter().copied().filter(|s| !set.contains(s)).collect();
        if let Some(first) = lost.first() {
            let before = seen.seqs.iter().rev().find(|s| *s < first);
            let after = seen.seqs.iter().find(|s| *s > first);
            problems.push(format!(
                "missed {} acknowledged (first #{first}, between #{before:?} and #{after:?}); \
                 rejoined from #{}, the join on B held {:?}",
                lost.len(),
                seen.rejoined_from,
                seen.catch_up
            ));
        }
        let lost = lost.len() as u64;
        missing += lost;
        received += acked.len() as u64 - lost;
        match seen.rejoined_at {
            Some(t) => rejoined.push(t.saturating_sub(killed_at) / 1000),
            None => behind += 1,
        }
        if let Some(t) = seen.caught_up_at {
            caught_up.push(t.saturating_sub(killed_at) / 1000);
        } else if seen.rejoined_at.is_some() {
            behind += 1;
        }
        problems.extend(seen.problems.iter().cloned());
    }
    if live_catch_ups > 0 {
        problems.push(format!(
            "{live_catch_ups} catch-ups sent to clients that fell behind while joined"
        ));
    }
    problems.sort();
    problems.dedup();
    for problem in problems.iter().take(10) {
        eprintln!("  failover client: {problem}");
    }
    let mut report = Report {
        scenario: "cluster_failover".into(),
        server: "cluster".into(),
        receivers: scale.clients,
        senders: 1,
        target_rate: scale.failover_rate,
        seconds: (scale.before_kill + scale.after_kill).as_secs_f64(),
        sent: acked.len() as u64,
        expected: acked.len() as u64 * scale.clients as u64,
        received,
        loss: missing,
        refused: poster.refused.load(Ordering::SeqCst),
        p50_us: quantile(&mut caught_up, 0.5),
        p99_us: quantile(&mut caught_up, 0.99),
        p999_us: quantile(&mut caught_up, 0.999),
        max_us: caught_up.last().copied().unwrap_or(0),
        rejoined_p50_us: quantile(&mut rejoined, 0.5),
        rejoined_p99_us: quantile(&mut rejoined, 0.99),
        rejoined_max_us: rejoined.last().copied().unwrap_or(0),
        duplicates,
        out_of_order,
        clients_behind: behind,
        client_problems: problems.len() as u64,
        listen_overflows: overflows,
        ..Report::default()
    };
    cpu.fill(&mut report, received);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live message's number is read from its frame; other frames have none.
    #[test]
    fn live_numbers_are_read_from_message_frames() {
        let frame =
            r#"{"type":"message","message":{"id":7,"room":{"channel":"x"},"seq":42,"body":"a"}}"#;
        assert_eq!(live_seq(frame), Some(42));
        assert_eq!(live_seq(r#"{"type":"presence","seq":3}"#), None);
        let ack = r#"{"type":"ack","client_ref":"1234.5","id":3,"seq":4}"#;
        assert_eq!(ref_send_time(ack), Some(1234));
    }

    /// Quantiles of a few values pick the value at or above the fraction asked.
    #[test]
    fn quantiles_of_a_few_values() {
        let mut values = vec![5, 1, 4, 2, 3];
        assert_eq!(quantile(&mut values, 0.5), 3);
        assert_eq!(quantile(&mut values, 0.99), 5);
        assert_eq!(quantile(&mut [], 0.5), 0);
    }
}
