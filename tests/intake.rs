//! Intake through the real binary: which files are drafts, when a draft is complete, what a
//! draft may be (front matter, size, file type), and what the author reads when it is refused.

mod common;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(30);

/// A one-second `watcher.incomplete_wait`, for tests that must get past it.
const SHORT_WINDOW: &str = "\n[watcher]\nsettle_time = \"500ms\"\nincomplete_wait = \"1s\"\n";

fn texts(sb: &Sandbox) -> Vec<String> {
    sb.posts()
        .iter()
        .map(|p| p["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Drops a due-now draft and waits until it is on the sandbox: every file dropped before it
/// has then been looked at by the same or an earlier scan.
fn sentinel(env: &Env, sb: &Sandbox, d: &Daemon, name: &str) {
    let text = format!("Sentinel {name}");
    env.drop_draft(&format!("{name}.md"), format!("{text}\n"));
    wait_post_logged(sb, d, &text, LONG);
}

fn rejected(env: &Env, name: &str) -> String {
    let path = env.queue.join("rejected").join(format!("{name}.error"));
    let mut text = None;
    wait_until(LONG, || {
        text = std::fs::read_to_string(&path).ok();
        text.is_some()
    });
    text.unwrap_or_else(|| panic!("{} never appeared", path.display()))
}

fn due_at(env: &Env, id: &str) -> Option<String> {
    env.db()
        .query_row("SELECT due_at FROM posts WHERE id = ?1", [id], |r| r.get(0))
        .ok()
}

// ---------------------------------------------------------------- point 1: front matter

#[test]
fn front_matter_with_stray_white_space_is_read_and_misplaced_front_matter_is_refused() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let embargo = "publish_at = \"2030-01-01T09:00:00Z\"";
    // Each of these once published its front matter as text, at once.
    env.drop_draft(
        "space.md",
        format!("+++ \n{embargo}\n+++  \nEmbargoed one\n"),
    );
    env.drop_draft(
        "blank.md",
        format!("\n\n+++\n{embargo}\n+++\nEmbargoed two\n"),
    );
    env.drop_draft(
        "bom.md",
        format!("\u{feff}\r\n+++\r\n{embargo}\r\n+++\r\nEmbargoed three\r\n"),
    );
    // These cannot be read as meant: refused, never posted.
    env.drop_draft(
        "yaml.md",
        "---\npublish_at: 2030-01-01 09:00\n---\nYAML embargo\n",
    );
    env.drop_draft("near.md", format!("++ +\n{embargo}\n+++\nNear miss\n"));
    env.drop_draft("inline.md", "Text first\npublish_at: 2030-01-01 09:00\n");
    // The same in an old Mac file (lone CRs) and behind a Unicode line separator: a line
    // break the reader sees is a line break for the check too.
    env.drop_draft(
        "cr.md",
        "Title\rpublish_at = \"2030-01-01T09:00:00Z\"\rEmbargoed four\r",
    );
    env.drop_draft(
        "ls.md",
        "Title\u{2028}publish_at: 2030-01-01 09:00\u{2028}Embargoed five",
    );
    sentinel(&env, &sb, &d, "after-front-matter");

    for id in ["space", "blank", "bom"] {
        assert_eq!(env.state(id).as_deref(), Some("scheduled"), "{id}");
        assert!(
            due_at(&env, id).unwrap().starts_with("2030-01-01T09:00:00"),
            "{id}: {:?}",
            due_at(&env, id)
        );
    }
    let yaml = rejected(&env, "yaml.md");
    assert!(
        yaml.contains("+++\npublish_at = \"2030-01-01 09:00\"\n+++"),
        "{yaml}"
    );
    assert!(rejected(&env, "near.md").contains("fence"));
    for name in ["inline.md", "cr.md", "ls.md"] {
        assert!(rejected(&env, name).contains("publish_at"), "{name}");
    }
    assert_eq!(texts(&sb), ["Sentinel after-front-matter"]);

    // `lipost validate` says the same before anything is dropped.
    let dir = env.path("drafts");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("y.md", "---\nid: x\n---\nx\n"),
        ("n.md", "+++toml\nid = \"x\"\n+++\nx\n"),
        ("i.md", "x\nvisibility = \"PUBLIC\"\n"),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let out = env.lipost(&["validate", p.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{name}: {stdout}");
        assert!(stdout.contains("rejected"), "{name}: {stdout}");
    }
}

// ---------------------------------------------------------------- point 2: which files

#[test]
fn editor_and_download_leftovers_are_left_alone() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let planned = draft(
        "id = \"launch\"\npublish_at = \"2030-06-01T09:00:00Z\"",
        "Launch",
    );
    env.drop_draft("launch.md", &planned);
    assert!(wait_until(LONG, || env.state("launch").is_some()));
    // A half-edited copy carrying the same id and no embargo, under every temporary name.
    let half = draft("id = \"launch\"", "Launch (half-edit");
    let leftovers = [
        "#launch.md#",
        ".#launch.md",
        "launch.md~",
        ".launch.md.swp",
        "launch.md.swo",
        "4913",
        "launch.kate-swp",
        "launch.md.crdownload",
        "launch.md.part",
        "launch.md.download",
        "~$launch.md",
        ".~lock.launch.md#",
        "launch.md.tmp",
        ".syncthing.launch.md.tmp",
        "notes.pdf",
    ];
    for name in leftovers {
        std::fs::write(env.queue.join(name), &half).unwrap();
    }
    sentinel(&env, &sb, &d, "one");
    sentinel(&env, &sb, &d, "two");

    assert_eq!(env.state("launch").as_deref(), Some("scheduled"));
    assert!(due_at(&env, "launch").unwrap().starts_with("2030-06-01"));
    for name in leftovers {
        let kept = std::fs::read_to_string(env.queue.join(name)).unwrap();
        assert_eq!(kept, half, "{name} was touched");
        assert!(!env.queue.join("rejected").join(name).exists(), "{name}");
    }
    assert_eq!(texts(&sb), ["Sentinel one", "Sentinel two"]);
    let log = d.log_text();
    let said = log
        .lines()
        .filter(|l| l.contains("not a draft") && l.contains("notes.pdf"))
        .count();
    assert_eq!(said, 1, "{log}");
}

// ---------------------------------------------------------------- point 3: writers

#[test]
fn a_file_open_for_writing_is_not_taken_even_after_the_settle_time() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    std::fs::create_dir_all(&env.queue).unwrap();
    // Open before the daemon starts: the start-up scan must not take it either.
    let mut early = std::fs::File::create(env.queue.join("early.md")).unwrap();
    early.write_all(b"First half of the early one,").unwrap();
    let d = Daemon::start(&env);
    let mut slow = std::fs::File::create(env.queue.join("slow.md")).unwrap();
    slow.write_all(b"First half of the slow one,").unwrap();
    slow.flush().unwrap();
    // Well past settle_time (500 ms) with both writers paused.
    std::thread::sleep(Duration::from_secs(3));
    sentinel(&env, &sb, &d, "while-open");
    assert_eq!(texts(&sb), ["Sentinel while-open"]);
    assert!(env.queue.join("slow.md").exists() && env.queue.join("early.md").exists());

    slow.write_all(b" and the second.\n").unwrap();
    drop(slow);
    early.write_all(b" and the second.\n").unwrap();
    drop(early);
    wait_post_logged(&sb, &d, "First half of the slow one, and the second.", LONG);
    wait_post_logged(
        &sb,
        &d,
        "First half of the early one, and the second.",
        LONG,
    );
}

#[test]
fn a_file_written_in_place_is_taken_at_its_close_without_waiting_the_settle_time() {
    let sb = Sandbox::start();
    // An hour of settle time: only the close can make the daemon take the file.
    let env = Env::new(&sb, "\n[watcher]\nsettle_time = \"1h\"\n");
    let d = Daemon::start(&env);
    let mut f = std::fs::File::create(env.queue.join("in-place.md")).unwrap();
    f.write_all(b"Written in place\n").unwrap();
    drop(f);
    wait_post_logged(&sb, &d, "Written in place", LONG);
}

#[test]
fn poll_mode_waits_for_the_writer_too() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[watcher]\nsettle_time = \"300ms\"\npoll = true\npoll_interval = \"200ms\"\n",
    );
    let d = Daemon::start(&env);
    let mut f = std::fs::File::create(env.queue.join("polled.md")).unwrap();
    f.write_all(b"Polled, first half,").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(texts(&sb).is_empty(), "{:?}", texts(&sb));
    f.write_all(b" second half\n").unwrap();
    drop(f);
    wait_post_logged(&sb, &d, "Polled, first half, second half", LONG);
}

