//! Server functions: the channel list, channel creation and history fetches. Each is a thin
//! wrapper over the [`Hub`](crate::chat::hub::Hub), which the server provides as context.

use crate::chat::model::{ChannelInfo, ChatError, HistoryPage};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn hub() -> Result<crate::chat::hub::Hub, ChatError> {
    use_context::<crate::chat::hub::Hub>()
        .ok_or_else(|| ChatError::Unavailable("the chat hub is not running".into()))
}

/// Every channel, sorted by name.
#[server(endpoint = "channels")]
pub async fn list_channels() -> Result<Vec<ChannelInfo>, ChatError> {
    Ok(hub()?.channels())
}

/// Creates a channel; fails if the name is invalid or taken (without regard to case).
#[server(endpoint = "create_channel")]
pub async fn create_channel(name: String) -> Result<ChannelInfo, ChatError> {
    hub()?.create_channel(&name)
}

/// A channel's most recent messages (at most 100), oldest first.
#[server(endpoint = "history")]
pub async fn channel_history(channel: String) -> Result<HistoryPage, ChatError> {
    hub()?.history(&channel)
}
