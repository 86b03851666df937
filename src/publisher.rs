//! The publisher: sends one claimed post to LinkedIn and records what happened.
//!
//! It receives a post the scheduler has already moved to `publishing` (committed), sends it,
//! classifies the outcome (published, retry with backoff, rate limited, in doubt, dead) and
//! settles it in the store in one transaction. A post in doubt (an earlier try may have
//! reached LinkedIn) is resolved before anything is resent: by finding it among the page's
//! posts, by resending within LinkedIn's duplicate window, or by giving up as `in_doubt`.
//! It never reads the queue folder and never picks which post goes next.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use rand::Rng;
use tracing::{error, info, warn};

use crate::auth::{AuthError, Tokens};
use crate::config::{AccountKind, Live, Retry};
use crate::linkedin::wire::PostRequest;
use crate::linkedin::{ApiError, Client};
use crate::post::{AttemptResult, HoldReason, Post};
use crate::store::{Budget, Handle, Hold, Settle, Settled};
use tokio::sync::{mpsc, oneshot};

/// Consecutive 429s after which the member's daily quota is taken as spent.
const QUOTA_SPENT_AFTER: u32 = 5;

pub struct Publisher {
    config: Live,
    client: Client,
    tokens: Arc<Tokens>,
    store: Handle,
    /// Finished tries on their way into the store, committed in batches.
    settler: mpsc::UnboundedSender<(Settled, oneshot::Sender<Result<(), String>>)>,
}

