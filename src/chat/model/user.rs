//! Users as others see them, and the session that proves who a browser is.

use super::name::DisplayName;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A registered user's server-assigned identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Most users a channel's online list shows: the first by name (without regard to case),
/// beside the number of everyone online there (the hub's invariant 8). Bounds what each
/// member is told, so a room of N members costs N lists of this size, not N².
pub const ONLINE_SHOWN: usize = 100;

/// A user as others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Never changes.
    pub id: UserId,
    /// Changes when the user renames themselves.
    pub name: DisplayName,
}

/// What the browser keeps after choosing a name: who it is and the secret that proves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: UserInfo,
    /// The bearer token: presented on the socket and to server functions; the server keeps
    /// only its hash.
    pub token: String,
}
