//! What keeps a post from going out when it must not: the mode the database was made for
//! (`meta`, or for a database made before it, what its tokens say), and holds on due posts (`posts.hold_reason`, `posts.hold_until`).

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{opt_ts, ts, Result, Store, StoreError};
use crate::config::{LinkedIn, Mode};
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
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
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
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('mode', ?1)",
                        [want.mode()],
                    )?;
                    if let MadeFor::Live { api_base } = want {
                        tx.execute(
                            "INSERT OR REPLACE INTO meta (key, value) VALUES ('api_base', ?1)",
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
        let (sandbox, live, tokens): (i64, i64, i64) = self.conn.query_row(
            &format!(
                "SELECT COALESCE(SUM({SANDBOX}), 0), COALESCE(SUM(NOT {SANDBOX}), 0), COUNT(*) FROM tokens"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let posts: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM posts", [], |r| r.get(0))?;
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
    /// kept. No try is counted.
    pub fn hold_many(&mut self, posts: &[(String, Hold)]) -> Result<()> {
        let tx = self.write()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE posts SET hold_reason = ?2, hold_until = ?3, next_attempt_at = ?3 \
                 WHERE id = ?1 AND state = 'scheduled'",
            )?;
            for (id, hold) in posts {
                stmt.execute(params![id, hold.reason.as_str(), ts(hold.until)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Lifts the holds with `reason` (all holds when `None`): those posts are due now again,
    /// and the scheduler holds them anew if the cause remains. The number lifted.
    pub fn lift_holds(&mut self, reason: Option<HoldReason>, now: DateTime<Utc>) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE posts SET hold_reason = NULL, hold_until = NULL, next_attempt_at = ?1 \
             WHERE state = 'scheduled' AND hold_reason IS NOT NULL AND (?2 IS NULL OR hold_reason = ?2)",
            params![ts(now), reason.map(HoldReason::as_str)],
        )?)
    }

    /// How many scheduled posts each hold reason keeps.
    pub fn hold_counts(&self) -> Result<Vec<(HoldReason, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT hold_reason, COUNT(*) FROM posts WHERE state = 'scheduled' AND hold_reason IS NOT NULL \
             GROUP BY hold_reason ORDER BY hold_reason",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (reason, n) = row?;
            if let Some(reason) = HoldReason::parse(&reason) {
                out.push((reason, n));
            }
        }
        Ok(out)
    }

    /// A post's hold, if it has one.
    pub fn hold_of(&self, id: &str) -> Result<Option<Hold>> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
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
