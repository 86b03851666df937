//! Several daemons on one PostgreSQL schedule: shared work, node identity, and a frozen node
//! (SIGSTOP) that loses its claims and changes nothing when thawed. PostgreSQL only: without
//! `LIPOST_TEST_POSTGRES` each test says it is skipped (CI always sets it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn postgres_or_skip(test: &str) -> bool {
    if std::env::var("LIPOST_TEST_POSTGRES").is_ok_and(|v| !v.is_empty()) {
        return true;
    }
    eprintln!("{test}: skipped: LIPOST_TEST_POSTGRES is not set (CI sets it)");
    false
}

/// A second node on `env`'s database: its own name, queue folder and local files.
struct Node {
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn config(env: &Env, id: &str) -> PathBuf {
        let text = std::fs::read_to_string(&env.config).unwrap();
        assert!(text.contains("data_dir = \"state\""), "{text}");
        let text = text
            .replace(
                "queue_dir = \"queue\"",
                &format!("queue_dir = \"queue-{id}\""),
            )
            .replace(
                "data_dir = \"state\"",
                &format!("data_dir = \"state-{id}\""),
            );
        let path = env.path(&format!("config-{id}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn spawn(env: &Env, config: &Path, id: &str) -> Node {
        let log = env.path(&format!("node-{id}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("RUST_LOG", "info")
            .env("LIPOST_NODE_ID", id)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Node {
            child: Some(child),
            log,
        }
    }

    /// A node on its own config, once it says it is running.
    fn start(env: &Env, id: &str) -> Node {
        let node = Node::spawn(env, &Node::config(env, id), id);
        node.wait_log("lipost is running", Duration::from_secs(20));
        node
    }

    /// Renames `content` into this node's queue folder as `name` (written beside it first,
    /// so the node never sees it half written).
    fn drop_draft(env: &Env, id: &str, name: &str, content: &str) {
        let tmp = env.path(&format!("queue-{id}/.{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, env.path(&format!("queue-{id}/{name}"))).unwrap();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, timeout: Duration) {
        assert!(
            wait_until(timeout, || self.log_text().contains(needle)),
            "node log never said {needle:?}:\n{}",
            self.log_text()
        );
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut().unwrap();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(s) = c.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGCONT first: a stopped process does not die of SIGKILL until it runs.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn grant_page_role(sb: &Sandbox) {
    post_json(
        &format!("{}/_sandbox/roles", sb.url),
        &json!({"member": "me", "organization": "urn:li:organization:2414183", "role": "ADMINISTRATOR"}),
    );
}

fn copies(sb: &Sandbox, text: &str) -> usize {
    sb.posts()
        .iter()
        .filter(|p| p["commentary"].as_str() == Some(text))
        .count()
}

fn one_text(env: &Env, sql: &str) -> Option<String> {
    env.db().query_row(sql, [], |r| r.get(0)).ok()
}

/// Waits (30 s at most) until `sql` gives `want`; the node's log if it never does.
fn wait_text(env: &Env, sql: &str, want: &str, node: &Node) {
    assert!(
        wait_until(Duration::from_secs(30), || one_text(env, sql).as_deref()
            == Some(want)),
        "{sql} never gave {want:?}:\n{}",
        node.log_text()
    );
}

#[test]
fn two_nodes_share_one_schedule_and_one_node_id_runs_once() {
    if !postgres_or_skip("two_nodes_share_one_schedule_and_one_node_id_runs_once") {
        return;
    }
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[publisher]\nclaim_lease = \"3s\"\n");
    let a = Node::start(&env, "a");
    let b = Node::start(&env, "b");

    // A third daemon calling itself `a` is refused, naming the one that runs.
    let c_config = Node::config(&env, "c");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&c_config)
        .arg("run")
        .env("LIPOST_NODE_ID", "a")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("node_id \"a\"") && err.contains("pid"),
        "{err}"
    );

    // Drafts arrive on both nodes' folders; each goes out once, from whichever node.
    for (node, n) in [("a", 10), ("b", 10)] {
        for i in 0..n {
            let text = format!("From node {node}, post {i}\n");
            Node::drop_draft(&env, node, &format!("{node}{i}.md"), &text);
        }
    }
    assert!(
        wait_until(Duration::from_secs(30), || sb.posts().len() == 20),
        "{} posts\n--- a:\n{}\n--- b:\n{}",
        sb.posts().len(),
        a.log_text(),
        b.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    for node in ["a", "b"] {
        for i in 0..10 {
            assert_eq!(copies(&sb, &format!("From node {node}, post {i}")), 1);
        }
    }
    let published: i64 = env
        .db()
        .query_row(
            "SELECT COUNT(*) FROM posts WHERE state = 'published' AND claimed_by IN ('a', 'b')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(published, 20);

    let nodes = env.lipost(&["nodes", "--json"]);
    assert!(nodes.status.success());
    let nodes: serde_json::Value = serde_json::from_slice(&nodes.stdout).unwrap();
    let ids: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"], "{nodes}");
    assert!(nodes
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["alive"] == true && n["in_flight"] == 0));
}

#[test]
fn a_frozen_node_loses_its_claim_and_changes_nothing_when_thawed() {
    if !postgres_or_skip("a_frozen_node_loses_its_claim_and_changes_nothing_when_thawed") {
        return;
    }
    let sb = Sandbox::start();
    grant_page_role(&sb);
    let env = Env::new(&sb, "\n[publisher]\nclaim_lease = \"3s\"\n");
    let mut a = Node::start(&env, "a");
    // Tokens first, so the frozen request is the post's own.
    Node::drop_draft(
        &env,
        "a",
        "warm.md",
        &draft("account = \"acme\"", "Warm-up"),
    );
    assert!(wait_until(Duration::from_secs(20), || copies(
        &sb, "Warm-up"
    ) == 1));

    // Every LinkedIn answer now takes 2.5 s: node a's request is on its way when it stops.
    sb.configure(json!({"latency_ms": 2500}));
    let text = "Frozen in flight";
    let frozen = draft("account = \"acme\"\nid = \"frozen\"", text);
    Node::drop_draft(&env, "a", "frozen.md", &frozen);
    wait_text(
        &env,
        "SELECT claimed_by FROM posts WHERE id = 'frozen' AND state = 'publishing'",
        "a",
        &a,
    );
    let lease_until = one_text(&env, "SELECT lease_until FROM posts WHERE id = 'frozen'").unwrap();
    unsafe {
        libc::kill(a.pid(), libc::SIGSTOP);
    }
    let frozen_at = Instant::now();

    let b = Node::start(&env, "b");
    // Node b resolves the post once a's lease has run out: found on the page (a's request
    // landed) or sent again within the resend window, never both.
    assert!(
        wait_until(Duration::from_secs(40), || env.state("frozen").as_deref()
            == Some("published")),
        "--- b:\n{}",
        b.log_text()
    );
    assert!(frozen_at.elapsed() >= Duration::from_secs(2));
    let b_tries: Vec<String> = env
        .db()
        .prepare("SELECT started_at FROM attempts WHERE post_id = 'frozen' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(b_tries.len() >= 2, "{b_tries:?}");
    assert!(
        b_tries[1..].iter().all(|t| *t >= lease_until),
        "node b tried before node a's lease ({lease_until}) ran out: {b_tries:?}"
    );
    assert!(b.log_text().contains("lease ran out"), "{}", b.log_text());
    let settled = one_text(
        &env,
        "SELECT state || ' ' || post_urn FROM posts WHERE id = 'frozen'",
    )
    .unwrap();

    // Thawed, node a's late answer (or its unsent request) changes nothing node b settled.
    unsafe {
        libc::kill(a.pid(), libc::SIGCONT);
    }
    a.wait_log("another node", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        one_text(
            &env,
            "SELECT state || ' ' || post_urn FROM posts WHERE id = 'frozen'"
        )
        .unwrap(),
        settled
    );
    assert_eq!(copies(&sb, text), 1, "exactly once on LinkedIn");
    let log = a.log_text();
    assert!(
        log.contains("taken over by another node") || log.contains("not sent: another node"),
        "{log}"
    );
    assert!(
        a.exit(Duration::from_millis(10)).is_none(),
        "node a keeps running"
    );
}

#[test]
fn a_node_that_stops_hands_the_posts_it_gave_back_to_a_sleeping_node_at_once() {
    if !postgres_or_skip(
        "a_node_that_stops_hands_the_posts_it_gave_back_to_a_sleeping_node_at_once",
    ) {
        return;
    }
    let sb = Sandbox::start();
    // One request at a time: node b claims three posts and sends one; two wait for a permit.
    let env = Env::new(
        &sb,
        "\n[publisher]\nmax_concurrent = 1\nshutdown_timeout = \"20s\"\n",
    );
    let b = Node::start(&env, "b");
    Node::drop_draft(&env, "b", "warm.md", "Warm-up\n");
    assert!(wait_until(Duration::from_secs(20), || copies(
        &sb, "Warm-up"
    ) == 1));
    sb.configure(json!({"latency_ms": 1500}));
    for i in 0..3 {
        Node::drop_draft(&env, "b", &format!("g{i}.md"), &format!("Given back {i}\n"));
    }
    let claimed_by_b = "SELECT COUNT(*) FROM posts WHERE state = 'publishing' AND claimed_by = 'b'";
    assert!(
        wait_until(Duration::from_secs(20), || env
            .db()
            .query_row(claimed_by_b, [], |r| r.get::<_, i64>(0))
            .unwrap()
            == 3),
        "{}",
        b.log_text()
    );
    // Node a starts with nothing due (b holds all three) and sleeps: nothing else is coming.
    let a = Node::start(&env, "a");
    std::thread::sleep(Duration::from_millis(500));
    unsafe {
        libc::kill(b.pid(), libc::SIGTERM);
    }
    // b gives back the two it had not sent and finishes the one in flight; a sends the two
    // at once, not at its next unrelated look (here: never).
    assert!(
        wait_until(Duration::from_secs(15), || (0..3)
            .all(
                |i| env.state(&format!("g{i}")).as_deref() == Some("published")
            )),
        "--- a:\n{}\n--- b:\n{}",
        a.log_text(),
        b.log_text()
    );
    for i in 0..3 {
        assert_eq!(copies(&sb, &format!("Given back {i}")), 1);
    }
    assert!(b.log_text().contains("lipost stopped"), "{}", b.log_text());
}

#[test]
fn a_login_on_another_machine_wakes_the_nodes() {
    if !postgres_or_skip("a_login_on_another_machine_wakes_the_nodes") {
        return;
    }
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let token = mint_for_me(&sb);
    let out = import(&env, &token);
    assert!(out.status.success(), "{out:?}");
    revoke(&sb, &token);
    let a = Node::start(&env, "a");
    Node::drop_draft(&env, "a", "held.md", "Held for a login\n");
    wait_text(
        &env,
        "SELECT hold_reason FROM posts WHERE id = 'held' AND hold_until IS NOT NULL",
        "needs_reauth",
        &a,
    );
    // The login, from a machine whose wake file node a does not watch (another data_dir):
    // only the database can tell node a, which sleeps until the hold's deadline otherwise.
    let out = import(&env, &mint_for_me(&sb));
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_until(Duration::from_secs(10), || env.state("held").as_deref()
            == Some("published")),
        "{}",
        a.log_text()
    );
    assert_eq!(copies(&sb, "Held for a login"), 1);
}

/// Issue 13's second crash run: two nodes share the work with the network's faults, one is
/// killed halfway and never comes back, and the other finishes everything, each draft once.
#[test]
fn a_node_killed_for_good_halfway_leaves_every_post_to_the_other_once() {
    if !postgres_or_skip("a_node_killed_for_good_halfway_leaves_every_post_to_the_other_once") {
        return;
    }
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"200ms\"\nmax_delay = \"1s\"\nmax_attempts = 1000\n\n[publisher]\nclaim_lease = \"3s\"\n",
    );
    raise_daily_cap(&env, 1000);
    let a = Node::start(&env, "a");
    let mut b = Node::start(&env, "b");
    sb.configure(json!({"latency_ms": 100, "jitter_ms": 150}));
    sb.faults(json!([
        {"path": "/rest/posts", "method": "POST", "drop": true, "times": 0, "probability": 0.1},
        {"path": "/rest/posts", "method": "POST", "stored": true, "status": 502, "times": 0, "probability": 0.05},
        {"path": "/rest/posts", "method": "POST", "stored": true, "status": 504, "times": 0, "probability": 0.03},
        {"path": "/rest/posts", "method": "POST", "status": 503, "times": 0, "probability": 0.05}
    ]));
    const N: usize = 80;
    let text = |i: usize| format!("Halfway {i:03}");
    let drop_into = |node: &str, i: usize| {
        Node::drop_draft(
            &env,
            node,
            &format!("h{i:03}.md"),
            &format!("{}\n", text(i)),
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The first half arrives at both nodes; once b has taken its own, it dies mid-work.
    for i in 0..N / 2 {
        drop_into(if i % 2 == 0 { "a" } else { "b" }, i);
    }
    let waiting_at_b = || {
        std::fs::read_dir(env.path("queue-b"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "md")
            })
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(20), || waiting_at_b() == 0),
        "{}",
        b.log_text()
    );
    let in_flight_at_b = one_text(
        &env,
        "SELECT CAST(COUNT(*) AS TEXT) FROM posts WHERE state = 'publishing' AND claimed_by = 'b'",
    );
    unsafe {
        libc::kill(b.pid(), libc::SIGKILL);
    }
    assert!(b.exit(Duration::from_secs(5)).is_some());
    // The second half arrives at a alone.
    for i in N / 2..N {
        drop_into("a", i);
    }
    let published = || {
        env.db()
            .query_row(
                "SELECT COUNT(*) FROM posts WHERE state = 'published'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as usize
    };
    assert!(
        wait_until(Duration::from_secs(120), || published() == N),
        "{} of {N} published\n--- a:\n{}",
        published(),
        a.log_text()
    );
    for i in 0..N {
        assert_eq!(copies(&sb, &text(i)), 1, "{} on the sandbox", text(i));
    }
    let urns = one_text(
        &env,
        "SELECT CAST(COUNT(DISTINCT post_urn) AS TEXT) FROM posts",
    );
    assert_eq!(urns.as_deref(), Some(N.to_string().as_str()));
    eprintln!(
        "node b was killed with {} post(s) in flight; node a finished everything",
        in_flight_at_b.unwrap_or_default()
    );
}

/// A schema older than the binary: a daemon does not migrate a database other nodes may use,
/// so nothing can post until someone runs `lipost migrate`. Doctor says so as a failure.
#[test]
fn doctor_fails_on_a_shared_schema_that_needs_migrate() {
    if !postgres_or_skip("doctor_fails_on_a_shared_schema_that_needs_migrate") {
        return;
    }
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let out = env.lipost(&["retry", "--all"]);
    assert!(out.status.success(), "{out:?}");
    env.db()
        .execute("UPDATE lipost_schema SET version = 1", [])
        .unwrap();
    let out = env.lipost(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("run `lipost migrate`")),
        "{text}"
    );
}
