//! The database's rows: creating the tables, settling the message rings to the configured
//! size and the archive to the retention setting, reading everything back at start-up,
//! applying one change inside a transaction, and reading the archive below a number.
//! The rows are those of the SQLite store (see [`crate::chat::sqlite`]), with PostgreSQL
//! types: rooms and messages as JSON text, token hashes as `bytea`.

use super::{failed, room_key, slot, Change};
use crate::chat::model::{
    ChannelInfo, DisplayName, FileId, Message, Room, Timestamp, UserId, UserInfo,
};
use crate::chat::store::{
    archive_page, ArchivePage, Loaded, Retention, StoreError, StoredRoom, TokenHash,
};
use std::collections::HashMap;
use tokio_postgres::{Client, Statement, Transaction};

const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS rooms (
    key TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    channel TEXT,
    next_seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS recent_messages (
    room_key TEXT NOT NULL,
    slot BIGINT NOT NULL,
    id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room_key, slot)
);
CREATE TABLE IF NOT EXISTS archive (
    room_key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room_key, seq)
);
CREATE INDEX IF NOT EXISTS archive_files ON archive (",
    file_of!(),
    ") WHERE ",
    file_of!(),
    " IS NOT NULL;
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS kept_from BIGINT NOT NULL DEFAULT 1;
CREATE TABLE IF NOT EXISTS read_positions (
    user_id BIGINT NOT NULL,
    room_key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_key)
);
"
);

/// Creates the tables that are missing.
pub(crate) async fn create_schema(client: &Client) -> Result<(), StoreError> {
    client.batch_execute(SCHEMA).await.map_err(failed)
}

/// One value from the `meta` table, if set.
pub(crate) async fn meta(tx: &Transaction<'_>, key: &str) -> Result<Option<String>, StoreError> {
    let row = tx
        .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
        .await
        .map_err(failed)?;
    row.map(|r| r.try_get(0)).transpose().map_err(failed)
}

pub(crate) async fn set_meta(
    tx: &Transaction<'_>,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await
    .map(|_| ())
    .map_err(failed)
}

/// Makes the message rings `retain` (at least 1) slots wide. A database written with another
/// ring size has each room's window (the newest `retain` numbers given out, deleted ones
/// included) moved into rings of the new size; an older message is dropped, as it would have
/// been had it been written with this size.
pub(crate) async fn settle_ring(client: &mut Client, retain: usize) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(failed)?;
    settle_ring_in(&tx, retain).await?;
    tx.commit().await.map_err(failed)
}

/// [`settle_ring`] inside a transaction the caller commits.
pub(crate) async fn settle_ring_in(tx: &Transaction<'_>, retain: usize) -> Result<(), StoreError> {
    let size = meta(tx, "ring_size").await?;
    if size.is_some_and(|size| size != retain.to_string()) {
        tx.batch_execute(
            "CREATE TEMP TABLE old_ring ON COMMIT DROP AS
                 SELECT room_key, id, seq, body FROM recent_messages;
             DELETE FROM recent_messages;",
        )
        .await
        .map_err(failed)?;
        let moved = tx
            .execute(
                "INSERT INTO recent_messages (room_key, slot, id, seq, body) \
                 SELECT m.room_key, m.seq % $1, m.id, m.seq, m.body FROM old_ring AS m \
                 WHERE m.seq > GREATEST( \
                     (SELECT MAX(o.seq) FROM old_ring AS o WHERE o.room_key = m.room_key), \
                     (SELECT r.next_seq - 1 FROM rooms AS r WHERE r.key = m.room_key)) - $1",
                &[&(retain as i64)],
            )
            .await
            .map_err(failed)?;
        tracing::info!(moved, ring = retain, "moved the stored messages into rings");
    }
    set_meta(tx, "ring_size", &retain.to_string()).await
}

