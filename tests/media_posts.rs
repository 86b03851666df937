//! Media posts end to end: a bundle dropped in the queue, its assets uploaded ahead to the
//! sandbox, the post created only once every asset is AVAILABLE, and the bytes arriving
//! intact. Real binary, real sandbox child process, real SQLite file, 127.0.0.1 only.

mod common;

use std::time::Duration;

use common::fixtures::{mp4, pdf, png, sha256};
use common::*;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

/// A daemon config for media: short grace and polls, so tests wait seconds, not minutes.
fn env(sb: &Sandbox, grace: &str) -> Env {
    Env::new(
        sb,
        &format!("\n[media]\nmember_grace = \"{grace}\"\npoll_interval = \"200ms\"\n"),
    )
}

/// The bytes the sandbox holds for `urn`.
fn uploaded(sb: &Sandbox, urn: &str) -> Vec<u8> {
    let url = format!(
        "{}/_sandbox/media/{}",
        sb.url,
        url::form_urlencoded::byte_serialize(urn.as_bytes()).collect::<String>()
    );
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .get(&url)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.bytes().unwrap().to_vec()
}

/// Every asset the post named was AVAILABLE when it did, and holds exactly `files`' bytes,
/// in order.
fn assert_assets(sb: &Sandbox, post: &Value, files: &[&[u8]]) {
    let assets = post["assets"].as_array().expect("assets listed");
    assert_eq!(assets.len(), files.len(), "{post:#}");
    for (a, bytes) in assets.iter().zip(files) {
        assert_eq!(a["status_at_post"], "AVAILABLE", "{post:#}");
        assert_eq!(a["sha256"], sha256(bytes), "{post:#}");
        let urn = a["urn"].as_str().unwrap();
        assert_eq!(sha256(&uploaded(sb, urn)), sha256(bytes), "bytes of {urn}");
    }
}

fn count(env: &Env, sql: &str) -> i64 {
    env.db().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn posts_with_text(sb: &Sandbox, text: &str) -> usize {
    sb.posts().iter().filter(|p| p["text"] == text).count()
}

/// A sandbox whose next `times` post creations (0: every one) are refused 400 with `code`,
/// and a daemon on it with short media and retry waits.
fn refused_posts(code: &str, message: &str, times: u32) -> (Sandbox, Env, Daemon) {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[media]\nmember_grace = \"1s\"\npoll_interval = \"200ms\"\n[retry]\nbase_delay = \"1s\"\n",
    );
    sb.faults(json!([{
        "path": "/rest/posts", "method": "POST", "status": 400, "times": times,
        "code": code, "message": message,
    }]));
    let d = Daemon::start(&env);
    (sb, env, d)
}

/// A bundle `name` with one image, alt "A", and `text`.
fn drop_one_image(env: &Env, name: &str, text: &str, image: &[u8]) {
    env.drop_bundle(
        name,
        &draft("images = [{ file = \"a.png\", alt = \"A\" }]", text),
        &[("a.png", image)],
    );
}

// ---------------------------------------------------------------- one test per kind

