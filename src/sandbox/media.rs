//! Media assets: `initializeUpload` for images, documents and videos, `finalizeUpload`, the
//! status reads, and the `media_fail` rules. The upload URLs themselves are in `upload`.
//!
//! An asset's status is worked out from the clock when it is read: `WAITING_UPLOAD` until its
//! bytes are in (a video: finalized and hashed), then `PROCESSING` until `media_processing`
//! (the setting in force when read, so a test can end processing at will) has passed since
//! then, then `AVAILABLE`, or `PROCESSING_FAILED` when a `media_fail` rule picked it as its
//! upload completed.

// The checks' errors are finished HTTP answers; boxing them would buy nothing here.
#![allow(clippy::result_large_err)]

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{access_denied, acts_for, authenticate, check_versioned, error, json_object};
use super::{control, upload, Inner, Sandbox};
use crate::linkedin::wire::POSTING_ROLES;

/// LinkedIn's video part size: 4 MiB.
pub const PART_BYTES: u64 = 4 * 1024 * 1024;
/// The largest video LinkedIn documents for the Videos API.
pub const MAX_VIDEO_BYTES: u64 = 500_000_000;
/// The largest document (100 MB).
pub const MAX_DOCUMENT_BYTES: u64 = 100_000_000;
/// Page videos need one of these roles, not just any posting role.
const VIDEO_PAGE_ROLES: &[&str] = &["ADMINISTRATOR", "DIRECT_SPONSORED_CONTENT_POSTER"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Image,
    Document,
    Video,
}

impl Kind {
    /// Also the field naming the URN in `initializeUpload`'s answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Document => "document",
            Kind::Video => "video",
        }
    }

    fn urn_prefix(self) -> &'static str {
        match self {
            Kind::Image => "urn:li:image:",
            Kind::Document => "urn:li:document:",
            Kind::Video => "urn:li:video:",
        }
    }

    pub fn of_urn(urn: &str) -> Option<Kind> {
        [Kind::Image, Kind::Document, Kind::Video]
            .into_iter()
            .find(|k| urn.starts_with(k.urn_prefix()))
    }

    /// The error code for a post naming a bad asset of this kind.
    pub fn invalid_id(self) -> &'static str {
        match self {
            Kind::Image => "INVALID_IMAGE_ID",
            Kind::Document => "INVALID_DOCUMENT_ID",
            Kind::Video => "INVALID_VIDEO_ID",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    WaitingUpload,
    Processing,
    Available,
    ProcessingFailed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::WaitingUpload => "WAITING_UPLOAD",
            Status::Processing => "PROCESSING",
            Status::Available => "AVAILABLE",
            Status::ProcessingFailed => "PROCESSING_FAILED",
        }
    }
}

pub(super) struct Asset {
    pub urn: String,
    pub kind: Kind,
    pub owner: String,
    /// When `initializeUpload` made it.
    pub created_at: DateTime<Utc>,
    upload_token: String,
    pub(super) urls_expire_at: DateTime<Utc>,
    /// Videos only: the declared size's 4 MiB parts.
    pub(super) parts: Vec<Part>,
    /// The bytes (a video's file exists from `initializeUpload` on, its parts written in place).
    pub(super) file: Option<Arc<File>>,
    pub bytes: u64,
    /// Of the whole upload, once complete.
    pub sha256: Option<String>,
    pub(super) finalized: bool,
    /// When the upload completed (and was hashed).
    completed_at: Option<DateTime<Utc>>,
    failure: Option<String>,
}

pub(super) struct Part {
    pub first: u64,
    pub last: u64,
    /// Of the part's last complete upload.
    pub etag: Option<String>,
}

impl Asset {
    /// The status at `now`, given how long processing takes.
    pub fn status(&self, now: DateTime<Utc>, processing: Duration) -> Status {
        match self.completed_at {
            None if self.finalized => Status::Processing,
            None => Status::WaitingUpload,
            Some(t) if now < t + processing => Status::Processing,
            Some(_) if self.failure.is_some() => Status::ProcessingFailed,
            Some(_) => Status::Available,
        }
    }

