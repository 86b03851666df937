//! The crash test: the daemon is killed with SIGKILL at random moments, again and again,
//! while the sandbox adds random latency, drops connections after storing posts, answers
//! 502/504 after storing some, fails others and rate-limits a few (429, which holds the
//! member's other posts until the refused one's next try). Both pages also post a recurring text
//! ("Happy Friday") several times, further apart than the duplicate window. Media posts
//! arrive as bundles among the text drafts (images, multi-image, documents, videos of several
//! 4 MiB parts, polls, some with a first comment); upload PUTs are slowed so kills land while
//! uploads are in flight, and some comments are stored then hung up on. In the end every
//! draft is on "LinkedIn" exactly once (a media post with its content kind and every asset
//! AVAILABLE when named, holding the bytes given), every post is `published` with its own
//! URN, `attempts` explains every in-doubt case, and no first comment is there twice (none
//! only when lipost recorded why: a comment in doubt is never resent).
//!
//! Size: `LIPOST_CRASH_KILLS` (default 30), `LIPOST_CRASH_DRAFTS` (default 100 text drafts;
//! 170 on PostgreSQL, 200 drafts in all) and `LIPOST_CRASH_MEDIA` (default 24) media drafts
//! (at most 3 big videos whatever it is). On PostgreSQL a second node runs beside the first
//! and is killed in 20 of the rounds, then stopped for good.
//! A longer run: `LIPOST_CRASH_KILLS=200 LIPOST_CRASH_DRAFTS=500 LIPOST_CRASH_MEDIA=80 cargo test --release --test crash -- --nocapture`

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::fixtures::{mp4, pdf, png, sha256};
use common::*;
use rand::Rng;
use serde_json::{json, Value};

