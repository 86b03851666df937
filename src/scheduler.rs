//! The scheduler: decides which post goes out when, and hands it to the publisher.
//!
//! It sleeps until the earliest `next_attempt_at` in the store and wakes exactly then, or
//! earlier when the watcher re-arms it or a publish finishes; there is no polling interval.
//! It applies pacing (per-account spacing and daily cap, a global limit on requests in
//! flight) and claims due posts in the store (`publishing`, committed) before spawning their
//! sends. The schedule lives in the store, never only in memory.
//!
//! Claims run ahead of the request limit: up to twice `max_concurrent` claimed posts wait
//! for a request permit while `max_concurrent` are sent, so the next claim is committed
//! while requests are in flight, not after. A waiting post that shutdown overtakes is given
//! back unsent; one a crash overtakes is resolved as in doubt at the next start.
//!
//! Every due post that is not claimed for a reason of its own is held in the store with the
//! reason and until when (`hold_reason`, `hold_until`), which takes it out of every look
//! until then: held posts never fill a look, so they can neither starve other accounts nor
//! make the loop spin. Holds a person ends (its account needs a login, LinkedIn retired the
//! API version) last until lifted or the lateness budget ends (for a post in doubt, its resend window,
//! after which it is given up as `in_doubt`); pacing holds (`daily_cap`,
//! `min_spacing`) end by time, when the post is due again. While the API version is retired,
//! nothing is claimed. A post with content is claimed only once every asset it names is
//! available for its author (`store::media_gate`): until then it is held as
//! `media_processing`, lifted by the uploader, and a failed asset makes it dead as
//! `media_failed`. A text post skips that look. A post waiting for a request permit or its account's turn (one at a
//! time when paced) is not held: it goes at the next look. The log says so once per post and
//! reason, and a hold longer than `notify.held_longer_than` is reported once (`post_held`):
//! the scheduler wakes for that instant, and only while such a hold exists.
//!
//! The main sleep is on the wall clock ([`crate::wallclock`]), which keeps counting while
//! the machine is suspended, so a post due during a suspend goes out at resume.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::config::Live;
use crate::linkedin::ApiVersion;
use crate::post::{DeadReason, HoldReason, Post};
use crate::publisher::Publisher;
use crate::store::{DispatchView, Handle, Hold, MediaGate, StoreError};

/// How many due posts one look considers.
const LOOK: usize = 512;

/// Claimed posts not yet answered, in request limits: one batch sending, two waiting. The
/// waiting ones keep requests going while the next claim commits; a crash leaves them in
/// doubt (resolved at the next start), a shutdown gives them back unsent.
const CLAIMED_PER_PERMIT: usize = 3;

/// How long before its due time a post may be claimed. The claim's durable commit is then
/// done when the post comes due, and its request leaves at the due time itself, not after
/// the commit: a burst due at one instant goes out as fast as the requests can, and nodes
/// sharing a database take turns on the claims before it, not during it. The request still
/// never leaves before the due time (the send waits for it on the wall clock), and a post
/// claimed ahead whose daemon dies before it is due is scheduled again for that time.
/// Short, because a claimed post is out of the author's hands (`cancel` calls it in flight).
pub const AHEAD: chrono::Duration = chrono::Duration::milliseconds(500);

/// At most this many posts claimed ahead and not answered at once: after a crash each is a
/// post in doubt, looked up on LinkedIn before it is sent.
const AHEAD_MAX: usize = 1024;

pub struct Scheduler {
    config: Live,
    store: Handle,
    publisher: Arc<Publisher>,
    rearm: Arc<Notify>,
    /// The API version sent; while LinkedIn calls it retired, every due post is held.
    version: Option<ApiVersion>,
    /// The limit on requests in flight; closed at shutdown, which gives back waiting posts.
    permits: Arc<Semaphore>,
    /// Places for claimed posts not yet answered (sending or waiting): see
    /// [`CLAIMED_PER_PERMIT`].
    places: Arc<Semaphore>,
    /// Places for posts claimed before their due time: see [`AHEAD`].
    early: Arc<Semaphore>,
    /// Set at shutdown, after the permits close: ends the waits of posts claimed early,
    /// which are then given back unsent.
    stopping: watch::Sender<bool>,
    /// Claimed posts whose request has not left (waiting for their due time or a permit),
    /// counted until they go or are given back.
    unsent: Arc<AtomicUsize>,
    /// Told when an answer gives its place back.
    freed: Arc<Notify>,
    /// Claimed posts, sending or waiting for a permit, per account.
    busy: HashMap<String, usize>,
    /// Each send's task: its account, and whether its outcome left the post in the schedule.
    tasks: JoinSet<(String, bool)>,
    /// The post each publish task carries, so a task that fails (panics) can still be
    /// settled and its account's place freed.
    carrying: HashMap<tokio::task::Id, (String, String)>,
    /// WATCHDOG=1 interval, when systemd asked for one, and the next ping.
    watchdog: Option<(std::time::Duration, tokio::time::Instant)>,
    last_status: String,
    last_status_at: std::time::Instant,
}

/// What one look at the store found.
#[derive(Clone, Copy)]
struct Look {
    /// Due posts left waiting for a free slot (a permit, or their account's turn).
    blocked: bool,
    /// The look was full: there may be more due posts right now.
    more: bool,
    /// The look made posts due that it did not look at: look again at once.
    again: bool,
    /// The instant the look saw the store as of.
    at: DateTime<Utc>,
    /// Posts due up to this instant (`at` + [`AHEAD`]) were in the look.
    horizon: DateTime<Utc>,
    /// The earliest end of a hold this look set, to the nanosecond (stored times are cut
    /// to the millisecond, so the store alone may not tell that it is later than `at`).
    held_until: Option<DateTime<Utc>>,
}

impl Scheduler {
    pub fn new(
        config: Live,
        store: Handle,
        publisher: Arc<Publisher>,
        rearm: Arc<Notify>,
    ) -> Scheduler {
        let max = config.get().publisher.max_concurrent;
        let permits = Arc::new(Semaphore::new(max));
        let places = Arc::new(Semaphore::new(CLAIMED_PER_PERMIT * max));
        Scheduler {
            config,
            store,
            publisher,
            rearm,
            version: None,
            permits,
            places,
            early: Arc::new(Semaphore::new(AHEAD_MAX)),
            stopping: watch::Sender::new(false),
            unsent: Arc::new(AtomicUsize::new(0)),
            freed: Arc::new(Notify::new()),
            busy: HashMap::new(),
            tasks: JoinSet::new(),
            carrying: HashMap::new(),
            watchdog: crate::service::watchdog_interval().map(|d| (d, tokio::time::Instant::now())),
            last_status: String::new(),
            last_status_at: std::time::Instant::now(),
        }
    }

    /// Holds every due post while LinkedIn says `version` is retired.
    pub fn with_api_version(mut self, version: ApiVersion) -> Scheduler {
        self.version = Some(version);
        self
    }

