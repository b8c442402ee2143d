//! Cluster mode (`data.store = "postgres"` with `cluster.redis_url` set): several Flack
//! instances on one PostgreSQL database and one Redis, losing nothing acknowledged when one
//! of them dies.
//!
//! - **PostgreSQL is the truth** ([`sql`]). The [`sequencer`] commits each instance's
//!   proposals ([`crate::chat::replica`]): a batch of posts to one room is one transaction
//!   that takes the room row's lock and raises its `next_seq`, so commit order is `seq`
//!   order and a rollback leaves no hole. Names are unique by the database's indexes.
//! - **Redis carries changes between instances** ([`bus`]), after their commit. It is
//!   at-most-once; the [`repair`] task reads back from PostgreSQL whatever did not arrive:
//!   a gap in a room's numbers (after a short wait for reordering), everything after a
//!   Redis subscription is made again, and, by a periodic check of every followed room's
//!   `next_seq`, deletion count and the directory count, a lost last message or deletion.
//!   An instance follows only the rooms used through it ([`interest`]).
//! - **Presence is kept in Redis per channel** ([`presence`]): a set of `user/instance`
//!   entries that expire unless their instance's heartbeat ([`beat`]) refreshes them, read
//!   by each instance for the channels in use through it. The heartbeat also carries each
//!   instance's connections per client address.
//! - **Acknowledged means committed**: a proposal is answered after its commit, and it is
//!   delivered (here and elsewhere) only after its commit, so a client that reconnects to
//!   any instance catches up with no gap. The epoch is the database's, kept whatever
//!   happens to instances.
//!
//! Each instance keeps its own hub, a copy of the database's recent state (of the rooms it
//! follows) that every instance brings up to date in the same order ([`crate::chat::hub::Hub::apply`]).
//! Attachments' bytes are in the database too ([`files`]).

mod beat;
mod bus;
pub mod files;
mod interest;
mod limits;
mod presence;
mod reads;
mod repair;
mod sequencer;
mod sql;

use crate::chat::hub::Hub;
use crate::chat::model::Room;
use crate::chat::postgres::{connect_as, describe, failed, Owner, CONNECT_TIMEOUT};
use crate::chat::replica::{Applied, Replicated, Sequencer};
use crate::chat::store::{Archive, Durable, Loaded, Retention, Store, StoreError};
pub use beat::AddressCounts;
pub use limits::Limiter;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What cluster mode needs to know.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// The shared PostgreSQL database.
    pub postgres_url: String,
    /// The shared Redis.
    pub redis_url: String,
    /// Starts every Redis channel name, so clusters can share one Redis.
    pub prefix: String,
    /// Messages each room keeps (the ring's size).
    pub retain: usize,
    /// Messages each room's archive keeps (`data.retain_messages`).
    pub retention: Retention,
    /// How often every room is compared with the database.
    pub check_every: Duration,
    /// How long a room waits for a missing number before reading it from the database.
    pub reorder_wait: Duration,
    /// Holds each published change back this long (a testing aid for reordering; zero).
    pub publish_delay: Duration,
    /// The cluster-wide caps (as the hub's settings).
    pub max_users: usize,
    pub max_channels: usize,
    /// The hub's settings, whose allowances the cluster shares (see [`Shared`]).
    pub hub: crate::chat::hub::HubSettings,
}

/// The allowances each user has once for the whole cluster (the others are each
/// instance's own).
#[derive(Clone, Copy, Debug)]
pub enum Shared {
    Messages,
    Channels,
    Joins,
    Renames,
    /// Private conversations started.
    Directs,
}

/// A cluster instance's connection to the database and Redis, between [`Cluster::open`]
/// and [`Cluster::start`].
pub struct Cluster {
    settings: ClusterSettings,
    config: tokio_postgres::Config,
    redis: redis::Client,
    store: Arc<ClusterStore>,
    sequencer: Sequencer,
    proposals: mpsc::UnboundedReceiver<crate::chat::replica::Submitted>,
    me: String,
}

