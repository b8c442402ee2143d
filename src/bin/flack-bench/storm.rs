//! The reconnect storm (issue 19, item 2): what a restart or a failover costs when every
//! member of a room comes back at once. `--clients` registered users, each holding a cursor
//! `--missed` messages behind the room's newest, connect at the same moment from
//! `--addresses` loopback source addresses (127.0.0.2 and up), authenticate and join the
//! room with that cursor. Every frame is decoded in full, as the browser does, and each
//! client keeps the room's online list from its `joined` and the `presence` events after.
//!
//! Reported: the time until every client was joined and caught up (its `joined` carried
//! exactly the messages it missed), the time until every client's online list was complete
//! (the first `ONLINE_SHOWN` of the `--clients` users by name, or all of them if fewer,
//! and a count of all `--clients`), the frames and bytes the clients received (what the
//! server sent), by event type, and the server's CPU over the storm.

use crate::fanout::new_histogram;
use crate::net::{self, Ws};
use crate::procstat;
use crate::report::Report;
use crate::servers::{Kind, Server};
use flack::chat::model::{ChannelName, Cursor, Room, UserId, ONLINE_SHOWN};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The channel the storm joins.
const CHANNEL: &str = "storm";

/// How a storm is run.
#[derive(Clone, Debug)]
pub struct Scale {
    /// Clients that reconnect at once.
    pub clients: usize,
    /// Source addresses they come from (127.0.0.2 and up).
    pub addresses: usize,
    /// Messages in the room before the storm.
    pub history: u64,
    /// Messages each client missed: its cursor is this far behind the room's newest.
    pub missed: u64,
    /// How long to wait for every client to be joined and to see everyone online.
    pub patience: Duration,
}

/// The source address of client `i`.
fn source(i: usize, addresses: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        2 + (i % addresses.clamp(1, 250)) as u8,
    ))
}

fn room() -> Result<Room, String> {
    ChannelName::parse(CHANNEL)
        .map(Room::Channel)
        .map_err(|e| e.to_string())
}

/// Frames and bytes of one event type.
#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    bytes: AtomicU64,
}

/// What every client adds to as it reads.
struct Shared {
    clients: usize,
    /// The online list every client should end with: the first [`ONLINE_SHOWN`] users by
    /// name (all of them when there are fewer).
    window: HashSet<UserId>,
    started: Instant,
    joined: AtomicU64,
    complete: AtomicU64,
    /// Milliseconds from the start until the last client joined and caught up, and until
    /// the last one saw every user online.
    joined_at: Mutex<Histogram>,
    complete_at: Mutex<Histogram>,
    by_type: Mutex<BTreeMap<&'static str, Arc<Counts>>>,
    problems: Mutex<BTreeMap<String, u64>>,
    stop: AtomicBool,
}

type Histogram = hdrhistogram::Histogram<u64>;

impl Shared {
    fn counts(&self, kind: &'static str) -> Arc<Counts> {
        let mut map = self.by_type.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(kind).or_default().clone()
    }

    fn problem(&self, what: String) {
        let mut map = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(what).or_default() += 1;
    }

    fn elapsed_us(&self) -> u64 {
        (self.started.elapsed().as_micros() as u64).max(1)
    }
}

/// The event type a decoded frame is counted under.
fn kind_of(event: &Result<ServerEvent, flack::protocol::ProtocolError>) -> &'static str {
    match event {
        Ok(ServerEvent::Hub(HubEvent::Presence { .. })) => "presence",
        Ok(ServerEvent::Hub(HubEvent::Joined { .. })) => "joined",
        Ok(ServerEvent::Hub(HubEvent::Welcome { .. })) => "welcome",
        Ok(ServerEvent::Authenticated { .. }) => "authenticated",
        Ok(ServerEvent::Hub(HubEvent::Message { .. })) => "message",
        Ok(ServerEvent::Error { .. }) => "error",
        Ok(_) => "other",
        Err(_) => "undecodable",
    }
}

/// Applies a `presence` event to an online list (ids) and count.
fn apply_presence(online: &mut HashSet<UserId>, count: &mut usize, event: &HubEvent) {
    if let HubEvent::Presence {
        came,
        went,
        online_count,
        ..
    } = event
    {
        for user in went {
            online.remove(&user.id);
        }
        for user in came {
            online.insert(user.id);
        }
        *count = *online_count;
    }
}

