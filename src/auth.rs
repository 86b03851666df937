//! Accounts' tokens: which access token a post goes out with, and who it belongs to.
//!
//! In sandbox mode tokens are minted from the sandbox (`/_sandbox/token`) without a browser;
//! the member's URN always comes from OpenID userinfo, as in live mode. Owns the in-memory
//! token cache; never writes posts, never logs a token (they travel as [`Secret`]).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Mutex;
use tracing::info;

use crate::config::{AccountKind, Config, Mode};
use crate::linkedin::wire::SandboxTokenRequest;
use crate::linkedin::{ApiError, Client};
use crate::secret::Secret;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token source could not be reached or answered 5xx: try again later.
    #[error("cannot get a token for {account}: {source}")]
    Unavailable { account: String, source: ApiError },
    /// A person must act (log in).
    #[error("account {account} has no usable token: {why}")]
    NeedsLogin { account: String, why: String },
}

/// An access token and the member it belongs to.
#[derive(Debug, Clone)]
pub struct Credential {
    pub token: Secret,
    pub person_urn: String,
    pub expires_at: DateTime<Utc>,
}

/// The scopes a member account needs: its own posting, plus page posting, role checks and
/// reading page posts (for in-doubt lookups) where an organization account goes via it.
pub fn scopes_for(config: &Config, member: &str) -> Vec<&'static str> {
    let mut s = vec!["openid", "profile", "w_member_social"];
    let has_pages = config
        .accounts
        .values()
        .any(|a| matches!(&a.kind, AccountKind::Organization { via, .. } if via == member));
    if has_pages {
        s.extend([
            "w_organization_social",
            "r_organization_admin",
            "r_organization_social",
        ]);
    }
    s
}

pub struct Tokens {
    config: Arc<Config>,
    client: Client,
    cache: Mutex<HashMap<String, Credential>>,
}

impl Tokens {
    pub fn new(config: Arc<Config>, client: Client) -> Tokens {
        Tokens {
            config,
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The credential for a member account, acquiring one if needed.
    pub async fn get(&self, member: &str) -> Result<Credential, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(member) {
            if c.expires_at > Utc::now() + Duration::seconds(60) {
                return Ok(c.clone());
            }
        }
        let c = self.acquire(member).await?;
        cache.insert(member.to_string(), c.clone());
        Ok(c)
    }

    /// Forgets a token LinkedIn refused (401), so the next `get` acquires a fresh one.
    pub async fn invalidate(&self, member: &str) {
        self.cache.lock().await.remove(member);
    }

    async fn acquire(&self, member: &str) -> Result<Credential, AuthError> {
        match self.config.linkedin.mode {
            Mode::Sandbox => self.sandbox_login(member).await,
            Mode::Live => Err(AuthError::NeedsLogin {
                account: member.to_string(),
                why: format!(
                    "live tokens are not stored yet; run `lipost auth login --account {member}`"
                ),
            }),
        }
    }

    async fn sandbox_login(&self, member: &str) -> Result<Credential, AuthError> {
        let unavailable = |source| AuthError::Unavailable {
            account: member.to_string(),
            source,
        };
        let organizations = self
            .config
            .accounts
            .values()
            .filter_map(|a| match &a.kind {
                AccountKind::Organization { organization, via } if via == member => {
                    Some(organization.clone())
                }
                _ => None,
            })
            .collect();
        let req = SandboxTokenRequest {
            member: member.to_string(),
            scope: scopes_for(&self.config, member).join(" "),
            organizations,
        };
        let t = self.client.sandbox_token(&req).await.map_err(unavailable)?;
        let token = Secret::new(t.access_token);
        let who = self.client.userinfo(&token).await.map_err(unavailable)?;
        let person_urn = format!("urn:li:person:{}", who.sub);
        info!(account = %member, member = %person_urn, "sandbox token issued");
        Ok(Credential {
            token,
            person_urn,
            expires_at: Utc::now() + Duration::seconds(t.expires_in),
        })
    }
}
