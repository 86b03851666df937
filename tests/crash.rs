//! The crash test: the daemon is killed with SIGKILL at random moments, again and again,
//! while the sandbox adds random latency, drops connections after storing posts, answers
//! 502/504 after storing some and fails others. Both pages also post a recurring text
//! ("Happy Friday") several times, further apart than the duplicate window. In the end every
//! draft is on "LinkedIn" exactly once, every post is `published` with its own URN, and
//! `attempts` explains every in-doubt case.
//!
//! Size: `LIPOST_CRASH_KILLS` (default 30) and `LIPOST_CRASH_DRAFTS` (default 100).
//! A longer run: `LIPOST_CRASH_KILLS=200 LIPOST_CRASH_DRAFTS=500 cargo test --release --test crash -- --nocapture`

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rand::Rng;
use serde_json::json;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Two members and two pages, with daily caps out of the way (pacing has its own test).
const ACCOUNTS: [&str; 4] = ["carol", "initech", "bob", "globex"];

const PAGES: [&str; 2] = ["initech", "globex"];
/// The sandbox's duplicate window for this test.
const WINDOW_SECS: u64 = 12;
/// Each page posts the same text this many times, this far apart (well over the window, so
/// a late copy is still outside it).
const RECURRING: usize = 3;
const RECURRING_EVERY_SECS: usize = 30;

