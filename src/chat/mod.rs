//! The chat domain: validated values, per-channel history, the hub that owns all chat state,
//! and the server functions the UI calls. No UI and no transport code lives here.

pub mod api;
pub mod history;
#[cfg(feature = "ssr")]
pub mod hub;
pub mod model;
#[cfg(feature = "ssr")]
pub mod rate;
#[cfg(feature = "ssr")]
pub mod sqlite;
#[cfg(feature = "ssr")]
pub mod store;
pub mod timestamp;
