//! `lipost auth login` and `lipost auth import`: getting a token set into the store.
//!
//! The authorization-code flow: build the URL (with a random `state`), let the member approve
//! in a browser, take the redirect on the loopback `redirect_uri` (or a pasted URL), check
//! `state`, exchange the code, learn the member's URN from userinfo, check the granted scopes
//! and page roles, store. Every failure LinkedIn documents gets its own message.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use super::{app_credentials, pages_via, scopes_for, token_from_response, AuthError};
use crate::config::{Config, Mode};
use crate::linkedin::wire::{TokenResponse, POSTING_ROLES, VIDEO_ROLES};
use crate::linkedin::{urlencode, ApiError, Client};
use crate::store::{Store, Token, TokenSource};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{0}")]
    Setup(String),
    #[error(
        "the authorization was declined in the browser ({0}); run login again and choose Allow"
    )]
    Declined(String),
    #[error("the state in the redirect does not match the one lipost sent: refused (possible CSRF); start the login again")]
    StateMismatch,
    #[error("LinkedIn rejected the client id or client secret ({0}): check linkedin.client_id and the secret in LIPOST_CLIENT_SECRET or client_secret_file")]
    BadClient(String),
    #[error("LinkedIn refused the authorization code ({0}). A code works once and for about 30 minutes, and redirect_uri must match the one registered for the app exactly (scheme, host, port, path, trailing slash): run login again")]
    BadCode(String),
    #[error("no code in the redirect {0:?}: paste the full URL the browser landed on")]
    NoCode(String),
    #[error("no redirect arrived within {0:?}; if this machine has no browser, use --paste")]
    Timeout(Duration),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What a login found, for the user.
#[derive(Debug, Default)]
pub struct Report {
    pub member: String,
    pub member_urn: String,
    pub lines: Vec<String>,
    /// Problems that keep the account from posting (missing scope or page role).
    pub problems: Vec<String>,
    /// What the account cannot post although it can post (a page role without videos).
    pub warnings: Vec<String>,
}

/// What the page roles allow, for each page that posts via a member.
#[derive(Debug, Default)]
pub struct RoleCheck {
    /// Pages the member cannot post for at all.
    pub problems: Vec<String>,
    /// Pages the member can post for, but not videos.
    pub warnings: Vec<String>,
}

