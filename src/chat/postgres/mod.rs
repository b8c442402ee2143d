//! The PostgreSQL store (`data.store = "postgres"`, `data.postgres_url`): the same rows and
//! the same promises as the SQLite store ([`super::sqlite`]), kept in a PostgreSQL database.
//!
//! This is the single-instance store, the first step of cluster mode (issue 16): one Flack
//! process owns the database (it holds a session advisory lock on it, so a second instance on
//! the same database fails to start), the hub still assigns every sequence number under its
//! lock, and PostgreSQL only keeps what the hub decided. The cluster step will move the
//! numbering into PostgreSQL (a post becomes one transaction that takes the room's row lock
//! and raises `rooms.next_seq`), drop the advisory lock, and change the epoch rule: there, an
//! instance dying loses nothing committed, so only PostgreSQL losing commits may start a new
//! epoch.
//!
//! What it keeps, as the SQLite store does: users (token hashes only), rooms (channels and
//! private conversations) and each room's ring of `retain` message slots (message `seq` goes
//! into slot `seq % retain`, so a room holds exactly its newest `retain` numbers; opening with
//! another ring size moves each room's window over). Deleting a room's newest message raises
//! the room row's `next_seq`, so no number is ever given out twice, even after a restart.
//! Beside the rings, the `archive` table keeps older messages by the retention setting, with
//! the SQLite store's invariants (see [`crate::chat::sqlite`]); it is read through a
//! connection of its own ([`PgArchive`]), never the writer's, and searched through a
//! full-text index ([`search`]). Its attachments are indexed by their id (`archive_files`,
//! on the expression `file_of!`, as in SQLite), and a message that trims the archive hands
//! the files of what it trimmed to [`Store::release_files_with`]'s deleter once committed.
//!
//! Writes are behind the hub, exactly like the SQLite writer: the hub hands every change over
//! with its lock held, through an unbounded channel, so handing over never blocks; one writer
//! commits whatever queued up (at most [`MAX_BATCH`] changes) in one transaction and reports
//! each change's [`Durable`] after the commit. A message delivered but not yet committed is
//! lost if the process dies and its number is given out again, so, as with SQLite, a start
//! after an unclean stop begins a new epoch; a clean stop ([`Store::close`]) sets the `clean`
//! flag in `meta` and the next start keeps the epoch. Unlike SQLite, a stop after any change
//! failed to be stored is not marked clean either: the database can be unreachable for a
//! while (a restart, the network), and what the hub gave out meanwhile is not in it.
//!
//! A lost connection is made again before the next batch; the batch it broke is reported
//! failed (nothing is retried: the hub has already moved on, as with a failed SQLite write).
//! While PostgreSQL stays unreachable, each batch waits up to [`CONNECT_TIMEOUT`] and fails;
//! the hub keeps delivering and only answers wait. A database missing at start is created
//! (through the `postgres` maintenance database), so the default URL works on a fresh server.
//!
//! PostgreSQL, unlike SQLite, aborts the whole transaction when one statement fails. So a
//! batch is first tried as one transaction, and if a change in it fails, the batch is rolled
//! back and written again with one transaction per change: the failing change is reported
//! failed and the others are stored, as they would be with SQLite.
//!
//! The writer runs on a thread of its own, on its own current-thread tokio runtime, and
//! `open` reads everything back on that same thread before the writer starts. The [`Store`]
//! trait is synchronous and is called from the server's runtime (with the hub's lock held);
//! blocking on a future there would panic (`block_on` inside a runtime) or stall a worker.
//! A thread that owns the connection and its runtime needs no async at the call sites: they
//! only send on channels and, at start and stop, wait for the thread. Commits still go one
//! after the other, as they must for the changes to land in the hub's order.

