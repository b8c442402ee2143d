//! The durable store: one SQLite file in WAL mode holding users (token hashes only), rooms,
//! and the most recent messages of each room, with the same retention as the in-memory
//! history.
//!
//! Each room's messages are a ring of `retain` slots (`recent_messages`): message number
//! `seq` goes into slot `seq % retain`, replacing the message `retain` numbers before it. So
//! the file holds exactly the room's window, the newest `retain` numbers, by construction,
//! and storing a message changes one row in one page: there is no separate trim. (The ring
//! size is kept in `meta`; opening with another size, or a file from before the ring, moves
//! the window over.)
//!
//! One writer thread owns the connection that writes. The hub hands it every change (users,
//! channels, names, messages and deletions) in the order it applies them, and every change
//! is written behind: each transaction holds whatever queued up while the last one was
//! committed, so under load one commit covers many changes. Each outcome is reported through
//! its [`Durable`], and only the answer to whoever asked (a message's acknowledgement, a
//! registration's session) waits for it; a failed write is reported to them and the change
//! stays in memory until the next restart.
//!
//! So a message is on disk before its sender hears it was sent, and a slow disk delays
//! answers, never delivery. A message already delivered but not yet committed is
//! lost if the process dies, and its sequence number is given out again after the restart.
//! So that clients cannot mistake the new message for the lost one, a start after an unclean
//! stop begins a new epoch; a clean stop ([`Store::close`]) marks the file as such.
//!
//! Commits do not sync (`synchronous = NORMAL`): they survive the process being killed, but
//! after a power loss the last ones may be gone. Checkpoints (copying the log into the
//! database file, with an fsync) run every half second on a thread with a connection of its
//! own, and are passive: the writer never waits for them. That matters: on this project's
//! machine an fsync usually takes under a millisecond but now and then half a second. (With
//! the writer doing the checkpoints itself, on one exclusive connection, acknowledgements
//! waited out those fsyncs: p99 150-760 ms under disk load; see BENCHMARKS.md.)

use super::model::Timestamp;
use super::model::{ChannelInfo, Message, MessageId, Room, RoomKey, UserId, UserInfo};
use super::store::{Durable, Loaded, Store, StoreError, StoredRoom, TokenHash, Written};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS rooms (
    key TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    channel TEXT,
    next_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS recent_messages (
    room_key TEXT NOT NULL,
    slot INTEGER NOT NULL,
    id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room_key, slot)
) WITHOUT ROWID;
";

/// How often the checkpoint thread folds the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Most changes committed in one transaction.
const MAX_BATCH: usize = 1024;

/// A store in one SQLite file, written by its own thread.
pub struct SqliteStore {
    /// The writer's queue; `None` once closed.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// What the file held when it was opened, handed to the hub by `load`.
    loaded: Mutex<Option<Loaded>>,
    /// The writer thread, until `close` waits for it.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The checkpoint thread, until `close` stops it.
    checkpoints: Mutex<Option<Checkpoints>>,
}

/// One change for the writer, and who hears how it went.
struct Job {
    change: Change,
    written: Written,
}

enum Change {
    Message(Message),
    Delete(Room, MessageId),
    Channel(ChannelInfo),
    User(UserInfo, TokenHash),
    Rename(UserInfo),
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// The text form of a room's identity, used as its key in the database.
fn room_key(room: &Room) -> String {
    match room.key() {
        RoomKey::Channel(key) => format!("c:{}", key.as_str()),
        RoomKey::Direct(key) => {
            let [a, b] = key.users();
            format!("d:{a}:{b}")
        }
    }
}

/// The ring slot of message number `seq` in a room that keeps `retain` (at least 1) messages.
fn slot(seq: u64, retain: usize) -> i64 {
    (seq % retain as u64) as i64
}

fn closed() -> StoreError {
    StoreError("the store is closed".into())
}

impl SqliteStore {
    /// Opens (or creates) the database file, keeping `retain` messages per room, and starts
    /// its writer.
    pub fn open(path: &Path, retain: usize) -> Result<SqliteStore, StoreError> {
        let retain = retain.max(1);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut conn = Connection::open(path).map_err(failed)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(failed)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(failed)?;
        conn.execute_batch(SCHEMA).map_err(failed)?;
        settle_ring(&mut conn, retain)?;
        let loaded = read_all(&mut conn)?;
        let checkpointer = Connection::open(path).map_err(failed)?;
        checkpointer
            .busy_timeout(Duration::from_secs(5))
            .map_err(failed)?;
        let checkpoints = checkpoint_thread(checkpointer)?;
        let (jobs, queue) = mpsc::channel();
        let writer = Writer { conn, retain };
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(failed)?;
        Ok(SqliteStore {
            jobs: Mutex::new(Some(jobs)),
            loaded: Mutex::new(Some(loaded)),
            writer: Mutex::new(Some(thread)),
            checkpoints: Mutex::new(Some(checkpoints)),
        })
    }