/// One row of `sql` with `?1` = `id`.
fn db_row<A: common::db::FromCol, B: common::db::FromCol>(
    env: &Env,
    sql: &str,
    id: &str,
) -> (A, B) {
    env.db()
        .query_row(sql, [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap_or_else(|e| panic!("{sql} for {id}: {e}"))
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Two members and two pages, with daily caps out of the way (pacing has its own test).
const ACCOUNTS: [&str; 4] = ["carol", "initech", "bob", "globex"];

const PAGES: [&str; 2] = ["initech", "globex"];
/// How many times node b (PostgreSQL) is killed and restarted before its final stop.
const B_KILLS: usize = 20;
/// The sandbox's duplicate window for this test. The daemon's `resend_window` (11 s) plus its
/// `request_timeout` (3 s) stays inside it: a resend must reach the sandbox within the window.
const WINDOW_SECS: u64 = 15;
/// Each page posts the same text this many times, this far apart (well over the window, so
/// a late copy is still outside it).
const RECURRING: usize = 3;
const RECURRING_EVERY_SECS: usize = 30;
/// The big videos (several 4 MiB parts each); later videos are small.
const BIG_VIDEOS: [usize; 3] = [9_000_000, 6_000_000, 4_500_000];

/// A media draft: what goes in the bundle and what must come out.
struct Media {
    id: String,
    text: String,
    /// Front matter lines besides `account` and `publish_at`.
    front: String,
    /// Files of the bundle; empty for a poll, which is a single-file draft.
    files: Vec<(String, Vec<u8>)>,
    /// The sandbox's `content_kind`, `None` for plain text.
    kind: Option<&'static str>,
    first_comment: Option<String>,
}

/// Media draft `m`: its kind cycles, its account cycles out of step with the kind.
fn media_draft(m: usize) -> Media {
    let account = ACCOUNTS[(m + m / 8) % ACCOUNTS.len()];
    let id = format!("media-{m:03}");
    let text = format!("Crash-test media post {m} (account {account}) #lipost");
    let mut front = format!("id = \"{id}\"\n");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let (kind, comment) = match m % 8 {
        0 | 6 => {
            files.push(("pic.png".into(), png(100 + m as u32, 60)));
            front += "images = [{ file = \"pic.png\", alt = \"A picture\" }]\n";
            (Some("image"), m % 8 == 6)
        }
        1 => {
            let n = 2 + m % 3;
            let names: Vec<String> = (0..n).map(|k| format!("\"p{k}.png\"")).collect();
            for k in 0..n {
                files.push((format!("p{k}.png"), png(200 + m as u32, 60 + k as u32)));
            }
            front += &format!("images = [{}]\n", names.join(", "));
            (Some("multi_image"), false)
        }
        2 => {
            files.push(("deck.pdf".into(), pdf(1 + m / 8)));
            front += "document = { file = \"deck.pdf\", title = \"Deck\" }\n";
            (Some("document"), false)
        }
        3 => {
            let size = BIG_VIDEOS.get(m / 8).copied().unwrap_or(100_000);
            files.push(("clip.mp4".into(), mp4(10_000, size, m as u8)));
            front += "video = { file = \"clip.mp4\", title = \"Clip\" }\n";
            (Some("video"), false)
        }
        4 | 7 => {
            front += &format!(
                "poll = {{ question = \"Poll {m}?\", options = [\"Yes\", \"No\"], duration = \"3d\" }}\n"
            );
            (Some("poll"), m % 8 == 7)
        }
        _ => (None, true),
    };
    let first_comment = comment.then(|| format!("First comment on media post {m}"));
    if let Some(c) = &first_comment {
        front += &format!("first_comment = \"{c}\"\n");
    }
    front += &format!("account = \"{account}\"\n");
    Media {
        id,
        text,
        front,
        files,
        kind,
        first_comment,
    }
}

/// Drops `m` due at `due`: a bundle built beside the queue folder and renamed in, or a
/// single file when it names no file.
fn drop_media(env: &Env, m: &Media, due: &str) {
    let post = draft(&format!("{}publish_at = \"{due}\"", m.front), &m.text);
    if m.files.is_empty() {
        env.drop_draft(&format!("{}.md", m.id), post);
        return;
    }
    let files: Vec<(&str, &[u8])> = m
        .files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    env.drop_bundle(&m.id, &post, &files);
}

#[test]
fn exactly_once_under_repeated_sigkill() {
    let sb = Sandbox::start();
    // Two nodes (PostgreSQL) get the size the multi-node issue asks for: 200 drafts in all.
    let two = common::postgres_url().is_some();
    let kills = setting("LIPOST_CRASH_KILLS", 30);
    let drafts = setting("LIPOST_CRASH_DRAFTS", if two { 170 } else { 100 });
    let media_drafts = setting("LIPOST_CRASH_MEDIA", 24);
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
resend_window = "11s"

[media]
member_grace = "1s"
poll_interval = "200ms"

[publisher]
claim_lease = "3s"
"#,
    );
    // A short duplicate window, so a recurring text can go out again within the test; the
    // daemon's resend window stays below it.
    sb.configure(json!({
        "jitter_ms": 120,
        "duplicate_window_secs": WINDOW_SECS,
        "media_processing_ms": 300
    }));
    // Upload PUTs are slowed (and some fail or hang up after storing the part), so a kill
    // often lands mid-upload; some first comments (the first one surely) are stored, then
    // hung up on: in doubt, so never resent.
    sb.faults(json!([
        {"path": "/rest/posts", "method": "POST", "drop": true, "times": 0, "probability": 0.15},
        {"path": "/rest/posts", "method": "POST", "stored": true, "status": 502, "times": 0, "probability": 0.05},
        {"path": "/rest/posts", "method": "POST", "stored": true, "status": 504, "times": 0, "probability": 0.03},
        {"path": "/rest/posts", "method": "POST", "status": 503, "times": 0, "probability": 0.05},
        {"path": "/rest/posts", "method": "POST", "status": 429, "retry_after": 1, "times": 0, "probability": 0.04},
        {"path": "/dms-uploads/*", "method": "PUT", "status": 503, "times": 0, "probability": 0.05},
        {"path": "/dms-uploads/*", "method": "PUT", "drop": true, "times": 0, "probability": 0.05},
        {"path": "/dms-uploads/*", "method": "PUT", "delay_ms": 400, "times": 0, "probability": 0.6},
        {"path": "/rest/socialActions/*", "method": "POST", "drop": true, "times": 1},
        {"path": "/rest/socialActions/*", "method": "POST", "drop": true, "times": 0, "probability": 0.15}
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
    let media: Vec<Media> = (0..media_drafts).map(media_draft).collect();
    for m in &media {
        expected.insert(m.id.clone(), m.text.clone());
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
    let write_media = |m: &Media, rng: &mut rand::rngs::ThreadRng| {
        drop_media(&env, m, &in_secs(rng.random_range(-5..8)));
    };
    // A third waits in the folder before the first start; the rest arrive between kills.
    let mut next = 0;
    while next < drafts / 3 {
        write(next, &mut rng);
        next += 1;
    }
    let mut next_media = 0;
    while next_media < media_drafts / 3 {
        write_media(&media[next_media], &mut rng);
        next_media += 1;
    }
    // On PostgreSQL a second node (b) shares the schedule: it claims and sends too, and is
    // killed at its own random moments. Drafts arrive in node a's folder (and a's media/,
    // so a uploads them; b publishes posts whose media are up).
    assert_eq!(two, env.is_postgres());
    // Node b is killed in `B_KILLS` of the rounds (every round when there are fewer),
    // chosen at random, then stopped for good at the end.
    let b_rounds: std::collections::HashSet<usize> =
        rand::seq::index::sample(&mut rng, kills, B_KILLS.min(kills))
            .into_iter()
            .collect();
    let mut b: Option<Daemon> = None;
    for k in 0..kills {
        if two && b.is_none() {
            b = Some(Daemon::start_node(&env, "b"));
        }
        let mut d = Daemon::start(&env);
        let batch = (drafts - next).div_ceil(kills - k);
        for _ in 0..batch {
            write(next, &mut rng);
            next += 1;
        }
        let batch = (media_drafts - next_media).div_ceil(kills - k);
        for _ in 0..batch {
            write_media(&media[next_media], &mut rng);
            next_media += 1;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(20..700)));
        d.kill9();
        if two && b_rounds.contains(&k) {
            if let Some(mut node) = b.take() {
                node.kill9();
            }
        }
    }
    assert_eq!(next, drafts);
    assert_eq!(next_media, media_drafts);

    // The last run settles everything; the network stays unreliable. With two nodes, node b
    // works alone for a moment, then stops for good (SIGKILL) with claims in flight; node a
    // then finishes everything, b's claims included (their leases run out). a starts once
    // b's heartbeat is older than the lease, so it also recovers the first comments and
    // uploads left half done, which a node leaves alone while another node is alive.
    if two {
        let mut node = b.take().unwrap_or_else(|| Daemon::start_node(&env, "b"));
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1500)));
        node.kill9();
        std::thread::sleep(Duration::from_millis(3500));
    }
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
                .prepare("SELECT started_at || ' ' || COALESCE(outcome, '-') || ' ' || COALESCE(CAST(http_status AS TEXT), '-') || ' ' || COALESCE(message, '') FROM attempts WHERE post_id = ?1 ORDER BY id")
                .unwrap()
                .query_map([id], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            eprintln!("{id}: {rows:#?}");
        }
        let assets: Vec<String> = db
            .prepare("SELECT owner || ' ' || kind || ' ' || status || ' ' || attempts || ' ' || COALESCE(last_error, '') FROM media WHERE status != 'available'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        eprintln!("media not available: {assets:#?}");
        let log = last.log_text();
        eprintln!(
            "last daemon log (tail):\n{}",
            &log[log.len().saturating_sub(6000)..]
        );
    }
    assert!(all_done, "not all published: {states:?}");
    if two {
        let by_b = env
            .db()
            .query_row(
                "SELECT COUNT(*) FROM posts WHERE claimed_by = 'b'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        eprintln!(
            "two nodes: node b was killed {} times, then stopped for good; it made the last claim of {by_b} of {total} posts",
            b_rounds.len()
        );
    }
    // First comments settle after their posts: posted, or dead/refused with the reason.
    let comments_settled = wait_until(Duration::from_secs(60), || {
        env.db()
            .query_row(
                "SELECT COUNT(*) FROM comments WHERE status IN ('waiting', 'sending')",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 0
    });
    assert!(
        comments_settled,
        "first comments still under way; log:\n{}",
        last.log_text()
    );

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

    // Media posts: their content kind, every asset AVAILABLE when named and holding the bytes
    // given, in order; a first comment at most once, and none only with the reason recorded.
    let sandbox_posts = sb.posts();
    let on_sandbox = |text: &str| -> &Value {
        sandbox_posts
            .iter()
            .find(|p| p["text"] == text)
            .expect("checked above")
    };
    // Counted by lipost's record: a comment hung up on after it was stored is on LinkedIn
    // and `dead` (in doubt, not resent).
    let (mut comments_posted, mut comments_in_doubt, mut comments_missing) = (0, 0, 0);
    for m in &media {
        let p = on_sandbox(&m.text);
        assert_eq!(p["content_kind"].as_str(), m.kind, "{}: {p:#}", m.id);
        let assets = p["assets"].as_array().cloned().unwrap_or_default();
        assert_eq!(assets.len(), m.files.len(), "{}: {p:#}", m.id);
        for (a, (name, bytes)) in assets.iter().zip(&m.files) {
            assert_eq!(a["status_at_post"], "AVAILABLE", "{} {name}: {p:#}", m.id);
            assert_eq!(a["sha256"], sha256(bytes), "{} {name}: {p:#}", m.id);
        }
        let comments = p["comments"].as_array().cloned().unwrap_or_default();
        let Some(want) = &m.first_comment else {
            assert!(
                comments.is_empty(),
                "{}: a comment it never asked for",
                m.id
            );
            continue;
        };
        assert!(
            comments.len() <= 1,
            "{}: comment doubled: {comments:#?}",
            m.id
        );
        let (status, why): (String, Option<String>) = db_row(
            &env,
            "SELECT status, last_error FROM comments WHERE post_id = ?1",
            &m.id,
        );
        match status.as_str() {
            "posted" => comments_posted += 1,
            "dead" | "refused" => comments_in_doubt += 1,
            other => panic!("{}: first comment left {other}", m.id),
        }
        match comments.first() {
            Some(c) => assert_eq!(c["text"], want.as_str(), "{}", m.id),
            None => {
                assert!(
                    ["dead", "refused"].contains(&status.as_str())
                        && why.as_deref().is_some_and(|w| !w.is_empty()),
                    "{}: no comment on LinkedIn, yet it is {status} ({why:?})",
                    m.id
                );
                comments_missing += 1;
            }
        }
    }

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
    let interrupted_uploads: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM media_attempts WHERE step = 'upload' AND outcome = 'interrupted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    eprintln!("{total} drafts, {kills} kills, {in_doubt_cases} posts were in doubt at some point; all resolved");
    eprintln!("{interrupted_uploads} upload steps cut short by a kill; first comments: {comments_posted} posted, {comments_in_doubt} in doubt and not resent ({comments_missing} of them not on LinkedIn)");
    assert!(
        in_doubt_cases > 0,
        "the test never produced an in-doubt post"
    );
    if media_drafts > 0 {
        assert!(
            interrupted_uploads > 0,
            "no kill ever landed during an upload"
        );
    }
    if media.iter().any(|m| m.first_comment.is_some()) {
        assert!(comments_in_doubt > 0, "no first comment was ever in doubt");
        assert!(comments_posted > 0, "no first comment was ever posted");
    }
}
