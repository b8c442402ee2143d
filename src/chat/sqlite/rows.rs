//! The file's rows: reading everything back at start-up, settling the message rings to
//! the configured size and the archive to the retention setting, applying one change inside
//! a batch's transaction, and reading the archive below a sequence number.

use super::*;

/// One value from the `meta` table, if set.
pub(super) fn meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(failed)
}

/// Makes the message rings `retain` (at least 1) slots wide. A file from before the rings (its messages in
/// a `messages` table), or one written with another ring size, has each room's window (the
/// newest `retain` numbers) moved into rings of the new size; an older message is dropped,
/// as it would have been had it been written with this size.
pub(super) fn settle_ring(conn: &mut Connection, retain: usize) -> Result<(), StoreError> {
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

/// Settles the archive (see the module documentation of [`super`] for its invariants): a
/// file from before it gets its rings copied in, each room's floor where its ring's window
/// began (`ring` numbers below the newest given out); then every room is trimmed to
/// `retention`, its floor raised to match.
pub(super) fn settle_archive(
    conn: &mut Connection,
    ring: usize,
    retention: Retention,
) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(failed)?;
    let has_floor = tx
        .prepare("SELECT 1 FROM pragma_table_info('rooms') WHERE name = 'kept_from'")
        .and_then(|mut s| s.exists([]))
        .map_err(failed)?;
    if !has_floor {
        tx.execute_batch("ALTER TABLE rooms ADD COLUMN kept_from INTEGER NOT NULL DEFAULT 1;")
            .map_err(failed)?;
    }
    // The newest number a room gave out: its row's, raised by deletions, or its newest
    // message's.
    const NEWEST: &str = "MAX(rooms.next_seq - 1, \
        COALESCE((SELECT MAX(seq) FROM archive WHERE room_key = rooms.key), 0))";
    if meta(&tx, "archive")?.is_none() {
        let copied = tx
            .execute(
                "INSERT OR IGNORE INTO archive (room_key, seq, id, body) \
                    SELECT room_key, seq, id, body FROM recent_messages",
                [],
            )
            .map_err(failed)?;
        tx.execute(
            &format!("UPDATE rooms SET kept_from = MAX(kept_from, {NEWEST} + 1 - ?1)"),
            params![ring as i64],
        )
        .map_err(failed)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('archive', '1')",
            [],
        )
        .map_err(failed)?;
        tracing::info!(copied, "started the message archive from the rings");
    }
    if let Retention::Newest(n) = retention {
        tx.execute(
            &format!("UPDATE rooms SET kept_from = MAX(kept_from, {NEWEST} + 1 - ?1)"),
            params![n as i64],
        )
        .map_err(failed)?;
    }
    // Room by room, each a range of the primary key: never a scan of the whole archive.
    let floors: Vec<(String, i64)> = tx
        .prepare("SELECT key, kept_from FROM rooms WHERE kept_from > 1")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(failed)?;
    let mut trimmed = 0;
    for (key, floor) in floors {
        trimmed += tx
            .execute(
                "DELETE FROM archive WHERE room_key = ?1 AND seq < ?2",
                params![key, floor],
            )
            .map_err(failed)?;
    }
    if trimmed > 0 {
        tracing::info!(
            trimmed,
            "trimmed the message archive to data.retain_messages"
        );
    }
    tx.commit().map_err(failed)
}

/// Up to `limit` messages of the room keyed `key` numbered below `before`, from the archive,
/// in one read transaction (so the floor and the messages agree).
pub(super) fn read_before(
    conn: &mut Connection,
    key: &str,
    before: u64,
    limit: usize,
    retention: Retention,
) -> Result<crate::chat::store::ArchivePage, StoreError> {
    let tx = conn.transaction().map_err(failed)?;
    let row = tx
        .prepare_cached(
            "SELECT kept_from, next_seq - 1, \
                COALESCE((SELECT MAX(seq) FROM archive WHERE room_key = ?1), 0) \
                FROM rooms WHERE key = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
        })
        .map_err(failed)?;
    let Some((kept_from, next_minus_one, newest_kept)) = row else {
        // No row: the room never had a message.
        return Ok(archive_page(Vec::new(), limit, 1));
    };
    let newest = next_minus_one.max(newest_kept).max(0) as u64;
    let floor = (kept_from.max(1) as u64).max(retention.floor(newest));
    let mut messages = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT body FROM archive WHERE room_key = ?1 AND seq < ?2 AND seq >= ?3 \
                    ORDER BY seq DESC LIMIT ?4",
            )
            .map_err(failed)?;
        let bodies = stmt
            .query_map(
                params![
                    key,
                    before.min(i64::MAX as u64) as i64,
                    floor as i64,
                    (limit + 1) as i64
                ],
                |r| r.get::<_, String>(0),
            )
            .map_err(failed)?;
        for body in bodies {
            messages.push(serde_json::from_str::<Message>(&body.map_err(failed)?).map_err(failed)?);
        }
    }
    tx.commit().map_err(failed)?;
    Ok(archive_page(messages, limit, floor))
}

/// The body of the archived message carrying the attachment `?1`.
pub(super) const CARRIER: &str = concat!(
    "SELECT body FROM archive WHERE ",
    file_of!(),
    " = ?1 LIMIT 1"
);

/// The archived message carrying the attachment `id`, if any: one read of the
/// `archive_files` index.
pub(super) fn carrier(conn: &Connection, id: &FileId) -> Result<Option<Message>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached(CARRIER)
        .and_then(|mut s| s.query_row(params![id.as_str()], |r| r.get(0)).optional())
        .map_err(failed)?;
    body.map(|body| serde_json::from_str(&body).map_err(failed))
        .transpose()
}

