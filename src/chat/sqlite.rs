//! The durable store: one SQLite file in WAL mode holding users (token hashes only), rooms,
//! and the most recent messages of each room, with the same retention as the in-memory
//! history.
//!
//! Every write is its own transaction, committed before the hub acknowledges the change, so
//! anything acknowledged survives the process being killed. (`synchronous = NORMAL` in WAL
//! mode is durable against process crashes; against power loss the last transactions may be
//! lost. Set `synchronous = FULL` if that matters more than write speed.)
//!
//! Checkpoints (copying the write-ahead log into the database file, with an fsync) run every
//! half second on a thread with its own connection, rather than at the end of whichever
//! write fills the log. A passive checkpoint and a write never wait for each other, and that
//! matters: on this project's machine an fsync usually takes under a millisecond but now and
//! then half a second, and a write waiting that long under the hub's lock holds up every
//! room. (Holding the file's lock for good, `locking_mode = EXCLUSIVE`, saves a few `fcntl`
//! calls per message but allows only one connection, so checkpoints had to share it, and
//! every write waited out any fsync in progress. See BENCHMARKS.md.)

use super::model::Timestamp;
use super::model::{ChannelInfo, Message, MessageId, Room, RoomKey, UserId, UserInfo};
use super::store::{Loaded, Store, StoreError, StoredRoom, TokenHash};
use rusqlite::{params, Connection, OptionalExtension};
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
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    room_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_room ON messages (room_key, seq);
";

/// How often the checkpoint thread folds the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A store in one SQLite file.
pub struct SqliteStore {
    /// The connection every read and write goes through, used with the hub's lock held.
    conn: Mutex<Connection>,
    /// Messages kept per room.
    retain: usize,
    /// Dropping it stops the checkpoint thread and waits for it, so the file is free again
    /// once the store is dropped. (Declared after `conn`, so it is dropped after it.)
    _checkpoints: Checkpoints,
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

impl SqliteStore {
    /// Opens (or creates) the database file, keeping `retain` messages per room.
    pub fn open(path: &Path, retain: usize) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let conn = Connection::open(path).map_err(failed)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(failed)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(failed)?;
        conn.execute_batch(SCHEMA).map_err(failed)?;
        let checkpointer = Connection::open(path).map_err(failed)?;
        checkpointer
            .busy_timeout(Duration::from_secs(5))
            .map_err(failed)?;
        let checkpoints = checkpoint_thread(checkpointer)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            retain,
            _checkpoints: checkpoints,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
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

/// Starts the thread that checkpoints the log through its own connection until it is
/// dropped. Passive checkpoints never wait for, or block, the writer.
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

impl Store for SqliteStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failed)?;
        let epoch: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(failed)?;
        let epoch = match epoch.and_then(|e| e.parse::<u64>().ok()) {
            Some(epoch) => epoch,
            None => {
                // A new database: its sequence numbers start a new epoch, kept from now on.
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
                .prepare("SELECT body FROM messages WHERE room_key = ?1 ORDER BY seq")
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

    fn put_channel(&self, channel: &ChannelInfo) -> Result<(), StoreError> {
        let room = Room::Channel(channel.name.clone());
        self.conn()
            .execute(
                "INSERT INTO rooms (key, room, channel, next_seq) VALUES (?1, ?2, ?3, 1)",
                params![
                    room_key(&room),
                    serde_json::to_string(&room).map_err(failed)?,
                    serde_json::to_string(channel).map_err(failed)?
                ],
            )
            .map_err(failed)?;
        Ok(())
    }

    fn put_user(&self, user: &UserInfo, token_hash: &TokenHash) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO users (id, name, token_hash) VALUES (?1, ?2, ?3)",
                params![user.id.0 as i64, user.name.as_str(), &token_hash[..]],
            )
            .map_err(failed)?;
        Ok(())
    }

    fn rename_user(&self, user: &UserInfo) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE users SET name = ?2 WHERE id = ?1",
                params![user.id.0 as i64, user.name.as_str()],
            )
            .map_err(failed)?;
        Ok(())
    }

    fn put_message(&self, message: &Message) -> Result<(), StoreError> {
        let key = room_key(&message.room);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failed)?;
        let room = serde_json::to_string(&message.room).map_err(failed)?;
        let body = serde_json::to_string(message).map_err(failed)?;
        // Cached statements: parsing the SQL again for every message costs more than running it.
        tx.prepare_cached(
            "INSERT OR IGNORE INTO rooms (key, room, channel, next_seq) VALUES (?1, ?2, NULL, 1)",
        )
        .and_then(|mut s| s.execute(params![key, room]))
        .map_err(failed)?;
        tx.prepare_cached("INSERT INTO messages (id, room_key, seq, body) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| {
                s.execute(params![message.id.0 as i64, key, message.seq as i64, body])
            })
            .map_err(failed)?;
        // No `UPDATE rooms SET next_seq` here: the room's newest message already says what
        // comes next (see `next_seq` in `load`), and the write-ahead log gets one page fewer
        // per message.
        // Keep the same window as the in-memory history: the newest `retain` messages.
        tx.prepare_cached("DELETE FROM messages WHERE room_key = ?1 AND seq <= ?2 - ?3")
            .and_then(|mut s| s.execute(params![key, message.seq as i64, self.retain as i64]))
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(())
    }

    fn delete_message(&self, room: &Room, id: MessageId) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failed)?;
        // The deleted message may be the room's newest; its number must never come back, so
        // the room row remembers the number after it.
        tx.execute(
            "UPDATE rooms SET next_seq = MAX(next_seq, \
                 (SELECT seq + 1 FROM messages WHERE id = ?2)) \
             WHERE key = ?1 AND EXISTS (SELECT 1 FROM messages WHERE id = ?2)",
            params![room_key(room), id.0 as i64],
        )
        .map_err(failed)?;
        tx.execute("DELETE FROM messages WHERE id = ?1", params![id.0 as i64])
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(())
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
            store.put_message(&message(room, seq, seq, author)).unwrap();
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
            store.put_user(&ada, &[7; 32]).unwrap();
            store
                .put_channel(&ChannelInfo {
                    name: ChannelName::parse("General").unwrap(),
                    created_at: Timestamp::now(),
                })
                .unwrap();
            for seq in 1..=5 {
                store
                    .put_message(&message(&general, seq, seq, &ada))
                    .unwrap();
            }
            store.put_message(&message(&direct, 6, 1, &ada)).unwrap();
            store.delete_message(&general, MessageId(4)).unwrap();
            store
                .rename_user(&UserInfo {
                    id: UserId(1),
                    name: DisplayName::parse("Ada L").unwrap(),
                })
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
            store.delete_message(&general, MessageId(3)).unwrap();
            store.delete_message(&general, MessageId(2)).unwrap();
            // Deleting what is already gone changes nothing.
            store.delete_message(&general, MessageId(3)).unwrap();
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
                .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
                .unwrap_or(0);
            if count == 20 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never checkpointed");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
