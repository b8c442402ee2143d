//! Cluster mode's rows and transactions in PostgreSQL: the schema it adds to the
//! single-instance one, the start-up settling, and one function per kind of commit.
//!
//! What the cluster adds to the single-instance rows ([`crate::chat::postgres`]):
//! - `rooms.next_seq` is the truth (raised by every post, in the transaction that takes the
//!   room row's lock), `rooms.last_at` keeps a room's timestamps from going backwards, and
//!   `rooms.deletions` counts deletions so a lost deletion event is noticed;
//! - `users.look` and `rooms.look` hold each name's look-alike key under a unique index, so
//!   two instances racing for one name cannot both win;
//! - the sequences `user_ids` and `message_ids`, and the `posted` table, which maps an
//!   author's `client_ref` to the message it posted (a resent post is not stored twice);
//! - `meta.directory` counts directory changes (users, names, channels), one by one, so an
//!   instance can tell it missed one;
//! - posts and deletions keep the `archive` table (older messages, by the retention setting)
//!   as the single-instance store does, in the same transaction as the ring; a post that
//!   trims the archive deletes the bytes of the files the trimmed messages carried in that
//!   transaction too;
//! - the `files` table holds attachments' bytes, one row per upload ([`super::files`]),
//!   stored uncompressed (`STORAGE EXTERNAL`, set once) so a download reads it piece by
//!   piece: most uploads are images, compressed already.

use crate::chat::model::{
    ChannelInfo, ChatError, DisplayName, Emoji, Message, MessageId, Room, Timestamp, UserId,
    UserInfo,
};
use crate::chat::postgres::rows::{meta, read_rows, read_users, set_meta, settle_epoch};
use crate::chat::postgres::{failed, file_of, room_key, slot};
use crate::chat::store::{Loaded, Retention, StoreError, TokenHash};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

/// Taken (for the transaction) while the schema is settled, so instances starting together
/// do not race to create it.
const SCHEMA_LOCK: i64 = 0x0066_6c61_636c;

const CLUSTER_SCHEMA: &str = "
ALTER TABLE users ADD COLUMN IF NOT EXISTS look TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS users_look ON users (look);
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS look TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS rooms_look ON rooms (look);
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS deletions BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS last_at BIGINT NOT NULL DEFAULT 0;
CREATE SEQUENCE IF NOT EXISTS user_ids;
CREATE SEQUENCE IF NOT EXISTS message_ids;
CREATE TABLE IF NOT EXISTS posted (
    user_id BIGINT NOT NULL,
    client_ref TEXT NOT NULL,
    room_key TEXT NOT NULL,
    id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, client_ref)
);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE files ADD COLUMN IF NOT EXISTS room_key TEXT;
DO $$ BEGIN
    IF (SELECT attstorage FROM pg_attribute
        WHERE attrelid = 'files'::regclass AND attname = 'bytes') <> 'e' THEN
        ALTER TABLE files ALTER COLUMN bytes SET STORAGE EXTERNAL;
    END IF;
END $$;
INSERT INTO meta (key, value) VALUES ('directory', '0') ON CONFLICT (key) DO NOTHING;
";

