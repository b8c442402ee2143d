//! Connections' bounded queues of outgoing frames, and the frames themselves: events encoded
//! once and shared by every connection they go to.
//!
//! A queue is bounded twice: in frames (`limits.outbox_frames`) and in bytes
//! (`limits.outbox_bytes`), because one `joined` snapshot can weigh as much as thousands of
//! live messages.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

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

    /// The length of the encoded text, in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a frame of no text.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoded bytes (valid UTF-8).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// Identifies one live connection inside the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(super) u64);

/// How many bytes a connection may have queued when nothing else is said: room for two of
/// the largest `joined` snapshots (100 messages of 4,000 four-byte characters are 1.6 MB).
pub const DEFAULT_OUTBOX_BYTES: usize = 4 << 20;

/// The sending half of a connection's queue of outgoing frames, bounded both in frames and in
/// bytes: a client that does not read can make the server hold at most that much for it.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Frame>,
    /// Set when a frame did not fit: the connection must call [`super::Hub::resync`] once
    /// its queue has drained.
    behind: Arc<AtomicBool>,
    budget: Arc<Budget>,
}

/// The bytes a queue may still take: one permit per byte, taken by a queued frame and given
/// back when it is taken out.
#[derive(Debug)]
struct Budget {
    bytes: Semaphore,
    max: usize,
}

impl Budget {
    /// What a frame takes from the budget: its length, but never more than the whole budget,
    /// so a frame larger than the budget still goes, alone.
    fn cost(&self, frame: &Frame) -> u32 {
        u32::try_from(frame.0.len().min(self.max)).unwrap_or(u32::MAX)
    }
}

/// The receiving half of an [`Outbox`]: what the connection's writer drains.
#[derive(Debug)]
pub struct OutboxRx {
    rx: mpsc::Receiver<Frame>,
    budget: Arc<Budget>,
    capacity: usize,
}

impl OutboxRx {
    /// The next frame, waiting for one; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await?;
        Some(self.taken(frame))
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Result<Frame, mpsc::error::TryRecvError> {
        self.rx.try_recv().map(|frame| self.taken(frame))
    }

    fn taken(&self, frame: Frame) -> Frame {
        self.budget
            .bytes
            .add_permits(self.budget.cost(&frame) as usize);
        frame
    }

    /// True when at most half the queue is used, in frames and in bytes: the moment to
    /// resync a connection that fell behind, with room for the catch-up.
    pub fn is_half_empty(&self) -> bool {
        self.rx.len() * 2 <= self.capacity
            && self.budget.bytes.available_permits() * 2 >= self.budget.max
    }
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames and [`DEFAULT_OUTBOX_BYTES`], and the
    /// receiver that drains it.
    pub fn new(capacity: usize) -> (Outbox, OutboxRx) {
        Outbox::bounded(capacity, DEFAULT_OUTBOX_BYTES)
    }

    /// A new outbox holding at most `capacity` frames and `max_bytes` bytes (at most
    /// `u32::MAX`), and the receiver that drains it.
    pub fn bounded(capacity: usize, max_bytes: usize) -> (Outbox, OutboxRx) {
        let capacity = capacity.max(1);
        let max = max_bytes.clamp(1, u32::MAX as usize);
        let (tx, rx) = mpsc::channel(capacity);
        let budget = Arc::new(Budget {
            bytes: Semaphore::new(max),
            max,
        });
        let outbox = Outbox {
            tx,
            behind: Arc::new(AtomicBool::new(false)),
            budget: budget.clone(),
        };
        (
            outbox,
            OutboxRx {
                rx,
                budget,
                capacity,
            },
        )
    }

    /// True when a frame was refused since the last resync.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Acquire)
    }

    /// Clears the mark [`Outbox::offer`] sets; done by the resync that repairs it.
    pub(super) fn clear_behind(&self) {
        self.behind.store(false, Ordering::Release);
    }

    /// The bytes queued and not yet taken out.
    pub fn queued_bytes(&self) -> usize {
        self.budget.max - self.budget.bytes.available_permits()
    }

    /// Marks the connection as behind although its queue has room: its reader has fallen
    /// too far behind to be worth sending every frame to (the transport measures how far,
    /// socket included). Frames are then refused until [`super::Hub::resync`] repairs it.
    pub fn fall_behind(&self) {
        self.behind.store(true, Ordering::Release);
    }

    /// Queues a frame without waiting; a full queue (in frames or in bytes) marks the
    /// connection as behind. A connection already behind takes nothing more: its resync
    /// sends what it missed, in one frame per room.
    pub(super) fn offer(&self, frame: Frame) -> bool {
        if self.is_behind() {
            return false;
        }
        let cost = self.budget.cost(&frame);
        let Ok(permit) = self.budget.bytes.try_acquire_many(cost) else {
            self.behind.store(true, Ordering::Release);
            return false;
        };
        match self.tx.try_send(frame) {
            Ok(()) => {
                permit.forget();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.behind.store(true, Ordering::Release);
                false
            }
            // The connection is going away; its cleanup removes it from the hub.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a reply to this connection alone, waiting for room (in frames and in bytes).
    /// False once the connection is gone.
    pub async fn send(&self, frame: Frame) -> bool {
        let cost = self.budget.cost(&frame);
        let Ok(permit) = self.budget.bytes.acquire_many(cost).await else {
            return false;
        };
        if self.tx.send(frame).await.is_ok() {
            permit.forget();
            true
        } else {
            false
        }
    }
}
