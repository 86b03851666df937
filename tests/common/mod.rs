//! Test harness: the real `lipost` binary as child processes (a standalone sandbox and the
//! daemon), a temporary folder with a real queue and a real store, real HTTP on 127.0.0.1.
//!
//! The store is a SQLite file, or, when `LIPOST_TEST_POSTGRES` holds a PostgreSQL URL (a
//! role that may CREATE DATABASE), a fresh PostgreSQL database per [`Env`], dropped with it.
//! Tests read and write the store through [`TestDb`] (`env.db()`), the same on both.
#![allow(dead_code)]

pub mod db;
pub mod fixtures;

#[allow(unused_imports)]
pub use db::{OptionalExtension, TestDb};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_lipost");

/// `lipost sandbox` on a free loopback port, killed on drop.
pub struct Sandbox {
    child: Child,
    pub url: String,
}

impl Sandbox {
    pub fn start() -> Sandbox {
        Sandbox::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Sandbox {
        let mut child = Command::new(BIN)
            .args(["sandbox", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sandbox");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "sandbox said {line:?}"
        );
        Sandbox { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn posts(&self) -> Vec<Value> {
        get_json(&format!("{}/_sandbox/posts", self.url))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn faults(&self, faults: Value) {
        post_json(&format!("{}/_sandbox/faults", self.url), &faults);
    }

    pub fn configure(&self, settings: Value) {
        post_json(&format!("{}/_sandbox/config", self.url), &settings);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn get_json(url: &str) -> Value {
    agent().get(url).send().unwrap().json().unwrap()
}

pub fn post_json(url: &str, body: &Value) {
    let r = agent().post(url).json(body).send().unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

/// A temporary lipost installation: config, queue folder, store.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub queue: PathBuf,
    /// The SQLite file; with PostgreSQL, the node's own file in `data_dir` (`state`), which
    /// the wake file and the instance lock hang on (see [`Env::wake_file`]).
    pub db: PathBuf,
    /// The PostgreSQL database of this Env, when the suite runs on PostgreSQL.
    pg: Option<db::PgDatabase>,
}

/// The PostgreSQL server the suite runs against: `LIPOST_TEST_POSTGRES`, if set.
pub fn postgres_url() -> Option<String> {
    std::env::var("LIPOST_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

impl Env {
    /// A config pointing at `sandbox`, with `extra` TOML appended (tables may be added).
    pub fn new(sandbox: &Sandbox, extra: &str) -> Env {
        Env::build(sandbox, "", "", extra)
    }

    /// Like `new`, on SQLite whatever `LIPOST_TEST_POSTGRES` says (for tests about the
    /// SQLite file itself).
    pub fn new_sqlite(sandbox: &Sandbox, extra: &str) -> Env {
        Env::build_sqlite(sandbox, "", "", extra)
    }

    /// Like `new`, with `top` among the top-level keys, `linkedin` in `[linkedin]`, and
    /// `extra` appended. On PostgreSQL when `LIPOST_TEST_POSTGRES` is set.
    pub fn build(sandbox: &Sandbox, top: &str, linkedin: &str, extra: &str) -> Env {
        let pg = postgres_url().map(|server| db::PgDatabase::create(&server));
        Env::build_on(sandbox, top, linkedin, extra, pg)
    }

    /// Like `build`, on SQLite whatever `LIPOST_TEST_POSTGRES` says.
    pub fn build_sqlite(sandbox: &Sandbox, top: &str, linkedin: &str, extra: &str) -> Env {
        Env::build_on(sandbox, top, linkedin, extra, None)
    }

    fn build_on(
        sandbox: &Sandbox,
        top: &str,
        linkedin: &str,
        extra: &str,
        pg: Option<db::PgDatabase>,
    ) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let has_retry = extra.contains("[retry]");
        let has_watcher = extra.contains("[watcher]");
        let (database, db) = match &pg {
            None => (
                "database = \"state/lipost.db\"".to_string(),
                dir.path().join("state/lipost.db"),
            ),
            Some(p) => (
                format!(
                    "database = \"{}\"\ndata_dir = \"state\"",
                    p.url.replace('\\', "\\\\").replace('"', "\\\"")
                ),
                dir.path().join("state/lipost.node"),
            ),
        };
        let mut text = format!(
            r#"queue_dir = "queue"
{database}
timezone = "Europe/Berlin"
default_account = "me"
{top}
[linkedin]
mode = "sandbox"
api_base_url = "{url}"
version = "{version}"
{timeout}
{linkedin}

[accounts.me]
kind = "member"

[accounts.acme]
kind = "organization"
organization = "urn:li:organization:2414183"
via = "me"
"#,
            url = sandbox.url,
            version = current_version(),
            timeout = if linkedin.contains("request_timeout") {
                ""
            } else {
                "request_timeout = \"3s\""
            },
        );
        if !has_retry {
            text.push_str("\n[retry]\nbase_delay = \"1s\"\nmax_delay = \"4s\"\n");
        }
        if !has_watcher {
            text.push_str("\n[watcher]\nsettle_time = \"500ms\"\n");
        }
        text.push_str(extra);
        std::fs::write(&config, text).unwrap();
        Env {
            queue: dir.path().join("queue"),
            db,
            config,
            dir,
            pg,
        }
    }

    /// Whether this Env's store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The store's folder of local files: the SQLite file's folder, or `data_dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.db.parent().unwrap().to_path_buf()
    }

    /// The file a command touches to wake a sleeping daemon (`DATABASE-wake`).
    pub fn wake_file(&self) -> PathBuf {
        suffixed(&self.db, "-wake")
    }

    /// Where the running daemon writes its pid (`DATABASE-lock`).
    pub fn lock_file(&self) -> PathBuf {
        suffixed(&self.db, "-lock")
    }

    /// Whether lipost has made its store yet: the SQLite file, or the schema in the
    /// PostgreSQL database.
    pub fn db_exists(&self) -> bool {
        match &self.pg {
            None => self.db.exists(),
            Some(_) => self
                .db()
                .query_row(
                    "SELECT to_regclass('lipost_schema') IS NOT NULL OR to_regclass('posts') IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .unwrap_or(false),
        }
    }

    /// Writes a draft the way a careful producer does: a temp name, then a rename.
    pub fn drop_draft(&self, name: &str, content: impl AsRef<[u8]>) {
        std::fs::create_dir_all(&self.queue).unwrap();
        let tmp = self.queue.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.queue.join(name)).unwrap();
    }

    /// Writes a bundle (`post.md` and its files, subfolders made as needed) beside the queue
    /// folder and renames it in, as a careful producer does.
    pub fn drop_bundle(&self, name: &str, post: &str, files: &[(&str, &[u8])]) {
        let staging = self.path(&format!("staging-{name}"));
        write_bundle(&staging, post, files);
        std::fs::create_dir_all(&self.queue).unwrap();
        std::fs::rename(&staging, self.queue.join(name)).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A connection to the store (a new one each call).
    pub fn db(&self) -> TestDb {
        match &self.pg {
            None => TestDb::open_sqlite(&self.db),
            Some(p) => TestDb::connect_postgres(&p.url),
        }
    }

    /// A post's state, or None if there is no such post (or no store yet).
    pub fn state(&self, id: &str) -> Option<String> {
        if self.pg.is_none() && !self.db.exists() {
            return None;
        }
        self.db()
            .query_row("SELECT state FROM posts WHERE id = ?1", [id], |r| r.get(0))
            .ok()
    }

    pub fn lipost(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A bundle folder at `dir`: `post.md` and `files` (names may hold subfolders).
pub fn write_bundle(dir: &Path, post: &str, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("post.md"), post).unwrap();
    for (name, bytes) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// An active LinkedIn-Version (this month).
pub fn current_version() -> String {
    chrono::Utc::now().format("%Y%m").to_string()
}

/// A draft with front matter.
pub fn draft(front: &str, body: &str) -> String {
    format!("+++\n{front}\n+++\n{body}\n")
}

/// RFC 3339 for `secs` from now.
pub fn in_secs(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The daemon as a child process; its stderr goes to a log file. Killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(env: &Env) -> Daemon {
        Daemon::start_with_env(env, &[])
    }

    pub fn start_with_env(env: &Env, vars: &[(&str, &str)]) -> Daemon {
        let d = Daemon::spawn_with_env(env, vars);
        d.wait_log("lipost is running", Duration::from_secs(20));
        d
    }

    /// Another node on `env`'s PostgreSQL database, named `id`, with its own queue folder
    /// (`queue-ID`) and local files (`state-ID`), started and running.
    pub fn start_node(env: &Env, id: &str) -> Daemon {
        let text = std::fs::read_to_string(&env.config).unwrap();
        assert!(
            text.contains("data_dir = \"state\""),
            "a node needs PostgreSQL"
        );
        let text = text
            .replace(
                "queue_dir = \"queue\"",
                &format!("queue_dir = \"queue-{id}\""),
            )
            .replace(
                "data_dir = \"state\"",
                &format!("data_dir = \"state-{id}\""),
            );
        let config = env.path(&format!("config-{id}.toml"));
        std::fs::write(&config, text).unwrap();
        let d = Daemon::spawn_config(env, &config, &[("LIPOST_NODE_ID", id)]);
        d.wait_log("lipost is running", Duration::from_secs(20));
        d
    }

    /// Starts the daemon without waiting for its first log line.
    pub fn spawn_with_env(env: &Env, vars: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_config(env, &env.config, vars)
    }

    fn spawn_config(env: &Env, config: &Path, vars: &[(&str, &str)]) -> Daemon {
        let n = std::fs::read_dir(env.dir.path()).unwrap().count();
        let log = env.dir.path().join(format!("daemon-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let ok = wait_until(timeout, || self.log_text().contains(needle));
        assert!(ok, "daemon log never said {needle:?}:\n{}", self.log_text());
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then the exit status.
    pub fn term(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > timeout {
                let _ = c.kill();
                panic!("daemon did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Like [`wait_post`], printing the daemon's log when the post never comes.
pub fn wait_post_logged(sb: &Sandbox, d: &Daemon, text: &str, timeout: Duration) -> Value {
    let mut found = None;
    wait_until(timeout, || {
        found = sb.posts().into_iter().find(|p| p["text"] == text);
        found.is_some()
    });
    found.unwrap_or_else(|| {
        panic!(
            "{text:?} never reached the sandbox; daemon log:\n{}",
            d.log_text()
        )
    })
}

/// The sandbox post whose visible text is `text`, waiting for it.
pub fn wait_post(sb: &Sandbox, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
    let mut found = None;
    wait_until(timeout, || {
        found = sb.posts().into_iter().find(|p| pred(p));
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no such post in the sandbox: {:?}", sb.posts()))
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// `lipost auth login --paste` against the sandbox, approved at once (so the account has a
/// refresh token, and the sandbox's revocation makes it need a login).
pub fn login_paste(env: &Env) {
    use std::io::Write;
    let mut child = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["auth", "login", "--account", "me", "--paste"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "login printed no URL"
        );
        if line.starts_with("http") {
            break line.trim().to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let r = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&url)
        .send()
        .unwrap();
    let landed = r.headers()["location"].to_str().unwrap().to_string();
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(format!("{landed}\n").as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The daemon without CAP_LEASE (as root, the only way to lose it is the bounding set).
pub struct NoLeaseDaemon {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl NoLeaseDaemon {
    pub fn start(env: &Env) -> NoLeaseDaemon {
        let log = env.path("no-lease.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new("setpriv")
            .args(["--inh-caps=-lease", "--bounding-set=-lease", "--"])
            .arg(BIN)
            .arg("--config")
            .arg(&env.config)
            .arg("run")
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let d = NoLeaseDaemon { child, log };
        assert!(
            wait_until(Duration::from_secs(30), || d
                .log_text()
                .contains("lipost is running")),
            "{}",
            d.log_text()
        );
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NoLeaseDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token the sandbox mints for `me` with every scope it needs, as LinkedIn's token
/// generator would hand it out.
pub fn mint_for_me(sb: &Sandbox) -> String {
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{}/_sandbox/token", sb.url))
        .json(&serde_json::json!({"member": "me", "scope": "openid profile w_member_social w_organization_social r_organization_admin r_organization_social", "organizations": ["urn:li:organization:2414183"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// `lipost auth import --account me` with `token` on stdin.
pub fn import(env: &Env, token: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .args([
            "auth",
            "import",
            "--account",
            "me",
            "--expires-in",
            "30days",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, token.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// LinkedIn revokes `token`: the sandbox refuses it from now on.
pub fn revoke(sb: &Sandbox, token: &str) {
    post_json(
        &format!("{}/_sandbox/revoke", sb.url),
        &serde_json::json!({"token": token}),
    );
}

/// The peak resident set (VmHWM) of process `pid`, in KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Raises account `me`'s daily cap in `env`'s config (default 25), for tests that send more.
pub fn raise_daily_cap(env: &Env, cap: u32) {
    let config = std::fs::read_to_string(&env.config).unwrap();
    let account = "[accounts.me]\nkind = \"member\"\n";
    assert!(config.contains(account), "{config}");
    let room = format!("{account}daily_cap = {cap}\n");
    std::fs::write(&env.config, config.replacen(account, &room, 1)).unwrap();
}
