//! Delivery guarantees: backoff, dead letters, operator commands, in-doubt resolution,
//! graceful shutdown, pacing. Real binary, real sandbox, real SQLite.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::json;

#[derive(Debug)]
struct Row {
    outcome: String,
    status: Option<i64>,
    finished: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
    message: Option<String>,
}

fn attempts(env: &Env, id: &str) -> Vec<Row> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT outcome, http_status, finished_at, next_attempt_at, message FROM attempts WHERE post_id = ?1 ORDER BY id")
        .unwrap();
    let t = |s: Option<String>| s.map(|s| s.parse::<DateTime<Utc>>().unwrap());
    stmt.query_map([id], |r| {
        Ok(Row {
            outcome: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            status: r.get(1)?,
            finished: t(r.get(2)?),
            next: t(r.get(3)?),
            message: r.get(4)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn wait_state(env: &Env, id: &str, state: &str, secs: u64) {
    let ok = wait_until(Duration::from_secs(secs), || {
        env.state(id).as_deref() == Some(state)
    });
    assert!(
        ok,
        "{id} never became {state}; it is {:?}; attempts {:?}",
        env.state(id),
        attempts(env, id)
    );
}

fn waits(rows: &[Row]) -> Vec<f64> {
    rows.iter()
        .filter_map(|r| Some((r.next? - r.finished?).num_milliseconds() as f64 / 1000.0))
        .collect()
}

#[test]
fn three_429s_back_off_with_growing_waits_then_publish() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"1s\"\nmax_delay = \"8s\"\nmax_attempts = 2\n",
    );
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 429, "times": 3}]));
    env.drop_draft("busy.md", "Rate limited three times\n");
    wait_state(&env, "busy", "published", 20);
    let rows = attempts(&env, "busy");
    let outcomes: Vec<_> = rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["rate_limited", "rate_limited", "rate_limited", "published"]
    );
    assert_eq!(rows[0].status, Some(429));
    let w = waits(&rows);
    assert_eq!(w.len(), 3);
    assert!(w[0] >= 0.45 && w[0] <= 1.05, "{w:?}");
    assert!(
        w[1] >= w[0] && w[2] >= w[1] && w[2] >= 1.95,
        "waits must grow: {w:?}"
    );
    // 429s count against lateness, not attempts: max_attempts = 2 did not kill it.
    assert_eq!(sb.posts().len(), 1);
}

#[test]
fn retry_after_is_honoured() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"100ms\"\nmax_delay = \"200ms\"\n",
    );
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 429, "times": 1, "retry_after": 2}]));
    env.drop_draft("later.md", "Told to come back in two seconds\n");
    wait_state(&env, "later", "published", 15);
    let rows = attempts(&env, "later");
    let w = waits(&rows);
    assert!((w[0] - 2.0).abs() < 0.1, "{w:?}");
    let sent: DateTime<Utc> = sb.posts()[0]["received_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent >= rows[0].next.unwrap());

    // On a 503 too (the notes: honour one when present), within the resend window.
    sb.faults(json!([{"path": "/rest/posts", "status": 503, "times": 1, "retry_after": 2}]));
    env.drop_draft("busy.md", "Told to come back after a 503\n");
    wait_state(&env, "busy", "published", 15);
    let rows = attempts(&env, "busy");
    assert_eq!(rows[0].outcome, "in_doubt");
    let w = waits(&rows);
    assert!((w[0] - 2.0).abs() < 0.1, "{w:?}");
    assert_eq!(
        sb.posts()
            .iter()
            .filter(|p| p["text"] == "Told to come back after a 503")
            .count(),
        1
    );
}

#[test]
fn http_503_until_attempts_run_out_goes_to_dead_letters_with_the_last_message() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"200ms\"\nmax_delay = \"400ms\"\nmax_attempts = 3\n",
    );
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 503, "times": 0}]));
    env.drop_draft("down.md", "LinkedIn is down\n");
    wait_state(&env, "down", "dead", 15);
    let rows = attempts(&env, "down");
    let outcomes: Vec<_> = rows.iter().map(|r| r.outcome.as_str()).collect();
    // A 5xx may come after LinkedIn created the post: each is in doubt, and so is the letter.
    assert_eq!(outcomes, ["in_doubt", "in_doubt", "dead"]);
    let (reason, status, message): (String, i64, String) = env
        .db()
        .query_row(
            "SELECT reason, http_status, message FROM dead_letters WHERE post_id = 'down'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((reason.as_str(), status), ("in_doubt", 503));
    assert!(
        message.starts_with("Service Unavailable") && message.contains("check the feed"),
        "{message}"
    );
}

