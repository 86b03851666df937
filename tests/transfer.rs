//! `lipost export` / `lipost import`: a schedule moved between databases keeps every row.
//! Under `LIPOST_TEST_POSTGRES` the first database is PostgreSQL, so this moves
//! PostgreSQL → SQLite → PostgreSQL; without it, SQLite → SQLite → SQLite (a backup).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

fn ok(out: std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// The rows of an export, without its header, in a stable order.
fn rows(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            // serde_json's map is ordered by key: one spelling per row.
            v.to_string()
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_schedule_moves_between_databases_with_every_row() {
    let sb = Sandbox::start();
    let first = Env::new(&sb, "");
    let mut d = Daemon::start(&first);
    first.drop_draft("now.md", "Out already\n");
    wait_post_logged(&sb, &d, "Out already", Duration::from_secs(10));
    first.drop_draft(
        "later.md",
        draft(
            "publish_at = \"2031-06-01T09:00:00+02:00\"",
            "Still to come\n",
        ),
    );
    assert!(wait_until(Duration::from_secs(10), || first
        .state("later")
        .as_deref()
        == Some("scheduled")));
    d.term(Duration::from_secs(10));

    let dump1 = first.path("one.jsonl");
    let text = ok(first.lipost(&["export", dump1.to_str().unwrap()]));
    assert!(text.contains("2 posts"), "{text}");
    let mode = std::fs::metadata(&dump1).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "an export holds tokens");
    // Never over an existing file.
    assert!(!first
        .lipost(&["export", dump1.to_str().unwrap()])
        .status
        .success());

    let second = Env::new_sqlite(&sb, "");
    ok(second.lipost(&["import", dump1.to_str().unwrap()]));
    let dump2 = second.path("two.jsonl");
    ok(second.lipost(&["export", dump2.to_str().unwrap()]));
    assert_eq!(rows(&dump1), rows(&dump2));

    let third = Env::new(&sb, "");
    ok(third.lipost(&["import", dump2.to_str().unwrap()]));
    let dump3 = third.path("three.jsonl");
    ok(third.lipost(&["export", dump3.to_str().unwrap()]));
    assert_eq!(rows(&dump1), rows(&dump3));

    // What people read is the same too.
    let list = |e: &Env| ok(e.lipost(&["list", "--json"]));
    assert_eq!(list(&first), list(&third));
    let show = ok(third.lipost(&["show", "now"]));
    assert!(show.contains("published"), "{show}");

    // A database that holds posts takes no import: two schedules are never mixed.
    let again = third.lipost(&["import", dump1.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds 2 posts"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The moved schedule runs: the scheduled post is still there, nothing is sent again.
    let mut d = Daemon::start(&third);
    d.wait_log("lipost is running", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    d.term(Duration::from_secs(10));
    assert_eq!(third.state("later").as_deref(), Some("scheduled"));
    let sent = sb
        .posts()
        .iter()
        .filter(|p| p["commentary"] == "Out already")
        .count();
    assert_eq!(sent, 1);
}
