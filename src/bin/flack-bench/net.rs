//! Network plumbing for the load generator: WebSocket clients bound to chosen loopback source
//! addresses (so tens of thousands of connections do not run out of ports), and a minimal
//! HTTP/1.1 client for registration, channel creation and page loads.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// A client WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// The loopback source address for client number `i`: 127.1.x.y, 250 clients per address.
pub fn source_ip(i: usize) -> IpAddr {
    let block = i / 250;
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (block / 250) as u8,
        (block % 250) as u8,
        (i % 250 + 1) as u8,
    ))
}

/// Opens a TCP connection from `source` to `addr`.
pub async fn tcp(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a WebSocket to `ws://addr/ws` from `source`.
///
/// The read buffer is 4 KiB, like the servers'. tungstenite zeroes the free part of its read
/// buffer before every read, so its 128 KiB default made a third of the harness's CPU time
/// `memset` (found with `perf`), and the harness, not the server, set the latency floor.
pub async fn websocket(addr: SocketAddr, source: Option<IpAddr>) -> Result<Ws, String> {
    let stream = tcp(addr, source).await.map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}/ws"),
        stream,
        Some(config),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// One HTTP response: status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 connection.
pub struct Http {
    stream: TcpStream,
    addr: SocketAddr,
    buffer: Vec<u8>,
}

impl Http {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<Http> {
        Ok(Http {
            stream: tcp(addr, source).await?,
            addr,
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends a request and reads its whole response (Content-Length or chunked).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&str>,
    ) -> std::io::Result<Response> {
        let body = form.unwrap_or("");
        let accept = if method == "GET" {
            "text/html"
        } else {
            "application/json"
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {accept}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        self.read_response().await
    }

    /// Sends `POST path` with `body` as a file upload (the headers `POST /files` reads) and
    /// reads the response.
    pub async fn upload(
        &mut self,
        path: &str,
        token: &str,
        file_name: &str,
        body: &[u8],
    ) -> std::io::Result<Response> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\
             Authorization: Bearer {token}\r\nX-File-Name: {file_name}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(body).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(at) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..at]).into_owned();
                self.buffer.drain(..at + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buffer.len() < n {
            self.fill().await?;
        }
        Ok(self.buffer.drain(..n).collect())
    }

    async fn read_response(&mut self) -> std::io::Result<Response> {
        let status_line = self.line().await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = None;
        let mut chunked = false;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let size = usize::from_str_radix(self.line().await?.trim(), 16).unwrap_or(0);
                if size == 0 {
                    self.line().await?;
                    break;
                }
                body.extend(self.take(size).await?);
                self.line().await?;
            }
            body
        } else {
            self.take(length.unwrap_or(0)).await?
        };
        Ok(Response { status, body })
    }
}

/// Registers a display name and returns its token.
pub async fn register(addr: SocketAddr, name: &str) -> Result<String, String> {
    Ok(register_from(addr, None, name).await?.token)
}

/// Registers a display name from `source` and returns its session (user and token).
pub async fn register_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
    name: &str,
) -> Result<flack::chat::model::Session, String> {
    let mut http = Http::connect(addr, source)
        .await
        .map_err(|e| e.to_string())?;
    let response = http
        .request("POST", "/api/register", Some(&format!("name={name}")))
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice::<flack::chat::model::Session>(&response.body).map_err(|e| {
        let body = String::from_utf8_lossy(&response.body);
        format!("no session in {body}: {e}")
    })
}

/// Creates a channel (ignoring "already exists").
pub async fn create_channel(addr: SocketAddr, token: &str, name: &str) -> Result<(), String> {
    let mut http = Http::connect(addr, None).await.map_err(|e| e.to_string())?;
    let response = http
        .request(
            "POST",
            "/api/create_channel",
            Some(&format!("token={token}&name={name}")),
        )
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response.body);
    let exists = matches!(
        serde_json::from_str::<flack::chat::model::ChatError>(&text),
        Ok(flack::chat::model::ChatError::ChannelExists(_))
    );
    if response.status == 200 || exists {
        Ok(())
    } else {
        Err(text.into_owned())
    }
}

/// Waits until `addr` lists the channel `name` (another instance of a cluster learns of a
/// new channel a moment after the one that made it).
pub async fn wait_for_channel(
    addr: SocketAddr,
    name: &str,
    within: std::time::Duration,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + within;
    let quoted = format!("\"{name}\"");
    loop {
        let asked = tokio::time::timeout(within, async {
            let mut http = Http::connect(addr, None).await?;
            http.request("POST", "/api/channels", None).await
        })
        .await
        .map_err(|_| format!("{addr} did not answer within {within:?}"))?
        .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&asked.body).contains(&quoted) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{addr} did not list the channel {name} in time"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
