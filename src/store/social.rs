//! What happens to a post after it is published: its first comment (`comments`), edits of
//! its text (`edits`) and its deletion (`deleted`). The SQL only; the daemon's sender
//! (`crate::comments`) and `lipost delete` make the requests.
//!
//! A first comment is claimed `sending` in a durable transaction before its request leaves,
//! and a row found `sending` at start-up is never sent again: LinkedIn offers no way to look
//! for it, so it is `dead` for a person to check. An edit is safe to repeat and needs no
//! claim. Edits and deletes are recorded in `attempts` like every try of a post.

use super::db::{params, Db, Optional, Row};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{opt_ts, parse_state, parse_ts, ts, Result, Store, StoreError};
use crate::post::{AttemptOutcome, AttemptResult, PostState, Transition};

/// A stored status: an unknown one is an error naming the table and the value.
fn status_from_sql<T>(table: &'static str, s: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(s).ok_or_else(|| StoreError::Corrupt {
        table,
        column: "status",
        value: s.to_string(),
        expected: "a status lipost writes",
    })
}

crate::post::spelled! {
    /// Where a first comment is: `comments.status`.
    CommentStatus {
        /// Not sent yet, or sent and refused in a way worth repeating (`next_attempt_at`).
        Waiting = "waiting",
        /// Claimed: its request may be on its way. Found so at start-up, it is in doubt.
        Sending = "sending",
        /// On LinkedIn (`comment_urn`, when LinkedIn named it).
        Posted = "posted",
        /// LinkedIn answered 403: this account may not comment through the API.
        Refused = "refused",
        /// Given up: refused for good, out of tries, or in doubt (it may be on LinkedIn).
        Dead = "dead",
    }
}

crate::post::spelled! {
    /// Where an edit is: `edits.status`.
    EditStatus {
        /// Waiting to be sent (again) at `next_attempt_at`.
        Pending = "pending",
        /// LinkedIn took the new text; `posts.text` and `commentary` are it.
        Done = "done",
        /// LinkedIn refused it, or it ran out of tries; the old text stays.
        Failed = "failed",
    }
}

/// A post's first comment, for `lipost show`.
#[derive(Debug, Clone, Serialize)]
pub struct Comment {
    pub post_id: String,
    pub text: String,
    pub status: CommentStatus,
    pub comment_urn: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An edit of a post's text, for `lipost show`.
#[derive(Debug, Clone, Serialize)]
pub struct Edit {
    pub id: i64,
    pub post_id: String,
    pub text: String,
    pub status: EditStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A first comment claimed for sending.
#[derive(Debug, Clone)]
pub struct CommentJob {
    pub post_id: String,
    pub account: String,
    pub post_urn: String,
    pub text: String,
    /// Tries so far, this one included.
    pub attempts: u32,
}

/// An edit due to be sent.
#[derive(Debug, Clone)]
pub struct EditJob {
    pub id: i64,
    pub post_id: String,
    pub account: String,
    pub post_urn: String,
    pub text: String,
    pub commentary: String,
    /// Tries before this one.
    pub attempts: u32,
}

/// How a comment's try ended.
#[derive(Debug, Clone)]
pub enum CommentSettle {
    /// 201. LinkedIn should name the comment; a 201 without a URN is posted all the same.
    Posted { urn: Option<String> },
    /// 403: not permitted for this account.
    Refused { why: String },
    /// Not sent (429, connection refused, no token yet): waiting again until `at`.
    Retry { at: DateTime<Utc>, why: String },
    /// Refused for the `LinkedIn-Version` it carried (426): waiting for the operator, this
    /// try not counted.
    Later { why: String },
    /// Given up; `why` is what a person reads.
    Dead { why: String },
}

/// How an edit's try ended.
#[derive(Debug, Clone)]
pub enum EditSettle {
    Done,
    Retry {
        at: DateTime<Utc>,
    },
    /// Refused for the `LinkedIn-Version` it carried (426): pending, this try not counted.
    Later,
    Failed,
}

const COMMENT_COLUMNS: &str = "post_id, text, status, comment_urn, attempts, next_attempt_at, \
    last_error, created_at, updated_at";

fn comment_from_row(r: &Row<'_>) -> Result<Comment> {
    Ok(Comment {
        post_id: r.get(0)?,
        text: r.get(1)?,
        status: status_from_sql("comments", &r.get::<_, String>(2)?, CommentStatus::parse)?,
        comment_urn: r.get(3)?,
        attempts: r.get(4)?,
        next_attempt_at: opt_ts("comments", "next_attempt_at", r.get(5)?)?,
        last_error: r.get(6)?,
        created_at: parse_ts("comments", "created_at", &r.get::<_, String>(7)?)?,
        updated_at: parse_ts("comments", "updated_at", &r.get::<_, String>(8)?)?,
    })
}

impl Store {
    /// In the transaction that records `post_id` published: its first comment, if it has
    /// one, waits to be sent now. Once per post, whatever happens later.
    pub(super) fn queue_first_comment(tx: &Db, post_id: &str, now_s: &str) -> Result<()> {
        let n = tx
            .prepare_cached(
                "INSERT INTO comments (post_id, text, status, next_attempt_at, created_at, updated_at) \
                 SELECT id, first_comment, 'waiting', ?2, ?2, ?2 FROM posts \
                 WHERE id = ?1 AND first_comment IS NOT NULL ON CONFLICT (post_id) DO NOTHING",
            )?
            .execute(params![post_id, now_s])?;
        if n > 0 {
            crate::comments::wake().notify_one();
        }
        Ok(())
    }