use super::model::{FileId, Room, RoomKey};
use super::store::{
    release, write_behind_methods, Archive, ArchiveCarried, ArchiveCarrier, ArchiveFound,
    ArchiveRead, ArchiveSearch, Change, Durable, Job, Loaded, Release, ReleaseSlot, Reports,
    Retention, Store, StoreError,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// The id of the attachment a stored message's `body` carries, NULL for none: the expression
/// the `archive_files` index is on (cluster mode's queries of the `files` table use it too).
/// A query uses the index only if it spells the expression the same way, so every one takes
/// it from here.
macro_rules! file_of {
    () => {
        "(body::jsonb #>> '{attachment,id}')"
    };
}
pub(crate) use file_of;

pub(crate) mod rows;
pub(crate) mod search;

/// Most changes committed in one transaction.
const MAX_BATCH: usize = 1024;

/// How long connecting may take before `open` (or a reconnection) gives up, unless the URL
/// says otherwise (`connect_timeout`).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock a store holds on its database for as long as it is connected, so two
/// instances never write one database as single-instance stores. (PostgreSQL scopes advisory
/// locks to a database, so stores on other databases of the same server do not meet it.) (Any fixed number works; this
/// one spells "flack" in ASCII.)
const INSTANCE_LOCK: i64 = 0x0066_6c61_636b;

/// Times a held instance lock is asked for, 100 ms apart, before `open` gives up.
const LOCK_TRIES: usize = 10;

/// A store in a PostgreSQL database, written by its own thread.
pub struct PostgresStore {
    /// The writer's queue; `None` once closed.
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    /// What the database held when it was opened, handed to the hub by `load`.
    loaded: Mutex<Option<Loaded>>,
    /// The writer thread, until `close` waits for it.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set to make `close` stop without marking the stop as clean (tests of an unclean stop).
    #[cfg(test)]
    unclean: Arc<AtomicBool>,
    /// Where the database is, without the password (see [`describe`]).
    place: String,
    /// Reads older messages through a connection of its own.
    archive: Arc<PgArchive>,
    /// Deletes the bytes of the files the writer's trims let go of, once the hub hands it.
    release: ReleaseSlot,
}

/// A failure, with its causes: tokio-postgres says only "db error" or "error connecting to
/// server" itself, and keeps what PostgreSQL or the network said in its source.
pub(crate) fn failed(e: impl std::error::Error) -> StoreError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    StoreError(text)
}

fn closed() -> StoreError {
    StoreError("the store is closed".into())
}

/// The text form of a room's identity, used as its key in the database (as in SQLite).
pub(crate) fn room_key(room: &Room) -> String {
    match room.key() {
        RoomKey::Channel(key) => format!("c:{}", key.as_str()),
        RoomKey::Direct(key) => {
            let [a, b] = key.users();
            format!("d:{a}:{b}")
        }
    }
}

/// The ring slot of message number `seq` in a room that keeps `retain` (at least 1) messages.
pub(crate) fn slot(seq: u64, retain: usize) -> i64 {
    (seq % retain as u64) as i64
}

