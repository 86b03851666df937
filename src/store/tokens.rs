//! The `tokens` table: one OAuth token set per member account.

use super::db::{params, Optional, Row};
use chrono::{DateTime, Utc};

use super::{opt_ts, parse_ts, ts, Result, Store};
use crate::secret::Secret;

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `lipost auth login`: the authorization-code flow.
    Login,
    /// `lipost auth import`: e.g. LinkedIn's token generator.
    Import,
    /// Minted by the sandbox without a browser; re-minted when it lapses.
    Sandbox,
}

impl TokenSource {
    fn as_str(self) -> &'static str {
        match self {
            TokenSource::Login => "login",
            TokenSource::Import => "import",
            TokenSource::Sandbox => "sandbox",
        }
    }

    fn parse(s: &str) -> TokenSource {
        match s {
            "login" => TokenSource::Login,
            "import" => TokenSource::Import,
            _ => TokenSource::Sandbox,
        }
    }
}

/// A member account's tokens.
#[derive(Debug, Clone)]
pub struct Token {
    pub account: String,
    pub member_urn: String,
    pub access_token: Secret,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: Option<Secret>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    pub source: TokenSource,
    /// `Some(reason)` when a person must log in again.
    pub needs_reauth: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl Token {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// A refresh token that has not expired.
    pub fn usable_refresh(&self, now: DateTime<Utc>) -> Option<&Secret> {
        let rt = self.refresh_token.as_ref()?;
        self.refresh_expires_at
            .is_none_or(|e| e > now)
            .then_some(rt)
    }
}

const COLUMNS: &str = "account, member_urn, access_token, access_expires_at, refresh_token, \
    refresh_expires_at, scopes, source, status, status_reason, updated_at";

fn token_from_row(r: &Row<'_>) -> Result<Token> {
    let status: String = r.get(8)?;
    let reason: Option<String> = r.get(9)?;
    Ok(Token {
        account: r.get(0)?,
        member_urn: r.get(1)?,
        access_token: Secret::new(r.get::<_, String>(2)?),
        access_expires_at: parse_ts("tokens", "access_expires_at", &r.get::<_, String>(3)?)?,
        refresh_token: r.get::<_, Option<String>>(4)?.map(Secret::new),
        refresh_expires_at: opt_ts("tokens", "refresh_expires_at", r.get(5)?)?,
        scopes: r
            .get::<_, String>(6)?
            .split_whitespace()
            .map(String::from)
            .collect(),
        source: TokenSource::parse(&r.get::<_, String>(7)?),
        needs_reauth: (status == "needs_reauth").then(|| reason.unwrap_or_default()),
        updated_at: parse_ts("tokens", "updated_at", &r.get::<_, String>(10)?)?,
    })
}

impl Store {
    /// Stores a fresh token set. A response without a refresh token keeps the stored one
    /// (and its expiry) when it is the same member: re-login must not wipe it. `served` are
    /// the accounts posting with this token, whose posts held for a login are released.
    pub fn save_token(&mut self, t: &Token, served: &[String]) -> Result<()> {
        // One write transaction with its lift: a look that saw the old token either ran
        // before it, and its hold is lifted here, or runs after it and sees the new token.
        let tx = self.db.write()?;
        tx.execute(
            "INSERT INTO tokens (account, member_urn, access_token, access_expires_at, refresh_token, \
             refresh_expires_at, scopes, source, status, status_reason, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'ok', NULL, ?9) \
             ON CONFLICT (account) DO UPDATE SET \
               refresh_token = CASE WHEN excluded.refresh_token IS NULL AND tokens.member_urn = excluded.member_urn \
                 THEN tokens.refresh_token ELSE excluded.refresh_token END, \
               refresh_expires_at = CASE WHEN excluded.refresh_token IS NULL AND tokens.member_urn = excluded.member_urn \
                 THEN tokens.refresh_expires_at ELSE excluded.refresh_expires_at END, \
               member_urn = excluded.member_urn, access_token = excluded.access_token, \
               access_expires_at = excluded.access_expires_at, scopes = excluded.scopes, \
               source = excluded.source, status = 'ok', status_reason = NULL, updated_at = excluded.updated_at",
            params![
                t.account,
                t.member_urn,
                t.access_token.expose(),
                ts(t.access_expires_at),
                t.refresh_token.as_ref().map(|s| s.expose().to_string()),
                t.refresh_expires_at.map(ts),
                t.scopes.join(" "),
                t.source.as_str(),
                ts(t.updated_at),
            ],
        )?;
        // A new token may be what their held posts waited for; the scheduler holds them again
        // if it is not enough. Only theirs: lifting every account's would briefly show other
        // accounts' held posts as not held, and make the scheduler hold them all again.
        super::guards::lift(
            &tx,
            Some(crate::post::HoldReason::NeedsReauth),
            Some(served),
            t.updated_at,
        )?;
        // Daemons on other machines (PostgreSQL) sleep until their own next post; the wake
        // file only reaches one on this machine.
        super::nodes::notify_nodes(&tx, super::nodes::Wake::Changed)?;
        tx.commit()
    }

