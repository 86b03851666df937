//! What keeps a post from going out when it must not: the mode the database was made for
//! (`meta`, or for a database made before it, what its tokens say), and holds on due posts
//! (`posts.hold_reason`, `posts.hold_until`, `hold_since`), with the `post_held` event for a
//! hold that lasts longer than `notify.held_longer_than`.

use super::db::{params, Db, Optional};
use chrono::{DateTime, Utc};

use super::{opt_ts, parse_hold_reason, parse_ts, ts, Result, Store, StoreError};
use crate::config::{LinkedIn, Mode};
use crate::notify::{Event, Kind};
use crate::post::HoldReason;

/// The world a database's tokens, URNs and posts belong to. Every sandbox (built-in or on
/// loopback) is one world; each live API base is another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MadeFor {
    Sandbox,
    Live { api_base: String },
}

impl MadeFor {
    pub fn of(linkedin: &LinkedIn) -> MadeFor {
        match linkedin.mode {
            Mode::Sandbox => MadeFor::Sandbox,
            Mode::Live => MadeFor::Live {
                api_base: linkedin
                    .api_base_url
                    .clone()
                    .unwrap_or_else(|| crate::config::LINKEDIN_API.to_string()),
            },
        }
    }

    fn mode(&self) -> &'static str {
        match self {
            MadeFor::Sandbox => "sandbox",
            MadeFor::Live { .. } => "live",
        }
    }
}

impl std::fmt::Display for MadeFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MadeFor::Sandbox => f.write_str("sandbox mode"),
            MadeFor::Live { api_base } => write!(f, "live mode against {api_base}"),
        }
    }
}

/// Held posts of one reason and account, for `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HoldGroup {
    pub reason: HoldReason,
    pub account: String,
    pub posts: i64,
    /// The earliest `hold_until` among them.
    pub until: DateTime<Utc>,
}