/// Settles the archive, inside a transaction the caller commits: the rules and invariants
/// are the SQLite store's (see [`crate::chat::sqlite`]). A database from before the archive
/// gets its rings copied in, each room's floor where its ring's window began (`ring` numbers
/// below the newest given out); then every room is trimmed to `retention`, its floor
/// (`rooms.kept_from`) raised to match.
pub(crate) async fn settle_archive_in(
    tx: &Transaction<'_>,
    ring: usize,
    retention: Retention,
) -> Result<(), StoreError> {
    const NEWEST: &str = "GREATEST(rooms.next_seq - 1, \
        COALESCE((SELECT MAX(seq) FROM archive WHERE room_key = rooms.key), 0))";
    if meta(tx, "archive").await?.is_none() {
        let copied = tx
            .execute(
                "INSERT INTO archive (room_key, seq, id, body) \
                    SELECT room_key, seq, id, body FROM recent_messages ON CONFLICT DO NOTHING",
                &[],
            )
            .await
            .map_err(failed)?;
        tx.execute(
            &format!("UPDATE rooms SET kept_from = GREATEST(kept_from, {NEWEST} + 1 - $1)"),
            &[&(ring as i64)],
        )
        .await
        .map_err(failed)?;
        set_meta(tx, "archive", "1").await?;
        tracing::info!(copied, "started the message archive from the rings");
    }
    if let Retention::Newest(n) = retention {
        tx.execute(
            &format!("UPDATE rooms SET kept_from = GREATEST(kept_from, {NEWEST} + 1 - $1)"),
            &[&(n as i64)],
        )
        .await
        .map_err(failed)?;
    }
    // Room by room, each a range of the primary key: never a scan of the whole archive.
    let mut trimmed = 0;
    for row in tx
        .query("SELECT key, kept_from FROM rooms WHERE kept_from > 1", &[])
        .await
        .map_err(failed)?
    {
        let key: String = row.try_get(0).map_err(failed)?;
        let floor: i64 = row.try_get(1).map_err(failed)?;
        trimmed += tx
            .execute(
                "DELETE FROM archive WHERE room_key = $1 AND seq < $2",
                &[&key, &floor],
            )
            .await
            .map_err(failed)?;
    }
    if trimmed > 0 {
        tracing::info!(
            trimmed,
            "trimmed the message archive to data.retain_messages"
        );
    }
    super::search::settle_index(tx).await
}

/// Up to `limit` messages of `room` numbered below `before`, from the archive, read in one
/// repeatable-read transaction (so the floor and the messages agree).
pub(crate) async fn read_before(
    client: &mut Client,
    room: &Room,
    before: u64,
    limit: usize,
    retention: Retention,
) -> Result<ArchivePage, StoreError> {
    let key = room_key(room);
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(failed)?;
    let row = tx
        .query_opt(
            "SELECT kept_from, next_seq - 1, \
                COALESCE((SELECT MAX(seq) FROM archive WHERE room_key = $1), 0) \
                FROM rooms WHERE key = $1",
            &[&key],
        )
        .await
        .map_err(failed)?;
    let Some(row) = row else {
        // No row: the room never had a message.
        return Ok(archive_page(Vec::new(), limit, 1));
    };
    let kept_from: i64 = row.try_get(0).map_err(failed)?;
    let next_minus_one: i64 = row.try_get(1).map_err(failed)?;
    let newest_kept: i64 = row.try_get(2).map_err(failed)?;
    let newest = next_minus_one.max(newest_kept).max(0) as u64;
    let floor = (kept_from.max(1) as u64).max(retention.floor(newest));
    let mut messages = Vec::new();
    for row in tx
        .query(
            "SELECT body FROM archive WHERE room_key = $1 AND seq < $2 AND seq >= $3 \
                ORDER BY seq DESC LIMIT $4",
            &[
                &key,
                &(before.min(i64::MAX as u64) as i64),
                &(floor as i64),
                &((limit + 1) as i64),
            ],
        )
        .await
        .map_err(failed)?
    {
        let body: String = row.try_get(0).map_err(failed)?;
        messages.push(serde_json::from_str::<Message>(&body).map_err(failed)?);
    }
    tx.commit().await.map_err(failed)?;
    Ok(archive_page(messages, limit, floor))
}

/// The body of the archived message carrying the attachment `$1`.
pub(crate) const CARRIER: &str = concat!(
    "SELECT body FROM archive WHERE ",
    file_of!(),
    " = $1 LIMIT 1"
);

/// The archived message carrying the attachment `id`, if any: one read of the
/// `archive_files` index.
pub(crate) async fn carrier(client: &Client, id: &FileId) -> Result<Option<Message>, StoreError> {
    let row = client
        .query_opt(CARRIER, &[&id.as_str()])
        .await
        .map_err(failed)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let body: String = row.try_get(0).map_err(failed)?;
    serde_json::from_str(&body).map(Some).map_err(failed)
}

