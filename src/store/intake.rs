//! Intake: drafts into `posts`, idempotently (the same draft again is `Unchanged`), with
//! replacement rules and posting-slot reservation. A replacement never resends a post that
//! may be live (in doubt, or dead as `in_doubt`/`duplicate`), and a draft from another file
//! never moves a scheduled post earlier.

use super::db::{params, Db, Optional};
use chrono::{DateTime, Utc};

use super::{ts, Existing, NewPost, Refused, Result, Store, Taken};
use crate::post::{DeadReason, PostState, Transition};

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
        if !batch.is_empty() {
            // Every node looks again once this commits: the draft may be due now.
            super::nodes::notify_nodes(&tx, super::nodes::Wake::Due)?;
        }
        tx.commit()?;
        Ok(out)
    }

    fn ingest_one(
        tx: &Db,
        intake: &NewPost<'_>,
        now: DateTime<Utc>,
        now_s: &str,
    ) -> Result<Result<Taken, Refused>> {
        let d = intake.draft;
        // The rest of a draft written in steps, after a restart (or a crash between the stop
        // and the move) made intake forget the name: whatever id it carries.
        if !d.front_matter {
            let stopped: Option<String> = tx
                .query_row(
                    "SELECT p.id FROM dead_letters l JOIN posts p ON p.id = l.post_id \
                     WHERE l.reason = ?2 AND l.requeued_at IS NULL AND p.state = 'dead' \
                     AND p.source_file = ?1 LIMIT 1",
                    params![intake.source_file, DeadReason::DraftIncomplete.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = stopped {
                return Ok(Err(Refused::RestOfIncomplete { id }));
            }
        }
        let existing = tx
            .query_row(
                "SELECT state, post_urn, in_doubt_since, account, commentary, visibility, publish_at, \
                 source_file, due_at, content, first_comment, front_matter, source_stamp FROM posts WHERE id = ?1",
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
                        source_file: r.get(7)?,
                        due_at: r.get(8)?,
                        content: r.get(9)?,
                        first_comment: r.get(10)?,
                        front_matter: r.get(11)?,
                        source_stamp: r.get(12)?,
                    })
                },
            )
            .optional()?;
        let publish_at = d.publish_at.map(ts);
        let content = d
            .content
            .as_ref()
            .map(|c| serde_json::to_string(c).expect("content serializes"));
        if d.edit {
            return Self::ingest_edit(tx, intake, existing, content, now_s);
        }
        // The very file taken before, never moved out (a crash between commit and move, a
        // folder it could not be moved to) and untouched since, found again after a restart:
        // nobody dropped it again. For a post cancelled or dead since, whatever it parses to
        // now (the config may have changed), it is not the author asking for another go.
        if let Some(e) = &existing {
            let state = super::parse_state(&e.state)?;
            let live = matches!(
                state,
                PostState::Scheduled | PostState::Publishing | PostState::Published
            );
            if !live
                && !d.renamed_in
                && e.source_stamp.is_some()
                && e.source_stamp == d.source_stamp
            {
                return Ok(Ok(Taken::LeftOver { state }));
            }
        }
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
            source_file,
            due_at: old_due,
            content: old_content,
            first_comment: old_comment,
            front_matter: old_front_matter,
            source_stamp: old_stamp,
        }) = existing
        else {
            tx.execute(
                "INSERT INTO posts (id, account, state, due_at, next_attempt_at, publish_at, commentary, text, \
                 visibility, source_file, created_at, updated_at, slot_at, content, first_comment, front_matter, source_stamp) \
                 VALUES (?1, ?2, 'scheduled', ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14)",
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
                    slot,
                    content,
                    d.first_comment,
                    i64::from(d.front_matter),
                    d.source_stamp
                ],
            )?;
            return Ok(Ok(Taken::Created));
        };
        let state = super::parse_state(&state)?;
        let same = account == d.account
            && commentary == d.commentary
            && visibility == d.visibility.as_str()
            && old_publish_at.as_deref() == publish_at.as_deref()
            && old_content == content
            && old_comment == d.first_comment;
        // The same draft again: a crash between commit and move, or a writer that saved twice.
        // For a dead or cancelled post it is the author asking for another go, which the
        // README promises, so it falls through to `Replace` like a changed draft (the very
        // file taken before, found again unmoved, was answered above).
        let live = matches!(
            state,
            PostState::Scheduled | PostState::Publishing | PostState::Published
        );
        if same && live {
            if d.source_stamp.is_some() && old_stamp != d.source_stamp {
                // Saved again unchanged: this is now the file the post comes from.
                tx.prepare_cached("UPDATE posts SET source_stamp = ?2 WHERE id = ?1")?
                    .execute(params![d.id, d.source_stamp])?;
            }
            return Ok(Ok(Taken::Unchanged { state }));
        }
        let id = d.id.clone();
        // Front matter carries the author's intent (time, slot, account, visibility): a file
        // without any does not replace, or revive, a post whose draft had it.
        if !d.front_matter
            && old_front_matter == Some(1)
            && matches!(
                state,
                PostState::Scheduled | PostState::Dead | PostState::Cancelled
            )
        {
            return Ok(Err(Refused::BareDropsFrontMatter { id }));
        }
        match state {
            PostState::Published => {
                return Ok(Err(Refused::AlreadyPublished {
                    id,
                    urn: urn.unwrap_or_default(),
                }))
            }
            PostState::Publishing => return Ok(Err(Refused::Publishing { id })),
            PostState::Deleted => return Ok(Err(Refused::Deleted { id })),
            _ if in_doubt.is_some() => return Ok(Err(Refused::InDoubt { id })),
            // Like `lipost retry`: a dead letter that may be live is not resent unasked.
            PostState::Dead => {
                if let Some(reason) = Self::may_be_live_in(tx, &d.id)? {
                    return Ok(Err(Refused::MayBeLive { id, reason }));
                }
            }
            // Taken before lipost kept whether a draft had front matter: its time tells
            // (a bare file would drop it, and the post would go out now).
            PostState::Scheduled
                if !d.front_matter && old_front_matter.is_none() && old_publish_at.is_some() =>
            {
                return Ok(Err(Refused::BareDropsTime { id, due: old_due }));
            }
            // A sync tool's conflict copy (same id, often without the publish_at being
            // edited in) must not pull an embargoed post forward. Stored times compare as
            // text: same format, four-digit years.
            PostState::Scheduled
                if source_file.as_deref() != Some(intake.source_file) && *due < *old_due =>
            {
                return Ok(Err(Refused::MovesEarlier {
                    id,
                    file: source_file.unwrap_or_default(),
                    due: old_due,
                    new_due: due.to_string(),
                }));
            }
            _ => {}
        }
        if !Self::apply(tx, &d.id, Transition::Replace, now_s)? {
            return Ok(Err(Refused::Publishing { id }));
        }
        tx.execute(
            "UPDATE posts SET account = ?2, due_at = ?3, next_attempt_at = ?3, publish_at = ?4, commentary = ?5, \
             text = ?6, visibility = ?7, source_file = ?8, attempts_used = 0, rate_limited = 0, last_error = NULL, \
             slot_at = ?9, hold_reason = NULL, hold_until = NULL, hold_since = NULL, hold_report_at = NULL, \
             content = ?10, first_comment = ?11, front_matter = ?12, source_stamp = ?13 WHERE id = ?1",
            params![d.id, d.account, due, publish_at, d.commentary, d.text, d.visibility.as_str(), intake.source_file, slot, content, d.first_comment, i64::from(d.front_matter), d.source_stamp],
        )?;
        Ok(Ok(Taken::Replaced))
    }

    /// An `edit = true` draft: a new text for a published post, nothing else changed.
    fn ingest_edit(
        tx: &Db,
        intake: &NewPost<'_>,
        existing: Option<Existing>,
        content: Option<String>,
        now_s: &str,
    ) -> Result<Result<Taken, Refused>> {
        let d = intake.draft;
        let id = d.id.clone();
        let Some(old) = existing else {
            return Ok(Err(Refused::EditUnknown { id }));
        };
        let state = super::parse_state(&old.state)?;
        if state != PostState::Published {
            return Ok(Err(Refused::EditNotPublished { id, state }));
        }
        let old_poll = old
            .content
            .as_deref()
            .and_then(|c| serde_json::from_str::<crate::content::Content>(c).ok())
            .is_some_and(|c| matches!(c, crate::content::Content::Poll { .. }));
        if old_poll {
            return Ok(Err(Refused::EditPoll { id }));
        }
        let mut changed = Vec::new();
        if old.account != d.account {
            changed.push(format!("account ({:?} → {:?})", old.account, d.account));
        }
        if old.visibility != d.visibility.as_str() {
            changed.push(format!(
                "visibility ({} → {})",
                old.visibility,
                d.visibility.as_str()
            ));
        }
        if old.content != content {
            changed.push("attachments, link card or poll".to_string());
        }
        if old.first_comment != d.first_comment {
            changed.push("first_comment".to_string());
        }
        if !changed.is_empty() {
            return Ok(Err(Refused::EditChanges {
                id,
                changed: changed.join(", "),
            }));
        }
        if Self::queue_edit(tx, &d.id, &d.text, &d.commentary, intake.source_file, now_s)? {
            Ok(Ok(Taken::Edit))
        } else {
            Ok(Ok(Taken::Unchanged {
                state: PostState::Published,
            }))
        }
    }

    /// The earliest of `candidates` no other live post of the account holds.
    fn free_slot(
        tx: &Db,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::{Draft, Visibility};
    use crate::store::{NewPost, StoreError};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn draft(id: &str, text: &str, publish_at: Option<&str>) -> Draft {
        Draft {
            id: id.into(),
            account: "me".into(),
            publish_at: publish_at.map(at),
            next_slot: false,
            visibility: Visibility::Public,
            text: text.into(),
            commentary: text.into(),
            content: None,
            first_comment: None,
            edit: false,
            front_matter: true,
            source_stamp: None,
            renamed_in: false,
        }
    }

    fn take(store: &mut Store, d: &Draft, file: &str) -> Result<Taken, Refused> {
        let now = at("2026-11-23T10:00:00Z");
        store
            .ingest(
                &[NewPost {
                    draft: d,
                    source_file: file,
                    slots: &[],
                }],
                now,
            )
            .unwrap()
            .pop()
            .unwrap()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_text_without_front_matter_neither_pulls_a_timed_post_forward_nor_revives_a_stopped_one() {
        let (_dir, mut store) = store();
        let timed = draft("t", "first part", Some("2026-11-23T12:00:00Z"));
        assert!(matches!(
            take(&mut store, &timed, "t.md"),
            Ok(Taken::Created)
        ));
        let mut rest = draft("t", "second part", None);
        rest.front_matter = false;
        assert!(matches!(
            take(&mut store, &rest, "t.md"),
            Err(Refused::BareDropsFrontMatter { .. })
        ));
        // A post taken before lipost kept this: its time still tells.
        store
            .db
            .execute(
                "UPDATE posts SET front_matter = NULL WHERE id = 't'",
                params![],
            )
            .unwrap();
        assert!(matches!(
            take(&mut store, &rest, "t.md"),
            Err(Refused::BareDropsTime { .. })
        ));
        // Stopped as incomplete: more rest is refused, the whole draft is taken.
        let now = at("2026-11-23T10:00:01Z");
        assert!(store
            .expire("t", DeadReason::DraftIncomplete, "written again", now)
            .unwrap());
        assert!(matches!(
            take(&mut store, &rest, "t.md"),
            Err(Refused::RestOfIncomplete { .. })
        ));
        // Under another id (a restart forgot the name), from the same file: refused too.
        let mut other = draft("other", "second part", None);
        other.front_matter = false;
        assert!(matches!(
            take(&mut store, &other, "t.md"),
            Err(Refused::RestOfIncomplete { .. })
        ));
        assert!(matches!(
            take(&mut store, &other, "u.md"),
            Ok(Taken::Created)
        ));
        let whole = draft("t", "first part\nsecond part", Some("2026-11-23T12:00:00Z"));
        assert!(matches!(
            take(&mut store, &whole, "t.md"),
            Ok(Taken::Replaced)
        ));
    }

    #[test]
    fn a_retry_never_takes_a_slot_another_post_holds_now() {
        let (_dir, mut store) = store();
        let slot = [at("2026-11-23T12:00:00Z")];
        let slotted = |id: &str| {
            let mut d = draft(id, id, None);
            d.next_slot = true;
            d
        };
        let ingest = |store: &mut Store, d: &Draft| {
            store
                .ingest(
                    &[NewPost {
                        draft: d,
                        source_file: "s.md",
                        slots: &slot,
                    }],
                    at("2026-11-23T10:00:00Z"),
                )
                .unwrap()
                .pop()
                .unwrap()
        };
        assert!(matches!(
            ingest(&mut store, &slotted("a")),
            Ok(Taken::Created)
        ));
        let now = at("2026-11-23T10:00:01Z");
        assert!(store
            .expire("a", DeadReason::DraftIncomplete, "written again", now)
            .unwrap());
        assert!(matches!(
            ingest(&mut store, &slotted("b")),
            Ok(Taken::Created)
        ));
        let err = store.requeue("a", now).unwrap_err();
        assert!(
            matches!(err, StoreError::SlotTaken { ref other, .. } if other == "b"),
            "{err}"
        );
        assert_eq!(
            store.dead_reason("a").unwrap(),
            Some(DeadReason::DraftIncomplete)
        );
        // Once the slot is free again, the retry keeps the slot's time, still ahead.
        store.cancel("b", false, now).unwrap();
        assert_eq!(store.requeue("a", now).unwrap(), "2026-11-23T12:00:00.000Z");
        // A slot taken and already past does not block a retry: it goes out now.
        assert!(store
            .expire("a", DeadReason::DraftIncomplete, "again", now)
            .unwrap());
        assert!(matches!(
            ingest(&mut store, &slotted("c")),
            Ok(Taken::Created)
        ));
        let later = at("2026-11-23T13:00:00Z");
        assert_eq!(
            store.requeue("a", later).unwrap(),
            "2026-11-23T13:00:00.000Z"
        );
    }

    #[test]
    fn a_time_past_year_9999_is_refused_not_stored() {
        let (_dir, mut store) = store();
        let mut d = draft("far", "x", None);
        d.publish_at = Some(at("9999-12-31T23:00:00Z") + chrono::Duration::hours(5));
        let err = store
            .ingest(
                &[NewPost {
                    draft: &d,
                    source_file: "far.md",
                    slots: &[],
                }],
                Utc::now(),
            )
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::TimeOutOfRange { value } if value.starts_with("+10000-")),
            "{err:?}"
        );
        assert!(matches!(store.get("far"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn another_file_cannot_move_a_scheduled_post_earlier() {
        let (_dir, mut store) = store();
        let planned = draft("launch", "Launch", Some("2030-01-01T09:00:00Z"));
        assert_eq!(take(&mut store, &planned, "launch.md"), Ok(Taken::Created));
        let copy = draft("launch", "Launch, older text", None);
        let conflict = "launch.sync-conflict-20261123-101010-ABCDEFG.md";
        match take(&mut store, &copy, conflict) {
            Err(Refused::MovesEarlier { file, due, .. }) => {
                assert_eq!(
                    (file.as_str(), due.as_str()),
                    ("launch.md", "2030-01-01T09:00:00.000Z")
                )
            }
            other => panic!("{other:?}"),
        }
        let earlier = draft("launch", "Launch", Some("2029-01-01T09:00:00Z"));
        assert!(matches!(
            take(&mut store, &earlier, "launch (1).md"),
            Err(Refused::MovesEarlier { .. })
        ));
        // Later, or from its own file, is the author's call.
        let later = draft("launch", "Launch", Some("2031-01-01T09:00:00Z"));
        assert_eq!(take(&mut store, &later, "other.md"), Ok(Taken::Replaced));
        assert_eq!(take(&mut store, &copy, "other.md"), Ok(Taken::Replaced));
        assert_eq!(store.get("launch").unwrap().text, "Launch, older text");
    }

    #[test]
    fn a_dead_post_that_may_be_live_is_not_replaced() {
        let (_dir, mut store) = store();
        let d = draft("maybe", "Maybe out there", None);
        assert_eq!(take(&mut store, &d, "maybe.md"), Ok(Taken::Created));
        // As a dead settle without in_doubt_since leaves it.
        store
            .db
            .execute_batch(
                "UPDATE posts SET state = 'dead' WHERE id = 'maybe'; \
                 INSERT INTO dead_letters (post_id, reason, created_at) VALUES ('maybe', 'in_doubt', '2026-11-23T10:00:00.000Z');",
            )
            .unwrap();
        assert_eq!(
            take(&mut store, &d, "maybe.md"),
            Err(Refused::MayBeLive {
                id: "maybe".into(),
                reason: DeadReason::InDoubt
            })
        );
        store
            .db
            .execute_batch("UPDATE dead_letters SET reason = 'rejected' WHERE post_id = 'maybe'")
            .unwrap();
        assert_eq!(take(&mut store, &d, "maybe.md"), Ok(Taken::Replaced));
    }
}