/// Settles the database for cluster mode and reads everything back.
///
/// The epoch: a database last written by a single instance gets that store's rule once (a
/// new epoch unless it stopped cleanly), and is marked as a cluster's; from then on the
/// epoch is kept, whatever happens to instances.
pub(super) async fn settle_and_load(
    client: &mut Client,
    retain: usize,
    retention: Retention,
) -> Result<Loaded, StoreError> {
    crate::chat::postgres::rows::create_schema(client).await?;
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(failed)?;
    tx.batch_execute(CLUSTER_SCHEMA).await.map_err(failed)?;
    let epoch = if meta(&tx, "mode").await?.as_deref() == Some("cluster") {
        meta(&tx, "epoch")
            .await?
            .and_then(|e| e.parse::<u64>().ok())
            .ok_or_else(|| StoreError("the cluster's epoch is missing from meta".into()))?
    } else {
        let epoch = settle_epoch(&tx).await?;
        set_meta(&tx, "mode", "cluster").await?;
        // A single instance raised `next_seq` only on deletions (its newest message said
        // what came next); here the row is the truth.
        tx.batch_execute(
            "UPDATE rooms AS r SET next_seq = GREATEST(r.next_seq, \
                 (SELECT MAX(m.seq) + 1 FROM recent_messages AS m WHERE m.room_key = r.key)) \
             WHERE EXISTS (SELECT 1 FROM recent_messages AS m WHERE m.room_key = r.key)",
        )
        .await
        .map_err(failed)?;
        epoch
    };
    tx.batch_execute(
        "SELECT setval('user_ids', GREATEST((SELECT COALESCE(MAX(id), 0) FROM users), \
             (SELECT last_value FROM user_ids), 1)); \
         SELECT setval('message_ids', GREATEST( \
             (SELECT COALESCE(MAX(id), 0) FROM recent_messages), \
             (SELECT COALESCE(MAX(id), 0) FROM posted), \
             (SELECT last_value FROM message_ids), 1));",
    )
    .await
    .map_err(failed)?;
    crate::chat::postgres::rows::settle_ring_in(&tx, retain).await?;
    crate::chat::postgres::rows::settle_archive_in(&tx, retain, retention.at_least(retain)).await?;
    let (users, rooms) = read_rows(&tx).await?;
    fill_looks(&tx, &users, &rooms).await?;
    let reads = crate::chat::postgres::rows::read_positions(&tx).await?;
    tx.commit().await.map_err(failed)?;
    Ok(Loaded {
        epoch: Some(epoch),
        users,
        rooms,
        reads,
    })
}

/// Gives the names written by a single instance their look-alike keys. Two stored names
/// that look alike (allowed before the rule) keep loading; the second keeps no key.
async fn fill_looks(
    tx: &Transaction<'_>,
    users: &[(UserInfo, TokenHash)],
    rooms: &[crate::chat::store::StoredRoom],
) -> Result<(), StoreError> {
    let missing = tx
        .query_one(
            "SELECT (SELECT COUNT(*) FROM users WHERE look IS NULL) \
                  + (SELECT COUNT(*) FROM rooms WHERE look IS NULL AND channel IS NOT NULL)",
            &[],
        )
        .await
        .map_err(failed)?;
    let missing: i64 = missing.try_get(0).map_err(failed)?;
    if missing == 0 {
        return Ok(());
    }
    for (user, _) in users {
        let look = user.name.look_alike();
        tx.execute(
            "UPDATE users SET look = $2 WHERE id = $1 AND look IS NULL \
             AND NOT EXISTS (SELECT 1 FROM users WHERE look = $2)",
            &[&(user.id.0 as i64), &look.as_str()],
        )
        .await
        .map_err(failed)?;
    }
    for room in rooms {
        if let Some(channel) = &room.channel {
            let look = channel.name.look_alike();
            tx.execute(
                "UPDATE rooms SET look = $2 WHERE key = $1 AND look IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM rooms WHERE look = $2)",
                &[&room_key(&room.room), &look.as_str()],
            )
            .await
            .map_err(failed)?;
        }
    }
    Ok(())
}

/// A commit that failed: either the database refused the change (a name taken), which is
/// the requester's answer, or it could not be reached, which is an outage.
pub(super) enum Refused {
    Chat(ChatError),
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

fn unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Raises the directory count, in the transaction that changes the directory; the new
/// count goes out with the change.
async fn bump_directory(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let row = tx
        .query_one(
            "UPDATE meta SET value = (value::BIGINT + 1)::TEXT WHERE key = 'directory' \
             RETURNING value::BIGINT",
            &[],
        )
        .await
        .map_err(failed)?;
    let value: i64 = row.try_get(0).map_err(failed)?;
    Ok(value as u64)
}

/// The cluster's epoch now.
pub(super) async fn epoch(client: &Client) -> Result<u64, StoreError> {
    let row = client
        .query_one("SELECT value FROM meta WHERE key = 'epoch'", &[])
        .await
        .map_err(failed)?;
    let value: String = row.try_get(0).map_err(failed)?;
    value
        .parse()
        .map_err(|_| StoreError(format!("the epoch in meta is not a number: {value}")))
}

/// Starts a new epoch, unless another instance already did (the epoch is no longer `old`).
pub(super) async fn new_epoch(client: &Client, old: u64) -> Result<(), StoreError> {
    let new = (Timestamp::now().millis().max(1) as u64).max(old + 1);
    client
        .execute(
            "UPDATE meta SET value = $2 WHERE key = 'epoch' AND value = $1",
            &[&old.to_string(), &new.to_string()],
        )
        .await
        .map_err(failed)?;
    Ok(())
}

/// The directory count now.
pub(super) async fn directory_count(
    client: &impl tokio_postgres::GenericClient,
) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "SELECT value::BIGINT FROM meta WHERE key = 'directory'",
            &[],
        )
        .await
        .map_err(failed)?;
    let value: i64 = row.try_get(0).map_err(failed)?;
    Ok(value as u64)
}

