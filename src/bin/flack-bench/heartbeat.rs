//! The cluster's heartbeat under many users: two instances on a Redis of the run's own,
//! `users` users spread over `channels` channels and over both instances (each joined to
//! one channel; each channel used through both instances, or with `split` through one),
//! then an idle window in which only heartbeats reach Redis. Reports, per
//! beat of one instance, the commands Redis ran (those a script runs counted too, as Redis
//! counts them), the bytes into and out of Redis, Redis's CPU time, and the beat's wall
//! time as the instances log it (`flack::chat::cluster::beat` at debug level).

use crate::cluster::Rig;
use crate::net;
use crate::report::Report;
use flack::chat::model::{ChannelName, Room};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What the instances log: warnings, and one line per heartbeat with its wall time.
const LOG_FILTER: &str = "warn,flack::chat::cluster::beat=debug";

/// Source-address numbers (see [`net::source_ip`]) of the users: above the other
/// scenarios' (they may hold connections in the same run).
const SOURCES: usize = 40_000;

/// How big and how long the measurement is.
#[derive(Clone, Debug)]
pub struct Scale {
    pub users: usize,
    pub channels: usize,
    /// Distinct client addresses the users connect from (each instance reports its
    /// connections per address in its heartbeat).
    pub addresses: usize,
    /// The idle window measured.
    pub window: Duration,
    /// Each channel's users all connect through one instance (with an even number of
    /// channels), instead of through both.
    pub split: bool,
}

