//! Where the hub keeps what must outlive the process: the [`Store`] trait, what it loads at
//! start-up, and the in-memory mode that keeps nothing. The SQLite store is in
//! [`super::sqlite`], the PostgreSQL store in [`super::postgres`].

use super::model::{
    ChannelInfo, FileId, HistoryTop, Message, MessageId, Room, SearchTerms, UserId, UserInfo,
    HISTORY_LIMIT,
};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A store failure: the action that needed it did not happen.
#[derive(Clone, Debug, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StoreError(pub String);

/// The SHA-256 hash of a session token: all the hub and the store ever keep of it.
pub type TokenHash = [u8; 32];

/// One room as a store holds it.
#[derive(Debug)]
pub struct StoredRoom {
    pub room: Room,
    /// For a channel, its public description.
    pub channel: Option<ChannelInfo>,
    /// The number the room's next message gets.
    pub next_seq: u64,
    /// The retained messages, oldest first.
    pub messages: Vec<Message>,
}

/// Everything a store holds, as loaded at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The epoch sequence numbers belong to; `None` lets the hub pick a fresh one.
    pub epoch: Option<u64>,
    /// Every registered user and their token hash.
    pub users: Vec<(UserInfo, TokenHash)>,
    /// Every room.
    pub rooms: Vec<StoredRoom>,
    /// Each user's read position in each room they have read (the `seq` they read up to).
    pub reads: Vec<(UserId, Room, u64)>,
}

/// A change handed to the store, which resolves once the change is on disk (or could not be
/// put there). Changes are written behind the hub: they are applied and sent out at once,
/// and only the answer to whoever asked for the change waits for this.
#[derive(Debug)]
pub struct Durable(Waiting);

#[derive(Debug)]
enum Waiting {
    Done(Result<(), StoreError>),
    Pending(oneshot::Receiver<Result<(), StoreError>>),
}

/// The store's end of a [`Durable`]: says how the write went.
#[derive(Debug)]
pub struct Written(oneshot::Sender<Result<(), StoreError>>);

impl Written {
    /// Reports the outcome to whoever waits (if anyone still does).
    pub fn report(self, result: Result<(), StoreError>) {
        let _ = self.0.send(result);
    }
}

impl Durable {
    /// A change whose outcome is already known.
    pub fn done(result: Result<(), StoreError>) -> Durable {
        Durable(Waiting::Done(result))
    }

    /// A change still to be written, and the handle its writer reports through.
    pub fn pending() -> (Written, Durable) {
        let (tx, rx) = oneshot::channel();
        (Written(tx), Durable(Waiting::Pending(rx)))
    }

    /// Waits until the change is on disk.
    pub async fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            Waiting::Done(result) => result,
            Waiting::Pending(rx) => rx.await.unwrap_or_else(|_| Err(abandoned())),
        }
    }

    /// The outcome if it is already known, or the wait for it.
    pub fn now(self) -> Result<Result<(), StoreError>, Durable> {
        match self.0 {
            Waiting::Done(result) => Ok(result),
            pending => Err(Durable(pending)),
        }
    }

    /// Blocks the thread until the change is on disk. Not for use on an async runtime.
    pub fn wait_blocking(self) -> Result<(), StoreError> {
        match self.0 {
            Waiting::Done(result) => result,
            Waiting::Pending(rx) => rx.blocking_recv().unwrap_or_else(|_| Err(abandoned())),
        }
    }
}

fn abandoned() -> StoreError {
    StoreError("the store stopped before writing the change".into())
}

