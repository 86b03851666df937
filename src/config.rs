//! Configuration: `config.toml` → a validated [`Config`].
//!
//! Two phases, the ripgrep way: `RawConfig` only mirrors the TOML (serde, unknown keys
//! refused with their line), [`Config`] is what the rest of the program uses: paths resolved
//! against the config file's folder, time zone parsed, accounts cross-checked.
//! This module reads files and the environment; it never opens the database or the network.

mod media;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

pub use media::Media;

/// The LinkedIn commentary limit, in characters.
pub const COMMENTARY_LIMIT: usize = 3000;
/// The API LinkedIn serves in live mode.
pub const LINKEDIN_API: &str = "https://api.linkedin.com";
/// LinkedIn's OAuth base in live mode.
pub const LINKEDIN_OAUTH: &str = "https://www.linkedin.com/oauth/v2";
/// How long LinkedIn refuses the same commentary again for the same author (a 422
/// duplicate). Reported as about 10 minutes; `retry.resend_window` must stay within it, or a
/// resend after an unanswered try could make a second post.
pub const LINKEDIN_DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The life of a LinkedIn access token (`expires_in` = 5184000 s).
pub const ACCESS_TOKEN_LIFE: Duration = Duration::from_secs(60 * 24 * 3600);
/// The longest any duration key may be, so no time arithmetic on it can overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no config file: looked for ./config.toml and /etc/lipost/config.toml; pass --config PATH or set LIPOST_CONFIG")]
    NotFound,
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Where the config file is: `--config` / `LIPOST_CONFIG`, else `./config.toml`, else
/// `/etc/lipost/config.toml`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    for candidate in ["config.toml", "/etc/lipost/config.toml"] {
        let p = PathBuf::from(candidate);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(ConfigError::NotFound)
}

/// The running config, replaceable on reload (SIGHUP). Holders call [`Live::get`] each time
/// they need it, so a reload takes effect at their next step.
#[derive(Clone)]
pub struct Live(tokio::sync::watch::Receiver<std::sync::Arc<Config>>);

impl Live {
    pub fn new(config: Config) -> (tokio::sync::watch::Sender<std::sync::Arc<Config>>, Live) {
        let (tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(config));
        (tx, Live(rx))
    }

    pub fn get(&self) -> std::sync::Arc<Config> {
        self.0.borrow().clone()
    }
}

impl Config {
    /// `new`, with what cannot change without a restart (paths, the API, the watcher mode)
    /// taken from `self`; the names of the keys that differed.
    pub fn reloaded(&self, mut new: Config) -> (Config, Vec<&'static str>) {
        let mut kept = Vec::new();
        if new.queue_dir != self.queue_dir {
            kept.push("queue_dir");
        }
        if new.database != self.database {
            kept.push("database");
        }
        let (a, b) = (&new.linkedin, &self.linkedin);
        if a.mode != b.mode
            || a.api_base_url != b.api_base_url
            || a.oauth_base_url != b.oauth_base_url
            || a.request_timeout != b.request_timeout
        {
            kept.push("linkedin.mode/api_base_url/oauth_base_url/request_timeout");
        }
        if new.watcher.poll != self.watcher.poll
            || new.watcher.poll_interval != self.watcher.poll_interval
        {
            kept.push("watcher.poll/poll_interval");
        }
        if new.publisher.max_concurrent != self.publisher.max_concurrent {
            kept.push("publisher.max_concurrent");
        }
        if new.metrics != self.metrics {
            kept.push("metrics.listen");
        }
        new.metrics = self.metrics.clone();
        new.queue_dir = self.queue_dir.clone();
        new.database = self.database.clone();
        new.linkedin.mode = self.linkedin.mode;
        new.linkedin.api_base_url = self.linkedin.api_base_url.clone();
        new.linkedin.oauth_base_url = self.linkedin.oauth_base_url.clone();
        new.linkedin.request_timeout = self.linkedin.request_timeout;
        new.watcher.poll = self.watcher.poll;
        new.watcher.poll_interval = self.watcher.poll_interval;
        new.publisher.max_concurrent = self.publisher.max_concurrent;
        (new, kept)
    }
}

/// `node_id`: LIPOST_NODE_ID wins, then the config key, then the host name.
fn node_id(configured: Option<&str>) -> Result<String, String> {
    let id = std::env::var("LIPOST_NODE_ID")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| configured.map(str::to_string))
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "lipost".to_string())
        });
    let id = id.trim().to_string();
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "node_id {id:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(id)
}

/// The node's own file with PostgreSQL, in `data_dir` (see [`Config::database`]).
const NODE_FILE: &str = "lipost.node";

impl Config {
    /// Where this node keeps its local files: the media store, the wake file, the lock. The
    /// SQLite file's folder, or `data_dir` with PostgreSQL.
    pub fn data_dir(&self) -> &Path {
        self.database.parent().unwrap_or_else(|| Path::new("."))
    }
}

/// `database`, `LIPOST_DATABASE_URL` or `database_url_file`, and `data_dir`: the local file
/// (see [`Config::database`]) and, with PostgreSQL, its URL.
fn where_the_schedule_is(
    database: Option<&str>,
    url_file: Option<&str>,
    data_dir: Option<&str>,
    base: &Path,
) -> Result<(PathBuf, Option<crate::secret::Secret>), String> {
    let is_url = |s: &str| s.starts_with("postgres://") || s.starts_with("postgresql://");
    let from_env = std::env::var("LIPOST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let url = if let Some(u) = from_env {
        let u = u.trim().to_string();
        if !is_url(&u) {
            return Err("LIPOST_DATABASE_URL must start with postgres:// or postgresql://".into());
        }
        Some(u)
    } else if let Some(f) = url_file.filter(|f| !f.is_empty()) {
        let path = crate::secret::expand_credentials(&base.join(f));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("database_url_file {}: {e}", path.display()))?;
        let u = text.trim().to_string();
        if !is_url(&u) {
            return Err(format!(
                "database_url_file {} must hold one URL starting with postgres:// or postgresql://",
                path.display()
            ));
        }
        Some(u)
    } else {
        database.filter(|d| is_url(d)).map(str::to_string)
    };
    match url {
        Some(u) => {
            let dir = base.join(data_dir.filter(|d| !d.is_empty()).unwrap_or("data"));
            Ok((dir.join(NODE_FILE), Some(crate::secret::Secret::new(u))))
        }
        None => {
            if data_dir.is_some() {
                return Err("data_dir is for PostgreSQL (database = \"postgresql://...\"); with SQLite, lipost's files are beside the database file".into());
            }
            match database.filter(|d| !d.is_empty()) {
                Some(d) => Ok((base.join(d), None)),
                None => {
                    Err("set `database`: a SQLite file (\"lipost.db\") or a PostgreSQL URL".into())
                }
            }
        }
    }
}

