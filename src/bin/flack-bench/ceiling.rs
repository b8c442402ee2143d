//! The ceiling to compare with: a bare broadcast server (axum WebSocket and a tokio broadcast
//! channel; no validation, no storage, no application logic). Every text frame one client
//! sends goes to every connected client, itself included.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio::sync::broadcast;

/// Serves the ceiling on `addr` until the process is killed.
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let (tx, _) = broadcast::channel::<axum::extract::ws::Utf8Bytes>(4096);
    let app = Router::new().route("/ws", get(upgrade)).with_state(tx);
    // TCP_NODELAY, as Flack sets it: the comparison is about the work per frame.
    let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(tx): State<broadcast::Sender<axum::extract::ws::Utf8Bytes>>,
) -> Response {
    // The same small read buffer Flack uses (its `READ_BUFFER_BYTES`), so idle memory and
    // the buffer cleared before each read compare like for like.
    ws.read_buffer_size(1024)
        .on_upgrade(move |socket| connection(socket, tx))
}

async fn connection(socket: WebSocket, tx: broadcast::Sender<axum::extract::ws::Utf8Bytes>) {
    let mut rx = tx.subscribe();
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let _ = tx.send(text);
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
}