/// Where the hub keeps what must outlive the process. Called with the hub's lock held, in the
/// order the hub applies changes, so the store sees them in that order. Every change is
/// written behind: the call only hands it over, and the [`Durable`] it returns resolves once
/// the change is on disk, so the hub never waits for the disk with its lock held.
pub trait Store: Send + Sync + 'static {
    /// Reads everything back at start-up.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Records a new channel.
    fn put_channel(&self, channel: &ChannelInfo) -> Durable;
    /// Records a new user.
    fn put_user(&self, user: &UserInfo, token_hash: &TokenHash) -> Durable;
    /// Records a user's new display name.
    fn rename_user(&self, user: &UserInfo) -> Durable;
    /// Records a new message; the store keeps the same most-recent window as the history
    /// (what a start loads), and a durable store also keeps it in its [`Archive`] for as long
    /// as its retention says.
    fn put_message(&self, message: &Message) -> Durable;
    /// Forgets a deleted message.
    fn delete_message(&self, room: &Room, id: MessageId) -> Durable;
    /// Replaces a held message by its new version (same room, id and number; new text and
    /// `edited_at` after an edit, new reactions after a reaction), in the window and the
    /// archive alike.
    fn edit_message(&self, message: &Message) -> Durable;
    /// Records how far a user has read in a room (the hub only moves it forward). The
    /// in-memory mode keeps nothing.
    fn put_read(&self, _user: UserId, _room: &Room, _seq: u64) -> Durable {
        Durable::done(Ok(()))
    }
    /// Resolves once every change handed over before it is on disk, and fails if any of
    /// them could not be stored. Whatever must not happen before a change is stored (deleting
    /// the files of messages it drops) waits for this.
    fn barrier(&self) -> Durable {
        Durable::done(Ok(()))
    }
    /// Resolves once the store has shown it can write (a round trip through its writer, and
    /// for a database, a commit). Readiness checks wait for this; it changes nothing.
    fn ping(&self) -> Durable {
        Durable::done(Ok(()))
    }
    /// Writes out everything handed over so far and stops taking changes; called once, as
    /// the server stops.
    fn close(&self) {}
    /// Where messages older than the hub's window are read from; `None` for a store that
    /// keeps nothing beyond what the hub holds (the in-memory mode).
    fn archive(&self) -> Option<Arc<dyn Archive>> {
        None
    }
    /// Reads a user's stored read positions again, for a store other processes write too
    /// (cluster mode: another instance may have moved them since this one loaded). `None`
    /// for a store only this process writes, whose positions the hub already holds.
    fn reads_of(&self, _user: UserId) -> Option<ReadsRead> {
        None
    }
    /// Where attachments' bytes are kept when every instance must reach them (cluster mode).
    /// `None`: in the instance's own files folder.
    fn shared_files(&self) -> Option<Arc<crate::chat::cluster::files::SharedFiles>> {
        None
    }
    /// Hands the store what deletes attachments' bytes, for the files whose last carrier
    /// it lets go of on its own: an archived message that retention no longer keeps. The
    /// store calls `release` with them after the commit that removed the message, never
    /// before (a file that could not be deleted then is left to the start-up sweep, as no
    /// stored message carries it any more). The hub calls this once, as it opens. A store
    /// with no archive, or one that deletes such bytes in the same transaction (cluster
    /// mode), ignores it.
    fn release_files_with(&self, _release: Release) {}
}

/// Deletes the bytes of files no stored message carries any more ([`Store::release_files_with`]).
pub type Release = Arc<dyn Fn(Vec<FileId>) + Send + Sync>;

/// Where a write-behind store keeps the [`Release`] the hub hands it, shared with its writer.
pub(crate) type ReleaseSlot = Arc<std::sync::OnceLock<Release>>;

/// Hands files whose last carrier a commit removed to whoever deletes their bytes.
pub(crate) fn release(slot: &ReleaseSlot, files: Vec<FileId>) {
    if files.is_empty() {
        return;
    }
    match slot.get() {
        Some(release) => release(files),
        // No hub yet (a store used on its own): the next start-up sweep deletes them.
        None => tracing::debug!(count = files.len(), "no one to delete released files"),
    }
}

/// How many of each room's messages a durable store keeps (`data.retain_messages`): every
/// one, or the newest `n` sequence numbers (deleted ones counted, as the in-memory window
/// counts them). Never fewer than the [`HISTORY_LIMIT`] the hub holds in memory, so a restart
/// shows what was shown before it; `Newest(100)` keeps exactly what every store kept before
/// the archive existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    All,
    Newest(u64),
}

