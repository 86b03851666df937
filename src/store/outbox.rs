//! The notification outbox (`notifications`): events recorded in the same transaction as the
//! change they report, one row per event and sink, and their delivery state.
//!
//! Which kinds go to which sinks lives in a TEMP table on the store's own connection
//! (`notify_routes`), set at start and on reload: the hooks are functions of the transaction
//! alone, so the dead-letter and re-auth paths each need one call and no new parameter, and a
//! disabled kind costs one indexed lookup and writes nothing. Sending is `crate::notify`'s job.

use super::db::{params, Db, Dialect, Optional};
use chrono::{DateTime, Utc};

use super::{opt_ts, parse_ts, ts, Result, Store, StoreError};
use crate::notify::{self, Event, Kind, Routes, Sink};
use crate::post::{AttemptResult, DeadReason};

/// A row waiting to be sent.
#[derive(Debug, Clone)]
pub struct PendingNotification {
    pub id: String,
    pub kind: Kind,
    pub sink: Sink,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
}

/// A row's delivery state, as the `status` column spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    Pending,
    Sent,
    /// Given up after `notify::GIVE_UP_AFTER`, or a `test` event that failed.
    Failed,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Sent => "sent",
            NotificationStatus::Failed => "failed",
        }
    }
}

/// Creates the (empty) routes table on a writable connection: no route, no row. Also
/// `notify_held`: one row, the SQLite time modifier for `notify.held_longer_than`, while
/// `post_held` is routed (a new hold's report time is computed in its statement; no row, no
/// report time, no wake-up).
pub(super) fn attach(conn: &Db) -> Result<()> {
    conn.execute_batch(match conn.dialect() {
        Dialect::Sqlite => {
            "CREATE TEMP TABLE IF NOT EXISTS notify_routes (kind TEXT NOT NULL, sink TEXT NOT NULL, \
             PRIMARY KEY (kind, sink)) WITHOUT ROWID; \
             CREATE TEMP TABLE IF NOT EXISTS notify_held (after_ms INTEGER NOT NULL)"
        }
        Dialect::Postgres => {
            "CREATE TEMP TABLE IF NOT EXISTS notify_routes (kind TEXT COLLATE \"C\" NOT NULL, \
             sink TEXT COLLATE \"C\" NOT NULL, PRIMARY KEY (kind, sink)); \
             CREATE TEMP TABLE IF NOT EXISTS notify_held (after_ms BIGINT NOT NULL)"
        }
    })
}

fn corrupt(column: &'static str, value: &str, expected: &'static str) -> StoreError {
    StoreError::Corrupt {
        table: "notifications",
        column,
        value: value.to_string(),
        expected,
    }
}

/// Records `event` for every sink its kind is routed to, inside `tx`; how many rows.
pub(super) fn record(tx: &Db, event: &Event, now_s: &str) -> Result<usize> {
    if !routed(tx, event.kind)? {
        return Ok(0);
    }
    let id = notify::new_id();
    let n = tx
        .prepare_cached(
            "INSERT INTO notifications (id, kind, sink, post_id, account, payload, created_at, next_attempt_at) \
             SELECT ?1, kind, sink, ?3, ?4, ?5, ?6, ?6 FROM notify_routes WHERE kind = ?2",
        )?
        .execute(params![
            id,
            event.kind.as_str(),
            event.post_id,
            event.account,
            event.payload(&id, now_s),
            now_s
        ])?;
    if n > 0 {
        // Before the commit: the sender's next store call runs after this one's.
        notify::recorded().notify_one();
    }
    Ok(n)
}

/// Whether `kind` goes to any sink: one cached lookup, so an event nobody wants costs no more.
pub(super) fn routed(tx: &Db, kind: Kind) -> Result<bool> {
    tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM notify_routes WHERE kind = ?1)")?
        .query_row([kind.as_str()], |r| r.get(0))
}

/// The hook where a post is recorded published (`post_published`, off by default: then it
/// costs the publish path one cached lookup and nothing else).
pub(super) fn published(tx: &Db, post_id: &str, urn: &str, now_s: &str) -> Result<()> {
    if !routed(tx, Kind::PostPublished)? {
        return Ok(());
    }
    let account: Option<String> = tx
        .prepare_cached("SELECT account FROM posts WHERE id = ?1")?
        .query_row([post_id], |r| r.get(0))
        .optional()?;
    let mut e = Event::new(
        Kind::PostPublished,
        format!("Post {post_id} is on LinkedIn as {urn}"),
    );
    e.post_id = Some(post_id.to_string());
    e.account = account;
    e.message = Some(urn.to_string());
    record(tx, &e, now_s)?;
    Ok(())
}