#[test]
fn a_writer_opening_a_draft_while_it_is_read_does_not_kill_the_daemon() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    // As many drafts as it takes (timing decides): none may be held by the daily cap.
    raise_daily_cap(&env, 1000);
    let mut d = Daemon::start(&env);
    // A writer that keeps opening each draft for writing: when one of its opens meets the
    // daemon's read lease, the kernel signals the daemon (EWOULDBLOCK here says so).
    let mut broken = 0;
    let mut n = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while broken < 3 && std::time::Instant::now() < deadline {
        n += 1;
        let name = format!("hammer-{n}.md");
        env.drop_draft(&name, format!("Hammered {n}\n"));
        let path = env.queue.join(&name);
        // Until the daemon takes the file (or dies, leaving it here).
        while std::time::Instant::now() < deadline {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
            {
                Ok(f) => drop(f),
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => broken += 1,
                Err(_) => break,
            }
        }
    }
    assert!(d.alive(), "daemon died:\n{}", d.log_text());
    assert!(broken > 0, "no open ever met a lease in {n} drafts");
    sentinel(&env, &sb, &d, "after-hammer");
    assert!(d.alive(), "daemon died:\n{}", d.log_text());
}

// ---------------------------------------------------------------- point 14: links and others

#[test]
fn a_symlink_is_rejected_without_being_followed() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let secret = env.path("client-secret");
    std::fs::write(&secret, "TOP SECRET client secret\n").unwrap();
    std::fs::create_dir_all(&env.queue).unwrap();
    std::os::unix::fs::symlink(&secret, env.queue.join("leak.md")).unwrap();
    let fifo = env.queue.join("pipe.md");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    std::fs::create_dir(env.queue.join("folder.md")).unwrap();
    sentinel(&env, &sb, &d, "after-links");

    let why = rejected(&env, "leak.md");
    assert!(why.contains("symbolic link"), "{why}");
    let moved = env.queue.join("rejected/leak.md");
    assert!(std::fs::symlink_metadata(&moved)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(rejected(&env, "pipe.md").contains("named pipe"));
    assert!(rejected(&env, "folder.md").contains("folder"));
    assert_eq!(texts(&sb), ["Sentinel after-links"]);
    assert!(!d.log_text().contains("TOP SECRET"));
}

/// Two names that differ only in bytes that are not UTF-8 read alike once shown, and
/// lipost tells drafts apart by name: one could pass for the other and move its post
/// earlier. Such a name is refused, whatever the draft holds.
#[test]
fn a_name_that_is_not_utf8_is_refused_and_cannot_move_a_post_earlier() {
    use std::os::unix::ffi::OsStrExt;
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    std::fs::create_dir_all(&env.queue).unwrap();
    let name = |b: u8| {
        std::ffi::OsStr::from_bytes(&[b"promo".as_slice(), &[b], b".md"].concat()).to_owned()
    };
    let stage = env.path("stage.md");
    std::fs::write(
        &stage,
        draft(
            "id = \"promo\"\npublish_at = \"2030-09-01T10:00:00Z\"",
            "Embargoed promo",
        ),
    )
    .unwrap();
    std::fs::rename(&stage, env.queue.join(name(0xff))).unwrap();
    std::fs::write(&stage, draft("id = \"promo\"", "Older promo text")).unwrap();
    std::fs::rename(&stage, env.queue.join(name(0xfe))).unwrap();
    sentinel(&env, &sb, &d, "after-names");
    assert_eq!(env.state("promo"), None, "{}", d.log_text());
    assert_eq!(texts(&sb), ["Sentinel after-names"]);
    let errors: Vec<String> = std::fs::read_dir(env.queue.join("rejected"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".error"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains("not valid UTF-8")),
        "{errors:?}"
    );
    // `lipost validate` says the same.
    let odd = env.path("x").join(name(0xfd));
    std::fs::create_dir_all(odd.parent().unwrap()).unwrap();
    std::fs::write(&odd, "Hello\n").unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("validate")
        .arg(&odd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && stdout.contains("not valid UTF-8"),
        "{stdout}"
    );
}

