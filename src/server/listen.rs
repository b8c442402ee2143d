//! The accept loop: each connection served by hyper's HTTP/1 with a header timeout (axum's
//! own `serve` sets none), within caps on open connections in all and per address, and a
//! graceful shutdown that lets requests under way finish.

use super::config::Config;
use super::ws::backlog::SocketQueue;
use crate::chat::model::ChatError;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// Open files kept free of connections, for the database, uploads, downloads and the
/// built assets.
const FILES_KEPT_FREE: u64 = 256;
/// How long the loop waits after an accept error (say, the process is out of open files)
/// before accepting again, rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a shutdown waits for requests under way (a download to a client that stopped
/// reading could otherwise hold it forever).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// What a refused connection is sent (if its socket takes it at once) before it is closed:
/// 503 with the error body of [`ChatError::TooManyConnections`].
static REFUSED: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = serde_json::to_string(&ChatError::TooManyConnections).unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// What the accept loop enforces, from the configuration.
#[derive(Clone, Debug)]
pub struct ListenSettings {
    /// `limits.request_header_secs`.
    pub header_timeout: Duration,
    /// `limits.max_connections`, lowered by [`ListenSettings::fit_open_file_limit`].
    pub max_connections: usize,
    /// `limits.max_connections_per_ip`.
    pub max_per_ip: usize,
    /// `server.trusted_proxies`: exempt from `max_per_ip`, since all their clients share
    /// their address.
    pub trusted_proxies: Vec<IpAddr>,
}

impl ListenSettings {
    pub fn from_config(config: &Config) -> ListenSettings {
        ListenSettings {
            header_timeout: config.limits.request_header,
            max_connections: config.limits.max_connections,
            max_per_ip: config.limits.max_connections_per_ip,
            trusted_proxies: config.server.trusted_proxies.clone(),
        }
    }

    /// Raises this process's open-file limit to the most the system allows, then lowers
    /// `max_connections` to what that limit leaves room for, so accepting never fails for
    /// want of a file. Called once at start by the server binary (tests leave the limit be).
    pub fn fit_open_file_limit(mut self) -> ListenSettings {
        let limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or raise the open-file limit");
                return self;
            }
        };
        let room = usize::try_from(limit.saturating_sub(FILES_KEPT_FREE)).unwrap_or(usize::MAX);
        if room < self.max_connections {
            tracing::warn!(
                open_files = limit,
                max_connections = room,
                "the open-file limit lowers limits.max_connections"
            );
            self.max_connections = room.max(1);
        } else {
            tracing::info!(open_files = limit, "open-file limit");
        }
        self
    }
}

/// The address a client's connections are counted under: an IPv4 address as it is, and an
/// IPv6 address by its /64 network, because one host is normally given a whole /64 and can
/// take any address in it. (An IPv4 address written as IPv6, `::ffff:a.b.c.d`, counts as the
/// IPv4 address.)
pub(crate) fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
        },
    }
}

/// Open connections, in all and per counted address.
#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One open connection's place in the counts; given back when dropped (when the socket
/// closes, also after a WebSocket upgrade took it over).
struct Slot {
    open: Arc<Mutex<Open>>,
    /// `None` for a trusted proxy, which is counted only in the total.
    ip: Option<IpAddr>,
}

impl Slot {
    fn take(open: &Arc<Mutex<Open>>, peer: IpAddr, settings: &ListenSettings) -> Option<Slot> {
        let mut counts = open.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= settings.max_connections {
            return None;
        }
        let ip = (!settings.trusted_proxies.contains(&peer)).then(|| counted_as(peer));
        if let Some(ip) = ip {
            let count = counts.by_ip.entry(ip).or_insert(0);
            if *count >= settings.max_per_ip {
                return None;
            }
            *count += 1;
        }
        counts.total += 1;
        drop(counts);
        Some(Slot {
            open: open.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(ip) = self.ip {
            if let Some(count) = counts.by_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.by_ip.remove(&ip);
                }
            }
        }
    }
}

/// A socket that holds its [`Slot`] for as long as it is open.
struct Counted {
    tcp: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Connections the kernel may hold for the server before it accepts them. The standard
/// library's (and tokio's) 128 overflowed when 1,000 clients reconnected at once after a
/// failover (the cluster benchmark saw 42 to 67 dropped, each retrying a second later);
/// the kernel caps it at `net.core.somaxconn` (4,096 here).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the server's listening socket, with room for a reconnecting crowd.
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on a bound listener until `shutdown` completes; then stops accepting,
/// lets requests under way finish (upgraded WebSockets are closed by the application) and
/// returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ListenSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let open = Arc::new(Mutex::new(Open::default()));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    // Each connection's task holds a receiver; `closed()` on the sender then waits for all.
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&open, peer.ip(), &settings) else {
            tracing::debug!(%peer, "refused a connection over the limits");
            // Best effort, without waiting: a client that does not read is not owed more.
            let _ = tcp.try_write(&REFUSED);
            continue;
        };
        // Frames go out as soon as they are written: with Nagle's algorithm, a frame that
        // follows another within a round trip could wait for the peer's delayed
        // acknowledgement (tens of milliseconds).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // For the WebSocket's writer, which asks the kernel how much its reader has not taken.
        let socket_queue = SocketQueue::of(&tcp);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(socket_queue);
            router.clone().oneshot(request)
        });
        let io = TokioIo::new(Counted { tcp, _slot: slot });
        let connection = http.serve_connection(io, service).with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    return;
                }
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(stopping);
    stop.send_replace(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!("requests still under way at shutdown were cut off");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    /// At start the open-file limit is raised as far as the system allows (its soft limit
    /// becomes the hard one), and the connection cap is lowered to leave files free.
    #[test]
    fn the_open_file_limit_is_raised_and_respected() {
        let settings = ListenSettings {
            header_timeout: Duration::from_secs(1),
            max_connections: usize::MAX,
            max_per_ip: 1,
            trusted_proxies: Vec::new(),
        }
        .fit_open_file_limit();
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("the limit");
        #[cfg(target_os = "linux")]
        assert_eq!(soft, hard, "raised to the hard limit");
        let room = usize::try_from(soft.saturating_sub(FILES_KEPT_FREE)).unwrap_or(usize::MAX);
        assert_eq!(settings.max_connections, room.max(1));
    }

    /// IPv6 clients are counted by their /64 (one host's usual share), IPv4 clients by their
    /// address, and an IPv4 address written as IPv6 as that IPv4 address.
    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(counted_as(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            counted_as(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            counted_as(ip("2001:db8:1:2::7"))
        );
        assert_ne!(
            counted_as(ip("2001:db8:1:3::1")),
            counted_as(ip("2001:db8:1:2::1"))
        );
        assert_eq!(counted_as(ip("192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(counted_as(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
    }
}
