//! Accounts' tokens: which access token a post goes out with, keeping it alive, and saying
//! early and clearly when a person must log in again.
//!
//! Tokens live in the store (`tokens`). Where a refresh token exists, the access token is
//! refreshed before its last `refresh_before`, and once on a 401. A refresh that fails for a
//! transient reason (5xx, timeout, connection) is retried with backoff and never marks the
//! account dead; only a refusal from the token endpoint marks it `needs_reauth`. In sandbox
//! mode an account without any token gets one minted by the sandbox, no browser needed.
//! Without a refresh token, a first 401 is retried shortly (LinkedIn's brand-new-token blip);
//! only a second 401 for the same token marks the account.
//! Credentials are cached for sending, and the cache is dropped when another process pokes
//! the wake file (`auth login`, `auth import`), so a new token is used at once; a 401 for a
//! token the store has since replaced retries with the stored one and marks nothing.
//! Tokens travel as [`Secret`] and are never logged.

pub mod login;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Duration, Utc};
use tokio::sync::{Mutex, Notify};
use tracing::{info, warn};

use crate::config::{AccountKind, Config, Live, Mode};
use crate::linkedin::wire::{SandboxTokenRequest, TokenResponse};
use crate::linkedin::{ApiError, Client};
use crate::notify::{Event, Kind};
use crate::secret::{self, Secret};
use crate::store::{Handle, StoreError, Token, TokenSource};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint or API could not be reached or answered 5xx: try again later.
    #[error("cannot get a token for {account}: {source}")]
    Unavailable { account: String, source: ApiError },
    /// A person must act (log in).
    #[error(
        "account {account} needs a new login: {why}; run `lipost auth login --account {account}`"
    )]
    NeedsLogin { account: String, why: String },
    #[error("{0}")]
    Setup(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Setup(e.to_string())
    }
}

/// An access token and the member it belongs to.
#[derive(Debug, Clone)]
pub struct Credential {
    pub token: Secret,
    pub person_urn: String,
}

/// The scopes a member account needs: its own posting, plus page posting, role checks and
/// reading page posts (for in-doubt lookups) where an organization account goes via it.
pub fn scopes_for(config: &Config, member: &str) -> Vec<&'static str> {
    let mut s = vec!["openid", "profile", "w_member_social"];
    if !pages_via(config, member).is_empty() {
        s.extend([
            "w_organization_social",
            "r_organization_admin",
            "r_organization_social",
        ]);
    }
    s
}

/// The organization URNs that post with this member's token.
pub fn pages_via(config: &Config, member: &str) -> Vec<String> {
    config
        .accounts
        .values()
        .filter_map(|a| match &a.kind {
            AccountKind::Organization { organization, via } if via == member => {
                Some(organization.clone())
            }
            _ => None,
        })
        .collect()
}

/// The app's client id and secret. The sandbox's app is `sandbox-client` / `sandbox-secret`
/// unless the config says otherwise.
pub fn app_credentials(config: &Config) -> Result<(String, Secret), AuthError> {
    let sandbox = config.linkedin.mode == Mode::Sandbox;
    let id = match (&config.linkedin.client_id, sandbox) {
        (Some(id), _) => id.clone(),
        (None, true) => "sandbox-client".into(),
        (None, false) => {
            return Err(AuthError::Setup(
                "linkedin.client_id is not set in the config".into(),
            ))
        }
    };
    let secret = match (
        secret::client_secret(&config.linkedin).map_err(AuthError::Setup)?,
        sandbox,
    ) {
        (Some(s), _) => s,
        (None, true) => Secret::new("sandbox-secret"),
        (None, false) => {
            return Err(AuthError::Setup(format!(
                "no client secret: set {} or linkedin.client_secret_file",
                secret::CLIENT_SECRET_ENV
            )))
        }
    };
    Ok((id, secret))
}

/// Is this an answer of the token endpoint that means "this grant is dead"?
fn refused(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { status: 400 | 401, code: Some(c), .. } if c == "invalid_grant" || c == "invalid_request")
}

fn transient(e: &ApiError) -> bool {
    match e {
        ApiError::Status { status, .. } => *status >= 500 || *status == 429,
        ApiError::NotSent { .. } | ApiError::NoAnswer { .. } => true,
        ApiError::CreatedWithoutUrn { .. } => false,
    }
}