/// A Redis server of the run's own (nothing else reaches it), killed when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> Result<OwnRedis, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        let redis = OwnRedis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.connection().is_err() {
            if Instant::now() > deadline {
                return Err("the run's redis-server did not answer".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn connection(&self) -> Result<redis::Connection, String> {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .map_err(|e| e.to_string())
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis's counters at one moment: commands and bytes so far, calls by command, and the
/// size of the reply that carried them (which the next reading counts as output).
struct Counters {
    commands: u64,
    /// Redis's CPU time so far (user and system), in microseconds.
    cpu_us: u64,
    bytes_in: u64,
    bytes_out: u64,
    calls: BTreeMap<String, u64>,
    reply_bytes: u64,
}

/// The request [`counters`] sends, as it goes over the wire.
const INFO_REQUEST: &str =
    "*4\r\n$4\r\nINFO\r\n$5\r\nstats\r\n$12\r\ncommandstats\r\n$3\r\ncpu\r\n";

fn counters(connection: &mut redis::Connection) -> Result<Counters, String> {
    let text: String = redis::cmd("INFO")
        .arg("stats")
        .arg("commandstats")
        .arg("cpu")
        .query(connection)
        .map_err(|e| e.to_string())?;
    let mut counters = Counters {
        commands: 0,
        cpu_us: 0,
        bytes_in: 0,
        bytes_out: 0,
        calls: BTreeMap::new(),
        // A bulk string: `$<length>\r\n<text>\r\n`.
        reply_bytes: (text.len() + text.len().to_string().len() + 5) as u64,
    };
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let number = || value.trim().parse::<u64>().unwrap_or(0);
        match name {
            "total_commands_processed" => counters.commands = number(),
            "total_net_input_bytes" => counters.bytes_in = number(),
            "total_net_output_bytes" => counters.bytes_out = number(),
            "used_cpu_user" | "used_cpu_sys" => {
                let seconds: f64 = value.trim().parse().unwrap_or(0.0);
                counters.cpu_us += (seconds * 1e6) as u64;
            }
            _ => {
                if let Some(command) = name.strip_prefix("cmdstat_") {
                    let calls = value
                        .split(',')
                        .find_map(|field| field.strip_prefix("calls="))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    counters.calls.insert(command.to_owned(), calls);
                }
            }
        }
    }
    Ok(counters)
}

/// The wall time, in microseconds, of each heartbeat an instance logged.
fn beat_times(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l.contains("heartbeat"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|field| field.strip_prefix("micros="))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

/// Registers, connects, authenticates and joins `room` from `source` (while holding a
/// permit of `gate`), then reads what the server sends until `until`.
async fn member(
    addr: std::net::SocketAddr,
    source: std::net::IpAddr,
    name: String,
    room: Room,
    (gate, joined): (Arc<Semaphore>, Arc<Semaphore>),
    until: Instant,
) -> Result<(), String> {
    let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
    let within = Duration::from_secs(20);
    let session = tokio::time::timeout(within, net::register_from(addr, Some(source), &name))
        .await
        .map_err(|_| "no registration within 20 s".to_owned())??;
    let (mut ws, _, _, _) =
        crate::cluster::joined(addr, source, &room, None, Some(session.token)).await?;
    drop(permit);
    joined.add_permits(1);
    // Presence news keeps coming while the others join; read it so nothing backs up.
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until.into(), ws.next()).await {}
    Ok(())
}

/// The whole scenario.
pub async fn run(scale: &Scale) -> Result<Report, String> {
    let redis = OwnRedis::start()?;
    // The Redis is the run's own: names start as a deployment's do (`cluster.prefix`).
    let rig = Rig::on_redis(redis.url(), Some("flack"));
    let a = rig.instance_logging(LOG_FILTER).await?;
    let b = rig.instance_logging(LOG_FILTER).await?;
    let token = net::register(a.addr, "beatmaker").await?;
    let mut rooms = Vec::with_capacity(scale.channels);
    for c in 0..scale.channels {
        let name = format!("beat{c}");
        net::create_channel(a.addr, &token, &name).await?;
        rooms.push(Room::Channel(
            ChannelName::parse(&name).map_err(|e| e.to_string())?,
        ));
    }
    if let Some(Room::Channel(last)) = rooms.last() {
        net::wait_for_channel(b.addr, last.as_str(), Duration::from_secs(20)).await?;
    }
    eprintln!(
        "cluster-beat: {} users joining {} channels through A and B",
        scale.users, scale.channels
    );
    // Every user holds their connection until after the window, and no longer.
    let until = Instant::now() + Duration::from_secs(300) + scale.window;
    let joined = Arc::new(Semaphore::new(0));
    let gate = Arc::new(Semaphore::new(32));
    let mut members = Vec::with_capacity(scale.users);
    for i in 0..scale.users {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        let source = net::source_ip(SOURCES + i % scale.addresses.max(1));
        // User i connects through A if i is even, through B if odd.
        let slot = if scale.split { i } else { i / 2 };
        let room = rooms[slot % rooms.len().max(1)].clone();
        let (gate, joined) = (gate.clone(), joined.clone());
        let name = format!("beat-user-{i}");
        members.push(tokio::spawn(member(
            addr,
            source,
            name,
            room,
            (gate, joined),
            until,
        )));
    }
    let all = u32::try_from(scale.users).map_err(|e| e.to_string())?;
    let waited = tokio::time::timeout(Duration::from_secs(300), joined.acquire_many(all)).await;
    if !matches!(waited, Ok(Ok(_))) {
        for handle in members.iter_mut().filter(|h| h.is_finished()) {
            if let Ok(Err(e)) = handle.await {
                return Err(format!("a user could not join: {e}"));
            }
        }
        return Err("not every user joined within 300 s".into());
    }
    // A few beats, so both instances report everyone and the joins' news has settled.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut connection = redis.connection()?;
    let lines_before = [a.log_lines().len(), b.log_lines().len()];
    let before = counters(&mut connection)?;
    tokio::time::sleep(scale.window).await;
    let after = counters(&mut connection)?;
    let logs = [a.log_lines(), b.log_lines()];
    let mut times: Vec<u64> = Vec::new();
    for (log, from) in logs.iter().zip(lines_before) {
        times.extend(beat_times(&log[from.min(log.len())..]));
    }
    let beats = times.len().max(1) as f64;
    times.sort_unstable();
    let quantile = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    // The first reading's own request and reply are in the difference; nothing else is
    // but the heartbeats.
    let commands = after.commands - before.commands - 1;
    let bytes_in = after.bytes_in - before.bytes_in - INFO_REQUEST.len() as u64;
    let bytes_out = after.bytes_out - before.bytes_out - before.reply_bytes;
    let mut calls: BTreeMap<String, u64> = BTreeMap::new();
    for (command, n) in &after.calls {
        let delta = n - before.calls.get(command).copied().unwrap_or(0);
        if delta > 0 && command != "info" {
            calls.insert(command.clone(), delta);
        }
    }
    let problems: Vec<String> = [&a, &b].iter().flat_map(|s| s.logged_problems()).collect();
    for line in problems.iter().take(20) {
        eprintln!("  instance log: {line}");
    }
    for handle in &members {
        handle.abort();
    }
    let mut tallies = BTreeMap::new();
    tallies.insert("redis_calls_in_window".to_owned(), calls);
    let mut per_beat = BTreeMap::new();
    per_beat.insert("beats".to_owned(), times.len() as u64);
    let redis_cpu_us = after.cpu_us.saturating_sub(before.cpu_us);
    for (name, total) in [
        ("commands", commands),
        ("bytes_in", bytes_in),
        ("bytes_out", bytes_out),
        ("redis_cpu_us", redis_cpu_us),
    ] {
        per_beat.insert(name.to_owned(), (total as f64 / beats).round() as u64);
    }
    tallies.insert("per_beat".to_owned(), per_beat);
    Ok(Report {
        scenario: "cluster_beat".into(),
        server: "cluster".into(),
        receivers: scale.users,
        senders: scale.channels,
        seconds: scale.window.as_secs_f64(),
        received: times.len() as u64,
        p50_us: if times.is_empty() { 0 } else { quantile(0.5) },
        p99_us: if times.is_empty() { 0 } else { quantile(0.99) },
        max_us: times.last().copied().unwrap_or(0),
        logged_problems: problems.len() as u64,
        tallies,
        ..Report::default()
    })
}
