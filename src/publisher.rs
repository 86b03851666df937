//! The publisher: sends one claimed post to LinkedIn and records what happened.
//!
//! It receives a post the scheduler has already moved to `publishing` (committed), sends it,
//! classifies the outcome (published, retry with backoff, rate limited, in doubt, dead) and
//! settles it in the store in one transaction (retried until it commits). A post in doubt (an
//! earlier try may have reached LinkedIn: no answer, a 5xx, a 201 without a URN) is resolved
//! before anything is resent: by finding it among the page's posts created since that try,
//! by resending within LinkedIn's duplicate window (whose 422 names the live post), or by
//! giving up as `in_doubt`. Time arithmetic here is checked: no answer can make it panic.
//! A post with content names its assets by the URNs stored in `media` (see
//! [`crate::content::Content::to_wire`]), the same at every try.
//! It never reads the queue folder and never picks which post goes next.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use rand::Rng;
use tracing::{info, warn};

use crate::auth::{AuthError, Tokens};
use crate::config::{AccountKind, Config, Live, Retry};
use crate::linkedin::wire::PostRequest;
use crate::linkedin::{ApiError, Client};
use crate::post::{AttemptOutcome, AttemptResult, DeadReason, HoldReason, Post};
use crate::store::{Budget, Handle, Hold, MediaGate, Recorded, Settle, Settled};
use tokio::sync::{mpsc, oneshot};

/// Consecutive 429s after which the member's daily quota is taken as spent.
pub const QUOTA_SPENT_AFTER: u32 = 5;

/// The longest `Retry-After` honoured: LinkedIn's limits reset daily, so a longer one is a
/// fault, and a post that would wait past `max_lateness` goes dead as `too_late` anyway.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// How far LinkedIn's clock (a post's `createdAt`) may lag ours when an in-doubt page post is
/// looked up: a post created up to this long before the in-doubt try began can be that try.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(2);

pub struct Publisher {
    config: Live,
    client: Client,
    tokens: Arc<Tokens>,
    store: Handle,
    /// Finished tries on their way into the store, committed in batches.
    settler: mpsc::UnboundedSender<ToSettle>,
    /// Tries waiting for LinkedIn's answer: while there are, the settler waits a little for
    /// their outcomes too (see [`GATHER`]).
    asking: Arc<AtomicUsize>,
    /// Set while the scheduler has due posts waiting for room or a turn, which answers
    /// free once committed: then the settler does not wait.
    waiting: Arc<AtomicBool>,
    /// The uploader's wake-up, for assets LinkedIn no longer knows (uploaded again).
    media_wake: Option<Arc<tokio::sync::Notify>>,
}

/// What the settler receives: a finished try, or a request to say when every earlier one is
/// committed.
enum ToSettle {
    /// With whether its account is paced: its next post waits for this commit, so the
    /// settler does not wait for other outcomes (see [`GATHER`]).
    Try(Settled, bool, oneshot::Sender<Result<Recorded, String>>),
    Flush(oneshot::Sender<()>),
}

