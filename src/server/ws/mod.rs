//! The WebSocket endpoint: decodes client events, hands them to the hub, and writes the
//! connection's outbox to the socket. Per socket: a reader, a writer, and a watch on the
//! clock and the server, each woken only by what it waits for.

use super::config::LimitsSection;
use super::AppState;
use crate::chat::cluster::{ClusterHandle, Shared};
use crate::chat::hub::{ConnId, Connection, Frame, Hub, Outbox, OutboxRx, Saved};
use crate::chat::model::{ChatError, Message};
use crate::chat::rate::TokenBucket;
use crate::protocol::{ClientEvent, ProtocolError, ServerEvent};
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub(crate) mod admission;
pub(crate) mod backlog;

use self::admission::{client_ip, IpSlot};
use self::backlog::{wire_bytes, Backlog, SocketQueue};
use super::guard::origin_allowed;

/// Malformed frames in a row after which a client is disconnected.
const MAX_CONSECUTIVE_BAD_FRAMES: u32 = 10;
/// Close code for a client that broke the protocol (RFC 6455 "policy violation").
const CLOSE_POLICY: u16 = 1008;
/// Initial read buffer per connection; small, so idle connections stay cheap. Also what is
/// zeroed before each attempt to read (the WebSocket library clears the space it reads into),
/// and the connection's task tries whenever it wakes, for a frame to write too: at 4,096
/// bytes that clearing was 2% of the server's CPU in a busy room (BENCHMARKS.md, issue 19
/// item 3). A client's events are mostly far smaller; a larger one takes a few reads.
const READ_BUFFER_BYTES: usize = 1024;
/// Close code for a server that is shutting down (RFC 6455 "going away").
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a client too slow to take its frames.
const CLOSE_TRY_AGAIN: u16 = 1013;
/// Close code for a connection whose client sent no event for `limits.idle_after_secs`
/// (application range; the client may reconnect at once).
const CLOSE_IDLE: u16 = 4000;
/// Most frames written with one flush.
const BATCH_FRAMES: usize = 64;
/// Bytes after which a batch takes no more frames.
const BATCH_BYTES: usize = 256 * 1024;
/// How long one batch of frames may take to be written before the client counts as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection may take to flush its last frames.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long the server keeps reading after its close frame, waiting for the client's reply.
/// Closing the TCP connection while the client's frames (say, a pong) are still unread makes
/// the kernel reset it, and the client may then lose the close frame and its reason.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Per-connection settings, from the configuration's `[limits]`.
#[derive(Clone, Copy)]
struct Settings {
    /// `outbox_frames`.
    capacity: usize,
    /// `outbox_bytes`.
    outbox_bytes: usize,
    heartbeat: Duration,
    dead_after: Duration,
    idle_after: Duration,
    /// `behind_after`: how old the oldest byte the reader has not taken may grow before the
    /// connection counts as behind.
    behind_after: Duration,
    /// `joins_per_second` and `join_burst`: how fast the reader applies the events that cost
    /// more than they look (`auth`, `join`, `leave`, `rename`).
    joins_per_second: u32,
    join_burst: u32,
}

impl Settings {
    fn from_limits(limits: &LimitsSection) -> Settings {
        Settings {
            capacity: limits.outbox_frames,
            outbox_bytes: limits.outbox_bytes,
            heartbeat: limits.heartbeat,
            dead_after: limits.dead_after,
            idle_after: limits.idle_after,
            behind_after: limits.behind_after,
            joins_per_second: limits.joins_per_second,
            join_burst: limits.join_burst,
        }
    }
}

