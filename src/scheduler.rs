//! The scheduler: decides which post goes out when, and hands it to the publisher.
//!
//! It sleeps until the earliest `next_attempt_at` in the store and wakes exactly then, or
//! earlier when the watcher re-arms it or a publish finishes; there is no polling interval.
//! It applies pacing (per-account spacing and daily cap, a global limit on requests in
//! flight) and claims due posts in the store (`publishing`, committed) before spawning their
//! sends. The schedule lives in the store, never only in memory.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::Live;
use crate::post::Post;
use crate::publisher::Publisher;
use crate::store::{Handle, StoreError};

/// How many due posts one look considers.
const LOOK: usize = 512;

pub struct Scheduler {
    config: Live,
    store: Handle,
    publisher: Arc<Publisher>,
    rearm: Arc<Notify>,
    permits: Arc<Semaphore>,
    /// Told when a send gives its permit back.
    freed: Arc<Notify>,
    /// Posts in flight per account.
    busy: HashMap<String, usize>,
    tasks: JoinSet<String>,
    /// WATCHDOG=1 interval, when systemd asked for one, and the next ping.
    watchdog: Option<(std::time::Duration, tokio::time::Instant)>,
    last_status: String,
}

/// What one look at the store found.
struct Look {
    /// Due posts left waiting for a free slot (a permit, or their account's turn).
    blocked: bool,
    /// The look was full: there may be more due posts right now.
    more: bool,
}

impl Scheduler {
    pub fn new(
        config: Live,
        store: Handle,
        publisher: Arc<Publisher>,
        rearm: Arc<Notify>,
    ) -> Scheduler {
        let permits = Arc::new(Semaphore::new(config.get().publisher.max_concurrent));
        Scheduler {
            config,
            store,
            publisher,
            rearm,
            permits,
            freed: Arc::new(Notify::new()),
            busy: HashMap::new(),
            tasks: JoinSet::new(),
            watchdog: crate::service::watchdog_interval().map(|d| (d, tokio::time::Instant::now())),
            last_status: String::new(),
        }
    }

