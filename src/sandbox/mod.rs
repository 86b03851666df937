//! The sandbox: a faithful emulator of the LinkedIn endpoints lipost uses, on loopback.
//!
//! It owns its own state (members, tokens, page roles, posts, media assets, comments,
//! scripted faults) and checks requests the way LinkedIn does: headers, bearer token, author
//! and owner, body fields, the 3,000-character limit, duplicate content, post content against
//! its assets' status. It shares only the wire types with the client, never its logic, and it
//! never talks to the store or the daemon. Uploaded bytes go to unlinked temporary files
//! (streamed, never held whole in memory), so nothing is left behind however it stops.

mod api;
mod control;
pub mod ltf;
mod media;
mod oauth;
mod post_content;
mod social;
mod upload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Utc};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::linkedin::wire::PostContent;

/// How the sandbox behaves; all of it can be changed at run time through `/_sandbox/config`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// An identical post by the same author within this window is refused with 422.
    pub duplicate_window: Duration,
    /// Added to every LinkedIn endpoint's answer.
    pub latency: Duration,
    /// A random extra delay of up to this much on every LinkedIn endpoint's answer.
    pub jitter: Duration,
    /// Lifetime of minted access tokens.
    pub access_ttl: Duration,
    /// The app registered with the sandbox.
    pub client_id: String,
    pub client_secret: String,
    /// Registered redirect URIs; empty accepts any loopback URI.
    pub redirect_uris: Vec<String>,
    /// Issue refresh tokens (partner apps) or not (self-serve apps, LinkedIn's default).
    pub issue_refresh_tokens: bool,
    pub refresh_ttl: Duration,
    pub code_ttl: Duration,
    /// The member declines the authorization.
    pub deny: bool,
    /// Scopes the app may be granted; `None` grants whatever is asked.
    pub grant_scopes: Option<Vec<String>>,
    /// The member who approves authorization requests.
    pub login_member: String,
    /// How long an uploaded asset stays `PROCESSING` before it is `AVAILABLE`.
    pub media_processing: Duration,
    /// Lifetime of upload URLs (`uploadUrlExpiresAt`, `uploadUrlsExpireAt`).
    pub upload_url_ttl: Duration,
    /// Comments answer 403: the account lacks the (disputed) comment permission.
    pub comments_forbidden: bool,
    /// `organizationAcls?q=roleAssignee` without `role=` is 400 (the strictest reading of
    /// the notes, whose one example names a role; LinkedIn documents `role` as optional).
    pub acls_need_role: bool,
    /// A token is answered 401 (65601) for this long after it was issued: the notes' "a
    /// brand-new token can briefly be answered 401". Zero by default.
    pub new_token_refused: Duration,
    /// The most posts one page of `GET /rest/posts?q=author` holds, whatever `count` asks.
    pub finder_max_count: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            duplicate_window: crate::config::LINKEDIN_DUPLICATE_WINDOW,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            access_ttl: Duration::from_secs(60 * 24 * 3600),
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
            redirect_uris: Vec::new(),
            issue_refresh_tokens: false,
            refresh_ttl: Duration::from_secs(365 * 24 * 3600),
            code_ttl: Duration::from_secs(30 * 60),
            deny: false,
            grant_scopes: None,
            login_member: "me".into(),
            media_processing: Duration::from_millis(1000),
            upload_url_ttl: Duration::from_secs(3600),
            comments_forbidden: false,
            acls_need_role: false,
            new_token_refused: Duration::ZERO,
            finder_max_count: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredPost {
    pub urn: String,
    pub author: String,
    /// As received, escaped.
    pub commentary: String,
    /// What a reader sees (Little Text Format resolved).
    pub text: String,
    pub visibility: String,
    pub received_at: DateTime<Utc>,
    /// `image`, `multi_image`, `document`, `video`, `article`, `poll`; absent for text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_kind: Option<&'static str>,
    /// LinkedIn's `content` field as received (read into the wire type: unknown fields go).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<PostContent>,
    /// Every asset the content names, in order, as it was when the post was created.
    pub assets: Vec<post_content::PostAsset>,
    /// False once an asset it names failed processing: LinkedIn keeps such a post but never
    /// shows it. Worked out when listed.
    pub visible: bool,
    pub comments: Vec<social::Comment>,
    pub edits: Vec<social::Edit>,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct TokenInfo {
    sub: String,
    scopes: Vec<String>,
    expires_at: DateTime<Utc>,
    revoked: bool,
    issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
struct Acl {
    organization: String,
    role: String,
    person: String,
}

#[derive(Default)]
struct Inner {
    settings: Settings,
    /// member name → sub
    members: HashMap<String, String>,
    tokens: HashMap<String, TokenInfo>,
    acls: Vec<Acl>,
    posts: Vec<StoredPost>,
    /// (author, commentary) → index of the latest such post, for the duplicate check.
    latest: HashMap<(String, String), usize>,
    faults: Vec<control::Fault>,
    codes: HashMap<String, oauth::Code>,
    refresh: HashMap<String, oauth::Refresh>,
    next_share: u64,
    /// Assets by URN.
    media: HashMap<String, media::Asset>,
    /// Upload URL id → asset URN.
    uploads: HashMap<String, String>,
    media_fail: Vec<media::FailRule>,
    next_comment: u64,
    /// The address it serves, for upload URLs when a request names no host.
    local: Option<SocketAddr>,
}

impl Inner {
    /// Stores a post as created at `at` and returns its new URN.
    fn store(
        &mut self,
        author: String,
        commentary: String,
        visibility: String,
        at: DateTime<Utc>,
        content: Option<(PostContent, Vec<post_content::PostAsset>)>,
    ) -> String {
        self.next_share += 1;
        let urn = format!("urn:li:share:{}", self.next_share);
        let key = (author.clone(), duplicate_key(&commentary));
        let newer = self
            .latest
            .get(&key)
            .is_none_or(|&i| self.posts[i].received_at <= at);
        if newer {
            self.latest.insert(key, self.posts.len());
        }
        let (content, assets) = content.unzip();
        self.posts.push(StoredPost {
            urn: urn.clone(),
            author,
            text: ltf::visible_text(&commentary),
            commentary,
            visibility,
            received_at: at,
            content_kind: content.as_ref().map(post_content::kind),
            content,
            assets: assets.unwrap_or_default(),
            visible: true,
            comments: Vec::new(),
            edits: Vec::new(),
            deleted: false,
            deleted_at: None,
        });
        urn
    }

    /// The post with this URN, deleted or not.
    fn post_mut(&mut self, urn: &str) -> Option<&mut StoredPost> {
        self.posts.iter_mut().find(|p| p.urn == urn)
    }

    /// The member's `sub`, made up (stable, from the name) the first time it is asked for.
    fn member_sub(&mut self, name: &str) -> String {
        self.members
            .entry(name.to_string())
            .or_insert_with(|| control::sub_for(name))
            .clone()
    }
}

/// What LinkedIn's duplicate check compares besides the author: the commentary, whatever
/// the content (the notes: "the same commentary again for the same author").
fn duplicate_key(commentary: &str) -> String {
    commentary.to_string()
}

/// Where this run's post ids start: LinkedIn never gives one URN to two posts, and a
/// database outlives a sandbox (the built-in one starts afresh with every `lipost run`), so
/// the ids of one run must not come back in the next. Ids grow with the time the run started,
/// 100 per microsecond: a run would have to publish faster than that to reach the next's.
fn first_share() -> u64 {
    let micros = Utc::now().timestamp_micros().max(0) as u64;
    7_000_000_000_000_000_000 + micros * 100
}

#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Mutex<Inner>>,
}

impl Sandbox {
    pub fn new(settings: Settings) -> Sandbox {
        Sandbox {
            inner: Arc::new(Mutex::new(Inner {
                settings,
                next_share: first_share(),
                ..Inner::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn router(&self) -> Router {
        api::routes()
            .merge(media::routes())
            .merge(upload::routes())
            .merge(social::routes())
            .merge(oauth::routes())
            .merge(control::routes())
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                control::faults_layer,
            ))
            .with_state(self.clone())
    }

    /// Binds `addr` (port 0 picks a free one) and serves until the task is dropped.
    pub async fn start(
        self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        self.lock().local = Some(local);
        let task = tokio::spawn(serve(listener, self.router()));
        Ok((local, task))
    }
}

/// Closes a connection without an answer: set by the fault layer to model a connection lost
/// after LinkedIn received the request.
#[derive(Clone)]
struct Hangup(Arc<Notify>);

async fn serve(listener: TcpListener, app: Router) {
    use tower::ServiceExt;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let hangup = Arc::new(Notify::new());
            let h = hangup.clone();
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Hangup(h.clone()));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                // Dropping the connection future closes the socket mid-exchange.
                _ = hangup.notified() => {}
            }
        });
    }
}
