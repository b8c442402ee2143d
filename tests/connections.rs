//! Integration tests of the HTTP layer's own limits (hardening issue 15, item 4): header,
//! idle and body timeouts, caps on open connections, and files streamed to and from disk.

mod common;

use common::{start_with, TestServer};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Settings with short timeouts, so the tests wait little.
fn quick() -> flack::server::config::Config {
    let mut config = common::fast();
    config.limits.request_header = Duration::from_millis(500);
    config.limits.request_body = Duration::from_millis(500);
    config
}

/// Reads until the server closes the connection, for at most `limit`; `None` if it is still
/// open then. A reset counts as closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

/// Opens a TCP connection to `server` from the local address `from` (any 127.x.y.z works on
/// Linux's loopback), so tests can act as several clients.
async fn connect_from(server: SocketAddr, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind a loopback address");
    socket.connect(server).await.expect("connect")
}

/// Whether a connection is served: a whole `GET` gets a status line back.
async fn served(stream: &mut TcpStream) -> bool {
    let request = "GET /pkg/none HTTP/1.1\r\nHost: flack\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let answer = read_until_closed(stream, common::WAIT)
        .await
        .unwrap_or_default();
    String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 404")
}

/// Checks that a connection is closed at once, with a 503 carrying the
/// `too_many_connections` error body.
async fn assert_refused(stream: &mut TcpStream) {
    let answer = read_until_closed(stream, common::WAIT)
        .await
        .expect("closed at once");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let error: flack::chat::model::ChatError = serde_json::from_str(body).expect("the error body");
    assert_eq!(error, flack::chat::model::ChatError::TooManyConnections);
}

/// A client that sends part of a request's headers and then nothing is disconnected once
/// `limits.request_header_secs` have passed (it used to be kept for as long as it liked).
#[tokio::test]
async fn half_sent_headers_are_closed_after_the_header_timeout() {
    let server = start_with(quick()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: flack\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let closed = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "still open after 5 s");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed too soon"
    );
}

/// A keep-alive connection that sends no further request after its answer is closed once
/// `limits.request_header_secs` have passed.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let server = start_with(quick()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /pkg/none HTTP/1.1\r\nHost: flack\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed within 5 s");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 404"),
        "answered first"
    );
}

/// An upload whose body stops arriving is answered 408 `request_timeout` once it has paused
/// for `limits.request_body_secs`, and leaves no file behind; a server function's request
/// that stalls fails too, changing nothing.
#[tokio::test]
async fn stalled_uploads_time_out() {
    let server = start_with(quick()).await;
    let token = server
        .hub
        .register("Ada")
        .expect("registers")
        .stored()
        .await
        .expect("stored")
        .token;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "POST /files?channel=general HTTP/1.1\r\nHost: flack\r\nAuthorization: Bearer {token}\r\n\
         X-File-Name: a.txt\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&[b'x'; 100]).await.expect("write");
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered within 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(files_on_disk(&server).await, 0);

    // A server function's stalled body ends the same way (with its own error answer).
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(
            b"POST /api/register HTTP/1.1\r\nHost: flack\r\nAccept: application/json\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=Bo",
        )
        .await
        .expect("write");
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered within 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.hub.register("Bo").expect("nothing was registered");
}

