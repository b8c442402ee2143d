//! Cluster mode's read positions: each move the hub hands over is written to PostgreSQL on a
//! connection of its own (made again when lost), off the hub's lock and outside the
//! sequencer, since a position concerns one user and orders nothing else. Writes may land out
//! of order, so the upsert keeps the greater position. Once stored, a move is published to
//! its user's topic, so the instances where that user is connected apply it at once (and
//! tell the user's connections there); an instance also reads a user's positions again when
//! one of their connections asks for its unread counts, which covers a move whose news was
//! lost.

use crate::chat::model::{Room, UserId};
use crate::chat::postgres::rows::UPSERT_READ;
use crate::chat::postgres::{connect_as, failed, room_key, Owner};
use crate::chat::store::{Durable, ReadsRead, StoreError};
use std::sync::Arc;

/// Writes read positions to the cluster's database.
pub(super) struct ReadWriter {
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    config: tokio_postgres::Config,
    /// Where stored moves are published, once the cluster has started.
    node: std::sync::OnceLock<Arc<super::Node>>,
}

impl ReadWriter {
    pub(super) fn new(config: tokio_postgres::Config) -> Arc<ReadWriter> {
        Arc::new(ReadWriter {
            client: tokio::sync::Mutex::new(None),
            config,
            node: std::sync::OnceLock::new(),
        })
    }

    /// Publishes every move stored from now on through `node`.
    pub(super) fn attach(&self, node: Arc<super::Node>) {
        let _ = self.node.set(node);
    }

    /// Hands a position over to be written; the answer resolves once it is committed. (The
    /// hub bounds how often each user moves theirs.)
    pub(super) fn put(self: &Arc<Self>, user: UserId, room: &Room, seq: u64) -> Durable {
        let (written, durable) = Durable::pending();
        let (writer, room) = (self.clone(), room.clone());
        tokio::spawn(async move {
            let result = writer.write(user, &room_key(&room), seq).await;
            match &result {
                Ok(()) => {
                    if let Some(node) = writer.node.get() {
                        node.publish(crate::chat::replica::Replicated::Read { user, room, seq });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "a read position could not be stored"),
            }
            written.report(result);
        });
        durable
    }

    async fn write(&self, user: UserId, key: &str, seq: u64) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
        let connected = connection(&mut client, &self.config).await?;
        let done = connected
            .execute(UPSERT_READ, &[&(user.0 as i64), &key, &(seq as i64)])
            .await;
        if let Err(e) = done {
            *client = None;
            return Err(failed(e));
        }
        Ok(())
    }

    /// Reads `user`'s positions as the database holds them now.
    pub(super) fn read(self: &Arc<Self>, user: UserId) -> ReadsRead {
        let reader = self.clone();
        Box::pin(async move {
            let mut client = reader.client.lock().await;
            let connected = connection(&mut client, &reader.config).await?;
            let rows = connected
                .query(
                    "SELECT r.room, p.seq FROM read_positions AS p \
                     JOIN rooms AS r ON r.key = p.room_key WHERE p.user_id = $1",
                    &[&(user.0 as i64)],
                )
                .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    *client = None;
                    return Err(failed(e));
                }
            };
            let mut positions = Vec::with_capacity(rows.len());
            for row in rows {
                let room: String = row.try_get(0).map_err(failed)?;
                let seq: i64 = row.try_get(1).map_err(failed)?;
                let room: Room = serde_json::from_str(&room)
                    .map_err(|e| StoreError(format!("a stored room is not valid: {e}")))?;
                positions.push((room, seq.max(0) as u64));
            }
            Ok(positions)
        })
    }
}

/// The writer's connection, made again when there is none or it was lost.
async fn connection<'a>(
    client: &'a mut Option<tokio_postgres::Client>,
    config: &tokio_postgres::Config,
) -> Result<&'a tokio_postgres::Client, StoreError> {
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        *client = Some(connect_as(config, false, Owner::Cluster).await?);
    }
    client
        .as_ref()
        .ok_or_else(|| StoreError("no connection".into()))
}
