//! The durable store: one SQLite file in WAL mode holding users (token hashes only), rooms,
//! the most recent messages of each room (the same window as the in-memory history, which a
//! start loads), and the archive of older messages kept by the retention setting.
//!
//! Each room's messages are a ring of `retain` slots (`recent_messages`): message number
//! `seq` goes into slot `seq % retain`, replacing the message `retain` numbers before it. So
//! the file holds exactly the room's window, the newest `retain` numbers, by construction,
//! and storing a message changes one row in one page: there is no separate trim. (The ring
//! size is kept in `meta`; opening with another size, or a file from before the ring, moves
//! the window over.)
//!
//! The `read_positions` table keeps each user's read position per room (one row each,
//! replaced as it moves; the hub only moves it forward and bounds it, see
//! `crate::chat::hub`'s `reads`), read back at start-up for the rooms that exist.
//!
//! The `archive` table keeps each room's messages by `(room_key, seq)`, for history calls
//! with a "before" cursor ([`Archive`]). Its invariants:
//! 1. Every message in a ring is in the archive too: both are written, and a deletion
//!    removes both, in the same transaction (a file from before the archive has its rings
//!    copied in when opened).
//! 2. A room's archive holds every message numbered from its floor up that was not deleted,
//!    and none below it. The floor is `rooms.kept_from` raised to what the retention setting
//!    keeps ([`Retention::floor`] of the newest number given out): each message written
//!    trims what falls below it, and opening trims to the setting (and raises `kept_from`, so
//!    a later `all` does not claim messages that were cut). Rooms of a file from before the
//!    archive start with the floor their ring had.
//! 3. So a read below the floor that finds nothing more knows whether the room's beginning
//!    was reached (floor 1) or retention cut the rest.
//!
//! The archive's text is indexed for search (SQLite FTS5, kept in step in the writer's
//! transactions): see [`search`]. Its attachments are indexed by their id (`archive_files`,
//! an index on the expression `file_of!`, holding only messages that carry a file), so a
//! download of a file older than the hub's window, and the start-up sweep, each find the
//! message carrying a file in one read of that index. When a message written trims the
//! archive, the files of the messages it trims go to [`Store::release_files_with`]'s
//! deleter once committed.
//!
//! Reads of the archive go through a read-only connection of their own (WAL lets it read
//! while the writer writes), on tokio's blocking pool, never under the hub's lock.
//!
//! One writer thread owns the connection that writes. The hub hands it every change (users,
//! channels, names, messages and deletions) in the order it applies them, and every change
//! is written behind: each transaction holds whatever queued up while the last one was
//! committed, and commits start at most once per [`COMMIT_EVERY`] (50 ms), so under load one
//! commit covers many changes. Each outcome is reported through
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
//! database file, with an fsync) run every second ([`CHECKPOINT_EVERY`]) on a thread with a
//! connection of its own, and are passive: the writer never waits for them. That matters:
//! on this project's machine an fsync usually takes under a millisecond but now and then
//! half a second. (With the writer doing the checkpoints itself, on one exclusive
//! connection, acknowledgements waited out those fsyncs: p99 150-760 ms under disk load; see
//! BENCHMARKS.md.)

