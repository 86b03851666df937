//! Guards around the core promise: held accounts never starve others, a token stored while
//! the daemon runs is used at once, one daemon per database, a database never changes
//! worlds (sandbox / live), and a retired API version holds posts instead of killing them.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Member `me` may post for the `acme` page, so its tokens pass the login checks.
fn grant_page_role(sb: &Sandbox) {
    post_json(
        &format!("{}/_sandbox/roles", sb.url),
        &json!({"member": "me", "organization": "urn:li:organization:2414183", "role": "ADMINISTRATOR"}),
    );
}

fn output(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn token_status(env: &Env) -> String {
    env.db()
        .query_row("SELECT status FROM tokens WHERE account = 'me'", [], |r| {
            r.get(0)
        })
        .unwrap_or_default()
}

fn count(env: &Env, sql: &str) -> i64 {
    env.db().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// User plus system CPU time of a process, from /proc/PID/stat, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

#[test]
fn hundreds_of_held_posts_neither_starve_another_account_nor_spin() {
    let sb = Sandbox::start();
    grant_page_role(&sb);
    let env = Env::new(&sb, "\n[accounts.other]\nkind = \"member\"\n");
    // Room for all of them today once the hold is lifted.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "[accounts.me]\nkind = \"member\"\n",
            "[accounts.me]\nkind = \"member\"\ndaily_cap = 1000\n",
        ),
    )
    .unwrap();
    let token = mint_for_me(&sb);
    let out = import(&env, &token);
    assert!(out.status.success(), "{}", output(&out));
    revoke(&sb, &token);
    let d = Daemon::start(&env);

    // The revoked token is refused and cannot be renewed: `me` needs a login.
    env.drop_draft("first.md", "Held from the start\n");
    assert!(
        wait_until(Duration::from_secs(15), || token_status(&env)
            == "needs_reauth"),
        "{}",
        d.log_text()
    );
    for i in 0..300 {
        let name = format!("held-{i:03}.md");
        std::fs::write(env.queue.join(&name), format!("Held post {i}\n")).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(60), || count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE id LIKE 'held-%'"
        ) == 300),
        "{}",
        d.log_text()
    );

    let dropped = Instant::now();
    env.drop_draft(
        "healthy.md",
        draft("account = \"other\"", "Another account is not held"),
    );
    wait_post_logged(
        &sb,
        &d,
        "Another account is not held",
        Duration::from_secs(20),
    );
    // Settle time 500 ms plus a send; generous for a loaded machine.
    assert!(
        dropped.elapsed() < Duration::from_secs(10),
        "the healthy post took {:?}",
        dropped.elapsed()
    );

    // Every held post is held in the store, none sent, none dead.
    assert!(
        wait_until(Duration::from_secs(10), || {
            count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE state = 'scheduled' AND hold_reason = 'needs_reauth' \
             AND hold_until IS NOT NULL"
        ) == 301
        }),
        "{}",
        d.log_text()
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM dead_letters"), 0);
    assert_eq!(sb.posts().len(), 1);
    let show = output(&env.lipost(&["show", "held-042"]));
    assert!(show.contains("needs_reauth"), "{show}");

    // Asleep, not spinning: a spin costs a whole core.
    let before = cpu_ticks(d.pid());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(d.pid()) - before;
    assert!(
        used * 100 < 30 * 3 * ticks_per_second(),
        "the daemon used {used} ticks of CPU in 3 s while only held posts were due"
    );

    // A new token lifts the holds: they all go out.
    let out = import(&env, &mint_for_me(&sb));
    assert!(out.status.success(), "{}", output(&out));
    assert!(
        wait_until(Duration::from_secs(60), || sb.posts().len() == 302),
        "{} posts; {}",
        sb.posts().len(),
        d.log_text()
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE hold_reason IS NOT NULL"
        ),
        0
    );
}

