//! The command line: --config anywhere or LIPOST_CONFIG, check-config, validate, status, list, show.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn config_is_found_before_or_after_the_subcommand_or_from_the_environment() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let path = env.config.to_str().unwrap();
    for (args, vars) in [
        (vec!["--config", path, "check-config"], vec![]),
        (vec!["check-config", "--config", path], vec![]),
        (vec!["check-config"], vec![("LIPOST_CONFIG", path)]),
    ] {
        let (ok, text) = run(&args, &vars);
        assert!(ok, "{args:?}: {text}");
        assert!(
            text.contains("config ok") && text.contains("timezone        Europe/Berlin"),
            "{text}"
        );
        assert!(
            text.contains(&format!("queue_dir       {}", env.queue.display())),
            "paths resolve against the config's folder: {text}"
        );
    }
    let (ok, text) = run(&["--config", "/nonexistent/lipost.toml", "status"], &[]);
    assert!(!ok && text.contains("/nonexistent/lipost.toml"), "{text}");
}

#[test]
fn check_config_names_an_unknown_key_and_its_line() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[accounts.bob]\nkind = \"member\"\nfavourite = 1\n");
    let (ok, text) = run(
        &["--config", env.config.to_str().unwrap(), "check-config"],
        &[],
    );
    assert!(!ok);
    assert!(
        text.contains("unknown field `favourite`") && text.contains("line "),
        "{text}"
    );
}

#[test]
fn the_shipped_config_is_valid_and_needs_no_credentials() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let (ok, text) = run(&["--config", shipped, "check-config"], &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("sandbox (nothing reaches LinkedIn)"),
        "{text}"
    );
}

#[test]
fn validate_prints_the_exact_commentary_and_rejects_bad_drafts() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let good = env.path("good.md");
    std::fs::write(
        &good,
        draft(
            "id = \"launch\"\npublish_at = \"2030-12-02 09:00\"",
            "We launch (finally) #rust",
        ),
    )
    .unwrap();
    let bad = env.path("bad.md");
    std::fs::write(&bad, draft("account = \"nobody\"", "x")).unwrap();
    let (ok, text) = run(
        &[
            "--config",
            env.config.to_str().unwrap(),
            "validate",
            good.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{text}");
    assert!(text.contains("We launch \\(finally\\) #rust"), "{text}");
    assert!(
        text.contains("2030-12-02T09:00:00+01:00"),
        "read in Europe/Berlin: {text}"
    );
    let (ok, text) = run(
        &[
            "--config",
            env.config.to_str().unwrap(),
            "validate",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        text.contains("bad.md: rejected: account \"nobody\""),
        "{text}"
    );
    assert!(
        !env.db_exists()
            || std::fs::read_dir(&env.queue)
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
        "validate queues nothing"
    );
}

#[test]
fn status_list_and_show_report_what_the_store_holds() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    env.drop_draft(
        "soon.md",
        draft(&format!("publish_at = \"{}\"", in_secs(3600)), "Later"),
    );
    env.drop_draft("now.md", "Now\n");
    wait_post(&sb, |p| p["text"] == "Now", Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || env
        .state("now")
        .as_deref()
        == Some("published")));
    let c = env.config.to_str().unwrap();
    let (ok, text) = run(&["--config", c, "status", "--json"], &[]);
    assert!(ok, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["counts"]["scheduled"], 1);
    assert_eq!(v["counts"]["published"], 1);
    assert_eq!(v["next"][0]["id"], "soon");
    assert_eq!(v["pages"][0]["account"], "acme");
    assert_eq!(v["pages"][0]["via"], "me");
    let (_, text) = run(&["--config", c, "status"], &[]);
    assert!(
        text.contains("1 scheduled") && text.contains("soon"),
        "{text}"
    );
    assert!(
        text.contains("acme         page urn:li:organization:2414183, posted with me's login"),
        "the page account is listed: {text}"
    );
    let (_, text) = run(&["--config", c, "list", "--state", "published"], &[]);
    assert!(text.contains("now") && !text.contains("soon"), "{text}");
    let (_, text) = run(&["--config", c, "show", "now"], &[]);
    assert!(
        text.contains("state       published") && text.contains("HTTP 201"),
        "{text}"
    );
    let (ok, text) = run(&["--config", c, "show", "missing"], &[]);
    assert!(
        !ok && text.contains("no post with id \"missing\""),
        "{text}"
    );
}