/// Upgrades `GET /ws` to a WebSocket speaking the Flack protocol, after checking that the
/// page asking is one of ours (cross-site WebSocket hijacking) and that its address has not
/// too many connections open already.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    socket_queue: Option<Extension<SocketQueue>>,
    headers: HeaderMap,
) -> Response {
    if !origin_allowed(&headers, &state.config.server.allowed_origins) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "refused a WebSocket from another site");
        return (
            StatusCode::FORBIDDEN,
            axum::Json(crate::chat::model::ChatError::CrossSite),
        )
            .into_response();
    }
    let client = client_ip(peer.ip(), &headers, &state.config.server.trusted_proxies);
    let Some(slot) = IpSlot::take(&state, client) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(crate::chat::model::ChatError::TooManyConnections),
        )
            .into_response();
    };
    let max = state.config.limits.max_frame_bytes;
    let settings = Settings::from_limits(&state.config.limits);
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_frame_size(max)
        .max_message_size(max)
        .on_upgrade(move |socket| async move {
            let socket_queue = socket_queue.map(|Extension(queue)| queue);
            let serving = Serving {
                hub: state.hub,
                settings,
                stopping: state.stopping,
                cluster: state.cluster,
                socket_queue,
            };
            run_connection(socket, serving).await;
            drop(slot);
        })
}

/// What a connection's reader and watch share (the writer, a task of its own, holds its
/// own [`Writer`]).
#[derive(Clone, Copy)]
struct Link<'a> {
    hub: &'a Hub,
    conn: &'a Connection,
    outbox: &'a Outbox,
    settings: Settings,
    /// Any frame, pongs included: the peer is alive.
    last_seen: &'a LastSeen,
    /// A valid client event: the peer is in use, not idle.
    last_event: &'a LastSeen,
    /// A pong: the peer has read everything written before the ping it answers.
    last_pong: &'a LastSeen,
    /// Set once the writer has finished (a close frame, if any, is sent): the reader then
    /// only waits for the client's close and applies no more events.
    closed: &'a AtomicBool,
    /// Cluster mode: the allowances that hold across instances.
    cluster: Option<&'a ClusterHandle>,
}

/// When the connection last sent something, shared by its reader and writer. On tokio's
/// clock, as the heartbeat is, so tests can pause it and move it on.
struct LastSeen(std::sync::Mutex<Instant>);

