//! Tests of the PostgreSQL store against the real server on 127.0.0.1:5432 (trust auth, user
//! `postgres`), each in a database of its own, created here and dropped at the end. Without
//! that server these tests fail, saying so; they never pass by skipping.

use super::*;
use crate::chat::model::{
    ChannelInfo, ChannelName, DirectKey, DisplayName, Message, MessageBody, MessageId, Timestamp,
    UserId, UserInfo,
};
use std::sync::atomic::AtomicUsize;

/// The maintenance database the tests create and drop their own databases through.
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of one test's own, dropped (with any connection still on it) when this is.
pub(crate) struct TestDatabase {
    /// The URL a store opens it with.
    pub(crate) url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database, or fails the test if PostgreSQL cannot be reached.
    pub(crate) fn create() -> TestDatabase {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "flack_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        // Left over from an earlier run with the same process id, if any.
        admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .and_then(|()| admin(&format!("CREATE DATABASE {name}")))
            .unwrap_or_else(|e| {
                panic!("these tests need PostgreSQL at {ADMIN_URL} (trust auth; see issue 16): {e}")
            });
        TestDatabase {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }
}

impl TestDatabase {
    /// Holds a write lock on every table the store writes (as a stalled database would
    /// hold up its writer) until the returned guard is released.
    pub(crate) fn hold_writes(&self) -> HeldWrites {
        let (locked, is_locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let url = self.url.clone();
        let thread = std::thread::spawn(move || {
            let held = run_with(&url, |client| async move {
                client
                    .batch_execute(
                        "BEGIN; LOCK TABLE users, rooms, recent_messages IN EXCLUSIVE MODE;",
                    )
                    .await?;
                let _ = locked.send(());
                // Nothing else runs on this runtime meanwhile; the lock lives in the server.
                let _ = released.recv();
                client.batch_execute("COMMIT").await
            });
            if let Err(e) = held {
                panic!("could not hold the tables: {e}");
            }
        });
        is_locked
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the tables are locked");
        HeldWrites {
            release,
            thread: Some(thread),
        }
    }

    /// Ends every connection to this database (as a PostgreSQL restart or a network
    /// failure would), and waits until they are gone.
    pub(crate) fn cut_connections(&self) {
        let name = self.name.clone();
        run_with(ADMIN_URL, |client| async move {
            // Ending a connection only signals its server process.
            let others = "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
            client
                .execute(
                    &format!("SELECT pg_terminate_backend(pid) {others}"),
                    &[&name],
                )
                .await?;
            for _ in 0..500 {
                let left: i64 = client
                    .query_one(&format!("SELECT COUNT(*) {others}"), &[&name])
                    .await?
                    .get(0);
                if left == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("could not end the connections: {e}"));
    }
}

/// A write lock held on a test database's tables by [`TestDatabase::hold_writes`].
pub(crate) struct HeldWrites {
    release: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldWrites {
    /// Lets the writes through.
    pub(crate) fn release(mut self) {
        let _ = self.release.send(());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the lock was released");
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )) {
            tracing::warn!(error = %e, database = %self.name, "could not drop a test database");
        }
    }
}

fn admin(sql: &str) -> Result<(), String> {
    run(ADMIN_URL, sql)
}

/// Runs statements over a connection of their own, on a runtime of their own.
fn run(url: &str, sql: &str) -> Result<(), String> {
    let sql = sql.to_owned();
    run_with(
        url,
        |client| async move { client.batch_execute(&sql).await },
    )
}

/// Runs `work` with a connection of its own, on a runtime of its own.
fn run_with<W, F>(url: &str, work: W) -> Result<(), String>
where
    W: FnOnce(Client) -> F,
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        work(client).await.map_err(|e| e.to_string())
    })
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

fn message(room: &Room, id: u64, seq: u64, author: &UserInfo) -> Message {
    Message {
        id: MessageId(id),
        room: room.clone(),
        seq,
        author: author.clone(),
        body: MessageBody::parse(&format!("m{seq}"), 100).unwrap(),
        attachment: None,
        sent_at: Timestamp::now(),
        edited_at: None,
        reactions: Vec::new(),
        reply: None,
    }
}

/// A store on `db` whose room holds messages 1 to `count` by `author`.
fn store_with(db: &TestDatabase, room: &Room, count: u64, author: &UserInfo) -> PostgresStore {
    let store = PostgresStore::open(&db.url, 100).unwrap();
    store.load().unwrap();
    for seq in 1..=count {
        store
            .put_message(&message(room, seq, seq, author))
            .wait_blocking()
            .unwrap();
    }
    store
}

fn seqs(store: &PostgresStore) -> Vec<u64> {
    let loaded = store.load().unwrap();
    loaded.rooms[0].messages.iter().map(|m| m.seq).collect()
}

/// Everything written comes back after reopening, with the same epoch, the newest
/// `retain` messages per room, deletions and renames applied.
#[test]
fn round_trips_through_the_database() {
    let db = TestDatabase::create();
    let ada = ada();
    let general = Room::Channel(ChannelName::parse("General").unwrap());
    let direct = Room::Direct(DirectKey::between(UserId(1), UserId(2)).unwrap());
    let epoch = {
        let store = PostgresStore::open(&db.url, 3).unwrap();
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
    let store = PostgresStore::open(&db.url, 3).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.epoch, epoch, "the epoch survives clean restarts");
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
    let db = TestDatabase::create();
    let ada = ada();
    let general = general();
    {
        let store = store_with(&db, &general, 3, &ada);
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
    let loaded = PostgresStore::open(&db.url, 100).unwrap().load().unwrap();
    assert_eq!(loaded.rooms.len(), 1);
    let seqs: Vec<u64> = loaded.rooms[0].messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1]);
    assert_eq!(
        loaded.rooms[0].next_seq, 4,
        "3 was given out, so 4 comes next"
    );
}

