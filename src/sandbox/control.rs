//! The sandbox's own endpoints under `/_sandbox/` (tokens without a browser, what was posted,
//! posts seeded as made elsewhere, settings and media faults, revocation) and the
//! scripted-fault layer tests use.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{api, media, post_content, Acl, Hangup, Sandbox, StoredPost, TokenInfo};
use crate::linkedin::wire::{SandboxTokenRequest, TokenResponse};
use crate::secret::Secret;

/// A scripted fault: `{"path": "/rest/posts", "status": 429, "times": 3, "retry_after": 2}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Fault {
    /// The request path it applies to: exact, or ending in `*` for every path with that
    /// prefix (e.g. `/rest/socialActions/*`, `/dms-uploads/*`).
    pub path: String,
    /// Only this method, if given.
    #[serde(default)]
    pub method: Option<String>,
    /// Answer with this status (LinkedIn's error body for it).
    #[serde(default)]
    pub status: Option<u16>,
    /// How many requests it applies to; 0 means every one.
    #[serde(default = "one")]
    pub times: u32,
    /// Seconds, sent as `Retry-After`.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Wait this long before answering (or before hanging up).
    #[serde(default)]
    pub delay_ms: u64,
    /// Handle the request normally (a post is stored), then close the connection without
    /// an answer.
    #[serde(default)]
    pub drop: bool,
    /// Handle the request normally (a post is stored), then answer with `status` instead of
    /// the real answer: a gateway that fails after LinkedIn created the post (502/504).
    #[serde(default)]
    pub stored: bool,
    /// Handle the request normally, then leave out the `x-restli-id` and `x-linkedin-id`
    /// headers: a 201 that names no post.
    #[serde(default)]
    pub omit_id: bool,
    /// Keep applying until this instant instead of counting `times`.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Shorthand for `until` = the next midnight UTC: a spent daily quota.
    #[serde(default)]
    pub until_midnight_utc: bool,
    /// Applies to a request with this probability (default 1); a miss does not count.
    #[serde(default)]
    pub probability: Option<f64>,
    /// The error body's `code` (e.g. `MEDIA_ASSET_WAITING_UPLOAD`), with `status`.
    #[serde(default)]
    pub code: Option<String>,
    /// The error body's `message`, with `status`; else the status's usual one.
    #[serde(default)]
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/_sandbox/token", post(mint_token))
        .route("/_sandbox/posts", get(list_posts).post(seed_post))
        .route(
            "/_sandbox/faults",
            post(add_faults).get(list_faults).delete(clear_faults),
        )
        .route("/_sandbox/config", post(set_config))
        .route("/_sandbox/configure", post(set_config))
        .route("/_sandbox/revoke", post(revoke))
        .route("/_sandbox/roles", post(set_role))
        .route("/_sandbox/health", get(|| async { "ok" }))
}

async fn mint_token(
    State(sb): State<Sandbox>,
    Json(req): Json<SandboxTokenRequest>,
) -> Json<TokenResponse> {
    let mut inner = sb.lock();
    let sub = inner.member_sub(&req.member);
    for org in &req.organizations {
        let known = inner
            .acls
            .iter()
            .any(|a| &a.organization == org && a.person == format!("urn:li:person:{sub}"));
        if !known {
            inner.acls.push(Acl {
                organization: org.clone(),
                role: "ADMINISTRATOR".into(),
                person: format!("urn:li:person:{sub}"),
            });
        }
    }
    let ttl = inner.settings.access_ttl;
    let token = format!("AQsbx{}", random_token());
    let scopes: Vec<String> = req
        .scope
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    inner.tokens.insert(
        token.clone(),
        TokenInfo {
            sub,
            scopes: scopes.clone(),
            expires_at: Utc::now() + ttl,
            revoked: false,
            issued_at: Utc::now(),
        },
    );
    Json(TokenResponse {
        access_token: Secret::new(token),
        expires_in: ttl.as_secs() as i64,
        refresh_token: None,
        refresh_token_expires_in: None,
        scope: scopes.join(","),
        id_token: None,
    })
}

/// A stable member id for a name, shaped like LinkedIn's.
pub(super) fn sub_for(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("sbx-{clean}")
}

pub(super) fn random_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

async fn list_posts(State(sb): State<Sandbox>) -> Json<Vec<StoredPost>> {
    let inner = sb.lock();
    let now = Utc::now();
    let posts = inner
        .posts
        .iter()
        .map(|p| {
            let mut p = p.clone();
            post_content::refresh(&inner, &mut p, now);
            p
        })
        .collect();
    Json(posts)
}

