//! Integration tests of the server's defences: cross-site WebSocket hijacking, and
//! connection and rate limits. (The security headers on pages are tested in `pages.rs`.)

mod common;

use common::{general, start_with, Client};
use flack::protocol::ServerEvent;
use flack::server::config::Config;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

async fn connect_with_origin(addr: std::net::SocketAddr, origin: &str) -> Result<(), u16> {
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Origin", origin.parse().expect("header"));
    match connect_async(request).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// A page from another site cannot open a WebSocket (403); the server's own pages, configured
/// origins and non-browser clients (no Origin) can.
#[tokio::test]
async fn websocket_origin_is_checked() {
    let mut config = common::fast();
    config.server.allowed_origins = vec!["https://chat.example.com".into()];
    let server = start_with(config).await;
    let addr = server.addr;
    assert_eq!(
        connect_with_origin(addr, "https://evil.example").await,
        Err(403)
    );
    assert_eq!(
        connect_with_origin(addr, &format!("http://{addr}.evil.example")).await,
        Err(403)
    );
    assert_eq!(
        connect_with_origin(addr, &format!("http://{addr}")).await,
        Ok(())
    );
    assert_eq!(
        connect_with_origin(addr, "https://chat.example.com").await,
        Ok(())
    );
    Client::connect(&server).await;
}

/// One address cannot hold more than the configured number of connections; closing one
/// frees its place.
#[tokio::test]
async fn connections_per_address_are_limited() {
    let mut config = common::fast();
    config.limits.connections_per_ip = 2;
    let server = start_with(config).await;
    let first = Client::connect(&server).await;
    let _second = Client::connect(&server).await;
    let third = connect_async(format!("ws://{}/ws", server.addr)).await;
    match third {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    first.close().await;
    let mut freed = false;
    for _ in 0..50 {
        if connect_async(format!("ws://{}/ws", server.addr))
            .await
            .is_ok()
        {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "a closed connection gives its place back");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket as a proxy would, naming `client` in `X-Forwarded-For`; the socket is
/// kept open for as long as the caller holds it.
async fn connect_forwarded_for(addr: std::net::SocketAddr, client: &str) -> Result<Socket, u16> {
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("X-Forwarded-For", client.parse().expect("header"));
    match connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// Behind a trusted proxy each client address has its own allowance; without the setting,
/// `X-Forwarded-For` cannot be used to get around the limit.
#[tokio::test]
async fn the_limit_follows_the_address_a_trusted_proxy_reports() {
    let mut config = common::fast();
    config.limits.connections_per_ip = 1;
    config.server.trusted_proxies = vec!["127.0.0.1".parse().expect("address")];
    let behind_proxy = start_with(config).await;
    let addr = behind_proxy.addr;
    let _first = connect_forwarded_for(addr, "192.0.2.1")
        .await
        .expect("first");
    let _other = connect_forwarded_for(addr, "192.0.2.2")
        .await
        .expect("another client");
    assert_eq!(
        connect_forwarded_for(addr, "192.0.2.1").await.err(),
        Some(429)
    );

    let mut config = common::fast();
    config.limits.connections_per_ip = 1;
    let direct = start_with(config).await;
    let addr = direct.addr;
    let _first = connect_forwarded_for(addr, "192.0.2.1")
        .await
        .expect("first");
    assert_eq!(
        connect_forwarded_for(addr, "192.0.2.2").await.err(),
        Some(429)
    );
}

/// An IPv6 client is counted by its /64: other addresses in the same network share its
/// allowance, another network has its own.
#[tokio::test]
async fn ipv6_clients_are_limited_per_network() {
    let mut config = common::fast();
    config.limits.connections_per_ip = 1;
    config.server.trusted_proxies = vec!["127.0.0.1".parse().expect("address")];
    let server = start_with(config).await;
    let addr = server.addr;
    let _first = connect_forwarded_for(addr, "2001:db8:1:2::1")
        .await
        .expect("first");
    assert_eq!(
        connect_forwarded_for(addr, "2001:db8:1:2:ffff::9")
            .await
            .err(),
        Some(429),
        "the same /64"
    );
    let _other = connect_forwarded_for(addr, "2001:db8:1:3::1")
        .await
        .expect("another /64");
}

/// Sends `GET path` with the given `Host` header (none if `None`) and returns the status and
/// the body.
async fn get_with_host(
    addr: std::net::SocketAddr,
    path: &str,
    host: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    let (version, extra) = if host.is_empty() {
        ("1.0", "")
    } else {
        ("1.1", "Connection: close\r\n")
    };
    let head = format!("GET {path} HTTP/{version}\r\n{host}{extra}Accept: text/html\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(common::WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// With `server.allowed_hosts` set, a request naming another host (a DNS-rebinding page, or
/// a scan by address) is refused with 421 and `unknown_host`, pages and the WebSocket alike;
/// a listed name without a port is allowed on any port; without the setting every host is.
#[tokio::test]
async fn unknown_hosts_are_refused() {
    let mut config = common::fast();
    config.server.allowed_hosts = vec![
        "chat.example.com".parse().expect("host"),
        "[::1]:8443".parse().expect("host"),
    ];
    let server = start_with(config).await;
    let addr = server.addr;
    for host in ["chat.example.com", "Chat.Example.COM:3000", "[::1]:8443"] {
        assert_eq!(
            get_with_host(addr, "/c/general", Some(host)).await.0,
            200,
            "{host}"
        );
    }
    let own = addr.to_string();
    for host in [
        Some("evil.example"),
        Some(own.as_str()),
        Some("[::1]:8080"),
        None,
    ] {
        let (status, body) = get_with_host(addr, "/c/general", host).await;
        assert_eq!(status, 421, "{host:?}");
        let error: flack::chat::model::ChatError =
            serde_json::from_str(&body).expect("the error body");
        assert_eq!(
            error,
            flack::chat::model::ChatError::UnknownHost,
            "{host:?}"
        );
    }
    let socket = connect_async(format!("ws://{addr}/ws")).await;
    match socket {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 421),
        other => panic!("expected 421, got {other:?}"),
    }

    let open = start_with(common::fast()).await;
    assert_eq!(
        get_with_host(open.addr, "/c/general", Some("evil.example"))
            .await
            .0,
        200
    );
}

/// Posting faster than 10 per second beyond a burst of 20 is refused with `rate_limited`.
#[tokio::test]
async fn posting_rate_is_limited() {
    let server = start_with(Config::default()).await;
    let mut ada = Client::joined(&server, "Ada").await;
    for i in 0..25 {
        ada.post(&general(), &format!("m{i}")).await;
    }
    let mut acks = 0;
    let mut limited = 0;
    while acks + limited < 25 {
        match ada.next().await {
            ServerEvent::Ack { .. } => acks += 1,
            ServerEvent::Error { code, .. } => {
                assert_eq!(code, "rate_limited");
                limited += 1;
            }
            _ => {}
        }
    }
    assert_eq!(acks, 20);
    assert_eq!(limited, 5);
    assert_eq!(common::general_history(&server).len(), 20);
}

/// A `POST` with the given extra headers to `/api/register`, registering `name`.
async fn register_with(
    server: &common::TestServer,
    name: &str,
    headers: &[(&str, &str)],
) -> common::HttpResponse {
    let mut all = vec![
        ("Accept", "application/json"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    all.extend_from_slice(headers);
    let form = format!("name={}", common::form_value(name));
    common::request(server, "POST", "/api/register", &all, form.as_bytes()).await
}

/// Another site's page cannot call a server function or upload a file: a request that says
/// it is cross-site or same-site (`Sec-Fetch-Site`), or that carries a foreign `Origin`, is
/// refused with 403 and the `cross_site` error body, and changes nothing. Our own pages
/// (same origin, or an origin in `server.allowed_origins`), typed addresses and clients that
/// are not browsers pass; reading is never refused.
#[tokio::test]
async fn cross_site_requests_are_refused() {
    let mut config = common::fast();
    config.server.allowed_origins = vec!["https://chat.example.com".into()];
    let server = start_with(config).await;
    let own = format!("http://{}", server.addr);
    let refused: [&[(&str, &str)]; 5] = [
        &[("Origin", "https://evil.example")],
        &[("Origin", "null")],
        &[("Sec-Fetch-Site", "cross-site")],
        &[
            ("Sec-Fetch-Site", "same-site"),
            ("Origin", "http://127.0.0.1:1"),
        ],
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "https://evil.example"),
        ],
    ];
    for headers in refused {
        let response = register_with(&server, "Mallory", headers).await;
        assert_eq!(response.status, 403, "{headers:?}: {}", response.body);
        let error: flack::chat::model::ChatError =
            serde_json::from_str(&response.body).expect("the error body");
        assert_eq!(error, flack::chat::model::ChatError::CrossSite);
        assert!(response.header("set-cookie").is_none(), "{headers:?}");
    }
    let passed: [&[(&str, &str)]; 5] = [
        &[],
        &[("Origin", own.as_str())],
        &[("Sec-Fetch-Site", "same-origin"), ("Origin", own.as_str())],
        &[("Sec-Fetch-Site", "none")],
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "https://chat.example.com"),
        ],
    ];
    for (i, headers) in passed.into_iter().enumerate() {
        let response = register_with(&server, &format!("Friend{i}"), headers).await;
        assert_eq!(response.status, 200, "{headers:?}: {}", response.body);
        // The session cookie is never sent with another site's requests.
        let cookie = response.header("set-cookie").expect("the session cookie");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
    }
    // Nothing the refused requests sent was stored: the name is still free.
    server
        .hub
        .register("Mallory")
        .expect("Mallory is still free");

    let ada = server
        .hub
        .register("Ada")
        .expect("registers")
        .stored()
        .await
        .expect("stored");
    let bearer = format!("Bearer {}", ada.token);
    let upload = common::request(
        &server,
        "POST",
        "/files?channel=general",
        &[
            ("Authorization", bearer.as_str()),
            ("X-File-Name", "a.txt"),
            ("Origin", "https://evil.example"),
        ],
        b"hello",
    )
    .await;
    assert_eq!(upload.status, 403, "{}", upload.body);
    assert!(upload.body.contains("cross_site"), "{}", upload.body);

    let page = common::request(
        &server,
        "GET",
        "/c/general",
        &[
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        b"",
    )
    .await;
    assert_eq!(page.status, 200, "reading is not refused");
}

/// One address cannot make accounts without end: past `limits.registrations_per_hour` a
/// registration from it is refused with 429 `too_many_registrations` and creates nobody,
/// while another address (here, behind a trusted proxy) still registers.
#[tokio::test]
async fn registrations_are_limited_per_address() {
    let mut config = common::fast();
    config.limits.registrations_per_hour = 3;
    config.server.trusted_proxies = vec!["127.0.0.1".parse().expect("address")];
    let server = start_with(config).await;
    let register = |name: &str, from: &str| {
        let form = format!("name={name}");
        let server = &server;
        let from = from.to_owned();
        async move {
            common::request(
                server,
                "POST",
                "/api/register",
                &[
                    ("Accept", "application/json"),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("X-Forwarded-For", &from),
                ],
                form.as_bytes(),
            )
            .await
        }
    };
    for i in 0..3 {
        assert_eq!(
            register(&format!("user{i}"), "203.0.113.7").await.status,
            200
        );
    }
    let refused = register("one-too-many", "203.0.113.7").await;
    assert_eq!(refused.status, 429);
    assert!(
        refused.body.contains("too_many_registrations"),
        "{}",
        refused.body
    );
    assert!(
        server.hub.register("one-too-many").is_ok(),
        "the refused name was not taken"
    );
    assert_eq!(register("elsewhere", "198.51.100.1").await.status, 200);
}
