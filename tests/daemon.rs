//! The daemon end to end: drop a draft, see it published on the sandbox and in SQLite.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::json;

fn received_at(p: &serde_json::Value) -> DateTime<Utc> {
    p["received_at"].as_str().unwrap().parse().unwrap()
}

#[test]
fn member_and_organization_posts_go_out_at_their_due_time() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    let due = in_secs(3);
    env.drop_draft(
        "mine.md",
        draft(&format!("publish_at = \"{due}\""), "A member post"),
    );
    env.drop_draft(
        "page.md",
        draft(
            &format!("account = \"acme\"\npublish_at = \"{due}\""),
            "A page post",
        ),
    );
    wait_until(Duration::from_secs(2), || {
        env.state("mine").is_some() && env.state("page").is_some()
    });
    assert_eq!(env.state("mine").as_deref(), Some("scheduled"));
    assert!(sb.posts().is_empty(), "nothing may go out before it is due");

    let due: DateTime<Utc> = due.parse().unwrap();
    let mine = wait_post(
        &sb,
        |p| p["text"] == "A member post",
        Duration::from_secs(10),
    );
    let page = wait_post(&sb, |p| p["text"] == "A page post", Duration::from_secs(10));
    assert_eq!(mine["author"], "urn:li:person:sbx-me");
    assert_eq!(page["author"], "urn:li:organization:2414183");
    for p in [&mine, &page] {
        let late = received_at(p) - due;
        assert!(late >= chrono::Duration::zero(), "sent {late} early");
        assert!(
            late < chrono::Duration::milliseconds(1500),
            "sent {late} late"
        );
    }
    wait_until(Duration::from_secs(5), || {
        env.state("page").as_deref() == Some("published")
    });
    let (state, urn): (String, String) = env
        .db()
        .query_row(
            "SELECT state, post_urn FROM posts WHERE id = 'page'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "published");
    assert_eq!(urn, page["urn"].as_str().unwrap());
    assert!(env.path("queue/accepted/page.md").exists());
    assert!(!env.path("queue/page.md").exists());
}

#[test]
fn every_reserved_character_arrives_intact() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    let text = "Launch day (finally)! \\ | { } @ [ ] ( ) < > # * _ ~\n\
                #rust and @[Acme](urn:li:organization:2414183), snake_case, 2*3, ~5, <br>, [link](x), {a|b}";
    env.drop_draft("reserved.md", format!("{text}\n"));
    let post = wait_post(
        &sb,
        |p| p["author"] == "urn:li:person:sbx-me",
        Duration::from_secs(10),
    );
    assert_eq!(
        post["text"].as_str().unwrap(),
        text,
        "LinkedIn would show something else"
    );
    let stored: String = env
        .db()
        .query_row(
            "SELECT commentary FROM posts WHERE id = 'reserved'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        post["commentary"].as_str().unwrap(),
        stored,
        "the commentary sent is the one stored"
    );
}

#[test]
fn a_draft_dropped_while_stopped_is_published_after_start_and_one_due_long_ago_never() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    d.term(Duration::from_secs(10));
    env.drop_draft("while-down.md", "Written while lipost was stopped\n");
    // Within retry.max_lateness (24 h): it goes out at once.
    env.drop_draft(
        "recent.md",
        draft(
            &format!("publish_at = \"{}\"", in_secs(-3600)),
            "Due an hour ago",
        ),
    );
    // Further back than retry.max_lateness: a typo or a stale file, not "now".
    env.drop_draft(
        "past.md",
        draft(
            &format!("publish_at = \"{}\"", in_secs(-25 * 3600)),
            "Due long ago",
        ),
    );
    let started = Utc::now();
    let d = Daemon::start(&env);
    for text in ["Written while lipost was stopped", "Due an hour ago"] {
        let a = wait_post(&sb, |p| p["text"] == text, Duration::from_secs(10));
        assert!(received_at(&a) - started < chrono::Duration::seconds(5));
    }
    assert!(
        wait_until(Duration::from_secs(10), || env
            .queue
            .join("rejected/past.md")
            .exists()),
        "{}",
        d.log_text()
    );
    let why = std::fs::read_to_string(env.queue.join("rejected/past.md.error")).unwrap();
    assert!(why.contains("publish_at"), "{why}");
    assert!(
        !sb.posts().iter().any(|p| p["text"] == "Due long ago"),
        "sent more than max_lateness after its time"
    );
}