/// Group commit: takes every finished try waiting and settles them in one transaction, so
/// the store keeps up with many sends at once. Each sender learns when its own is committed.
async fn settle_in_batches(
    store: Handle,
    mut queue: mpsc::UnboundedReceiver<(Settled, oneshot::Sender<Result<(), String>>)>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (items, senders): (Vec<Settled>, Vec<_>) = batch.into_iter().unzip();
        match store.call(move |s| s.settle_many(&items, Utc::now())).await {
            Ok(results) => {
                for (done, r) in senders.into_iter().zip(results) {
                    let _ = done.send(r.map_err(|e| e.to_string()));
                }
            }
            Err(e) => {
                for done in senders {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// The exponential ceiling of the `n`th retry (1-based), from backon: `base · 2^(n-1)`,
/// capped at `max_delay`.
pub fn backoff_ceiling(retry: &Retry, n: u32) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(retry.base_delay)
        .with_max_delay(retry.max_delay)
        .with_factor(2.0)
        .without_max_times()
        .build()
        .nth(n.saturating_sub(1).min(64) as usize)
        .unwrap_or(retry.max_delay)
}

/// The wait before the `n`th retry: half the ceiling plus a random part of the other half,
/// so retries spread out and, below the `max_delay` cap, never wait less than the one before.
pub fn backoff(retry: &Retry, n: u32) -> Duration {
    let ceiling = backoff_ceiling(retry, n);
    let half = ceiling / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

/// Just after the next 00:00 UTC, when LinkedIn's daily limits reset; spread over a minute.
pub fn after_quota_reset(now: DateTime<Utc>) -> DateTime<Utc> {
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    midnight + chrono::Duration::seconds(30 + rand::rng().random_range(0..60))
}

fn std_to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Publisher {
    /// Must be called inside the tokio runtime: it starts the settler.
    pub fn new(config: Live, store: Handle, client: Client, tokens: Arc<Tokens>) -> Publisher {
        let (settler, queue) = mpsc::unbounded_channel();
        tokio::spawn(settle_in_batches(store.clone(), queue));
        Publisher {
            config,
            client,
            tokens,
            store,
            settler,
        }
    }

    /// Publishes a claimed post; `attempt` is the open row in `attempts`. `turn` (the
    /// scheduler's request permit) is dropped once LinkedIn answered, so the next claimed
    /// post can go while this one is recorded.
    pub async fn publish<T: Send>(&self, post: Post, attempt: i64, turn: T) {
        let started = Utc::now();
        let (result, settle) = self.try_once(&post, started).await;
        drop(turn);
        log_outcome(&post, &result, &settle);
        let (done, committed) = oneshot::channel();
        let item = Settled {
            post_id: post.id.clone(),
            attempt,
            result,
            outcome: settle,
        };
        let r = match self.settler.send((item, done)) {
            Ok(()) => committed
                .await
                .unwrap_or_else(|_| Err("the settler stopped".into())),
            Err(_) => Err("the settler stopped".into()),
        };
        if let Err(e) = r {
            warn!(post_id = %post.id, error = %e, "cannot record the outcome; the post will be resolved as in doubt at the next start");
        }
    }

    /// Gives a claimed post back unsent (shutdown came before its turn). If this fails the
    /// post stays `publishing` and the next start resolves it as in doubt: safe, only slower.
    pub async fn release(&self, post: Post, attempt: i64) {
        let id = post.id.clone();
        if let Err(e) = self
            .store
            .call(move |s| s.release(&id, attempt, Utc::now()))
            .await
        {
            warn!(post_id = %post.id, error = %e, "cannot give back an unsent post; it will be resolved as in doubt at the next start");
        }
    }

    async fn try_once(&self, post: &Post, started: DateTime<Utc>) -> (AttemptResult, Settle) {
        let config = self.config.get();
        let Some(account) = config.account(&post.account) else {
            return dead(
                "account_removed",
                format!("account {:?} is no longer in the config", post.account),
            );
        };
        let member = account.token_account().to_string();
        let cred = match self.tokens.get(&member).await {
            Ok(c) => c,
            Err(e @ AuthError::NeedsLogin { .. }) => {
                // Held, not failed: the scheduler sends it once the account logs in again.
                let result = AttemptResult {
                    message: Some(e.to_string()),
                    outcome: "held".into(),
                    ..AttemptResult::default()
                };
                return self.retry_at(post, result, Utc::now(), Budget::Free, None);
            }
            Err(e) => return self.retry_plain(post, e.to_string(), "token_unavailable"),
        };
        let author = match &account.kind {
            AccountKind::Member => cred.person_urn.clone(),
            AccountKind::Organization { organization, .. } => organization.clone(),
        };
        if let Some(since) = post.in_doubt_since {
            if let Some(found) = self.find_on_page(post, &author, &cred.token).await {
                return found;
            }
            if started - since > std_to_chrono(self.config.get().retry.resend_window) {
                return dead(
                    "in_doubt",
                    format!(
                        "a try at {since} may have reached LinkedIn and no answer came back; it is past the {} resend window, so it was not sent again. Check the feed: `lipost mark-published {id} URN` records it if it is there, `lipost retry {id}` sends it anyway",
                        humantime::format_duration(self.config.get().retry.resend_window),
                        id = post.id
                    ),
                );
            }
        }
        let body = PostRequest::text(&author, &post.commentary, &post.visibility);
        match self.client.create_post(&cred.token, &body).await {
            Ok(created) => {
                let outcome = if post.in_doubt_since.is_some() {
                    "published_after_doubt"
                } else {
                    "published"
                };
                (
                    AttemptResult {
                        http_status: Some(201),
                        outcome: outcome.into(),
                        message: Some(created.urn.clone()),
                        ..AttemptResult::default()
                    },
                    Settle::Published { urn: created.urn },
                )
            }
            Err(e) => self.classify(post, &member, &cred.token, e, started).await,
        }
    }

    /// For an in-doubt page post: is it already among the page's recent posts?
    async fn find_on_page(
        &self,
        post: &Post,
        author: &str,
        token: &crate::secret::Secret,
    ) -> Option<(AttemptResult, Settle)> {
        if !author.starts_with("urn:li:organization:") {
            return None;
        }
        match self.client.posts_by_author(token, author).await {
            Ok(posts) => {
                let found = posts
                    .into_iter()
                    .find(|p| p.commentary == post.commentary)?;
                Some((
                    AttemptResult {
                        http_status: Some(200),
                        outcome: "resolved_found".into(),
                        message: Some(format!("in doubt; found on the page as {}", found.id)),
                        ..AttemptResult::default()
                    },
                    Settle::Published { urn: found.id },
                ))
            }
            Err(e) => {
                info!(post_id = %post.id, error = %e, "in-doubt lookup by author failed; falling back to the duplicate window");
                None
            }
        }
    }

    async fn classify(
        &self,
        post: &Post,
        member: &str,
        used: &crate::secret::Secret,
        e: ApiError,
        started: DateTime<Utc>,
    ) -> (AttemptResult, Settle) {
        let mut result = result_of(&e);
        match &e {
            ApiError::Status { status: 426, .. } => {
                // The operator's problem, not the post's: held until the version changes.
                let version = self.client.version().current();
                if self.client.version().retire(&version) {
                    error!(version = %version, error = %e, "LinkedIn no longer serves LinkedIn-Version {version}: every due post is held (none is sent or given up). Set linkedin.version in config.toml to a recent month (YYYYMM), then `systemctl reload lipost` (SIGHUP); held posts then go out unless past retry.max_lateness");
                }
                result.outcome = HoldReason::ApiVersionRetired.as_str().into();
                let until = crate::scheduler::hold_deadline(post.due_at, &self.config.get());
                (
                    result,
                    Settle::Held(Hold {
                        reason: HoldReason::ApiVersionRetired,
                        until,
                    }),
                )
            }
            ApiError::Status { status: 422, .. }
                if e.duplicate_of().is_some() && post.in_doubt_since.is_some() =>
            {
                let urn = e.duplicate_of().expect("checked");
                result.outcome = "resolved_duplicate".into();
                result.message = Some(format!(
                    "in doubt; LinkedIn says the earlier try created {urn}"
                ));
                (result, Settle::Published { urn })
            }
            ApiError::Status { status: 401, .. } => {
                // Refresh once; the retry goes out at once, or is held if a login is needed.
                if let Err(e) = self.tokens.unauthorized(member, used).await {
                    info!(post_id = %post.id, error = %e, "token could not be renewed after a 401");
                }
                result.outcome = "unauthorized".into();
                self.retry_after(post, result, Duration::ZERO, Budget::Attempts, None)
            }
            ApiError::Status {
                status: 429,
                retry_after,
                ..
            } => {
                let n = post.rate_limited + 1;
                let now = Utc::now();
                let wait = retry_after.unwrap_or_else(|| backoff(&self.config.get().retry, n));
                let at = now + std_to_chrono(wait);
                let reset = after_quota_reset(now);
                if retry_after.is_none() && (n >= QUOTA_SPENT_AFTER || at >= reset) {
                    result.outcome = "rate_limited_until_reset".into();
                    return self.retry_at(post, result, reset, Budget::RateLimit, None);
                }
                self.retry_at(post, result, at, Budget::RateLimit, None)
            }
            ApiError::Status {
                status: 500 | 502 | 503 | 504,
                ..
            }
            | ApiError::NotSent { .. } => {
                let wait = backoff(&self.config.get().retry, post.attempts_used + 1);
                self.retry_after(post, result, wait, Budget::Attempts, None)
            }
            ApiError::NoAnswer { .. } => {
                // The request may be on LinkedIn. Resend soon, inside the duplicate window.
                result.outcome = "in_doubt".into();
                let wait = backoff(&self.config.get().retry, 1)
                    .min(self.config.get().retry.resend_window / 4);
                self.retry_after(post, result, wait, Budget::Attempts, Some(started))
            }
            ApiError::Status { .. } => {
                let reason = if e.duplicate_of().is_some() {
                    "duplicate"
                } else {
                    "rejected"
                };
                result.outcome = "dead".into();
                (
                    result,
                    Settle::Dead {
                        reason: reason.into(),
                    },
                )
            }
        }
    }

    fn retry_after(
        &self,
        post: &Post,
        result: AttemptResult,
        wait: Duration,
        counts: Budget,
        in_doubt: Option<DateTime<Utc>>,
    ) -> (AttemptResult, Settle) {
        self.retry_at(
            post,
            result,
            Utc::now() + std_to_chrono(wait),
            counts,
            in_doubt,
        )
    }

    /// A retry at `at`, unless the attempt budget or the lateness budget is spent.
    fn retry_at(
        &self,
        post: &Post,
        mut result: AttemptResult,
        at: DateTime<Utc>,
        counts: Budget,
        in_doubt: Option<DateTime<Utc>>,
    ) -> (AttemptResult, Settle) {
        let retry = &self.config.get().retry;
        if counts == Budget::Attempts && post.attempts_used + 1 >= retry.max_attempts {
            result.outcome = "dead".into();
            return (
                result,
                Settle::Dead {
                    reason: "attempts_exhausted".into(),
                },
            );
        }
        if at > post.due_at + std_to_chrono(retry.max_lateness) {
            result.outcome = "dead".into();
            return (
                result,
                Settle::Dead {
                    reason: "too_late".into(),
                },
            );
        }
        if result.outcome.is_empty() {
            result.outcome = if counts == Budget::RateLimit {
                "rate_limited"
            } else {
                "retry"
            }
            .into();
        }
        (
            result,
            Settle::Retry {
                at,
                counts,
                in_doubt_since: in_doubt,
            },
        )
    }

    fn retry_plain(&self, post: &Post, message: String, outcome: &str) -> (AttemptResult, Settle) {
        let result = AttemptResult {
            message: Some(message),
            outcome: outcome.into(),
            ..AttemptResult::default()
        };
        let wait = backoff(&self.config.get().retry, post.attempts_used + 1);
        self.retry_after(post, result, wait, Budget::Attempts, None)
    }
}

fn dead(reason: &str, message: String) -> (AttemptResult, Settle) {
    (
        AttemptResult {
            message: Some(message),
            outcome: "dead".into(),
            ..AttemptResult::default()
        },
        Settle::Dead {
            reason: reason.into(),
        },
    )
}

fn result_of(e: &ApiError) -> AttemptResult {
    match e {
        ApiError::Status {
            status,
            code,
            service_error_code,
            message,
            ..
        } => AttemptResult {
            http_status: Some(*status),
            error_code: code.clone(),
            service_error_code: *service_error_code,
            message: Some(message.clone()),
            outcome: String::new(),
        },
        other => AttemptResult {
            message: Some(other.to_string()),
            ..AttemptResult::default()
        },
    }
}

fn log_outcome(post: &Post, r: &AttemptResult, s: &Settle) {
    let status = r
        .http_status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "-".into());
    let msg = r.message.as_deref().unwrap_or("");
    match s {
        Settle::Published { urn } => {
            info!(post_id = %post.id, account = %post.account, state = "published", post_urn = %urn, http_status = %status, outcome = %r.outcome, "published")
        }
        Settle::Retry { at, .. } => {
            warn!(post_id = %post.id, account = %post.account, state = "scheduled", http_status = %status, outcome = %r.outcome, next_attempt_at = %at, error = %msg, "publish failed; will retry")
        }
        Settle::Held(hold) => {
            warn!(post_id = %post.id, account = %post.account, state = "scheduled", http_status = %status, hold_reason = %hold.reason, hold_until = %hold.until, error = %msg, "held; not sent")
        }
        Settle::Dead { reason } => {
            warn!(post_id = %post.id, account = %post.account, state = "dead", http_status = %status, reason = %reason, error = %msg, "publish failed for good; post is dead")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_its_ceiling() {
        let retry = Retry {
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            ..Retry::default()
        };
        assert_eq!(backoff_ceiling(&retry, 1), Duration::from_secs(30));
        assert_eq!(backoff_ceiling(&retry, 3), Duration::from_secs(120));
        assert_eq!(backoff_ceiling(&retry, 20), Duration::from_secs(3600));
        let mut prev = Duration::ZERO;
        // 30s · 2^7 = 3840s: from the 8th retry on, the cap holds and only jitter varies.
        for n in 1..8 {
            let d = backoff(&retry, n);
            assert!(d >= backoff_ceiling(&retry, n) / 2 && d <= backoff_ceiling(&retry, n));
            assert!(d >= prev);
            prev = d;
        }
        for n in 8..12 {
            let d = backoff(&retry, n);
            assert!(d >= retry.max_delay / 2 && d <= retry.max_delay);
        }
    }

    #[test]
    fn quota_reset_is_just_after_midnight_utc() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = after_quota_reset(now);
        assert!(at > DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z").unwrap());
        assert!(at < DateTime::parse_from_rfc3339("2026-11-24T00:02:00Z").unwrap());
    }
}