/// The hook in the one place a dead letter is written.
pub(super) fn dead(
    tx: &Db,
    post_id: &str,
    reason: DeadReason,
    result: &AttemptResult,
    now_s: &str,
) -> Result<()> {
    let reason_s = reason.as_str();
    let account: Option<String> = tx
        .prepare_cached("SELECT account FROM posts WHERE id = ?1")?
        .query_row([post_id], |r| r.get(0))
        .optional()?;
    let (kind, text) = if reason == DeadReason::InDoubt {
        (
            Kind::PostInDoubt,
            format!(
                "Post {post_id} may or may not be on LinkedIn and needs a person: look at the feed, then `lipost mark-published {post_id} URN` or `lipost retry {post_id}`"
            ),
        )
    } else {
        let why = result.message.as_deref().unwrap_or(reason_s);
        (
            Kind::PostDead,
            format!("Post {post_id} is dead ({reason_s}): {why}. `lipost show {post_id}` says more; `lipost retry {post_id}` tries again"),
        )
    };
    let mut e = Event::new(kind, text);
    e.post_id = Some(post_id.to_string());
    e.account = account;
    e.reason = Some(reason_s.to_string());
    e.http_status = result.http_status;
    e.error_code = result.error_code.clone();
    e.message = result.message.clone();
    record(tx, &e, now_s)?;
    Ok(())
}

/// The hook where an account is marked `needs_reauth` (only when it was not already).
pub(super) fn needs_reauth(tx: &Db, account: &str, why: &str, now_s: &str) -> Result<()> {
    let mut e = Event::new(
        Kind::NeedsReauth,
        format!("Account {account} needs a new login ({why}); its posts are held until `lipost auth login --account {account}`"),
    );
    e.account = Some(account.to_string());
    e.reason = Some("needs_reauth".into());
    e.message = Some(why.to_string());
    record(tx, &e, now_s)?;
    Ok(())
}

