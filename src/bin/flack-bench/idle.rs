//! Idle connections: open C WebSockets (spread over many loopback source addresses), hold
//! them, and report connects per second and server memory per connection.

use crate::net;
use crate::report::Report;
use crate::servers::{Kind, Server};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Opens `count` idle connections to a fresh server of `kind` and measures it.
///
/// The connections open in two halves, and memory per connection is what the second half
/// added, divided by its size. Measured from the server's start instead, it came out 8 to
/// 10 KiB from run to run: memory Flack's allocator kept after compressing its assets at
/// start-up (30-70 MiB, given back over the next ten seconds or not at all) was counted in
/// the baseline and then reused by connections. The first half uses that slack up.
pub async fn run(kind: Kind, count: usize) -> Result<Report, String> {
    let server = Server::start(kind).await?;
    let first = count / 2;
    let mut held = Vec::with_capacity(count);
    let before = server.sample();
    let mut elapsed = open(&server, 0..first, &mut held).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let middle = (server.sample(), held.len());
    elapsed += open(&server, first..count, &mut held).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.sample();
    let report = Report::idle(kind, count, held.len(), elapsed, before, middle, after);
    drop(held);
    Ok(report)
}

/// Opens the connections numbered `range` (512 at a time) and adds those that succeed to
/// `held`; returns how long that took.
async fn open(server: &Server, range: std::ops::Range<usize>, held: &mut Vec<net::Ws>) -> Duration {
    let (kind, addr) = (server.kind, server.addr);
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(512));
    let mut opening = Vec::with_capacity(range.len());
    for i in range {
        let gate = gate.clone();
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.ok()?;
            // A connection not accepted within 10 s counts as failed (the kernel would
            // otherwise keep retrying a dropped SYN for minutes).
            let mut ws = tokio::time::timeout(
                Duration::from_secs(10),
                net::websocket(addr, Some(net::source_ip(i))),
            )
            .await
            .ok()?
            .ok()?;
            if kind == Kind::Flack {
                // The welcome event proves the server registered the connection.
                tokio::time::timeout(Duration::from_secs(30), ws.next())
                    .await
                    .ok()??
                    .ok()?;
            }
            Some(ws)
        }));
    }
    for task in opening {
        if let Ok(Some(ws)) = task.await {
            held.push(ws);
        }
    }
    started.elapsed()
}