// ---------------------------------------------------------------- raw (TOML mirror)

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    queue_dir: String,
    database: Option<String>,
    database_url_file: Option<String>,
    data_dir: Option<String>,
    node_id: Option<String>,
    #[serde(default = "default_tz")]
    timezone: String,
    default_account: Option<String>,
    linkedin: RawLinkedIn,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    watcher: RawWatcher,
    #[serde(default)]
    publisher: RawPublisher,
    #[serde(default)]
    accounts: BTreeMap<String, RawAccount>,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    media: media::RawMedia,
}

fn default_tz() -> String {
    "UTC".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinkedIn {
    mode: Mode,
    api_base_url: Option<String>,
    oauth_base_url: Option<String>,
    version: String,
    client_id: Option<String>,
    client_secret_file: Option<String>,
    redirect_uri: Option<String>,
    #[serde(default = "d30s", deserialize_with = "duration")]
    request_timeout: Duration,
    #[serde(default = "d7d", deserialize_with = "duration")]
    refresh_before: Duration,
    #[serde(default)]
    allow_unsafe_endpoint: bool,
}

fn d7d() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn d30s() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRetry {
    #[serde(deserialize_with = "duration")]
    base_delay: Duration,
    #[serde(deserialize_with = "duration")]
    max_delay: Duration,
    max_attempts: u32,
    #[serde(deserialize_with = "duration")]
    max_lateness: Duration,
    #[serde(deserialize_with = "duration")]
    resend_window: Duration,
}

impl Default for RawRetry {
    fn default() -> Self {
        let r = Retry::default();
        RawRetry {
            base_delay: r.base_delay,
            max_delay: r.max_delay,
            max_attempts: r.max_attempts,
            max_lateness: r.max_lateness,
            resend_window: r.resend_window,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWatcher {
    #[serde(deserialize_with = "duration")]
    settle_time: Duration,
    poll: bool,
    #[serde(deserialize_with = "duration")]
    poll_interval: Duration,
    extensions: Vec<String>,
    #[serde(deserialize_with = "byte_size")]
    max_draft_size: u64,
    #[serde(deserialize_with = "duration")]
    incomplete_wait: Duration,
}

impl Default for RawWatcher {
    fn default() -> Self {
        RawWatcher {
            settle_time: Duration::from_secs(2),
            poll: false,
            poll_interval: Duration::from_secs(2),
            extensions: ["md", "txt", "markdown"].map(String::from).to_vec(),
            max_draft_size: 64 * 1024,
            incomplete_wait: Duration::from_secs(60),
        }
    }
}

/// The largest `watcher.max_draft_size`: a scan reads a batch of drafts at once, so the cap
/// bounds the daemon's memory too.
pub const MAX_DRAFT_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

/// A byte count: an integer, or a string such as "65536", "64KiB", "1 MiB".
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Int(i64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Int(n) => u64::try_from(n).map_err(|_| {
            serde::de::Error::custom(format!("invalid size {n}: must not be negative"))
        }),
        Size::Text(s) => parse_byte_size(&s).map_err(serde::de::Error::custom),
    }
}

/// "65536", "512B", "64KiB", "1 MiB" (binary units; KB/MB are refused as ambiguous).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => {
            return Err(format!(
                "invalid size {s:?}: write a byte count like 65536, or \"64KiB\" or \"1MiB\""
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| {
            format!("invalid size {s:?}: write a byte count like 65536, or \"64KiB\" or \"1MiB\"")
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPublisher {
    max_concurrent: usize,
    #[serde(deserialize_with = "duration")]
    shutdown_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    claim_lease: Duration,
}

impl Default for RawPublisher {
    fn default() -> Self {
        RawPublisher {
            max_concurrent: 8,
            shutdown_timeout: Duration::from_secs(20),
            claim_lease: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNotify {
    command: Option<Vec<String>>,
    webhook: Option<String>,
    events: Option<Vec<String>>,
    #[serde(deserialize_with = "duration")]
    held_longer_than: Duration,
    #[serde(deserialize_with = "duration")]
    backoff: Duration,
    #[serde(deserialize_with = "duration")]
    timeout: Duration,
}

impl Default for RawNotify {
    fn default() -> Self {
        RawNotify {
            command: None,
            webhook: None,
            events: None,
            held_longer_than: 2 * HOUR,
            backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: Option<String>,
    allow_remote: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    kind: RawKind,
    organization: Option<String>,
    via: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    min_spacing: Option<Duration>,
    daily_cap: Option<u32>,
    #[serde(default)]
    slots: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Member,
    Organization,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// "30s", "90s", "2h", "1h 30m": humantime's grammar.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); write it like \"30s\", \"5m\", \"2h\""))
}

// ---------------------------------------------------------------- validated

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Talk to the built-in emulator only; nothing can reach LinkedIn.
    Sandbox,
    /// Talk to LinkedIn.
    Live,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKind {
    Member,
    /// A company page; `via` names the member account whose token posts for it.
    Organization {
        organization: String,
        via: String,
    },
}

#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub kind: AccountKind,
    /// Minimum time between two posts of this account.
    pub min_spacing: Duration,
    /// At most this many posts per UTC day.
    pub daily_cap: u32,
    /// Posting slots (cron, in the config's time zone).
    pub slots: Vec<crate::slots::Slot>,
}

impl Account {
    /// The member account whose token this account posts with.
    pub fn token_account(&self) -> &str {
        match &self.kind {
            AccountKind::Member => &self.name,
            AccountKind::Organization { via, .. } => via,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LinkedIn {
    pub mode: Mode,
    /// `None` in sandbox mode: start the built-in sandbox in-process.
    pub api_base_url: Option<String>,
    pub oauth_base_url: Option<String>,
    pub version: String,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub redirect_uri: Option<String>,
    pub request_timeout: Duration,
    /// Refresh an access token once it is this close to expiring.
    pub refresh_before: Duration,
    /// Live mode only: the operator allowed an API or OAuth base that is not LinkedIn's over
    /// https (a local emulator). Real tokens and the client secret go there.
    pub allow_unsafe_endpoint: bool,
}

impl LinkedIn {
    /// The warning to log at every start when live mode talks to an address that is not
    /// LinkedIn's (allowed by `linkedin.allow_unsafe_endpoint`).
    pub fn unsafe_endpoint_warning(&self) -> Option<String> {
        if self.mode != Mode::Live {
            return None;
        }
        let odd: Vec<&str> = [&self.api_base_url, &self.oauth_base_url]
            .into_iter()
            .flatten()
            .filter(|u| !is_linkedin_endpoint(u))
            .map(String::as_str)
            .collect();
        if odd.is_empty() {
            return None;
        }
        Some(format!(
            "linkedin.allow_unsafe_endpoint = true: live mode sends real access tokens and the client secret to {}, which is not LinkedIn over https",
            odd.join(" and ")
        ))
    }
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
    pub max_lateness: Duration,
    pub resend_window: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            max_attempts: 8,
            max_lateness: Duration::from_secs(24 * 3600),
            resend_window: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Watcher {
    pub settle_time: Duration,
    pub poll: bool,
    pub poll_interval: Duration,
    /// File name extensions taken as drafts, lower case, without the dot.
    pub extensions: Vec<String>,
    /// Larger files are rejected unread.
    pub max_draft_size: u64,
    /// How long a file written in place may still be in the middle of being written in
    /// steps (`>` then `>>`): a draft that ends inside its front matter or has no text yet
    /// waits this long for the rest, and a file without front matter that appears this soon
    /// under the name of a draft just taken is taken to be the rest of that draft.
    pub incomplete_wait: Duration,
}

#[derive(Debug, Clone)]
pub struct Publisher {
    pub max_concurrent: usize,
    pub shutdown_timeout: Duration,
    /// With PostgreSQL: how long a node's claim on a post holds without a heartbeat; after
    /// that another node resolves the post as in doubt.
    pub claim_lease: Duration,
}

/// `[notify]`: where failures are reported (see `crate::notify`).
#[derive(Debug, Clone)]
pub struct Notifications {
    /// argv of a program run per event, the JSON on stdin (empty: none).
    pub command: Vec<String>,
    /// https (or http on loopback) URL the JSON is POSTed to. Often holds a token: never
    /// printed whole.
    pub webhook: Option<url::Url>,
    pub events: Vec<crate::notify::Kind>,
    /// When a held post is reported (`post_held`).
    pub held_longer_than: Duration,
    /// The first retry's wait; doubled per failed try, at most an hour.
    pub backoff: Duration,
    /// How long a command may run, or a webhook take to answer.
    pub timeout: Duration,
}

impl Notifications {
    /// The configured sinks, command first.
    pub fn sinks(&self) -> Vec<crate::notify::Sink> {
        let mut v = Vec::new();
        if !self.command.is_empty() {
            v.push(crate::notify::Sink::Command);
        }
        if self.webhook.is_some() {
            v.push(crate::notify::Sink::Webhook);
        }
        v
    }
}

/// `[metrics]`: the Prometheus endpoint (see `crate::metrics`); absent without `listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub queue_dir: PathBuf,
    /// The SQLite file. With PostgreSQL, this node's own file in `data_dir` that the
    /// single-instance lock and the wake file hang on (the media store is beside it).
    pub database: PathBuf,
    /// A PostgreSQL connection URL: the schedule is there, not in `database`.
    pub database_url: Option<crate::secret::Secret>,
    /// This daemon's name among the nodes sharing a PostgreSQL database: `node_id`, or
    /// LIPOST_NODE_ID, or the host name.
    pub node_id: String,
    pub timezone: Tz,
    pub default_account: Option<String>,
    pub linkedin: LinkedIn,
    pub retry: Retry,
    pub watcher: Watcher,
    pub publisher: Publisher,
    pub accounts: BTreeMap<String, Account>,
    pub notify: Notifications,
    pub metrics: Option<Metrics>,
    pub media: Media,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses config text as if read from `path` (relative paths resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        validate(raw, path, &base)
    }

    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// The accounts that post with `member`'s token: the member and the pages it manages.
    pub fn served_by(&self, member: &str) -> Vec<String> {
        self.accounts
            .values()
            .filter(|a| a.token_account() == member)
            .map(|a| a.name.clone())
            .collect()
    }

    pub fn accepted_dir(&self) -> PathBuf {
        self.queue_dir.join("accepted")
    }

    pub fn rejected_dir(&self) -> PathBuf {
        self.queue_dir.join("rejected")
    }
}

/// toml's message with the line and column in the file, so "unknown field `foo`" says where.
pub fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!("line {line}, column {col}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `watcher.extensions`, lower-cased; each a bare extension such as "md".
fn validate_extensions(raw: &[String]) -> Result<Vec<String>, String> {
    if raw.is_empty() {
        return Err("watcher.extensions is empty: no file would ever be taken; list some, e.g. [\"md\", \"txt\"]".into());
    }
    raw.iter()
        .map(|e| {
            let ok = !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if ok && crate::watcher::is_ignored(&format!("draft.{e}")) {
                Err(format!("watcher.extensions: {e:?} is the extension of temporary files (an editor's, a download's), which lipost always leaves alone: no such file would be taken"))
            } else if ok {
                Ok(e.to_ascii_lowercase())
            } else {
                Err(format!("watcher.extensions: {e:?} is not a file name extension; write it without the dot, e.g. \"md\""))
            }
        })
        .collect()
}

fn validate(raw: RawConfig, path: &Path, base: &Path) -> Result<Config, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let timezone: Tz = raw.timezone.parse().map_err(|_| {
        invalid(format!(
            "timezone {:?} is not an IANA time zone name (e.g. \"Europe/Berlin\", \"UTC\")",
            raw.timezone
        ))
    })?;
    let mut accounts = BTreeMap::new();
    for (name, a) in &raw.accounts {
        accounts.insert(
            name.clone(),
            validate_account(name, a, &raw.accounts).map_err(invalid)?,
        );
    }
    if let Some(d) = &raw.default_account {
        if !accounts.contains_key(d) {
            return Err(invalid(format!(
                "default_account = {d:?} names no [accounts.{d}] table"
            )));
        }
    }
    let linkedin = validate_linkedin(raw.linkedin, base).map_err(invalid)?;
    validate_durations(&raw.retry, &raw.watcher, &raw.publisher).map_err(invalid)?;
    let notify = validate_notify(raw.notify).map_err(invalid)?;
    let metrics = validate_metrics(raw.metrics).map_err(invalid)?;
    let media = media::validate(raw.media).map_err(invalid)?;
    if raw.retry.max_attempts == 0 {
        return Err(invalid("retry.max_attempts must be at least 1".into()));
    }
    let (database, database_url) = where_the_schedule_is(
        raw.database.as_deref(),
        raw.database_url_file.as_deref(),
        raw.data_dir.as_deref(),
        base,
    )
    .map_err(invalid)?;
    let extensions = validate_extensions(&raw.watcher.extensions).map_err(&invalid)?;
    if raw.watcher.max_draft_size == 0 || raw.watcher.max_draft_size > MAX_DRAFT_SIZE_LIMIT {
        return Err(invalid(format!(
            "watcher.max_draft_size = {} bytes: use 1 byte to 16MiB (the default is \"64KiB\")",
            raw.watcher.max_draft_size
        )));
    }
    if raw.publisher.max_concurrent == 0 {
        return Err(invalid(
            "publisher.max_concurrent must be at least 1".into(),
        ));
    }
    Ok(Config {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        queue_dir: base.join(&raw.queue_dir),
        database,
        database_url,
        node_id: node_id(raw.node_id.as_deref()).map_err(invalid)?,
        timezone,
        default_account: raw.default_account,
        linkedin,
        retry: Retry {
            base_delay: raw.retry.base_delay,
            max_delay: raw.retry.max_delay,
            max_attempts: raw.retry.max_attempts,
            max_lateness: raw.retry.max_lateness,
            resend_window: raw.retry.resend_window,
        },
        watcher: Watcher {
            settle_time: raw.watcher.settle_time,
            poll: raw.watcher.poll,
            poll_interval: raw.watcher.poll_interval,
            extensions,
            max_draft_size: raw.watcher.max_draft_size,
            incomplete_wait: raw.watcher.incomplete_wait,
        },
        publisher: Publisher {
            max_concurrent: raw.publisher.max_concurrent,
            shutdown_timeout: raw.publisher.shutdown_timeout,
            claim_lease: raw.publisher.claim_lease,
        },
        accounts,
        notify,
        metrics,
        media,
    })
}

fn validate_metrics(raw: RawMetrics) -> Result<Option<Metrics>, String> {
    let Some(listen) = raw.listen else {
        return Ok(None);
    };
    let addr: std::net::SocketAddr = listen.trim().parse().map_err(|_| {
        format!("metrics.listen = {listen:?} is not an address and port: write it like \"127.0.0.1:9464\" or \"[::1]:9464\"")
    })?;
    if !addr.ip().is_loopback() && !raw.allow_remote {
        return Err(format!(
            "metrics.listen = {listen:?} is not a loopback address: the metrics name your accounts and show your schedule to whoever can reach the port. Use \"127.0.0.1:9464\", or set metrics.allow_remote = true to serve them to the network"
        ));
    }
    Ok(Some(Metrics { listen: addr }))
}

fn validate_notify(raw: RawNotify) -> Result<Notifications, String> {
    use crate::notify::Kind;
    let command = match raw.command {
        Some(argv) if argv.first().is_none_or(|p| p.trim().is_empty()) => return Err(
            "notify.command must name a program: command = [\"/path/to/program\", \"arg\", ...]"
                .into(),
        ),
        Some(argv) => argv,
        None => Vec::new(),
    };
    let webhook = match raw.webhook {
        None => None,
        // The URL may hold a token: the message does not repeat it.
        Some(w) => {
            let u =
                url::Url::parse(&w).map_err(|e| format!("notify.webhook is not a URL ({e})"))?;
            let ok = u.scheme() == "https" || (u.scheme() == "http" && is_loopback_url(&u));
            if !ok {
                return Err("notify.webhook must be an https URL (http only on loopback: 127.0.0.1, ::1, localhost), so an event, which may name your posts and accounts, is not sent in clear".into());
            }
            Some(u)
        }
    };
    let events = match raw.events {
        None => Kind::DEFAULT.to_vec(),
        Some(names) => {
            let mut v = Vec::new();
            for n in names {
                let k = Kind::parse(&n)
                    .filter(|k| *k != Kind::Test)
                    .ok_or_else(|| {
                        let all: Vec<_> = Kind::ALL
                            .iter()
                            .filter(|k| **k != Kind::Test)
                            .map(|k| k.as_str())
                            .collect();
                        format!(
                            "notify.events: unknown event {n:?}; known: {}",
                            all.join(", ")
                        )
                    })?;
                if !v.contains(&k) {
                    v.push(k);
                }
            }
            v
        }
    };
    at_most(
        "notify.held_longer_than",
        raw.held_longer_than,
        30 * DAY,
        "a post held that long is no longer the post its author scheduled",
    )?;
    at_most(
        "notify.backoff",
        raw.backoff,
        HOUR,
        "the wait doubles per failed try",
    )?;
    at_most(
        "notify.timeout",
        raw.timeout,
        10 * 60 * Duration::from_secs(1),
        "a hook that slow holds up the next event",
    )?;
    if raw.timeout.is_zero() || raw.backoff.is_zero() {
        return Err("notify.timeout and notify.backoff must be longer than 0s".into());
    }
    Ok(Notifications {
        command,
        webhook,
        events,
        held_longer_than: raw.held_longer_than,
        backoff: raw.backoff,
        timeout: raw.timeout,
    })
}

/// Refuses a duration longer than `max`, naming the key.
fn at_most(key: &str, d: Duration, max: Duration, why: &str) -> Result<(), String> {
    if d > max {
        return Err(format!(
            "{key} = \"{}\" is too long: at most {} ({why})",
            fmt_dur(d),
            fmt_dur(max)
        ));
    }
    Ok(())
}

/// Every duration key is bounded (humantime reads "1000000y" happily), so adding one to a
/// time can never overflow; some keys have tighter bounds that follow from what they mean.
fn validate_durations(r: &RawRetry, w: &RawWatcher, p: &RawPublisher) -> Result<(), String> {
    let late = "a post that late is no longer the post its author scheduled";
    at_most("retry.base_delay", r.base_delay, 30 * DAY, late)?;
    at_most("retry.max_delay", r.max_delay, 30 * DAY, late)?;
    at_most("retry.max_lateness", r.max_lateness, 30 * DAY, late)?;
    at_most(
        "retry.resend_window",
        r.resend_window,
        LINKEDIN_DUPLICATE_WINDOW,
        "LinkedIn's duplicate check lasts about 10 minutes; a resend after it could post twice",
    )?;
    let quick = "a longer wait looks like a hang";
    at_most("watcher.settle_time", w.settle_time, HOUR, quick)?;
    at_most("watcher.poll_interval", w.poll_interval, HOUR, quick)?;
    at_most("watcher.incomplete_wait", w.incomplete_wait, HOUR, quick)?;
    at_most(
        "publisher.shutdown_timeout",
        p.shutdown_timeout,
        HOUR,
        quick,
    )?;
    at_most(
        "publisher.claim_lease",
        p.claim_lease,
        HOUR,
        "a node that dies would keep its posts that long",
    )?;
    if p.claim_lease < Duration::from_secs(2) {
        return Err(format!(
            "publisher.claim_lease = {}: at least 2s (a node renews its leases every third of it)",
            fmt_dur(p.claim_lease)
        ));
    }
    Ok(())
}

fn validate_account(
    name: &str,
    a: &RawAccount,
    all: &BTreeMap<String, RawAccount>,
) -> Result<Account, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "account name {name:?}: use letters, digits, '-', '_' or '.'"
        ));
    }
    let kind = match a.kind {
        RawKind::Member => {
            if a.organization.is_some() || a.via.is_some() {
                return Err(format!(
                    "[accounts.{name}]: kind = \"member\" takes no `organization` or `via`"
                ));
            }
            AccountKind::Member
        }
        RawKind::Organization => {
            let organization = a.organization.clone().ok_or_else(|| {
                format!("[accounts.{name}]: kind = \"organization\" needs organization = \"urn:li:organization:ID\"")
            })?;
            let id = organization
                .strip_prefix("urn:li:organization:")
                .unwrap_or("");
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "[accounts.{name}]: organization = {organization:?} is not of the form \"urn:li:organization:12345\""
                ));
            }
            let via = a.via.clone().ok_or_else(|| {
                format!("[accounts.{name}]: kind = \"organization\" needs via = \"<member account>\" (whose token posts for the page)")
            })?;
            match all.get(&via).map(|v| v.kind) {
                Some(RawKind::Member) => {}
                Some(RawKind::Organization) => {
                    return Err(format!(
                        "[accounts.{name}]: via = {via:?} is an organization; it must name a member account"
                    ))
                }
                None => {
                    return Err(format!(
                        "[accounts.{name}]: via = {via:?} names no [accounts.{via}] table"
                    ))
                }
            }
            AccountKind::Organization { organization, via }
        }
    };
    let slots = a
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            crate::slots::Slot::parse(s)
                .map_err(|e| format!("[accounts.{name}] slots[{i}] = {s:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if a.daily_cap == Some(0) {
        return Err(format!(
            "accounts.{name}.daily_cap = 0 would hold every post of {name:?} for ever; remove the account, or withdraw its posts with `lipost cancel ID`"
        ));
    }
    let min_spacing = a.min_spacing.unwrap_or(Duration::ZERO);
    at_most(
        &format!("accounts.{name}.min_spacing"),
        min_spacing,
        30 * DAY,
        "longer than any sensible pause between two posts",
    )?;
    Ok(Account {
        name: name.to_string(),
        kind,
        min_spacing,
        daily_cap: a.daily_cap.unwrap_or(25),
        slots,
    })
}

fn validate_linkedin(raw: RawLinkedIn, base: &Path) -> Result<LinkedIn, String> {
    let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let api = non_empty(raw.api_base_url).map(|s| s.trim_end_matches('/').to_string());
    let oauth = non_empty(raw.oauth_base_url).map(|s| s.trim_end_matches('/').to_string());
    for (key, url) in [("api_base_url", &api), ("oauth_base_url", &oauth)] {
        let Some(url) = url else { continue };
        let parsed = url::Url::parse(url)
            .map_err(|e| format!("linkedin.{key} = {url:?} is not a URL: {e}"))?;
        if raw.mode == Mode::Sandbox && !is_loopback_url(&parsed) {
            return Err(format!(
                "linkedin.{key} = {url:?}: in sandbox mode only loopback addresses (127.0.0.1, ::1, localhost) are allowed, so nothing can reach LinkedIn; leave it empty to start the built-in sandbox"
            ));
        }
        if raw.mode == Mode::Live && !raw.allow_unsafe_endpoint && !is_linkedin_endpoint(url) {
            return Err(format!(
                "linkedin.{key} = {url:?}: live mode sends real tokens and the client secret, so only LinkedIn over https (api.linkedin.com, www.linkedin.com) is allowed; leave it empty for LinkedIn's, or set linkedin.allow_unsafe_endpoint = true to test a live config against a local emulator"
            ));
        }
    }
    at_most(
        "linkedin.request_timeout",
        raw.request_timeout,
        HOUR,
        "a longer wait looks like a hang",
    )?;
    if raw.refresh_before >= ACCESS_TOKEN_LIFE {
        return Err(format!(
            "linkedin.refresh_before = \"{}\" is not shorter than an access token's life ({}): every token would need a refresh at once, again and again; use e.g. \"7d\"",
            fmt_dur(raw.refresh_before),
            fmt_dur(ACCESS_TOKEN_LIFE)
        ));
    }
    if raw.version.len() != 6 || !raw.version.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "linkedin.version = {:?} must be a LinkedIn-Version month, YYYYMM (e.g. \"202609\")",
            raw.version
        ));
    }
    let (api, oauth) = match raw.mode {
        Mode::Live => (
            Some(api.unwrap_or_else(|| LINKEDIN_API.into())),
            Some(oauth.unwrap_or_else(|| LINKEDIN_OAUTH.into())),
        ),
        Mode::Sandbox => (api, oauth),
    };
    Ok(LinkedIn {
        mode: raw.mode,
        api_base_url: api,
        oauth_base_url: oauth,
        version: raw.version,
        client_id: non_empty(raw.client_id),
        client_secret_file: non_empty(raw.client_secret_file).map(|f| base.join(f)),
        redirect_uri: non_empty(raw.redirect_uri),
        request_timeout: raw.request_timeout,
        refresh_before: raw.refresh_before,
        allow_unsafe_endpoint: raw.allow_unsafe_endpoint,
    })
}

/// Scheme, host and port of `u`, without path, query or user: what may be shown of a URL
/// whose path or query may hold a token (a webhook's, say).
pub fn origin(u: &url::Url) -> String {
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}", u.scheme(), u.host_str().unwrap_or("?"))
}

/// Whether `url` points at this machine: 127.0.0.0/8, `::1` or `localhost`, any port, any
/// scheme. The one loopback check: config, the login listener, `doctor` and the sandbox's
/// redirect check all use it.
pub fn is_loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether `url` is one of LinkedIn's own hosts over https on the default port.
fn is_linkedin_endpoint(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    u.scheme() == "https"
        && u.port().is_none()
        && matches!(u.host_str(), Some("api.linkedin.com" | "www.linkedin.com"))
        && u.username().is_empty()
        && u.password().is_none()
}

/// A duration as a person writes one in config.toml: days, hours, minutes, seconds and
/// milliseconds (`60d`, `1h 30m`, `250ms`). Not humantime's form, which counts months of
/// 30.44 days and shows `60d` as `1month 29days 13h 26m 24s`.
pub fn fmt_dur(d: Duration) -> String {
    const UNITS: [(u128, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    let mut rest = d.as_millis();
    if rest == 0 {
        return match d.is_zero() {
            true => "0s".into(),
            false => format!("{}us", d.as_micros()),
        };
    }
    let mut parts = Vec::new();
    for (size, unit) in UNITS {
        if rest >= size {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    parts.join(" ")
}

/// The resolved config, as `lipost check-config` prints it. Holds no secret: the client
/// secret lives outside config.toml and is only reported as present or not.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.linkedin;
        writeln!(f, "config          {}", self.path.display())?;
        writeln!(f, "queue_dir       {}", self.queue_dir.display())?;
        match &self.database_url {
            None => writeln!(f, "database        {}", self.database.display())?,
            Some(url) => {
                let t = crate::store::Target::Postgres(url.clone());
                writeln!(f, "database        {t}")?;
                writeln!(f, "data_dir        {}", self.data_dir().display())?;
            }
        }
        writeln!(f, "timezone        {}", self.timezone)?;
        writeln!(
            f,
            "default_account {}",
            self.default_account.as_deref().unwrap_or("(none)")
        )?;
        writeln!(f, "[linkedin]")?;
        let mode = match l.mode {
            Mode::Sandbox => "sandbox (nothing reaches LinkedIn)",
            Mode::Live => "live",
        };
        writeln!(f, "  mode            {mode}")?;
        let auto = "(built-in sandbox, started in-process)";
        writeln!(
            f,
            "  api_base_url    {}",
            l.api_base_url.as_deref().unwrap_or(auto)
        )?;
        writeln!(
            f,
            "  oauth_base_url  {}",
            l.oauth_base_url.as_deref().unwrap_or(auto)
        )?;
        writeln!(f, "  version         {}", l.version)?;
        writeln!(
            f,
            "  client_id       {}",
            l.client_id.as_deref().unwrap_or("(not set)")
        )?;
        writeln!(
            f,
            "  client_secret   {}",
            crate::secret::client_secret_source(l)
        )?;
        writeln!(
            f,
            "  redirect_uri    {}",
            l.redirect_uri.as_deref().unwrap_or("(not set)")
        )?;
        writeln!(f, "  request_timeout {}", fmt_dur(l.request_timeout))?;
        writeln!(f, "  refresh_before  {}", fmt_dur(l.refresh_before))?;
        if let Some(w) = l.unsafe_endpoint_warning() {
            writeln!(f, "  WARNING         {w}")?;
        }
        let r = &self.retry;
        writeln!(f, "[retry]")?;
        writeln!(f, "  base_delay      {}", fmt_dur(r.base_delay))?;
        writeln!(f, "  max_delay       {}", fmt_dur(r.max_delay))?;
        writeln!(f, "  max_attempts    {}", r.max_attempts)?;
        writeln!(f, "  max_lateness    {}", fmt_dur(r.max_lateness))?;
        writeln!(f, "  resend_window   {}", fmt_dur(r.resend_window))?;
        writeln!(f, "[watcher]")?;
        writeln!(f, "  settle_time     {}", fmt_dur(self.watcher.settle_time))?;
        writeln!(f, "  poll            {}", self.watcher.poll)?;
        writeln!(
            f,
            "  extensions      {}",
            self.watcher.extensions.join(", ")
        )?;
        writeln!(f, "  max_draft_size  {} bytes", self.watcher.max_draft_size)?;
        writeln!(
            f,
            "  incomplete_wait {}",
            fmt_dur(self.watcher.incomplete_wait)
        )?;
        let m = &self.media;
        writeln!(f, "[media]")?;
        writeln!(f, "  upload_ahead    {}", fmt_dur(m.upload_ahead))?;
        writeln!(f, "  member_grace    {}", fmt_dur(m.member_grace))?;
        writeln!(f, "  poll_interval   {}", fmt_dur(m.poll_interval))?;
        writeln!(
            f,
            "  max bytes       image {}, document {}, video {}",
            m.max_image_bytes, m.max_document_bytes, m.max_video_bytes
        )?;
        writeln!(f, "[publisher]")?;
        writeln!(f, "  max_concurrent  {}", self.publisher.max_concurrent)?;
        writeln!(
            f,
            "  shutdown_timeout {}",
            fmt_dur(self.publisher.shutdown_timeout)
        )?;
        for a in self.accounts.values() {
            writeln!(f, "[accounts.{}]", a.name)?;
            match &a.kind {
                AccountKind::Member => writeln!(f, "  kind            member")?,
                AccountKind::Organization { organization, via } => {
                    writeln!(f, "  kind            organization")?;
                    writeln!(f, "  organization    {organization}")?;
                    writeln!(f, "  via             {via}")?;
                }
            }
            writeln!(f, "  min_spacing     {}", fmt_dur(a.min_spacing))?;
            writeln!(f, "  daily_cap       {}", a.daily_cap)?;
            for s in &a.slots {
                writeln!(f, "  slot            {}", s.pattern())?;
            }
        }
        let n = &self.notify;
        writeln!(f, "[notify]")?;
        if n.command.is_empty() {
            writeln!(f, "  command         (none)")?;
        } else {
            writeln!(f, "  command         {:?}", n.command)?;
        }
        match &n.webhook {
            // Scheme and host only: the path often holds a token.
            Some(u) => writeln!(f, "  webhook         {}/…", origin(u))?,
            None => writeln!(f, "  webhook         (none)")?,
        }
        let events: Vec<_> = n.events.iter().map(|k| k.as_str()).collect();
        writeln!(f, "  events          {}", events.join(", "))?;
        writeln!(f, "  held_longer_than {}", fmt_dur(n.held_longer_than))?;
        writeln!(f, "  backoff         {}", fmt_dur(n.backoff))?;
        writeln!(f, "  timeout         {}", fmt_dur(n.timeout))?;
        writeln!(f, "[metrics]")?;
        match &self.metrics {
            Some(m) => writeln!(f, "  listen          http://{}/metrics", m.listen)?,
            None => writeln!(f, "  listen          (off)")?,
        }
        Ok(())
    }
}

/// A small valid config for unit tests (Europe/Berlin; member `me`, page `acme` via `me`).
#[cfg(test)]
pub(crate) const TEST_CONFIG: &str = r#"
queue_dir = "queue"
database = "lipost.db"
timezone = "Europe/Berlin"
default_account = "me"
[linkedin]
mode = "sandbox"
version = "202609"
[accounts.me]
kind = "member"
[accounts.acme]
kind = "organization"
organization = "urn:li:organization:42"
via = "me"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = TEST_CONFIG;

    #[test]
    fn durations_are_shown_as_written_and_read_back_the_same() {
        for (d, shown) in [
            (Duration::from_secs(60 * 86_400), "60d"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_secs(5_400), "1h 30m"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(61_500), "1m 1s 500ms"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(fmt_dur(d), shown);
            assert_eq!(humantime::parse_duration(shown).unwrap(), d);
        }
    }

    #[test]
    fn resolves_paths_against_the_config_folder() {
        let c = Config::parse(GOOD, Path::new("/srv/lipost/config.toml")).unwrap();
        assert_eq!(c.queue_dir, Path::new("/srv/lipost/queue"));
        assert_eq!(c.database, Path::new("/srv/lipost/lipost.db"));
        assert_eq!(c.timezone, chrono_tz::Europe::Berlin);
        assert!(c.linkedin.api_base_url.is_none());
        assert_eq!(c.account("acme").unwrap().token_account(), "me");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = GOOD.replace("[accounts.me]\n", "[accounts.me]\ncolour = \"blue\"\n");
        let e = Config::parse(&text, Path::new("/x/config.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        assert!(e.contains("line 10, column 1"), "{e}");
    }

    #[test]
    fn sandbox_mode_refuses_a_non_loopback_url() {
        let text = GOOD.replace(
            "mode = \"sandbox\"",
            "mode = \"sandbox\"\napi_base_url = \"https://api.linkedin.com\"",
        );
        let e = Config::parse(&text, Path::new("/x/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn organization_via_must_be_a_member() {
        let text = GOOD.replace("via = \"me\"", "via = \"nobody\"");
        let e = Config::parse(&text, Path::new("/x/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nobody"), "{e}");
    }

    fn refusal(text: &str) -> String {
        Config::parse(text, Path::new("/x/c.toml"))
            .unwrap_err()
            .to_string()
    }

    const LIVE: &str = "mode = \"live\"";

    #[test]
    fn live_mode_refuses_an_endpoint_that_is_not_linkedin_over_https() {
        for (key, url) in [
            ("api_base_url", "http://api.linkedin.com"),
            ("api_base_url", "https://api.linkedin.com.evil.com"),
            ("api_base_url", "https://api.linkedin.com:8443"),
            ("api_base_url", "http://127.0.0.1:8099"),
            ("oauth_base_url", "http://www.linkedin.com/oauth/v2"),
        ] {
            let text = GOOD.replace("mode = \"sandbox\"", &format!("{LIVE}\n{key} = \"{url}\""));
            let e = refusal(&text);
            assert!(
                e.contains(&format!("linkedin.{key}")) && e.contains("allow_unsafe_endpoint"),
                "{url}: {e}"
            );
        }
        let c = Config::parse(&GOOD.replace(LIVE_FROM, LIVE), Path::new("/x/c.toml")).unwrap();
        assert_eq!(c.linkedin.api_base_url.as_deref(), Some(LINKEDIN_API));
        assert!(c.linkedin.unsafe_endpoint_warning().is_none());
        let c = Config::parse(
            &GOOD.replace(
                LIVE_FROM,
                &format!("{LIVE}\napi_base_url = \"http://127.0.0.1:8099\"\nallow_unsafe_endpoint = true"),
            ),
            Path::new("/x/c.toml"),
        )
        .unwrap();
        let w = c.linkedin.unsafe_endpoint_warning().unwrap();
        assert!(
            w.contains("http://127.0.0.1:8099") && w.contains("client secret"),
            "{w}"
        );
        assert!(c.to_string().contains(&w));
    }

    const LIVE_FROM: &str = "mode = \"sandbox\"";

    #[test]
    fn resend_window_must_stay_inside_linkedins_duplicate_window() {
        let e = refusal(&format!("{GOOD}\n[retry]\nresend_window = \"11m\"\n"));
        assert!(
            e.contains("retry.resend_window") && e.contains("10m"),
            "{e}"
        );
        let ok = format!("{GOOD}\n[retry]\nresend_window = \"10m\"\n");
        assert!(Config::parse(&ok, Path::new("/x/c.toml")).is_ok());
        assert!(Retry::default().resend_window < LINKEDIN_DUPLICATE_WINDOW);
    }

    #[test]
    fn a_daily_cap_of_zero_is_refused() {
        let text = GOOD.replace(
            "[accounts.me]\nkind = \"member\"",
            "[accounts.me]\nkind = \"member\"\ndaily_cap = 0",
        );
        let e = refusal(&text);
        assert!(
            e.contains("accounts.me.daily_cap") && e.contains("lipost cancel"),
            "{e}"
        );
    }

    #[test]
    fn refresh_before_must_be_shorter_than_a_token_life() {
        let text = GOOD.replace("version = ", "refresh_before = \"60d\"\nversion = ");
        let e = refusal(&text);
        assert!(e.contains("linkedin.refresh_before"), "{e}");
        let text = GOOD.replace("version = ", "refresh_before = \"59d\"\nversion = ");
        assert!(Config::parse(&text, Path::new("/x/c.toml")).is_ok());
    }

    #[test]
    fn every_duration_is_bounded() {
        for (table, key) in [
            ("retry", "max_lateness"),
            ("retry", "base_delay"),
            ("retry", "max_delay"),
            ("retry", "resend_window"),
            ("watcher", "settle_time"),
            ("watcher", "poll_interval"),
            ("watcher", "incomplete_wait"),
            ("publisher", "shutdown_timeout"),
        ] {
            let e = refusal(&format!("{GOOD}\n[{table}]\n{key} = \"1000000y\"\n"));
            assert!(
                e.contains(&format!("{table}.{key}")) && e.contains("too long"),
                "{e}"
            );
        }
        let e = refusal(&GOOD.replace("version = ", "request_timeout = \"1000000y\"\nversion = "));
        assert!(e.contains("linkedin.request_timeout"), "{e}");
        let e = refusal(&GOOD.replace(
            "[accounts.me]\nkind = \"member\"",
            "[accounts.me]\nkind = \"member\"\nmin_spacing = \"1000000y\"",
        ));
        assert!(e.contains("accounts.me.min_spacing"), "{e}");
        let ok = format!("{GOOD}\n[retry]\nmax_lateness = \"30days\"\n");
        assert!(Config::parse(&ok, Path::new("/x/c.toml")).is_ok());
        let e = refusal(&format!("{GOOD}\n[retry]\nmax_lateness = \"31days\"\n"));
        assert!(e.contains("retry.max_lateness"), "{e}");
    }

    #[test]
    fn one_loopback_check() {
        let yes = |u: &str| is_loopback_url(&url::Url::parse(u).unwrap());
        for u in [
            "http://127.0.0.1:8765/callback",
            "http://127.1.2.3/",
            "http://[::1]:8765/callback",
            "http://localhost:1/",
            "https://LOCALHOST/",
        ] {
            assert!(yes(u), "{u}");
        }
        for u in [
            "http://localhost.evil.com/",
            "http://128.0.0.1/",
            "http://[::2]/",
            "http://0.0.0.0/",
            "https://api.linkedin.com/",
        ] {
            assert!(!yes(u), "{u}");
        }
    }

    #[test]
    fn notify_defaults_and_refusals() {
        let c = Config::parse(GOOD, Path::new("/etc/lipost/config.toml")).unwrap();
        assert!(c.notify.sinks().is_empty());
        assert_eq!(c.notify.events, crate::notify::Kind::DEFAULT.to_vec());
        let with = |t: &str| format!("{GOOD}\n[notify]\n{t}\n");
        let ok = Config::parse(
            &with("webhook = \"http://127.0.0.1:9/x\"\ncommand = [\"/bin/true\"]\nevents = [\"post_published\"]"),
            Path::new("/etc/lipost/config.toml"),
        )
        .unwrap();
        assert_eq!(ok.notify.sinks().len(), 2);
        assert_eq!(ok.notify.events, vec![crate::notify::Kind::PostPublished]);
        for (bad, says) in [
            (
                "webhook = \"http://hooks.example.com/t0ken\"",
                "notify.webhook",
            ),
            ("command = []", "notify.command"),
            ("events = [\"post_exploded\"]", "notify.events"),
            ("events = [\"test\"]", "notify.events"),
            ("timeout = \"1h\"", "notify.timeout"),
        ] {
            let e = refusal(&with(bad));
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("t0ken"), "the URL is not repeated: {e}");
        }
    }

    #[test]
    fn metrics_listen_on_loopback_unless_told() {
        let with = |t: &str| format!("{GOOD}\n[metrics]\n{t}\n");
        let c = Config::parse(GOOD, Path::new("/x/c.toml")).unwrap();
        assert!(c.metrics.is_none());
        for ok in ["listen = \"127.0.0.1:9464\"", "listen = \"[::1]:0\""] {
            let c = Config::parse(&with(ok), Path::new("/x/c.toml")).unwrap();
            assert!(c.metrics.unwrap().listen.ip().is_loopback(), "{ok}");
        }
        for bad in ["0.0.0.0:9464", "192.168.1.5:9464", "[::]:9464"] {
            let e = refusal(&with(&format!("listen = \"{bad}\"")));
            assert!(
                e.contains("metrics.listen") && e.contains("metrics.allow_remote"),
                "{bad}: {e}"
            );
            let c = Config::parse(
                &with(&format!("listen = \"{bad}\"\nallow_remote = true")),
                Path::new("/x/c.toml"),
            )
            .unwrap();
            assert_eq!(c.metrics.unwrap().listen.to_string(), bad);
        }
        let e = refusal(&with("listen = \"localhost\""));
        assert!(e.contains("metrics.listen"), "{e}");
        let e = refusal(&with("port = 9464"));
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn bad_duration_is_explained() {
        let text = format!("{GOOD}\n[retry]\nbase_delay = \"soon\"\n");
        let e = Config::parse(&text, Path::new("/x/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid duration"), "{e}");
    }

    #[test]
    fn draft_size_and_extensions() {
        assert_eq!(parse_byte_size("65536"), Ok(65536));
        assert_eq!(parse_byte_size("64KiB"), Ok(65536));
        assert_eq!(parse_byte_size(" 1 MiB "), Ok(1 << 20));
        assert!(parse_byte_size("64KB").is_err());
        assert!(parse_byte_size("lots").is_err());
        let base = format!("{GOOD}\n[watcher]\n");
        let parse = |extra: &str| Config::parse(&format!("{base}{extra}"), Path::new("/x/c.toml"));
        let c = parse("max_draft_size = 1000\nextensions = [\"MD\"]").unwrap();
        assert_eq!(
            (c.watcher.max_draft_size, c.watcher.extensions),
            (1000, vec!["md".to_string()])
        );
        let c = parse("max_draft_size = \"2KiB\"").unwrap();
        assert_eq!(c.watcher.max_draft_size, 2048);
        for bad in [
            "max_draft_size = 0",
            "max_draft_size = \"32MiB\"",
            "extensions = []",
            "extensions = [\".md\"]",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("watcher."), "{bad}: {e}");
        }
    }
}