impl Cluster {
    /// Connects to PostgreSQL (creating the database and the tables if missing), settles it
    /// for cluster mode and reads everything back. Redis need not be reachable yet.
    pub async fn open(settings: ClusterSettings) -> Result<Cluster, StoreError> {
        let mut config: tokio_postgres::Config = settings
            .postgres_url
            .parse()
            .map_err(|e| StoreError(format!("data.postgres_url is not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let redis = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| StoreError(format!("cluster.redis_url is not a Redis URL: {e}")))?;
        let mut client = connect_as(&config, true, Owner::Cluster).await?;
        let loaded =
            sql::settle_and_load(&mut client, settings.retain.max(1), settings.retention).await?;
        let (sequencer, proposals) = mpsc::unbounded_channel();
        let me = instance_name()?;
        tracing::info!(database = %describe(&config), instance = %me, "cluster mode: PostgreSQL is the truth, Redis carries changes");
        Ok(Cluster {
            store: Arc::new(ClusterStore {
                loaded: Mutex::new(Some(loaded)),
                pinger: Arc::new(Pinger {
                    client: tokio::sync::Mutex::new(Some(client)),
                    config: config.clone(),
                }),
                files: Arc::new(files::SharedFiles::new(config.clone())),
                reads: reads::ReadWriter::new(config.clone()),
                archive: Arc::new(crate::chat::postgres::PgArchive::new(
                    config.clone(),
                    settings.retention.at_least(settings.retain.max(1)),
                )),
            }),
            settings,
            config,
            redis,
            sequencer,
            proposals,
            me,
        })
    }

    /// What the hub loads from and asks readiness of.
    pub fn store(&self) -> Arc<ClusterStore> {
        self.store.clone()
    }

    /// Where the hub proposes changes.
    pub fn sequencer(&self) -> Sequencer {
        self.sequencer.clone()
    }

    /// Starts committing the hub's proposals, publishing and receiving changes, repairing
    /// what Redis lost, and exchanging heartbeats (presence, and each client address's
    /// connections as `addresses` counts them here). Runs until the process ends.
    pub fn start(self, hub: Hub, addresses: AddressCounts) -> ClusterHandle {
        let (repairs, repair_queue) = mpsc::unbounded_channel();
        let (outgoing, publish_queue) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::watch::channel(None);
        let interest = Arc::new(interest::Interest::new(
            self.settings.prefix.clone(),
            self.settings.check_every * LINGER_CHECKS,
        ));
        let node = Arc::new(Node {
            hub,
            me: self.me,
            prefix: self.settings.prefix.clone(),
            repairs,
            outgoing,
            directory: Mutex::new(DirectoryTrack::default()),
            redis_up: AtomicBool::new(false),
            interest: interest.clone(),
            reorder_wait: self.settings.reorder_wait,
            stop: stop.clone(),
        });
        self.store.reads.attach(node.clone());
        tokio::spawn(bus::publish(
            self.redis.clone(),
            publish_queue,
            self.settings.publish_delay,
        ));
        tokio::spawn(bus::subscribe(self.redis.clone(), node.clone()));
        tokio::spawn(files::sweep_now_and_then(self.store.files.clone()));
        tokio::spawn(sequencer::run(
            self.config.clone(),
            self.settings.clone(),
            node.clone(),
            self.proposals,
        ));
        let remote = Arc::new(Mutex::new(HashMap::new()));
        let presence = Arc::new(presence::Presence::new(
            self.redis.clone(),
            self.settings.prefix.clone(),
            node.me.clone(),
            self.settings.check_every,
        ));
        tokio::spawn(beat::run(
            node.clone(),
            presence.clone(),
            self.settings.check_every,
            addresses,
            remote.clone(),
        ));
        let repairs = node.repairs.clone();
        let chat = node.hub.clone();
        let typing_node = node.clone();
        tokio::spawn(repair::run(
            self.config,
            self.settings.clone(),
            node,
            repair_queue,
        ));
        ClusterHandle {
            limiter: Arc::new(Limiter::new(self.redis, self.settings.prefix.clone())),
            remote_addresses: remote,
            presence,
            repairs,
            interest,
            chat,
            hub: Arc::new(self.settings.hub),
            stopped,
            node: typing_node,
        }
    }
}

/// What the server asks of the cluster: allowances and connection counts that hold across
/// instances. Cheap to clone.
#[derive(Clone)]
pub struct ClusterHandle {
    limiter: Arc<Limiter>,
    remote_addresses: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Who is online where, in Redis.
    presence: Arc<presence::Presence>,
    repairs: mpsc::UnboundedSender<Repair>,
    interest: Arc<interest::Interest>,
    /// This instance's hub.
    chat: Hub,
    /// Where the shared allowances' sizes come from.
    hub: Arc<crate::chat::hub::HubSettings>,
    stopped: tokio::sync::watch::Receiver<Option<String>>,
    /// Publishes what is not committed (typing notices).
    node: Arc<Node>,
}

/// How many periodic checks a room nobody here uses stays followed (so a reader moving
/// between rooms does not subscribe and unsubscribe at every move).
const LINGER_CHECKS: u32 = 30;

/// How long a join waits for its instance to catch up with the database.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// How long a join waits for its channel's presence to be read.
const PRESENCE_WAIT: Duration = Duration::from_millis(300);

impl ClusterHandle {
    /// Before a join: reads who is online in a channel through other instances if nobody
    /// here uses it yet (heartbeats read only the channels in use here), so the joiner's
    /// online list is current. Gives up after [`PRESENCE_WAIT`], and at once while
    /// heartbeats do not reach Redis (the next heartbeat then brings it up to date).
    pub async fn read_presence(&self, room: &Room) {
        // Only channels this instance knows: a made-up name costs no read.
        if !matches!(room, Room::Channel(_))
            || self.chat.next_seq(room).is_none()
            || self.chat.has_members(room)
        {
            return;
        }
        match tokio::time::timeout(PRESENCE_WAIT, self.presence.read(room)).await {
            Ok(Ok(users)) => self.chat.set_remote_presence(vec![(room.clone(), users)]),
            Ok(Err(e)) => tracing::debug!(error = %e, "could not read a channel's presence"),
            Err(_) => tracing::debug!("a channel's presence was not read in time"),
        }
    }

    /// Brings a room up to the database's state before a client that holds more of it
    /// than this instance does joins it (it was connected to another instance); gives up
    /// after [`CATCH_UP_WAIT`] (the client then gets a snapshot).
    pub async fn catch_up(&self, room: &Room) {
        let (done, finished) = tokio::sync::oneshot::channel();
        let asked = Repair::Now {
            room: room.clone(),
            done,
        };
        if self.repairs.send(asked).is_ok() {
            let _ = tokio::time::timeout(CATCH_UP_WAIT, finished).await;
        }
    }

    /// Follows a channel from now on, for a reader here (its page, its history, a join):
    /// the first use after a while subscribes to the channel's changes and then brings the
    /// channel up to the database's state (waiting at most [`CATCH_UP_WAIT`]). Answers true
    /// if it did so. A private conversation is followed through its participants
    /// ([`ClusterHandle::follow_user`]).
    pub async fn follow_room(&self, room: &Room) -> bool {
        // Only channels this instance knows: a made-up name costs no subscription.
        if !matches!(room, Room::Channel(_)) || self.chat.next_seq(room).is_none() {
            return false;
        }
        if !self
            .interest
            .enter(interest::Topic::Channel(room.clone()))
            .await
        {
            return false;
        }
        self.catch_up(room).await;
        true
    }

    /// Follows a user's private conversations from now on (they connected here, or asked
    /// for their conversations): the first use after a while subscribes to them and then
    /// brings every followed room up to the database's state (waiting at most
    /// [`CATCH_UP_WAIT`]).
    pub async fn follow_user(&self, user: crate::chat::model::UserId) {
        if !self.interest.enter(interest::Topic::User(user)).await {
            return;
        }
        let (done, finished) = tokio::sync::oneshot::channel();
        if self.repairs.send(Repair::Checked { done }).is_ok() {
            let _ = tokio::time::timeout(CATCH_UP_WAIT, finished).await;
        }
    }

    /// Follows the news of every channel's messages from now on, for a connection here
    /// that follows unread counts (its sidebar shows every channel's), and brings the
    /// channels its summary counts up to the database's state first (waiting at most
    /// [`CATCH_UP_WAIT`]): every channel when the news were not followed until now, else
    /// only those whose news ran ahead of their copy here.
    pub async fn follow_news(&self) {
        let (done, finished) = tokio::sync::oneshot::channel();
        let asked = if self.interest.enter(interest::Topic::News).await {
            Repair::Channels { done }
        } else if self.chat.stale_channels().is_empty() {
            return;
        } else {
            Repair::Stale { done }
        };
        if self.repairs.send(asked).is_ok() {
            let _ = tokio::time::timeout(CATCH_UP_WAIT, finished).await;
        }
    }

    /// Relays a typing notice made here to the room's members on the other instances
    /// (never stored: lost with Redis, like the notice it is).
    pub fn relay_typing(&self, room: &Room, user: crate::chat::model::UserId) {
        self.node.publish(Replicated::Typing {
            user,
            room: room.clone(),
        });
    }

    /// Resolves, with the reason, once this instance must stop: the database lost commits
    /// it delivered, or another instance found so, and the cluster started a new epoch.
    /// The server then stops (clients reconnect elsewhere) and, restarted, loads the new
    /// epoch; clients holding the old one get snapshots.
    pub async fn stopped(&self) -> String {
        let mut stopped = self.stopped.clone();
        let reason = match stopped.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }

    /// Learns the user a token belongs to from the database, if this instance does not
    /// know them yet (they registered through another instance a moment ago).
    pub async fn learn_token(&self, token: &str) {
        let (done, finished) = tokio::sync::oneshot::channel();
        let hash = crate::chat::hub::hash_token(token);
        if self.repairs.send(Repair::Token { hash, done }).is_ok() {
            let _ = tokio::time::timeout(CATCH_UP_WAIT, finished).await;
        }
    }

    /// Takes one action from `user`'s cluster-wide allowance of `kind` (sized as the
    /// instance's own allowance of it), refusing with that allowance's error when it is
    /// used up. While Redis cannot say, the instance's own allowance (the hub's) decides.
    pub async fn allow(
        &self,
        kind: Shared,
        user: crate::chat::model::UserId,
    ) -> Result<(), crate::chat::model::ChatError> {
        use crate::chat::model::ChatError;
        let hub = &self.hub;
        let per_minute = |n: u32| f64::from(n) / 60.0;
        let (name, rate, burst, refusal) = match kind {
            Shared::Messages => (
                "messages",
                f64::from(hub.messages_per_second),
                hub.message_burst,
                ChatError::RateLimited,
            ),
            Shared::Channels => (
                "channels",
                per_minute(hub.channels_per_minute),
                hub.channels_per_minute,
                ChatError::ChannelRateLimited,
            ),
            Shared::Joins => (
                "joins",
                f64::from(hub.joins_per_second),
                hub.join_burst,
                ChatError::JoinRateLimited,
            ),
            Shared::Renames => (
                "renames",
                per_minute(hub.renames_per_minute),
                hub.renames_per_minute,
                ChatError::RenameRateLimited,
            ),
            Shared::Directs => (
                "directs",
                per_minute(hub.directs_per_minute),
                hub.directs_per_minute,
                ChatError::DirectRateLimited,
            ),
        };
        match self.limiter.take(name, user, rate, burst).await {
            Some(false) => Err(refusal),
            Some(true) | None => Ok(()),
        }
    }

    /// Connections `address` has open on the other instances, as of their last heartbeat
    /// (0 while Redis is unreachable).
    pub fn remote_connections(&self, address: IpAddr) -> usize {
        self.remote_addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&address)
            .copied()
            .unwrap_or(0)
    }
}

/// `answer`, or an I/O error if it does not come within `limit`.
async fn in_time<T>(
    limit: Duration,
    answer: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    tokio::time::timeout(limit, answer)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no answer in time",
            )))
        })
}

