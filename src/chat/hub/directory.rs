//! The user directory: who is registered, under which (unique) display name, which token hash
//! proves it, and each user's live connections and allowances.

use super::outbox::ConnId;
use super::HubSettings;
use crate::chat::model::{
    ChatError, DisplayName, LookAlike, Message, MessageId, RoomKey, UserId, UserInfo,
};
use crate::chat::rate::TokenBucket;
use crate::chat::store::TokenHash;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

/// Every registered user, found by id, by token hash or by what their name looks like.
pub(super) struct Directory {
    pub(super) users: HashMap<UserId, UserEntry>,
    pub(super) by_token: HashMap<TokenHash, UserId>,
    /// Who holds a name that looks like this (invariant 4). One holder, except for users
    /// stored before look-alikes were refused: they all keep their names, and no one else
    /// may take a name like theirs.
    by_name: HashMap<LookAlike, Vec<UserId>>,
    next_user_id: u64,
}

pub(super) struct UserEntry {
    pub(super) info: UserInfo,
    /// Live connections authenticated as this user.
    pub(super) conns: HashSet<ConnId>,
    /// How fast this user may post, across all their connections.
    pub(super) messages: TokenBucket,
    /// How fast this user may create channels.
    pub(super) channels: TokenBucket,
    /// How fast this user may join channels (each join may announce presence to everyone
    /// there).
    pub(super) joins: TokenBucket,
    /// How fast this user may change their name (each rename goes to every connection).
    pub(super) renames: TokenBucket,
    /// How fast this user may start private conversations.
    pub(super) directs: TokenBucket,
    /// How fast this user may move read positions (each is stored, and sent to all their
    /// connections).
    pub(super) reads: TokenBucket,
    /// How fast this user may search messages (each search reads the store's index).
    pub(super) searches: TokenBucket,
    /// How often this user's typing notices go out.
    pub(super) typing: super::typing::Typing,
    /// This user's latest posts that carried a `client_ref` (one instance; the cluster's
    /// database keeps its own), newest last: a post sent again under one of these refs,
    /// because its `ack` was lost with the connection, is answered with the first.
    recent_posts: VecDeque<(String, RoomKey, MessageId)>,
}

/// How many of a user's latest referenced posts are remembered ([`UserEntry`]): more than a
/// browser holds unacknowledged at once.
const RECENT_POSTS: usize = 32;

/// The longest `client_ref` remembered (the browser's are about 20 characters); a post with a
/// longer one is never taken for a repeat.
const MAX_REMEMBERED_REF: usize = 64;

impl UserEntry {
    fn new(info: UserInfo, limits: &HubSettings) -> UserEntry {
        let now = super::now();
        UserEntry {
            info,
            conns: HashSet::new(),
            messages: TokenBucket::new(
                limits.messages_per_second,
                Duration::from_secs(1),
                limits.message_burst,
                now,
            ),
            channels: TokenBucket::new(
                limits.channels_per_minute,
                Duration::from_secs(60),
                limits.channels_per_minute,
                now,
            ),
            joins: TokenBucket::new(
                limits.joins_per_second,
                Duration::from_secs(1),
                limits.join_burst,
                now,
            ),
            renames: TokenBucket::new(
                limits.renames_per_minute,
                Duration::from_secs(60),
                limits.renames_per_minute,
                now,
            ),
            directs: TokenBucket::new(
                limits.directs_per_minute,
                Duration::from_secs(60),
                limits.directs_per_minute,
                now,
            ),
            reads: TokenBucket::new(
                super::reads::READS_PER_SECOND,
                Duration::from_secs(1),
                super::reads::READ_BURST,
                now,
            ),
            searches: TokenBucket::new(
                super::search::SEARCHES_PER_SECOND,
                Duration::from_secs(1),
                super::search::SEARCH_BURST,
                now,
            ),
            typing: super::typing::Typing::new(now),
            recent_posts: VecDeque::new(),
        }
    }
}

/// The things a user has an allowance of: each is a [`TokenBucket`] of theirs, shared by
/// all their connections, and refused with its own error when empty.
#[derive(Clone, Copy, Debug)]
pub(super) enum Allowance {
    Messages,
    Channels,
    Joins,
    Renames,
    Directs,
    Reads,
    Searches,
}

