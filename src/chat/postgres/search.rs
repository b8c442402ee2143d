//! The archive's full-text index in PostgreSQL (the single-instance store and cluster mode
//! share it) and the search through it.
//!
//! A GIN index over `to_tsvector('simple', …)` of each archived message's text: an
//! expression index, so PostgreSQL keeps it in step with every insert and delete of the
//! archive in the same transaction, and a deleted message is never found. The `simple`
//! configuration lower-cases words and stems nothing (chat is in any language). The query is
//! built by `plainto_tsquery` from the search's words, so nothing the user typed is read as
//! query syntax.

use super::failed;
use crate::chat::model::Message;
use crate::chat::store::{ArchiveSearch, StoreError};
use tokio_postgres::{Client, Transaction};

/// The indexed text of an archived message, as the index and the search both spell it (they
/// must agree for the index to be used).
const TEXT: &str = "to_tsvector('simple', body::json ->> 'body')";

/// Creates the index if missing (on an existing archive, it is built from every row once);
/// inside the caller's transaction (under cluster mode's schema lock).
pub(crate) async fn settle_index(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS archive_words ON archive USING GIN (({TEXT}))"
    ))
    .await
    .map_err(failed)
}

/// The newest archived messages holding every word of the search, among channels (room keys
/// `c:…`) and the reader's own private conversations (`d:{a}:{b}` with the reader as `a` or
/// `b`).
pub(crate) async fn search(
    client: &Client,
    search: &ArchiveSearch,
) -> Result<Vec<Message>, StoreError> {
    let reader = search.reader;
    let before = search
        .before
        .map_or(i64::MAX, |id| id.0.min(i64::MAX as u64) as i64);
    let rows = client
        .query(
            &format!(
                "SELECT body FROM archive \
                 WHERE {TEXT} @@ plainto_tsquery('simple', $1) AND id < $2 \
                    AND (room_key LIKE 'c:%' OR room_key LIKE $3 OR room_key LIKE $4) \
                 ORDER BY id DESC LIMIT $5"
            ),
            &[
                &search.terms.words().join(" "),
                &before,
                &format!("d:{reader}:%"),
                &format!("d:%:{reader}"),
                &(search.limit as i64),
            ],
        )
        .await
        .map_err(failed)?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let body: String = row.try_get(0).map_err(failed)?;
        found.push(serde_json::from_str::<Message>(&body).map_err(failed)?);
    }
    Ok(found)
}
