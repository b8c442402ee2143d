//! What the browser remembers between visits, in local storage: the session (who this
//! browser is), the address of the room the user was last in and the unsent draft of each
//! room. (How far the user has read is kept by the server.)

use super::drafts::Drafts;
use crate::app::nav::{channel_path, direct_path, Route};
use crate::chat::model::{Room, Session, UserId};
use gloo_storage::{LocalStorage, Storage};

const SESSION_KEY: &str = "flack.session";
const ROOM_KEY: &str = "flack.room";
const DRAFTS_KEY: &str = "flack.drafts";
/// Where an earlier version kept read positions (now the server's): removed when seen.
const OLD_READ_KEY: &str = "flack.read";

/// The stored session, if one is stored. Also drops what an earlier version stored about
/// read positions, which grew with every room visited.
pub fn stored_session() -> Option<Session> {
    LocalStorage::delete(OLD_READ_KEY);
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

/// The unsent draft stored for `room` ("" when there is none).
pub fn stored_draft(room: &Room) -> String {
    LocalStorage::get::<Drafts>(DRAFTS_KEY)
        .unwrap_or_default()
        .get(room)
        .to_owned()
}

/// Stores `text` as the draft for `room` (a blank one is forgotten).
pub fn remember_draft(room: &Room, text: &str) {
    let mut drafts: Drafts = LocalStorage::get(DRAFTS_KEY).unwrap_or_default();
    if drafts.get(room) == text {
        return;
    }
    drafts.set(room, text);
    if let Err(e) = LocalStorage::set(DRAFTS_KEY, drafts) {
        leptos::logging::warn!("cannot store the draft: {e}");
    }
}