    /// How `GET /_sandbox/media` shows it.
    pub fn listing(&self, now: DateTime<Utc>, processing: Duration) -> Value {
        json!({
            "urn": self.urn,
            "kind": self.kind,
            "owner": self.owner,
            "created_at": self.created_at,
            "status": self.status(now, processing).as_str(),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "parts": self.parts.len(),
            "parts_uploaded": self.parts.iter().filter(|p| p.etag.is_some()).count(),
            "completed_at": self.completed_at,
            "processing_failure_reason": self.failure_reason(now, processing),
        })
    }

    /// LinkedIn's reason, once the asset has failed.
    pub fn failure_reason(&self, now: DateTime<Utc>, processing: Duration) -> Option<String> {
        (self.status(now, processing) == Status::ProcessingFailed)
            .then(|| self.failure.clone())
            .flatten()
    }
}

/// `media_fail` in `/_sandbox/config`: the next `count` assets (0: all) whose upload completes
/// and that match every given filter end in `PROCESSING_FAILED` with `reason`. Filter by
/// `sha256` or `urn` to fail exactly one chosen asset.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FailRule {
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub kind: Option<Kind>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub urn: Option<String>,
    #[serde(default = "default_reason")]
    pub reason: String,
}

fn one() -> u32 {
    1
}

fn default_reason() -> String {
    "Media processing failed (sandbox fault)".into()
}

impl FailRule {
    fn matches(&self, a: &Asset) -> bool {
        self.kind.is_none_or(|k| k == a.kind)
            && self.sha256.as_deref().is_none_or(|s| {
                a.sha256
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(s))
            })
            && self.urn.as_deref().is_none_or(|u| u == a.urn)
    }
}

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route(
            "/rest/images",
            post(|s, h, q, b| action(Kind::Image, s, h, q, b)),
        )
        .route(
            "/rest/documents",
            post(|s, h, q, b| action(Kind::Document, s, h, q, b)),
        )
        .route(
            "/rest/videos",
            post(|s, h, q, b| action(Kind::Video, s, h, q, b)),
        )
        .route("/rest/images/{urn}", get(image_status))
        .route("/rest/documents/{urn}", get(document_status))
        .route("/rest/videos/{urn}", get(video_status))
}

#[derive(Deserialize)]
struct Action {
    action: Option<String>,
}

pub(super) fn illegal(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        None,
        Some("ILLEGAL_ARGUMENT"),
        message,
    )
}

fn missing(field: &str) -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        None,
        &format!("ERROR :: {field} :: field is required but not found and has no default value"),
    )
}

fn unknown_action(action: Option<&str>) -> Response {
    illegal(&format!(
        "Unsupported action {:?} for this resource",
        action.unwrap_or_default()
    ))
}

/// `POST /rest/{images,documents,videos}?action=…`: the same actions for each kind, and
/// `finalizeUpload` for videos only.
async fn action(
    kind: Kind,
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Query(q): Query<Action>,
    body: String,
) -> Response {
    match (q.action.as_deref(), kind) {
        (Some("initializeUpload"), _) => initialize(&sb, &headers, kind, &body),
        (Some("finalizeUpload"), Kind::Video) => finalize(&sb, &headers, &body),
        (other, _) => unknown_action(other),
    }
}

/// The checks every versioned media call starts with.
fn caller(sb: &Sandbox, headers: &HeaderMap) -> Result<super::TokenInfo, Response> {
    check_versioned(headers)?;
    authenticate(sb, headers)
}

