//! How far behind a connection's reader is: the bytes written to its socket that the peer has
//! not acknowledged yet (the kernel tells, on Linux), and how long ago the oldest of them was
//! written.
//!
//! The outbox alone cannot tell: a kernel's send buffer grows to megabytes, so a reader a
//! little slower than its room fills the socket for minutes while the outbox stays empty, and
//! its delay grows with nothing in the server seeing it. The writer records when it wrote
//! which bytes; the kernel says how many of them the peer has not acknowledged; together they
//! give the age of the oldest unacknowledged byte, which is how far behind the reader is
//! (give or take what sits unread in the peer's own receive buffer, which no server can see).
//!
//! What the peer's kernel has acknowledged may still be unread, though: a client's receive
//! buffer and its WebSocket library's own hold megabytes. So the writer also times its pings:
//! a pong comes back only once the client has read everything written before the ping, so a
//! ping unanswered for seconds means a reader seconds behind, wherever the bytes wait. A
//! connection being written to is pinged at most once a second for that, one ping at a time.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Writes closer together than this share one mark: the age found is at most this much too
/// high, and a connection written to many times a second keeps few marks.
const MARK_EVERY: Duration = Duration::from_millis(50);
/// Most marks kept (`MARK_EVERY` apart, they span at least 25 s); past it the oldest goes, and
/// the age found is then at least the span of what is kept.
const MAX_MARKS: usize = 512;
/// How often the writer asks the kernel, at most (one system call per connection per check).
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(250);
/// How often a connection being written to is pinged, at most, to time its reader.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A connection's socket, as far as asking the kernel about its send queue goes: the raw
/// descriptor, taken when the connection was accepted. Only asked while the connection's
/// WebSocket is served, which owns the socket, so the descriptor is open and is this socket's.
#[derive(Clone, Copy, Debug)]
pub struct SocketQueue {
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fd: std::os::fd::RawFd,
}

impl SocketQueue {
    /// The send queue of `tcp`.
    pub fn of(tcp: &tokio::net::TcpStream) -> SocketQueue {
        use std::os::fd::AsRawFd;
        SocketQueue {
            fd: tcp.as_raw_fd(),
        }
    }

    /// Bytes written to the socket that the peer has not acknowledged (sent or not yet);
    /// `None` where the platform does not tell, or the socket is gone.
    pub fn unacknowledged(&self) -> Option<u64> {
        #[cfg(target_os = "linux")]
        {
            let mut bytes: libc::c_int = 0;
            // SAFETY: `SIOCOUTQ` (the same number as `TIOCOUTQ`) writes one `c_int` through
            // the pointer, which points at one. A descriptor that is not a socket (it cannot
            // be: see the type's documentation) would only make the call fail.
            let done = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut bytes) };
            (done == 0).then(|| u64::try_from(bytes).unwrap_or(0))
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}

/// What the writer knows of the bytes it has handed to the socket.
#[derive(Debug)]
pub struct Backlog {
    socket: Option<SocketQueue>,
    /// Bytes written to the socket since the connection opened, WebSocket headers included.
    written: u64,
    /// `(written before, when)`: every byte after `written before` was written at or after
    /// `when`. Oldest first; the first is the last mark at or below what the peer took.
    marks: VecDeque<(u64, Instant)>,
    /// When the kernel was last asked.
    checked: Instant,
    /// What it said then.
    last: Unsent,
    /// When the oldest ping not answered yet was sent.
    ping_out: Option<Instant>,
    /// When the last ping was sent.
    pinged: Instant,
}

/// What one check found: the unsent bytes (outbox and socket) and how old the oldest is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unsent {
    /// Bytes queued in the outbox, not yet written.
    pub queued: u64,
    /// Bytes in the socket that the peer has not acknowledged (0 where the platform does not
    /// tell).
    pub in_socket: u64,
    /// How long ago the oldest byte in the socket was written.
    pub age: Duration,
}

