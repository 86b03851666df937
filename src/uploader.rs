//! The uploader: moves every asset of a scheduled post toward `AVAILABLE` before the post is
//! due, and records each step in the store (`media`, `media_attempts`).
//!
//! A post's assets are taken up `media.upload_ahead` before its due time (at once when it is
//! due sooner): initialize (afresh at every try, so an interrupted upload or an expired upload
//! URL is simply redone), upload streamed from the media store, finalize (videos), then wait
//! for `AVAILABLE`: the status is read every `media.poll_interval`, and what it says is
//! obeyed. Only where LinkedIn refuses to say (403: a member token may not read a
//! member-owned image, and perhaps a document) is the asset taken as available
//! `media.member_grace` after its upload.
//! Failures back off like posts (`publisher::backoff`, the 429 rules); `PROCESSING_FAILED`
//! or a refusal makes the asset `failed`. When an asset becomes available or fails, the
//! `media_processing` holds are lifted and the scheduler woken, which decides what the post
//! does. The uploader never creates a post, and it sleeps until a known instant (the next
//! asset step, the next post entering the upload window) or a wake-up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::auth::{AuthError, Tokens};
use crate::config::{AccountKind, Config, Live};
use crate::content::MediaKind;
use crate::linkedin::media::{AssetStatus, Part};
use crate::linkedin::{ApiError, Client};
use crate::publisher::{after_429, backoff, later, RETRY_AFTER_MAX};
use crate::secret::Secret;
use crate::store::{Handle, MediaOutcome, MediaRow, MediaStatus, MediaStep, StoreError, Token};

/// Assets worked on at once: a long video does not keep an image waiting.
const PARALLEL: usize = 2;

/// Tries of one video part before the whole upload try is given up (and redone later).
const PART_TRIES: u32 = 3;

/// The longest wait between two tries of one video part.
const PART_RETRY_MAX: Duration = Duration::from_secs(10);

/// The URN a post of `account` is written by, and so the owner of its assets: the page, or
/// the member the stored token belongs to. `None` when no token says who the member is.
pub fn owner_of(config: &Config, account: &str, tokens: &[Token]) -> Option<String> {
    let a = config.account(account)?;
    match &a.kind {
        AccountKind::Organization { organization, .. } => Some(organization.clone()),
        AccountKind::Member => tokens
            .iter()
            .find(|t| t.account == a.token_account())
            .map(|t| t.member_urn.clone()),
    }
}

/// A member's images (LinkedIn refuses their status to a member token) and documents (in
/// case it refuses those too): a 403 on their status means "wait the grace", not "failed".
fn maybe_unreadable(kind: MediaKind, owner: &str) -> bool {
    kind != MediaKind::Video && owner.starts_with("urn:li:person:")
}

pub struct Uploader {
    config: Live,
    store: Handle,
    client: Client,
    tokens: Arc<Tokens>,
    /// Told by intake and the wake file: look again.
    wake: Arc<Notify>,
    /// The scheduler's: told when an asset became available or failed.
    rearm: Arc<Notify>,
}

/// One asset to work on, and the member account whose token does it.
struct Job {
    row: MediaRow,
    member: String,
}

/// What a job changed that the scheduler cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changed {
    Nothing,
    /// Available or failed: a held post may go now, or die.
    Settled,
}

impl Uploader {
    pub fn new(
        config: Live,
        store: Handle,
        client: Client,
        tokens: Arc<Tokens>,
        wake: Arc<Notify>,
        rearm: Arc<Notify>,
    ) -> Uploader {
        Uploader {
            config,
            store,
            client,
            tokens,
            wake,
            rearm,
        }
    }

