//! The archive's full-text index in PostgreSQL (the single-instance store and cluster mode
//! share it) and the search through it.
//!
//! A GIN index over a `tsvector` of each archived message: its text's words (`simple`
//! configuration: lower-cased, nothing stemmed, chat is in any language) and who may read it
//! (`zpublic` for a channel, `zu{a} zu{b}` for the private conversation of users `a` and
//! `b`, as in the SQLite store). It is an expression index, so PostgreSQL keeps it in step
//! with every insert and delete of the archive in the same transaction, and a deleted message
//! is never found. The query is built by `plainto_tsquery` from the search's words (nothing
//! the user typed is read as query syntax), joined to the reader's own words, so the index
//! intersects words and readers.
//!
//! A search reads in two passes (measured in BENCHMARKS.md): first the newest
//! [`NEWEST_IDS`] ids walked downwards through a b-tree on `id` (a word in most messages fills
//! the page there, instead of the index listing and sorting all of its matches), then, if the
//! page is not full, everything older through the GIN index alone (ordered by `id + 0`, so
//! the planner cannot walk the whole b-tree for a word that is common but not the reader's).

use super::failed;
use crate::chat::model::Message;
use crate::chat::store::{ArchiveSearch, StoreError};
use tokio_postgres::{Client, Transaction};

/// The indexed vector of an archived message, as the index and the search both spell it
/// (they must agree for the index to be used).
const VECTOR: &str = "(to_tsvector('simple', body::json ->> 'body') || to_tsvector('simple', \
    CASE WHEN room_key LIKE 'd:%' THEN 'zu' || replace(substr(room_key, 3), ':', ' zu') \
    ELSE 'zpublic' END))";

/// How many of the newest ids the first pass walks.
const NEWEST_IDS: i64 = 5_000;

/// Creates the indexes if missing (on an existing archive, they are built from every row
/// once); inside the caller's transaction (under cluster mode's schema lock).
///
/// The word index has `fastupdate` off: with it on, inserts queue in a pending list that
/// the insert that fills it (4 MB) merges into the index, and that post waited tens of ms
/// (the paced 2,000 posts a second had an ack p99 of 57-129 ms on the PostgreSQL store and
/// 70-95 ms in cluster mode, against 2.4 and 6.3 ms before the index). Off, each insert
/// updates the index itself, a little each time.
pub(crate) async fn settle_index(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS archive_words ON archive USING GIN (({VECTOR})) \
             WITH (fastupdate = off); \
         ALTER INDEX archive_words SET (fastupdate = off); \
         CREATE INDEX IF NOT EXISTS archive_ids ON archive (id);"
    ))
    .await
    .map_err(failed)
}

/// The newest archived messages holding every word of the search, among channels and the
/// reader's own private conversations (the index's readers, and again by room key: `c:…`, or
/// `d:{a}:{b}` with the reader as `a` or `b`).
pub(crate) async fn search(
    client: &Client,
    search: &ArchiveSearch,
) -> Result<Vec<Message>, StoreError> {
    let reader = search.reader;
    let before = search
        .before
        .map_or(i64::MAX, |id| id.0.min(i64::MAX as u64) as i64);
    let newest: Option<i64> = client
        .query_one("SELECT MAX(id) FROM archive WHERE id < $1", &[&before])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    let Some(newest) = newest else {
        return Ok(Vec::new());
    };
    let floor = newest.saturating_sub(NEWEST_IDS);
    let words = search.terms.words().join(" ");
    let readers = format!("zpublic | zu{reader}");
    let own = [format!("d:{reader}:%"), format!("d:%:{reader}")];
    let pass = |range: &'static str, order: &'static str| {
        format!(
            "SELECT body FROM archive \
             WHERE {VECTOR} @@ (plainto_tsquery('simple', $1) && to_tsquery('simple', $2)) \
                AND {range} \
                AND (room_key LIKE 'c:%' OR room_key LIKE $3 OR room_key LIKE $4) \
             ORDER BY {order} DESC LIMIT $7"
        )
    };
    let mut found = Vec::new();
    let passes = [
        pass("id < $5 AND id > $6", "id"),
        pass("id <= $6 AND id < $5", "id + 0"),
    ];
    for sql in passes {
        let wanted = search.limit.saturating_sub(found.len()) as i64;
        let rows = client
            .query(
                &sql,
                &[&words, &readers, &own[0], &own[1], &before, &floor, &wanted],
            )
            .await
            .map_err(failed)?;
        for row in rows {
            let body: String = row.try_get(0).map_err(failed)?;
            found.push(serde_json::from_str::<Message>(&body).map_err(failed)?);
        }
        if found.len() >= search.limit {
            break;
        }
    }
    Ok(found)
}