/// A refused draft's explanation needs `NAME.error` free as well as `NAME`: a folder
/// planted under the `.error` name once cost the draft its reason, and left a staging file.
#[test]
fn a_refused_draft_keeps_its_reason_when_its_error_name_is_taken() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    std::fs::create_dir_all(env.queue.join("rejected/victim.md.error")).unwrap();
    env.drop_draft("victim.md", draft("account = \"nobody\"", "x"));
    sentinel(&env, &sb, &d, "after-victim");
    let why = rejected(&env, "victim.1.md");
    assert!(why.contains("nobody"), "{why}");
    assert!(env.queue.join("rejected/victim.1.md").is_file());
    let leftovers: Vec<String> = std::fs::read_dir(env.queue.join("rejected"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A refusal that read nothing (here a named pipe) and cannot be moved out (here because
/// `rejected/` was replaced by someone else's folder) is said once, not again at every scan:
/// it is not looked at again until the name holds something else.
#[test]
fn a_refused_file_that_cannot_be_moved_is_reported_once() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    sentinel(&env, &sb, &d, "first");
    let rejected = env.queue.join("rejected");
    std::os::unix::fs::chown(&rejected, Some(65534), Some(65534)).unwrap();
    let fifo = env.queue.join("pipe.md");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    for i in 0..3 {
        sentinel(&env, &sb, &d, &format!("after-pipe-{i}"));
    }
    let log = d.log_text();
    let said = log
        .lines()
        .filter(|l| l.contains("pipe.md") && l.contains("cannot move the draft out"))
        .count();
    assert_eq!(said, 1, "{log}");
    assert!(fifo.exists());
}

/// A file put in the place of `rejected/` (the queue folder is writable by its group) must
/// not keep the daemon from starting, and so every post from going out.
#[test]
fn a_file_in_place_of_rejected_does_not_stop_the_daemon_from_starting() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    std::fs::create_dir_all(&env.queue).unwrap();
    std::fs::write(env.queue.join("rejected"), "planted\n").unwrap();
    let d = Daemon::start(&env);
    sentinel(&env, &sb, &d, "despite-impostor");
    let log = d.log_text();
    assert!(
        log.contains("ERROR") && log.contains("cannot make this folder"),
        "{log}"
    );
}

/// A draft taken but never moved out (here `accepted/` is a planted file; a crash between
/// the commit and the move does the same) is read again after a restart. If a person
/// cancelled its post meanwhile, that file is not the author asking for another go: the post
/// stays cancelled. Saving the file again is.
#[test]
fn a_taken_file_found_again_after_a_restart_does_not_revive_a_cancelled_post() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    std::fs::create_dir_all(&env.queue).unwrap();
    std::fs::write(env.queue.join("accepted"), "planted\n").unwrap();
    let d = Daemon::start(&env);
    let text = draft("publish_at = \"2030-05-01T09:00:00Z\"", "Withdrawn launch");
    env.drop_draft("keep.md", &text);
    assert!(wait_until(LONG, || env.state("keep").as_deref() == Some("scheduled")));
    assert!(
        env.queue.join("keep.md").exists(),
        "it could not be moved out"
    );
    let out = env.lipost(&["cancel", "keep"]);
    assert!(out.status.success(), "{out:?}");
    drop(d);

    let d = Daemon::start(&env);
    sentinel(&env, &sb, &d, "after-restart");
    assert_eq!(
        env.state("keep").as_deref(),
        Some("cancelled"),
        "{}",
        d.log_text()
    );

    // Saved again (the same text): that is a new drop, and the README's "another go".
    std::fs::write(env.queue.join("keep.md"), &text).unwrap();
    assert!(
        wait_until(LONG, || env.state("keep").as_deref() == Some("scheduled")),
        "{}",
        d.log_text()
    );
}

/// A cancelled bundle moved back in from `accepted/` is the author asking again, as for a
/// single file: the folder keeps its inode and `post.md` its times, but the rename says so.
#[test]
fn a_cancelled_bundle_moved_back_in_is_scheduled_again() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let text = draft(
        "publish_at = \"2030-05-01T09:00:00Z\"",
        "Bundle, back again",
    );
    env.drop_bundle("again", &text, &[]);
    let accepted = env.queue.join("accepted/again");
    assert!(wait_until(LONG, || accepted.exists()), "{}", d.log_text());
    assert_eq!(env.state("again").as_deref(), Some("scheduled"));
    assert!(env.lipost(&["cancel", "again"]).status.success());
    std::fs::rename(&accepted, env.queue.join("again")).unwrap();
    assert!(
        wait_until(LONG, || env.state("again").as_deref() == Some("scheduled")),
        "{:?}\n{}",
        env.state("again"),
        d.log_text()
    );
    assert!(wait_until(LONG, || accepted.exists()));
}

// ---------------------------------------------------------------- point 15: size cap

#[test]
fn a_one_gigabyte_draft_is_rejected_unread() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    std::fs::create_dir_all(&env.queue).unwrap();
    let tmp = env.queue.join(".big.md.tmp");
    std::fs::File::create(&tmp)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    std::fs::rename(&tmp, env.queue.join("big.md")).unwrap();
    let why = rejected(&env, "big.md");
    assert!(
        why.contains("1073741824 bytes") && why.contains("65536"),
        "{why}"
    );
    sentinel(&env, &sb, &d, "after-big");
    let hwm = vm_hwm_kib(d.pid());
    assert!(hwm < 50 * 1024, "peak RSS {hwm} KiB");
}

#[test]
fn max_draft_size_is_configurable() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[watcher]\nsettle_time = \"500ms\"\nmax_draft_size = \"1KiB\"\n",
    );
    let d = Daemon::start(&env);
    env.drop_draft("long.md", "x".repeat(1025));
    env.drop_draft("short.md", format!("{}\n", "y".repeat(1000)));
    assert!(rejected(&env, "long.md").contains("1024"));
    wait_post_logged(&sb, &d, &"y".repeat(1000), LONG);
    let p = env.path("long.md");
    std::fs::write(&p, "x".repeat(1025)).unwrap();
    let out = env.lipost(&["validate", p.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("max_draft_size"));
}

// ---------------------------------------------------------------- point 17: .error mode

#[test]
fn the_error_file_is_group_readable_under_umask_077() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    // The daemon inherits the umask; the shipped unit sets UMask=0077.
    let old = unsafe { libc::umask(0o077) };
    let d = Daemon::start(&env);
    unsafe { libc::umask(old) };
    env.drop_draft("empty.md", "+++\nid = \"empty\"\n+++\n\n");
    rejected(&env, "empty.md");
    let mode = std::fs::metadata(env.queue.join("rejected/empty.md.error"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "{mode:o}");
    drop(d);
}

// ---------------------------------------------------------------- point 18

#[test]
fn a_file_name_cannot_forge_a_log_line() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft(
        "ok\nINFO forged taken.md",
        draft("id = \"named\"", "Oddly named"),
    );
    env.drop_draft("bad\nWARN forged rejected.md", "Bad id from the name\n");
    wait_post_logged(&sb, &d, "Oddly named", LONG);
    let why = rejected(&env, "bad\nWARN forged rejected.md");
    assert_eq!(why.lines().count(), 1, "{why:?}");
    let log = d.log_text();
    assert!(log.contains("draft rejected"), "{log}");
    for line in log.lines() {
        assert!(!line.trim_start().starts_with("INFO forged"), "{log}");
        assert!(!line.trim_start().starts_with("WARN forged"), "{log}");
    }
}