/// The member account whose token `account` uses (itself, or an organization's `via`).
pub fn member_of(config: &Config, account: &str) -> Result<String, LoginError> {
    let a = config.account(account).ok_or_else(|| {
        LoginError::Setup(format!(
            "no account {account:?} in the config (known: {})",
            config
                .accounts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    Ok(a.token_account().to_string())
}

pub fn redirect_uri(config: &Config) -> Result<String, LoginError> {
    match (&config.linkedin.redirect_uri, config.linkedin.mode) {
        (Some(r), _) => Ok(r.clone()),
        (None, Mode::Sandbox) => Ok("http://127.0.0.1:8765/callback".into()),
        (None, Mode::Live) => Err(LoginError::Setup(
            "linkedin.redirect_uri is not set: register e.g. http://127.0.0.1:8765/callback for your app and put it in the config".into(),
        )),
    }
}

/// The authorization URL and the `state` it carries.
pub fn authorization_url(
    config: &Config,
    client: &Client,
    member: &str,
) -> Result<(String, String), LoginError> {
    let (client_id, _) = app_credentials(config)?;
    let redirect = redirect_uri(config)?;
    let state = random_state();
    let scope = scopes_for(config, member).join(" ");
    let url = format!(
        "{}/authorization?response_type=code&client_id={}&redirect_uri={}&state={}&scope={}",
        client.oauth_base(),
        urlencode(&client_id),
        urlencode(&redirect),
        urlencode(&state),
        urlencode(&scope)
    );
    Ok((url, state))
}

/// A fresh random `state` for one login (CSRF protection).
fn random_state() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// Waits for the browser's redirect on the loopback `redirect_uri`; returns its query.
pub async fn listen_for_redirect(
    redirect: &str,
    timeout: Duration,
    ready: impl FnOnce(),
) -> Result<HashMap<String, String>, LoginError> {
    let url = url::Url::parse(redirect)
        .map_err(|e| LoginError::Setup(format!("redirect_uri {redirect:?}: {e}")))?;
    if url.scheme() != "http" || !crate::config::is_loopback_url(&url) {
        return Err(LoginError::Setup(format!(
            "redirect_uri {redirect:?} is not a loopback http:// address lipost can listen on; use --paste"
        )));
    }
    let port = url.port().unwrap_or(80);
    let bind: std::net::IpAddr = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.into(),
        Some(url::Host::Ipv6(ip)) => ip.into(),
        // `localhost`: the address browsers try first.
        _ => std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let listener = tokio::net::TcpListener::bind((bind, port))
        .await
        .map_err(|e| LoginError::Setup(format!("cannot listen on {redirect}: {e}")))?;
    let (tx, mut rx) = mpsc::channel::<HashMap<String, String>>(1);
    let app = axum::Router::new().route(
        url.path(),
        axum::routing::get(move |axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(q).await;
                axum::response::Html("<h1>lipost</h1><p>Done. You can close this window and return to the terminal.</p>")
            }
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ready();
    let got = tokio::time::timeout(timeout, rx.recv()).await;
    // Give the page a moment to reach the browser before the server goes away.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.abort();
    got.map_err(|_| LoginError::Timeout(timeout))?
        .ok_or(LoginError::Timeout(timeout))
}

/// The query of a pasted redirect URL.
pub fn parse_pasted(line: &str) -> Result<HashMap<String, String>, LoginError> {
    let url =
        url::Url::parse(line.trim()).map_err(|_| LoginError::NoCode(line.trim().to_string()))?;
    Ok(url.query_pairs().into_owned().collect())
}

/// Checks the redirect's parameters, exchanges the code, stores the tokens.
pub async fn finish(
    config: &Config,
    client: &Client,
    store: &mut Store,
    member: &str,
    sent_state: &str,
    params: &HashMap<String, String>,
) -> Result<Report, LoginError> {
    if let Some(err) = params.get("error") {
        let desc = params.get("error_description").cloned().unwrap_or_default();
        return Err(LoginError::Declined(format!("{err}: {desc}")));
    }
    if params.get("state").map(String::as_str) != Some(sent_state) {
        return Err(LoginError::StateMismatch);
    }
    let code = params
        .get("code")
        .ok_or_else(|| LoginError::NoCode(format!("{params:?}")))?;
    let (client_id, secret) = app_credentials(config)?;
    let redirect = redirect_uri(config)?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.expose()),
        ("redirect_uri", redirect.as_str()),
    ];
    // By the error's code first: LinkedIn answers a used or expired code, or a redirect_uri
    // that does not match, with 400 or 401 and `invalid_request`.
    let resp = client.token(&form).await.map_err(|e| match &e {
        ApiError::Status { code: Some(c), .. } if c == "invalid_client" => {
            LoginError::BadClient(e.to_string())
        }
        ApiError::Status {
            status: 400 | 401,
            code: Some(c),
            ..
        } if c == "invalid_request" || c == "invalid_grant" => LoginError::BadCode(e.to_string()),
        ApiError::Status { status: 401, .. } => LoginError::BadClient(e.to_string()),
        ApiError::Status { status: 400, .. } => LoginError::BadCode(e.to_string()),
        _ => LoginError::Api(e),
    })?;
    store_token(config, client, store, member, resp, TokenSource::Login).await
}

/// Stores a token set and checks what the account needs: scopes and page roles.
pub async fn store_token(
    config: &Config,
    client: &Client,
    store: &mut Store,
    member: &str,
    resp: TokenResponse,
    source: TokenSource,
) -> Result<Report, LoginError> {
    let token = token_from_response(client, member, resp, source).await?;
    store.save_token(&token, &config.served_by(member))?;
    let _ = crate::store::poke(&config.database);
    let stored = store.token(member)?.expect("just saved");
    let mut report = Report {
        member: member.to_string(),
        member_urn: stored.member_urn.clone(),
        ..Report::default()
    };
    // Rounded: a token for 5 days, read a moment later, is still "5 days", not 4.
    let days = ((stored.access_expires_at - Utc::now()).num_seconds() + 43_200) / 86_400;
    report.lines.push(format!(
        "logged in account {member} as {} (access token valid {days} days)",
        stored.member_urn
    ));
    match (&stored.refresh_token, stored.refresh_expires_at) {
        (Some(_), Some(exp)) => report.lines.push(format!(
            "refresh token until {}: lipost renews the access token by itself",
            exp.format("%Y-%m-%d")
        )),
        _ => report.lines.push(
            "no refresh token (self-serve apps get none): lipost warns 14, 7, 3 and 1 days before the access token expires".into(),
        ),
    }
    report.problems.extend(missing_scopes(config, &stored));
    let roles = check_roles(config, client, &stored).await;
    report.problems.extend(roles.problems);
    report.warnings.extend(roles.warnings);
    Ok(report)
}

/// Scopes the account's kinds need that the token lacks, each with what to do.
pub fn missing_scopes(config: &Config, token: &Token) -> Vec<String> {
    scopes_for(config, &token.account)
        .into_iter()
        .filter(|s| !token.has_scope(s))
        .map(|s| {
            let product = match s {
                "w_member_social" => "add the \"Share on LinkedIn\" product to your app",
                "openid" | "profile" => "add the \"Sign In with LinkedIn using OpenID Connect\" product to your app",
                _ => "your app needs the Community Management API (Marketing Developer Platform) for page posting",
            };
            format!("account {}: scope {s} was not granted: {product}, then log in again", token.account)
        })
        .collect()
}

/// For each page that posts via this member: does the member hold a posting role, and one
/// that may post videos?
pub async fn check_roles(config: &Config, client: &Client, token: &Token) -> RoleCheck {
    let pages = pages_via(config, &token.account);
    let mut check = RoleCheck::default();
    if pages.is_empty() {
        return check;
    }
    let acls = match client.organization_acls(&token.access_token).await {
        Ok(a) => a,
        Err(e) => {
            let why = match &e {
                ApiError::Status { status: 426, .. } => {
                    "LinkedIn no longer serves linkedin.version: set a recent one"
                }
                ApiError::Status {
                    status: 401 | 403, ..
                } => "the r_organization_admin scope is needed for the check",
                _ => "try again, or check the API's reachability above",
            };
            check.problems.push(format!(
                "account {}: cannot read page roles ({e}); {why}",
                token.account
            ));
            return check;
        }
    };
    for org in pages {
        let held: Vec<&str> = acls
            .iter()
            .filter(|a| a.organization == org && a.state == "APPROVED")
            .map(|a| a.role.as_str())
            .collect();
        let has = if held.is_empty() {
            "no role".to_string()
        } else {
            held.join(", ")
        };
        let grant = "a page admin grants it under Admin tools → Manage admins";
        if !held.iter().any(|r| POSTING_ROLES.contains(r)) {
            check.problems.push(format!(
                "page {org}: member {} holds {has}; posting needs one of {} ({grant})",
                token.member_urn,
                POSTING_ROLES.join(", ")
            ));
        } else if !held.iter().any(|r| VIDEO_ROLES.contains(r)) {
            check.warnings.push(format!(
                "page {org}: member {} holds {has}, enough for text, images and documents; videos for the page need one of {} ({grant})",
                token.member_urn,
                VIDEO_ROLES.join(", ")
            ));
        }
    }
    check
}