#[test]
fn one_image_with_alt_waits_the_member_grace_visibly_then_goes_out_once() {
    let sb = Sandbox::start();
    let env = env(&sb, "3s");
    let d = Daemon::start(&env);
    let image = png(800, 600);
    env.drop_bundle(
        "cat",
        &draft(
            "images = [{ file = \"cat.png\", alt = \"A cat on a mat\" }]",
            "Our cat",
        ),
        &[("cat.png", &image)],
    );
    // While the grace runs, the hold is visible in `lipost show`.
    let mut shown = String::new();
    let seen = wait_until(LONG, || {
        let o = env.lipost(&["show", "cat"]);
        shown = String::from_utf8_lossy(&o.stdout).to_string();
        shown.contains("media_processing") || !sb.posts().is_empty()
    });
    assert!(
        seen && shown.contains("media_processing"),
        "{shown}\n{}",
        d.log_text()
    );
    // And what it waits on: the image, its alt text, and where its upload stands.
    assert!(shown.contains("content     an image"), "{shown}");
    assert!(shown.contains("alt \"A cat on a mat\""), "{shown}");
    assert!(shown.contains("    upload  "), "{shown}");
    // `status` lists it under "next due" as held, with a time that is its deadline.
    let status = String::from_utf8_lossy(&env.lipost(&["status"]).stdout).to_string();
    assert!(
        status.contains("cat  (me)  (held: media_processing; goes out once that ends"),
        "{status}"
    );
    let post = wait_post_logged(&sb, &d, "Our cat", LONG);
    assert_eq!(post["content_kind"], "image", "{post:#}");
    assert_eq!(post["content"]["media"]["altText"], "A cat on a mat");
    assert_assets(&sb, &post, &[&image]);
    // A member image's status cannot be read: the post waited the grace after the upload.
    let (uploaded_at, published_at): (String, String) = env
        .db()
        .query_row(
            "SELECT m.uploaded_at, p.published_at FROM media m, posts p WHERE p.id = 'cat' AND m.sha256 = ?1",
            [sha256(&image)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let waited = chrono::DateTime::parse_from_rfc3339(&published_at).unwrap()
        - chrono::DateTime::parse_from_rfc3339(&uploaded_at).unwrap();
    assert!(waited >= chrono::Duration::seconds(3), "waited {waited}");
    assert!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE outcome = 'not_readable'"
        ) >= 1
    );
    assert_eq!(posts_with_text(&sb, "Our cat"), 1);
    assert_eq!(env.state("cat").as_deref(), Some("published"));
    // `show --json` carries what the text's upload lines say.
    let shown: Value =
        serde_json::from_slice(&env.lipost(&["show", "cat", "--json"]).stdout).unwrap();
    let media = &shown["media"][0];
    assert_eq!(media["file"], "cat.png", "{shown:#}");
    assert_eq!(media["alt"], "A cat on a mat", "{shown:#}");
    assert_eq!(media["uploads"][0]["status"], "available", "{shown:#}");
    assert_eq!(
        media["uploads"][0]["urn"], post["assets"][0]["urn"],
        "{shown:#}"
    );
}

#[test]
fn a_page_multi_image_keeps_order_and_alts_and_polls_the_status() {
    let sb = Sandbox::start();
    let env = env(&sb, "10m");
    let d = Daemon::start(&env);
    let (a, b, c) = (png(100, 100), png(200, 100), png(300, 100));
    env.drop_bundle("trio",
        &draft(
            "account = \"acme\"\nimages = [{ file = \"c.png\", alt = \"third made first\" }, \"a.png\", { file = \"b.png\", alt = \"bee\" }]",
            "Three pictures",
        ),
        &[("a.png", &a), ("b.png", &b), ("c.png", &c)],
    );
    // Page assets are read, so no 10-minute grace: it goes out once processing ends.
    let post = wait_post_logged(&sb, &d, "Three pictures", LONG);
    assert_eq!(post["content_kind"], "multi_image", "{post:#}");
    let images = post["content"]["multiImage"]["images"].as_array().unwrap();
    assert_eq!(images[0]["altText"], "third made first");
    assert!(images[1].get("altText").is_none(), "{post:#}");
    assert_eq!(images[2]["altText"], "bee");
    assert_assets(&sb, &post, &[&c, &a, &b]);
    assert_eq!(post["author"], "urn:li:organization:2414183");
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM media WHERE status = 'available' AND owner = 'urn:li:organization:2414183'"),
        3
    );
}

#[test]
fn a_document_goes_out_with_its_title_once_available_even_past_the_grace() {
    let sb = Sandbox::start();
    // A member's document's status can be read: processing longer than the grace keeps
    // the post waiting (LinkedIn may accept a post naming a document still PROCESSING, and
    // then never show it).
    sb.configure(json!({"media_processing_ms": 4000}));
    let env = env(&sb, "1s");
    let d = Daemon::start(&env);
    let deck = pdf(5);
    env.drop_bundle(
        "deck",
        &draft(
            "document = { file = \"q3.pdf\", title = \"Q3 deck\" }",
            "The deck",
        ),
        &[("q3.pdf", &deck)],
    );
    let post = wait_post_logged(&sb, &d, "The deck", LONG);
    assert_eq!(post["content_kind"], "document", "{post:#}");
    assert_eq!(post["content"]["media"]["title"], "Q3 deck");
    assert_assets(&sb, &post, &[&deck]);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE outcome = 'not_readable'"
        ),
        0
    );
    assert!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE step = 'status' AND outcome = 'processing'"
        ) >= 1
    );
}

