//! Shared helpers for the integration tests: a real Flack server on 127.0.0.1:0, WebSocket
//! clients that speak the protocol, and a minimal HTTP client for pages and server functions.

#![allow(dead_code)] // Each test file uses a different subset of these helpers.

use flack::chat::hub::{Hub, MemoryStore, Store};
use flack::chat::model::{ChannelName, Room, Session, UserId};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use flack::server::{config::Config, router, serve, AppState, ListenSettings};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

/// How long a test waits for an event before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// The channel every server starts with.
pub fn general() -> Room {
    channel("general")
}

/// A channel room by name.
pub fn channel(name: &str) -> Room {
    Room::Channel(ChannelName::parse(name).expect("a valid name"))
}

/// What `general` holds now (straight from the hub).
pub fn general_history(server: &TestServer) -> Vec<flack::chat::model::Message> {
    server
        .hub
        .channel_page("general")
        .expect("general exists")
        .messages
}

/// `general`'s message `id` as the hub holds it now.
pub fn held(server: &TestServer, id: flack::chat::model::MessageId) -> flack::chat::model::Message {
    general_history(server)
        .into_iter()
        .find(|m| m.id == id)
        .expect("the message is held")
}

/// The names of a hub's channels, in its order (by name).
pub fn channel_names(hub: &Hub) -> Vec<String> {
    hub.channels().iter().map(|c| c.name.to_string()).collect()
}

/// Something a test can reach over the network: a server it started in-process, or the
/// address of one it started as a process of its own.
pub trait Addressed {
    fn addr(&self) -> SocketAddr;
}

impl Addressed for TestServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Addressed for SocketAddr {
    fn addr(&self) -> SocketAddr {
        *self
    }
}

/// A running server; it stops when the test's runtime ends.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Hub,
    pub config: Config,
}

/// Starts the real router on an ephemeral port with default settings, except that users may
/// post as fast as tests need (rate limits have their own test).
pub async fn start() -> TestServer {
    start_with(fast()).await
}

/// Default settings without the posting rate limit.
pub fn fast() -> Config {
    let mut config = Config::default();
    config.limits.messages_per_second = 1_000_000;
    config.limits.message_burst = 1_000_000;
    config.limits.channels_per_minute = 1_000;
    config
}

/// Starts the real router on an ephemeral port with the given settings, on the test's own
/// runtime (also for tests that render pages).
///
/// Leptos ties nothing to one runtime: `any_spawner` stores only function pointers, and its
/// tokio spawner is a plain `tokio::spawn` onto whichever runtime polls the render. The page
/// renders that used to hang now and then beside other tests had another cause, a
/// process-wide flag in `leptos_server`: Leptos's route-list generation sets it while it
/// renders the app once, and a server-side `Resource` created meanwhile on any thread waits
/// forever, even after the flag is cleared (`docs/repro/leptos-resource-load-hang/` shows
/// it; upstream this is leptos-rs/leptos#4773). One test building its router while another
/// rendered a page was enough. Flack now routes its pages itself and renders no `Resource` on the server, so
/// servers need no shared runtime.
pub async fn start_with(config: Config) -> TestServer {
    start_on(config, |_| std::sync::Arc::new(MemoryStore)).await
}

/// [`start_with`] on a store of the test's choosing, made from the server's data directory.
pub async fn start_on(
    config: Config,
    store: impl FnOnce(&std::path::Path) -> std::sync::Arc<dyn Store>,
) -> TestServer {
    start_in(config, None, store).await
}

/// [`start_on`] with its data (the files folder too) in `dir`, so a server started again in
/// the same place finds what the first one left; `None` for a fresh directory.
pub async fn start_in(
    mut config: Config,
    dir: Option<std::path::PathBuf>,
    store: impl FnOnce(&std::path::Path) -> std::sync::Arc<dyn Store>,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    config.server.addr = addr;
    config.data.dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("flack-test-{}-{}", std::process::id(), addr.port()))
    });
    let settings = config.hub_settings();
    let hub = Hub::open(
        store(&config.data.dir),
        settings,
        flack::protocol::encode_hub_event,
    )
    .expect("hub opens");
    let state = AppState::new(config.clone(), hub.clone());
    let listen = ListenSettings::from_config(&config);
    tokio::spawn(serve(
        listener,
        router(state),
        listen,
        std::future::pending(),
    ));
    TestServer { addr, hub, config }
}

/// A user who joined `general` and disconnected: what they come back with.
pub struct Away {
    pub token: String,
    /// Where their copy of `general` ended.
    pub cursor: flack::chat::model::Cursor,
}