#[test]
fn a_400_is_dead_after_one_attempt_and_lipost_retry_brings_it_back() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 400, "times": 1}]));
    env.drop_draft("bad-request.md", "Refused once\n");
    wait_state(&env, "bad-request", "dead", 10);
    assert_eq!(attempts(&env, "bad-request").len(), 1);
    let dead = String::from_utf8(env.lipost(&["dead"]).stdout).unwrap();
    assert!(
        dead.contains("bad-request") && dead.contains("rejected"),
        "{dead}"
    );

    let out = env.lipost(&["retry", "bad-request"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_state(&env, "bad-request", "published", 10);
    assert_eq!(attempts(&env, "bad-request").len(), 2, "history is kept");
    let dead = String::from_utf8(env.lipost(&["dead"]).stdout).unwrap();
    assert!(dead.contains("no dead letters"), "{dead}");
}

#[test]
fn repeated_429s_wait_until_just_after_midnight_utc() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"100ms\"\nmax_delay = \"200ms\"\n",
    );
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 429, "until_midnight_utc": true}]));
    env.drop_draft("quota.md", "The daily quota is spent\n");
    assert!(wait_until(Duration::from_secs(15), || {
        attempts(&env, "quota")
            .iter()
            .any(|r| r.outcome == "rate_limited_until_reset")
    }));
    let rows = attempts(&env, "quota");
    let last = rows.last().unwrap();
    let midnight = (Utc::now().date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let next = last.next.unwrap();
    assert!(
        next > midnight && next < midnight + chrono::Duration::minutes(2),
        "{next}"
    );
    assert_eq!(env.state("quota").as_deref(), Some("scheduled"));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        attempts(&env, "quota").len(),
        rows.len(),
        "no hammering while the quota is spent"
    );
}

#[test]
fn once_the_quota_is_spent_the_members_other_posts_wait_without_a_call() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"100ms\"\nmax_delay = \"200ms\"\n",
    );
    let d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 429, "until_midnight_utc": true}]));
    env.drop_draft("first.md", "The daily quota is spent\n");
    assert!(wait_until(Duration::from_secs(15), || {
        attempts(&env, "first")
            .iter()
            .any(|r| r.outcome == "rate_limited_until_reset")
    }));
    let midnight = (Utc::now().date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    // Due now, one as the member and one as the page it posts for: LinkedIn's limit is
    // the member's, so neither spends calls on the refusal the first post met.
    env.drop_draft("second.md", "Also today\n");
    env.drop_draft("page.md", draft("account = \"acme\"", "The page too"));
    for id in ["second", "page"] {
        let ok = wait_until(Duration::from_secs(10), || {
            env.db()
                .query_row(
                    "SELECT hold_reason, hold_until FROM posts WHERE id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, Option<String>>(1)?,
                        ))
                    },
                )
                .is_ok_and(|(reason, until)| {
                    reason.as_deref() == Some("rate_limited")
                        && until.is_some_and(|u| u.parse::<DateTime<Utc>>().unwrap() > midnight)
                })
        });
        assert!(ok, "{id} is not held until the reset:\n{}", d.log_text());
    }
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        attempts(&env, "second").is_empty(),
        "{:?}",
        attempts(&env, "second")
    );
    assert!(
        attempts(&env, "page").is_empty(),
        "{:?}",
        attempts(&env, "page")
    );
    let show = String::from_utf8_lossy(&env.lipost(&["show", "second"]).stdout).to_string();
    assert!(show.contains("rate_limited"), "{show}");
}

#[test]
fn a_retry_wait_survives_a_restart() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[retry]\nbase_delay = \"4s\"\nmax_delay = \"8s\"\n");
    let mut d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 503, "times": 1}]));
    env.drop_draft("patient.md", "Wait for me\n");
    assert!(wait_until(Duration::from_secs(10), || attempts(
        &env, "patient"
    )
    .iter()
    .any(|r| r.next.is_some())));
    d.kill9();
    let next = attempts(&env, "patient")[0].next.unwrap();
    let _d = Daemon::start(&env);
    let post = wait_post(&sb, |p| p["text"] == "Wait for me", Duration::from_secs(15));
    let sent: DateTime<Utc> = post["received_at"].as_str().unwrap().parse().unwrap();
    assert!(
        sent >= next,
        "sent at {sent}, before the stored next try {next}"
    );
    assert!(sent - next < chrono::Duration::seconds(1));
}

#[test]
fn sigterm_during_a_slow_request_lets_it_finish_and_exits_0() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "delay_ms": 1500, "times": 1}]));
    env.drop_draft("slow.md", "Slow but sure\n");
    wait_state(&env, "slow", "publishing", 10);
    let status = d.term(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(env.state("slow").as_deref(), Some("published"));
}

#[test]
fn sigterm_past_the_shutdown_timeout_leaves_the_post_scheduled_in_doubt_not_stuck() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[publisher]\nshutdown_timeout = \"300ms\"\n");
    let mut d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "delay_ms": 2500, "times": 1}]));
    env.drop_draft("slower.md", "Slower still\n");
    wait_state(&env, "slower", "publishing", 10);
    let status = d.term(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(env.state("slower").as_deref(), Some("scheduled"));
    // The next run resolves it: the slow request landed, the resend is a duplicate.
    std::thread::sleep(Duration::from_millis(2500));
    let _d = Daemon::start(&env);
    wait_state(&env, "slower", "published", 10);
    assert_eq!(sb.posts().len(), 1, "never twice");
}