    /// Runs until `shutdown` turns true, then lets sends in flight finish (up to the
    /// configured timeout). A store error ends it too, but only after the sends in flight
    /// finished and settled: their outcomes are not dropped.
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) -> Result<(), StoreError> {
        let r = self.work(shutdown).await;
        if let Err(e) = &r {
            warn!(error = %e, in_flight = self.tasks.len(), "store error in the scheduler; letting requests in flight finish and settle before exiting");
        }
        self.drain().await;
        // Other nodes (PostgreSQL) sleep until their own next post: what this one gave back,
        // and the account turns its last answers freed, are theirs now.
        let announced = tokio::time::timeout(FLUSH_GRACE, self.store.call(|s| s.announce_due()));
        match announced.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot tell the other nodes that this one stopped; they take its posts at their next look"),
            Err(_) => warn!("the store did not answer; the other nodes take this one's posts at their next look"),
        }
        r
    }

    async fn work(&mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), StoreError> {
        // The last look, and whether what happened since can have changed what it saw. An
        // answer that ended its post for good changes nothing a look would claim, unless the
        // look left posts waiting for room or a turn: during a burst, a look per answer
        // would only compete with the sends (and, on PostgreSQL, for the write lock).
        let mut last: Option<Look> = None;
        let mut look_again = true;
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.ping();
            // Saturated: enough claimed posts wait for the request limit; claim again once
            // half a request limit's worth is answered, not after every single answer.
            let room = self.places.available_permits();
            let saturated = room < self.config.get().publisher.max_concurrent.div_ceil(2);
            let look = match last {
                _ if saturated => Look {
                    blocked: true,
                    more: false,
                    again: false,
                    at: Utc::now(),
                    horizon: Utc::now(),
                    held_until: None,
                },
                Some(seen) if !look_again => seen,
                _ => self.dispatch(room).await?,
            };
            last = Some(look);
            look_again = true;
            // Posts wait for room or a turn: the answers that free them are not held back.
            self.publisher.waiting_for_answers(look.blocked);
            self.report_status().await;
            if look.again || (look.more && !look.blocked) {
                continue;
            }
            // Due after the look, not after now: a hold the look set that ended while the
            // look was committing is already due, and the sleep below must end at once for
            // it, not wait for an unrelated wake (there may be none).
            let (seen, horizon) = (look.at, look.horizon);
            let next = if saturated {
                None
            } else {
                self.store
                    .call(move |s| {
                        // A post the look passed over goes at its due time; one that may be
                        // claimed ahead of it, past the look's horizon, is claimed AHEAD.
                        let due = s.next_due_after(seen)?;
                        let plain = s.next_plain_after(horizon)?.map(|d| d - AHEAD);
                        let due = due.into_iter().chain(plain).min();
                        let report = s.next_hold_report()?;
                        Ok(due.into_iter().chain(report).chain(look.held_until).min())
                    })
                    .await?
            };
            tokio::select! {
                _ = async { crate::wallclock::sleep_until(next.expect("guarded")).await }, if next.is_some() => {}
                _ = self.rearm.notified() => {}
                _ = self.freed.notified() => look_again = look.blocked,
                _ = async { tokio::time::sleep_until(self.watchdog.expect("guarded").1).await }, if self.watchdog.is_some() => look_again = false,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    let mut changed = self.finished(done).await;
                    while let Some(done) = self.tasks.try_join_next_with_id() {
                        changed |= self.finished(done).await;
                    }
                    look_again = changed || look.blocked;
                }
                _ = shutdown.changed() => {}
            }
        }
        Ok(())
    }

    /// WATCHDOG=1 from the loop that does the work: if this loop hangs, systemd restarts us.
    fn ping(&mut self) {
        if let Some((every, next)) = &mut self.watchdog {
            let now = tokio::time::Instant::now();
            if now >= *next {
                crate::service::watchdog();
                *next = now + *every;
            }
        }
    }

    /// STATUS= for `systemctl status`, sent when it changes. During a burst (sends in
    /// flight, so the loop comes round again soon) at most once a second: it reads the store.
    async fn report_status(&mut self) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        let busy = !self.tasks.is_empty();
        if busy && self.last_status_at.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        self.last_status_at = std::time::Instant::now();
        let tz = self.config.get().timezone;
        let line = self
            .store
            .call(move |s| s.summary_line(tz))
            .await
            .unwrap_or_else(|e| format!("cannot read the store: {e}"));
        if line != self.last_status {
            crate::service::status(&line);
            self.last_status = line;
        }
    }

    /// Frees a finished send's account; `true` if its post may be in the schedule again.
    async fn finished(
        &mut self,
        done: Result<(tokio::task::Id, (String, bool)), tokio::task::JoinError>,
    ) -> bool {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some((post_id, account)) = self.carrying.remove(&id) else {
            return true;
        };
        if let Some(n) = self.busy.get_mut(&account) {
            *n -= 1;
            if *n == 0 {
                self.busy.remove(&account);
            }
        }
        let e = match done {
            Ok((_, (_, again))) => return again,
            Err(e) => e,
        };
        // The task ended without settling (a panic): its request may have left, so the
        // post is in doubt, resolved before anything is resent, never stranded.
        let why = format!("the publish task failed while this try was under way ({e}); it may have reached LinkedIn");
        warn!(post_id = %post_id, account = %account, error = %e, "a publish task failed; its post is in doubt");
        let id = post_id.clone();
        let retry = self.config.get().retry.clone();
        let recover = move |s: &mut crate::store::Store| {
            let now = Utc::now();
            s.recover_one(&id, &why, now, retry.max_attempts, |n| {
                crate::publisher::later(now, crate::publisher::backoff(&retry, n))
            })
        };
        if let Err(e) = self.store.call(recover).await {
            warn!(post_id = %post_id, error = %e, "cannot mark the post in doubt; the next start resolves it");
        }
        true
    }

    /// Claims and starts up to `available` due posts that pacing allows. One store call:
    /// look, choose and claim under one lock, so a burst of due posts costs one trip to the
    /// store per batch, not three.
    async fn dispatch(&mut self, available: usize) -> Result<Look, StoreError> {
        let now = Utc::now();
        let horizon = now + AHEAD;
        let config = self.config.get();
        // Read a little more than can be claimed, for posts that pacing or a hold passes over.
        let limit = (available * 2 + 64).min(LOOK);
        let ahead = self.early.available_permits().min(LOOK);
        let midnight = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        let words = config.clone();
        let busy = self.busy.clone();
        // Read under the store's lock, in the look: a reload that sets a new version and then
        // lifts the holds is wholly before the look or wholly after it.
        let version = self.version.clone();
        // Taken before the claims commit: their leases run from a later instant.
        let claimed_at = crate::wallclock::BootInstant::now();
        let (plan, more, claimed, early, news, reported, again) = self
            .store
            // One transaction on PostgreSQL: other nodes' dispatches wait, so pacing and caps
            // count their claims too.
            .call(move |s| {
                s.in_write(|s| {
                    let mut view = s.dispatch_view(now, horizon, (limit, ahead), midnight)?;
                    let due_now = view.due.iter().take_while(|d| d.next_at <= now).count();
                    // Only posts with content: a text post's path does no media work.
                    for d in view.due.iter().filter(|d| d.has_content) {
                        let owner = crate::uploader::owner_of(&config, &d.account, &view.tokens);
                        let gate = s.media_gate(&d.id, owner.as_deref())?;
                        view.media.insert(d.id.clone(), gate);
                    }
                    let retired = version.as_ref().and_then(ApiVersion::retired);
                    let plan = plan(
                        &config,
                        &view,
                        &busy,
                        (available, ahead),
                        now,
                        retired.as_deref(),
                    );
                    // More may lie past a full look; past a full part ahead of now, only while
                    // this look could claim some (else it would spin).
                    let full_ahead = ahead > 0 && view.due.len() - due_now == ahead;
                    let more = due_now == limit || (full_ahead && !plan.early.is_empty());
                    for (id, why) in &plan.expired {
                        s.expire(id, DeadReason::TooLate, why, Utc::now())?;
                    }
                    for (id, why) in &plan.media_failed {
                        s.expire(id, DeadReason::MediaFailed, why, Utc::now())?;
                    }
                    let news = if plan.held.is_empty() {
                        Vec::new()
                    } else {
                        s.hold_many(&plan.held, now)?
                    };
                    let again =
                        lift_if_logged_in_meanwhile(s, &config, &plan.held, &view.tokens, now)?;
                    let claimed = if plan.chosen.is_empty() {
                        Vec::new()
                    } else {
                        s.claim_many(&plan.chosen, Utc::now())?
                    };
                    // A try claimed ahead starts at its due time: no request leaves before.
                    let mut early = Vec::new();
                    for group in plan.early.chunk_by(|a, b| a.1 == b.1) {
                        let ids: Vec<String> = group.iter().map(|(id, _)| id.clone()).collect();
                        early.extend(s.claim_starting(&ids, Utc::now(), group[0].1)?);
                    }
                    let reported = s.report_long_holds(now)?;
                    Ok((plan, more, claimed, early, news, reported, again))
                })
            })
            .await?;
        for (id, why) in &plan.expired {
            warn!(post_id = %id, reason = %why, "too late to send; moved to dead");
        }
        for (id, why) in &plan.media_failed {
            warn!(post_id = %id, reason = %DeadReason::MediaFailed, error = %why, "its media failed; never created, moved to dead");
        }
        for (id, hold) in &plan.held {
            debug!(post_id = %id, hold_reason = %hold.reason, hold_until = %hold.until, "held");
        }
        // Once per post and reason, not per look.
        for i in news {
            let (id, hold) = &plan.held[i];
            let account = plan.held_accounts[i].as_str();
            info!(
                post_id = %id,
                account = %account,
                hold_reason = %hold.reason,
                hold_until = %hold.until,
                "held: {}",
                describe_hold(&words, account, hold.reason, hold.until)
            );
        }
        for id in reported {
            info!(post_id = %id, "held longer than notify.held_longer_than; post_held recorded");
        }
        for (post, attempt) in claimed {
            self.start(post, attempt, claimed_at, false);
        }
        for (post, attempt) in early {
            self.start(post, attempt, claimed_at, true);
        }
        Ok(Look {
            blocked: plan.blocked,
            more,
            again,
            at: now,
            horizon,
            held_until: plan.held.iter().map(|(_, h)| h.until).min(),
        })
    }

    /// Spawns the send of a claimed post; it waits for its due time if claimed `early`, then
    /// for a request permit (first come, first served), or is given back if shutdown closes
    /// the permits first.
    fn start(
        &mut self,
        post: Post,
        attempt: i64,
        claimed_at: crate::wallclock::BootInstant,
        early: bool,
    ) {
        let places = if early { &self.early } else { &self.places };
        let place = places
            .clone()
            .try_acquire_owned()
            .expect("only the scheduler takes places, and it counted them");
        *self.busy.entry(post.account.clone()).or_default() += 1;
        let publisher = self.publisher.clone();
        let permits = self.permits.clone();
        let freed = self.freed.clone();
        let mut stopping = self.stopping.subscribe();
        let carried = (post.id.clone(), post.account.clone());
        let unsent = crate::publisher::Counted::new(&self.unsent);
        let task = self.tasks.spawn(async move {
            let account = post.account.clone();
            if early {
                tokio::select! {
                    _ = crate::wallclock::reached(post.next_attempt_at) => {}
                    _ = stopping.wait_for(|s| *s) => {}
                }
            }
            match permits.acquire_owned().await {
                Ok(permit) => {
                    drop(unsent);
                    let late = (Utc::now() - post.next_attempt_at).num_milliseconds();
                    debug!(post_id = %post.id, account = %post.account, late_ms = late, "publishing");
                    let turn = Turn {
                        _place: place,
                        _permit: permit,
                        freed,
                    };
                    let again = publisher.publish(post, attempt, claimed_at, turn).await;
                    (account, again)
                }
                Err(_closed) => {
                    publisher.release(post, attempt).await;
                    drop(unsent);
                    (account, true)
                }
            }
        });
        self.carrying.insert(task.id(), carried);
    }

    /// Gives back claimed posts still waiting for a permit and waits for sends in flight, up
    /// to the shutdown timeout; what does not finish is left `publishing` and resolved as in
    /// doubt at the next start.
    async fn drain(&mut self) {
        // Closed first: a post whose early wait ends now finds no permit, and is given back.
        self.permits.close();
        self.stopping.send_replace(true);
        if self.tasks.is_empty() {
            return;
        }
        // Posts whose request never left are given back first, whatever the timeout below:
        // cut off, they would be taken for tries that may have reached LinkedIn.
        let unsent = self.unsent.clone();
        let given_back = async move {
            while unsent.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(FLUSH_GRACE, given_back).await;
        info!(
            in_flight = self.tasks.len(),
            "shutting down: waiting for requests in flight"
        );
        let timeout = self.config.get().publisher.shutdown_timeout;
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all).await.is_err() {
            warn!(in_flight = self.tasks.len(), "shutdown timeout reached; unfinished posts will be resolved as in doubt at the next start");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
            // An aborted send may have queued its outcome (a URN) a moment ago: committed
            // first, so it is not taken for an interrupted try. A store that takes nothing
            // (a full disk, a read-only one, a lock) must not keep the daemon from stopping:
            // the posts stay `publishing`, the next start resolves them as in doubt, and the
            // URNs are in the log's "cannot record outcomes" lines.
            if tokio::time::timeout(FLUSH_GRACE, self.publisher.flush())
                .await
                .is_err()
            {
                error!(
                    grace = %crate::config::fmt_dur(FLUSH_GRACE),
                    "cannot record the last outcomes in the store; stopping anyway: their posts stay publishing and are resolved as in doubt at the next start (the URNs LinkedIn gave are in the log lines above)"
                );
                return;
            }
            let _ = self.store.call(|s| s.recover_interrupted(Utc::now())).await;
        }
    }
}