use self::rows::{apply, read_all, settle_archive, settle_ring};
use super::model::Timestamp;
use super::model::{ChannelInfo, FileId, Message, Room, RoomKey, UserId, UserInfo};
use super::store::{
    archive_page, release, write_behind_methods, Archive, ArchiveCarried, ArchiveCarrier,
    ArchiveFound, ArchiveRead, ArchiveSearch, Change, Durable, Job, Loaded, Release, ReleaseSlot,
    Reports, Retention, Store, StoreError, StoredRoom, TokenHash,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The id of the attachment a stored message's `body` carries, NULL for none: the expression
/// the `archive_files` index is on. A query uses the index only if it spells the expression
/// the same way, so every one takes it from here.
macro_rules! file_of {
    () => {
        "json_extract(body, '$.attachment.id')"
    };
}

mod rows;
mod search;

const SCHEMA: &str = concat!(
    r#"
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
CREATE TABLE IF NOT EXISTS archive (
    room_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room_key, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS archive_files ON archive ("#,
    file_of!(),
    r#") WHERE "#,
    file_of!(),
    r#" IS NOT NULL;
CREATE TABLE IF NOT EXISTS read_positions (
    user_id INTEGER NOT NULL,
    room_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_key)
) WITHOUT ROWID;
"#
);

/// How often the checkpoint thread folds the write-ahead log into the database file, and
/// so about the most a power loss can take (see the module documentation). Each checkpoint
/// writes every page changed since the last one and syncs twice: at half a second they
/// were a sixth of the writer's and checkpointer's time per message in a room posting 50 a
/// second; at a second, the pages each commit changes again (a room's newest archive page,
/// the index's structure) are written once where they were twice (BENCHMARKS.md, issue 19
/// item 3).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Most changes committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Least time from one commit's start to the next one's. A change arriving after a quiet
/// spell is committed at once; under load the writer waits out the rest of this, so one
/// commit covers every change of those milliseconds. A commit's own work (writing the
/// log's pages, the search index's flush) was a third of the server's CPU per message in a
/// room of 100 posting 200 a second (BENCHMARKS.md, issue 19 item 3); paced, it is shared.
/// Answers wait at most this much longer; delivery never waits for the disk.
const COMMIT_EVERY: Duration = Duration::from_millis(50);

/// How the names of the store's threads (its writer and its checkpoints) begin, so a tool
/// can tell their CPU time from the rest of the process's.
pub const THREAD_NAME_PREFIX: &str = "sqlite-";

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
    /// Reads older messages through a connection of its own.
    archive: Arc<SqliteArchive>,
    /// Deletes the bytes of the files the writer's trims let go of, once the hub hands it.
    release: ReleaseSlot,
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
    /// Opens (or creates) the database file, with rings of `retain` messages per room (the
    /// hub's window) and an archive keeping all messages, and starts its writer.
    pub fn open(path: &Path, retain: usize) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_keeping(path, retain, Retention::All)
    }

    /// [`SqliteStore::open`], with the archive keeping what `retention` says.
    pub fn open_keeping(
        path: &Path,
        retain: usize,
        retention: Retention,
    ) -> Result<SqliteStore, StoreError> {
        let retain = retain.max(1);
        let retention = retention.at_least(retain);
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
        settle_archive(&mut conn, retain, retention)?;
        search::settle_index(&mut conn)?;
        let loaded = read_all(&mut conn)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failed)?;
        reader
            .busy_timeout(Duration::from_secs(5))
            .map_err(failed)?;
        let archive = Arc::new(SqliteArchive {
            conn: Arc::new(Mutex::new(reader)),
            retention,
        });
        let checkpointer = Connection::open(path).map_err(failed)?;
        checkpointer
            .busy_timeout(Duration::from_secs(5))
            .map_err(failed)?;
        let checkpoints = checkpoint_thread(checkpointer)?;
        let (jobs, queue) = mpsc::channel();
        let release = ReleaseSlot::default();
        let writer = Writer {
            conn,
            retain,
            retention,
            reports: Reports::default(),
            release: release.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("{THREAD_NAME_PREFIX}writer"))
            .spawn(move || writer.run(queue))
            .map_err(failed)?;
        Ok(SqliteStore {
            jobs: Mutex::new(Some(jobs)),
            loaded: Mutex::new(Some(loaded)),
            writer: Mutex::new(Some(thread)),
            checkpoints: Mutex::new(Some(checkpoints)),
            archive,
            release,
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

/// The writer thread's side: the connection and what it needs to commit.
struct Writer {
    conn: Connection,
    retain: usize,
    retention: Retention,
    /// Each job's outcome, and the barriers' bookkeeping.
    reports: Reports,
    release: ReleaseSlot,
}

impl Writer {
    /// Commits jobs in batches, at most one commit per [`COMMIT_EVERY`], until every sender
    /// is gone, then marks the stop as clean.
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        let mut last_commit: Option<std::time::Instant> = None;
        while let Ok(first) = queue.recv() {
            if let Some(rest) = last_commit.and_then(|at| COMMIT_EVERY.checked_sub(at.elapsed())) {
                std::thread::sleep(rest);
            }
            let batch = self.gather(first, &queue);
            last_commit = Some(std::time::Instant::now());
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
        self.reports.report(batch, &outcome);
    }

    fn write(&mut self, batch: &[Job]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let tx = self.conn.transaction().map_err(failed)?;
        // Each statement is atomic on its own, and a change that fails part-way leaves
        // nothing that matters behind (at most a room row, or a room's next number raised),
        // so one failed change does not undo the others.
        let mut released = Vec::new();
        let each = batch
            .iter()
            .map(|job| apply(&tx, &job.change, self.retain, self.retention, &mut released))
            .collect();
        tx.commit().map_err(failed)?;
        release(&self.release, released);
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
        .name(format!("{THREAD_NAME_PREFIX}checkpoint"))
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

/// The archive's reader: a read-only connection, used by one read at a time.
struct SqliteArchive {
    conn: Arc<Mutex<Connection>>,
    retention: Retention,
}

impl SqliteArchive {
    /// Runs `read` with the reader's connection on tokio's blocking pool, never on the
    /// async threads.
    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send>> {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                read(&mut conn)
            })
            .await
            .map_err(failed)?
        })
    }
}

impl Archive for SqliteArchive {
    fn before(&self, room: &Room, before: u64, limit: usize) -> ArchiveRead {
        let retention = self.retention;
        let key = room_key(room);
        self.read(move |conn| rows::read_before(conn, &key, before, limit, retention))
    }

    fn search(&self, request: ArchiveSearch) -> ArchiveFound {
        self.read(move |conn| search::search(conn, &request))
    }

    fn carrier(&self, id: &FileId) -> ArchiveCarrier {
        let id = id.clone();
        self.read(move |conn| rows::carrier(conn, &id))
    }

    fn carried(&self, ids: Vec<FileId>) -> ArchiveCarried {
        self.read(move |conn| rows::carried(conn, ids))
    }
}

impl Store for SqliteStore {
    /// What the file held when it was opened (handed over once).
    fn load(&self) -> Result<Loaded, StoreError> {
        super::store::load_once(&self.loaded)
    }

    fn archive(&self) -> Option<Arc<dyn Archive>> {
        Some(self.archive.clone())
    }

    write_behind_methods!();

    fn release_files_with(&self, release: Release) {
        let _ = self.release.set(release);
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
mod tests;
