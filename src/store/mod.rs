//! The store: the SQLite database, the single source of truth for every post.
//!
//! All SQL lives here. Every state change goes through `Store::apply` (or, for claim and
//! publish, which run once per post sent, a dedicated statement with the same condition),
//! which moves a post only from the states its [`Transition`] allows, inside one
//! `BEGIN IMMEDIATE` transaction with the rows that explain it (attempts, dead letters, and
//! the `notifications` a person is sent about it, see `outbox`).
//! `synchronous=FULL`: a `publishing` mark is on disk before the request it guards leaves.
//! rusqlite blocks, so async callers go through [`Handle`], which runs each call on tokio's
//! blocking pool.

mod agenda;
pub mod db;
mod guards;
mod intake;
mod media;
mod metrics;
mod migrations;
mod nodes;
mod operator;
mod outbox;
mod pg;
mod pg_batch;
mod pg_migrations;
mod reading;
mod social;
mod sqlite;
mod tokens;
mod transfer;

pub use agenda::{AgendaPost, NeedsPerson};
pub use guards::{Hold, HoldGroup, MadeFor};
pub use media::{MediaGate, MediaOutcome, MediaPost, MediaRow, MediaStatus, MediaStep};
pub use metrics::{MetricsSnapshot, LATENESS_BUCKETS};
pub use nodes::{listen as listen_for_nodes, Node, NodeRow, Wake};
pub use outbox::{NotificationStatus, PendingNotification};
pub use social::{
    Comment, CommentJob, CommentSettle, CommentStatus, Edit, EditJob, EditSettle, EditStatus,
};
pub use tokens::{Token, TokenSource};

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use db::{params, Db, Optional, Row, Tx};

use crate::draft::Draft;
use crate::post::{
    AttemptOutcome, AttemptResult, DeadReason, HoldReason, Post, PostState, Transition,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    #[error("database: {}", pg::explain(.0))]
    Postgres(postgres::Error),
    /// A query found no row where one was expected (`db::Optional` makes it `None`).
    #[error("database: no row")]
    NoRow,
    /// A value of the wrong type for where it was read or bound.
    #[error("database: {0}")]
    Type(String),
    #[error("cannot create database {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("no post with id {0:?}")]
    NotFound(String),
    #[error("post {id:?} is {state}; {action} needs it to be {wanted}")]
    WrongState {
        id: String,
        state: PostState,
        action: &'static str,
        wanted: String,
    },
    #[error("post {id:?} had the slot {slot}, which post {other:?} holds now: drop {id}'s draft again to take the next free slot (or `lipost cancel {other}` first)")]
    SlotTaken {
        id: String,
        slot: String,
        other: String,
    },
    #[error("{urn} is already recorded for post {other:?}: a URN belongs to one post. Check the URN on LinkedIn; if {other} is not that post, fix it first")]
    UrnTaken { urn: String, other: String },
    #[error("post {id:?} may already be on LinkedIn ({reason}), and cancelling it here takes nothing off LinkedIn.\nCheck the feed first. If it is there: `lipost mark-published {id} URN`, then `lipost delete {id}` to take it down.\nIf it is not: `lipost cancel {id} --force`.")]
    MayBeLive { id: String, reason: String },
    #[error("database task failed: {0}")]
    Task(String),
    #[error("no database at {path}: has `lipost run` run yet?")]
    Missing { path: String },
    #[error("database {path} has schema version {found}, newer than this lipost knows ({known}): upgrade lipost")]
    TooNew {
        path: String,
        found: usize,
        known: usize,
    },
    #[error("database {path} has schema version {found}, older than this lipost ({known}): let `lipost run` (or any command that writes) migrate it first")]
    TooOld {
        path: String,
        found: usize,
        known: usize,
    },
    #[error("{target} has lipost schema version {found}, and this lipost needs {known}. Other nodes may be using it, so a daemon does not migrate it: stop every lipost on it (or upgrade them together), then run `lipost migrate`")]
    NeedsMigrate {
        target: String,
        found: usize,
        known: usize,
    },
    #[error("{0}")]
    Url(String),
    #[error("another `lipost run` with node_id {node:?} ({holder}) is working this PostgreSQL database: stop it, or give this one another node_id (config `node_id` or LIPOST_NODE_ID); two daemons with one id would take each other's claims for their own")]
    NodeRunning { node: String, holder: String },
    /// A settle for a try that is no longer open: another node resolved the post meanwhile.
    #[error("post {id:?}: this try was taken over by another node (this one was stopped past its lease); its outcome is not recorded")]
    Fenced { id: String },
    #[error("migrating {path} would leave a broken reference ({detail}); nothing was changed: report this")]
    Migration { path: String, detail: String },
    #[error("corrupt value in {table}.{column}: {value:?} is not {expected}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
        /// What the column should hold, in words ("an RFC 3339 time", "a post state").
        expected: &'static str,
    },
    #[error(
        "time {value} is outside the years 0000 to 9999 and cannot be stored; nothing was written"
    )]
    TimeOutOfRange { value: String },
    #[error("this database was made for {had}, and the config says {want}: its tokens, post URNs and scheduled posts belong to the first and must never go to the second. Point `database` in config.toml at a new file for {want} (keep the old file for {had}), or put the config back")]
    MadeFor { had: String, want: String },
    #[error("this database was made by an older lipost, which did not record whether it was for the sandbox or for LinkedIn, and its contents cannot tell ({why}). Its posts must not go to the wrong one. If it is for {want}, record that: sqlite3 DATABASE \"{sql}\" (stop lipost first); otherwise point `database` in config.toml at a new file")]
    Unmarked {
        why: String,
        want: String,
        /// The statement that records `want`.
        sql: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// For unit tests of other modules: a store at `config.database` holding one scheduled post,
/// `p` ("Hello"), due now.
#[cfg(test)]
pub(crate) fn with_one_post(config: &crate::config::Config) -> Store {
    let mut store = Store::open(&config.database).unwrap();
    let draft = crate::draft::parse(b"Hello\n", "p", config).unwrap();
    let post = NewPost {
        draft: &draft,
        source_file: "p.md",
        slots: &[],
    };
    store.ingest(&[post], Utc::now()).unwrap();
    store
}

/// Times are stored as RFC 3339 UTC text with milliseconds: sortable, and readable by
/// `sqlite3` and its `datetime()`.
pub fn ts(t: DateTime<Utc>) -> Ts {
    Ts(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A time on its way into the database (see [`ts`]). Bound as an SQL parameter, one outside
/// the years 0000 to 9999 is refused with [`StoreError::TimeOutOfRange`]: chrono writes it as
/// `+10000-…`, which sorts before every real time (due at once) and can never be read back,
/// so every later look at the post would fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ts(String);

impl Ts {
    fn storable(&self) -> bool {
        self.0.as_bytes().first().is_some_and(u8::is_ascii_digit)
    }
}

impl std::ops::Deref for Ts {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Ts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl db::Arg for Ts {
    fn value(&self) -> Result<db::Value<'_>> {
        if !self.storable() {
            return Err(StoreError::TimeOutOfRange {
                value: self.0.clone(),
            });
        }
        Ok(db::Value::Text(&self.0))
    }
}

/// A stored time; a value that is not one is an error naming where it is, never a default
/// (1970 would make a post due at once).
fn parse_ts(table: &'static str, column: &'static str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt {
            table,
            column,
            value: s.to_string(),
            expected: "an RFC 3339 time",
        })
}

/// A stored post state; an unknown one is an error naming the value, never a default (taking
/// it for `dead` would hide a post that may still go out, or may have).
fn parse_state(s: &str) -> Result<PostState> {
    PostState::parse(s).ok_or_else(|| StoreError::Corrupt {
        table: "posts",
        column: "state",
        value: s.to_string(),
        expected: "a post state",
    })
}

fn opt_ts(
    table: &'static str,
    column: &'static str,
    s: Option<String>,
) -> Result<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(table, column, &s)).transpose()
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NoRow,
            e => StoreError::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        StoreError::Postgres(e)
    }
}