fn initialize(sb: &Sandbox, headers: &HeaderMap, kind: Kind, body: &str) -> Response {
    let who = match caller(sb, headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let body = match json_object(headers, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(req) = body
        .get("initializeUploadRequest")
        .and_then(Value::as_object)
    else {
        return missing("/initializeUploadRequest");
    };
    let Some(owner) = req.get("owner").and_then(Value::as_str) else {
        return missing("/initializeUploadRequest/owner");
    };
    let roles = match kind {
        Kind::Video => VIDEO_PAGE_ROLES,
        _ => POSTING_ROLES,
    };
    let size = if kind == Kind::Video {
        let Some(size) = req.get("fileSizeBytes").and_then(Value::as_u64) else {
            return missing("/initializeUploadRequest/fileSizeBytes");
        };
        if size == 0 || size > MAX_VIDEO_BYTES {
            return illegal(&format!(
                "fileSizeBytes {size} is outside the allowed range (1 to {MAX_VIDEO_BYTES} bytes)"
            ));
        }
        for extra in ["uploadCaptions", "uploadThumbnail"] {
            if req.get(extra).and_then(Value::as_bool) == Some(true) {
                return illegal(&format!("{extra}: true is not emulated by the sandbox"));
            }
        }
        size
    } else {
        0
    };
    let mut inner = sb.lock();
    if !acts_for(&inner, &who, owner, roles) {
        return access_denied(&format!(
            "Not enough permissions to access: {}s.ACTION.initializeUpload (owner {owner})",
            kind.as_str()
        ));
    }
    let file = if kind == Kind::Video {
        match upload::anonymous_file().and_then(|f| f.set_len(size).map(|()| f)) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => return upload::server_error(&e),
        }
    } else {
        None
    };
    let id = control::random_token();
    let urn = format!(
        "{}D4E10AQ{}",
        kind.urn_prefix(),
        &control::random_token()[..16]
    );
    let expires = Utc::now() + inner.settings.upload_url_ttl;
    let base = base_url(headers, &inner);
    let parts: Vec<Part> = (0..size.div_ceil(PART_BYTES))
        .map(|i| Part {
            first: i * PART_BYTES,
            last: ((i + 1) * PART_BYTES).min(size) - 1,
            etag: None,
        })
        .collect();
    let value = if kind == Kind::Video {
        let instructions: Vec<Value> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"uploadUrl": format!("{base}/dms-uploads/{id}/parts/{i}"), "firstByte": p.first, "lastByte": p.last})
            })
            .collect();
        json!({
            "uploadUrlsExpireAt": expires.timestamp_millis(),
            "video": urn,
            "uploadInstructions": instructions,
            "uploadToken": id,
        })
    } else {
        json!({
            "uploadUrlExpiresAt": expires.timestamp_millis(),
            "uploadUrl": format!("{base}/dms-uploads/{id}"),
            kind.as_str(): urn,
        })
    };
    inner.uploads.insert(id.clone(), urn.clone());
    inner.media.insert(
        urn.clone(),
        Asset {
            urn,
            kind,
            owner: owner.to_string(),
            created_at: Utc::now(),
            upload_token: id,
            urls_expire_at: expires,
            parts,
            file,
            bytes: 0,
            sha256: None,
            finalized: false,
            completed_at: None,
            failure: None,
        },
    );
    Json(json!({ "value": value })).into_response()
}

/// Where the caller reached the sandbox: upload URLs point back at it.
fn base_url(headers: &HeaderMap, inner: &Inner) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}"),
        None => inner
            .local
            .map(|a| format!("http://{a}"))
            .unwrap_or_else(|| "http://127.0.0.1".into()),
    }
}

