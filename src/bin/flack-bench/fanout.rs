//! Fan-out: N receivers in one channel, M senders posting at a total rate R. Every message
//! carries its send time; every receiver records send-to-receive latency in an HDR
//! histogram. Works against Flack (its documented protocol) and against the ceiling (the
//! same frames, broadcast as they are).
//!
//! Two kinds of room ([`Mode`]): **anonymous** (the original scenario, kept for
//! continuity: receivers that never sign in and only scan frames for send times, senders
//! outside the channel) and **members** (a real room, issue 19: every receiver and sender is
//! a registered user that authenticates and joins, so presence is on and senders receive
//! the room too, and every frame is decoded in full as the browser does). Against the
//! ceiling, members mode decodes every frame the same way, and the ceiling broadcasts frames
//! of the size of Flack's (same author name length, ids of the same magnitude).

use crate::net::{self, Ws};
use crate::procstat;
use crate::report::Report;
use crate::servers::{Kind, Server};
use flack::chat::model::{
    ChannelName, DisplayName, Message as ChatMessage, MessageBody, MessageId, Room, Timestamp,
    UserId, UserInfo,
};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The channel the benchmark talks in.
const CHANNEL: &str = "bench";
/// Filler so each message is about the size of a short chat line.
pub const PADDING: &str = "the quick brown fox jumps over the lazy dog";

/// The channel every scenario talks in.
fn bench_room() -> Result<Room, String> {
    ChannelName::parse(CHANNEL)
        .map(Room::Channel)
        .map_err(|e| e.to_string())
}

/// Which room a fan-out measures (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Receivers that never sign in and only scan frames; senders outside the channel.
    Anonymous,
    /// Registered members that authenticate and join (presence on), senders in the room
    /// too, every frame decoded in full.
    Members,
}

impl Mode {
    /// The label reports carry.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Anonymous => "anonymous",
            Mode::Members => "members",
        }
    }
}

/// The name sender `i` registers under with a Flack on `port` (and, in members mode, the
/// author the ceiling's frames carry, so both move frames of one size).
fn sender_name(i: usize, port: u16) -> String {
    format!("bench-sender-{i}-{port}")
}

/// The `message` event Flack would deliver for a message of `author` numbered `seq`: what
/// the ceiling broadcasts, so both servers move frames of the same shape and size.
fn ceiling_frame(room: &Room, i: usize, author: &str, seq: u64, body: String) -> String {
    let author = DisplayName::parse(author)
        .map(|name| UserInfo {
            id: UserId(i as u64),
            name,
        })
        .ok();
    let body = MessageBody::parse(&body, usize::MAX).ok();
    let (Some(author), Some(body)) = (author, body) else {
        return String::new();
    };
    ServerEvent::Hub(HubEvent::Message {
        message: ChatMessage {
            id: MessageId(seq),
            room: room.clone(),
            seq,
            author,
            body,
            attachment: None,
            sent_at: Timestamp::from_millis(1_795_305_600_000),
            edited_at: None,
            reactions: Vec::new(),
            reply: None,
        },
    })
    .encode()
}

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

pub fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

pub fn new_histogram() -> Histogram<u64> {
    // Microseconds, up to a minute, three significant figures.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// The send times senders put at the start of message bodies: one in a live `message`,
/// many in a catch-up `joined` (a connection that fell behind gets the messages it missed
/// that way, and they count as delivered when they arrive).
pub fn send_times(frame: &str) -> impl Iterator<Item = u64> + '_ {
    frame
        .match_indices("\"body\":\"t=")
        .filter_map(|(at, pattern)| {
            let digits = &frame[at + pattern.len()..];
            let end = digits.find(|c: char| !c.is_ascii_digit())?;
            digits[..end].parse().ok()
        })
}

/// Receivers that read slowly (issue 19, item 4): every `every`-th receiver waits `delay`
/// after each frame it reads, in the same run as the others, and is tallied apart.
#[derive(Clone, Copy, Debug)]
pub struct Slow {
    /// 0 for none.
    pub every: usize,
    pub delay: Duration,
}

impl Slow {
    /// Every receiver reads as fast as it can.
    pub const NONE: Slow = Slow {
        every: 0,
        delay: Duration::ZERO,
    };

    /// True for the `i`-th receiver if it is one of the slow ones.
    fn is_slow(&self, i: usize) -> bool {
        self.every > 0 && i % self.every == self.every - 1
    }
}