    /// At start-up: a comment left `sending` was claimed by a process that died before it
    /// learned the answer. It may be on LinkedIn, and there is no documented way to look, so
    /// it is not sent again: `dead`, for a person to check. Returns their post ids.
    pub fn recover_comments(&mut self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let now_s = ts(now);
        let tx = self.write()?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT post_id FROM comments WHERE status = 'sending' ORDER BY post_id",
            )?;
            let rows = stmt.query_map(params![], |r| r.get(0))?;
            rows.collect::<Result<_>>()?
        };
        tx.execute(
            "UPDATE comments SET status = 'dead', next_attempt_at = NULL, updated_at = ?1, last_error = \
             'lipost stopped while this comment was being sent; it may be on LinkedIn, so it was not sent again: check the post, and comment by hand if it is missing' \
             WHERE status = 'sending'",
            [&now_s],
        )?;
        tx.commit()?;
        Ok(ids)
    }

    /// Ids of the first comments and edits due by `now` (at most `limit` of each).
    pub fn social_due(&self, now: DateTime<Utc>, limit: usize) -> Result<(Vec<String>, Vec<i64>)> {
        let now_s = ts(now);
        let comments = self
            .db
            .prepare_cached(
                "SELECT post_id FROM comments WHERE status = 'waiting' AND next_attempt_at <= ?1 \
                 ORDER BY next_attempt_at, post_id LIMIT ?2",
            )?
            .query_map(params![now_s, limit as i64], |r| r.get(0))?
            .collect::<Result<_>>()?;
        let edits = self
            .db
            .prepare_cached(
                "SELECT id FROM edits WHERE status = 'pending' AND next_attempt_at <= ?1 \
                 ORDER BY next_attempt_at, id LIMIT ?2",
            )?
            .query_map(params![now_s, limit as i64], |r| r.get(0))?
            .collect::<Result<_>>()?;
        Ok((comments, edits))
    }

    /// When the next waiting comment or pending edit is due (`None`: nothing waits).
    pub fn next_social_at(&self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self.db.query_row(
            "SELECT MIN(t) FROM (SELECT MIN(next_attempt_at) AS t FROM comments WHERE status = 'waiting' \
             UNION ALL SELECT MIN(next_attempt_at) FROM edits WHERE status = 'pending') AS soonest",
            params![],
            |r| r.get(0),
        )?;
        opt_ts("comments", "next_attempt_at", t)
    }

