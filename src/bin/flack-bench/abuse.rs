//! The abuse soak (hardening issue 15): ordinary clients chat in one channel of a Flack
//! running with its default limits while attackers, each from its own loopback source
//! address, flood it the ways the issue found; reports the ordinary clients' latency and
//! loss, the server's peak memory and open files, the slowest `GET /`, and what each attack
//! got (frames, and refusals by error code).

use crate::fanout::{new_histogram, now_nanos, send_times};
use crate::net::{self, Http, Ws};
use crate::procstat;
use crate::report::Report;
use crate::servers::{Kind, Limits, Server};
use flack::chat::model::{ChannelName, DirectKey, Room, UserId};
use flack::protocol::ClientEvent;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The channel the ordinary clients talk in.
const TOWN: &str = "town";
/// The channel attack 7 makes large.
const BIG: &str = "big";
/// The channel attack 1 fills and joins (every server has it).
const GENERAL: &str = "general";
/// Filler so each ordinary message is about the size of a short chat line.
const PADDING: &str = "the quick brown fox jumps over the lazy dog";
/// Messages one user may post at once with the default `limits.message_burst`.
const MESSAGE_BURST: usize = 20;

/// Source-address numbers (see [`net::source_ip`]) above those of the ordinary clients:
/// each attack comes from its own address, so the per-address connection limit counts it
/// apart from the others.
/// The first of the prober's addresses: it takes [`PROBER_ADDRESSES`] in turn.
const PROBER: usize = 1100;
/// A page a second from each of ten addresses, as visitors arrive: one address loading ten
/// pages a second is itself over the default `limits.pages_per_minute` (120).
const PROBER_ADDRESSES: usize = 10;
const FILLERS: usize = 1001;
const JOIN_FLOOD: usize = 1002;
const RENAMES: usize = 1003;
const JOIN_LEAVE: usize = 1004;
const SLOW_HTTP: usize = 1005;
const REGISTRATIONS: usize = 1006;
const DIRECTS: usize = 1007;
const UPLOADS: usize = 1008;
const BIG_PAGE: usize = 1009;

/// The sizes of a run: the soak issue 15 asks for, or the seconds-long one `smoke` runs.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Ordinary clients, all in one channel.
    pub members: usize,
    /// How many of them post.
    pub senders: usize,
    /// Their messages per second, in total.
    pub rate: f64,
    /// Messages put in `general` (attack 1) and `big` (attack 7) before the run.
    pub fill: usize,
    /// `join` frames each of attack 1's two connections writes at once.
    pub flood_joins: usize,
    /// Events each of attacks 2, 3 and 5's private-conversation opener sends at most.
    pub flood_events: u64,
    /// Connections attack 4 leaves with half a request header.
    pub slow_requests: usize,
    /// Registration attempts of attack 5 (each registered user then creates a channel).
    pub registrations: usize,
    /// Upload attempts of attack 6, and the size of each.
    pub uploads: usize,
    pub upload_bytes: usize,
    /// Loads of the large page at most (attack 7).
    pub page_loads: u64,
}

impl Scale {
    /// The soak: 100 ordinary clients, 10 posting 50 messages a second in total.
    pub fn soak() -> Scale {
        Scale {
            members: 100,
            senders: 10,
            rate: 50.0,
            fill: 100,
            flood_joins: 1000,
            flood_events: 100_000,
            slow_requests: 200,
            registrations: 5000,
            uploads: 200,
            upload_bytes: 10 * 1024 * 1024,
            page_loads: 100_000,
        }
    }

    /// Every attack, small enough for CI.
    pub fn smoke() -> Scale {
        Scale {
            members: 10,
            senders: 2,
            rate: 10.0,
            fill: 20,
            flood_joins: 100,
            flood_events: 1000,
            slow_requests: 20,
            registrations: 20,
            uploads: 2,
            upload_bytes: 1024 * 1024,
            page_loads: 100,
        }
    }
}

/// Named counters one side of the run keeps: frames by type, refusals by code, outcomes.
#[derive(Default)]
struct Counts(Mutex<BTreeMap<String, u64>>);

