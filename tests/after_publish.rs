//! After publishing: the first comment, `lipost delete`, and edits (`edit = true`), through
//! the real binary against the sandbox.

mod common;

use std::time::Duration;

use common::fixtures::png;
use common::*;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(30);

fn sandbox_post(sb: &Sandbox, urn: &str) -> Value {
    sb.posts()
        .into_iter()
        .find(|p| p["urn"] == urn)
        .unwrap_or_else(|| panic!("{urn} not in the sandbox: {:?}", sb.posts()))
}

fn urn_of(env: &Env, id: &str) -> String {
    env.db()
        .query_row("SELECT post_urn FROM posts WHERE id = ?1", [id], |r| {
            r.get::<_, Option<String>>(0)
        })
        .unwrap()
        .unwrap_or_else(|| panic!("{id} has no URN"))
}

/// `(status, comment_urn, attempts, last_error)` of a post's first comment.
fn comment(env: &Env, id: &str) -> Option<(String, Option<String>, u32, Option<String>)> {
    env.db()
        .query_row(
            "SELECT status, comment_urn, attempts, last_error FROM comments WHERE post_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .ok()
}

fn wait_comment(env: &Env, d: &Daemon, id: &str, status: &str) {
    let ok = wait_until(LONG, || comment(env, id).is_some_and(|c| c.0 == status));
    assert!(
        ok,
        "comment of {id} never became {status} (is {:?}); log:\n{}",
        comment(env, id),
        d.log_text()
    );
}

fn wait_state(env: &Env, d: &Daemon, id: &str, state: &str) {
    let ok = wait_until(LONG, || env.state(id).as_deref() == Some(state));
    assert!(
        ok,
        "{id} never became {state} (is {:?}); log:\n{}",
        env.state(id),
        d.log_text()
    );
}

fn outcomes(env: &Env, id: &str) -> Vec<String> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT outcome FROM attempts WHERE post_id = ?1 ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([id], |r| r.get::<_, Option<String>>(0))
        .unwrap();
    rows.map(|r| r.unwrap().unwrap_or_default()).collect()
}