/// How long a stopping daemon waits, past `shutdown_timeout`, for the store to take the
/// outcomes already in hand.
const FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a post being sent holds until LinkedIn answers: its place among the claimed posts
/// and its request permit. Giving them back wakes the scheduler to claim more.
struct Turn {
    _place: OwnedSemaphorePermit,
    _permit: OwnedSemaphorePermit,
    freed: Arc<Notify>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.freed.notify_one();
    }
}

/// What one look decided.
struct Plan {
    /// Posts to claim and send now, in order.
    chosen: Vec<String>,
    /// Posts to claim now and send at their due time (see [`AHEAD`]), in order, with it.
    early: Vec<(String, DateTime<Utc>)>,
    /// Held posts past `retry.max_lateness`, with the reason.
    expired: Vec<(String, String)>,
    /// Posts naming an asset that failed, with why: dead as `media_failed`, never created.
    media_failed: Vec<(String, String)>,
    /// Posts to hold, out of every look until the hold is lifted or ends.
    held: Vec<(String, Hold)>,
    /// The account of each post in `held`, in the same order, for the log.
    held_accounts: Vec<String>,
    /// Due posts left waiting for a free slot (a permit, or their account's turn).
    blocked: bool,
}

/// A login that committed after the look read the tokens and before its `needs_reauth` holds
/// found nothing to lift: those holds are lifted here, and the caller looks again at once.
/// (A login after the holds lifts them itself: see `Store::save_token`.)
fn lift_if_logged_in_meanwhile(
    s: &mut crate::store::Store,
    config: &crate::config::Config,
    held: &[(String, Hold)],
    seen: &[crate::store::Token],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if !held
        .iter()
        .any(|(_, h)| h.reason == HoldReason::NeedsReauth)
    {
        return Ok(false);
    }
    let mark = |t: &crate::store::Token| {
        (
            t.account.clone(),
            t.needs_reauth.is_some(),
            t.updated_at,
            t.access_expires_at,
        )
    };
    let before: std::collections::HashSet<_> = seen.iter().map(mark).collect();
    let served: Vec<String> = s
        .tokens()?
        .iter()
        .map(mark)
        .filter(|m| !before.contains(m))
        .flat_map(|m| config.served_by(&m.0))
        .collect();
    if served.is_empty() {
        return Ok(false);
    }
    s.lift_holds_of(HoldReason::NeedsReauth, &served, now)?;
    Ok(true)
}