#[test]
fn sigterm_gives_back_a_claimed_post_still_waiting_for_its_turn_unsent() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[publisher]\nmax_concurrent = 1\n");
    let mut d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "delay_ms": 1500, "times": 1}]));
    env.drop_draft("ahead.md", "Sent first, slowly\n");
    wait_state(&env, "ahead", "publishing", 10);
    // Claimed one batch ahead, waiting for the one request permit.
    env.drop_draft("behind.md", "Waiting its turn\n");
    wait_state(&env, "behind", "publishing", 10);
    let status = d.term(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(env.state("ahead").as_deref(), Some("published"));
    assert_eq!(env.state("behind").as_deref(), Some("scheduled"));
    assert!(attempts(&env, "behind").is_empty(), "nothing was tried");
    let doubt: Option<String> = env
        .db()
        .query_row(
            "SELECT in_doubt_since FROM posts WHERE id = 'behind'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(doubt, None, "never sent, so not in doubt");
    assert_eq!(sb.posts().len(), 1);
    let _d = Daemon::start(&env);
    wait_state(&env, "behind", "published", 10);
    assert_eq!(attempts(&env, "behind").len(), 1);
    assert_eq!(sb.posts().len(), 2);
}

#[test]
fn the_wake_file_is_created_at_start_and_its_removal_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    let wake = env.wake_file();
    let mode = std::fs::metadata(&wake).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::remove_file(&wake).unwrap();
    d.wait_log("the wake file was removed", Duration::from_secs(5));
    // Still working: the next post goes out without the wake file.
    env.drop_draft("later.md", "After the wake file went\n");
    wait_state(&env, "later", "published", 10);
    assert!(d.alive());
}

#[test]
fn in_doubt_within_the_window_resends_and_takes_the_duplicate_urn() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "drop": true, "times": 1}]));
    env.drop_draft("lost.md", "The answer got lost\n");
    wait_state(&env, "lost", "published", 10);
    let posts = sb.posts();
    assert_eq!(posts.len(), 1, "never twice");
    let urn: String = env
        .db()
        .query_row("SELECT post_urn FROM posts WHERE id = 'lost'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(urn, posts[0]["urn"].as_str().unwrap());
    let outcomes: Vec<_> = attempts(&env, "lost")
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, ["in_doubt", "resolved_duplicate"]);
}

#[test]
fn an_in_doubt_page_post_is_found_on_the_page_without_a_resend() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "drop": true, "times": 1}]));
    env.drop_draft(
        "page.md",
        draft("account = \"acme\"", "Page post, answer lost"),
    );
    wait_state(&env, "page", "published", 10);
    assert_eq!(sb.posts().len(), 1);
    let rows = attempts(&env, "page");
    let outcomes: Vec<_> = rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["in_doubt", "resolved_found"]);
}

/// The built-in sandbox (no `api_base_url`) starts afresh at every run, and the database
/// keeps last run's URNs: this run's posts must get new ones. They used to start again at
/// the same number, so after a restart every new post was dead as `duplicate` of an old one.
#[test]
fn with_the_built_in_sandbox_posts_after_a_restart_get_urns_of_their_own() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(&format!("api_base_url = \"{}\"\n", sb.url), "");
    std::fs::write(&env.config, text).unwrap();
    let mut d = Daemon::start(&env);
    env.drop_draft("before.md", "Before the restart\n");
    wait_state(&env, "before", "published", 10);
    d.term(Duration::from_secs(10));
    let _d = Daemon::start(&env);
    env.drop_draft("after.md", "After the restart\n");
    wait_state(&env, "after", "published", 10);
    assert_ne!(urn_of(&env, "before"), urn_of(&env, "after"));
    assert!(
        sb.posts().is_empty(),
        "nothing may reach the test's own sandbox"
    );
}

#[test]
fn a_resend_that_could_reach_linkedin_past_the_window_is_not_sent() {
    // The window is checked again right before the resend leaves. Here the page lookup
    // before it takes 2.5 s: the resend would leave 3.5 s after the try in doubt, and could
    // reach LinkedIn up to the 3 s request timeout later, past the 5 s resend window. Without
    // the slow lookup it would be in time (1 s + 3 s), so the lookup is what stops it.
    let sb = Sandbox::start();
    sb.configure(json!({"duplicate_window_secs": 8}));
    let env = Env::build(
        &sb,
        "",
        "request_timeout = \"3s\"",
        "\n[retry]\nbase_delay = \"1s\"\nmax_delay = \"1s\"\nresend_window = \"5s\"\n",
    );
    let _d = Daemon::start(&env);
    sb.faults(json!([
        {"path": "/rest/posts", "method": "POST", "stored": true, "status": 502, "times": 1},
        {"path": "/rest/posts", "method": "GET", "status": 500, "delay_ms": 2500, "times": 1}
    ]));
    env.drop_draft("slow.md", draft("account = \"acme\"", "Stored, then a 502"));
    wait_state(&env, "slow", "dead", 20);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sb.posts().len(), 1, "{:?}", sb.posts());
    assert_eq!(dead_reason(&env, "slow"), "in_doubt");
    let rows = attempts(&env, "slow");
    let last = rows.last().unwrap().message.clone().unwrap_or_default();
    assert!(
        last.contains("could reach LinkedIn past the 5s resend window"),
        "{last}"
    );
}