#[test]
fn a_token_imported_while_the_daemon_runs_is_used_at_once() {
    let sb = Sandbox::start();
    grant_page_role(&sb);
    let env = Env::new(&sb, "");
    let old = mint_for_me(&sb);
    assert!(import(&env, &old).status.success());
    let d = Daemon::start(&env);
    env.drop_draft("first.md", "With the first token\n");
    wait_post_logged(&sb, &d, "With the first token", Duration::from_secs(10));

    // A new token replaces the cached one; the old one stops working.
    let out = import(&env, &mint_for_me(&sb));
    assert!(out.status.success(), "{}", output(&out));
    revoke(&sb, &old);
    env.drop_draft("second.md", "With the new token\n");
    wait_post_logged(&sb, &d, "With the new token", Duration::from_secs(10));
    assert_eq!(token_status(&env), "ok");
    // Sent once, with the new token: no 401 on the way.
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM attempts WHERE post_id = 'second'"
        ),
        1,
        "{}",
        d.log_text()
    );
}

#[test]
fn a_401_for_a_token_replaced_since_retries_with_the_stored_one() {
    let sb = Sandbox::start();
    grant_page_role(&sb);
    // SQLite only: on PostgreSQL `auth import` also NOTIFYs every daemon, so removing the
    // wake file cannot keep the daemon unaware of the new token, and no 401 comes.
    let env = Env::new_sqlite(&sb, "");
    let old = mint_for_me(&sb);
    assert!(import(&env, &old).status.success());
    let d = Daemon::start(&env);
    env.drop_draft("first.md", "With the first token\n");
    wait_post_logged(&sb, &d, "With the first token", Duration::from_secs(10));

    // Without the wake file the daemon is not told, so it still holds the old token.
    std::fs::remove_file(env.wake_file()).unwrap();
    d.wait_log("wake file was removed", Duration::from_secs(5));
    // Cached again after whatever the removal woke.
    env.drop_draft("bridge.md", "Still with the first token\n");
    wait_post_logged(
        &sb,
        &d,
        "Still with the first token",
        Duration::from_secs(10),
    );
    let out = import(&env, &mint_for_me(&sb));
    assert!(out.status.success(), "{}", output(&out));
    revoke(&sb, &old);
    env.drop_draft("second.md", "After a 401\n");
    wait_post_logged(&sb, &d, "After a 401", Duration::from_secs(15));
    assert_eq!(token_status(&env), "ok", "{}", d.log_text());
    assert!(d.log_text().contains("has since been replaced"));
}

/// Review finding 7: a single 401 for a token without a refresh token (LinkedIn's
/// brand-new-token blip) is tried again shortly; only a second 401 for the same token marks
/// the account `needs_reauth`.
#[test]
fn one_401_for_a_token_without_refresh_is_retried_and_only_a_second_marks_the_account() {
    let sb = Sandbox::start();
    grant_page_role(&sb);
    let env = Env::new(&sb, "\n[retry]\nbase_delay = \"1s\"\nmax_delay = \"4s\"\n");
    let token = mint_for_me(&sb);
    assert!(import(&env, &token).status.success());
    let d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "status": 401, "times": 1}]));
    env.drop_draft("blip.md", "Right after the login\n");
    wait_post_logged(&sb, &d, "Right after the login", Duration::from_secs(20));
    assert_eq!(token_status(&env), "ok", "{}", d.log_text());
    let outcomes: Vec<String> = {
        let db = env.db();
        let mut stmt = db
            .prepare("SELECT outcome FROM attempts WHERE post_id = 'blip' ORDER BY id")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(outcomes, ["unauthorized", "published"]);

    // Refused for good: the second 401 for the same token marks the account.
    revoke(&sb, &token);
    env.drop_draft("after.md", "After the revocation\n");
    assert!(
        wait_until(Duration::from_secs(20), || token_status(&env)
            == "needs_reauth"),
        "{}",
        d.log_text()
    );
    assert_eq!(sb.posts().len(), 1);
}

#[test]
fn a_second_daemon_on_the_same_database_is_refused_and_a_killed_ones_lock_is_not_stale() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut first = Daemon::start(&env);
    let lock = env.lock_file();
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        first.pid().to_string()
    );
    assert_eq!(
        std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let second = Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .output()
        .unwrap();
    let said = output(&second);
    assert!(!second.status.success(), "{said}");
    assert!(
        said.contains(&format!("pid {}", first.pid())),
        "the refusal names the running daemon: {said}"
    );
    assert!(first.alive());

    // A SIGKILL leaves no stale lock: a new daemon starts and works.
    first.kill9();
    let d = Daemon::start(&env);
    env.drop_draft("after.md", "After the old daemon died\n");
    wait_post_logged(
        &sb,
        &d,
        "After the old daemon died",
        Duration::from_secs(10),
    );
}

