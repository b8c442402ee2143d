//! [`Saved`]: a change the hub has applied and sent out, and the wait for it to be stored.

use crate::chat::model::ChatError;
use crate::chat::store::{Durable, StoreError};

/// A change the hub has applied and sent out (a message, a registration, a new channel, a
/// new name), with its write to the store possibly still under way (invariant 7). A
/// message delivered but never stored is gone after a restart (see `crate::chat::sqlite`).
#[derive(Debug)]
pub struct Saved<T> {
    /// What the hub applied: for a message, the message as it was sent out.
    pub value: T,
    durable: Durable,
    /// What the change is, for the error a failed write becomes ("message", "name", ...).
    what: &'static str,
}

fn store_failed(what: &'static str) -> impl FnOnce(StoreError) -> ChatError {
    move |e| {
        tracing::error!(error = %e, what, "storage failed");
        ChatError::Unavailable(format!("the {what} could not be saved"))
    }
}

impl<T> Saved<T> {
    pub(super) fn new(value: T, durable: Durable, what: &'static str) -> Saved<T> {
        Saved {
            value,
            durable,
            what,
        }
    }

    /// Waits until the change is stored, and gives back what the hub applied: the answer
    /// for whoever asked.
    pub async fn stored(self) -> Result<T, ChatError> {
        self.durable.wait().await.map_err(store_failed(self.what))?;
        Ok(self.value)
    }

    /// [`Saved::stored`] for a thread that may block (never one of the async runtime's).
    pub fn stored_blocking(self) -> Result<T, ChatError> {
        self.durable
            .wait_blocking()
            .map_err(store_failed(self.what))?;
        Ok(self.value)
    }
}