#[test]
fn in_doubt_past_the_window_is_dead_as_in_doubt_never_resent() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[retry]\nbase_delay = \"300ms\"\nmax_delay = \"600ms\"\nresend_window = \"1s\"\nmax_attempts = 20\n");
    let _d = Daemon::start(&env);
    // Every answer is lost: the first try lands, the resends are duplicates nobody hears.
    sb.faults(json!([{"path": "/rest/posts", "drop": true, "times": 0}]));
    env.drop_draft("silent.md", "Nobody answers\n");
    wait_state(&env, "silent", "dead", 15);
    assert_eq!(sb.posts().len(), 1);
    let reason: String = env
        .db()
        .query_row(
            "SELECT reason FROM dead_letters WHERE post_id = 'silent'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reason, "in_doubt");
    let rows = attempts(&env, "silent");
    let last = rows.last().unwrap();
    assert!(
        last.message
            .as_deref()
            .unwrap()
            .contains("lipost mark-published silent URN"),
        "{last:?}"
    );
    // The operator found it and records it by hand.
    let urn = sb.posts()[0]["urn"].as_str().unwrap().to_string();
    let out = env.lipost(&["mark-published", "silent", &urn]);
    assert!(out.status.success());
    assert_eq!(env.state("silent").as_deref(), Some("published"));
}

/// A URN belongs to one post, also when a person records it: two posts holding one URN
/// would make `lipost delete` of one remove the other from LinkedIn.
#[test]
fn mark_published_refuses_a_urn_another_post_holds() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    env.drop_draft("first.md", "The first post\n");
    wait_state(&env, "first", "published", 15);
    let urn = sb.posts()[0]["urn"].as_str().unwrap().to_string();
    sb.faults(json!([{"path": "/rest/posts", "status": 400}]));
    env.drop_draft("second.md", "The second post\n");
    wait_state(&env, "second", "dead", 15);
    let out = env.lipost(&["mark-published", "second", &urn]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{urn} is already recorded for post \"first\"")),
        "{err}"
    );
    assert_eq!(env.state("second").as_deref(), Some("dead"));
    let holders: i64 = env
        .db()
        .query_row(
            "SELECT COUNT(*) FROM posts WHERE post_urn = ?1",
            [&urn],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(holders, 1);
}

#[test]
fn pacing_spaces_an_accounts_posts() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[accounts.paced]\nkind = \"member\"\nmin_spacing = \"2s\"\n",
    );
    let _d = Daemon::start(&env);
    for i in 0..3 {
        env.drop_draft(
            &format!("p{i}.md"),
            draft("account = \"paced\"", &format!("Paced post {i}")),
        );
    }
    env.drop_draft("other.md", "Another account is not held up\n");
    assert!(wait_until(Duration::from_secs(15), || sb.posts().len() == 4));
    let mut times: Vec<DateTime<Utc>> = sb
        .posts()
        .iter()
        .filter(|p| p["author"] == "urn:li:person:sbx-paced")
        .map(|p| p["received_at"].as_str().unwrap().parse().unwrap())
        .collect();
    times.sort();
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= chrono::Duration::milliseconds(1990),
            "{times:?}"
        );
    }
    let other: DateTime<Utc> = sb
        .posts()
        .iter()
        .find(|p| p["text"] == "Another account is not held up")
        .unwrap()["received_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        other < times[2],
        "the other account waited for the paced one"
    );
}

#[test]
fn cancel_withdraws_a_scheduled_post() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    env.drop_draft(
        "later.md",
        draft(&format!("publish_at = \"{}\"", in_secs(2)), "Never mind"),
    );
    wait_state(&env, "later", "scheduled", 5);
    let out = env.lipost(&["cancel", "later"]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_secs(3));
    assert!(sb.posts().is_empty());
    assert_eq!(env.state("later").as_deref(), Some("cancelled"));
    let out = env.lipost(&["cancel", "later"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is cancelled"));
}

#[test]
fn a_post_in_doubt_is_cancelled_only_with_force_and_can_still_be_recorded_as_found() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"60s\"\nmax_delay = \"60s\"\n",
    );
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "stored": true, "status": 504, "times": 1}]));
    env.drop_draft("maybe.md", "Stored, then a 504\n");
    assert!(wait_until(Duration::from_secs(10), || !attempts(
        &env, "maybe"
    )
    .is_empty()));
    assert_eq!(env.state("maybe").as_deref(), Some("scheduled"));
    // It may be live: a plain cancel would take nothing off LinkedIn.
    let out = env.lipost(&["cancel", "maybe"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("may already be on LinkedIn (in_doubt)")
            && said.contains("lipost mark-published maybe URN")
            && said.contains("lipost cancel maybe --force"),
        "{said}"
    );
    assert_eq!(env.state("maybe").as_deref(), Some("scheduled"));
    assert!(env.lipost(&["cancel", "maybe", "--force"]).status.success());
    assert_eq!(env.state("maybe").as_deref(), Some("cancelled"));
    // Then found on LinkedIn after all: recorded, so `delete` can take it down.
    let urn = sb.posts()[0]["urn"].as_str().unwrap().to_string();
    let out = env.lipost(&["mark-published", "maybe", &urn]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.state("maybe").as_deref(), Some("published"));
    assert_eq!(urn_of(&env, "maybe"), Some(urn));
    assert_eq!(sb.posts().len(), 1);
}

