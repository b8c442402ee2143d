//! Which changes this instance receives from Redis: the directory's always, a channel's
//! while it has local members (or was used here a moment ago), a user's private
//! conversations while that user is connected here, and the news of every channel's
//! messages while a connection here follows unread counts (a browser's sidebar shows every
//! channel's unread state; the news carry only what that needs: room, number, author, and
//! the body only when it may mention someone).
//!
//! A room nobody here uses is not followed: its copy in the hub goes stale, and is brought
//! up to the database's state ([`super::Repair::Now`]) the moment it is used again, after
//! the subscription is made. That order loses nothing: a change committed before the read
//! is in the read, and one committed after it is published after the subscription.
//!
//! Invariants:
//! 1. `wanted` lists every topic subscribed to on the current subscription (plus, while
//!    Redis is down, the topics to subscribe to once it answers).
//! 2. Subscribing and unsubscribing happen with `redis` locked, in the order the set
//!    changed, so the subscription ends as the set says.
//! 3. A topic leaves the set only when it has not been used for [`Interest::linger`] and
//!    has no local member: a join, which touches its room just before the hub adds the
//!    member, cannot lose its subscription in between.

use crate::chat::model::{Room, UserId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long one subscribe or unsubscribe may wait for Redis; after that the subscription
/// is taken as lost (it is made again, with every wanted topic).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// A stream of changes an instance can follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Topic {
    /// A channel's messages and deletions.
    Channel(Room),
    /// Every private conversation one user takes part in.
    User(UserId),
    /// The news of every channel's messages ([`super::bus::NewsEnvelope`]).
    News,
}

/// What this instance follows, and the Redis subscription that carries it.
pub(super) struct Interest {
    prefix: String,
    /// How long an unused topic stays followed.
    linger: Duration,
    /// Each followed topic by its Redis channel, with when it was last used here.
    wanted: Mutex<HashMap<String, (Topic, Instant)>>,
    /// The current subscription's command side, while there is one.
    redis: tokio::sync::Mutex<Option<redis::aio::PubSubSink>>,
    /// Woken when a command got no answer: the subscription is made again.
    pub(super) lost: tokio::sync::Notify,
}

/// The Redis channel of the directory (new users, channels and renames).
pub(super) fn directory_channel(prefix: &str) -> String {
    format!("{prefix}:directory")
}

/// The Redis channel of a topic.
pub(super) fn channel_of(prefix: &str, topic: &Topic) -> String {
    match topic {
        Topic::Channel(room) => {
            format!("{prefix}:room:{}", crate::chat::postgres::room_key(room))
        }
        Topic::User(user) => format!("{prefix}:user:{}", user.0),
        Topic::News => format!("{prefix}:news"),
    }
}

impl Interest {
    pub(super) fn new(prefix: String, linger: Duration) -> Interest {
        Interest {
            prefix,
            linger,
            wanted: Mutex::new(HashMap::new()),
            redis: tokio::sync::Mutex::new(None),
            lost: tokio::sync::Notify::new(),
        }
    }

    fn wanted(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Topic, Instant)>> {
        self.wanted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows a topic from now on (touching it if it is followed already). Answers true
    /// if it was not followed: the caller then brings what it covers up to date.
    pub(super) async fn enter(&self, topic: Topic) -> bool {
        let channel = channel_of(&self.prefix, &topic);
        if let Some((_, touched)) = self.wanted().get_mut(&channel) {
            *touched = Instant::now();
            return false;
        }
        let mut redis = self.redis.lock().await;
        {
            let mut wanted = self.wanted();
            if let Some((_, touched)) = wanted.get_mut(&channel) {
                *touched = Instant::now();
                return false;
            }
            wanted.insert(channel.clone(), (topic.clone(), Instant::now()));
        }
        if let Some(sink) = redis.as_mut() {
            let made = tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(&channel)).await;
            if !matches!(made, Ok(Ok(()))) {
                tracing::warn!(%channel, "could not subscribe in time; subscribing again");
                // The periodic check repairs this topic's rooms until then.
                *redis = None;
                self.lost.notify_one();
            }
        }
        true
    }

    /// Whether changes to `room` reach this instance (so the periodic check keeps it up to
    /// date too).
    pub(super) fn follows(&self, room: &Room) -> bool {
        let wanted = self.wanted();
        match room {
            Room::Channel(_) => {
                wanted.contains_key(&channel_of(&self.prefix, &Topic::Channel(room.clone())))
            }
            Room::Direct(direct) => direct
                .users()
                .iter()
                .any(|user| wanted.contains_key(&channel_of(&self.prefix, &Topic::User(*user)))),
        }
    }

    /// Whether the news of every channel's messages reach this instance.
    pub(super) fn follows_news(&self) -> bool {
        self.wanted()
            .contains_key(&channel_of(&self.prefix, &Topic::News))
    }

    /// Stops following the topics unused for [`Interest::linger`] that `in_use` (asked
    /// with the set locked) says have no local member any more.
    pub(super) async fn sweep(&self, in_use: impl Fn(&Topic) -> bool) {
        let mut redis = self.redis.lock().await;
        let unused: Vec<String> = {
            let mut wanted = self.wanted();
            let unused: Vec<String> = wanted
                .iter()
                .filter(|(_, (topic, touched))| touched.elapsed() >= self.linger && !in_use(topic))
                .map(|(name, _)| name.clone())
                .collect();
            for channel in &unused {
                wanted.remove(channel);
            }
            if !unused.is_empty() {
                tracing::debug!(still = wanted.len(), "no longer following unused rooms");
            }
            unused
        };
        if unused.is_empty() {
            return;
        }
        if let Some(sink) = redis.as_mut() {
            let made = tokio::time::timeout(COMMAND_TIMEOUT, sink.unsubscribe(&unused)).await;
            if !matches!(made, Ok(Ok(()))) {
                *redis = None;
                self.lost.notify_one();
            }
        }
    }

    /// Takes a new subscription's command side: subscribes it to the directory and to
    /// every wanted topic.
    pub(super) async fn attach(&self, mut sink: redis::aio::PubSubSink) -> redis::RedisResult<()> {
        let mut redis = self.redis.lock().await;
        let mut wanted: Vec<String> = self.wanted().keys().cloned().collect();
        wanted.push(directory_channel(&self.prefix));
        super::in_time(COMMAND_TIMEOUT * 4, sink.subscribe(&wanted)).await?;
        *redis = Some(sink);
        Ok(())
    }

    /// Forgets the subscription (it ended).
    pub(super) async fn detach(&self) {
        *self.redis.lock().await = None;
    }
}