#[test]
fn re_dropping_the_unchanged_draft_of_a_dead_post_schedules_it_again() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    sb.faults(json!([{"path": "/rest/posts", "status": 400, "times": 1}]));
    let text = draft("id = \"again\"", "Second chance");
    env.drop_draft("again.md", &text);
    assert!(wait_until(LONG, || env.state("again").as_deref() == Some("dead")));
    env.drop_draft("again.md", &text);
    wait_post_logged(&sb, &d, "Second chance", LONG);
    assert_eq!(env.state("again").as_deref(), Some("published"));

    // The same draft of a published post is still `Unchanged`: nothing is sent twice.
    env.drop_draft("again.md", &text);
    sentinel(&env, &sb, &d, "after-again");
    assert_eq!(
        texts(&sb),
        ["Second chance", "Sentinel after-again"],
        "{}",
        d.log_text()
    );
}

#[test]
fn the_watch_survives_the_queue_folder_being_removed_and_created_again() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    sentinel(&env, &sb, &d, "before");
    std::fs::remove_dir_all(&env.queue).unwrap();
    d.wait_log("the queue folder is gone", LONG);
    std::fs::create_dir(&env.queue).unwrap();
    // Written in place: only the new folder's watch (or a scan of it) can see it.
    let mut f = std::fs::File::create(env.queue.join("reborn.md")).unwrap();
    f.write_all(b"After the folder came back\n").unwrap();
    drop(f);
    wait_post_logged(&sb, &d, "After the folder came back", LONG);
    assert!(wait_until(LONG, || env
        .queue
        .join("accepted/reborn.md")
        .exists()));
    assert!(Path::new(&env.queue.join("rejected")).is_dir());
}

#[test]
fn without_leases_the_settle_time_rule_applies_and_says_so() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = NoLeaseDaemon::start(&env);
    // Owned by another user: no lease without CAP_LEASE.
    for (name, text) in [
        ("first.md", "Owned by nobody, one"),
        ("second.md", "Owned by nobody, two"),
    ] {
        let tmp = env.queue.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, format!("{text}\n")).unwrap();
        std::os::unix::fs::chown(&tmp, Some(65534), Some(65534)).unwrap();
        std::fs::rename(&tmp, env.queue.join(name)).unwrap();
    }
    let mut f = std::fs::File::create(env.queue.join("third.md")).unwrap();
    std::os::unix::fs::fchown(&f, Some(65534), Some(65534)).unwrap();
    f.write_all(b"Owned by nobody, in place\n").unwrap();
    drop(f);
    // Copied with its times kept from a machine whose clock is days ahead (`cp -p`): once
    // waited for until that time came.
    let mut f = std::fs::File::create(env.queue.join("fourth.md")).unwrap();
    std::os::unix::fs::fchown(&f, Some(65534), Some(65534)).unwrap();
    f.write_all(b"Owned by nobody, from the future\n").unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(3 * 86_400))
        .unwrap();
    drop(f);
    for text in [
        "Owned by nobody, one",
        "Owned by nobody, two",
        "Owned by nobody, in place",
        "Owned by nobody, from the future",
    ] {
        assert!(
            wait_until(LONG, || texts(&sb).iter().any(|t| t == text)),
            "{text}: {}",
            d.log_text()
        );
    }
    let log = d.log_text();
    assert_eq!(
        log.matches("read leases are not available").count(),
        1,
        "{log}"
    );
}

// ------------------------------------------- review findings: what the author cannot mean

fn error_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".error"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn publish_times_the_author_cannot_mean_are_refused_and_the_daemon_stays_up() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    // 9999-12-31 23:00 at -05:00 is in year 10000 in UTC: it once sorted first, went out at
    // once, and took the daemon down at every start.
    env.drop_draft(
        "far.md",
        draft("publish_at = 9999-12-31T23:00:00-05:00", "Far future"),
    );
    // A typo for 2026: once published at once.
    env.drop_draft(
        "typo.md",
        draft("publish_at = 2025-11-01T09:00:00+01:00", "Typo year"),
    );
    // 02:30 happens twice in Berlin that night: once taken as the earlier, an hour early.
    env.drop_draft(
        "twice.md",
        draft("publish_at = \"2027-10-31 02:30\"", "Clocks go back"),
    );
    let far = rejected(&env, "far.md");
    assert!(far.contains("10 years ahead"), "{far}");
    let typo = rejected(&env, "typo.md");
    assert!(
        typo.contains("in the past") && typo.contains("remove publish_at to post now"),
        "{typo}"
    );
    let twice = rejected(&env, "twice.md");
    assert!(
        twice.contains("happens twice") && twice.contains("+01:00") && twice.contains("+02:00"),
        "{twice}"
    );
    // A little in the past (within max_lateness) still means "now".
    env.drop_draft(
        "recent.md",
        draft(
            &format!("publish_at = \"{}\"", in_secs(-120)),
            "Just missed",
        ),
    );
    wait_post_logged(&sb, &d, "Just missed", LONG);
    sentinel(&env, &sb, &d, "after-times");
    assert!(d.alive(), "{}", d.log_text());
    assert_eq!(texts(&sb), ["Just missed", "Sentinel after-times"]);
    for id in ["far", "typo", "twice"] {
        assert_eq!(env.state(id), None, "{id}");
    }
}

#[test]
fn invisible_characters_and_control_bytes_do_not_slip_through() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let embargo = "\"publish_at\" = 2030-01-01T09:00:00Z";
    // Each of these once went out at once, with its front matter as text.
    env.drop_draft(
        "bom.md",
        format!("\n\u{feff}+++\n{embargo}\n+++\nEmbargoed BOM\n"),
    );
    env.drop_draft(
        "zwsp.md",
        format!("\u{200b}+++\n{embargo}\n\u{2060}+++\nEmbargoed ZWSP\n"),
    );
    env.drop_draft(
        "quoted.md",
        "Launch soon\n\"publish_at\" = 2030-01-01T09:00:00Z\n",
    );
    env.drop_draft("nul.md", "Hello\0\0\0\0\n");
    // The same, written as a TOML escape: a control character only once parsed.
    env.drop_draft(
        "escaped.md",
        "+++\nfirst_comment = \"see \\u001b[2J here\"\n+++\nHello\n",
    );
    sentinel(&env, &sb, &d, "after-invisible");
    assert_eq!(texts(&sb), ["Sentinel after-invisible"], "{}", d.log_text());
    for id in ["bom", "zwsp"] {
        assert_eq!(env.state(id).as_deref(), Some("scheduled"), "{id}");
        assert_eq!(
            due_at(&env, id).as_deref(),
            Some("2030-01-01T09:00:00.000Z"),
            "{id}"
        );
    }
    let quoted = rejected(&env, "quoted.md");
    assert!(quoted.contains("sets `publish_at`"), "{quoted}");
    let nul = rejected(&env, "nul.md");
    assert!(
        nul.contains("U+0000") && nul.contains("offset 5") && nul.contains("line 1"),
        "{nul}"
    );
    let escaped = rejected(&env, "escaped.md");
    assert!(
        escaped.contains("`first_comment`") && escaped.contains("U+001B"),
        "{escaped}"
    );
}

