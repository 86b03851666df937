//! The media calls: initializeUpload for images, documents and videos, the upload PUTs
//! (streamed from disk, never whole in memory), finalizeUpload for videos, and the status
//! reads. Errors are [`ApiError`]s classified as the post path's are.
//!
//! The bearer token goes only to an upload URL on the configured API base's origin or an
//! https URL on a linkedin.com host; any other upload URL is refused before a byte leaves.
//! Video part URLs get no token at all, and the same origin rule. The JSON shapes here are
//! the client's reading of LinkedIn's notes, kept apart from the sandbox's on purpose.

use std::path::Path;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{bearer, check, json, send, urlencode, ApiError, Client};
use crate::content::MediaKind;
use crate::secret::Secret;

/// Size of a video part LinkedIn asks for (its instructions say which bytes, this is only
/// for reading them in pieces).
const READ_CHUNK: usize = 64 * 1024;

/// What initializeUpload answered: the asset's URN and where its bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    pub urn: String,
    /// Images and documents: one PUT of the whole file, with the bearer token.
    pub upload_url: Option<String>,
    /// Videos: the token finalizeUpload needs.
    pub upload_token: Option<String>,
    /// Videos: one PUT per byte range, in order.
    pub parts: Vec<Part>,
}

/// One byte range of a video and its URL (`firstByte`..=`lastByte`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub url: String,
    pub first: u64,
    pub last: u64,
}

