//! Every wait has a reason: a due post that is not sent is held in the store with why and
//! until when, and that shows in `show`, `list`, `status`, the log (once), SQL, the systemd
//! STATUS= line, and a `post_held` event. Real binary, real sandbox, real SQLite file.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};

/// `Env::new` with `keys` added to `[accounts.me]` and `extra` appended.
fn env_with(sb: &Sandbox, keys: &str, extra: &str) -> Env {
    let env = Env::new(sb, extra);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "[accounts.me]\nkind = \"member\"\n",
        &format!("[accounts.me]\nkind = \"member\"\n{keys}\n"),
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    env
}

fn count(env: &Env, sql: &str) -> i64 {
    env.db().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn next_midnight_utc() -> DateTime<Utc> {
    (Utc::now().date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

/// The log lines that report `id` starting to wait.
fn hold_lines(log: &str, id: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(" held: ") && l.contains(&format!("post_id={id} ")))
        .count()
}

#[test]
fn a_daily_cap_hold_is_visible_everywhere_logged_once_and_reported_once() {
    let sb = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let events_file = dir.path().join("events.jsonl");
    let hook = dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >> '{}'\necho >> '{}'\n",
            events_file.display(),
            events_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = env_with(
        &sb,
        "daily_cap = 6",
        &format!(
            "\n[notify]\ncommand = [\"{}\"]\nheld_longer_than = \"2s\"\n",
            hook.display()
        ),
    );
    let sock_path = env.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut d = Daemon::start_with_env(&env, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    for i in 0..10 {
        env.drop_draft(&format!("p{i:02}.md"), format!("Post number {i}\n"));
    }
    let held_sql =
        "SELECT COUNT(*) FROM posts WHERE state = 'scheduled' AND hold_reason = 'daily_cap'";
    assert!(
        wait_until(Duration::from_secs(30), || count(&env, held_sql) == 4),
        "{}",
        d.log_text()
    );
    assert!(wait_until(Duration::from_secs(10), || sb.posts().len() == 6));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sb.posts().len(), 6, "the cap holds");
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE state = 'published' AND hold_reason IS NULL"
        ),
        6
    );

    // SQL: the reason and the next 00:00 UTC, also the next try.
    let midnight = next_midnight_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let held: Vec<(String, String, String)> = {
        let db = env.db();
        let mut stmt = db
            .prepare("SELECT id, hold_until, next_attempt_at FROM posts WHERE hold_reason = 'daily_cap' ORDER BY id")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(held.len(), 4);
    for (id, until, next) in &held {
        assert_eq!(until, &midnight, "{id}");
        assert_eq!(next, &midnight, "{id}: a pacing hold ends by time");
    }
    let id = &held[0].0;

    // show: the reason in words, in `timezone`.
    let local = next_midnight_utc()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string();
    let show = out(&env.lipost(&["show", id]));
    assert!(
        show.contains(&format!(
            "held: daily cap of 6 posts reached for account me; goes out after {local} (daily_cap)"
        )),
        "{show}"
    );
    let v: Value = serde_json::from_slice(&env.lipost(&["show", id, "--json"]).stdout).unwrap();
    assert_eq!(v["post"]["hold_reason"], "daily_cap");

    // list: the column.
    let list = out(&env.lipost(&["list"]));
    let line = list.lines().find(|l| l.contains(id.as_str())).unwrap();
    assert!(line.contains(" daily_cap "), "{list}");
    let published = list.lines().filter(|l| l.starts_with("published")).count();
    assert_eq!(published, 6, "{list}");
    assert!(
        list.lines()
            .filter(|l| l.starts_with("published"))
            .all(|l| !l.contains("daily_cap")),
        "{list}"
    );

    // status: per reason and account, text and JSON.
    let status = out(&env.lipost(&["status"]));
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("daily_cap")
                && l.contains(" me ")
                && l.contains(" 4 ")),
        "{status}"
    );
    let v: Value = serde_json::from_slice(&env.lipost(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        v["holds"],
        json!([{"reason": "daily_cap", "account": "me", "posts": 4, "until": v["holds"][0]["until"]}])
    );
    assert_eq!(
        v["holds"][0]["until"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        next_midnight_utc()
    );

    // STATUS= names the biggest hold.
    let mut buf = [0u8; 4096];
    let got = wait_until(Duration::from_secs(10), || {
        std::iter::from_fn(|| {
            sock.recv(&mut buf)
                .ok()
                .map(|n| String::from_utf8_lossy(&buf[..n]).to_string())
        })
        .any(|m| m.contains("STATUS=") && m.contains("4 held (daily_cap)"))
    });
    assert!(got, "no STATUS= line naming the hold");

    // post_held: once per held post, after held_longer_than.
    assert!(
        wait_until(Duration::from_secs(20), || events(&events_file)
            .iter()
            .filter(|e| e["kind"] == "post_held")
            .count()
            == 4),
        "{:?}\n{}",
        events(&events_file),
        d.log_text()
    );
    let e = events(&events_file)
        .into_iter()
        .find(|e| e["kind"] == "post_held" && e["post_id"] == id.as_str())
        .unwrap();
    assert_eq!(e["reason"], "daily_cap");
    assert_eq!(e["account"], "me");

    // The log: once per post at INFO.
    let log = d.log_text();
    for (id, _, _) in &held {
        assert_eq!(hold_lines(&log, id), 1, "{log}");
        assert!(log.lines().any(|l| l.contains("INFO")
            && l.contains(&format!("post_id={id} "))
            && l.contains("daily cap of 6 posts reached")));
    }

    // A restart does not end a hold that ends by time, nor log or report it again.
    d.term(Duration::from_secs(10));
    let d = Daemon::start(&env);
    assert!(wait_until(Duration::from_secs(10), || {
        count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE hold_until IS NOT NULL AND hold_reason = 'daily_cap'",
        ) == 4
    }));
    std::thread::sleep(Duration::from_secs(3));
    let log = d.log_text();
    for (id, _, _) in &held {
        assert_eq!(hold_lines(&log, id), 0, "{log}");
    }
    assert_eq!(
        events(&events_file)
            .iter()
            .filter(|e| e["kind"] == "post_held")
            .count(),
        4
    );
    assert_eq!(sb.posts().len(), 6);
}