impl LastSeen {
    fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn at(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn elapsed(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// What a connection is served with.
struct Serving {
    hub: Hub,
    settings: Settings,
    stopping: watch::Receiver<bool>,
    cluster: Option<ClusterHandle>,
    /// The kernel's send queue of the connection's socket, where the listener gave it.
    socket_queue: Option<SocketQueue>,
}

/// Serves one connection until either side closes it, or it stops answering pings.
async fn run_connection(socket: WebSocket, serving: Serving) {
    let Serving {
        hub,
        settings,
        stopping,
        cluster,
        socket_queue,
    } = serving;
    let last_seen = LastSeen(std::sync::Mutex::new(Instant::now()));
    let last_event = LastSeen(std::sync::Mutex::new(Instant::now()));
    let last_pong = Arc::new(LastSeen(std::sync::Mutex::new(Instant::now())));
    let closed = AtomicBool::new(false);
    let (outbox, rx) = Outbox::bounded(settings.capacity, settings.outbox_bytes);
    let conn = hub.connect(outbox.clone());
    let id = conn.id();
    tracing::debug!(?id, "connection opened");
    let (sink, stream) = socket.split();
    let (orders, orders_rx) = mpsc::channel(ORDERS_QUEUED);

    // The writer is a task of its own, so a delivered frame wakes it alone: not the
    // socket's reader, the heartbeat or the shutdown signal, which wake the connection's
    // task. (In one task every wake-up polled them all; see BENCHMARKS.md, issue 19 item
    // 3.) Dropping the set ends the writer, if it has not ended.
    let mut writer = JoinSet::new();
    writer.spawn(write_loop(Writer {
        sink,
        backlog: Backlog::new(socket_queue),
        rx,
        orders: orders_rx,
        hub: hub.clone(),
        id,
        outbox: outbox.clone(),
        settings,
        last_pong: last_pong.clone(),
    }));
    let link = Link {
        hub: &hub,
        conn: &conn,
        outbox: &outbox,
        settings,
        last_seen: &last_seen,
        last_event: &last_event,
        last_pong: &last_pong,
        closed: &closed,
        cluster: cluster.as_ref(),
    };
    let mut reader = std::pin::pin!(read_loop(stream, orders.clone(), &link));
    let mut watch = std::pin::pin!(watch_loop(orders, stopping, &link));
    let mut watching = true;
    loop {
        tokio::select! {
            // It has told the writer why the connection ends.
            () = &mut watch, if watching => watching = false,
            // The writer is done, after a close frame or because the socket failed: read on
            // briefly, so the client's close reply (or anything else in flight) is consumed.
            _ = writer.join_next() => {
                closed.store(true, Ordering::Release);
                let _ = tokio::time::timeout(CLOSE_LINGER, &mut reader).await;
                break;
            }
            // The client closed, or broke the protocol: let the writer finish (it sends the
            // close frame, if any), but not forever.
            () = &mut reader => {
                let _ = tokio::time::timeout(CLOSE_GRACE, writer.join_next()).await;
                break;
            }
        }
    }
    tracing::debug!(?id, "connection closed");
}

/// What the writer is told to do besides writing the outbox, by the reader and the watch.
enum Order {
    /// Check the backlog, and ping the client when `ping` (every other heartbeat check).
    Tick { ping: bool },
    /// Write what is queued, then this close frame, and stop (the reader's request).
    Close(CloseFrame),
    /// Send this close frame at once and stop (the server is going away, or the client
    /// sent nothing for too long).
    CloseNow(CloseFrame),
    /// Stop without a close frame: the client is gone, or stopped answering.
    Stop,
}

/// Orders waiting for the writer; the watch sends one per heartbeat check, the reader at
/// most two in its life.
const ORDERS_QUEUED: usize = 4;

/// Watches the clock and the server for the connection: checks twice per heartbeat whether
/// the client is still there and in use, and has the writer ping it at every other check;
/// ends the connection when the server stops.
async fn watch_loop(
    orders: mpsc::Sender<Order>,
    mut stopping: watch::Receiver<bool>,
    link: &Link<'_>,
) {
    let Link {
        conn,
        settings,
        last_seen,
        last_event,
        ..
    } = *link;
    // Checked twice per heartbeat, so a silent connection is dropped at most half a
    // heartbeat after `dead_after`.
    let mut heartbeat = tokio::time::interval(settings.heartbeat / 2);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checks: u64 = 0;
    loop {
        let order = tokio::select! {
            biased;
            changed = stopping.changed() => {
                if changed.is_ok() && !*stopping.borrow_and_update() {
                    continue;
                }
                Order::CloseNow(close_frame(CLOSE_GOING_AWAY, "server shutting down"))
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() >= settings.dead_after {
                    tracing::info!(id = ?conn.id(), "closing a connection that stopped answering pings");
                    Order::Stop
                } else if last_event.elapsed() >= settings.idle_after {
                    tracing::info!(id = ?conn.id(), "closing an idle connection");
                    Order::CloseNow(close_frame(CLOSE_IDLE, "idle"))
                } else {
                    checks += 1;
                    Order::Tick { ping: checks % 2 == 1 }
                }
            }
        };
        let last = !matches!(order, Order::Tick { .. });
        if orders.send(order).await.is_err() || last {
            return;
        }
    }
}

/// A close frame with a fixed reason.
fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

/// The connection's writer, a task of its own (see [`run_connection`]): it writes the outbox
/// to the socket, watches the backlog, and carries out the reader's and the watch's orders.
struct Writer {
    sink: SplitSink<WebSocket, WsMessage>,
    backlog: Backlog,
    rx: OutboxRx,
    orders: mpsc::Receiver<Order>,
    hub: Hub,
    id: ConnId,
    outbox: Outbox,
    settings: Settings,
    /// When the reader last saw a pong.
    last_pong: Arc<LastSeen>,
}

/// Wake-ups after which the writer looks for orders even while frames keep coming (it looks
/// at once whenever none is queued).
const ORDERS_EVERY: u32 = 16;

/// Writes the outbox to the socket, resyncing the connection when it fell behind, and pings
/// it, until the socket fails or an order ends the connection.
async fn write_loop(mut writer: Writer) {
    let mut wakes: u32 = 0;
    loop {
        // Frames come first, so a delivery's wake-up polls the outbox alone; orders wait
        // behind them, never for more than `ORDERS_EVERY` wake-ups.
        wakes += 1;
        if wakes == ORDERS_EVERY {
            wakes = 0;
            if let Ok(order) = writer.orders.try_recv() {
                if !writer.obey(order).await {
                    break;
                }
                continue;
            }
        }
        tokio::select! {
            biased;
            frame = writer.rx.recv() => {
                let Some(frame) = frame else { break };
                if !writer.write_out(frame).await {
                    break;
                }
            }
            order = writer.orders.recv() => {
                let Some(order) = order else { break };
                if !writer.obey(order).await {
                    break;
                }
            }
            // Behind, the connection takes no frames: its backlog is watched by the clock
            // until it is small enough for the catch-up.
            // (An async block, so the sleep is only made when the branch is enabled.)
            () = async { tokio::time::sleep(backlog::CHECK_EVERY).await }, if writer.outbox.is_behind() => {
                let now = Instant::now();
                if writer.tend(now) && writer.probe(now).await.is_err() {
                    break;
                }
            }
        }
    }
}

impl Writer {
    /// Carries out an order; false when the connection ends.
    async fn obey(&mut self, order: Order) -> bool {
        match order {
            Order::Tick { ping } => {
                let now = Instant::now();
                self.tend(now);
                !ping || self.probe(now).await.is_ok()
            }
            Order::Close(frame) => {
                // Queued frames (the errors that led here, say) go out first.
                let drained = drain(&mut self.sink, &mut self.rx, &mut self.backlog);
                if let Ok(Ok(())) = tokio::time::timeout(CLOSE_GRACE, drained).await {
                    send_close(&mut self.sink, WsMessage::Close(Some(frame))).await;
                }
                false
            }
            Order::CloseNow(frame) => {
                send_close(&mut self.sink, WsMessage::Close(Some(frame))).await;
                false
            }
            Order::Stop => false,
        }
    }

    /// Writes `first` and the frames queued behind it (see [`write_batch`]), with a ping to
    /// time the reader when one is due, and tends the backlog when a check is due. False
    /// when the connection ends.
    async fn write_out(&mut self, first: Frame) -> bool {
        let (id, settings) = (self.id, self.settings);
        let now = Instant::now();
        // The ping rides with the frames: one write to the socket for both.
        let probe = self.backlog.probe_due(now);
        let written = {
            let batch = write_batch(
                &mut self.sink,
                (first, now),
                &mut self.rx,
                &mut self.backlog,
                probe,
            );
            let mut batch = std::pin::pin!(batch);
            // Mostly the socket takes the batch at once: the clock is only set when it
            // does not.
            match std::future::poll_fn(|cx| Poll::Ready(batch.as_mut().poll(cx))).await {
                Poll::Ready(written) => Ok(written),
                // A batch the socket has not taken within `behind_after` means a reader that
                // far behind: it gets no more live frames while the batch waits.
                Poll::Pending => {
                    match tokio::time::timeout(settings.behind_after, &mut batch).await {
                        Ok(written) => Ok(written),
                        Err(_) => {
                            if !self.outbox.is_behind() {
                                tracing::info!(
                                    ?id,
                                    queued_bytes = self.outbox.queued_bytes(),
                                    "a connection's socket took nothing for a while: it will be caught up"
                                );
                            }
                            self.outbox.fall_behind();
                            let rest = SEND_TIMEOUT.saturating_sub(settings.behind_after);
                            tokio::time::timeout(rest, batch).await
                        }
                    }
                }
            }
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return false,
            Err(_) => {
                tracing::info!(?id, "closing a connection too slow to take its frames");
                let close = WsMessage::Close(Some(close_frame(CLOSE_TRY_AGAIN, "too slow")));
                send_close(&mut self.sink, close).await;
                return false;
            }
        }
        // A connection behind is resynced as soon as its outbox has room. Otherwise, between
        // checks nothing the backlog measures has moved but the clock, which can put the
        // connection behind no sooner than a check can. (A probe found due goes with the
        // next batch.)
        if self.outbox.is_behind() || self.backlog.check_due(now) {
            self.tend(now);
        }
        true
    }

    /// Measures the connection's backlog (the socket when a check is due, and the ping
    /// out); counts the connection as behind when the oldest byte its socket holds or its
    /// ping out is `behind_after` old (it then takes no live frames: invariant 3 of the
    /// hub); and once it is behind, resyncs it as soon as its outbox is half empty and both
    /// are less than half that age, so the catch-up is not queued behind the backlog it
    /// replaces. True when the connection should be pinged now to time its reader.
    fn tend(&mut self, now: Instant) -> bool {
        let (backlog, outbox, settings) = (&mut self.backlog, &self.outbox, self.settings);
        // (The pong's time is shared with the reader under a lock: read only when it
        // matters.)
        if backlog.ping_is_out() {
            backlog.ponged(self.last_pong.at());
        }
        if backlog.check_due(now) {
            backlog.check(outbox.queued_bytes(), now);
        }
        let unsent = backlog.last();
        let unanswered = backlog.ping_age(now);
        let age = unsent.age.max(unanswered);
        if age >= settings.behind_after && !outbox.is_behind() {
            tracing::info!(
                id = ?self.id,
                queued_bytes = unsent.queued,
                socket_bytes = unsent.in_socket,
                socket_ms = unsent.age.as_millis() as u64,
                ping_ms = unanswered.as_millis() as u64,
                "a connection's reader fell behind: it will be caught up"
            );
            outbox.fall_behind();
        }
        if outbox.is_behind() && self.rx.is_half_empty() && age < settings.behind_after / 2 {
            self.hub.resync(self.id);
        }
        backlog.probe_due(now)
    }

    /// Pings the connection to time its reader (see [`backlog`]).
    async fn probe(&mut self, now: Instant) -> Result<(), axum::Error> {
        self.sink.send(timing_ping(&mut self.backlog, now)).await
    }
}

/// A ping to time the reader, noted in the backlog as written `now` (see [`backlog`]).
fn timing_ping(backlog: &mut Backlog, now: Instant) -> WsMessage {
    backlog.pinged(now);
    WsMessage::Ping(Bytes::new())
}

/// Writes every frame queued, in batches.
async fn drain(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    rx: &mut OutboxRx,
    backlog: &mut Backlog,
) -> Result<(), axum::Error> {
    while let Ok(frame) = rx.try_recv() {
        write_batch(sink, (frame, Instant::now()), rx, backlog, false).await?;
    }
    Ok(())
}

/// Writes `first` and the frames queued behind it (up to [`BATCH_FRAMES`] and
/// [`BATCH_BYTES`] in all) with one flush: under load a connection's wake-up then costs one
/// write to the socket, not one per frame. Frames taken out of the outbox no longer count
/// against its byte bound, so the batch's own bound keeps what waits unflushed small. With
/// `probe`, a ping follows the frames (see [`backlog`]).
async fn write_batch(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    (first, now): (Frame, Instant),
    rx: &mut OutboxRx,
    backlog: &mut Backlog,
    probe: bool,
) -> Result<(), axum::Error> {
    let mut next = Some(first);
    let mut fed = 0;
    let mut bytes = 0;
    let mut on_wire = 0;
    while let Some(frame) = next.take() {
        let len = frame.len();
        bytes += len;
        if let Some(text) = text_frame(frame) {
            on_wire += wire_bytes(len);
            sink.feed(text).await?;
            fed += 1;
        }
        if fed < BATCH_FRAMES && bytes < BATCH_BYTES {
            next = rx.try_recv().ok();
        }
    }
    backlog.wrote(on_wire, now);
    if probe {
        sink.feed(timing_ping(backlog, now)).await?;
    }
    sink.flush().await
}

/// Sends a close frame, giving up after [`CLOSE_GRACE`] (the peer may not be reading).
async fn send_close(sink: &mut SplitSink<WebSocket, WsMessage>, frame: WsMessage) {
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(frame)).await;
}

/// A queued frame as a WebSocket text message. Frames are encoded from Rust strings, so they
/// are always UTF-8; the check is what the WebSocket type asks for.
fn text_frame(frame: Frame) -> Option<WsMessage> {
    match Utf8Bytes::try_from(frame.into_bytes()) {
        Ok(text) => Some(WsMessage::Text(text)),
        Err(e) => {
            tracing::error!(error = %e, "dropping a frame that is not UTF-8");
            None
        }
    }
}

/// Reads client events and applies them until the client closes the socket or keeps
/// sending frames that are not valid events.
async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    orders: mpsc::Sender<Order>,
    link: &Link<'_>,
) {
    let Link {
        conn,
        outbox,
        last_seen,
        last_event,
        closed,
        ..
    } = *link;
    let mut bad_frames = 0;
    let mut close_asked = false;
    let mut pace = Pace::new(link.settings);
    while let Some(Ok(message)) = stream.next().await {
        last_seen.touch();
        if close_asked || closed.load(Ordering::Acquire) {
            // A close frame was asked for or sent: wait for the client's reply only.
            if matches!(message, WsMessage::Close(_)) {
                break;
            }
            continue;
        }
        let event = match message {
            WsMessage::Text(text) => ClientEvent::decode(text.as_str()),
            WsMessage::Binary(_) => Err(ProtocolError::Binary),
            WsMessage::Close(_) => break,
            WsMessage::Pong(_) => {
                link.last_pong.touch();
                continue;
            }
            WsMessage::Ping(_) => continue,
        };
        match event {
            Ok(event) => {
                bad_frames = 0;
                last_event.touch();
                if costly(&event) {
                    pace.wait().await;
                }
                if !handle(link, event).await {
                    break;
                }
                // A client that sent many events at once must not hold this worker thread
                // while it works through them: give others a turn when the budget says so.
                tokio::task::consume_budget().await;
            }
            Err(error) => {
                bad_frames += 1;
                tracing::debug!(id = ?conn.id(), %error, "refused a malformed frame");
                if !outbox
                    .send(ServerEvent::protocol_error(&error).frame())
                    .await
                {
                    break;
                }
                if bad_frames >= MAX_CONSECUTIVE_BAD_FRAMES {
                    tracing::info!(id = ?conn.id(), "closing a connection that kept sending malformed frames");
                    if !close_asked {
                        close_asked = true;
                        let close = close_frame(CLOSE_POLICY, "too many malformed frames");
                        let _ = orders.send(Order::Close(close)).await;
                    }
                }
            }
        }
    }
    // The client is gone or closed (a close it asked for, or one it answered): the writer
    // stops, if it has not already.
    let _ = orders.send(Order::Stop).await;
}

/// True for the events whose cost to the server is out of proportion to their size: each
/// may send presence or a rename to many connections, build a room's snapshot, or count a
/// user's unread messages in every room.
fn costly(event: &ClientEvent) -> bool {
    matches!(
        event,
        ClientEvent::Auth { .. }
            | ClientEvent::Join { .. }
            | ClientEvent::Leave { .. }
            | ClientEvent::Rename { .. }
            | ClientEvent::Unread
    )
}

/// One connection's allowance of costly events. Past it the reader waits before applying the
/// next, so a client sending faster only fills its own socket's buffers: nothing is refused,
/// and a flood costs the sender the time it costs us.
struct Pace(TokenBucket);

impl Pace {
    fn new(settings: Settings) -> Pace {
        Pace(TokenBucket::new(
            settings.joins_per_second,
            Duration::from_secs(1),
            settings.join_burst,
            Instant::now().into_std(),
        ))
    }