impl Away {
    /// Registers `name`, joins `general` and disconnects, keeping the token and cursor.
    pub async fn after_joining(server: &TestServer, name: &str) -> Away {
        let mut client = Client::user(server, name).await;
        let ServerEvent::Hub(HubEvent::Joined {
            epoch, last_seq, ..
        }) = client.join(&general()).await
        else {
            unreachable!("join answers joined");
        };
        let token = client.token();
        client.close().await;
        Away {
            token,
            cursor: flack::chat::model::Cursor {
                epoch,
                seq: last_seq,
            },
        }
    }

    /// Connects again and joins `general` from the cursor: the client, and whether the
    /// answer was a reset, with its messages.
    pub async fn back(
        &self,
        server: &TestServer,
    ) -> (Client, bool, Vec<flack::chat::model::Message>) {
        let mut client = Client::connect(server).await;
        client.auth(&self.token).await;
        let (reset, messages) = client.join_since(&general(), self.cursor).await;
        (client, reset, messages)
    }
}

/// A protocol client over a real WebSocket.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The registered user, for clients made by [`Client::user`].
    pub session: Option<Session>,
    /// Messages that arrived in a catch-up `joined` and were not yet returned.
    caught_up: std::collections::VecDeque<flack::chat::model::Message>,
}

impl Client {
    /// Connects and consumes the `welcome` event.
    pub async fn connect(server: &impl Addressed) -> Client {
        let mut client = Client::connect_raw(server).await;
        match client.next().await {
            ServerEvent::Hub(HubEvent::Welcome { .. }) => {}
            other => panic!("expected welcome, got {other:?}"),
        }
        client
    }

    /// Connects without reading anything.
    pub async fn connect_raw(server: &impl Addressed) -> Client {
        let (ws, _) = connect_async(format!("ws://{}/ws", server.addr()))
            .await
            .expect("websocket connects");
        Client {
            ws,
            session: None,
            caught_up: Default::default(),
        }
    }

    /// Registers `name`, connects and authenticates, consuming the replies.
    pub async fn user(server: &TestServer, name: &str) -> Client {
        let session = server
            .hub
            .register(name)
            .expect("registers")
            .stored()
            .await
            .expect("stored");
        let mut client = Client::connect(server).await;
        client.auth(&session.token).await;
        client.session = Some(session);
        client
    }

    /// Registers `name`, connects, authenticates and joins `general`, consuming the replies.
    pub async fn joined(server: &TestServer, name: &str) -> Client {
        let mut client = Client::user(server, name).await;
        client.join(&general()).await;
        client
    }

    /// This client's user id.
    pub fn id(&self) -> UserId {
        self.session.as_ref().expect("a registered client").user.id
    }

    /// This client's token.
    pub fn token(&self) -> String {
        self.session
            .as_ref()
            .expect("a registered client")
            .token
            .clone()
    }

    /// Sends an event.
    pub async fn send(&mut self, event: ClientEvent) {
        self.ws
            .send(WsMessage::text(event.encode()))
            .await
            .expect("send");
    }

    /// Sends a raw WebSocket message.
    pub async fn send_raw(&mut self, message: WsMessage) {
        self.ws.send(message).await.expect("send raw");
    }

    /// Authenticates and waits for `authenticated`.
    pub async fn auth(&mut self, token: &str) {
        self.send(ClientEvent::Auth {
            token: token.into(),
        })
        .await;
        match self.next().await {
            ServerEvent::Authenticated { .. } => {}
            other => panic!("expected authenticated, got {other:?}"),
        }
    }

    /// Joins a room and returns the `joined` event, skipping presence news before it.
    pub async fn join(&mut self, room: &Room) -> ServerEvent {
        self.send(ClientEvent::Join {
            room: room.clone(),
            since: None,
            client_ref: None,
        })
        .await;
        loop {
            let event = self.next().await;
            match event {
                ServerEvent::Hub(HubEvent::Joined { .. }) => return event,
                ServerEvent::Hub(HubEvent::Presence { .. }) => continue,
                other => panic!("expected joined, got {other:?}"),
            }
        }
    }

    /// Posts `body` to `room` and returns the message once acknowledged (other answers,
    /// such as an earlier edit's `ack`, are skipped).
    pub async fn post_acked(&mut self, room: &Room, body: &str) -> flack::chat::model::Message {
        self.reply_acked(room, body, None).await
    }