fn finalize(sb: &Sandbox, headers: &HeaderMap, body: &str) -> Response {
    let who = match caller(sb, headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let body = match json_object(headers, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(req) = body.get("finalizeUploadRequest").and_then(Value::as_object) else {
        return missing("/finalizeUploadRequest");
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str);
    let (Some(video), Some(token)) = (field("video"), field("uploadToken")) else {
        return missing("/finalizeUploadRequest/video, /finalizeUploadRequest/uploadToken");
    };
    let Some(ids) = req.get("uploadedPartIds").and_then(Value::as_array) else {
        return missing("/finalizeUploadRequest/uploadedPartIds");
    };
    let Some(ids) = ids.iter().map(Value::as_str).collect::<Option<Vec<&str>>>() else {
        return illegal("ERROR :: /finalizeUploadRequest/uploadedPartIds :: must be strings");
    };
    let mut inner = sb.lock();
    let Some(owner) = inner
        .media
        .get(video)
        .filter(|a| a.kind == Kind::Video)
        .map(|a| a.owner.clone())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            Some("INVALID_VIDEO_ID"),
            &format!("Video {video} does not exist"),
        );
    };
    if !acts_for(&inner, &who, &owner, VIDEO_PAGE_ROLES) {
        return access_denied("Not enough permissions to access: videos.ACTION.finalizeUpload");
    }
    let a = inner.media.get_mut(video).expect("looked up above");
    if a.upload_token != token {
        return illegal("uploadToken does not belong to this video");
    }
    let etags: Vec<Option<&str>> = a.parts.iter().map(|p| p.etag.as_deref()).collect();
    let expected = etags.iter().all(Option::is_some) && etags.len() == ids.len();
    if !expected || etags.iter().zip(&ids).any(|(e, id)| *e != Some(*id)) {
        let first_bad = etags
            .iter()
            .zip(ids.iter().map(Some).chain(std::iter::repeat(None)))
            .position(|(e, id)| e.is_none() || id.is_none_or(|id| Some(*id) != *e));
        return illegal(&format!(
            "uploadedPartIds must be the ETags of all {} parts, in order (got {}; first mismatch at part {})",
            etags.len(),
            ids.len(),
            first_bad.map_or_else(|| "beyond the last".to_string(), |i| i.to_string())
        ));
    }
    if a.finalized {
        // A retried finalize of the same parts: LinkedIn has it already.
        return StatusCode::OK.into_response();
    }
    a.finalized = true;
    a.bytes = a.parts.last().map_or(0, |p| p.last + 1);
    let (file, len, urn) = (a.file.clone(), a.bytes, a.urn.clone());
    drop(inner);
    let sb = sb.clone();
    tokio::task::spawn_blocking(move || {
        let sha256 = file.map(|f| upload::hash_file(&f, len));
        let mut inner = sb.lock();
        match sha256 {
            Some(Ok(sha)) => {
                if let Some(a) = inner.media.get_mut(&urn) {
                    a.sha256 = Some(sha);
                    completed(&mut inner, &urn);
                }
            }
            Some(Err(e)) => {
                if let Some(a) = inner.media.get_mut(&urn) {
                    a.sha256 = Some(String::new());
                    a.failure = Some(format!("sandbox storage failed: {e}"));
                    a.completed_at = Some(Utc::now());
                }
            }
            None => {}
        }
    });
    StatusCode::OK.into_response()
}

/// The upload is complete and hashed: processing starts, and a `media_fail` rule may pick it.
pub(super) fn completed(inner: &mut Inner, urn: &str) {
    let now = Utc::now();
    let Some(a) = inner.media.get(urn) else {
        return;
    };
    let failure = inner.media_fail.iter().position(|r| r.matches(a)).map(|i| {
        let reason = inner.media_fail[i].reason.clone();
        if inner.media_fail[i].count > 0 {
            inner.media_fail[i].count -= 1;
            if inner.media_fail[i].count == 0 {
                inner.media_fail.remove(i);
            }
        }
        reason
    });
    let a = inner.media.get_mut(urn).expect("looked up above");
    a.failure = failure;
    a.completed_at = Some(now);
}

async fn image_status(s: State<Sandbox>, h: HeaderMap, Path(urn): Path<String>) -> Response {
    status(&s.0, &h, Kind::Image, &urn)
}

