//! Server functions: registration, the channel list, channel creation and history fetches.
//! Each is a thin wrapper over the `Hub` (`crate::chat::hub`), which the server provides as
//! context. Those that act for a user take its session token; the user is never named by
//! the caller. The browser calls them; the server serves them at `/api/*`.

use crate::chat::model::{ChannelInfo, ChatError, DirectSummary, HistoryPage, Session};
use leptos::prelude::*;

/// The hub the server provides to everything it renders.
#[cfg(feature = "ssr")]
pub(crate) fn hub() -> Result<crate::chat::hub::Hub, ChatError> {
    use_context::<crate::chat::hub::Hub>()
        .ok_or_else(|| ChatError::Unavailable("the chat hub is not running".into()))
}

/// Registers a display name nobody else uses and returns the session that proves it.
#[server(endpoint = "register")]
pub async fn register(name: String) -> Result<Session, ChatError> {
    let session = hub()?.register(&name)?.stored().await?;
    // The browser sends this cookie when it loads files of private conversations.
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        let cookie = token_cookie(&session.token);
        if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
            response.append_header(axum::http::header::SET_COOKIE, value);
        }
    }
    Ok(session)
}

/// The cookie that carries the session token for downloads of private files.
#[cfg(feature = "ssr")]
pub const TOKEN_COOKIE: &str = "flack_token";

/// The `Set-Cookie` value that lets the browser fetch private files with its token.
#[cfg(feature = "ssr")]
pub fn token_cookie(token: &str) -> String {
    format!("{TOKEN_COOKIE}={token}; Path=/files; HttpOnly; SameSite=Strict; Max-Age=31536000")
}

/// Every channel, sorted by name.
#[server(endpoint = "channels")]
pub async fn list_channels() -> Result<Vec<ChannelInfo>, ChatError> {
    Ok(hub()?.channels())
}

/// Creates a channel; fails if the name is invalid or taken (without regard to case).
#[server(endpoint = "create_channel")]
pub async fn create_channel(token: String, name: String) -> Result<ChannelInfo, ChatError> {
    hub()?.create_channel(&token, &name)?.stored().await
}

/// A channel's most recent messages (at most 100), oldest first. Channels are public.
#[server(endpoint = "history")]
pub async fn channel_history(channel: String) -> Result<HistoryPage, ChatError> {
    hub()?.channel_page(&channel)
}

/// The private conversation between the token's user and `peer`, for that user only.
#[server(endpoint = "direct_history")]
pub async fn direct_history(token: String, peer: u64) -> Result<HistoryPage, ChatError> {
    hub()?.direct_page(&token, crate::chat::model::UserId(peer))
}

/// The token user's private conversations.
#[server(endpoint = "directs")]
pub async fn my_directs(token: String) -> Result<Vec<DirectSummary>, ChatError> {
    hub()?.directs(&token)
}

/// Lets server functions return [`ChatError`] directly: transport failures become
/// [`ChatError::Unavailable`].
impl leptos::server_fn::error::FromServerFnError for ChatError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        ChatError::Unavailable(value.to_string())
    }
}