/// Where a configuration points, for messages: user, hosts, ports and database, never the
/// password (which the URL may hold).
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgres://{}@{}:{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// Creates the database `config` names, through the `postgres` maintenance database on the
/// same server.
async fn create_database(config: &tokio_postgres::Config, place: &str) -> Result<(), StoreError> {
    let name = config.get_dbname().unwrap_or_default().to_owned();
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let (client, connection) = maintenance.connect(NoTls).await.map_err(failed)?;
    tokio::spawn(connection);
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
    {
        Ok(()) => {
            tracing::info!(database = %place, "created the database");
            Ok(())
        }
        // Someone else created it meanwhile.
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

/// Connects (creating the database first if it is missing and `create_missing` is set),
/// takes the instance lock, and keeps the connection running on the current runtime. Errors
/// name where it tried to connect.
async fn connect(
    config: &tokio_postgres::Config,
    create_missing: bool,
) -> Result<Client, StoreError> {
    connect_as(config, create_missing, Owner::Single).await
}

/// Who holds the instance lock: a single-instance store alone, or cluster instances
/// together (each holds it shared, so neither kind starts beside the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Single,
    Cluster,
}

/// [`connect`], as a single instance or as one of a cluster's.
pub(crate) async fn connect_as(
    config: &tokio_postgres::Config,
    create_missing: bool,
    owner: Owner,
) -> Result<Client, StoreError> {
    let place = describe(config);
    let connected = match config.connect(NoTls).await {
        Err(e) if create_missing && e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            create_database(config, &place).await.map_err(|e| {
                StoreError(format!(
                    "the database at {place} does not exist and could not be created: {}",
                    e.0
                ))
            })?;
            config.connect(NoTls).await
        }
        other => other,
    };
    let (client, connection) = connected.map_err(|e| {
        StoreError(format!(
            "cannot reach PostgreSQL at {place}: {}",
            failed(e).0
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %failed(e), "the PostgreSQL connection ended");
        }
    });
    let mut locked = false;
    // A store that just stopped may still hold the lock for a moment (its server process
    // exiting), so a held lock is asked for again for up to a second.
    for _ in 0..LOCK_TRIES {
        let ask = match owner {
            Owner::Single => "SELECT pg_try_advisory_lock($1)",
            Owner::Cluster => "SELECT pg_try_advisory_lock_shared($1)",
        };
        locked = client
            .query_one(ask, &[&INSTANCE_LOCK])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| StoreError(format!("PostgreSQL at {place}: {}", failed(e).0)))?;
        if locked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !locked {
        return Err(StoreError(match owner {
            Owner::Single => format!(
                "another Flack instance is using the database at {place}; the PostgreSQL \
                 store serves a single instance (set cluster.redis_url for several)"
            ),
            Owner::Cluster => format!(
                "a single-instance Flack is using the database at {place}; stop it before \
                 starting cluster instances on it"
            ),
        }));
    }
    Ok(client)
}