#[test]
fn operator_commands_explain_what_they_refuse() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    env.drop_draft(
        "later.md",
        draft(&format!("publish_at = \"{}\"", in_secs(3600)), "Later"),
    );
    assert!(wait_until(Duration::from_secs(5), || env
        .state("later")
        .is_some()));
    let c = env.config.to_str().unwrap();
    let (ok, text) = run(
        &["--config", c, "mark-published", "later", "urn:li:person:1"],
        &[],
    );
    assert!(!ok && text.contains("is not a post URN"), "{text}");
    let (ok, text) = run(&["--config", c, "retry", "later"], &[]);
    assert!(
        !ok && text.contains("post \"later\" is scheduled; retry needs it to be dead"),
        "{text}"
    );
    let (ok, text) = run(&["--config", c, "retry", "--all"], &[]);
    assert!(ok && text.contains("no dead posts"), "{text}");
    assert_eq!(
        env.state("later").as_deref(),
        Some("scheduled"),
        "nothing changed"
    );
}

/// Runs `lipost` with `args`; if it has not exited after `secs`, kills it and returns `None`
/// as the status (a refused config exits at once; an accepted one would keep running).
fn run_for(args: &[&str], secs: u64) -> (Option<std::process::ExitStatus>, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_until(Duration::from_secs(secs), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (status, std::fs::read_to_string(log.path()).unwrap())
}

#[test]
fn unsafe_config_is_refused_by_check_config_and_run_naming_the_key() {
    let sb = Sandbox::start();
    // (the key named in the refusal, a line of Env's config, what it becomes)
    let cases = [
        (
            "linkedin.api_base_url",
            "mode = \"sandbox\"\n",
            "mode = \"live\"\n",
        ),
        (
            "retry.resend_window",
            "max_delay = \"4s\"\n",
            "max_delay = \"4s\"\nresend_window = \"15m\"\n",
        ),
        (
            "accounts.me.daily_cap",
            "[accounts.me]\n",
            "[accounts.me]\ndaily_cap = 0\n",
        ),
        (
            "linkedin.refresh_before",
            "[linkedin]\n",
            "[linkedin]\nrefresh_before = \"60d\"\n",
        ),
        (
            "retry.max_lateness",
            "max_delay = \"4s\"\n",
            "max_delay = \"4s\"\nmax_lateness = \"1000000y\"\n",
        ),
        (
            "watcher.extensions: \"tmp\" is the extension of temporary files",
            "settle_time = \"500ms\"\n",
            "settle_time = \"500ms\"\nextensions = [\"md\", \"tmp\"]\n",
        ),
    ];
    for (key, line, unsafe_line) in cases {
        let env = Env::new(&sb, "");
        let text = std::fs::read_to_string(&env.config).unwrap();
        assert!(text.contains(line), "{text}");
        let text = text.replacen(line, unsafe_line, 1);
        std::fs::write(&env.config, text).unwrap();
        let c = env.config.to_str().unwrap();
        let (ok, out) = run(&["--config", c, "check-config"], &[]);
        assert!(
            !ok && out.contains(key),
            "check-config accepted {key}: {out}"
        );
        let (status, out) = run_for(&["--config", c, "run"], 20);
        let status = status.unwrap_or_else(|| panic!("`run` started despite {key}: {out}"));
        assert!(!status.success() && out.contains(key), "{key}: {out}");
        assert!(
            !env.db_exists() && !env.db.exists(),
            "{key}: refused before the database was touched"
        );
    }
}

#[test]
fn a_live_config_may_point_at_a_local_emulator_only_with_a_loud_opt_in() {
    let sb = Sandbox::start();
    let env = Env::build(&sb, "", "allow_unsafe_endpoint = true", "");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("mode = \"sandbox\"", "mode = \"live\""),
    )
    .unwrap();
    let (ok, out) = run(
        &["--config", env.config.to_str().unwrap(), "check-config"],
        &[],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("WARNING") && out.contains(&sb.url) && out.contains("client secret"),
        "{out}"
    );
    let d = Daemon::spawn_with_env(&env, &[]);
    d.wait_log("allow_unsafe_endpoint = true", Duration::from_secs(20));
    assert!(d.log_text().contains("WARN"), "{}", d.log_text());
}

