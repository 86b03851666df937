//! `lipost agenda`: a week with posting slots, holds, a dead post and the Berlin autumn clock
//! change (2027-10-31, 03:00 → 02:00), read through the real binary from a real database.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Account `acme` gets slots at 09:00 daily and 17:30 on weekdays (Berlin time). The
/// `[retry]` and `[watcher]` tables are given here so the slots land in `[accounts.acme]`.
const SLOTS: &str = r#"slots = ["0 0 9 * * *", "0 30 17 * * Mon-Fri"]

[retry]
base_delay = "1s"
max_delay = "4s"

[watcher]
settle_time = "500ms"
"#;

fn post(id: &str, account: &str, at: &str, body: &str) -> String {
    draft(
        &format!("id = \"{id}\"\naccount = \"{account}\"\npublish_at = \"{at}\""),
        body,
    )
}

/// The seeded week: drafts through the daemon (one refused by LinkedIn, so dead), then, on
/// the stopped daemon's database, two slots taken, two holds, one post published (as if the
/// week were over) and `me`'s token refused.
fn seeded() -> (Sandbox, Env) {
    let sb = Sandbox::start();
    let env = Env::new(&sb, SLOTS);
    let mut d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 422, "times": 1}]));
    env.drop_draft("refused.md", "LinkedIn will refuse this\n");
    assert!(wait_until(Duration::from_secs(20), || env
        .state("refused")
        .as_deref()
        == Some("dead")));
    let drafts = [
        ("a1", "acme", "2027-10-29 09:00", "Acme on Friday morning"),
        ("b1", "me", "2027-10-30 23:30", "Late on Saturday"),
        (
            "b2",
            "me",
            "2027-10-31 00:30",
            "Just after midnight, still summer time",
        ),
        (
            "c1",
            "acme",
            "2027-10-31 09:00",
            "Sunday nine o'clock, winter time now",
        ),
        (
            "h1",
            "me",
            "2027-11-01 10:00",
            "Monday, waiting for the cap",
        ),
        (
            "o1",
            "me",
            "2027-10-29 12:00",
            "Long overdue and waiting for a login",
        ),
    ];
    for (id, account, at, body) in drafts {
        env.drop_draft(&format!("{id}.md"), post(id, account, at, body));
    }
    for (id, ..) in drafts {
        assert!(
            wait_until(Duration::from_secs(20), || env.state(id).as_deref()
                == Some("scheduled")),
            "{id} never scheduled:\n{}",
            d.log_text()
        );
    }
    assert!(d.term(Duration::from_secs(20)).success());
    let db = env.db();
    db.execute_batch(
        "UPDATE posts SET slot_at = '2027-10-29T07:00:00.000Z' WHERE id = 'a1';
         UPDATE posts SET slot_at = '2027-10-31T08:00:00.000Z' WHERE id = 'c1';
         UPDATE posts SET hold_reason = 'daily_cap', hold_until = '2027-11-02T00:00:00.000Z',
                next_attempt_at = '2027-11-02T00:00:00.000Z' WHERE id = 'h1';
         UPDATE posts SET due_at = '2026-01-01T08:00:00.000Z', hold_reason = 'needs_reauth',
                hold_until = '2027-12-01T00:00:00.000Z', next_attempt_at = '2027-12-01T00:00:00.000Z'
                WHERE id = 'o1';
         UPDATE posts SET state = 'published', published_at = '2027-10-30T21:31:00.000Z',
                post_urn = 'urn:li:share:1' WHERE id = 'b1';
         UPDATE tokens SET status = 'needs_reauth', status_reason = 'refresh token revoked'
                WHERE account = 'me';",
    )
    .unwrap();
    (sb, env)
}

