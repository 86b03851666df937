//! Notifications: the event kinds and sinks, the JSON a person's hook receives, and the
//! sender task that delivers the store's outbox (`notifications`).
//!
//! Events are recorded by the store in the same transaction as the change they report
//! (`store::outbox`), so a crash neither loses nor invents one; this module only delivers
//! them. The sender is its own task and never blocks or delays publishing. It sleeps until
//! the earliest pending `next_attempt_at` or until the store records an event: idle, it does
//! not wake. An event is sent again only when no success answer came back (exit 0 / 2xx),
//! with backoff, for at most [`GIVE_UP_AFTER`]; each carries its `id`, the same on every
//! sink, so a receiver can drop a repeat. A hook never sees a secret: the client secret's
//! environment variable is removed from the command's environment, and a webhook URL (which
//! often holds a token) is never logged.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use crate::config::{Config, Live};
use crate::store::{Handle, PendingNotification, Store, StoreError};

/// What happened, as the `kind` column and the JSON's `kind` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A post was given up (any dead-letter reason but `in_doubt`).
    PostDead,
    /// A post may or may not be on LinkedIn and a person must look (dead as `in_doubt`).
    PostInDoubt,
    /// LinkedIn refused the account's refresh token: its posts wait for a login.
    NeedsReauth,
    /// A token that lipost cannot renew enters its last 14, 7, 3 or 1 days.
    TokenExpiring,
    /// A post held longer than `notify.held_longer_than`, once per hold.
    PostHeld,
    /// A post went out (off by default: one event per post).
    PostPublished,
    /// `lipost notify test`.
    Test,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::PostDead,
        Kind::PostInDoubt,
        Kind::NeedsReauth,
        Kind::TokenExpiring,
        Kind::PostHeld,
        Kind::PostPublished,
        Kind::Test,
    ];

    /// What `events` means when the config does not say: every failure, not the successes.
    pub const DEFAULT: [Kind; 5] = [
        Kind::PostDead,
        Kind::PostInDoubt,
        Kind::NeedsReauth,
        Kind::TokenExpiring,
        Kind::PostHeld,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PostDead => "post_dead",
            Kind::PostInDoubt => "post_in_doubt",
            Kind::NeedsReauth => "needs_reauth",
            Kind::TokenExpiring => "token_expiring",
            Kind::PostHeld => "post_held",
            Kind::PostPublished => "post_published",
            Kind::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event goes, as the `sink` column spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sink {
    Command,
    Webhook,
}

impl Sink {
    pub const ALL: [Sink; 2] = [Sink::Command, Sink::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Sink::Command => "command",
            Sink::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Sink> {
        Sink::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which events go to which sinks: what the store needs to record an event, given to it at
/// start and on every reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    pub kinds: Vec<Kind>,
    pub sinks: Vec<Sink>,
    /// `notify.held_longer_than`, when `post_held` goes anywhere.
    pub held_after: Option<Duration>,
}

impl Routes {
    pub fn of(config: &Config) -> Routes {
        let kinds = config.notify.events.clone();
        let sinks = config.notify.sinks();
        let held_after = (kinds.contains(&Kind::PostHeld) && !sinks.is_empty())
            .then_some(config.notify.held_longer_than);
        Routes {
            kinds,
            sinks,
            held_after,
        }
    }
}

/// One event, before the store gives it an id and a time.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub post_id: Option<String>,
    pub account: Option<String>,
    pub reason: Option<String>,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    /// For `token_expiring`: when, and the mark crossed (14, 7, 3, 1; 0 once expired).
    pub expires_at: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    /// One human line.
    pub text: String,
}

impl Event {
    pub fn new(kind: Kind, text: String) -> Event {
        Event {
            kind,
            post_id: None,
            account: None,
            reason: None,
            http_status: None,
            error_code: None,
            message: None,
            expires_at: None,
            days_left: None,
            text,
        }
    }

    /// The JSON sent to every sink. `text` and `content` carry the same human line, so
    /// Slack-compatible (`text`) and Discord-compatible (`content`) relays show it as is.
    pub fn payload(&self, id: &str, created_at: &str) -> String {
        let mut v = json!({
            "id": id,
            "kind": self.kind.as_str(),
            "created_at": created_at,
            "post_id": self.post_id,
            "account": self.account,
            "reason": self.reason,
            "http_status": self.http_status,
            "error_code": self.error_code,
            "message": self.message,
            "text": self.text,
            "content": self.text,
        });
        if let Some(t) = self.expires_at {
            v["expires_at"] = json!(crate::store::ts(t));
        }
        if let Some(d) = self.days_left {
            v["days_left"] = json!(d);
        }
        v.to_string()
    }
}

/// A fresh event id: 128 random bits, hex.
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Poked by the store when it records an event, so the sender looks at once. A permit is
/// kept when the sender is busy, so no event waits for the next one.
pub fn recorded() -> &'static tokio::sync::Notify {
    static RECORDED: tokio::sync::Notify = tokio::sync::Notify::const_new();
    &RECORDED
}

/// How long an event is retried before its row is marked `failed`.
pub const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::days(3);
/// The longest wait between two tries of one event.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Rows sent per look; more are taken at the next look, at once.
const BATCH: usize = 16;

/// The wait before the `n`th retry (1-based): `notify.backoff · 2^(n-1)`, at most an hour,
/// with backon's jitter.
pub fn backoff(base: Duration, n: u32) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(MAX_BACKOFF.max(base))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(n.saturating_sub(1).min(64) as usize)
        .unwrap_or(MAX_BACKOFF)
}