/// Registers a user; the database assigns the id. Returns the user and the directory count.
pub(super) async fn register(
    client: &mut Client,
    name: &DisplayName,
    token_hash: &TokenHash,
    max_users: usize,
) -> Result<(UserInfo, u64), Refused> {
    let tx = client.transaction().await.map_err(failed)?;
    let count: i64 = tx
        .query_one("SELECT COUNT(*) FROM users", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(failed)?;
    if count as usize >= max_users {
        return Err(Refused::Chat(ChatError::TooManyUsers { max: max_users }));
    }
    let look = name.look_alike();
    let inserted = tx
        .query_one(
            "INSERT INTO users (id, name, token_hash, look) \
             VALUES (nextval('user_ids'), $1, $2, $3) RETURNING id",
            &[&name.as_str(), &&token_hash[..], &look.as_str()],
        )
        .await;
    let id: i64 = match inserted {
        Ok(row) => row.try_get(0).map_err(failed)?,
        Err(e) if unique_violation(&e) => {
            drop(tx);
            return Err(Refused::Chat(ChatError::DisplayNameTaken(
                holder_of(client, "users", look.as_str())
                    .await?
                    .unwrap_or_else(|| name.to_string()),
            )));
        }
        Err(e) => return Err(failed(e).into()),
    };
    let directory = bump_directory(&tx).await?;
    tx.commit().await.map_err(failed)?;
    let user = UserInfo {
        id: UserId(id as u64),
        name: name.clone(),
    };
    Ok((user, directory))
}

/// The name that holds a look-alike key, as its holder spells it.
async fn holder_of(client: &Client, table: &str, look: &str) -> Result<Option<String>, StoreError> {
    let query = match table {
        "users" => "SELECT name FROM users WHERE look = $1",
        _ => "SELECT channel FROM rooms WHERE look = $1",
    };
    let row = client.query_opt(query, &[&look]).await.map_err(failed)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let text: Option<String> = row.try_get(0).map_err(failed)?;
    Ok(text.map(|text| match table {
        "users" => text,
        _ => serde_json::from_str::<ChannelInfo>(&text)
            .map(|c| c.name.to_string())
            .unwrap_or(text),
    }))
}

/// Gives a user a new name. Returns the directory count.
pub(super) async fn rename(client: &mut Client, user: &UserInfo) -> Result<u64, Refused> {
    let tx = client.transaction().await.map_err(failed)?;
    let look = user.name.look_alike();
    let updated = tx
        .execute(
            "UPDATE users SET name = $2, look = $3 WHERE id = $1",
            &[&(user.id.0 as i64), &user.name.as_str(), &look.as_str()],
        )
        .await;
    match updated {
        Ok(_) => {}
        Err(e) if unique_violation(&e) => {
            drop(tx);
            return Err(Refused::Chat(ChatError::DisplayNameTaken(
                holder_of(client, "users", look.as_str())
                    .await?
                    .unwrap_or_else(|| user.name.to_string()),
            )));
        }
        Err(e) => return Err(failed(e).into()),
    }
    let directory = bump_directory(&tx).await?;
    tx.commit().await.map_err(failed)?;
    Ok(directory)
}

/// Creates a channel. Returns the directory count.
pub(super) async fn create_channel(
    client: &mut Client,
    channel: &ChannelInfo,
    max_channels: usize,
) -> Result<u64, Refused> {
    let tx = client.transaction().await.map_err(failed)?;
    let count: i64 = tx
        .query_one("SELECT COUNT(*) FROM rooms WHERE channel IS NOT NULL", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(failed)?;
    if count as usize >= max_channels {
        return Err(Refused::Chat(ChatError::TooManyChannels {
            max: max_channels,
        }));
    }
    let room = Room::Channel(channel.name.clone());
    let room_json = serde_json::to_string(&room).map_err(failed)?;
    let channel_json = serde_json::to_string(channel).map_err(failed)?;
    let look = channel.name.look_alike();
    let inserted = tx
        .execute(
            "INSERT INTO rooms (key, room, channel, next_seq, look) VALUES ($1, $2, $3, 1, $4)",
            &[&room_key(&room), &room_json, &channel_json, &look.as_str()],
        )
        .await;
    match inserted {
        Ok(_) => {}
        Err(e) if unique_violation(&e) => {
            drop(tx);
            let holder = holder_of(client, "rooms", look.as_str()).await?;
            return Err(Refused::Chat(ChatError::ChannelExists(
                holder.unwrap_or_else(|| channel.name.to_string()),
            )));
        }
        Err(e) => return Err(failed(e).into()),
    }
    let directory = bump_directory(&tx).await?;
    tx.commit().await.map_err(failed)?;
    Ok(directory)
}

/// Replaces a message's text and `edited_at` in the ring and the archive (keeping the
/// reactions stored with it, which other instances may have changed meanwhile), counting it
/// in `rooms.deletions` like a deletion, so an instance that missed it notices and reads the
/// room's messages again; true if it was there to edit.
pub(super) async fn edit(client: &mut Client, message: &Message) -> Result<bool, StoreError> {
    rewrite(client, &message.room, message.id, |stored| {
        stored.body = message.body.clone();
        stored.edited_at = message.edited_at;
        Ok(true)
    })
    .await
    .map(|done| done.is_some())
    .map_err(|refused| match refused {
        Refused::Store(e) => e,
        Refused::Chat(e) => StoreError(e.to_string()),
    })
}

/// Gives (`on`) or takes away `user`'s reaction `emoji` on a message of the ring, within
/// the limits, counting a change in `rooms.deletions` as an edit is counted; true if that
/// changed the message, false if not (given twice, taken away when absent).
pub(super) async fn react(
    client: &mut Client,
    room: &Room,
    id: MessageId,
    emoji: Emoji,
    user: &UserInfo,
    on: bool,
) -> Result<bool, Refused> {
    let done = rewrite(client, room, id, |stored| {
        if on {
            stored.may_react(emoji, user.id).map_err(Refused::Chat)?;
        }
        Ok(stored.react(emoji, user, on))
    })
    .await?;
    // Deleted (or gone from the ring) since the proposer looked.
    done.ok_or(Refused::Chat(ChatError::NoSuchMessage))
}

/// Reads a message of the ring under a row lock, lets `change` change it (it says whether it
/// did, or refuses), and writes it back to the ring and the archive, counting the change in
/// `rooms.deletions`, all in one transaction. Says whether it changed the message, or
/// `None` if the ring does not hold it.
async fn rewrite(
    client: &mut Client,
    room: &Room,
    id: MessageId,
    change: impl FnOnce(&mut Message) -> Result<bool, Refused>,
) -> Result<Option<bool>, Refused> {
    let key = room_key(room);
    let tx = client.transaction().await.map_err(failed)?;
    let Some(row) = tx
        .query_opt(
            "SELECT seq, body FROM recent_messages WHERE room_key = $1 AND id = $2 FOR UPDATE",
            &[&key, &(id.0 as i64)],
        )
        .await
        .map_err(failed)?
    else {
        return Ok(None);
    };
    let seq: i64 = row.try_get(0).map_err(failed)?;
    let body: String = row.try_get(1).map_err(failed)?;
    let mut message: Message = serde_json::from_str(&body).map_err(failed)?;
    if !change(&mut message)? {
        return Ok(Some(false));
    }
    let body = serde_json::to_string(&message).map_err(failed)?;
    tx.execute(
        "WITH ring AS ( \
             UPDATE recent_messages SET body = $4 WHERE room_key = $1 AND id = $3), \
         archived AS ( \
             UPDATE archive SET body = $4 WHERE room_key = $1 AND seq = $2 AND id = $3) \
         UPDATE rooms SET deletions = deletions + 1 WHERE key = $1",
        &[&key, &seq, &(id.0 as i64), &body],
    )
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(Some(true))
}

/// Deletes a message; true if it was there to delete.
pub(super) async fn delete(
    client: &mut Client,
    room: &Room,
    id: MessageId,
) -> Result<bool, StoreError> {
    let row = client
        .query_opt(
            "WITH gone AS ( \
                 DELETE FROM recent_messages WHERE room_key = $1 AND id = $2 RETURNING seq), \
             archived AS ( \
                 DELETE FROM archive WHERE room_key = $1 AND id = $2 \
                 AND seq IN (SELECT seq FROM gone)) \
             UPDATE rooms SET deletions = deletions + 1 \
             WHERE key = $1 AND EXISTS (SELECT 1 FROM gone) RETURNING deletions",
            &[&room_key(room), &(id.0 as i64)],
        )
        .await
        .map_err(failed)?;
    Ok(row.is_some())
}

/// A batch's statements, prepared once per connection by [`Prepared`] (a statement given
/// as text is parsed and planned again on every use, a round trip of its own).
const ADD_DIRECT_ROOM: &str = "INSERT INTO rooms (key, room, channel, next_seq) \
     VALUES ($1, $2, NULL, 1) ON CONFLICT (key) DO NOTHING";
/// Takes the room row's lock and reserves the batch's numbers.
const RESERVE_NUMBERS: &str = "UPDATE rooms \
     SET next_seq = next_seq + $2, last_at = GREATEST(last_at, $3) \
     WHERE key = $1 RETURNING next_seq - $2, last_at";
const MESSAGE_IDS: &str = "SELECT nextval('message_ids') FROM generate_series(1, $1::BIGINT)";
const REMEMBER_REFERENCES: &str = "INSERT INTO posted (user_id, client_ref, room_key, id, seq) \
     SELECT u, r, $3, i, s FROM UNNEST($1::BIGINT[], $2::TEXT[], $4::BIGINT[], \
         $5::BIGINT[]) AS t(u, r, i, s) \
     ON CONFLICT (user_id, client_ref) DO NOTHING RETURNING id";
const WRITE_RING: &str = "INSERT INTO recent_messages (room_key, slot, id, seq, body) \
     SELECT $1, s, i, q, b FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
         $5::TEXT[]) AS t(s, i, q, b) \
     ON CONFLICT (room_key, slot) DO UPDATE \
     SET id = excluded.id, seq = excluded.seq, body = excluded.body";
/// Archives the batch and trims the room below `$5`; the files the trimmed messages carried
/// (each its file's only carrier) lose their bytes in the same transaction.
const WRITE_ARCHIVE: &str = concat!(
    "WITH archived AS ( \
         INSERT INTO archive (room_key, seq, id, body) \
         SELECT $1, q, i, b FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[]) AS t(q, i, b) \
         ON CONFLICT DO NOTHING), \
     trimmed AS ( \
         DELETE FROM archive WHERE room_key = $1 AND seq < $5 RETURNING ",
    file_of!(),
    " AS file) \
     DELETE FROM files WHERE id IN (SELECT file FROM trimmed WHERE file IS NOT NULL)"
);

/// The statements prepared on one connection, by their text. A new connection needs a new
/// one (statements belong to the connection that prepared them).
#[derive(Default)]
pub(super) struct Prepared(std::collections::HashMap<&'static str, tokio_postgres::Statement>);

impl Prepared {
    async fn get(
        &mut self,
        tx: &Transaction<'_>,
        sql: &'static str,
    ) -> Result<tokio_postgres::Statement, StoreError> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = tx.prepare(sql).await.map_err(failed)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// One post of a batch: the message as proposed, and its author's reference for it.
pub(super) struct Post {
    pub(super) message: Message,
    pub(super) client_ref: Option<String>,
}

/// What became of one post of a batch.
pub(super) enum Posted {
    /// Stored now, numbered and stamped.
    New(Message),
    /// Its author had posted it already (same `client_ref`): the first one's id and number.
    Again(Message),
}

/// Commits a batch of posts to one room in one transaction: takes the room row's lock and
/// raises its `next_seq` by the batch's size in one statement, numbers and stamps the
/// messages in order (never earlier than the room's last), writes the ring slots and the
/// authors' references. A post whose reference its author already used is not stored: the
/// batch is written again without it, so no number is left unused.
pub(super) async fn post_batch(
    client: &mut Client,
    prepared: &mut Prepared,
    room: &Room,
    posts: Vec<Post>,
    retain: usize,
    retention: Retention,
) -> Result<Vec<Posted>, Refused> {
    let retention = retention.at_least(retain.max(1));
    let key = room_key(room);
    // A reference repeated within the batch is answered as its first use.
    let copy_of: Vec<Option<usize>> = (0..posts.len())
        .map(|i| {
            let client_ref = posts[i].client_ref.as_ref()?;
            (0..i).find(|j| {
                posts[*j].client_ref.as_ref() == Some(client_ref)
                    && posts[*j].message.author.id == posts[i].message.author.id
            })
        })
        .collect();
    let mut again: Vec<Option<Message>> = vec![None; posts.len()];
    // Each retry takes out at least one post, or a resend that raced with its first post's
    // own transaction (found on the next try).
    for _ in 0..=posts.len() + 1 {
        let fresh: Vec<usize> = (0..posts.len())
            .filter(|i| again[*i].is_none() && copy_of[*i].is_none())
            .collect();
        let stored = if fresh.is_empty() {
            Vec::new()
        } else {
            match try_post_batch(
                client, prepared, room, &key, &posts, &fresh, retain, retention,
            )
            .await?
            {
                Ok(stored) => stored,
                Err(repeated) => {
                    for (i, first) in repeated {
                        again[i] = Some(first);
                    }
                    continue;
                }
            }
        };
        let mut outcome: Vec<Option<Posted>> = (0..posts.len()).map(|_| None).collect();
        for (i, message) in fresh.into_iter().zip(stored) {
            outcome[i] = Some(Posted::New(message));
        }
        for (i, first) in again.iter().enumerate() {
            if let Some(first) = first {
                outcome[i] = Some(Posted::Again(first.clone()));
            }
        }
        for (i, j) in copy_of.iter().enumerate() {
            if let Some(j) = j {
                let first = match &outcome[*j] {
                    Some(Posted::New(m)) | Some(Posted::Again(m)) => m.clone(),
                    None => continue,
                };
                outcome[i] = Some(Posted::Again(first));
            }
        }
        return Ok(outcome.into_iter().flatten().collect());
    }
    Err(Refused::Store(StoreError(
        "a resent post kept racing with its first".into(),
    )))
}

/// One try of [`post_batch`] for the posts at `fresh`: the stored messages, or (rolled back)
/// the posts whose reference was used before, with the message each first posted.
#[allow(clippy::too_many_arguments)]
async fn try_post_batch(
    client: &mut Client,
    prepared: &mut Prepared,
    room: &Room,
    key: &str,
    posts: &[Post],
    fresh: &[usize],
    retain: usize,
    retention: Retention,
) -> Result<Result<Vec<Message>, Vec<(usize, Message)>>, Refused> {
    let n = fresh.len() as i64;
    let now = Timestamp::now().millis();
    let tx = client.transaction().await.map_err(failed)?;
    if let Room::Direct(_) = room {
        let room_json = serde_json::to_string(room).map_err(failed)?;
        tx.execute(
            &prepared.get(&tx, ADD_DIRECT_ROOM).await?,
            &[&key, &room_json],
        )
        .await
        .map_err(failed)?;
    }
    let reserved = tx
        .query_opt(
            &prepared.get(&tx, RESERVE_NUMBERS).await?,
            &[&key, &n, &now],
        )
        .await
        .map_err(failed)?;
    let Some(reserved) = reserved else {
        return Err(Refused::Chat(ChatError::NoSuchChannel(
            room.channel().map(ToString::to_string).unwrap_or_default(),
        )));
    };
    let first_seq: i64 = reserved.try_get(0).map_err(failed)?;
    let at: i64 = reserved.try_get(1).map_err(failed)?;
    let ids: Vec<i64> = tx
        .query(&prepared.get(&tx, MESSAGE_IDS).await?, &[&n])
        .await
        .map_err(failed)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    let mut stored = Vec::with_capacity(fresh.len());
    for (k, i) in fresh.iter().enumerate() {
        let mut message = posts[*i].message.clone();
        message.id = MessageId(ids[k] as u64);
        message.seq = (first_seq + k as i64) as u64;
        message.sent_at = Timestamp::from_millis(at);
        stored.push(message);
    }
    // The authors' references: a pair already there means a resend.
    let mut users = Vec::new();
    let mut refs = Vec::new();
    let mut ref_ids = Vec::new();
    let mut ref_seqs = Vec::new();
    for (k, i) in fresh.iter().enumerate() {
        if let Some(client_ref) = &posts[*i].client_ref {
            users.push(stored[k].author.id.0 as i64);
            refs.push(client_ref.clone());
            ref_ids.push(stored[k].id.0 as i64);
            ref_seqs.push(stored[k].seq as i64);
        }
    }
    if !refs.is_empty() {
        let inserted = tx
            .query(
                &prepared.get(&tx, REMEMBER_REFERENCES).await?,
                &[&users, &refs, &key, &ref_ids, &ref_seqs],
            )
            .await
            .map_err(failed)?;
        if inserted.len() < refs.len() {
            let kept: std::collections::HashSet<i64> = inserted
                .iter()
                .map(|r| r.try_get::<_, i64>(0))
                .collect::<Result<_, _>>()
                .map_err(failed)?;
            tx.rollback().await.map_err(failed)?;
            let mut repeated = Vec::new();
            for (k, i) in fresh.iter().enumerate() {
                let Some(client_ref) = &posts[*i].client_ref else {
                    continue;
                };
                if kept.contains(&(stored[k].id.0 as i64)) {
                    continue;
                }
                let first = client
                    .query_opt(
                        "SELECT id, seq FROM posted WHERE user_id = $1 AND client_ref = $2",
                        &[&(stored[k].author.id.0 as i64), client_ref],
                    )
                    .await
                    .map_err(failed)?;
                // No row: the first post's transaction rolled back meanwhile; try again.
                let Some(row) = first else { continue };
                let mut message = stored[k].clone();
                message.id = MessageId(row.try_get::<_, i64>(0).map_err(failed)? as u64);
                message.seq = row.try_get::<_, i64>(1).map_err(failed)? as u64;
                repeated.push((*i, message));
            }
            return Ok(Err(repeated));
        }
    }
    // The ring: only the newest `retain` of the batch (older ones would be overwritten).
    let skip = stored.len().saturating_sub(retain.max(1));
    let mut slots = Vec::new();
    let mut ids = Vec::new();
    let mut seqs = Vec::new();
    let mut bodies = Vec::new();
    for message in &stored[skip..] {
        slots.push(slot(message.seq, retain));
        ids.push(message.id.0 as i64);
        seqs.push(message.seq as i64);
        bodies.push(serde_json::to_string(message).map_err(failed)?);
    }
    tx.execute(
        &prepared.get(&tx, WRITE_RING).await?,
        &[&key, &slots, &ids, &seqs, &bodies],
    )
    .await
    .map_err(failed)?;
    // The archive keeps the whole batch, and lets go of what the retention no longer keeps
    // now that the batch's last is the room's newest (invariants: [`crate::chat::sqlite`]).
    let mut ids = Vec::with_capacity(stored.len());
    let mut seqs = Vec::with_capacity(stored.len());
    let mut bodies = Vec::with_capacity(stored.len());
    for message in &stored {
        ids.push(message.id.0 as i64);
        seqs.push(message.seq as i64);
        bodies.push(serde_json::to_string(message).map_err(failed)?);
    }
    let floor = stored.last().map_or(1, |m| retention.floor(m.seq)) as i64;
    tx.execute(
        &prepared.get(&tx, WRITE_ARCHIVE).await?,
        &[&key, &seqs, &ids, &bodies, &floor],
    )
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(Ok(stored))
}

/// Where a room stands in the database.
pub(super) struct RoomRow {
    pub(super) room: Room,
    pub(super) channel: Option<ChannelInfo>,
    pub(super) next_seq: u64,
    pub(super) deletions: u64,
}

/// Every room's position.
pub(super) async fn rooms(client: &Client) -> Result<Vec<RoomRow>, StoreError> {
    let mut list = Vec::new();
    for row in client
        .query("SELECT room, channel, next_seq, deletions FROM rooms", &[])
        .await
        .map_err(failed)?
    {
        let room: String = row.try_get(0).map_err(failed)?;
        let channel: Option<String> = row.try_get(1).map_err(failed)?;
        let next_seq: i64 = row.try_get(2).map_err(failed)?;
        let deletions: i64 = row.try_get(3).map_err(failed)?;
        list.push(RoomRow {
            room: serde_json::from_str(&room).map_err(failed)?,
            channel: channel
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(failed)?,
            next_seq: next_seq.max(1) as u64,
            deletions: deletions as u64,
        });
    }
    Ok(list)
}

/// The deletions a room has seen, if the database has the room.
pub(super) async fn deletions(client: &Client, room: &Room) -> Result<Option<u64>, StoreError> {
    let row = client
        .query_opt(
            "SELECT deletions FROM rooms WHERE key = $1",
            &[&room_key(room)],
        )
        .await
        .map_err(failed)?;
    row.map(|row| row.try_get::<_, i64>(0).map(|n| n.max(0) as u64))
        .transpose()
        .map_err(failed)
}

/// A room's next number, then the messages it holds from `from` up to (not including) it.
/// The number is read first, so every message below it is committed and visible to the read
/// that follows: a number below it that the read does not find is gone for good.
pub(super) async fn since(
    client: &Client,
    room: &Room,
    from: u64,
) -> Result<Option<(u64, Vec<Message>)>, StoreError> {
    let key = room_key(room);
    let Some(row) = client
        .query_opt("SELECT next_seq FROM rooms WHERE key = $1", &[&key])
        .await
        .map_err(failed)?
    else {
        return Ok(None);
    };
    let next_seq: i64 = row.try_get(0).map_err(failed)?;
    let mut messages = Vec::new();
    for row in client
        .query(
            "SELECT body FROM recent_messages WHERE room_key = $1 AND seq >= $2 AND seq < $3 \
             ORDER BY seq",
            &[&key, &(from as i64), &next_seq],
        )
        .await
        .map_err(failed)?
    {
        let body: String = row.try_get(0).map_err(failed)?;
        messages.push(serde_json::from_str(&body).map_err(failed)?);
    }
    Ok(Some((next_seq.max(1) as u64, messages)))
}

/// The ids a room's ring holds, each with when its text was last edited, and the first
/// number of its window as of that read (the newest held, less the ring's size): older
/// numbers may have left the ring for newer ones. (Read only when a room's count of
/// deletions and edits differs from an instance's: a lost event, so rarely.)
pub(super) async fn held_ids(
    client: &Client,
    room: &Room,
    retain: usize,
) -> Result<(HeldMessages, u64), StoreError> {
    let rows = client
        .query(
            "SELECT id, seq, body FROM recent_messages WHERE room_key = $1",
            &[&room_key(room)],
        )
        .await
        .map_err(failed)?;
    let mut held = HeldMessages::new();
    let mut newest = 0u64;
    for row in rows {
        let id: i64 = row.try_get(0).map_err(failed)?;
        let seq: i64 = row.try_get(1).map_err(failed)?;
        let body: String = row.try_get(2).map_err(failed)?;
        let message: Message = serde_json::from_str(&body).map_err(failed)?;
        held.insert(MessageId(id as u64), message);
        newest = newest.max(seq as u64);
    }
    Ok((held, (newest + 1).saturating_sub(retain as u64)))
}

/// The messages a room's ring holds, by id.
pub(super) type HeldMessages = std::collections::HashMap<MessageId, Message>;

/// The user a token hash belongs to, if any.
pub(super) async fn user_by_token(
    client: &Client,
    hash: &TokenHash,
) -> Result<Option<UserInfo>, StoreError> {
    let Some(row) = client
        .query_opt(
            "SELECT id, name FROM users WHERE token_hash = $1",
            &[&&hash[..]],
        )
        .await
        .map_err(failed)?
    else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0).map_err(failed)?;
    let name: String = row.try_get(1).map_err(failed)?;
    Ok(Some(UserInfo {
        id: UserId(id as u64),
        name: DisplayName::parse(&name).map_err(failed)?,
    }))
}

/// Every user (with token hash) and every channel: the directory, read again.
pub(super) async fn directory(
    client: &mut Client,
) -> Result<(u64, Vec<(UserInfo, TokenHash)>, Vec<ChannelInfo>), StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(failed)?;
    let count = directory_count(&tx).await?;
    let (users, rooms) = read_rows_light(&tx).await?;
    tx.commit().await.map_err(failed)?;
    Ok((count, users, rooms))
}

/// Users and channels, without messages.
async fn read_rows_light(
    tx: &Transaction<'_>,
) -> Result<(Vec<(UserInfo, TokenHash)>, Vec<ChannelInfo>), StoreError> {
    let users = read_users(tx).await?;
    let mut channels = Vec::new();
    for row in tx
        .query("SELECT channel FROM rooms WHERE channel IS NOT NULL", &[])
        .await
        .map_err(failed)?
    {
        let channel: String = row.try_get(0).map_err(failed)?;
        channels.push(serde_json::from_str(&channel).map_err(failed)?);
    }
    Ok((users, channels))
}

/// Forgets references older than a day: a client resends within seconds, not days.
pub(super) async fn forget_old_references(client: &Client) -> Result<u64, StoreError> {
    client
        .execute(
            "DELETE FROM posted WHERE at < now() - INTERVAL '1 day'",
            &[],
        )
        .await
        .map_err(failed)
}