#[test]
fn min_spacing_is_a_hold_until_the_next_allowed_time() {
    let sb = Sandbox::start();
    let env = env_with(&sb, "min_spacing = \"1h\"", "");
    let d = Daemon::start(&env);
    env.drop_draft("first.md", "First\n");
    assert!(wait_until(Duration::from_secs(15), || env
        .state("first")
        .as_deref()
        == Some("published")));
    env.drop_draft("second.md", "Second\n");
    assert!(
        wait_until(Duration::from_secs(15), || count(
            &env,
            "SELECT COUNT(*) FROM posts WHERE id = 'second' AND hold_reason = 'min_spacing'"
        ) == 1),
        "{}",
        d.log_text()
    );
    let (published, until, next): (String, String, String) = env
        .db()
        .query_row(
            "SELECT (SELECT published_at FROM posts WHERE id = 'first'), hold_until, next_attempt_at FROM posts WHERE id = 'second'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let published: DateTime<Utc> = published.parse().unwrap();
    let until: DateTime<Utc> = until.parse().unwrap();
    // An hour after it, plus the millisecond the stored time may have lost.
    assert_eq!(
        until,
        published + chrono::Duration::hours(1) + chrono::Duration::milliseconds(1)
    );
    assert_eq!(next.parse::<DateTime<Utc>>().unwrap(), until);
    let show = out(&env.lipost(&["show", "second"]));
    assert!(
        show.contains("held: account me posts at most once every 1h; goes out after"),
        "{show}"
    );
    assert_eq!(sb.posts().len(), 1);
    assert_eq!(hold_lines(&d.log_text(), "second"), 1, "{}", d.log_text());
}

/// The pacing a person changes applies to the posts it holds now: a raised `daily_cap`
/// (reload) or a shorter `min_spacing` (restart) lets them go at once, as the hold table's
/// "what a person does" says.
#[test]
fn a_reload_or_restart_with_looser_pacing_releases_the_posts_it_held() {
    // The daily cap counts from 00:00 UTC: not across it.
    let to_midnight = next_midnight_utc() - Utc::now();
    if to_midnight < chrono::Duration::seconds(60) {
        std::thread::sleep(
            (to_midnight + chrono::Duration::seconds(2))
                .to_std()
                .unwrap(),
        );
    }
    let sb = Sandbox::start();
    let env = env_with(&sb, "daily_cap = 1", "");
    let d = Daemon::start(&env);
    let held = |id: &str, reason: &str| {
        count(
            &env,
            &format!("SELECT COUNT(*) FROM posts WHERE id = '{id}' AND state = 'scheduled' AND hold_reason = '{reason}' AND hold_until IS NOT NULL"),
        ) == 1
    };
    let set_keys = |keys: &str| {
        let text = std::fs::read_to_string(&env.config).unwrap();
        let start = text.find("[accounts.me]").unwrap();
        let end = text.find("[accounts.acme]").unwrap();
        let text = format!(
            "{}[accounts.me]\nkind = \"member\"\n{keys}\n\n{}",
            &text[..start],
            &text[end..]
        );
        std::fs::write(&env.config, text).unwrap();
    };
    env.drop_draft("first.md", "First of the day\n");
    assert!(wait_until(Duration::from_secs(15), || env
        .state("first")
        .as_deref()
        == Some("published")));
    env.drop_draft("second.md", "Second of the day\n");
    assert!(
        wait_until(Duration::from_secs(15), || held("second", "daily_cap")),
        "{}",
        d.log_text()
    );
    set_keys("daily_cap = 5");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(15), || env.state("second").as_deref()
            == Some("published")),
        "{}",
        d.log_text()
    );

    // A pacing that still applies after a reload holds the post again.
    set_keys("daily_cap = 5\nmin_spacing = \"1h\"");
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    assert!(wait_until(Duration::from_secs(10), || d
        .log_text()
        .contains("config reloaded")));
    env.drop_draft("third.md", "Third of the day\n");
    assert!(
        wait_until(Duration::from_secs(15), || held("third", "min_spacing")),
        "{}",
        d.log_text()
    );
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_secs(2));
    assert!(held("third", "min_spacing"), "{}", d.log_text());
    assert_eq!(sb.posts().len(), 2);
    drop(d);

    set_keys("daily_cap = 5");
    let d = Daemon::start(&env);
    assert!(
        wait_until(Duration::from_secs(15), || env.state("third").as_deref()
            == Some("published")),
        "{}",
        d.log_text()
    );
    assert_eq!(sb.posts().len(), 3);
}