/// A name for this instance, unique among the cluster's: host, process and a random part.
fn instance_name() -> Result<String, StoreError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| StoreError(format!("no randomness: {e}")))?;
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    Ok(format!(
        "{host}-{}-{:02x}{:02x}{:02x}{:02x}",
        std::process::id(),
        bytes[0],
        bytes[1],
        bytes[2],
        bytes[3]
    ))
}

/// What the hub loads from in cluster mode, and asks readiness of. It takes no changes:
/// in cluster mode the hub proposes them to the sequencer.
pub struct ClusterStore {
    loaded: Mutex<Option<Loaded>>,
    pinger: Arc<Pinger>,
    files: Arc<files::SharedFiles>,
    /// Writes read positions, on a connection of its own.
    reads: Arc<reads::ReadWriter>,
    /// Reads older messages from the database, on a connection of its own.
    archive: Arc<crate::chat::postgres::PgArchive>,
}

fn not_here() -> Durable {
    Durable::done(Err(StoreError(
        "in cluster mode changes go through the sequencer".into(),
    )))
}

impl Store for ClusterStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        crate::chat::store::load_once(&self.loaded)
    }
    fn put_channel(&self, _: &crate::chat::model::ChannelInfo) -> Durable {
        not_here()
    }
    fn put_user(
        &self,
        _: &crate::chat::model::UserInfo,
        _: &crate::chat::store::TokenHash,
    ) -> Durable {
        not_here()
    }
    fn rename_user(&self, _: &crate::chat::model::UserInfo) -> Durable {
        not_here()
    }
    fn put_message(&self, _: &crate::chat::model::Message) -> Durable {
        not_here()
    }
    fn delete_message(&self, _: &Room, _: crate::chat::model::MessageId) -> Durable {
        not_here()
    }
    fn edit_message(&self, _: &crate::chat::model::Message) -> Durable {
        not_here()
    }
    /// Written straight to the database (see [`reads`]).
    fn put_read(&self, user: crate::chat::model::UserId, room: &Room, seq: u64) -> Durable {
        self.reads.put(user, room, seq)
    }
    /// Other instances move positions too (see [`reads`]).
    fn reads_of(&self, user: crate::chat::model::UserId) -> Option<crate::chat::store::ReadsRead> {
        Some(self.reads.read(user))
    }

    /// Resolves once the database answers a query, on a connection of its own.
    fn ping(&self) -> Durable {
        let (written, durable) = Durable::pending();
        let pinger = self.pinger.clone();
        tokio::spawn(async move { written.report(pinger.ping().await) });
        durable
    }

    fn shared_files(&self) -> Option<Arc<files::SharedFiles>> {
        Some(self.files.clone())
    }

    fn archive(&self) -> Option<Arc<dyn Archive>> {
        Some(self.archive.clone())
    }
}