async fn document_status(s: State<Sandbox>, h: HeaderMap, Path(urn): Path<String>) -> Response {
    status(&s.0, &h, Kind::Document, &urn)
}

async fn video_status(s: State<Sandbox>, h: HeaderMap, Path(urn): Path<String>) -> Response {
    status(&s.0, &h, Kind::Video, &urn)
}

fn status(sb: &Sandbox, headers: &HeaderMap, kind: Kind, urn: &str) -> Response {
    let who = match caller(sb, headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let inner = sb.lock();
    let Some(a) = inner.media.get(urn).filter(|a| a.kind == kind) else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            None,
            &format!("{urn} does not exist"),
        );
    };
    // LinkedIn: a member token with only `w_member_social` may not read member-owned
    // images, even its own. Documents and videos are read like any other asset.
    if kind == Kind::Image && a.owner.starts_with("urn:li:person:") {
        return access_denied(&format!(
            "Accessing this {} resource is forbidden for the member",
            kind.as_str()
        ));
    }
    if !acts_for(&inner, &who, &a.owner, POSTING_ROLES) {
        return access_denied(&format!(
            "Accessing this {} resource is forbidden",
            kind.as_str()
        ));
    }
    let now = Utc::now();
    let processing = inner.settings.media_processing;
    let mut body =
        json!({"id": a.urn, "owner": a.owner, "status": a.status(now, processing).as_str()});
    if kind == Kind::Video {
        if let Some(reason) = a.failure_reason(now, processing) {
            body["processingFailureReason"] = Value::String(reason);
        }
    }
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(kind: Kind) -> Asset {
        Asset {
            urn: format!("{}x", kind.urn_prefix()),
            kind,
            owner: "urn:li:person:a".into(),
            created_at: Utc::now(),
            upload_token: "t".into(),
            urls_expire_at: Utc::now(),
            parts: Vec::new(),
            file: None,
            bytes: 0,
            sha256: None,
            finalized: false,
            completed_at: None,
            failure: None,
        }
    }

    #[test]
    fn status_follows_the_upload_and_the_processing_time_in_force() {
        let second = Duration::from_secs(1);
        let t0 = Utc::now();
        let mut video = asset(Kind::Video);
        assert_eq!(video.status(t0, second), Status::WaitingUpload);
        video.finalized = true;
        // Finalized but not hashed yet: processing.
        assert_eq!(video.status(t0, Duration::ZERO), Status::Processing);
        video.sha256 = Some("ab".into());
        video.completed_at = Some(t0);
        assert_eq!(video.status(t0, second), Status::Processing);
        assert_eq!(video.status(t0 + second, second), Status::Available);
        assert_eq!(video.status(t0, Duration::ZERO), Status::Available);
        video.failure = Some("bad codec".into());
        assert_eq!(video.failure_reason(t0, second), None);
        assert_eq!(video.status(t0 + second, second), Status::ProcessingFailed);
        assert_eq!(
            video.failure_reason(t0 + second, second).as_deref(),
            Some("bad codec")
        );
    }

    #[test]
    fn a_fail_rule_picks_by_every_filter_it_has() {
        let mut image = asset(Kind::Image);
        image.sha256 = Some("ABCD".into());
        let rule = |kind, sha256: Option<&str>, urn: Option<&str>| FailRule {
            count: 1,
            kind,
            sha256: sha256.map(String::from),
            urn: urn.map(String::from),
            reason: default_reason(),
        };
        assert!(rule(None, None, None).matches(&image));
        assert!(rule(Some(Kind::Image), Some("abcd"), None).matches(&image));
        assert!(!rule(Some(Kind::Video), Some("abcd"), None).matches(&image));
        assert!(!rule(None, Some("ef"), None).matches(&image));
        assert!(rule(None, None, Some("urn:li:image:x")).matches(&image));
        assert!(!rule(None, None, Some("urn:li:image:y")).matches(&image));
    }
}