impl Backlog {
    /// A connection that has written nothing yet; `socket` is `None` where the server was not
    /// given one (a test's plain listener) or the platform does not tell.
    pub fn new(socket: Option<SocketQueue>) -> Backlog {
        Backlog {
            socket,
            written: 0,
            marks: VecDeque::new(),
            checked: Instant::now(),
            last: Unsent::default(),
            ping_out: None,
            pinged: Instant::now(),
        }
    }

    /// Records that `bytes` (as the wire carries them: see [`wire_bytes`]) are being written
    /// now.
    pub fn wrote(&mut self, bytes: u64, now: Instant) {
        let fresh = self
            .marks
            .back()
            .is_some_and(|&(_, at)| now.saturating_duration_since(at) < MARK_EVERY);
        if !fresh {
            if self.marks.len() == MAX_MARKS {
                self.marks.pop_front();
            }
            self.marks.push_back((self.written, now));
        }
        self.written += bytes;
    }

    /// Records a ping written now.
    pub fn pinged(&mut self, now: Instant) {
        self.wrote(wire_bytes(0), now);
        self.ping_out.get_or_insert(now);
        self.pinged = now;
    }

    /// True while a ping waits for its pong.
    pub fn ping_is_out(&self) -> bool {
        self.ping_out.is_some()
    }

    /// Takes the time of the last pong the reader saw: the ping out before it is answered.
    pub fn ponged(&mut self, at: Instant) {
        if self.ping_out.is_some_and(|sent| at >= sent) {
            self.ping_out = None;
        }
    }

    /// How long the ping out has waited for its pong (zero with none out).
    pub fn ping_age(&self, now: Instant) -> Duration {
        self.ping_out
            .map_or(Duration::ZERO, |sent| now.saturating_duration_since(sent))
    }

    /// True when a connection being written to should be pinged now to time its reader: no
    /// ping is out and none went for [`PROBE_EVERY`].
    pub fn probe_due(&self, now: Instant) -> bool {
        self.ping_out.is_none() && now.saturating_duration_since(self.pinged) >= PROBE_EVERY
    }

    /// True when [`CHECK_EVERY`] has passed since the last check.
    pub fn check_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.checked) >= CHECK_EVERY
    }

    /// Asks the kernel what the peer has not acknowledged, and works out how long ago the
    /// oldest of it was written; `queued` is what the outbox holds. [`Backlog::last`] then
    /// tells what it found.
    pub fn check(&mut self, queued: usize, now: Instant) {
        self.checked = now;
        let in_socket = self
            .socket
            .and_then(|s| s.unacknowledged())
            .unwrap_or(0)
            .min(self.written);
        self.last = Unsent {
            queued: queued as u64,
            in_socket,
            age: self.age(in_socket, now),
        };
    }

    /// What the last check found.
    pub fn last(&self) -> Unsent {
        self.last
    }

    /// How long ago the oldest of the last `in_socket` bytes written was written, forgetting
    /// the marks of what the peer has taken.
    fn age(&mut self, in_socket: u64, now: Instant) -> Duration {
        if in_socket == 0 {
            self.marks.clear();
            return Duration::ZERO;
        }
        let taken = self.written - in_socket;
        // Marks wholly taken by the peer go; the last one at or below `taken` stays, as the
        // time the oldest unacknowledged byte was written (or just before).
        while self
            .marks
            .get(1)
            .is_some_and(|&(before, _)| before <= taken)
        {
            self.marks.pop_front();
        }
        self.marks
            .front()
            .map_or(Duration::ZERO, |&(_, at)| now.saturating_duration_since(at))
    }
}

