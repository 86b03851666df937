//! Under systemd (JOURNAL_STREAM set) lipost logs to the journal with structured fields, so
//! `journalctl -u lipost POST_ID=launch` works. This machine has no journald, so the test
//! listens on the journal's socket itself (it needs root, and skips where a real journald runs).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const SOCKET: &str = "/run/systemd/journal/socket";

#[test]
fn journald_gets_post_id_account_state_and_http_status_fields() {
    if Path::new(SOCKET).exists() || std::fs::create_dir_all("/run/systemd/journal").is_err() {
        eprintln!("skipped: a journal socket exists already, or /run is not writable");
        return;
    }
    let journal = UnixDatagram::bind(SOCKET).unwrap();
    let _cleanup = RemoveOnDrop(SOCKET);
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    // Started by systemd: stderr is the journal stream.
    let _d = Daemon::spawn_with_env(&env, &[("JOURNAL_STREAM", "8:12345")]);
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut found = None;
    let mut dropped = false;
    while start.elapsed() < Duration::from_secs(15) && found.is_none() {
        if let Ok(n) = journal.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if !dropped && msg.contains("lipost is running") {
                env.drop_draft("launch.md", "To the journal\n");
                dropped = true;
            }
            let fields = parse(&buf[..n]);
            let has = |name: &str, value: &str| fields.iter().any(|(k, v)| k == name && v == value);
            if has("POST_ID", "launch") && has("STATE", "published") {
                found = Some(msg.clone());
            }
            seen.push(msg);
        }
    }
    let msg = found.unwrap_or_else(|| panic!("no published entry for POST_ID=launch: {seen:#?}"));
    let fields = parse(msg.as_bytes());
    for (name, value) in [
        ("POST_ID", "launch"),
        ("ACCOUNT", "me"),
        ("STATE", "published"),
        ("HTTP_STATUS", "201"),
        ("SYSLOG_IDENTIFIER", "lipost"),
        ("PRIORITY", "5"),
    ] {
        assert!(
            fields.iter().any(|(n, v)| n == name && v == value),
            "{name}={value} missing in {fields:?}"
        );
    }
}

// tracing-journald maps INFO to PRIORITY=5 (notice), WARN to 4, ERROR to 3.
/// The journal's native protocol: `NAME=value\n`, or `NAME\n` + 64-bit LE length + bytes + `\n`.
fn parse(mut b: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some(end) = b.iter().position(|&c| c == b'=' || c == b'\n') else {
            break;
        };
        let name = String::from_utf8_lossy(&b[..end]).to_string();
        if b[end] == b'=' {
            let rest = &b[end + 1..];
            let stop = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            out.push((name, String::from_utf8_lossy(&rest[..stop]).to_string()));
            b = &rest[(stop + 1).min(rest.len())..];
        } else {
            let len = u64::from_le_bytes(b[end + 1..end + 9].try_into().unwrap()) as usize;
            let value = &b[end + 9..end + 9 + len];
            out.push((name, String::from_utf8_lossy(value).to_string()));
            b = &b[(end + 10 + len).min(b.len())..];
        }
    }
    out
}

/// Removes the stand-in journal socket however the test ends.
struct RemoveOnDrop(&'static str);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}
