//! Who is online in a channel, and what its members were told of it (the hub's invariant 8).
//!
//! Members see a window: the first [`ONLINE_SHOWN`] online users by name (without regard to
//! case) and the number of all of them. The room keeps an index of every online user by
//! name, so a join, a departure or a tick costs the same whatever the room's size, and it
//! remembers the window and count it last told its members: a `joined` carries that told
//! window, and each tick's `presence` turns it into the new one, so joiners and older
//! members always apply the same delta to the same base.

use super::directory::Directory;
use super::BIG_ROOM_TICK;
use crate::chat::model::{UserId, UserInfo, ONLINE_SHOWN};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// A channel's presence: who is here and elsewhere, the index by name, and what was told.
#[derive(Default)]
pub(super) struct Online {
    /// Authenticated users with a member connection here, and how many each has.
    here: HashMap<UserId, usize>,
    /// Cluster mode: users online in the channel through other instances, as Redis last
    /// said (see [`super::replicas`]).
    remote: HashSet<UserId>,
    /// The name key each online user is indexed under (here or elsewhere). Users the
    /// directory does not know yet (another instance's newest) are left out.
    keys: HashMap<UserId, String>,
    /// Every online user by name key: the window is the first [`ONLINE_SHOWN`].
    sorted: BTreeSet<(String, UserId)>,
    /// The window the members were last told (by `joined` and `presence`), sorted by name.
    told: Vec<UserInfo>,
    /// The count the members were last told.
    told_count: usize,
    /// Who is online may differ from what was told: a tick has something to check.
    changed: bool,
    /// Who is online changed since the last tick looked: the room is still busy.
    busy: bool,
    /// When the members were last sent a `presence`.
    told_at: Option<Instant>,
}

/// What a presence tick does for one room.
pub(super) enum Tell {
    /// Nothing changed.
    Nothing,
    /// A big room still busy and told within the last [`BIG_ROOM_TICK`]: a later tick
    /// tells it.
    Later,
    /// Send the members this delta: the told window becomes the new one.
    Delta {
        came: Vec<UserInfo>,
        went: Vec<UserInfo>,
        count: usize,
    },
}

impl Online {
    /// How many distinct users are online in the channel (here or elsewhere).
    pub(super) fn count(&self) -> usize {
        self.sorted.len()
    }

    /// True when `user` is online in the channel, here or through another instance.
    pub(super) fn is_online(&self, user: UserId) -> bool {
        self.keys.contains_key(&user)
    }