    /// Runs until `shutdown`; a try under way then is dropped (redone at the next start).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let me = Arc::new(self);
        match me
            .store
            .call(|s| {
                // An upload under way may be another live node's (PostgreSQL).
                if s.other_nodes_alive()? {
                    return Ok(0);
                }
                s.media_recover_interrupted(Utc::now())
            })
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                info!(
                    assets = n,
                    "uploads interrupted by the last stop are redone"
                )
            }
            Err(e) => warn!(error = %e, "cannot reset interrupted uploads"),
        }
        let mut running: HashSet<(String, String)> = HashSet::new();
        let mut tasks: JoinSet<((String, String), Changed)> = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let next = match me.look(&mut running, &mut tasks).await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "uploader: cannot read the store; looking again in 5s");
                    Some(later(Utc::now(), Duration::from_secs(5)))
                }
            };
            tokio::select! {
                _ = async { crate::wallclock::sleep_until(next.expect("guarded")).await }, if next.is_some() => {}
                _ = me.wake.notified() => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let mut settled = false;
                    let mut finish = |done: Result<((String, String), Changed), tokio::task::JoinError>| {
                        match done {
                            Ok((key, changed)) => {
                                running.remove(&key);
                                settled |= changed == Changed::Settled;
                            }
                            Err(e) => {
                                warn!(error = %e, "an upload task failed; the asset is tried again at the next start");
                            }
                        }
                    };
                    finish(done);
                    while let Some(done) = tasks.try_join_next() {
                        finish(done);
                    }
                    if settled {
                        // An asset became available or failed: the transaction that recorded
                        // it lifted the holds of the posts waiting for media (see
                        // `Store::media_available`); the scheduler looks at them again.
                        me.rearm.notify_one();
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Starts the steps that are due; returns when to look again.
    async fn look(
        self: &Arc<Self>,
        running: &mut HashSet<(String, String)>,
        tasks: &mut JoinSet<((String, String), Changed)>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = Utc::now();
        let config = self.config.get();
        let ahead = config.media.upload_ahead;
        let window = later(now, ahead);
        let (posts, upcoming) = self
            .store
            .call(move |s| {
                Ok((
                    s.posts_with_media_due(window)?,
                    s.next_media_post_after(window)?,
                ))
            })
            .await?;
        let mut next: Option<DateTime<Utc>> = upcoming.map(|due| {
            due.checked_sub_signed(chrono::Duration::from_std(ahead).unwrap_or_default())
                .unwrap_or(due)
        });
        let mut jobs: Vec<Job> = Vec::new();
        let mut owners: HashMap<String, Option<String>> = HashMap::new();
        let mut token_failed = false;
        for post in posts {
            let assets: Vec<_> = post.content.assets().into_iter().cloned().collect();
            if assets.is_empty() {
                continue;
            }
            let Some(account) = config.account(&post.account) else {
                continue;
            };
            let member = account.token_account().to_string();
            let owner = match owners.get(&post.account) {
                Some(o) => o.clone(),
                None => {
                    let o = self.owner(&config, &post.account, &mut token_failed).await;
                    owners.insert(post.account.clone(), o.clone());
                    o
                }
            };
            // No usable token: the scheduler holds the post; a login wakes us.
            let Some(owner) = owner else { continue };
            let changed = post.updated_at;
            let rows = self
                .store
                .call(move |s| {
                    let refs: Vec<_> = assets.iter().collect();
                    s.ensure_media(&owner, &refs, changed, now)
                })
                .await?;
            for row in rows {
                if matches!(row.status, MediaStatus::Available | MediaStatus::Failed) {
                    continue;
                }
                // Several nodes: the node that took the bundle holds its files (unless
                // `data_dir`'s media/ is shared); a node without them leaves the upload to it.
                if config.database_url.is_some()
                    && !crate::media::path(&config, &row.sha256).is_ok_and(|p| p.is_file())
                {
                    continue;
                }
                let key = (row.sha256.clone(), row.owner.clone());
                if running.contains(&key)
                    || jobs
                        .iter()
                        .any(|j| j.row.sha256 == key.0 && j.row.owner == key.1)
                {
                    continue;
                }
                match row.next_attempt_at {
                    Some(at) if at > now => next = Some(next.map_or(at, |n| n.min(at))),
                    _ => jobs.push(Job {
                        row,
                        member: member.clone(),
                    }),
                }
            }
        }
        for job in jobs {
            if running.len() >= PARALLEL {
                // Looked at again when a running one ends.
                break;
            }
            let key = (job.row.sha256.clone(), job.row.owner.clone());
            running.insert(key.clone());
            let me = self.clone();
            tasks.spawn(async move {
                let changed = me.work(job).await;
                (key, changed)
            });
        }
        if token_failed {
            // Asked again in a minute, as a send with a failing token endpoint would be.
            let again = later(now, Duration::from_secs(60));
            next = Some(next.map_or(again, |n| n.min(again)));
        }
        Ok(next)
    }

    /// The owner URN of `account`'s assets, once a token to upload with is at hand (asking
    /// for one mints it in the sandbox); `None` while there is none (a login wakes us).
    /// `None` too when getting one failed for a passing reason (the token endpoint did not
    /// answer): then `*again` is set, as no login will come to wake us.
    async fn owner(&self, config: &Config, account: &str, again: &mut bool) -> Option<String> {
        let a = config.account(account)?;
        let cred = match self.tokens.get(a.token_account()).await {
            Ok(cred) => cred,
            Err(e) => {
                *again |= !matches!(e, AuthError::NeedsLogin { .. });
                // The scheduler says so once, as a `needs_reauth` hold; this runs at every look.
                tracing::debug!(account = %account, error = %e, "no token to upload media with; waiting for one");
                return None;
            }
        };
        match &a.kind {
            AccountKind::Organization { organization, .. } => Some(organization.clone()),
            AccountKind::Member => Some(cred.person_urn),
        }
    }

    async fn work(&self, job: Job) -> Changed {
        let row = &job.row;
        let cred = match self.tokens.get(&job.member).await {
            Ok(c) => c,
            Err(AuthError::NeedsLogin { .. }) => return Changed::Nothing,
            Err(e) => {
                let at = later(
                    Utc::now(),
                    backoff(&self.config.get().retry, row.attempts + 1),
                );
                return self.again(row, at, true, &format!("no token: {e}")).await;
            }
        };
        match row.status {
            MediaStatus::Pending | MediaStatus::Uploading => {
                self.upload(row, &job.member, &cred.token).await
            }
            MediaStatus::Processing => self.poll(row, &job.member, &cred.token).await,
            MediaStatus::Available | MediaStatus::Failed => Changed::Nothing,
        }
    }

    /// One upload try: initialize, upload, finalize (videos). Ends `processing`, or
    /// `pending` again with a backoff, or `failed`.
    async fn upload(&self, row: &MediaRow, member: &str, token: &Secret) -> Changed {
        let (sha, owner) = (row.sha256.clone(), row.owner.clone());
        let claimed = self
            .store
            .call(move |s| s.media_claim(&sha, &owner, Utc::now()))
            .await;
        match claimed {
            Ok(true) => {}
            Ok(false) => return Changed::Nothing,
            Err(e) => {
                warn!(sha256 = %row.sha256, error = %e, "cannot claim an asset for upload");
                return Changed::Nothing;
            }
        }
        let step = self.step_start(row, MediaStep::Initialize).await;
        // The name is checked (64 hex digits): a stored content that says otherwise is not a
        // path to read and upload.
        let path = match crate::media::path(&self.config.get(), &row.sha256) {
            Ok(p) => p,
            Err(e) => {
                let e = ApiError::NotSent {
                    url: String::new(),
                    detail: e.to_string(),
                };
                return self.failed_step(row, step, member, token, e).await;
            }
        };
        let plan = match self
            .client
            .initialize_upload(token, row.kind, &row.owner, row.bytes)
            .await
        {
            Ok(plan) => {
                self.step_end(step, Some(200), Some(&plan.urn), MediaOutcome::Done)
                    .await;
                plan
            }
            Err(e) => return self.failed_step(row, step, member, token, e).await,
        };
        if row.kind == MediaKind::Video {
            let mut etags = Vec::with_capacity(plan.parts.len());
            for part in &plan.parts {
                match self.upload_part(row, part, &path).await {
                    Ok(etag) => etags.push(etag),
                    Err((step, e)) => return self.failed_step(row, step, member, token, e).await,
                }
            }
            let step = self.step_start(row, MediaStep::Finalize).await;
            let upload_token = plan.upload_token.as_deref().unwrap_or_default();
            match self
                .client
                .finalize_video(token, &plan.urn, upload_token, &etags)
                .await
            {
                Ok(()) => {
                    self.step_end(step, Some(200), None, MediaOutcome::Done)
                        .await
                }
                Err(e) => return self.failed_step(row, step, member, token, e).await,
            }
        } else {
            let step = self.step_start(row, MediaStep::Upload).await;
            let url = plan.upload_url.as_deref().unwrap_or_default();
            match self.client.upload_file(token, url, &path, row.bytes).await {
                Ok(()) => {
                    self.step_end(step, Some(201), None, MediaOutcome::Done)
                        .await
                }
                Err(e) => return self.failed_step(row, step, member, token, e).await,
            }
        }
        let now = Utc::now();
        let config = self.config.get();
        let mut next = later(now, config.media.poll_interval);
        if maybe_unreadable(row.kind, &row.owner) {
            next = next.min(later(now, config.media.member_grace));
        }
        let (sha, owner, urn) = (row.sha256.clone(), row.owner.clone(), plan.urn.clone());
        if let Err(e) = self
            .store
            .call(move |s| s.media_uploaded(&sha, &owner, &urn, next, now))
            .await
        {
            warn!(sha256 = %row.sha256, error = %e, "cannot record an upload; it is redone");
            return Changed::Nothing;
        }
        info!(sha256 = %row.sha256, owner = %row.owner, kind = %row.kind.as_str(), urn = %plan.urn, bytes = row.bytes, "media uploaded; waiting for LinkedIn to process it");
        Changed::Nothing
    }

    /// One video part, retried on its own: its ETag, or the last failure's step and error.
    async fn upload_part(
        &self,
        row: &MediaRow,
        part: &Part,
        path: &std::path::Path,
    ) -> Result<String, (i64, ApiError)> {
        let mut n = 0;
        loop {
            n += 1;
            let step = self.step_start(row, MediaStep::Upload).await;
            match self.client.upload_part(part, path).await {
                Ok(etag) => {
                    let what = format!("bytes {}-{}", part.first, part.last);
                    self.step_end(step, Some(200), Some(&what), MediaOutcome::Done)
                        .await;
                    return Ok(etag);
                }
                Err(e) if n < PART_TRIES && transient(&e) => {
                    let message = format!("bytes {}-{}: {e}", part.first, part.last);
                    self.step_end(step, status_of(&e), Some(&message), MediaOutcome::Retry)
                        .await;
                    let wait = backoff(&self.config.get().retry, n).min(PART_RETRY_MAX);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err((step, e)),
            }
        }
    }

    /// Reads the status of an uploaded asset and obeys it. Only a status LinkedIn refuses
    /// to give (a member's image) is taken as available once its grace has passed: a status
    /// that can be read always wins over the grace.
    async fn poll(&self, row: &MediaRow, member: &str, token: &Secret) -> Changed {
        let config = self.config.get();
        let now = Utc::now();
        let member_asset = maybe_unreadable(row.kind, &row.owner);
        let grace_end = row
            .uploaded_at
            .map(|t| later(t, config.media.member_grace))
            .unwrap_or(now);
        let Some(urn) = row.urn.clone() else {
            // Only a hand edit makes one: say so rather than guess.
            return self.fail(row, "recorded as uploaded without a URN").await;
        };
        let step = self.step_start(row, MediaStep::Status).await;
        match self.client.asset_status(token, row.kind, &urn).await {
            Ok(AssetStatus::Available) => {
                self.step_end(step, Some(200), Some("AVAILABLE"), MediaOutcome::Available)
                    .await;
                self.available(row).await
            }
            Ok(AssetStatus::Failed(reason)) => {
                let why = format!(
                    "LinkedIn could not process it (PROCESSING_FAILED): {}",
                    reason.as_deref().unwrap_or("no reason given")
                );
                self.step_end(step, Some(200), Some(&why), MediaOutcome::Failed)
                    .await;
                self.fail(row, &why).await
            }
            Ok(other) => {
                let what = format!("{other:?}");
                self.step_end(step, Some(200), Some(&what), MediaOutcome::Processing)
                    .await;
                let at = later(now, config.media.poll_interval);
                self.again(row, at, false, "").await
            }
            Err(ApiError::Status {
                status: 403,
                message,
                ..
            }) if member_asset && now >= grace_end => {
                let why = format!(
                    "taken as available: media.member_grace ({}) has passed since the upload, and a member token may not read its status ({message})",
                    crate::config::fmt_dur(config.media.member_grace)
                );
                self.step_end(step, Some(403), Some(&why), MediaOutcome::Available)
                    .await;
                self.available(row).await
            }
            Err(ApiError::Status {
                status: 403,
                message,
                ..
            }) if member_asset => {
                self.step_end(step, Some(403), Some(&message), MediaOutcome::NotReadable)
                    .await;
                self.again(row, grace_end, false, "").await
            }
            Err(e) => self.failed_step(row, step, member, token, e).await,
        }
    }

    /// A step failed with `e`: back off (as posts do), or fail the asset for good.
    async fn failed_step(
        &self,
        row: &MediaRow,
        step: i64,
        member: &str,
        token: &Secret,
        e: ApiError,
    ) -> Changed {
        let retry = self.config.get().retry.clone();
        let now = Utc::now();
        let message = e.to_string();
        let status = status_of(&e);
        let n = row.attempts + 1;
        let counted = |at: DateTime<Utc>| (at, true);
        let (at, counts, outcome) = match &e {
            ApiError::Status {
                status: 429,
                retry_after,
                ..
            } => {
                self.step_end(step, status, Some(&message), MediaOutcome::RateLimited)
                    .await;
                let (sha, owner) = (row.sha256.clone(), row.owner.clone());
                let in_a_row = self
                    .store
                    .call(move |s| s.media_rate_limited_in_a_row(&sha, &owner))
                    .await
                    .unwrap_or(1);
                let (at, _) = after_429(&retry, *retry_after, in_a_row, now);
                warn!(sha256 = %row.sha256, error = %message, next_attempt_at = %at, "media upload rate-limited (429)");
                return self.again(row, at, false, &message).await;
            }
            ApiError::Status { status: 401, .. } => {
                let wait = self
                    .tokens
                    .unauthorized(member, token)
                    .await
                    .unwrap_or(Duration::ZERO);
                let (at, c) = counted(later(now, wait));
                (at, c, MediaOutcome::Retry)
            }
            ApiError::Status { status: 426, .. } => {
                // The operator's problem, not the asset's: no try counted, and the shared
                // version is marked retired, so the scheduler holds every due post for it.
                let version = self.client.version().current();
                self.client
                    .version()
                    .refused(&version, "a media upload", &message);
                (later(now, backoff(&retry, n)), false, MediaOutcome::Retry)
            }
            e if expired_url(e) => {
                // Initialized too long ago: the next try initializes afresh, at once.
                let (at, c) = counted(now);
                (at, c, MediaOutcome::Retry)
            }
            e if transient(e) => {
                // A `Retry-After` on a 5xx is honoured too: uploading again is harmless.
                let asked = match e {
                    ApiError::Status { retry_after, .. } => {
                        retry_after.map(|d| d.min(RETRY_AFTER_MAX))
                    }
                    _ => None,
                };
                let wait = asked.unwrap_or_else(|| backoff(&retry, n));
                let (at, c) = counted(later(now, wait));
                (at, c, MediaOutcome::Retry)
            }
            _ => {
                self.step_end(step, status, Some(&message), MediaOutcome::Failed)
                    .await;
                warn!(sha256 = %row.sha256, owner = %row.owner, error = %message, "media upload refused; the asset failed");
                return self.fail(row, &message).await;
            }
        };
        self.step_end(step, status, Some(&message), outcome).await;
        if counts && n >= retry.max_attempts {
            let why = format!("gave up after {n} tries (retry.max_attempts): {message}");
            warn!(sha256 = %row.sha256, owner = %row.owner, error = %message, "media upload failed for good");
            return self.fail(row, &why).await;
        }
        warn!(sha256 = %row.sha256, owner = %row.owner, error = %message, next_attempt_at = %at, "media step failed; will retry");
        self.again(row, at, counts, &message).await
    }

    async fn again(&self, row: &MediaRow, at: DateTime<Utc>, counts: bool, why: &str) -> Changed {
        let (sha, owner, why) = (
            row.sha256.clone(),
            row.owner.clone(),
            (!why.is_empty()).then(|| why.to_string()),
        );
        if let Err(e) = self
            .store
            .call(move |s| s.media_again(&sha, &owner, at, counts, why.as_deref(), Utc::now()))
            .await
        {
            warn!(sha256 = %row.sha256, error = %e, "cannot record a media retry");
        }
        Changed::Nothing
    }

    async fn available(&self, row: &MediaRow) -> Changed {
        let (sha, owner) = (row.sha256.clone(), row.owner.clone());
        match self
            .store
            .call(move |s| s.media_available(&sha, &owner, Utc::now()))
            .await
        {
            Ok(()) => {
                info!(sha256 = %row.sha256, owner = %row.owner, urn = %row.urn.as_deref().unwrap_or("-"), "media available");
                Changed::Settled
            }
            Err(e) => {
                warn!(sha256 = %row.sha256, error = %e, "cannot record an available asset");
                Changed::Nothing
            }
        }
    }

    async fn fail(&self, row: &MediaRow, why: &str) -> Changed {
        let (sha, owner, w) = (row.sha256.clone(), row.owner.clone(), why.to_string());
        match self
            .store
            .call(move |s| s.media_failed(&sha, &owner, &w, Utc::now()))
            .await
        {
            Ok(()) => {
                warn!(sha256 = %row.sha256, owner = %row.owner, urn = %row.urn.as_deref().unwrap_or("-"), error = %why, "media failed; posts naming it will not be created");
                Changed::Settled
            }
            Err(e) => {
                warn!(sha256 = %row.sha256, error = %e, "cannot record a failed asset");
                Changed::Nothing
            }
        }
    }

    async fn step_start(&self, row: &MediaRow, step: MediaStep) -> i64 {
        let (sha, owner) = (row.sha256.clone(), row.owner.clone());
        self.store
            .call(move |s| s.media_step_start(&sha, &owner, step, Utc::now()))
            .await
            .unwrap_or_else(|e| {
                warn!(sha256 = %row.sha256, error = %e, "cannot record a media step");
                0
            })
    }

    async fn step_end(
        &self,
        id: i64,
        status: Option<u16>,
        message: Option<&str>,
        outcome: MediaOutcome,
    ) {
        let message = message.map(str::to_string);
        if let Err(e) = self
            .store
            .call(move |s| s.media_step_end(id, status, message.as_deref(), outcome, Utc::now()))
            .await
        {
            warn!(error = %e, "cannot record the end of a media step");
        }
    }
}

fn status_of(e: &ApiError) -> Option<u16> {
    match e {
        ApiError::Status { status, .. } if *status > 0 => Some(*status),
        _ => None,
    }
}

/// Worth repeating after a backoff: nothing answered, or LinkedIn failed (5xx, 429, 408).
fn transient(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::NotSent { .. }
            | ApiError::NoAnswer { .. }
            | ApiError::Status {
                status: 500..=599 | 429 | 408,
                ..
            }
    )
}

/// LinkedIn's `EXPIRED_UPLOAD_URL`: initialize again.
fn expired_url(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { code, message, .. }
        if code.as_deref() == Some("EXPIRED_UPLOAD_URL") || message.contains("EXPIRED_UPLOAD_URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_member_images_and_documents_may_be_unreadable() {
        assert!(maybe_unreadable(MediaKind::Image, "urn:li:person:1"));
        assert!(maybe_unreadable(MediaKind::Document, "urn:li:person:1"));
        assert!(!maybe_unreadable(MediaKind::Video, "urn:li:person:1"));
        assert!(!maybe_unreadable(MediaKind::Image, "urn:li:organization:1"));
    }

    #[test]
    fn an_expired_upload_url_is_initialized_again() {
        let e = ApiError::Status {
            status: 400,
            code: Some("EXPIRED_UPLOAD_URL".into()),
            service_error_code: None,
            message: "expired".into(),
            retry_after: None,
        };
        assert!(expired_url(&e));
        assert!(!transient(&e));
    }
}