#[test]
fn a_cancelled_post_whose_slot_another_holds_can_still_be_recorded_as_found() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let later = |id: &str| {
        draft(
            &format!("id = \"{id}\"\npublish_at = \"{}\"", in_secs(3600)),
            id,
        )
    };
    env.drop_draft("a.md", later("a"));
    env.drop_draft("b.md", later("b"));
    wait_state(&env, "a", "scheduled", 10);
    wait_state(&env, "b", "scheduled", 10);
    drop(d);
    assert!(env.lipost(&["cancel", "a"]).status.success());
    // The slot a held, taken by b since (as `next-slot` does).
    env.db()
        .execute_batch(
            "UPDATE posts SET slot_at = '2030-01-01T09:00:00.000Z' WHERE id IN ('a', 'b');",
        )
        .unwrap();
    let o = env.lipost(&["mark-published", "a", "urn:li:share:5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.state("a").as_deref(), Some("published"));
    let slots: (Option<String>, Option<String>) = env
        .db()
        .query_row(
            "SELECT (SELECT slot_at FROM posts WHERE id = 'a'), (SELECT slot_at FROM posts WHERE id = 'b')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(slots, (None, Some("2030-01-01T09:00:00.000Z".into())));
}

fn urn_of(env: &Env, id: &str) -> Option<String> {
    env.db()
        .query_row("SELECT post_urn FROM posts WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

fn dead_reason(env: &Env, id: &str) -> String {
    env.db()
        .query_row(
            "SELECT reason FROM dead_letters WHERE post_id = ?1 ORDER BY id DESC LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

fn outcomes(env: &Env, id: &str) -> Vec<String> {
    attempts(env, id).into_iter().map(|r| r.outcome).collect()
}

#[test]
fn a_502_after_linkedin_stored_the_post_is_published_once_with_that_urn() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "stored": true, "status": 502, "times": 1}]));
    env.drop_draft("gateway.md", "Created, then the gateway failed\n");
    wait_state(&env, "gateway", "published", 15);
    let posts = sb.posts();
    assert_eq!(posts.len(), 1, "never twice: {posts:?}\n{}", d.log_text());
    assert_eq!(
        urn_of(&env, "gateway").as_deref(),
        posts[0]["urn"].as_str(),
        "recorded with the URN LinkedIn gave it"
    );
    assert_eq!(
        outcomes(&env, "gateway"),
        ["in_doubt", "resolved_duplicate"]
    );
    assert_eq!(attempts(&env, "gateway")[0].status, Some(502));
}

#[test]
fn a_201_without_a_urn_is_in_doubt_and_resolved_not_rejected() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "omit_id": true, "times": 1}]));
    env.drop_draft("no-id.md", "Created without a name\n");
    wait_state(&env, "no-id", "published", 15);
    let posts = sb.posts();
    assert_eq!(posts.len(), 1, "never twice");
    assert_eq!(urn_of(&env, "no-id").as_deref(), posts[0]["urn"].as_str());
    let rows = attempts(&env, "no-id");
    assert_eq!(rows[0].outcome, "in_doubt");
    assert_eq!(rows[0].status, Some(201));
    assert_eq!(rows[1].outcome, "resolved_duplicate");
}

#[test]
fn a_second_draft_with_the_same_text_in_the_window_is_a_duplicate_not_the_first_posts_twin() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft("first.md", "Said once\n");
    wait_state(&env, "first", "published", 10);
    env.drop_draft("second.md", "Said once\n");
    wait_state(&env, "second", "dead", 10);
    assert_eq!(dead_reason(&env, "second"), "duplicate");
    // The log says what the store recorded, not what the answer alone suggested.
    d.wait_log("this post is dead as a duplicate", Duration::from_secs(5));
    let log = d.log_text();
    let second: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("post_id=second"))
        .collect();
    assert!(
        !second.iter().any(|l| l.contains(" published")),
        "the dead post is logged as published: {second:#?}"
    );
    assert_eq!(
        urn_of(&env, "second"),
        None,
        "the first post's URN is not its"
    );
    assert_eq!(sb.posts().len(), 1);
}

#[test]
fn a_recurring_page_text_is_not_matched_to_last_weeks_post() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    let text = "Happy Friday, team!";
    // Posted on the page by hand a week ago: not in our store, same words.
    post_json(
        &format!("{}/_sandbox/posts", sb.url),
        &json!({
            "author": "urn:li:organization:2414183",
            "commentary": text,
            "created_at": (Utc::now() - chrono::Duration::days(7)).to_rfc3339(),
        }),
    );
    let old = sb.posts()[0]["urn"].as_str().unwrap().to_string();
    // The connection is lost before LinkedIn stored anything: in doubt, and only last week's
    // post carries the words.
    sb.faults(
        json!([{"path": "/rest/posts", "method": "POST", "drop": true, "status": 500, "times": 1}]),
    );
    env.drop_draft("friday.md", draft("account = \"acme\"", text));
    wait_state(&env, "friday", "published", 15);
    let posts = sb.posts();
    assert_eq!(posts.len(), 2, "the new post went out once: {posts:?}");
    let urn = urn_of(&env, "friday").unwrap();
    assert_ne!(urn, old, "matched to last week's post");
    assert_eq!(urn, posts[1]["urn"].as_str().unwrap());
    assert_eq!(
        outcomes(&env, "friday"),
        ["in_doubt", "published_after_doubt"]
    );
}