    /// The users with a member connection here.
    pub(super) fn here(&self) -> impl Iterator<Item = UserId> + '_ {
        self.here.keys().copied()
    }

    /// True when some user is online through another instance.
    pub(super) fn has_remote(&self) -> bool {
        !self.remote.is_empty()
    }

    /// Counts a member connection of `user`; true if it is their first here.
    pub(super) fn add_here(&mut self, user: UserId, directory: &Directory) -> bool {
        let count = self.here.entry(user).or_default();
        *count += 1;
        if *count > 1 {
            return false;
        }
        if !self.remote.contains(&user) {
            self.index(user, directory);
        }
        true
    }

    /// Uncounts a member connection of `user`; true if it was their last here.
    pub(super) fn remove_here(&mut self, user: UserId) -> bool {
        let Some(count) = self.here.get_mut(&user) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        self.here.remove(&user);
        if !self.remote.contains(&user) {
            self.unindex(user);
        }
        true
    }

    /// Replaces who is online through other instances; true if who is online changed.
    pub(super) fn set_remote(&mut self, users: HashSet<UserId>, directory: &Directory) -> bool {
        if self.remote == users {
            return false;
        }
        let before = std::mem::replace(&mut self.remote, users);
        let mut changed = false;
        let moved: Vec<UserId> = before.symmetric_difference(&self.remote).copied().collect();
        for user in moved {
            if self.here.contains_key(&user) {
                continue;
            }
            changed = true;
            if self.remote.contains(&user) {
                self.index(user, directory);
            } else {
                self.unindex(user);
            }
        }
        changed
    }

    /// Takes `user`'s new name: their place in the index (and in the told window, whose
    /// names `joined` carries) moves with it. True if they are online here.
    pub(super) fn renamed(&mut self, user: &UserInfo) -> bool {
        let Some(old) = self.keys.get_mut(&user.id) else {
            return false;
        };
        let key = user.name.key();
        self.sorted
            .remove(&(std::mem::replace(old, key.clone()), user.id));
        self.sorted.insert((key, user.id));
        if let Some(told) = self.told.iter_mut().find(|u| u.id == user.id) {
            told.name = user.name.clone();
            self.told.sort_by_cached_key(|u| u.name.key());
        }
        self.changed = true;
        self.busy = true;
        true
    }

    /// The window and count the members were last told: what a `joined` carries.
    pub(super) fn told(&self) -> (Vec<UserInfo>, usize) {
        (self.told.clone(), self.told_count)
    }

    /// Makes the told window the current one without telling anyone: for a room with no
    /// member, where nobody holds the old one. True if it changed (a snapshot's list with
    /// it).
    pub(super) fn retell_unheard(&mut self, directory: &Directory) -> bool {
        self.busy = false;
        if !std::mem::take(&mut self.changed) {
            // Unchanged since the last tell (or retelling).
            return false;
        }
        let window = self.window(directory);
        if window == self.told && self.count() == self.told_count {
            return false;
        }
        self.told = window;
        self.told_count = self.count();
        true
    }

    /// What a presence tick does (invariant 8): the delta from the told window and count to
    /// the current ones, which become the told ones, unless nothing changed, or the room is
    /// big (more than [`ONLINE_SHOWN`] online), changed again since the last tick looked,
    /// and was told less than [`BIG_ROOM_TICK`] ago. Costs the window's size, not the
    /// room's.
    pub(super) fn tell(&mut self, directory: &Directory, now: Instant) -> Tell {
        let busy = std::mem::take(&mut self.busy);
        if !self.changed {
            return Tell::Nothing;
        }
        let recently = self
            .told_at
            .is_some_and(|at| now.saturating_duration_since(at) < BIG_ROOM_TICK);
        if self.count() > ONLINE_SHOWN && busy && recently {
            return Tell::Later;
        }
        self.changed = false;
        let window = self.window(directory);
        let count = self.count();
        let ids = |list: &[UserInfo]| list.iter().map(|u| u.id).collect::<HashSet<_>>();
        let (old, new) = (ids(&self.told), ids(&window));
        let came: Vec<UserInfo> = window
            .iter()
            .filter(|u| !old.contains(&u.id))
            .cloned()
            .collect();
        let went: Vec<UserInfo> = self
            .told
            .iter()
            .filter(|u| !new.contains(&u.id))
            .cloned()
            .collect();
        if came.is_empty() && went.is_empty() && count == self.told_count {
            return Tell::Nothing;
        }
        self.told = window;
        self.told_count = count;
        self.told_at = Some(now);
        Tell::Delta { came, went, count }
    }

    /// The first [`ONLINE_SHOWN`] online users, by name.
    fn window(&self, directory: &Directory) -> Vec<UserInfo> {
        self.sorted
            .iter()
            .take(ONLINE_SHOWN)
            .filter_map(|(_, id)| directory.info(*id))
            .collect()
    }

    fn index(&mut self, user: UserId, directory: &Directory) {
        let Some(info) = directory.info(user) else {
            return;
        };
        let key = info.name.key();
        self.sorted.insert((key.clone(), user));
        self.keys.insert(user, key);
        self.changed = true;
        self.busy = true;
    }

    fn unindex(&mut self, user: UserId) {
        if let Some(key) = self.keys.remove(&user) {
            self.sorted.remove(&(key, user));
            self.changed = true;
            self.busy = true;
        }
    }
}