/// An asset's processing status, as LinkedIn spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetStatus {
    WaitingUpload,
    Processing,
    Available,
    /// `PROCESSING_FAILED`, with LinkedIn's reason when it gave one.
    Failed(Option<String>),
    /// A value this client does not know: taken as still processing.
    Other(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitializeBody {
    initialize_upload_request: InitializeRequest,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitializeRequest {
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_captions: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_thumbnail: Option<bool>,
}

#[derive(Deserialize)]
struct InitializeAnswer {
    value: InitializeValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeValue {
    #[serde(default)]
    upload_url: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    document: Option<String>,
    #[serde(default)]
    video: Option<String>,
    #[serde(default)]
    upload_token: Option<String>,
    #[serde(default)]
    upload_instructions: Vec<Instruction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instruction {
    upload_url: String,
    first_byte: u64,
    last_byte: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FinalizeBody<'a> {
    finalize_upload_request: FinalizeRequest<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FinalizeRequest<'a> {
    video: &'a str,
    upload_token: &'a str,
    uploaded_part_ids: &'a [String],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusAnswer {
    #[serde(default)]
    status: String,
    #[serde(default)]
    processing_failure_reason: Option<String>,
}

/// `/rest/images`, `/rest/documents`, `/rest/videos`.
fn collection(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "images",
        MediaKind::Document => "documents",
        MediaKind::Video => "videos",
    }
}

/// An answer that is not what the notes describe: a fault of the other side, not retried
/// as if it were transient.
fn unexpected(url: &str, what: &str) -> ApiError {
    ApiError::Status {
        status: 200,
        code: None,
        service_error_code: None,
        message: format!("unexpected answer from {url}: {what}"),
        retry_after: None,
    }
}

/// Why an upload URL is refused: it would take the bytes (and for images and documents the
/// token) somewhere nobody configured.
fn refused(url: &str) -> ApiError {
    ApiError::Status {
        status: 0,
        code: Some("UPLOAD_URL_REFUSED".into()),
        service_error_code: None,
        message: format!(
            "refused to upload to {url}: only the configured API base's origin, an https linkedin.com host, or (with an API base on this machine) a loopback address may receive uploads"
        ),
        retry_after: None,
    }
}

impl Client {
    /// Whether `url` may receive an upload (and, for images and documents, the token): the
    /// API base's own origin (scheme, host, port), https on linkedin.com or a subdomain, or,
    /// when the API base is itself on this machine (the sandbox, an emulator), any loopback
    /// address: an emulator may serve uploads from another port, and nothing leaves the
    /// machine.
    pub fn upload_url_allowed(&self, url: &str) -> bool {
        let Ok(u) = url::Url::parse(url) else {
            return false;
        };
        if u.username() != "" || u.password().is_some() {
            return false;
        }
        let base = url::Url::parse(&self.api).ok();
        let same_origin = base
            .as_ref()
            .is_some_and(|base| base.origin() == u.origin() && u.origin().is_tuple());
        let local = base.as_ref().is_some_and(crate::config::is_loopback_url)
            && crate::config::is_loopback_url(&u)
            && matches!(u.scheme(), "http" | "https");
        let linkedin = u.scheme() == "https"
            && matches!(u.host(), Some(url::Host::Domain(h))
                if h.eq_ignore_ascii_case("linkedin.com")
                    || h.to_ascii_lowercase().ends_with(".linkedin.com"));
        same_origin || linkedin || local
    }

    /// `POST /rest/{images|documents|videos}?action=initializeUpload` for `owner`.
    pub async fn initialize_upload(
        &self,
        token: &Secret,
        kind: MediaKind,
        owner: &str,
        bytes: u64,
    ) -> Result<UploadPlan, ApiError> {
        let url = format!(
            "{}/rest/{}?action=initializeUpload",
            self.api,
            collection(kind)
        );
        let video = kind == MediaKind::Video;
        let body = InitializeBody {
            initialize_upload_request: InitializeRequest {
                owner: owner.to_string(),
                file_size_bytes: video.then_some(bytes),
                upload_captions: video.then_some(false),
                upload_thumbnail: video.then_some(false),
            },
        };
        let req = self
            .http
            .post(&url)
            .headers(self.versioned(token))
            .header(CONTENT_TYPE, "application/json")
            .json(&body);
        let resp = send(req, &url).await?;
        let answer: InitializeAnswer = json(check(resp).await?, &url).await?;
        let v = answer.value;
        let urn = match kind {
            MediaKind::Image => v.image,
            MediaKind::Document => v.document,
            MediaKind::Video => v.video,
        }
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| unexpected(&url, &format!("no {} URN", kind.as_str())))?;
        let parts: Vec<Part> = v
            .upload_instructions
            .into_iter()
            .map(|i| Part {
                url: i.upload_url,
                first: i.first_byte,
                last: i.last_byte,
            })
            .collect();
        if video {
            check_parts(&parts, bytes).map_err(|why| unexpected(&url, &why))?;
            if v.upload_token.is_none() {
                return Err(unexpected(&url, "no uploadToken"));
            }
        } else if v.upload_url.is_none() {
            return Err(unexpected(&url, "no uploadUrl"));
        }
        Ok(UploadPlan {
            urn,
            upload_url: v.upload_url,
            upload_token: v.upload_token,
            parts,
        })
    }

    /// `PUT {upload_url}` of the whole file at `path` (`len` bytes), with the bearer token:
    /// images and documents. Streamed from disk.
    pub async fn upload_file(
        &self,
        token: &Secret,
        upload_url: &str,
        path: &Path,
        len: u64,
    ) -> Result<(), ApiError> {
        if !self.upload_url_allowed(upload_url) {
            return Err(refused(upload_url));
        }
        let body = file_body(path, 0, len, upload_url).await?;
        let req = self
            .http
            .put(upload_url)
            .header(reqwest::header::AUTHORIZATION, bearer(token))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            .body(body);
        let resp = send(req, upload_url).await?;
        check(resp).await?;
        Ok(())
    }

    /// `PUT` of one video part (its byte range of the file at `path`), without the token:
    /// the part's ETag.
    pub async fn upload_part(&self, part: &Part, path: &Path) -> Result<String, ApiError> {
        if !self.upload_url_allowed(&part.url) {
            return Err(refused(&part.url));
        }
        let len = part.last - part.first + 1;
        let body = file_body(path, part.first, len, &part.url).await?;
        let req = self
            .http
            .put(&part.url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            .body(body);
        let resp = send(req, &part.url).await?;
        let resp = check(resp).await?;
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| unexpected(&part.url, "no ETag"))?;
        Ok(etag)
    }

    /// `POST /rest/videos?action=finalizeUpload` with every part's ETag, in order.
    pub async fn finalize_video(
        &self,
        token: &Secret,
        video: &str,
        upload_token: &str,
        etags: &[String],
    ) -> Result<(), ApiError> {
        let url = format!("{}/rest/videos?action=finalizeUpload", self.api);
        let body = FinalizeBody {
            finalize_upload_request: FinalizeRequest {
                video,
                upload_token,
                uploaded_part_ids: etags,
            },
        };
        let req = self
            .http
            .post(&url)
            .headers(self.versioned(token))
            .header(CONTENT_TYPE, "application/json")
            .json(&body);
        check(send(req, &url).await?).await?;
        Ok(())
    }

    /// `GET /rest/{images|documents|videos}/{urn}`: where LinkedIn is with the asset.
    pub async fn asset_status(
        &self,
        token: &Secret,
        kind: MediaKind,
        urn: &str,
    ) -> Result<AssetStatus, ApiError> {
        let url = format!("{}/rest/{}/{}", self.api, collection(kind), urlencode(urn));
        let resp = send(self.http.get(&url).headers(self.versioned(token)), &url).await?;
        let a: StatusAnswer = json(check(resp).await?, &url).await?;
        Ok(match a.status.as_str() {
            "WAITING_UPLOAD" => AssetStatus::WaitingUpload,
            "PROCESSING" => AssetStatus::Processing,
            "AVAILABLE" => AssetStatus::Available,
            "PROCESSING_FAILED" => AssetStatus::Failed(a.processing_failure_reason),
            other => AssetStatus::Other(other.to_string()),
        })
    }
}

/// The parts must cover `0..bytes` in order, without gaps or overlaps.
fn check_parts(parts: &[Part], bytes: u64) -> Result<(), String> {
    let mut next = 0u64;
    for p in parts {
        if p.first != next || p.last < p.first {
            return Err(format!(
                "uploadInstructions do not cover the file in order (part {}..={} where byte {next} was next)",
                p.first, p.last
            ));
        }
        next = p.last + 1;
    }
    if next != bytes {
        return Err(format!("uploadInstructions cover {next} bytes of {bytes}"));
    }
    Ok(())
}

/// A request body reading `len` bytes of `path` from `offset`, in small pieces.
async fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    url: &str,
) -> Result<reqwest::Body, ApiError> {
    let not_sent = |e: std::io::Error| ApiError::NotSent {
        url: url.to_string(),
        detail: format!("cannot read {}: {e}", path.display()),
    };
    // The store's own file, never followed through a link.
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .await
        .map_err(not_sent)?;
    let size = file.metadata().await.map_err(not_sent)?.len();
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(not_sent(std::io::Error::other(format!(
            "it has {size} bytes, the upload needs bytes {offset} to {}",
            offset.saturating_add(len)
        ))));
    }
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(not_sent)?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK);
    Ok(reqwest::Body::wrap_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(api: &str) -> Client {
        Client::new(api, api, "202611", Duration::from_secs(1))
    }

    #[test]
    fn the_token_goes_only_to_the_api_origin_or_linkedin() {
        let c = client("http://127.0.0.1:8080");
        assert!(c.upload_url_allowed("http://127.0.0.1:8080/upload/1"));
        // An emulator on this machine may upload through another port or name.
        assert!(c.upload_url_allowed("http://127.0.0.1:8081/upload/1"));
        assert!(c.upload_url_allowed("https://localhost:9000/upload/1"));
        assert!(c.upload_url_allowed("http://[::1]:9000/upload/1"));
        assert!(!c.upload_url_allowed("ftp://127.0.0.1/upload/1"));
        assert!(!c.upload_url_allowed("http://10.0.0.1:8080/upload/1"));
        assert!(!c.upload_url_allowed("http://evil.example/upload"));
        assert!(c.upload_url_allowed("https://www.linkedin.com/dms-uploads/x"));
        assert!(c.upload_url_allowed("https://api.linkedin.com/mediaUpload/x"));
        assert!(!c.upload_url_allowed("http://www.linkedin.com/dms-uploads/x"));
        assert!(!c.upload_url_allowed("https://linkedin.com.evil.example/x"));
        assert!(!c.upload_url_allowed("https://evillinkedin.com/x"));
        assert!(!c.upload_url_allowed("https://user:pw@www.linkedin.com/x"));
        assert!(!c.upload_url_allowed("not a url"));
        let live = client("https://api.linkedin.com");
        assert!(live.upload_url_allowed("https://api.linkedin.com/x"));
        assert!(!live.upload_url_allowed("http://127.0.0.1:8080/x"));
        assert!(!live.upload_url_allowed("http://localhost/x"));
    }

    #[test]
    fn parts_must_cover_the_file_in_order() {
        let p = |first, last| Part {
            url: "u".into(),
            first,
            last,
        };
        assert!(check_parts(&[p(0, 9), p(10, 14)], 15).is_ok());
        assert!(check_parts(&[p(10, 14), p(0, 9)], 15).is_err());
        assert!(check_parts(&[p(0, 9)], 15).is_err());
        assert!(check_parts(&[p(0, 9), p(9, 14)], 15).is_err());
        assert!(check_parts(&[], 0).is_ok());
    }
}
