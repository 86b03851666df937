//! The sender of what follows a publish: a post's first comment, and edits of its text.
//!
//! Its own task in the daemon, beside the scheduler; publishing never waits for it. It sleeps
//! until the earliest waiting comment or pending edit (`next_attempt_at`) or until the store
//! records one ([`wake`]). A first comment is claimed `sending` (committed) before its
//! request leaves, and only a refusal that proves nothing was posted (429, connection
//! refused, 401, no token) sends it again, with backoff. A 403 is LinkedIn saying this
//! account may not comment through the API: `refused`, recorded and logged, the post stays
//! published. A 5xx or no answer, or a comment found `sending` at start-up, may be on
//! LinkedIn, and there is no documented way to look: it is `dead`, never resent, so a crash
//! cannot double a comment. An edit (PARTIAL_UPDATE of the commentary) is safe to repeat: it
//! is retried with backoff on anything transient. Neither ever touches the post's own state.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::auth::{AuthError, Tokens};
use crate::config::{AccountKind, Live};
use crate::linkedin::{ApiError, Client};
use crate::post::{AttemptOutcome, AttemptResult};
use crate::publisher::{after_429, backoff, later, result_of};
use crate::secret::Secret;
use crate::store::{CommentJob, CommentSettle, EditJob, EditSettle, Handle, StoreError};

/// Woken when the store records a comment or an edit to send.
pub fn wake() -> &'static tokio::sync::Notify {
    static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();
    &WAKE
}

/// How many of each are taken per look.
const BATCH: usize = 32;

pub struct Sender {
    config: Live,
    store: Handle,
    client: Client,
    tokens: Arc<Tokens>,
}

/// Why a try did not reach LinkedIn, or what LinkedIn said.
enum Failure {
    /// Nothing was posted; worth trying again after `wait`.
    Transient {
        why: String,
        wait: Duration,
        outcome: AttemptOutcome,
        result: AttemptResult,
    },
    /// It may have been carried out: LinkedIn's answer was lost (5xx, no answer).
    Unknown { why: String, result: AttemptResult },
    /// LinkedIn no longer serves the `LinkedIn-Version` it carried (426): the operator's to
    /// fix. Not counted as a try; nothing is sent until a reload sets another version.
    VersionRetired { why: String, result: AttemptResult },
    /// LinkedIn refused it for good (a 4xx other than 401 and 429), or it cannot be sent.
    Refused {
        status: Option<u16>,
        why: String,
        result: AttemptResult,
    },
}

/// The token and author a post of `account` goes out with.
struct As {
    token: Secret,
    member: String,
    author: String,
}

impl Sender {
    pub fn new(config: Live, store: Handle, client: Client, tokens: Arc<Tokens>) -> Sender {
        Sender {
            config,
            store,
            client,
            tokens,
        }
    }