#[test]
fn read_only_commands_create_nothing_and_refuse_a_database_they_do_not_know() {
    let sb = Sandbox::start();
    // SQLite: the missing file, and the schema version in SQLite's user_version.
    let env = Env::new_sqlite(&sb, "");
    let c = env.config.to_str().unwrap();
    let state_dir = env.db.parent().unwrap().to_path_buf();
    for cmd in [&["status"][..], &["list"], &["show", "x"], &["dead"]] {
        let mut args = vec!["--config", c];
        args.extend_from_slice(cmd);
        let (ok, out) = run(&args, &[]);
        assert!(!ok, "{cmd:?}: {out}");
        assert!(
            out.contains(&format!("no database at {}", env.db.display()))
                && out.contains("has `lipost run` run yet?"),
            "{cmd:?}: {out}"
        );
        assert!(
            !state_dir.exists(),
            "{cmd:?} created {}",
            state_dir.display()
        );
    }
    // `doctor` looks too: a mistyped path does not pass as a new, empty database.
    let (_, out) = run(&["--config", c, "doctor"], &[]);
    assert!(
        out.contains(&format!(
            "warn  database {}: not there yet",
            env.db.display()
        )),
        "{out}"
    );
    assert!(
        !state_dir.exists(),
        "doctor created {}",
        state_dir.display()
    );

    // A database from a newer lipost: every command refuses it, and nothing changes.
    std::fs::create_dir_all(&state_dir).unwrap();
    env.db()
        .sqlite()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    for cmd in [
        &["status"][..],
        &["list"],
        &["cancel", "x"],
        &["retry", "--all"],
        &["doctor"],
    ] {
        let mut args = vec!["--config", c];
        args.extend_from_slice(cmd);
        let (ok, out) = run(&args, &[]);
        assert!(
            !ok && out.contains("newer than this lipost") && out.contains("upgrade lipost"),
            "{cmd:?}: {out}"
        );
    }
    let v: i64 = env
        .db()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 999);
    let tables: i64 = env
        .db()
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0, "nothing was migrated");

    // An older schema is not migrated by a command that only looks.
    env.db()
        .sqlite()
        .pragma_update(None, "user_version", 1)
        .unwrap();
    let (ok, out) = run(&["--config", c, "status"], &[]);
    assert!(!ok && out.contains("older than this lipost"), "{out}");
    let (_, out) = run(&["--config", c, "doctor"], &[]);
    assert!(out.contains("older than this lipost"), "{out}");
    let v: i64 = env
        .db()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 1, "status migrated the database");
}

/// A database made by lipost itself (`retry --all` opens it for writing), holding `n`
/// scheduled posts written straight into SQL.
fn env_with_posts(sb: &Sandbox, n: usize, due_at: &str) -> Env {
    let env = Env::new(sb, "");
    let (ok, out) = run(
        &["--config", env.config.to_str().unwrap(), "retry", "--all"],
        &[],
    );
    assert!(ok, "{out}");
    let mut db = env.db();
    let tx = db.transaction().unwrap();
    for i in 0..n {
        tx.execute(
            "INSERT INTO posts (id, account, state, due_at, next_attempt_at, commentary, text, visibility, created_at, updated_at) \
             VALUES (?1, 'me', 'scheduled', ?2, '2030-01-01T00:00:00.000Z', 'x', 'x', 'PUBLIC', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            (format!("post-{i:05}"), due_at),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    env
}

#[test]
fn list_into_a_closed_pipe_ends_quietly() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let sb = Sandbox::start();
    // Far more than a pipe holds, so lipost is still writing when the reader goes away.
    let env = env_with_posts(&sb, 3000, "2030-01-01T00:00:00.000Z");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("list")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("post-00000"), "{first}");
    // The reader is dropped here, like `head -1` exiting.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "lipost said: {stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?}",
        out.status
    );
}

#[test]
fn a_corrupt_time_in_the_database_is_an_error_not_1970() {
    let sb = Sandbox::start();
    let env = env_with_posts(&sb, 1, "next tuesday");
    let c = env.config.to_str().unwrap();
    for cmd in [&["show", "post-00000"][..], &["list"], &["status"]] {
        let mut args = vec!["--config", c];
        args.extend_from_slice(cmd);
        let (ok, out) = run(&args, &[]);
        assert!(!ok, "{cmd:?}: {out}");
        assert!(
            out.contains("posts.due_at") && out.contains("next tuesday"),
            "{cmd:?}: {out}"
        );
        assert!(!out.contains("1970"), "{cmd:?}: {out}");
    }
}
