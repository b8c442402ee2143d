//! The upload registry: every uploaded file, which room it belongs to, who uploaded it and
//! whether a message carries it yet; and deleting files' bytes off the async threads, from
//! the files folder, or in cluster mode from the database ([`SharedFiles`]).
//!
//! The registry holds the files of the messages in the hub's windows and the uploads not
//! sent yet. A file stays (bytes, and what its download is checked against) for as long as
//! a stored message carries it: with a durable store that includes the archive, for as long
//! as `data.retain_messages` keeps the message. So a message leaving its window takes its
//! file out of the registry only; a download of it then finds the message through the
//! archive ([`Hub::stored_file_for`]), and the bytes go when the store lets go of the
//! message (retention: [`Store::release_files_with`]; deletion: here, once it is stored).
//! The in-memory mode keeps nothing beyond the windows, so there a file goes with its
//! message's eviction.
//!
//! [`Store::release_files_with`]: crate::chat::store::Store::release_files_with

use super::Hub;
use crate::chat::cluster::files::SharedFiles;
use crate::chat::history::window_start;
use crate::chat::model::{Attachment, ChatError, FileId, Message, Room, RoomKey, UserId};
use crate::chat::store::{Durable, Release, StoreError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Uploaded files, attached to a message or waiting to be.
#[derive(Default)]
pub(super) struct Files {
    map: HashMap<FileId, FileEntry>,
}

pub(super) struct FileEntry {
    pub(super) attachment: Attachment,
    /// The room it was uploaded for; only that room's readers may download it.
    pub(super) room: RoomKey,
    pub(super) owner: UserId,
    /// True once a message carries it.
    pub(super) attached: bool,
    /// When it was uploaded (or, for files of restored messages, loaded).
    uploaded: Instant,
}

impl Files {
    /// Records a file: `attached` for files of restored messages, unattached for uploads.
    pub(super) fn add(
        &mut self,
        attachment: Attachment,
        room: RoomKey,
        owner: UserId,
        attached: bool,
    ) {
        let entry = FileEntry {
            attachment,
            room,
            owner,
            attached,
            uploaded: Instant::now(),
        };
        self.map.insert(entry.attachment.id.clone(), entry);
    }

    pub(super) fn get(&self, id: &FileId) -> Option<&FileEntry> {
        self.map.get(id)
    }

    pub(super) fn contains(&self, id: &FileId) -> bool {
        self.map.contains_key(id)
    }

    /// The upload `owner` made for `room` and has not sent yet.
    pub(super) fn unsent(&self, id: &FileId, owner: UserId, room: &RoomKey) -> Option<&Attachment> {
        self.map
            .get(id)
            .filter(|f| f.owner == owner && f.room == *room && !f.attached)
            .map(|f| &f.attachment)
    }

    /// The uploads `owner` has not sent yet: how many, and their bytes together.
    pub(super) fn unsent_by(&self, owner: UserId) -> (usize, u64) {
        self.map
            .values()
            .filter(|f| f.owner == owner && !f.attached)
            .fold((0, 0), |(count, bytes), f| {
                (count + 1, bytes + f.attachment.size)
            })
    }

    /// Marks a file as carried by a message.
    pub(super) fn mark_attached(&mut self, id: &FileId) {
        if let Some(entry) = self.map.get_mut(id) {
            entry.attached = true;
        }
    }

    /// Forgets the files of messages that left the history, returning them for deletion.
    pub(super) fn forget_files_of(
        &mut self,
        messages: impl IntoIterator<Item = Message>,
    ) -> Vec<FileId> {
        messages
            .into_iter()
            .filter_map(|m| m.attachment)
            .filter_map(|a| self.map.remove(&a.id))
            .map(|entry| entry.attachment.id)
            .collect()
    }

    /// Forgets the files of messages that left the history, returning those whose bytes
    /// must go now: every one when `archived` is false (a store that keeps nothing beyond
    /// the history), none when it is true (the archive keeps the messages, and the store
    /// lets go of their files itself).
    pub(super) fn forget_evicted(
        &mut self,
        evicted: impl IntoIterator<Item = Message>,
        archived: bool,
    ) -> Vec<FileId> {
        let forgotten = self.forget_files_of(evicted);
        if archived {
            Vec::new()
        } else {
            forgotten
        }
    }

    /// Forgets uploads older than `age` that no message carries, returning them for deletion.
    pub(super) fn forget_unsent(&mut self, age: Duration) -> Vec<FileId> {
        let stale: Vec<FileId> = self
            .map
            .iter()
            .filter(|(_, f)| !f.attached && f.uploaded.elapsed() >= age)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            self.map.remove(id);
        }
        stale
    }
}