#[test]
fn a_video_in_several_parts_arrives_intact_and_is_polled_until_available() {
    let sb = Sandbox::start();
    let env = env(&sb, "10m");
    let d = Daemon::start(&env);
    // Three parts: 4 MiB, 4 MiB and the rest.
    let video = mp4(10_000, 9_000_000, 7);
    env.drop_bundle(
        "demo",
        &draft(
            "video = { file = \"demo.mp4\", title = \"Demo\" }",
            "The demo",
        ),
        &[("demo.mp4", &video)],
    );
    let post = wait_post_logged(&sb, &d, "The demo", LONG);
    assert_eq!(post["content_kind"], "video", "{post:#}");
    assert_eq!(post["content"]["media"]["title"], "Demo");
    assert_assets(&sb, &post, &[&video]);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE step = 'upload' AND outcome = 'done'"
        ),
        3
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE step = 'finalize' AND outcome = 'done'"
        ),
        1
    );
}

#[test]
fn a_link_card_with_a_thumbnail_and_a_poll_go_out_as_written() {
    let sb = Sandbox::start();
    let env = env(&sb, "1s");
    let d = Daemon::start(&env);
    let cover = png(1200, 627);
    env.drop_bundle("card",
        &draft(
            "article = { url = \"https://example.com/post\", title = \"Our post\", description = \"Read it\", thumbnail = \"cover.png\" }",
            "The card",
        ),
        &[("cover.png", &cover)],
    );
    env.drop_draft(
        "poll.md",
        draft(
            "poll = { question = \"Tabs or spaces?\", options = [\"Tabs\", \"Spaces\", \"Both\"], duration = \"7d\" }",
            "Settle it",
        ),
    );
    let card = wait_post_logged(&sb, &d, "The card", LONG);
    assert_eq!(card["content_kind"], "article", "{card:#}");
    let article = &card["content"]["article"];
    assert_eq!(article["source"], "https://example.com/post");
    assert_eq!(article["title"], "Our post");
    assert_eq!(article["description"], "Read it");
    assert_assets(&sb, &card, &[&cover]);
    assert_eq!(article["thumbnail"], card["assets"][0]["urn"]);
    let poll = wait_post_logged(&sb, &d, "Settle it", LONG);
    assert_eq!(
        poll["content"]["poll"],
        json!({"question": "Tabs or spaces?", "options": [{"text": "Tabs"}, {"text": "Spaces"}, {"text": "Both"}], "settings": {"duration": "SEVEN_DAYS"}}),
        "{poll:#}"
    );
}

// ---------------------------------------------------------------- failures

/// The notes: a post naming an asset LinkedIn has no bytes for yet is refused
/// (`MEDIA_ASSET_WAITING_UPLOAD`). A member image is named once the grace has passed, its
/// status unreadable: a refusal then means "not yet", not a bad post, and nothing was created.
#[test]
fn a_post_refused_as_waiting_upload_is_tried_again_not_buried() {
    let (sb, env, d) = refused_posts(
        "MEDIA_ASSET_WAITING_UPLOAD",
        "Media asset is waiting upload",
        1,
    );
    let image = png(400, 300);
    drop_one_image(&env, "late", "Not yet, then yes", &image);
    let post = wait_post_logged(&sb, &d, "Not yet, then yes", LONG);
    assert_assets(&sb, &post, &[&image]);
    assert_eq!(posts_with_text(&sb, "Not yet, then yes"), 1);
    assert_eq!(env.state("late").as_deref(), Some("published"));
    let (refused, dead) = (
        count(
            &env,
            "SELECT COUNT(*) FROM attempts WHERE post_id = 'late' AND http_status = 400 AND error_code = 'MEDIA_ASSET_WAITING_UPLOAD' AND outcome = 'retry'",
        ),
        count(&env, "SELECT COUNT(*) FROM dead_letters WHERE post_id = 'late'"),
    );
    assert_eq!((refused, dead), (1, 0), "{}", d.log_text());
}