fn show(env: &Env, id: &str) -> String {
    let o = env.lipost(&["show", id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn rejected(env: &Env, name: &str) -> String {
    let path = env.queue.join("rejected").join(format!("{name}.error"));
    assert!(
        wait_until(LONG, || path.exists()),
        "{name} was not rejected"
    );
    std::fs::read_to_string(path).unwrap()
}

/// Characters that are Little Text markup in a post: a comment carries them as written.
const COMMENT: &str = "Slides (here): [deck] #launch @team *now* _really_ ~ok~ <3 \\o/";

#[test]
fn the_first_comment_is_posted_once_as_the_author_after_the_post_with_its_text_exact() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let front = format!("id = \"c1\"\nfirst_comment = {}", toml_str(COMMENT));
    env.drop_draft("c1.md", draft(&front, "Launch day"));
    let post = wait_post_logged(&sb, &d, "Launch day", LONG);
    wait_comment(&env, &d, "c1", "posted");
    let post = sandbox_post(&sb, post["urn"].as_str().unwrap());
    let comments = post["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 1, "{comments:?}");
    let c = &comments[0];
    assert_eq!(
        c["text"], COMMENT,
        "sent as written, not Little Text escaped"
    );
    assert_eq!(c["actor"], post["author"], "as the post's author");
    assert!(
        c["created_at"].as_str().unwrap() >= post["received_at"].as_str().unwrap(),
        "after the post"
    );
    let (_, urn, attempts, _) = comment(&env, "c1").unwrap();
    assert_eq!(urn.as_deref(), c["urn"].as_str());
    assert_eq!(attempts, 1);
    assert!(
        show(&env, "c1").contains("first comment: posted"),
        "{}",
        show(&env, "c1")
    );
    // Nothing more goes out for it.
    std::thread::sleep(Duration::from_secs(2));
    let post = sandbox_post(&sb, post["urn"].as_str().unwrap());
    assert_eq!(post["comments"].as_array().unwrap().len(), 1);
    assert_eq!(sb.posts().len(), 1);
}

/// TOML basic string for `s`.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn a_403_on_the_comment_is_recorded_and_shown_and_the_post_stays_published_once() {
    let sb = Sandbox::start();
    sb.configure(json!({"comments_forbidden": true}));
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft(
        "c2.md",
        draft(
            "id = \"c2\"\nfirst_comment = \"More below\"",
            "Refused comment",
        ),
    );
    wait_post_logged(&sb, &d, "Refused comment", LONG);
    wait_comment(&env, &d, "c2", "refused");
    let (_, urn, attempts, error) = comment(&env, "c2").unwrap();
    assert_eq!((urn, attempts), (None, 1));
    assert!(error.unwrap().contains("not permitted"));
    assert_eq!(env.state("c2").as_deref(), Some("published"));
    let shown = show(&env, "c2");
    assert!(shown.contains("first comment: refused"), "{shown}");
    assert!(shown.contains("state       published"), "{shown}");
    d.wait_log("first comment refused", LONG);
    std::thread::sleep(Duration::from_secs(2));
    let posts: Vec<Value> = sb
        .posts()
        .into_iter()
        .filter(|p| p["text"] == "Refused comment")
        .collect();
    assert_eq!(posts.len(), 1, "never resent: {posts:?}");
    assert!(posts[0]["comments"].as_array().unwrap().is_empty());
    assert_eq!(outcomes(&env, "c2"), vec!["published"]);
}

/// The daemon dies while its comment request is on its way (the sandbox holds it): at the
/// restart the comment is in doubt and not sent again, and a person is told.
#[test]
fn a_daemon_killed_while_commenting_never_doubles_the_comment() {
    let sb = Sandbox::start();
    sb.faults(json!([{"path": "/rest/socialActions/*", "delay_ms": 4000, "times": 1}]));
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    env.drop_draft(
        "c3.md",
        draft(
            "id = \"c3\"\nfirst_comment = \"Only once\"",
            "Crash comment",
        ),
    );
    let post = wait_post_logged(&sb, &d, "Crash comment", LONG);
    let urn = post["urn"].as_str().unwrap().to_string();
    wait_comment(&env, &d, "c3", "sending");
    d.kill9();
    // Let the held request finish on the sandbox's side, whatever it does.
    std::thread::sleep(Duration::from_secs(5));
    let before = sandbox_post(&sb, &urn)["comments"]
        .as_array()
        .unwrap()
        .len();
    assert!(before <= 1);

    let d = Daemon::start(&env);
    wait_comment(&env, &d, "c3", "dead");
    let (_, _, attempts, error) = comment(&env, "c3").unwrap();
    assert_eq!(attempts, 1);
    assert!(error.unwrap().contains("may be on LinkedIn"));
    d.wait_log("not sent again", LONG);
    assert!(show(&env, "c3").contains("first comment: dead"));
    // The sender is alive: another post's comment goes out, and c3's does not.
    env.drop_draft(
        "c4.md",
        draft("id = \"c4\"\nfirst_comment = \"Second\"", "After the crash"),
    );
    wait_comment(&env, &d, "c4", "posted");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        sandbox_post(&sb, &urn)["comments"]
            .as_array()
            .unwrap()
            .len(),
        before,
        "not resent"
    );
    let twins = sb
        .posts()
        .into_iter()
        .filter(|p| p["text"] == "Crash comment")
        .count();
    assert_eq!(twins, 1, "the post went out once");
}

/// The daemon dies after the post is published and before its comment is sent (it waits
/// after a 429): the restart sends it, once.
#[test]
fn a_426_on_the_comment_is_the_operators_problem_tried_again_not_given_up() {
    let sb = Sandbox::start();
    sb.faults(json!([{"path": "/rest/socialActions/*", "status": 426, "times": 1}]));
    let env = Env::new(&sb, "\n[retry]\nbase_delay = \"1s\"\nmax_delay = \"2s\"\n");
    let d = Daemon::start(&env);
    env.drop_draft(
        "c9.md",
        draft(
            "id = \"c9\"\nfirst_comment = \"Still coming\"",
            "Version trouble",
        ),
    );
    let post = wait_post_logged(&sb, &d, "Version trouble", LONG);
    // The 426 is said loudly; the comment waits (nothing is sent while the version is
    // retired), not given up.
    d.wait_log("no longer serves LinkedIn-Version", LONG);
    std::thread::sleep(Duration::from_secs(3));
    let (status, _, attempts, _) = comment(&env, "c9").unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        ("waiting", 0),
        "the 426 counts no try: {}",
        d.log_text()
    );
    // The operator reloads (here with the same version, which LinkedIn serves again).
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    wait_comment(&env, &d, "c9", "posted");
    let (_, _, attempts, _) = comment(&env, "c9").unwrap();
    assert_eq!(attempts, 1, "only the try that posted counts");
    let comments = sandbox_post(&sb, post["urn"].as_str().unwrap())["comments"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(comments.len(), 1, "{comments:?}");
}

#[test]
fn a_daemon_killed_before_commenting_sends_the_comment_once_after_the_restart() {
    let sb = Sandbox::start();
    sb.faults(json!([{"path": "/rest/socialActions/*", "status": 429, "times": 1}]));
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"10s\"\nmax_delay = \"20s\"\n",
    );
    let mut d = Daemon::start(&env);
    env.drop_draft(
        "c5.md",
        draft(
            "id = \"c5\"\nfirst_comment = \"Eventually\"",
            "Comment waits",
        ),
    );
    let post = wait_post_logged(&sb, &d, "Comment waits", LONG);
    let urn = post["urn"].as_str().unwrap().to_string();
    let ok = wait_until(LONG, || {
        comment(&env, "c5").is_some_and(|c| c.0 == "waiting" && c.2 == 1)
    });
    assert!(ok, "{:?}\n{}", comment(&env, "c5"), d.log_text());
    d.kill9();
    assert!(sandbox_post(&sb, &urn)["comments"]
        .as_array()
        .unwrap()
        .is_empty());

    let d = Daemon::start(&env);
    wait_comment(&env, &d, "c5", "posted");
    std::thread::sleep(Duration::from_secs(1));
    let comments = sandbox_post(&sb, &urn)["comments"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0]["text"], "Eventually");
    assert_eq!(comment(&env, "c5").unwrap().2, 2, "two tries recorded");
}

