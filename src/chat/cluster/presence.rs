//! Presence across instances, kept in Redis per channel: the sorted set
//! `{prefix}:presence:{room key}` (the room key as [`crate::chat::postgres::room_key`] gives
//! it, `c:general`) holds one `{user id}/{instance}` entry for each user connected to the
//! channel through each instance, scored with the time the entry expires (Redis's clock,
//! in milliseconds; instances' clocks play no part).
//!
//! Each instance refreshes its own entries at every heartbeat, and removes an entry the
//! moment its user is no longer connected to the channel through it (left, or
//! disconnected), so a departure shows elsewhere at the others' next heartbeat. An instance
//! that dies stops refreshing: its entries expire [`Presence::lifetime`] after its last
//! beat, and every script run drops expired entries from the sets it touches (the set
//! itself expires once no instance refreshes it). Each instance reads only the channels in
//! use through it (a member connection here), at every heartbeat, and a channel's first
//! reader here has it read before joining ([`Presence::read`]).
//!
//! One script run ([`EXCHANGE`]) does an instance's whole exchange for up to
//! [`ROOMS_PER_RUN`] channels: add, remove, drop expired, refresh, read. A heartbeat sends
//! no user id unless something changed: the script refreshes this instance's entries as it
//! finds them and says how many it found, so a set that lost some (Redis restarted) has
//! them all written again ([`Reported::lost`]). The script names every set it touches as a
//! key, which a single Redis (not Redis Cluster) allows across hash slots.