impl Store {
    /// Which kinds go to which sinks from now on (at start and on reload).
    pub fn set_notify_routes(&mut self, routes: &Routes) -> Result<()> {
        let tx = self.db.write()?;
        tx.execute("DELETE FROM notify_routes", params![])?;
        tx.execute("DELETE FROM notify_held", params![])?;
        if let Some(after) = routes.held_after {
            tx.execute(
                "INSERT INTO notify_held (after_ms) VALUES (?1)",
                [i64::try_from(after.as_millis()).unwrap_or(i64::MAX)],
            )?;
        }
        for k in &routes.kinds {
            for s in &routes.sinks {
                tx.execute(
                    "INSERT INTO notify_routes (kind, sink) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![k.as_str(), s.as_str()],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Token-expiry warnings (from `auth::keep_alive`), each recorded once per token, expiry
    /// and mark, so a restart does not repeat one.
    pub fn record_token_warnings(&mut self, events: &[Event], now: DateTime<Utc>) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        for e in events {
            // The payload's fields compared as text, as both engines' `->>` can read them.
            let sql = match tx.dialect() {
                Dialect::Sqlite => {
                    "SELECT EXISTS (SELECT 1 FROM notifications WHERE kind = ?1 AND account IS NOT DISTINCT FROM ?2 \
                     AND CAST(payload ->> '$.reason' AS TEXT) IS NOT DISTINCT FROM ?3 \
                     AND CAST(payload ->> '$.expires_at' AS TEXT) IS NOT DISTINCT FROM ?4 \
                     AND CAST(payload ->> '$.days_left' AS TEXT) IS NOT DISTINCT FROM ?5)"
                }
                Dialect::Postgres => {
                    "SELECT EXISTS (SELECT 1 FROM notifications WHERE kind = ?1 AND account IS NOT DISTINCT FROM ?2 \
                     AND (payload::jsonb ->> 'reason') IS NOT DISTINCT FROM ?3 \
                     AND (payload::jsonb ->> 'expires_at') IS NOT DISTINCT FROM ?4 \
                     AND (payload::jsonb ->> 'days_left') IS NOT DISTINCT FROM ?5)"
                }
            };
            let days_left = e.days_left.map(|d| d.to_string());
            let seen: bool = tx.query_row(
                sql,
                params![
                    e.kind.as_str(),
                    e.account,
                    e.reason,
                    e.expires_at.map(ts),
                    days_left
                ],
                |r| r.get(0),
            )?;
            if !seen {
                record(&tx, e, &now_s)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records `event` for `sinks` whatever the routes say, leased for an hour so a running
    /// daemon leaves it to the caller, who sends it now (`lipost notify test`).
    pub fn record_now(
        &mut self,
        event: &Event,
        sinks: &[Sink],
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingNotification>> {
        let now_s = ts(now);
        let lease = ts(now + chrono::Duration::hours(1));
        let id = notify::new_id();
        let payload = event.payload(&id, &now_s);
        let tx = self.write()?;
        for s in sinks {
            tx.execute(
                "INSERT INTO notifications (id, kind, sink, post_id, account, payload, created_at, next_attempt_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, event.kind.as_str(), s.as_str(), event.post_id, event.account, payload, now_s, lease],
            )?;
        }
        tx.commit()?;
        Ok(sinks
            .iter()
            .map(|&sink| PendingNotification {
                id: id.clone(),
                kind: event.kind,
                sink,
                payload: payload.clone(),
                created_at: now,
                attempts: 0,
            })
            .collect())
    }

    /// Pending rows due by `now`, oldest first.
    pub fn notifications_due(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingNotification>> {
        if self.claiming_node().is_none() {
            return self.notifications_due_in(now, limit);
        }
        // Most looks (every heartbeat, every wake-up from another node) find nothing: those
        // need not wait for the write lock.
        if self.notifications_due_in(now, 1)?.is_empty() {
            return Ok(Vec::new());
        }
        // Several nodes: the rows taken are leased (10 minutes, more than `notify.timeout`
        // allows a send) in the same transaction, so another node does not send them too.
        let lease = now
            .checked_add_signed(chrono::TimeDelta::minutes(10))
            .unwrap_or(now);
        self.in_write(|s| {
            let due = s.notifications_due_in(now, limit)?;
            for n in &due {
                s.db.execute(
                    "UPDATE notifications SET next_attempt_at = ?3 WHERE id = ?1 AND sink = ?2",
                    params![n.id, n.sink.as_str(), ts(lease)],
                )?;
            }
            Ok(due)
        })
    }

    fn notifications_due_in(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingNotification>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT id, kind, sink, payload, created_at, attempts FROM notifications \
             WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![ts(now), limit as i64], |r| {
            let kind: String = r.get(1)?;
            let sink: String = r.get(2)?;
            Ok(PendingNotification {
                id: r.get(0)?,
                kind: Kind::parse(&kind)
                    .ok_or_else(|| corrupt("kind", &kind, "a notification kind"))?,
                sink: Sink::parse(&sink)
                    .ok_or_else(|| corrupt("sink", &sink, "a notification sink"))?,
                payload: r.get(3)?,
                created_at: parse_ts("notifications", "created_at", &r.get::<_, String>(4)?)?,
                attempts: r.get(5)?,
            })
        })?;
        rows.collect::<Result<_>>()
    }

    /// The earliest pending `next_attempt_at`, if any.
    pub fn next_notification_at(&self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self
            .db
            .prepare_cached(
                "SELECT MIN(next_attempt_at) FROM notifications WHERE status = 'pending'",
            )?
            .query_row(params![], |r| r.get(0))?;
        opt_ts("notifications", "next_attempt_at", t)
    }

    /// A success answer came back.
    pub fn notification_sent(&mut self, id: &str, sink: Sink, now: DateTime<Utc>) -> Result<()> {
        self.db.execute(
            "UPDATE notifications SET status = ?3, sent_at = ?4, attempts = attempts + 1, next_attempt_at = NULL \
             WHERE id = ?1 AND sink = ?2",
            params![id, sink.as_str(), NotificationStatus::Sent.as_str(), ts(now)],
        )?;
        Ok(())
    }

    /// No success answer: try again at `next`, or (`None`) give up and mark it failed.
    pub fn notification_failed(
        &mut self,
        id: &str,
        sink: Sink,
        error: &str,
        next: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let status = match next {
            Some(_) => NotificationStatus::Pending,
            None => NotificationStatus::Failed,
        };
        self.db.execute(
            "UPDATE notifications SET status = ?3, attempts = attempts + 1, next_attempt_at = ?4, last_error = ?5 \
             WHERE id = ?1 AND sink = ?2",
            params![id, sink.as_str(), status.as_str(), next.map(ts), error],
        )?;
        Ok(())
    }
}