/// The bytes a server's WebSocket frame of `payload` bytes takes on the wire: two bytes of
/// header, and two or eight more for the length when it does not fit in seven bits (a
/// server's frames are not masked).
pub fn wire_bytes(payload: usize) -> u64 {
    let header = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    (payload + header) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With nothing unacknowledged the reader is not behind, however much was written.
    #[test]
    fn an_acknowledged_socket_is_not_behind() {
        let mut backlog = Backlog::new(None);
        let start = Instant::now();
        backlog.wrote(1000, start);
        assert_eq!(
            backlog.age(0, start + Duration::from_secs(10)),
            Duration::ZERO
        );
        assert!(backlog.marks.is_empty());
    }

    /// The age is that of the write holding the oldest unacknowledged byte: taking part of
    /// the bytes moves it to a later write, and writes closer than `MARK_EVERY` share one.
    #[test]
    fn the_age_is_that_of_the_oldest_unacknowledged_write() {
        let mut backlog = Backlog::new(None);
        let start = Instant::now();
        for i in 0..10u32 {
            // 100-byte payloads, 102 bytes on the wire, one second apart.
            backlog.wrote(102, start + Duration::from_secs(i.into()));
        }
        backlog.wrote(102, start + Duration::from_millis(9010));
        assert_eq!(backlog.written, 11 * 102);
        assert_eq!(backlog.marks.len(), 10, "the last two writes share a mark");
        let now = start + Duration::from_secs(12);
        // The peer took the first three frames and half the fourth.
        let age = backlog.age(11 * 102 - (3 * 102 + 51), now);
        assert_eq!(
            age,
            Duration::from_secs(9),
            "the fourth frame was written at 3 s"
        );
        // It took the first eight frames and the ninth's first byte.
        let age = backlog.age(3 * 102 - 1, now);
        assert_eq!(
            age,
            Duration::from_secs(4),
            "the ninth frame was written at 8 s"
        );
        assert_eq!(
            backlog.marks.len(),
            2,
            "the marks of the frames taken are gone"
        );
    }

    /// A ping unanswered is the reader's delay; its pong (or a later one) ends it, an older
    /// pong does not; a connection is pinged again only once its ping is answered and a
    /// second has passed.
    #[test]
    fn unanswered_pings_time_the_reader() {
        let mut backlog = Backlog::new(None);
        let start = Instant::now();
        let sent = start + Duration::from_secs(2);
        assert!(backlog.probe_due(sent));
        backlog.pinged(sent);
        assert!(
            !backlog.probe_due(sent + Duration::from_secs(5)),
            "one ping at a time"
        );
        backlog.ponged(start);
        assert_eq!(
            backlog.ping_age(sent + Duration::from_secs(4)),
            Duration::from_secs(4)
        );
        backlog.ponged(sent + Duration::from_secs(4));
        assert_eq!(
            backlog.ping_age(sent + Duration::from_secs(5)),
            Duration::ZERO
        );
        assert!(!backlog.probe_due(sent + Duration::from_millis(900)));
        assert!(backlog.probe_due(sent + Duration::from_secs(5)));
    }

    /// Frame headers are counted as the wire carries them, so what the kernel reports lines
    /// up with the writes.
    #[test]
    fn headers_are_counted() {
        assert_eq!(wire_bytes(0), 2);
        assert_eq!(wire_bytes(125), 127);
        assert_eq!(wire_bytes(126), 130);
        assert_eq!(wire_bytes(65_536), 65_546);
    }

    /// The kernel's count is read from a real socket: bytes its peer does not read pile up
    /// unacknowledged once the peer's receive buffer is full, and none are left once the peer
    /// has read them all.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_kernel_tells_what_the_peer_has_not_taken() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut peer = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let queue = SocketQueue::of(&server);
        assert_eq!(queue.unacknowledged(), Some(0));
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0;
        while written < 64 << 20 {
            match server.try_write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write failed: {e}"),
            }
        }
        let waiting = queue.unacknowledged().expect("Linux tells");
        assert!(
            waiting > 0 && waiting <= written as u64,
            "{waiting} of {written} bytes unacknowledged"
        );
        let mut buffer = vec![0u8; 64 * 1024];
        let mut read = 0;
        while read < written {
            read += peer.read(&mut buffer).await.expect("read");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while queue.unacknowledged() != Some(0) {
            assert!(
                Instant::now() < deadline,
                "the queue drains once everything is read"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