/// Reopening with a smaller or larger ring keeps each room's newest numbers (a deleted
/// newest one included), with no number given out twice, and new messages then replace
/// the oldest slots.
#[test]
fn new_ring_sizes_keep_the_window() {
    let db = TestDatabase::create();
    let ada = ada();
    let general = general();
    {
        let store = PostgresStore::open(&db.url, 3).unwrap();
        store.load().unwrap();
        for seq in 1..=6 {
            store
                .put_message(&message(&general, seq, seq, &ada))
                .wait_blocking()
                .unwrap();
        }
        store
            .delete_message(&general, MessageId(6))
            .wait_blocking()
            .unwrap();
        store.barrier().wait_blocking().unwrap();
    }
    {
        let store = PostgresStore::open(&db.url, 2).unwrap();
        assert_eq!(
            seqs(&store),
            [5],
            "a ring of 2 keeps numbers 5 and 6, and 6 was deleted"
        );
    }
    let store = PostgresStore::open(&db.url, 3).unwrap();
    let loaded = store.load().unwrap();
    let room = &loaded.rooms[0];
    assert_eq!(room.next_seq, 7, "6 was given out, so 7 comes next");
    assert_eq!(room.messages.len(), 1, "what left the window stays gone");
    for seq in 7..=8 {
        store
            .put_message(&message(&general, seq, seq, &ada))
            .wait_blocking()
            .unwrap();
    }
    drop(store);
    let store = PostgresStore::open(&db.url, 3).unwrap();
    assert_eq!(
        seqs(&store),
        [7, 8],
        "new messages replace the oldest slots"
    );
}

/// A clean stop keeps the epoch; a stop without the clean mark (a process that died) makes
/// the next start begin a new one, while everything committed is still there.
#[test]
fn the_epoch_is_kept_after_a_clean_stop_and_new_after_an_unclean_one() {
    let db = TestDatabase::create();
    let ada = ada();
    let general = general();
    let first = {
        let store = store_with(&db, &general, 2, &ada);
        store.close();
        PostgresStore::open(&db.url, 100)
            .unwrap()
            .load()
            .unwrap()
            .epoch
    };
    let store = PostgresStore::open(&db.url, 100).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.epoch, first, "a clean stop keeps the epoch");
    store
        .put_message(&message(&general, 3, 3, &ada))
        .wait_blocking()
        .unwrap();
    store.close_uncleanly();
    drop(store);
    let store = PostgresStore::open(&db.url, 100).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.epoch.is_some());
    assert_ne!(loaded.epoch, first, "an unclean stop begins a new epoch");
    let seqs: Vec<u64> = loaded.rooms[0].messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3], "what was committed is kept");
}

