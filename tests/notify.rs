//! Notifications: failures reach a person through a `command` hook or a webhook, recorded
//! before they are sent, retried across a restart, each received once. Real binary, real
//! sandbox, a real HTTP server on 127.0.0.1 in the test.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A webhook receiver: answers the first `fail_first` requests with 500, then 200; keeps
/// every request's status and JSON body.
struct Hook {
    url: String,
    seen: Arc<Mutex<Vec<(u16, Value)>>>,
}

impl Hook {
    fn start(fail_first: usize) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hook/secret-token",
            listener.local_addr().unwrap()
        );
        let seen: Arc<Mutex<Vec<(u16, Value)>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.trim().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut seen = log.lock().unwrap();
                let status = if seen.len() < fail_first { 500 } else { 200 };
                seen.push((status, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                drop(seen);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Hook { url, seen }
    }

    fn seen(&self) -> Vec<(u16, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

/// A `command` hook: a shell script appending its stdin to `out`.
fn script(env: &Env, name: &str, out: &Path) -> PathBuf {
    write_hook(env.path(name), out)
}

/// A hook at `path` that appends each event it is given to `out`.
fn write_hook(path: PathBuf, out: &Path) -> PathBuf {
    std::fs::write(&path, format!("#!/bin/sh\ncat >> '{}'\n", out.display())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// An environment whose `[notify]` command appends each event to `out`; `before` goes ahead
/// of the section (other sections), `notify` inside it (more `[notify]` keys).
fn env_with_command(sb: &Sandbox, out: &Path, before: &str, notify: &str) -> Env {
    // Beside `out`, in the test's folder, which outlives the daemon.
    let hook = write_hook(out.with_file_name("hook.sh"), out);
    Env::new(
        sb,
        &format!(
            "{before}\n[notify]\ncommand = [\"{}\"]\n{notify}",
            hook.display()
        ),
    )
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_state(env: &Env, id: &str, state: &str) {
    let ok = wait_until(Duration::from_secs(20), || {
        env.state(id).as_deref() == Some(state)
    });
    assert!(ok, "{id} never became {state}: {:?}", env.state(id));
}

fn rows(env: &Env) -> Vec<(String, String, String, i64)> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT id, kind, status, attempts FROM notifications ORDER BY created_at, id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_command_hook_receives_a_dead_post_event() {
    let sb = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let env = env_with_command(&sb, &out, "", "");
    let d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 400, "times": 1}]));
    env.drop_draft("refused.md", "LinkedIn says no\n");
    wait_state(&env, "refused", "dead");

    let got = wait_until(Duration::from_secs(20), || !lines(&out).is_empty());
    assert!(got, "the hook never ran; daemon log:\n{}", d.log_text());
    let events = lines(&out);
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["kind"], "post_dead");
    assert_eq!(e["post_id"], "refused");
    assert_eq!(e["account"], "me");
    assert_eq!(e["http_status"], 400);
    assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
    let id = e["id"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    let text = e["text"].as_str().unwrap();
    assert!(text.contains("refused") && text.contains("dead"), "{text}");
    assert_eq!(e["content"], e["text"], "for Discord-compatible relays");

    // The hook's line is written before the daemon records that the hook succeeded.
    let mut r = rows(&env);
    wait_until(Duration::from_secs(10), || {
        r = rows(&env);
        r.first().is_some_and(|row| row.2 == "sent")
    });
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, id);
    assert_eq!(
        (r[0].1.as_str(), r[0].2.as_str(), r[0].3),
        ("post_dead", "sent", 1)
    );
}