/// Which database holds the schedule.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`); never printed, as it
    /// may hold a password.
    Postgres(crate::secret::Secret),
}

impl Target {
    /// Where `config` keeps the schedule.
    pub fn of(config: &crate::config::Config) -> Target {
        match &config.database_url {
            Some(url) => Target::Postgres(url.clone()),
            None => Target::Sqlite(config.database.clone()),
        }
    }
}

impl std::fmt::Display for Target {
    /// The file, or the URL's server and database without user, password or options.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sqlite(p) => write!(f, "{}", p.display()),
            Target::Postgres(url) => f.write_str(&pg::describe(url.expose())),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A draft on its way into the store.
pub struct NewPost<'a> {
    pub draft: &'a Draft,
    pub source_file: &'a str,
    /// For a `next-slot` draft: the account's upcoming slot times, earliest first.
    pub slots: &'a [DateTime<Utc>],
}

/// What became of a draft taken from the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    Created,
    Replaced,
    /// The same draft again (e.g. re-read after a crash before the file was moved); the
    /// post's state, which it keeps.
    Unchanged {
        state: PostState,
    },
    /// The very file taken before, never moved out and untouched since, found again (after
    /// a restart) while its post is dead or cancelled: not a new drop, so nothing changes.
    LeftOver {
        state: PostState,
    },
    /// An `edit = true` draft: the published post's new text waits to be sent.
    Edit,
}

/// Why a draft was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("post {id:?} is already published as {urn}; give the new draft another id, or add `edit = true` to its front matter to change the published post's text")]
    AlreadyPublished { id: String, urn: String },
    #[error("post {id:?} was published and then deleted (`lipost delete`); to post this text again, give the draft a new id (`id = \"...\"` or a new file name)")]
    Deleted { id: String },
    #[error("no post with id {id:?} to edit: `edit = true` changes the text of a published post; remove it to schedule a new post")]
    EditUnknown { id: String },
    #[error("post {id:?} is {state}, not published: `edit = true` changes the text of a published post. {}", edit_hint(*state, id))]
    EditNotPublished { id: String, state: PostState },
    #[error("post {id:?} is a poll: LinkedIn does not allow editing a poll")]
    EditPoll { id: String },
    #[error("post {id:?} is published; an edit may change only its text, and this draft changes its {changed}. Put those back as they were, or post a new draft under another id")]
    EditChanges { id: String, changed: String },
    #[error("post {id:?} is being published right now; drop the draft again once `lipost show {id}` says it settled")]
    Publishing { id: String },
    #[error("post {id:?} may already be on LinkedIn (a try is in doubt); settle it first with `lipost mark-published {id} URN`, or check the feed and `lipost retry {id} --force`")]
    InDoubt { id: String },
    #[error("post {id:?} is dead as {reason}: it may already be on LinkedIn, and taking this draft would send it again. Check the feed: if it is there, `lipost mark-published {id} URN`; if not, `lipost retry {id} --force`")]
    MayBeLive { id: String, reason: DeadReason },
    #[error("post {id:?} is scheduled for {due} from {file:?}; this draft comes from another file and would move it earlier, to {new_due} (a sync tool's conflict copy or a stray duplicate does this). To move the post earlier, save the draft under its original name {file:?}, or `lipost cancel {id}` first")]
    MovesEarlier {
        id: String,
        file: String,
        due: String,
        new_due: String,
    },
    #[error("post {id:?} comes from a draft with front matter; this file has none, so it would drop whatever that front matter set (time, slot, account, visibility) and the post would go out now or at the next free slot (the rest of a draft written in steps, `>` then `>>`, or a text saved without its front matter does this). Keep the front matter in the file (even an empty one: two lines of `+++`)")]
    BareDropsFrontMatter { id: String },
    #[error("post {id:?} is scheduled for {due} by its front matter; this file has none, so it would drop that time and the post would go out now or at the next slot (the rest of a draft written in steps, `>` then `>>`, or a text saved without its front matter does this). Keep the front matter in the file, with the time you want")]
    BareDropsTime { id: String, due: String },
    #[error("post {id:?} was stopped because its draft file was written to again after it was taken (draft_incomplete), and this file, without front matter, comes from the same file name: it looks like more of that rest. Drop the whole draft again, starting with its front matter (two lines of `+++` at least), or `lipost cancel {id}` first")]
    RestOfIncomplete { id: String },
    #[error("no free slot for account {account:?} among its next {looked} slots; add slots or give publish_at")]
    NoFreeSlot { account: String, looked: usize },
}

/// What to do instead of editing a post in `state`.
fn edit_hint(state: PostState, id: &str) -> String {
    match state {
        PostState::Scheduled | PostState::Dead | PostState::Cancelled => {
            "Remove `edit = true` to replace the post that has not gone out.".to_string()
        }
        PostState::Publishing => {
            format!("Drop the draft again once `lipost show {id}` says it is published.")
        }
        PostState::Published => String::new(),
        PostState::Deleted => {
            "It was deleted on LinkedIn; post a new draft under another id.".to_string()
        }
    }
}