    /// [`Client::post_acked`], as a reply to message `reply_to` if given.
    pub async fn reply_acked(
        &mut self,
        room: &Room,
        body: &str,
        reply_to: Option<flack::chat::model::MessageId>,
    ) -> flack::chat::model::Message {
        let reference = format!("post {body}");
        self.send(ClientEvent::Send {
            room: room.clone(),
            body: body.into(),
            attachment: None,
            reply_to,
            client_ref: Some(reference.clone()),
        })
        .await;
        let mut posted = None;
        loop {
            match self.next().await {
                ServerEvent::Hub(HubEvent::Message { message })
                    if message.body.as_str() == body =>
                {
                    posted = Some(message)
                }
                ServerEvent::Ack { id, client_ref, .. }
                    if client_ref == Some(reference.clone()) =>
                {
                    let message = posted.expect("the message came before its ack");
                    assert_eq!(message.id, id);
                    return message;
                }
                _ => {}
            }
        }
    }

    /// Joins `room` from `cursor`: whether the answer was a reset, and its messages (other
    /// events before it skipped).
    pub async fn join_since(
        &mut self,
        room: &Room,
        cursor: flack::chat::model::Cursor,
    ) -> (bool, Vec<flack::chat::model::Message>) {
        self.send(ClientEvent::Join {
            room: room.clone(),
            since: Some(cursor),
            client_ref: None,
        })
        .await;
        loop {
            if let ServerEvent::Hub(HubEvent::Joined {
                reset, messages, ..
            }) = self.next().await
            {
                return (reset, messages);
            }
        }
    }

    /// Gives (`on`) or takes away the reaction `emoji` to message `id` of `room`.
    pub async fn react(
        &mut self,
        room: &Room,
        id: flack::chat::model::MessageId,
        emoji: &str,
        on: bool,
        client_ref: Option<&str>,
    ) {
        self.send(ClientEvent::React {
            room: room.clone(),
            id,
            emoji: emoji.into(),
            on,
            client_ref: client_ref.map(str::to_owned),
        })
        .await;
    }

    /// The next `reaction` event, as (message, emoji, user name, on), skipping other news;
    /// fails on an error.
    pub async fn next_reaction(&mut self) -> (flack::chat::model::MessageId, String, String, bool) {
        loop {
            match self.next().await {
                ServerEvent::Hub(HubEvent::Reaction {
                    id,
                    emoji,
                    user,
                    on,
                    ..
                }) => return (id, emoji.as_str().to_owned(), user.name.to_string(), on),
                ServerEvent::Error { code, .. } => panic!("refused: {code}"),
                _ => {}
            }
        }
    }

    /// Posts a message to a room.
    pub async fn post(&mut self, room: &Room, body: &str) {
        self.send(ClientEvent::Send {
            room: room.clone(),
            body: body.into(),
            attachment: None,
            reply_to: None,
            client_ref: None,
        })
        .await;
    }

    /// The next error as (code, client_ref), skipping news; fails on an event `done` says
    /// the refused action would have caused.
    pub async fn refusal_without(
        &mut self,
        done: impl Fn(&ServerEvent) -> bool,
    ) -> (String, Option<String>) {
        loop {
            match self.next().await {
                ServerEvent::Error {
                    code, client_ref, ..
                } => return (code, client_ref),
                event if done(&event) => panic!("expected a refusal, got {event:?}"),
                _ => {}
            }
        }
    }

    /// The next server event, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> ServerEvent {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("an event arrives in time")
                .expect("the socket is open")
                .expect("a valid frame");
            match message {
                WsMessage::Text(text) => {
                    return ServerEvent::decode(text.as_str()).expect("a valid server event")
                }
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next server event if one arrives within `limit` (pings skipped), else `None`.
    pub async fn next_within(&mut self, limit: Duration) -> Option<ServerEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match message.expect("a valid frame") {
                WsMessage::Text(text) => {
                    return Some(ServerEvent::decode(text.as_str()).expect("a valid server event"))
                }
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next raw frame (or `None` once the socket is closed), failing after [`WAIT`].
    pub async fn next_raw(&mut self) -> Option<WsMessage> {
        match tokio::time::timeout(WAIT, self.ws.next())
            .await
            .expect("something arrives in time")
        {
            Some(Ok(message)) => Some(message),
            _ => None,
        }
    }

    /// The next message of a joined channel, whether it came live or in a catch-up `joined`
    /// (a connection that fell behind is resynced that way); other events are skipped.
    pub async fn next_message(&mut self) -> flack::chat::model::Message {
        loop {
            if let Some(message) = self.caught_up.pop_front() {
                return message;
            }
            match self.next().await {
                ServerEvent::Hub(HubEvent::Message { message }) => return message,
                ServerEvent::Hub(HubEvent::Joined {
                    reset: false,
                    messages,
                    ..
                }) => self.caught_up.extend(messages),
                _ => {}
            }
        }
    }

    /// Posts `count` messages to `room` and waits for their acknowledgements, 50 at a time
    /// (so no outbox overflows).
    pub async fn fill(&mut self, room: &Room, count: usize) {
        let mut posted = 0;
        while posted < count {
            let batch = (count - posted).min(50);
            for i in posted..posted + batch {
                self.post(room, &format!("filler {i}")).await;
            }
            self.acks(batch).await;
            posted += batch;
        }
    }

    /// Waits for `count` acks, skipping other events.
    pub async fn acks(&mut self, count: usize) {
        let mut seen = 0;
        while seen < count {
            if let ServerEvent::Ack { .. } = self.next().await {
                seen += 1;
            }
        }
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A plain HTTP/1.1 response.
pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
    /// The body as bytes (`body` is it read as UTF-8, with anything else replaced).
    pub bytes: Vec<u8>,
}

impl HttpResponse {
    /// The value of a header (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers.lines().find_map(|line| {
            line.to_ascii_lowercase()
                .starts_with(&prefix)
                .then(|| line[prefix.len()..].trim().to_owned())
        })
    }
}