#[test]
fn a_sync_conflict_copy_never_replaces_a_scheduled_post() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft(
        "launch.md",
        draft(
            "id = \"launch\"\npublish_at = 2030-01-01T09:00:00Z",
            "Launch!",
        ),
    );
    assert!(wait_until(LONG, || env.state("launch").as_deref() == Some("scheduled")));
    // Same id, no publish_at: each of these once replaced the post and sent it at once.
    let copy = draft("id = \"launch\"", "Launch! (older text)");
    for name in [
        "launch.sync-conflict-20261123-101010-ABCDEFG.md",
        "launch (conflicted copy 2026-11-23).md",
        "launch (1).md",
        "launch - Copy.md",
    ] {
        env.drop_draft(name, &copy);
    }
    // Not a conflict name, but another file that would pull the embargo forward.
    env.drop_draft("launch-old.md", &copy);
    let refused = rejected(&env, "launch-old.md");
    assert!(
        refused.contains("would move it earlier") && refused.contains("\"launch.md\""),
        "{refused}"
    );
    sentinel(&env, &sb, &d, "after-conflicts");
    assert_eq!(texts(&sb), ["Sentinel after-conflicts"], "{}", d.log_text());
    assert_eq!(env.state("launch").as_deref(), Some("scheduled"));
    assert_eq!(
        due_at(&env, "launch").as_deref(),
        Some("2030-01-01T09:00:00.000Z")
    );
    // The copies are left where they are, said once each.
    assert!(exists(
        &env.queue
            .join("launch.sync-conflict-20261123-101010-ABCDEFG.md")
    ));
    assert!(exists(&env.queue.join("launch (1).md")));
    let log = d.log_text();
    assert_eq!(log.matches("conflict copy of a draft").count(), 4, "{log}");

    // Moving it later from another file, or earlier from its own, is the author's call.
    env.drop_draft(
        "launch.md",
        draft(
            "id = \"launch\"\npublish_at = 2029-06-01T09:00:00Z",
            "Launch!",
        ),
    );
    assert!(wait_until(LONG, || due_at(&env, "launch").as_deref()
        == Some("2029-06-01T09:00:00.000Z")));
}

#[test]
fn a_re_dropped_draft_of_a_post_that_died_in_doubt_is_refused() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[retry]\nbase_delay = \"200ms\"\nmax_delay = \"400ms\"\nmax_attempts = 1\n",
    );
    let d = Daemon::start(&env);
    // The sandbox stores the post and never answers: it is live, and lipost cannot know.
    // With one try allowed it dies in doubt at once, without an in-doubt retry before.
    sb.faults(json!([{"path": "/rest/posts", "method": "POST", "drop": true, "times": 0}]));
    let text = draft("id = \"unheard\"", "Nobody hears back");
    env.drop_draft("unheard.md", &text);
    assert!(wait_until(LONG, || env.state("unheard").as_deref() == Some("dead")));
    assert_eq!(sb.posts().len(), 1);
    reqwest::blocking::Client::new()
        .delete(format!("{}/_sandbox/faults", sb.url))
        .send()
        .unwrap();
    // Once taken as "dead + same draft = another go", and posted a second time.
    env.drop_draft("unheard.md", &text);
    let why = rejected(&env, "unheard.md");
    assert!(
        why.contains("may already be on LinkedIn") && why.contains("mark-published unheard"),
        "{why}"
    );
    sentinel(&env, &sb, &d, "after-unheard");
    assert_eq!(
        texts(&sb),
        ["Nobody hears back", "Sentinel after-unheard"],
        "{}",
        d.log_text()
    );
    assert_eq!(env.state("unheard").as_deref(), Some("dead"));
}

#[test]
fn a_draft_saved_over_while_it_is_taken_is_read_again_not_moved_unread() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let reads = CloseNoWrite::watch(&env.queue);
    let path = env.queue.join("launch.md");
    let front = "id = \"launch\"\npublish_at = 2030-01-01T09:00:00Z";
    // Holding the database's write lock keeps the daemon between its read and its commit
    // (its busy timeout is 10 s; PostgreSQL waits for the table lock), which is where an
    // editor's save once slipped in.
    let mut db = env.db();
    let lock = db.lock_store().unwrap();
    env.drop_draft("launch.md", draft(front, "Version one"));
    // The daemon closing the file it read (IN_CLOSE_NOWRITE): version one is read.
    assert!(
        reads.wait_for("launch.md", LONG),
        "the daemon never read launch.md:\n{}",
        d.log_text()
    );
    env.drop_draft("launch.md", draft(front, "Version two"));
    lock.rollback().unwrap();
    drop(db);
    let accepted = env.queue.join("accepted").join("launch.md");
    let text_of = || -> Option<String> {
        env.db()
            .query_row("SELECT text FROM posts WHERE id = 'launch'", [], |r| {
                r.get(0)
            })
            .ok()
    };
    let ok = wait_until(LONG, || {
        text_of().as_deref() == Some("Version two") && !exists(&path) && exists(&accepted)
    });
    assert!(
        ok,
        "post text {:?}, queue has it: {}; log:\n{}",
        text_of(),
        exists(&path),
        d.log_text()
    );
    let kept = std::fs::read_to_string(&accepted).unwrap();
    assert!(kept.contains("Version two"), "{kept}");
}

#[test]
fn a_long_name_keeps_its_reason_and_a_stuck_draft_is_not_taken_again() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    // `.NAME.error.tmp` for this name is over 255 bytes: the reason was once lost.
    let long = format!("{}.md", "x".repeat(245));
    env.drop_draft(&long, draft("id = \"long\"", ""));
    let why = rejected(&env, &long);
    assert!(why.contains("empty"), "{why}");

    // accepted/ unusable: drafts cannot leave the queue folder. One whose post died was
    // once taken again at every look, and sent again each time.
    let accepted = env.queue.join("accepted");
    std::fs::remove_dir_all(&accepted).unwrap();
    std::fs::write(&accepted, "not a folder").unwrap();
    sb.faults(json!([{"path": "/rest/posts", "status": 400, "times": 1}]));
    env.drop_draft("doomed.md", "Refused once\n");
    assert!(wait_until(LONG, || env.state("doomed").as_deref() == Some("dead")));
    // Another draft's look: the dead one's file, unchanged, is left alone.
    sentinel(&env, &sb, &d, "after-stuck");
    assert_eq!(
        env.state("doomed").as_deref(),
        Some("dead"),
        "{}",
        d.log_text()
    );
    sentinel(&env, &sb, &d, "after-stuck-2");
    assert_eq!(env.state("doomed").as_deref(), Some("dead"));
    assert_eq!(
        texts(&sb),
        ["Sentinel after-stuck", "Sentinel after-stuck-2"],
        "{}",
        d.log_text()
    );
    assert!(exists(&env.queue.join("doomed.md")));
    let log = d.log_text();
    let said = log
        .lines()
        .filter(|l| l.contains("cannot move the draft") && l.contains("doomed.md"))
        .count();
    assert_eq!(said, 1, "{log}");
    // Changed, it is a new draft: taken again.
    env.drop_draft("doomed.md", "Refused once, fixed\n");
    wait_post_logged(&sb, &d, "Refused once, fixed", LONG);
    assert!(error_files(&env.queue.join("rejected")).len() == 1);
}