/// Review finding 5: the lock is the database file's, not its name's. A second config whose
/// database is a symlink or a hard link to the first one's is refused too.
#[test]
fn a_second_daemon_reaching_the_database_by_another_name_is_refused() {
    let sb = Sandbox::start();
    // SQLite: links to the database file (a PostgreSQL database has no file to link).
    let env = Env::new_sqlite(&sb, "");
    let first = Daemon::start(&env);
    for how in ["symlink", "hard link"] {
        let other = Env::new_sqlite(&sb, "");
        std::fs::create_dir_all(other.db.parent().unwrap()).unwrap();
        if how == "symlink" {
            std::os::unix::fs::symlink(&env.db, &other.db).unwrap();
        } else {
            std::fs::hard_link(&env.db, &other.db).unwrap();
        }
        let mut second = Daemon::spawn_with_env(&other, &[]);
        let exited = wait_until(Duration::from_secs(20), || !second.alive());
        let said = second.log_text();
        assert!(
            exited,
            "a second daemon runs on the same database by {how}: {said}"
        );
        assert!(said.contains("another `lipost run`"), "{how}: {said}");
        if how == "symlink" {
            assert!(
                said.contains(&format!("pid {}", first.pid())),
                "the refusal names the running daemon: {said}"
            );
        }
    }
}

#[test]
fn a_sandbox_database_refuses_a_live_config() {
    let sb = Sandbox::start();
    grant_page_role(&sb);
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    env.drop_draft("test.md", "A sandbox test post\n");
    wait_post_logged(&sb, &d, "A sandbox test post", Duration::from_secs(10));
    assert!(d.term(Duration::from_secs(10)).success());
    let mode: String = env
        .db()
        .query_row("SELECT value FROM meta WHERE key = 'mode'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode, "sandbox");

    // Switched to live (still on loopback here, so nothing could leak if it went wrong).
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "mode = \"sandbox\"",
            "mode = \"live\"\nclient_id = \"app\"\nallow_unsafe_endpoint = true",
        ),
    )
    .unwrap();
    env.drop_draft("real.md", "Would go out for real\n");
    let run = Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env("LIPOST_CLIENT_SECRET", "s3cret")
        .output()
        .unwrap();
    let said = output(&run);
    assert!(!run.status.success(), "{said}");
    assert!(
        said.contains("made for sandbox mode") && said.contains("database"),
        "the refusal says what to do: {said}"
    );
    assert!(
        env.queue.join("real.md").exists(),
        "the draft was not taken"
    );
    assert_eq!(sb.posts().len(), 1, "nothing more was sent");

    let out = import(&env, &mint_for_me(&sb));
    assert!(!out.status.success(), "{}", output(&out));
    assert!(output(&out).contains("made for sandbox mode"));
}

/// Review finding 12: a database made before the mode record is not stamped with whatever
/// the config says: its sandbox tokens say it is a sandbox database, so a live config is
/// refused; and a database whose contents cannot tell is refused with how to record it.
#[test]
fn an_unmarked_database_is_judged_by_its_tokens_not_stamped_blindly() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    env.drop_draft("test.md", "A sandbox test post\n");
    wait_post_logged(&sb, &d, "A sandbox test post", Duration::from_secs(10));
    assert!(d.term(Duration::from_secs(10)).success());
    // As an older lipost left it: no record of the mode.
    env.db().execute("DELETE FROM meta", []).unwrap();

    let sandbox = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        sandbox.replace(
            "mode = \"sandbox\"",
            "mode = \"live\"\nclient_id = \"app\"\nallow_unsafe_endpoint = true",
        ),
    )
    .unwrap();
    env.drop_draft("real.md", "Would go out for real\n");
    // `lipost run`, which must refuse: its log, or a failure if it keeps running.
    let run = || {
        let mut d = Daemon::spawn_with_env(&env, &[("LIPOST_CLIENT_SECRET", "s3cret")]);
        let refused = wait_until(Duration::from_secs(20), || !d.alive());
        let said = d.log_text();
        assert!(refused, "stamped live and running: {said}");
        said
    };
    let said = run();
    assert!(said.contains("made for sandbox mode"), "{said}");
    assert!(
        env.queue.join("real.md").exists(),
        "the draft was not taken"
    );
    assert_eq!(sb.posts().len(), 1, "nothing more was sent");
    let mode: Option<String> = env
        .db()
        .query_row("SELECT value FROM meta WHERE key = 'mode'", [], |r| {
            r.get(0)
        })
        .ok();
    assert_eq!(mode, None, "no record was written");

    // Without tokens, its posts cannot tell: refused, saying how to record it.
    env.db().execute("DELETE FROM tokens", []).unwrap();
    let said = run();
    assert!(
        said.contains("older lipost") && said.contains("INSERT INTO meta"),
        "{said}"
    );

    // The sandbox config is accepted, and the record written.
    std::fs::write(&env.config, &sandbox).unwrap();
    std::fs::remove_file(env.queue.join("real.md")).unwrap();
    env.db()
        .execute("INSERT INTO tokens (account, member_urn, access_token, access_expires_at, scopes, source, status, updated_at) \
                  VALUES ('me', 'urn:li:person:sbx-me', 'AQsbxold', '2099-01-01T00:00:00.000Z', '', 'sandbox', 'ok', '2026-01-01T00:00:00.000Z')", [])
        .unwrap();
    let d = Daemon::start(&env);
    drop(d);
    let mode: String = env
        .db()
        .query_row("SELECT value FROM meta WHERE key = 'mode'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode, "sandbox");
}

