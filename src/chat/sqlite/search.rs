//! The archive's full-text index (SQLite FTS5) and the search through it.
//!
//! `archive_words` holds each archived message's text, keyed by the message's id (its
//! rowid), with the room and number it belongs to. It is kept in step in the same
//! transaction as every write: the writer indexes each message it archives ([`index`]), and
//! triggers on `archive` index an edited one by its new text and take a message deleted or
//! trimmed by retention out with it, so a deleted message is never found. A file from
//! before the index gets it built when opened (marked done in `meta`).
//!
//! A new message is indexed by a statement of its own rather than by a trigger: a trigger
//! runs inside a savepoint, and FTS5 writes out its pending terms at every savepoint, so
//! each message made an index segment (and merge work) of its own; written directly, the
//! terms of a whole commit make one. That was a fifth of the writer's time per message in a
//! room posting 50 a second (BENCHMARKS.md, issue 19 item 3).
//!
//! Ids are unique across rooms; should an id ever come back (a store restarted after the
//! newest messages of a room were all deleted gives theirs out again), the newer message
//! takes the index entry, and deleting the older one leaves it alone (the delete trigger
//! checks the room and number): a search never fails over it.
//!
//! Each entry also lists who may read it (`readers`: `zpublic` for a channel, `zu{a} zu{b}`
//! for the conversation of users `a` and `b`), so a search asks the index for the words *and*
//! the reader, and reads the intersection newest id first, stopping at the page's size.
//! The rooms found are checked again by key (channels `c:…`, and `d:{a}:{b}` with the
//! reader as `a` or `b`).

use super::failed;
use crate::chat::model::{Message, UserId};
use crate::chat::store::{ArchiveSearch, StoreError};
use rusqlite::{params, Connection, Transaction};
use std::sync::LazyLock;

const SCHEMA: &str = "
CREATE VIRTUAL TABLE IF NOT EXISTS archive_words USING fts5(
    text, readers, room_key UNINDEXED, seq UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);
DROP TRIGGER IF EXISTS archive_words_insert;
CREATE TRIGGER IF NOT EXISTS archive_words_delete AFTER DELETE ON archive BEGIN
    DELETE FROM archive_words
        WHERE rowid = old.id AND room_key = old.room_key AND seq = old.seq;
END;
CREATE TRIGGER IF NOT EXISTS archive_words_edit AFTER UPDATE OF body ON archive BEGIN
    UPDATE archive_words SET text = json_extract(new.body, '$.body')
        WHERE rowid = new.id AND room_key = new.room_key AND seq = new.seq;
END;
";

/// Who may read the room keyed `key`, as the `readers` column's words: `zpublic` for a
/// channel (`c:…`), `zu{a} zu{b}` for the private conversation `d:{a}:{b}`. (SQL, with
/// `KEY` spliced in.) Odd words on purpose: a search for a word that is also one of these
/// reads its whole list in the index, a tenth of a second over a million messages.
const READERS: &str = "CASE WHEN substr(KEY, 1, 2) = 'd:' \
    THEN 'zu' || replace(substr(KEY, 3), ':', ' zu') ELSE 'zpublic' END";

/// Indexes message `message`, just archived in the room keyed `key`, in the writer's
/// transaction. Should its id have been given out before, the newer message takes the entry
/// (see the module documentation).
pub(super) fn index(tx: &Transaction<'_>, key: &str, message: &Message) -> Result<(), StoreError> {
    static INSERT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO archive_words (rowid, text, readers, room_key, seq) \
             VALUES (?1, ?2, {}, ?3, ?4)",
            READERS.replace("KEY", "?3")
        )
    });
    let id = message.id.0 as i64;
    tx.prepare_cached("DELETE FROM archive_words WHERE rowid = ?1")
        .and_then(|mut s| s.execute(params![id]))
        .map_err(failed)?;
    tx.prepare_cached(&INSERT)
        .and_then(|mut s| s.execute(params![id, message.body.as_str(), key, message.seq as i64]))
        .map_err(failed)?;
    Ok(())
}

/// Creates the index and its triggers if missing, and fills it from the archive once (a
/// file from before the index).
pub(super) fn settle_index(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(failed)?;
    tx.execute_batch(SCHEMA).map_err(failed)?;
    if super::rows::meta(&tx, "search_index")?.is_none() {
        tx.execute_batch("DELETE FROM archive_words;")
            .map_err(failed)?;
        // One entry per id (see the module documentation): the newest message having it.
        let indexed = tx
            .execute(
                &format!(
                    "INSERT INTO archive_words (rowid, text, readers, room_key, seq) \
                        SELECT id, json_extract(body, '$.body'), {}, room_key, MAX(seq) \
                        FROM archive GROUP BY id",
                    READERS.replace("KEY", "room_key")
                ),
                [],
            )
            .map_err(failed)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('search_index', '1')",
            [],
        )
        .map_err(failed)?;
        tracing::info!(indexed, "built the archive's full-text index");
    }
    tx.commit().map_err(failed)
}