#[test]
fn an_in_doubt_page_post_pushed_off_the_first_page_is_still_found() {
    let sb = Sandbox::start();
    // An API whose finder pages hold 4 posts at most, whatever `count` asks.
    sb.configure(json!({"finder_max_count": 4}));
    let env = Env::new(&sb, "\n[retry]\nbase_delay = \"3s\"\nmax_delay = \"3s\"\n");
    let _d = Daemon::start(&env);
    // Stored, then the answer is lost: in doubt.
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "drop": true, "times": 1}]));
    env.drop_draft(
        "launch.md",
        draft("account = \"acme\"", "Our launch, on the page"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !outcomes(&env, "launch").contains(&"in_doubt".to_string()) {
        assert!(std::time::Instant::now() < deadline, "never in doubt");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Before the next try, the page posts twelve times from elsewhere: ours is on page four.
    for n in 0..12 {
        post_json(
            &format!("{}/_sandbox/posts", sb.url),
            &json!({
                "author": "urn:li:organization:2414183",
                "commentary": format!("Posted by hand, number {n}"),
                "created_at": Utc::now().to_rfc3339(),
            }),
        );
    }
    wait_state(&env, "launch", "published", 15);
    let posts = sb.posts();
    assert_eq!(posts.len(), 13, "never twice: {posts:?}");
    assert_eq!(urn_of(&env, "launch").as_deref(), posts[0]["urn"].as_str());
    assert_eq!(
        outcomes(&env, "launch"),
        ["in_doubt", "resolved_found"],
        "found by the lookup, not by a resend"
    );
}

#[test]
fn an_in_doubt_page_post_is_not_matched_to_a_urn_another_post_holds() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    sb.configure(json!({"duplicate_window_secs": 1}));
    let _d = Daemon::start(&env);
    let text = "Weekly update";
    env.drop_draft("week1.md", draft("account = \"acme\"", text));
    wait_state(&env, "week1", "published", 10);
    std::thread::sleep(Duration::from_millis(1200));
    // The connection is lost before LinkedIn stored anything: in doubt, and week1's post is
    // on the page within the clock-skew allowance, with the same words.
    sb.faults(
        json!([{"path": "/rest/posts", "method": "POST", "drop": true, "status": 500, "times": 1}]),
    );
    env.drop_draft("week2.md", draft("account = \"acme\"", text));
    wait_state(&env, "week2", "published", 15);
    let posts = sb.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_ne!(urn_of(&env, "week2"), urn_of(&env, "week1"));
    assert_eq!(urn_of(&env, "week2").as_deref(), posts[1]["urn"].as_str());
    assert_eq!(
        outcomes(&env, "week2"),
        ["in_doubt", "published_after_doubt"]
    );
}

#[test]
fn an_in_doubt_post_that_runs_out_of_attempts_is_dead_as_in_doubt() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"200ms\"\nmax_delay = \"400ms\"\nmax_attempts = 2\nresend_window = \"60s\"\n",
    );
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "drop": true, "times": 0}]));
    env.drop_draft("unheard.md", "Nobody hears back\n");
    wait_state(&env, "unheard", "dead", 15);
    assert_eq!(dead_reason(&env, "unheard"), "in_doubt");
    assert_eq!(sb.posts().len(), 1);
}

