//! Attachments' bytes in cluster mode: one row of PostgreSQL's `files` table per upload
//! (made by [`super::sql`]), so a file uploaded through one instance downloads through any.
//!
//! A row stays as long as a stored message carries its file: in a room's window or in the
//! archive, for as long as `data.retain_messages` keeps the message. When each row goes:
//! - The message carrying the file is deleted: every instance applies that change only
//!   after its commit, and each deletes the row then (the first one deletes it; for the
//!   others there is nothing left to delete).
//! - Retention lets go of the message (a post trims the archive below the room's floor):
//!   the post's own transaction deletes the row ([`super::sql`]).
//! - The upload is never sent: the instance that received it forgets it after an hour, as
//!   a single instance does, but leaves the row to [`SharedFiles::sweep`], which deletes
//!   rows older than [`KEEP_UNCARRIED`] that no stored message carries (it asks the
//!   archive's index of attachments, which holds every stored message, the windows' too).
//!   By then no instance can attach the upload any more, so no post on its way to the
//!   database can carry a row the sweep deletes. The same sweep deletes what an instance
//!   that died left behind (an unsent upload, or a deletion it committed and did not
//!   apply).

use crate::chat::model::{FileId, Room};
use crate::chat::postgres::{connect_as, failed, file_of, room_key, Owner};
use crate::chat::store::StoreError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// How old a row no stored message carries must be before the sweep deletes it: twice the
/// hour an instance keeps an unsent upload for (`server::files::UNSENT_UPLOAD_LIFETIME`).
pub const KEEP_UNCARRIED: Duration = Duration::from_secs(2 * 3600);

/// How often each instance sweeps (and once as it starts).
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Connections file transfers share, so one large upload does not hold up every download.
const CONNECTIONS: usize = 4;

/// The cluster's store of attachments' bytes.
pub struct SharedFiles {
    config: tokio_postgres::Config,
    /// Each made when first needed, and again once lost.
    connections: Vec<tokio::sync::Mutex<Option<Arc<Client>>>>,
    /// Which connection the next transfer takes (round robin).
    next: AtomicUsize,
}

impl SharedFiles {
    /// The files table of the database `config` names (connected to when first used).
    pub fn new(config: tokio_postgres::Config) -> SharedFiles {
        SharedFiles {
            config,
            connections: (0..CONNECTIONS)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let Some(slot) = self.connections.get(n) else {
            return Err(StoreError("no connection for files".into()));
        };
        let mut slot = slot.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let client = Arc::new(connect_as(&self.config, false, Owner::Cluster).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Stores an upload's bytes under its id, with the room it was uploaded for.
    pub async fn put(&self, id: &FileId, room: &Room, bytes: &[u8]) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO files (id, room_key, bytes) VALUES ($1, $2, $3)",
                &[&id.as_str(), &room_key(room), &bytes],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// A file's size in bytes, or `None` if no row holds it.
    pub async fn size(&self, id: &FileId) -> Result<Option<u64>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT octet_length(bytes) FROM files WHERE id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(failed)?;
        let size = row
            .map(|r| r.try_get::<_, i32>(0))
            .transpose()
            .map_err(failed)?;
        Ok(size.map(|s| s.max(0) as u64))
    }

    /// Up to `len` of a file's bytes from byte `from` (counting from 0); empty past its end
    /// or if no row holds it. The column is stored uncompressed, so PostgreSQL reads only
    /// the part asked for.
    pub async fn piece(&self, id: &FileId, from: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let too_far = |_| StoreError("a file piece past 2 GiB".into());
        let start = i32::try_from(from + 1).map_err(too_far)?;
        let len = i32::try_from(len).map_err(too_far)?;
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT substring(bytes FROM $2 FOR $3) FROM files WHERE id = $1",
                &[&id.as_str(), &start, &len],
            )
            .await
            .map_err(failed)?;
        let piece = row
            .map(|r| r.try_get::<_, Vec<u8>>(0))
            .transpose()
            .map_err(failed)?;
        Ok(piece.unwrap_or_default())
    }

    /// Deletes files' rows, on a task of its own (the caller may hold the hub's lock). Call
    /// only once the change that dropped their messages is committed. A row that cannot be
    /// deleted now is left to the sweep, as no stored message carries it any more.
    pub fn remove(self: &Arc<Self>, ids: Vec<FileId>) {
        if ids.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                count = ids.len(),
                "no runtime to delete files on; the sweep will"
            );
            return;
        };
        let files = self.clone();
        runtime.spawn(async move {
            let count = ids.len();
            let ids: Vec<String> = ids.into_iter().map(|id| id.as_str().to_owned()).collect();
            let deleted = async {
                files
                    .client()
                    .await?
                    .execute("DELETE FROM files WHERE id = ANY($1)", &[&ids])
                    .await
                    .map_err(failed)
            };
            if let Err(e) = deleted.await {
                tracing::warn!(error = %e, count, "could not delete files; the sweep will");
            }
        });
    }

    /// Deletes the rows older than `age` that no stored message carries; returns how many.
    pub async fn sweep(&self, age: Duration) -> Result<u64, StoreError> {
        self.client()
            .await?
            .execute(
                concat!(
                    "DELETE FROM files WHERE uploaded_at < now() - make_interval(secs => $1) \
                     AND NOT EXISTS (SELECT 1 FROM archive WHERE ",
                    file_of!(),
                    " = files.id)"
                ),
                &[&age.as_secs_f64()],
            )
            .await
            .map_err(failed)
    }
}

/// Sweeps now and every [`SWEEP_EVERY`], for as long as the runtime runs.
pub(super) async fn sweep_now_and_then(files: Arc<SharedFiles>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        match files.sweep(KEEP_UNCARRIED).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "deleted files no stored message carries"),
            Err(e) => tracing::warn!(error = %e, "could not sweep the files table"),
        }
    }
}
