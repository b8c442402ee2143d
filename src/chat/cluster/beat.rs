//! The heartbeat: at every check interval each instance writes what only it knows (who is
//! connected to which channel through it, and how many connections each client address has
//! open on it) to a Redis key that expires, and reads every other instance's. An instance
//! that dies stops writing, its key expires, and its users go offline everywhere; after a
//! Redis restart the next beats rebuild everything. While Redis is unreachable for longer
//! than a key lives, each instance forgets the others' reports and works from what it knows
//! itself (presence and connection counts are then local).

use super::Node;
use crate::chat::model::{Room, UserId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How an instance counts its open connections per client address (the server's table).
pub type AddressCounts = Arc<dyn Fn() -> Vec<(IpAddr, usize)> + Send + Sync>;

/// What one instance reports.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Beat {
    presence: Vec<(Room, Vec<UserId>)>,
    addresses: Vec<(IpAddr, usize)>,
}

/// Beats until the process ends; `remote` receives the other instances' connection counts.
pub(super) async fn run(
    client: redis::Client,
    node: Arc<Node>,
    every: Duration,
    local_addresses: AddressCounts,
    remote: Arc<Mutex<HashMap<IpAddr, usize>>>,
) {
    // A key outlives a few missed beats, so a slow beat does not make an instance vanish.
    let lifetime = (every * 3).max(Duration::from_secs(3));
    let members = format!("{}:instances", node.prefix);
    let key_of = |instance: &str| format!("{}:instance:{instance}", node.prefix);
    let mut connection: Option<redis::aio::ConnectionManager> = None;
    let mut last_ok = Instant::now();
    let mut reported = false;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let beat = Beat {
            presence: node.hub.local_presence(),
            addresses: local_addresses(),
        };
        let exchanged = async {
            if connection.is_none() {
                connection = Some(redis::aio::ConnectionManager::new(client.clone()).await?);
            }
            let Some(conn) = connection.as_mut() else {
                return Ok(HashMap::new());
            };
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
                .query_async(conn)
                .await?;
            let others: Vec<String> = instances.into_iter().filter(|i| *i != node.me).collect();
            let mut beats = HashMap::new();
            if others.is_empty() {
                return Ok(beats);
            }
            let keys: Vec<String> = others.iter().map(|i| key_of(i)).collect();
            let found: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET").arg(&keys).query_async(conn).await?;
            for (instance, payload) in others.into_iter().zip(found) {
                match payload {
                    Some(payload) => match serde_json::from_slice::<Beat>(&payload) {
                        Ok(beat) => {
                            beats.insert(instance, beat);
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
                            .query_async(conn)
                            .await;
                    }
                }
            }
            Ok::<_, redis::RedisError>(beats)
        };
        match tokio::time::timeout(every.max(Duration::from_secs(1)), exchanged).await {
            Ok(Ok(beats)) => {
                if reported {
                    tracing::info!("heartbeats reach Redis again: presence and connection limits hold across instances");
                    reported = false;
                }
                last_ok = Instant::now();
                let alive: HashSet<String> = beats.keys().cloned().collect();
                let mut counts: HashMap<IpAddr, usize> = HashMap::new();
                for (instance, beat) in beats {
                    for (address, count) in beat.addresses {
                        *counts.entry(address).or_default() += count;
                    }
                    node.hub.set_remote_presence(&instance, beat.presence);
                }
                node.hub.forget_instances_except(&alive);
                *remote.lock().unwrap_or_else(|e| e.into_inner()) = counts;
                tracing::debug!(
                    micros = started.elapsed().as_micros() as u64,
                    "heartbeat"
                );
            }
            failed => {
                if !reported {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer in time".into(),
                    };
                    tracing::warn!(%error, "heartbeats cannot reach Redis: presence and connection limits are this instance's own until it returns");
                    reported = true;
                }
                if last_ok.elapsed() > lifetime {
                    // The others' reports are older than a key lives: forget them.
                    node.hub.forget_instances_except(&HashSet::new());
                    remote.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
            }
        }
    }
}