/// A due post as the scheduler weighs it: what pacing and holds need, not the text.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub account: String,
    pub due_at: DateTime<Utc>,
    /// Set when an earlier try may have reached LinkedIn.
    pub in_doubt_since: Option<DateTime<Utc>>,
    /// It names media (or a poll or link card): its assets must be available first.
    pub has_content: bool,
    /// When it may go out (`next_attempt_at`): its due time, or a retry's.
    pub next_at: DateTime<Utc>,
}

/// The columns [`due_from_row`] reads, in its order.
const DUE_COLUMNS: &str =
    "id, account, due_at, in_doubt_since, content IS NOT NULL, next_attempt_at";

fn due_from_row(r: &db::Row) -> Result<Due> {
    Ok(Due {
        id: r.get(0)?,
        account: r.get(1)?,
        due_at: parse_ts("posts", "due_at", &r.get::<_, String>(2)?)?,
        in_doubt_since: opt_ts("posts", "in_doubt_since", r.get(3)?)?,
        has_content: r.get(4)?,
        next_at: parse_ts("posts", "next_attempt_at", &r.get::<_, String>(5)?)?,
    })
}

/// See [`Store::dispatch_view`].
pub struct DispatchView {
    pub due: Vec<Due>,
    pub tokens: Vec<Token>,
    /// account → (last published, published since the given instant)
    pub activity: std::collections::HashMap<String, (Option<DateTime<Utc>>, u32)>,
    /// account → posts being sent by any node (PostgreSQL; empty on SQLite, where the
    /// scheduler's own count is all there is).
    pub in_flight: std::collections::HashMap<String, usize>,
    /// post id → whether its assets let it be created; filled by the scheduler for the due
    /// posts with content (none for a text post).
    pub media: std::collections::HashMap<String, MediaGate>,
    /// account → the latest next try of its posts that LinkedIn answered 429 and that wait
    /// for it (see [`Store::throttled`]).
    pub throttled: std::collections::HashMap<String, DateTime<Utc>>,
}

/// One finished try, for [`Store::settle_many`].
#[derive(Debug, Clone)]
pub struct Settled {
    pub post_id: String,
    pub attempt: i64,
    pub result: AttemptResult,
    pub outcome: Settle,
}

/// What [`Store::settle_many`] recorded for a try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The outcome as the publisher settled it.
    AsSettled,
    /// A published try whose URN this other post holds: recorded dead as a duplicate.
    DuplicateOf(String),
}

/// How a try ended, for [`Store::settle_many`].
#[derive(Debug, Clone)]
pub enum Settle {
    Published {
        urn: String,
    },
    Retry {
        at: DateTime<Utc>,
        /// What the failed try counts against.
        counts: Budget,
        /// Set when the try may have reached LinkedIn.
        in_doubt_since: Option<DateTime<Utc>>,
    },
    Dead {
        reason: DeadReason,
    },
    /// Not the post's fault (e.g. a retired API version): scheduled again, held, no try
    /// counted.
    Held(Hold),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// `max_attempts`.
    Attempts,
    /// A 429: counts against lateness only.
    RateLimit,
    /// Nothing: the post is held (its account needs a login), not failing.
    Free,
}

pub struct Store {
    db: Db,
    /// The daemon this store claims for (`Store::join`); `None` in commands.
    node: Option<Node>,
}

/// A post's row as intake compares it with a new draft of the same id.
struct Existing {
    state: String,
    urn: Option<String>,
    in_doubt: Option<String>,
    account: String,
    commentary: String,
    visibility: String,
    publish_at: Option<String>,
    source_file: Option<String>,
    due_at: String,
    content: Option<String>,
    first_comment: Option<String>,
    /// Whether its draft had front matter; `None` for posts taken before this was kept.
    front_matter: Option<i64>,
    /// The file it was last taken from (see `Draft::source_stamp`).
    source_stamp: Option<String>,
}

const POST_COLUMNS: &str =
    "id, account, state, due_at, next_attempt_at, post_urn, commentary, text, \
    visibility, source_file, attempts_used, rate_limited, in_doubt_since, last_error, created_at, \
    updated_at, published_at, slot_at, hold_reason, hold_until, content, first_comment";

fn post_from_row(r: &Row<'_>) -> Result<Post> {
    let state: String = r.get(2)?;
    // A lift keeps the reason (so a re-hold for the same cause is not news) and clears the
    // time: only a post with `hold_until` is held.
    let hold_until = opt_ts("posts", "hold_until", r.get(19)?)?;
    Ok(Post {
        id: r.get(0)?,
        account: r.get(1)?,
        state: parse_state(&state)?,
        due_at: parse_ts("posts", "due_at", &r.get::<_, String>(3)?)?,
        next_attempt_at: parse_ts("posts", "next_attempt_at", &r.get::<_, String>(4)?)?,
        post_urn: r.get(5)?,
        commentary: r.get(6)?,
        text: r.get(7)?,
        visibility: r.get(8)?,
        source_file: r.get(9)?,
        attempts_used: r.get(10)?,
        rate_limited: r.get(11)?,
        in_doubt_since: opt_ts("posts", "in_doubt_since", r.get(12)?)?,
        last_error: r.get(13)?,
        created_at: parse_ts("posts", "created_at", &r.get::<_, String>(14)?)?,
        updated_at: parse_ts("posts", "updated_at", &r.get::<_, String>(15)?)?,
        published_at: opt_ts("posts", "published_at", r.get(16)?)?,
        slot_at: opt_ts("posts", "slot_at", r.get(17)?)?,
        hold_until,
        hold_reason: match hold_until.and(r.get::<_, Option<String>>(18)?) {
            None => None,
            Some(s) => Some(parse_hold_reason(&s)?),
        },
        content: match r.get::<_, Option<String>>(20)? {
            None => None,
            Some(json) => Some(parse_content(&json)?),
        },
        first_comment: r.get(21)?,
    })
}

/// A stored `posts.content`; one that does not parse is an error naming the column.
fn parse_content(json: &str) -> Result<crate::content::Content> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        table: "posts",
        column: "content",
        value: format!("{json} ({e})"),
        expected: "post content as lipost writes it",
    })
}

/// A stored hold reason; an unknown one is an error naming the value.
fn parse_hold_reason(s: &str) -> Result<HoldReason> {
    HoldReason::parse(s).ok_or_else(|| StoreError::Corrupt {
        table: "posts",
        column: "hold_reason",
        value: s.to_string(),
        expected: "a hold reason",
    })
}