/// The files in the server's upload folder once pending deletions have run (waits up to two
/// seconds for the folder to empty).
async fn files_on_disk(server: &TestServer) -> usize {
    let count = || {
        std::fs::read_dir(server.config.data.dir.join("files"))
            .map(|dir| dir.count())
            .unwrap_or(0)
    };
    for _ in 0..100 {
        if count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    count()
}

/// One address cannot hold more than `limits.max_connections_per_ip` connections (they
/// need not have sent anything): the next is closed at once, while another address is still
/// served; closing one gives its place back. Beyond `limits.max_connections` in all, every
/// address is refused.
#[tokio::test]
async fn open_connections_are_capped_per_address_and_in_all() {
    let mut config = common::fast();
    config.limits.max_connections_per_ip = 2;
    config.limits.max_connections = 4;
    let server = start_with(config).await;
    let first = connect_from(server.addr, "127.0.0.2").await;
    let _second = connect_from(server.addr, "127.0.0.2").await;
    let mut third = connect_from(server.addr, "127.0.0.2").await;
    assert_refused(&mut third).await;
    assert!(
        served(&mut connect_from(server.addr, "127.0.0.3").await).await,
        "another address"
    );
    drop(first);
    let mut freed = false;
    for _ in 0..50 {
        if served(&mut connect_from(server.addr, "127.0.0.2").await).await {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "a closed connection gives its place back");

    let _held: Vec<TcpStream> = futures_util::future::join_all(
        ["127.0.0.4", "127.0.0.4", "127.0.0.5"].map(|from| connect_from(server.addr, from)),
    )
    .await;
    // `_second`, and three more: the total is reached.
    let mut over = connect_from(server.addr, "127.0.0.6").await;
    assert_refused(&mut over).await;
}

/// A download is sent from the file on disk as the client takes it, not from a copy read
/// whole beforehand: bytes changed on disk after the download started, near the end of a
/// 24 MiB file, arrive changed.
#[tokio::test]
async fn downloads_are_streamed_from_disk() {
    let mut config = common::fast();
    config.limits.max_upload_bytes = 32 << 20;
    let server = start_with(config).await;
    let token = server
        .hub
        .register("Ada")
        .expect("registers")
        .stored()
        .await
        .expect("stored")
        .token;
    let size = 24usize << 20;
    let bearer = format!("Bearer {token}");
    let upload = common::request(
        &server,
        "POST",
        "/files?channel=general",
        &[
            ("Authorization", bearer.as_str()),
            ("X-File-Name", "big.bin"),
        ],
        &vec![0u8; size],
    )
    .await;
    assert_eq!(upload.status, 200, "{}", upload.body);
    let attachment: flack::chat::model::Attachment =
        serde_json::from_str(&upload.body).expect("an attachment");

    // A small receive buffer keeps what the kernel takes ahead of the reader small.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("buffer size");
    let mut stream = socket.connect(server.addr).await.expect("connect");
    let request = format!(
        "GET /files/{} HTTP/1.1\r\nHost: flack\r\nConnection: close\r\n\r\n",
        attachment.id.as_str()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut start = vec![0u8; 64 * 1024];
    tokio::time::timeout(common::WAIT, stream.read_exact(&mut start))
        .await
        .expect("the download starts")
        .expect("read");
    assert!(String::from_utf8_lossy(&start).starts_with("HTTP/1.1 200"));

    let path = server
        .config
        .data
        .dir
        .join("files")
        .join(attachment.id.as_str());
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("the stored file");
        file.seek(SeekFrom::Start(size as u64 - 1024))
            .expect("seek");
        file.write_all(b"changed on disk").expect("write");
    }
    let rest = read_until_closed(&mut stream, Duration::from_secs(20))
        .await
        .expect("the download ends");
    let changed = rest.windows(15).any(|w| w == b"changed on disk");
    assert!(
        changed,
        "the end of the file was read after the download started"
    );
}

/// An upload is written to disk as it arrives: while its last part is still to come, most of
/// it is already in the upload folder.
#[tokio::test]
async fn uploads_are_streamed_to_disk() {
    let mut config = common::fast();
    config.limits.max_upload_bytes = 32 << 20;
    let server = start_with(config).await;
    let token = server
        .hub
        .register("Ada")
        .expect("registers")
        .stored()
        .await
        .expect("stored")
        .token;
    let size = 8usize << 20;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "POST /files?channel=general HTTP/1.1\r\nHost: flack\r\nAuthorization: Bearer {token}\r\n\
         X-File-Name: big.bin\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
        .write_all(&vec![7u8; size - 1024])
        .await
        .expect("write most of it");
    let on_disk = || -> u64 {
        std::fs::read_dir(server.config.data.dir.join("files"))
            .map(|dir| {
                dir.filter_map(|entry| entry.ok()?.metadata().ok())
                    .map(|meta| meta.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let mut written = 0;
    for _ in 0..100 {
        written = on_disk();
        if written >= (size as u64) / 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(written >= (size as u64) / 2, "only {written} bytes on disk");
    stream.write_all(&[7u8; 1024]).await.expect("the rest");
    let answer = read_until_closed(&mut stream, common::WAIT)
        .await
        .expect("answered");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}