/// A post made outside the client, e.g. by hand last week: `{"author": "urn:li:…",
/// "commentary": "…", "created_at": "2026-11-16T09:00:00Z"}`.
#[derive(Deserialize)]
struct Seed {
    author: String,
    commentary: String,
    #[serde(default = "public")]
    visibility: String,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

fn public() -> String {
    "PUBLIC".into()
}

async fn seed_post(State(sb): State<Sandbox>, Json(p): Json<Seed>) -> Json<serde_json::Value> {
    let at = p.created_at.unwrap_or_else(Utc::now);
    let urn = sb
        .lock()
        .store(p.author, p.commentary, p.visibility, at, None);
    Json(serde_json::json!({ "urn": urn }))
}

async fn add_faults(State(sb): State<Sandbox>, Json(faults): Json<Vec<Fault>>) -> StatusCode {
    let mut inner = sb.lock();
    for mut f in faults {
        if f.until_midnight_utc {
            let tomorrow = Utc::now()
                .date_naive()
                .succ_opt()
                .expect("not the end of time");
            f.until = Some(
                tomorrow
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight exists")
                    .and_utc(),
            );
        }
        inner.faults.push(f);
    }
    StatusCode::NO_CONTENT
}

async fn list_faults(State(sb): State<Sandbox>) -> Json<Vec<Fault>> {
    Json(sb.lock().faults.clone())
}

async fn clear_faults(State(sb): State<Sandbox>) -> StatusCode {
    let mut inner = sb.lock();
    inner.faults.clear();
    inner.media_fail.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct ConfigChange {
    duplicate_window_secs: Option<u64>,
    latency_ms: Option<u64>,
    access_ttl_secs: Option<u64>,
    jitter_ms: Option<u64>,
    refresh_ttl_secs: Option<u64>,
    code_ttl_secs: Option<u64>,
    issue_refresh_tokens: Option<bool>,
    deny: Option<bool>,
    grant_scopes: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
    login_member: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    media_processing_ms: Option<u64>,
    upload_url_ttl_ms: Option<u64>,
    comments_forbidden: Option<bool>,
    acls_need_role: Option<bool>,
    new_token_refused_ms: Option<u64>,
    finder_max_count: Option<usize>,
    /// Appended to the `media_fail` rules (one rule or a list).
    media_fail: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(media::FailRule),
    Many(Vec<media::FailRule>),
}

async fn set_config(State(sb): State<Sandbox>, Json(c): Json<ConfigChange>) -> StatusCode {
    let mut inner = sb.lock();
    if let Some(s) = c.duplicate_window_secs {
        inner.settings.duplicate_window = Duration::from_secs(s);
    }
    if let Some(ms) = c.latency_ms {
        inner.settings.latency = Duration::from_millis(ms);
    }
    let st = &mut inner.settings;
    if let Some(s) = c.refresh_ttl_secs {
        st.refresh_ttl = Duration::from_secs(s);
    }
    if let Some(s) = c.code_ttl_secs {
        st.code_ttl = Duration::from_secs(s);
    }
    if let Some(b) = c.issue_refresh_tokens {
        st.issue_refresh_tokens = b;
    }
    if let Some(b) = c.deny {
        st.deny = b;
    }
    if c.grant_scopes.is_some() {
        st.grant_scopes = c.grant_scopes;
    }
    if let Some(r) = c.redirect_uris {
        st.redirect_uris = r;
    }
    if let Some(m) = c.login_member {
        st.login_member = m;
    }
    if let Some(id) = c.client_id {
        st.client_id = id;
    }
    if let Some(secret) = c.client_secret {
        st.client_secret = secret;
    }
    if let Some(ms) = c.jitter_ms {
        inner.settings.jitter = Duration::from_millis(ms);
    }
    if let Some(s) = c.access_ttl_secs {
        inner.settings.access_ttl = Duration::from_secs(s);
    }
    if let Some(ms) = c.media_processing_ms {
        inner.settings.media_processing = Duration::from_millis(ms);
    }
    if let Some(ms) = c.upload_url_ttl_ms {
        inner.settings.upload_url_ttl = Duration::from_millis(ms);
    }
    if let Some(b) = c.comments_forbidden {
        inner.settings.comments_forbidden = b;
    }
    if let Some(b) = c.acls_need_role {
        inner.settings.acls_need_role = b;
    }
    if let Some(ms) = c.new_token_refused_ms {
        inner.settings.new_token_refused = Duration::from_millis(ms);
    }
    if let Some(n) = c.finder_max_count {
        inner.settings.finder_max_count = n.max(1);
    }
    match c.media_fail {
        Some(OneOrMany::One(rule)) => inner.media_fail.push(rule),
        Some(OneOrMany::Many(rules)) => inner.media_fail.extend(rules),
        None => {}
    }
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Revoke {
    token: Option<String>,
    member: Option<String>,
}

async fn revoke(State(sb): State<Sandbox>, Json(r): Json<Revoke>) -> StatusCode {
    let mut inner = sb.lock();
    let sub = r
        .member
        .as_ref()
        .and_then(|m| inner.members.get(m).cloned());
    for (tok, info) in inner.tokens.iter_mut() {
        if r.token.as_deref() == Some(tok.as_str()) || sub.as_deref() == Some(info.sub.as_str()) {
            info.revoked = true;
        }
    }
    for (tok, info) in inner.refresh.iter_mut() {
        if r.token.as_deref() == Some(tok.as_str())
            || r.member.as_deref() == Some(info.member.as_str())
        {
            info.revoked = true;
        }
    }
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct RoleChange {
    member: String,
    organization: String,
    #[serde(default = "administrator")]
    role: String,
    #[serde(default)]
    remove: bool,
}

fn administrator() -> String {
    "ADMINISTRATOR".into()
}

/// Grants (or with `remove`, takes away) a member's role on a page.
async fn set_role(State(sb): State<Sandbox>, Json(r): Json<RoleChange>) -> StatusCode {
    let mut inner = sb.lock();
    let sub = inner.member_sub(&r.member);
    let person = format!("urn:li:person:{sub}");
    inner
        .acls
        .retain(|a| !(a.person == person && a.organization == r.organization));
    if !r.remove {
        inner.acls.push(Acl {
            organization: r.organization,
            role: r.role,
            person,
        });
    }
    StatusCode::NO_CONTENT
}

/// Applies scripted faults and latency to LinkedIn endpoints (never to `/_sandbox/`).
pub(super) async fn faults_layer(State(sb): State<Sandbox>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_sandbox/") {
        return next.run(req).await;
    }
    let (fault, latency) = {
        let mut inner = sb.lock();
        let now = Utc::now();
        inner.faults.retain(|f| f.until.is_none_or(|u| u > now));
        let method = req.method().as_str().to_string();
        let idx = inner.faults.iter().position(|f| {
            (f.path == path
                || f.path
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix)))
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(&method))
                && f.probability.is_none_or(|p| rand::random::<f64>() < p)
        });
        let fault = idx.map(|i| {
            let f = inner.faults[i].clone();
            if f.until.is_none() && f.times > 0 {
                inner.faults[i].times -= 1;
                if inner.faults[i].times == 0 {
                    inner.faults.remove(i);
                }
            }
            f
        });
        let jitter = inner.settings.jitter;
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            jitter.mul_f64(rand::random::<f64>())
        };
        (fault, inner.settings.latency + extra)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    if fault.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    if fault.drop {
        let hangup = req.extensions().get::<Hangup>().cloned();
        if fault.status.is_some() {
            drain(req).await;
        } else {
            drop(next.run(req).await);
        }
        if let Some(Hangup(h)) = hangup {
            h.notify_one();
            std::future::pending::<()>().await;
        }
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if fault.stored {
        let real = next.run(req).await;
        return match fault.status {
            Some(status) => fault_response(status, &fault),
            None => real,
        };
    }
    if fault.omit_id {
        let mut real = next.run(req).await;
        real.headers_mut().remove("x-restli-id");
        real.headers_mut().remove("x-linkedin-id");
        return real;
    }
    match fault.status {
        Some(status) => {
            drain(req).await;
            fault_response(status, &fault)
        }
        None => next.run(req).await,
    }
}

/// Reads a request's body to its end, as LinkedIn's front end does before failing: a client
/// still sending a large upload then gets the answer rather than a broken pipe.
async fn drain(req: Request) {
    use http_body_util::BodyExt;
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
}

fn fault_response(status: u16, fault: &Fault) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (service_code, message) = match status.as_u16() {
        429 => (
            Some(101),
            "Resource level throttle limit for calls to this resource is reached.",
        ),
        400 => (None, "Request body could not be converted to data map"),
        403 => (
            Some(100),
            "Not enough permissions to access: partnerApiPostsExternal.CREATE",
        ),
        422 => (None, "Unprocessable entity (scripted fault)"),
        500 => (None, "Internal Server Error"),
        502 => (None, "Bad Gateway"),
        503 => (None, "Service Unavailable"),
        504 => (None, "Gateway Timeout"),
        _ => (None, "Scripted fault"),
    };
    let message = fault.message.as_deref().unwrap_or(message);
    let mut resp = api::error(status, service_code, fault.code.as_deref(), message);
    if let Some(secs) = fault.retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    resp
}
