//! First load: the server-rendered page of a channel holding 100 messages, requested over
//! and over by a few keep-alive connections; pages per second and latency.

use crate::net::{self, Http};
use crate::report::Report;
use crate::servers::{Kind, Server};
use flack::chat::model::{ChannelName, Room};
use flack::protocol::ClientEvent;
use futures_util::SinkExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// What every message of the loaded channel says, after its number.
const PADDING: &str = "the quick brown fox jumps over the lazy dog";

/// A `send` of `body` to `room`.
fn post(room: &Room, body: String) -> String {
    ClientEvent::Send {
        room: room.clone(),
        body,
        attachment: None,
        reply_to: None,
        client_ref: None,
    }
    .encode()
}

/// Fills a channel with 100 messages, then loads its page with `workers` connections for
/// `duration`, while `posts_per_second` new messages go to the channel (each one changes the
/// page, so Flack must render it again; 0 measures a channel nobody writes in).
pub async fn run(
    workers: usize,
    duration: Duration,
    posts_per_second: f64,
) -> Result<Report, String> {
    let server = Server::start(Kind::Flack).await?;
    let addr = server.addr;
    let token = net::register(addr, "bench-loader").await?;
    net::create_channel(addr, &token, "loaded").await?;
    let room = ChannelName::parse("loaded")
        .map(Room::Channel)
        .map_err(|e| e.to_string())?;
    let mut ws = net::websocket(addr, None).await?;
    let auth = ClientEvent::Auth {
        token: token.clone(),
    };
    ws.send(Message::text(auth.encode()))
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..100 {
        let send = post(&room, format!("message {i}: {PADDING}"));
        ws.send(Message::text(send))
            .await
            .map_err(|e| e.to_string())?;
    }
    // Let the posts land before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut check = Http::connect(addr, None).await.map_err(|e| e.to_string())?;
    let path = flack::app::nav::channel_path("loaded");
    let page = check
        .request("GET", &path, None)
        .await
        .map_err(|e| e.to_string())?;
    let html = String::from_utf8_lossy(&page.body);
    if page.status != 200 || !html.contains("message 99:") {
        return Err(format!(
            "the page is not what it should be (status {})",
            page.status
        ));
    }
    let bytes = page.body.len();

    let before = server.sample();
    let harness_before = crate::procstat::own_cpu_secs();
    let started = Instant::now();
    let poster = tokio::spawn(async move {
        if posts_per_second <= 0.0 {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / posts_per_second));
        let deadline = Instant::now() + duration;
        let mut i = 0u64;
        while Instant::now() < deadline {
            tick.tick().await;
            let send = post(&room, format!("later message {i}: {PADDING}"));
            if ws.send(Message::text(send)).await.is_err() {
                return;
            }
            i += 1;
        }
    });
    let mut tasks = Vec::new();
    for i in 0..workers {
        tasks.push(tokio::spawn(async move {
            let mut latency = crate::fanout::new_histogram();
            let path = flack::app::nav::channel_path("loaded");
            let mut http = Http::connect(addr, Some(net::source_ip(i))).await.ok()?;
            let deadline = Instant::now() + duration;
            let mut pages = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let response = http.request("GET", &path, None).await.ok()?;
                if response.status != 200 {
                    return None;
                }
                let _ = latency.record((t.elapsed().as_micros() as u64).max(1));
                pages += 1;
            }
            Some((pages, latency))
        }));
    }
    let mut pages = 0;
    let mut latency = crate::fanout::new_histogram();
    for task in tasks {
        if let Ok(Some((n, h))) = task.await {
            pages += n;
            let _ = latency.add(&h);
        }
    }
    let elapsed = started.elapsed();
    let after = server.sample();
    poster.abort();
    let harness_cpu = crate::procstat::own_cpu_secs() - harness_before;
    let mut report = Report::first_load(workers, pages, bytes, &latency, elapsed, before, after);
    // The posting rate is shown in the rate column.
    report.target_rate = posts_per_second;
    report.harness_cpu_secs = harness_cpu;
    Ok(report)
}
