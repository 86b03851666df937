//! The LinkedIn client: the HTTP calls lipost makes, and the wire types they carry.
//!
//! It owns request building (headers, body shape, URL encoding) and turns every response
//! into `Ok` or a classified [`ApiError`]. It knows nothing of the store, drafts or retry
//! policy: deciding what an error means for a post is the publisher's job. The
//! `LinkedIn-Version` it sends is shared by its clones ([`ApiVersion`]) and can change while
//! it runs (SIGHUP).
//! [`media`] holds the upload calls (streamed, with the upload-URL origin check).
//! [`wire`] holds the JSON shapes; the sandbox shares those and nothing else. The calls on a
//! published post (comment, edit, delete) live in `social`, with their request bodies.

pub mod ltf;
pub mod media;
mod social;
pub mod wire;

pub use social::Commented;

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::secret::Secret;
use wire::{ErrorBody, PostRequest, TokenResponse, UserInfo};

/// What went wrong with a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// LinkedIn answered with an error status.
    #[error("HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        status: u16,
        code: Option<String>,
        service_error_code: Option<i64>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request never left: connection refused, DNS failure. Safe to send again.
    #[error("could not connect to {url}: {detail}")]
    NotSent { url: String, detail: String },
    /// The request may have reached LinkedIn but no complete answer came back.
    #[error("no answer from {url}: {detail}")]
    NoAnswer { url: String, detail: String },
    /// LinkedIn created the post (201) but named no URN: it exists, we do not know which.
    #[error("LinkedIn answered {status} at {url} but sent no x-restli-id or x-linkedin-id header: the post exists, its URN is unknown")]
    CreatedWithoutUrn { url: String, status: u16 },
}

/// LinkedIn's code for a post refused as a duplicate of an earlier one.
const DUPLICATE_POST: &str = "DUPLICATE_POST";

/// Posts asked per page of the in-doubt lookup: the notes' `count=10`.
pub const LOOKUP_PAGE: usize = 10;
/// The most posts the in-doubt lookup reads back. A page that posts more than this many
/// times between an unanswered try and its next one is resolved by the duplicate window.
pub const LOOKUP_DEPTH: usize = 50;

/// Input error codes the publisher acts on (see `publisher::classify`), read first.
const ACTED_ON: [&str; 4] = [
    "INVALID_IMAGE_ID",
    "INVALID_DOCUMENT_ID",
    "INVALID_VIDEO_ID",
    "MEDIA_ASSET_WAITING_UPLOAD",
];

impl ApiError {
    /// LinkedIn refused the post as a duplicate (422 `DUPLICATE_POST`), whether or not its
    /// message names the earlier post.
    pub fn is_duplicate(&self) -> bool {
        match self {
            ApiError::Status {
                status: 422,
                code,
                message,
                ..
            } => code.as_deref() == Some(DUPLICATE_POST) || message.contains("is a duplicate of"),
            _ => false,
        }
    }

    /// The URN of the earlier identical post, when LinkedIn refused this one as a duplicate.
    pub fn duplicate_of(&self) -> Option<String> {
        if !self.is_duplicate() {
            return None;
        }
        let ApiError::Status { message, .. } = self else {
            return None;
        };
        let at = message.find("duplicate of urn:li:")? + "duplicate of ".len();
        let urn: String = message[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '_' || *c == '-')
            .collect();
        Some(urn)
    }
}

/// The `LinkedIn-Version` every versioned call carries, shared by all clones of a
/// [`Client`] so a reload changes it without a restart; and whether LinkedIn said it no
/// longer serves it (426 `NONEXISTENT_VERSION`).
#[derive(Clone)]
pub struct ApiVersion(std::sync::Arc<std::sync::Mutex<VersionState>>);

struct VersionState {
    current: String,
    retired: bool,
}