#[test]
fn a_hard_link_is_rejected_and_its_target_left_alone() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "client_secret=hunter2\n").unwrap();
    std::fs::hard_link(&secret, env.queue.join("leak.md")).unwrap();
    let why = rejected(&env, "leak.md");
    assert!(why.contains("hard links"), "{why}");
    sentinel(&env, &sb, &d, "after-link");
    assert_eq!(texts(&sb), ["Sentinel after-link"]);
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "client_secret=hunter2\n"
    );
}

/// The queue folder's IN_CLOSE_NOWRITE events (notify does not report them): a file that
/// was opened for reading only, and closed.
struct CloseNoWrite {
    fd: std::os::fd::OwnedFd,
}

impl CloseNoWrite {
    fn watch(dir: &Path) -> CloseNoWrite {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain syscalls; the descriptor is owned from here on.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0);
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let wd = unsafe {
            libc::inotify_add_watch(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                path.as_ptr(),
                libc::IN_CLOSE_NOWRITE,
            )
        };
        assert!(wd >= 0);
        CloseNoWrite { fd }
    }

    /// Waits for `name` to be closed after reading.
    fn wait_for(&self, name: &str, timeout: Duration) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            // SAFETY: reads into a buffer this function owns, of the length given.
            let n = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n <= 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let mut at = 0;
            while at + 16 <= n as usize {
                let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                let raw = &buf[at + 16..at + 16 + len];
                let got = raw.split(|&b| b == 0).next().unwrap_or_default();
                if got == name.as_bytes() {
                    return true;
                }
                at += 16 + len;
            }
        }
        false
    }
}

#[test]
fn a_rejected_folder_swapped_for_a_link_gets_nothing_and_the_daemon_says_so() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    // A group member renames rejected/ away and puts a link to a folder of theirs in its
    // place, with a link to a file lipost may write planted under every name it might use.
    let rejected = env.queue.join("rejected");
    let theirs = env.path("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::rename(&rejected, env.queue.join("old-rejected")).unwrap();
    std::os::unix::fs::symlink(&theirs, &rejected).unwrap();
    let db = env.path("precious");
    std::fs::write(&db, "precious").unwrap();
    for k in 0..32 {
        let _ = std::os::unix::fs::symlink(
            &db,
            theirs.join(format!(".lipost-{}-{k}.error.tmp", d.pid())),
        );
    }
    std::os::unix::fs::symlink(&db, theirs.join("bad.md.error")).unwrap();
    env.drop_draft("bad.md", "+++\nnonsense = 1\n+++\nText\n");
    assert!(
        wait_until(LONG, || d
            .log_text()
            .contains("not a folder (a link or a file took its place)")),
        "{}",
        d.log_text()
    );
    // Nothing went through the link: the draft is still in the queue, the file intact.
    assert!(env.queue.join("bad.md").exists());
    assert!(std::fs::read_dir(&theirs).unwrap().all(|e| e
        .unwrap()
        .file_type()
        .unwrap()
        .is_symlink()));
    assert_eq!(std::fs::read_to_string(&db).unwrap(), "precious");
    // And the daemon goes on: a good draft is published.
    sentinel(&env, &sb, &d, "after-swap");
}

/// Appends `text` to `path` as `>>` does: its own open, write and close.
fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Writes in place the first step of a draft written in steps (front matter, `id`, due in an
/// hour, and `text`), and waits until it is scheduled and moved out of the queue folder.
fn first_step_taken(env: &Env, path: &Path, id: &str, text: &str) {
    append(
        path,
        &format!(
            "+++\nid = \"{id}\"\npublish_at = \"{}\"\n+++\n{text}",
            in_an_hour()
        ),
    );
    assert!(wait_until(LONG, || {
        env.state(id).as_deref() == Some("scheduled") && !path.exists()
    }));
}

fn in_an_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
}

#[test]
fn a_draft_written_line_by_line_waits_for_its_text_and_keeps_its_time() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let path = env.queue.join("steps.md");
    // A script writing a draft line by line: each line its own open, write and close. Every
    // close before the text is a file that ends inside its front matter or has no text.
    for line in [
        "+++\n".to_string(),
        "id = \"steps\"\n".to_string(),
        format!("publish_at = \"{}\"\n", in_an_hour()),
        "+++\n".to_string(),
    ] {
        append(&path, &line);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            path.exists(),
            "taken before it was complete:\n{}",
            d.log_text()
        );
        assert_eq!(env.state("steps"), None);
    }
    assert!(d
        .log_text()
        .contains("its writer may still be adding the rest"));
    append(&path, "The text, in one line.\n");
    assert!(
        wait_until(LONG, || env.state("steps").as_deref() == Some("scheduled")),
        "{}",
        d.log_text()
    );
    let text: String = env
        .db()
        .query_row("SELECT text FROM posts WHERE id = 'steps'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(text, "The text, in one line.");
    assert!(!env.queue.join("rejected/steps.md").exists());
    // Its time was kept: it waits, and nothing went out.
    sentinel(&env, &sb, &d, "after-steps");
    assert_eq!(texts(&sb), vec!["Sentinel after-steps"]);
}

#[test]
fn a_draft_that_stays_without_text_is_rejected_after_the_incomplete_wait() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[watcher]\nsettle_time = \"500ms\"\nincomplete_wait = \"2s\"\n",
    );
    let mut d = Daemon::start(&env);
    std::fs::write(env.queue.join("hollow.md"), "+++\nid = \"hollow\"\n+++\n").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !env.queue.join("rejected/hollow.md.error").exists(),
        "rejected before its writer had a chance to add the text"
    );
    let why = rejected(&env, "hollow.md");
    assert!(why.contains("the post text is empty"), "{why}");
    // Renamed in, it is finished by its writer's word: refused at once.
    env.drop_draft("hollow2.md", "+++\nid = \"hollow2\"\n+++\n");
    assert!(rejected(&env, "hollow2.md").contains("the post text is empty"));
    assert!(d.alive());
}