/// Sends one event to one sink; `Err` says why it did not count as received.
pub async fn deliver(config: &Config, sink: Sink, payload: &str) -> Result<(), String> {
    let n = &config.notify;
    match sink {
        Sink::Command => {
            let Some((prog, args)) = n.command.split_first() else {
                return Err("notify.command is no longer configured".into());
            };
            run_command(prog, args, payload, n.timeout).await
        }
        Sink::Webhook => {
            let Some(url) = &n.webhook else {
                return Err("notify.webhook is no longer configured".into());
            };
            post_webhook(url, payload, n.timeout).await
        }
    }
}

async fn run_command(
    prog: &str,
    args: &[String],
    payload: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .env_remove(crate::secret::CLIENT_SECRET_ENV)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = payload.as_bytes().to_vec();
    let run = async move {
        // A program that exits without reading its stdin is judged by its exit status.
        let _ = stdin.write_all(&body).await;
        let _ = stdin.write_all(b"\n").await;
        drop(stdin);
        child.wait_with_output().await
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(format!(
            "{prog} did not finish within {}; killed",
            crate::config::fmt_dur(timeout)
        )),
        Ok(Err(e)) => Err(format!("{prog}: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let err: String = err.trim().chars().take(300).collect();
            Err(format!("{prog} exited with {}: {err}", out.status))
        }
    }
}

async fn post_webhook(url: &url::Url, payload: &str, timeout: Duration) -> Result<(), String> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lipost/", env!("CARGO_PKG_VERSION")));
    if crate::config::is_loopback_url(url) {
        b = b.no_proxy();
    }
    let client = b.build().map_err(|e| e.without_url().to_string())?;
    // The URL may hold a token (Slack, ntfy): errors name scheme, host and port only.
    let host = crate::config::origin(url);
    let resp = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload.to_string())
        .send()
        .await
        .map_err(|e| format!("webhook at {host}: {}", e.without_url()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("webhook at {host} answered {}", resp.status()))
    }
}

/// The daemon's sender task: delivers pending rows until the process ends.
pub struct Sender {
    config: Live,
    store: Handle,
}

impl Sender {
    pub fn new(config: Live, store: Handle) -> Sender {
        Sender { config, store }
    }