impl ApiVersion {
    pub fn new(version: &str) -> ApiVersion {
        ApiVersion(std::sync::Arc::new(std::sync::Mutex::new(VersionState {
            current: version.to_string(),
            retired: false,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VersionState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current(&self) -> String {
        self.lock().current.clone()
    }

    /// Switches to `version` (a reload) and forgets any refusal: the next request tries it
    /// again, even if it is the same one, so a refusal that was really for the version before
    /// a reload cannot stick. `true` if the version changed or had been refused.
    pub fn set(&self, version: &str) -> bool {
        let mut s = self.lock();
        let changed = s.current != version || s.retired;
        s.current = version.to_string();
        s.retired = false;
        changed
    }

    /// LinkedIn refused `version` as retired. `true` the first time for the current one, so
    /// the caller says it loudly once.
    pub fn retire(&self, version: &str) -> bool {
        let mut s = self.lock();
        if s.current != version || s.retired {
            return false;
        }
        s.retired = true;
        true
    }

    /// LinkedIn answered 426 to a request that carried `version` (to `what`: a post, a
    /// media upload, a comment or an edit): retires it and, the first time, says at ERROR
    /// what the operator must change. One message for every caller.
    pub fn refused(&self, version: &str, what: &str, error: &dyn std::fmt::Display) {
        if self.retire(version) {
            tracing::error!(version = %version, error = %error, "LinkedIn no longer serves LinkedIn-Version {version} (answered to {what}): every due post is held, and no comment or edit is sent (none is given up). Set linkedin.version in config.toml to a recent month (YYYYMM), then `systemctl reload lipost` (SIGHUP); held posts then go out unless past retry.max_lateness");
        }
    }

    /// The current version, if LinkedIn said it no longer serves it.
    pub fn retired(&self) -> Option<String> {
        let s = self.lock();
        s.retired.then(|| s.current.clone())
    }
}

/// Months from a `YYYYMM` version to `now`'s month; `None` if it is not one.
pub fn version_age_months(version: &str, now: chrono::DateTime<chrono::Utc>) -> Option<i32> {
    use chrono::Datelike;
    if version.len() != 6 || !version.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let y: i32 = version[..4].parse().ok()?;
    let m: i32 = version[4..].parse().ok()?;
    Some((now.year() - y) * 12 + now.month() as i32 - m)
}

/// LinkedIn retires each monthly version after about a year: past this age, say so ahead.
pub const VERSION_WARN_MONTHS: i32 = 10;

/// A warning for an old configured version, or `None` while it is young enough.
pub fn version_warning(version: &str, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let age = version_age_months(version, now)?;
    (age > VERSION_WARN_MONTHS).then(|| {
        format!(
            "linkedin.version {version} is {age} months old; LinkedIn retires a version after about a year, and then every post is held: set linkedin.version in config.toml to a recent month (YYYYMM), then `systemctl reload lipost`"
        )
    })
}

/// The post LinkedIn created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub urn: String,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api: String,
    /// `{api}/rest/posts`, and parsed once: every publish uses it.
    posts: String,
    posts_url: Option<reqwest::Url>,
    oauth: String,
    version: ApiVersion,
}

impl Client {
    pub fn new(api: &str, oauth: &str, version: &str, timeout: Duration) -> Client {
        let mut http = reqwest::Client::builder();
        let loopback = [api, oauth]
            .iter()
            .any(|u| url::Url::parse(u).is_ok_and(|u| crate::config::is_loopback_url(&u)));
        if loopback {
            // A sandbox (or a local emulator) is on this machine: HTTP_PROXY and friends
            // must not carry its requests, and the tokens in them, to another host.
            http = http.no_proxy();
        }
        let http = http
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .user_agent(concat!("lipost/", env!("CARGO_PKG_VERSION")))
            // LinkedIn's API does not redirect; a 3xx is reported, never followed, so a post
            // is never sent on to an address nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the TLS backend is built in");
        let api = api.trim_end_matches('/').to_string();
        let posts = format!("{api}/rest/posts");
        Client {
            http,
            posts_url: reqwest::Url::parse(&posts).ok(),
            posts,
            api,
            oauth: oauth.trim_end_matches('/').to_string(),
            version: ApiVersion::new(version),
        }
    }

    /// The version this client sends; shared by its clones.
    pub fn version(&self) -> &ApiVersion {
        &self.version
    }

    pub fn api_base(&self) -> &str {
        &self.api
    }

    pub fn oauth_base(&self) -> &str {
        &self.oauth
    }

    fn versioned(&self, token: &Secret) -> HeaderMap {
        self.versioned_as(token, &self.version.current())
    }

    fn versioned_as(&self, token: &Secret, version: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, bearer(token));
        if let Ok(v) = HeaderValue::from_str(version) {
            h.insert("LinkedIn-Version", v);
        }
        h.insert(
            "X-Restli-Protocol-Version",
            HeaderValue::from_static("2.0.0"),
        );
        h
    }

    /// `POST /rest/posts` with `LinkedIn-Version: version` (the caller reads it once, so an
    /// answer about the version, a 426, is known to be about the one sent): the new post's
    /// URN, from `x-restli-id` (or `x-linkedin-id`).
    pub async fn create_post(
        &self,
        token: &Secret,
        body: &PostRequest,
        version: &str,
    ) -> Result<Created, ApiError> {
        let url = &self.posts;
        let req = match &self.posts_url {
            Some(parsed) => self.http.post(parsed.clone()),
            // Unparseable: let reqwest report why.
            None => self.http.post(url),
        };
        let req = req
            .headers(self.versioned_as(token, version))
            .header(CONTENT_TYPE, "application/json")
            .json(body);
        let resp = send(req, url).await?;
        let resp = check(resp).await?;
        let urn = ["x-restli-id", "x-linkedin-id"]
            .iter()
            .find_map(|h| resp.headers().get(*h)?.to_str().ok().map(str::to_string))
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| ApiError::CreatedWithoutUrn {
                url: url.to_string(),
                status: resp.status().as_u16(),
            })?;
        Ok(Created { urn })
    }

    /// `GET /rest/posts?q=author`: the author's posts, newest first, read back to those last
    /// modified before `since` (epoch ms) and at most [`LOOKUP_DEPTH`] of them. Asked
    /// [`LOOKUP_PAGE`] at a time, as the notes' example asks, each page from where the last
    /// one ended: an API that caps the page size still shows a post that newer ones pushed
    /// off the first page. The walk ends at an empty page, a page that repeats (an API that
    /// ignores `start`), or a page whose last post was last modified before `since` (sorted
    /// by `LAST_MODIFIED`, none after it is newer). A page that fails after others were read
    /// ends it too, with what was read: the caller falls back as for any miss.
    pub async fn posts_by_author(
        &self,
        token: &Secret,
        author: &str,
        since: i64,
    ) -> Result<Vec<wire::PostElement>, ApiError> {
        let mut found: Vec<wire::PostElement> = Vec::new();
        while found.len() < LOOKUP_DEPTH {
            let page = match self.posts_page(token, author, found.len()).await {
                Ok(page) => page,
                Err(_) if !found.is_empty() => break,
                Err(e) => return Err(e),
            };
            let older = page
                .last()
                .and_then(|p| p.last_modified_at)
                .is_some_and(|t| t < since);
            let new: Vec<_> = page
                .into_iter()
                .filter(|p| !found.iter().any(|f| f.id == p.id))
                .collect();
            if new.is_empty() {
                break;
            }
            found.extend(new);
            if older {
                break;
            }
        }
        Ok(found)
    }

    async fn posts_page(
        &self,
        token: &Secret,
        author: &str,
        start: usize,
    ) -> Result<Vec<wire::PostElement>, ApiError> {
        // The first page exactly as the notes' example; later ones with Rest.li's `start`.
        let start = match start {
            0 => String::new(),
            n => format!("&start={n}"),
        };
        let url = format!(
            "{}/rest/posts?author={}&q=author&count={LOOKUP_PAGE}{start}&sortBy=LAST_MODIFIED",
            self.api,
            urlencode(author)
        );
        let resp = send(self.http.get(&url).headers(self.versioned(token)), &url).await?;
        let page: wire::Elements<wire::PostElement> = json(check(resp).await?, &url).await?;
        Ok(page.elements)
    }

    /// `GET /rest/organizationAcls?q=roleAssignee`: the pages the member holds roles on.
    /// Asked once for every role (so the answer names roles that cannot post too); where
    /// that request is refused as such (an API that wants `role=`, as the notes' example
    /// has it: a 400, 404 or 422), asked once per posting role and the answers joined.
    pub async fn organization_acls(
        &self,
        token: &Secret,
    ) -> Result<Vec<wire::OrganizationAcl>, ApiError> {
        match self.acls_for(token, None).await {
            // The request refused as such (400, or 422 for a missing parameter), not the
            // token (401), the permission (403) or the rate (429).
            Err(ApiError::Status { status, .. })
                if (400..500).contains(&status) && ![401, 403, 429].contains(&status) =>
            {
                let (mut all, mut answered, mut refused) = (Vec::new(), false, None);
                for role in wire::POSTING_ROLES {
                    match self.acls_for(token, Some(role)).await {
                        Ok(acls) => {
                            answered = true;
                            all.extend(acls);
                        }
                        // A role name this API does not know (LinkedIn renames roles):
                        // nobody holds it there.
                        Err(
                            e @ ApiError::Status {
                                status: 400 | 404 | 422,
                                ..
                            },
                        ) => refused = Some(e),
                        Err(e) => return Err(e),
                    }
                }
                // Every role refused: the request itself is wrong, and saying "no role"
                // would send the admin to grant one.
                match (answered, refused) {
                    (false, Some(e)) => Err(e),
                    _ => Ok(all),
                }
            }
            other => other,
        }
    }

    async fn acls_for(
        &self,
        token: &Secret,
        role: Option<&str>,
    ) -> Result<Vec<wire::OrganizationAcl>, ApiError> {
        let role = role.map(|r| format!("&role={r}")).unwrap_or_default();
        let url = format!(
            "{}/rest/organizationAcls?q=roleAssignee{role}&state=APPROVED",
            self.api
        );
        let resp = send(self.http.get(&url).headers(self.versioned(token)), &url).await?;
        let page: wire::Elements<wire::OrganizationAcl> = json(check(resp).await?, &url).await?;
        Ok(page.elements)
    }

    /// `GET /v2/userinfo`: who the token belongs to.
    pub async fn userinfo(&self, token: &Secret) -> Result<UserInfo, ApiError> {
        let url = format!("{}/v2/userinfo", self.api);
        let resp = send(
            self.http.get(&url).header(AUTHORIZATION, bearer(token)),
            &url,
        )
        .await?;
        json(check(resp).await?, &url).await
    }

    /// The token endpoint, with a form body (authorization code or refresh grant).
    pub async fn token(&self, form: &[(&str, &str)]) -> Result<TokenResponse, ApiError> {
        let url = format!("{}/accessToken", self.oauth);
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let req = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let resp = send(req, &url).await?;
        json(check(resp).await?, &url).await
    }

    /// Sandbox only: mint a token for a member without a browser.
    pub async fn sandbox_token(
        &self,
        req: &wire::SandboxTokenRequest,
    ) -> Result<TokenResponse, ApiError> {
        let url = format!("{}/_sandbox/token", self.api);
        let resp = send(self.http.post(&url).json(req), &url).await?;
        json(check(resp).await?, &url).await
    }
}

/// `Authorization: Bearer …`, marked sensitive so no debug output shows it.
fn bearer(token: &Secret) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    v.set_sensitive(true);
    v
}

pub fn urlencode(s: &str) -> String {
    // A space as `%20`, not the form encoding's `+`: the same in a path and in a query,
    // and read right by a server that decodes percent escapes only. (A `+` in `s` is `%2B`.)
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn send(req: RequestBuilder, url: &str) -> Result<Response, ApiError> {
    req.send().await.map_err(|e| transport_error(&e, url))
}

fn transport_error(e: &reqwest::Error, url: &str) -> ApiError {
    // Upload URLs carry a signature in their query, a short-lived credential: the message
    // (which reaches the log and `media_attempts`) names only the path.
    let shown = without_query(url);
    let mut detail = error_chain(e).replace(url, &shown);
    if let Some(u) = e.url() {
        detail = detail.replace(u.as_str(), &without_query(u.as_str()));
    }
    // A connect error means no byte of the request left this machine.
    if e.is_connect() && !e.is_timeout() {
        ApiError::NotSent { url: shown, detail }
    } else {
        ApiError::NoAnswer { url: shown, detail }
    }
}

fn without_query(url: &str) -> String {
    match url.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod redaction_tests {
    /// Review finding: a signed upload URL's query never reaches a message.
    #[tokio::test]
    async fn a_transport_error_names_no_query() {
        let url = "http://127.0.0.1:9/dms-uploads/x?signature=s3cr3t";
        let e = reqwest::Client::new().put(url).send().await.unwrap_err();
        let shown = super::transport_error(&e, url).to_string();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("/dms-uploads/x"), "{shown}");
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Passes a success through; turns an error status into [`ApiError::Status`].
async fn check(resp: Response) -> Result<Response, ApiError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let text = resp.text().await.unwrap_or_default();
    Err(status_error(status, &text, retry_after))
}

fn status_error(status: StatusCode, text: &str, retry_after: Option<Duration>) -> ApiError {
    let body: ErrorBody = serde_json::from_str(text).unwrap_or_default();
    let message = body
        .message
        .or(body.error_description)
        .or(body.error.clone())
        .unwrap_or_else(|| {
            let t: String = text.chars().take(300).collect();
            if t.trim().is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                t
            }
        });
    // Validation refusals name their code per input (`errorDetails.inputErrors[].code`):
    // a duplicate first, else the first one, where the top level names none.
    let input_codes: Vec<String> = body
        .error_details
        .as_ref()
        .and_then(|d| d.get("inputErrors")?.as_array().cloned())
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("code")?.as_str().map(String::from))
        .collect();
    // A code lipost acts on, given per input, names the refusal better than a generic one
    // at the top level; otherwise the top level's, else the first input's.
    let acted_on = input_codes
        .iter()
        .find(|c| *c == DUPLICATE_POST)
        .or_else(|| input_codes.iter().find(|c| ACTED_ON.contains(&c.as_str())))
        .cloned();
    let first = input_codes.first().cloned();
    ApiError::Status {
        status: status.as_u16(),
        code: acted_on.or(body.code).or(body.error).or(first),
        service_error_code: body.service_error_code,
        message,
        retry_after,
    }
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

async fn json<T: serde::de::DeserializeOwned>(resp: Response, url: &str) -> Result<T, ApiError> {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| transport_error(&e, url))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Status {
        status,
        code: None,
        service_error_code: None,
        message: format!("unexpected answer from {url}: {e}"),
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_duplicate_urn() {
        let e = status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"message": "com.linkedin.content.common.exception.BadRequestResponseException: Content is a duplicate of urn:li:share:7141138937766391808", "status": 422}"#,
            None,
        );
        assert_eq!(
            e.duplicate_of().as_deref(),
            Some("urn:li:share:7141138937766391808")
        );
        assert!(e.is_duplicate());
        let e = status_error(StatusCode::UNPROCESSABLE_ENTITY, r#"{"message":"x"}"#, None);
        assert_eq!(e.duplicate_of(), None);
        assert!(!e.is_duplicate());
        // A duplicate whose URN cannot be read: still a duplicate, never a plain rejection.
        let e = status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"message": "Content rejected", "errorDetails": {"inputErrors": [{"code": "DUPLICATE_POST"}]}, "status": 422}"#,
            None,
        );
        assert!(e.is_duplicate());
        assert_eq!(e.duplicate_of(), None);
    }

    #[test]
    fn reads_error_bodies() {
        let e = status_error(
            StatusCode::FORBIDDEN,
            r#"{"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED", "message": "Not enough permissions"}"#,
            None,
        );
        assert_eq!(
            e.to_string(),
            "HTTP 403 ACCESS_DENIED: Not enough permissions"
        );
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        // A code given per input only: the media refusals read it from there too.
        let e = status_error(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Invalid content", "errorDetails": {"inputErrors": [{"code": "INVALID_IMAGE_ID", "input": {"inputPath": {"fieldPath": "/content/media/id"}}}]}, "status": 400}"#,
            None,
        );
        assert!(
            matches!(&e, ApiError::Status { code: Some(c), .. } if c == "INVALID_IMAGE_ID"),
            "{e:?}"
        );
        // Also behind a generic code at the top level, and not first among the inputs.
        let e = status_error(
            StatusCode::BAD_REQUEST,
            r#"{"code": "ILLEGAL_ARGUMENT", "message": "Invalid content", "errorDetails": {"inputErrors": [{"code": "FIELD_LENGTH_TOO_LONG"}, {"code": "INVALID_VIDEO_ID"}]}, "status": 400}"#,
            None,
        );
        assert!(
            matches!(&e, ApiError::Status { code: Some(c), .. } if c == "INVALID_VIDEO_ID"),
            "{e:?}"
        );
    }

    #[test]
    fn url_encoding_is_percent_only() {
        assert_eq!(
            urlencode("openid profile w_member_social"),
            "openid%20profile%20w_member_social"
        );
        assert_eq!(urlencode("urn:li:share:1+2"), "urn%3Ali%3Ashare%3A1%2B2");
    }

    #[test]
    fn reads_the_token_endpoints_snake_case_description() {
        let e = status_error(
            StatusCode::BAD_REQUEST,
            r#"{"error": "invalid_request", "error_description": "A required parameter \"refresh_token\" is missing"}"#,
            None,
        );
        assert_eq!(
            e.to_string(),
            "HTTP 400 invalid_request: A required parameter \"refresh_token\" is missing"
        );
    }

    #[test]
    fn a_retired_version_is_said_once_and_a_reload_tries_again() {
        let v = ApiVersion::new("202401");
        assert!(v.retire("202401"));
        assert!(!v.retire("202401"), "said once");
        assert_eq!(v.retired().as_deref(), Some("202401"));
        // Same version again: tried again, not stuck.
        assert!(v.set("202401"));
        assert_eq!(v.retired(), None);
        assert!(!v.set("202401"), "nothing to lift");
        assert!(v.set("202611"));
        assert_eq!(v.current(), "202611");
        assert!(!v.retire("202401"), "not the current one");
    }

    #[test]
    fn versions_older_than_ten_months_are_warned() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(version_age_months("202511", now), Some(12));
        assert_eq!(version_age_months("2025-1", now), None);
        assert!(
            version_warning("202601", now).is_none(),
            "10 months: not yet"
        );
        let w = version_warning("202512", now).expect("11 months");
        assert!(
            w.contains("11 months old") && w.contains("linkedin.version"),
            "{w}"
        );
    }
}