/// Which of `ids` an archived message carries, through the `archive_files` index (a
/// thousand ids a query).
pub(crate) async fn carried(
    client: &Client,
    ids: Vec<FileId>,
) -> Result<std::collections::HashSet<FileId>, StoreError> {
    let mut carried = std::collections::HashSet::new();
    for chunk in ids.chunks(1000) {
        let asked: Vec<&str> = chunk.iter().map(FileId::as_str).collect();
        for row in client
            .query(
                concat!(
                    "SELECT DISTINCT ",
                    file_of!(),
                    " FROM archive WHERE ",
                    file_of!(),
                    " = ANY($1)"
                ),
                &[&asked],
            )
            .await
            .map_err(failed)?
        {
            let id: String = row.try_get(0).map_err(failed)?;
            carried.extend(FileId::parse(&id).ok());
        }
    }
    Ok(carried)
}

/// Reads everything back, and settles the epoch: kept after a clean stop, new otherwise.
pub(super) async fn read_all(client: &mut Client) -> Result<Loaded, StoreError> {
    let tx = client.transaction().await.map_err(failed)?;
    let epoch = settle_epoch(&tx).await?;
    // A cluster started on this database later must know a single instance wrote it.
    set_meta(&tx, "mode", "single").await?;
    let (users, rooms) = read_rows(&tx).await?;
    let reads = read_positions(&tx).await?;
    tx.commit().await.map_err(failed)?;
    Ok(Loaded {
        epoch: Some(epoch),
        users,
        rooms,
        reads,
    })
}

/// Every stored read position whose room has a row (a room gets one with its first message,
/// and nobody reads a room before that).
pub(crate) async fn read_positions(
    tx: &Transaction<'_>,
) -> Result<Vec<(UserId, Room, u64)>, StoreError> {
    let mut reads = Vec::new();
    for row in tx
        .query(
            "SELECT p.user_id, r.room, p.seq FROM read_positions AS p \
             JOIN rooms AS r ON r.key = p.room_key",
            &[],
        )
        .await
        .map_err(failed)?
    {
        let user: i64 = row.try_get(0).map_err(failed)?;
        let room: String = row.try_get(1).map_err(failed)?;
        let seq: i64 = row.try_get(2).map_err(failed)?;
        let room: Room = serde_json::from_str(&room).map_err(failed)?;
        reads.push((UserId(user as u64), room, seq.max(0) as u64));
    }
    Ok(reads)
}

/// Stores a read position (`$1` user, `$2` room key, `$3` seq). `GREATEST` keeps writes that
/// may land out of order (cluster mode writes each on its own) from moving it back.
pub(crate) const UPSERT_READ: &str = "INSERT INTO read_positions (user_id, room_key, seq) \
     VALUES ($1, $2, $3) ON CONFLICT (user_id, room_key) \
     DO UPDATE SET seq = GREATEST(read_positions.seq, excluded.seq)";

/// The single-instance epoch rule: the stored epoch is kept after a clean stop, and a new
/// one starts otherwise. The `clean` mark is cleared, to be set again by a clean stop.
pub(crate) async fn settle_epoch(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let epoch = meta(tx, "epoch").await?;
    let clean = meta(tx, "clean").await?;
    tx.execute("DELETE FROM meta WHERE key = 'clean'", &[])
        .await
        .map_err(failed)?;
    let kept = epoch
        .and_then(|e| e.parse::<u64>().ok())
        .filter(|_| clean.as_deref() == Some("1"));
    let epoch = match kept {
        Some(epoch) => epoch,
        None => {
            // A new database, or messages may have been lost in an unclean stop (see the
            // module's documentation): sequence numbers start a new epoch.
            let epoch = Timestamp::now().millis().max(1) as u64;
            set_meta(tx, "epoch", &epoch.to_string()).await?;
            epoch
        }
    };
    Ok(epoch)
}

