//! Flack: a real-time team chat, one full-stack Leptos application.
//!
//! The same crate builds twice: with feature `ssr` as the server (axum, server-side
//! rendering, the WebSocket endpoint and the chat hub) and with feature `hydrate` as the
//! browser's WebAssembly (hydrates the server's HTML and opens the live connection).
//!
//! # Layout
//! - [`chat`]: the domain, with no UI and no transport. Validated values, one module per
//!   concept ([`chat::model`]), the 100-message history ([`chat::history`]), storage, and the
//!   hub that owns all chat state (`chat::hub`, server only, split by concern under one lock).
//!   The hub emits domain events and is handed the encoder that turns them into frames.
//! - [`protocol`]: the WebSocket events, one enum per direction, shared by both sides; it
//!   also supplies the hub's encoder.
//! - [`api`]: the server functions the components call (registration, channels, history).
//! - [`app`]: the components, one per file, the page addresses (`app::nav`) and the
//!   browser's chat client (`app::client`).
//! - `server`: server only: configuration (each setting declared once), the router, the
//!   WebSocket endpoint, uploads, the page cache, `serve`.
//!
//! Dependencies point one way: `server` → `app` / `api` / `protocol` → `chat`
//! (`tests/architecture.rs` checks it).
//! Data flows one way: browser event → protocol → hub → fan-out → protocol → signals → view.

pub mod api;
pub mod app;
pub mod chat;
pub mod protocol;
#[cfg(feature = "ssr")]
pub mod server;

/// The browser entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