/// The connection readiness checks use, made again when lost.
struct Pinger {
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    config: tokio_postgres::Config,
}

impl Pinger {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            *client = Some(connect_as(&self.config, false, Owner::Cluster).await?);
        }
        let Some(connected) = client.as_ref() else {
            return Err(StoreError("no connection".into()));
        };
        let answered = tokio::time::timeout(PING_TIMEOUT, connected.simple_query("SELECT 1")).await;
        match answered {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                *client = None;
                Err(failed(e))
            }
            Err(_) => {
                *client = None;
                Err(StoreError("PostgreSQL did not answer in time".into()))
            }
        }
    }
}

/// How long a readiness query may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Where this instance stands with the directory: the directory count it has applied every
/// change up to, and the counts it has applied above that.
#[derive(Debug, Default)]
struct DirectoryTrack {
    through: u64,
    above: BTreeSet<u64>,
    /// The database's count at the last check, if it was ahead then.
    behind_at_last_check: Option<u64>,
}

impl DirectoryTrack {
    fn seen(&mut self, count: u64) {
        if count <= self.through {
            return;
        }
        self.above.insert(count);
        while self.above.remove(&(self.through + 1)) {
            self.through += 1;
        }
    }

    fn reloaded(&mut self, count: u64) {
        self.through = self.through.max(count);
        let through = self.through;
        self.above.retain(|c| *c > through);
        while self.above.remove(&(self.through + 1)) {
            self.through += 1;
        }
        self.behind_at_last_check = None;
    }
}

