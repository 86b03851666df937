//! The `media` and `media_attempts` tables: one row per asset and owner (the post's author),
//! so the same file for the same owner is uploaded once and reused by every post that names
//! it, and one `media_attempts` row per step tried (initialize, upload, finalize, status).
//!
//! A row moves `pending` → `uploading` (claimed by a try) → `processing` (uploaded, URN
//! known) → `available` or `failed`. A row left `uploading` by a dead process is simply
//! redone: uploading publishes nothing. A `failed` row is tried afresh for a post queued
//! (or re-queued) after it failed, so `lipost retry` uploads again.

use std::collections::HashMap;

use super::db::{params, Optional, Row};
use chrono::{DateTime, Utc};

use super::{opt_ts, parse_ts, ts, Result, Store, StoreError};
use crate::content::{Asset, Content, MediaKind};
use crate::post::spelled;
use serde::Serialize;

spelled! {
    /// Where an asset is: `media.status`.
    MediaStatus {
        /// Nothing sent yet, or a try to send it failed and waits for `next_attempt_at`.
        Pending = "pending",
        /// A try is under way (initialize, upload, finalize).
        Uploading = "uploading",
        /// Uploaded (URN known), not yet known to be `AVAILABLE`.
        Processing = "processing",
        Available = "available",
        /// LinkedIn could not process it, or uploading failed for good: `last_error` says why.
        Failed = "failed",
    }
}

spelled! {
    /// One call of an upload: `media_attempts.step`.
    MediaStep {
        Initialize = "initialize",
        Upload = "upload",
        Finalize = "finalize",
        Status = "status",
    }
}

spelled! {
    /// How a step ended: `media_attempts.outcome`.
    MediaOutcome {
        /// The step did its part.
        Done = "done",
        /// The status read says LinkedIn is still processing it.
        Processing = "processing",
        /// The status read says `AVAILABLE`, or a member asset's grace has passed.
        Available = "available",
        /// A member token may not read a member image's or document's status (403): the
        /// asset is taken as available `media.member_grace` after its upload.
        NotReadable = "not_readable",
        /// Failed in a way worth repeating after a backoff.
        Retry = "retry",
        /// 429: repeated after a backoff, or after 00:00 UTC once the quota looks spent.
        RateLimited = "rate_limited",
        /// Failed for good, or `PROCESSING_FAILED`.
        Failed = "failed",
        /// The daemon stopped while the step was under way; the upload is redone.
        Interrupted = "interrupted",
    }
}

/// An asset's row.
#[derive(Debug, Clone)]
pub struct MediaRow {
    pub sha256: String,
    pub owner: String,
    pub kind: MediaKind,
    pub bytes: u64,
    pub urn: Option<String>,
    pub status: MediaStatus,
    /// Failed tries since the last success or reset.
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub uploaded_at: Option<DateTime<Utc>>,
    pub available_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A scheduled post with content, as the uploader weighs it.
#[derive(Debug, Clone)]
pub struct MediaPost {
    pub id: String,
    pub account: String,
    pub due_at: DateTime<Utc>,
    pub content: Content,
    pub updated_at: DateTime<Utc>,
}

/// Whether a post's assets let it be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaGate {
    /// Every asset is `AVAILABLE`: its URN by SHA-256.
    Ready(HashMap<String, String>),
    /// At least one is not yet.
    Waiting,
    /// One failed: why, with LinkedIn's reason.
    Failed(String),
}

const MEDIA_COLUMNS: &str = "sha256, owner, kind, bytes, urn, status, attempts, next_attempt_at, \
     uploaded_at, available_at, last_error, updated_at";

fn corrupt(column: &'static str, value: &str, expected: &'static str) -> StoreError {
    StoreError::Corrupt {
        table: "media",
        column,
        value: value.to_string(),
        expected,
    }
}