#[test]
fn a_replaced_draft_publishes_only_its_new_text() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    let due = in_secs(4);
    env.drop_draft(
        "v1.md",
        draft(
            &format!("id = \"news\"\npublish_at = \"{due}\""),
            "First version",
        ),
    );
    wait_until(Duration::from_secs(3), || env.state("news").is_some());
    env.drop_draft(
        "v2.md",
        draft(
            &format!("id = \"news\"\npublish_at = \"{due}\""),
            "Second version",
        ),
    );
    wait_until(Duration::from_secs(3), || {
        env.path("queue/accepted/v2.md").exists()
    });
    wait_post(
        &sb,
        |p| p["text"] == "Second version",
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(500));
    let texts: Vec<_> = sb
        .posts()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, vec!["Second version"]);
    // Once published, the id is taken: a third version is rejected with the reason.
    env.drop_draft("v3.md", draft("id = \"news\"", "Third version"));
    let error = env.path("queue/rejected/v3.md.error");
    assert!(wait_until(Duration::from_secs(5), || error.exists()));
    let why = std::fs::read_to_string(error).unwrap();
    assert!(why.contains("already published"), "{why}");
}

#[test]
fn malformed_drafts_are_rejected_with_a_reason_and_the_daemon_keeps_running() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown-key.md",
            draft("id = \"a\"\ncolour = \"red\"", "x").into_bytes(),
            "line 3: unknown field `colour`",
        ),
        (
            "too-long.md",
            "y".repeat(3001).into_bytes(),
            "3001 characters",
        ),
        ("empty.md", draft("id = \"b\"", "   ").into_bytes(), "empty"),
        (
            "nobody.md",
            draft("account = \"nobody\"", "x").into_bytes(),
            "account \"nobody\" is not in the config",
        ),
        (
            "latin1.md",
            b"caf\xe9 au lait\n".to_vec(),
            "not UTF-8: invalid byte at offset 3 (line 1)",
        ),
        (
            "when.md",
            draft("publish_at = \"next tuesday\"", "x").into_bytes(),
            "publish_at = \"next tuesday\"",
        ),
        (
            "unclosed.md",
            b"+++\nid = \"c\"\nbody".to_vec(),
            "never closed",
        ),
    ];
    for (name, bytes, _) in &cases {
        env.drop_draft(name, bytes);
    }
    for (name, bytes, why) in &cases {
        let error = env.path(&format!("queue/rejected/{name}.error"));
        assert!(
            wait_until(Duration::from_secs(5), || error.exists()),
            "{name} not rejected"
        );
        let text = std::fs::read_to_string(&error).unwrap();
        assert!(text.contains(why), "{name}: {text}");
        // The draft itself is kept, byte for byte.
        assert_eq!(
            &std::fs::read(env.path(&format!("queue/rejected/{name}"))).unwrap(),
            bytes
        );
    }
    assert!(d.alive());
    env.drop_draft("fine.md", "Still publishing\n");
    wait_post(
        &sb,
        |p| p["text"] == "Still publishing",
        Duration::from_secs(10),
    );
    let n: i64 = env
        .db()
        .query_row("SELECT COUNT(*) FROM posts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_file_written_in_place_slowly_is_taken_only_when_complete() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    let path = env.queue.join("slow.md");
    let chunks = [
        "+++\nid = \"slow\"\n",
        "+++\nThe first half, ",
        "the second half, ",
        "and the end.\n",
    ];
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        for c in chunks {
            f.write_all(c.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(env.state("slow"), None, "taken before it was complete");
            assert!(path.exists());
        }
    }
    let post = wait_post(
        &sb,
        |p| p["author"] == "urn:li:person:sbx-me",
        Duration::from_secs(10),
    );
    assert_eq!(
        post["text"],
        "The first half, the second half, and the end."
    );
    assert!(!env.path("queue/rejected/slow.md").exists());
}

#[test]
fn staging_names_are_ignored() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    for name in [
        ".hidden.md",
        "draft.md.tmp",
        "draft.md.part",
        ".draft.md.swp",
        "draft.md~",
    ] {
        std::fs::write(env.queue.join(name), "ignored\n").unwrap();
    }
    env.drop_draft("real.md", "taken\n");
    wait_post(&sb, |p| p["text"] == "taken", Duration::from_secs(10));
    for name in [
        ".hidden.md",
        "draft.md.tmp",
        "draft.md.part",
        ".draft.md.swp",
        "draft.md~",
    ] {
        assert!(env.queue.join(name).exists(), "{name} was taken");
    }
    assert_eq!(sb.posts().len(), 1);
}