#[test]
fn the_rest_of_a_draft_already_taken_is_refused_and_the_post_is_stopped() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    let path = env.queue.join("halves.md");
    // The first step is a whole draft: front matter and a first paragraph.
    first_step_taken(&env, &path, "halves", "The first paragraph.\n");
    // The second step lands in a new file of the same name, without the front matter.
    append(&path, "The second paragraph.\n");
    let why = rejected(&env, "halves.md");
    assert!(why.contains("looks like the rest of that draft"), "{why}");
    assert!(why.contains("was stopped and not sent"), "{why}");
    assert_eq!(env.state("halves").as_deref(), Some("dead"));
    let reason: String = env
        .db()
        .query_row(
            "SELECT reason FROM dead_letters WHERE post_id = 'halves'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reason, "draft_incomplete");
    assert!(d.log_text().contains("its draft file was written to again"));
    // A third step is more of the same rest: refused too, and nothing is revived.
    append(&path, "The third paragraph.\n");
    let why = rejected(&env, "halves.1.md");
    assert!(why.contains("looks like the rest of that draft"), "{why}");
    assert_eq!(env.state("halves").as_deref(), Some("dead"));
    let due = |env: &Env| -> String {
        env.db()
            .query_row("SELECT due_at FROM posts WHERE id = 'halves'", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let timed = due(&env);
    // `retry --all` leaves it to be asked for by name; by name, it keeps its time.
    let out = env.lipost(&["retry", "--all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("skipped 1 whose draft file was written to again"),
        "{text}"
    );
    assert_eq!(env.state("halves").as_deref(), Some("dead"));
    let out = env.lipost(&["retry", "halves"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(its due time)"), "{text}");
    assert_eq!(env.state("halves").as_deref(), Some("scheduled"));
    assert_eq!(due(&env), timed, "a retry must not send it before its time");
    // The whole draft, dropped again, is scheduled again with all its text.
    env.drop_draft(
        "halves.md",
        format!(
            "+++\nid = \"halves\"\npublish_at = \"{}\"\n+++\nThe first paragraph.\nThe second paragraph.\n",
            in_an_hour()
        ),
    );
    assert!(wait_until(LONG, || env.state("halves").as_deref() == Some("scheduled")));
    sentinel(&env, &sb, &d, "after-halves");
    assert_eq!(texts(&sb), vec!["Sentinel after-halves"]);
}

#[test]
fn a_file_without_front_matter_may_not_send_a_timed_post_at_once() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, SHORT_WINDOW);
    let d = Daemon::start(&env);
    // After the window (as long after, or after a restart), only the store's rule can
    // refuse it. (Within it, a rename may be seen as a write in place: the rename's event
    // can reach intake after the listing did.)
    env.drop_draft(
        "timed.md",
        format!(
            "+++\npublish_at = \"{}\"\n+++\nEmbargoed until the hour.\n",
            in_an_hour()
        ),
    );
    assert!(wait_until(LONG, || env.state("timed").as_deref() == Some("scheduled")));
    std::thread::sleep(Duration::from_millis(1200));
    env.drop_draft("timed.md", "A second half, without front matter.\n");
    let why = rejected(&env, "timed.md");
    assert!(why.contains("it would drop"), "{why}");
    // With front matter, moving it to now is what its author says: taken.
    env.drop_draft("timed.md", "+++\n+++\nNow, on purpose.\n");
    wait_post_logged(&sb, &d, "Now, on purpose.", LONG);
    assert_eq!(texts(&sb), vec!["Now, on purpose."]);
}

#[test]
fn the_rest_of_a_refused_draft_is_refused_too_and_a_plain_text_may_be_saved_again() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    // The first step's front matter is wrong: refused. Its rest must not go out alone.
    let path = env.queue.join("typo.md");
    append(
        &path,
        "+++\npublish_at = \"next tuesday\"\n+++\nThe launch.\n",
    );
    assert!(rejected(&env, "typo.md").contains("next tuesday"));
    append(&path, "More about the launch.\n");
    let why = rejected(&env, "typo.1.md");
    assert!(why.contains("that draft was refused"), "{why}");
    // A text without front matter, saved in place twice in a row, is a plain re-drop.
    let plain = env.queue.join("plain.md");
    std::fs::write(&plain, "Plain, first save.\n").unwrap();
    wait_post_logged(&sb, &d, "Plain, first save.", LONG);
    std::fs::write(&plain, "Plain, second save.\n").unwrap();
    let why = rejected(&env, "plain.md");
    assert!(why.contains("already published"), "{why}");
    sentinel(&env, &sb, &d, "after-typo");
    assert_eq!(
        texts(&sb),
        vec!["Plain, first save.", "Sentinel after-typo"],
        "{}",
        d.log_text()
    );
}

#[test]
fn after_a_restart_the_rest_of_a_stopped_draft_is_still_refused_whatever_its_id() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let mut d = Daemon::start(&env);
    let path = env.queue.join("notes.md");
    first_step_taken(&env, &path, "launch", "Part one.\n");
    append(&path, "Part two.\n");
    assert!(rejected(&env, "notes.md").contains("was stopped and not sent"));
    assert_eq!(env.state("launch").as_deref(), Some("dead"));
    // A restart forgets which names were written lately; the store still knows the name.
    d.kill9();
    let d = Daemon::start(&env);
    append(&path, "Part three.\n");
    let why = rejected(&env, "notes.1.md");
    assert!(why.contains("looks like more of that rest"), "{why}");
    assert_eq!(
        env.state("notes"),
        None,
        "the rest became a post of its own"
    );
    sentinel(&env, &sb, &d, "after-restart");
    assert_eq!(texts(&sb), vec!["Sentinel after-restart"]);
}

#[test]
fn a_file_without_front_matter_may_not_replace_a_slot_post_whose_draft_had_it() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        &format!(
            "{SHORT_WINDOW}\n[accounts.slotted]\nkind = \"member\"\nslots = [\"0 0 9 * * *\"]\n"
        ),
    );
    let d = Daemon::start(&env);
    env.drop_draft(
        "weekly.md",
        "+++\naccount = \"slotted\"\n+++\nWeekly update.\n",
    );
    assert!(wait_until(LONG, || env.state("weekly").as_deref() == Some("scheduled")));
    // After the window: only the store can tell it dropped the front matter (its account,
    // and the slot it would have kept).
    std::thread::sleep(Duration::from_millis(1200));
    env.drop_draft("weekly.md", "Weekly update, front matter lost.\n");
    let why = rejected(&env, "weekly.md");
    assert!(why.contains("it would drop whatever"), "{why}");
    let (account, text): (String, String) = env
        .db()
        .query_row(
            "SELECT account, text FROM posts WHERE id = 'weekly'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (account.as_str(), text.as_str()),
        ("slotted", "Weekly update.")
    );
    // Nor revive it once cancelled: it would go out now, from the default account.
    assert!(env.lipost(&["cancel", "weekly"]).status.success());
    env.drop_draft("weekly.md", "Weekly update, front matter lost.\n");
    assert!(rejected(&env, "weekly.1.md").contains("it would drop whatever"));
    assert_eq!(env.state("weekly").as_deref(), Some("cancelled"));
    sentinel(&env, &sb, &d, "after-weekly");
    assert_eq!(texts(&sb), vec!["Sentinel after-weekly"]);
}