/// The FTS5 query for a search: every word in the text (each a quoted string, a quote in it
/// doubled, so no character the user typed is read as FTS5 syntax), and the room readable by
/// everyone or by the reader. The index intersects the two, so words that are only in other
/// pairs' conversations cost little to not find.
fn match_expression(search: &ArchiveSearch) -> String {
    let words: Vec<String> = search
        .terms
        .words()
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    format!(
        "text : ({}) AND readers : (zpublic OR zu{})",
        words.join(" "),
        search.reader
    )
}

/// The GLOB patterns of the room keys of `reader`'s own private conversations.
fn own_directs(reader: UserId) -> [String; 2] {
    [format!("d:{reader}:*"), format!("d:*:{reader}")]
}

/// Runs a search on the archive's read connection: the newest messages first.
pub(super) fn search(
    conn: &Connection,
    search: &ArchiveSearch,
) -> Result<Vec<Message>, StoreError> {
    let [first, second] = own_directs(search.reader);
    let before = search
        .before
        .map_or(i64::MAX, |id| id.0.min(i64::MAX as u64) as i64);
    let mut stmt = conn
        .prepare_cached(
            "SELECT a.body FROM archive_words AS w \
                JOIN archive AS a ON a.room_key = w.room_key AND a.seq = w.seq \
             WHERE archive_words MATCH ?1 AND w.rowid < ?2 AND a.id = w.rowid \
                AND (w.room_key GLOB 'c:*' OR w.room_key GLOB ?3 OR w.room_key GLOB ?4) \
             ORDER BY w.rowid DESC LIMIT ?5",
        )
        .map_err(failed)?;
    let bodies = stmt
        .query_map(
            params![
                match_expression(search),
                before,
                first,
                second,
                search.limit as i64
            ],
            |r| r.get::<_, String>(0),
        )
        .map_err(failed)?;
    let mut found = Vec::new();
    for body in bodies {
        found.push(serde_json::from_str::<Message>(&body.map_err(failed)?).map_err(failed)?);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use crate::chat::model::{
        ChannelName, DirectKey, DisplayName, Message, MessageBody, MessageId, Room, SearchTerms,
        Timestamp, UserId, UserInfo,
    };
    use crate::chat::store::{ArchiveSearch, Store};

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("flack-search-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("flack.db")
    }

    fn user(id: u64) -> UserInfo {
        UserInfo {
            id: UserId(id),
            name: DisplayName::parse(&format!("user{id}")).unwrap(),
        }
    }

    fn general() -> Room {
        Room::Channel(ChannelName::parse("general").unwrap())
    }

    fn direct(a: u64, b: u64) -> Room {
        Room::Direct(DirectKey::between(UserId(a), UserId(b)).unwrap())
    }

    /// Stores message `id` (numbered `seq` in its room) saying `text`.
    fn put(store: &SqliteStore, room: &Room, id: u64, seq: u64, text: &str) {
        let message = Message {
            id: MessageId(id),
            room: room.clone(),
            seq,
            author: user(1),
            body: MessageBody::parse(text, 4000).unwrap(),
            attachment: None,
            sent_at: Timestamp::now(),
            edited_at: None,
            reactions: Vec::new(),
            reply: None,
        };
        store.put_message(&message).wait_blocking().unwrap();
    }

    /// A file named `name` holding messages 1, 2, ... of `general` saying `texts`, then
    /// changed by `sql` run on it directly, as an older version would have left it.
    fn older_file(name: &str, texts: &[&str], sql: &str) -> std::path::PathBuf {
        let path = temp_db(name);
        let store = SqliteStore::open(&path, 100).unwrap();
        store.load().unwrap();
        for (n, text) in (1..).zip(texts) {
            put(&store, &general(), n, n, text);
        }
        store.close();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        path
    }

    /// The ids a search by `reader` for `text` finds, newest first.
    fn found(store: &SqliteStore, reader: u64, text: &str, before: Option<u64>) -> Vec<u64> {
        let archive = store.archive().unwrap();
        let request = ArchiveSearch {
            terms: SearchTerms::parse(text).unwrap(),
            reader: UserId(reader),
            before: before.map(MessageId),
            limit: 50,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(archive.search(request))
            .unwrap()
            .iter()
            .map(|m| m.id.0)
            .collect()
    }

    /// The bundled SQLite has FTS5, and a search finds messages by every word, whatever the
    /// case or accents, newest first, from the cursor on.
    #[test]
    fn words_are_found_newest_first() {
        let store = SqliteStore::open(&temp_db("words"), 100).unwrap();
        store.load().unwrap();
        put(&store, &general(), 1, 1, "Deploy the café build");
        put(&store, &general(), 2, 2, "nothing to see");
        put(&store, &general(), 3, 3, "deploy again, CAFE closed");
        assert_eq!(found(&store, 9, "deploy", None), vec![3, 1]);
        assert_eq!(found(&store, 9, "Café DEPLOY", None), vec![3, 1]);
        assert_eq!(found(&store, 9, "deploy", Some(3)), vec![1]);
        assert!(found(&store, 9, "deploy nothing", None).is_empty());
        assert!(found(&store, 9, "absent", None).is_empty());
    }

    /// Private conversations are searched only for their two participants, whoever else asks
    /// and whatever words they guess.
    #[test]
    fn other_pairs_conversations_are_never_found() {
        let store = SqliteStore::open(&temp_db("private"), 100).unwrap();
        store.load().unwrap();
        put(&store, &direct(1, 2), 1, 1, "secret plan");
        put(&store, &direct(2, 15), 2, 1, "secret plan too");
        put(&store, &general(), 3, 1, "public plan");
        assert_eq!(found(&store, 1, "secret", None), vec![1]);
        assert_eq!(found(&store, 2, "secret", None), vec![2, 1]);
        assert_eq!(found(&store, 15, "plan", None), vec![3, 2]);
        assert_eq!(found(&store, 5, "plan", None), vec![3]);
        assert!(found(&store, 5, "secret", None).is_empty());
        assert!(
            found(&store, 1, "plan too", None).is_empty(),
            "user 1 is not in 2 and 15's conversation, though 15 ends in 5 and 2 starts it"
        );
    }

    /// A deleted message leaves the index with the archive, and so does what retention trims.
    #[test]
    fn deleted_messages_are_never_found() {
        let store = SqliteStore::open(&temp_db("deleted"), 100).unwrap();
        store.load().unwrap();
        put(&store, &general(), 1, 1, "gone soon");
        put(&store, &general(), 2, 2, "gone later");
        store
            .delete_message(&general(), MessageId(1))
            .wait_blocking()
            .unwrap();
        assert_eq!(found(&store, 1, "gone", None), vec![2]);
    }

    /// An id given out again (in another room, by a store restarted after a room's newest
    /// messages were deleted) moves its index entry to the newer message: its words are
    /// found, with its room's readers, and the older message's words no longer are.
    #[test]
    fn a_reused_id_is_indexed_as_the_newer_message() {
        let store = SqliteStore::open(&temp_db("reused"), 100).unwrap();
        store.load().unwrap();
        put(&store, &general(), 7, 1, "first words");
        put(&store, &direct(1, 2), 7, 1, "second words");
        assert!(found(&store, 1, "first", None).is_empty());
        assert_eq!(found(&store, 1, "second", None), vec![7]);
        assert!(
            found(&store, 5, "second", None).is_empty(),
            "the entry has the newer message's readers"
        );
    }

    /// A file from before the index has it built when opened, and deletions after that keep
    /// it in step.
    #[test]
    fn an_existing_archive_is_indexed_when_opened() {
        let path = older_file(
            "migration",
            &["old words", "old news"],
            "DROP TRIGGER archive_words_delete; DROP TRIGGER archive_words_edit; \
             DROP TABLE archive_words; DELETE FROM meta WHERE key = 'search_index';",
        );
        let store = SqliteStore::open(&path, 100).unwrap();
        store.load().unwrap();
        assert_eq!(found(&store, 1, "old", None), vec![2, 1]);
        store
            .delete_message(&general(), MessageId(2))
            .wait_blocking()
            .unwrap();
        assert_eq!(found(&store, 1, "old", None), vec![1]);
    }

    /// A file whose index was kept by an insert trigger (before messages were indexed by
    /// the writer) loses the trigger when opened, and the messages from before and after are
    /// found.
    #[test]
    fn an_insert_trigger_from_before_is_dropped() {
        let path = older_file(
            "old-trigger",
            &["old words"],
            "CREATE TRIGGER archive_words_insert AFTER INSERT ON archive BEGIN \
                 DELETE FROM archive_words WHERE rowid = new.id; \
                 INSERT INTO archive_words (rowid, text, readers, room_key, seq) \
                 VALUES (new.id, 'stale', 'zpublic', new.room_key, new.seq); END;",
        );
        let store = SqliteStore::open(&path, 100).unwrap();
        store.load().unwrap();
        put(&store, &general(), 2, 2, "new words");
        assert_eq!(found(&store, 1, "words", None), vec![2, 1]);
        store.close();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let triggers: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'archive_words_insert'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(triggers, 0);
    }

    /// Quotes and FTS5 operators in what is typed are plain separators: the match expression
    /// built from any text the search accepts is valid FTS5.
    #[test]
    fn query_syntax_in_the_text_is_harmless() {
        let store = SqliteStore::open(&temp_db("syntax"), 100).unwrap();
        store.load().unwrap();
        put(&store, &general(), 1, 1, "NEAR the AND gate, col:x");
        for text in [
            "\"and", "AND (", "near(", "col:x", "x*", "^near", "NOT and", "a OR b", "-and",
        ] {
            let _ = found(&store, 1, text, None);
        }
        assert_eq!(found(&store, 1, "AND (", None), vec![1]);
        assert_eq!(found(&store, 1, "col:x", None), vec![1]);
    }
}