#[test]
fn retry_all_skips_posts_that_may_be_live_and_retry_id_needs_force() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"200ms\"\nmax_delay = \"400ms\"\nresend_window = \"1s\"\n",
    );
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "drop": true, "times": 0}]));
    env.drop_draft("maybe.md", "Maybe out there\n");
    wait_state(&env, "maybe", "dead", 15);
    assert_eq!(dead_reason(&env, "maybe"), "in_doubt");
    reqwest::blocking::Client::new()
        .delete(format!("{}/_sandbox/faults", sb.url))
        .send()
        .unwrap();
    sb.faults(json!([{"path": "/rest/posts", "status": 400, "times": 1}]));
    env.drop_draft("refused.md", "Refused once\n");
    wait_state(&env, "refused", "dead", 10);
    assert_eq!(dead_reason(&env, "refused"), "rejected");

    let out = env.lipost(&["retry", "--all"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("requeued refused"), "{said}");
    assert!(
        said.contains("skipped 1") && said.contains("maybe  (in_doubt)"),
        "{said}"
    );
    wait_state(&env, "refused", "published", 10);
    assert_eq!(env.state("maybe").as_deref(), Some("dead"));

    let out = env.lipost(&["retry", "maybe"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("may already be on LinkedIn")
            && err.contains("lipost mark-published maybe URN")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(env.state("maybe").as_deref(), Some("dead"));

    let out = env.lipost(&["retry", "maybe", "--force"]);
    assert!(out.status.success());
    assert_ne!(env.state("maybe").as_deref(), Some("dead"));
}

#[test]
fn a_huge_retry_after_neither_panics_nor_strands_the_post_or_its_account() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[accounts.paced]\nkind = \"member\"\nmin_spacing = \"100ms\"\n\n[retry]\nbase_delay = \"1s\"\nmax_delay = \"4s\"\nmax_lateness = \"48h\"\n",
    );
    let mut d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 429, "times": 1, "retry_after": 100000000000000u64}]));
    env.drop_draft(
        "forever.md",
        draft("account = \"paced\"", "Come back in three million years"),
    );
    wait_state(&env, "forever", "scheduled", 10);
    let next: String = env
        .db()
        .query_row(
            "SELECT next_attempt_at FROM posts WHERE id = 'forever'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let next: DateTime<Utc> = next.parse().unwrap();
    assert!(
        next <= Utc::now() + chrono::Duration::hours(24) + chrono::Duration::minutes(1),
        "Retry-After is clamped to a day: {next}"
    );
    // The account is not stranded by a stuck send: its next post is planned, and held
    // with a reason until the same time (LinkedIn's limit is the member's); another
    // member's post goes out.
    env.drop_draft("next.md", draft("account = \"paced\"", "The next one"));
    env.drop_draft("other.md", "Another member\n");
    wait_state(&env, "other", "published", 10);
    let held = || {
        env.db().query_row(
            "SELECT n.hold_reason, n.next_attempt_at, f.next_attempt_at FROM posts n, posts f \
             WHERE n.id = 'next' AND f.id = 'forever'",
            [],
            |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
    };
    let ok = wait_until(Duration::from_secs(10), || {
        held().is_ok_and(|(r, at, forever)| {
            let at: DateTime<Utc> = at.parse().unwrap();
            r.as_deref() == Some("rate_limited")
                && at == forever.parse::<DateTime<Utc>>().unwrap()
                && at > Utc::now() + chrono::Duration::hours(23)
        })
    });
    assert!(ok, "{:?}\n{}", held(), d.log_text());
    assert!(d.alive());
    assert!(!d.log_text().contains("panicked"), "{}", d.log_text());
}

#[test]
fn a_settle_blocked_by_a_locked_database_is_retried_not_dropped() {
    let sb = Sandbox::start();
    // SQLite: the settle fails after SQLite's busy timeout; PostgreSQL waits on its locks.
    let env = Env::new_sqlite(&sb, "");
    let d = Daemon::start(&env);
    // The token first (minting it writes to the store): what the lock blocks is the settle.
    warm_up(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "delay_ms": 1500, "times": 1}]));
    let text = "Answered while the database is locked";
    env.drop_draft("a.md", format!("{text}\n"));
    wait_state(&env, "a", "publishing", 10);
    let lock = env.db();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Longer than the daemon's 10 s busy timeout: the first settle fails.
    std::thread::sleep(Duration::from_secs(13));
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    wait_state(&env, "a", "published", 30);
    let posts = posts_with(&sb, text);
    assert_eq!(posts.len(), 1, "{}", d.log_text());
    assert_eq!(urn_of(&env, "a").as_deref(), posts[0]["urn"].as_str());
    let log = d.log_text();
    let retrying = log
        .lines()
        .find(|l| l.contains("cannot record outcomes in the store; retrying"))
        .unwrap_or_else(|| panic!("{log}"));
    // Meanwhile the URN is in the log: the store does not have it yet.
    let urn = posts[0]["urn"].as_str().unwrap();
    assert!(retrying.contains(&format!("a={urn}")), "{retrying}");
    let answered = log
        .lines()
        .find(|l| l.contains("LinkedIn answered, but the store has not recorded it yet"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(answered.contains(urn), "{answered}");
}

#[test]
fn a_store_error_in_the_scheduler_lets_the_request_in_flight_settle_before_exiting() {
    let sb = Sandbox::start();
    // SQLite: the store error is SQLite's busy timeout; PostgreSQL waits on its locks.
    let env = Env::build_sqlite(
        &sb,
        "",
        "request_timeout = \"60s\"",
        "\n[publisher]\nshutdown_timeout = \"60s\"\n",
    );
    let mut d = Daemon::start(&env);
    // The token first (minting it writes to the store): what the lock blocks is B's claim.
    warm_up(&env);
    // B falls due while the database is locked: its claim fails, and the scheduler stops.
    env.drop_draft(
        "b.md",
        draft(
            &format!("publish_at = \"{}\"", in_secs(5)),
            "Due during the lock",
        ),
    );
    wait_state(&env, "b", "scheduled", 10);
    // A is answered after the scheduler failed and the lock is gone.
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "delay_ms": 25000, "times": 1}]));
    let text = "In flight when the store failed";
    env.drop_draft("a.md", format!("{text}\n"));
    wait_state(&env, "a", "publishing", 10);
    let lock = env.db();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert_eq!(env.state("b").as_deref(), Some("scheduled"));
    // B's claim waits out the daemon's 10 s busy timeout and fails; A is still in flight.
    std::thread::sleep(Duration::from_secs(17));
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    assert!(
        d.log_text()
            .contains("letting requests in flight finish and settle"),
        "{}",
        d.log_text()
    );
    // It exits by itself once A is settled, saying why.
    let exited = wait_until(Duration::from_secs(40), || !d.alive());
    assert!(exited, "{}", d.log_text());
    assert!(
        d.log_text().contains("database is locked"),
        "{}",
        d.log_text()
    );
    assert_eq!(
        env.state("a").as_deref(),
        Some("published"),
        "{}",
        d.log_text()
    );
    let posts = posts_with(&sb, text);
    assert_eq!(posts.len(), 1);
    assert_eq!(urn_of(&env, "a").as_deref(), posts[0]["urn"].as_str());
    assert_eq!(env.state("b").as_deref(), Some("scheduled"));
}

