//! The command line: --config anywhere or LIPOST_CONFIG, check-config, validate, status, list, show.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn config_is_found_before_or_after_the_subcommand_or_from_the_environment() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let path = env.config.to_str().unwrap();
    for (args, vars) in [
        (vec!["--config", path, "check-config"], vec![]),
        (vec!["check-config", "--config", path], vec![]),
        (vec!["check-config"], vec![("LIPOST_CONFIG", path)]),
    ] {
        let (ok, text) = run(&args, &vars);
        assert!(ok, "{args:?}: {text}");
        assert!(
            text.contains("config ok") && text.contains("timezone        Europe/Berlin"),
            "{text}"
        );
        assert!(
            text.contains(&format!("queue_dir       {}", env.queue.display())),
            "paths resolve against the config's folder: {text}"
        );
    }
    let (ok, text) = run(&["--config", "/nonexistent/lipost.toml", "status"], &[]);
    assert!(!ok && text.contains("/nonexistent/lipost.toml"), "{text}");
}

#[test]
fn check_config_names_an_unknown_key_and_its_line() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[accounts.bob]\nkind = \"member\"\nfavourite = 1\n");
    let (ok, text) = run(
        &["--config", env.config.to_str().unwrap(), "check-config"],
        &[],
    );
    assert!(!ok);
    assert!(
        text.contains("unknown field `favourite`") && text.contains("line "),
        "{text}"
    );
}

#[test]
fn the_shipped_config_is_valid_and_needs_no_credentials() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let (ok, text) = run(&["--config", shipped, "check-config"], &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("sandbox (nothing reaches LinkedIn)"),
        "{text}"
    );
}

#[test]
fn validate_prints_the_exact_commentary_and_rejects_bad_drafts() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let good = env.path("good.md");
    std::fs::write(
        &good,
        draft(
            "id = \"launch\"\npublish_at = \"2026-12-01 09:00\"",
            "We launch (finally) #rust",
        ),
    )
    .unwrap();
    let bad = env.path("bad.md");
    std::fs::write(&bad, draft("account = \"nobody\"", "x")).unwrap();
    let (ok, text) = run(
        &[
            "--config",
            env.config.to_str().unwrap(),
            "validate",
            good.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{text}");
    assert!(text.contains("We launch \\(finally\\) #rust"), "{text}");
    assert!(
        text.contains("2026-12-01T09:00:00+01:00"),
        "read in Europe/Berlin: {text}"
    );
    let (ok, text) = run(
        &[
            "--config",
            env.config.to_str().unwrap(),
            "validate",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        text.contains("bad.md: rejected: account \"nobody\""),
        "{text}"
    );
    assert!(
        !env.db.exists()
            || std::fs::read_dir(&env.queue)
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
        "validate queues nothing"
    );
}

#[test]
fn status_list_and_show_report_what_the_store_holds() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    env.drop_draft(
        "soon.md",
        draft(&format!("publish_at = \"{}\"", in_secs(3600)), "Later"),
    );
    env.drop_draft("now.md", "Now\n");
    wait_post(&sb, |p| p["text"] == "Now", Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || env
        .state("now")
        .as_deref()
        == Some("published")));
    let c = env.config.to_str().unwrap();
    let (ok, text) = run(&["--config", c, "status", "--json"], &[]);
    assert!(ok, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["counts"]["scheduled"], 1);
    assert_eq!(v["counts"]["published"], 1);
    assert_eq!(v["next"][0]["id"], "soon");
    let (_, text) = run(&["--config", c, "status"], &[]);
    assert!(
        text.contains("1 scheduled") && text.contains("soon"),
        "{text}"
    );
    let (_, text) = run(&["--config", c, "list", "--state", "published"], &[]);
    assert!(text.contains("now") && !text.contains("soon"), "{text}");
    let (_, text) = run(&["--config", c, "show", "now"], &[]);
    assert!(
        text.contains("state       published") && text.contains("HTTP 201"),
        "{text}"
    );
    let (ok, text) = run(&["--config", c, "show", "missing"], &[]);
    assert!(
        !ok && text.contains("no post with id \"missing\""),
        "{text}"
    );
}

#[test]
fn operator_commands_explain_what_they_refuse() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let _d = Daemon::start(&env);
    env.drop_draft(
        "later.md",
        draft(&format!("publish_at = \"{}\"", in_secs(3600)), "Later"),
    );
    assert!(wait_until(Duration::from_secs(5), || env
        .state("later")
        .is_some()));
    let c = env.config.to_str().unwrap();
    let (ok, text) = run(
        &["--config", c, "mark-published", "later", "urn:li:person:1"],
        &[],
    );
    assert!(!ok && text.contains("is not a post URN"), "{text}");
    let (ok, text) = run(&["--config", c, "retry", "later"], &[]);
    assert!(
        !ok && text.contains("post \"later\" is scheduled; retry needs it to be dead"),
        "{text}"
    );
    let (ok, text) = run(&["--config", c, "retry", "--all"], &[]);
    assert!(ok && text.contains("no dead posts"), "{text}");
    assert_eq!(
        env.state("later").as_deref(),
        Some("scheduled"),
        "nothing changed"
    );
}
