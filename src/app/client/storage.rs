//! What the browser remembers between visits, in local storage: the session (who this
//! browser is), the address of the room the user was last in, and how far they had read in
//! each room.

use crate::app::nav::{channel_path, direct_path, Route};
use crate::chat::model::{Room, Session, UserId};
use crate::protocol::Cursor;
use gloo_storage::{LocalStorage, Storage};

const SESSION_KEY: &str = "flack.session";
const ROOM_KEY: &str = "flack.room";
/// One list for every room: pairs of the room, as written by `Room`'s `Display`, and the
/// cursor. (A list, not a map: a hash map would add its code to the WebAssembly for a few
/// dozen entries.)
const READ_KEY: &str = "flack.read";

/// The stored session, if one is stored.
pub fn stored_session() -> Option<Session> {
    LocalStorage::get(SESSION_KEY).ok()
}

/// Stores the session (display name, user id and token).
pub fn remember_session(session: &Session) {
    if let Err(e) = LocalStorage::set(SESSION_KEY, session) {
        leptos::logging::warn!("cannot store the session: {e}");
    }
}

/// Forgets a session the server no longer recognises.
pub fn forget_session() {
    LocalStorage::delete(SESSION_KEY);
}

/// The page of the last room the user was in, if one is stored and is a room's address.
pub fn stored_room_path() -> Option<String> {
    let path: String = LocalStorage::get(ROOM_KEY).ok()?;
    matches!(
        Route::from_path(&path),
        Route::Channel(_) | Route::Direct(Some(_))
    )
    .then_some(path)
}

/// Stores the room the user is in, as the address of its page.
pub fn remember_room(room: &Room, peer: Option<UserId>) {
    let path = match (room, peer) {
        (Room::Channel(name), _) => channel_path(name.as_str()),
        (Room::Direct(_), Some(peer)) => direct_path(peer),
        (Room::Direct(_), None) => return,
    };
    if let Err(e) = LocalStorage::set(ROOM_KEY, path) {
        leptos::logging::warn!("cannot store the room: {e}");
    }
}

/// How far the user had read in `room`, as last stored by [`remember_read`].
pub fn stored_read(room: &Room) -> Option<Cursor> {
    let read: Vec<(String, Cursor)> = LocalStorage::get(READ_KEY).ok()?;
    let room = room.to_string();
    read.into_iter()
        .find_map(|(r, cursor)| (r == room).then_some(cursor))
}

/// Stores how far the user has read in `room`.
pub fn remember_read(room: &Room, cursor: Cursor) {
    let mut read: Vec<(String, Cursor)> = LocalStorage::get(READ_KEY).unwrap_or_default();
    let room = room.to_string();
    read.retain(|(r, _)| *r != room);
    read.push((room, cursor));
    if let Err(e) = LocalStorage::set(READ_KEY, read) {
        leptos::logging::warn!("cannot store the read position: {e}");
    }
}