/// The end of a post's lateness budget (`due_at + retry.max_lateness`): a held post is
/// looked at again then, and goes dead as `too_late` if still held. Saturates far in the
/// future rather than overflowing.
pub fn hold_deadline(due_at: DateTime<Utc>, config: &crate::config::Config) -> DateTime<Utc> {
    let far: DateTime<Utc> = "9999-01-01T00:00:00Z".parse().expect("valid");
    chrono::Duration::from_std(config.retry.max_lateness)
        .ok()
        .and_then(|d| due_at.checked_add_signed(d))
        .map_or(far, |t| t.min(far))
}

/// When a hold on a post ends: the end of its lateness budget, or for a post in doubt the
/// end of its resend window if that comes first. Past the window it can no longer be sent
/// again, only resolved by a person, so waiting longer would only tell them later.
pub fn hold_end(
    due_at: DateTime<Utc>,
    in_doubt_since: Option<DateTime<Utc>>,
    config: &crate::config::Config,
) -> DateTime<Utc> {
    let deadline = hold_deadline(due_at, config);
    match in_doubt_since {
        Some(since) => deadline.min(crate::publisher::later(since, config.retry.resend_window)),
        None => deadline,
    }
}

/// Chooses among the due posts in `view`: at most `available`, one at a time for a paced
/// account (`busy` counts its posts in flight), none for a held account, and none at all
/// while the API version is `retired`. Held posts are set aside before the limit on claims
/// applies, so any number of them costs one look.
fn plan(
    config: &crate::config::Config,
    view: &DispatchView,
    busy: &HashMap<String, usize>,
    (mut available, mut ahead): (usize, usize),
    now: DateTime<Utc>,
    retired: Option<&str>,
) -> Plan {
    let mut plan = Plan {
        chosen: Vec::new(),
        early: Vec::new(),
        expired: Vec::new(),
        media_failed: Vec::new(),
        held: Vec::new(),
        held_accounts: Vec::new(),
        blocked: false,
    };
    let mut taking: HashMap<&str, usize> = HashMap::new();
    let held = held_accounts(config, &view.tokens);
    for post in &view.due {
        if post.next_at > now {
            // Not due yet: claimed ahead only if nothing would hold or delay it at its due
            // time, else passed over (no hold, no expiry) and looked at when it is due.
            if retired.is_none() && plainly_due(config, view, busy, &taking, &held, post, now) {
                if ahead == 0 {
                    plan.blocked = true;
                    continue;
                }
                *taking.entry(post.account.as_str()).or_default() += 1;
                plan.early.push((post.id.clone(), post.next_at));
                ahead -= 1;
            }
            continue;
        }
        let deadline = hold_end(post.due_at, post.in_doubt_since, config);
        // Held until `until` (at the latest the end of its lateness budget, when a hold an
        // event lifts ends), or expired once that budget is spent.
        let hold_until = |reason, why: String, until: DateTime<Utc>, plan: &mut Plan| {
            if now >= deadline {
                let past =
                    if post.in_doubt_since.is_some() && now < hold_deadline(post.due_at, config) {
                        "held past its resend window (retry.resend_window)"
                    } else {
                        "held past retry.max_lateness"
                    };
                plan.expired
                    .push((post.id.clone(), format!("{past}: {why}")));
            } else {
                plan.held.push((
                    post.id.clone(),
                    Hold {
                        reason,
                        until: until.min(deadline),
                    },
                ));
                plan.held_accounts.push(post.account.clone());
            }
        };
        let hold = |reason, why: String, plan: &mut Plan| hold_until(reason, why, deadline, plan);
        if let Some(version) = retired {
            hold(
                HoldReason::ApiVersionRetired,
                format!("LinkedIn no longer serves LinkedIn-Version {version}"),
                &mut plan,
            );
            continue;
        }
        let account = config.account(&post.account);
        if let Some(why) = account.and_then(|a| held.get(a.token_account())) {
            // Held, not sent: no pointless 401s. Released by a new login, unless too late.
            let member = account.expect("checked").token_account();
            hold(
                HoldReason::NeedsReauth,
                format!("account {member} {why}"),
                &mut plan,
            );
            continue;
        }
        match view.media.get(&post.id) {
            Some(MediaGate::Failed(why)) => {
                plan.media_failed.push((post.id.clone(), why.clone()));
                continue;
            }
            Some(MediaGate::Waiting) => {
                // Lifted by the uploader when an asset becomes available or fails.
                hold(
                    HoldReason::MediaProcessing,
                    "its media never became available".into(),
                    &mut plan,
                );
                continue;
            }
            Some(MediaGate::Ready(_)) | None => {}
        }
        if available == 0 {
            plan.blocked = true;
            continue;
        }
        let Some(account) = account else {
            // The publisher records why it cannot be sent.
            plan.chosen.push(post.id.clone());
            available -= 1;
            continue;
        };
        // Another post of this member was answered 429: LinkedIn's limit is the member's.
        // (A post in doubt is not held: its resend must stay inside the duplicate window,
        // and it may be the one try that goes.)
        let throttled = throttled_until(config, view, account.token_account())
            .filter(|_| post.in_doubt_since.is_none());
        if let Some(until) = throttled {
            if until > now {
                hold_until(
                    HoldReason::RateLimited,
                    "LinkedIn rate-limited its member (429)".into(),
                    until,
                    &mut plan,
                );
                continue;
            }
            // Its wait is over: one try at a time for the member until one is taken, not a
            // burst that the same refusal would meet.
            if member_in_flight(config, view, busy, &taking, account.token_account()) > 0 {
                plan.blocked = true;
                continue;
            }
        }
        let paced = !account.min_spacing.is_zero();
        // Claimed and not yet settled: not in `activity` yet, but they count.
        let in_flight = in_flight(view, busy, &taking, &post.account);
        if paced && in_flight > 0 {
            // One at a time for a paced account, so spacing holds.
            plan.blocked = true;
            continue;
        }
        let (last, today) = view
            .activity
            .get(&post.account)
            .copied()
            .unwrap_or((None, 0));
        // Pacing holds end by time: the post is due again when its account may post.
        let wait = |reason, until, plan: &mut Plan| {
            plan.held.push((post.id.clone(), Hold { reason, until }));
            plan.held_accounts.push(post.account.clone());
        };
        if today >= account.daily_cap {
            wait(HoldReason::DailyCap, next_midnight(now), &mut plan);
            continue;
        }
        if today + in_flight as u32 >= account.daily_cap {
            // The cap is reached if those in flight are published; wait and see.
            plan.blocked = true;
            continue;
        }
        if let Some(last) = last.filter(|_| paced) {
            // Times are stored to the millisecond, cut down: `last` may be up to 1 ms before
            // the answer really came, so 1 ms more keeps the spacing from ever falling short.
            let margin = std::time::Duration::from_millis(1);
            let earliest = crate::publisher::later(last, account.min_spacing + margin);
            if earliest > now {
                wait(HoldReason::MinSpacing, earliest, &mut plan);
                continue;
            }
        }
        *taking.entry(post.account.as_str()).or_default() += 1;
        plan.chosen.push(post.id.clone());
        available -= 1;
    }
    plan
}