    async fn wait(&mut self) {
        loop {
            let now = Instant::now().into_std();
            if self.0.try_take(now) {
                return;
            }
            tokio::time::sleep(self.0.wait_for_token(now)).await;
        }
    }
}

/// Applies one client event; false when the connection should end.
async fn handle(link: &Link<'_>, event: ClientEvent) -> bool {
    let (conn, outbox) = (link.conn, link.outbox);
    if let (ClientEvent::Unread, Some(cluster), Some(user)) = (&event, link.cluster, conn.user_id())
    {
        // Unread counts cover every channel: this instance follows their news from now on.
        cluster.follow_news().await;
        // Another instance may have moved the user's read positions since this one loaded.
        link.hub.refresh_reads(user).await;
    }
    if let Some(cluster) = link.cluster {
        if let Err((e, client_ref)) = take_cluster_allowance(link, cluster, &event).await {
            return outbox
                .send(ServerEvent::chat_error(&e, client_ref).frame())
                .await;
        }
    }
    if let (ClientEvent::Join { room, since, .. }, Some(cluster)) = (&event, link.cluster) {
        // A channel nobody here used until now is followed from now on, and brought up
        // to the database's state first. A client coming from another instance may hold
        // messages this one has not applied yet: catch up with the database first, so it
        // gets a catch-up rather than a snapshot.
        let hub = link.hub;
        let caught_up = cluster.follow_room(room).await;
        cluster.read_presence(room).await;
        let ahead = since.as_ref().is_some_and(|cursor| {
            cursor.epoch == hub.epoch() && hub.next_seq(room).is_some_and(|next| next <= cursor.seq)
        });
        if !caught_up && ahead {
            cluster.catch_up(room).await;
        }
    }
    let reply = match event {
        ClientEvent::Auth { token } => match authenticate(link, &token).await {
            Ok(user) => ServerEvent::Authenticated { user },
            Err(e) => ServerEvent::chat_error(&e, None),
        },
        // On success the hub has queued the answers (`joined`, `user_renamed`, ...) in order
        // with the live stream; only refusals are answered here.
        ClientEvent::Join {
            room,
            since,
            client_ref,
        } => match conn.join(&room, since) {
            Ok(()) => return true,
            Err(e) => ServerEvent::chat_error(&e, client_ref),
        },
        ClientEvent::Leave { room } => match conn.leave(&room) {
            Ok(()) => return true,
            Err(e) => ServerEvent::chat_error(&e, None),
        },
        // Answered by the hub: the summary, then news, as `unread` and `activity` events.
        ClientEvent::Unread => match conn.follow_unread() {
            Ok(()) => return true,
            Err(e) => ServerEvent::chat_error(&e, None),
        },
        // The hub tells the user's following connections (this one too, if it follows).
        ClientEvent::Typing { room } => match conn.typing(&room) {
            Ok(relayed) => {
                if let (true, Some(cluster), Some(user)) = (relayed, link.cluster, conn.user_id()) {
                    cluster.relay_typing(&room, user);
                }
                return true;
            }
            Err(e) => ServerEvent::chat_error(&e, None),
        },
        ClientEvent::Read { room, seq } => match conn.read(&room, seq) {
            Ok(()) => return true,
            Err(e) => ServerEvent::chat_error(&e, None),
        },
        ClientEvent::Delete {
            room,
            id,
            client_ref,
        } => match conn.delete(&room, id) {
            Ok(()) => return true,
            Err(e) => ServerEvent::chat_error(&e, client_ref),
        },
        // Everyone in the room is told, the sender too, if it changed anything; the sender
        // hears back only if it could not be stored (or the cluster refused it), and the
        // reader does not wait for that.
        ClientEvent::React {
            room,
            id,
            emoji,
            on,
            client_ref,
        } => match conn.react(&room, id, &emoji, on) {
            Ok(reacted) => {
                report_if_unstored(outbox, reacted, client_ref);
                return true;
            }
            Err(e) => ServerEvent::chat_error(&e, client_ref),
        },
        ClientEvent::Edit {
            room,
            id,
            body,
            client_ref,
        } => match conn.edit(&room, id, &body) {
            // Everyone in the room has the new text; the author's `ack` waits until it is
            // stored, as a post's does, and the reader does not wait with it.
            Ok(edited) => {
                ack_when_stored(outbox, edited, client_ref);
                return true;
            }
            Err(e) => ServerEvent::chat_error(&e, client_ref),
        },
        ClientEvent::Rename { name, client_ref } => match conn.rename(&name) {
            // Everyone, this connection too, has been told of the new name; only a failure
            // to store it needs an answer, and the reader does not wait for that.
            Ok(saved) => {
                report_if_unstored(outbox, saved, client_ref);
                return true;
            }
            Err(e) => ServerEvent::chat_error(&e, client_ref),
        },
        ClientEvent::Send {
            room,
            body,
            attachment,
            reply_to,
            client_ref,
        } => match conn.post_once(
            &room,
            &body,
            attachment.as_ref(),
            reply_to,
            client_ref.as_deref(),
        ) {
            // The message is already out; its acknowledgement waits until it is stored, and
            // the reader does not wait with it.
            Ok(posted) => {
                ack_when_stored(outbox, posted, client_ref);
                return true;
            }
            Err(e) => ServerEvent::chat_error(&e, client_ref),
        },
    };
    outbox.send(reply.frame()).await
}

/// Answers the sender of a post or an edit with its `ack` once the message is stored, or with
/// the error if it cannot be; the reader goes on meanwhile.
fn ack_when_stored(outbox: &Outbox, saved: Saved<Message>, client_ref: Option<String>) {
    let outbox = outbox.clone();
    tokio::spawn(async move {
        let reply = match saved.stored().await {
            Ok(message) => ServerEvent::Ack {
                client_ref,
                id: message.id,
                seq: message.seq,
            },
            Err(e) => ServerEvent::chat_error(&e, client_ref),
        };
        outbox.send(reply.frame()).await;
    });
}

/// Tells the sender of a change everyone has already been told of (a reaction, a new name)
/// only if it cannot be stored; the reader goes on meanwhile.
fn report_if_unstored<T: Send + 'static>(
    outbox: &Outbox,
    saved: Saved<T>,
    client_ref: Option<String>,
) {
    let outbox = outbox.clone();
    tokio::spawn(async move {
        if let Err(e) = saved.stored().await {
            outbox
                .send(ServerEvent::chat_error(&e, client_ref).frame())
                .await;
        }
    });
}