/// Deletes files from the files directory. Called after the hub's lock is released; on an
/// async runtime the deletions run on its blocking pool, so a socket's task never waits for
/// the disk. Without a runtime (start-up, unit tests) they happen before this returns.
pub(super) fn remove_files(dir: Option<&Path>, ids: Vec<FileId>) {
    let Some(dir) = dir else {
        return;
    };
    if ids.is_empty() {
        return;
    }
    let dir: PathBuf = dir.to_path_buf();
    let remove = move || {
        for id in ids {
            if let Err(e) = std::fs::remove_file(dir.join(id.as_str())) {
                tracing::warn!(error = %e, file = id.as_str(), "could not delete a file");
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(remove);
        }
        Err(_) => remove(),
    }
}

/// Deletes files once `stored` says the change that dropped them is on disk (see
/// [`crate::chat::store::Store::barrier`]): a file must never be gone while a stored message
/// still carries it. If the change could not be stored the files stay, and the start-up
/// reconciliation deletes whichever no stored message carries.
pub(super) fn remove_files_once_stored(dir: Option<&Path>, ids: Vec<FileId>, stored: Durable) {
    let Some(dir) = dir.map(Path::to_path_buf) else {
        return;
    };
    if ids.is_empty() {
        return;
    }
    let count = ids.len();
    let keep = move |e: StoreError| {
        tracing::warn!(error = %e, count, "keeping files whose removal was not stored");
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                match stored.wait().await {
                    Ok(()) => remove_files(Some(&dir), ids),
                    Err(e) => keep(e),
                }
            });
        }
        // No runtime (start-up, unit tests): at once if the outcome is known, else on a
        // thread of its own, so the caller never waits for the disk.
        Err(_) => match stored.now() {
            Ok(Ok(())) => remove_files(Some(&dir), ids),
            Ok(Err(e)) => keep(e),
            Err(pending) => {
                std::thread::spawn(move || match pending.wait_blocking() {
                    Ok(()) => remove_files(Some(&dir), ids),
                    Err(e) => keep(e),
                });
            }
        },
    }
}

/// What deletes the bytes of the files a store lets go of on its own ([`Release`]): from
/// `dir`, on the blocking pool of the runtime the hub was opened on (the store calls it from
/// its writer thread), or at once without one.
pub(super) fn releaser(dir: Option<PathBuf>) -> Release {
    let runtime = tokio::runtime::Handle::try_current().ok();
    Arc::new(move |ids| {
        let _inside = runtime.as_ref().map(|runtime| runtime.enter());
        tracing::debug!(count = ids.len(), "deleting files retention let go of");
        remove_files(dir.as_deref(), ids);
    })
}

/// The files in `dir` that look like uploads (their names are file ids).
pub(super) fn files_in(dir: &Path) -> Vec<FileId> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| FileId::parse(&name).ok())
        .collect()
}

impl Hub {
    /// Where uploads' bytes are kept when every instance must reach them (cluster mode);
    /// `None`: in this instance's files folder.
    pub fn shared_files(&self) -> Option<Arc<SharedFiles>> {
        self.shared.store.shared_files()
    }