impl Counts {
    fn add(&self, key: impl Into<String>, n: u64) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(key.into()).or_default() += n;
        }
    }

    /// Keeps the largest `value` seen under `key`.
    fn max(&self, key: impl Into<String>, value: u64) {
        if let Ok(mut map) = self.0.lock() {
            let entry = map.entry(key.into()).or_default();
            *entry = (*entry).max(value);
        }
    }

    fn take(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Counts one frame a client received, and the error code if it is a refusal.
    fn frame(&self, text: &str) {
        let kind = frame_type(text);
        self.add(format!("frame {kind}"), 1);
        if kind == "error" {
            self.add(format!("refused {}", field(text, "code").unwrap_or("?")), 1);
        }
    }
}

/// A server frame's `type` (always its first member).
fn frame_type(text: &str) -> &str {
    text.strip_prefix("{\"type\":\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("?")
}

/// The first string member called `name` in a JSON text (error codes, in frames and in
/// HTTP error bodies).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("\"{name}\":\"");
    let rest = &text[text.find(&pattern)? + pattern.len()..];
    rest.split('"').next()
}

fn channel(name: &str) -> Result<Room, String> {
    ChannelName::parse(name)
        .map(Room::Channel)
        .map_err(|e| e.to_string())
}

fn join(room: &Room) -> String {
    ClientEvent::Join {
        room: room.clone(),
        since: None,
        client_ref: None,
    }
    .encode()
}

fn source(n: usize) -> Option<IpAddr> {
    Some(net::source_ip(n))
}

/// Reads frames until one satisfies `done` (an `error` frame fails), for at most 15 s.
async fn wait_for(ws: &mut Ws, what: &str, done: impl Fn(&str) -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if done(t.as_str()) => return Ok(()),
            Ok(Some(Ok(Message::Text(t)))) if frame_type(t.as_str()) == "error" => {
                return Err(format!("{what}: {t}"))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => return Err(format!("{what}: connection ended ({other:?})")),
            Err(_) => return Err(format!("{what}: no answer within 15 s")),
        }
    }
}

/// A WebSocket from `source`, authenticated with `token`.
async fn signed_in(addr: SocketAddr, source: Option<IpAddr>, token: &str) -> Result<Ws, String> {
    let mut ws = timeout(Duration::from_secs(15), net::websocket(addr, source))
        .await
        .map_err(|_| "no WebSocket within 15 s".to_owned())??;
    let auth = ClientEvent::Auth {
        token: token.to_owned(),
    };
    ws.send(Message::text(auth.encode()))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(&mut ws, "auth", |t| frame_type(t) == "authenticated").await?;
    Ok(ws)
}