    fn hand_over(&self, job: Job) {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let refused = match jobs.as_ref() {
            Some(queue) => queue.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        drop(jobs);
        if let Some(job) = refused {
            job.written.report(Err(closed()));
        }
    }

    /// Hands a change over to be written behind.
    fn write_behind(&self, change: Change) -> Durable {
        let (written, durable) = Durable::pending();
        self.hand_over(Job { change, written });
        durable
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// One value from the `meta` table, if set.
fn meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(failed)
}

/// Makes the message rings `retain` (at least 1) slots wide. A file from before the rings (its messages in
/// a `messages` table), or one written with another ring size, has each room's window (the
/// newest `retain` numbers) moved into rings of the new size; an older message is dropped,
/// as it would have been had it been written with this size.
fn settle_ring(conn: &mut Connection, retain: usize) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(failed)?;
    let size = meta(&tx, "ring_size")?;
    let before_rings = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(failed)?
        .is_some();
    let resized = size.is_some_and(|size| size != retain.to_string());
    if before_rings || resized {
        let source = if before_rings {
            "messages"
        } else {
            tx.execute_batch(
                "CREATE TEMP TABLE old_ring AS SELECT room_key, id, seq, body FROM recent_messages;
                 DELETE FROM recent_messages;",
            )
            .map_err(failed)?;
            "old_ring"
        };
        let moved = tx
            .execute(
                &format!(
                    "INSERT INTO recent_messages (room_key, slot, id, seq, body) \
                     SELECT room_key, seq % ?1, id, seq, body FROM {source} AS m \
                     WHERE seq > (SELECT MAX(seq) FROM {source} WHERE room_key = m.room_key) - ?1"
                ),
                params![retain as i64],
            )
            .map_err(failed)?;
        tx.execute_batch(&format!("DROP TABLE {source};"))
            .map_err(failed)?;
        tracing::info!(moved, ring = retain, "moved the stored messages into rings");
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('ring_size', ?1)",
        params![retain.to_string()],
    )
    .map_err(failed)?;
    tx.commit().map_err(failed)
}

/// Reads everything back, and settles the epoch: kept after a clean stop, new otherwise.
fn read_all(conn: &mut Connection) -> Result<Loaded, StoreError> {
    let tx = conn.transaction().map_err(failed)?;
    let epoch = meta(&tx, "epoch")?;
    let clean = meta(&tx, "clean")?;
    // Cleared now, and set again by a clean stop.
    tx.execute("DELETE FROM meta WHERE key = 'clean'", [])
        .map_err(failed)?;
    let kept = epoch
        .and_then(|e| e.parse::<u64>().ok())
        .filter(|_| clean.as_deref() == Some("1"));
    let epoch = match kept {
        Some(epoch) => epoch,
        None => {
            // A new file, or messages may have been lost in an unclean stop (see the
            // module's documentation): sequence numbers start a new epoch.
            let epoch = Timestamp::now().millis().max(1) as u64;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?1)",
                params![epoch.to_string()],
            )
            .map_err(failed)?;
            epoch
        }
    };
    let mut users = Vec::new();
    {
        let mut stmt = tx
            .prepare("SELECT id, name, token_hash FROM users ORDER BY id")
            .map_err(failed)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(failed)?;
        for row in rows {
            let (id, name, hash) = row.map_err(failed)?;
            let name = super::model::DisplayName::parse(&name).map_err(failed)?;
            let hash: TokenHash = hash
                .try_into()
                .map_err(|_| StoreError("a token hash has the wrong length".into()))?;
            users.push((
                UserInfo {
                    id: UserId(id as u64),
                    name,
                },
                hash,
            ));
        }
    }
    let mut rooms = Vec::new();
    {
        let mut stmt = tx
            .prepare("SELECT key, room, channel, next_seq FROM rooms")
            .map_err(failed)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(failed)?;
        let mut messages = tx
            .prepare("SELECT body FROM recent_messages WHERE room_key = ?1 ORDER BY seq")
            .map_err(failed)?;
        for row in rows {
            let (key, room, channel, next_seq) = row.map_err(failed)?;
            let room: Room = serde_json::from_str(&room).map_err(failed)?;
            let channel: Option<ChannelInfo> = channel
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(failed)?;
            let bodies = messages
                .query_map(params![key], |r| r.get::<_, String>(0))
                .map_err(failed)?;
            let mut list = Vec::new();
            for body in bodies {
                let message: Message =
                    serde_json::from_str(&body.map_err(failed)?).map_err(failed)?;
                list.push(message);
            }
            // The row's number is only raised when a message is deleted; otherwise the
            // newest message tells what comes next.
            let after_newest = list.last().map_or(1, |m| m.seq + 1);
            rooms.push(StoredRoom {
                room,
                channel,
                next_seq: (next_seq.max(1) as u64).max(after_newest),
                messages: list,
            });
        }
    }
    tx.commit().map_err(failed)?;
    Ok(Loaded {
        epoch: Some(epoch),
        users,
        rooms,
    })
}