/// What the repair task is asked to do.
#[derive(Debug)]
enum Repair {
    /// A room waits for a missing number: read it back if it has not come by `at`.
    Room {
        room: Room,
        at: tokio::time::Instant,
    },
    /// A change referred to a user or channel this instance does not know: read the
    /// directory again, then apply the change. (Boxed: a change may hold a whole message,
    /// far larger than the other requests.)
    Directory(Box<Replicated>),
    /// Compare every followed room with the database now.
    Full,
    /// The same, and say when done.
    Checked {
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// Look a session token's user up in the database (registered through another
    /// instance, whose news has not arrived), and say when done.
    Token {
        hash: crate::chat::store::TokenHash,
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// Bring a room up to the database's state now, and say when done.
    Now {
        room: Room,
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// Bring every channel up to the database's state now (this instance starts following
    /// the news, and its copies of channels nobody here read may be far behind), and say
    /// when done.
    Channels {
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// Bring the channels whose news ran ahead of their copy here up to the database's
    /// state now (for a summary of unread counts), and say when done.
    Stale {
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// One instance's side of the cluster, shared by its tasks.
pub(super) struct Node {
    hub: Hub,
    /// This instance's name, which its own changes carry.
    me: String,
    prefix: String,
    repairs: mpsc::UnboundedSender<Repair>,
    /// Changes to publish, with their channel.
    outgoing: mpsc::UnboundedSender<(String, Vec<u8>)>,
    directory: Mutex<DirectoryTrack>,
    redis_up: AtomicBool,
    /// The topics this instance follows.
    interest: Arc<interest::Interest>,
    reorder_wait: Duration,
    /// Set, with the reason, when this instance must stop: what it holds no longer
    /// matches the database's epoch (see [`ClusterHandle::stopped`]).
    stop: tokio::sync::watch::Sender<Option<String>>,
}

impl Node {
    /// Asks the server to stop (once): its state belongs to an epoch the cluster left.
    fn stop(&self, reason: &str) {
        self.stop.send_if_modified(|held| {
            if held.is_some() {
                return false;
            }
            tracing::error!(reason, "this instance must restart to load the new epoch");
            *held = Some(reason.to_owned());
            true
        });
    }

    /// Applies a change another instance committed.
    fn receive(&self, change: Replicated, directory: Option<u64>) {
        let applied = self.hub.apply(change.clone());
        self.follow_up(applied, change);
        if let Some(count) = directory {
            self.directory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .seen(count);
        }
    }

    /// Applies a change this instance committed, and tells the others.
    fn committed(&self, change: Replicated, directory: Option<u64>) {
        let envelope = bus::Envelope {
            from: self.me.clone(),
            directory,
            change,
        };
        self.send(&envelope);
        self.receive(envelope.change, directory);
    }

    /// Tells the other instances of a change made here that this instance has applied
    /// already (a read position).
    fn publish(&self, change: Replicated) {
        self.send(&bus::Envelope {
            from: self.me.clone(),
            directory: None,
            change,
        });
    }

    fn send(&self, envelope: &bus::Envelope) {
        match serde_json::to_vec(envelope) {
            Ok(payload) => {
                for channel in bus::channels_for(&self.prefix, &envelope.change) {
                    let _ = self.outgoing.send((channel, payload.clone()));
                }
            }
            Err(e) => tracing::error!(error = %e, "could not encode a change for Redis"),
        }
        if let Some((channel, news)) = bus::news_of(&self.prefix, &self.me, &envelope.change) {
            match serde_json::to_vec(&news) {
                Ok(payload) => {
                    let _ = self.outgoing.send((channel, payload));
                }
                Err(e) => tracing::error!(error = %e, "could not encode news for Redis"),
            }
        }
    }

    /// Takes the news of another instance's channel message: tells the unread followers
    /// here, or, if news before it went missing, has the room repaired (whose messages are
    /// told then).
    fn hear(&self, news: &bus::NewsEnvelope) {
        let heard = crate::chat::hub::News {
            room: &news.room,
            seq: news.seq,
            author: news.author,
            body: news.body.as_deref().unwrap_or_default(),
        };
        match self.hub.hear_news(&heard) {
            Applied::Done => {}
            Applied::Gap { room, .. } => {
                let at = tokio::time::Instant::now() + self.reorder_wait;
                let _ = self.repairs.send(Repair::Room { room, at });
            }
            // A channel not known here yet: the directory's repair brings it, and the
            // periodic check its news.
            Applied::Unknown => {}
        }
    }

    fn follow_up(&self, applied: Applied, change: Replicated) {
        match applied {
            Applied::Done => {}
            Applied::Gap { room, .. } => {
                let at = tokio::time::Instant::now() + self.reorder_wait;
                let _ = self.repairs.send(Repair::Room { room, at });
            }
            Applied::Unknown => {
                let _ = self.repairs.send(Repair::Directory(Box::new(change)));
            }
        }
    }

    fn request_full_check(&self) {
        let _ = self.repairs.send(Repair::Full);
    }

    fn redis_up(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
    }
}