/// Proves who the connection is. In cluster mode a token this instance does not know may
/// belong to someone who registered through another instance a moment ago: it is looked
/// up in the database once before being refused (auth is paced per connection, so this
/// costs the database at most one indexed read per paced event).
async fn authenticate(
    link: &Link<'_>,
    token: &str,
) -> Result<crate::chat::model::UserInfo, ChatError> {
    let Some(cluster) = link.cluster else {
        return link.conn.authenticate(token);
    };
    let user = match link.conn.authenticate(token) {
        Err(ChatError::Unauthorized) => {
            cluster.learn_token(token).await;
            link.conn.authenticate(token)?
        }
        answer => answer?,
    };
    // Their private conversations reach this instance from now on.
    cluster.follow_user(user.id).await;
    Ok(user)
}

/// Takes the event's action from the user's cluster-wide allowances, where it has one
/// (posts, renames, channel joins, and starting a private conversation); the refusal comes
/// with the event's `client_ref`. While Redis cannot say, the instance's own allowances (the
/// hub's) decide alone.
async fn take_cluster_allowance(
    link: &Link<'_>,
    cluster: &ClusterHandle,
    event: &ClientEvent,
) -> Result<(), (ChatError, Option<String>)> {
    use crate::chat::model::Room;
    let (kind, room, client_ref) = match event {
        ClientEvent::Send {
            room, client_ref, ..
        }
        | ClientEvent::Edit {
            room, client_ref, ..
        }
        | ClientEvent::React {
            room, client_ref, ..
        } => (Some(Shared::Messages), room, client_ref),
        ClientEvent::Join {
            room, client_ref, ..
        } => (
            matches!(room, Room::Channel(_)).then_some(Shared::Joins),
            room,
            client_ref,
        ),
        ClientEvent::Delete {
            room, client_ref, ..
        } => (None, room, client_ref),
        ClientEvent::Rename { client_ref, .. } => {
            return take_shared(link, cluster, Shared::Renames, client_ref).await
        }
        _ => return Ok(()),
    };
    if link.hub.would_start(room) {
        take_shared(link, cluster, Shared::Directs, client_ref).await?;
    }
    match kind {
        Some(kind) => take_shared(link, cluster, kind, client_ref).await,
        None => Ok(()),
    }
}

/// Takes one action of `kind` from the connection's user's cluster-wide allowance (nothing
/// for a connection that has not authenticated: the hub refuses it anyway).
async fn take_shared(
    link: &Link<'_>,
    cluster: &ClusterHandle,
    kind: Shared,
    client_ref: &Option<String>,
) -> Result<(), (ChatError, Option<String>)> {
    let Some(user) = link.conn.user_id() else {
        return Ok(());
    };
    cluster
        .allow(kind, user)
        .await
        .map_err(|e| (e, client_ref.clone()))
}

#[cfg(test)]
mod tests;
