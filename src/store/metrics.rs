//! Reading the store for the metrics endpoint: one read transaction per scrape, so every
//! value of a scrape comes from the same snapshot. No writes, nothing kept between scrapes.
//!
//! Hold reasons, outcomes and dead-letter reasons are read as stored text (each written only
//! through its enum's `as_str`), so a reason added later is counted rather than dropped.

use chrono::{DateTime, Utc};

use super::db::{params, Db, Dialect};
use super::{parse_ts, Result, Store};
use crate::store::NotificationStatus;

/// Upper bounds (seconds) of the lateness histogram's buckets; `+Inf` is implied.
pub const LATENESS_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Everything one scrape shows, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// (state, hold reason or "", posts)
    pub posts: Vec<(String, String, u64)>,
    /// (outcome, settled tries)
    pub attempts: Vec<(String, u64)>,
    /// Posts that went out (published, or deleted since): how many, the sum of their lateness, and per bucket of
    /// [`LATENESS_BUCKETS`] how many were at most that late (cumulative).
    pub lateness_count: u64,
    pub lateness_sum: f64,
    pub lateness_buckets: Vec<u64>,
    /// (account, access expiry, refresh expiry)
    pub tokens: Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)>,
    pub notifications_pending: u64,
    pub notifications_failed: u64,
    /// (dead-letter reason, dead posts with that letter open)
    pub dead_letters_open: Vec<(String, u64)>,
    /// Waiting posts whose last try may have reached LinkedIn, being resolved.
    pub in_doubt: u64,
}

fn grouped(conn: &Db, sql: &str) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params![], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
    })?;
    rows.collect::<Result<_>>()
}

impl Store {
    /// The values of one scrape: a handful of aggregate queries in one read transaction.
    pub fn metrics_snapshot(&mut self) -> Result<MetricsSnapshot> {
        let tx = self.db.read()?;
        let mut s = MetricsSnapshot::default();
        {
            // A hold means something only while the post waits: a post that died held (too
            // late) keeps its column, and is counted as dead, not as held.
            let mut stmt = tx.prepare(
                "SELECT state, CASE WHEN state = 'scheduled' THEN COALESCE(hold_reason, '') ELSE '' END, COUNT(*) \
                 FROM posts GROUP BY 1, 2",
            )?;
            let rows = stmt.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            s.posts = rows.collect::<Result<_>>()?;
        }
        // An unfinished try has no outcome yet; it is counted once settled.
        s.attempts = grouped(
            &tx,
            "SELECT outcome, COUNT(*) FROM attempts WHERE outcome IS NOT NULL AND outcome <> '' GROUP BY outcome",
        )?;
        {
            // Lateness from `due_at` to when lipost recorded the post published, bucketed
            // here so a scrape reads one row however many posts went out. Rounded to the
            // stored milliseconds: julianday's doubles would blur a bucket's bound.
            // SUM of PostgreSQL's `1.0` is NUMERIC, which the store does not read: float8.
            let (total, seconds, one) = match tx.dialect() {
                Dialect::Sqlite => (
                    "TOTAL",
                    "ROUND((julianday(published_at) - julianday(due_at)) * 86400.0, 3)",
                    "1.0",
                ),
                Dialect::Postgres => (
                    "SUM",
                    "ROUND(EXTRACT(EPOCH FROM (published_at::timestamptz - due_at::timestamptz)), 3)::float8",
                    "1.0::float8",
                ),
            };
            let buckets: Vec<String> = LATENESS_BUCKETS
                .iter()
                .map(|b| {
                    format!("COALESCE({total}(CASE WHEN l <= {b:?} THEN {one} ELSE 0 END), 0)")
                })
                .collect();
            let sql = format!(
                "SELECT COUNT(*), COALESCE({total}(l), 0), {} FROM (SELECT {seconds} AS l \
                 FROM posts WHERE state IN ('published', 'deleted') AND published_at IS NOT NULL) AS gone",
                buckets.join(", ")
            );
            tx.query_row(&sql, params![], |r| {
                s.lateness_count = r.get(0)?;
                s.lateness_sum = r.get(1)?;
                s.lateness_buckets = (0..LATENESS_BUCKETS.len())
                    .map(|i| r.get::<_, f64>(i + 2).map(|n| n as u64))
                    .collect::<Result<_>>()?;
                Ok(())
            })?;
        }
        {
            let mut stmt = tx.prepare(
                "SELECT account, access_expires_at, refresh_expires_at FROM tokens ORDER BY account",
            )?;
            let rows = stmt.query_map(params![], |r| {
                let access = parse_ts("tokens", "access_expires_at", &r.get::<_, String>(1)?)?;
                let refresh = r
                    .get::<_, Option<String>>(2)?
                    .map(|t| parse_ts("tokens", "refresh_expires_at", &t))
                    .transpose()?;
                Ok((r.get(0)?, access, refresh))
            })?;
            s.tokens = rows.collect::<Result<_>>()?;
        }
        let count = |status: NotificationStatus| -> Result<u64> {
            tx.query_row(
                "SELECT COUNT(*) FROM notifications WHERE status = ?1",
                [status.as_str()],
                |r| r.get(0),
            )
        };
        s.notifications_pending = count(NotificationStatus::Pending)?;
        s.notifications_failed = count(NotificationStatus::Failed)?;
        // The same letters `lipost dead` lists: of posts still dead, not requeued.
        s.dead_letters_open = grouped(
            &tx,
            "SELECT d.reason, COUNT(*) FROM dead_letters d JOIN posts p ON p.id = d.post_id \
             WHERE p.state = 'dead' AND d.requeued_at IS NULL GROUP BY d.reason",
        )?;
        s.in_doubt = tx.query_row(
            "SELECT COUNT(*) FROM posts WHERE in_doubt_since IS NOT NULL AND state IN ('scheduled', 'publishing')",
            params![],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_counts_only_while_the_post_waits_and_lateness_is_bucketed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .db
            .execute_batch(
                "INSERT INTO posts (id, account, state, due_at, next_attempt_at, commentary, text, visibility, created_at, updated_at, hold_reason, published_at) VALUES \
                 ('held', 'me', 'scheduled', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', 'x', 'x', 'PUBLIC', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'needs_reauth', NULL), \
                 ('expired', 'me', 'dead', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', 'x', 'x', 'PUBLIC', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'needs_reauth', NULL), \
                 ('quick', 'me', 'published', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', 'x', 'x', 'PUBLIC', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', NULL, '2030-01-01T00:00:00.010Z'), \
                 ('late', 'me', 'published', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', 'x', 'x', 'PUBLIC', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', NULL, '2030-01-01T00:02:00.000Z');",
            )
            .unwrap();
        let s = store.metrics_snapshot().unwrap();
        let mut posts = s.posts.clone();
        posts.sort();
        assert_eq!(
            posts,
            vec![
                ("dead".into(), "".into(), 1),
                ("published".into(), "".into(), 2),
                ("scheduled".into(), "needs_reauth".into(), 1),
            ]
        );
        assert_eq!(s.lateness_count, 2);
        assert!((s.lateness_sum - 120.01).abs() < 1e-9, "{}", s.lateness_sum);
        // 10 ms is within the first bound exactly; 2 minutes only from the 300 s bucket.
        let at = |bound: f64| {
            s.lateness_buckets[LATENESS_BUCKETS.iter().position(|b| *b == bound).unwrap()]
        };
        assert_eq!((at(0.01), at(60.0), at(300.0), at(3600.0)), (1, 1, 2, 2));
    }
}