fn media_from_row(r: &Row<'_>) -> Result<MediaRow> {
    let kind: String = r.get(2)?;
    let status: String = r.get(5)?;
    Ok(MediaRow {
        sha256: r.get(0)?,
        owner: r.get(1)?,
        kind: MediaKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind, "a media kind"))?,
        bytes: r.get::<_, i64>(3)?.max(0) as u64,
        urn: r.get(4)?,
        status: MediaStatus::parse(&status)
            .ok_or_else(|| corrupt("status", &status, "a media status"))?,
        attempts: r.get(6)?,
        next_attempt_at: opt_ts("media", "next_attempt_at", r.get(7)?)?,
        uploaded_at: opt_ts("media", "uploaded_at", r.get(8)?)?,
        available_at: opt_ts("media", "available_at", r.get(9)?)?,
        last_error: r.get(10)?,
        updated_at: parse_ts("media", "updated_at", &r.get::<_, String>(11)?)?,
    })
}

impl Store {
    /// Scheduled posts with content due at or before `until`, earliest first.
    pub fn posts_with_media_due(&self, until: DateTime<Utc>) -> Result<Vec<MediaPost>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT id, account, due_at, content, updated_at FROM posts \
             WHERE state = 'scheduled' AND content IS NOT NULL AND due_at <= ?1 ORDER BY due_at, id",
        )?;
        let rows = stmt.query_map([ts(until)], |r| {
            Ok(MediaPost {
                id: r.get(0)?,
                account: r.get(1)?,
                due_at: parse_ts("posts", "due_at", &r.get::<_, String>(2)?)?,
                content: super::parse_content(&r.get::<_, String>(3)?)?,
                updated_at: parse_ts("posts", "updated_at", &r.get::<_, String>(4)?)?,
            })
        })?;
        rows.collect::<Result<_>>()
    }

    /// The earliest `due_at` after `after` of a scheduled post with content.
    pub fn next_media_post_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self.db.query_row(
            "SELECT MIN(due_at) FROM posts WHERE state = 'scheduled' AND content IS NOT NULL AND due_at > ?1",
            [ts(after)],
            |r| r.get(0),
        )?;
        opt_ts("posts", "due_at", t)
    }

    /// A row per asset for `owner` (new ones `pending`), in the order given. A `failed` row
    /// that failed before `post_changed` (the post was queued or re-queued since) is made
    /// `pending` again: a person asked for another go.
    pub fn ensure_media(
        &mut self,
        owner: &str,
        assets: &[&Asset],
        post_changed: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<MediaRow>> {
        let now_s = ts(now);
        let tx = self.write()?;
        let mut rows = Vec::with_capacity(assets.len());
        for a in assets {
            tx.prepare_cached(
                "INSERT INTO media (sha256, owner, kind, bytes, status, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                a.sha256,
                owner,
                a.kind.as_str(),
                a.bytes as i64,
                now_s
            ])?;
            tx.prepare_cached(
                "UPDATE media SET status = 'pending', attempts = 0, next_attempt_at = NULL, urn = NULL, \
                 uploaded_at = NULL, available_at = NULL, updated_at = ?4 \
                 WHERE sha256 = ?1 AND owner = ?2 AND status = 'failed' AND updated_at < ?3",
            )?
            .execute(params![a.sha256, owner, ts(post_changed), now_s])?;
            let row = tx
                .prepare_cached(&format!(
                    "SELECT {MEDIA_COLUMNS} FROM media WHERE sha256 = ?1 AND owner = ?2"
                ))?
                .query_row(params![a.sha256, owner], media_from_row)?;
            rows.push(row);
        }
        tx.commit()?;
        Ok(rows)
    }

    pub fn media_row(&self, sha256: &str, owner: &str) -> Result<Option<MediaRow>> {
        self.db
            .prepare_cached(&format!(
                "SELECT {MEDIA_COLUMNS} FROM media WHERE sha256 = ?1 AND owner = ?2"
            ))?
            .query_row(params![sha256, owner], media_from_row)
            .optional()
    }

    /// Every row of an asset, whoever owns it (for `lipost show` and tests).
    pub fn media_rows(&self, sha256: &str) -> Result<Vec<MediaRow>> {
        let mut stmt = self.db.prepare_cached(&format!(
            "SELECT {MEDIA_COLUMNS} FROM media WHERE sha256 = ?1 ORDER BY owner"
        ))?;
        let rows = stmt.query_map([sha256], media_from_row)?;
        rows.collect::<Result<_>>()
    }

    /// Claims a `pending` (or interrupted `uploading`) row for an upload try: `uploading`.
    /// `false` if it is in another state.
    pub fn media_claim(&mut self, sha256: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        Ok(self
            .db
            .prepare_cached(
                "UPDATE media SET status = 'uploading', updated_at = ?3 \
                 WHERE sha256 = ?1 AND owner = ?2 AND status IN ('pending', 'uploading')",
            )?
            .execute(params![sha256, owner, ts(now)])?
            == 1)
    }

    /// Opens a `media_attempts` row for a step; its id.
    pub fn media_step_start(
        &mut self,
        sha256: &str,
        owner: &str,
        step: MediaStep,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self
            .db
            .prepare_cached(
                "INSERT INTO media_attempts (sha256, owner, step, started_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .insert(params![sha256, owner, step.as_str(), ts(now)])
    }

    /// Closes a `media_attempts` row.
    pub fn media_step_end(
        &mut self,
        id: i64,
        http_status: Option<u16>,
        message: Option<&str>,
        outcome: MediaOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.db
            .prepare_cached(
                "UPDATE media_attempts SET finished_at = ?2, http_status = ?3, message = ?4, outcome = ?5 \
                 WHERE id = ?1",
            )?
            .execute(params![id, ts(now), http_status, message, outcome.as_str()])?;
        Ok(())
    }

    /// Uploaded (and finalized): `processing`, with its URN; its status is looked at `next`.
    pub fn media_uploaded(
        &mut self,
        sha256: &str,
        owner: &str,
        urn: &str,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.db
            .prepare_cached(
                "UPDATE media SET status = 'processing', urn = ?3, uploaded_at = ?5, next_attempt_at = ?4, \
                 attempts = 0, last_error = NULL, updated_at = ?5 WHERE sha256 = ?1 AND owner = ?2",
            )?
            .execute(params![sha256, owner, urn, ts(next), ts(now)])?;
        Ok(())
    }

    /// `AVAILABLE` (or a member asset's grace passed).
    pub fn media_available(&mut self, sha256: &str, owner: &str, now: DateTime<Utc>) -> Result<()> {
        let tx = self.db.write()?;
        tx.prepare_cached(
            "UPDATE media SET status = 'available', available_at = ?3, next_attempt_at = NULL, \
             last_error = NULL, updated_at = ?3 WHERE sha256 = ?1 AND owner = ?2 AND status = 'processing'",
        )?
        .execute(params![sha256, owner, ts(now)])?;
        lift_media_holds(&tx, now)?;
        tx.commit()
    }

    /// Failed for good, with why.
    pub fn media_failed(
        &mut self,
        sha256: &str,
        owner: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.db.write()?;
        tx.prepare_cached(
            "UPDATE media SET status = 'failed', next_attempt_at = NULL, last_error = ?3, updated_at = ?4 \
             WHERE sha256 = ?1 AND owner = ?2",
        )?
        .execute(params![sha256, owner, why, ts(now)])?;
        lift_media_holds(&tx, now)?;
        tx.commit()
    }

    /// Looked at again at `at`: still `processing` if it was uploaded, else `pending` (an
    /// upload try failed; the next one initializes afresh). `counts`: a failed try.
    pub fn media_again(
        &mut self,
        sha256: &str,
        owner: &str,
        at: DateTime<Utc>,
        counts: bool,
        why: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.db
            .prepare_cached(
                "UPDATE media SET status = CASE WHEN status = 'uploading' THEN 'pending' ELSE status END, \
                 next_attempt_at = ?3, attempts = attempts + ?4, last_error = COALESCE(?5, last_error), \
                 updated_at = ?6 WHERE sha256 = ?1 AND owner = ?2 AND status IN ('pending', 'uploading', 'processing')",
            )?
            .execute(params![sha256, owner, ts(at), counts as i64, why, ts(now)])?;
        Ok(())
    }

    /// How many of the asset's last steps in a row were answered 429.
    pub fn media_rate_limited_in_a_row(&self, sha256: &str, owner: &str) -> Result<u32> {
        let mut stmt = self.db.prepare_cached(
            "SELECT outcome FROM media_attempts WHERE sha256 = ?1 AND owner = ?2 AND finished_at IS NOT NULL \
             ORDER BY id DESC LIMIT 10",
        )?;
        let outcomes = stmt.query_map(params![sha256, owner], |r| r.get::<_, Option<String>>(0))?;
        let mut n = 0;
        for o in outcomes {
            if o?.as_deref() != Some(MediaOutcome::RateLimited.as_str()) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// At start-up: tries a dead process left under way are redone (uploading publishes
    /// nothing). Their open steps are closed as `interrupted`. The number of assets.
    pub fn media_recover_interrupted(&mut self, now: DateTime<Utc>) -> Result<usize> {
        let now_s = ts(now);
        let tx = self.write()?;
        tx.execute(
            "UPDATE media_attempts SET finished_at = ?1, outcome = ?2, \
             message = 'the daemon stopped while this step was under way; the upload is redone' \
             WHERE finished_at IS NULL",
            params![now_s, MediaOutcome::Interrupted.as_str()],
        )?;
        let n = tx.execute(
            "UPDATE media SET status = 'pending', next_attempt_at = ?1, updated_at = ?1 WHERE status = 'uploading'",
            [&now_s],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// LinkedIn refused post `post_id` for naming an asset unknown to it (`codes`:
    /// `INVALID_IMAGE_ID`, ...) in a try that began at `started`: each of these assets of
    /// `owner` that was available before then is uploaded again, as a new asset, before any
    /// post names it again. Once per queued life of the post: `None` if one of its last
    /// `recent` finished tries (those counted since it was last queued) was refused so
    /// already, when a new upload did not help. Else how many assets were made `pending`:
    /// none when another post's refusal or upload renewed them since that try began.
    #[allow(clippy::too_many_arguments)]
    pub fn media_upload_again(
        &mut self,
        post_id: &str,
        recent: u32,
        codes: &[&str; 3],
        sha256s: &[String],
        owner: &str,
        why: &str,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<usize>> {
        let now_s = ts(now);
        let tx = self.write()?;
        let before: i64 = tx.query_row(
            "SELECT COUNT(*) FROM (SELECT error_code FROM attempts WHERE post_id = ?1 \
             AND finished_at IS NOT NULL ORDER BY id DESC LIMIT ?2) AS recent \
             WHERE error_code IN (?3, ?4, ?5)",
            params![post_id, i64::from(recent), codes[0], codes[1], codes[2]],
            |r| r.get(0),
        )?;
        if before > 0 {
            return Ok(None);
        }
        let mut n = 0;
        for sha in sha256s {
            n += tx
                .prepare_cached(
                    "UPDATE media SET status = 'pending', urn = NULL, uploaded_at = NULL, available_at = NULL, \
                     attempts = 0, next_attempt_at = ?3, last_error = ?4, updated_at = ?3 \
                     WHERE sha256 = ?1 AND owner = ?2 AND status = 'available' AND available_at < ?5",
                )?
                .execute(params![sha, owner, now_s, why, ts(started)])?;
        }
        tx.commit()?;
        Ok(Some(n))
    }

    /// Forgets every upload not failed: for the built-in sandbox, which starts empty at each
    /// run, so an asset "available" there last run no longer exists. Returns how many.
    pub fn media_forget_uploads(&mut self, now: DateTime<Utc>) -> Result<usize> {
        let now_s = ts(now);
        self.db.execute(
            "UPDATE media SET status = 'pending', urn = NULL, uploaded_at = NULL, available_at = NULL, \
             attempts = 0, next_attempt_at = ?1, last_error = NULL, updated_at = ?1 \
             WHERE status IN ('uploading', 'processing', 'available')",
            [&now_s],
        )
    }

    /// The assets of post `id` and whether it may be created, for `owner` (its author). A
    /// post without content is `Ready` with no URNs. A `failed` row that failed before the
    /// post was last queued counts as waiting: the uploader tries it afresh.
    /// `owner` is `None` while no token says who the author is: any asset is then waiting.
    pub fn media_gate(&self, id: &str, owner: Option<&str>) -> Result<MediaGate> {
        let row: Option<(Option<String>, String)> = self
            .db
            .prepare_cached("SELECT content, updated_at FROM posts WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((Some(content), changed)) = row else {
            return Ok(MediaGate::Ready(HashMap::new()));
        };
        let content = super::parse_content(&content)?;
        let changed = parse_ts("posts", "updated_at", &changed)?;
        let mut urns = HashMap::new();
        let mut waiting = false;
        for a in content.assets() {
            let Some(owner) = owner else {
                return Ok(MediaGate::Waiting);
            };
            match self.media_row(&a.sha256, owner)? {
                Some(MediaRow {
                    status: MediaStatus::Available,
                    urn: Some(urn),
                    ..
                }) => {
                    urns.insert(a.sha256.clone(), urn);
                }
                Some(MediaRow {
                    status: MediaStatus::Failed,
                    last_error,
                    updated_at,
                    urn,
                    ..
                }) if updated_at >= changed => {
                    return Ok(MediaGate::Failed(format!(
                        "{} {}{} failed: {}",
                        a.kind.as_str(),
                        a.file,
                        urn.map(|u| format!(" ({u})")).unwrap_or_default(),
                        last_error.unwrap_or_else(|| "no reason given".into())
                    )));
                }
                _ => waiting = true,
            }
        }
        Ok(if waiting {
            MediaGate::Waiting
        } else {
            MediaGate::Ready(urns)
        })
    }
}

/// The posts held for their media are looked at again, in the transaction that settles an
/// asset: a look (another node's, on PostgreSQL) that saw the asset still processing either
/// committed its hold before, and it is lifted here, or runs after, and sees the asset ready.
/// Lifting after the commit would miss a hold committed in between, which would then wait
/// until its deadline.
fn lift_media_holds(db: &super::db::Db, now: DateTime<Utc>) -> Result<()> {
    super::guards::lift(
        db,
        Some(crate::post::HoldReason::MediaProcessing),
        None,
        now,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, TEST_CONFIG};
    use crate::store::NewPost;

    fn asset(n: u8) -> Asset {
        Asset {
            sha256: format!("{n:064x}"),
            kind: MediaKind::Image,
            bytes: 10,
            file: format!("{n}.png"),
            alt: None,
        }
    }

    /// A store with post `p` naming images 1 and 2, written at `at`.
    fn store_with_media_post(dir: &std::path::Path, at: DateTime<Utc>) -> Store {
        let config = Config::parse(TEST_CONFIG, &dir.join("config.toml")).unwrap();
        let mut store = Store::open(&config.database).unwrap();
        let mut draft = crate::draft::parse(b"Pictures\n", "p", &config).unwrap();
        draft.content = Some(Content::Images {
            images: vec![asset(1), asset(2)],
        });
        let post = NewPost {
            draft: &draft,
            source_file: "p",
            slots: &[],
        };
        store.ingest(&[post], at).unwrap();
        store
    }

    /// [`store_with_media_post`], with image 1 claimed for upload by member 1.
    fn claimed_asset(dir: &std::path::Path, t0: DateTime<Utc>) -> (Store, Asset) {
        let mut s = store_with_media_post(dir, t0);
        let (me, a) = ("urn:li:person:1", asset(1));
        s.ensure_media(me, &[&a], t0, t0).unwrap();
        assert!(s.media_claim(&a.sha256, me, t0).unwrap());
        (s, a)
    }

    #[test]
    fn a_post_is_ready_only_once_every_asset_is_available_for_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let mut s = store_with_media_post(dir.path(), t0);
        let me = "urn:li:person:1";
        assert_eq!(s.media_gate("p", None).unwrap(), MediaGate::Waiting);
        assert_eq!(s.media_gate("p", Some(me)).unwrap(), MediaGate::Waiting);
        let (a, b) = (asset(1), asset(2));
        let rows = s.ensure_media(me, &[&a, &b], t0, t0).unwrap();
        assert!(rows.iter().all(|r| r.status == MediaStatus::Pending));
        for (n, x) in [(1, &a), (2, &b)] {
            assert!(s.media_claim(&x.sha256, me, t0).unwrap());
            s.media_uploaded(&x.sha256, me, &format!("urn:li:image:{n}"), t0, t0)
                .unwrap();
        }
        assert_eq!(s.media_gate("p", Some(me)).unwrap(), MediaGate::Waiting);
        s.media_available(&a.sha256, me, t0).unwrap();
        s.media_available(&b.sha256, me, t0).unwrap();
        let MediaGate::Ready(urns) = s.media_gate("p", Some(me)).unwrap() else {
            panic!("not ready");
        };
        assert_eq!(urns[&b.sha256], "urn:li:image:2");
        // Another owner (a page) has uploaded nothing: its own rows are needed.
        assert_eq!(
            s.media_gate("p", Some("urn:li:organization:9")).unwrap(),
            MediaGate::Waiting
        );
    }

    #[test]
    fn recording_an_asset_available_lifts_the_media_holds_in_the_same_write() {
        use crate::post::HoldReason;
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let (mut s, a) = claimed_asset(dir.path(), t0);
        let me = "urn:li:person:1";
        s.media_uploaded(&a.sha256, me, "urn:li:image:1", t0, t0)
            .unwrap();
        let until = t0 + chrono::Duration::hours(1);
        let hold = crate::store::Hold {
            reason: HoldReason::MediaProcessing,
            until,
        };
        s.hold_many(&[("p".to_string(), hold)], t0).unwrap();
        let t1 = t0 + chrono::Duration::seconds(1);
        s.media_available(&a.sha256, me, t1).unwrap();
        // Due again now, by the same commit: a look after it cannot find the post still held.
        assert_eq!(s.hold_of("p").unwrap().map(|h| h.until), None);
        assert_eq!(ts(s.get("p").unwrap().next_attempt_at), ts(t1));
    }

    #[test]
    fn a_failed_asset_fails_the_post_until_the_post_is_queued_again() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let mut s = store_with_media_post(dir.path(), t0);
        let me = "urn:li:person:1";
        let (a, b) = (asset(1), asset(2));
        s.ensure_media(me, &[&a, &b], t0, t0).unwrap();
        let t1 = t0 + chrono::Duration::seconds(1);
        s.media_failed(&a.sha256, me, "PROCESSING_FAILED: corrupt", t1)
            .unwrap();
        match s.media_gate("p", Some(me)).unwrap() {
            MediaGate::Failed(why) => assert!(why.contains("corrupt") && why.contains("1.png")),
            other => panic!("{other:?}"),
        }
        // Ensured again for the same post: still failed, not retried behind its back.
        let rows = s.ensure_media(me, &[&a], t0, t1).unwrap();
        assert_eq!(rows[0].status, MediaStatus::Failed);
        // The post changed after the failure (`lipost retry`, a new draft): tried afresh.
        let t2 = t1 + chrono::Duration::seconds(1);
        s.db.execute("UPDATE posts SET updated_at = ?1 WHERE id = 'p'", [ts(t2)])
            .unwrap();
        assert_eq!(s.media_gate("p", Some(me)).unwrap(), MediaGate::Waiting);
        let rows = s.ensure_media(me, &[&a], t2, t2).unwrap();
        assert_eq!(rows[0].status, MediaStatus::Pending);
        assert_eq!(rows[0].urn, None);
    }

    #[test]
    fn an_upload_cut_short_is_pending_again_and_its_step_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let (mut s, a) = claimed_asset(dir.path(), t0);
        let me = "urn:li:person:1";
        let step = s
            .media_step_start(&a.sha256, me, MediaStep::Upload, t0)
            .unwrap();
        assert_eq!(s.media_recover_interrupted(t0).unwrap(), 1);
        let row = s.media_row(&a.sha256, me).unwrap().unwrap();
        assert_eq!(row.status, MediaStatus::Pending);
        let outcome: String =
            s.db.query_row(
                "SELECT outcome FROM media_attempts WHERE id = ?1",
                [step],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(outcome, MediaOutcome::Interrupted.as_str());
    }
}