/// An asset LinkedIn no longer knows (`INVALID_IMAGE_ID`: an upload long ago that was never
/// posted may be gone) is uploaded again as a new asset, and the post goes with the new URN:
/// nothing was created by the refused try, and resending the old URN could never work.
#[test]
fn an_asset_linkedin_no_longer_knows_is_uploaded_again_and_the_post_goes() {
    let (sb, env, d) = refused_posts("INVALID_IMAGE_ID", "Image id does not exist", 1);
    let image = png(320, 200);
    drop_one_image(&env, "gone", "Asset gone, then back", &image);
    let post = wait_post_logged(&sb, &d, "Asset gone, then back", LONG);
    assert_assets(&sb, &post, &[&image]);
    assert_eq!(posts_with_text(&sb, "Asset gone, then back"), 1);
    assert_eq!(env.state("gone").as_deref(), Some("published"));
    // Two uploads, the post naming the second.
    let inits = count(
        &env,
        "SELECT COUNT(*) FROM media_attempts WHERE step = 'initialize' AND outcome = 'done'",
    );
    assert_eq!(inits, 2, "{}", d.log_text());
    let refused = count(
        &env,
        "SELECT COUNT(*) FROM attempts WHERE post_id = 'gone' AND error_code = 'INVALID_IMAGE_ID' AND outcome = 'retry'",
    );
    assert_eq!(refused, 1, "{}", d.log_text());
    let current: String = env
        .db()
        .query_row("SELECT urn FROM media", [], |r| r.get(0))
        .unwrap();
    assert_eq!(post["assets"][0]["urn"], current.as_str(), "{post:#}");
}

/// Two posts sharing one image, both refused for it: the first refusal renews the asset, the
/// second finds it renewed (or renewing) and waits for it: neither is buried.
#[test]
fn posts_sharing_an_asset_refused_together_both_go_out() {
    let (sb, env, d) = refused_posts("INVALID_IMAGE_ID", "Image id does not exist", 2);
    let image = png(240, 160);
    for name in ["one", "two"] {
        drop_one_image(&env, name, &format!("Shared image {name}"), &image);
    }
    for name in ["one", "two"] {
        let post = wait_post_logged(&sb, &d, &format!("Shared image {name}"), LONG);
        assert_assets(&sb, &post, &[&image]);
    }
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM dead_letters"),
        0,
        "{}",
        d.log_text()
    );
}

/// Uploaded again once, and refused so again: the asset itself is refused, and the post is
/// dead as `rejected` rather than uploaded again and again.
#[test]
fn an_asset_refused_again_after_a_new_upload_makes_the_post_rejected() {
    let (sb, env, d) = refused_posts("INVALID_IMAGE_ID", "Image id does not exist", 0);
    drop_one_image(&env, "bad", "Never shown", &png(100, 100));
    assert!(
        wait_until(LONG, || env.state("bad").as_deref() == Some("dead")),
        "{}",
        d.log_text()
    );
    let reason: String = env
        .db()
        .query_row(
            "SELECT reason FROM dead_letters WHERE post_id = 'bad'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reason, "rejected");
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM attempts WHERE post_id = 'bad'"),
        2
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE step = 'initialize' AND outcome = 'done'"
        ),
        2
    );
    assert!(sb.posts().is_empty());
}

#[test]
fn processing_failed_makes_the_post_dead_as_media_failed_and_it_is_never_created() {
    let sb = Sandbox::start();
    let env = env(&sb, "10m");
    let video = mp4(10_000, 200_000, 3);
    sb.configure(
        json!({"media_fail": {"sha256": sha256(&video), "reason": "the codec is not supported"}}),
    );
    let d = Daemon::start(&env);
    env.drop_bundle(
        "broken",
        &draft(
            "video = { file = \"broken.mp4\", title = \"Broken\" }",
            "Never shown",
        ),
        &[("broken.mp4", &video)],
    );
    let dead = wait_until(LONG, || env.state("broken").as_deref() == Some("dead"));
    assert!(dead, "{}", d.log_text());
    let (reason, message): (String, String) = env
        .db()
        .query_row(
            "SELECT reason, message FROM dead_letters WHERE post_id = 'broken'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(reason, "media_failed");
    assert!(message.contains("the codec is not supported"), "{message}");
    assert_eq!(posts_with_text(&sb, "Never shown"), 0);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM attempts WHERE post_id = 'broken'"
        ),
        0
    );
}