/// Holds one scheduled post until `until` (also its `next_attempt_at`), inside `tx`. A new
/// reason starts a new hold: `hold_since` is now, and it is reported as too long at now +
/// `notify.held_longer_than` when `post_held` is routed (the TEMP `notify_held` row). The
/// same reason again keeps both. `true` when the reason is new (also for the same reason
/// set again within the same millisecond, which at worst logs it twice).
pub(super) fn hold_one(
    tx: &Db,
    id: &str,
    reason: HoldReason,
    until: &str,
    now_s: &str,
) -> Result<bool> {
    let after: Option<i64> = tx
        .prepare_cached("SELECT after_ms FROM notify_held")?
        .query_row(params![], |r| r.get(0))
        .optional()?;
    // No row, no report time: `post_held` is not routed.
    let report_at = match after {
        None => None,
        Some(ms) => parse_ts("posts", "hold_since", now_s)?
            .checked_add_signed(chrono::TimeDelta::milliseconds(ms))
            .map(ts),
    };
    Ok(tx
        .prepare_cached(
            "UPDATE posts SET \
             hold_since = CASE WHEN hold_reason IS NOT DISTINCT FROM ?2 AND hold_since IS NOT NULL THEN hold_since ELSE ?4 END, \
             hold_report_at = CASE WHEN hold_reason IS NOT DISTINCT FROM ?2 AND hold_since IS NOT NULL THEN hold_report_at \
                 ELSE ?5 END, \
             hold_reason = ?2, hold_until = ?3, next_attempt_at = ?3 \
             WHERE id = ?1 AND state = 'scheduled' RETURNING hold_since = ?4",
        )?
        .query_row(params![id, reason.as_str(), until, now_s, report_at], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// What an unmarked database's contents say it was made for.
enum Inferred {
    /// Nothing in it: it can be recorded as made for anything.
    Empty,
    Sandbox,
    Live,
    /// Cannot tell, and why.
    Unknown(String),
}

/// A post held by [`Store::hold_many`].
#[derive(Debug, Clone)]
pub struct Hold {
    pub reason: HoldReason,
    /// When the scheduler looks at the post again by itself (see the migration).
    pub until: DateTime<Utc>,
}

impl Store {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.db
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    }

    /// What the database says it was made for; `None` if an older lipost made it.
    pub fn made_for(&self) -> Result<Option<MadeFor>> {
        Ok(match self.meta("mode")?.as_deref() {
            None => None,
            Some("sandbox") => Some(MadeFor::Sandbox),
            Some(_) => Some(MadeFor::Live {
                api_base: self.meta("api_base")?.unwrap_or_default(),
            }),
        })
    }

    /// Refuses a database made for another world than `want`: its tokens, URNs and
    /// scheduled posts would go there. A database without a record (made before `meta`) is
    /// judged by its tokens ([`Store::inferred_made_for`]); one whose contents cannot tell is
    /// refused, and only an empty one is taken as made for `want`. The record is written when
    /// `record`.
    pub fn check_made_for(&mut self, want: &MadeFor, record: bool) -> Result<()> {
        match self.made_for()? {
            Some(had) if &had == want => Ok(()),
            Some(had) => Err(StoreError::MadeFor {
                had: had.to_string(),
                want: want.to_string(),
            }),
            None => {
                match self.inferred_made_for()? {
                    Inferred::Empty => {}
                    Inferred::Sandbox if *want == MadeFor::Sandbox => {}
                    Inferred::Live if matches!(want, MadeFor::Live { .. }) => {}
                    Inferred::Sandbox => {
                        return Err(StoreError::MadeFor {
                            had: "sandbox mode (its tokens are the sandbox's)".into(),
                            want: want.to_string(),
                        })
                    }
                    Inferred::Live => {
                        return Err(StoreError::MadeFor {
                            had: "live mode (its tokens are LinkedIn's)".into(),
                            want: want.to_string(),
                        })
                    }
                    Inferred::Unknown(why) => {
                        let sql = match want {
                            MadeFor::Sandbox => {
                                "INSERT INTO meta (key, value) VALUES ('mode', 'sandbox')".into()
                            }
                            MadeFor::Live { api_base } => format!(
                                "INSERT INTO meta (key, value) VALUES ('mode', 'live'), ('api_base', '{api_base}')"
                            ),
                        };
                        return Err(StoreError::Unmarked {
                            why,
                            want: want.to_string(),
                            sql,
                        });
                    }
                }
                if record {
                    let tx = self.write()?;
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('mode', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        [want.mode()],
                    )?;
                    if let MadeFor::Live { api_base } = want {
                        tx.execute(
                            "INSERT INTO meta (key, value) VALUES ('api_base', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            [api_base],
                        )?;
                    }
                    tx.commit()?;
                }
                Ok(())
            }
        }
    }

    /// What a database without a mode record was made for, judged by its tokens: the
    /// sandbox's have source `sandbox`, or its shapes (access tokens `AQsbx…`, members
    /// `urn:li:person:sbx-…`); any other is LinkedIn's. Post URNs have the same shape in both
    /// worlds and tell nothing, so posts without tokens are `Unknown`.
    fn inferred_made_for(&self) -> Result<Inferred> {
        const SANDBOX: &str = "(source = 'sandbox' OR access_token LIKE 'AQsbx%' \
             OR member_urn LIKE 'urn:li:person:sbx-%')";
        let (sandbox, live, tokens): (i64, i64, i64) = self.db.query_row(
            &format!(
                "SELECT COALESCE(SUM(CASE WHEN {SANDBOX} THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN {SANDBOX} THEN 0 ELSE 1 END), 0), COUNT(*) FROM tokens"
            ),
            params![],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let posts: i64 = self
            .db
            .query_row("SELECT COUNT(*) FROM posts", params![], |r| r.get(0))?;
        Ok(match (sandbox > 0, live > 0) {
            (true, true) => Inferred::Unknown(format!(
                "it holds both sandbox tokens ({sandbox}) and LinkedIn tokens ({live})"
            )),
            (true, false) => Inferred::Sandbox,
            (false, true) => Inferred::Live,
            (false, false) if tokens == 0 && posts == 0 => Inferred::Empty,
            (false, false) => Inferred::Unknown(format!(
                "it holds {posts} posts and no token, and post URNs look the same in both modes"
            )),
        })
    }

    /// Holds scheduled posts: out of the scheduler's look until `until`, their `due_at`
    /// kept. No try is counted. One transaction, one cached statement per post. Returns the
    /// indices of the posts that started waiting for a new reason (for the log).
    pub fn hold_many(
        &mut self,
        posts: &[(String, Hold)],
        now: DateTime<Utc>,
    ) -> Result<Vec<usize>> {
        let now_s = ts(now);
        let tx = self.write()?;
        let mut news = Vec::new();
        for (i, (id, hold)) in posts.iter().enumerate() {
            if hold_one(&tx, id, hold.reason, &ts(hold.until), &now_s)? {
                news.push(i);
            }
        }
        tx.commit()?;
        Ok(news)
    }

    /// Lifts the active holds with `reason` (every hold an event ends when `None`): those
    /// posts are due now again, and the scheduler holds them anew if the cause remains. Holds
    /// that end by time (pacing, retry waits) are never lifted: that would send them early.
    /// The reason and `hold_since` stay (only `hold_until` goes), so a hold for the same
    /// cause again is the same hold: not logged again, and reported as too long from when it
    /// began. The number lifted.
    pub fn lift_holds(&mut self, reason: Option<HoldReason>, now: DateTime<Utc>) -> Result<usize> {
        lift(&self.db, reason, None, now)
    }

    /// Makes posts held by pacing (`daily_cap`, `min_spacing`) due now, so that the next
    /// look plans them again with the pacing configured now: after a reload or a restart
    /// that changed it, a raised cap or a shorter spacing lets them go at once, and the
    /// same pacing holds them again as the same hold (see [`Store::lift_holds`]). Never
    /// early: a post is held by pacing only once it is due. The number made due.
    pub fn replan_pacing(&mut self, now: DateTime<Utc>) -> Result<usize> {
        let pacing: Vec<String> = HoldReason::ALL
            .iter()
            .filter(|r| r.is_pacing())
            .map(|r| format!("'{}'", r.as_str()))
            .collect();
        let now = ts(now);
        self.db.execute(
            &format!(
                "UPDATE posts SET hold_until = NULL, next_attempt_at = ?1 \
                 WHERE state = 'scheduled' AND hold_until > ?1 AND hold_reason IN ({})",
                pacing.join(", ")
            ),
            params![now],
        )
    }

    /// [`Store::lift_holds`] for the posts of `accounts` only.
    pub fn lift_holds_of(
        &mut self,
        reason: HoldReason,
        accounts: &[String],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        lift(&self.db, Some(reason), Some(accounts), now)
    }

    /// How many scheduled posts each hold reason keeps.
    pub fn hold_counts(&self) -> Result<Vec<(HoldReason, i64)>> {
        let mut out: Vec<(HoldReason, i64)> = Vec::new();
        for h in self.holds_by_account()? {
            match out.iter_mut().find(|(r, _)| *r == h.reason) {
                Some((_, n)) => *n += h.posts,
                None => out.push((h.reason, h.posts)),
            }
        }
        out.sort_by_key(|(r, _)| r.as_str());
        Ok(out)
    }

    /// Held scheduled posts per reason and account, the biggest group first.
    pub fn holds_by_account(&self) -> Result<Vec<HoldGroup>> {
        let mut stmt = self.db.prepare(
            "SELECT hold_reason, account, COUNT(*), MIN(hold_until) FROM posts \
             WHERE state = 'scheduled' AND hold_reason IS NOT NULL AND hold_until IS NOT NULL \
             GROUP BY hold_reason, account ORDER BY COUNT(*) DESC, hold_reason, account",
        )?;
        let rows = stmt.query_map(params![], |r| {
            Ok(HoldGroup {
                reason: parse_hold_reason(&r.get::<_, String>(0)?)?,
                account: r.get(1)?,
                posts: r.get(2)?,
                until: parse_ts("posts", "hold_until", &r.get::<_, String>(3)?)?,
            })
        })?;
        rows.collect::<Result<_>>()
    }

    /// Records a `post_held` event for every post whose hold passed
    /// `notify.held_longer_than` by `now`, once per hold, in the transaction that notices it.
    /// The posts reported. A cheap indexed read when there is none.
    pub fn report_long_holds(&mut self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let now_s = ts(now);
        let any: bool = self
            .db
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM posts WHERE hold_report_at IS NOT NULL AND hold_report_at <= ?1)",
            )?
            .query_row([&now_s], |r| r.get(0))?;
        if !any {
            return Ok(Vec::new());
        }
        let tx = self.write()?;
        let found: Vec<(String, String, String, String, Option<String>)> = {
            let mut stmt = tx.prepare(
                "SELECT id, account, hold_reason, hold_since, hold_until FROM posts \
                 WHERE hold_report_at IS NOT NULL AND hold_report_at <= ?1 AND state = 'scheduled' \
                 AND hold_reason IS NOT NULL AND hold_since IS NOT NULL ORDER BY id",
            )?;
            let rows = stmt.query_map([&now_s], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect::<Result<_>>()?
        };
        for (id, account, reason, since, until) in &found {
            let reason = parse_hold_reason(reason)?;
            let until = match until {
                Some(u) => format!("; it waits until {u}"),
                None => String::new(),
            };
            let mut e = Event::new(
                Kind::PostHeld,
                format!(
                    "Post {id} (account {account}) has been held since {since} ({reason}: {}){until}. `lipost show {id}` says more",
                    reason.meaning()
                ),
            );
            e.post_id = Some(id.clone());
            e.account = Some(account.clone());
            e.reason = Some(reason.as_str().to_string());
            super::outbox::record(&tx, &e, &now_s)?;
        }
        // Dead or published posts' marks go too: each hold is reported at most once.
        tx.execute(
            "UPDATE posts SET hold_report_at = NULL WHERE hold_report_at IS NOT NULL AND hold_report_at <= ?1",
            [&now_s],
        )?;
        tx.commit()?;
        Ok(found.into_iter().map(|f| f.0).collect())
    }

    /// When the next hold passes `notify.held_longer_than`, if any: the scheduler wakes then,
    /// and only then, to report it.
    pub fn next_hold_report(&self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self
            .db
            .prepare_cached(
                "SELECT MIN(hold_report_at) FROM posts WHERE hold_report_at IS NOT NULL",
            )?
            .query_row(params![], |r| r.get(0))?;
        opt_ts("posts", "hold_report_at", t)
    }

    /// A post's hold, if it has one.
    pub fn hold_of(&self, id: &str) -> Result<Option<Hold>> {
        let row: Option<(Option<String>, Option<String>)> = self
            .db
            .query_row(
                "SELECT hold_reason, hold_until FROM posts WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((Some(reason), until)) = row else {
            return Ok(None);
        };
        let Some(reason) = HoldReason::parse(&reason) else {
            return Ok(None);
        };
        match opt_ts("posts", "hold_until", until)? {
            Some(until) => Ok(Some(Hold { reason, until })),
            None => Ok(None),
        }
    }
}

/// Lifts the holds of `reason` (every reason lifted by an event when `None`), for the
/// posts of `accounts` when given. The number lifted.
pub(super) fn lift(
    db: &Db,
    reason: Option<HoldReason>,
    accounts: Option<&[String]>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let lifted: Vec<String> = HoldReason::ALL
        .iter()
        .filter(|r| r.is_lifted() && reason.is_none_or(|want| want == **r))
        .map(|r| format!("'{}'", r.as_str()))
        .collect();
    if lifted.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE posts SET hold_until = NULL, next_attempt_at = ?1 \
         WHERE state = 'scheduled' AND hold_until IS NOT NULL AND hold_reason IN ({})",
        lifted.join(", ")
    );
    let now = ts(now);
    match accounts {
        None => db.execute(&sql, params![now]),
        Some(accounts) => {
            let sql = format!("{sql} AND account = ?2");
            let mut n = 0;
            for a in accounts {
                n += db.execute(&sql, params![now, a])?;
            }
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, TEST_CONFIG};
    use crate::notify::{Routes, Sink};

    fn store_with_post(dir: &std::path::Path) -> Store {
        let config = Config::parse(TEST_CONFIG, &dir.join("config.toml")).unwrap();
        crate::store::with_one_post(&config)
    }

    fn hold(reason: HoldReason, until: DateTime<Utc>) -> Vec<(String, Hold)> {
        vec![("p".to_string(), Hold { reason, until })]
    }

    #[test]
    fn the_same_reason_again_is_the_same_hold_and_a_long_one_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_post(dir.path());
        store
            .set_notify_routes(&Routes {
                kinds: vec![Kind::PostHeld],
                sinks: vec![Sink::Command],
                held_after: Some(std::time::Duration::from_secs(3600)),
            })
            .unwrap();
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let h = chrono::Duration::hours(1);
        assert_eq!(
            store
                .hold_many(&hold(HoldReason::DailyCap, t0 + h * 5), t0)
                .unwrap(),
            [0]
        );
        assert_eq!(store.next_hold_report().unwrap(), Some(t0 + h));
        // Looked at again (and lifted in between): not news, and the report time stays.
        let later = t0 + chrono::Duration::minutes(30);
        assert!(store
            .hold_many(&hold(HoldReason::DailyCap, t0 + h * 6), later)
            .unwrap()
            .is_empty());
        assert_eq!(store.next_hold_report().unwrap(), Some(t0 + h));
        // Time-ended holds are not lifted; event holds are, and keep their reason.
        assert_eq!(store.lift_holds(None, later).unwrap(), 0);
        assert_eq!(store.hold_of("p").unwrap().unwrap().until, t0 + h * 6);
        assert!(store.report_long_holds(later).unwrap().is_empty());
        assert_eq!(store.report_long_holds(t0 + h).unwrap(), ["p"]);
        assert!(store.report_long_holds(t0 + h * 2).unwrap().is_empty());
        assert_eq!(store.next_hold_report().unwrap(), None);
        // A new reason is a new hold, reported in its turn.
        assert_eq!(
            store
                .hold_many(&hold(HoldReason::NeedsReauth, t0 + h * 9), t0 + h * 2)
                .unwrap(),
            [0]
        );
        assert_eq!(store.next_hold_report().unwrap(), Some(t0 + h * 3));
        assert_eq!(store.lift_holds(None, t0 + h * 2).unwrap(), 1);
        assert!(store.hold_of("p").unwrap().is_none(), "lifted: not held");
        assert_eq!(store.hold_counts().unwrap(), vec![]);
        assert!(store
            .hold_many(
                &hold(HoldReason::NeedsReauth, t0 + h * 9),
                t0 + h * 2 + chrono::Duration::minutes(1)
            )
            .unwrap()
            .is_empty());
        let n: i64 = store
            .db
            .query_row(
                "SELECT COUNT(*) FROM notifications WHERE kind = 'post_held'",
                params![],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_login_lifts_the_holds_of_the_accounts_it_serves_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_post(dir.path());
        let account = store.get("p").unwrap().account;
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let h = chrono::Duration::hours(1);
        store
            .hold_many(&hold(HoldReason::NeedsReauth, t0 + h * 9), t0)
            .unwrap();
        let other = ["someone-else".to_string()];
        assert_eq!(
            store
                .lift_holds_of(HoldReason::NeedsReauth, &other, t0 + h)
                .unwrap(),
            0
        );
        assert_eq!(store.hold_of("p").unwrap().unwrap().until, t0 + h * 9);
        assert_eq!(
            store
                .lift_holds_of(HoldReason::NeedsReauth, &[account], t0 + h)
                .unwrap(),
            1
        );
        assert!(store.hold_of("p").unwrap().is_none());
    }

    #[test]
    fn without_a_route_for_post_held_a_hold_sets_no_wake_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_post(dir.path());
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        store
            .hold_many(
                &hold(HoldReason::MinSpacing, t0 + chrono::Duration::hours(1)),
                t0,
            )
            .unwrap();
        assert_eq!(store.next_hold_report().unwrap(), None);
        assert_eq!(store.hold_counts().unwrap(), [(HoldReason::MinSpacing, 1)]);
    }
}
