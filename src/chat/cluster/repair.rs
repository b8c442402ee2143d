//! Repairing what Redis lost, from PostgreSQL: a room's missing numbers (once they have had
//! [`super::ClusterSettings::reorder_wait`] to arrive), the directory when a change refers
//! to someone this instance does not know, and everything by a periodic comparison of every
//! followed room's `next_seq` and deletion count and of the directory count with the
//! database (a room nobody here follows is only checked for lost commits, and, while the
//! news are followed, for lost news).

use super::interest::Topic;
use super::{sql, ClusterSettings, Node, Repair};
use crate::chat::model::{Room, RoomKey};
use crate::chat::postgres::{connect_as, Owner};
use crate::chat::replica::{Applied, Replicated};
use crate::chat::store::StoreError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::Client;

/// How often references to posts older than a day are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(600);

/// Repairs until the process ends.
pub(super) async fn run(
    config: tokio_postgres::Config,
    settings: ClusterSettings,
    node: Arc<Node>,
    mut requests: mpsc::UnboundedReceiver<Repair>,
) {
    let mut repairer = Repairer {
        config,
        retain: settings.retain.max(1),
        client: None,
        node,
        parked: Vec::new(),
        last_forget: Instant::now(),
        reported: false,
        committed_at_last_check: HashMap::new(),
    };
    let mut due: HashMap<RoomKey, (Room, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(settings.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_due = due.values().map(|(_, at)| *at).min();
        tokio::select! {
            request = requests.recv() => match request {
                None => return,
                Some(Repair::Room { room, at }) => {
                    due.entry(room.key()).or_insert((room, at));
                }
                Some(Repair::Directory(change)) => {
                    repairer.parked.push(*change);
                    repairer.attempt(|r| Box::pin(r.reload_directory())).await;
                }
                Some(Repair::Full) => repairer.attempt(|r| Box::pin(r.full_check())).await,
                Some(Repair::Checked { done }) => {
                    repairer.attempt(|r| Box::pin(r.full_check())).await;
                    let _ = done.send(());
                }
                Some(Repair::Token { hash, done }) => {
                    repairer.attempt(|r| Box::pin(r.learn_token(hash))).await;
                    let _ = done.send(());
                }
                Some(Repair::Now { room, done }) => {
                    repairer.attempt(|r| Box::pin(r.refresh_room(room))).await;
                    let _ = done.send(());
                }
                Some(Repair::Channels { done }) => {
                    repairer.attempt(|r| Box::pin(r.catch_up_channels())).await;
                    let _ = done.send(());
                }
                Some(Repair::Stale { done }) => {
                    repairer.attempt(|r| Box::pin(r.catch_up_stale())).await;
                    let _ = done.send(());
                }
            },
            _ = tick.tick() => repairer.attempt(|r| Box::pin(r.full_check())).await,
            _ = sleep_until(next_due) => {
                let now = Instant::now();
                let ready: Vec<Room> = due
                    .values()
                    .filter(|(_, at)| *at <= now)
                    .map(|(room, _)| room.clone())
                    .collect();
                for room in ready {
                    due.remove(&room.key());
                    if repairer.node.hub.waiting(&room) {
                        repairer.attempt(|r| Box::pin(r.repair_room(room.clone()))).await;
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Step<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

struct Repairer {
    config: tokio_postgres::Config,
    /// Messages each room's ring keeps.
    retain: usize,
    client: Option<Client>,
    node: Arc<Node>,
    /// Changes that referred to someone unknown, applied after the directory is read again.
    parked: Vec<Replicated>,
    last_forget: Instant,
    /// An outage was logged and not yet its end.
    reported: bool,
    /// For each channel not followed here, its `next_seq` in the database at the last
    /// check: news of numbers below it that have still not come were lost.
    committed_at_last_check: HashMap<RoomKey, u64>,
}

impl Repairer {
    /// Runs a step, connecting first if needed; a failure is logged once per outage (the
    /// next check tries again).
    async fn attempt<F>(&mut self, step: F)
    where
        F: for<'a> FnOnce(&'a mut Repairer) -> Step<'a>,
    {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            match connect_as(&self.config, false, Owner::Cluster).await {
                Ok(client) => self.client = Some(client),
                Err(e) => {
                    self.report(e);
                    return;
                }
            }
        }
        match step(self).await {
            Ok(()) => {
                if self.reported {
                    tracing::info!("the cluster's checks reach PostgreSQL again");
                    self.reported = false;
                }
            }
            Err(e) => self.report(e),
        }
    }

    fn report(&mut self, e: StoreError) {
        if !self.reported {
            tracing::warn!(error = %e, "the cluster's check could not read PostgreSQL; trying again at the next check");
            self.reported = true;
        }
    }

    fn client(&self) -> Result<&Client, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError("not connected".into()))
    }

    /// Brings one room up to the database's state.
    async fn repair_room(&mut self, room: Room) -> Result<(), StoreError> {
        for _ in 0..2 {
            let from = self.node.hub.next_seq(&room).unwrap_or(1);
            let Some((next_seq, messages)) = sql::since(self.client()?, &room, from).await? else {
                return Ok(());
            };
            match self.node.hub.repair(&room, messages, next_seq) {
                Applied::Unknown => self.reload_directory().await?,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Brings one room up to the database's state, deletions included: for a room this
    /// instance did not follow until now.
    async fn refresh_room(&mut self, room: Room) -> Result<(), StoreError> {
        self.repair_room(room.clone()).await?;
        let Some(deletions) = sql::deletions(self.client()?, &room).await? else {
            return Ok(());
        };
        let held = self.node.hub.position(&room).map(|p| p.deletions);
        if held.is_some_and(|held| held != deletions) {
            self.reconcile_deletions(&room, deletions).await?;
        }
        Ok(())
    }

    /// Removes the room's messages the database no longer holds, and takes the text of
    /// those edited since, when its count of deletions and edits (`deletions`) differs from
    /// this instance's.
    async fn reconcile_deletions(&mut self, room: &Room, deletions: u64) -> Result<(), StoreError> {
        let (kept, window) = sql::held_ids(self.client()?, room, self.retain).await?;
        self.node
            .hub
            .reconcile_deletions(room, &kept, window, deletions);
        Ok(())
    }

    /// Applies the user a token hash belongs to, if the database has one.
    async fn learn_token(&mut self, hash: crate::chat::store::TokenHash) -> Result<(), StoreError> {
        if let Some(user) = sql::user_by_token(self.client()?, &hash).await? {
            self.node.hub.apply(Replicated::User {
                user,
                token_hash: hash,
            });
        }
        Ok(())
    }

    /// Reads every user and channel again and applies what this instance lacks, then the
    /// changes that waited for it.
    async fn reload_directory(&mut self) -> Result<(), StoreError> {
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| StoreError("not connected".into()))?;
        let (count, users, channels) = sql::directory(client).await?;
        let node = self.node.clone();
        let hub = &node.hub;
        for (user, token_hash) in users {
            let known = hub.user_info(user.id);
            match known {
                None => {
                    hub.apply(Replicated::User { user, token_hash });
                }
                Some(known) if known.name != user.name => {
                    hub.apply(Replicated::Renamed { user });
                }
                Some(_) => {}
            }
        }
        for channel in channels {
            hub.apply(Replicated::Channel { channel });
        }
        self.node
            .directory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reloaded(count);
        for change in std::mem::take(&mut self.parked) {
            match hub.apply(change.clone()) {
                Applied::Gap { room, .. } => {
                    let at = Instant::now();
                    let _ = self.node.repairs.send(Repair::Room { room, at });
                }
                Applied::Unknown => {
                    // Still unknown after a reload: the change refers to a room or user the
                    // database no longer has (or not yet: the next check finds it).
                    tracing::debug!(?change, "a change still refers to someone unknown");
                }
                Applied::Done => {}
            }
        }
        Ok(())
    }

    /// Brings every channel up to the database's state (the news are followed from now on).
    async fn catch_up_channels(&mut self) -> Result<(), StoreError> {
        for row in sql::rooms(self.client()?).await? {
            let Some(channel) = row.channel else {
                continue;
            };
            let held = self.node.hub.next_seq(&row.room);
            if held.is_none() {
                self.node.hub.apply(Replicated::Channel { channel });
            }
            if held.unwrap_or(1) < row.next_seq {
                self.repair_room(row.room).await?;
            }
        }
        Ok(())
    }

    /// Brings the channels whose news ran ahead of their copy here up to the database's
    /// state.
    async fn catch_up_stale(&mut self) -> Result<(), StoreError> {
        for room in self.node.hub.stale_channels() {
            self.repair_room(room).await?;
        }
        Ok(())
    }

    /// Compares every followed room and the directory with the database, and repairs what
    /// differs; first stops following the rooms nobody here uses any more.
    async fn full_check(&mut self) -> Result<(), StoreError> {
        let hub = self.node.hub.clone();
        self.node
            .interest
            .sweep(|topic| match topic {
                Topic::Channel(room) => hub.has_members(room),
                Topic::User(user) => hub.is_connected(*user),
                Topic::News => hub.follows_unread_here(),
            })
            .await;
        let epoch = sql::epoch(self.client()?).await?;
        if epoch != self.node.hub.epoch() {
            // Another instance found that the database lost commits: what this instance
            // holds belongs to the old epoch.
            self.node.stop("the cluster started a new epoch");
            return Ok(());
        }
        let count = sql::directory_count(self.client()?).await?;
        let reload = {
            let mut track = self
                .node
                .directory
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // Still short of the count the last check saw: a change was lost, not just
            // still on its way.
            let lost = track
                .behind_at_last_check
                .is_some_and(|then| track.through < then);
            track.behind_at_last_check = (count > track.through).then_some(count);
            lost
        };
        if reload {
            self.reload_directory().await?;
        }
        // Where the hub stands is read before the database: whatever the hub has applied
        // was committed before this read, so a room ahead of the database below really
        // lost commits. (Read the other way round, a commit made here between the two
        // reads looked like one the database lost, and started a needless epoch.)
        let positions: HashMap<RoomKey, crate::chat::hub::Position> = self
            .node
            .hub
            .positions()
            .into_iter()
            .map(|p| (p.room.key(), p))
            .collect();
        let rows = sql::rooms(self.client()?).await?;
        for row in rows {
            let key = row.room.key();
            if let (Some(channel), None) = (&row.channel, positions.get(&key)) {
                self.node.hub.apply(Replicated::Channel {
                    channel: channel.clone(),
                });
            }
            let (next_seq, deletions) = positions
                .get(&key)
                .map_or((1, 0), |p| (p.next_seq, p.deletions));
            if next_seq < row.next_seq && !self.node.interest.follows(&row.room) {
                // Nobody here uses the room: it is brought up to date when someone does.
                // Its news are told as they come; news of numbers committed before the
                // last check that have still not come were lost, and the room's repair
                // tells them.
                if row.channel.is_some() && self.node.interest.follows_news() {
                    let told = self.node.hub.told(&row.room).unwrap_or(0);
                    let then = self.committed_at_last_check.insert(key, row.next_seq);
                    if then.is_some_and(|then| told + 1 < then) {
                        self.repair_room(row.room.clone()).await?;
                    }
                }
                continue;
            }
            if next_seq < row.next_seq {
                self.repair_room(row.room.clone()).await?;
            } else if next_seq > row.next_seq {
                // Numbers were committed and delivered, and the database no longer has
                // them: it lost commits (restored from an older backup, say). They will be
                // given out again, so they must mean nothing to clients any more.
                tracing::error!(room = ?row.room, here = next_seq, database = row.next_seq,
                    "PostgreSQL lost commits this instance delivered: starting a new epoch");
                sql::new_epoch(self.client()?, self.node.hub.epoch()).await?;
                self.node
                    .stop("PostgreSQL lost commits; a new epoch was started");
                return Ok(());
            }
            if deletions != row.deletions && self.node.interest.follows(&row.room) {
                self.reconcile_deletions(&row.room, row.deletions).await?;
            }
        }
        if self.last_forget.elapsed() >= FORGET_EVERY {
            self.last_forget = Instant::now();
            let forgotten = sql::forget_old_references(self.client()?).await?;
            tracing::debug!(forgotten, "forgot references to posts older than a day");
        }
        Ok(())
    }
}