#[test]
fn a_stopped_slot_post_whose_slot_was_taken_meanwhile_is_not_retried_into_it() {
    let sb = Sandbox::start();
    let env = Env::new(
        &sb,
        "\n[accounts.slotted]\nkind = \"member\"\nslots = [\"0 0 9 * * *\"]\n",
    );
    let d = Daemon::start(&env);
    let path = env.queue.join("monday.md");
    append(&path, "+++\naccount = \"slotted\"\n+++\nFirst part.\n");
    assert!(wait_until(LONG, || {
        env.state("monday").as_deref() == Some("scheduled") && !path.exists()
    }));
    append(&path, "Second part.\n");
    assert!(rejected(&env, "monday.md").contains("was stopped and not sent"));
    // Its slot is free now, and another draft takes it.
    env.drop_draft(
        "other.md",
        "+++\naccount = \"slotted\"\n+++\nAnother post.\n",
    );
    assert!(wait_until(LONG, || env.state("other").as_deref() == Some("scheduled")));
    let out = env.lipost(&["retry", "monday"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("which post \"other\" holds now"), "{err}");
    assert_eq!(env.state("monday").as_deref(), Some("dead"));
    sentinel(&env, &sb, &d, "after-slot");
    assert_eq!(texts(&sb), vec!["Sentinel after-slot"]);
}

/// A small filesystem mounted over a folder, unmounted when dropped.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn tmpfs(at: &std::path::Path, size: &str) -> Option<Mounted> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mounted(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A 256 KiB filesystem mounted over `env`'s queue folder; `None` (said, as a skip) where
/// this user may not mount one (only root may).
fn small_queue(env: &Env, test: &str) -> Option<Mounted> {
    let fs = Mounted::tmpfs(&env.queue, "256k");
    if fs.is_none() {
        eprintln!("SKIPPED {test}: cannot mount a tmpfs (not root?)");
        assert_ne!(unsafe { libc::geteuid() }, 0, "root, and mount failed");
    }
    fs
}

/// Fills the queue folder's filesystem (a dot-file is no draft) but for one page of 4 KiB;
/// the filler is removed with `remove_file`.
fn fill_but_a_page(env: &Env) -> std::fs::File {
    use std::io::Write;
    let mut filler = std::fs::File::create(env.queue.join(".filler")).unwrap();
    while filler.write_all(&[0u8; 4096]).is_ok() {}
    let len = filler.metadata().unwrap().len();
    filler.set_len(len - 4096).unwrap();
    filler
}

#[test]
fn a_draft_cut_short_by_a_full_disk_is_not_posted() {
    use std::io::Write;
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let Some(_fs) = small_queue(&env, "a_draft_cut_short_by_a_full_disk_is_not_posted") else {
        return;
    };
    let mut d = Daemon::start(&env);
    // A copy onto the full filesystem fails part-way with ENOSPC, as `cp` does: the draft's
    // first 4 KiB fit, its last words do not.
    let filler = fill_but_a_page(&env);
    let text = "word ".repeat(200);
    let draft = format!(
        "+++\npublish_at = \"{}\"\n# {}\n+++\n{text}\n",
        in_secs(-1),
        "x".repeat(3500)
    );
    let mut f = std::fs::File::create(env.queue.join("cut.md")).unwrap();
    let written = f.write(draft.as_bytes()).unwrap_or(0);
    assert!(
        written < draft.len() && written > 3600,
        "wrote {written} of {}",
        draft.len()
    );
    drop(f);
    std::thread::sleep(Duration::from_secs(3));
    assert!(sb.posts().is_empty(), "posted cut short: {:?}", sb.posts());
    assert!(
        d.log_text().contains("its filesystem has no space left"),
        "{}",
        d.log_text()
    );
    // Space again: the cut file is not taken by itself; saved again whole, it goes.
    drop(filler);
    std::fs::remove_file(env.queue.join(".filler")).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(sb.posts().is_empty(), "posted cut short: {:?}", sb.posts());
    let tmp = env.queue.join(".cut.md.tmp");
    std::fs::write(&tmp, &draft).unwrap();
    std::fs::rename(&tmp, env.queue.join("cut.md")).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || !sb.posts().is_empty()),
        "{}",
        d.log_text()
    );
    let post = sb.posts().remove(0);
    assert_eq!(post["text"].as_str().unwrap(), text.trim_end());
    d.kill9();
}

#[test]
fn the_same_draft_again_is_logged_with_its_posts_real_state() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let d = Daemon::start(&env);
    env.drop_draft("twice.md", "Saved twice\n");
    assert!(wait_until(Duration::from_secs(15), || env
        .state("twice")
        .as_deref()
        == Some("published")));
    env.drop_draft("twice.md", "Saved twice\n");
    d.wait_log("draft already taken; unchanged", Duration::from_secs(10));
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("draft already taken; unchanged"))
        .unwrap();
    assert!(line.contains("state=\"published\""), "{line}");
    assert_eq!(sb.posts().len(), 1);
}

#[test]
fn the_rest_of_a_draft_cut_short_by_a_full_disk_still_stops_the_post() {
    use std::io::Write;
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let Some(_fs) = small_queue(
        &env,
        "the_rest_of_a_draft_cut_short_by_a_full_disk_still_stops_the_post",
    ) else {
        return;
    };
    let mut d = Daemon::start(&env);
    let path = env.queue.join("halves.md");
    first_step_taken(&env, &path, "halves", "The first paragraph.\n");
    // The disk fills up; the `>>` of the second step fails part-way.
    let _filler = fill_but_a_page(&env);
    let rest = "The second paragraph, long. ".repeat(200);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let written = f.write(rest.as_bytes()).unwrap_or(0);
    assert!(written > 0 && written < rest.len(), "wrote {written}");
    drop(f);
    // The rest is the rest: the post taken from the first step is stopped, not sent by half.
    assert!(
        wait_until(LONG, || env.state("halves").as_deref() == Some("dead")),
        "{:?}\n{}",
        env.state("halves"),
        d.log_text()
    );
    assert!(sb.posts().is_empty());
    d.kill9();
}