impl Store {
    /// Opens (creating it mode 0600 if needed) and migrates a SQLite database file.
    pub fn open(path: &Path) -> Result<Store> {
        Store::attach(sqlite::open(path)?)
    }

    /// Opens the database `target` names, creating and migrating it as `lipost run` does.
    pub fn connect(target: &Target) -> Result<Store> {
        match target {
            Target::Sqlite(path) => Store::open(path),
            Target::Postgres(url) => Store::attach(pg::connect(url, pg::Open::Write)?),
        }
    }

    /// Opens an existing database for reading only: nothing is created or migrated, so a
    /// command that only looks (`status`, `list`, `show`, `dead`) changes nothing.
    pub fn connect_read_only(target: &Target) -> Result<Store> {
        Ok(Store {
            node: None,
            db: match target {
                Target::Sqlite(path) => sqlite::open_read_only(path)?,
                Target::Postgres(url) => pg::connect(url, pg::Open::ReadOnly)?,
            },
        })
    }

    /// `lipost migrate`: brings the schema up to date; (version before, version after).
    pub fn migrate(target: &Target) -> Result<(usize, usize)> {
        match target {
            Target::Sqlite(path) => {
                let was = if path.is_file() {
                    Store::open_read_only(path)
                        .map(|s| s.schema_version().map(|v| v.0))
                        .unwrap_or_else(|e| match e {
                            StoreError::TooOld { found, .. } => Ok(found),
                            e => Err(e),
                        })?
                } else {
                    0
                };
                let now = Store::open(path)?.schema_version()?.0;
                Ok((was, now))
            }
            Target::Postgres(url) => {
                let db = pg::connect(url, pg::Open::ReadOnly);
                let was = match db {
                    Ok(_) => pg::schema_version_known(),
                    Err(StoreError::Missing { .. }) => 0,
                    Err(StoreError::TooOld { found, .. }) => found,
                    Err(e) => return Err(e),
                };
                let db = pg::connect(url, pg::Open::Migrate)?;
                Ok((was, pg::schema_version(&db)?.0))
            }
        }
    }

    /// (the schema version of this database, the version this lipost writes).
    pub fn schema_version(&self) -> Result<(usize, usize)> {
        match &self.db {
            Db::Sqlite(c) => Ok((
                c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
                migrations::MIGRATIONS.len(),
            )),
            Db::Postgres(_) => pg::schema_version(&self.db),
        }
    }

    /// SQLite's [`Store::connect_read_only`].
    pub fn open_read_only(path: &Path) -> Result<Store> {
        Store::connect_read_only(&Target::Sqlite(path.to_path_buf()))
    }

    fn attach(db: Db) -> Result<Store> {
        outbox::attach(&db)?;
        Ok(Store { db, node: None })
    }

