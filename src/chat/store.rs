//! Where the hub keeps what must outlive the process: the [`Store`] trait, what it loads at
//! start-up, and the in-memory mode that keeps nothing. The SQLite store is in
//! [`super::sqlite`].

use super::model::{ChannelInfo, Message, MessageId, Room, UserInfo};

/// A store failure: the action that needed it did not happen.
#[derive(Debug, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StoreError(pub String);

/// The SHA-256 hash of a session token: all the hub and the store ever keep of it.
pub type TokenHash = [u8; 32];

/// One room as a store holds it.
#[derive(Debug)]
pub struct StoredRoom {
    /// The room.
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
}

/// Where the hub keeps what must outlive the process. Called with the hub's lock held, in the
/// order the hub applies changes; a failure cancels the change.
pub trait Store: Send + Sync + 'static {
    /// Reads everything back at start-up.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Records a new channel.
    fn put_channel(&self, channel: &ChannelInfo) -> Result<(), StoreError>;
    /// Records a new user.
    fn put_user(&self, user: &UserInfo, token_hash: &TokenHash) -> Result<(), StoreError>;
    /// Records a user's new display name.
    fn rename_user(&self, user: &UserInfo) -> Result<(), StoreError>;
    /// Records a new message; the store keeps the same most-recent window as the history.
    fn put_message(&self, message: &Message) -> Result<(), StoreError>;
    /// Forgets a deleted message.
    fn delete_message(&self, room: &Room, id: MessageId) -> Result<(), StoreError>;
}

/// The in-memory mode: nothing is written anywhere, everything is lost on restart, and each
/// start has a new epoch.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }
    fn put_channel(&self, _: &ChannelInfo) -> Result<(), StoreError> {
        Ok(())
    }
    fn put_user(&self, _: &UserInfo, _: &TokenHash) -> Result<(), StoreError> {
        Ok(())
    }
    fn rename_user(&self, _: &UserInfo) -> Result<(), StoreError> {
        Ok(())
    }
    fn put_message(&self, _: &Message) -> Result<(), StoreError> {
        Ok(())
    }
    fn delete_message(&self, _: &Room, _: MessageId) -> Result<(), StoreError> {
        Ok(())
    }
}