/// A barrier resolves once what came before it is committed, and fails when a change since
/// the last barrier could not be stored; the changes beside the failed one in its batch are
/// still stored (PostgreSQL aborts the whole transaction, so the batch is written again
/// change by change), and the next barrier is fine again.
#[test]
fn barriers_report_failed_changes() {
    let db = TestDatabase::create();
    let general = general();
    let store = PostgresStore::open(&db.url, 100).unwrap();
    store.load().unwrap();
    let bob = UserInfo {
        id: UserId(2),
        name: DisplayName::parse("bob").unwrap(),
    };
    assert!(
        store.barrier().wait_blocking().is_ok(),
        "nothing failed yet"
    );
    // The first change's batch waits on the held tables, so the rest queue up behind it
    // and are written as one batch: the second user reuses the first one's token hash,
    // which the database refuses, and the batch is written again change by change.
    let held = db.hold_writes();
    let first = store.put_user(&ada(), &[1; 32]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let duplicate = store.put_user(&bob, &[1; 32]);
    let after = store.put_message(&message(&general, 1, 1, &ada()));
    let barrier = store.barrier();
    held.release();
    assert!(first.wait_blocking().is_ok());
    assert!(
        duplicate.wait_blocking().is_err(),
        "the duplicate hash fails"
    );
    assert!(after.wait_blocking().is_ok(), "the others are stored");
    let refused = barrier
        .wait_blocking()
        .expect_err("the barrier reports the failure");
    assert!(refused.0.contains("could not be stored"), "{refused}");
    assert!(
        store.barrier().wait_blocking().is_ok(),
        "the next barrier only answers for what came after the last"
    );
    drop(store);
    let loaded = PostgresStore::open(&db.url, 100).unwrap().load().unwrap();
    assert_eq!(loaded.users.len(), 1);
    assert_eq!(loaded.rooms[0].messages.len(), 1);
}

/// After a change failed, even a clean stop begins a new epoch at the next start: what the
/// hub gave out meanwhile (a message's number) is not in the database.
#[test]
fn a_failed_change_makes_the_next_start_a_new_epoch() {
    let db = TestDatabase::create();
    let store = PostgresStore::open(&db.url, 100).unwrap();
    let epoch = store.load().unwrap().epoch;
    store.put_user(&ada(), &[1; 32]).wait_blocking().unwrap();
    let bob = UserInfo {
        id: UserId(2),
        name: DisplayName::parse("bob").unwrap(),
    };
    assert!(store.put_user(&bob, &[1; 32]).wait_blocking().is_err());
    store.close();
    let loaded = PostgresStore::open(&db.url, 100).unwrap().load().unwrap();
    assert!(loaded.epoch.is_some());
    assert_ne!(loaded.epoch, epoch);
}

/// When the connection is lost (PostgreSQL restarted, say), the writer connects again: at
/// most the batch it was writing fails, later changes are stored, and the store still holds
/// the database against a second instance.
#[test]
fn a_lost_connection_is_made_again() {
    let db = TestDatabase::create();
    let ada = ada();
    let general = general();
    let store = store_with(&db, &general, 1, &ada);
    db.cut_connections();
    // The writer may not have noticed yet: the batch that finds the connection gone fails.
    let _ = store
        .put_message(&message(&general, 2, 2, &ada))
        .wait_blocking();
    store
        .put_message(&message(&general, 3, 3, &ada))
        .wait_blocking()
        .expect("stored over a new connection");
    let second = PostgresStore::open(&db.url, 100).err().expect("still held");
    assert!(second.0.contains("another Flack instance"), "{second}");
    drop(store);
    let loaded = PostgresStore::open(&db.url, 100).unwrap().load().unwrap();
    let seqs: Vec<u64> = loaded.rooms[0].messages.iter().map(|m| m.seq).collect();
    assert!(seqs == [1, 3] || seqs == [1, 2, 3], "{seqs:?}");
}

/// A store that cannot reach PostgreSQL fails to open, naming where it tried without the
/// password the URL holds.
#[test]
fn an_unreachable_database_fails_open_naming_it() {
    let refused = PostgresStore::open("postgres://flack:secret@127.0.0.1:1/flack", 100)
        .err()
        .expect("nothing listens on port 1");
    let text = refused.to_string();
    assert!(
        text.contains("cannot reach PostgreSQL at postgres://flack@127.0.0.1:1/flack"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
}

/// Only one instance at a time writes a database as a single-instance store.
#[test]
fn a_second_instance_is_refused() {
    let db = TestDatabase::create();
    let store = PostgresStore::open(&db.url, 100).unwrap();
    let second = PostgresStore::open(&db.url, 100)
        .err()
        .expect("the first still holds the database");
    assert!(second.0.contains("another Flack instance"), "{second}");
    drop(store);
    assert!(
        PostgresStore::open(&db.url, 100).is_ok(),
        "free once closed"
    );
}

/// A database that does not exist yet is created at start (through the `postgres`
/// maintenance database), and the store works in it.
#[test]
fn a_missing_database_is_created() {
    let db = TestDatabase::create();
    admin(&format!("DROP DATABASE {}", db.name)).unwrap();
    let store = PostgresStore::open(&db.url, 100).unwrap();
    assert!(store.load().unwrap().rooms.is_empty());
    store.put_user(&ada(), &[3; 32]).wait_blocking().unwrap();
    drop(store);
    let loaded = PostgresStore::open(&db.url, 100).unwrap().load().unwrap();
    assert_eq!(loaded.users.len(), 1);
}

/// A ping (the readiness check) resolves once a transaction commits on the database; with
/// the connection cut it still resolves, over the new connection the writer makes: a ping
/// fails only while PostgreSQL cannot be reached at all.
#[test]
fn pings_need_a_commit() {
    let db = TestDatabase::create();
    let store = PostgresStore::open(&db.url, 100).unwrap();
    store.load().unwrap();
    store.ping().wait_blocking().expect("ready");
    db.cut_connections();
    // The batch that finds the connection gone may fail; the next one connects again.
    let _ = store.ping().wait_blocking();
    store.ping().wait_blocking().expect("ready again");
}

/// Reads a store's archive the way the hub does, all on one runtime (the archive's
/// connection lives on the runtime that made it).
struct Reader(tokio::runtime::Runtime);

impl Reader {
    fn new() -> Reader {
        Reader(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        )
    }

    /// The sequence numbers below `before` the archive returns, and what lies above them.
    fn before(
        &self,
        store: &dyn Store,
        room: &Room,
        before: u64,
    ) -> (Vec<u64>, crate::chat::model::HistoryTop) {
        let archive = store
            .archive()
            .expect("the PostgreSQL store has an archive");
        let page = self.0.block_on(archive.before(room, before, 100)).unwrap();
        (page.messages.iter().map(|m| m.seq).collect(), page.top)
    }
}

/// Writes messages 1 to `count` to `room`, waiting only for the last.
fn fill(store: &PostgresStore, room: &Room, count: u64) {
    let mut last = None;
    for seq in 1..=count {
        last = Some(store.put_message(&message(room, seq, seq, &ada())));
    }
    if let Some(last) = last {
        last.wait_blocking().unwrap();
    }
}

/// With everything kept, the archive answers "before" reads a page at a time down to the
/// room's beginning, across a restart, through a connection of its own; a deleted message is
/// gone from it too.
#[test]
fn the_archive_keeps_everything_and_pages_back_to_the_beginning() {
    use crate::chat::model::HistoryTop;
    let db = TestDatabase::create();
    let room = general();
    {
        let store = PostgresStore::open_keeping(&db.url, 100, Retention::All).unwrap();
        store.load().unwrap();
        fill(&store, &room, 250);
        store
            .delete_message(&room, MessageId(240))
            .wait_blocking()
            .unwrap();
        store.close();
    }
    let store = PostgresStore::open_keeping(&db.url, 100, Retention::All).unwrap();
    assert_eq!(store.load().unwrap().rooms[0].messages.len(), 99);
    let reader = Reader::new();
    let (newest, top) = reader.before(&store, &room, 251);
    assert_eq!(newest.len(), 100);
    assert!(!newest.contains(&240), "deleted from the archive too");
    assert_eq!(top, HistoryTop::More);
    assert_eq!(
        reader.before(&store, &room, 151),
        ((51..=150).collect(), HistoryTop::More)
    );
    assert_eq!(
        reader.before(&store, &room, 51),
        ((1..=50).collect(), HistoryTop::Beginning)
    );
    let nowhere = Room::Channel(ChannelName::parse("nowhere").unwrap());
    assert_eq!(
        reader.before(&store, &nowhere, 10),
        (vec![], HistoryTop::Beginning)
    );
    store.close();
}

/// A number kept cuts the archive as messages come and says so at the cut; lowering it to
/// 100 at a restart keeps only the window, and `all` afterwards does not claim what was cut.
#[test]
fn retention_cuts_the_archive_and_says_so() {
    use crate::chat::model::HistoryTop;
    let db = TestDatabase::create();
    let room = general();
    let reader = Reader::new();
    {
        let store = PostgresStore::open_keeping(&db.url, 100, Retention::Newest(150)).unwrap();
        store.load().unwrap();
        fill(&store, &room, 250);
        assert_eq!(
            reader.before(&store, &room, 151),
            ((101..=150).collect(), HistoryTop::NotKept)
        );
        store.close();
    }
    {
        let store = PostgresStore::open_keeping(&db.url, 100, Retention::Newest(100)).unwrap();
        store.load().unwrap();
        assert_eq!(
            reader.before(&store, &room, 151),
            (vec![], HistoryTop::NotKept)
        );
        store.close();
    }
    run_with(&db.url, |client| async move {
        let count: i64 = client
            .query_one("SELECT COUNT(*) FROM archive", &[])
            .await?
            .get(0);
        assert_eq!(count, 100, "100 keeps the window and nothing older");
        Ok(())
    })
    .unwrap();
    let store = PostgresStore::open_keeping(&db.url, 100, Retention::All).unwrap();
    store.load().unwrap();
    assert_eq!(
        reader.before(&store, &room, 151),
        (vec![], HistoryTop::NotKept),
        "what was cut stays cut"
    );
    store.close();
}

/// The ids a search by `reader` for `text` finds in the store's archive, newest first.
fn search_ids(reader: &Reader, store: &dyn Store, who: u64, text: &str) -> Vec<u64> {
    let request = crate::chat::store::ArchiveSearch {
        terms: crate::chat::model::SearchTerms::parse(text).unwrap(),
        reader: UserId(who),
        before: None,
        limit: 50,
    };
    let archive = store.archive().expect("an archive");
    let found = reader.0.block_on(archive.search(request)).unwrap();
    found.iter().map(|m| m.id.0).collect()
}

/// The archive's text index (GIN over `to_tsvector`): words are found newest first, another
/// pair's private conversation never, a deleted message never, query syntax in the text is
/// harmless, and a database whose archive predates the index gets it when opened.
#[test]
fn the_archive_is_searched_by_words_for_its_readers_only() {
    let db = TestDatabase::create();
    let say = |room: &Room, id: u64, seq: u64, text: &str| {
        let mut m = message(room, id, seq, &ada());
        m.body = MessageBody::parse(text, 4000).unwrap();
        m
    };
    let pair = Room::Direct(DirectKey::between(UserId(1), UserId(2)).unwrap());
    let others = Room::Direct(DirectKey::between(UserId(2), UserId(15)).unwrap());
    {
        let store = PostgresStore::open(&db.url, 100).unwrap();
        store.load().unwrap();
        for m in [
            say(&general(), 1, 1, "Deploy the build"),
            say(&pair, 2, 1, "deploy secretly"),
            say(&others, 3, 1, "deploy secretly too"),
            say(&general(), 4, 2, "deploy AND (again*"),
            // Far enough ahead that the others are read by the second pass.
            say(&general(), 10_000, 3, "deploy far ahead"),
        ] {
            store.put_message(&m).wait_blocking().unwrap();
        }
        store.close();
    }
    run(&db.url, "DROP INDEX archive_words").unwrap();
    let store = PostgresStore::open(&db.url, 100).unwrap();
    store.load().unwrap();
    let reader = Reader::new();
    assert_eq!(
        search_ids(&reader, &store, 1, "deploy"),
        vec![10_000, 4, 2, 1]
    );
    assert_eq!(
        search_ids(&reader, &store, 15, "DEPLOY"),
        vec![10_000, 4, 3, 1]
    );
    assert!(search_ids(&reader, &store, 5, "zpublic zu1").is_empty());
    assert!(search_ids(&reader, &store, 5, "secretly").is_empty());
    assert_eq!(search_ids(&reader, &store, 1, "\"AND ( again*"), vec![4]);
    store
        .delete_message(&general(), MessageId(4))
        .wait_blocking()
        .unwrap();
    assert_eq!(search_ids(&reader, &store, 1, "deploy"), vec![10_000, 2, 1]);
    store.close();
}

/// On PostgreSQL: files of archived messages are found, then released by retention (see
/// [`files_are_found_then_released_by_retention`]); the look-up can use the index of
/// attachments (with sequential scans off, so a table this small does not hide it, the
/// plan names it).
#[test]
fn archived_files_are_found_by_their_index_and_released_when_trimmed() {
    use crate::chat::store::tests::{file, files_are_found_then_released_by_retention};
    let db = TestDatabase::create();
    let store = PostgresStore::open_keeping(&db.url, 100, Retention::Newest(150)).unwrap();
    store.load().unwrap();
    files_are_found_then_released_by_retention(&store, &Reader::new().0);
    run_with(&db.url, |client| async move {
        client.batch_execute("SET enable_seqscan = off").await?;
        let plan: Vec<String> = client
            .query(
                &format!("EXPLAIN {}", rows::CARRIER),
                &[&file(1).id.as_str()],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            plan.iter().any(|line| line.contains("archive_files")),
            "{plan:?}"
        );
        Ok(())
    })
    .unwrap();
    store.close();
}

/// An edit replaces the stored message in the ring and the archive alike: after reopening,
/// the window and a "before" read both have the new text and its time, and search finds the
/// new words and no longer the old.
#[test]
fn edits_are_stored_in_the_ring_and_the_archive() {
    let db = TestDatabase::create();
    let edited_at = Timestamp::from_millis(1_800_000_000_000);
    {
        let store = store_with(&db, &general(), 3, &ada());
        let mut edited = message(&general(), 2, 2, &ada());
        edited.body = MessageBody::parse("corrected giraffe", 100).unwrap();
        edited.edited_at = Some(edited_at);
        store.edit_message(&edited).wait_blocking().unwrap();
        store.close();
    }
    let store = PostgresStore::open(&db.url, 100).unwrap();
    let loaded = store.load().unwrap();
    let held = &loaded.rooms[0].messages[1];
    assert_eq!(
        (held.body.as_str(), held.edited_at),
        ("corrected giraffe", Some(edited_at))
    );
    let reader = Reader::new();
    let archive = store.archive().expect("an archive");
    let page = reader
        .0
        .block_on(archive.before(&general(), 3, 10))
        .unwrap();
    assert_eq!(page.messages[1].body.as_str(), "corrected giraffe");
    assert_eq!(page.messages[1].edited_at, Some(edited_at));
    assert_eq!(search_ids(&reader, &store, 1, "giraffe"), vec![2]);
    assert!(search_ids(&reader, &store, 1, "m2").is_empty());
    store.close();
}

/// A message's reactions are stored with it, in the ring and the archive alike: after
/// reopening, the window and a "before" read both have them, who gave each in order.
#[test]
fn reactions_are_stored_with_their_message() {
    let db = TestDatabase::create();
    let bob = UserInfo {
        id: UserId(2),
        name: DisplayName::parse("bob").unwrap(),
    };
    let up = crate::chat::model::Emoji::named("+1").unwrap();
    let mut reacted = message(&general(), 2, 2, &ada());
    reacted.react(up, &bob, true);
    reacted.react(up, &ada(), true);
    {
        let store = store_with(&db, &general(), 3, &ada());
        store.edit_message(&reacted).wait_blocking().unwrap();
        store.close();
    }
    let store = PostgresStore::open(&db.url, 100).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.rooms[0].messages[1].reactions, reacted.reactions);
    let reader = Reader::new();
    let archive = store.archive().expect("an archive");
    let page = reader
        .0
        .block_on(archive.before(&general(), 3, 10))
        .unwrap();
    assert_eq!(page.messages[1].reactions, reacted.reactions);
    store.close();
}
