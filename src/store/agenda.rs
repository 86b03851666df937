//! Reading the store for `lipost agenda`: the posts of a time window, those due and still
//! waiting, and the dead ones a person must look at. No writes.
//!
//! Hold reasons are read as stored text, not parsed into `HoldReason`: the agenda shows a
//! reason a newer lipost wrote rather than hiding the post's hold.

use super::db::{params, Row};
use chrono::{DateTime, Utc};

use super::{opt_ts, parse_state, parse_ts, ts, Result, Store};
use crate::post::PostState;

/// A post as the agenda places it.
#[derive(Debug, Clone)]
pub struct AgendaPost {
    pub id: String,
    pub account: String,
    pub state: PostState,
    pub due_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub slot_at: Option<DateTime<Utc>>,
    pub text: String,
    /// `posts.hold_reason` as stored.
    pub hold_reason: Option<String>,
    pub hold_until: Option<DateTime<Utc>>,
}

impl AgendaPost {
    /// When it goes (or went) out as far as the store knows: a held post at its due time (its
    /// `next_attempt_at` is only when the scheduler looks again), a waiting one at its next
    /// try.
    pub fn at(&self) -> DateTime<Utc> {
        match (self.state, self.published_at) {
            (PostState::Published | PostState::Deleted, Some(t)) => t,
            _ if self.hold_reason.is_some() => self.due_at,
            _ => self.next_attempt_at.max(self.due_at),
        }
    }
}

/// A dead post that waits for a person: `lipost retry`, `mark-published` or `cancel`.
#[derive(Debug, Clone)]
pub struct NeedsPerson {
    pub id: String,
    pub account: String,
    pub due_at: DateTime<Utc>,
    pub text: String,
    /// `dead_letters.reason` of its latest letter.
    pub reason: String,
    pub message: Option<String>,
}

const AGENDA_COLUMNS: &str = "id, account, state, due_at, next_attempt_at, published_at, slot_at, \
    text, hold_reason, hold_until";

fn agenda_post(r: &Row<'_>) -> Result<AgendaPost> {
    Ok(AgendaPost {
        id: r.get(0)?,
        account: r.get(1)?,
        state: parse_state(&r.get::<_, String>(2)?)?,
        due_at: parse_ts("posts", "due_at", &r.get::<_, String>(3)?)?,
        next_attempt_at: parse_ts("posts", "next_attempt_at", &r.get::<_, String>(4)?)?,
        published_at: opt_ts("posts", "published_at", r.get(5)?)?,
        slot_at: opt_ts("posts", "slot_at", r.get(6)?)?,
        text: r.get(7)?,
        hold_reason: r.get(8)?,
        hold_until: opt_ts("posts", "hold_until", r.get(9)?)?,
    })
}

impl Store {
    /// The posts that go or went out in `[from, to)`, or hold a slot there, and every waiting
    /// post due by `now` (whatever the window); of `account` only when given. Ordered by due
    /// time; [`AgendaPost::at`] places them.
    pub fn agenda(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
        account: Option<&str>,
    ) -> Result<Vec<AgendaPost>> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {AGENDA_COLUMNS} FROM posts \
             WHERE (CAST(?4 AS TEXT) IS NULL OR account = ?4) AND ( \
               (state IN ('scheduled', 'publishing') AND ( \
                  due_at <= ?3 \
                  OR (due_at < ?2 AND next_attempt_at >= ?1) \
                  OR (slot_at >= ?1 AND slot_at < ?2))) \
               OR (state IN ('published', 'deleted') AND ( \
                  (published_at >= ?1 AND published_at < ?2) \
                  OR (slot_at >= ?1 AND slot_at < ?2)))) \
             ORDER BY due_at, id"
        ))?;
        let rows = stmt.query_map(params![ts(from), ts(to), ts(now), account], agenda_post)?;
        rows.collect::<Result<_>>()
    }

    /// Dead posts with the reason of their latest dead letter, oldest due first; of
    /// `account` only when given.
    pub fn needs_person(&self, account: Option<&str>) -> Result<Vec<NeedsPerson>> {
        let mut stmt = self.db.prepare(
            "SELECT p.id, p.account, p.due_at, p.text, d.reason, d.message FROM posts p \
             JOIN dead_letters d ON d.id = (SELECT MAX(id) FROM dead_letters WHERE post_id = p.id) \
             WHERE p.state = 'dead' AND (CAST(?1 AS TEXT) IS NULL OR p.account = ?1) ORDER BY p.due_at, p.id",
        )?;
        let rows = stmt.query_map(params![account], |r| {
            Ok(NeedsPerson {
                id: r.get(0)?,
                account: r.get(1)?,
                due_at: parse_ts("posts", "due_at", &r.get::<_, String>(2)?)?,
                text: r.get(3)?,
                reason: r.get(4)?,
                message: r.get(5)?,
            })
        })?;
        rows.collect::<Result<_>>()
    }
}