impl PostgresStore {
    /// Connects to the database at `url` (creating it if it is missing), creates its tables if
    /// missing, reads everything
    /// back (for `load`), keeping `retain` messages per room, and starts the writer. Fails
    /// with an error naming the URL (without its password) when PostgreSQL cannot be reached.
    pub fn open(url: &str, retain: usize) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_keeping(url, retain, Retention::All)
    }

    /// [`PostgresStore::open`], with the archive keeping what `retention` says.
    pub fn open_keeping(
        url: &str,
        retain: usize,
        retention: Retention,
    ) -> Result<PostgresStore, StoreError> {
        let retain = retain.max(1);
        let retention = retention.at_least(retain);
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError(format!("data.postgres_url is not a PostgreSQL URL: {e}")))?;
        let place = describe(&config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let archive = Arc::new(PgArchive::new(config.clone(), retention));
        let (jobs, queue) = mpsc::unbounded_channel();
        let (opened, opening) = std::sync::mpsc::sync_channel(1);
        let unclean = Arc::new(AtomicBool::new(false));
        let stop_unclean = unclean.clone();
        let release = ReleaseSlot::default();
        let writer_release = release.clone();
        let thread = std::thread::Builder::new()
            .name("postgres-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = opened.send(Err(failed(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let start = async {
                        let mut client = connect(&config, true).await?;
                        rows::create_schema(&client).await?;
                        rows::settle_ring(&mut client, retain).await?;
                        let tx = client.transaction().await.map_err(failed)?;
                        rows::settle_archive_in(&tx, retain, retention).await?;
                        tx.commit().await.map_err(failed)?;
                        let loaded = rows::read_all(&mut client).await?;
                        Ok::<_, StoreError>((client, loaded))
                    };
                    let (client, loaded) = match start.await {
                        Ok(started) => started,
                        Err(e) => {
                            let _ = opened.send(Err(e));
                            return;
                        }
                    };
                    let statements = match rows::Statements::prepare(&client).await {
                        Ok(statements) => statements,
                        Err(e) => {
                            let _ = opened.send(Err(e));
                            return;
                        }
                    };
                    if opened.send(Ok(loaded)).is_err() {
                        return;
                    }
                    let writer = Writer {
                        client,
                        statements,
                        config,
                        retain,
                        retention,
                        reports: Reports::default(),
                        unclean: stop_unclean,
                        release: writer_release,
                    };
                    writer.run(queue).await;
                });
            })
            .map_err(failed)?;
        let loaded = match opening.recv() {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StoreError(
                    "the PostgreSQL writer stopped while opening".into(),
                ));
            }
        };
        Ok(PostgresStore {
            jobs: Mutex::new(Some(jobs)),
            loaded: Mutex::new(Some(loaded)),
            writer: Mutex::new(Some(thread)),
            #[cfg(test)]
            unclean,
            place,
            archive,
            release,
        })
    }

    /// Where the database is, for logs: the URL without its password.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Hands a change over to be written behind; never blocks.
    fn write_behind(&self, change: Change) -> Durable {
        let (written, durable) = Durable::pending();
        let job = Job { change, written };
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let refused = match jobs.as_ref() {
            Some(queue) => queue.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        drop(jobs);
        if let Some(job) = refused {
            job.written.report(Err(closed()));
        }
        durable
    }

    /// Stops like a process that died: whatever was handed over is still committed, but the
    /// stop is not marked clean, so the next start begins a new epoch.
    #[cfg(test)]
    fn close_uncleanly(&self) {
        self.unclean.store(true, Ordering::SeqCst);
        self.close();
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer's side: the connection and what it needs to commit.
struct Writer {
    client: Client,
    /// The change statements, prepared on `client`'s connection.
    statements: rows::Statements,
    /// Where to connect again after the connection is lost.
    config: tokio_postgres::Config,
    retain: usize,
    retention: Retention,
    /// Each job's outcome, and the barriers' bookkeeping.
    reports: Reports,
    unclean: Arc<AtomicBool>,
    release: ReleaseSlot,
}

impl Writer {
    /// Commits jobs in batches until every sender is gone, marks the stop as clean, and
    /// lets go of the database.
    async fn run(mut self, queue: mpsc::UnboundedReceiver<Job>) {
        self.write_all(queue).await;
        // The server process behind a closed connection may take a moment to exit and let go
        // of the lock; a store opened right after this one closed must not find it held.
        let unlocked = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&INSTANCE_LOCK])
            .await;
        if let Err(e) = unlocked {
            tracing::debug!(error = %e, "could not release the instance lock");
        }
    }

    /// Commits jobs in batches until every sender is gone, then marks the stop as clean.
    async fn write_all(&mut self, mut queue: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            // Whatever queued up behind it (while the last batch was being committed, say):
            // the busier the store, the bigger the batch.
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
        if self.unclean.load(Ordering::SeqCst) {
            return;
        }
        if self.reports.failed_ever {
            // The hub gave out what the database does not have (a message's number, say): the
            // next start must not hand those numbers out again under the same epoch. (The
            // SQLite store marks such a stop clean; with a network between the store and its
            // database, failed writes are not rare enough to ignore.)
            tracing::warn!("changes could not be stored; the next start begins a new epoch");
            return;
        }
        let marked = self
            .client
            .execute(
                "INSERT INTO meta (key, value) VALUES ('clean', '1') \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[],
            )
            .await;
        if let Err(e) = marked {
            tracing::warn!(error = %e, "could not mark the stop as clean; the next start begins a new epoch");
        }
    }

    /// Commits a batch and tells each job how it went.
    async fn commit(&mut self, batch: Vec<Job>) {
        let outcome = self.write(&batch).await;
        self.reports.report(batch, &outcome);
    }

    /// Writes a batch: all of it in one transaction, or, if a change in it fails, each change
    /// in a transaction of its own (see the module's documentation).
    async fn write(&mut self, batch: &[Job]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if self.client.is_closed() {
            tracing::warn!("the PostgreSQL connection was lost; connecting again");
            self.client = connect(&self.config, false).await?;
            self.statements = rows::Statements::prepare(&self.client).await?;
        }
        match self.transact(batch).await {
            Ok(released) => {
                release(&self.release, released);
                return Ok(batch.iter().map(|_| Ok(())).collect());
            }
            Err(e) if self.client.is_closed() => return Err(e),
            Err(e) if batch.len() == 1 => return Ok(vec![Err(e)]),
            Err(_) => {}
        }
        let mut each = Vec::with_capacity(batch.len());
        let mut released = Vec::new();
        for job in batch {
            let alone = self.transact(std::slice::from_ref(job)).await;
            each.push(alone.map(|trimmed| released.extend(trimmed)));
        }
        release(&self.release, released);
        Ok(each)
    }

    /// Applies `jobs` in one transaction and commits it. Returns the files the changes'
    /// trims let go of, to be handed on only because (and once) the transaction committed.
    async fn transact(&mut self, jobs: &[Job]) -> Result<Vec<FileId>, StoreError> {
        let mut released = Vec::new();
        let tx = self.client.transaction().await.map_err(failed)?;
        for job in jobs {
            rows::apply(
                &tx,
                &self.statements,
                &job.change,
                self.retain,
                self.retention,
                &mut released,
            )
            .await?;
        }
        tx.commit().await.map_err(failed)?;
        Ok(released)
    }
}