/// The writer thread's side: the connection and what it needs to commit.
struct Writer {
    conn: Connection,
    retain: usize,
}

impl Writer {
    /// Commits jobs in batches until every sender is gone, then marks the stop as clean.
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let batch = self.gather(first, &queue);
            self.commit(batch);
        }
        let marked = self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('clean', '1')",
            [],
        );
        if let Err(e) = marked {
            tracing::warn!(error = %e, "could not mark the stop as clean; the next start begins a new epoch");
        }
    }

    /// The batch that starts with `first`: it and whatever queued up behind it (while the
    /// last batch was being committed, say), so the busier the store, the bigger the batch.
    fn gather(&self, first: Job, queue: &mpsc::Receiver<Job>) -> Vec<Job> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batch
    }

    /// Commits a batch in one transaction and tells each job how it went.
    fn commit(&mut self, batch: Vec<Job>) {
        let outcome = self.write(&batch);
        for (i, job) in batch.into_iter().enumerate() {
            let result = match &outcome {
                Ok(each) => each[i].clone(),
                Err(e) => Err(e.clone()),
            };
            if let Err(e) = &result {
                tracing::error!(error = %e, "a change could not be stored");
            }
            job.written.report(result);
        }
    }

    fn write(&mut self, batch: &[Job]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let tx = self.conn.transaction().map_err(failed)?;
        // Each statement is atomic on its own, and a change that fails part-way leaves
        // nothing that matters behind (at most a room row, or a room's next number raised),
        // so one failed change does not undo the others.
        let each = batch
            .iter()
            .map(|job| apply(&tx, &job.change, self.retain))
            .collect();
        tx.commit().map_err(failed)?;
        Ok(each)
    }
}