/// Which of `ids` an archived message carries: one read of the `archive_files` index each,
/// in one read transaction.
pub(super) fn carried(
    conn: &Connection,
    ids: Vec<FileId>,
) -> Result<std::collections::HashSet<FileId>, StoreError> {
    let tx = conn.unchecked_transaction().map_err(failed)?;
    let mut carried = std::collections::HashSet::new();
    {
        let mut stmt = tx.prepare_cached(CARRIER).map_err(failed)?;
        for id in ids {
            if stmt.exists(params![id.as_str()]).map_err(failed)? {
                carried.insert(id);
            }
        }
    }
    tx.commit().map_err(failed)?;
    Ok(carried)
}

/// Reads everything back, and settles the epoch: kept after a clean stop, new otherwise.
pub(super) fn read_all(conn: &mut Connection) -> Result<Loaded, StoreError> {
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
            let name = crate::chat::model::DisplayName::parse(&name).map_err(failed)?;
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
    let reads = read_positions(&tx)?;
    tx.commit().map_err(failed)?;
    Ok(Loaded {
        epoch: Some(epoch),
        users,
        rooms,
        reads,
    })
}

/// Every stored read position whose room has a row (a room gets one with its first message,
/// and nobody reads a room before that).
fn read_positions(tx: &Transaction<'_>) -> Result<Vec<(UserId, Room, u64)>, StoreError> {
    let mut stmt = tx
        .prepare(
            "SELECT p.user_id, r.room, p.seq FROM read_positions AS p \
             JOIN rooms AS r ON r.key = p.room_key",
        )
        .map_err(failed)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(failed)?;
    let mut reads = Vec::new();
    for row in rows {
        let (user, room, seq) = row.map_err(failed)?;
        let room: Room = serde_json::from_str(&room).map_err(failed)?;
        reads.push((UserId(user as u64), room, seq.max(0) as u64));
    }
    Ok(reads)
}

/// Applies one change inside the batch's transaction. Statements are cached: parsing the SQL
/// again for every message costs more than running it.
///
/// The files of messages a new message trims from the archive (retention no longer keeps
/// them) are added to `released`, to be deleted once the batch is committed.
pub(super) fn apply(
    tx: &Transaction<'_>,
    change: &Change,
    retain: usize,
    retention: Retention,
    released: &mut Vec<FileId>,
) -> Result<(), StoreError> {
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
            // The archive keeps it too, and lets go of what the retention no longer keeps
            // (the hub hands messages over in order, so this one is the room's newest).
            let archived = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO archive (room_key, seq, id, body) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| {
                    s.execute(params![key, message.seq as i64, message.id.0 as i64, body])
                })
                .map_err(failed)?;
            if archived > 0 {
                super::search::index(tx, &key, message)?;
            }
            if let Retention::Newest(_) = retention {
                // A file is attached to one message only: the trimmed message was its last
                // carrier.
                let trimmed: Vec<Option<String>> = tx
                    .prepare_cached(concat!(
                        "DELETE FROM archive WHERE room_key = ?1 AND seq < ?2 RETURNING ",
                        file_of!()
                    ))
                    .and_then(|mut s| {
                        let floor = retention.floor(message.seq) as i64;
                        let ids = s.query_map(params![key, floor], |r| r.get(0))?.collect();
                        ids
                    })
                    .map_err(failed)?;
                released.extend(
                    trimmed
                        .into_iter()
                        .flatten()
                        .filter_map(|id| FileId::parse(&id).ok()),
                );
            }
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
            // Gone from the archive too, found by its number (the ring, which holds every
            // message the hub can delete, says which).
            tx.prepare_cached(
                "DELETE FROM archive WHERE room_key = ?1 AND id = ?2 AND seq IN \
                    (SELECT seq FROM recent_messages WHERE room_key = ?1 AND id = ?2)",
            )
            .and_then(|mut s| s.execute(params![key, id.0 as i64]))
            .map_err(failed)?;
            tx.prepare_cached("DELETE FROM recent_messages WHERE room_key = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![key, id.0 as i64]))
                .map_err(failed)?;
        }
        Change::Edit(message) => {
            // Only the text and its stamp change; the ring holds every message the hub can
            // edit, and the archive keeps the same message under the same number.
            let key = room_key(&message.room);
            let body = serde_json::to_string(message).map_err(failed)?;
            tx.prepare_cached(
                "UPDATE recent_messages SET body = ?3 WHERE room_key = ?1 AND id = ?2",
            )
            .and_then(|mut s| s.execute(params![key, message.id.0 as i64, body]))
            .map_err(failed)?;
            tx.prepare_cached(
                "UPDATE archive SET body = ?4 WHERE room_key = ?1 AND seq = ?2 AND id = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![key, message.seq as i64, message.id.0 as i64, body])
            })
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
        Change::Read(user, room, seq) => {
            tx.prepare_cached(
                "INSERT INTO read_positions (user_id, room_key, seq) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id, room_key) DO UPDATE SET seq = excluded.seq",
            )
            .and_then(|mut s| s.execute(params![user.0 as i64, room_key(room), *seq as i64]))
            .map_err(failed)?;
        }
        // Answered by the writer once its batch is committed.
        Change::Barrier => {}
        // A write (to a row of its own), so it needs the database's write lock, as any change
        // would; a read-only transaction would commit even while the file is locked.
        Change::Ping => {
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('ping', '1')")
                .and_then(|mut s| s.execute([]))
                .map_err(failed)?;
        }
    }
    Ok(())
}
