//! The live connection: takes over the socket the page opened early (or opens one), hands
//! each server event to the client, and reconnects after it drops, waiting longer after each
//! failed attempt.

use super::{ChatClient, ConnStatus, EARLY_SOCKET};
use crate::protocol::{ClientEvent, ServerEvent, WS_PATH};
use leptos::prelude::*;
use std::time::Duration;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{MessageEvent, WebSocket};

/// An open socket and the callbacks it holds (dropped together).
pub struct Live {
    ws: WebSocket,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Live {
    /// Sends an event if the socket is open.
    pub fn send(&self, event: &ClientEvent) {
        if self.ws.ready_state() == WebSocket::OPEN {
            if let Err(e) = self.ws.send_with_str(&event.encode()) {
                leptos::logging::warn!("send failed: {e:?}");
            }
        }
    }
}

/// The socket's address on the site the page came from (`wss:` when the page is `https:`).
fn socket_url() -> Option<String> {
    let location = window().location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}{WS_PATH}", location.host().ok()?))
}

/// The socket the page opened early, with the frames it has queued, unless it has closed or
/// was already taken (a reconnect opens a new one).
fn take_early_socket() -> Option<(WebSocket, js_sys::Array)> {
    use js_sys::Reflect;
    let window = window();
    let key = JsValue::from_str(EARLY_SOCKET);
    let early = Reflect::get(&window, &key).ok()?;
    let _ = Reflect::delete_property(&window, &key);
    let ws: WebSocket = Reflect::get(&early, &"socket".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let queued: js_sys::Array = Reflect::get(&early, &"queued".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let state = ws.ready_state();
    (state == WebSocket::CONNECTING || state == WebSocket::OPEN).then_some((ws, queued))
}

/// What the client does when its socket opens: sign in, ask for the unread summary, join
/// the room on screen and send read positions that moved while it was closed.
fn opened(client: ChatClient) {
    client.attempts.set_value(0);
    client.status.set(ConnStatus::Connected);
    if let Some(token) = client
        .session
        .with_untracked(|s| s.as_ref().map(|s| s.token.clone()))
    {
        client.send_event(&ClientEvent::Auth { token });
        // The unread summary (and its news) for the sidebar, the title and the divider.
        client.send_event(&ClientEvent::Unread);
    }
    client.join_current();
    // Read positions moved while the socket was closed.
    client.send_reads(true);
}

/// One frame from the server.
fn received(client: ChatClient, text: &str) {
    match ServerEvent::decode(text) {
        Ok(event) => client.apply(event),
        Err(e) => leptos::logging::warn!("ignoring an event: {e}"),
    }
}

/// Wires the socket's events to the client (the page's early socket the first time, a new
/// one after that); reconnects after it drops.
pub fn connect(client: ChatClient) {
    let (ws, queued) = match take_early_socket() {
        Some((ws, queued)) => (ws, Some(queued)),
        None => {
            let Some(url) = socket_url() else { return };
            match WebSocket::new(&url) {
                Ok(ws) => (ws, None),
                Err(e) => {
                    leptos::logging::warn!("cannot open {url}: {e:?}");
                    schedule_reconnect(client);
                    return;
                }
            }
        }
    };
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| opened(client));
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let event: MessageEvent = event.unchecked_into();
        if let Some(text) = event.data().as_string() {
            received(client, &text);
        }
    });
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        client.status.set(ConnStatus::Reconnecting);
        // Messages not yet answered may never be: they go back to their boxes.
        client.connection_lost();
        schedule_reconnect(client);
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    client.socket.set_value(Some(Live {
        ws: ws.clone(),
        _handlers: vec![on_open, on_message, on_close],
    }));
    // An early socket that has already opened missed `opened`; what it queued came after the
    // opening. Both happen here, in the task that installed the handlers, so no frame can
    // arrive in between or out of order.
    if let Some(queued) = queued {
        if ws.ready_state() == WebSocket::OPEN {
            opened(client);
        }
        for text in queued.iter() {
            if let Some(text) = text.as_string() {
                received(client, &text);
            }
        }
    }
}

/// Reconnects after a delay that grows with each failed attempt (0.25 s up to 5 s).
fn schedule_reconnect(client: ChatClient) {
    let attempt = client.attempts.get_value();
    client.attempts.set_value(attempt.saturating_add(1));
    let delay = Duration::from_millis((250u64 << attempt.min(5)).min(5000));
    set_timeout(
        move || {
            // Dropping the old socket's callbacks here, outside them, is safe.
            client.socket.set_value(None);
            connect(client);
        },
        delay,
    );
}