/// Whether a post not due yet goes out at its due time as far as anything known now can
/// tell: its account needs no login and is not paced, no 429 holds its member, its media
/// are available, it was never in doubt (a resend keeps to the window of the try in doubt),
/// and its daily cap has room on the day it is due.
fn plainly_due(
    config: &crate::config::Config,
    view: &DispatchView,
    busy: &HashMap<String, usize>,
    taking: &HashMap<&str, usize>,
    held: &HashMap<String, String>,
    post: &crate::store::Due,
    now: DateTime<Utc>,
) -> bool {
    let Some(account) = config.account(&post.account) else {
        return false;
    };
    if post.in_doubt_since.is_some()
        || held.contains_key(account.token_account())
        || !account.min_spacing.is_zero()
        || throttled_until(config, view, account.token_account()).is_some()
        || matches!(
            view.media.get(&post.id),
            Some(MediaGate::Failed(_) | MediaGate::Waiting)
        )
    {
        return false;
    }
    let (_, today) = view
        .activity
        .get(&post.account)
        .copied()
        .unwrap_or((None, 0));
    let in_flight = in_flight(view, busy, taking, &post.account);
    // `today` counts from this day's midnight: a post due after the next is not judged by it.
    post.next_at < next_midnight(now) && today + (in_flight as u32) < account.daily_cap
}

/// The latest next try of the posts of `member`'s accounts (the member and the pages it
/// posts for) that wait after a 429 of their own.
fn throttled_until(
    config: &crate::config::Config,
    view: &DispatchView,
    member: &str,
) -> Option<DateTime<Utc>> {
    if view.throttled.is_empty() {
        // Nearly always: no walk over the accounts for every due post.
        return None;
    }
    config
        .accounts
        .values()
        .filter(|a| a.token_account() == member)
        .filter_map(|a| view.throttled.get(&a.name).copied())
        .max()
}

/// Posts of `member`'s accounts in flight: this node's, other nodes' (PostgreSQL) and those
/// this plan has chosen.
fn member_in_flight(
    config: &crate::config::Config,
    view: &DispatchView,
    busy: &HashMap<String, usize>,
    taking: &HashMap<&str, usize>,
    member: &str,
) -> usize {
    config
        .accounts
        .values()
        .filter(|a| a.token_account() == member)
        .map(|a| in_flight(view, busy, taking, &a.name))
        .sum()
}

/// Posts of `account` in flight: this node's or every node's (PostgreSQL), whichever the
/// look saw more of, and those this plan has chosen.
fn in_flight(
    view: &DispatchView,
    busy: &HashMap<String, usize>,
    taking: &HashMap<&str, usize>,
    account: &str,
) -> usize {
    let mine = busy.get(account).copied().unwrap_or(0);
    let everyone = view.in_flight.get(account).copied().unwrap_or(0);
    mine.max(everyone) + taking.get(account).copied().unwrap_or(0)
}

/// The next 00:00 UTC, when the daily cap counts from zero again.
fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .checked_add_days(chrono::Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc())
}