use crate::chat::model::{Room, RoomKey, UserId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Channels one script run handles: a run blocks Redis while it lasts, so thousands of
/// channels go in several.
const ROOMS_PER_RUN: usize = 200;

/// How long making a connection to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// KEYS: one presence set per channel. ARGV[1]: this instance; ARGV[2]: how long an entry
/// lives (ms); then, for each key in turn: 1 for a heartbeat's exchange (refresh this
/// instance's entries there and read the others'), else 0; the number of this instance's
/// users to add and their ids; the number to remove and their ids. Expired entries are
/// dropped. Answers, for each key, on a heartbeat the number of this instance's entries
/// the set holds then the distinct ids of the users other instances have there, else `0`.
/// This instance's entries are refreshed as found, not as sent: a beat sends no ids unless
/// something changed. `unpack` is limited by Lua's stack, hence the slices.
const EXCHANGE: &str = "
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me = ARGV[1]
local life = tonumber(ARGV[2])
local suffix = '/' .. me
local function sliced(command, key, members, scored)
  for first = 1, #members, 500 do
    local args = {}
    for i = first, math.min(#members, first + 499) do
      if scored then
        args[#args + 1] = now + life
      end
      args[#args + 1] = members[i]
    end
    redis.call(command, key, unpack(args))
  end
end
local at = 3
local answers = {}
for k, key in ipairs(KEYS) do
  local beat = ARGV[at] == '1'
  local added = {}
  for i = 1, tonumber(ARGV[at + 1]) do
    added[i] = ARGV[at + 1 + i] .. suffix
  end
  at = at + 2 + #added
  local removed = {}
  for i = 1, tonumber(ARGV[at]) do
    removed[i] = ARGV[at + i] .. suffix
  end
  at = at + 1 + #removed
  sliced('ZADD', key, added, true)
  sliced('ZREM', key, removed, false)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local answer = {'0'}
  if beat then
    local mine, seen = {}, {}
    for _, entry in ipairs(redis.call('ZRANGE', key, 0, -1)) do
      local user, instance = string.match(entry, '^(%d+)/(.+)$')
      if instance == me then
        mine[#mine + 1] = entry
      elseif user and not seen[user] then
        seen[user] = true
        answer[#answer + 1] = user
      end
    end
    sliced('ZADD', key, mine, true)
    answer[1] = tostring(#mine)
  end
  if #added > 0 or answer[1] ~= '0' then
    redis.call('PEXPIRE', key, life)
  end
  answers[k] = answer
end
return answers
";

/// Every channel in use here (a member connection), with the users connected to it here.
pub(super) type Here = HashMap<RoomKey, (Room, HashSet<UserId>)>;

/// [`Here`] from the hub's answer ([`crate::chat::hub::Hub::channels_in_use`]).
pub(super) fn here(channels: Vec<(Room, Vec<UserId>)>) -> Here {
    channels
        .into_iter()
        .map(|(room, users)| (room.key(), (room, users.into_iter().collect())))
        .collect()
}

/// What one exchange tells Redis and asks of it about one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Exchange {
    pub(super) room: Room,
    /// This instance's users to add (connected here since the last exchange).
    pub(super) add: Vec<UserId>,
    /// This instance's users no longer connected to the channel here.
    pub(super) remove: Vec<UserId>,
    /// A heartbeat's exchange: refresh this instance's entries and read the others'.
    pub(super) beat: bool,
}

/// What Redis answered about one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Found {
    /// This instance's entries the set holds (on a heartbeat; else 0).
    pub(super) mine: usize,
    /// The users other instances have there (on a heartbeat; else none).
    pub(super) others: HashSet<UserId>,
}

/// This instance's entries as Redis holds them, as far as it knows: what it wrote and has
/// not removed, by channel.
#[derive(Debug, Default)]
pub(super) struct Reported(HashMap<RoomKey, (Room, HashSet<UserId>)>);

impl Reported {
    /// A heartbeat's exchange: every channel in use here refreshed and read, entries new
    /// here added, and entries no longer here removed.
    pub(super) fn beat(&self, here: &Here) -> Vec<Exchange> {
        self.plan(here, true)
    }

    /// The exchange made as soon as who is here changed: new entries added, gone ones
    /// removed, nothing read.
    pub(super) fn changes(&self, here: &Here) -> Vec<Exchange> {
        self.plan(here, false)
    }

    fn plan(&self, here: &Here, beat: bool) -> Vec<Exchange> {
        let none = HashSet::new();
        let mut plan: BTreeMap<RoomKey, Exchange> = BTreeMap::new();
        for (key, (room, users)) in here {
            let had = self.0.get(key).map_or(&none, |(_, users)| users);
            let mut add: Vec<UserId> = users.difference(had).copied().collect();
            add.sort_unstable();
            if beat || !add.is_empty() {
                plan.insert(
                    key.clone(),
                    Exchange {
                        room: room.clone(),
                        add,
                        remove: Vec::new(),
                        beat,
                    },
                );
            }
        }
        for (key, (room, had)) in &self.0 {
            let users = here.get(key).map_or(&none, |(_, users)| users);
            let mut remove: Vec<UserId> = had.difference(users).copied().collect();
            if remove.is_empty() {
                continue;
            }
            remove.sort_unstable();
            plan.entry(key.clone())
                .or_insert_with(|| Exchange {
                    room: room.clone(),
                    add: Vec::new(),
                    remove: Vec::new(),
                    beat: false,
                })
                .remove = remove;
        }
        plan.into_values().collect()
    }

    /// Redis took an exchange planned from `here`: it holds exactly `here`'s entries.
    pub(super) fn took(&mut self, here: Here) {
        self.0 = here
            .into_iter()
            .filter(|(_, (_, users))| !users.is_empty())
            .collect();
    }

    /// An exchange planned from `here` failed, perhaps half done: Redis may hold any entry
    /// of `here` or of before, and the next exchange removes those no longer here.
    pub(super) fn failed(&mut self, here: Here) {
        for (key, (room, users)) in here {
            self.0
                .entry(key)
                .or_insert_with(|| (room, HashSet::new()))
                .1
                .extend(users);
        }
        self.0.retain(|_, (_, users)| !users.is_empty());
    }

    /// Compares what a heartbeat found of this instance's entries with what it took them
    /// to be: a channel whose set lost some (Redis restarted, or evicted it) is forgotten,
    /// so the next exchange adds all of them again. True if one was.
    pub(super) fn lost(&mut self, beat: &[Exchange], found: &[Found]) -> bool {
        let mut lost = false;
        for (exchange, found) in beat.iter().zip(found) {
            let key = exchange.room.key();
            let held = self.0.get(&key).map_or(0, |(_, users)| users.len());
            if exchange.beat && found.mine != held {
                self.0.remove(&key);
                lost = true;
            }
        }
        lost
    }
}

/// This instance's side of presence in Redis. Shared by the heartbeat and the joins.
pub(super) struct Presence {
    client: redis::Client,
    prefix: String,
    /// This instance's name, which its entries carry.
    me: String,
    /// How long an entry lives after its last refresh: a few heartbeats, so a slow beat
    /// does not make users vanish.
    pub(super) lifetime: Duration,
    connection: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    /// The script's SHA1 once Redis has it (loaded again after Redis forgot it).
    loaded: Mutex<Option<String>>,
    /// Whether the last heartbeat reached Redis: while not, joins do not wait for a read.
    pub(super) reachable: AtomicBool,
}

impl Presence {
    pub(super) fn new(
        client: redis::Client,
        prefix: String,
        me: String,
        every: Duration,
    ) -> Presence {
        Presence {
            client,
            prefix,
            me,
            lifetime: (every * 3).max(Duration::from_secs(3)),
            connection: tokio::sync::Mutex::new(None),
            loaded: Mutex::new(None),
            reachable: AtomicBool::new(false),
        }
    }

    /// The Redis set holding a channel's presence.
    pub(super) fn key(prefix: &str, room: &Room) -> String {
        format!(
            "{prefix}:presence:{}",
            crate::chat::postgres::room_key(room)
        )
    }

    /// A connection to Redis, made if there is none (it reconnects by itself after).
    pub(super) async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        let mut held = self.connection.lock().await;
        if let Some(connection) = held.as_ref() {
            return Ok(connection.clone());
        }
        let made = super::in_time(
            CONNECT_TIMEOUT,
            redis::aio::ConnectionManager::new(self.client.clone()),
        )
        .await?;
        *held = Some(made.clone());
        Ok(made)
    }

    /// Does `exchanges` in Redis; answers what it found for each.
    pub(super) async fn exchange(&self, exchanges: &[Exchange]) -> redis::RedisResult<Vec<Found>> {
        let mut connection = self.connection().await?;
        let mut answers = Vec::with_capacity(exchanges.len());
        for run in exchanges.chunks(ROOMS_PER_RUN) {
            let mut args: Vec<String> =
                vec![self.me.clone(), self.lifetime.as_millis().to_string()];
            let mut keys = Vec::with_capacity(run.len());
            for exchange in run {
                keys.push(Presence::key(&self.prefix, &exchange.room));
                args.push(if exchange.beat { "1" } else { "0" }.into());
                for users in [&exchange.add, &exchange.remove] {
                    args.push(users.len().to_string());
                    args.extend(users.iter().map(|u| u.0.to_string()));
                }
            }
            let found: Vec<Vec<String>> = self.run(&mut connection, &keys, &args).await?;
            for answer in found {
                let mut answer = answer.into_iter();
                answers.push(Found {
                    mine: answer.next().and_then(|n| n.parse().ok()).unwrap_or(0),
                    others: answer.filter_map(|u| u.parse().ok()).map(UserId).collect(),
                });
            }
        }
        Ok(answers)
    }

    /// Who other instances have in `room` now. (This instance's entries there, if any, are
    /// refreshed too.)
    pub(super) async fn read(&self, room: &Room) -> redis::RedisResult<HashSet<UserId>> {
        if !self.reachable.load(Ordering::Relaxed) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the last heartbeat did not reach Redis",
            )));
        }
        let asked = [Exchange {
            room: room.clone(),
            add: Vec::new(),
            remove: Vec::new(),
            beat: true,
        }];
        Ok(self
            .exchange(&asked)
            .await?
            .pop()
            .map(|found| found.others)
            .unwrap_or_default())
    }

    /// Runs [`EXCHANGE`] by its SHA1, loading it first if Redis does not have it.
    async fn run(
        &self,
        connection: &mut redis::aio::ConnectionManager,
        keys: &[String],
        args: &[String],
    ) -> redis::RedisResult<Vec<Vec<String>>> {
        let known = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(sha) = known {
            let ran = redis::cmd("EVALSHA")
                .arg(&sha)
                .arg(keys.len())
                .arg(keys)
                .arg(args)
                .query_async(connection)
                .await;
            match ran {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {}
                ran => return ran,
            }
        }
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(EXCHANGE)
            .query_async(connection)
            .await?;
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(sha.clone());
        redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(keys.len())
            .arg(keys)
            .arg(args)
            .query_async(connection)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::ChannelName;

    fn channel(name: &str) -> Room {
        Room::Channel(ChannelName::parse(name).expect("a channel name"))
    }

    fn at(rooms: &[(&str, &[u64])]) -> Here {
        here(
            rooms
                .iter()
                .map(|(name, users)| (channel(name), users.iter().copied().map(UserId).collect()))
                .collect(),
        )
    }

    fn ids(users: &[u64]) -> Vec<UserId> {
        users.iter().copied().map(UserId).collect()
    }

    /// A heartbeat refreshes and reads every channel in use here (one whose readers did not
    /// sign in too), sends only the ids of users new here, and removes entries whose users
    /// are gone.
    #[test]
    fn a_beat_refreshes_reads_and_removes() {
        let mut reported = Reported::default();
        reported.took(at(&[("general", &[1, 2]), ("random", &[3])]));
        let plan = reported.beat(&at(&[("general", &[2, 5]), ("quiet", &[])]));
        assert_eq!(
            plan,
            vec![
                Exchange {
                    room: channel("general"),
                    add: ids(&[5]),
                    remove: ids(&[1]),
                    beat: true
                },
                Exchange {
                    room: channel("quiet"),
                    add: vec![],
                    remove: vec![],
                    beat: true
                },
                Exchange {
                    room: channel("random"),
                    add: vec![],
                    remove: ids(&[3]),
                    beat: false
                },
            ]
        );
    }

    /// Between beats only what changed goes to Redis: new entries and gone ones; nothing
    /// when nothing changed.
    #[test]
    fn changes_carry_only_what_changed() {
        let mut reported = Reported::default();
        reported.took(at(&[("general", &[1, 2])]));
        assert!(reported.changes(&at(&[("general", &[1, 2])])).is_empty());
        let plan = reported.changes(&at(&[("general", &[2, 4]), ("random", &[5])]));
        assert_eq!(
            plan,
            vec![
                Exchange {
                    room: channel("general"),
                    add: ids(&[4]),
                    remove: ids(&[1]),
                    beat: false
                },
                Exchange {
                    room: channel("random"),
                    add: ids(&[5]),
                    remove: vec![],
                    beat: false
                },
            ]
        );
    }

    /// After a failed exchange the entries of before are still removed by the next one:
    /// Redis may hold them.
    #[test]
    fn a_failed_exchange_removes_later() {
        let mut reported = Reported::default();
        reported.took(at(&[("general", &[1])]));
        reported.failed(at(&[("general", &[2])]));
        let plan = reported.changes(&at(&[]));
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].remove, ids(&[1, 2]));
    }

    /// A heartbeat that finds fewer of this instance's entries than it wrote (Redis
    /// restarted) has every entry of that channel added again, and only of that channel.
    #[test]
    fn entries_redis_lost_are_added_again() {
        let mut reported = Reported::default();
        let here = at(&[("general", &[1, 2]), ("random", &[3])]);
        reported.took(here.clone());
        let beat = reported.beat(&here);
        reported.took(here.clone());
        let found = |mine| Found {
            mine,
            others: HashSet::new(),
        };
        assert!(!reported.lost(&beat, &[found(2), found(1)]));
        assert!(reported.changes(&here).is_empty());
        assert!(reported.lost(&beat, &[found(0), found(1)]));
        let again = reported.changes(&here);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].room.clone(), again[0].add.clone()),
            (channel("general"), ids(&[1, 2]))
        );
    }
}