#[test]
fn delete_removes_a_published_post_once_and_again_is_fine() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    env.drop_draft("gone.md", draft("id = \"gone\"", "To be deleted"));
    env.drop_draft(
        "later.md",
        draft(
            &format!("id = \"later\"\npublish_at = \"{}\"", in_secs(3600)),
            "Not yet",
        ),
    );
    wait_post_logged(&sb, &d, "To be deleted", LONG);
    wait_state(&env, &d, "gone", "published");
    let urn = urn_of(&env, "gone");

    // With the daemon running.
    let o = env.lipost(&["delete", "gone"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("deleted gone"));
    assert_eq!(env.state("gone").as_deref(), Some("deleted"));
    assert_eq!(sandbox_post(&sb, &urn)["deleted"], true);
    assert_eq!(outcomes(&env, "gone"), vec!["published", "deleted"]);

    // Its draft again: refused with what to do, not "being published".
    env.drop_draft("gone-again.md", draft("id = \"gone\"", "To be deleted"));
    let why = rejected(&env, "gone-again.md");
    assert!(why.contains("deleted") && why.contains("new id"), "{why}");
    assert_eq!(env.state("gone").as_deref(), Some("deleted"));

    // Again, with the daemon stopped: says so, exits 0, sends nothing new.
    d.term(LONG);
    let o = env.lipost(&["delete", "gone"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("already deleted"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(outcomes(&env, "gone"), vec!["published", "deleted"]);

    // A scheduled post is not deleted: cancel is what stops it.
    let o = env.lipost(&["delete", "later"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("lipost cancel later"));
    assert_eq!(env.state("later").as_deref(), Some("scheduled"));

    let o = env.lipost(&["list", "--state", "deleted"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(
        listed.contains("gone") && !listed.contains("later"),
        "{listed}"
    );
    let o = env.lipost(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["counts"]["deleted"], 1);
}

#[test]
fn delete_of_a_urn_linkedin_does_not_know_says_so_and_not_to_try_again() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft(
        "typo.md",
        draft(
            &format!("publish_at = \"{}\"", in_secs(3600)),
            "Found by hand",
        ),
    );
    wait_state(&env, &d, "typo", "scheduled");
    // Recorded by hand with a URN LinkedIn never gave.
    let o = env.lipost(&["mark-published", "typo", "urn:li:share:1234"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env.lipost(&["delete", "typo"]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("LinkedIn knows no post urn:li:share:1234")
            && said.contains("trying again will not help")
            && !said.contains("again later"),
        "{said}"
    );
    assert_eq!(env.state("typo").as_deref(), Some("published"));
}

#[test]
fn delete_with_the_daemon_stopped_refreshes_a_lapsed_token_first() {
    let sb = Sandbox::start();
    sb.configure(json!({"issue_refresh_tokens": true}));
    // The page `acme` posts through `me`: a login checks that `me` may.
    post_json(
        &format!("{}/_sandbox/roles", sb.url),
        &json!({"member": "me", "organization": "urn:li:organization:2414183", "role": "ADMINISTRATOR"}),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::build(
        &sb,
        "",
        &format!("redirect_uri = \"http://127.0.0.1:{port}/callback\""),
        "",
    );
    // A login: the account has a refresh token.
    login_paste(&env);
    let mut d = Daemon::start(&env);
    env.drop_draft("solo.md", draft("id = \"solo\"", "Deleted offline"));
    wait_post_logged(&sb, &d, "Deleted offline", LONG);
    wait_state(&env, &d, "solo", "published");
    d.term(LONG);
    // The stored token lapsed while lipost was stopped: the auth code renews it.
    env.db()
        .execute(
            "UPDATE tokens SET access_expires_at = '2020-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
    let o = env.lipost(&["delete", "solo"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sandbox_post(&sb, &urn_of(&env, "solo"))["deleted"], true);
    assert_eq!(env.state("solo").as_deref(), Some("deleted"));
    let (source, expires): (String, String) = env
        .db()
        .query_row(
            "SELECT source, access_expires_at FROM tokens WHERE account = 'me'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(source, "login");
    assert!(
        expires > chrono::Utc::now().to_rfc3339(),
        "refreshed: {expires}"
    );
}

#[test]
fn an_edit_changes_the_published_text_and_is_recorded() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let front = format!("id = \"ed\"\npublish_at = \"{}\"", in_secs(2));
    env.drop_draft("ed.md", draft(&front, "First (draft) text"));
    wait_post_logged(&sb, &d, "First (draft) text", LONG);
    wait_state(&env, &d, "ed", "published");
    let urn = urn_of(&env, "ed");
    // The same file again, `publish_at` (now past) and all, with the text changed.
    let new = "Fixed text (typo) #launch";
    env.drop_draft("ed.md", draft(&format!("{front}\nedit = true"), new));
    let ok = wait_until(LONG, || sandbox_post(&sb, &urn)["text"] == new);
    assert!(ok, "{:?}\n{}", sandbox_post(&sb, &urn), d.log_text());
    let p = sandbox_post(&sb, &urn);
    assert_eq!(p["edits"].as_array().unwrap().len(), 1);
    assert_eq!(sb.posts().len(), 1, "edited, not posted again");
    let ok = wait_until(LONG, || {
        env.db()
            .query_row("SELECT text FROM posts WHERE id = 'ed'", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap()
            == new
    });
    assert!(ok);
    assert_eq!(outcomes(&env, "ed"), vec!["published", "edited"]);
    assert!(
        env.queue.join("accepted/ed.md").exists()
            || wait_until(LONG, || env.queue.join("accepted/ed.md").exists())
    );
    let shown = show(&env, "ed");
    assert!(
        shown.contains("edit (done)") && shown.contains(new),
        "{shown}"
    );
}

#[test]
fn an_edit_is_retried_after_a_5xx_and_lands_once() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft("e5.md", draft("id = \"e5\"", "Before"));
    wait_post_logged(&sb, &d, "Before", LONG);
    wait_state(&env, &d, "e5", "published");
    let urn = urn_of(&env, "e5");
    sb.faults(json!([{"path": "/rest/posts/*", "method": "POST", "status": 503, "times": 1}]));
    env.drop_draft("e5b.md", draft("id = \"e5\"\nedit = true", "After"));
    let ok = wait_until(LONG, || sandbox_post(&sb, &urn)["text"] == "After");
    assert!(ok, "{}", d.log_text());
    let ok = wait_until(LONG, || {
        outcomes(&env, "e5").last().map(String::as_str) == Some("edited")
    });
    assert!(ok, "{:?}", outcomes(&env, "e5"));
    assert_eq!(outcomes(&env, "e5"), vec!["published", "retry", "edited"]);
}

#[test]
fn edits_that_change_more_than_the_text_or_have_nothing_to_edit_are_rejected() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft("base.md", draft("id = \"base\"", "Base text"));
    env.drop_draft(
        "vote.md",
        draft(
            "id = \"vote\"\npoll = { question = \"Tabs or spaces?\", options = [\"Tabs\", \"Spaces\"], duration = \"3d\" }",
            "Vote please",
        ),
    );
    env.drop_draft(
        "soon.md",
        draft(
            &format!("id = \"soon\"\npublish_at = \"{}\"", in_secs(3600)),
            "Scheduled",
        ),
    );
    wait_state(&env, &d, "base", "published");
    wait_state(&env, &d, "vote", "published");
    assert_eq!(
        sandbox_post(&sb, &urn_of(&env, "vote"))["content_kind"],
        "poll"
    );

    env.drop_draft(
        "acc.md",
        draft(
            "id = \"base\"\naccount = \"acme\"\nedit = true",
            "Base text, by the page",
        ),
    );
    let why = rejected(&env, "acc.md");
    assert!(why.contains("account"), "{why}");

    env.drop_draft(
        "vis.md",
        draft(
            "id = \"base\"\nvisibility = \"CONNECTIONS\"\nedit = true",
            "Base, narrower",
        ),
    );
    assert!(rejected(&env, "vis.md").contains("visibility"));

    env.drop_draft(
        "vote2.md",
        draft(
            "id = \"vote\"\npoll = { question = \"Tabs or spaces?\", options = [\"Tabs\", \"Spaces\"], duration = \"3d\" }\nedit = true",
            "Vote now",
        ),
    );
    assert!(rejected(&env, "vote2.md").contains("poll"));

    env.drop_draft("ghost.md", draft("id = \"ghost\"\nedit = true", "Who?"));
    let why = rejected(&env, "ghost.md");
    assert!(why.contains("no post with id \"ghost\""), "{why}");

    env.drop_draft(
        "soon2.md",
        draft("id = \"soon\"\nedit = true", "Scheduled, edited"),
    );
    let why = rejected(&env, "soon2.md");
    assert!(
        why.contains("scheduled") && why.contains("Remove `edit = true`"),
        "{why}"
    );

    std::thread::sleep(Duration::from_secs(1));
    let base = sandbox_post(&sb, &urn_of(&env, "base"));
    assert_eq!(base["text"], "Base text");
    assert!(base["edits"].as_array().unwrap().is_empty());
    let n: u32 = env
        .db()
        .query_row("SELECT COUNT(*) FROM edits", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    assert!(env.state("ghost").is_none());
}

#[test]
fn sigterm_while_commenting_lets_the_comment_finish() {
    let sb = Sandbox::start();
    sb.faults(json!([{"path": "/rest/socialActions/*", "delay_ms": 1500, "times": 1}]));
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    env.drop_draft(
        "c6.md",
        draft(
            "id = \"c6\"\nfirst_comment = \"Before the stop\"",
            "Stopping soon",
        ),
    );
    let post = wait_post_logged(&sb, &d, "Stopping soon", LONG);
    wait_comment(&env, &d, "c6", "sending");
    let status = d.term(LONG);
    assert!(status.success(), "{status:?}");
    let (state, _, attempts, _) = comment(&env, "c6").unwrap();
    assert_eq!((state.as_str(), attempts), ("posted", 1));
    let urn = post["urn"].as_str().unwrap();
    assert_eq!(
        sandbox_post(&sb, urn)["comments"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn an_image_post_gets_its_comment_and_an_edit_may_change_its_text_but_not_its_image() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[media]\nmember_grace = \"1s\"\npoll_interval = \"1s\"\n",
    );
    let d = Daemon::start(&env);
    let front = "id = \"pic\"\nimages = [{ file = \"a.png\", alt = \"A chart\" }]\nfirst_comment = \"Source: our data\"";
    let image = png(40, 30);
    env.drop_bundle("pic", &draft(front, "Our chart"), &[("a.png", &image)]);
    let post = wait_post_logged(&sb, &d, "Our chart", Duration::from_secs(60));
    let urn = post["urn"].as_str().unwrap().to_string();
    wait_comment(&env, &d, "pic", "posted");
    let p = sandbox_post(&sb, &urn);
    assert_eq!(p["comments"][0]["text"], "Source: our data");

    // The same bundle with other text: edited, the image stays.
    let edit = format!("{front}\nedit = true");
    env.drop_bundle(
        "pic2",
        &draft(&edit, "Our chart (fixed)"),
        &[("a.png", &image)],
    );
    let ok = wait_until(LONG, || {
        sandbox_post(&sb, &urn)["text"] == "Our chart (fixed)"
    });
    assert!(ok, "{}", d.log_text());
    assert_eq!(sandbox_post(&sb, &urn)["content"], p["content"]);

    // Another image is not an edit LinkedIn allows.
    env.drop_bundle(
        "pic3",
        &draft(&edit, "Our chart (new image)"),
        &[("a.png", &png(50, 30))],
    );
    let why = rejected(&env, "pic3");
    assert!(why.contains("attachments"), "{why}");
    assert_eq!(sandbox_post(&sb, &urn)["text"], "Our chart (fixed)");
    assert_eq!(sb.posts().len(), 1);
}

#[test]
fn a_page_posts_first_comment_is_made_as_the_page() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft(
        "pg.md",
        draft(
            "id = \"pg\"\naccount = \"acme\"\nfirst_comment = \"From the page\"",
            "Page news",
        ),
    );
    let post = wait_post_logged(&sb, &d, "Page news", LONG);
    wait_comment(&env, &d, "pg", "posted");
    let p = sandbox_post(&sb, post["urn"].as_str().unwrap());
    assert_eq!(p["author"], "urn:li:organization:2414183");
    assert_eq!(p["comments"][0]["actor"], "urn:li:organization:2414183");
    assert_eq!(p["comments"][0]["text"], "From the page");
}

#[test]
fn a_comment_refused_by_429_again_and_again_waits_for_the_daily_reset_not_given_up() {
    let sb = Sandbox::start();
    // A spent daily quota: every comment is refused until midnight UTC.
    sb.faults(
        json!([{"path": "/rest/socialActions/*", "status": 429, "until_midnight_utc": true}]),
    );
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"100ms\"\nmax_delay = \"200ms\"\nmax_attempts = 6\n",
    );
    let d = Daemon::start(&env);
    env.drop_draft(
        "quota.md",
        draft(
            "id = \"quota\"\nfirst_comment = \"Tomorrow then\"",
            "The post goes, the comment waits",
        ),
    );
    wait_state(&env, &d, "quota", "published");
    // Five 429s in a row: the quota is taken as spent, and the comment waits for the reset
    // with tries left, instead of spending them all today and being given up.
    let ok = wait_until(LONG, || comment(&env, "quota").is_some_and(|c| c.2 >= 5));
    assert!(ok, "{:?}\n{}", comment(&env, "quota"), d.log_text());
    std::thread::sleep(Duration::from_secs(2));
    let (status, _, attempts, error) = comment(&env, "quota").unwrap();
    assert_eq!((status.as_str(), attempts), ("waiting", 5), "{error:?}");
    assert!(
        error.as_deref().unwrap_or("").contains("daily limit"),
        "{error:?}"
    );
    let next: String = env
        .db()
        .query_row(
            "SELECT next_attempt_at FROM comments WHERE post_id = 'quota'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(&next).unwrap();
    let midnight = (chrono::Utc::now().date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    assert!(next >= midnight, "next try at {next}, before the reset");
}
