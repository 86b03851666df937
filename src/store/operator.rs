//! Operator actions: `lipost cancel`, `retry` and `mark-published`. Each is one transition
//! with the rows that explain it.

use super::db::{params, Db, Optional};
use chrono::{DateTime, Utc};

use super::{ts, Result, Store, StoreError};
use crate::post::{AttemptOutcome, DeadReason, Transition};

impl Store {
    /// A post leaving `dead` (retried, cancelled, found published): its dead letters close.
    fn close_dead_letters(tx: &Db, id: &str, now_s: &str) -> Result<()> {
        tx.prepare_cached(
            "UPDATE dead_letters SET requeued_at = ?2 WHERE post_id = ?1 AND requeued_at IS NULL",
        )?
        .execute(params![id, now_s])?;
        Ok(())
    }

    /// Withdraws a post. One that may already be on LinkedIn (a try in doubt, or dead as
    /// `in_doubt` or `duplicate`) is withdrawn only with `force`: cancelling it here takes
    /// nothing off LinkedIn, and a person should look first. Forced, its doubt is settled by
    /// that person: the mark goes, so a draft dropped again later is a new post.
    pub fn cancel(&mut self, id: &str, force: bool, now: DateTime<Utc>) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        if let Some(reason) = Self::withdrawal_risk(&tx, id)? {
            if !force {
                return Err(StoreError::MayBeLive {
                    id: id.to_string(),
                    reason: reason.to_string(),
                });
            }
        }
        Self::apply_or_explain(&tx, id, Transition::Cancel, "cancel", &now_s)?;
        Self::close_dead_letters(&tx, id, &now_s)?;
        tx.execute("UPDATE posts SET in_doubt_since = NULL WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Why withdrawing `id` may leave it on LinkedIn: a scheduled post with a try in doubt,
    /// or a dead one that may be live.
    fn withdrawal_risk(tx: &Db, id: &str) -> Result<Option<DeadReason>> {
        let doubt: Option<Option<String>> = tx
            .query_row(
                "SELECT in_doubt_since FROM posts WHERE id = ?1 AND state = 'scheduled'",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        if doubt.flatten().is_some() {
            return Ok(Some(DeadReason::InDoubt));
        }
        Self::may_be_live_in(tx, id)
    }

    /// A dead post back to `scheduled` with a fresh budget, due now, or at its due time if
    /// that is still ahead (a post stopped before its time must not go out early); its
    /// history stays. Returns when it is due.
    pub fn requeue(&mut self, id: &str, now: DateTime<Utc>) -> Result<String> {
        let now_s = ts(now);
        let tx = self.write()?;
        // A dead post's slot is free for other drafts; one may have taken it since.
        let clash: Option<(String, String)> = tx
            .query_row(
                "SELECT o.id, o.slot_at FROM posts p JOIN posts o ON o.account = p.account \
                 AND o.slot_at = p.slot_at AND o.id != p.id WHERE p.id = ?1 AND p.state = 'dead' \
                 AND o.state IN ('scheduled', 'publishing', 'published')",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((other, slot)) = clash {
            // Stored times compare as text: same format, four-digit years.
            if slot.as_str() > &*now_s {
                return Err(StoreError::SlotTaken {
                    id: id.to_string(),
                    slot,
                    other,
                });
            }
            // A slot already past: the retry goes out now, without it.
            tx.execute("UPDATE posts SET slot_at = NULL WHERE id = ?1", [id])?;
        }
        Self::apply_or_explain(&tx, id, Transition::Requeue, "retry", &now_s)?;
        let due: String =
            tx.query_row("SELECT due_at FROM posts WHERE id = ?1", [id], |r| r.get(0))?;
        // Stored times compare as text: same format, four-digit years.
        let due = if due.as_str() > &*now_s {
            due
        } else {
            now_s.to_string()
        };
        tx.execute(
            "UPDATE posts SET next_attempt_at = ?2, due_at = ?2, attempts_used = 0, rate_limited = 0, \
             in_doubt_since = NULL, hold_reason = NULL, hold_until = NULL, hold_since = NULL, \
             hold_report_at = NULL WHERE id = ?1",
            params![id, due],
        )?;
        Self::close_dead_letters(&tx, id, &now_s)?;
        tx.commit()?;
        Ok(due)
    }

    /// Why a dead post may already be on LinkedIn: its open dead letter says `in_doubt` or
    /// `duplicate`, or a try of it is still in doubt. `None` for other posts.
    pub fn may_be_live(&self, id: &str) -> Result<Option<DeadReason>> {
        Self::may_be_live_in(&self.db, id)
    }

    /// [`Store::may_be_live`] inside a transaction (intake asks before a `Replace`).
    pub(super) fn may_be_live_in(conn: &Db, id: &str) -> Result<Option<DeadReason>> {
        let Some((reason, in_doubt)) = Self::open_letter_in(conn, id)? else {
            return Ok(None);
        };
        Ok(match reason {
            Some(r) if r.may_be_live() => Some(r),
            _ if in_doubt.is_some() => Some(DeadReason::InDoubt),
            _ => None,
        })
    }

    /// Why a dead post is dead: its open dead letter's reason. `None` for other posts.
    pub fn dead_reason(&self, id: &str) -> Result<Option<DeadReason>> {
        Ok(Self::open_letter_in(&self.db, id)?.and_then(|(reason, _)| reason))
    }

    /// A dead post's open dead letter's reason, and since when it is in doubt, if it is.
    pub(super) fn open_letter_in(
        conn: &Db,
        id: &str,
    ) -> Result<Option<(Option<DeadReason>, Option<String>)>> {
        let row: Option<(Option<String>, Option<String>)> = conn
            .query_row(
                "SELECT (SELECT reason FROM dead_letters WHERE post_id = p.id AND requeued_at IS NULL \
                 ORDER BY id DESC LIMIT 1), p.in_doubt_since FROM posts p WHERE p.id = ?1 AND p.state = 'dead'",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(reason, in_doubt)| (reason.as_deref().and_then(DeadReason::parse), in_doubt)))
    }

    pub fn dead_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .db
            .prepare("SELECT id FROM posts WHERE state = 'dead' ORDER BY id")?;
        let rows = stmt.query_map(params![], |r| r.get(0))?;
        rows.collect::<Result<_>>()
    }

    /// The operator found the post on LinkedIn: record it as published with that URN.
    pub fn mark_published(&mut self, id: &str, urn: &str, now: DateTime<Utc>) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        // In the transaction that records it, as for a settle: a second post with this URN
        // would make `lipost delete` of one remove the other from LinkedIn.
        if let Some(other) = Self::urn_holder(&tx, urn, id)? {
            return Err(StoreError::UrnTaken {
                urn: urn.to_string(),
                other,
            });
        }
        // A dead or cancelled post's slot is free for other drafts, and one may hold it now:
        // the post went out all the same, so it gives the slot up rather than take it back.
        tx.execute(
            "UPDATE posts SET slot_at = NULL WHERE id = ?1 AND state IN ('dead', 'cancelled') \
             AND EXISTS (SELECT 1 FROM posts o WHERE o.account = posts.account \
             AND o.slot_at = posts.slot_at AND o.id != posts.id \
             AND o.state IN ('scheduled', 'publishing', 'published'))",
            [id],
        )?;
        Self::apply_or_explain(&tx, id, Transition::MarkPublished, "mark-published", &now_s)?;
        tx.execute(
            "UPDATE posts SET post_urn = ?2, published_at = ?3, in_doubt_since = NULL WHERE id = ?1",
            params![id, urn, now_s],
        )?;
        Self::close_dead_letters(&tx, id, &now_s)?;
        tx.execute(
            "INSERT INTO attempts (post_id, started_at, finished_at, outcome, message) VALUES (?1, ?2, ?2, ?4, ?3)",
            params![id, now_s, format!("marked published by the operator as {urn}"), AttemptOutcome::Resolved.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }
}