#[test]
fn a_422_from_linkedin_moves_the_post_to_dead() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 422, "times": 1}]));
    env.drop_draft("refused.md", "LinkedIn will refuse this\n");
    assert!(wait_until(Duration::from_secs(10), || env
        .state("refused")
        .as_deref()
        == Some("dead")));
    let db = env.db();
    let (reason, status): (String, i64) = db
        .query_row(
            "SELECT reason, http_status FROM dead_letters WHERE post_id = 'refused'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((reason.as_str(), status), ("rejected", 422));
    let attempts: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM attempts WHERE post_id = 'refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(attempts, 1);
    assert!(sb.posts().is_empty());
    let out = env.lipost(&["dead"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refused") && text.contains("HTTP 422"),
        "{text}"
    );
}

#[test]
fn a_log_that_cannot_be_written_does_not_stop_the_daemon() {
    use std::io::{BufRead, BufReader};
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    // `lipost run 2>&1 | head -1`: the reader takes one line and goes away.
    let mut child = std::process::Command::new(BIN)
        .args(["--config", env.config.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    env.drop_draft("unheard.md", "Logged to nobody\n");
    let post = wait_post(
        &sb,
        |p| p["text"] == "Logged to nobody",
        Duration::from_secs(15),
    );
    assert_eq!(post["text"], "Logged to nobody");
    assert!(wait_until(Duration::from_secs(5), || env
        .state("unheard")
        .as_deref()
        == Some("published")));
    // Still there, and still taking drafts.
    env.drop_draft("second.md", "Still running\n");
    wait_post(
        &sb,
        |p| p["text"] == "Still running",
        Duration::from_secs(15),
    );
    assert!(child.try_wait().unwrap().is_none(), "the daemon died");
    let _ = child.kill();
    let _ = child.wait();
}

/// Drops a draft due in 3 s as `ID.md` and waits until the running daemon `d` claimed it
/// ahead of that time; returns the due time.
fn claimed_ahead(env: &Env, d: &Daemon, id: &str, text: &str) -> DateTime<Utc> {
    let due_text = in_secs(3);
    env.drop_draft(
        &format!("{id}.md"),
        draft(&format!("publish_at = \"{due_text}\""), text),
    );
    let claimed = wait_until(Duration::from_secs(5), || {
        env.state(id).as_deref() == Some("publishing")
    });
    assert!(claimed, "never claimed:\n{}", d.log_text());
    due_text.parse().unwrap()
}

/// Restarts the daemon on `env` and checks that post `id` goes out no earlier than `due`,
/// once, and is recorded published.
fn sent_once_after_a_restart(sb: &Sandbox, env: &Env, id: &str, text: &str, due: DateTime<Utc>) {
    let d = Daemon::start(env);
    let post = wait_post_logged(sb, &d, text, Duration::from_secs(15));
    let late = received_at(&post) - due;
    assert!(late >= chrono::Duration::zero(), "sent {late} early");
    wait_until(Duration::from_secs(5), || {
        env.state(id).as_deref() == Some("published")
    });
    assert_eq!(env.state(id).as_deref(), Some("published"));
    let sent = sb.posts().iter().filter(|p| p["text"] == text).count();
    assert_eq!(sent, 1, "exactly once");
}

/// A post is claimed up to half a second before it is due (its request then leaves at the
/// due time itself); killed in between, the daemon restarts and still sends it no earlier
/// than due, once.
#[test]
fn a_post_claimed_ahead_of_its_due_time_never_goes_out_early_even_across_a_kill() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    let due = claimed_ahead(&env, &d, "ahead", "Claimed ahead");
    let seen_at = Utc::now();
    d.kill9();
    assert!(
        seen_at < due - chrono::Duration::milliseconds(50),
        "claimed only {} before due: the test needs the claim ahead",
        due - seen_at
    );
    assert!(sb.posts().is_empty(), "nothing may leave before it is due");
    // The try starts at the due time: no request of it can have left before.
    let started: String = env
        .db()
        .query_row(
            "SELECT started_at FROM attempts WHERE post_id = 'ahead'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(started.parse::<DateTime<Utc>>().unwrap(), due);
    sent_once_after_a_restart(&sb, &env, "ahead", "Claimed ahead", due);
}

/// A stop between a post's claim ahead and its due time gives it back at once: scheduled,
/// not in doubt (nothing was sent), and sent at its due time after a restart, once. With a
/// shutdown timeout shorter than the wait, a send still waiting would be cut off and taken
/// for one that may have left.
#[test]
fn a_stop_before_the_due_time_gives_a_post_claimed_ahead_back_unsent() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[publisher]\nshutdown_timeout = \"0s\"\n");
    let mut d = Daemon::start(&env);
    let due = claimed_ahead(&env, &d, "back", "Given back");
    let stopped = d.term(Duration::from_secs(10));
    assert!(stopped.success(), "{stopped:?}\n{}", d.log_text());
    assert!(Utc::now() < due, "the stop took until the due time");
    let (state, in_doubt, tries): (String, Option<String>, i64) = env
        .db()
        .query_row(
            "SELECT state, in_doubt_since, (SELECT COUNT(*) FROM attempts WHERE post_id = p.id) \
             FROM posts p WHERE id = 'back'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (state.as_str(), in_doubt, tries),
        ("scheduled", None, 0),
        "{}",
        d.log_text()
    );
    assert!(sb.posts().is_empty());
    sent_once_after_a_restart(&sb, &env, "back", "Given back", due);
}
