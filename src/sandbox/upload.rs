//! The upload URLs `initializeUpload` hands out, pointing back at the sandbox: one `PUT` of
//! an image or document with the owner's bearer token, or one `PUT` per 4 MiB video part
//! without it, answered with the part's ETag; both refused once the URLs expired. Bodies are
//! streamed into unlinked temporary files while hashed, never held whole in memory (a small
//! channel feeds a blocking writer), so a 200 MB video costs a few buffers and nothing is left
//! on disk however the sandbox stops. `GET /_sandbox/media/{urn}` streams the bytes back.

// The checks' errors are finished HTTP answers; boxing them would buy nothing here.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::api::{acts_for, authenticate, error};
use super::media::{completed, illegal, Kind, MAX_DOCUMENT_BYTES};
use super::{control, Sandbox};
use crate::linkedin::wire::POSTING_ROLES;

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/dms-uploads/{id}", put(upload_whole))
        .route("/dms-uploads/{id}/parts/{n}", put(upload_part))
        .route("/_sandbox/media", get(list_media))
        .route("/_sandbox/media/{urn}", get(media_bytes))
}

pub(super) fn server_error(e: &io::Error) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        None,
        &format!("sandbox storage failed: {e}"),
    )
}

fn expired() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        None,
        Some("EXPIRED_UPLOAD_URL"),
        "The upload URL has expired; initialize the upload again",
    )
}

fn no_upload() -> Response {
    error(StatusCode::NOT_FOUND, None, None, "No upload at this URL")
}

/// `PUT {uploadUrl}` of an image or document: the whole file, with the owner's bearer token.
async fn upload_whole(
    State(sb): State<Sandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (urn, cap) = match whole_checks(&sb, &id, &headers) {
        Ok(target) => target,
        Err(refusal) => return drained(body, refusal).await,
    };
    let file = match anonymous_file() {
        Ok(f) => Arc::new(f),
        Err(e) => return drained(body, server_error(&e)).await,
    };
    let (bytes, sha256) = match receive(body, file.clone(), 0, cap).await {
        Ok(got) => got,
        Err(Receive::TooLong) => {
            return illegal(&format!(
                "The file exceeds the maximum allowed ({cap} bytes)"
            ))
        }
        Err(Receive::Broken(e)) => return illegal(&format!("The upload was cut short: {e}")),
        Err(Receive::Io(e)) => return server_error(&e),
    };
    let mut inner = sb.lock();
    if let Some(a) = inner.media.get_mut(&urn) {
        a.file = Some(file);
        a.bytes = bytes;
        a.sha256 = Some(sha256);
        completed(&mut inner, &urn);
    }
    StatusCode::CREATED.into_response()
}

/// Reads and drops the body of a refused upload before answering, so the client, still
/// sending, gets the answer rather than a broken pipe.
async fn drained(mut body: Body, refusal: Response) -> Response {
    while let Some(Ok(_)) = body.frame().await {}
    refusal
}

/// The asset a whole-file upload is for and its byte cap, or the refusal.
fn whole_checks(sb: &Sandbox, id: &str, headers: &HeaderMap) -> Result<(String, u64), Response> {
    let (urn, owner, cap) = {
        let inner = sb.lock();
        let Some(a) = inner.uploads.get(id).and_then(|u| inner.media.get(u)) else {
            return Err(no_upload());
        };
        if a.kind == Kind::Video {
            return Err(no_upload());
        }
        if Utc::now() >= a.urls_expire_at {
            return Err(expired());
        }
        let cap = match a.kind {
            Kind::Document => MAX_DOCUMENT_BYTES,
            _ => u64::MAX,
        };
        (a.urn.clone(), a.owner.clone(), cap)
    };
    let who = authenticate(sb, headers)?;
    if !acts_for(&sb.lock(), &who, &owner, POSTING_ROLES) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            Some(65600),
            Some("INVALID_ACCESS_TOKEN"),
            "The token does not belong to the asset's owner",
        ));
    }
    if content_length(headers).is_some_and(|n| n > cap) {
        return Err(illegal(&format!(
            "The file exceeds the maximum allowed ({cap} bytes)"
        )));
    }
    Ok((urn, cap))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `PUT` of one video part: exactly its byte range, no bearer token (the URL is the
/// credential), answered with the part's ETag.
async fn upload_part(
    State(sb): State<Sandbox>,
    Path((id, n)): Path<(String, usize)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (urn, file, first, len) = match part_checks(&sb, &id, n, &headers) {
        Ok(target) => target,
        Err(refusal) => return drained(body, refusal).await,
    };
    let wrong_length = |got: u64| wrong_part_length(n, first, len, got);
    let got = receive(body, file, first, len).await;
    let mut inner = sb.lock();
    let Some(part) = inner.media.get_mut(&urn).and_then(|a| a.parts.get_mut(n)) else {
        return no_upload();
    };
    // Whatever happened, the part's bytes may have changed: its old ETag no longer holds.
    part.etag = None;
    let etag = match got {
        Ok((bytes, sha256)) if bytes == len => sha256,
        Ok((bytes, _)) => return wrong_length(bytes),
        Err(Receive::TooLong) => return wrong_length(len + 1),
        Err(Receive::Broken(e)) => return illegal(&format!("The upload was cut short: {e}")),
        Err(Receive::Io(e)) => return server_error(&e),
    };
    part.etag = Some(etag.clone());
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a header value"),
    );
    resp
}