/// The checkpoint thread: told to stop, and waited for, when dropped.
struct Checkpoints {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the thread that folds the log into the database file (with an fsync) through its
/// own connection, every [`CHECKPOINT_EVERY`], until it is dropped. A passive checkpoint
/// never waits for the writer, nor the writer for it.
fn checkpoint_thread(conn: Connection) -> Result<Checkpoints, StoreError> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                if let Err(e) = done {
                    tracing::warn!(error = %e, "checkpoint failed; retrying later");
                }
            }
        })
        .map_err(failed)?;
    Ok(Checkpoints {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Applies one change inside the batch's transaction. Statements are cached: parsing the SQL
/// again for every message costs more than running it.
fn apply(tx: &Transaction<'_>, change: &Change, retain: usize) -> Result<(), StoreError> {
    match change {
        Change::Message(message) => {
            let key = room_key(&message.room);
            let room = serde_json::to_string(&message.room).map_err(failed)?;
            let body = serde_json::to_string(message).map_err(failed)?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO rooms (key, room, channel, next_seq) \
                 VALUES (?1, ?2, NULL, 1)",
            )
            .and_then(|mut s| s.execute(params![key, room]))
            .map_err(failed)?;
            // The slot's old message is `retain` numbers older and leaves the window now.
            // (The hub hands messages over in order; the condition only guards against
            // an older one ever replacing a newer.) No `UPDATE rooms SET next_seq` either:
            // the room's newest message already says what comes next (see `read_all`).
            tx.prepare_cached(
                "INSERT INTO recent_messages (room_key, slot, id, seq, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (room_key, slot) DO UPDATE \
                 SET id = excluded.id, seq = excluded.seq, body = excluded.body \
                 WHERE excluded.seq > recent_messages.seq",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key,
                    slot(message.seq, retain),
                    message.id.0 as i64,
                    message.seq as i64,
                    body
                ])
            })
            .map_err(failed)?;
        }
        Change::Delete(room, id) => {
            // The deleted message may be the room's newest; its number must never come
            // back, so the room row remembers the number after it.
            let key = room_key(room);
            tx.prepare_cached(
                "UPDATE rooms SET next_seq = MAX(next_seq, \
                     (SELECT seq + 1 FROM recent_messages WHERE room_key = ?1 AND id = ?2)) \
                 WHERE key = ?1 \
                 AND EXISTS (SELECT 1 FROM recent_messages WHERE room_key = ?1 AND id = ?2)",
            )
            .and_then(|mut s| s.execute(params![key, id.0 as i64]))
            .map_err(failed)?;
            tx.prepare_cached("DELETE FROM recent_messages WHERE room_key = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![key, id.0 as i64]))
                .map_err(failed)?;
        }
        Change::Channel(channel) => {
            let room = Room::Channel(channel.name.clone());
            let room_json = serde_json::to_string(&room).map_err(failed)?;
            let channel_json = serde_json::to_string(channel).map_err(failed)?;
            tx.prepare_cached(
                "INSERT INTO rooms (key, room, channel, next_seq) VALUES (?1, ?2, ?3, 1)",
            )
            .and_then(|mut s| s.execute(params![room_key(&room), room_json, channel_json]))
            .map_err(failed)?;
        }
        Change::User(user, token_hash) => {
            tx.prepare_cached("INSERT INTO users (id, name, token_hash) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| {
                    s.execute(params![
                        user.id.0 as i64,
                        user.name.as_str(),
                        &token_hash[..]
                    ])
                })
                .map_err(failed)?;
        }
        Change::Rename(user) => {
            tx.prepare_cached("UPDATE users SET name = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![user.id.0 as i64, user.name.as_str()]))
                .map_err(failed)?;
        }
    }
    Ok(())
}