/// Review finding 1, the token side: a token answer claiming a lifetime of ~10,000 years
/// is clamped (at most 400 days), so the stored expiry reads back and the daemon starts.
#[test]
fn an_absurd_token_lifetime_is_clamped_and_the_daemon_still_starts() {
    let sb = Sandbox::start();
    grant_page_role(&sb);
    let env = Env::new(&sb, "");
    let answer =
        json!({"access_token": mint_for_me(&sb), "expires_in": 300_000_000_000i64}).to_string();
    let out = import(&env, &answer);
    assert!(out.status.success(), "{}", output(&out));
    let stored: String = env
        .db()
        .query_row(
            "SELECT access_expires_at FROM tokens WHERE account = 'me'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let at: chrono::DateTime<chrono::Utc> = stored.parse().expect("reads back");
    assert!(
        at <= chrono::Utc::now() + chrono::Duration::days(401),
        "{stored}"
    );
    let d = Daemon::start(&env);
    env.drop_draft("ok.md", "With a clamped token\n");
    wait_post_logged(&sb, &d, "With a clamped token", Duration::from_secs(10));
}

/// Makes the config send `version` as `LinkedIn-Version`.
fn set_version(env: &Env, version: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                format!("version = \"{version}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&env.config, text + "\n").unwrap();
}

fn months_ago(n: i32) -> String {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let total = now.year() * 12 + now.month0() as i32 - n;
    format!("{:04}{:02}", total / 12, total % 12 + 1)
}

#[test]
fn a_retired_version_holds_every_post_until_a_reload_sends_each_once() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let retired = months_ago(15);
    set_version(&env, &retired);
    let d = Daemon::start(&env);
    for i in 0..4 {
        env.drop_draft(&format!("p{i}.md"), format!("Waits for a version {i}\n"));
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE state = 'scheduled' AND hold_reason = 'api_version_retired'"
        ) == 4
        }),
        "{}",
        d.log_text()
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM dead_letters"), 0);
    assert!(
        count(
            &env,
            "SELECT COUNT(*) FROM attempts WHERE outcome = 'api_version_retired'"
        ) >= 1
    );
    assert!(sb.posts().is_empty());
    let log = d.log_text();
    assert_eq!(
        log.matches("no longer serves LinkedIn-Version").count(),
        1,
        "said once, loudly: {log}"
    );
    assert!(
        log.contains("ERROR") && log.contains("linkedin.version"),
        "{log}"
    );
    let show = output(&env.lipost(&["show", "p2"]));
    assert!(show.contains("api_version_retired"), "{show}");
    let status = output(&env.lipost(&["status"]));
    assert!(
        status.contains("held: 4 posts (api_version_retired)"),
        "{status}"
    );

    set_version(&env, &current_version());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(20), || sb.posts().len() == 4),
        "{}",
        d.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    let posts = sb.posts();
    for i in 0..4 {
        let text = format!("Waits for a version {i}");
        assert_eq!(
            posts.iter().filter(|p| p["text"] == text.as_str()).count(),
            1
        );
    }
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE state = 'published' AND hold_reason IS NULL"
        ),
        4
    );
}