/// Hashes a session token for lookup and storage.
pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A new session token: 256 random bits, hex-encoded.
pub(super) fn new_token() -> Result<String, ChatError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a session token");
        ChatError::Unavailable("could not create a session".into())
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Directory {
    pub(super) fn new() -> Directory {
        Directory {
            users: HashMap::new(),
            by_token: HashMap::new(),
            by_name: HashMap::new(),
            next_user_id: 1,
        }
    }

    /// Adds a user loaded from the store or just registered.
    pub(super) fn insert(&mut self, info: UserInfo, token_hash: TokenHash, limits: &HubSettings) {
        self.next_user_id = self.next_user_id.max(info.id.0 + 1);
        self.by_token.insert(token_hash, info.id);
        self.claim(&info);
        self.users.insert(info.id, UserEntry::new(info, limits));
    }

    /// The id the next registered user gets.
    pub(super) fn next_id(&self) -> UserId {
        UserId(self.next_user_id)
    }

    /// The user a token belongs to.
    pub(super) fn by_token(&self, token: &str) -> Result<&UserEntry, ChatError> {
        self.by_token
            .get(&hash_token(token))
            .and_then(|id| self.users.get(id))
            .ok_or(ChatError::Unauthorized)
    }

    /// Takes one action from `user`'s allowance, or refuses with that allowance's error.
    pub(super) fn allow(&mut self, user: UserId, allowance: Allowance) -> Result<(), ChatError> {
        let entry = self.users.get_mut(&user).ok_or(ChatError::Unauthorized)?;
        let (bucket, refusal) = match allowance {
            Allowance::Messages => (&mut entry.messages, ChatError::RateLimited),
            Allowance::Channels => (&mut entry.channels, ChatError::ChannelRateLimited),
            Allowance::Joins => (&mut entry.joins, ChatError::JoinRateLimited),
            Allowance::Renames => (&mut entry.renames, ChatError::RenameRateLimited),
            Allowance::Directs => (&mut entry.directs, ChatError::DirectRateLimited),
            Allowance::Reads => (&mut entry.reads, ChatError::ReadRateLimited),
            Allowance::Searches => (&mut entry.searches, ChatError::SearchRateLimited),
        };
        if bucket.try_take(super::now()) {
            Ok(())
        } else {
            Err(refusal)
        }
    }

    /// The user's public description, if they exist.
    pub(super) fn info(&self, user: UserId) -> Option<UserInfo> {
        self.users.get(&user).map(|u| u.info.clone())
    }

    /// Records that `info`'s user holds their name.
    fn claim(&mut self, info: &UserInfo) {
        self.by_name
            .entry(info.name.look_alike())
            .or_default()
            .push(info.id);
    }

    /// The message `user` already posted in `room` under `client_ref`, if it is among their
    /// latest ([`RECENT_POSTS`]).
    pub(super) fn posted_as(
        &self,
        user: UserId,
        room: &RoomKey,
        client_ref: &str,
    ) -> Option<MessageId> {
        let entry = self.users.get(&user)?;
        entry
            .recent_posts
            .iter()
            .find(|(r, k, _)| r == client_ref && k == room)
            .map(|(_, _, id)| *id)
    }

    /// Remembers that `user` posted `id` in `room` under `client_ref`.
    pub(super) fn remember_post(
        &mut self,
        user: UserId,
        room: RoomKey,
        client_ref: &str,
        id: MessageId,
    ) {
        if client_ref.len() > MAX_REMEMBERED_REF {
            return;
        }
        if let Some(entry) = self.users.get_mut(&user) {
            if entry.recent_posts.len() == RECENT_POSTS {
                entry.recent_posts.pop_front();
            }
            entry
                .recent_posts
                .push_back((client_ref.to_owned(), room, id));
        }
    }

    /// `messages` with each author's (and each reacting user's, and each quoted author's)
    /// current name: histories
    /// hold messages as they were posted and reacted to, and renames do not rewrite them, so
    /// every message leaving the hub passes here.
    pub(super) fn with_current_names(&self, mut messages: Vec<Message>) -> Vec<Message> {
        let current = |held: &mut UserInfo| {
            if let Some(user) = self.users.get(&held.id) {
                if user.info.name != held.name {
                    held.name = user.info.name.clone();
                }
            }
        };
        for message in &mut messages {
            current(&mut message.author);
            if let Some(reply) = &mut message.reply {
                current(&mut reply.author);
            }
            for reaction in &mut message.reactions {
                reaction.users.iter_mut().for_each(current);
            }
        }
        messages
    }

    /// Refuses `name` if a user other than `me` holds a name that looks like it (the same
    /// but for case, or a look-alike: see [`LookAlike`]), naming it as its holder spells it.
    pub(super) fn check_free(
        &self,
        name: &DisplayName,
        me: Option<UserId>,
    ) -> Result<(), ChatError> {
        let holders = self.by_name.get(&name.look_alike());
        match holders.and_then(|ids| ids.iter().find(|id| Some(**id) != me)) {
            Some(holder) => {
                let taken = self.users.get(holder).map(|u| u.info.name.to_string());
                Err(ChatError::DisplayNameTaken(
                    taken.unwrap_or_else(|| name.to_string()),
                ))
            }
            None => Ok(()),
        }
    }

    /// Gives a user a new name (already checked to be free).
    pub(super) fn rename(&mut self, info: &UserInfo) {
        let old = self
            .users
            .get_mut(&info.id)
            .map(|u| std::mem::replace(&mut u.info, info.clone()));
        if let Some(old) = old {
            let key = old.name.look_alike();
            if let Some(holders) = self.by_name.get_mut(&key) {
                holders.retain(|id| *id != info.id);
                if holders.is_empty() {
                    self.by_name.remove(&key);
                }
            }
        }
        self.claim(info);
    }
}
