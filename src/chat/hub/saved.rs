//! [`Saved`]: a change the hub has applied and sent out, and the wait for it to be stored.

use crate::chat::model::ChatError;
use crate::chat::replica::Replicated;
use crate::chat::store::{Durable, StoreError};
use tokio::sync::oneshot;

/// A change the hub has applied and sent out (a message, a registration, a new channel, a
/// new name), with its write to the store possibly still under way (invariant 7). A
/// message delivered but never stored is gone after a restart (see `crate::chat::sqlite`).
pub struct Saved<T> {
    state: State<T>,
    /// What the change is, for the error a failed write becomes ("message", "name", ...).
    what: &'static str,
}

/// Reads what a proposal became into what its requester is answered.
type Answer<T> = Box<dyn FnOnce(Replicated) -> Result<T, ChatError> + Send>;

enum State<T> {
    /// Applied here and being written behind (one instance).
    Applied { value: T, durable: Durable },
    /// Proposed to the cluster's sequencer, applied everywhere once committed.
    Proposed {
        committed: oneshot::Receiver<Result<Replicated, ChatError>>,
        answer: Answer<T>,
    },
}

impl<T> std::fmt::Debug for Saved<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saved").field("what", &self.what).finish()
    }
}

fn sequencer_gone(what: &'static str) -> ChatError {
    ChatError::Unavailable(format!(
        "the {what} could not be saved: the server is stopping"
    ))
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
            state: State::Applied { value, durable },
            what,
        }
    }

    /// A change proposed to the cluster: `answer` reads what was committed.
    pub(super) fn proposed(
        committed: oneshot::Receiver<Result<Replicated, ChatError>>,
        what: &'static str,
        answer: impl FnOnce(Replicated) -> Result<T, ChatError> + Send + 'static,
    ) -> Saved<T> {
        Saved {
            state: State::Proposed {
                committed,
                answer: Box::new(answer),
            },
            what,
        }
    }

    /// Waits until the change is stored, and gives back what the hub applied: the answer
    /// for whoever asked.
    pub async fn stored(self) -> Result<T, ChatError> {
        match self.state {
            State::Applied { value, durable } => {
                durable.wait().await.map_err(store_failed(self.what))?;
                Ok(value)
            }
            State::Proposed { committed, answer } => {
                let committed = committed.await.map_err(|_| sequencer_gone(self.what))?;
                answer(committed?)
            }
        }
    }

    /// [`Saved::stored`] for a thread that may block (never one of the async runtime's).
    pub fn stored_blocking(self) -> Result<T, ChatError> {
        match self.state {
            State::Applied { value, durable } => {
                durable.wait_blocking().map_err(store_failed(self.what))?;
                Ok(value)
            }
            State::Proposed { committed, answer } => {
                let committed = committed
                    .blocking_recv()
                    .map_err(|_| sequencer_gone(self.what))?;
                answer(committed?)
            }
        }
    }

    /// What the hub applied, before it is stored (tests of one instance only).
    #[cfg(test)]
    pub(crate) fn applied(&self) -> &T {
        match &self.state {
            State::Applied { value, .. } => value,
            State::Proposed { .. } => panic!("a proposed change has no value until committed"),
        }
    }

    /// [`Saved::applied`], taken.
    #[cfg(test)]
    pub(crate) fn into_applied(self) -> T {
        match self.state {
            State::Applied { value, .. } => value,
            State::Proposed { .. } => panic!("a proposed change has no value until committed"),
        }
    }
}
