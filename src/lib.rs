//! Flack: a real-time team chat, one full-stack Leptos application.
//!
//! The same crate builds twice: with feature `ssr` as the server (axum, server-side
//! rendering, the WebSocket endpoint and the chat hub) and with feature `hydrate` as the
//! browser's WebAssembly (hydrates the server's HTML and opens the live connection).
//!
//! # Layout
//! - [`chat`]: the domain. Validated names and messages ([`chat::model`]), the 100-message
//!   history ([`chat::history`]) and the hub that owns all chat state (`chat::hub`, server
//!   only). It imports nothing below.
//! - [`api`]: the server functions the components call (registration, channels, history).
//! - [`protocol`]: the WebSocket events, one enum per direction, shared by both sides.
//! - `server`: server only: configuration, the router, the WebSocket endpoint, `serve`.
//! - [`app`]: the components and the browser's chat client.
//!
//! Dependencies point one way: `server` → `app` / `api` / `protocol` → `chat`.
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