    /// Runs until `shutdown` turns true, then lets sends in flight finish (up to the
    /// configured timeout).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), StoreError> {
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.ping();
            // Saturated: the request limit is busy; look again once half of it is free, not
            // after every single answer.
            let max = self.config.get().publisher.max_concurrent;
            let saturated = self.permits.available_permits() < max.div_ceil(2);
            let look = if saturated {
                Look {
                    blocked: true,
                    more: false,
                }
            } else {
                self.dispatch().await?
            };
            self.report_status().await;
            if look.more && !look.blocked {
                continue;
            }
            let now = Utc::now();
            let next = if saturated {
                None
            } else {
                self.store.call(move |s| s.next_due_after(now)).await?
            };
            let sleep = next.map(|t| {
                let d = (t - Utc::now()).to_std().unwrap_or_default();
                tokio::time::Instant::now() + d
            });
            tokio::select! {
                _ = async { tokio::time::sleep_until(sleep.expect("guarded")).await }, if sleep.is_some() => {}
                _ = self.rearm.notified() => {}
                _ = self.freed.notified() => {}
                _ = async { tokio::time::sleep_until(self.watchdog.expect("guarded").1).await }, if self.watchdog.is_some() => {}
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.finished(done);
                    while let Some(done) = self.tasks.try_join_next() {
                        self.finished(done);
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
        self.drain().await;
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

    /// STATUS= for `systemctl status`, sent when it changes.
    async fn report_status(&mut self) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
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

    fn finished(&mut self, done: Result<String, tokio::task::JoinError>) {
        match done {
            Ok(account) => {
                if let Some(n) = self.busy.get_mut(&account) {
                    *n -= 1;
                    if *n == 0 {
                        self.busy.remove(&account);
                    }
                }
            }
            Err(e) => warn!(error = %e, "a publish task failed"),
        }
    }

    /// Claims and starts every due post that pacing and the request limit allow.
    async fn dispatch(&mut self) -> Result<Look, StoreError> {
        let now = Utc::now();
        let config = self.config.get();
        // Claim only what can be sent now: a claimed post is in doubt if we crash. Read a
        // little more than that, for posts that pacing or a hold passes over.
        let mut available = self.permits.available_permits();
        let limit = (available * 2 + 64).min(LOOK);
        let midnight = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        let view = self
            .store
            .call(move |s| s.dispatch_view(now, limit, midnight))
            .await?;
        let due = view.due;
        let more = due.len() == limit;
        let mut blocked = false;
        let mut chosen: Vec<Post> = Vec::new();
        let mut taking: HashMap<String, usize> = HashMap::new();
        let mut deferred: Vec<(String, DateTime<Utc>)> = Vec::new();
        let held = held_accounts(&config, &view.tokens);
        let mut expired: Vec<(String, String)> = Vec::new();
        for post in &due {
            if available == 0 {
                blocked = true;
                break;
            }
            let Some(account) = config.account(&post.account) else {
                chosen.push(post.clone());
                available -= 1;
                continue;
            };
            if let Some(why) = held.get(account.token_account()) {
                // Held, not sent: no pointless 401s. Released by a new login, unless too late.
                let lateness = chrono::Duration::from_std(self.config.get().retry.max_lateness)
                    .unwrap_or_default();
                if now > post.due_at + lateness {
                    expired.push((
                        post.id.clone(),
                        format!(
                            "held past retry.max_lateness because account {} {why}",
                            account.token_account()
                        ),
                    ));
                }
                continue;
            }
            let paced = !account.min_spacing.is_zero();
            let in_flight = self.busy.get(&post.account).copied().unwrap_or(0)
                + taking.get(&post.account).copied().unwrap_or(0);
            if paced && in_flight > 0 {
                // One at a time for a paced account, so spacing holds.
                blocked = true;
                continue;
            }
            let (last, today) = view
                .activity
                .get(&post.account)
                .copied()
                .unwrap_or((None, 0));
            let taken_now = taking.get(&post.account).copied().unwrap_or(0) as u32;
            if today + taken_now >= account.daily_cap {
                deferred.push((post.id.clone(), crate::publisher::after_quota_reset(now)));
                continue;
            }
            if let Some(last) = last.filter(|_| paced) {
                let earliest =
                    last + chrono::Duration::from_std(account.min_spacing).unwrap_or_default();
                if earliest > now {
                    deferred.push((post.id.clone(), earliest));
                    continue;
                }
            }
            *taking.entry(post.account.clone()).or_default() += 1;
            chosen.push(post.clone());
            available -= 1;
        }
        if !expired.is_empty() {
            for (id, why) in &expired {
                warn!(post_id = %id, reason = %why, "too late to send; moved to dead");
            }
            self.store
                .call(move |s| {
                    expired.iter().try_for_each(|(id, why)| {
                        s.expire(id, "too_late", why, Utc::now()).map(|_| ())
                    })
                })
                .await?;
        }
        if !deferred.is_empty() {
            for (id, at) in &deferred {
                debug!(post_id = %id, until = %at, "paced: account spacing or daily cap");
            }
            self.store.call(move |s| s.defer_many(&deferred)).await?;
        }
        if !chosen.is_empty() {
            let claimed = self
                .store
                .call(move |s| s.claim_many(chosen, Utc::now()))
                .await?;
            for (post, attempt) in claimed {
                self.start(post, attempt);
            }
        }
        Ok(Look { blocked, more })
    }

    fn start(&mut self, post: Post, attempt: i64) {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .expect("only the scheduler takes permits, and it counted them");
        *self.busy.entry(post.account.clone()).or_default() += 1;
        let lateness = (Utc::now() - post.next_attempt_at).num_milliseconds();
        debug!(post_id = %post.id, account = %post.account, late_ms = lateness, "publishing");
        let publisher = self.publisher.clone();
        let freed = self.freed.clone();
        self.tasks.spawn(async move {
            let account = post.account.clone();
            publisher.publish(post, attempt, permit, &freed).await;
            account
        });
    }

    /// Waits for sends in flight, up to the shutdown timeout; what does not finish is left
    /// `publishing` and resolved as in doubt at the next start.
    async fn drain(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        info!(
            in_flight = self.tasks.len(),
            "shutting down: waiting for requests in flight"
        );
        let timeout = self.config.get().publisher.shutdown_timeout;
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all).await.is_err() {
            warn!(in_flight = self.tasks.len(), "shutdown timeout reached; unfinished posts will be resolved as in doubt at the next start");
            self.tasks.abort_all();
            let _ = self.store.call(|s| s.recover_interrupted(Utc::now())).await;
        }
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