impl Retention {
    /// The lowest sequence number kept in a room whose newest number given out is `newest`:
    /// 1 (everything) for [`Retention::All`].
    pub fn floor(self, newest: u64) -> u64 {
        match self {
            Retention::All => 1,
            Retention::Newest(n) => newest.saturating_add(1).saturating_sub(n).max(1),
        }
    }

    /// This retention, keeping at least the `ring` messages a store's ring holds (an
    /// archive holds every message its ring does).
    pub fn at_least(self, ring: usize) -> Retention {
        match self {
            Retention::Newest(n) => Retention::Newest(n.max(ring as u64)),
            Retention::All => Retention::All,
        }
    }
}

/// Written `all` or as a number, in the file, the environment and flags alike (the
/// environment and flags give text, so a number may also come as text).
impl serde::Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Retention::All => serializer.serialize_str("all"),
            Retention::Newest(n) => serializer.serialize_u64(*n),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Retention;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "`all` or a number of messages, at least {HISTORY_LIMIT}")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Retention, E> {
                if n < HISTORY_LIMIT as u64 {
                    return Err(E::custom(format!(
                        "must be at least {HISTORY_LIMIT} (the messages each room keeps in memory)"
                    )));
                }
                Ok(Retention::Newest(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Retention, E> {
                let n = u64::try_from(n).map_err(|_| E::custom("must not be negative"))?;
                self.visit_u64(n)
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Retention, E> {
                let text = text.trim();
                if text.eq_ignore_ascii_case("all") {
                    return Ok(Retention::All);
                }
                match text.parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Str(text), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// A room's messages below a sequence number, as an archive read them.
#[derive(Debug)]
pub struct ArchivePage {
    /// The newest kept messages below the number asked about, oldest first, as stored (with
    /// the name each author had when posting).
    pub messages: Vec<Message>,
    /// What lies above the oldest of them: more kept messages, the room's beginning, or the
    /// point where retention cut the rest.
    pub top: HistoryTop,
}

/// A read of one user's read positions, by room, run off the hub's lock.
pub type ReadsRead = Pin<Box<dyn Future<Output = Result<Vec<(Room, u64)>, StoreError>> + Send>>;

/// A read of older messages, run off the hub's lock.
pub type ArchiveRead = Pin<Box<dyn Future<Output = Result<ArchivePage, StoreError>> + Send>>;

/// A look-up of the stored message carrying an attachment, run off the hub's lock.
pub type ArchiveCarrier = Pin<Box<dyn Future<Output = Result<Option<Message>, StoreError>> + Send>>;

/// A look-up of which attachments stored messages carry, run off the hub's lock.
pub type ArchiveCarried = Pin<Box<dyn Future<Output = Result<HashSet<FileId>, StoreError>> + Send>>;

/// A search of an archive's messages by words.
#[derive(Clone, Debug)]
pub struct ArchiveSearch {
    /// Every one of these words must be in a message's text.
    pub terms: SearchTerms,
    /// Who searches: only channels and this user's own private conversations are searched.
    pub reader: UserId,
    /// Only messages with a lower id (older ones): where the previous page ended.
    pub before: Option<MessageId>,
    /// Most messages returned.
    pub limit: usize,
}

/// What a search of the archive found: messages newest (highest id) first, as stored.
pub type ArchiveFound = Pin<Box<dyn Future<Output = Result<Vec<Message>, StoreError>> + Send>>;

/// Where a durable store's older messages are read from: a connection of its own, so a read
/// never waits behind the writer or the hub's lock, nor they behind it.
pub trait Archive: Send + Sync + 'static {
    /// At most `limit` messages of `room` numbered below `before`, newest ones first picked,
    /// returned oldest first.
    fn before(&self, room: &Room, before: u64, limit: usize) -> ArchiveRead;
    /// The newest messages holding every word of `search.terms`, through the store's own
    /// full-text index, among the channels and the reader's own private conversations.
    fn search(&self, search: ArchiveSearch) -> ArchiveFound;
    /// The stored message carrying the attachment `id`, if the archive holds one (it holds
    /// every stored message, the ring's too): one read of an index on the attachment's id.
    fn carrier(&self, id: &FileId) -> ArchiveCarrier;
    /// Which of `ids` a stored message carries (the start-up sweep's question), through the
    /// same index.
    fn carried(&self, ids: Vec<FileId>) -> ArchiveCarried;
}

/// An [`ArchivePage`] from what an archive read: up to `limit + 1` messages below the number
/// asked about, newest first, where `floor` is the lowest number the room still keeps. The
/// extra message only tells that there is more.
pub(crate) fn archive_page(
    mut newest_first: Vec<Message>,
    limit: usize,
    floor: u64,
) -> ArchivePage {
    let top = if newest_first.len() > limit {
        newest_first.truncate(limit);
        HistoryTop::More
    } else if floor <= 1 {
        HistoryTop::Beginning
    } else {
        HistoryTop::NotKept
    };
    newest_first.reverse();
    ArchivePage {
        messages: newest_first,
        top,
    }
}

/// The in-memory mode: nothing is written anywhere, everything is lost on restart, and each
/// start has a new epoch.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }
    fn put_channel(&self, _: &ChannelInfo) -> Durable {
        Durable::done(Ok(()))
    }
    fn put_user(&self, _: &UserInfo, _: &TokenHash) -> Durable {
        Durable::done(Ok(()))
    }
    fn rename_user(&self, _: &UserInfo) -> Durable {
        Durable::done(Ok(()))
    }
    fn put_message(&self, _: &Message) -> Durable {
        Durable::done(Ok(()))
    }
    fn delete_message(&self, _: &Room, _: MessageId) -> Durable {
        Durable::done(Ok(()))
    }
    fn edit_message(&self, _: &Message) -> Durable {
        Durable::done(Ok(()))
    }
}

/// What a store read at opening, handed to the hub once ([`Store::load`]).
pub(crate) fn load_once(loaded: &std::sync::Mutex<Option<Loaded>>) -> Result<Loaded, StoreError> {
    loaded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| StoreError("the store was already loaded".into()))
}

/// One change handed to a write-behind store's writer (the SQLite and PostgreSQL stores
/// share this vocabulary; each writer says how it writes each kind).
pub(crate) enum Change {
    Message(Message),
    Delete(Room, MessageId),
    /// A message as edited or reacted to, replacing the stored one with its id.
    Edit(Message),
    Channel(ChannelInfo),
    User(UserInfo, TokenHash),
    Rename(UserInfo),
    /// A user's read position in a room.
    Read(UserId, Room, u64),
    /// Writes nothing; reports whether every change since the last barrier was stored.
    Barrier,
    /// Writes something of its own, so it needs what any change needs (the database's write
    /// lock, a live connection); reports whether its batch committed (a readiness check).
    Ping,
}

/// A change, and who hears how it went.
pub(crate) struct Job {
    pub(crate) change: Change,
    pub(crate) written: Written,
}

/// A writer's reporting of outcomes: each job hears its own, and a barrier hears whether
/// every change since the previous barrier was stored.
#[derive(Default)]
pub(crate) struct Reports {
    failed_since_barrier: bool,
    /// A change failed since the store was opened.
    pub(crate) failed_ever: bool,
}

impl Reports {
    /// Tells each job of a batch how it went: `outcome` is each change's result after the
    /// commit, or the error that failed the whole batch.
    pub(crate) fn report(
        &mut self,
        batch: Vec<Job>,
        outcome: &Result<Vec<Result<(), StoreError>>, StoreError>,
    ) {
        for (i, job) in batch.into_iter().enumerate() {
            let result = match outcome {
                Ok(each) => each[i].clone(),
                Err(e) => Err(e.clone()),
            };
            if let Change::Barrier = job.change {
                let failed = std::mem::take(&mut self.failed_since_barrier);
                job.written.report(match result {
                    Ok(()) if failed => Err(StoreError(
                        "a change before this point could not be stored".into(),
                    )),
                    other => other,
                });
                continue;
            }
            if let Err(e) = &result {
                tracing::error!(error = %e, "a change could not be stored");
                self.failed_since_barrier = true;
                self.failed_ever = true;
            }
            job.written.report(result);
        }
    }
}

/// The [`Store`] methods of a write-behind store, each handing its change to the store's
/// `write_behind`: written once for every such store.
macro_rules! write_behind_methods {
    () => {
        fn put_channel(
            &self,
            channel: &$crate::chat::model::ChannelInfo,
        ) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::Channel(channel.clone()))
        }

        fn put_user(
            &self,
            user: &$crate::chat::model::UserInfo,
            token_hash: &$crate::chat::store::TokenHash,
        ) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::User(user.clone(), *token_hash))
        }

        fn rename_user(
            &self,
            user: &$crate::chat::model::UserInfo,
        ) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::Rename(user.clone()))
        }

        fn put_message(
            &self,
            message: &$crate::chat::model::Message,
        ) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::Message(message.clone()))
        }

        fn delete_message(
            &self,
            room: &$crate::chat::model::Room,
            id: $crate::chat::model::MessageId,
        ) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::Delete(room.clone(), id))
        }

        fn edit_message(
            &self,
            message: &$crate::chat::model::Message,
        ) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::Edit(message.clone()))
        }

        fn put_read(
            &self,
            user: $crate::chat::model::UserId,
            room: &$crate::chat::model::Room,
            seq: u64,
        ) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::Read(user, room.clone(), seq))
        }

        fn barrier(&self) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::Barrier)
        }

        fn ping(&self) -> $crate::chat::store::Durable {
            self.write_behind($crate::chat::store::Change::Ping)
        }
    };
}
pub(crate) use write_behind_methods;

