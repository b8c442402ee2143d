//! Tests of the SQLite store against real files.

use super::*;
use crate::chat::model::{ChannelName, DirectKey, DisplayName, HistoryTop, MessageBody, MessageId};

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
        edited_at: None,
        reactions: Vec::new(),
        reply: None,
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

/// A room's archive read below `before`, as the hub would ask for it (100 at most).
fn before(store: &dyn Store, room: &Room, before: u64) -> crate::chat::store::ArchivePage {
    let archive = store.archive().expect("the SQLite store has an archive");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(archive.before(room, before, 100))
        .unwrap()
}

fn seqs(page: &crate::chat::store::ArchivePage) -> Vec<u64> {
    page.messages.iter().map(|m| m.seq).collect()
}

/// Writes messages 1 to `count` to `room`, waiting only for the last.
fn fill(store: &SqliteStore, room: &Room, count: u64) {
    let mut last = None;
    for seq in 1..=count {
        last = Some(store.put_message(&message(room, seq, seq, &ada())));
    }
    if let Some(last) = last {
        last.wait_blocking().unwrap();
    }
}

/// With everything kept, the archive answers "before" reads a page at a time, oldest first,
/// down to the room's beginning, across a restart; a deleted message is gone from it too,
/// while start-up still loads only the window of 100.
#[test]
fn the_archive_keeps_everything_and_pages_back_to_the_beginning() {
    let path = temp_db("archive-all");
    let room = general();
    {
        let store = SqliteStore::open_keeping(&path, 100, Retention::All).unwrap();
        store.load().unwrap();
        fill(&store, &room, 250);
        store
            .delete_message(&room, MessageId(240))
            .wait_blocking()
            .unwrap();
        store.close();
    }
    let store = SqliteStore::open_keeping(&path, 100, Retention::All).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(
        loaded.rooms[0].messages.len(),
        99,
        "the window, less the deletion"
    );
    let newest = before(&store, &room, 251);
    assert_eq!(newest.messages.len(), 100);
    assert!(
        !seqs(&newest).contains(&240),
        "deleted from the archive too"
    );
    assert_eq!(seqs(&newest)[0], 150);
    let page = before(&store, &room, 151);
    assert_eq!(seqs(&page), (51..=150).collect::<Vec<_>>());
    assert_eq!(page.top, HistoryTop::More);
    let page = before(&store, &room, 51);
    assert_eq!(seqs(&page), (1..=50).collect::<Vec<_>>());
    assert_eq!(page.top, HistoryTop::Beginning);
    let page = before(&store, &room, 1);
    assert!(page.messages.is_empty());
    assert_eq!(page.top, HistoryTop::Beginning);
    let nowhere = Room::Channel(ChannelName::parse("nowhere").unwrap());
    assert_eq!(before(&store, &nowhere, 10).top, HistoryTop::Beginning);
}

/// A number kept cuts the archive as messages come and says so at the cut; 100 keeps exactly
/// the window, as every store did before the archive. Lowering the number at a restart cuts
/// what is stored, and raising it again (or `all`) does not bring back what was cut.
#[test]
fn retention_cuts_the_archive_and_says_so() {
    let path = temp_db("archive-retention");
    let room = general();
    {
        let store = SqliteStore::open_keeping(&path, 100, Retention::Newest(150)).unwrap();
        store.load().unwrap();
        fill(&store, &room, 250);
        let page = before(&store, &room, 151);
        assert_eq!(seqs(&page), (101..=150).collect::<Vec<_>>());
        assert_eq!(page.top, HistoryTop::NotKept);
        store.close();
    }
    let rows = |path: &Path| -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM archive", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(rows(&path), 150);
    {
        let store = SqliteStore::open_keeping(&path, 100, Retention::Newest(100)).unwrap();
        store.load().unwrap();
        let page = before(&store, &room, 151);
        assert!(page.messages.is_empty());
        assert_eq!(page.top, HistoryTop::NotKept);
        store.close();
    }
    assert_eq!(rows(&path), 100, "100 keeps the window and nothing older");
    let store = SqliteStore::open_keeping(&path, 100, Retention::All).unwrap();
    store.load().unwrap();
    let page = before(&store, &room, 151);
    assert!(page.messages.is_empty());
    assert_eq!(page.top, HistoryTop::NotKept, "what was cut stays cut");
}

/// A file written before the archive existed (rings only) starts its archive from the rings
/// when opened: the window reads back, and above it the archive says older messages are not
/// kept, since the rings had already dropped them.
#[test]
fn files_from_before_the_archive_start_it_from_their_rings() {
    let path = temp_db("archive-upgrade");
    let room = general();
    {
        let store = store_with(&path, &room, 150, &ada());
        store.close();
    }
    // Back to what a file from before the archive held.
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE archive; DELETE FROM meta WHERE key = 'archive'; \
             ALTER TABLE rooms DROP COLUMN kept_from;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, 100).unwrap();
    store.load().unwrap();
    let page = before(&store, &room, 200);
    assert_eq!(seqs(&page), (51..=150).collect::<Vec<_>>());
    assert_eq!(page.top, HistoryTop::NotKept);
}

/// On SQLite: files of archived messages are found, then released by retention (see
/// [`files_are_found_then_released_by_retention`]); the look-up's query plan names the
/// index of attachments.
#[test]
fn archived_files_are_found_by_their_index_and_released_when_trimmed() {
    use crate::chat::store::tests::{file, files_are_found_then_released_by_retention};
    let path = temp_db("archive-files");
    let store = SqliteStore::open_keeping(&path, 100, Retention::Newest(150)).unwrap();
    store.load().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    files_are_found_then_released_by_retention(&store, &runtime);
    let plan: Vec<String> = Connection::open(&path)
        .unwrap()
        .prepare(&format!("EXPLAIN QUERY PLAN {}", rows::CARRIER))
        .unwrap()
        .query_map(params![file(1).id.as_str()], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|step| step.contains("USING INDEX archive_files")),
        "{plan:?}"
    );
}

/// An edit replaces the stored message in the ring and the archive alike: after reopening,
/// the window and a "before" read both have the new text and its time.
#[test]
fn edits_are_stored_in_the_ring_and_the_archive() {
    let path = temp_db("edit");
    let general = Room::Channel(ChannelName::parse("general").unwrap());
    let edited_at = Timestamp::from_millis(1_800_000_000_000);
    {
        let store = SqliteStore::open(&path, 100).unwrap();
        store.load().unwrap();
        for seq in 1..=3 {
            store
                .put_message(&message(&general, seq, seq, &ada()))
                .wait_blocking()
                .unwrap();
        }
        let mut edited = message(&general, 2, 2, &ada());
        edited.body = MessageBody::parse("corrected", 100).unwrap();
        edited.edited_at = Some(edited_at);
        store.edit_message(&edited).wait_blocking().unwrap();
        store.close();
    }
    let store = SqliteStore::open(&path, 100).unwrap();
    let loaded = store.load().unwrap();
    let held = &loaded.rooms[0].messages[1];
    assert_eq!(
        (held.body.as_str(), held.edited_at),
        ("corrected", Some(edited_at))
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let archive = store.archive().expect("an archive");
    let page = runtime.block_on(archive.before(&general, 3, 10)).unwrap();
    assert_eq!(page.messages[1].body.as_str(), "corrected");
    assert_eq!(page.messages[1].edited_at, Some(edited_at));
}