    /// Claims a waiting first comment: `sending`, its try counted, committed (FULL) before
    /// the request leaves. `None` if it is not waiting any more, or if its post is no longer
    /// published (deleted meanwhile: the comment is then dead, never sent).
    pub fn claim_comment(
        &mut self,
        post_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CommentJob>> {
        let now_s = ts(now);
        let tx = self.write()?;
        let row: Option<(String, String, Option<String>, String, u32)> = tx
            .query_row(
                "SELECT p.state, p.account, p.post_urn, c.text, c.attempts FROM comments c \
                 JOIN posts p ON p.id = c.post_id WHERE c.post_id = ?1 AND c.status = 'waiting'",
                [post_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((state, account, urn, text, attempts)) = row else {
            return Ok(None);
        };
        let state = parse_state(&state)?;
        let Some(post_urn) = urn.filter(|_| state == PostState::Published) else {
            tx.execute(
                "UPDATE comments SET status = 'dead', next_attempt_at = NULL, updated_at = ?2, last_error = ?3 \
                 WHERE post_id = ?1",
                params![post_id, now_s, format!("not sent: the post is {state}, not published")],
            )?;
            tx.commit()?;
            return Ok(None);
        };
        tx.execute(
            "UPDATE comments SET status = 'sending', attempts = attempts + 1, updated_at = ?2 \
             WHERE post_id = ?1 AND status = 'waiting'",
            params![post_id, now_s],
        )?;
        tx.commit()?;
        Ok(Some(CommentJob {
            post_id: post_id.to_string(),
            account,
            post_urn,
            text,
            attempts: attempts + 1,
        }))
    }

    /// Records how a claimed comment's try ended. Only a `sending` row moves.
    pub fn settle_comment(
        &mut self,
        post_id: &str,
        outcome: &CommentSettle,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        let (status, urn, next, error) = match outcome {
            CommentSettle::Posted { urn } => (CommentStatus::Posted, urn.clone(), None, None),
            CommentSettle::Refused { why } => {
                (CommentStatus::Refused, None, None, Some(why.clone()))
            }
            CommentSettle::Retry { at, why } => (
                CommentStatus::Waiting,
                None,
                Some(ts(*at)),
                Some(why.clone()),
            ),
            CommentSettle::Later { why } => (
                CommentStatus::Waiting,
                None,
                Some(now_s.clone()),
                Some(why.clone()),
            ),
            CommentSettle::Dead { why } => (CommentStatus::Dead, None, None, Some(why.clone())),
        };
        // The claim counted the try; one that does not count gives it back.
        let uncount = i64::from(matches!(outcome, CommentSettle::Later { .. }));
        tx.execute(
            "UPDATE comments SET status = ?2, comment_urn = COALESCE(?3, comment_urn), next_attempt_at = ?4, \
             last_error = ?5, updated_at = ?6, attempts = attempts - ?7 WHERE post_id = ?1 AND status = 'sending'",
            params![post_id, status.as_str(), urn, next, error, now_s, uncount],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A post's first comment, if it has been queued.
    pub fn comment_of(&self, post_id: &str) -> Result<Option<Comment>> {
        self.db
            .query_row(
                &format!("SELECT {COMMENT_COLUMNS} FROM comments WHERE post_id = ?1"),
                [post_id],
                comment_from_row,
            )
            .optional()
    }

    // ------------------------------------------------------------ edits

    /// Intake of an `edit = true` draft for a published post: the new text waits to be sent
    /// now. A pending edit of the same post is replaced (the latest text wins). `false` if
    /// the text is already the post's, or the pending edit's: the same draft again.
    pub(super) fn queue_edit(
        tx: &Db,
        post_id: &str,
        text: &str,
        commentary: &str,
        source_file: &str,
        now_s: &str,
    ) -> Result<bool> {
        let current: String = tx.query_row(
            "SELECT commentary FROM posts WHERE id = ?1",
            [post_id],
            |r| r.get(0),
        )?;
        let pending: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, commentary FROM edits WHERE post_id = ?1 AND status = 'pending'",
                [post_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match pending {
            Some((_, c)) if c == commentary => return Ok(false),
            None if current == commentary => return Ok(false),
            Some((id, _)) => {
                tx.execute(
                    "UPDATE edits SET text = ?2, commentary = ?3, source_file = ?4, attempts = 0, \
                     next_attempt_at = ?5, last_error = NULL, updated_at = ?5 WHERE id = ?1",
                    params![id, text, commentary, source_file, now_s],
                )?;
            }
            None => {
                tx.execute(
                    "INSERT INTO edits (post_id, text, commentary, source_file, next_attempt_at, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)",
                    params![post_id, text, commentary, source_file, now_s],
                )?;
            }
        }
        crate::comments::wake().notify_one();
        Ok(true)
    }

    /// A pending edit with what sending it needs. An edit of a post no longer published
    /// (deleted meanwhile) fails here, unsent.
    pub fn edit_job(&mut self, id: i64, now: DateTime<Utc>) -> Result<Option<EditJob>> {
        let row: Option<(String, Option<String>, EditJob)> = self
            .db
            .query_row(
                "SELECT p.state, p.post_urn, e.post_id, p.account, e.text, e.commentary, e.attempts \
                 FROM edits e JOIN posts p ON p.id = e.post_id WHERE e.id = ?1 AND e.status = 'pending'",
                [id],
                |r| {
                    let job = EditJob {
                        id,
                        post_id: r.get(2)?,
                        account: r.get(3)?,
                        post_urn: String::new(),
                        text: r.get(4)?,
                        commentary: r.get(5)?,
                        attempts: r.get(6)?,
                    };
                    Ok((r.get(0)?, r.get(1)?, job))
                },
            )
            .optional()?;
        let Some((state, urn, job)) = row else {
            return Ok(None);
        };
        let state = parse_state(&state)?;
        let Some(post_urn) = urn.filter(|_| state == PostState::Published) else {
            let result = AttemptResult {
                outcome: AttemptOutcome::EditFailed,
                ..AttemptResult::message(format!(
                    "edit not sent: the post is {state}, not published"
                ))
            };
            let sent = (job.text.clone(), job.commentary.clone());
            self.settle_edit(
                id,
                (&sent.0, &sent.1),
                &result,
                &EditSettle::Failed,
                now,
                now,
            )?;
            return Ok(None);
        };
        Ok(Some(EditJob { post_urn, ..job }))
    }

    /// Records an edit's try as an attempt of its post; on `Done` the post's text becomes
    /// the edit's. `sent` is the (text, commentary) the try carried: a newer edit may have
    /// replaced the pending row meanwhile.
    pub fn settle_edit(
        &mut self,
        id: i64,
        sent: (&str, &str),
        result: &AttemptResult,
        outcome: &EditSettle,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        let Some((post_id, pending)) = tx
            .query_row(
                "SELECT post_id, commentary FROM edits WHERE id = ?1 AND status = 'pending'",
                [id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?
        else {
            return Ok(());
        };
        let (status, next) = match outcome {
            EditSettle::Done => (EditStatus::Done, None),
            EditSettle::Retry { at } => (EditStatus::Pending, Some(ts(*at))),
            EditSettle::Later => (EditStatus::Pending, Some(now_s.clone())),
            EditSettle::Failed => (EditStatus::Failed, None),
        };
        let counted = i64::from(!matches!(outcome, EditSettle::Later));
        if status == EditStatus::Done {
            // What LinkedIn shows now: the text this try carried.
            tx.execute(
                "UPDATE posts SET text = ?2, commentary = ?3, updated_at = ?4 WHERE id = ?1",
                params![post_id, sent.0, sent.1, now_s],
            )?;
        }
        // A newer edit may have replaced the pending row while this one was under way: the
        // row is the newer edit's then and stays pending, untouched, so it is sent next.
        if pending == sent.1 {
            let error = match status {
                EditStatus::Done => None,
                _ => result.message.clone(),
            };
            tx.execute(
                "UPDATE edits SET status = ?2, attempts = attempts + ?6, next_attempt_at = COALESCE(?3, next_attempt_at), \
                 last_error = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, status.as_str(), next, error, now_s, counted],
            )?;
        }
        Self::record_attempt(&tx, &post_id, result, ts(started), &now_s, next)?;
        tx.commit()?;
        Ok(())
    }

    /// A post's edits, oldest first.
    pub fn edits_of(&self, post_id: &str) -> Result<Vec<Edit>> {
        let mut stmt = self.db.prepare(
            "SELECT id, post_id, text, status, attempts, next_attempt_at, last_error, created_at, updated_at \
             FROM edits WHERE post_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([post_id], |r| {
            Ok(Edit {
                id: r.get(0)?,
                post_id: r.get(1)?,
                text: r.get(2)?,
                status: status_from_sql("edits", &r.get::<_, String>(3)?, EditStatus::parse)?,
                attempts: r.get(4)?,
                next_attempt_at: parse_ts("edits", "next_attempt_at", &r.get::<_, String>(5)?)?,
                last_error: r.get(6)?,
                created_at: parse_ts("edits", "created_at", &r.get::<_, String>(7)?)?,
                updated_at: parse_ts("edits", "updated_at", &r.get::<_, String>(8)?)?,
            })
        })?;
        rows.collect::<Result<_>>()
    }

    // ------------------------------------------------------------ delete

    /// LinkedIn deleted the post (`lipost delete`, 204): `deleted`, with an attempt row.
    /// Pending edits and a waiting comment of it will not be sent.
    pub fn delete_post(
        &mut self,
        id: &str,
        result: &AttemptResult,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        Self::apply_or_explain(&tx, id, Transition::Delete, "delete", &now_s)?;
        Self::record_attempt(&tx, id, result, ts(started), &now_s, None)?;
        tx.commit()?;
        Ok(())
    }

    /// A try of `lipost delete` that LinkedIn did not carry out: recorded, the post stays.
    pub fn delete_failed(
        &mut self,
        id: &str,
        result: &AttemptResult,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        Self::record_attempt(&tx, id, result, ts(started), &now_s, None)?;
        tx.commit()?;
        Ok(())
    }

    fn record_attempt(
        tx: &Db,
        post_id: &str,
        r: &AttemptResult,
        started: super::Ts,
        now_s: &str,
        next: Option<super::Ts>,
    ) -> Result<()> {
        tx.execute(
            "INSERT INTO attempts (post_id, started_at, finished_at, http_status, error_code, service_error_code, \
             message, outcome, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                post_id,
                started,
                now_s,
                r.http_status,
                r.error_code,
                r.service_error_code,
                r.message,
                r.outcome.as_str(),
                next
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Settle, Settled};

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    /// A database as lipost before migration 9 left it, with a post and the rows that
    /// reference it.
    fn at_version_8(path: &std::path::Path) {
        let conn = rusqlite::Connection::open(path).unwrap();
        for sql in &super::super::migrations::MIGRATIONS[..8] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 8).unwrap();
        conn.execute_batch(
            "INSERT INTO posts (id, account, state, due_at, next_attempt_at, commentary, text, visibility, created_at, updated_at, \
             post_urn, published_at, slot_at, first_comment) \
             VALUES ('p', 'me', 'published', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'x', 'x', 'PUBLIC', \
             '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'urn:li:share:1', '2026-01-01T00:00:01.000Z', \
             '2026-01-01T00:00:00.000Z', 'hi'); \
             INSERT INTO attempts (post_id, started_at, outcome) VALUES ('p', '2026-01-01T00:00:00.000Z', 'published'); \
             INSERT INTO comments (post_id, text, created_at, updated_at) VALUES ('p', 'hi', '2026-01-01T00:00:01.000Z', '2026-01-01T00:00:01.000Z');",
        )
        .unwrap();
    }

    fn indexes(conn: &Db) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'posts' AND sql IS NOT NULL ORDER BY name")
            .unwrap();
        let rows = stmt
            .query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        rows.collect::<Result<_>>().unwrap()
    }

    #[test]
    fn migration_9_keeps_rows_indexes_and_foreign_keys_and_allows_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        at_version_8(&path);
        let before = indexes(&Db::Sqlite(rusqlite::Connection::open(&path).unwrap()));
        assert_eq!(before.len(), 5, "{before:?}");
        let mut store = Store::open(&path).unwrap();
        let p = store.get("p").unwrap();
        assert_eq!(
            (p.state, p.post_urn.as_deref(), p.first_comment.as_deref()),
            (PostState::Published, Some("urn:li:share:1"), Some("hi"))
        );
        assert_eq!(store.attempts("p").unwrap().len(), 1);
        // Later migrations add their own (12: posts_rate_limited, 13: posts_plain_next).
        let after: Vec<_> = indexes(&store.db)
            .into_iter()
            .filter(|(name, _)| name != "posts_rate_limited" && name != "posts_plain_next")
            .collect();
        assert_eq!(after, before, "every index made again as it was");
        let fk: bool = store
            .db
            .query_row("PRAGMA foreign_keys", params![], |r| r.get(0))
            .unwrap();
        assert!(fk, "foreign keys are on again");
        // Still enforced against the rebuilt table.
        let orphan = store.db.execute(
            "INSERT INTO attempts (post_id, started_at) VALUES ('nope', '2026-01-01T00:00:00.000Z')",
            params![],
        );
        assert!(orphan.is_err());
        let result = AttemptResult {
            http_status: Some(204),
            outcome: AttemptOutcome::Deleted,
            ..AttemptResult::default()
        };
        store.delete_post("p", &result, now(), now()).unwrap();
        assert_eq!(store.get("p").unwrap().state, PostState::Deleted);
        // Only a published post is deleted.
        assert!(matches!(
            store.delete_post("p", &result, now(), now()),
            Err(StoreError::WrongState { .. })
        ));
    }

    fn published_with_comment(store: &mut Store, id: &str) {
        let config = crate::config::Config::parse(
            crate::config::TEST_CONFIG,
            std::path::Path::new("/x/config.toml"),
        )
        .unwrap();
        let mut draft = crate::draft::parse(b"Hello\n", id, &config).unwrap();
        draft.first_comment = Some("Links (below)".into());
        let post = crate::store::NewPost {
            draft: &draft,
            source_file: "p.md",
            slots: &[],
        };
        store.ingest(&[post], now()).unwrap();
        let (_, attempt) = store
            .claim_many(&[id.to_string()], now())
            .unwrap()
            .remove(0);
        let settled = Settled {
            post_id: id.into(),
            attempt,
            result: AttemptResult {
                outcome: AttemptOutcome::Published,
                ..AttemptResult::default()
            },
            outcome: Settle::Published {
                urn: format!("urn:li:share:{id}"),
            },
        };
        for r in store.settle_many(&[settled], now()).unwrap() {
            r.unwrap();
        }
    }

    #[test]
    fn a_published_post_queues_its_comment_once_and_a_claim_left_sending_is_dead() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        published_with_comment(&mut store, "p");
        let c = store.comment_of("p").unwrap().unwrap();
        assert_eq!(
            (c.status, c.text.as_str()),
            (CommentStatus::Waiting, "Links (below)")
        );
        let (due, _) = store.social_due(now(), 10).unwrap();
        assert_eq!(due, vec!["p".to_string()]);
        let job = store.claim_comment("p", now()).unwrap().unwrap();
        assert_eq!((job.attempts, job.post_urn.as_str()), (1, "urn:li:share:p"));
        assert!(
            store.claim_comment("p", now()).unwrap().is_none(),
            "claimed once"
        );
        // A crash here: the next start finds it `sending`.
        assert_eq!(
            store.recover_comments(now()).unwrap(),
            vec!["p".to_string()]
        );
        let c = store.comment_of("p").unwrap().unwrap();
        assert_eq!(c.status, CommentStatus::Dead);
        assert!(c.last_error.unwrap().contains("may be on LinkedIn"));
        assert_eq!(store.social_due(now(), 10).unwrap().0.len(), 0);
    }

    #[test]
    fn a_comment_of_a_deleted_post_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        published_with_comment(&mut store, "p");
        let r = AttemptResult {
            outcome: AttemptOutcome::Deleted,
            ..AttemptResult::default()
        };
        store.delete_post("p", &r, now(), now()).unwrap();
        assert!(store.claim_comment("p", now()).unwrap().is_none());
        assert_eq!(
            store.comment_of("p").unwrap().unwrap().status,
            CommentStatus::Dead
        );
    }

    /// Review finding: an edit replaced while the previous one was under way is still sent,
    /// and the store never claims text LinkedIn does not show.
    #[test]
    fn an_edit_replaced_while_under_way_is_still_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        published_with_comment(&mut store, "p");
        let queue = |store: &mut Store, text: &str| {
            let tx = store.write().unwrap();
            assert!(Store::queue_edit(&tx, "p", text, text, "p.md", &ts(now())).unwrap());
            tx.commit().unwrap();
        };
        queue(&mut store, "A");
        let (_, edits) = store.social_due(now(), 10).unwrap();
        let a = store.edit_job(edits[0], now()).unwrap().unwrap();
        // B arrives while A's request is in flight; then A's 204.
        queue(&mut store, "B");
        let landed = AttemptResult {
            http_status: Some(204),
            outcome: AttemptOutcome::Edited,
            ..AttemptResult::default()
        };
        store
            .settle_edit(
                a.id,
                (&a.text, &a.commentary),
                &landed,
                &EditSettle::Done,
                now(),
                now(),
            )
            .unwrap();
        assert_eq!(store.get("p").unwrap().text, "A", "what LinkedIn shows now");
        let (_, edits) = store.social_due(now(), 10).unwrap();
        let b = store
            .edit_job(edits[0], now())
            .unwrap()
            .expect("B still pending");
        assert_eq!(b.text, "B");
        store
            .settle_edit(
                b.id,
                (&b.text, &b.commentary),
                &landed,
                &EditSettle::Done,
                now(),
                now(),
            )
            .unwrap();
        assert_eq!(store.get("p").unwrap().text, "B");
        assert!(store.social_due(now(), 10).unwrap().1.is_empty());
    }

    #[test]
    fn an_edit_is_queued_once_and_done_changes_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        published_with_comment(&mut store, "p");
        let tx = store.write().unwrap();
        assert!(
            Store::queue_edit(&tx, "p", "New (text)", "New \\(text\\)", "p.md", &ts(now()))
                .unwrap()
        );
        assert!(
            !Store::queue_edit(&tx, "p", "New (text)", "New \\(text\\)", "p.md", &ts(now()))
                .unwrap()
        );
        tx.commit().unwrap();
        let (_, edits) = store.social_due(now(), 10).unwrap();
        let job = store.edit_job(edits[0], now()).unwrap().unwrap();
        assert_eq!(job.commentary, "New \\(text\\)");
        let r = AttemptResult {
            http_status: Some(204),
            outcome: AttemptOutcome::Edited,
            ..AttemptResult::default()
        };
        store
            .settle_edit(
                job.id,
                (&job.text, &job.commentary),
                &r,
                &EditSettle::Done,
                now(),
                now(),
            )
            .unwrap();
        let p = store.get("p").unwrap();
        assert_eq!(
            (p.text.as_str(), p.commentary.as_str()),
            ("New (text)", "New \\(text\\)")
        );
        assert_eq!(store.edits_of("p").unwrap()[0].status, EditStatus::Done);
        let outcomes: Vec<_> = store
            .attempts("p")
            .unwrap()
            .into_iter()
            .map(|a| a.outcome)
            .collect();
        assert_eq!(outcomes.last().unwrap().as_deref(), Some("edited"));
    }
}