/// Every registered user and their token hash, by id.
pub(crate) async fn read_users(
    tx: &Transaction<'_>,
) -> Result<Vec<(UserInfo, TokenHash)>, StoreError> {
    let mut users = Vec::new();
    for row in tx
        .query("SELECT id, name, token_hash FROM users ORDER BY id", &[])
        .await
        .map_err(failed)?
    {
        let id: i64 = row.try_get(0).map_err(failed)?;
        let name: String = row.try_get(1).map_err(failed)?;
        let hash: Vec<u8> = row.try_get(2).map_err(failed)?;
        let name = DisplayName::parse(&name).map_err(failed)?;
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
    Ok(users)
}

/// Every user and every room with its retained messages.
pub(crate) async fn read_rows(
    tx: &Transaction<'_>,
) -> Result<(Vec<(UserInfo, TokenHash)>, Vec<StoredRoom>), StoreError> {
    let users = read_users(tx).await?;
    let mut messages: HashMap<String, Vec<Message>> = HashMap::new();
    for row in tx
        .query(
            "SELECT room_key, body FROM recent_messages ORDER BY room_key, seq",
            &[],
        )
        .await
        .map_err(failed)?
    {
        let key: String = row.try_get(0).map_err(failed)?;
        let body: String = row.try_get(1).map_err(failed)?;
        let message: Message = serde_json::from_str(&body).map_err(failed)?;
        messages.entry(key).or_default().push(message);
    }
    let mut rooms = Vec::new();
    for row in tx
        .query("SELECT key, room, channel, next_seq FROM rooms", &[])
        .await
        .map_err(failed)?
    {
        let key: String = row.try_get(0).map_err(failed)?;
        let room: String = row.try_get(1).map_err(failed)?;
        let channel: Option<String> = row.try_get(2).map_err(failed)?;
        let next_seq: i64 = row.try_get(3).map_err(failed)?;
        let room: Room = serde_json::from_str(&room).map_err(failed)?;
        let channel: Option<ChannelInfo> = channel
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(failed)?;
        let list = messages.remove(&key).unwrap_or_default();
        // The row's number is only raised when a message is deleted; otherwise the newest
        // message tells what comes next.
        let after_newest = list.last().map_or(1, |m| m.seq + 1);
        rooms.push(StoredRoom {
            room,
            channel,
            next_seq: (next_seq.max(1) as u64).max(after_newest),
            messages: list,
        });
    }
    Ok((users, rooms))
}

/// The statements that apply changes, prepared once per connection: a statement given as
/// text would be prepared again on every use, a round trip of its own.
pub(super) struct Statements {
    message: Statement,
    delete: Statement,
    edit: Statement,
    channel: Statement,
    user: Statement,
    rename: Statement,
    read: Statement,
}

impl Statements {
    /// Prepares the statements on `client`'s connection.
    pub(super) async fn prepare(client: &Client) -> Result<Statements, StoreError> {
        Ok(Statements {
            // The slot's old message is `retain` numbers older and leaves the window now.
            // (The hub hands messages over in order; the condition only guards against an
            // older one ever replacing a newer.) No raising of `rooms.next_seq` either: the
            // room's newest message already says what comes next (see `read_all`).
            // The archive keeps it too, and lets go of what is numbered below `$7`, the
            // floor the retention setting keeps (1 to keep everything): the statement
            // answers with the ids of the files those messages carried (each the file's
            // only carrier).
            message: client
                .prepare(concat!(
                    "WITH room AS ( \
                         INSERT INTO rooms (key, room, channel, next_seq) \
                         VALUES ($1, $2, NULL, 1) ON CONFLICT (key) DO NOTHING), \
                     archived AS ( \
                         INSERT INTO archive (room_key, seq, id, body) \
                         VALUES ($1, $5, $4, $6) ON CONFLICT DO NOTHING), \
                     ring AS ( \
                         INSERT INTO recent_messages (room_key, slot, id, seq, body) \
                         VALUES ($1, $3, $4, $5, $6) \
                         ON CONFLICT (room_key, slot) DO UPDATE \
                         SET id = excluded.id, seq = excluded.seq, body = excluded.body \
                         WHERE excluded.seq > recent_messages.seq), \
                     trimmed AS ( \
                         DELETE FROM archive WHERE room_key = $1 AND seq < $7 \
                         RETURNING ",
                    file_of!(),
                    " AS file) \
                     SELECT file FROM trimmed WHERE file IS NOT NULL"
                ))
                .await
                .map_err(failed)?,
            // The deleted message may be the room's newest; its number must never come
            // back, so the room row remembers the number after it. It leaves the archive
            // too, found by the number the ring says it had.
            delete: client
                .prepare(
                    "WITH gone AS ( \
                         DELETE FROM recent_messages WHERE room_key = $1 AND id = $2 \
                         RETURNING seq), \
                     archived AS ( \
                         DELETE FROM archive WHERE room_key = $1 AND id = $2 \
                         AND seq IN (SELECT seq FROM gone)) \
                     UPDATE rooms \
                     SET next_seq = GREATEST(next_seq, (SELECT MAX(seq) + 1 FROM gone)) \
                     WHERE key = $1 AND EXISTS (SELECT 1 FROM gone)",
                )
                .await
                .map_err(failed)?,
            // Only the text and its stamp change, in the ring and the archive alike (the
            // word index is on an expression of the row, so it follows).
            edit: client
                .prepare(
                    "WITH ring AS ( \
                         UPDATE recent_messages SET body = $4 WHERE room_key = $1 AND id = $3) \
                     UPDATE archive SET body = $4 WHERE room_key = $1 AND seq = $2 AND id = $3",
                )
                .await
                .map_err(failed)?,
            channel: client
                .prepare("INSERT INTO rooms (key, room, channel, next_seq) VALUES ($1, $2, $3, 1)")
                .await
                .map_err(failed)?,
            user: client
                .prepare("INSERT INTO users (id, name, token_hash) VALUES ($1, $2, $3)")
                .await
                .map_err(failed)?,
            rename: client
                .prepare("UPDATE users SET name = $2 WHERE id = $1")
                .await
                .map_err(failed)?,
            read: client.prepare(UPSERT_READ).await.map_err(failed)?,
        })
    }
}

/// Applies one change inside a transaction, in one statement (one round trip). The files
/// of messages a new message trims from the archive (retention no longer keeps them) are
/// added to `released`, to be deleted once the transaction is committed.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    statements: &Statements,
    change: &Change,
    retain: usize,
    retention: Retention,
    released: &mut Vec<FileId>,
) -> Result<(), StoreError> {
    match change {
        Change::Message(message) => {
            let room = serde_json::to_string(&message.room).map_err(failed)?;
            let body = serde_json::to_string(message).map_err(failed)?;
            let trimmed = tx
                .query(
                    &statements.message,
                    &[
                        &room_key(&message.room),
                        &room,
                        &slot(message.seq, retain),
                        &(message.id.0 as i64),
                        &(message.seq as i64),
                        &body,
                        &(retention.floor(message.seq) as i64),
                    ],
                )
                .await
                .map_err(failed)?;
            for row in trimmed {
                let file: String = row.try_get(0).map_err(failed)?;
                released.extend(FileId::parse(&file).ok());
            }
            Ok(0)
        }
        Change::Delete(room, id) => {
            tx.execute(&statements.delete, &[&room_key(room), &(id.0 as i64)])
                .await
        }
        Change::Edit(message) => {
            let body = serde_json::to_string(message).map_err(failed)?;
            tx.execute(
                &statements.edit,
                &[
                    &room_key(&message.room),
                    &(message.seq as i64),
                    &(message.id.0 as i64),
                    &body,
                ],
            )
            .await
        }
        Change::Channel(channel) => {
            let room = Room::Channel(channel.name.clone());
            let room_json = serde_json::to_string(&room).map_err(failed)?;
            let channel_json = serde_json::to_string(channel).map_err(failed)?;
            tx.execute(
                &statements.channel,
                &[&room_key(&room), &room_json, &channel_json],
            )
            .await
        }
        Change::User(user, token_hash) => {
            tx.execute(
                &statements.user,
                &[&(user.id.0 as i64), &user.name.as_str(), &&token_hash[..]],
            )
            .await
        }
        Change::Rename(user) => {
            tx.execute(
                &statements.rename,
                &[&(user.id.0 as i64), &user.name.as_str()],
            )
            .await
        }
        Change::Read(user, room, seq) => {
            tx.execute(
                &statements.read,
                &[&(user.0 as i64), &room_key(room), &(*seq as i64)],
            )
            .await
        }
        // Answered by the writer once its batch is committed.
        Change::Barrier | Change::Ping => Ok(0),
    }
    .map(|_| ())
    .map_err(failed)
}