#[test]
fn post_published_is_sent_only_when_asked_for() {
    let sb = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let events = "events = [\"post_dead\", \"post_published\"]\n";
    let env = env_with_command(&sb, &out, "", events);
    let d = Daemon::start(&env);
    env.drop_draft("hello.md", "Out it goes\n");
    wait_state(&env, "hello", "published");
    let got = wait_until(Duration::from_secs(20), || !lines(&out).is_empty());
    assert!(got, "the hook never ran; daemon log:\n{}", d.log_text());
    let events = lines(&out);
    assert_eq!(events.len(), 1, "{events:?}");
    let urn: String = env
        .db()
        .query_row("SELECT post_urn FROM posts WHERE id = 'hello'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(events[0]["kind"], "post_published");
    assert_eq!(events[0]["post_id"], "hello");
    assert_eq!(events[0]["account"], "me");
    assert_eq!(events[0]["message"], urn.as_str());

    // Not asked for (the default events): a published post records nothing.
    let quiet = env_with_command(&sb, &out, "", "");
    let _d = Daemon::start(&quiet);
    quiet.drop_draft("quiet.md", "Out it goes quietly\n");
    wait_state(&quiet, "quiet", "published");
    assert!(rows(&quiet).is_empty(), "{:?}", rows(&quiet));
}

#[test]
fn a_failing_webhook_gets_each_event_once_across_a_restart() {
    let sb = Sandbox::start();
    let hook = Hook::start(2);
    let env = Env::new(
        &sb,
        &format!("\n[notify]\nwebhook = \"{}\"\nbackoff = \"1s\"\n", hook.url),
    );
    let mut d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 403, "times": 1}]));
    env.drop_draft("first.md", "Forbidden once\n");
    wait_state(&env, "first", "dead");
    let failed_twice = wait_until(Duration::from_secs(30), || hook.seen().len() >= 2);
    assert!(failed_twice, "{:?}\n{}", hook.seen(), d.log_text());
    assert!(
        !d.log_text().contains("secret-token"),
        "the webhook URL's token must not be logged:\n{}",
        d.log_text()
    );
    d.kill9();

    let d2 = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 403, "times": 1}]));
    env.drop_draft("second.md", "Forbidden again\n");
    wait_state(&env, "second", "dead");
    let both = wait_until(Duration::from_secs(30), || {
        hook.seen().iter().filter(|(s, _)| *s == 200).count() >= 2
    });
    assert!(both, "{:?}\n{}", hook.seen(), d2.log_text());
    // Nothing more arrives once both were answered 200.
    std::thread::sleep(Duration::from_secs(3));
    let seen = hook.seen();
    let ok: Vec<&Value> = seen
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok.len(), 2, "each event received once: {seen:?}");
    let first = ok.iter().find(|b| b["post_id"] == "first").expect("first");
    let second = ok
        .iter()
        .find(|b| b["post_id"] == "second")
        .expect("second");
    assert_ne!(first["id"], second["id"]);
    // The two refused tries carried the first event, with the same id.
    for (status, body) in &seen[..2] {
        assert_eq!(*status, 500);
        assert_eq!(body["id"], first["id"]);
    }
    let r = rows(&env);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r.iter().all(|(_, k, s, _)| k == "post_dead" && s == "sent"),
        "{r:?}"
    );
    let tries = |id: &Value| r.iter().find(|x| x.0 == id.as_str().unwrap()).unwrap().3;
    assert!(
        tries(&first["id"]) >= 3,
        "the first event took three tries: {r:?}"
    );
    assert_eq!(tries(&second["id"]), 1, "{r:?}");
}

#[test]
fn notify_test_reaches_both_sinks_and_fails_loudly() {
    let sb = Sandbox::start();
    let hook = Hook::start(0);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let env = env_with_command(&sb, &out, "", &format!("webhook = \"{}\"\n", hook.url));
    let o = env.lipost(&["notify", "test"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("command: ok") && stdout.contains("webhook: ok"),
        "{stdout}"
    );
    let by_command = lines(&out);
    let by_webhook = hook.seen();
    assert_eq!(by_command.len(), 1);
    assert_eq!(by_webhook.len(), 1);
    assert_eq!(by_command[0]["kind"], "test");
    assert_eq!(
        by_command[0]["id"], by_webhook[0].1["id"],
        "one event, one id"
    );

    let bad = Env::new(&sb, "\n[notify]\ncommand = [\"/bin/false\"]\n");
    let o = bad.lipost(&["notify", "test"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("command: failed"),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = rows(&bad);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].1.as_str(), r[0].2.as_str()), ("test", "failed"));
}