/// Group commit: takes every finished try waiting and settles them in one transaction, so
/// the store keeps up with many sends at once. While other tries still wait for LinkedIn, it
/// waits up to [`GATHER`] for their outcomes too: in a burst, a few large transactions
/// instead of one per answer, which would take the CPU (and on PostgreSQL the write lock)
/// from the sends still to go. Each sender learns when its own is committed.
/// A transaction that fails (the database busy or unwritable) is retried with a backoff
/// capped at [`SETTLE_RETRY_MAX`], never dropped: the outcome, perhaps a URN, exists only
/// here until it is committed.
async fn settle_in_batches(
    store: Handle,
    mut queue: mpsc::UnboundedReceiver<ToSettle>,
    asking: Arc<AtomicUsize>,
    waiting: Arc<AtomicBool>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        let gathered_by = tokio::time::Instant::now() + GATHER;
        let mut hurry = false;
        while let Some(item) = next.take() {
            match item {
                ToSettle::Try(settled, paced, done) => {
                    hurry |= paced;
                    batch.push((settled, done))
                }
                // Everything queued before it is in this batch: answered once it commits.
                ToSettle::Flush(done) => {
                    flushes.push(done);
                    break;
                }
            }
            if batch.len() < 1024 {
                next = queue.try_recv().ok();
                if next.is_none()
                    && !hurry
                    && !waiting.load(Ordering::Acquire)
                    && asking.load(Ordering::Acquire) > 0
                {
                    let more = tokio::time::timeout_at(gathered_by, queue.recv());
                    next = more.await.ok().flatten();
                }
            }
        }
        if batch.is_empty() {
            for f in flushes {
                let _ = f.send(());
            }
            continue;
        }
        let (items, senders): (Vec<Settled>, Vec<_>) = batch.into_iter().unzip();
        let items = Arc::new(items);
        let mut wait = Duration::from_millis(100);
        let mut failures = 0u32;
        let mut said = false;
        let results = loop {
            let batch = items.clone();
            let call = store.call(move |s| s.settle_many(&batch, Utc::now()));
            tokio::pin!(call);
            let r = match tokio::time::timeout(SLOW_SETTLE, &mut call).await {
                Ok(r) => r,
                Err(_) => {
                    // The store is slow or stuck (a hung disk, a lost connection): the
                    // answers go into the log now, in case it never takes them. Each try's
                    // outcome is logged only once committed.
                    if !said {
                        let (posts, published) = answers(&items);
                        warn!(posts = ?posts, published = ?published, "LinkedIn answered, but the store has not recorded it yet; it is recorded as soon as the store takes it");
                        said = true;
                    }
                    call.await
                }
            };
            match r {
                Ok(results) => break results,
                Err(e) => {
                    failures += 1;
                    // Until the store takes them, the log is the only record of the URNs.
                    let (posts, published) = answers(&items);
                    warn!(error = %e, posts = ?posts, published = ?published, failures, retry_in = ?wait, "cannot record outcomes in the store; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(SETTLE_RETRY_MAX);
                }
            }
        };
        if failures > 0 {
            info!(
                failures,
                "outcomes recorded in the store after earlier failures"
            );
        }
        for (done, r) in senders.into_iter().zip(results) {
            let _ = done.send(r.map_err(|e| e.to_string()));
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

/// One in `count` while it lives (a try waiting for LinkedIn's answer; a claimed post not
/// yet sent), dropped on every path, a panic's too.
pub(crate) struct Counted(Arc<AtomicUsize>);

impl Counted {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::AcqRel);
        Counted(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The posts of a batch of outcomes, and `ID=URN` for those LinkedIn published: what the
/// log keeps while the store has not taken them.
fn answers(items: &[Settled]) -> (Vec<&str>, Vec<String>) {
    let posts = items.iter().map(|i| i.post_id.as_str()).collect();
    let published = items
        .iter()
        .filter_map(|i| match &i.outcome {
            Settle::Published { urn } => Some(format!("{}={urn}", i.post_id)),
            _ => None,
        })
        .collect();
    (posts, published)
}

/// How long a batch of outcomes may wait for the store before its answers are logged ahead.
const SLOW_SETTLE: Duration = Duration::from_secs(2);

/// How long the settler waits for the outcomes of tries still waiting for LinkedIn, from
/// the first outcome of a batch. Not for a paced account's (its next post waits for it), nor
/// while the scheduler has due posts waiting for room or a turn (see `waiting`).
const GATHER: Duration = Duration::from_millis(150);

/// The longest wait between two tries to commit an outcome.
const SETTLE_RETRY_MAX: Duration = Duration::from_secs(5);

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
    let midnight = now
        .date_naive()
        .checked_add_days(chrono::Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    later(
        midnight,
        Duration::from_secs(30 + rand::rng().random_range(0..60)),
    )
}

/// When to try again after the `n`th 429 in a row (posts, media and comments alike), and
/// whether that is the daily reset: `Retry-After` when LinkedIn sent one (capped at
/// [`RETRY_AFTER_MAX`]); else the backoff, or just after midnight UTC once the quota looks
/// spent (`n` reached [`QUOTA_SPENT_AFTER`], or the backoff would end past the reset anyway):
/// more tries before it would only burn the next day's calls.
pub fn after_429(
    retry: &Retry,
    retry_after: Option<Duration>,
    n: u32,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, bool) {
    if let Some(d) = retry_after {
        return (later(now, d.min(RETRY_AFTER_MAX)), false);
    }
    let at = later(now, backoff(retry, n));
    let reset = after_quota_reset(now);
    if n >= QUOTA_SPENT_AFTER || at >= reset {
        (reset, true)
    } else {
        (at, false)
    }
}

fn std_to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `t + d`, saturating at the end of time instead of panicking: a `Retry-After` of 10^14
/// seconds or a huge lateness must not bring a publish task down.
pub fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Publisher {
    /// Must be called inside the tokio runtime: it starts the settler.
    pub fn new(config: Live, store: Handle, client: Client, tokens: Arc<Tokens>) -> Publisher {
        let (settler, queue) = mpsc::unbounded_channel();
        let asking = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(AtomicBool::new(false));
        tokio::spawn(settle_in_batches(
            store.clone(),
            queue,
            asking.clone(),
            waiting.clone(),
        ));
        Publisher {
            config,
            client,
            tokens,
            store,
            settler,
            asking,
            waiting,
            media_wake: None,
        }
    }

    /// Whether the scheduler has due posts waiting for room or a turn (see `waiting`).
    pub fn waiting_for_answers(&self, yes: bool) {
        self.waiting.store(yes, Ordering::Release);
    }

    /// Wakes the uploader with `wake` when assets must be uploaded again.
    pub fn with_media_wake(mut self, wake: Arc<tokio::sync::Notify>) -> Publisher {
        self.media_wake = Some(wake);
        self
    }

    /// Publishes a claimed post; `attempt` is the open row in `attempts`, `claimed_at` an
    /// instant taken before its claim committed. `turn` (the scheduler's request permit) is
    /// dropped once LinkedIn answered, so the next claimed post can go while this one is
    /// recorded. `true` unless the outcome took the post out of the schedule for good
    /// (published, or dead): then the scheduler has nothing new of it to look at.
    pub async fn publish<T: Send>(
        &self,
        post: Post,
        attempt: i64,
        claimed_at: crate::wallclock::BootInstant,
        turn: T,
    ) -> bool {
        let started = Utc::now();
        let asking = Counted::new(&self.asking);
        let tried = self.try_once(&post, attempt, claimed_at, started).await;
        drop(asking);
        let Some((result, settle)) = tried else {
            warn!(post_id = %post.id, account = %post.account, "not sent: another node took this post over while this one was stopped past its lease; it resolves the post");
            return true;
        };
        drop(turn);
        // Logged once the store has it, as the store recorded it (a URN another post holds
        // makes it dead); the settler logs the answers ahead when the store is slow.
        let said = (result.clone(), settle.clone());
        // Assets LinkedIn no longer knew are `pending` again: the uploader takes them once
        // the post is back in the schedule, that is once this outcome is committed.
        // (Woken whatever became of the post: the assets may be another post's too.)
        let upload_again = post.content.is_some() && unknown_asset(result.error_code.as_deref());
        let (done, committed) = oneshot::channel();
        let item = Settled {
            post_id: post.id.clone(),
            attempt,
            result,
            outcome: settle,
        };
        let paced = self
            .config
            .get()
            .account(&post.account)
            .is_some_and(|a| !a.min_spacing.is_zero());
        let r = match self.settler.send(ToSettle::Try(item, paced, done)) {
            Ok(()) => committed
                .await
                .unwrap_or_else(|_| Err("the settler stopped".into())),
            Err(_) => Err("the settler stopped".into()),
        };
        // Published or dead for good: nothing of it is in the schedule any more.
        let ended = matches!(
            (&r, &said.1),
            (Ok(Recorded::DuplicateOf(_)), _)
                | (Ok(_), Settle::Published { .. } | Settle::Dead { .. })
        );
        match &r {
            Ok(Recorded::AsSettled) => log_outcome(&post, &said.0, &said.1),
            Ok(Recorded::DuplicateOf(other)) => {
                let urn = match &said.1 {
                    Settle::Published { urn } => urn.as_str(),
                    _ => "",
                };
                warn!(post_id = %post.id, account = %post.account, state = "dead", reason = DeadReason::Duplicate.as_str(), post_urn = %urn, holder = %other, "LinkedIn named a post already recorded for another post; this post is dead as a duplicate of it")
            }
            Err(_) => log_outcome(&post, &said.0, &said.1),
        }
        match r {
            Ok(_) if upload_again => {
                if let Some(wake) = &self.media_wake {
                    wake.notify_one();
                }
                // The node that holds the files may be another (a data_dir of its own): the
                // post is back in the schedule only now.
                if let Err(e) = self.store.call(|s| s.announce_due()).await {
                    warn!(post_id = %post.id, error = %e, "cannot tell the other nodes that assets wait for a new upload");
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(post_id = %post.id, error = %e, "cannot record the outcome; the post will be resolved as in doubt at the next start")
            }
        }
        !ended
    }

    /// Returns once every outcome handed to the settler so far is committed (or the settler
    /// is gone). At shutdown, before posts still `publishing` are taken as interrupted: an
    /// aborted send may have queued its outcome, perhaps a URN, just before.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.settler.send(ToSettle::Flush(done)).is_ok() {
            let _ = flushed.await;
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

    /// One try; `None` when the try is no longer this node's to make (see
    /// `Store::renew_claim`), and nothing was sent.
    async fn try_once(
        &self,
        post: &Post,
        attempt: i64,
        claimed_at: crate::wallclock::BootInstant,
        started: DateTime<Utc>,
    ) -> Option<(AttemptResult, Settle)> {
        let config = self.config.get();
        let Some(account) = config.account(&post.account) else {
            return Some(bury(
                post,
                false,
                DeadReason::AccountRemoved,
                AttemptResult::message(format!(
                    "account {:?} is no longer in the config",
                    post.account
                )),
            ));
        };
        if let Some(dead) = first_try_too_late(post, &config.retry, started) {
            return Some(dead);
        }
        let member = account.token_account().to_string();
        let cred = match self.tokens.get(&member).await {
            Ok(c) => c,
            Err(e @ AuthError::NeedsLogin { .. }) => {
                // Held, not failed: the scheduler sends it once the account logs in again.
                let result = AttemptResult {
                    outcome: AttemptOutcome::Held,
                    ..AttemptResult::message(e.to_string())
                };
                return Some(self.retry_at(post, result, Utc::now(), Budget::Free, None));
            }
            Err(e) => {
                return Some(self.retry_plain(
                    post,
                    e.to_string(),
                    AttemptOutcome::TokenUnavailable,
                ));
            }
        };
        let author = match &account.kind {
            AccountKind::Member => cred.person_urn.clone(),
            AccountKind::Organization { organization, .. } => organization.clone(),
        };
        if let Some(since) = post.in_doubt_since {
            if let Some(found) = self.find_on_page(post, &author, &cred.token, since).await {
                return Some(found);
            }
            if let Some(dead) = past_resend_window(post, since, &config, started) {
                return Some(dead);
            }
        }
        let mut body = PostRequest::text(&author, &post.commentary, &post.visibility);
        if let Some(content) = &post.content {
            match self.content(post, content, &author).await {
                Ok(wire) => body.content = Some(wire),
                Err(not_now) => return Some(*not_now),
            }
        }
        // The fence: the request leaves only while this node's claim holds (renewed now);
        // after a stop past its lease, another node resolves the post instead.
        // SQLite has one daemon: nothing to renew. On PostgreSQL a claim younger than half
        // its lease is still this node's beyond doubt (no node takes a post before its lease
        // ends, and its age is read on CLOCK_BOOTTIME, which counts a freeze and a suspend
        // too): only an older one is renewed,
        // which also tells whether another node took the post meanwhile.
        if config.database_url.is_some() && claimed_at.elapsed() >= config.publisher.claim_lease / 2
        {
            let id = post.id.clone();
            match self.store.call(move |s| s.renew_claim(&id, attempt)).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    return Some(self.retry_plain(post, e.to_string(), AttemptOutcome::Retry))
                }
            }
        }
        // Again now: the token, the page lookup and the media took time, and LinkedIn must
        // see this request (by the end of its timeout at the latest) while it would still
        // refuse it as a duplicate of the try in doubt.
        if let Some(since) = post.in_doubt_since {
            let arrives_by = later(Utc::now(), config.linkedin.request_timeout);
            if let Some(dead) = past_resend_window(post, since, &config, arrives_by) {
                return Some(dead);
            }
        }
        let version = self.client.version().current();
        Some(
            match self.client.create_post(&cred.token, &body, &version).await {
                Ok(created) => {
                    let outcome = if post.in_doubt_since.is_some() {
                        AttemptOutcome::PublishedAfterDoubt
                    } else {
                        AttemptOutcome::Published
                    };
                    (
                        AttemptResult {
                            http_status: Some(201),
                            outcome,
                            message: Some(created.urn.clone()),
                            ..AttemptResult::default()
                        },
                        Settle::Published { urn: created.urn },
                    )
                }
                Err(e) => {
                    self.classify(post, &member, &author, &cred.token, &version, e, started)
                        .await
                }
            },
        )
    }

    /// The post's `content`, built from the stored URNs of its assets, which never change
    /// once available: every try sends the same bytes. The scheduler claims a post only once
    /// its assets are available; if one is not (it changed since), the post is held again, or
    /// dead as `media_failed` if an asset failed.
    async fn content(
        &self,
        post: &Post,
        content: &crate::content::Content,
        author: &str,
    ) -> Result<crate::linkedin::wire::PostContent, Box<(AttemptResult, Settle)>> {
        let (id, owner) = (post.id.clone(), author.to_string());
        let gate = self
            .store
            .call(move |s| s.media_gate(&id, Some(&owner)))
            .await;
        let waiting = |why: String| {
            let config = self.config.get();
            let until = crate::scheduler::hold_end(post.due_at, post.in_doubt_since, &config);
            let result = AttemptResult {
                outcome: AttemptOutcome::Held,
                ..AttemptResult::message(why)
            };
            Box::new((
                result,
                Settle::Held(Hold {
                    reason: HoldReason::MediaProcessing,
                    until,
                }),
            ))
        };
        match gate {
            Ok(MediaGate::Ready(urns)) => content.to_wire(&urns).map_err(waiting),
            Ok(MediaGate::Waiting) => Err(waiting("its media is not available yet".into())),
            Ok(MediaGate::Failed(why)) => Err(Box::new(bury(
                post,
                false,
                DeadReason::MediaFailed,
                AttemptResult::message(why),
            ))),
            Err(e) => Err(Box::new(self.retry_plain(
                post,
                format!("cannot read its media from the store: {e}"),
                AttemptOutcome::Retry,
            ))),
        }
    }

    /// For an in-doubt page post: is it already among the page's recent posts? Only a post
    /// with the same commentary, created at or after the in-doubt try began (less
    /// [`CLOCK_SKEW`]) and not recorded for another of our posts, is taken for it: a recurring
    /// text posted last week is not this post.
    async fn find_on_page(
        &self,
        post: &Post,
        author: &str,
        token: &crate::secret::Secret,
        since: DateTime<Utc>,
    ) -> Option<(AttemptResult, Settle)> {
        if !author.starts_with("urn:li:organization:") {
            return None;
        }
        let earliest = since
            .checked_sub_signed(CLOCK_SKEW)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .timestamp_millis();
        let posts = match self.client.posts_by_author(token, author, earliest).await {
            Ok(posts) => posts,
            Err(e) => {
                info!(post_id = %post.id, error = %e, "in-doubt lookup by author failed; falling back to the duplicate window");
                return None;
            }
        };
        let candidates: Vec<String> = posts
            .into_iter()
            .filter(|p| p.commentary == post.commentary)
            // A post without a creation time cannot be told from an old one: not taken.
            .filter(|p| {
                p.created_at
                    .or(p.published_at)
                    .is_some_and(|t| t >= earliest)
            })
            .map(|p| p.id)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let (id, urns) = (post.id.clone(), candidates.clone());
        let held = match self
            .store
            .call(move |s| s.urns_held_by_others(&urns, &id))
            .await
        {
            Ok(h) => h,
            Err(e) => {
                info!(post_id = %post.id, error = %e, "cannot check the page's posts against the store; falling back to the duplicate window");
                return None;
            }
        };
        let found = candidates.into_iter().find(|u| !held.contains(u))?;
        Some((
            AttemptResult {
                http_status: Some(200),
                outcome: AttemptOutcome::ResolvedFound,
                message: Some(format!("in doubt; found on the page as {found}")),
                ..AttemptResult::default()
            },
            Settle::Published { urn: found },
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn classify(
        &self,
        post: &Post,
        member: &str,
        author: &str,
        used: &crate::secret::Secret,
        sent_version: &str,
        e: ApiError,
        started: DateTime<Utc>,
    ) -> (AttemptResult, Settle) {
        let mut result = result_of(&e);
        let retry = self.config.get().retry.clone();
        if e.is_duplicate() {
            // LinkedIn's check is per author and commentary: the post it names is this text
            // by this author, live. It is this post's unless another of ours holds that URN,
            // which the store checks as it records it (then this one is a true duplicate).
            return match e.duplicate_of() {
                Some(urn) => {
                    result.outcome = AttemptOutcome::ResolvedDuplicate;
                    result.message = Some(format!(
                        "LinkedIn says the same text by the same author is live as {urn}"
                    ));
                    (result, Settle::Published { urn })
                }
                None => bury(post, false, DeadReason::Duplicate, result),
            };
        }
        match &e {
            ApiError::Status { status: 426, .. } => {
                // The operator's problem, not the post's: held until the version changes.
                // Only the version this request carried is retired: a reload may have set a
                // new one while it was on its way.
                let version = sent_version;
                self.client.version().refused(version, "a post", &e);
                result.outcome = AttemptOutcome::ApiVersionRetired;
                if self.client.version().current() != version {
                    // Changed while this request was on its way: tried again at once with the
                    // new one, no try counted.
                    return self.retry_at(post, result, Utc::now(), Budget::Free, None);
                }
                let until = crate::scheduler::hold_end(
                    post.due_at,
                    post.in_doubt_since,
                    &self.config.get(),
                );
                (
                    result,
                    Settle::Held(Hold {
                        reason: HoldReason::ApiVersionRetired,
                        until,
                    }),
                )
            }
            ApiError::Status { status: 401, .. } => {
                // Refresh once; the retry goes out soon, or is held if a login is needed.
                let wait = match self.tokens.unauthorized(member, used).await {
                    Ok(wait) => wait,
                    Err(e) => {
                        info!(post_id = %post.id, error = %e, "token could not be renewed after a 401");
                        Duration::ZERO
                    }
                };
                result.outcome = AttemptOutcome::Unauthorized;
                self.retry_after(post, result, wait, Budget::Attempts, None)
            }
            ApiError::Status {
                status: 429,
                retry_after,
                ..
            } => {
                // LinkedIn refused it: not in doubt.
                let n = post.rate_limited + 1;
                let (at, reset) = after_429(&retry, *retry_after, n, Utc::now());
                if reset {
                    result.outcome = AttemptOutcome::RateLimitedUntilReset;
                }
                self.retry_at(post, result, at, Budget::RateLimit, None)
            }
            ApiError::NotSent { .. } => {
                let wait = backoff(&retry, post.attempts_used + 1);
                self.retry_after(post, result, wait, Budget::Attempts, None)
            }
            ApiError::Status {
                status: 500..=599, ..
            }
            | ApiError::NoAnswer { .. }
            | ApiError::CreatedWithoutUrn { .. } => {
                // The post may be on LinkedIn (a gateway can fail after it was created; a 201
                // without a URN says it is). Resend soon, inside the duplicate window, where
                // LinkedIn's duplicate answer names it: a `Retry-After` is honoured up to
                // that bound, never past it.
                result.outcome = AttemptOutcome::InDoubt;
                let asked = match &e {
                    ApiError::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let wait = asked
                    .unwrap_or_else(|| backoff(&retry, 1))
                    .min(retry.resend_window / 4);
                self.retry_after(post, result, wait, Budget::Attempts, Some(started))
            }
            ApiError::Status { code, message, .. }
                if post.content.is_some() && waiting_upload(code.as_deref(), message) =>
            {
                // Refused, so not created: LinkedIn does not have an asset's bytes yet (a
                // member's image is named once `media.member_grace` passed, its status being
                // unreadable). Not the post's fault: tried again with backoff, counted, so an
                // upload LinkedIn never registers still ends, as `attempts_exhausted`.
                let wait = backoff(&retry, post.attempts_used + 1);
                self.retry_after(post, result, wait, Budget::Attempts, None)
            }
            ApiError::Status { code, .. } if unknown_asset(code.as_deref()) => {
                match &post.content {
                    Some(content) => {
                        self.upload_again(post, content, author, started, result)
                            .await
                    }
                    None => bury(post, false, DeadReason::Rejected, result),
                }
            }
            ApiError::Status { .. } => bury(post, false, DeadReason::Rejected, result),
        }
    }

    /// LinkedIn refused the post because it does not know an asset it names (one uploaded
    /// long ago and never posted may be gone; the notes list these codes among media
    /// errors). Nothing was created: the assets are uploaded again as new ones, and the post
    /// waits for them (held as `media_processing`) and goes with their new URNs. Once per
    /// queued life of the post, and counted: refused so again after a new upload, or with no
    /// asset to upload again, it is dead as `rejected`, as any other refusal.
    async fn upload_again(
        &self,
        post: &Post,
        content: &crate::content::Content,
        author: &str,
        started: DateTime<Utc>,
        result: AttemptResult,
    ) -> (AttemptResult, Settle) {
        let shas: Vec<String> = content.assets().iter().map(|a| a.sha256.clone()).collect();
        let (id, owner) = (post.id.clone(), author.to_string());
        let why = format!(
            "LinkedIn did not know this asset when post {} named it ({}): uploaded again",
            post.id,
            result.message.as_deref().unwrap_or("")
        );
        if shas.is_empty() {
            // A poll or a bare link card: no asset to upload again.
            return bury(post, false, DeadReason::Rejected, result);
        }
        let recent = post.attempts_used + post.rate_limited;
        let again = self
            .store
            .call(move |s| {
                s.media_upload_again(
                    &id,
                    recent,
                    &INVALID_ASSET,
                    &shas,
                    &owner,
                    &why,
                    started,
                    Utc::now(),
                )
            })
            .await;
        match again {
            // Renewed since this try began (another post sharing the asset was refused too,
            // or its new upload is done): this post waits for it, or goes with it.
            Ok(Some(n)) => {
                info!(post_id = %post.id, assets = n, "LinkedIn does not know an asset the post names; uploading it again, then the post goes");
                self.retry_after(post, result, Duration::ZERO, Budget::Attempts, None)
            }
            Ok(None) => bury(post, false, DeadReason::Rejected, result),
            Err(e) => {
                warn!(post_id = %post.id, error = %e, "cannot mark the post's assets for a new upload; trying again later");
                let wait = backoff(&self.config.get().retry, post.attempts_used + 1);
                self.retry_after(post, result, wait, Budget::Attempts, None)
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
        self.retry_at(post, result, later(Utc::now(), wait), counts, in_doubt)
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
        let doubt = in_doubt.is_some();
        if counts == Budget::Attempts && post.attempts_used + 1 >= retry.max_attempts {
            return bury(post, doubt, DeadReason::AttemptsExhausted, result);
        }
        if at > later(post.due_at, retry.max_lateness) {
            return bury(post, doubt, DeadReason::TooLate, result);
        }
        if result.outcome == AttemptOutcome::Pending {
            result.outcome = if counts == Budget::RateLimit {
                AttemptOutcome::RateLimited
            } else {
                AttemptOutcome::Retry
            };
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

    fn retry_plain(
        &self,
        post: &Post,
        message: String,
        outcome: AttemptOutcome,
    ) -> (AttemptResult, Settle) {
        let result = AttemptResult {
            outcome,
            ..AttemptResult::message(message)
        };
        let wait = backoff(&self.config.get().retry, post.attempts_used + 1);
        self.retry_after(post, result, wait, Budget::Attempts, None)
    }
}

/// LinkedIn's codes for a post naming an asset it does not know (or not for this author).
const INVALID_ASSET: [&str; 3] = [
    "INVALID_IMAGE_ID",
    "INVALID_DOCUMENT_ID",
    "INVALID_VIDEO_ID",
];

/// Whether LinkedIn refused a post for naming an asset it does not know.
fn unknown_asset(code: Option<&str>) -> bool {
    code.is_some_and(|c| INVALID_ASSET.contains(&c))
}

/// LinkedIn's refusal of a post naming an asset it has no bytes for yet (the notes:
/// `MEDIA_ASSET_WAITING_UPLOAD`, "Media asset is waiting upload"), by code or by message.
fn waiting_upload(code: Option<&str>, message: &str) -> bool {
    code == Some("MEDIA_ASSET_WAITING_UPLOAD")
        || message.contains("MEDIA_ASSET_WAITING_UPLOAD")
        || message.to_ascii_lowercase().contains("waiting upload")
}

/// A first try (no try counted, none in doubt) that starts more than `retry.max_lateness`
/// after `due_at` is never sent: the daemon was down, or stopped, while it fell due, and a
/// post that late may no longer be what its author wants out. Later tries are bounded when
/// they are scheduled (`retry_at`), and an in-doubt post is resolved, not given up here.
fn first_try_too_late(
    post: &Post,
    retry: &Retry,
    started: DateTime<Utc>,
) -> Option<(AttemptResult, Settle)> {
    let first = post.attempts_used == 0 && post.in_doubt_since.is_none();
    let deadline = later(post.due_at, retry.max_lateness);
    if !first || started <= deadline {
        return None;
    }
    let late = crate::config::fmt_dur(std::time::Duration::from_secs(
        (started - post.due_at).num_seconds().max(0) as u64,
    ));
    let message = format!(
        "not sent: its first try came {late} after it was due ({due}), more than retry.max_lateness ({max}); lipost was probably not running then. To post it now, remove publish_at from the draft and drop it again",
        due = post.due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        max = crate::config::fmt_dur(retry.max_lateness),
    );
    Some(bury(
        post,
        false,
        DeadReason::TooLate,
        AttemptResult::message(message),
    ))
}

/// A post in doubt since `since` is not sent again if LinkedIn could see the new request
/// (`at`) after `retry.resend_window`: only within it does LinkedIn refuse a copy of a post
/// that did land as a duplicate, instead of publishing it twice.
fn past_resend_window(
    post: &Post,
    since: DateTime<Utc>,
    config: &Config,
    at: DateTime<Utc>,
) -> Option<(AttemptResult, Settle)> {
    let window = config.retry.resend_window;
    if at - since <= std_to_chrono(window) {
        return None;
    }
    Some(bury(
        post,
        true,
        DeadReason::InDoubt,
        AttemptResult::message(format!(
            "a try at {since} may have reached LinkedIn (its answer was lost, or was a server error that can come after the post is created); a new try could reach LinkedIn past the {} resend window, so it was not sent again",
            crate::config::fmt_dur(window),
        )),
    ))
}

/// Gives a post up. A post in doubt (an earlier try, or this one, may have reached LinkedIn)
/// is buried as `in_doubt` whatever ended it, and says what a person should check: resending
/// it blindly could post it twice. A duplicate stays `duplicate`, which is as careful.
fn bury(
    post: &Post,
    doubt_now: bool,
    reason: DeadReason,
    mut result: AttemptResult,
) -> (AttemptResult, Settle) {
    let in_doubt = doubt_now || post.in_doubt_since.is_some();
    let reason = if in_doubt && reason != DeadReason::Duplicate {
        DeadReason::InDoubt
    } else {
        reason
    };
    if reason.may_be_live() {
        let why = result.message.take().unwrap_or_default();
        result.message = Some(format!(
            "{why}. It may be on LinkedIn: check the feed; `lipost mark-published {id} URN` records it if it is there, `lipost retry {id} --force` sends it anyway",
            id = post.id
        ));
    }
    result.outcome = AttemptOutcome::Dead;
    (result, Settle::Dead { reason })
}

/// What an error from LinkedIn records in an attempt row (for posts, comments, edits and
/// deletes alike); the caller sets the outcome.
pub(crate) fn result_of(e: &ApiError) -> AttemptResult {
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
            outcome: AttemptOutcome::Pending,
        },
        ApiError::CreatedWithoutUrn { status, .. } => AttemptResult {
            http_status: Some(*status),
            ..AttemptResult::message(e.to_string())
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
            let reason = reason.as_str();
            warn!(post_id = %post.id, account = %post.account, state = "dead", http_status = %status, reason = %reason, error = %msg, "publish failed for good; post is dead")
        }
    }
}

/// For unit tests: a publisher whose client points at a closed port, so nothing leaves.
#[cfg(test)]
pub(crate) fn offline(live: Live, store: Handle) -> Publisher {
    let client = Client::new(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        "202609",
        Duration::from_secs(1),
    );
    let tokens = Arc::new(Tokens::new(live.clone(), client.clone(), store.clone()));
    Publisher::new(live, store, client, tokens)
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

    /// Review finding 17: at shutdown an outcome already queued for the settler is committed
    /// before posts still `publishing` are taken as interrupted, so its URN is kept.
    #[tokio::test]
    async fn flush_commits_every_queued_outcome_before_it_returns() {
        use crate::config::{Config, TEST_CONFIG};
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(TEST_CONFIG, &dir.path().join("config.toml")).unwrap();
        let mut store = crate::store::with_one_post(&config);
        let (_post, attempt) = store
            .claim_many(&["p".to_string()], Utc::now())
            .unwrap()
            .remove(0);
        let handle = Handle::new(store);
        let (_tx, live) = crate::config::Live::new(config);
        let publisher = offline(live, handle.clone());
        // As an aborted send leaves it: queued, its sender gone.
        let (done, _gone) = oneshot::channel();
        let item = Settled {
            post_id: "p".into(),
            attempt,
            result: AttemptResult {
                http_status: Some(201),
                outcome: AttemptOutcome::Published,
                ..AttemptResult::default()
            },
            outcome: Settle::Published {
                urn: "urn:li:share:1".into(),
            },
        };
        publisher
            .settler
            .send(ToSettle::Try(item, false, done))
            .map_err(|_| ())
            .unwrap();
        publisher.flush().await;
        let recovered = handle
            .call(|s| s.recover_interrupted(Utc::now()))
            .await
            .unwrap();
        assert!(recovered.is_empty(), "{recovered:?}");
        let p = handle.call(|s| s.get("p")).await.unwrap();
        assert_eq!(p.state, crate::post::PostState::Published);
        assert_eq!(p.post_urn.as_deref(), Some("urn:li:share:1"));
    }

    #[test]
    fn later_saturates_instead_of_panicking() {
        let now = Utc::now();
        assert_eq!(
            later(now, Duration::from_secs(100_000_000_000_000)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(later(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            later(now, Duration::from_secs(2)),
            now + chrono::Duration::seconds(2)
        );
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
