//! Server functions: registration, the channel list, channel creation and history fetches
//! (a room's newest messages, and older ones before a sequence number) and message search.
//! Each is a thin wrapper over the `Hub` (`crate::chat::hub`), which the server provides as
//! context. Those that act for a user take its session token; the user is never named by
//! the caller. The browser calls them; the server serves them at `/api/*`.

use crate::chat::model::{ChannelInfo, ChatError, DirectSummary, HistoryPage, OlderPage, Session};
use leptos::prelude::*;

/// The hub the server provides to everything it renders.
#[cfg(feature = "ssr")]
pub(crate) fn hub() -> Result<crate::chat::hub::Hub, ChatError> {
    use_context::<crate::chat::hub::Hub>()
        .ok_or_else(|| ChatError::Unavailable("the chat hub is not running".into()))
}

/// The HTTP status a refusal is answered with (the body is the error itself): the client's
/// mistakes and the limits it met are 4xx, only the server's own failures 5xx.
#[cfg(feature = "ssr")]
pub fn http_status(error: &ChatError) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    match error {
        ChatError::Unauthorized | ChatError::NotIdentified => StatusCode::UNAUTHORIZED,
        ChatError::Forbidden | ChatError::CrossSite => StatusCode::FORBIDDEN,
        ChatError::NoSuchChannel(_)
        | ChatError::NoSuchUser
        | ChatError::NoSuchMessage
        | ChatError::NoSuchFile => StatusCode::NOT_FOUND,
        ChatError::ChannelExists(_) | ChatError::DisplayNameTaken(_) => StatusCode::CONFLICT,
        ChatError::FileTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ChatError::RateLimited
        | ChatError::ChannelRateLimited
        | ChatError::JoinRateLimited
        | ChatError::RenameRateLimited
        | ChatError::DirectRateLimited
        | ChatError::ReadRateLimited
        | ChatError::TooManyRegistrations
        | ChatError::TooManyConnections
        | ChatError::SearchRateLimited => StatusCode::TOO_MANY_REQUESTS,
        ChatError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ChatError::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
        ChatError::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
        ChatError::Unavailable(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A server function's answer: a refusal also sets the response's status
/// ([`http_status`]); Leptos would otherwise answer every error with 500.
#[cfg(feature = "ssr")]
fn answer<T>(result: Result<T, ChatError>) -> Result<T, ChatError> {
    if let (Err(error), Some(response)) = (&result, use_context::<leptos_axum::ResponseOptions>()) {
        response.set_status(http_status(error));
    }
    result
}

/// Registers a display name nobody else uses and returns the session that proves it.
#[server(endpoint = "register")]
pub async fn register(name: String) -> Result<Session, ChatError> {
    let session = answer(hub().and_then(|hub| hub.register(&name)))?;
    let session = answer(session.stored().await)?;
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
    answer(hub().map(|hub| hub.channels()))
}

/// Creates a channel; fails if the name is invalid or taken (without regard to case).
#[server(endpoint = "create_channel")]
pub async fn create_channel(token: String, name: String) -> Result<ChannelInfo, ChatError> {
    // In cluster mode the user's allowance of new channels is the cluster's, not each
    // instance's.
    let cluster = use_context::<crate::chat::cluster::ClusterHandle>();
    if let Some(cluster) = cluster {
        // A name refused anyway costs nothing.
        answer(crate::chat::model::ChannelName::parse_new(&name).map(|_| ()))?;
        let user = answer(hub().and_then(|hub| hub.user_for_token(&token)))?;
        answer(
            cluster
                .allow(crate::chat::cluster::Shared::Channels, user.id)
                .await,
        )?;
    }
    let saved = answer(hub().and_then(|hub| hub.create_channel(&token, &name)))?;
    answer(saved.stored().await)
}

/// A channel's most recent messages (at most 100), oldest first. Channels are public.
#[server(endpoint = "history")]
pub async fn channel_history(channel: String) -> Result<HistoryPage, ChatError> {
    let hub = answer(hub())?;
    follow_channel(&hub, &channel).await;
    answer(hub.channel_page(&channel))
}

/// The private conversation between the token's user and `peer`, for that user only.
#[server(endpoint = "direct_history")]
pub async fn direct_history(token: String, peer: u64) -> Result<HistoryPage, ChatError> {
    let hub = answer(hub())?;
    follow_token_user(&hub, &token).await;
    answer(hub.direct_page(&token, crate::chat::model::UserId(peer)))
}

/// Registered people whose name contains `query` (without regard to case), sorted by
/// name, at most 50; for the token's user to find someone to message.
#[server(endpoint = "people")]
pub async fn find_people(
    token: String,
    query: String,
) -> Result<Vec<crate::chat::model::UserInfo>, ChatError> {
    answer(hub().and_then(|hub| hub.people(&token, &query)))
}

/// Up to 100 messages of a channel numbered below `before`, oldest first, from the store,
/// and whether older ones remain, the channel began there, or older ones are not kept.
#[server(endpoint = "history_before")]
pub async fn channel_history_before(channel: String, before: u64) -> Result<OlderPage, ChatError> {
    let hub = answer(hub())?;
    follow_channel(&hub, &channel).await;
    answer(hub.channel_before(&channel, before).await)
}

/// [`channel_history_before`] for the private conversation between the token's user and
/// `peer`, for that user only.
#[server(endpoint = "direct_history_before")]
pub async fn direct_history_before(
    token: String,
    peer: u64,
    before: u64,
) -> Result<OlderPage, ChatError> {
    let hub = answer(hub())?;
    follow_token_user(&hub, &token).await;
    answer(
        hub.direct_before(&token, crate::chat::model::UserId(peer), before)
            .await,
    )
}

/// Messages holding every word of `query`, newest first (at most 50), among the channels
/// and the token user's own private conversations; `before` (a message id, the previous
/// page's `more`) asks for the next page. A query with no word is refused (400), as are
/// searches faster than the user's allowance (429).
#[server(endpoint = "search")]
pub async fn search_messages(
    token: String,
    query: String,
    before: Option<u64>,
) -> Result<crate::chat::model::SearchPage, ChatError> {
    let hub = answer(hub())?;
    answer(hub.search(&token, &query, before).await)
}

/// The token user's private conversations.
#[server(endpoint = "directs")]
pub async fn my_directs(token: String) -> Result<Vec<DirectSummary>, ChatError> {
    let hub = answer(hub())?;
    follow_token_user(&hub, &token).await;
    answer(hub.directs(&token))
}

/// Cluster mode: a channel a reader asks for here is followed here first (see
/// [`crate::chat::cluster::ClusterHandle::follow_room`]), so the answer is the database's.
/// (The context is read before anything is awaited: it is not there afterwards.)
#[cfg(feature = "ssr")]
fn follow_channel(
    hub: &crate::chat::hub::Hub,
    channel: &str,
) -> impl std::future::Future<Output = ()> {
    let cluster = use_context::<crate::chat::cluster::ClusterHandle>();
    let room = hub
        .channel_named(channel)
        .map(crate::chat::model::Room::Channel);
    async move {
        if let (Some(cluster), Some(room)) = (cluster, room) {
            cluster.follow_room(&room).await;
        }
    }
}

/// Cluster mode: the private conversations of the token's user are followed here first
/// (see [`crate::chat::cluster::ClusterHandle::follow_user`]).
#[cfg(feature = "ssr")]
fn follow_token_user(
    hub: &crate::chat::hub::Hub,
    token: &str,
) -> impl std::future::Future<Output = ()> {
    let cluster = use_context::<crate::chat::cluster::ClusterHandle>();
    let user = hub.user_for_token(token).ok();
    async move {
        if let (Some(cluster), Some(user)) = (cluster, user) {
            cluster.follow_user(user.id).await;
        }
    }
}

/// Lets server functions return [`ChatError`] directly: transport failures become
/// [`ChatError::Unavailable`].
impl leptos::server_fn::error::FromServerFnError for ChatError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        ChatError::Unavailable(value.to_string())
    }
}
