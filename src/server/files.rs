//! File attachments over HTTP: `POST /files` stores an upload for a room, `GET /files/{id}`
//! serves it back with safe headers, only to those who may read its room.
//!
//! Uploads carry the session token as `Authorization: Bearer …`, the file name
//! (percent-encoded) in `X-File-Name`, and the room as a `channel` or `peer` query parameter.
//! Downloads accept the token as a bearer header or as the `flack_token` cookie (so that
//! `<img>` works in private conversations).
//!
//! The bytes go to this instance's files folder, streamed to and from disk; in cluster mode
//! to the database's `files` table ([`SharedFiles`]), so that any instance serves them. The
//! hub decides who may download a file either way: in cluster mode every instance's hub
//! learns a file when it applies the message carrying it, while an upload not yet sent is
//! known only to the instance that received it (the post carrying it must go through the
//! same instance: see docs/DEPLOY.md).

use super::AppState;
use crate::api::{token_cookie, TOKEN_COOKIE};
use crate::app::percent::{decode_path_segment, encode_path_segment};
use crate::chat::cluster::files::SharedFiles;
use crate::chat::model::{
    parse_file_name, sniff_image, Attachment, ChannelName, ChatError, DirectKey, FileId, Room,
    UserId,
};
use axum::body::{Body, HttpBody};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;

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

/// Bytes kept from the start of an upload to tell its type by.
const SNIFF_BYTES: usize = 64;

/// Writes an upload's body to `part` as it arrives, refusing it once it passes `max` bytes
/// or if it is empty; returns its first [`SNIFF_BYTES`].
async fn receive(body: Body, part: &mut PartFile, max: u64) -> Result<Vec<u8>, ChatError> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(body_error)?;
        if part.size + chunk.len() as u64 > max {
            return Err(ChatError::FileTooLarge { max_bytes: max });
        }
        let wanted = SNIFF_BYTES.saturating_sub(head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..wanted]);
        part.write(&chunk).await?;
    }
    if part.size == 0 {
        return Err(ChatError::FileEmpty);
    }
    Ok(head)
}

/// An upload being written to disk as it arrives, as `files/<id>.part` (a name the start-up
/// cleaning of unknown files removes, being no file id). Deleted when dropped unless
/// [`PartFile::finish`] renamed it, so a refused, failed or abandoned upload (its handler
/// dropped when the client goes) leaves nothing behind.
struct PartFile {
    path: std::path::PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    /// Bytes written so far.
    size: u64,
    done: bool,
}

impl PartFile {
    async fn create(dir: &std::path::Path, id: &FileId) -> Result<PartFile, ChatError> {
        let path = dir.join(format!("{}.part", id.as_str()));
        let open = async {
            tokio::fs::create_dir_all(dir).await?;
            tokio::fs::File::create(&path).await
        };
        let file = open.await.map_err(store_error)?;
        Ok(PartFile {
            path,
            file: tokio::io::BufWriter::new(file),
            size: 0,
            done: false,
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ChatError> {
        self.file.write_all(bytes).await.map_err(store_error)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Deletes the file now (rather than soon after, as dropping it does).
    async fn discard(mut self) {
        self.done = true;
        if let Err(e) = tokio::fs::remove_file(&self.path).await {
            tracing::warn!(error = %e, "could not delete an unfinished upload");
        }
    }

    /// Flushes the file and gives it its final name.
    async fn finish(&mut self, path: &std::path::Path) -> Result<(), ChatError> {
        self.file.flush().await.map_err(store_error)?;
        tokio::fs::rename(&self.path, path)
            .await
            .map_err(store_error)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let path = std::mem::take(&mut self.path);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = tokio::fs::remove_file(&path).await {
                    tracing::warn!(error = %e, path = %path.display(), "could not delete an unfinished upload");
                }
            });
        }
    }
}

/// Refuses an upload (`disk_full`) unless the disk holding `dir` has at least `needed` bytes
/// free: the configured floor plus the largest upload. If the free space cannot be read the
/// upload goes ahead (writing it reports any real failure).
fn enough_disk(dir: &std::path::Path, needed: u64) -> Result<(), ChatError> {
    match fs4::available_space(dir) {
        Ok(free) if free < needed => {
            tracing::warn!(
                free,
                needed,
                "refused an upload: the disk is short of space"
            );
            Err(ChatError::DiskFull)
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the free disk space");
            Ok(())
        }
    }
}

/// A disk error while storing an upload, logged; the client is told the file was not stored.
fn store_error(error: std::io::Error) -> ChatError {
    tracing::error!(error = %error, "could not store an upload");
    ChatError::Unavailable("the file could not be stored".into())
}

/// Why an upload's body could not be read: it paused for longer than
/// `limits.request_body_secs`, or the connection failed.
fn body_error(error: axum::Error) -> ChatError {
    let inner = error.into_inner();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*inner);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return ChatError::RequestTimeout;
        }
        cause = error.source();
    }
    tracing::debug!(error = %inner, "an upload's body failed");
    ChatError::Unavailable("the upload was cut off".into())
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
        FileError(crate::api::http_status(&error), error)
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

/// This instance's files folder.
fn files_dir(state: &AppState) -> std::path::PathBuf {
    state.config.data.dir.join("files")
}