#[test]
fn exactly_once_under_repeated_sigkill() {
    let kills = setting("LIPOST_CRASH_KILLS", 30);
    let drafts = setting("LIPOST_CRASH_DRAFTS", 100);
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        r#"
[accounts.bob]
kind = "member"
daily_cap = 100000

[accounts.globex]
kind = "organization"
organization = "urn:li:organization:777"
via = "bob"
daily_cap = 100000

[accounts.carol]
kind = "member"
daily_cap = 100000

[accounts.initech]
kind = "organization"
organization = "urn:li:organization:888"
via = "carol"
daily_cap = 100000

[retry]
base_delay = "200ms"
max_delay = "1s"
max_attempts = 1000
resend_window = "8s"
"#,
    );
    // A short duplicate window, so a recurring text can go out again within the test; the
    // daemon's resend window stays below it.
    sb.configure(json!({"jitter_ms": 120, "duplicate_window_secs": WINDOW_SECS}));
    sb.faults(json!([
        {"path": "/rest/posts", "method": "POST", "drop": true, "times": 0, "probability": 0.15},
        {"path": "/rest/posts", "method": "POST", "stored": true, "status": 502, "times": 0, "probability": 0.05},
        {"path": "/rest/posts", "method": "POST", "stored": true, "status": 504, "times": 0, "probability": 0.03},
        {"path": "/rest/posts", "method": "POST", "status": 503, "times": 0, "probability": 0.05}
    ]));

    let mut rng = rand::rng();
    let text = |i: usize| {
        format!(
            "Crash-test post {i} (account {}) #lipost",
            ACCOUNTS[i % ACCOUNTS.len()]
        )
    };
    // id → text of every draft, recurring ones included.
    let mut expected: HashMap<String, String> = (0..drafts)
        .map(|i| (format!("post-{i:04}"), text(i)))
        .collect();
    for page in PAGES {
        let words = format!("Happy Friday from {page}! #lipost");
        for k in 0..RECURRING {
            let id = format!("friday-{page}-{k}");
            let due = in_secs(2 + (k * RECURRING_EVERY_SECS) as i64);
            env.drop_draft(
                &format!("{id}.md"),
                draft(
                    &format!("account = \"{page}\"\npublish_at = \"{due}\""),
                    &words,
                ),
            );
            expected.insert(id, words.clone());
        }
    }
    let total = expected.len();
    let write = |i: usize, rng: &mut rand::rngs::ThreadRng| {
        let due = in_secs(rng.random_range(-5..8));
        env.drop_draft(
            &format!("post-{i:04}.md"),
            draft(
                &format!(
                    "account = \"{}\"\npublish_at = \"{due}\"",
                    ACCOUNTS[i % ACCOUNTS.len()]
                ),
                &text(i),
            ),
        );
    };
    // A third waits in the folder before the first start; the rest arrive between kills.
    let mut next = 0;
    while next < drafts / 3 {
        write(next, &mut rng);
        next += 1;
    }
    for k in 0..kills {
        let mut d = Daemon::start(&env);
        let batch = (drafts - next).div_ceil(kills - k);
        for _ in 0..batch {
            write(next, &mut rng);
            next += 1;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(20..700)));
        d.kill9();
    }
    assert_eq!(next, drafts);

    // The last run settles everything; the network stays unreliable.
    let last = Daemon::start(&env);
    let all_done = wait_until(Duration::from_secs(150), || {
        env.db()
            .query_row(
                "SELECT COUNT(*) FROM posts WHERE state = 'published'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as usize
            == total
    });
    let states: Vec<(String, String)> = {
        let db = env.db();
        let mut s = db
            .prepare("SELECT id, state FROM posts WHERE state != 'published'")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    if !all_done {
        let db = env.db();
        for (id, _) in states.iter().take(3) {
            let rows: Vec<String> = db
                .prepare("SELECT started_at || ' ' || IFNULL(outcome, '-') || ' ' || IFNULL(http_status, '-') || ' ' || IFNULL(message, '') FROM attempts WHERE post_id = ?1 ORDER BY id")
                .unwrap()
                .query_map([id], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            eprintln!("{id}: {rows:#?}");
        }
        let log = last.log_text();
        eprintln!(
            "last daemon log (tail):\n{}",
            &log[log.len().saturating_sub(6000)..]
        );
    }
    assert!(all_done, "not all published: {states:?}");

    // On "LinkedIn": every draft exactly once (a recurring text once per draft of it).
    let mut on_linkedin: HashMap<String, usize> = HashMap::new();
    let mut text_of_urn: HashMap<String, String> = HashMap::new();
    for p in sb.posts() {
        let text = p["text"].as_str().unwrap().to_string();
        *on_linkedin.entry(text.clone()).or_default() += 1;
        text_of_urn.insert(p["urn"].as_str().unwrap().to_string(), text);
    }
    let mut wanted: HashMap<String, usize> = HashMap::new();
    for text in expected.values() {
        *wanted.entry(text.clone()).or_default() += 1;
    }
    for (text, n) in &wanted {
        assert_eq!(
            on_linkedin.get(text).copied().unwrap_or(0),
            *n,
            "{text:?} should be on LinkedIn {n} times"
        );
    }
    assert_eq!(
        on_linkedin.len(),
        wanted.len(),
        "unexpected posts on LinkedIn"
    );

    // In the store: every post published with its own URN, one LinkedIn gave its text.
    let db = env.db();
    let mut stmt = db.prepare("SELECT id, text, post_urn FROM posts").unwrap();
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), total);
    let mut urns = std::collections::HashSet::new();
    for (id, text, urn) in &rows {
        assert_eq!(&expected[id], text, "{id}");
        assert_eq!(
            text_of_urn.get(urn),
            Some(text),
            "{id} has the wrong URN {urn}"
        );
        assert!(
            urns.insert(urn.clone()),
            "{id} shares {urn} with another post"
        );
    }

    // Every in-doubt case is explained: a try that may have landed is followed by a resolution.
    let mut in_doubt_cases = 0;
    for (id, _, _) in &rows {
        let outcomes: Vec<String> = db
            .prepare("SELECT outcome FROM attempts WHERE post_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([id], |r| r.get::<_, Option<String>>(0))
            .unwrap()
            .map(|o| o.unwrap().unwrap_or_default())
            .collect();
        let first_doubt = outcomes
            .iter()
            .position(|o| o == "in_doubt" || o == "interrupted");
        if let Some(at) = first_doubt {
            in_doubt_cases += 1;
            let resolved = outcomes[at..].iter().any(|o| {
                [
                    "resolved_found",
                    "resolved_duplicate",
                    "published_after_doubt",
                ]
                .contains(&o.as_str())
            });
            assert!(resolved, "{id}: in doubt but never resolved: {outcomes:?}");
        }
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| o.starts_with("published") || o.starts_with("resolved"))
                .count(),
            1,
            "{id}: {outcomes:?}"
        );
    }
    eprintln!("{total} drafts, {kills} kills, {in_doubt_cases} posts were in doubt at some point; all resolved");
    assert!(
        in_doubt_cases > 0,
        "the test never produced an in-doubt post"
    );
}
