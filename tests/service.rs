//! Running as a service: sd_notify messages, SIGHUP reload, posting slots, make install.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// Reads sd_notify datagrams until `want` is seen (or the timeout), returning all of them.
fn read_until(sock: &UnixDatagram, want: &str, timeout: Duration, seen: &mut Vec<String>) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while start.elapsed() < timeout {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = msg.lines().any(|l| l.starts_with(want));
            seen.push(msg);
            if hit {
                return true;
            }
        }
    }
    false
}

#[test]
fn notify_socket_gets_ready_watchdog_status_and_stopping() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let sock_path = env.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    // A draft waiting in the folder before start: READY=1 must come after it is in the store.
    env.drop_draft(
        "early.md",
        draft(
            &format!("publish_at = \"{}\"", in_secs(3600)),
            "Later today",
        ),
    );
    std::thread::sleep(Duration::from_millis(700)); // older than settle_time, as after downtime
    let mut d = Daemon::start_with_env(
        &env,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = Vec::new();
    assert!(
        read_until(&sock, "READY=1", Duration::from_secs(5), &mut seen),
        "{seen:?}"
    );
    assert_eq!(
        env.state("early").as_deref(),
        Some("scheduled"),
        "READY=1 came before the existing draft was stored"
    );

    assert!(
        read_until(
            &sock,
            "STATUS=1 scheduled",
            Duration::from_secs(5),
            &mut seen
        ),
        "{seen:?}"
    );
    let first_status = seen
        .iter()
        .rev()
        .find(|m| m.starts_with("STATUS="))
        .unwrap()
        .clone();
    assert!(
        first_status.contains("0 published") && first_status.contains("tokens ok"),
        "{first_status}"
    );

    let before = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    env.drop_draft("now.md", "Right now\n");
    let start = Instant::now();
    let mut changed = false;
    while start.elapsed() < Duration::from_secs(8) && !changed {
        read_until(&sock, "STATUS=", Duration::from_millis(300), &mut seen);
        changed = seen
            .iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("1 published"));
    }
    assert!(changed, "STATUS= never showed the publish: {seen:?}");
    // Idle for a while: the watchdog keeps coming from the scheduler's loop.
    read_until(&sock, "never", Duration::from_millis(1500), &mut seen);
    let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() - before;
    assert!(
        pings >= 3,
        "only {pings} WATCHDOG=1 in 1.5 s with WATCHDOG_USEC=400ms: {seen:?}"
    );

    assert!(d.term(Duration::from_secs(10)).success());
    assert!(
        read_until(&sock, "STOPPING=1", Duration::from_secs(2), &mut seen),
        "{seen:?}"
    );
}