    /// Runs until `stop`; a try under way is finished first, so a stop never leaves a
    /// comment `sending`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        match self
            .store
            .call(|s| {
                // A comment being sent may be another live node's (PostgreSQL).
                if s.other_nodes_alive()? {
                    return Ok(Vec::new());
                }
                s.recover_comments(Utc::now())
            })
            .await
        {
            Ok(ids) => {
                for id in ids {
                    warn!(post_id = %id, comment_status = "dead", "first comment found `sending` at start-up: it may be on LinkedIn and cannot be looked up, so it is not sent again; check the post and comment by hand if it is missing");
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot settle first comments left `sending`; none is sent until this works")
            }
        }
        loop {
            if *stop.borrow() {
                return;
            }
            let next = match self.look().await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "cannot read first comments and edits from the store; looking again in a minute");
                    Some(Utc::now() + chrono::Duration::minutes(1))
                }
            };
            let wait = next.map(|t| (t - Utc::now()).to_std().unwrap_or_default());
            tokio::select! {
                _ = wake().notified() => {}
                _ = async { tokio::time::sleep(wait.expect("guarded")).await }, if wait.is_some() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Sends what is due; returns when to look next (`None`: nothing waits).
    async fn look(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // While LinkedIn answers 426 to this version, nothing is sent (each send would only
        // meet another 426), checked before each send, so a 426 to one ends the batch; the
        // reload that sets another version wakes this loop.
        let retired = || self.client.version().retired().is_some();
        if retired() {
            return Ok(None);
        }
        let now = Utc::now();
        let (comments, edits) = self.store.call(move |s| s.social_due(now, BATCH)).await?;
        let full = comments.len() == BATCH || edits.len() == BATCH;
        for id in comments {
            if retired() {
                return Ok(None);
            }
            self.comment(id).await?;
        }
        for id in edits {
            if retired() {
                return Ok(None);
            }
            self.edit(id).await?;
        }
        if full {
            return Ok(Some(Utc::now()));
        }
        self.store.call(|s| s.next_social_at()).await
    }

    async fn comment(&self, post_id: String) -> Result<(), StoreError> {
        let id = post_id.clone();
        let Some(job) = self
            .store
            .call(move |s| s.claim_comment(&id, Utc::now()))
            .await?
        else {
            return Ok(());
        };
        let settle = self.send_comment(&job).await;
        match &settle {
            CommentSettle::Posted { urn } => {
                info!(post_id = %job.post_id, comment_status = "posted", comment_urn = urn.as_deref().unwrap_or("-"), "first comment posted")
            }
            CommentSettle::Refused { why } => {
                warn!(post_id = %job.post_id, comment_status = "refused", error = %why, "first comment refused: not permitted for this account; the post stays published")
            }
            CommentSettle::Retry { at, why } => {
                warn!(post_id = %job.post_id, comment_status = "waiting", next_attempt_at = %at, error = %why, "first comment not sent; will try again")
            }
            CommentSettle::Later { why } => {
                warn!(post_id = %job.post_id, comment_status = "waiting", error = %why, "first comment not sent: the API version is retired; it goes once linkedin.version is changed and lipost reloaded")
            }
            CommentSettle::Dead { why } => {
                warn!(post_id = %job.post_id, comment_status = "dead", error = %why, "first comment given up; a person should check the post")
            }
        }
        let post_id = job.post_id.clone();
        self.store
            .call(move |s| s.settle_comment(&post_id, &settle, Utc::now()))
            .await
    }

    async fn send_comment(&self, job: &CommentJob) -> CommentSettle {
        let max = self.config.get().retry.max_attempts;
        let n = job.attempts;
        let gave_up = |why: String| CommentSettle::Dead {
            why: format!("gave up after {} tries: {why}", job.attempts),
        };
        let failure = match self.credential(&job.account, n).await {
            Err(f) => f,
            Ok(who) => {
                let sent = self.client.version().current();
                match self
                    .client
                    .comment(&who.token, &job.post_urn, &who.author, &job.text)
                    .await
                {
                    Ok(c) => return CommentSettle::Posted { urn: c.urn },
                    Err(e) => self.failure(&who, e, n, &sent).await,
                }
            }
        };
        match failure {
            Failure::Transient { why, wait, .. } if job.attempts < max => CommentSettle::Retry {
                at: later(Utc::now(), wait),
                why,
            },
            Failure::Transient { why, .. } => gave_up(why),
            Failure::VersionRetired { why, .. } => CommentSettle::Later { why },
            Failure::Unknown { why, .. } => CommentSettle::Dead {
                why: format!("{why}; the comment may be on LinkedIn and cannot be looked up, so it was not sent again: check the post, and comment by hand if it is missing"),
            },
            Failure::Refused {
                status: Some(403),
                why,
                ..
            } => CommentSettle::Refused {
                why: format!("not permitted for this account ({why}): LinkedIn may not let this account comment through the API; comment by hand"),
            },
            Failure::Refused { status: None, why, .. } => CommentSettle::Dead { why },
            Failure::Refused { why, .. } => CommentSettle::Dead {
                why: format!("LinkedIn refused the comment: {why}"),
            },
        }
    }

    async fn edit(&self, id: i64) -> Result<(), StoreError> {
        let Some(job) = self.store.call(move |s| s.edit_job(id, Utc::now())).await? else {
            return Ok(());
        };
        let started = Utc::now();
        let (result, settle) = self.send_edit(&job).await;
        match &settle {
            EditSettle::Done => {
                info!(post_id = %job.post_id, outcome = %result.outcome, "post text edited on LinkedIn")
            }
            EditSettle::Retry { at } => {
                warn!(post_id = %job.post_id, outcome = %result.outcome, next_attempt_at = %at, error = result.message.as_deref().unwrap_or(""), "edit not sent; will try again")
            }
            EditSettle::Later => {
                warn!(post_id = %job.post_id, outcome = %result.outcome, error = result.message.as_deref().unwrap_or(""), "edit not sent: the API version is retired; it goes once linkedin.version is changed and lipost reloaded")
            }
            EditSettle::Failed => {
                warn!(post_id = %job.post_id, outcome = %result.outcome, error = result.message.as_deref().unwrap_or(""), "edit failed; the post keeps its text")
            }
        }
        self.store
            .call(move |s| {
                s.settle_edit(
                    job.id,
                    (&job.text, &job.commentary),
                    &result,
                    &settle,
                    started,
                    Utc::now(),
                )
            })
            .await
    }

    async fn send_edit(&self, job: &EditJob) -> (AttemptResult, EditSettle) {
        let max = self.config.get().retry.max_attempts;
        let n = job.attempts + 1;
        let failure = match self.credential(&job.account, n).await {
            Err(f) => f,
            Ok(who) => {
                let sent = self.client.version().current();
                match self
                    .client
                    .edit_commentary(&who.token, &job.post_urn, &job.commentary)
                    .await
                {
                    Ok(()) => {
                        let result = AttemptResult {
                            http_status: Some(204),
                            outcome: AttemptOutcome::Edited,
                            ..AttemptResult::message(format!(
                                "text edited on LinkedIn ({})",
                                job.post_urn
                            ))
                        };
                        return (result, EditSettle::Done);
                    }
                    Err(e) => self.failure(&who, e, n, &sent).await,
                }
            }
        };
        let tries = n;
        match failure {
            Failure::VersionRetired { result, .. } => (result, EditSettle::Later),
            // Setting the same text twice is harmless: a lost answer is tried again too.
            Failure::Transient {
                wait,
                outcome,
                mut result,
                ..
            } if tries < max => {
                result.outcome = outcome;
                (
                    result,
                    EditSettle::Retry {
                        at: later(Utc::now(), wait),
                    },
                )
            }
            Failure::Unknown { mut result, .. } if tries < max => {
                result.outcome = AttemptOutcome::Retry;
                let wait = backoff(&self.config.get().retry, tries);
                (
                    result,
                    EditSettle::Retry {
                        at: later(Utc::now(), wait),
                    },
                )
            }
            Failure::Transient {
                why, mut result, ..
            }
            | Failure::Unknown { why, mut result } => {
                result.outcome = AttemptOutcome::EditFailed;
                result.message = Some(format!("gave up after {tries} tries: {why}"));
                (result, EditSettle::Failed)
            }
            Failure::Refused { mut result, .. } => {
                result.outcome = AttemptOutcome::EditFailed;
                (result, EditSettle::Failed)
            }
        }
    }

    /// The token and author for `account`'s posts, or why there is none now.
    async fn credential(&self, account: &str, n: u32) -> Result<As, Failure> {
        let config = self.config.get();
        let Some(acc) = config.account(account) else {
            let why = format!("account {account:?} is no longer in the config");
            return Err(Failure::Refused {
                status: None,
                result: AttemptResult::message(why.clone()),
                why,
            });
        };
        let member = acc.token_account().to_string();
        match self.tokens.get(&member).await {
            Ok(cred) => Ok(As {
                author: match &acc.kind {
                    AccountKind::Member => cred.person_urn.clone(),
                    AccountKind::Organization { organization, .. } => organization.clone(),
                },
                token: cred.token,
                member,
            }),
            Err(e) => {
                let outcome = match e {
                    AuthError::NeedsLogin { .. } => AttemptOutcome::Held,
                    _ => AttemptOutcome::TokenUnavailable,
                };
                let why = e.to_string();
                Err(Failure::Transient {
                    wait: backoff(&config.retry, n),
                    outcome,
                    result: AttemptResult::message(why.clone()),
                    why,
                })
            }
        }
    }

    /// What an error from LinkedIn means for a comment or an edit; `sent` is the
    /// `LinkedIn-Version` the request carried.
    async fn failure(&self, who: &As, e: ApiError, n: u32, sent: &str) -> Failure {
        let retry = self.config.get().retry.clone();
        let result = result_of(&e);
        let why = e.to_string();
        match &e {
            ApiError::Status { status: 401, .. } => {
                let wait = self
                    .tokens
                    .unauthorized(&who.member, &who.token)
                    .await
                    .unwrap_or(retry.base_delay);
                Failure::Transient {
                    why,
                    wait,
                    outcome: AttemptOutcome::Unauthorized,
                    result,
                }
            }
            ApiError::Status {
                status: 429,
                retry_after,
                ..
            } => {
                // As for posts: once the quota looks spent, wait for the reset rather than
                // spend the few tries a comment has within the same day.
                let now = Utc::now();
                let (at, reset) = after_429(&retry, *retry_after, n, now);
                Failure::Transient {
                    why: match reset {
                        true => format!("{why}; LinkedIn's daily limit looks spent: waiting for its reset just after midnight UTC"),
                        false => why,
                    },
                    wait: (at - now).to_std().unwrap_or_default(),
                    outcome: if reset {
                        AttemptOutcome::RateLimitedUntilReset
                    } else {
                        AttemptOutcome::RateLimited
                    },
                    result,
                }
            }
            ApiError::NotSent { .. } => Failure::Transient {
                why,
                wait: backoff(&retry, n),
                outcome: AttemptOutcome::Retry,
                result,
            },
            ApiError::Status { status: 426, .. } => {
                // The operator's problem, not the comment's or the edit's: the version this
                // request carried is marked retired (not one a reload set meanwhile), so
                // posts are held, nothing more is sent until a reload, and the log says what
                // to change. This try is not counted, and is made again then.
                self.client
                    .version()
                    .refused(sent, "a comment or an edit", &why);
                let mut result = result;
                result.outcome = AttemptOutcome::ApiVersionRetired;
                Failure::VersionRetired { why, result }
            }
            ApiError::Status {
                status: 500..=599, ..
            }
            | ApiError::NoAnswer { .. }
            | ApiError::CreatedWithoutUrn { .. } => Failure::Unknown { why, result },
            ApiError::Status { status, .. } => Failure::Refused {
                status: Some(*status),
                why,
                result,
            },
        }
    }
}