#[test]
fn a_429_backoff_is_a_rate_limited_hold_until_the_next_try() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 429, "times": 1, "retry_after": 120}]));
    env.drop_draft("later.md", "Told to come back later\n");
    assert!(wait_until(Duration::from_secs(15), || {
        count(
        &env,
        "SELECT COUNT(*) FROM posts WHERE id = 'later' AND state = 'scheduled' AND hold_reason = 'rate_limited'"
    ) == 1
    }));
    let (until, next, tried): (String, String, String) = env
        .db()
        .query_row(
            "SELECT hold_until, p.next_attempt_at, a.next_attempt_at FROM posts p JOIN attempts a ON a.post_id = p.id WHERE p.id = 'later'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(until, next);
    assert_eq!(until, tried, "held until the next try");
    let show = out(&env.lipost(&["show", "later"]));
    assert!(
        show.contains("held: LinkedIn rate-limited account me's last try (429; its limits are per member, so its other posts wait too); next try after"),
        "{show}"
    );
    let list = out(&env.lipost(&["list"]));
    assert!(list.contains(" rate_limited "), "{list}");
}

#[test]
fn a_post_held_again_for_the_same_reason_is_logged_once() {
    let sb = Sandbox::start();
    let env = env_with(&sb, "min_spacing = \"3s\"", "");
    let d = Daemon::start(&env);
    env.drop_draft("a.md", "A\n");
    assert!(wait_until(Duration::from_secs(15), || env
        .state("a")
        .as_deref()
        == Some("published")));
    // Both wait for `a`'s spacing; then `b` goes and `c` waits for `b`'s: `c` is held twice
    // for `min_spacing`, which is one hold, logged once.
    env.drop_draft("b.md", "B\n");
    env.drop_draft("c.md", "C\n");
    assert!(
        wait_until(Duration::from_secs(30), || env.state("c").as_deref()
            == Some("published")),
        "{}",
        d.log_text()
    );
    let log = d.log_text();
    assert_eq!(hold_lines(&log, "c"), 1, "{log}");
    assert_eq!(hold_lines(&log, "b"), 1, "{log}");
    let times: Vec<DateTime<Utc>> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            env.db()
                .query_row("SELECT published_at FROM posts WHERE id = ?1", [id], |r| {
                    r.get::<_, String>(0)
                })
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        times[1] - times[0] >= chrono::Duration::seconds(3),
        "{times:?}"
    );
    assert!(
        times[2] - times[1] >= chrono::Duration::seconds(3),
        "{times:?}"
    );
}

#[test]
fn a_spacing_hold_that_ends_during_the_look_that_set_it_is_not_slept_through() {
    // With a spacing of a few milliseconds, a post's hold often ends while the look that
    // set it is still committing. The scheduler must wake for it then, not sleep until an
    // unrelated event: here there is none, so a missed hold would strand the rest.
    let sb = Sandbox::start();
    let env = env_with(&sb, "min_spacing = \"2ms\"\ndaily_cap = 100", "");
    for i in 0..40 {
        env.drop_draft(&format!("s{i:02}.md"), format!("Spaced {i}\n"));
    }
    let d = Daemon::start(&env);
    assert!(
        wait_until(Duration::from_secs(30), || sb.posts().len() == 40),
        "{} of 40 sent; {}",
        sb.posts().len(),
        d.log_text()
    );
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM posts WHERE state = 'published'"),
        40
    );
}