/// Writes an upload to the files folder as it arrives; returns its size and first bytes.
async fn keep_on_disk(
    state: &AppState,
    id: &FileId,
    body: Body,
    max: u64,
) -> Result<(u64, Vec<u8>), ChatError> {
    let dir = files_dir(state);
    let mut part = PartFile::create(&dir, id).await?;
    let floor = state.config.limits.min_free_disk_bytes;
    if let Err(e) = enough_disk(&dir, floor.saturating_add(max)) {
        part.discard().await;
        return Err(e);
    }
    let head = match receive(body, &mut part, max).await {
        Ok(head) => head,
        Err(e) => {
            part.discard().await;
            return Err(e);
        }
    };
    let size = part.size;
    part.finish(&dir.join(id.as_str())).await?;
    Ok((size, head))
}

/// Cluster mode: reads an upload whole (at most `max` bytes, refused as soon as it passes
/// them) and stores it in the database, where every instance finds it; returns its size and
/// first bytes.
async fn keep_shared(
    files: &SharedFiles,
    id: &FileId,
    room: &Room,
    body: Body,
    max: u64,
) -> Result<(u64, Vec<u8>), ChatError> {
    let mut bytes = Vec::new();
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(body_error)?;
        if bytes.len() as u64 + chunk.len() as u64 > max {
            return Err(ChatError::FileTooLarge { max_bytes: max });
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ChatError::FileEmpty);
    }
    files.put(id, room, &bytes).await.map_err(shared_error)?;
    let head = bytes[..bytes.len().min(SNIFF_BYTES)].to_vec();
    Ok((bytes.len() as u64, head))
}

/// A database error while storing or reading a file, logged; the client is told the file is
/// unavailable.
fn shared_error(error: crate::chat::store::StoreError) -> ChatError {
    tracing::error!(error = %error, "could not reach the files table");
    ChatError::Unavailable("the file store is unavailable".into())
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
    if body.size_hint().lower() > max {
        return Err(ChatError::FileTooLarge { max_bytes: max }.into());
    }
    if body.size_hint().upper() == Some(0) {
        return Err(ChatError::FileEmpty.into());
    }
    state.hub.may_upload(&token)?;
    if let Some(cluster) = &state.cluster {
        // An upload to a conversation not started yet starts it: the cluster's allowance.
        if state.hub.would_start(&room) {
            cluster
                .allow(crate::chat::cluster::Shared::Directs, user.id)
                .await?;
        }
    }
    let id = new_file_id()?;
    let shared = state.hub.shared_files();
    let (size, head) = match &shared {
        Some(files) => keep_shared(files, &id, &room, body, max).await?,
        None => keep_on_disk(&state, &id, body, max).await?,
    };
    let image = sniff_image(&head);
    let attachment = Attachment {
        id,
        name,
        size,
        content_type: image.unwrap_or("application/octet-stream").to_owned(),
        image: image.is_some(),
    };
    if let Err(e) = state.hub.add_file(&token, &room, attachment.clone()) {
        match shared {
            Some(files) => files.remove(vec![attachment.id]),
            None => {
                let path = files_dir(&state).join(attachment.id.as_str());
                let _ = tokio::fs::remove_file(&path).await;
            }
        }
        return Err(e.into());
    }
    let mut response = Json(attachment).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&token_cookie(&token)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Bytes read from the database at a time while serving a file.
const PIECE_BYTES: u64 = 256 << 10;

/// A file's bytes from the database, a piece at a time as the client takes them, so a
/// download holds one piece, whatever the file's size. A file deleted meanwhile ends the
/// response early (the client sees it cut short).
fn pieces(
    files: std::sync::Arc<SharedFiles>,
    id: FileId,
    size: u64,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::try_unfold(0u64, move |from| {
        let (files, id) = (files.clone(), id.clone());
        async move {
            if from >= size {
                return Ok(None);
            }
            let piece = files
                .piece(&id, from, PIECE_BYTES.min(size - from))
                .await
                .map_err(|e| std::io::Error::other(e.0))?;
            if piece.is_empty() {
                return Err(std::io::Error::other(
                    "the file was deleted while being sent",
                ));
            }
            let next = from + piece.len() as u64;
            Ok(Some((piece, next)))
        }
    })
}

/// `GET /files/{id}`: the file, typed by its content; anything but an image is a download.
/// From the files folder it is served with ranges and conditional requests; from the
/// database (cluster mode), whole, a piece at a time.
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, FileError> {
    let id = FileId::parse(&id)?;
    let token = bearer(&headers).or_else(|| cookie_token(&headers));
    // A file of a message older than the window, or (cluster mode) of a room this instance
    // does not follow, is found through the stored message carrying it.
    let attachment = state.hub.stored_file_for(&id, token.as_deref()).await?;
    let mut response = match state.hub.shared_files() {
        Some(files) => {
            let size = files.size(&id).await.map_err(shared_error)?;
            let size = size.ok_or(ChatError::NoSuchFile)?;
            let mut response = Response::new(Body::from_stream(pieces(files, id.clone(), size)));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            response
        }
        None => {
            let path = files_dir(&state).join(id.as_str());
            // Streamed from disk in pieces, as the client takes them (also ranges and
            // conditional requests); never read whole.
            let Ok(served) = ServeFile::new(&path).oneshot(request).await;
            if served.status() == StatusCode::NOT_FOUND {
                return Err(ChatError::NoSuchFile.into());
            }
            served.map(Body::new)
        }
    };
    let disposition = if attachment.image {
        "inline".to_owned()
    } else {
        format!(
            "attachment; filename*=UTF-8''{}",
            encode_path_segment(&attachment.name)
        )
    };
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