    pub async fn run(self) {
        loop {
            let now = Utc::now();
            let next = match self.look(now).await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "cannot read the notification outbox; looking again in a minute");
                    Some(Utc::now() + chrono::Duration::minutes(1))
                }
            };
            let wait = next.map(|t| (t - Utc::now()).to_std().unwrap_or_default());
            tokio::select! {
                _ = recorded().notified() => {}
                _ = async { tokio::time::sleep(wait.expect("guarded")).await }, if wait.is_some() => {}
            }
        }
    }

    /// Sends what is due; returns when to look next (`None`: nothing pending).
    async fn look(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due = self
            .store
            .call(move |s| s.notifications_due(now, BATCH))
            .await?;
        let full = due.len() == BATCH;
        for row in due {
            let config = self.config.get();
            let result = deliver(&config, row.sink, &row.payload).await;
            self.settle(&config, row, result).await?;
        }
        if full {
            return Ok(Some(Utc::now()));
        }
        self.store.call(|s| s.next_notification_at()).await
    }

    async fn settle(
        &self,
        config: &Config,
        row: PendingNotification,
        result: Result<(), String>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let (id, sink) = (row.id.clone(), row.sink);
        match result {
            Ok(()) => {
                info!(notification = %row.id, kind = %row.kind, sink = %sink, "notification sent");
                self.store
                    .call(move |s| s.notification_sent(&id, sink, now))
                    .await
            }
            Err(error) => {
                let attempts = row.attempts + 1;
                let at = now
                    + chrono::Duration::from_std(backoff(config.notify.backoff, attempts))
                        .unwrap_or(chrono::Duration::hours(1));
                let next = (at < row.created_at + GIVE_UP_AFTER).then_some(at);
                match next {
                    Some(at) => {
                        warn!(notification = %row.id, kind = %row.kind, sink = %sink, error = %error, attempts, retry_at = %at, "notification not delivered; will retry")
                    }
                    None => {
                        warn!(notification = %row.id, kind = %row.kind, sink = %sink, error = %error, attempts, "notification not delivered for {} days; giving up (row marked failed)", GIVE_UP_AFTER.num_days())
                    }
                }
                self.store
                    .call(move |s| s.notification_failed(&id, sink, &error, next))
                    .await
            }
        }
    }
}

/// `lipost notify test`: records a `test` event for every configured sink and sends it at
/// once through [`deliver`]; one result per sink. A failed test event is not retried later:
/// the person who ran the command saw the failure.
pub async fn test(
    config: &Config,
    store: &mut Store,
) -> Result<Vec<(Sink, Result<(), String>)>, StoreError> {
    let now = Utc::now();
    let sinks = config.notify.sinks();
    let event = Event::new(
        Kind::Test,
        "lipost test notification: if you can read this, notifications reach you".into(),
    );
    let rows = store.record_now(&event, &sinks, now)?;
    let mut out = Vec::new();
    for row in rows {
        let result = deliver(config, row.sink, &row.payload).await;
        let now = Utc::now();
        match &result {
            Ok(()) => store.notification_sent(&row.id, row.sink, now)?,
            Err(e) => store.notification_failed(&row.id, row.sink, e, None)?,
        }
        out.push((row.sink, result));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_kind_and_sink() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        for s in Sink::ALL {
            assert_eq!(Sink::parse(s.as_str()), Some(s));
        }
        assert!(!Kind::DEFAULT.contains(&Kind::PostPublished));
    }

    #[test]
    fn the_payload_carries_the_id_and_one_line_for_relays() {
        let mut e = Event::new(Kind::PostDead, "Post p is dead".into());
        e.post_id = Some("p".into());
        e.http_status = Some(403);
        let v: serde_json::Value =
            serde_json::from_str(&e.payload("abc", "2026-01-01T00:00:00.000Z")).unwrap();
        assert_eq!(v["id"], "abc");
        assert_eq!(v["kind"], "post_dead");
        assert_eq!(v["http_status"], 403);
        assert_eq!(v["account"], serde_json::Value::Null);
        assert_eq!(v["text"], "Post p is dead");
        assert_eq!(v["content"], v["text"]);
        assert!(v.get("days_left").is_none());
        assert_eq!(new_id().len(), 32);
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn backoff_grows_from_the_base_and_stays_bounded() {
        let base = Duration::from_secs(1);
        assert!(backoff(base, 1) >= base && backoff(base, 1) <= 2 * base);
        assert!(backoff(base, 5) >= 16 * base);
        assert!(backoff(base, 60) <= 2 * MAX_BACKOFF);
    }
}
