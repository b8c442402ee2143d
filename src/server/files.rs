//! File attachments over HTTP: `POST /files` stores an upload for a room, `GET /files/{id}`
//! serves it back with safe headers, only to those who may read its room.
//!
//! Uploads carry the session token as `Authorization: Bearer …`, the file name
//! (percent-encoded) in `X-File-Name`, and the room as a `channel` or `peer` query parameter.
//! Downloads accept the token as a bearer header or as the `flack_token` cookie (so that
//! `<img>` works in private conversations).

use super::AppState;
use crate::api::{token_cookie, TOKEN_COOKIE};
use crate::app::percent::{decode_path_segment, encode_path_segment};
use crate::chat::model::{
    parse_file_name, sniff_image, Attachment, ChannelName, ChatError, DirectKey, FileId, Room,
    UserId,
};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

/// How long an upload may wait for the message that carries it before it is deleted.
pub const UNSENT_UPLOAD_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);
/// How often uploads that were never sent are looked for.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes uploads that were never sent, every minute, for as long as the runtime runs.
pub fn spawn_unsent_sweeper(hub: crate::chat::hub::Hub) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            hub.sweep_unsent_files(UNSENT_UPLOAD_LIFETIME);
        }
    });
}

/// Where an upload is going.
#[derive(Debug, Deserialize)]
pub struct UploadTarget {
    /// A channel's name.
    channel: Option<String>,
    /// The other participant of a private conversation (a user id).
    peer: Option<String>,
}

/// A refused file request: its status and the chat error, in the one error body every
/// transport uses (`code`, `detail`, `message`).
pub struct FileError(StatusCode, ChatError);

impl IntoResponse for FileError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<ChatError> for FileError {
    fn from(error: ChatError) -> Self {
        let status = match &error {
            ChatError::Unauthorized | ChatError::NotIdentified => StatusCode::UNAUTHORIZED,
            ChatError::Forbidden => StatusCode::FORBIDDEN,
            ChatError::NoSuchFile | ChatError::NoSuchChannel(_) | ChatError::NoSuchUser => {
                StatusCode::NOT_FOUND
            }
            ChatError::FileTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ChatError::Unavailable(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        FileError(status, error)
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn new_file_id() -> Result<FileId, ChatError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| ChatError::Unavailable("could not name the file".into()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    FileId::parse(&hex)
}

/// `POST /files?channel=…` or `?peer=…`: stores one file and returns its [`Attachment`].
/// Nothing is stored when any check fails.
pub async fn upload(
    State(state): State<AppState>,
    Query(target): Query<UploadTarget>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, FileError> {
    let token = bearer(&headers).ok_or(ChatError::Unauthorized)?;
    let user = state.hub.user_for_token(&token)?;
    let room = match (target.channel, target.peer) {
        (Some(channel), None) => Room::Channel(ChannelName::parse(&channel)?),
        (None, Some(peer)) => {
            let peer = peer.parse().map_err(|_| ChatError::NoSuchUser)?;
            Room::Direct(DirectKey::between(user.id, UserId(peer))?)
        }
        _ => return Err(ChatError::NoSuchChannel(String::new()).into()),
    };
    let raw_name = headers
        .get("x-file-name")
        .and_then(|v| v.to_str().ok())
        .map(decode_path_segment)
        .unwrap_or_default();
    let name = parse_file_name(&raw_name)?;
    let max = state.config.limits.max_upload_bytes;
    let bytes = axum::body::to_bytes(body, max as usize)
        .await
        .map_err(|_| ChatError::FileTooLarge { max_bytes: max })?;
    if bytes.is_empty() {
        return Err(ChatError::FileEmpty.into());
    }
    let image = sniff_image(&bytes);
    let attachment = Attachment {
        id: new_file_id()?,
        name,
        size: bytes.len() as u64,
        content_type: image.unwrap_or("application/octet-stream").to_owned(),
        image: image.is_some(),
    };
    let dir = state.config.data.dir.join("files");
    let path = dir.join(attachment.id.as_str());
    let write = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(&path, &bytes).await
    };
    if let Err(e) = write.await {
        tracing::error!(error = %e, "could not store an upload");
        return Err(ChatError::Unavailable("the file could not be stored".into()).into());
    }
    if let Err(e) = state.hub.add_file(&token, &room, attachment.clone()) {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e.into());
    }
    let mut response = Json(attachment).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&token_cookie(&token)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `GET /files/{id}`: the file, typed by its content; anything but an image is a download.
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let id = FileId::parse(&id)?;
    let token = bearer(&headers).or_else(|| cookie_token(&headers));
    let attachment = state.hub.file_for(&id, token.as_deref())?;
    let path = state.config.data.dir.join("files").join(id.as_str());
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ChatError::NoSuchFile)?;
    let disposition = if attachment.image {
        "inline".to_owned()
    } else {
        format!(
            "attachment; filename*=UTF-8''{}",
            encode_path_segment(&attachment.name)
        )
    };
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&attachment.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
