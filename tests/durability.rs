//! Durability: the real server binary, killed with SIGKILL in the middle of a stream of
//! messages and started again on the same data directory (or PostgreSQL database), has every
//! message it acknowledged. The PostgreSQL runs need the server on 127.0.0.1:5432 (trust auth)
//! and fail, saying so, without it.

use flack::chat::model::{ChannelName, Message, MessageId, Room};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Held from picking a port until a server listens on it. The tests in this file run at the
/// same time, and without it both could be handed the same free port: one server would then
/// fail to start, and its test would talk to the other test's server.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// The command-line settings that keep a server's data in SQLite (in its data directory).
fn sqlite() -> Vec<String> {
    vec!["--data-store".into(), "sqlite".into()]
}

/// The command-line settings that keep a server's data in the PostgreSQL database `db`.
fn postgres(db: &TestDatabase) -> Vec<String> {
    vec![
        "--data-store".into(),
        "postgres".into(),
        "--data-postgres-url".into(),
        db.url.clone(),
    ]
}

/// The maintenance database test databases are created and dropped through.
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A PostgreSQL database of one test's own, dropped when this is.
struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh database, or fails the test if PostgreSQL cannot be reached.
    fn create(test: &str) -> TestDatabase {
        let name = format!("flack_test_{}_{test}", std::process::id());
        admin(&format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name};"
        ))
        .unwrap_or_else(|e| {
            panic!("this test needs PostgreSQL at {ADMIN_URL} (trust auth; see issue 16): {e}")
        });
        TestDatabase {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs statements in the maintenance database, on a thread and runtime of their own (so
/// that it works from inside a test's runtime, and from `drop`).
fn admin(sql: &str) -> Result<(), String> {
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            // One statement at a time: DROP DATABASE refuses to run in a transaction block.
            for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                client
                    .batch_execute(statement)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_owned())?
}

/// Starts the server binary with its data in `data` (and the `store` settings) on a free
/// port, and waits until it accepts connections.
async fn start_server(data: &Path, store: &[String]) -> (SocketAddr, Child) {
    let _starting = STARTING.lock().await;
    let addr = free_addr();
    (addr, launch(addr, data, store).await)
}

/// Starts the server again on the address it had, and waits until it accepts connections.
async fn restart_server(addr: SocketAddr, data: &Path, store: &[String]) -> Child {
    let _starting = STARTING.lock().await;
    launch(addr, data, store).await
}

async fn launch(addr: SocketAddr, data: &Path, store: &[String]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flack"))
        .args(["--server-addr", &addr.to_string()])
        .args(["--data-dir", &data.to_string_lossy()])
        .args(store)
        .args(["--limits-messages-per-second", "100000"])
        .args(["--limits-message-burst", "100000"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the server did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Whoever accepted must be this server, not one that kept the port.
    if let Ok(Some(status)) = child.try_wait() {
        panic!("the server on {addr} exited as it started: {status}");
    }
    child
}

async fn register(addr: SocketAddr, name: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!("name={name}");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /api/register HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let start = raw.find("\"token\":\"").expect("a token in the answer") + 9;
    raw[start..start + 64].to_owned()
}

/// Joins "general" on a fresh connection: the epoch and the stored messages.
async fn join_general(addr: SocketAddr) -> (u64, Vec<Message>) {
    let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.expect("ws");
    ws.send(WsMessage::text(
        ClientEvent::Join {
            room: general(),
            since: None,
            client_ref: None,
        }
        .encode(),
    ))
    .await
    .expect("join");
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer")
            .expect("open")
            .expect("valid");
        if let WsMessage::Text(text) = frame {
            if let ServerEvent::Hub(HubEvent::Joined {
                epoch, messages, ..
            }) = ServerEvent::decode(text.as_str()).expect("valid event")
            {
                return (epoch, messages);
            }
        }
    }
}

fn general() -> Room {
    Room::Channel(ChannelName::parse("general").expect("valid"))
}

/// Kill the server with SIGKILL while a client streams messages, start it again: every
/// message acknowledged before the kill is there, in order, with its original id, sequence
/// number and timestamp, and nothing appears twice.
#[tokio::test]
async fn acknowledged_messages_survive_sigkill() {
    survive_sigkill("durability", &sqlite()).await;
}

/// The same with the PostgreSQL store: every acknowledged message is in the database after
/// SIGKILL, and the unclean stop begins a new epoch.
#[tokio::test]
async fn acknowledged_messages_survive_sigkill_on_postgres() {
    let db = TestDatabase::create("sigkill");
    survive_sigkill("durability-pg", &postgres(&db)).await;
}

async fn survive_sigkill(test: &str, store: &[String]) {
    let data = std::env::temp_dir().join(format!("flack-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (addr, mut server) = start_server(&data, store).await;
    let token = register(addr, "streamer").await;

    let (ws, _) = connect_async(format!("ws://{addr}/ws")).await.expect("ws");
    let (mut sink, mut stream) = ws.split();
    let send = |event: ClientEvent| WsMessage::text(event.encode());
    sink.send(send(ClientEvent::Auth { token }))
        .await
        .expect("auth");
    sink.send(send(ClientEvent::Join {
        room: general(),
        since: None,
        client_ref: None,
    }))
    .await
    .expect("join");

    let sender = tokio::spawn(async move {
        for i in 1..=400 {
            let event = ClientEvent::Send {
                room: general(),
                body: format!("message {i}"),
                attachment: None,
                reply_to: None,
                client_ref: Some(i.to_string()),
            };
            if sink.send(send(event)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });

    // Record every message seen and every acknowledgement, and kill the server mid-stream.
    let mut seen: HashMap<MessageId, Message> = HashMap::new();
    let mut acked: Vec<MessageId> = Vec::new();
    let mut epoch_before = None;
    while acked.len() < 40 {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("events keep coming")
            .expect("socket open")
            .expect("valid frame");
        let WsMessage::Text(text) = frame else {
            continue;
        };
        match ServerEvent::decode(text.as_str()).expect("valid event") {
            ServerEvent::Hub(HubEvent::Message { message }) => {
                seen.insert(message.id, message);
            }
            ServerEvent::Ack { id, .. } => acked.push(id),
            ServerEvent::Hub(HubEvent::Joined { epoch, .. }) => epoch_before = Some(epoch),
            _ => {}
        }
    }
    server.kill().expect("SIGKILL");
    server.wait().expect("reaped");
    sender.abort();
    assert!(acked.len() >= 40);

    let mut restarted = restart_server(addr, &data, store).await;
    let (epoch_after, stored) = join_general(addr).await;
    restarted.kill().expect("stop");
    let _ = restarted.wait();
    let _ = std::fs::remove_dir_all(&data);

    // Messages delivered but not yet stored died with the process, and their numbers will be
    // given out again: a new epoch tells clients not to resume from numbers they saw.
    assert!(epoch_before.is_some());
    assert_ne!(
        Some(epoch_after),
        epoch_before,
        "an unclean stop starts a new epoch"
    );
    // In order, nothing twice.
    assert!(stored
        .windows(2)
        .all(|w| w[0].seq < w[1].seq && w[0].id < w[1].id));
    let by_id: HashMap<MessageId, &Message> = stored.iter().map(|m| (m.id, m)).collect();
    assert_eq!(by_id.len(), stored.len());
    // Every acknowledged message, exactly as it was delivered before the kill.
    for id in &acked {
        let before = seen.get(id).expect("an acked message was delivered first");
        let after = by_id
            .get(id)
            .unwrap_or_else(|| panic!("acked message {id:?} was lost"));
        assert_eq!(*after, before);
    }
}

/// SIGTERM stops the server gracefully: live sockets get a "going away" close frame (so
/// browsers reconnect elsewhere), the process exits cleanly, and the next start keeps the
/// epoch, so clients resume from where they were instead of reloading every room.
#[tokio::test]
async fn sigterm_closes_sockets_with_going_away() {
    stop_on_sigterm("sigterm", &sqlite()).await;
}

/// The same with the PostgreSQL store: a clean stop keeps the epoch in the database.
#[tokio::test]
async fn sigterm_keeps_the_epoch_on_postgres() {
    let db = TestDatabase::create("sigterm");
    stop_on_sigterm("sigterm-pg", &postgres(&db)).await;
}

async fn stop_on_sigterm(test: &str, store: &[String]) {
    let data = std::env::temp_dir().join(format!("flack-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (addr, mut server) = start_server(&data, store).await;
    let (epoch_before, _) = join_general(addr).await;
    let (mut ws, _) = connect_async(format!("ws://{addr}/ws")).await.expect("ws");
    // The welcome event shows the connection is live. (A ping may come first: the server's
    // heartbeat ticks once as the connection starts.)
    let first = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(first, Ok(Some(Ok(WsMessage::Text(_))))),
        "expected the welcome event, got {first:?}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(WsMessage::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = server.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    let mut restarted = restart_server(addr, &data, store).await;
    let (epoch_after, _) = join_general(addr).await;
    restarted.kill().expect("stop");
    let _ = restarted.wait();
    assert_eq!(epoch_after, epoch_before, "a clean stop keeps the epoch");
    let _ = std::fs::remove_dir_all(&data);
}