#[test]
fn a_webhook_in_clear_off_this_machine_is_refused_naming_the_key() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[notify]\nwebhook = \"http://example.com/hook\"\n");
    let o = env.lipost(&["check-config"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("notify.webhook"), "{stderr}");
    let ok = Env::new(
        &sb,
        "\n[notify]\nwebhook = \"https://ntfy.sh/some-topic\"\n",
    );
    let o = ok.lipost(&["check-config"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("https://ntfy.sh/…") && !stdout.contains("some-topic"),
        "{stdout}"
    );
    // A port is part of where events go: shown; the path (a token, often) is not.
    let port = Env::new(
        &sb,
        "\n[notify]\nwebhook = \"https://hooks.example.com:8443/T0/secret-token\"\n",
    );
    let o = port.lipost(&["check-config"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("https://hooks.example.com:8443/…") && !stdout.contains("secret-token"),
        "{stdout}"
    );
}

/// An Env with a loopback redirect URI (for `auth login --paste`) and a `command` hook
/// writing to `out`.
fn env_with_hook(sb: &Sandbox, out: &Path) -> Env {
    post_json(
        &format!("{}/_sandbox/roles", sb.url),
        &json!({"member": "me", "organization": "urn:li:organization:2414183", "role": "ADMINISTRATOR"}),
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let probe = Env::new(sb, "");
    let hook = script(&probe, "hook.sh", out);
    let hook = std::fs::read_to_string(&hook).unwrap();
    let env = Env::build(
        sb,
        "",
        &format!("redirect_uri = \"http://127.0.0.1:{port}/callback\""),
        "",
    );
    let path = env.path("hook.sh");
    std::fs::write(&path, hook).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!("\n[notify]\ncommand = [\"{}\"]\n", path.display()));
    std::fs::write(&env.config, config).unwrap();
    env
}

fn of_kind(out: &Path, kind: &str) -> Vec<Value> {
    lines(out)
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[test]
fn an_account_needing_a_login_is_reported_once() {
    let sb = Sandbox::start();
    sb.configure(json!({"issue_refresh_tokens": true}));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let env = env_with_hook(&sb, &out);
    login_paste(&env);
    let d = Daemon::start(&env);
    post_json(
        &format!("{}/_sandbox/revoke", sb.url),
        &json!({"member": "me"}),
    );
    env.drop_draft("held.md", "Held, not lost\n");
    let got = wait_until(Duration::from_secs(20), || {
        !of_kind(&out, "needs_reauth").is_empty()
    });
    assert!(got, "{:?}\n{}", lines(&out), d.log_text());
    env.drop_draft("held-too.md", "Also held\n");
    std::thread::sleep(Duration::from_secs(2));
    let events = of_kind(&out, "needs_reauth");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["account"], "me");
    assert!(events[0]["text"]
        .as_str()
        .unwrap()
        .contains("lipost auth login --account me"));
    assert!(of_kind(&out, "post_dead").is_empty(), "held, not dead");
}

#[test]
fn a_token_expiry_warning_is_reported_once_across_a_restart() {
    let sb = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let env = env_with_hook(&sb, &out);
    let token = reqwest::blocking::Client::new()
        .post(format!("{}/_sandbox/token", sb.url))
        .json(&json!({"member": "me", "scope": "openid profile w_member_social w_organization_social r_organization_admin r_organization_social", "organizations": ["urn:li:organization:2414183"]}))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let mut child = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["auth", "import", "--account", "me", "--expires-in", "6days"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token["access_token"].as_str().unwrap().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut d = Daemon::start(&env);
    let got = wait_until(Duration::from_secs(20), || {
        !of_kind(&out, "token_expiring").is_empty()
    });
    assert!(got, "{:?}\n{}", lines(&out), d.log_text());
    let e = &of_kind(&out, "token_expiring")[0];
    assert_eq!(e["account"], "me");
    assert_eq!(e["reason"], "access_token");
    assert_eq!(e["days_left"], 7);
    d.term(Duration::from_secs(20));

    // The next start warns in its log again, but the event was already recorded.
    let d = Daemon::start(&env);
    d.wait_log("expires in 6 days", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        of_kind(&out, "token_expiring").len(),
        1,
        "{:?}",
        lines(&out)
    );
    let n: i64 = env
        .db()
        .query_row(
            "SELECT COUNT(*) FROM notifications WHERE kind = 'token_expiring'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_post_in_doubt_that_needs_a_person_is_its_own_event() {
    let sb = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let retry = "\n[retry]\nbase_delay = \"300ms\"\nmax_delay = \"600ms\"\nresend_window = \"1s\"\nmax_attempts = 20\n";
    let env = env_with_command(&sb, &out, retry, "");
    let d = Daemon::start(&env);
    // Every answer is lost: the post may be on LinkedIn, and only a person can tell.
    sb.faults(json!([{"path": "/rest/posts", "drop": true, "times": 0}]));
    env.drop_draft("silent.md", "Nobody answers\n");
    wait_state(&env, "silent", "dead");
    let got = wait_until(Duration::from_secs(20), || !lines(&out).is_empty());
    assert!(got, "the hook never ran; daemon log:\n{}", d.log_text());
    let events = lines(&out);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "post_in_doubt");
    assert_eq!(events[0]["reason"], "in_doubt");
    assert_eq!(events[0]["post_id"], "silent");
    assert!(
        events[0]["text"]
            .as_str()
            .unwrap()
            .contains("lipost mark-published silent URN"),
        "{events:?}"
    );
}

#[test]
fn notify_set_up_by_a_reload_applies_to_the_next_event() {
    let sb = Sandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let env = Env::new(&sb, "");
    let hook = script(&env, "hook.sh", &out);
    let d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 400, "times": 1}]));
    env.drop_draft("before.md", "Refused before\n");
    wait_state(&env, "before", "dead");

    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!("\n[notify]\ncommand = [\"{}\"]\n", hook.display()));
    std::fs::write(&env.config, config).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .unwrap();
    d.wait_log("[notify] events and sinks applied", Duration::from_secs(20));
    sb.faults(json!([{"path": "/rest/posts", "status": 400, "times": 1}]));
    env.drop_draft("after.md", "Refused after\n");
    wait_state(&env, "after", "dead");
    let got = wait_until(Duration::from_secs(20), || !lines(&out).is_empty());
    assert!(got, "{}", d.log_text());
    std::thread::sleep(Duration::from_secs(1));
    let ids: Vec<Value> = lines(&out).iter().map(|e| e["post_id"].clone()).collect();
    assert_eq!(
        ids,
        vec![json!("after")],
        "no event for a death before notify was set up"
    );
}