/// Reads a database's archive through a connection of its own, made when first needed (on
/// the runtime of whoever reads) and made again once lost. It takes no instance lock, so
/// cluster instances use it as well. One read at a time goes through it.
pub(crate) struct PgArchive {
    config: tokio_postgres::Config,
    retention: Retention,
    client: Arc<tokio::sync::Mutex<Option<Client>>>,
}

impl PgArchive {
    pub(crate) fn new(config: tokio_postgres::Config, retention: Retention) -> PgArchive {
        PgArchive {
            config,
            retention,
            client: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }
}

/// The archive's connection, locked for one read, made first if there is none (or it was
/// lost).
async fn held_client(
    config: &tokio_postgres::Config,
    client: Arc<tokio::sync::Mutex<Option<Client>>>,
) -> Result<tokio::sync::OwnedMutexGuard<Option<Client>>, StoreError> {
    let mut held = client.lock_owned().await;
    if held.as_ref().is_none_or(Client::is_closed) {
        let (fresh, connection) = config.connect(NoTls).await.map_err(|e| {
            StoreError(format!(
                "cannot reach PostgreSQL at {}: {}",
                describe(config),
                failed(e).0
            ))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %failed(e), "the archive's connection ended");
            }
        });
        *held = Some(fresh);
    }
    Ok(held)
}

fn no_connection() -> StoreError {
    StoreError("no connection to read the archive".into())
}

impl Archive for PgArchive {
    fn before(&self, room: &Room, before: u64, limit: usize) -> ArchiveRead {
        let config = self.config.clone();
        let retention = self.retention;
        let client = self.client.clone();
        let room = room.clone();
        Box::pin(async move {
            let mut held = held_client(&config, client).await?;
            let client = held.as_mut().ok_or_else(no_connection)?;
            rows::read_before(client, &room, before, limit, retention).await
        })
    }

    fn search(&self, request: ArchiveSearch) -> ArchiveFound {
        let config = self.config.clone();
        let client = self.client.clone();
        Box::pin(async move {
            let held = held_client(&config, client).await?;
            let client = held.as_ref().ok_or_else(no_connection)?;
            search::search(client, &request).await
        })
    }

    fn carrier(&self, id: &FileId) -> ArchiveCarrier {
        let config = self.config.clone();
        let client = self.client.clone();
        let id = id.clone();
        Box::pin(async move {
            let held = held_client(&config, client).await?;
            let client = held.as_ref().ok_or_else(no_connection)?;
            rows::carrier(client, &id).await
        })
    }

    fn carried(&self, ids: Vec<FileId>) -> ArchiveCarried {
        let config = self.config.clone();
        let client = self.client.clone();
        Box::pin(async move {
            let held = held_client(&config, client).await?;
            let client = held.as_ref().ok_or_else(no_connection)?;
            rows::carried(client, ids).await
        })
    }
}

impl Store for PostgresStore {
    /// What the database held when it was opened (handed over once).
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
    }
}

#[cfg(test)]
pub(crate) mod tests;