#[test]
fn a_daemon_told_to_stop_while_the_store_takes_nothing_still_stops_and_nothing_goes_twice() {
    let sb = Sandbox::start();
    // SQLite: a lock held by another process stands for a full or read-only disk.
    let env = Env::build_sqlite(&sb, "", "", "\n[publisher]\nshutdown_timeout = \"2s\"\n");
    let mut d = Daemon::start(&env);
    warm_up(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "delay_ms": 1500, "times": 1}]));
    let text = "Answered while the store takes nothing";
    env.drop_draft("a.md", format!("{text}\n"));
    wait_state(&env, "a", "publishing", 10);
    let lock = env.db();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    // LinkedIn answers; its outcome cannot be recorded.
    assert!(wait_until(Duration::from_secs(10), || posts_with(
        &sb, text
    )
    .len()
        == 1));
    std::thread::sleep(Duration::from_millis(500));
    let log = d.log_text();
    // The lock outlasts the stop: the daemon must not wait for it.
    d.term(Duration::from_secs(28));
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let log = d.log_text().split_off(log.len());
    assert!(
        log.contains("cannot record the last outcomes in the store; stopping anyway"),
        "{log}"
    );
    // The next start resolves it, once.
    let d2 = Daemon::start(&env);
    wait_state(&env, "a", "published", 20);
    let posts = posts_with(&sb, text);
    assert_eq!(posts.len(), 1, "{}", d2.log_text());
    assert_eq!(urn_of(&env, "a").as_deref(), posts[0]["urn"].as_str());
}

/// Publishes one post for `me`, so its token is minted and stored before a test locks the
/// database.
fn warm_up(env: &Env) {
    env.drop_draft("warm.md", "Warm-up\n");
    wait_state(env, "warm", "published", 20);
}

/// The posts on the sandbox with `text` as their commentary.
fn posts_with(sb: &Sandbox, text: &str) -> Vec<serde_json::Value> {
    sb.posts()
        .into_iter()
        .filter(|p| p["commentary"].as_str() == Some(text))
        .collect()
}

/// Review finding 4: a post whose first try was unanswered and that died at once (one
/// attempt allowed) keeps its in-doubt mark, so a re-dropped draft cannot resend it.
#[test]
fn a_post_that_dies_in_doubt_keeps_its_mark_and_a_redropped_draft_is_refused() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"200ms\"\nmax_delay = \"400ms\"\nmax_attempts = 1\n",
    );
    let d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "drop": true, "times": 1}]));
    env.drop_draft("once.md", "Heard nothing back\n");
    wait_state(&env, "once", "dead", 15);
    assert_eq!(dead_reason(&env, "once"), "in_doubt");
    let since: Option<String> = env
        .db()
        .query_row(
            "SELECT in_doubt_since FROM posts WHERE id = 'once'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(since.is_some(), "the dead post lost its in-doubt mark");
    assert_eq!(sb.posts().len(), 1, "the dropped answer's post is live");

    // The author drops it again, edited: refused, not sent a second time.
    env.drop_draft("once.md", "Heard nothing back!\n");
    assert!(
        wait_until(Duration::from_secs(15), || env
            .queue
            .join("rejected/once.md.error")
            .exists()),
        "the re-dropped draft was not rejected; log:\n{}",
        d.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.state("once").as_deref(), Some("dead"));
    assert_eq!(sb.posts().len(), 1, "sent twice");
}

/// Review finding 6: a post that fell due while the daemon was stopped, longer ago than
/// `retry.max_lateness`, is dead as `too_late` at the next start, never sent.
#[test]
fn a_first_try_later_than_max_lateness_is_too_late_and_never_sent() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"1s\"\nmax_delay = \"4s\"\nmax_lateness = \"2s\"\n",
    );
    let mut d = Daemon::start(&env);
    env.drop_draft(
        "stale.md",
        draft(&format!("publish_at = \"{}\"", in_secs(3)), "Old news"),
    );
    wait_state(&env, "stale", "scheduled", 10);
    assert_eq!(d.term(Duration::from_secs(10)).code(), Some(0));
    // Down while it fell due, and for longer than max_lateness after that.
    std::thread::sleep(Duration::from_secs(7));
    let d = Daemon::start(&env);
    wait_state(&env, "stale", "dead", 15);
    assert_eq!(dead_reason(&env, "stale"), "too_late");
    let message: String = env
        .db()
        .query_row(
            "SELECT message FROM dead_letters WHERE post_id = 'stale'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        message.contains("retry.max_lateness") && message.contains("remove publish_at"),
        "{message}"
    );
    assert!(sb.posts().is_empty(), "sent late: {:?}", d.log_text());
}
