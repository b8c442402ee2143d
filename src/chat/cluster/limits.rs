//! Allowances that hold across instances: a token bucket per user and kind of action, kept
//! in Redis and taken from atomically (one script run per action), so a user posting
//! through two instances has one allowance, not two. While Redis is unreachable the caller
//! relies on its own instance's allowance (the hub's), and that is logged once.

use crate::chat::model::UserId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How long one take may wait for Redis before the instance's own allowance decides.
const TAKE_TIMEOUT: Duration = Duration::from_millis(200);

/// How often connecting to an unreachable Redis is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Refills the bucket for the time since it was last used (at `rate` tokens a second, up to
/// `burst`), takes one token if there is one, and answers 1 if it did. Redis's own clock
/// is used, so instances' clocks need not agree. The key expires once the bucket would be
/// full again.
const TAKE: &str = "
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return taken
";

/// The cluster-wide allowances.
pub struct Limiter {
    client: redis::Client,
    prefix: String,
    connection: tokio::sync::Mutex<Connection>,
    reported: AtomicBool,
}

#[derive(Default)]
struct Connection {
    manager: Option<redis::aio::ConnectionManager>,
    tried_at: Option<Instant>,
    /// After a failed take, Redis is not asked again before this: while it is down, posts
    /// do not each wait for it.
    resting_until: Option<Instant>,
}

impl Limiter {
    pub(super) fn new(client: redis::Client, prefix: String) -> Limiter {
        Limiter {
            client,
            prefix,
            connection: tokio::sync::Mutex::new(Connection::default()),
            reported: AtomicBool::new(false),
        }
    }

    async fn manager(&self) -> Option<redis::aio::ConnectionManager> {
        let mut connection = self.connection.lock().await;
        if connection
            .resting_until
            .is_some_and(|until| Instant::now() < until)
        {
            return None;
        }
        if let Some(manager) = &connection.manager {
            return Some(manager.clone());
        }
        if connection
            .tried_at
            .is_some_and(|at| at.elapsed() < RETRY_EVERY)
        {
            return None;
        }
        connection.tried_at = Some(Instant::now());
        let made = tokio::time::timeout(
            TAKE_TIMEOUT,
            redis::aio::ConnectionManager::new(self.client.clone()),
        )
        .await;
        connection.manager = made.ok().and_then(Result::ok);
        connection.manager.clone()
    }

    /// Takes one action from `user`'s cluster-wide `kind` allowance (`per_second` on
    /// average, `burst` at once): `Some(true)` if allowed, `Some(false)` if not, `None` if
    /// Redis could not say (the instance's own allowance then decides).
    pub async fn take(
        &self,
        kind: &str,
        user: UserId,
        per_second: f64,
        burst: u32,
    ) -> Option<bool> {
        let answer = async {
            let mut manager = self.manager().await?;
            let key = format!("{}:allowance:{kind}:{}", self.prefix, user.0);
            let taken: redis::RedisResult<i64> = super::in_time(
                TAKE_TIMEOUT,
                redis::cmd("EVAL")
                    .arg(TAKE)
                    .arg(1)
                    .arg(key)
                    .arg(per_second)
                    .arg(burst)
                    .query_async(&mut manager),
            )
            .await;
            match taken {
                Ok(taken) => Some(taken == 1),
                Err(e) => {
                    self.connection.lock().await.resting_until = Some(Instant::now() + RETRY_EVERY);
                    if !self.reported.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "cluster-wide allowances are unavailable: each instance limits on its own until Redis answers");
                    }
                    None
                }
            }
        };
        let taken = answer.await;
        if taken.is_some() && self.reported.swap(false, Ordering::Relaxed) {
            tracing::info!("cluster-wide allowances hold again");
        }
        taken
    }
}