fn run(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agenda failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const WEEK: [&str; 5] = ["agenda", "--from", "2027-10-29", "--days", "4"];

fn ids(posts: &Value) -> Vec<&str> {
    posts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect()
}

#[test]
fn the_week_as_json_has_days_slots_holds_caps_and_the_clock_change() {
    let (_sb, env) = seeded();
    let v: Value =
        serde_json::from_str(&run(&env, &[&WEEK[..], &["--json"]].concat(), &[])).unwrap();
    assert_eq!(v["timezone"], "Europe/Berlin");
    assert_eq!(v["from"], "2027-10-29");

    assert_eq!(
        v["needs_login"],
        json!([{"account": "me", "reason": "refresh token revoked"}])
    );
    assert_eq!(ids(&v["needs_person"]), ["refused"]);
    assert_eq!(v["needs_person"][0]["reason"], "rejected");

    assert_eq!(ids(&v["now"]), ["o1"]);
    assert_eq!(v["now"][0]["hold"]["reason"], "needs_reauth");
    assert_eq!(v["now"][0]["hold"]["until"], "2027-12-01T00:00:00Z");

    let days = v["days"].as_array().unwrap();
    let dates: Vec<&str> = days.iter().map(|d| d["date"].as_str().unwrap()).collect();
    assert_eq!(
        dates,
        ["2027-10-29", "2027-10-30", "2027-10-31", "2027-11-01"]
    );
    let weekdays: Vec<&str> = days
        .iter()
        .map(|d| d["weekday"].as_str().unwrap())
        .collect();
    assert_eq!(weekdays, ["Fri", "Sat", "Sun", "Mon"]);

    // Friday: a1 holds the 09:00 slot; 17:30 is free.
    assert_eq!(ids(&days[0]["posts"]), ["a1"]);
    assert_eq!(
        days[0]["slots"],
        json!([
            {"account": "acme", "at": "2027-10-29T07:00:00Z", "local": "2027-10-29T09:00:00+02:00", "taken_by": "a1"},
            {"account": "acme", "at": "2027-10-29T15:30:00Z", "local": "2027-10-29T17:30:00+02:00", "taken_by": null},
        ])
    );
    assert!(days[0]["dst_change"].is_null());

    // Saturday 23:30 is 21:30 UTC, and Sunday 00:30 summer time is 22:30 UTC on Saturday:
    // both count against Saturday's UTC-day cap, though b2 is listed on Sunday.
    assert_eq!(ids(&days[1]["posts"]), ["b1"]);
    assert_eq!(days[1]["posts"][0]["state"], "published");
    assert_eq!(days[1]["posts"][0]["local"], "2027-10-30T23:31:00+02:00");
    assert_eq!(ids(&days[2]["posts"]), ["b2", "c1"]);
    let cap = |day: usize, account: &str| -> Value {
        days[day]["caps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["account"] == account)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        cap(1, "me"),
        json!({"account": "me", "utc_day": "2027-10-30", "published": 1, "planned": 1, "count": 2, "cap": 25})
    );
    assert_eq!(cap(2, "me")["count"], 0);
    assert_eq!(cap(2, "acme")["count"], 1);

    // Sunday: the clocks go back, and 09:00 stays 09:00 local (08:00 UTC, not 07:00).
    assert_eq!(
        days[2]["dst_change"],
        json!({"at": "2027-10-31T01:00:00Z", "direction": "back", "from": "03:00", "to": "02:00",
               "offset_before": "+02:00", "offset_after": "+01:00"})
    );
    assert_eq!(days[2]["posts"][0]["local"], "2027-10-31T00:30:00+02:00");
    assert_eq!(days[2]["posts"][1]["local"], "2027-10-31T09:00:00+01:00");
    assert_eq!(
        days[2]["slots"],
        json!([{"account": "acme", "at": "2027-10-31T08:00:00Z", "local": "2027-10-31T09:00:00+01:00", "taken_by": "c1"}])
    );

    // Monday: h1 on its day, with a reason this lipost may not know, printed as stored.
    assert_eq!(ids(&days[3]["posts"]), ["h1"]);
    assert_eq!(days[3]["posts"][0]["hold"]["reason"], "daily_cap");
    assert_eq!(days[3]["posts"][0]["hold"]["until"], "2027-11-02T00:00:00Z");
    assert_eq!(days[3]["slots"].as_array().unwrap().len(), 2);
    assert!(days[3]["dst_change"].is_null());

    // One account only.
    let v: Value = serde_json::from_str(&run(
        &env,
        &[&WEEK[..], &["--json", "--account", "me"]].concat(),
        &[],
    ))
    .unwrap();
    let all: Vec<&str> = v["days"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| ids(&d["posts"]))
        .collect();
    assert_eq!(all, ["b1", "b2", "h1"]);
    assert!(v["days"][0]["slots"].as_array().unwrap().is_empty());
}

/// A cap lowered below what went out already: the posts published are past, nothing waits.
/// Only posts still to go can be "over".
#[test]
fn a_cap_below_what_was_published_has_nothing_waiting() {
    let (_sb, env) = seeded();
    let sat = |text: &str| -> String {
        text.lines()
            .skip_while(|l| !l.contains("Sat 2027-10-30"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .find(|l| l.starts_with("cap me"))
            .unwrap_or_else(|| panic!("no cap line for me on Saturday:\n{text}"))
    };
    raise_daily_cap(&env, 1);
    // b1 published, b2 to go: one over the cap of 1, and it waits.
    let text = run(&env, &WEEK, &[]);
    assert_eq!(
        sat(&text),
        "cap me 2/1 (UTC day) 1 over: they wait for the next UTC day"
    );
    // Both published: over the cap, but nothing is left to wait.
    env.db()
        .execute_batch(
            "UPDATE posts SET state = 'published', published_at = '2027-10-30T22:31:00.000Z',
                    post_urn = 'urn:li:share:2' WHERE id = 'b2';",
        )
        .unwrap();
    let text = run(&env, &WEEK, &[]);
    assert_eq!(sat(&text), "cap me 2/1 (UTC day)");
}

#[test]
fn the_week_as_text_is_aligned_plain_when_piped_and_coloured_when_asked() {
    let (_sb, env) = seeded();
    let text = run(&env, &WEEK, &[]);
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in piped output:\n{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let find = |needle: &str| -> &str {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
    };
    let pos = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();

    // Dead first, then what is overdue, then the days in order.
    assert!(find("dead  refused").contains("rejected"));
    assert!(find("login  me").contains("lipost auth login --account me"));
    assert!(pos("refused") < pos("now") && pos("now") < pos("Fri 2027-10-29"));
    assert!(pos("Fri 2027-10-29") < pos("Sat 2027-10-30"));
    assert!(pos("Sat 2027-10-30") < pos("Sun 2027-10-31"));
    assert!(pos("Sun 2027-10-31") < pos("Mon 2027-11-01"));

    assert!(find("Sun 2027-10-31").contains("clocks go back 03:00→02:00"));
    assert!(!find("Sat 2027-10-30").contains("clocks"));
    assert!(find(" o1 ").contains("held: needs_reauth until 2027-12-01 01:00 CET"));
    assert!(find(" o1 ").starts_with("  2026-01-01 09:00 CET"));
    assert!(find(" h1 ").contains("held: daily_cap until 2027-11-02 01:00 CET"));
    assert!(find(" c1 ").trim_start().starts_with("09:00 CET "));
    assert!(find(" b2 ").trim_start().starts_with("00:30 CEST "));
    assert!(find(" b2 ").contains("Just after midnight, still summer time"));

    // Slots and caps, per day.
    let fri = pos("Fri 2027-10-29");
    let sat = pos("Sat 2027-10-30");
    let sun = pos("Sun 2027-10-31");
    let in_day = |from: usize, to: usize, needle: &str| -> String {
        lines[from..to]
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} between lines {from} and {to}:\n{text}"))
    };
    assert_eq!(
        in_day(fri, sat, "slots"),
        "slots acme 09:00 taken (a1) 17:30 free"
    );
    assert_eq!(in_day(fri, sat, "cap "), "cap acme 1/25 (UTC day)");
    assert_eq!(in_day(sat, sun, "cap me"), "cap me 2/25 (UTC day)");
    assert_eq!(
        in_day(sun, lines.len(), "slots"),
        "slots acme 09:00 taken (c1)"
    );

    // Every post line of the days has its columns in the same places.
    let day_lines: Vec<&str> = ["a1", "b1", "b2", "c1", "h1"]
        .iter()
        .map(|id| find(&format!(" {id} ")))
        .collect();
    let col = |l: &str, needle: &str| l.find(needle).unwrap();
    let id_cols: Vec<usize> = day_lines
        .iter()
        .zip(["a1", "b1", "b2", "c1", "h1"])
        .map(|(l, id)| col(l, &format!(" {id} ")))
        .collect();
    assert!(id_cols.windows(2).all(|w| w[0] == w[1]), "{day_lines:#?}");
    assert!(find(" b1 ").trim_start().starts_with("23:31 CEST "));
    let state_cols: Vec<usize> = day_lines
        .iter()
        .map(|l| {
            l.find(" scheduled ")
                .or_else(|| l.find(" published "))
                .unwrap()
        })
        .collect();
    assert!(
        state_cols.windows(2).all(|w| w[0] == w[1]),
        "{day_lines:#?}"
    );

    // Colour only when asked for off a terminal, and never with NO_COLOR.
    let forced = run(&env, &WEEK, &[("CLICOLOR_FORCE", "1")]);
    assert!(
        forced.contains("\u{1b}["),
        "no colour with CLICOLOR_FORCE:\n{forced}"
    );
    let no = run(&env, &WEEK, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert_eq!(no, text);
}

#[test]
fn a_bad_window_or_account_is_refused_with_a_reason() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    drop(d);
    let out = env.lipost(&["agenda", "--account", "nobody"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nobody") && err.contains("acme, me"), "{err}");
    let out = env.lipost(&["agenda", "--from", "31.10.2027"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    let out = env.lipost(&["agenda", "--days", "0"]);
    assert!(!out.status.success());
}