/// Review finding 11: a 426 answers the version the request carried. When a reload set a
/// good version while the request was on its way, the good one is not retired, and the post
/// goes out with it.
#[test]
fn a_426_for_the_version_before_a_reload_does_not_retire_the_new_one() {
    let sb = Sandbox::start();
    let env = Env::build(&sb, "", "request_timeout = \"20s\"", "");
    let retired = months_ago(15);
    set_version(&env, &retired);
    let d = Daemon::start(&env);
    // The answer (a 426 for the retired version) comes only after the reload.
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "delay_ms": 6000, "times": 1}]));
    env.drop_draft("slow.md", "Sent before the reload\n");
    // The request reached the sandbox (carrying the retired version) once its one-shot
    // fault is used up.
    assert!(
        wait_until(Duration::from_secs(20), || get_json(&format!(
            "{}/_sandbox/faults",
            sb.url
        ))
        .as_array()
        .is_some_and(|f| f.is_empty())),
        "{}",
        d.log_text()
    );
    set_version(&env, &current_version());
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    d.wait_log("config reloaded", Duration::from_secs(15));
    wait_post_logged(&sb, &d, "Sent before the reload", Duration::from_secs(20));
    let log = d.log_text();
    assert!(
        !log.contains(&format!(
            "no longer serves LinkedIn-Version {}",
            current_version()
        )),
        "the new version was retired: {log}"
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM attempts WHERE post_id = 'slow' AND outcome = 'api_version_retired'"
        ),
        1,
        "{log}"
    );
}

/// Review finding 14: a post in doubt that is then held (here: its resend answered 426) is
/// given up as `in_doubt` when its resend window ends, not a day later at the end of
/// `retry.max_lateness`: it can no longer be resent, so a person must look at it now.
#[test]
fn a_held_post_in_doubt_is_dead_in_doubt_once_its_resend_window_ends() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"500ms\"\nmax_delay = \"1s\"\nresend_window = \"4s\"\n",
    );
    let d = Daemon::start(&env);
    sb.faults(json!([
        {"path": "/rest/posts", "method": "POST", "status": 503, "times": 1},
        {"path": "/rest/posts", "method": "POST", "status": 426, "times": 0}
    ]));
    env.drop_draft("doubt.md", "In doubt, then held\n");
    assert!(
        wait_until(Duration::from_secs(15), || count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE id = 'doubt' AND hold_reason = 'api_version_retired'"
        ) == 1),
        "{}",
        d.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(20), || env.state("doubt").as_deref()
            == Some("dead")),
        "still held: {}",
        d.log_text()
    );
    let (reason, message): (String, String) = env
        .db()
        .query_row(
            "SELECT reason, message FROM dead_letters WHERE post_id = 'doubt'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(reason, "in_doubt");
    assert!(message.contains("resend window"), "{message}");
}

#[test]
fn an_old_version_is_warned_in_the_log_status_and_doctor() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let old = months_ago(11);
    set_version(&env, &old);
    let d = Daemon::start(&env);
    d.wait_log("11 months old", Duration::from_secs(5));
    assert!(d.log_text().contains("WARN"));
    // Still served: posts go out.
    env.drop_draft("ok.md", "Old but served\n");
    wait_post_logged(&sb, &d, "Old but served", Duration::from_secs(10));

    let status = output(&env.lipost(&["status"]));
    assert!(
        status.contains(&format!("linkedin.version {old} is 11 months old")),
        "{status}"
    );
    let doctor = output(&env.lipost(&["doctor"]));
    assert!(
        doctor
            .lines()
            .any(|l| l.starts_with("warn") && l.contains("linkedin.version")),
        "{doctor}"
    );

    // A retired one: doctor's page-role check names the version, not a scope.
    set_version(&env, &months_ago(13));
    let doctor = output(&env.lipost(&["doctor"]));
    let roles = doctor
        .lines()
        .find(|l| l.contains("cannot read page roles"))
        .unwrap_or_else(|| panic!("{doctor}"));
    assert!(
        roles.contains("no longer serves linkedin.version") && !roles.contains("scope"),
        "{doctor}"
    );

    // A young version says nothing.
    set_version(&env, &current_version());
    let status = output(&env.lipost(&["status"]));
    assert!(!status.contains("months old"), "{status}");
}