    /// Runs `f` in one write transaction that every store call inside it joins: on
    /// PostgreSQL, so several nodes' dispatches (view, pacing, claims) happen one after the
    /// other, each seeing the other's claims. On SQLite `f` runs as it is: one daemon.
    pub fn in_write<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        if self.db.dialect() == db::Dialect::Sqlite {
            return f(self);
        }
        self.db.begin_outer()?;
        let r = f(self);
        let end = self.db.end_outer(r.is_ok());
        let v = r?;
        end?;
        Ok(v)
    }

    /// Which engine holds the schedule.
    pub fn dialect(&self) -> db::Dialect {
        self.db.dialect()
    }

    /// SQLite's `synchronous` FULL or NORMAL around a settle batch; PostgreSQL commits are
    /// durable either way (nothing to switch).
    fn synchronous(&self, full: bool) -> Result<()> {
        match self.db.sqlite() {
            Some(c) => sqlite::synchronous(c, full),
            None => Ok(()),
        }
    }

    fn write(&mut self) -> Result<Tx<'_>> {
        self.db.write()
    }

    /// Moves a post along `t` if it is in one of `t`'s source states. `false` if it was not.
    fn apply(tx: &Db, id: &str, t: Transition, now: &str) -> Result<bool> {
        let from = t
            .from()
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "UPDATE posts SET state = ?1, updated_at = ?2 WHERE id = ?3 AND state IN ({from})"
        );
        Ok(tx
            .prepare_cached(&sql)?
            .execute(params![t.to().as_str(), now, id])?
            == 1)
    }

    /// Like `Store::apply`, but an error that says what state the post is in.
    fn apply_or_explain(
        tx: &Db,
        id: &str,
        t: Transition,
        action: &'static str,
        now: &str,
    ) -> Result<()> {
        if Self::apply(tx, id, t, now)? {
            return Ok(());
        }
        let state: Option<String> = tx
            .query_row("SELECT state FROM posts WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        match state {
            None => Err(StoreError::NotFound(id.to_string())),
            Some(s) => Err(StoreError::WrongState {
                id: id.to_string(),
                state: parse_state(&s)?,
                action,
                wanted: t
                    .from()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            }),
        }
    }

    // ------------------------------------------------------------ scheduling

    /// Scheduled posts whose time has come, earliest first. Only what choosing needs: the
    /// scheduler looks at more posts than it claims, and a claim reads the rest.
    pub fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Due>> {
        let mut stmt = self.db.prepare_cached(&format!(
            "SELECT {DUE_COLUMNS} FROM posts \
             WHERE state = 'scheduled' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![ts(now), limit as i64], due_from_row)?;
        rows.collect::<Result<_>>()
    }

    /// Scheduled posts due after `now` and by `horizon`, earliest first, that nothing holds
    /// and no earlier try left in doubt: the ones the scheduler may claim ahead of their
    /// due time. (A held post is claimed when its hold ends, as before.)
    fn due_ahead(
        &self,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Due>> {
        let sql = format!(
            "SELECT {DUE_COLUMNS} FROM posts{} \
             WHERE state = 'scheduled' AND next_attempt_at > ?1 AND next_attempt_at <= ?2 \
             AND hold_reason IS NULL AND in_doubt_since IS NULL \
             ORDER BY next_attempt_at, id LIMIT ?3",
            self.indexed_by("posts_plain_next")
        );
        let mut stmt = self.db.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![ts(now), ts(horizon), limit as i64], due_from_row)?;
        rows.collect::<Result<_>>()
    }

    /// The earliest `next_attempt_at` later than `after` of a post [`Store::due_ahead`] would
    /// return: the scheduler wakes `scheduler::AHEAD` before it.
    pub fn next_plain_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let sql = format!(
            "SELECT MIN(next_attempt_at) FROM posts{} WHERE state = 'scheduled' \
             AND hold_reason IS NULL AND in_doubt_since IS NULL AND next_attempt_at > ?1",
            self.indexed_by("posts_plain_next")
        );
        let t: Option<String> = self
            .db
            .prepare_cached(&sql)?
            .query_row([ts(after)], |r| r.get(0))?;
        opt_ts("posts", "next_attempt_at", t)
    }

    /// `INDEXED BY index` on SQLite, which without statistics would rather walk every
    /// scheduled post by `posts_state_next` than use a partial index that holds only the few
    /// a query wants. Nothing on PostgreSQL, whose planner has statistics.
    fn indexed_by(&self, index: &str) -> String {
        match self.db.dialect() {
            db::Dialect::Sqlite => format!(" INDEXED BY {index}"),
            db::Dialect::Postgres => String::new(),
        }
    }

    /// The earliest `next_attempt_at` of a scheduled post that is later than `now`.
    pub fn next_due_after(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self.db.query_row(
            "SELECT MIN(next_attempt_at) FROM posts WHERE state = 'scheduled' AND next_attempt_at > ?1",
            [ts(now)],
            |r| r.get(0),
        )?;
        opt_ts("posts", "next_attempt_at", t)
    }

    /// Claims scheduled posts and opens an attempt row for each, in one durable transaction,
    /// before any request leaves; returns the claimed posts in full. Posts no longer
    /// scheduled are skipped.
    pub fn claim_many(&mut self, ids: &[String], now: DateTime<Utc>) -> Result<Vec<(Post, i64)>> {
        self.claim_starting(ids, now, now)
    }

    /// Like [`Store::claim_many`], for posts claimed before they are due: each try starts
    /// at `started`, the earliest its request may leave.
    pub fn claim_starting(
        &mut self,
        ids: &[String],
        now: DateTime<Utc>,
        started: DateTime<Utc>,
    ) -> Result<Vec<(Post, i64)>> {
        let now_s = ts(now);
        let started_s = ts(started);
        let node = self.claiming_node().cloned();
        let tx = self.write()?;
        if let Some(n) = &node {
            let claimed = pg_batch::claim(&tx, ids, &now_s, &started_s, n)?;
            tx.commit()?;
            return Ok(claimed);
        }
        let mut claimed = Vec::with_capacity(ids.len());
        {
            // The Claim transition (scheduled → publishing). Not `RETURNING`: in SQLite it
            // costs more than reading the row again. On PostgreSQL the claim names its node
            // and lease (see `nodes`); SKIP LOCKED passes over a row another node is
            // claiming this instant instead of waiting for it.
            debug_assert_eq!(Transition::Claim.from(), &[PostState::Scheduled]);
            let sql = match &node {
                None => "UPDATE posts SET state = 'publishing', updated_at = ?2, hold_reason = NULL, hold_until = NULL, \
                 hold_since = NULL, hold_report_at = NULL WHERE id = ?1 AND state = 'scheduled'".to_string(),
                Some(_) => format!(
                    "UPDATE posts SET state = 'publishing', updated_at = ?2, hold_reason = NULL, hold_until = NULL, \
                     hold_since = NULL, hold_report_at = NULL, claimed_by = ?3, lease_until = {} \
                     WHERE id = (SELECT id FROM posts WHERE id = ?1 AND state = 'scheduled' FOR UPDATE SKIP LOCKED)",
                    nodes::db_later(4)
                ),
            };
            let mut claim = tx.prepare_cached(&sql)?;
            let mut read =
                tx.prepare_cached(&format!("SELECT {POST_COLUMNS} FROM posts WHERE id = ?1"))?;
            let mut open =
                tx.prepare_cached("INSERT INTO attempts (post_id, started_at) VALUES (?1, ?2)")?;
            for id in ids {
                let n = match &node {
                    None => claim.execute(params![id, now_s])?,
                    Some(n) => claim.execute(params![id, now_s, n.id, n.lease.as_secs_f64()])?,
                };
                if n != 1 {
                    continue;
                }
                let post = read.query_row([id], post_from_row)?;
                let attempt = open.insert(params![id, started_s])?;
                claimed.push((post, attempt));
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Gives back a claimed post whose request never left (the daemon is shutting down):
    /// scheduled again, and its attempt row removed, since nothing was tried.
    pub fn release(&mut self, post_id: &str, attempt: i64, now: DateTime<Utc>) -> Result<()> {
        let now_s = ts(now);
        let tx = self.write()?;
        Self::apply_or_explain(&tx, post_id, Transition::Release, "release", &now_s)?;
        tx.execute(
            "DELETE FROM attempts WHERE id = ?1 AND post_id = ?2 AND finished_at IS NULL",
            params![attempt, post_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records finished tries and moves their posts, many in one transaction (group commit).
    /// One result per item, in order; an item whose post is no longer `publishing` fails
    /// alone.
    ///
    /// Committed with `synchronous=NORMAL`: safe against a killed process, and a settle lost
    /// to a power cut leaves the post `publishing` (its claim was FULL), which the next start
    /// resolves as in doubt without a double post. The next FULL commit makes it durable.
    pub fn settle_many(
        &mut self,
        items: &[Settled],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Recorded>>> {
        self.synchronous(false)?;
        let r = self.settle_many_tx(items, now);
        self.synchronous(true)?;
        r
    }

    fn settle_many_tx(
        &mut self,
        items: &[Settled],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Recorded>>> {
        let now_s = ts(now);
        let tx = self.write()?;
        let plain = match tx.dialect() {
            db::Dialect::Postgres => pg_batch::settle_published(&tx, items, &now_s)?,
            db::Dialect::Sqlite => Default::default(),
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if plain.contains(&i) {
                out.push(Ok(Recorded::AsSettled));
                continue;
            }
            // A refused move changes nothing (settle_one moves the post first), so one bad
            // item needs no savepoint; any other error fails the whole transaction.
            match Self::settle_one(&tx, item, &now_s) {
                Err(
                    e @ (StoreError::WrongState { .. }
                    | StoreError::NotFound(_)
                    | StoreError::Fenced { .. }),
                ) => out.push(Err(e)),
                Err(e) => return Err(e),
                Ok(recorded) => out.push(Ok(recorded)),
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn settle_one(tx: &Db, item: &Settled, now_s: &str) -> Result<Recorded> {
        // The fence: only the try still open counts. Another node that resolved this post
        // (this one was stopped past its lease) finished the try; a late answer then changes
        // nothing it settled.
        let open = tx
            .prepare_cached(
                "SELECT 1 FROM attempts WHERE id = ?1 AND post_id = ?2 AND finished_at IS NULL",
            )?
            .exists(params![item.attempt, item.post_id])?;
        if !open {
            return Err(StoreError::Fenced {
                id: item.post_id.clone(),
            });
        }
        let mut r = &item.result;
        let mut outcome = &item.outcome;
        let mut recorded = Recorded::AsSettled;
        let taken;
        if let Settle::Published { urn } = outcome {
            // Checked in the same transaction as the publish, so two posts resolving at once
            // cannot both take one URN: the second is a true duplicate.
            if let Some(other) = Self::urn_holder(tx, urn, &item.post_id)? {
                recorded = Recorded::DuplicateOf(other.clone());
                taken = (
                    AttemptResult {
                        outcome: AttemptOutcome::Dead,
                        message: Some(format!(
                            "LinkedIn names {urn}, which is already recorded for post {other:?}: this post is a duplicate of it ({})",
                            r.message.as_deref().unwrap_or("")
                        )),
                        ..r.clone()
                    },
                    Settle::Dead {
                        reason: DeadReason::Duplicate,
                    },
                );
                r = &taken.0;
                outcome = &taken.1;
            }
        }
        Self::move_after_try(tx, &item.post_id, r, outcome, now_s)?;
        if let Settle::Dead {
            reason: DeadReason::InDoubt,
        } = outcome
        {
            // A post that dies in doubt keeps the mark even when this try raised the doubt:
            // intake and `retry` read `in_doubt_since` to refuse a blind resend.
            tx.prepare_cached(
                "UPDATE posts SET in_doubt_since = COALESCE(in_doubt_since, \
                 (SELECT started_at FROM attempts WHERE id = ?2), ?3) WHERE id = ?1",
            )?
            .execute(params![item.post_id, item.attempt, now_s])?;
        }
        let next = match outcome {
            Settle::Retry { at, .. } => Some(ts(*at)),
            Settle::Held(hold) => Some(ts(hold.until)),
            _ => None,
        };
        tx.prepare_cached(
            "UPDATE attempts SET finished_at = ?2, http_status = ?3, error_code = ?4, service_error_code = ?5, \
             message = ?6, outcome = ?7, next_attempt_at = ?8 WHERE id = ?1",
        )?
        .execute(params![item.attempt, now_s, r.http_status, r.error_code, r.service_error_code, r.message, r.outcome.as_str(), next])?;
        Ok(recorded)
    }

    /// The post other than `except` that holds `urn`, if any.
    fn urn_holder(tx: &Db, urn: &str, except: &str) -> Result<Option<String>> {
        tx.prepare_cached("SELECT id FROM posts WHERE post_urn = ?1 AND id != ?2 LIMIT 1")?
            .query_row(params![urn, except], |r| r.get(0))
            .optional()
    }

    /// Which of `urns` are recorded for a post other than `except`: an in-doubt post must
    /// not be matched to another post's URN.
    pub fn urns_held_by_others(&self, urns: &[String], except: &str) -> Result<Vec<String>> {
        let mut held = Vec::new();
        for urn in urns {
            if Self::urn_holder(&self.db, urn, except)?.is_some() {
                held.push(urn.clone());
            }
        }
        Ok(held)
    }

    fn move_after_try(
        tx: &Db,
        post_id: &str,
        result: &AttemptResult,
        outcome: &Settle,
        now_s: &str,
    ) -> Result<()> {
        match outcome {
            Settle::Published { urn } => {
                // The Publish transition and its fields in one statement: this runs for every
                // post sent.
                debug_assert_eq!(Transition::Publish.from(), &[PostState::Publishing]);
                let moved = tx
                    .prepare_cached(
                        "UPDATE posts SET state = 'published', updated_at = ?3, post_urn = ?2, published_at = ?3, \
                         in_doubt_since = NULL, last_error = NULL WHERE id = ?1 AND state = 'publishing'",
                    )?
                    .execute(params![post_id, urn, now_s])?;
                if moved != 1 {
                    Self::apply_or_explain(tx, post_id, Transition::Publish, "publish", now_s)?;
                }
                outbox::published(tx, post_id, urn, now_s)?;
                Self::queue_first_comment(tx, post_id, now_s)?;
            }
            Settle::Retry {
                at,
                counts,
                in_doubt_since,
            } => {
                Self::apply_or_explain(tx, post_id, Transition::Reschedule, "reschedule", now_s)?;
                let (a, r) = match counts {
                    Budget::Attempts => ("attempts_used + 1", "0"),
                    Budget::RateLimit => ("attempts_used", "rate_limited + 1"),
                    Budget::Free => ("attempts_used", "rate_limited"),
                };
                tx.execute(
                    &format!(
                        "UPDATE posts SET next_attempt_at = ?2, attempts_used = {a}, rate_limited = {r}, \
                         in_doubt_since = COALESCE(in_doubt_since, ?3), last_error = ?4 WHERE id = ?1"
                    ),
                    params![post_id, ts(*at), in_doubt_since.map(ts), result.message],
                )?;
                // The wait until the next try is a hold that ends by time (the claim cleared
                // any earlier one). A retry due at once, or one for a post whose account needs
                // a login (the scheduler holds it), is no wait.
                let reason = match counts {
                    Budget::RateLimit => Some(HoldReason::RateLimited),
                    Budget::Attempts if in_doubt_since.is_some() => Some(HoldReason::InDoubtResend),
                    Budget::Attempts => Some(HoldReason::Backoff),
                    Budget::Free => None,
                };
                let until = ts(*at);
                if let Some(reason) = reason.filter(|_| &*until > now_s) {
                    guards::hold_one(tx, post_id, reason, &until, now_s)?;
                }
            }
            Settle::Dead { reason } => {
                Self::apply_or_explain(tx, post_id, Transition::Kill, "give up", now_s)?;
                Self::bury(tx, post_id, *reason, result, now_s)?;
            }
            Settle::Held(hold) => {
                Self::apply_or_explain(tx, post_id, Transition::Reschedule, "hold", now_s)?;
                tx.execute(
                    "UPDATE posts SET last_error = ?2 WHERE id = ?1",
                    params![post_id, result.message],
                )?;
                guards::hold_one(tx, post_id, hold.reason, &ts(hold.until), now_s)?;
            }
        }
        Ok(())
    }

    fn bury(
        tx: &Db,
        post_id: &str,
        reason: DeadReason,
        result: &AttemptResult,
        now_s: &str,
    ) -> Result<()> {
        tx.execute(
            "UPDATE posts SET last_error = ?2 WHERE id = ?1",
            params![post_id, result.message],
        )?;
        tx.execute(
            "INSERT INTO dead_letters (post_id, reason, http_status, error_code, message, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![post_id, reason.as_str(), result.http_status, result.error_code, result.message, now_s],
        )?;
        outbox::dead(tx, post_id, reason, result, now_s)
    }

    /// A scheduled post that can no longer go out (too late): dead, with its dead letter.
    /// A post in doubt is buried as `in_doubt` whatever `reason` says: it may be live.
    pub fn expire(
        &mut self,
        post_id: &str,
        reason: DeadReason,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now_s = ts(now);
        let tx = self.write()?;
        if !Self::apply(&tx, post_id, Transition::Expire, &now_s)? {
            return Ok(false);
        }
        let in_doubt: Option<String> = tx.query_row(
            "SELECT in_doubt_since FROM posts WHERE id = ?1",
            [post_id],
            |r| r.get(0),
        )?;
        let (reason, message) = match in_doubt {
            Some(since) => (
                DeadReason::InDoubt,
                format!("{message}; a try at {since} may have reached LinkedIn: check the feed, and `lipost mark-published {post_id} URN` if it is there"),
            ),
            None => (reason, message.to_string()),
        };
        let result = AttemptResult {
            message: Some(message),
            outcome: AttemptOutcome::Dead,
            ..AttemptResult::default()
        };
        Self::bury(&tx, post_id, reason, &result, &now_s)?;
        tx.commit()?;
        Ok(true)
    }

    /// At start-up: every post left in `publishing` was claimed by a process that died. Its
    /// request may have reached LinkedIn, so it goes back to `scheduled` marked in doubt.
    pub fn recover_interrupted(&mut self, now: DateTime<Utc>) -> Result<Vec<String>> {
        if self.claiming_node().is_some() {
            // Other nodes' posts in flight are theirs while their leases hold.
            return self.recover_expired(
                true,
                "the daemon stopped while this try was under way; it may have reached LinkedIn",
                now,
            );
        }
        let now_s = ts(now);
        let tx = self.write()?;
        let ids: Vec<String> = {
            let mut stmt =
                tx.prepare("SELECT id FROM posts WHERE state = 'publishing' ORDER BY id")?;
            let rows = stmt.query_map(params![], |r| r.get(0))?;
            rows.collect::<Result<_>>()?
        };
        for id in &ids {
            let started: Option<String> = tx
                .query_row(
                    "SELECT started_at FROM attempts WHERE post_id = ?1 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            Self::recover_tx(
                &tx,
                id,
                started,
                "the daemon stopped while this try was under way; it may have reached LinkedIn",
                &now_s,
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// A claimed post whose try ended without a settle (its task failed): in doubt, and the
    /// try counts, so a task that fails every time cannot loop. Scheduled again at
    /// `next(attempts used)`, where the in-doubt path resolves it before anything is resent;
    /// once `max_attempts` tries are used it is dead as `in_doubt`, for a person to check.
    /// `false` if the post was no longer `publishing` (it was settled after all).
    pub fn recover_one(
        &mut self,
        id: &str,
        why: &str,
        now: DateTime<Utc>,
        max_attempts: u32,
        next: impl FnOnce(u32) -> DateTime<Utc>,
    ) -> Result<bool> {
        let now_s = ts(now);
        let tx = self.write()?;
        let row: Option<(Option<String>, u32)> = tx
            .query_row(
                "SELECT (SELECT started_at FROM attempts WHERE post_id = p.id AND finished_at IS NULL ORDER BY id DESC LIMIT 1), \
                 attempts_used FROM posts p WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((started, used)) = row else {
            return Ok(false);
        };
        let used = used + 1;
        if used >= max_attempts {
            if !Self::apply(&tx, id, Transition::Kill, &now_s)? {
                return Ok(false);
            }
            let message = format!(
                "{why}; {used} tries ended this way, so it is given up. It may be on LinkedIn: check the feed; `lipost mark-published {id} URN` records it if it is there, `lipost retry {id} --force` sends it anyway"
            );
            tx.execute(
                "UPDATE attempts SET finished_at = ?2, outcome = ?3, message = ?4 \
                 WHERE post_id = ?1 AND finished_at IS NULL",
                params![id, now_s, AttemptOutcome::Dead.as_str(), message],
            )?;
            tx.execute(
                "UPDATE posts SET attempts_used = ?2, in_doubt_since = COALESCE(in_doubt_since, ?3, ?4) WHERE id = ?1",
                params![id, used, started, now_s],
            )?;
            let result = AttemptResult {
                message: Some(message),
                outcome: AttemptOutcome::Dead,
                ..AttemptResult::default()
            };
            Self::bury(&tx, id, DeadReason::InDoubt, &result, &now_s)?;
        } else {
            if !Self::recover_tx(&tx, id, started, why, &now_s)? {
                return Ok(false);
            }
            tx.execute(
                "UPDATE posts SET attempts_used = ?2, \
                 next_attempt_at = CASE WHEN next_attempt_at > ?3 THEN next_attempt_at ELSE ?3 END WHERE id = ?1",
                params![id, used, ts(next(used))],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn recover_tx(
        tx: &Db,
        id: &str,
        started: Option<String>,
        why: &str,
        now_s: &str,
    ) -> Result<bool> {
        if !Self::apply(tx, id, Transition::Recover, now_s)? {
            return Ok(false);
        }
        tx.execute(
            "UPDATE attempts SET finished_at = ?2, outcome = ?3, message = ?4 \
             WHERE post_id = ?1 AND finished_at IS NULL",
            params![id, now_s, AttemptOutcome::Interrupted.as_str(), why],
        )?;
        // Not before the time it was claimed for: a post claimed ahead of its due time
        // (see `scheduler::AHEAD`; its try starts then) whose daemon died before then is
        // still not due. Any other is due now (even if the clock was set back since).
        tx.execute(
            "UPDATE posts SET in_doubt_since = COALESCE(in_doubt_since, ?2, updated_at), \
             next_attempt_at = CASE WHEN next_attempt_at > ?3 AND next_attempt_at = ?2 \
             THEN next_attempt_at ELSE ?3 END WHERE id = ?1",
            params![id, started, now_s],
        )?;
        Ok(true)
    }

    // ------------------------------------------------------------ pacing

    /// When the account last published, and how many it published since `since`.
    pub fn account_activity(
        &self,
        account: &str,
        since: DateTime<Utc>,
    ) -> Result<(Option<DateTime<Utc>>, u32)> {
        // Only published posts have a published_at: both are ranges of the
        // (account, published_at) index, however many posts the account has.
        let last: Option<String> = self
            .db
            .prepare_cached("SELECT MAX(published_at) FROM posts WHERE account = ?1")?
            .query_row([account], |r| r.get(0))?;
        let count: u32 = self
            .db
            .prepare_cached("SELECT COUNT(*) FROM posts WHERE account = ?1 AND published_at >= ?2")?
            .query_row(params![account, ts(since)], |r| r.get(0))?;
        Ok((opt_ts("posts", "published_at", last)?, count))
    }

    /// What the scheduler needs for one look, in one call: due posts (earliest first, at
    /// most `limit`), then those due by `horizon` that may be claimed ahead (see
    /// [`Store::due_ahead`], at most `ahead`), the tokens (for holds), and the pacing activity of their
    /// accounts since `since`.
    pub fn dispatch_view(
        &self,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
        (limit, ahead): (usize, usize),
        since: DateTime<Utc>,
    ) -> Result<DispatchView> {
        let mut due = self.due(now, limit)?;
        if ahead > 0 && horizon > now {
            due.extend(self.due_ahead(now, horizon, ahead)?);
        }
        let tokens = if due.is_empty() {
            Vec::new()
        } else {
            self.tokens()?
        };
        let mut activity = std::collections::HashMap::new();
        if self.db.dialect() == db::Dialect::Postgres && !due.is_empty() {
            let mut accounts: Vec<&str> = due.iter().map(|p| p.account.as_str()).collect();
            accounts.sort_unstable();
            accounts.dedup();
            for (account, last, n) in pg_batch::activity(&self.db, &accounts, &ts(since))? {
                activity.insert(account, (opt_ts("posts", "published_at", last)?, n));
            }
        }
        for p in &due {
            if !activity.contains_key(&p.account) {
                activity.insert(p.account.clone(), self.account_activity(&p.account, since)?);
            }
        }
        let mut in_flight = std::collections::HashMap::new();
        if self.db.dialect() == db::Dialect::Postgres && !due.is_empty() {
            let mut stmt = self.db.prepare_cached(
                "SELECT account, COUNT(*) FROM posts WHERE state = 'publishing' GROUP BY account",
            )?;
            for row in stmt.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))? {
                let (account, n): (String, usize) = row?;
                in_flight.insert(account, n);
            }
        }
        let throttled = if due.is_empty() {
            Default::default()
        } else {
            self.throttled()?
        };
        Ok(DispatchView {
            due,
            tokens,
            activity,
            in_flight,
            media: std::collections::HashMap::new(),
            throttled,
        })
    }

    /// Accounts with posts waiting after a 429 (`hold_reason = 'rate_limited'`, their own
    /// tries refused), each with the latest of those posts' next tries. LinkedIn's limits are
    /// per member, so one post's 429 speaks for every post of that member: the scheduler
    /// holds them until then, rather than let each spend its own calls on the same refusal.
    fn throttled(&self) -> Result<std::collections::HashMap<String, DateTime<Utc>>> {
        // The partial index holds only the few that wait after a 429.
        let hint = self.indexed_by("posts_rate_limited");
        let sql = format!(
            "SELECT account, MAX(next_attempt_at) FROM posts{hint} \
             WHERE state = 'scheduled' AND rate_limited > 0 AND hold_reason = 'rate_limited' \
             GROUP BY account"
        );
        let mut stmt = self.db.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (account, at) = row?;
            out.insert(account, parse_ts("posts", "next_attempt_at", &at)?);
        }
        Ok(out)
    }
}

/// The file another process touches after changing the schedule (`lipost retry`, `cancel`,
/// `mark-published`), so a sleeping daemon looks again: `DATABASE-wake`.
pub fn wake_file(database: &Path) -> std::path::PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-wake");
    std::path::PathBuf::from(name)
}

/// Opens the wake file, created mode 0600 if it is missing.
fn open_wake_file(database: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(wake_file(database))
}

/// Creates the wake file if it is missing, without touching it otherwise.
pub fn create_wake_file(database: &Path) -> std::io::Result<()> {
    open_wake_file(database).map(drop)
}

/// Tells a running daemon that the schedule changed. Best effort: without it the daemon still
/// sees the change at its next wake-up.
pub fn poke(database: &Path) -> std::io::Result<()> {
    let mut f = open_wake_file(database)?;
    std::io::Write::write_all(&mut f, b"")?;
    f.set_modified(std::time::SystemTime::now())
}

/// The store shared by the daemon's tasks; every call runs on the blocking pool.
#[derive(Clone)]
pub struct Handle {
    store: Arc<Mutex<Store>>,
}

impl Handle {
    pub fn new(store: Store) -> Handle {
        Handle {
            store: Arc::new(Mutex::new(store)),
        }
    }

    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_time_is_a_corrupt_error_naming_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .db
            .execute(
                "INSERT INTO posts (id, account, state, due_at, next_attempt_at, commentary, text, visibility, created_at, updated_at) \
                 VALUES ('p', 'me', 'scheduled', '2030-01-01T00:00:00.000Z', 'soon', 'x', 'x', 'PUBLIC', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                params![],
            )
            .unwrap();
        match store.get("p") {
            Err(StoreError::Corrupt {
                table: "posts",
                column: "next_attempt_at",
                value,
                ..
            }) => assert_eq!(value, "soon"),
            other => panic!("{:?}", other.map(|p| p.next_attempt_at)),
        }
    }

    #[test]
    fn an_unknown_state_is_a_corrupt_error_not_dead() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        // The CHECK constraint keeps this out of a healthy database; a newer binary's state
        // or a hand edit with checks off is how one gets in.
        store
            .db
            .execute_batch(
                "PRAGMA ignore_check_constraints = ON; \
                 INSERT INTO posts (id, account, state, due_at, next_attempt_at, commentary, text, visibility, created_at, updated_at) \
                 VALUES ('p', 'me', 'paused', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', 'x', 'x', 'PUBLIC', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'); \
                 PRAGMA ignore_check_constraints = OFF;",
            )
            .unwrap();
        let err = store.get("p").map(|p| p.state).unwrap_err();
        match &err {
            StoreError::Corrupt {
                table: "posts",
                column: "state",
                value,
                ..
            } => assert_eq!(value, "paused"),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("is not a post state"), "{err}");
    }
}