/// One client of the storm: connects, authenticates, joins with its cursor, then reads
/// until told to stop.
async fn client(
    server: std::net::SocketAddr,
    source: IpAddr,
    token: String,
    since: Cursor,
    missed: u64,
    shared: Arc<Shared>,
    gate: Arc<tokio::sync::Semaphore>,
) {
    let ws: Ws = {
        // At most `gate` handshakes in flight, so the listen queue is not what is measured.
        let Ok(_permit) = gate.acquire().await else {
            return;
        };
        match net::websocket(server, Some(source)).await {
            Ok(ws) => ws,
            Err(e) => return shared.problem(format!("connect: {e}")),
        }
    };
    let (mut sink, mut stream) = ws.split();
    let Ok(room) = room() else { return };
    for event in [
        ClientEvent::Auth { token },
        ClientEvent::Join {
            room: room.clone(),
            since: Some(since),
            client_ref: None,
        },
    ] {
        if sink.send(Message::text(event.encode())).await.is_err() {
            return shared.problem("send failed".into());
        }
    }
    let mut online: HashSet<UserId> = HashSet::new();
    let mut count = 0;
    let mut joined = false;
    let mut complete = false;
    let mut counts: BTreeMap<&'static str, Arc<Counts>> = BTreeMap::new();
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if shared.stop.load(Ordering::Relaxed) { break; }
                continue;
            }
        };
        let Some(Ok(frame)) = frame else {
            if !shared.stop.load(Ordering::Relaxed) {
                shared.problem("connection closed".into());
            }
            break;
        };
        let Message::Text(text) = frame else { continue };
        let event = ServerEvent::decode(text.as_str());
        let kind = kind_of(&event);
        let c = counts
            .entry(kind)
            .or_insert_with(|| shared.counts(kind))
            .clone();
        c.frames.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        match event {
            // A later `joined` (the server's catch-up for a connection that fell behind)
            // replaces the online list, as in the browser.
            Ok(ServerEvent::Hub(HubEvent::Joined {
                online: list,
                online_count,
                ..
            })) if joined => {
                online = list.iter().map(|u| u.id).collect();
                count = online_count;
            }
            Ok(ServerEvent::Hub(HubEvent::Joined {
                reset,
                messages,
                online: list,
                online_count,
                ..
            })) => {
                if reset || messages.len() as u64 != missed {
                    shared.problem(format!(
                        "joined with reset {reset} and {} messages",
                        messages.len()
                    ));
                }
                online = list.iter().map(|u| u.id).collect();
                count = online_count;
                joined = true;
                shared.joined.fetch_add(1, Ordering::SeqCst);
                let _ = shared
                    .joined_at
                    .lock()
                    .map(|mut h| h.record(shared.elapsed_us()));
            }
            Ok(ServerEvent::Hub(event @ HubEvent::Presence { .. })) => {
                apply_presence(&mut online, &mut count, &event)
            }
            Ok(ServerEvent::Error { code, .. }) => shared.problem(format!("error {code}")),
            _ => {}
        }
        if joined && !complete && count == shared.clients && online == shared.window {
            complete = true;
            shared.complete.fetch_add(1, Ordering::SeqCst);
            let _ = shared
                .complete_at
                .lock()
                .map(|mut h| h.record(shared.elapsed_us()));
        }
    }
}