/// A hold in words, for the log and `lipost show`: "daily cap of 25 posts reached for
/// account me; goes out after 2026-11-24 00:00 UTC" (times in `timezone`).
pub fn describe_hold(
    config: &crate::config::Config,
    account: &str,
    reason: HoldReason,
    until: DateTime<Utc>,
) -> String {
    let at = until
        .with_timezone(&config.timezone)
        .format("%Y-%m-%d %H:%M:%S %Z");
    let acct = config.account(account);
    match reason {
        HoldReason::DailyCap => format!(
            "daily cap of {} posts reached for account {account}; goes out after {at}",
            acct.map_or(0, |a| a.daily_cap)
        ),
        HoldReason::MinSpacing => format!(
            "account {account} posts at most once every {}; goes out after {at}",
            crate::config::fmt_dur(acct.map_or(std::time::Duration::ZERO, |a| a.min_spacing))
        ),
        HoldReason::RateLimited => format!(
            "LinkedIn rate-limited account {}'s last try (429; its limits are per member, so its other posts wait too); next try after {at}",
            acct.map_or(account, |a| a.token_account())
        ),
        HoldReason::Backoff => format!("the last try failed; next try after {at}"),
        HoldReason::InDoubtResend => format!(
            "the last try may have reached LinkedIn; resent after {at}, inside LinkedIn's duplicate window, which tells"
        ),
        HoldReason::NeedsReauth => format!(
            "account {} needs `lipost auth login`; goes out after the login, or is dead as too_late at {at}",
            acct.map_or(account, |a| a.token_account())
        ),
        HoldReason::ApiVersionRetired => format!(
            "LinkedIn retired linkedin.version {}: set a recent one, then `systemctl reload lipost`; dead as too_late at {at} unless done before",
            config.linkedin.version
        ),
        HoldReason::Slot => format!("waiting for its posting slot at {at}"),
        HoldReason::MediaProcessing => format!(
            "waiting for its media to be AVAILABLE on LinkedIn (uploading, processing, or a member image's media.member_grace); looked at again when an asset is ready, dead as too_late at {at} if still waiting"
        ),
    }
}

