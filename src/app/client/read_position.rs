//! How far the reader has read in each room: what the "New" divider is drawn from.
//!
//! For now the position lives in this browser's local storage, so it does not follow the
//! reader to another browser. These two functions are the only way the UI reads and moves it,
//! so keeping it on the server instead means changing them and nothing else.

use crate::chat::model::Room;
use crate::protocol::Cursor;

/// Where the reader had read up to in `room` when last there (always `None` on the server,
/// which does not know).
pub fn last_read(room: &Room) -> Option<Cursor> {
    #[cfg(feature = "hydrate")]
    return super::storage::stored_read(room);
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = room;
        None
    }
}

/// Records that the reader has seen `room` up to `cursor`.
pub fn mark_read(room: &Room, cursor: Cursor) {
    #[cfg(feature = "hydrate")]
    super::storage::remember_read(room, cursor);
    #[cfg(not(feature = "hydrate"))]
    let _ = (room, cursor);
}