/// Sends one HTTP request and reads the whole response.
pub async fn http(
    server: &impl Addressed,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> HttpResponse {
    let body = form.unwrap_or("");
    // Server functions answer a request that accepts HTML (a form without JavaScript) with a
    // redirect, so only page requests ask for HTML.
    let accept = if method == "GET" {
        "text/html"
    } else {
        "application/json"
    };
    request(
        server,
        method,
        path,
        &[
            ("Accept", accept),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .await
}

/// Sends one HTTP request with the given headers and body and reads the whole response.
pub async fn request(
    server: &impl Addressed,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", server.addr());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_vec()
    };
    HttpResponse {
        status,
        headers: head,
        body: String::from_utf8_lossy(&body).into_owned(),
        bytes: body,
    }
}

/// Undoes HTTP/1.1 chunked transfer encoding.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let after = &rest[line_end + 2..];
        match size {
            Some(size) if size > 0 && after.len() >= size => {
                out.extend_from_slice(&after[..size]);
                rest = after[size..]
                    .strip_prefix(b"\r\n")
                    .unwrap_or(&after[size..]);
            }
            _ => break,
        }
    }
    out
}

/// Downloads an attachment, with a bearer token or none.
pub async fn download(
    server: &impl Addressed,
    token: Option<&str>,
    attachment: &flack::chat::model::Attachment,
) -> HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(server, "GET", &attachment.url(), &headers, b"").await
}

/// Drops a test database on the PostgreSQL at 127.0.0.1:5432 if it exists (the stores
/// create a missing one themselves).
pub async fn drop_database(name: &str) {
    let (client, connection) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL at 127.0.0.1:5432 (trust auth)");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("dropped");
}

/// Form-encodes one value.
pub fn form_value(raw: &str) -> String {
    flack::app::percent::encode_path_segment(raw)
}

/// The path of a SQLite file for the test `name` of `kind` (`react`, `edit`, ...), in a
/// fresh folder of its own.
pub fn fresh_db(kind: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flack-{kind}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("flack.db")
}

/// `user` renames themselves to `name`; once `watcher` has heard of it, `general`'s messages
/// as `watcher` gets them by joining again.
pub async fn renamed_then_joined(
    user: &mut Client,
    watcher: &mut Client,
    name: &str,
) -> Vec<flack::chat::model::Message> {
    user.send(ClientEvent::Rename {
        name: name.into(),
        client_ref: None,
    })
    .await;
    while !matches!(
        watcher.next().await,
        ServerEvent::Hub(HubEvent::UserRenamed { .. })
    ) {}
    match watcher.join(&general()).await {
        ServerEvent::Hub(HubEvent::Joined { messages, .. }) => messages,
        other => panic!("join answers joined, not {other:?}"),
    }
}

/// A server on the SQLite file at `path`; also returns the store, to stop it cleanly.
pub async fn sqlite_server(
    path: &std::path::Path,
) -> (TestServer, std::sync::Arc<flack::chat::sqlite::SqliteStore>) {
    let store =
        std::sync::Arc::new(flack::chat::sqlite::SqliteStore::open(path, 100).expect("opens"));
    let handle = store.clone();
    let server = start_on(fast(), move |_| store as std::sync::Arc<dyn Store>).await;
    (server, handle)
}

/// What searches for each of `queries` find, for a user registered for them on `server`.
pub async fn search_as_newcomer(
    server: &TestServer,
    queries: &[&str],
) -> Vec<flack::chat::model::SearchPage> {
    let token = server
        .hub
        .register("Searcher")
        .expect("registers")
        .stored()
        .await
        .expect("stored")
        .token;
    let mut pages = Vec::new();
    for words in queries {
        pages.push(
            server
                .hub
                .search(&token, words, None)
                .await
                .expect("searched"),
        );
    }
    pages
}