/// Member accounts whose posts must wait for a login, with the reason.
fn held_accounts(
    config: &crate::config::Config,
    tokens: &[crate::store::Token],
) -> HashMap<String, String> {
    let mut held: HashMap<String, String> = tokens
        .iter()
        .filter_map(|t| {
            Some((
                t.account.clone(),
                format!("needs re-auth: {}", t.needs_reauth.as_ref()?),
            ))
        })
        .collect();
    if config.linkedin.mode == crate::config::Mode::Live {
        for a in config.accounts.values() {
            let member = a.token_account();
            if !tokens.iter().any(|t| t.account == member) {
                held.insert(
                    member.to_string(),
                    "has no token: run `lipost auth login`".into(),
                );
            }
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, TEST_CONFIG};
    use crate::store::{Due, Token, TokenSource};

    fn config(extra_me: &str) -> Config {
        let text = TEST_CONFIG.replace(
            "[accounts.me]\nkind = \"member\"\n",
            &format!("[accounts.me]\nkind = \"member\"\n{extra_me}\n"),
        );
        Config::parse(&text, std::path::Path::new("/x/config.toml")).unwrap()
    }

    fn view(posts: &[(&str, &str)], activity: &[(&str, u32)], tokens: Vec<Token>) -> DispatchView {
        let due_at = "2026-11-23T10:00:00Z".parse().unwrap();
        DispatchView {
            due: posts
                .iter()
                .map(|(id, account)| Due {
                    id: id.to_string(),
                    account: account.to_string(),
                    due_at,
                    in_doubt_since: None,
                    has_content: false,
                    next_at: due_at,
                })
                .collect(),
            tokens,
            media: HashMap::new(),
            in_flight: HashMap::new(),
            throttled: HashMap::new(),
            activity: activity
                .iter()
                .map(|(a, n)| (a.to_string(), (Some(due_at), *n)))
                .collect(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:01Z".parse().unwrap()
    }

    /// A send task that panics (none should: this is the net under the checked arithmetic)
    /// leaves no post stranded in `publishing` and no account held.
    #[tokio::test]
    async fn a_publish_task_that_panics_puts_its_post_in_doubt_and_frees_its_account() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(TEST_CONFIG, &dir.path().join("config.toml")).unwrap();
        let mut store = crate::store::with_one_post(&config);
        let (post, _attempt) = store
            .claim_many(&["p".to_string()], Utc::now())
            .unwrap()
            .remove(0);
        let handle = Handle::new(store);
        let (_tx, live) = crate::config::Live::new(config);
        let publisher = Arc::new(crate::publisher::offline(live.clone(), handle.clone()));
        let mut s = Scheduler::new(live, handle.clone(), publisher, Arc::new(Notify::new()));
        *s.busy.entry(post.account.clone()).or_default() += 1;
        let task = s.tasks.spawn(async { panic!("a bug in a send") });
        s.carrying
            .insert(task.id(), (post.id.clone(), post.account.clone()));
        let done = s.tasks.join_next_with_id().await.unwrap();
        assert!(done.is_err());
        s.finished(done).await;
        assert!(s.busy.is_empty(), "the account is free");
        let (p, attempts) = handle
            .call(|s| Ok((s.get("p")?, s.attempts("p")?)))
            .await
            .unwrap();
        assert_eq!(p.state, crate::post::PostState::Scheduled);
        assert!(
            p.in_doubt_since.is_some(),
            "in doubt: the request may have left"
        );
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            attempts[0].outcome.as_deref(),
            Some(crate::post::AttemptOutcome::Interrupted.as_str())
        );
        // The try counts and the next one waits: a task that panics every time must not
        // become a busy loop of token requests.
        assert_eq!(p.attempts_used, 1);
        assert!(p.next_attempt_at > Utc::now(), "{}", p.next_attempt_at);
    }

    /// A task that panics at every try is tried `max_attempts` times, then buried as
    /// `in_doubt` (any of the tries may have reached LinkedIn), not retried for ever.
    #[tokio::test]
    async fn a_publish_task_that_always_panics_ends_dead_in_doubt_after_max_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{TEST_CONFIG}\n[retry]\nmax_attempts = 2\n");
        let config = Config::parse(&text, &dir.path().join("config.toml")).unwrap();
        let handle = Handle::new(crate::store::with_one_post(&config));
        let (_tx, live) = crate::config::Live::new(config);
        let publisher = Arc::new(crate::publisher::offline(live.clone(), handle.clone()));
        let mut s = Scheduler::new(live, handle.clone(), publisher, Arc::new(Notify::new()));
        for _ in 0..2 {
            let (post, _attempt) = handle
                .call(|s| Ok(s.claim_many(&["p".to_string()], Utc::now())?.remove(0)))
                .await
                .unwrap();
            let task = s.tasks.spawn(async { panic!("a bug in a send") });
            s.carrying
                .insert(task.id(), (post.id.clone(), post.account.clone()));
            let done = s.tasks.join_next_with_id().await.unwrap();
            s.finished(done).await;
        }
        let (p, letters) = handle
            .call(|s| Ok((s.get("p")?, s.dead_letters()?)))
            .await
            .unwrap();
        assert_eq!(p.state, crate::post::PostState::Dead);
        assert!(p.in_doubt_since.is_some());
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].reason, DeadReason::InDoubt.as_str());
    }

    #[test]
    fn takes_no_more_than_the_places_free() {
        let v = view(&[("a", "me"), ("b", "acme"), ("c", "me")], &[], vec![]);
        let p = plan(&config(""), &v, &HashMap::new(), (2, 0), now(), None);
        assert_eq!(p.chosen, ["a", "b"]);
        assert!(p.blocked);
    }

    #[test]
    fn a_429_for_one_post_holds_the_members_others_then_lets_one_try_at_a_time() {
        let c = config("");
        let reset: DateTime<Utc> = "2026-11-24T00:00:42Z".parse().unwrap();
        // The page posts with the member's token: the member's limit is its limit too.
        let mut v = view(&[("a", "me"), ("b", "acme"), ("c", "me")], &[], vec![]);
        v.throttled.insert("me".into(), reset);
        let p = plan(&c, &v, &HashMap::new(), (10, 0), now(), None);
        assert!(p.chosen.is_empty());
        let held: Vec<_> = p
            .held
            .iter()
            .map(|(id, h)| (id.as_str(), h.reason, h.until))
            .collect();
        assert_eq!(
            held,
            [
                ("a", HoldReason::RateLimited, reset),
                ("b", HoldReason::RateLimited, reset),
                ("c", HoldReason::RateLimited, reset)
            ]
        );
        // The wait is over: one try, the others wait for its answer.
        let p = plan(&c, &v, &HashMap::new(), (10, 0), reset, None);
        assert_eq!(p.chosen, ["a"]);
        assert!(p.held.is_empty() && p.blocked);
        let busy = HashMap::from([("acme".to_string(), 1)]);
        let p = plan(&c, &v, &busy, (10, 0), reset, None);
        assert!(p.chosen.is_empty() && p.blocked);
        // Never past the lateness budget (24 h from 10:00), and a post in doubt goes: its
        // resend must stay inside the duplicate window.
        let far: DateTime<Utc> = "2026-11-30T00:00:00Z".parse().unwrap();
        let mut v = view(&[("a", "me"), ("b", "me")], &[], vec![]);
        v.throttled.insert("me".into(), far);
        v.due[1].in_doubt_since = Some(now());
        let p = plan(&c, &v, &HashMap::new(), (10, 0), now(), None);
        let deadline: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        assert_eq!(p.held.len(), 1);
        assert_eq!((p.held[0].0.as_str(), p.held[0].1.until), ("a", deadline));
        assert_eq!(p.chosen, ["b"]);
        let p = plan(&c, &v, &HashMap::new(), (10, 0), deadline, None);
        assert_eq!(p.expired.len(), 1, "{:?}", p.expired);
        assert_eq!(p.expired[0].0, "a");
    }

    #[test]
    fn a_paced_account_sends_one_at_a_time() {
        let c = config("min_spacing = \"1s\"");
        let v = view(&[("a", "me"), ("b", "me"), ("c", "acme")], &[], vec![]);
        let p = plan(&c, &v, &HashMap::new(), (10, 0), now(), None);
        assert_eq!(p.chosen, ["a", "c"]);
        assert!(p.blocked);
        let busy = HashMap::from([("me".to_string(), 1)]);
        let p = plan(&c, &v, &busy, (10, 0), now(), None);
        assert_eq!(p.chosen, ["c"]);
    }

    #[test]
    fn a_post_not_yet_due_is_claimed_ahead_only_if_nothing_would_hold_it_then() {
        let soon = now() + chrono::Duration::milliseconds(200);
        let ahead = |mut v: DispatchView| {
            for d in v.due.iter_mut().filter(|d| d.id != "due") {
                d.next_at = soon;
            }
            v
        };
        let c = config("");
        let v = ahead(view(
            &[("due", "me"), ("a", "me"), ("b", "acme")],
            &[],
            vec![],
        ));
        let p = plan(&c, &v, &HashMap::new(), (10, 10), now(), None);
        assert_eq!(p.chosen, ["due"]);
        assert_eq!(p.early, [("a".to_string(), soon), ("b".to_string(), soon)]);
        assert!(p.held.is_empty() && p.expired.is_empty() && !p.blocked);

        // No room ahead: it waits, and says so.
        let p = plan(&c, &v, &HashMap::new(), (10, 1), now(), None);
        assert_eq!(p.early, [("a".to_string(), soon)]);
        assert!(p.blocked);

        // Paced, in doubt, at its cap, or due after midnight: passed over, neither held nor
        // blocked; it is looked at again when due.
        let paced = config("min_spacing = \"1s\"");
        let v = ahead(view(&[("a", "me")], &[], vec![]));
        let p = plan(&paced, &v, &HashMap::new(), (10, 10), now(), None);
        assert!(p.early.is_empty() && p.held.is_empty() && !p.blocked);
        let mut v = ahead(view(&[("a", "me")], &[], vec![]));
        v.due[0].in_doubt_since = Some(now());
        let p = plan(&c, &v, &HashMap::new(), (10, 10), now(), None);
        assert!(p.early.is_empty() && p.held.is_empty());
        let capped = config("daily_cap = 3");
        let v = ahead(view(&[("a", "me")], &[("me", 3)], vec![]));
        let p = plan(&capped, &v, &HashMap::new(), (10, 10), now(), None);
        assert!(p.early.is_empty() && p.held.is_empty());
        let mut v = ahead(view(&[("a", "me")], &[], vec![]));
        let late = "2026-11-23T23:59:59.800Z".parse().unwrap();
        v.due[0].next_at = "2026-11-24T00:00:00.100Z".parse().unwrap();
        let p = plan(&c, &v, &HashMap::new(), (10, 10), late, None);
        assert!(p.early.is_empty() && p.held.is_empty());

        // Nothing is claimed ahead while the API version is retired.
        let v = ahead(view(&[("a", "me")], &[], vec![]));
        let p = plan(&c, &v, &HashMap::new(), (10, 10), now(), Some("202001"));
        assert!(p.early.is_empty());
    }

    #[test]
    fn the_daily_cap_defers_to_the_reset_only_once_reached() {
        let c = config("daily_cap = 3");
        let v = view(&[("a", "me"), ("b", "me")], &[("me", 2)], vec![]);
        // Two published today, one more allowed; the second waits for it to settle, since
        // it may fail and leave room.
        let p = plan(&c, &v, &HashMap::new(), (10, 0), now(), None);
        assert_eq!(p.chosen, ["a"]);
        assert!(p.held.is_empty());
        assert!(p.blocked);
        // Claimed in an earlier look, not settled yet: counts too.
        let busy = HashMap::from([("me".to_string(), 1)]);
        let p = plan(&c, &v, &busy, (10, 0), now(), None);
        assert!(p.chosen.is_empty());
        assert!(p.held.is_empty());
        // Reached: held as `daily_cap` until the next midnight UTC.
        let v = view(&[("a", "me")], &[("me", 3)], vec![]);
        let p = plan(&c, &v, &HashMap::new(), (10, 0), now(), None);
        assert!(p.chosen.is_empty());
        assert_eq!(p.held.len(), 1);
        assert_eq!(p.held[0].1.reason, HoldReason::DailyCap);
        assert_eq!(
            p.held[0].1.until,
            "2026-11-24T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn min_spacing_holds_until_the_next_allowed_time() {
        let c = config("min_spacing = \"1h\"");
        // `view` says the account last published at 10:00:00.
        let v = view(&[("a", "me")], &[("me", 1)], vec![]);
        let p = plan(&c, &v, &HashMap::new(), (10, 0), now(), None);
        assert!(p.chosen.is_empty());
        assert_eq!(p.held.len(), 1);
        assert_eq!(p.held[0].1.reason, HoldReason::MinSpacing);
        // An hour after it, and 1 ms for the millisecond the stored time may have lost.
        assert_eq!(
            p.held[0].1.until,
            "2026-11-23T11:00:00.001Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(p.held_accounts, ["me"]);
    }

    #[test]
    fn a_held_account_is_skipped_and_expires_past_max_lateness() {
        let token = Token {
            account: "me".into(),
            member_urn: "urn:li:person:1".into(),
            access_token: crate::secret::Secret::new("t"),
            access_expires_at: now(),
            refresh_token: None,
            refresh_expires_at: None,
            scopes: vec![],
            source: TokenSource::Sandbox,
            needs_reauth: Some("refresh refused".into()),
            updated_at: now(),
        };
        // `acme` posts through `me`, so it is held as well.
        let v = view(&[("a", "me"), ("b", "acme")], &[], vec![token]);
        let p = plan(&config(""), &v, &HashMap::new(), (10, 0), now(), None);
        assert!(p.chosen.is_empty());
        assert!(p.expired.is_empty());
        assert_eq!(p.held.len(), 2);
        assert!(p
            .held
            .iter()
            .all(|(_, h)| h.reason == HoldReason::NeedsReauth && h.until > now()));
        let later = now() + chrono::Duration::days(2);
        let p = plan(&config(""), &v, &HashMap::new(), (10, 0), later, None);
        assert_eq!(p.expired.len(), 2);
        assert!(p.expired[0].1.contains("needs re-auth"), "{:?}", p.expired);
    }

    /// A login whose lift ran between the look's read of the tokens and its holds found
    /// nothing to lift: the look lifts them itself, only for that token's accounts.
    #[test]
    fn a_login_between_the_look_and_its_holds_does_not_leave_them_held() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(TEST_CONFIG, &dir.path().join("config.toml")).unwrap();
        let mut store = crate::store::with_one_post(&config);
        let t = Utc::now();
        let held = vec![(
            "p".to_string(),
            Hold {
                reason: HoldReason::NeedsReauth,
                until: t + chrono::Duration::hours(1),
            },
        )];
        store.hold_many(&held, t).unwrap();
        // Nothing changed since the look: the holds stand.
        let seen = store.tokens().unwrap();
        assert!(!lift_if_logged_in_meanwhile(&mut store, &config, &held, &seen, t).unwrap());
        assert!(store.hold_of("p").unwrap().is_some());
        // The login committed in between (its own lift, run before the hold, found nothing).
        let token = Token {
            account: "me".into(),
            member_urn: "urn:li:person:1".into(),
            access_token: crate::secret::Secret::new("t"),
            access_expires_at: t + chrono::Duration::days(60),
            refresh_token: None,
            refresh_expires_at: None,
            scopes: vec!["w_member_social".into()],
            source: TokenSource::Login,
            needs_reauth: None,
            updated_at: t,
        };
        store.save_token(&token, &[]).unwrap();
        assert!(store.hold_of("p").unwrap().is_some());
        assert!(lift_if_logged_in_meanwhile(&mut store, &config, &held, &seen, t).unwrap());
        assert!(store.hold_of("p").unwrap().is_none(), "due again");
    }

    #[test]
    fn held_posts_do_not_use_up_the_places() {
        let mut token = Token {
            account: "me".into(),
            member_urn: "urn:li:person:1".into(),
            access_token: crate::secret::Secret::new("t"),
            access_expires_at: now(),
            refresh_token: None,
            refresh_expires_at: None,
            scopes: vec![],
            source: TokenSource::Import,
            needs_reauth: Some("401".into()),
            updated_at: now(),
        };
        let mut posts: Vec<(String, &str)> = (0..100).map(|i| (format!("h{i}"), "me")).collect();
        posts.push(("other".into(), "other"));
        let refs: Vec<(&str, &str)> = posts.iter().map(|(i, a)| (i.as_str(), *a)).collect();
        let c = config("\n[accounts.other]\nkind = \"member\"");
        let p = plan(
            &c,
            &view(&refs, &[], vec![token.clone()]),
            &HashMap::new(),
            (2, 0),
            now(),
            None,
        );
        assert_eq!(p.chosen, ["other"]);
        assert_eq!(p.held.len(), 100);
        token.needs_reauth = None;
        let p = plan(
            &c,
            &view(&refs, &[], vec![token]),
            &HashMap::new(),
            (2, 0),
            now(),
            None,
        );
        assert_eq!(p.chosen, ["h0", "h1"]);
        assert!(p.held.is_empty());
    }

    /// Review finding 14: a held post in doubt is held only until its resend window ends,
    /// then given up (the store buries it as `in_doubt`), not at the end of its lateness.
    #[test]
    fn a_held_post_in_doubt_is_given_up_when_its_resend_window_ends() {
        let c = config("");
        let mut v = view(&[("a", "me"), ("b", "me")], &[], vec![]);
        let since = now() - chrono::Duration::seconds(10);
        v.due[0].in_doubt_since = Some(since);
        let p = plan(&c, &v, &HashMap::new(), (10, 0), now(), Some("202001"));
        assert!(p.expired.is_empty());
        let until: HashMap<_, _> = p
            .held
            .iter()
            .map(|(id, h)| (id.as_str(), h.until))
            .collect();
        assert_eq!(
            until["a"],
            since + chrono::Duration::from_std(c.retry.resend_window).unwrap()
        );
        assert_eq!(until["b"], hold_deadline(v.due[1].due_at, &c));
        let later = until["a"] + chrono::Duration::seconds(1);
        let p = plan(&c, &v, &HashMap::new(), (10, 0), later, Some("202001"));
        assert_eq!(p.expired.len(), 1, "{:?}", p.expired);
        assert_eq!(p.expired[0].0, "a");
        assert!(p.expired[0].1.contains("resend window"), "{:?}", p.expired);
        assert_eq!(p.held.len(), 1);
    }

    #[test]
    fn a_retired_api_version_holds_every_due_post() {
        let v = view(&[("a", "me"), ("b", "acme")], &[], vec![]);
        let p = plan(
            &config(""),
            &v,
            &HashMap::new(),
            (10, 0),
            now(),
            Some("202001"),
        );
        assert!(p.chosen.is_empty());
        assert_eq!(p.held.len(), 2);
        assert!(p
            .held
            .iter()
            .all(|(_, h)| h.reason == HoldReason::ApiVersionRetired));
        let later = now() + chrono::Duration::days(2);
        let p = plan(
            &config(""),
            &v,
            &HashMap::new(),
            (10, 0),
            later,
            Some("202001"),
        );
        assert_eq!(p.expired.len(), 2);
        assert!(p.held.is_empty());
    }
}
