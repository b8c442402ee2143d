//! Cluster mode's read positions: each move the hub hands over is written to PostgreSQL on a
//! connection of its own (made again when lost), off the hub's lock and outside the
//! sequencer, since a position concerns one user and orders nothing else. Writes may land out
//! of order, so the upsert keeps the greater position. Other instances load positions when
//! they start; a move made on one instance is not sent to the user's connections on others.

use crate::chat::model::{Room, UserId};
use crate::chat::postgres::rows::UPSERT_READ;
use crate::chat::postgres::{connect_as, failed, room_key, Owner};
use crate::chat::store::{Durable, StoreError};
use std::sync::Arc;

/// Writes read positions to the cluster's database.
pub(super) struct ReadWriter {
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    config: tokio_postgres::Config,
}

impl ReadWriter {
    pub(super) fn new(config: tokio_postgres::Config) -> Arc<ReadWriter> {
        Arc::new(ReadWriter {
            client: tokio::sync::Mutex::new(None),
            config,
        })
    }

    /// Hands a position over to be written; the answer resolves once it is committed. (The
    /// hub bounds how often each user moves theirs.)
    pub(super) fn put(self: &Arc<Self>, user: UserId, room: &Room, seq: u64) -> Durable {
        let (written, durable) = Durable::pending();
        let (writer, key) = (self.clone(), room_key(room));
        tokio::spawn(async move {
            let result = writer.write(user, &key, seq).await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "a read position could not be stored");
            }
            written.report(result);
        });
        durable
    }

    async fn write(&self, user: UserId, key: &str, seq: u64) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            *client = Some(connect_as(&self.config, false, Owner::Cluster).await?);
        }
        let Some(connected) = client.as_ref() else {
            return Err(StoreError("no connection".into()));
        };
        let done = connected
            .execute(UPSERT_READ, &[&(user.0 as i64), &key, &(seq as i64)])
            .await;
        if let Err(e) = done {
            *client = None;
            return Err(failed(e));
        }
        Ok(())
    }
}