#[test]
fn an_upload_killed_mid_way_is_redone_and_the_post_goes_out_exactly_once() {
    let sb = Sandbox::start();
    let env = env(&sb, "10m");
    // The first part hangs long enough to kill the daemon while it is being sent.
    sb.faults(json!([{"path": "/dms-uploads/*", "method": "PUT", "delay_ms": 30000, "times": 1}]));
    let mut d = Daemon::start(&env);
    let video = mp4(10_000, 5_000_000, 9);
    env.drop_bundle(
        "killed",
        &draft(
            "video = { file = \"k.mp4\", title = \"Again\" }",
            "Said once",
        ),
        &[("k.mp4", &video)],
    );
    let mid_way = wait_until(LONG, || {
        env.db_exists()
            && count(
                &env,
                "SELECT COUNT(*) FROM media_attempts WHERE step = 'upload' AND finished_at IS NULL",
            ) == 1
    });
    assert!(mid_way, "{}", d.log_text());
    d.kill9();
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM media WHERE status = 'uploading'"
        ),
        1
    );
    let _ = reqwest::blocking::Client::new()
        .delete(format!("{}/_sandbox/faults", sb.url))
        .send();
    let d = Daemon::start(&env);
    let post = wait_post_logged(&sb, &d, "Said once", LONG);
    assert_assets(&sb, &post, &[&video]);
    // Nothing more comes: one post, one claim.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(posts_with_text(&sb, "Said once"), 1);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM attempts WHERE post_id = 'killed'"
        ),
        1
    );
    assert!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE outcome = 'interrupted'"
        ) >= 1
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE step = 'initialize'"
        ),
        2,
        "initialized afresh after the kill"
    );
}

