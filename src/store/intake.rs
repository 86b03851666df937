//! Intake: drafts into `posts`, idempotently (the same draft again is `Unchanged`), with
//! replacement rules and posting-slot reservation.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{ts, Existing, NewPost, Refused, Result, Store, Taken};
use crate::post::{PostState, Transition};

impl Store {
    /// Takes a batch of drafts in one transaction. One result per draft, in order.
    pub fn ingest(
        &mut self,
        batch: &[NewPost<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Taken, Refused>>> {
        let now_s = ts(now);
        let tx = self.write()?;
        let mut out = Vec::with_capacity(batch.len());
        for intake in batch {
            out.push(Self::ingest_one(&tx, intake, now, &now_s)?);
        }
        tx.commit()?;
        Ok(out)
    }

    fn ingest_one(
        tx: &Connection,
        intake: &NewPost<'_>,
        now: DateTime<Utc>,
        now_s: &str,
    ) -> Result<Result<Taken, Refused>> {
        let d = intake.draft;
        let existing = tx
            .query_row(
                "SELECT state, post_urn, in_doubt_since, account, commentary, visibility, publish_at FROM posts WHERE id = ?1",
                [&d.id],
                |r| {
                    Ok(Existing {
                        state: r.get(0)?,
                        urn: r.get(1)?,
                        in_doubt: r.get(2)?,
                        account: r.get(3)?,
                        commentary: r.get(4)?,
                        visibility: r.get(5)?,
                        publish_at: r.get(6)?,
                    })
                },
            )
            .optional()?;
        let publish_at = d.publish_at.map(ts);
        let (due, slot) = if d.next_slot {
            match Self::free_slot(tx, &d.account, &d.id, intake.slots)? {
                Some(t) => (ts(t), Some(ts(t))),
                None => {
                    return Ok(Err(Refused::NoFreeSlot {
                        account: d.account.clone(),
                        looked: intake.slots.len(),
                    }))
                }
            }
        } else {
            (ts(d.publish_at.unwrap_or(now)), None)
        };
        let Some(Existing {
            state,
            urn,
            in_doubt,
            account,
            commentary,
            visibility,
            publish_at: old_publish_at,
        }) = existing
        else {
            tx.execute(
                "INSERT INTO posts (id, account, state, due_at, next_attempt_at, publish_at, commentary, text, \
                 visibility, source_file, created_at, updated_at, slot_at) \
                 VALUES (?1, ?2, 'scheduled', ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
                params![
                    d.id,
                    d.account,
                    due,
                    publish_at,
                    d.commentary,
                    d.text,
                    d.visibility.as_str(),
                    intake.source_file,
                    now_s,
                    slot
                ],
            )?;
            return Ok(Ok(Taken::Created));
        };
        let state = super::parse_state(&state)?;
        let same = account == d.account
            && commentary == d.commentary
            && visibility == d.visibility.as_str()
            && old_publish_at == publish_at;
        // The same draft again: a crash between commit and move, or a writer that saved twice.
        // For a dead or cancelled post it is the author asking for another go, which the
        // README promises, so it falls through to `Replace` like a changed draft.
        let live = matches!(
            state,
            PostState::Scheduled | PostState::Publishing | PostState::Published
        );
        if same && live {
            return Ok(Ok(Taken::Unchanged));
        }
        let id = d.id.clone();
        match state {
            PostState::Published => {
                return Ok(Err(Refused::AlreadyPublished {
                    id,
                    urn: urn.unwrap_or_default(),
                }))
            }
            PostState::Publishing => return Ok(Err(Refused::Publishing { id })),
            _ if in_doubt.is_some() => return Ok(Err(Refused::InDoubt { id })),
            _ => {}
        }
        if !Self::apply(tx, &d.id, Transition::Replace, now_s)? {
            return Ok(Err(Refused::Publishing { id }));
        }
        tx.execute(
            "UPDATE posts SET account = ?2, due_at = ?3, next_attempt_at = ?3, publish_at = ?4, commentary = ?5, \
             text = ?6, visibility = ?7, source_file = ?8, attempts_used = 0, rate_limited = 0, last_error = NULL, \
             slot_at = ?9, hold_reason = NULL, hold_until = NULL, hold_since = NULL, hold_report_at = NULL WHERE id = ?1",
            params![d.id, d.account, due, publish_at, d.commentary, d.text, d.visibility.as_str(), intake.source_file, slot],
        )?;
        Ok(Ok(Taken::Replaced))
    }

    /// The earliest of `candidates` no other live post of the account holds.
    fn free_slot(
        tx: &Connection,
        account: &str,
        id: &str,
        candidates: &[DateTime<Utc>],
    ) -> Result<Option<DateTime<Utc>>> {
        let mut taken = tx.prepare_cached(
            "SELECT 1 FROM posts WHERE account = ?1 AND slot_at = ?2 AND id != ?3 \
             AND state IN ('scheduled', 'publishing', 'published')",
        )?;
        for t in candidates {
            if !taken.exists(params![account, ts(*t), id])? {
                return Ok(Some(*t));
            }
        }
        Ok(None)
    }
}