    /// Deletes files' bytes, wherever they are kept. Called once the change that dropped
    /// their messages is committed (in cluster mode changes are applied only then).
    pub(super) fn remove_bytes(&self, ids: Vec<FileId>) {
        match self.shared_files() {
            Some(shared) => shared.remove(ids),
            None => remove_files(self.shared.limits.files_dir.as_deref(), ids),
        }
    }

    /// Records an uploaded file, waiting to be attached by its uploader to a message in
    /// `room` (which the uploader must be able to post in). Refused with
    /// `too_many_unsent_files` when the uploader's waiting uploads would pass
    /// `unsent_files` or `unsent_file_bytes` (the caller then deletes the file).
    pub fn add_file(
        &self,
        token: &str,
        room: &Room,
        attachment: Attachment,
    ) -> Result<(), ChatError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let owner = state.directory.by_token(token)?.info.id;
        state.rooms.open(
            room,
            Some(owner),
            &mut state.directory,
            &mut state.connections,
        )?;
        let (count, bytes) = state.files.unsent_by(owner);
        let limits = &self.shared.limits;
        if count >= limits.unsent_files || bytes + attachment.size > limits.unsent_file_bytes {
            return Err(ChatError::TooManyUnsentFiles);
        }
        state.files.add(attachment, room.key(), owner, false);
        Ok(())
    }

    /// Refuses an upload before it is received when the uploader's waiting uploads already
    /// fill their quota (`add_file` checks again with the file's size).
    pub fn may_upload(&self, token: &str) -> Result<(), ChatError> {
        let state = self.lock();
        let owner = state.directory.by_token(token)?.info.id;
        let (count, bytes) = state.files.unsent_by(owner);
        let limits = &self.shared.limits;
        if count >= limits.unsent_files || bytes >= limits.unsent_file_bytes {
            return Err(ChatError::TooManyUnsentFiles);
        }
        Ok(())
    }

    /// A file the hub holds (of a message in a window, or an upload not sent yet), if
    /// `token` may read it: files of channels are public, files of private conversations
    /// are for their two participants only.
    pub fn file_for(&self, id: &FileId, token: Option<&str>) -> Result<Attachment, ChatError> {
        let state = self.lock();
        let entry = state.files.get(id).ok_or(ChatError::NoSuchFile)?;
        may_read(&state, &entry.room, token)?;
        Ok(entry.attachment.clone())
    }

    /// [`Hub::file_for`], and for a file the hub no longer holds (its message older than
    /// the window, or, in cluster mode, in a room this instance does not follow), the
    /// stored message carrying it: one indexed read of the store's archive, off the hub's
    /// lock, and the same rule on who may read it. A file of a message retention let go
    /// of, or that was deleted, is no such file.
    pub async fn stored_file_for(
        &self,
        id: &FileId,
        token: Option<&str>,
    ) -> Result<Attachment, ChatError> {
        match self.file_for(id, token) {
            Err(ChatError::NoSuchFile) => {}
            held => return held,
        }
        let Some(archive) = self.shared.store.archive() else {
            return Err(ChatError::NoSuchFile);
        };
        let message = archive.carrier(id).await.map_err(|e| {
            tracing::error!(error = %e, "a stored file could not be looked up");
            ChatError::Unavailable("the file could not be looked up".into())
        })?;
        let Some(Message {
            id: message_id,
            room,
            seq,
            attachment: Some(attachment),
            ..
        }) = message
        else {
            return Err(ChatError::NoSuchFile);
        };
        if attachment.id != *id {
            return Err(ChatError::NoSuchFile);
        }
        let state = self.lock();
        // The hub may have deleted it while the store has not committed the deletion yet
        // (only messages in the window can be deleted, so only those are checked).
        if let Some(held) = state.rooms.map.get(&room.key()) {
            let window = window_start(held.last_seq(), self.shared.limits.history);
            if (window..=held.last_seq()).contains(&seq) && held.history.get(message_id).is_none() {
                return Err(ChatError::NoSuchFile);
            }
        }
        may_read(&state, &room.key(), token)?;
        Ok(attachment)
    }

    /// Forgets and deletes files uploaded more than `age` ago that no message carries (the
    /// upload was never sent); returns how many. The server calls this now and then.
    pub fn sweep_unsent_files(&self, age: Duration) -> usize {
        let unsent = self.lock().files.forget_unsent(age);
        let count = unsent.len();
        if count > 0 {
            tracing::info!(count, "deleting uploads that were never sent");
        }
        // In cluster mode the rows stay for the cluster's sweep, which deletes only rows no
        // stored message carries: a post of one of these may still be on its way there.
        if self.shared_files().is_none() {
            remove_files(self.shared.limits.files_dir.as_deref(), unsent);
        }
        count
    }

    /// Deletes files in the files directory that no stored message carries: uploads never
    /// sent before a restart, files of messages the store no longer holds, or files whose
    /// deletion was cut short; and reports restored messages whose file is missing.
    ///
    /// Files the windows' messages carry are known at once; for the others the store's
    /// archive is asked (one indexed read each), on a task of its own when there is a
    /// runtime, so opening does not wait for it. None of those can become carried
    /// meanwhile: only an upload the registry holds can be attached.
    pub(super) fn remove_orphan_files(&self) {
        let Some(dir) = self.shared.limits.files_dir.clone() else {
            return;
        };
        if self.shared_files().is_some() {
            // The folder is not used; the cluster sweeps its own table.
            return;
        }
        let on_disk = files_in(&dir);
        let (unknown, missing): (Vec<FileId>, usize) = {
            let state = self.lock();
            let present: std::collections::HashSet<&FileId> = on_disk.iter().collect();
            let missing = state
                .files
                .map
                .keys()
                .filter(|id| !present.contains(id))
                .count();
            let unknown = on_disk
                .iter()
                .filter(|id| !state.files.contains(id))
                .cloned()
                .collect();
            (unknown, missing)
        };
        if missing > 0 {
            tracing::warn!(
                count = missing,
                "stored messages carry files that are not on disk; their downloads answer 404"
            );
        }
        let Some(archive) = self.shared.store.archive() else {
            remove_orphans(&dir, unknown, Default::default());
            return;
        };
        if unknown.is_empty() {
            return;
        }
        let ask = archive.carried(unknown.clone());
        let sweep =
            move |answer: Result<std::collections::HashSet<FileId>, StoreError>| match answer {
                Ok(carried) => remove_orphans(&dir, unknown, carried),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not ask the archive which files it carries; keeping them all"
                ),
            };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { sweep(ask.await) });
            }
            // No runtime (unit tests): one of its own for the look-up only. The deletions
            // happen once it is gone, on this thread: a blocking task it had not started
            // yet would be dropped with it.
            Err(_) => match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let answer = runtime.block_on(ask);
                    drop(runtime);
                    sweep(answer);
                }
                Err(e) => tracing::warn!(error = %e, "no runtime to sweep the files folder"),
            },
        }
    }
}

/// Deletes the files of `dir` among `candidates` that are not `carried`.
fn remove_orphans(dir: &Path, candidates: Vec<FileId>, carried: std::collections::HashSet<FileId>) {
    let orphans: Vec<FileId> = candidates
        .into_iter()
        .filter(|id| !carried.contains(id))
        .collect();
    if !orphans.is_empty() {
        tracing::info!(count = orphans.len(), "deleting files no message carries");
    }
    remove_files(Some(dir), orphans);
}

/// Whether `token` may read what is in `room`: anyone a channel, only its two participants
/// a private conversation.
fn may_read(state: &super::State, room: &RoomKey, token: Option<&str>) -> Result<(), ChatError> {
    if let RoomKey::Direct(direct) = room {
        let token = token.ok_or(ChatError::Unauthorized)?;
        let user = state.directory.by_token(token)?.info.id;
        if !direct.includes(user) {
            return Err(ChatError::Forbidden);
        }
    }
    Ok(())
}
