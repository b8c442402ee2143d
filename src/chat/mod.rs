//! The chat domain: validated values, per-room history, rate limits, storage and the hub that
//! owns all chat state. No UI and no transport code lives here: nothing in `chat/` imports
//! `protocol`, `api`, `server` or `app`.

#[cfg(feature = "ssr")]
pub mod cluster;
pub mod event;
pub mod history;
#[cfg(feature = "ssr")]
pub mod hub;
pub mod model;
#[cfg(feature = "ssr")]
pub mod postgres;
#[cfg(feature = "ssr")]
pub mod rate;
#[cfg(feature = "ssr")]
pub mod replica;
#[cfg(feature = "ssr")]
pub mod sqlite;
#[cfg(feature = "ssr")]
pub mod store;
pub mod timestamp;