/// What the slow receivers saw in one phase.
pub struct SlowPhase {
    pub receivers: usize,
    pub received: u64,
    pub latency: Histogram<u64>,
    /// Catch-up `joined` frames they were sent (a reader too far behind gets what it missed
    /// in one frame per room).
    pub catch_ups: u64,
}

/// What one receiver has seen in the current phase.
struct Tally {
    latency: Mutex<Histogram<u64>>,
    /// Catch-up `joined` frames received.
    catch_ups: AtomicU64,
    /// Members mode: frames that carried exactly one message, and their bytes.
    frames: AtomicU64,
    bytes: AtomicU64,
}

impl Tally {
    fn new() -> Arc<Tally> {
        Arc::new(Tally {
            latency: Mutex::new(new_histogram()),
            catch_ups: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    /// Records what one frame delivered, received at `now`.
    fn record(&self, frame: &str, times: &[u64], now: u64) {
        if let Ok(mut h) = self.latency.lock() {
            for sent_at in times {
                let _ = h.record((now.saturating_sub(*sent_at) / 1000).max(1));
            }
        }
        if times.len() == 1 {
            self.frames.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        }
    }
}

/// Where a member sender's deliveries are counted.
struct Delivered {
    tally: Arc<Tally>,
    received: Arc<AtomicU64>,
    counting: Arc<AtomicBool>,
}

/// Connected receivers and senders, reused across phases (rates).
pub struct Fleet {
    kind: Kind,
    mode: Mode,
    /// The sending server's port (sender names carry it).
    sender_port: u16,
    tallies: Vec<Arc<Tally>>,
    received: Arc<AtomicU64>,
    /// The slow receivers' (see [`Slow`]), counted apart.
    slow_tallies: Vec<Arc<Tally>>,
    slow_received: Arc<AtomicU64>,
    counting: Arc<AtomicBool>,
    senders: Vec<Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>>,
    acked: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    /// Flack: send-to-ack latency of the senders' messages (the ack waits for the disk).
    acks: Arc<Mutex<Histogram<u64>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The outcome of one phase at one rate.
pub struct Phase {
    /// Latency of history fetches made while the phase ran (Flack only).
    pub history: Histogram<u64>,
    /// Send-to-ack latency of the senders' messages (Flack only).
    pub acks: Histogram<u64>,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
    pub server_cpu_secs: f64,
    /// The part of `server_cpu_secs` spent by the SQLite store's threads.
    pub store_cpu_secs: f64,
    pub server_rss_kib: u64,
    pub harness_cpu_secs: f64,
    /// Bytes of the text frames carrying one live message, on average (members mode): the
    /// check that Flack and the ceiling move frames of one size.
    pub message_frame_bytes: f64,
    /// The slow receivers, if any (the figures above are the others').
    pub slow: Option<SlowPhase>,
}

impl Fleet {
    /// Connects `receivers` receivers (each from its own loopback source address) and
    /// `senders` senders to `server`.
    pub async fn connect(
        server: &Server,
        receivers: usize,
        senders: usize,
        mode: Mode,
        slow: Slow,
    ) -> Result<Fleet, String> {
        Fleet::connect_with(server, server, (receivers, slow), senders, mode).await
    }

    /// Connects `receivers` receivers to `receiving` and `senders` senders to `sending`
    /// (two instances of one cluster, or the same server twice).
    pub async fn connect_split(
        receiving: &Server,
        sending: &Server,
        receivers: usize,
        senders: usize,
    ) -> Result<Fleet, String> {
        let receivers = (receivers, Slow::NONE);
        Fleet::connect_with(receiving, sending, receivers, senders, Mode::Anonymous).await
    }

    /// [`Fleet::connect_split`] for a room of `mode`, some receivers perhaps slow.
    pub async fn connect_with(
        receiving: &Server,
        sending: &Server,
        (receivers, slow): (usize, Slow),
        senders: usize,
        mode: Mode,
    ) -> Result<Fleet, String> {
        let addr = receiving.addr;
        let sender_addr = sending.addr;
        let members = mode == Mode::Members && receiving.kind == Kind::Flack;
        let mut fleet = Fleet {
            kind: receiving.kind,
            mode,
            sender_port: sender_addr.port(),
            tallies: Vec::new(),
            received: Arc::new(AtomicU64::new(0)),
            slow_tallies: Vec::new(),
            slow_received: Arc::new(AtomicU64::new(0)),
            counting: Arc::new(AtomicBool::new(false)),
            senders: Vec::new(),
            acked: Arc::new(AtomicU64::new(0)),
            refused: Arc::new(AtomicU64::new(0)),
            acks: Arc::new(Mutex::new(new_histogram())),
            tasks: Vec::new(),
        };
        let mut tokens = Vec::new();
        if receiving.kind == Kind::Flack {
            for i in 0..senders {
                let name = sender_name(i, sender_addr.port());
                tokens.push(net::register(sender_addr, &name).await?);
            }
            if let Some(token) = tokens.first() {
                net::create_channel(sender_addr, token, CHANNEL).await?;
                if sender_addr != addr {
                    net::wait_for_channel(addr, CHANNEL, Duration::from_secs(10)).await?;
                }
            }
        }
        // Members mode: every receiver is a registered user, 32 registering at a time.
        let receiver_tokens: Vec<Option<String>> = if members {
            let gate = Arc::new(tokio::sync::Semaphore::new(32));
            let mut registering = Vec::new();
            for i in 0..receivers {
                let gate = gate.clone();
                registering.push(tokio::spawn(async move {
                    let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
                    net::register(addr, &format!("member-{i}-{}", addr.port())).await
                }));
            }
            let mut tokens = Vec::new();
            for handle in registering {
                tokens.push(Some(handle.await.map_err(|e| e.to_string())??));
            }
            tokens
        } else {
            vec![None; receivers]
        };
        // Receivers, a few hundred connecting at a time.
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        let mut connecting = Vec::new();
        for (i, token) in receiver_tokens.into_iter().enumerate() {
            let gate = gate.clone();
            let kind = receiving.kind;
            connecting.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
                let mut ws = tokio::time::timeout(
                    Duration::from_secs(15),
                    net::websocket(addr, Some(net::source_ip(i))),
                )
                .await
                .map_err(|_| "a receiver could not connect within 15 s".to_owned())??;
                if kind == Kind::Flack {
                    join_as(&mut ws, token).await?;
                }
                Ok::<Ws, String>(ws)
            }));
        }
        for (i, handle) in connecting.into_iter().enumerate() {
            let ws = handle.await.map_err(|e| e.to_string())??;
            let tally = Tally::new();
            let (_sink, stream) = ws.split();
            let slow_one = slow.is_slow(i);
            let received = if slow_one {
                fleet.slow_received.clone()
            } else {
                fleet.received.clone()
            };
            fleet.tasks.push(tokio::spawn(receive(
                (stream, _sink),
                tally.clone(),
                received,
                fleet.counting.clone(),
                (mode, slow_one.then_some(slow.delay)),
            )));
            if slow_one {
                fleet.slow_tallies.push(tally);
            } else {
                fleet.tallies.push(tally);
            }
        }
        for i in 0..senders {
            let mut ws = net::websocket(sender_addr, Some(net::source_ip(receivers + i))).await?;
            if let Some(token) = tokens.get(i) {
                if members {
                    join_as(&mut ws, Some(token.clone())).await?;
                } else {
                    let auth = ClientEvent::Auth {
                        token: token.clone(),
                    };
                    ws.send(Message::text(auth.encode()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            let (sink, stream) = ws.split();
            // Members mode: senders are in the room, and what they receive counts.
            let tally = (mode == Mode::Members).then(|| {
                let tally = Tally::new();
                fleet.tallies.push(tally.clone());
                tally
            });
            fleet.tasks.push(tokio::spawn(drain(
                stream,
                fleet.acked.clone(),
                fleet.refused.clone(),
                fleet.acks.clone(),
                tally.map(|tally| Delivered {
                    tally,
                    received: fleet.received.clone(),
                    counting: fleet.counting.clone(),
                }),
            )));
            fleet.senders.push(Arc::new(tokio::sync::Mutex::new(sink)));
        }
        Ok(fleet)
    }

    /// Sends at `rate` messages per second in total for `duration`, then waits briefly for
    /// the last deliveries, and reports what happened.
    pub async fn phase(
        &self,
        server: &Server,
        rate: f64,
        duration: Duration,
        history_probe: bool,
    ) -> Phase {
        for tally in self.tallies.iter().chain(&self.slow_tallies) {
            if let Ok(mut h) = tally.latency.lock() {
                h.reset();
            }
            tally.catch_ups.store(0, Ordering::SeqCst);
            tally.frames.store(0, Ordering::SeqCst);
            tally.bytes.store(0, Ordering::SeqCst);
        }
        if let Ok(mut h) = self.acks.lock() {
            h.reset();
        }
        self.received.store(0, Ordering::SeqCst);
        self.slow_received.store(0, Ordering::SeqCst);
        self.acked.store(0, Ordering::SeqCst);
        self.counting.store(true, Ordering::SeqCst);
        let before = server.sample();
        let store_before = server.store_cpu_secs();
        let harness_before = procstat::own_cpu_secs();
        let started = Instant::now();
        // History fetch latency under load: one client fetching the channel's history over
        // and over while the senders run. Only when asked: its requests cost the server CPU
        // that the per-delivery figure would otherwise count against Flack.
        let probe = (history_probe && self.kind == Kind::Flack).then(|| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut latency = new_histogram();
                let Ok(mut http) = net::Http::connect(addr, None).await else {
                    return latency;
                };
                let deadline = Instant::now() + duration;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let form = format!("channel={CHANNEL}");
                    match http.request("POST", "/api/history", Some(&form)).await {
                        Ok(r) if r.status == 200 => {
                            let _ = latency.record((t.elapsed().as_micros() as u64).max(1));
                        }
                        _ => break,
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                latency
            })
        });
        let per_sender = rate / self.senders.len().max(1) as f64;
        let interval = Duration::from_secs_f64(1.0 / per_sender.max(0.001));
        let mut sending = Vec::new();
        let senders = self.senders.len() as u64;
        for (i, sink) in self.senders.iter().enumerate() {
            let sink = sink.clone();
            let kind = self.kind;
            let mode = self.mode;
            let author = match mode {
                Mode::Members => sender_name(i, self.sender_port),
                Mode::Anonymous => format!("bench-sender-{i}"),
            };
            sending.push(tokio::spawn(async move {
                let Ok(room) = bench_room() else {
                    return 0;
                };
                // Spread senders over the interval so the load is smooth.
                tokio::time::sleep(interval.mul_f64(i as f64 / 8.0).min(interval)).await;
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let deadline = Instant::now() + duration;
                let mut sent = 0u64;
                let mut sink = sink.lock().await;
                while Instant::now() < deadline {
                    ticker.tick().await;
                    let t = now_nanos();
                    let body = format!("t={t} {PADDING}");
                    let frame = match kind {
                        // The send time again as `client_ref`, which the ack echoes.
                        Kind::Flack => ClientEvent::Send {
                            room: room.clone(),
                            body,
                            attachment: None,
                            reply_to: None,
                            client_ref: Some(t.to_string()),
                        }
                        .encode(),
                        // What Flack would deliver, so the ceiling moves the same bytes
                        // (members mode: numbered as Flack numbers the room's messages).
                        Kind::Ceiling => {
                            let seq = match mode {
                                Mode::Members => sent * senders + i as u64 + 1,
                                Mode::Anonymous => sent,
                            };
                            ceiling_frame(&room, i, &author, seq, body)
                        }
                    };
                    if sink.send(Message::text(frame)).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            }));
        }
        let mut sent = 0;
        for task in sending {
            sent += task.await.unwrap_or(0);
        }
        let sending_time = started.elapsed();
        let history = match probe {
            Some(task) => task.await.unwrap_or_else(|_| new_histogram()),
            None => new_histogram(),
        };
        let accepted = match self.kind {
            // Flack refuses nothing here (limits are lifted); count what it acknowledged.
            Kind::Flack => {
                let wait = Instant::now() + Duration::from_secs(5);
                while self.acked.load(Ordering::SeqCst) + self.refused.load(Ordering::SeqCst) < sent
                    && Instant::now() < wait
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                self.acked.load(Ordering::SeqCst)
            }
            Kind::Ceiling => sent,
        };
        // Members mode: senders' tallies are in the list too (they receive the room).
        let expected = accepted * self.tallies.len() as u64;
        let grace = Instant::now() + Duration::from_secs(5);
        while self.received.load(Ordering::SeqCst) < expected && Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.counting.store(false, Ordering::SeqCst);
        let after = server.sample();
        let store_after = server.store_cpu_secs();
        let mut latency = new_histogram();
        for tally in &self.tallies {
            if let Ok(h) = tally.latency.lock() {
                let _ = latency.add(&*h);
            }
        }
        let acks = self
            .acks
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| new_histogram());
        let slow = (!self.slow_tallies.is_empty()).then(|| {
            let mut latency = new_histogram();
            for tally in &self.slow_tallies {
                if let Ok(h) = tally.latency.lock() {
                    let _ = latency.add(&*h);
                }
            }
            SlowPhase {
                receivers: self.slow_tallies.len(),
                received: self.slow_received.load(Ordering::SeqCst),
                latency,
                catch_ups: self
                    .slow_tallies
                    .iter()
                    .map(|t| t.catch_ups.load(Ordering::Relaxed))
                    .sum(),
            }
        });
        Phase {
            slow,
            history,
            acks,
            sent: accepted,
            expected,
            received: self.received.load(Ordering::SeqCst),
            latency,
            elapsed: sending_time,
            server_cpu_secs: after.cpu_secs - before.cpu_secs,
            store_cpu_secs: store_after - store_before,
            server_rss_kib: after.rss_kib,
            harness_cpu_secs: procstat::own_cpu_secs() - harness_before,
            message_frame_bytes: {
                let frames = self
                    .tallies
                    .iter()
                    .map(|t| t.frames.load(Ordering::Relaxed));
                let bytes = self.tallies.iter().map(|t| t.bytes.load(Ordering::Relaxed));
                bytes.sum::<u64>() as f64 / frames.sum::<u64>().max(1) as f64
            },
        }
    }
}

/// Authenticates (with a token) and joins the bench channel, waiting for `joined`, so the
/// connection is live before any phase starts.
async fn join_as(ws: &mut Ws, token: Option<String>) -> Result<(), String> {
    if let Some(token) = token {
        let auth = ClientEvent::Auth { token };
        ws.send(Message::text(auth.encode()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let join = ClientEvent::Join {
        room: bench_room()?,
        since: None,
        client_ref: None,
    };
    ws.send(Message::text(join.encode()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t)))
                if matches!(
                    ServerEvent::decode(t.as_str()),
                    Ok(ServerEvent::Hub(HubEvent::Joined { .. }))
                ) =>
            {
                return Ok(())
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("join failed: {other:?}")),
        }
    }
}

/// The send time a sender put at the start of a message body (`t=NANOS ...`).
fn body_send_time(body: &str) -> Option<u64> {
    let digits = body.strip_prefix("t=")?;
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The send times in a frame decoded in full, as a browser reads it (members mode): one
/// per message it carries, live or caught up; none for any other event.
pub fn decoded_send_times(frame: &str) -> Vec<u64> {
    match ServerEvent::decode(frame) {
        Ok(ServerEvent::Hub(HubEvent::Message { message })) => {
            body_send_time(message.body.as_str()).into_iter().collect()
        }
        Ok(ServerEvent::Hub(HubEvent::Joined { messages, .. })) => messages
            .iter()
            .filter_map(|m| body_send_time(m.body.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Reads one receiver's frames, recording the latency of every message; a slow receiver
/// waits `delay` after each frame.
async fn receive(
    (mut stream, _sink): (SplitStream<Ws>, SplitSink<Ws, Message>),
    tally: Arc<Tally>,
    received: Arc<AtomicU64>,
    counting: Arc<AtomicBool>,
    (mode, delay): (Mode, Option<Duration>),
) {
    while let Some(Ok(frame)) = stream.next().await {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let Message::Text(text) = frame else { continue };
        if text.starts_with("{\"type\":\"joined\"") && counting.load(Ordering::Relaxed) {
            tally.catch_ups.fetch_add(1, Ordering::Relaxed);
        }
        // Members mode: decoded in full whether counted or not, as a browser would.
        let decoded = (mode == Mode::Members).then(|| decoded_send_times(text.as_str()));
        if !counting.load(Ordering::Relaxed) {
            continue;
        }
        let now = now_nanos();
        let times = decoded.unwrap_or_else(|| send_times(text.as_str()).collect());
        tally.record(text.as_str(), &times, now);
        received.fetch_add(times.len() as u64, Ordering::Relaxed);
    }
}

/// The send time a sender put in a message's `client_ref`, from the ack echoing it.
fn acked_send_time(ack: &str) -> Option<u64> {
    let pattern = "\"client_ref\":\"";
    let digits = &ack[ack.find(pattern)? + pattern.len()..];
    digits[..digits.find('"')?].parse().ok()
}

/// Reads a sender's frames: Flack's acks (timed) and refusals (the ceiling echoes
/// everything).
async fn drain(
    mut stream: SplitStream<Ws>,
    acked: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    acks: Arc<Mutex<Histogram<u64>>>,
    delivered: Option<Delivered>,
) {
    while let Some(Ok(frame)) = stream.next().await {
        if let Message::Text(text) = frame {
            let text = text.as_str();
            if let Some(d) = &delivered {
                let times = decoded_send_times(text);
                if d.counting.load(Ordering::Relaxed) && !times.is_empty() {
                    d.tally.record(text, &times, now_nanos());
                    d.received.fetch_add(times.len() as u64, Ordering::Relaxed);
                }
            }
            if text.starts_with("{\"type\":\"ack\"") {
                let now = now_nanos();
                if let (Some(sent_at), Ok(mut h)) = (acked_send_time(text), acks.lock()) {
                    let _ = h.record((now.saturating_sub(sent_at) / 1000).max(1));
                }
                acked.fetch_add(1, Ordering::Relaxed);
            } else if text.starts_with("{\"type\":\"error\"") {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Runs one fan-out measurement against a fresh server of `kind` (timing history fetches
/// meanwhile if `history_probe`).
pub async fn run(
    kind: Kind,
    receivers: usize,
    senders: usize,
    rate: f64,
    duration: Duration,
    history_probe: bool,
    (mode, slow): (Mode, Slow),
) -> Result<Report, String> {
    let server = Server::start(kind).await?;
    let fleet = Fleet::connect(&server, receivers, senders, mode, slow).await?;
    let phase = fleet.phase(&server, rate, duration, history_probe).await;
    let mut report = Report::fanout(kind, receivers, senders, rate, &phase);
    report.room = mode.label().into();
    if let Some(seen) = &phase.slow {
        let mut figures = std::collections::BTreeMap::new();
        figures.insert("receivers".to_owned(), seen.receivers as u64);
        figures.insert("delay_ms".to_owned(), slow.delay.as_millis() as u64);
        figures.insert("received".to_owned(), seen.received);
        figures.insert("catch_ups".to_owned(), seen.catch_ups);
        if !seen.latency.is_empty() {
            figures.insert("p50_us".to_owned(), seen.latency.value_at_quantile(0.5));
            figures.insert("p99_us".to_owned(), seen.latency.value_at_quantile(0.99));
            figures.insert("max_us".to_owned(), seen.latency.max());
        }
        report.tallies.insert("slow_receivers".to_owned(), figures);
    }
    Ok(report)
}

/// Raises the rate step by step at `receivers` receivers (against a server of `kind`, in a
/// room of `mode`) until p99 exceeds `p99_bound` or a delivery is lost; reports the last
/// rate that held.
pub async fn step(
    (kind, mode): (Kind, Mode),
    receivers: usize,
    senders: usize,
    start_rate: f64,
    p99_bound: Duration,
    phase_length: Duration,
    max_steps: usize,
) -> Result<(Option<Report>, Vec<Report>), String> {
    let server = Server::start(kind).await?;
    let fleet = Fleet::connect(&server, receivers, senders, mode, Slow::NONE).await?;
    let mut rate = start_rate;
    let mut best = None;
    let mut steps = Vec::new();
    for _ in 0..max_steps {
        let phase = fleet.phase(&server, rate, phase_length, false).await;
        let mut report = Report::fanout(kind, receivers, senders, rate, &phase);
        report.room = mode.label().into();
        let held = report.loss == 0 && report.p99_us <= p99_bound.as_micros() as u64;
        steps.push(report.clone());
        if !held {
            break;
        }
        best = Some(report);
        rate *= 1.5;
    }
    Ok((best, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ack's echoed `client_ref` gives back the send time; an ack without one, nothing.
    #[test]
    fn acks_give_back_their_send_time() {
        let ack = r#"{"type":"ack","client_ref":"1234","id":3,"seq":4}"#;
        assert_eq!(acked_send_time(ack), Some(1234));
        assert_eq!(acked_send_time(r#"{"type":"ack","id":3,"seq":4}"#), None);
    }

    /// Every send time in a frame is found, whether it carries one message or many.
    #[test]
    fn send_times_are_found_in_any_frame() {
        let live = r#"{"type":"message","message":{"id":1,"body":"t=42 fox"}}"#;
        assert_eq!(send_times(live).collect::<Vec<_>>(), [42]);
        let catch_up = r#"{"type":"joined","messages":[{"body":"t=1 a"},{"body":"t=2 b"}]}"#;
        assert_eq!(send_times(catch_up).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(send_times(r#"{"type":"presence"}"#).count(), 0);
    }
}
