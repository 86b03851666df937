//! Reading the store: what `status`, `list`, `show` and `dead` print. No writes.

use super::db::{params, Optional, Row};

use super::{opt_ts, parse_ts, post_from_row, Result, Store, StoreError, POST_COLUMNS};
use crate::post::{Attempt, AttemptOutcome, DeadLetter, Post, PostState};

impl Store {
    pub fn get(&self, id: &str) -> Result<Post> {
        self.db
            .query_row(
                &format!("SELECT {POST_COLUMNS} FROM posts WHERE id = ?1"),
                [id],
                post_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    pub fn list(&self, state: Option<PostState>, limit: usize) -> Result<Vec<Post>> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {POST_COLUMNS} FROM posts WHERE CAST(?1 AS TEXT) IS NULL OR state = ?1 ORDER BY due_at, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![state.map(|s| s.as_str()), limit as i64],
            post_from_row,
        )?;
        rows.collect::<Result<_>>()
    }

    pub fn counts(&self) -> Result<Vec<(PostState, u64)>> {
        let mut stmt = self
            .db
            .prepare("SELECT state, COUNT(*) FROM posts GROUP BY state")?;
        let rows = stmt.query_map(params![], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
        })?;
        let found: Vec<(String, u64)> = rows.collect::<Result<_>>()?;
        Ok(PostState::ALL
            .iter()
            .map(|s| {
                let n = found
                    .iter()
                    .find(|(st, _)| st == s.as_str())
                    .map_or(0, |(_, n)| *n);
                (*s, n)
            })
            .collect())
    }

    /// "12 scheduled, 3 held (daily_cap), next 2026-12-01 09:00 (acme), 1 dead, tokens ok": the
    /// STATUS= line; the hold named is the reason that keeps the most posts.
    pub fn summary_line(&self, tz: chrono_tz::Tz) -> Result<String> {
        let counts = self.counts()?;
        let n = |st: PostState| counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
        let mut parts = vec![format!("{} scheduled", n(PostState::Scheduled))];
        let holds = self.hold_counts()?;
        if let Some((biggest, _)) = holds
            .iter()
            .max_by_key(|(r, n)| (*n, std::cmp::Reverse(r.as_str())))
        {
            let total: i64 = holds.iter().map(|(_, n)| n).sum();
            parts.push(format!("{total} held ({biggest})"));
        }
        if let Some(p) = self.next_scheduled(1)?.first() {
            parts.push(format!(
                "next {} ({})",
                p.next_attempt_at
                    .with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M"),
                p.account
            ));
        }
        parts.push(format!("{} published", n(PostState::Published)));
        parts.push(format!("{} dead", n(PostState::Dead)));
        let stale: Vec<String> = self
            .tokens()?
            .into_iter()
            .filter(|t| t.needs_reauth.is_some())
            .map(|t| t.account)
            .collect();
        if stale.is_empty() {
            parts.push("tokens ok".into());
        } else {
            parts.push(format!("needs login: {}", stale.join(", ")));
        }
        Ok(parts.join(", "))
    }

    pub fn next_scheduled(&self, limit: usize) -> Result<Vec<Post>> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {POST_COLUMNS} FROM posts WHERE state = 'scheduled' ORDER BY next_attempt_at, id LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], post_from_row)?;
        rows.collect::<Result<_>>()
    }

    const ATTEMPT_COLUMNS: &'static str =
        "id, post_id, started_at, finished_at, http_status, error_code, \
        service_error_code, message, outcome, next_attempt_at";

    fn attempt_from_row(r: &Row<'_>) -> Result<Attempt> {
        Ok(Attempt {
            id: r.get(0)?,
            post_id: r.get(1)?,
            started_at: parse_ts("attempts", "started_at", &r.get::<_, String>(2)?)?,
            finished_at: opt_ts("attempts", "finished_at", r.get(3)?)?,
            http_status: r.get(4)?,
            error_code: r.get(5)?,
            service_error_code: r.get(6)?,
            message: r.get(7)?,
            outcome: r.get(8)?,
            next_attempt_at: opt_ts("attempts", "next_attempt_at", r.get(9)?)?,
        })
    }

    pub fn attempts(&self, post_id: &str) -> Result<Vec<Attempt>> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {} FROM attempts WHERE post_id = ?1 ORDER BY id",
            Self::ATTEMPT_COLUMNS
        ))?;
        let rows = stmt.query_map([post_id], Self::attempt_from_row)?;
        rows.collect::<Result<_>>()
    }

    /// The latest tries that did not publish.
    pub fn recent_failures(&self, limit: usize) -> Result<Vec<Attempt>> {
        let settled = AttemptOutcome::ALL
            .iter()
            .filter(|o| !o.is_failure())
            .map(|o| format!("'{}'", o.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self.db.prepare(&format!(
            "SELECT {} FROM attempts WHERE outcome IS NOT NULL AND outcome NOT IN ({settled}) \
             ORDER BY id DESC LIMIT ?1",
            Self::ATTEMPT_COLUMNS
        ))?;
        let rows = stmt.query_map([limit as i64], Self::attempt_from_row)?;
        rows.collect::<Result<_>>()
    }

    /// Dead letters of posts that are still dead, newest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let mut stmt = self.db.prepare(
            "SELECT d.id, d.post_id, p.account, d.reason, d.http_status, d.error_code, d.message, d.created_at \
             FROM dead_letters d JOIN posts p ON p.id = d.post_id \
             WHERE p.state = 'dead' AND d.requeued_at IS NULL ORDER BY d.id DESC",
        )?;
        let rows = stmt.query_map(params![], |r| {
            Ok(DeadLetter {
                id: r.get(0)?,
                post_id: r.get(1)?,
                account: r.get(2)?,
                reason: r.get(3)?,
                http_status: r.get(4)?,
                error_code: r.get(5)?,
                message: r.get(6)?,
                created_at: parse_ts("dead_letters", "created_at", &r.get::<_, String>(7)?)?,
            })
        })?;
        rows.collect::<Result<_>>()
    }
}