impl Store for SqliteStore {
    /// What the file held when it was opened (handed over once).
    fn load(&self) -> Result<Loaded, StoreError> {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| StoreError("the store was already loaded".into()))
    }

    fn put_channel(&self, channel: &ChannelInfo) -> Durable {
        self.write_behind(Change::Channel(channel.clone()))
    }

    fn put_user(&self, user: &UserInfo, token_hash: &TokenHash) -> Durable {
        self.write_behind(Change::User(user.clone(), *token_hash))
    }

    fn rename_user(&self, user: &UserInfo) -> Durable {
        self.write_behind(Change::Rename(user.clone()))
    }

    fn put_message(&self, message: &Message) -> Durable {
        self.write_behind(Change::Message(message.clone()))
    }

    fn delete_message(&self, room: &Room, id: MessageId) -> Durable {
        self.write_behind(Change::Delete(room.clone(), id))
    }

    /// Stops taking changes, and waits until the writer has committed everything handed
    /// over and marked the stop as clean.
    fn close(&self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = writer {
            let _ = thread.join();
        }
        self.checkpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::{ChannelName, DirectKey, DisplayName, MessageBody};

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("flack-sqlite-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("flack.db")
    }

    fn general() -> Room {
        Room::Channel(ChannelName::parse("general").unwrap())
    }

    fn ada() -> UserInfo {
        UserInfo {
            id: UserId(1),
            name: DisplayName::parse("ada").unwrap(),
        }
    }

    /// A store at `path` whose room holds messages 1 to `count` by `author`.
    fn store_with(path: &Path, room: &Room, count: u64, author: &UserInfo) -> SqliteStore {
        let store = SqliteStore::open(path, 100).unwrap();
        store.load().unwrap();
        for seq in 1..=count {
            store
                .put_message(&message(room, seq, seq, author))
                .wait_blocking()
                .unwrap();
        }
        store
    }

    fn message(room: &Room, id: u64, seq: u64, author: &UserInfo) -> Message {
        Message {
            id: MessageId(id),
            room: room.clone(),
            seq,
            author: author.clone(),
            body: MessageBody::parse(&format!("m{seq}"), 100).unwrap(),
            attachment: None,
            sent_at: Timestamp::now(),
        }
    }

    /// Everything written comes back after reopening, with the same epoch, the newest
    /// `retain` messages per room, and deletions applied.
    #[test]
    fn round_trips_through_the_file() {
        let path = temp_db("round-trip");
        let ada = ada();
        let general = Room::Channel(ChannelName::parse("General").unwrap());
        let direct = Room::Direct(DirectKey::between(UserId(1), UserId(2)).unwrap());
        let epoch = {
            let store = SqliteStore::open(&path, 3).unwrap();
            let first = store.load().unwrap();
            store.put_user(&ada, &[7; 32]).wait_blocking().unwrap();
            store
                .put_channel(&ChannelInfo {
                    name: ChannelName::parse("General").unwrap(),
                    created_at: Timestamp::now(),
                })
                .wait_blocking()
                .unwrap();
            for seq in 1..=5 {
                store
                    .put_message(&message(&general, seq, seq, &ada))
                    .wait_blocking()
                    .unwrap();
            }
            store
                .put_message(&message(&direct, 6, 1, &ada))
                .wait_blocking()
                .unwrap();
            store
                .delete_message(&general, MessageId(4))
                .wait_blocking()
                .unwrap();
            store
                .rename_user(&UserInfo {
                    id: UserId(1),
                    name: DisplayName::parse("Ada L").unwrap(),
                })
                .wait_blocking()
                .unwrap();
            first.epoch
        };
        let store = SqliteStore::open(&path, 3).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.epoch, epoch, "the epoch survives restarts");
        assert_eq!(loaded.users.len(), 1);
        assert_eq!(loaded.users[0].0.name.as_str(), "Ada L");
        assert_eq!(loaded.users[0].1, [7; 32]);
        let general_room = loaded.rooms.iter().find(|r| r.channel.is_some()).unwrap();
        let seqs: Vec<u64> = general_room.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [3, 5], "window of 3, then message 4 deleted");
        assert_eq!(general_room.next_seq, 6);
        let direct_room = loaded.rooms.iter().find(|r| r.channel.is_none()).unwrap();
        assert_eq!(direct_room.room, direct);
        assert_eq!(direct_room.messages.len(), 1);
    }

    /// A message's number is never given out again, even when the room's newest messages
    /// are deleted before a restart.
    #[test]
    fn deleted_numbers_are_not_reused_after_a_restart() {
        let path = temp_db("deleted-newest");
        let ada = ada();
        let general = general();
        {
            let store = store_with(&path, &general, 3, &ada);
            store
                .delete_message(&general, MessageId(3))
                .wait_blocking()
                .unwrap();
            store
                .delete_message(&general, MessageId(2))
                .wait_blocking()
                .unwrap();
            // Deleting what is already gone changes nothing.
            store
                .delete_message(&general, MessageId(3))
                .wait_blocking()
                .unwrap();
        }
        let loaded = SqliteStore::open(&path, 100).unwrap().load().unwrap();
        assert_eq!(loaded.rooms.len(), 1);
        let seqs: Vec<u64> = loaded.rooms[0].messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1]);
        assert_eq!(
            loaded.rooms[0].next_seq, 4,
            "3 was given out, so 4 comes next"
        );
    }

    /// The checkpoint thread folds the write-ahead log into the database file by itself: a
    /// copy of the file alone, without its log, soon holds what was written.
    #[test]
    fn the_log_is_checkpointed_in_the_background() {
        let path = temp_db("checkpoint");
        let ada = ada();
        let general = general();
        let _store = store_with(&path, &general, 20, &ada);
        let copy = path.with_file_name("copy.db");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            std::fs::copy(&path, &copy).unwrap();
            let count: i64 = Connection::open(&copy)
                .unwrap()
                .query_row("SELECT COUNT(*) FROM recent_messages", [], |r| r.get(0))
                .unwrap_or(0);
            if count == 20 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never checkpointed");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The messages of a file from before the rings come over into them (the window only,
    /// and the old table goes), and reopening with a smaller or larger ring keeps each
    /// room's newest messages, with no number given out twice.
    #[test]
    fn old_files_and_new_ring_sizes_keep_the_window() {
        let path = temp_db("rings");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let ada = ada();
        let general = general();
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE rooms (key TEXT PRIMARY KEY, room TEXT NOT NULL,
                     channel TEXT, next_seq INTEGER NOT NULL);
                 CREATE TABLE messages (id INTEGER PRIMARY KEY, room_key TEXT NOT NULL,
                     seq INTEGER NOT NULL, body TEXT NOT NULL);
                 CREATE UNIQUE INDEX messages_by_room ON messages (room_key, seq);",
            )
            .unwrap();
            old.execute(
                "INSERT INTO rooms VALUES (?1, ?2, NULL, 1)",
                params![room_key(&general), serde_json::to_string(&general).unwrap()],
            )
            .unwrap();
            for seq in 1..=5u64 {
                let body = serde_json::to_string(&message(&general, seq, seq, &ada)).unwrap();
                old.execute(
                    "INSERT INTO messages VALUES (?1, ?2, ?3, ?4)",
                    params![seq as i64, room_key(&general), seq as i64, body],
                )
                .unwrap();
            }
        }
        let seqs = |store: &SqliteStore| -> Vec<u64> {
            let loaded = store.load().unwrap();
            loaded.rooms[0].messages.iter().map(|m| m.seq).collect()
        };
        {
            let store = SqliteStore::open(&path, 3).unwrap();
            assert_eq!(
                seqs(&store),
                [3, 4, 5],
                "the old table's window, in rings of 3"
            );
        }
        let tables: i64 = Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "the old table is gone");
        {
            let store = SqliteStore::open(&path, 2).unwrap();
            assert_eq!(seqs(&store), [4, 5], "a smaller ring keeps the newest");
        }
        let store = SqliteStore::open(&path, 3).unwrap();
        let loaded = store.load().unwrap();
        let room = &loaded.rooms[0];
        assert_eq!(room.next_seq, 6);
        assert_eq!(room.messages.len(), 2, "what left the window stays gone");
        for seq in 6..=7 {
            store
                .put_message(&message(&general, seq, seq, &ada))
                .wait_blocking()
                .unwrap();
        }
        drop(store);
        let store = SqliteStore::open(&path, 3).unwrap();
        assert_eq!(
            seqs(&store),
            [5, 6, 7],
            "new messages replace the oldest slots"
        );
    }
}
