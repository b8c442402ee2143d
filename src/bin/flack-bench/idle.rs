//! Idle connections: open C WebSockets (spread over many loopback source addresses), hold
//! them, and report connects per second and server memory per connection.

use crate::net;
use crate::report::Report;
use crate::servers::{Kind, Server};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Opens `count` idle connections to a fresh server of `kind` and measures it.
pub async fn run(kind: Kind, count: usize) -> Result<Report, String> {
    let server = Server::start(kind).await?;
    let addr = server.addr;
    // Let the server settle, then take the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.sample();
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(512));
    let mut opening = Vec::with_capacity(count);
    for i in 0..count {
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
    let mut held = Vec::with_capacity(count);
    for task in opening {
        if let Ok(Some(ws)) = task.await {
            held.push(ws);
        }
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.sample();
    let report = Report::idle(kind, count, held.len(), elapsed, before, after);
    drop(held);
    Ok(report)
}