pub struct Tokens {
    config: Live,
    client: Client,
    store: Handle,
    /// One refresh or mint at a time per process.
    busy: Mutex<()>,
    /// Credentials that need no refresh yet: sending does not wait for the store.
    cache: std::sync::Mutex<HashMap<String, (Credential, DateTime<Utc>)>>,
    /// Woken when a token changes, so the keeper re-plans.
    changed: Arc<Notify>,
    /// Per member, a token without a refresh token that got one 401, and when: a second 401
    /// for the same token within [`SECOND_401_WITHIN`] marks the account; the first may be
    /// LinkedIn's brand-new-token blip.
    refused_once: std::sync::Mutex<HashMap<String, (Secret, std::time::Instant)>>,
}

/// How long to wait before trying again a token without a refresh token that LinkedIn
/// refused once (401): a brand-new token is sometimes refused for a moment (65601).
pub const FIRST_401_RETRY: StdDuration = StdDuration::from_secs(3);

/// A 401 counts as the second for a token only this soon after the first; a token refused
/// once long ago and used since is given the benefit of the doubt again.
const SECOND_401_WITHIN: StdDuration = StdDuration::from_secs(3600);

impl Tokens {
    pub fn new(config: Live, client: Client, store: Handle) -> Tokens {
        Tokens {
            config,
            client,
            store,
            busy: Mutex::new(()),
            cache: std::sync::Mutex::new(HashMap::new()),
            changed: Arc::new(Notify::new()),
            refused_once: std::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn load(&self, member: &str) -> Result<Option<Token>, AuthError> {
        let m = member.to_string();
        Ok(self.store.call(move |s| s.token(&m)).await?)
    }

    /// The credential a post of `member` goes out with.
    pub async fn get(&self, member: &str) -> Result<Credential, AuthError> {
        if let Some(c) = self.cached(member) {
            return Ok(c);
        }
        let (cred, fresh_until) = self.get_slow(member).await?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(member.to_string(), (cred.clone(), fresh_until));
        Ok(cred)
    }

    /// A credential that needs no refresh yet, without touching the store.
    fn cached(&self, member: &str) -> Option<Credential> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (c, fresh_until) = cache.get(member)?;
        (*fresh_until > Utc::now()).then(|| c.clone())
    }

    /// Drops every cached credential: another process (`lipost auth login`, `import`) may
    /// have stored a new token, and the next send must read it.
    fn forget_all(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn forget(&self, member: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(member);
    }

    /// How long before its expiry `token` is renewed: `refresh_before` (a little early even
    /// when that is short: a request takes time), but never more than half the lifetime
    /// LinkedIn gave the token. A token issued for less than `refresh_before` would otherwise
    /// be due again the moment it arrived, and refreshed again and again.
    fn margin(&self, token: &Token) -> Duration {
        let configured = Duration::from_std(self.config.get().linkedin.refresh_before)
            .unwrap_or_default()
            .max(Duration::seconds(60));
        let lifetime = token.access_expires_at - token.updated_at;
        configured.min(lifetime / 2).max(Duration::zero())
    }

    async fn get_slow(&self, member: &str) -> Result<(Credential, DateTime<Utc>), AuthError> {
        let _one = self.busy.lock().await;
        let now = Utc::now();
        let token = match self.load(member).await? {
            None if self.config.get().linkedin.mode == Mode::Sandbox => {
                self.sandbox_mint(member).await?
            }
            None => {
                return Err(AuthError::NeedsLogin {
                    account: member.into(),
                    why: "no token stored".into(),
                })
            }
            Some(t) => t,
        };
        if let Some(why) = &token.needs_reauth {
            return Err(AuthError::NeedsLogin {
                account: member.into(),
                why: why.clone(),
            });
        }
        // Too close to its expiry to send with: the request could arrive after it.
        let spent = token.access_expires_at <= now + Duration::seconds(5);
        let token = if (spent || token.access_expires_at <= now + self.margin(&token))
            && token.usable_refresh(now).is_some()
        {
            match self.refresh(&token).await {
                Ok(t) => t,
                // Still valid: use it, refresh again later.
                Err(AuthError::Unavailable { .. }) if !spent => token,
                Err(e) => return Err(e),
            }
        } else if spent {
            self.lapsed(member, &token).await?
        } else {
            token
        };
        let fresh_until = token.access_expires_at - self.margin(&token);
        Ok((
            Credential {
                token: token.access_token,
                person_urn: token.member_urn,
            },
            fresh_until,
        ))
    }

    /// An access token past its expiry with no refresh token: re-mint in the sandbox,
    /// otherwise a person must log in.
    async fn lapsed(&self, member: &str, token: &Token) -> Result<Token, AuthError> {
        if token.source == TokenSource::Sandbox {
            return self.sandbox_mint(member).await;
        }
        let why = format!(
            "the access token expired at {}",
            token.access_expires_at.to_rfc3339()
        );
        self.needs_reauth(member, &why).await?;
        Err(AuthError::NeedsLogin {
            account: member.into(),
            why,
        })
    }

    /// LinkedIn answered 401 to `used`, this member's token: refresh it once (or re-mint in
    /// the sandbox). Without a way to renew it, the first 401 for a token is taken for
    /// LinkedIn's brand-new-token blip and retried after [`FIRST_401_RETRY`]; only a second
    /// 401 for the same token means the account needs a new login. If the store already holds
    /// another token (a login since, or a refresh by another send), the retry goes out with
    /// that one and nothing is marked. `Ok` is how long to wait before the retry.
    pub async fn unauthorized(
        &self,
        member: &str,
        used: &Secret,
    ) -> Result<StdDuration, AuthError> {
        self.forget(member);
        let _one = self.busy.lock().await;
        let Some(token) = self.load(member).await? else {
            return Ok(StdDuration::ZERO);
        };
        if token.access_token.expose() != used.expose() {
            info!(account = %member, "401 for a token that has since been replaced; retrying with the stored one");
            return Ok(StdDuration::ZERO);
        }
        if token.source == TokenSource::Sandbox {
            self.sandbox_mint(member).await?;
            return Ok(StdDuration::ZERO);
        }
        if token.usable_refresh(Utc::now()).is_some() {
            self.refresh(&token).await?;
            return Ok(StdDuration::ZERO);
        }
        let first = {
            let mut once = self.refused_once.lock().unwrap_or_else(|p| p.into_inner());
            match once.get(member) {
                Some((t, at))
                    if t.expose() == used.expose() && at.elapsed() < SECOND_401_WITHIN =>
                {
                    once.remove(member);
                    false
                }
                _ => {
                    once.insert(
                        member.to_string(),
                        (used.clone(), std::time::Instant::now()),
                    );
                    true
                }
            }
        };
        if first {
            info!(account = %member, retry_in = ?FIRST_401_RETRY, "LinkedIn refused the access token (401) once; a new token is sometimes refused for a moment, so it is tried once more before the account is marked");
            return Ok(FIRST_401_RETRY);
        }
        let why = "LinkedIn refused the access token twice (401) and there is no refresh token"
            .to_string();
        self.needs_reauth(member, &why).await?;
        Err(AuthError::NeedsLogin {
            account: member.into(),
            why,
        })
    }

    async fn needs_reauth(&self, member: &str, why: &str) -> Result<(), AuthError> {
        self.forget(member);
        warn!(account = %member, reason = %why, "account needs a new login; its posts are held until then");
        let (m, w) = (member.to_string(), why.to_string());
        self.store
            .call(move |s| s.mark_needs_reauth(&m, &w, Utc::now()))
            .await?;
        self.changed.notify_one();
        Ok(())
    }

    /// Refreshes with the refresh token, one node at a time (PostgreSQL): a node that waited
    /// for another's refresh takes the stored result instead of refreshing again.
    async fn refresh(&self, token: &Token) -> Result<Token, AuthError> {
        let member = token.account.clone();
        let fresher = |stored: Option<Token>| {
            stored.filter(|t| {
                t.access_expires_at > token.access_expires_at && t.needs_reauth.is_none()
            })
        };
        loop {
            let m = member.clone();
            if self.store.call(move |s| s.lock_refresh(&m)).await? {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(200)).await;
            let m = member.clone();
            if let Some(t) = fresher(self.store.call(move |s| s.token(&m)).await?) {
                return Ok(t);
            }
        }
        let m = member.clone();
        let r = match fresher(self.store.call(move |s| s.token(&m)).await?) {
            Some(t) => Ok(t),
            None => self.refresh_now(token).await,
        };
        let m = member.clone();
        if let Err(e) = self.store.call(move |s| s.unlock_refresh(&m)).await {
            warn!(account = %member, error = %e, "cannot release the token refresh lock; it is released when this daemon's connection ends");
        }
        r
    }

    /// Refreshes with the refresh token, retrying transient failures with backoff.
    async fn refresh_now(&self, token: &Token) -> Result<Token, AuthError> {
        let member = token.account.clone();
        let rt =
            token
                .usable_refresh(Utc::now())
                .cloned()
                .ok_or_else(|| AuthError::NeedsLogin {
                    account: member.clone(),
                    why: "the refresh token expired".into(),
                })?;
        let (client_id, secret) = app_credentials(&self.config.get())?;
        let call = || async {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.expose()),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.expose()),
            ];
            self.client.token(&form).await
        };
        let answer = call
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(StdDuration::from_millis(500))
                    .with_max_delay(StdDuration::from_secs(10))
                    .with_jitter()
                    .with_max_times(4),
            )
            .when(transient)
            .notify(|e, wait| warn!(account = %member, error = %e, retry_in = ?wait, "token refresh failed; retrying"))
            .await;
        match answer {
            Ok(resp) => {
                let now = Utc::now();
                let expires = now + lifetime(resp.expires_in);
                let access = resp.access_token;
                let (m, a) = (member.clone(), access.clone());
                self.store
                    .call(move |s| s.refreshed(&m, &a, expires, now))
                    .await?;
                info!(account = %member, expires_at = %expires, "access token refreshed");
                self.changed.notify_one();
                let mut t = token.clone();
                t.access_token = access;
                t.access_expires_at = expires;
                t.updated_at = now;
                Ok(t)
            }
            Err(e) if refused(&e) => {
                let why = format!("LinkedIn refused the refresh token ({e})");
                self.needs_reauth(&member, &why).await?;
                Err(AuthError::NeedsLogin {
                    account: member,
                    why,
                })
            }
            Err(e) => Err(AuthError::Unavailable {
                account: member,
                source: e,
            }),
        }
    }

    /// Sandbox only: a token minted without a browser, stored like any other.
    async fn sandbox_mint(&self, member: &str) -> Result<Token, AuthError> {
        let unavailable = |source| AuthError::Unavailable {
            account: member.to_string(),
            source,
        };
        let req = SandboxTokenRequest {
            member: member.to_string(),
            scope: scopes_for(&self.config.get(), member).join(" "),
            organizations: pages_via(&self.config.get(), member),
        };
        let t = self.client.sandbox_token(&req).await.map_err(unavailable)?;
        let token = token_from_response(&self.client, member, t, TokenSource::Sandbox)
            .await
            .map_err(unavailable)?;
        let saved = token.clone();
        let served = self.config.get().served_by(member);
        self.store
            .call(move |s| s.save_token(&saved, &served))
            .await?;
        info!(account = %member, member = %token.member_urn, "sandbox token issued");
        Ok(token)
    }

    /// Expiry warnings and proactive refreshes, until the process ends. Warns at WARN level
    /// when an access token that cannot be refreshed enters its last 14, 7, 3 and 1 days,
    /// and likewise for refresh tokens (365 days from the first consent). `wake` is told
    /// when another process poked the wake file (a login or import stores tokens that way)
    /// or the config was reloaded: cached credentials are dropped then.
    pub async fn keep_alive(self: Arc<Self>, wake: Arc<Notify>) {
        let mut warned: HashMap<(String, &'static str), i64> = HashMap::new();
        loop {
            let next = match self.store.call(|s| s.tokens()).await {
                Ok(tokens) => self.check_all(tokens, &mut warned).await,
                Err(e) => {
                    warn!(error = %e, "cannot read tokens");
                    Utc::now() + Duration::minutes(5)
                }
            };
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => self.forget_all(),
                _ = self.changed.notified() => {}
            }
        }
    }

    /// Checks every token once; returns when to look again.
    async fn check_all(
        &self,
        tokens: Vec<Token>,
        warned: &mut HashMap<(String, &'static str), i64>,
    ) -> DateTime<Utc> {
        let now = Utc::now();
        let mut next = now + Duration::hours(1);
        let mut warnings = Vec::new();
        for t in tokens {
            if t.needs_reauth.is_some() || t.source == TokenSource::Sandbox {
                continue;
            }
            if t.usable_refresh(now).is_some() {
                // Never sooner than 10 s after the last new token: one LinkedIn issued with no
                // life to speak of must not make this loop a storm on the token endpoint.
                let due = (t.access_expires_at - self.margin(&t))
                    .max(t.updated_at + Duration::seconds(10));
                if due <= now {
                    if let Err(e) = self.get(&t.account).await {
                        warn!(account = %t.account, error = %e, "proactive token refresh failed");
                        next = next.min(now + Duration::minutes(1));
                    }
                } else {
                    next = next.min(due);
                }
                if let Some(exp) = t.refresh_expires_at {
                    warnings.extend(warn_expiry(&t.account, "refresh token", exp, now, warned));
                }
            } else {
                warnings.extend(warn_expiry(
                    &t.account,
                    "access token",
                    t.access_expires_at,
                    now,
                    warned,
                ));
                if t.access_expires_at > now {
                    next = next.min(t.access_expires_at);
                }
            }
        }
        if !warnings.is_empty() {
            if let Err(e) = self
                .store
                .call(move |s| s.record_token_warnings(&warnings, now))
                .await
            {
                warn!(error = %e, "cannot record token expiry notifications");
            }
        }
        next
    }
}