/// What the SQLite and PostgreSQL stores' tests share: one behaviour, checked on each.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::chat::model::{Attachment, ChannelName, DisplayName, MessageBody, Timestamp};
    use std::sync::Mutex;

    /// A file carried by message `n` of a test.
    pub(crate) fn file(n: u64) -> Attachment {
        Attachment {
            id: FileId::parse(&format!("{n:032x}")).expect("32 hex digits"),
            name: format!("f{n}.png"),
            size: 8,
            content_type: "image/png".into(),
            image: true,
        }
    }

    /// On `store`, opened and loaded with rings of 100 and keeping 150 messages a room:
    /// the archive finds the message carrying a file long after it left the window, and
    /// says which of several files stored messages carry; the message retention then lets
    /// go of hands its file to the deleter once that is committed (not before), and the
    /// file is found no more. `runtime` runs the archive's reads.
    pub(crate) fn files_are_found_then_released_by_retention(
        store: &dyn Store,
        runtime: &tokio::runtime::Runtime,
    ) {
        let released = Arc::new(Mutex::new(Vec::new()));
        let into = released.clone();
        store.release_files_with(Arc::new(move |ids| {
            into.lock().unwrap_or_else(|e| e.into_inner()).extend(ids);
        }));
        let room = Room::Channel(ChannelName::parse("general").expect("a valid name"));
        let post = |seq: u64, attachment: Option<Attachment>| {
            let message = Message {
                id: MessageId(seq),
                room: room.clone(),
                seq,
                author: UserInfo {
                    id: UserId(1),
                    name: DisplayName::parse("ada").expect("a valid name"),
                },
                body: MessageBody::parse(&format!("m{seq}"), 100).expect("a valid body"),
                attachment,
                sent_at: Timestamp::now(),
                edited_at: None,
                reactions: Vec::new(),
                reply: None,
            };
            store.put_message(&message).wait_blocking().expect("stored");
        };
        post(1, Some(file(1)));
        for seq in 2..=150 {
            post(seq, None);
        }
        let archive = store.archive().expect("an archive");
        let carrier = runtime
            .block_on(archive.carrier(&file(1).id))
            .expect("read");
        assert_eq!(
            carrier.map(|m| (m.id, m.attachment)),
            Some((MessageId(1), Some(file(1))))
        );
        let carried = runtime
            .block_on(archive.carried(vec![file(1).id, file(2).id]))
            .expect("read");
        assert_eq!(carried, [file(1).id].into_iter().collect());
        assert!(released.lock().expect("a list").is_empty(), "still kept");

        post(151, None);
        assert_eq!(*released.lock().expect("a list"), [file(1).id]);
        let carrier = runtime
            .block_on(archive.carrier(&file(1).id))
            .expect("read");
        assert_eq!(carrier, None);
    }
}
