//! The heartbeat: at every check interval each instance refreshes its presence entries in
//! Redis and reads those of the channels in use through it ([`super::presence`]), and
//! writes how many connections each client address has open on it to a Redis key that
//! expires, reading every other instance's. Between beats, a user's first connection
//! joining a channel here or their last one leaving it is written at once.
//!
//! An instance that dies stops beating: its entries and its key expire, and its users go
//! offline everywhere. After a Redis restart the next beats rebuild everything. While Redis
//! is unreachable for longer than an entry lives, each instance forgets the others' reports
//! and works from what it knows itself (presence and connection counts are then local).
//!
//! Connection counts stay one key per instance: a limit is checked against an address's
//! total over every instance, which one read of every instance's key gives; per-channel
//! sets would not help there.

use super::presence::{self, Presence, Reported};
use super::Node;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How an instance counts its open connections per client address (the server's table).
pub type AddressCounts = Arc<dyn Fn() -> Vec<(IpAddr, usize)> + Send + Sync>;

/// How long a change of who is here waits before it is written: changes that come
/// together (a user closing several tabs, a crowd joining) go in one exchange.
const GATHER: Duration = Duration::from_millis(20);

/// What one instance reports in its own key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Beat {
    addresses: Vec<(IpAddr, usize)>,
}

/// Beats until the process ends; `remote` receives the other instances' connection counts.
pub(super) async fn run(
    node: Arc<Node>,
    presence: Arc<Presence>,
    every: Duration,
    local_addresses: AddressCounts,
    remote: Arc<Mutex<HashMap<IpAddr, usize>>>,
) {
    let lifetime = presence.lifetime;
    let members = format!("{}:instances", node.prefix);
    let key_of = |instance: &str| format!("{}:instance:{instance}", node.prefix);
    let mut reported = Reported::default();
    let mut last_ok = Instant::now();
    let mut unreachable = false;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let patience = every.max(Duration::from_secs(1));
    loop {
        let full = tokio::select! {
            _ = tick.tick() => true,
            () = node.hub.presence_moved() => false,
        };
        if !full {
            tokio::time::sleep(GATHER).await;
            let here = presence::here(node.hub.channels_in_use());
            let changes = reported.changes(&here);
            if changes.is_empty() {
                continue;
            }
            // A failure leaves the work to the next beat.
            match tokio::time::timeout(patience, presence.exchange(&changes)).await {
                Ok(Ok(_)) => reported.took(here),
                _ => reported.failed(here),
            }
            continue;
        }
        let started = Instant::now();
        let here = presence::here(node.hub.channels_in_use());
        let exchanges = reported.beat(&here);
        let beat = Beat {
            addresses: local_addresses(),
        };
        let exchanged = async {
            let mut conn = presence.connection().await?;
            let payload = serde_json::to_vec(&beat).unwrap_or_default();
            let (instances,): (Vec<String>,) = redis::pipe()
                .cmd("SET")
                .arg(key_of(&node.me))
                .arg(payload)
                .arg("PX")
                .arg(lifetime.as_millis() as u64)
                .ignore()
                .cmd("SADD")
                .arg(&members)
                .arg(&node.me)
                .ignore()
                .cmd("SMEMBERS")
                .arg(&members)
                .query_async(&mut conn)
                .await?;
            let others: Vec<String> = instances.into_iter().filter(|i| *i != node.me).collect();
            let mut counts: HashMap<IpAddr, usize> = HashMap::new();
            if !others.is_empty() {
                let keys: Vec<String> = others.iter().map(|i| key_of(i)).collect();
                let found: Vec<Option<Vec<u8>>> =
                    redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
                for (instance, payload) in others.into_iter().zip(found) {
                    match payload {
                        Some(payload) => match serde_json::from_slice::<Beat>(&payload) {
                            Ok(beat) => {
                                for (address, count) in beat.addresses {
                                    *counts.entry(address).or_default() += count;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, %instance, "ignoring a heartbeat that does not parse")
                            }
                        },
                        // Its key expired: it stopped beating.
                        None => {
                            let _: Result<(), _> = redis::cmd("SREM")
                                .arg(&members)
                                .arg(&instance)
                                .query_async(&mut conn)
                                .await;
                        }
                    }
                }
            }
            let found = presence.exchange(&exchanges).await?;
            Ok::<_, redis::RedisError>((counts, found))
        };
        match tokio::time::timeout(patience, exchanged).await {
            Ok(Ok((counts, found))) => {
                presence.reachable.store(true, Ordering::Relaxed);
                reported.took(here.clone());
                if reported.lost(&exchanges, &found) {
                    // Redis lost entries of this instance (it restarted): write them again.
                    let again = reported.changes(&here);
                    match tokio::time::timeout(patience, presence.exchange(&again)).await {
                        Ok(Ok(_)) => reported.took(here),
                        _ => reported.failed(here),
                    }
                }
                if unreachable {
                    tracing::info!("heartbeats reach Redis again: presence and connection limits hold across instances");
                    unreachable = false;
                }
                last_ok = Instant::now();
                let read: Vec<_> = exchanges
                    .into_iter()
                    .zip(found)
                    .filter(|(exchange, _)| exchange.beat)
                    .map(|(exchange, found)| (exchange.room, found.others))
                    .collect();
                let rooms = read.len();
                node.hub.set_remote_presence(read);
                *remote.lock().unwrap_or_else(|e| e.into_inner()) = counts;
                tracing::debug!(
                    micros = started.elapsed().as_micros() as u64,
                    rooms,
                    "heartbeat"
                );
            }
            failed => {
                presence.reachable.store(false, Ordering::Relaxed);
                reported.failed(here);
                if !unreachable {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer in time".into(),
                    };
                    tracing::warn!(%error, "heartbeats cannot reach Redis: presence and connection limits are this instance's own until it returns");
                    unreachable = true;
                }
                if last_ok.elapsed() > lifetime {
                    // The others' entries are older than an entry lives: forget them.
                    node.hub.forget_remote_presence();
                    remote.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
            }
        }
    }
}