/// The video, its file and the part's range (first byte, length), or the refusal.
fn part_checks(
    sb: &Sandbox,
    id: &str,
    n: usize,
    headers: &HeaderMap,
) -> Result<(String, Arc<File>, u64, u64), Response> {
    let (urn, file, first, len) = {
        let inner = sb.lock();
        let Some(a) = inner.uploads.get(id).and_then(|u| inner.media.get(u)) else {
            return Err(no_upload());
        };
        let (Some(part), Some(file)) = (a.parts.get(n), a.file.clone()) else {
            return Err(no_upload());
        };
        if Utc::now() >= a.urls_expire_at {
            return Err(expired());
        }
        if a.finalized {
            return Err(illegal("The upload is already finalized"));
        }
        (a.urn.clone(), file, part.first, part.last - part.first + 1)
    };
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(illegal(
            "Video part upload URLs take no Authorization header",
        ));
    }
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/octet-stream")
    {
        return Err(illegal(
            "Content-Type: application/octet-stream is required for a video part",
        ));
    }
    if let Some(declared) = content_length(headers).filter(|&d| d != len) {
        return Err(wrong_part_length(n, first, len, declared));
    }
    // The part's bytes are about to change: a finalize meanwhile must not take its old ETag.
    if let Some(part) = sb
        .lock()
        .media
        .get_mut(&urn)
        .and_then(|a| a.parts.get_mut(n))
    {
        part.etag = None;
    }
    Ok((urn, file, first, len))
}

fn wrong_part_length(n: usize, first: u64, len: u64, got: u64) -> Response {
    illegal(&format!(
        "Part {n} is bytes {first} to {} ({len} bytes); the request carried {got}",
        first + len - 1
    ))
}

/// Every asset ever initialized, oldest first: tests count uploads with it.
async fn list_media(State(sb): State<Sandbox>) -> Json<Vec<Value>> {
    let inner = sb.lock();
    let (now, processing) = (Utc::now(), inner.settings.media_processing);
    let mut assets: Vec<_> = inner.media.values().collect();
    assets.sort_by_key(|a| a.created_at);
    Json(assets.iter().map(|a| a.listing(now, processing)).collect())
}

/// The uploaded bytes, streamed from the temporary file (404 until the upload is complete).
async fn media_bytes(State(sb): State<Sandbox>, Path(urn): Path<String>) -> Response {
    let (file, len, sha256) = {
        let inner = sb.lock();
        match inner.media.get(&urn) {
            Some(a) if a.sha256.is_some() && a.file.is_some() => (
                a.file.clone().expect("checked"),
                a.bytes,
                a.sha256.clone().unwrap_or_default(),
            ),
            _ => return (StatusCode::NOT_FOUND, "no complete upload for this URN").into_response(),
        }
    };
    // A file of its own (its own offset) on the same unlinked inode.
    let reader = match File::open(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(f) => tokio::fs::File::from_std(f),
        Err(e) => return server_error(&e),
    };
    use tokio::io::AsyncReadExt;
    let stream = tokio_util::io::ReaderStream::with_capacity(reader.take(len), 64 * 1024);
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&sha256) {
        h.insert("x-sha256", v);
    }
    resp
}

enum Receive {
    /// More than the limit arrived.
    TooLong,
    /// The body failed (the client went away).
    Broken(String),
    Io(io::Error),
}

/// Streams `body` into `file` at `offset` (at most `limit` bytes) while hashing it: a blocking
/// writer takes the chunks through a small channel, so memory stays a few chunks whatever
/// the size. Answers the length and the SHA-256 (hex).
async fn receive(
    mut body: Body,
    file: Arc<File>,
    offset: u64,
    limit: u64,
) -> Result<(u64, String), Receive> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<(u64, String)> {
        let mut hasher = Sha256::new();
        let mut at = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            hasher.update(&chunk);
            file.write_all_at(&chunk, offset + at)?;
            at += chunk.len() as u64;
        }
        Ok((at, hex(&hasher.finalize())))
    });
    let mut seen = 0u64;
    let outcome = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Err(e)) => break Err(Receive::Broken(e.to_string())),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                seen += data.len() as u64;
                if seen > limit {
                    break Err(Receive::TooLong);
                }
                // A closed channel means the writer failed: its error is reported below.
                if tx.send(data).await.is_err() {
                    break Ok(());
                }
            }
        }
    };
    drop(tx);
    if matches!(outcome, Err(Receive::TooLong)) {
        while let Some(Ok(_)) = body.frame().await {}
    }
    let written = writer
        .await
        .map_err(|e| Receive::Io(io::Error::other(e.to_string())))?;
    outcome?;
    written.map_err(Receive::Io)
}

pub(super) fn hash_file(file: &File, len: u64) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut at = 0u64;
    while at < len {
        let want = buf.len().min((len - at) as usize);
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short file"));
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A file with no name: it vanishes with the process however that ends.
pub(super) fn anonymous_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let tmpfile = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir);
    if let Ok(f) = tmpfile {
        return Ok(f);
    }
    // File systems without O_TMPFILE: a fresh name, removed at once.
    loop {
        let path = dir.join(format!(".lipost-sandbox-{}", control::random_token()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anonymous_file_can_be_reopened_with_its_own_offset() {
        let f = anonymous_file().unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        let mut again = File::open(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap();
        let mut s = String::new();
        io::Read::read_to_string(&mut again, &mut s).unwrap();
        assert_eq!(s, "hello");
        assert_eq!(hash_file(&f, 5).unwrap(), hex(&Sha256::digest(b"hello")));
    }
}