/// Registers the storm's users, fills the room, then lets every client reconnect at once.
pub async fn run(scale: &Scale) -> Result<Report, String> {
    let server = Server::start(Kind::Flack).await?;
    let addr = server.addr;
    eprintln!("  registering {} users", scale.clients);
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let mut registering = Vec::new();
    for i in 0..scale.clients {
        let gate = gate.clone();
        registering.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            net::register_from(addr, None, &format!("storm-{i}")).await
        }));
    }
    let mut tokens = Vec::new();
    let mut users = Vec::new();
    for handle in registering {
        let session = handle.await.map_err(|e| e.to_string())??;
        tokens.push(session.token);
        users.push(session.user);
    }
    users.sort_by_key(|u| u.name.key());
    let window = users.iter().take(ONLINE_SHOWN).map(|u| u.id).collect();
    let first = tokens.first().cloned().ok_or("no clients")?;
    net::create_channel(addr, &first, CHANNEL).await?;
    // The room's history, posted by the first user; the epoch comes with `welcome`.
    let mut ws = net::websocket(addr, None).await?;
    let mut epoch = None;
    let send = |event: ClientEvent| Message::text(event.encode());
    ws.send(send(ClientEvent::Auth { token: first }))
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..scale.history {
        ws.send(send(ClientEvent::Send {
            room: room()?,
            body: format!("before the storm {i}"),
            attachment: None,
            reply_to: None,
            client_ref: None,
        }))
        .await
        .map_err(|e| e.to_string())?;
    }
    let mut acked = 0;
    while acked < scale.history || epoch.is_none() {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| "the history was not acknowledged in time")?;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => return Err(format!("filling the room: {other:?}")),
        };
        match ServerEvent::decode(text.as_str()) {
            Ok(ServerEvent::Hub(HubEvent::Welcome { epoch: e, .. })) => epoch = Some(e),
            Ok(ServerEvent::Ack { .. }) => acked += 1,
            Ok(ServerEvent::Error { code, .. }) => return Err(format!("filling: {code}")),
            _ => {}
        }
    }
    drop(ws);
    let since = Cursor {
        epoch: epoch.unwrap_or_default(),
        seq: scale.history.saturating_sub(scale.missed),
    };
    // Let the server settle (the last connection's departure, the store's writes).
    tokio::time::sleep(Duration::from_millis(500)).await;

    eprintln!(
        "  storm: {} clients from {} addresses",
        scale.clients, scale.addresses
    );
    let before = server.sample();
    let harness_before = procstat::own_cpu_secs();
    let started = Instant::now();
    let shared = Arc::new(Shared {
        clients: scale.clients,
        window,
        started,
        joined: AtomicU64::new(0),
        complete: AtomicU64::new(0),
        joined_at: Mutex::new(new_histogram()),
        complete_at: Mutex::new(new_histogram()),
        by_type: Mutex::new(BTreeMap::new()),
        problems: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
    });
    let handshakes = Arc::new(tokio::sync::Semaphore::new(1024));
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        tasks.push(tokio::spawn(client(
            addr,
            source(i, scale.addresses),
            token,
            since,
            scale.missed,
            shared.clone(),
            handshakes.clone(),
        )));
    }
    let n = scale.clients as u64;
    let deadline = started + scale.patience;
    let mut all_joined = None;
    let mut all_complete = None;
    while Instant::now() < deadline && all_complete.is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if all_joined.is_none() && shared.joined.load(Ordering::SeqCst) >= n {
            all_joined = Some(started.elapsed());
        }
        if shared.complete.load(Ordering::SeqCst) >= n {
            all_complete = Some(started.elapsed());
        }
    }
    // Whatever follows at once (a last presence tick) is part of the storm's cost.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server.sample();
    let harness_cpu = procstat::own_cpu_secs() - harness_before;
    shared.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }
    let mut report = Report {
        scenario: "storm".into(),
        server: "flack".into(),
        receivers: scale.clients,
        seconds: all_joined.unwrap_or(scale.patience).as_secs_f64(),
        expected: n,
        received: shared.joined.load(Ordering::SeqCst),
        loss: n - shared.joined.load(Ordering::SeqCst).min(n),
        per_second: shared.joined.load(Ordering::SeqCst) as f64
            / all_joined.unwrap_or(scale.patience).as_secs_f64(),
        server_rss_kib: after.rss_kib,
        server_cpu_secs: after.cpu_secs - before.cpu_secs,
        server_cpu_us_per_unit: (after.cpu_secs - before.cpu_secs) * 1e6 / n.max(1) as f64,
        harness_cpu_secs: harness_cpu,
        ..Report::default()
    };
    if let Ok(h) = shared.joined_at.lock() {
        report.set_latency(&h);
    }
    let mut times = BTreeMap::new();
    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
    times.insert("all_joined_ms".to_owned(), ms(all_joined));
    times.insert("all_online_ms".to_owned(), ms(all_complete));
    times.insert(
        "clients_with_full_online_list".to_owned(),
        shared.complete.load(Ordering::SeqCst),
    );
    report.tallies.insert("storm".into(), times);
    let mut frames = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    for (kind, c) in shared.by_type.lock().map_err(|e| e.to_string())?.iter() {
        frames.insert((*kind).to_owned(), c.frames.load(Ordering::SeqCst));
        bytes.insert((*kind).to_owned(), c.bytes.load(Ordering::SeqCst));
    }
    frames.insert("total".into(), frames.values().sum());
    bytes.insert("total".into(), bytes.values().sum());
    report.tallies.insert("frames".into(), frames);
    report.tallies.insert("bytes".into(), bytes);
    let problems = shared.problems.lock().map_err(|e| e.to_string())?.clone();
    if !problems.is_empty() {
        report.tallies.insert("problems".into(), problems);
    }
    Ok(report)
}