#[test]
fn assets_are_uploaded_upload_ahead_before_the_due_time_not_earlier() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[media]\nupload_ahead = \"6s\"\nmember_grace = \"1s\"\npoll_interval = \"200ms\"\n",
    );
    let d = Daemon::start(&env);
    let image = png(640, 480);
    let due = chrono::Utc::now() + chrono::Duration::seconds(18);
    env.drop_bundle(
        "later",
        &draft(
            &format!(
                "publish_at = \"{}\"\nimages = [\"later.png\"]",
                due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            "Due later",
        ),
        &[("later.png", &image)],
    );
    assert!(wait_until(LONG, || env.state("later").is_some()));
    // Well before due − upload_ahead: nothing sent yet.
    std::thread::sleep(Duration::from_secs(3));
    assert!(chrono::Utc::now() < due - chrono::Duration::seconds(6));
    assert_eq!(count(&env, "SELECT COUNT(*) FROM media_attempts"), 0);
    let post = wait_post_logged(&sb, &d, "Due later", LONG);
    assert_assets(&sb, &post, &[&image]);
    let first_step: String = env
        .db()
        .query_row("SELECT MIN(started_at) FROM media_attempts", [], |r| {
            r.get(0)
        })
        .unwrap();
    let first_step = chrono::DateTime::parse_from_rfc3339(&first_step).unwrap();
    assert!(
        first_step >= due - chrono::Duration::seconds(7) && first_step < due,
        "first upload step at {first_step}, due {due}"
    );
    let published: String = env
        .db()
        .query_row(
            "SELECT published_at FROM posts WHERE id = 'later'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let published = chrono::DateTime::parse_from_rfc3339(&published).unwrap();
    assert!(published >= due, "published at {published}, due {due}");
}

#[test]
fn a_failed_video_part_is_retried_on_its_own_and_429s_back_off() {
    let sb = Sandbox::start();
    let env = env(&sb, "10m");
    sb.faults(json!([
        {"path": "/rest/videos", "method": "POST", "status": 429, "times": 2},
        {"path": "/dms-uploads/*", "method": "PUT", "status": 503, "times": 1}
    ]));
    let d = Daemon::start(&env);
    let video = mp4(10_000, 9_000_000, 5);
    env.drop_bundle(
        "bumpy",
        &draft(
            "video = { file = \"b.mp4\", title = \"Bumpy\" }",
            "Bumpy ride",
        ),
        &[("b.mp4", &video)],
    );
    let post = wait_post_logged(&sb, &d, "Bumpy ride", LONG);
    assert_assets(&sb, &post, &[&video]);
    let steps = |sql: &str| count(&env, sql);
    assert_eq!(
        steps("SELECT COUNT(*) FROM media_attempts WHERE step = 'initialize' AND outcome = 'rate_limited'"),
        2
    );
    // The part that got a 503 was sent again by itself: one upload, one initialize after
    // the 429s, three parts done.
    assert_eq!(
        steps("SELECT COUNT(*) FROM media_attempts WHERE step = 'initialize' AND outcome = 'done'"),
        1
    );
    assert_eq!(
        steps("SELECT COUNT(*) FROM media_attempts WHERE step = 'upload' AND outcome = 'retry' AND http_status = 503"),
        1
    );
    assert_eq!(
        steps("SELECT COUNT(*) FROM media_attempts WHERE step = 'upload' AND outcome = 'done'"),
        3
    );
    // The 429s waited: the tries are at least the backoff apart.
    let times: Vec<String> = {
        let db = env.db();
        let mut stmt = db
            .prepare("SELECT started_at FROM media_attempts WHERE step = 'initialize' ORDER BY id")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert!(
        t(&times[1]) - t(&times[0]) >= chrono::Duration::milliseconds(400),
        "{times:?}"
    );
}

#[test]
fn the_same_file_for_the_same_author_is_uploaded_once_and_reused() {
    let sb = Sandbox::start();
    let env = env(&sb, "1s");
    let d = Daemon::start(&env);
    let logo = png(400, 400);
    env.drop_bundle(
        "first",
        &draft("images = [\"logo.png\"]", "Logo once"),
        &[("logo.png", &logo)],
    );
    let first = wait_post_logged(&sb, &d, "Logo once", LONG);
    env.drop_bundle(
        "second",
        &draft(
            "images = [{ file = \"same.png\", alt = \"Our logo\" }]",
            "Logo twice",
        ),
        &[("same.png", &logo)],
    );
    let second = wait_post_logged(&sb, &d, "Logo twice", LONG);
    assert_eq!(first["assets"][0]["urn"], second["assets"][0]["urn"]);
    assert_assets(&sb, &second, &[&logo]);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM media"), 1);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM media_attempts WHERE step = 'initialize'"
        ),
        1
    );
}

/// The built-in sandbox (no `api_base_url`) starts empty at every run: an image uploaded to
/// it before a restart is uploaded again, not named in a post as if it still existed (which
/// made the post dead as `rejected`: "urn:li:image:… does not exist").
#[test]
fn with_the_built_in_sandbox_a_restart_uploads_the_media_again() {
    let sb = Sandbox::start();
    let env = env(&sb, "2s");
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(&format!("api_base_url = \"{}\"\n", sb.url), "");
    std::fs::write(&env.config, text).unwrap();
    let mut d = Daemon::start(&env);
    env.drop_bundle(
        "pic",
        &draft("images = [\"pic.png\"]", "Built-in sandbox picture"),
        &[("pic.png", &png(40, 30))],
    );
    // Uploaded and in its grace: then the daemon (and its sandbox) stops.
    assert!(
        wait_until(LONG, || count(
            &env,
            "SELECT COUNT(*) FROM media WHERE status = 'processing'"
        ) == 1),
        "{}",
        d.log_text()
    );
    d.term(LONG);
    let d = Daemon::start(&env);
    assert!(
        wait_until(LONG, || env.state("pic").as_deref() == Some("published")),
        "state {:?}\n{}",
        env.state("pic"),
        d.log_text()
    );
    assert!(
        d.log_text().contains("will be uploaded again"),
        "{}",
        d.log_text()
    );
    // Once per run at least (the first try after the restart may meet last run's token).
    let initialized = count(
        &env,
        "SELECT COUNT(*) FROM media_attempts WHERE step = 'initialize'",
    );
    assert!(initialized >= 2, "{initialized}");
}