/// Posts `count` messages of `body` to `room`, over enough users that none exceeds the
/// default burst (so the posts are not refused), and waits for every `ack`.
async fn fill(
    addr: SocketAddr,
    room: &Room,
    tag: &str,
    body: &str,
    count: usize,
) -> Result<(), String> {
    let mut users = Vec::new();
    for (k, first) in (0..count).step_by(MESSAGE_BURST).enumerate() {
        let n = MESSAGE_BURST.min(count - first);
        let (room, body) = (room.clone(), body.to_owned());
        let name = format!("filler-{tag}-{k}");
        users.push(tokio::spawn(async move {
            let session = net::register_from(addr, source(FILLERS), &name).await?;
            let mut ws = signed_in(addr, source(FILLERS), &session.token).await?;
            for _ in 0..n {
                let send = ClientEvent::Send {
                    room: room.clone(),
                    body: body.clone(),
                    attachment: None,
                    reply_to: None,
                    client_ref: None,
                };
                ws.feed(Message::text(send.encode()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            ws.flush().await.map_err(|e| e.to_string())?;
            for _ in 0..n {
                wait_for(&mut ws, "filling a channel", |t| frame_type(t) == "ack").await?;
            }
            Ok::<(), String>(())
        }));
    }
    for user in users {
        user.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// What the ordinary clients share while the run goes on, for the end-of-run waits.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    received: AtomicU64,
}

/// What one ordinary client saw.
struct Seen {
    latency: Histogram<u64>,
    frames: Counts,
    lost_connection: bool,
}

/// When an ordinary client posts: its first message after `offset`, then every `interval`
/// until `until`.
struct Posting {
    offset: Duration,
    interval: Duration,
    until: Instant,
}

/// The next tick of `ticker`; never, without one.
async fn next_tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// One ordinary client: reads everything (recording the latency of every message the first
/// time it arrives, live or in a catch-up) and, if `posting`, posts, until `stop`.
async fn member(
    mut ws: Ws,
    posting: Option<Posting>,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen {
        latency: new_histogram(),
        frames: Counts::default(),
        lost_connection: false,
    };
    let mut delivered = HashSet::new();
    let room = channel(TOWN).ok();
    let mut ticker = posting.as_ref().map(|p| {
        let mut t = tokio::time::interval_at(Instant::now() + p.offset, p.interval);
        // After a stall, post at the set pace again rather than in a burst the per-user
        // limit would refuse.
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let until = posting.as_ref().map(|p| p.until);
    loop {
        let posting_now = until.is_some_and(|u| Instant::now() < u);
        tokio::select! {
            _ = stop.changed() => break,
            _ = next_tick(&mut ticker), if posting_now => {
                let Some(room) = room.clone() else { break };
                let t = now_nanos();
                let send = ClientEvent::Send {
                    room,
                    body: format!("t={t} {PADDING}"),
                    attachment: None,
                    reply_to: None,
                    client_ref: Some(t.to_string()),
                };
                if ws.send(Message::text(send.encode())).await.is_err() {
                    seen.lost_connection = true;
                    break;
                }
                live.sent.fetch_add(1, Ordering::Relaxed);
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    _ => {
                        seen.lost_connection = true;
                        break;
                    }
                };
                let text = text.as_str();
                seen.frames.frame(text);
                match frame_type(text) {
                    "message" | "joined" => {
                        let now = now_nanos();
                        for sent_at in send_times(text) {
                            if delivered.insert(sent_at) {
                                let _ = seen
                                    .latency
                                    .record((now.saturating_sub(sent_at) / 1000).max(1));
                                live.received.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    "ack" => {
                        live.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    "error" => {
                        live.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    }
    seen
}

/// Peaks of the server process, sampled every 200 ms.
#[derive(Default)]
struct Peaks {
    rss_kib: u64,
    hwm_kib: u64,
    open_files: u64,
    samples: u64,
}

async fn monitor(pid: u32, mut stop: watch::Receiver<bool>, max_samples: u64) -> Peaks {
    let mut peaks = Peaks::default();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while peaks.samples < max_samples {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        if let Some((rss, hwm)) = procstat::memory(pid) {
            peaks.rss_kib = peaks.rss_kib.max(rss);
            peaks.hwm_kib = peaks.hwm_kib.max(hwm);
        }
        if let Some(files) = procstat::open_files(pid) {
            peaks.open_files = peaks.open_files.max(files as u64);
        }
        peaks.samples += 1;
    }
    peaks
}

/// `GET /` on a new connection every 100 ms, from ten addresses in turn; a probe counts from
/// the connect to the last byte, and one without an answer within 5 s (or answered with
/// anything but 200) counts as failed.
async fn prober(
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
    max_probes: u64,
) -> (Histogram<u64>, u64) {
    let mut latency = new_histogram();
    let mut failures = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while latency.len() < max_probes {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        let answer = timeout(Duration::from_secs(5), async {
            let from = PROBER + latency.len() as usize % PROBER_ADDRESSES;
            let mut http = Http::connect(addr, source(from)).await?;
            http.request("GET", "/", None).await
        })
        .await;
        let ok = matches!(answer, Ok(Ok(ref r)) if r.status == 200);
        if !ok {
            failures += 1;
        }
        let _ = latency.record((started.elapsed().as_micros() as u64).max(1));
    }
    (latency, failures)
}

/// What the attacks need: the server, when to stop, the sizes, and who to pick on.
#[derive(Clone)]
struct Attack {
    addr: SocketAddr,
    until: Instant,
    /// Set once the ordinary clients' last deliveries are in (or waited for).
    stop: watch::Receiver<bool>,
    scale: Scale,
    victims: Vec<UserId>,
}

/// Attack 1: connections that each write `join` frames for `general` (filled with large
/// messages) in one go and never read; once the run is over and measured, what the server
/// had queued for them is read for up to 2 s and counted.
async fn join_flood(mut a: Attack, counts: Arc<Counts>) {
    let Ok(general) = channel(GENERAL) else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut ws = match net::websocket(a.addr, source(JOIN_FLOOD)).await {
            Ok(ws) => ws,
            Err(e) => {
                counts.add(format!("connect failed: {e}"), 1);
                continue;
            }
        };
        let mut written = 0;
        for _ in 0..a.scale.flood_joins {
            if ws.feed(Message::text(join(&general))).await.is_err() {
                break;
            }
            written += 1;
        }
        let _ = ws.flush().await;
        counts.add("joins written", written);
        held.push(ws);
    }
    let _ = timeout_at(a.until + Duration::from_secs(30), a.stop.wait_for(|s| *s)).await;
    for mut ws in held {
        let drain = Instant::now() + Duration::from_secs(2);
        while let Ok(frame) = timeout_at(drain, ws.next()).await {
            match frame {
                Some(Ok(Message::Text(t))) => {
                    counts.add("queued bytes read after the run", t.len() as u64);
                    counts.frame(t.as_str());
                }
                Some(Ok(Message::Close(close))) => {
                    let code = close.map_or(0, |c| u16::from(c.code));
                    counts.add(format!("closed by the server (code {code})"), 1);
                    break;
                }
                Some(Ok(_)) => {}
                _ => {
                    counts.add("connection ended", 1);
                    break;
                }
            }
        }
    }
}

/// Sends `event(n)` for n = 0, 1, ... as fast as the server takes them (at most `max`,
/// until `until`) while reading and counting every frame that comes back.
async fn flood(ws: Ws, event: impl Fn(u64) -> String, max: u64, until: Instant, counts: &Counts) {
    let (mut sink, mut stream) = ws.split();
    let writer = async {
        let mut n = 0;
        while n < max && Instant::now() < until {
            match timeout_at(until, sink.send(Message::text(event(n)))).await {
                Ok(Ok(())) => n += 1,
                Ok(Err(_)) => {
                    counts.add("send failed", 1);
                    break;
                }
                Err(_) => break,
            }
        }
        // Written to the socket, not necessarily read by the server yet.
        counts.add("events written", n);
    };
    let reader = async {
        while let Ok(frame) = timeout_at(until, stream.next()).await {
            match frame {
                Some(Ok(Message::Text(t))) => counts.frame(t.as_str()),
                Some(Ok(Message::Close(close))) => {
                    let code = close.map_or(0, |c| u16::from(c.code));
                    counts.add(format!("closed by the server (code {code})"), 1);
                    break;
                }
                Some(Ok(_)) => {}
                _ => {
                    counts.add("connection ended", 1);
                    break;
                }
            }
        }
    };
    tokio::join!(writer, reader);
}

/// Registers `name` from `from` and signs it in there; failures are counted, not fatal.
async fn attacker(
    a: &Attack,
    from: usize,
    name: &str,
    counts: &Counts,
) -> Option<(UserId, String, Ws)> {
    let result = async {
        let session = net::register_from(a.addr, source(from), name).await?;
        let ws = signed_in(a.addr, source(from), &session.token).await?;
        Ok::<_, String>((session.user.id, session.token, ws))
    }
    .await;
    match result {
        Ok(it) => Some(it),
        Err(e) => {
            counts.add(format!("could not start: {e}"), 1);
            None
        }
    }
}

/// Attack 2: one registered user renaming itself as fast as it can.
async fn renames(a: Attack, counts: Arc<Counts>) {
    let Some((_, _, ws)) = attacker(&a, RENAMES, "renamer", &counts).await else {
        return;
    };
    let rename = |n: u64| {
        ClientEvent::Rename {
            name: format!("renamer-{n}"),
            client_ref: Some(n.to_string()),
        }
        .encode()
    };
    flood(ws, rename, a.scale.flood_events, a.until, &counts).await;
}

/// Attack 3: one registered user joining and leaving the ordinary clients' channel.
async fn join_leave(a: Attack, counts: Arc<Counts>) {
    let Ok(town) = channel(TOWN) else { return };
    let Some((_, _, ws)) = attacker(&a, JOIN_LEAVE, "joiner", &counts).await else {
        return;
    };
    let event = |n: u64| {
        if n.is_multiple_of(2) {
            join(&town)
        } else {
            ClientEvent::Leave { room: town.clone() }.encode()
        }
    };
    flood(ws, event, a.scale.flood_events, a.until, &counts).await;
}

/// Attack 4: connections that send half a request header and then nothing; each records
/// whether, and after how long, the server gave up on it.
async fn slow_http(a: Attack, counts: Arc<Counts>) {
    let mut each = Vec::new();
    for _ in 0..a.scale.slow_requests {
        let counts = counts.clone();
        let until = a.until;
        each.push(tokio::spawn(async move {
            let opened = Instant::now();
            let connect = timeout(Duration::from_secs(5), net::tcp(a.addr, source(SLOW_HTTP)));
            let mut stream = match connect.await {
                Ok(Ok(stream)) => stream,
                _ => {
                    counts.add("connect failed", 1);
                    return;
                }
            };
            let half = format!("GET / HTTP/1.1\r\nHost: {}\r\nUser-Ag", a.addr);
            if stream.write_all(half.as_bytes()).await.is_err() {
                counts.add("write failed", 1);
                return;
            }
            counts.add("half-sent requests", 1);
            let mut buffer = [0u8; 1024];
            match timeout_at(until, stream.read(&mut buffer)).await {
                Err(_) => counts.add("still open at the end", 1),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    counts.add("closed by the server", 1);
                    counts.max("latest close, ms", opened.elapsed().as_millis() as u64);
                }
                Ok(Ok(n)) => {
                    let head = String::from_utf8_lossy(&buffer[..n]);
                    let status = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
                    counts.add(format!("answered {status}"), 1);
                    counts.max("latest close, ms", opened.elapsed().as_millis() as u64);
                }
            }
        }));
    }
    for task in each {
        let _ = task.await;
    }
}

/// One request on a keep-alive connection, opening it again if the server closed it.
async fn request_again(
    http: &mut Option<Http>,
    a: &Attack,
    from: usize,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> Option<net::Response> {
    if http.is_none() {
        *http = Http::connect(a.addr, source(from)).await.ok();
    }
    let connection = http.as_mut()?;
    match timeout(
        Duration::from_secs(10),
        connection.request(method, path, form),
    )
    .await
    {
        Ok(Ok(response)) => Some(response),
        _ => {
            *http = None;
            None
        }
    }
}

/// How an HTTP refusal is counted: status and error code.
fn refusal(response: &net::Response) -> String {
    let body = String::from_utf8_lossy(&response.body);
    format!(
        "refused {} {}",
        response.status,
        field(&body, "code").unwrap_or("")
    )
}

/// Attack 5, first half: registrations from one address as fast as the server answers,
/// each new user then creating a channel.
async fn registrations(a: Attack, counts: Arc<Counts>) {
    let mut http = None;
    for i in 0..a.scale.registrations {
        if Instant::now() >= a.until {
            break;
        }
        let form = format!("name=flood-{i}");
        let Some(r) = request_again(
            &mut http,
            &a,
            REGISTRATIONS,
            "POST",
            "/api/register",
            Some(&form),
        )
        .await
        else {
            counts.add("register: no answer", 1);
            continue;
        };
        let Ok(session) = serde_json::from_slice::<flack::chat::model::Session>(&r.body) else {
            counts.add(format!("register: {}", refusal(&r)), 1);
            continue;
        };
        counts.add("registered", 1);
        let form = format!("token={}&name=flood-{i}", session.token);
        match request_again(
            &mut http,
            &a,
            REGISTRATIONS,
            "POST",
            "/api/create_channel",
            Some(&form),
        )
        .await
        {
            Some(r) if r.status == 200 => counts.add("channels created", 1),
            Some(r) => counts.add(format!("create channel: {}", refusal(&r)), 1),
            None => counts.add("create channel: no answer", 1),
        }
    }
}

/// Attack 5, second half: one user opening private conversations with everyone it knows
/// of, round and round.
async fn directs(a: Attack, counts: Arc<Counts>) {
    let Some((me, _, ws)) = attacker(&a, DIRECTS, "opener", &counts).await else {
        return;
    };
    let victims = a.victims.clone();
    if victims.is_empty() {
        return;
    }
    let event = |n: u64| {
        let peer = victims[n as usize % victims.len()];
        match DirectKey::between(me, peer) {
            Ok(key) => join(&Room::Direct(key)),
            Err(_) => String::new(),
        }
    };
    flood(ws, event, a.scale.flood_events, a.until, &counts).await;
}

/// Attack 6: one user uploading files to `general` one after another and never sending
/// the message that would carry them.
async fn uploads(a: Attack, counts: Arc<Counts>) {
    let Some((_, token, ws)) = attacker(&a, UPLOADS, "uploader", &counts).await else {
        return;
    };
    drop(ws);
    let body = vec![0u8; a.scale.upload_bytes];
    let path = format!("/files?channel={GENERAL}");
    let mut http: Option<Http> = None;
    for i in 0..a.scale.uploads {
        if Instant::now() >= a.until {
            break;
        }
        if http.is_none() {
            http = Http::connect(a.addr, source(UPLOADS)).await.ok();
        }
        let Some(connection) = http.as_mut() else {
            counts.add("connect failed", 1);
            continue;
        };
        let file_name = format!("junk-{i}.bin");
        let upload = connection.upload(&path, &token, &file_name, &body);
        match timeout_at(a.until.max(Instant::now() + Duration::from_secs(1)), upload).await {
            Ok(Ok(r)) if r.status == 200 => counts.add("stored (never sent)", 1),
            Ok(Ok(r)) => {
                counts.add(refusal(&r), 1);
                http = None;
            }
            Ok(Err(_)) => {
                counts.add("connection lost", 1);
                http = None;
            }
            Err(_) => break,
        }
    }
}

/// Attack 7: the page of the channel filled with `<`, loaded back to back.
async fn big_page(a: Attack, counts: Arc<Counts>) {
    let path = flack::app::nav::channel_path(BIG);
    let mut http = None;
    for _ in 0..a.scale.page_loads {
        if Instant::now() >= a.until {
            break;
        }
        let started = Instant::now();
        match request_again(&mut http, &a, BIG_PAGE, "GET", &path, None).await {
            Some(r) => {
                counts.add(format!("page {}", r.status), 1);
                counts.max("page bytes", r.body.len() as u64);
                counts.max("slowest page, ms", started.elapsed().as_millis() as u64);
            }
            None => counts.add("no answer", 1),
        }
    }
}

/// The attacks a run makes, as `--attacks` takes them: `all`, `none`, or numbers.
pub fn parse_attacks(text: &str) -> Result<Vec<u8>, String> {
    match text {
        "all" => Ok((1..=7).collect()),
        "none" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(|n| match n.trim().parse() {
                Ok(n @ 1..=7) => Ok(n),
                _ => Err(format!(
                    "--attacks {list}: expected all, none or numbers 1 to 7"
                )),
            })
            .collect(),
    }
}

/// The inverse of [`parse_attacks`].
fn describe(attacks: &[u8]) -> String {
    match attacks.len() {
        0 => "none".into(),
        7 => "all".into(),
        _ => attacks
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Runs the soak for `duration` against a fresh Flack with default limits, with every
/// attack numbered in `attacks` (1 to 7; none for the run to compare with).
pub async fn run(duration: Duration, attacks: &[u8], scale: Scale) -> Result<Report, String> {
    let server = Server::start_with(Kind::Flack, Limits::Defaults).await?;
    let addr = server.addr;
    let town = channel(TOWN)?;

    // The ordinary clients: registered, signed in and in the channel before the clock starts.
    let mut sessions = Vec::new();
    for i in 0..scale.members {
        sessions.push(net::register_from(addr, source(i), &format!("member-{i}")).await?);
    }
    let first = sessions.first().ok_or("no ordinary clients")?;
    net::create_channel(addr, &first.token, TOWN).await?;
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let mut connecting = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let (gate, token, town) = (gate.clone(), session.token.clone(), town.clone());
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let mut ws = signed_in(addr, source(i), &token).await?;
            ws.send(Message::text(join(&town)))
                .await
                .map_err(|e| e.to_string())?;
            wait_for(&mut ws, "joining", |t| frame_type(t) == "joined").await?;
            Ok::<Ws, String>(ws)
        }));
    }
    let mut members = Vec::new();
    for handle in connecting {
        members.push(handle.await.map_err(|e| e.to_string())??);
    }

    // The attacks' preparation: a channel of large messages to join, and one to render.
    if attacks.contains(&1) || attacks.contains(&7) {
        eprintln!(
            "  filling #{GENERAL} and #{BIG} with {} messages each",
            scale.fill
        );
        let filler = net::register_from(addr, source(FILLERS), "filler").await?;
        net::create_channel(addr, &filler.token, BIG).await?;
        fill(
            addr,
            &channel(GENERAL)?,
            "general",
            &"😀".repeat(4000),
            scale.fill,
        )
        .await?;
        fill(addr, &channel(BIG)?, "big", &"<".repeat(4000), scale.fill).await?;
    }

    eprintln!(
        "  {} ordinary clients, {} posting {}/s in total, for {:.0} s, attacks {}",
        scale.members,
        scale.senders,
        scale.rate,
        duration.as_secs_f64(),
        describe(attacks)
    );
    let (stop_tx, stop) = watch::channel(false);
    let live = Arc::new(Live::default());
    let before = server.sample();
    let harness_before = procstat::own_cpu_secs();
    let machine_before = procstat::machine_busy_secs();
    let started = Instant::now();
    let until = started + duration;
    // Bounds for the samplers, in case the stop never came: the run, the end-of-run
    // waits, and a margin.
    let samples = (duration.as_secs_f64() * 10.0) as u64 + 400;
    let monitor = tokio::spawn(monitor(server.pid(), stop.clone(), samples / 2));
    let prober = tokio::spawn(prober(addr, stop.clone(), samples));
    let interval = Duration::from_secs_f64(scale.senders.max(1) as f64 / scale.rate);
    let mut clients = Vec::new();
    for (i, ws) in members.into_iter().enumerate() {
        let posting = (i < scale.senders).then(|| Posting {
            offset: interval.mul_f64(i as f64 / scale.senders as f64),
            interval,
            until,
        });
        clients.push(tokio::spawn(member(
            ws,
            posting,
            live.clone(),
            stop.clone(),
        )));
    }
    let mut attack_tasks = Vec::new();
    let a = Attack {
        addr,
        until,
        stop: stop.clone(),
        scale,
        victims: sessions.iter().map(|s| s.user.id).collect(),
    };
    type Launch = fn(Attack, Arc<Counts>) -> tokio::task::JoinHandle<()>;
    let all: [(u8, &str, Launch); 8] = [
        (1, "1 join flood, never reading", |a, c| {
            tokio::spawn(join_flood(a, c))
        }),
        (2, "2 renames", |a, c| tokio::spawn(renames(a, c))),
        (3, "3 join/leave", |a, c| tokio::spawn(join_leave(a, c))),
        (4, "4 slow HTTP", |a, c| tokio::spawn(slow_http(a, c))),
        (5, "5 registrations", |a, c| {
            tokio::spawn(registrations(a, c))
        }),
        (5, "5 private conversations", |a, c| {
            tokio::spawn(directs(a, c))
        }),
        (6, "6 uploads never sent", |a, c| {
            tokio::spawn(uploads(a, c))
        }),
        (7, "7 large page", |a, c| tokio::spawn(big_page(a, c))),
    ];
    for (number, name, launch) in all {
        if attacks.contains(&number) {
            let counts = Arc::new(Counts::default());
            attack_tasks.push((name, launch(a.clone(), counts.clone()), counts));
        }
    }

    tokio::time::sleep_until(until).await;
    let sending_time = started.elapsed();
    // Every post answered, then every delivery of what was accepted, each wait bounded.
    let wait = Instant::now() + Duration::from_secs(10);
    while live.acked.load(Ordering::SeqCst) + live.refused.load(Ordering::SeqCst)
        < live.sent.load(Ordering::SeqCst)
        && Instant::now() < wait
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked = live.acked.load(Ordering::SeqCst);
    let expected = acked * scale.members as u64;
    let wait = Instant::now() + Duration::from_secs(10);
    while live.received.load(Ordering::SeqCst) < expected && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let after = server.sample();
    let harness_cpu = procstat::own_cpu_secs() - harness_before;
    let machine_cpu = procstat::machine_busy_secs() - machine_before;
    let measured = started.elapsed();

    let mut latency = new_histogram();
    let ordinary = Counts::default();
    for client in clients {
        let seen = client.await.map_err(|e| e.to_string())?;
        let _ = latency.add(&seen.latency);
        for (key, n) in seen.frames.take() {
            ordinary.add(key, n);
        }
        if seen.lost_connection {
            ordinary.add("connections lost", 1);
        }
    }
    let mut tallies = BTreeMap::new();
    tallies.insert("0 ordinary clients (all)".to_owned(), ordinary.take());
    for (name, task, counts) in attack_tasks {
        // Each attack stops by itself at the end of the run (join flood: 2 s later).
        if timeout(Duration::from_secs(15), task).await.is_err() {
            counts.add("did not stop in time", 1);
        }
        tallies.insert(name.to_owned(), counts.take());
    }
    let peaks = monitor.await.unwrap_or_default();
    let (probes, probe_failures) = prober.await.unwrap_or_else(|_| (new_histogram(), 0));
    let final_memory = procstat::memory(server.pid()).unwrap_or_default();

    let mut report = Report::abuse(
        &describe(attacks),
        scale.members,
        scale.senders,
        scale.rate,
        sending_time,
    );
    report.sent = acked;
    report.expected = expected;
    report.received = live.received.load(Ordering::SeqCst);
    report.loss = expected.saturating_sub(report.received);
    report.refused = live.refused.load(Ordering::SeqCst);
    report.set_latency(&latency);
    report.per_second = report.received as f64 / sending_time.as_secs_f64().max(f64::EPSILON);
    report.server_rss_kib = peaks.rss_kib;
    report.peak_rss_kib = peaks.hwm_kib.max(final_memory.1).max(peaks.rss_kib);
    report.peak_open_files = peaks.open_files;
    report.open_file_limit = procstat::open_file_limit(server.pid()).unwrap_or(0);
    report.server_cpu_secs = after.cpu_secs - before.cpu_secs;
    report.harness_cpu_secs = harness_cpu;
    // On a shared machine: what everything else took of the cores meanwhile.
    report.other_cpu_secs = (machine_cpu - report.server_cpu_secs - harness_cpu).max(0.0);
    report.machine_seconds = measured.as_secs_f64();
    report.probes = probes.len();
    report.probe_failures = probe_failures;
    if !probes.is_empty() {
        report.probe_p99_us = probes.value_at_quantile(0.99);
        report.probe_max_us = probes.max();
    }
    report.tallies = tallies;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames are told apart by their first member, and refusals by their code, in frames
    /// and in HTTP error bodies alike.
    #[test]
    fn frames_and_refusals_are_read() {
        let error =
            r#"{"type":"error","code":"join_rate_limited","message":"x","client_ref":null}"#;
        assert_eq!(frame_type(error), "error");
        assert_eq!(field(error, "code"), Some("join_rate_limited"));
        assert_eq!(frame_type(r#"{"type":"presence","user":{}}"#), "presence");
        assert_eq!(frame_type("garbage"), "?");
        let body = r#"{"code":"too_many_unsent_files","message":"You have too many"}"#;
        assert_eq!(field(body, "code"), Some("too_many_unsent_files"));
        assert_eq!(parse_attacks("all"), Ok(vec![1, 2, 3, 4, 5, 6, 7]));
        assert_eq!(parse_attacks("none"), Ok(vec![]));
        assert_eq!(parse_attacks("7,1"), Ok(vec![7, 1]));
        assert!(parse_attacks("8").is_err());
        assert_eq!(describe(&[1, 2, 3, 4, 5, 6, 7]), "all");
        assert_eq!(describe(&[7, 1]), "7,1");
        let counts = Counts::default();
        counts.frame(error);
        counts.frame(error);
        counts.max("slowest", 3);
        counts.max("slowest", 2);
        let map = counts.take();
        assert_eq!(map.get("frame error"), Some(&2));
        assert_eq!(map.get("refused join_rate_limited"), Some(&2));
        assert_eq!(map.get("slowest"), Some(&3));
    }
}
