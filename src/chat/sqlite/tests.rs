//! Tests of the SQLite store against real files.

use super::*;
use crate::chat::model::{ChannelName, DirectKey, DisplayName, MessageBody, MessageId};

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