#[test]
fn sighup_applies_a_valid_config_and_refuses_an_invalid_one() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &d.pid().to_string()])
            .status()
            .unwrap();
    };
    // Valid: a new account appears.
    let good = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{good}\n[accounts.bob]\nkind = \"member\"\n"),
    )
    .unwrap();
    hup();
    d.wait_log("config reloaded", Duration::from_secs(5));
    env.drop_draft("bob.md", draft("account = \"bob\"", "Bob is new"));
    wait_post_logged(&sb, &d, "Bob is new", Duration::from_secs(10));

    // Invalid: refused, the running config stays, nothing is lost.
    std::fs::write(
        &env.config,
        format!("{good}\n[accounts.bob]\nkind = \"member\"\ncolour = \"red\"\n"),
    )
    .unwrap();
    hup();
    d.wait_log("config reload refused", Duration::from_secs(5));
    assert!(
        d.log_text().contains("colour"),
        "the refusal names the bad key"
    );
    env.drop_draft("bob2.md", draft("account = \"bob\"", "Bob still works"));
    wait_post_logged(&sb, &d, "Bob still works", Duration::from_secs(10));
    let n: i64 = env
        .db()
        .query_row(
            "SELECT COUNT(*) FROM posts WHERE state = 'published'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn two_drafts_racing_for_a_slot_get_one_each_and_go_out_then() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[accounts.slotted]\nkind = \"member\"\nslots = [\"*/3 * * * * *\"]\n",
    );
    let d = Daemon::start(&env);
    // Both arrive in the same scan; neither names a time.
    std::fs::write(
        env.queue.join(".a.tmp"),
        draft("account = \"slotted\"", "First in line"),
    )
    .unwrap();
    std::fs::write(
        env.queue.join(".b.tmp"),
        draft(
            "account = \"slotted\"\npublish_at = \"next-slot\"",
            "Second in line",
        ),
    )
    .unwrap();
    std::fs::rename(env.queue.join(".a.tmp"), env.queue.join("a.md")).unwrap();
    std::fs::rename(env.queue.join(".b.tmp"), env.queue.join("b.md")).unwrap();
    assert!(wait_until(Duration::from_secs(5), || env
        .state("a")
        .is_some()
        && env.state("b").is_some()));
    let slot = |id: &str| -> String {
        env.db()
            .query_row("SELECT slot_at FROM posts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let (a, b) = (slot("a"), slot("b"));
    assert_ne!(a, b, "two drafts share a slot");
    let list = String::from_utf8(env.lipost(&["list"]).stdout).unwrap();
    assert_eq!(list.matches(" slot ").count(), 2, "{list}");
    for (text, at) in [("First in line", &a), ("Second in line", &b)] {
        let p = wait_post_logged(&sb, &d, text, Duration::from_secs(15));
        let sent: chrono::DateTime<chrono::Utc> =
            p["received_at"].as_str().unwrap().parse().unwrap();
        let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
        assert!(
            sent >= at && sent - at < chrono::Duration::seconds(1),
            "{text}: slot {at}, sent {sent}"
        );
    }
}

#[test]
fn make_install_lays_out_the_expected_files() {
    let dest = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "-s",
            "install",
            &format!("DESTDIR={}", dest.path().display()),
            &format!("BIN={BIN}"),
            "PREFIX=/usr",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "usr/bin/lipost",
        "usr/lib/systemd/system/lipost.service",
        "usr/lib/sysusers.d/lipost.conf",
        "usr/lib/tmpfiles.d/lipost.conf",
        "etc/lipost/config.toml",
        "etc/lipost/client-secret",
        "usr/share/man/man1/lipost.1",
        "usr/share/bash-completion/completions/lipost",
        "usr/share/zsh/site-functions/_lipost",
        "usr/share/fish/vendor_completions.d/lipost.fish",
    ] {
        assert!(dest.path().join(f).is_file(), "{f} missing");
    }
    let unit =
        std::fs::read_to_string(dest.path().join("usr/lib/systemd/system/lipost.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/lipost --config /etc/lipost/config.toml run"),
        "{unit}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dest.path().join("etc/lipost/client-secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The installed example config is valid.
    let check = std::process::Command::new(dest.path().join("usr/bin/lipost"))
        .args([
            "--config",
            dest.path().join("etc/lipost/config.toml").to_str().unwrap(),
            "check-config",
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Whether `pid` has a handler for SIGHUP (`SigCgt` in /proc/PID/status).
fn catches_sighup(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let mask = s
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&mask, 16).ok()
        })
        .is_some_and(|m| m & (1 << (libc::SIGHUP - 1)) != 0)
}

#[test]
fn a_sighup_during_start_up_does_not_kill_the_daemon() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    // A first run creates the database.
    let mut d = Daemon::start(&env);
    assert!(d.term(Duration::from_secs(10)).success());

    // Holding the database's write lock keeps the next start-up in the middle of opening
    // the store, long before READY=1, for as long as this test wants.
    let mut blocker = env.db();
    let tx = blocker.lock_store().unwrap();
    let mut d = Daemon::spawn_with_env(&env, &[]);
    let pid = d.pid();
    // Signal only once the program installed anything at all (the dynamic loader and
    // `main` must run first); give up waiting after a few seconds and signal anyway.
    wait_until(Duration::from_secs(5), || catches_sighup(pid));
    for _ in 0..20 {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(d.alive(), "a SIGHUP during start-up killed the daemon");
    assert!(
        !d.log_text().contains("lipost is running"),
        "start-up was meant to be still under way"
    );
    tx.rollback().unwrap();
    // And until it is ready.
    let started = std::time::Instant::now();
    while !d.log_text().contains("lipost is running") && started.elapsed() < Duration::from_secs(20)
    {
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
        std::thread::sleep(Duration::from_millis(10));
    }
    d.wait_log("lipost is running", Duration::from_secs(5));
    assert!(d.alive());
    d.wait_log("SIGHUP: reloading the config", Duration::from_secs(5));
    env.drop_draft("after.md", "Survived the early SIGHUPs\n");
    wait_post_logged(
        &sb,
        &d,
        "Survived the early SIGHUPs",
        Duration::from_secs(10),
    );
}