    /// A refreshed access token; the refresh token and its expiry stay as they are.
    pub fn refreshed(
        &mut self,
        account: &str,
        access: &Secret,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.db.execute(
            "UPDATE tokens SET access_token = ?2, access_expires_at = ?3, status = 'ok', status_reason = NULL, \
             updated_at = ?4 WHERE account = ?1",
            params![
                account,
                access.expose(),
                ts(expires_at),
                ts(now)
            ],
        )?;
        Ok(())
    }

    pub fn mark_needs_reauth(
        &mut self,
        account: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        let was: Option<String> = tx
            .query_row(
                "SELECT status FROM tokens WHERE account = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "UPDATE tokens SET status = 'needs_reauth', status_reason = ?2, updated_at = ?3 WHERE account = ?1",
            params![account, reason, now_s],
        )?;
        if was.is_some_and(|w| w != "needs_reauth") {
            super::outbox::needs_reauth(&tx, account, reason, &now_s)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn token(&self, account: &str) -> Result<Option<Token>> {
        self.db
            .query_row(
                &format!("SELECT {COLUMNS} FROM tokens WHERE account = ?1"),
                [account],
                token_from_row,
            )
            .optional()
    }

    pub fn tokens(&self) -> Result<Vec<Token>> {
        let mut stmt = self
            .db
            .prepare(&format!("SELECT {COLUMNS} FROM tokens ORDER BY account"))?;
        let rows = stmt.query_map(params![], token_from_row)?;
        rows.collect::<Result<_>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding 1, the token side: a token time past year 9999 is refused, never
    /// written as `+10000-…`, which could not be read back.
    #[test]
    fn a_token_time_past_year_9999_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let now = Utc::now();
        let mut token = Token {
            account: "me".into(),
            member_urn: "urn:li:person:1".into(),
            access_token: Secret::new("t"),
            access_expires_at: "9999-12-31T23:59:59Z".parse().unwrap(),
            refresh_token: None,
            refresh_expires_at: None,
            scopes: vec![],
            source: TokenSource::Import,
            needs_reauth: None,
            updated_at: now,
        };
        store.save_token(&token, &[]).unwrap();
        assert_eq!(
            store.token("me").unwrap().unwrap().access_expires_at,
            token.access_expires_at
        );
        token.access_expires_at = "+10000-01-01T04:00:00Z".parse().unwrap();
        let err = store.save_token(&token, &[]).unwrap_err();
        assert!(
            matches!(err, crate::store::StoreError::TimeOutOfRange { .. }),
            "{err}"
        );
        let far: DateTime<Utc> = "+11533-01-01T00:00:00Z".parse().unwrap();
        let err = store
            .refreshed("me", &Secret::new("t2"), far, now)
            .unwrap_err();
        assert!(
            matches!(err, crate::store::StoreError::TimeOutOfRange { .. }),
            "{err}"
        );
        // What is stored still reads back.
        assert!(store.tokens().is_ok());
    }
}