const WARN_DAYS: [i64; 4] = [14, 7, 3, 1];

/// The longest token lifetime lipost believes. LinkedIn's longest is 365 days (refresh
/// tokens); an answer beyond this is absurd, and believing it would only delay a refresh, so
/// it is clamped (and `Duration::seconds` would panic on a huge one).
pub const MAX_TOKEN_LIFETIME_DAYS: i64 = 400;

/// A token endpoint's `expires_in` (seconds) → a lifetime in `0..=MAX_TOKEN_LIFETIME_DAYS`.
/// Negative counts as already expired.
fn lifetime(secs: i64) -> Duration {
    Duration::seconds(secs.clamp(0, MAX_TOKEN_LIFETIME_DAYS * 86_400))
}

/// Warns once per threshold crossed (14, 7, 3, 1 days before `expires`); the warning as a
/// `token_expiring` event (the store drops one it already recorded before a restart).
fn warn_expiry(
    account: &str,
    what: &'static str,
    expires: DateTime<Utc>,
    now: DateTime<Utc>,
    warned: &mut HashMap<(String, &'static str), i64>,
) -> Option<Event> {
    let left = expires - now;
    let threshold = WARN_DAYS
        .iter()
        .rev()
        .copied()
        .find(|d| left <= Duration::days(*d))?;
    let key = (account.to_string(), what);
    if warned.get(&key).is_some_and(|w| *w <= threshold) {
        return None;
    }
    warned.insert(key, threshold);
    let (text, mark) = if left <= Duration::zero() {
        let text = format!("the {what} of account {account} has expired: run `lipost auth login --account {account}`; its posts are held until then");
        warn!(account = %account, expires_at = %expires, "{text}");
        (text, 0)
    } else {
        let days = (left.num_hours() as f64 / 24.0).ceil() as i64;
        let text = format!("the {what} of account {account} expires in {days} days and lipost cannot renew it: run `lipost auth login --account {account}` before then");
        warn!(account = %account, expires_at = %expires, days_left = days, "{text}");
        (text, threshold)
    };
    let mut e = Event::new(Kind::TokenExpiring, text);
    e.account = Some(account.to_string());
    e.reason = Some(what.replace(' ', "_"));
    e.expires_at = Some(expires);
    e.days_left = Some(mark);
    Some(e)
}

/// A token response plus userinfo → a stored [`Token`].
pub async fn token_from_response(
    client: &Client,
    member: &str,
    t: TokenResponse,
    source: TokenSource,
) -> Result<Token, ApiError> {
    let now = Utc::now();
    let access = t.access_token;
    // The notes: a brand-new token can briefly be answered 401. Refused for good, the token
    // would be lost with it (a code is single-use), so it is asked once more.
    let who = match client.userinfo(&access).await {
        Err(ApiError::Status { status: 401, .. }) => {
            info!(account = %member, retry_in = ?FIRST_401_RETRY, "LinkedIn refused the new access token (401) on userinfo; a new token is sometimes refused for a moment, so it is asked once more");
            tokio::time::sleep(FIRST_401_RETRY).await;
            client.userinfo(&access).await?
        }
        r => r?,
    };
    Ok(Token {
        account: member.to_string(),
        member_urn: format!("urn:li:person:{}", who.sub),
        access_token: access,
        access_expires_at: now + lifetime(t.expires_in),
        refresh_expires_at: t
            .refresh_token
            .as_ref()
            .map(|_| now + lifetime(t.refresh_token_expires_in.unwrap_or(365 * 86_400))),
        refresh_token: t.refresh_token,
        scopes: t
            .scope
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        source,
        needs_reauth: None,
        updated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_token_lifetimes_are_clamped_not_a_panic() {
        let max = Duration::days(MAX_TOKEN_LIFETIME_DAYS);
        assert_eq!(lifetime(i64::MAX), max);
        assert_eq!(lifetime(i64::MAX / 1000 + 1), max);
        assert_eq!(lifetime(i64::MIN), Duration::zero());
        assert_eq!(lifetime(-5), Duration::zero());
        assert_eq!(lifetime(5_184_000), Duration::days(60));
        // Adding the clamped lifetime to now cannot overflow either.
        let _ = Utc::now() + lifetime(i64::MAX);
    }
}
