//! Connections' bounded queues of outgoing frames, and the frames themselves: events encoded
//! once and shared by every connection they go to.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// An encoded event, shared by every connection it is sent to (encoded once).
#[derive(Clone, Debug)]
pub struct Frame(Bytes);

impl Frame {
    /// A frame of encoded text.
    pub fn from_text(text: String) -> Frame {
        Frame(Bytes::from(text))
    }

    /// The encoded text.
    pub fn as_str(&self) -> &str {
        // Frames are only ever made from `String`s, so they are always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The encoded bytes (valid UTF-8).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// Identifies one live connection inside the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(super) u64);

/// The sending half of a connection's bounded queue of outgoing frames.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Frame>,
    /// Set when a frame did not fit: the connection must call [`super::Hub::resync`] once
    /// its queue has drained.
    behind: Arc<AtomicBool>,
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames, and the receiver that drains it.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Outbox {
            tx,
            behind: Arc::new(AtomicBool::new(false)),
        };
        (outbox, rx)
    }

    /// True when a frame was refused since the last resync.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Acquire)
    }

    /// Clears the mark [`Outbox::offer`] sets; done by the resync that repairs it.
    pub(super) fn clear_behind(&self) {
        self.behind.store(false, Ordering::Release);
    }

    /// Queues a frame without waiting; a full queue marks the connection as behind.
    pub(super) fn offer(&self, frame: Frame) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.behind.store(true, Ordering::Release);
                false
            }
            // The connection is going away; its cleanup removes it from the hub.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a reply to this connection alone, waiting for room. False once the connection
    /// is gone.
    pub async fn send(&self, frame: Frame) -> bool {
        self.tx.send(frame).await.is_ok()
    }
}
