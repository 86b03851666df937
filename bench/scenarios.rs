//! lipost's benchmarks: each scenario runs the real release binary against the sandbox on
//! loopback, next to a reference measured in the same run, so the ratio holds on a noisy
//! machine. `cargo bench --bench scenarios` (full size, a few minutes);
//! `LIPOST_BENCH=smoke cargo bench --bench scenarios` (small, for CI; timings not asserted).
//! Prints a table and writes bench/results/latest.json.

#[path = "../tests/common/mod.rs"]
mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};

struct Size {
    ingest: usize,
    punct: usize,
    punct_accounts: usize,
    idle_posts: usize,
    idle_secs: u64,
    recovery_rows: usize,
    recovery_scheduled: usize,
    recovery_files: usize,
    backlog_accounts: usize,
    backlog_per: usize,
    spacing_ms: u64,
}

const FULL: Size = Size {
    ingest: 10_000,
    punct: 1_000,
    punct_accounts: 20,
    idle_posts: 10_000,
    idle_secs: 60,
    recovery_rows: 1_000_000,
    recovery_scheduled: 100_000,
    recovery_files: 10_000,
    backlog_accounts: 50,
    backlog_per: 100,
    spacing_ms: 200,
};

const SMOKE: Size = Size {
    ingest: 300,
    punct: 100,
    punct_accounts: 5,
    idle_posts: 300,
    idle_secs: 3,
    recovery_rows: 5_000,
    recovery_scheduled: 500,
    recovery_files: 100,
    backlog_accounts: 4,
    backlog_per: 5,
    spacing_ms: 200,
};

/// One line of the report.
struct Row {
    scenario: &'static str,
    metric: String,
    value: f64,
    unit: &'static str,
    reference: Option<f64>,
    target: String,
    ok: Option<bool>,
}

impl Row {
    fn json(&self) -> Value {
        let ratio = self.reference.filter(|r| *r > 0.0).map(|r| self.value / r);
        json!({"scenario": self.scenario, "metric": self.metric, "value": self.value, "unit": self.unit,
               "reference": self.reference, "ratio": ratio, "target": self.target, "met": self.ok})
    }
}

fn row(
    scenario: &'static str,
    metric: &str,
    value: f64,
    unit: &'static str,
    reference: Option<f64>,
    target: &str,
    ok: Option<bool>,
) -> Row {
    Row {
        scenario,
        metric: metric.into(),
        value,
        unit,
        reference,
        target: target.into(),
        ok,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn count(env: &Env, state: &str) -> usize {
    env.db()
        .query_row(
            "SELECT COUNT(*) FROM posts WHERE state = ?1",
            [state],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0) as usize
}

/// Writes a draft with an mtime an hour ago, as one left in the folder during downtime.
fn write_old(path: &std::path::Path, content: String) {
    std::fs::write(path, content).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn accounts_toml(prefix: &str, n: usize, extra: &str) -> String {
    (0..n)
        .map(|i| {
            format!("\n[accounts.{prefix}{i:02}]\nkind = \"member\"\ndaily_cap = 1000000\n{extra}")
        })
        .collect()
}

// ------------------------------------------------------------------ 1. ingest

fn ingest(size: &Size, rows: &mut Vec<Row>) {
    let n = size.ingest;
    let sb = Sandbox::start();
    let env = Env::build(&sb, "", "", "");
    let _d = Daemon::start(&env);
    let due = in_secs(3 * 86_400);
    // Written beside the folder first, then renamed in all at once: the clock measures the
    // daemon, not how fast this process writes 10,000 files (which varied 0.7–2.9 s).
    let staging = env.path("staging");
    std::fs::create_dir_all(&staging).unwrap();
    for i in 0..n {
        let text = draft(
            &format!("publish_at = \"{due}\""),
            &format!("Ingest draft {i}"),
        );
        std::fs::write(staging.join(format!("d{i:05}.md")), text).unwrap();
    }
    let queue = &env.queue;
    let start = Instant::now();
    for i in 0..n {
        let name = format!("d{i:05}.md");
        std::fs::rename(staging.join(&name), queue.join(&name)).unwrap();
    }
    let written = start.elapsed();
    assert!(
        wait_until(Duration::from_secs(300), || count(&env, "scheduled") == n),
        "ingest did not finish"
    );
    let ours = start.elapsed().as_secs_f64();

    // Reference: sqlite3 inserting the same rows, one durable transaction each, same disk.
    let db = env.path("reference.db");
    let mut script = String::from("PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\nCREATE TABLE posts (id TEXT PRIMARY KEY, account TEXT, state TEXT, due_at TEXT, next_attempt_at TEXT, commentary TEXT, text TEXT, visibility TEXT, created_at TEXT, updated_at TEXT);\n");
    for i in 0..n {
        script.push_str(&format!(
            "BEGIN IMMEDIATE; INSERT INTO posts VALUES ('d{i:05}', 'me', 'scheduled', '{due}', '{due}', 'Ingest draft {i}', 'Ingest draft {i}', 'PUBLIC', '{due}', '{due}'); COMMIT;\n"
        ));
    }
    let script_path = env.path("reference.sql");
    std::fs::write(&script_path, script).unwrap();
    let t = Instant::now();
    let ok = Command::new("sqlite3")
        .arg(&db)
        .stdin(std::fs::File::open(&script_path).unwrap())
        .stdout(Stdio::null())
        .status()
        .expect("the sqlite3 command-line tool is needed (apt-get install sqlite3)");
    assert!(ok.success());
    let reference = t.elapsed().as_secs_f64();
    let rate = n as f64 / ours;
    rows.push(row(
        "ingest",
        &format!(
            "{n} drafts renamed in at once → scheduled (renaming took {:.2} s)",
            written.as_secs_f64()
        ),
        ours,
        "s",
        Some(reference),
        "≤ 2× reference",
        Some(ours <= 2.0 * reference),
    ));
    rows.push(row(
        "ingest",
        "drafts per second",
        rate,
        "/s",
        Some(n as f64 / reference),
        "≥ 2000/s",
        Some(rate >= 2000.0),
    ));
}

// ------------------------------------------------------------------ 2. punctuality

/// The daemon's `publisher.max_concurrent` in this scenario; the bare client uses the same.
const PUNCT_CONCURRENT: usize = 64;

fn punctuality(size: &Size, rows: &mut Vec<Row>) {
    let n = size.punct;
    let k = size.punct_accounts;
    let sb = Sandbox::start();
    let env = Env::build(
        &sb,
        "",
        "",
        &format!(
            "\n[publisher]\nmax_concurrent = {PUNCT_CONCURRENT}\n{}",
            accounts_toml("a", k, "")
        ),
    );
    // The per-claim lateness is logged at debug; only ask for it when the log is kept.
    let log = if std::env::var_os("LIPOST_BENCH_KEEP").is_some() {
        "info,lipost::scheduler=debug"
    } else {
        "info"
    };
    let d = Daemon::start_with_env(&env, &[("RUST_LOG", log)]);
    // Warm-up: one post per account, so tokens exist (the sandbox mints them on first use).
    for a in 0..k {
        env.drop_draft(
            &format!("warm{a}.md"),
            draft(&format!("account = \"a{a:02}\""), &format!("warm-up {a}")),
        );
    }
    assert!(
        wait_until(Duration::from_secs(30), || sb.posts().len() == k),
        "warm-up did not finish:\n{}",
        d.log_text()
    );

    let reference = reference_lateness(n);
    for (round, latency) in [(0, 0u64), (1, 50)] {
        sb.configure(json!({"latency_ms": latency}));
        let due_at = Utc::now() + chrono::Duration::seconds(if n > 500 { 12 } else { 5 });
        let due = due_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for i in 0..n {
            env.drop_draft(
                &format!("r{round}-{i:04}.md"),
                draft(
                    &format!("account = \"a{:02}\"\npublish_at = \"{due}\"", i % k),
                    &format!("round {round} post {i}"),
                ),
            );
        }
        assert!(
            wait_until(Duration::from_secs(60), || count(&env, "scheduled") == n),
            "round {round}: not all scheduled in time"
        );
        assert!(
            Utc::now() < due_at,
            "round {round}: ingest took longer than the lead time"
        );
        let prefix = format!("round {round} ");
        // Poll the database, not the sandbox: fetching every post while they arrive would
        // load the machine being measured.
        let target = k + (round + 1) * n;
        // A profiler with DWARF stacks takes a while to attach: started well before the burst.
        while Utc::now() < due_at - chrono::Duration::milliseconds(3000) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let perf = start_perf(d.pid(), round);
        // CPU spent on the burst by both processes (both idle just before it).
        while Utc::now() < due_at - chrono::Duration::milliseconds(300) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (daemon_cpu, sandbox_cpu) = (cpu_ms(d.pid()), cpu_ms(sb.pid()));
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            wait_until(Duration::from_secs(120), || {
                std::thread::sleep(Duration::from_millis(150));
                count(&env, "published") == target
            }),
            "round {round}: not all published"
        );
        stop_perf(perf);
        let (daemon_cpu, sandbox_cpu) =
            (cpu_ms(d.pid()) - daemon_cpu, cpu_ms(sb.pid()) - sandbox_cpu);
        let mut late: Vec<f64> = sb
            .posts()
            .iter()
            .filter(|p| p["text"].as_str().unwrap_or("").starts_with(&prefix))
            .map(|p| {
                let at: DateTime<Utc> = p["received_at"].as_str().unwrap().parse().unwrap();
                (at - due_at).num_microseconds().unwrap() as f64 / 1000.0 - latency as f64
            })
            .collect();
        late.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let what = if latency == 0 {
            "no sandbox latency".to_string()
        } else {
            format!("{latency} ms sandbox latency (subtracted)")
        };
        let (p50, p99, max) = (
            percentile(&late, 0.5),
            percentile(&late, 0.99),
            late.last().copied().unwrap_or(f64::NAN),
        );
        let (r50, r99, rmax) = reference;
        // The same requests from a bare client, against this sandbox at this latency now:
        // what the machine allows, so lipost's figures travel as ratios.
        let (bare_p99, bare_drain, bare_cpu) = bare_client_burst(&sb, n, round, latency);
        let ratio_target = "≤ 1.5× bare client";
        // The daemon logs how late each claim was: lateness before the request left.
        let log = d.log_text();
        let mut claims: Vec<f64> = log
            .lines()
            .filter(|l| l.contains("publishing") && l.contains(&format!("post_id=r{round}-")))
            .filter_map(|l| {
                l.split("late_ms=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        claims.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if !claims.is_empty() {
            eprintln!(
                "round {round}: claim lateness p50 {} ms, p99 {} ms, max {} ms",
                percentile(&claims, 0.5),
                percentile(&claims, 0.99),
                claims.last().copied().unwrap_or(f64::NAN)
            );
        }
        if std::env::var_os("LIPOST_BENCH_KEEP").is_some() {
            let copy = std::env::temp_dir().join(format!("lipost-bench-round{round}.log"));
            std::fs::write(&copy, &log).unwrap();
            eprintln!("daemon log kept at {}", copy.display());
        }
        rows.push(row(
            "punctuality",
            &format!("{n} posts, {k} accounts, {what}: p50"),
            p50,
            "ms",
            Some(r50),
            "",
            None,
        ));
        let target = if latency == 0 { "p99 < 100 ms" } else { "" };
        rows.push(row(
            "punctuality",
            &format!("{n} posts, {k} accounts, {what}: p99"),
            p99,
            "ms",
            Some(r99),
            target,
            (latency == 0).then_some(p99 < 100.0),
        ));
        rows.push(row(
            "punctuality",
            &format!("{n} posts, {k} accounts, {what}: max"),
            max,
            "ms",
            Some(rmax),
            "",
            None,
        ));
        rows.push(row(
            "punctuality",
            &format!("{n} posts, {k} accounts, {what}: p99 vs a bare client"),
            p99,
            "ms",
            Some(bare_p99),
            ratio_target,
            Some(p99 <= 1.5 * bare_p99),
        ));
        rows.push(row(
            "punctuality",
            &format!("{n} posts, {k} accounts, {what}: drain time vs a bare client"),
            max,
            "ms",
            Some(bare_drain),
            ratio_target,
            Some(max <= 1.5 * bare_drain),
        ));
        for (who, ms) in [
            ("daemon", daemon_cpu),
            ("sandbox", sandbox_cpu),
            ("bare client", bare_cpu),
        ] {
            rows.push(row(
                "punctuality",
                &format!("{what}: {who} CPU time for the burst"),
                ms,
                "ms",
                None,
                "",
                None,
            ));
        }
    }
}

/// CPU time a process has used so far, in milliseconds, summed over its threads
/// (/proc/PID/task/*/schedstat, in nanoseconds: finer than the clock ticks of /proc/PID/stat).
fn cpu_ms(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            std::fs::read_to_string(t.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum::<f64>()
        / 1e6
}

/// With LIPOST_PERF set, `perf record` of the daemon during a burst (DWARF stacks: Rust's
/// standard library has no frame pointers), written to /tmp/lipost-perf-round{round}.data
/// (`perf report -i` reads it).
fn start_perf(pid: u32, round: usize) -> Option<std::process::Child> {
    std::env::var_os("LIPOST_PERF")?;
    let out = format!("/tmp/lipost-perf-round{round}.data");
    Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "4000",
            "--call-graph",
            "dwarf,32768",
            "-o",
            &out,
        ])
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

fn stop_perf(perf: Option<std::process::Child>) {
    if let Some(mut p) = perf {
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let _ = p.wait();
    }
}

/// `n` posts sent at once to `sb` by a bare reqwest client with no store, at most
/// [`PUNCT_CONCURRENT`] in flight: (p99 lateness, drain time, CPU time) in ms, measured like
/// lipost's (the sandbox's `received_at` from the instant the burst was due, latency
/// subtracted).
fn bare_client_burst(sb: &Sandbox, n: usize, round: usize, latency: u64) -> (f64, f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let member = format!("bare{round}");
    let (token, author) = rt.block_on(async {
        let t: Value = http
            .post(format!("{}/_sandbox/token", sb.url))
            .json(&json!({"member": member, "scope": "openid profile w_member_social"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = t["access_token"].as_str().unwrap().to_string();
        // Also opens a connection, as the daemon's warm-up did.
        let who: Value = http
            .get(format!("{}/v2/userinfo", sb.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            token,
            format!("urn:li:person:{}", who["sub"].as_str().unwrap()),
        )
    });
    let prefix = format!("bare {round} ");
    let cpu_before = cpu_ms(std::process::id());
    let due_at = Utc::now();
    rt.block_on(async {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(PUNCT_CONCURRENT));
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (http, gate, token) = (http.clone(), gate.clone(), token.clone());
                let url = format!("{}/rest/posts", sb.url);
                let body = lipost::linkedin::wire::PostRequest::text(
                    &author,
                    &format!("{prefix}post {i}"),
                    "PUBLIC",
                );
                tokio::spawn(async move {
                    let _permit = gate.acquire().await.unwrap();
                    let r = http
                        .post(url)
                        .bearer_auth(token)
                        .header("LinkedIn-Version", current_version())
                        .header("X-Restli-Protocol-Version", "2.0.0")
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    // This process's threads are idle but for the burst's.
    let cpu = cpu_ms(std::process::id()) - cpu_before;
    let mut late: Vec<f64> = sb
        .posts()
        .iter()
        .filter(|p| p["text"].as_str().unwrap_or("").starts_with(&prefix))
        .map(|p| {
            let at: DateTime<Utc> = p["received_at"].as_str().unwrap().parse().unwrap();
            (at - due_at).num_microseconds().unwrap() as f64 / 1000.0 - latency as f64
        })
        .collect();
    assert_eq!(
        late.len(),
        n,
        "the bare client's posts are not all on the sandbox"
    );
    late.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&late, 0.99), *late.last().unwrap(), cpu)
}

/// The lateness of a bare `tokio::time::sleep_until` for `n` tasks due at one instant.
fn reference_lateness(n: usize) -> (f64, f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut late: Vec<f64> = rt.block_on(async {
        let due = tokio::time::Instant::now() + Duration::from_secs(1);
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                tokio::spawn(async move {
                    tokio::time::sleep_until(due).await;
                    (tokio::time::Instant::now() - due).as_secs_f64() * 1000.0
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    late.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        *late.last().unwrap(),
    )
}

// ------------------------------------------------------------------ 3. idle footprint

/// (CPU seconds, voluntary context switches per thread id, RSS in MB) of a process.
fn sample(pid: u32) -> (f64, std::collections::HashMap<String, u64>, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / ticks;
    let mut switches = std::collections::HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let n = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        switches.insert(task.file_name().to_string_lossy().into_owned(), n);
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    (cpu, switches, rss_kb / 1024.0)
}

/// Context switches between two samples: per thread, counting threads that came or went.
fn switches_between(
    a: &std::collections::HashMap<String, u64>,
    b: &std::collections::HashMap<String, u64>,
) -> u64 {
    b.iter()
        .map(|(tid, n)| n.saturating_sub(a.get(tid).copied().unwrap_or(0)))
        .sum()
}

fn idle(size: &Size, rows: &mut Vec<Row>) {
    let sb = Sandbox::start();
    // Notifications and metrics configured: an idle outbox and an unscraped endpoint must
    // cost no wake-ups either.
    let env = Env::build(
        &sb,
        "",
        "",
        "\n[notify]\ncommand = [\"/bin/true\"]\nwebhook = \"http://127.0.0.1:9/hook\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let d = Daemon::start_with_env(
        &env,
        &[("RUST_LOG", "warn,lipost::daemon=info,lipost::metrics=info")],
    );
    let due = in_secs(3 * 86_400);
    for i in 0..size.idle_posts {
        env.drop_draft(
            &format!("i{i:05}.md"),
            draft(
                &format!("publish_at = \"{due}\""),
                &format!("Idle post {i}"),
            ),
        );
    }
    assert!(wait_until(Duration::from_secs(300), || count(
        &env,
        "scheduled"
    ) == size
        .idle_posts));
    // One scrape before the quiet time: it must leave nothing ticking behind.
    let log = d.log_text();
    let at = log.find("metrics at ").expect("the metrics endpoint is up") + "metrics at ".len();
    let url = log[at..].split_whitespace().next().unwrap();
    let scraped = reqwest::blocking::get(url).unwrap().text().unwrap();
    assert!(scraped.contains("lipost_posts{state=\"scheduled\",hold_reason=\"\"}"));
    std::thread::sleep(Duration::from_secs(3));
    let mut sleeper = Command::new("sleep")
        .arg((size.idle_secs + 5).to_string())
        .spawn()
        .unwrap();
    let (c0, s0, _) = sample(d.pid());
    let (rc0, rs0, _) = sample(sleeper.id());
    std::thread::sleep(Duration::from_secs(size.idle_secs));
    let (c1, s1, rss) = sample(d.pid());
    let (rc1, rs1, rrss) = sample(sleeper.id());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let per_min = 60.0 / size.idle_secs as f64;
    let cpu_ms = (c1 - c0) * 1000.0 * per_min;
    let wakeups = switches_between(&s0, &s1) as f64 / size.idle_secs as f64;
    let label = format!(
        "{} posts scheduled days ahead, {} s idle",
        size.idle_posts, size.idle_secs
    );
    rows.push(row(
        "idle",
        &format!("{label}: RSS"),
        rss,
        "MB",
        Some(rrss),
        "< 30 MB",
        Some(rss < 30.0),
    ));
    rows.push(row(
        "idle",
        &format!("{label}: CPU time per minute"),
        cpu_ms,
        "ms",
        Some((rc1 - rc0) * 1000.0 * per_min),
        "< 50 ms",
        Some(cpu_ms < 50.0),
    ));
    rows.push(row(
        "idle",
        &format!("{label}: voluntary context switches per second"),
        wakeups,
        "/s",
        Some(switches_between(&rs0, &rs1) as f64 / size.idle_secs as f64),
        "≤ 1/s",
        Some(wakeups <= 1.0),
    ));
}

// ------------------------------------------------------------------ 4. recovery

fn recovery(size: &Size, rows: &mut Vec<Row>) {
    let sb = Sandbox::start();
    let env = Env::build(&sb, "", "", "");
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    drop(lipost::store::Store::open(&env.db).unwrap());
    {
        let mut c = rusqlite::Connection::open(&env.db).unwrap();
        let tx = c.transaction().unwrap();
        // As `lipost run` leaves it: the mode it was made for is recorded (a database with
        // posts and no record is refused, since nothing says which world its posts are for).
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('mode', 'sandbox')",
            [],
        )
        .unwrap();
        {
            let mut stmt = tx
                .prepare("INSERT INTO posts (id, account, state, due_at, next_attempt_at, post_urn, commentary, text, visibility, created_at, updated_at, published_at) VALUES (?1, 'me', ?2, ?3, ?3, ?4, ?5, ?5, 'PUBLIC', ?3, ?3, ?6)")
                .unwrap();
            let past = "2026-01-01T09:00:00.000Z";
            let ahead = in_secs(3 * 86_400);
            for i in 0..size.recovery_rows {
                let scheduled = i < size.recovery_scheduled;
                let (state, due, urn, published) = if scheduled {
                    ("scheduled", ahead.as_str(), None, None)
                } else {
                    (
                        "published",
                        past,
                        Some(format!(
                            "urn:li:share:{}",
                            7_000_000_000_000_000_000u64 + i as u64
                        )),
                        Some(past),
                    )
                };
                stmt.execute(rusqlite::params![
                    format!("old-{i:07}"),
                    state,
                    due,
                    urn,
                    format!("Old post {i}"),
                    published
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    std::fs::create_dir_all(&env.queue).unwrap();
    let due = in_secs(3 * 86_400);
    for i in 0..size.recovery_files {
        write_old(
            &env.queue.join(format!("w{i:05}.md")),
            draft(
                &format!("publish_at = \"{due}\""),
                &format!("Waiting draft {i}"),
            ),
        );
    }
    let sock_path = env.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let log = std::fs::File::create(env.path("recovery.log")).unwrap();
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("RUST_LOG", "warn")
        .stderr(log)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let ready = loop {
        let n = sock.recv(&mut buf).expect("no READY=1 within 60 s");
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            break start.elapsed().as_secs_f64();
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let scheduled = count(&env, "scheduled");
    assert_eq!(scheduled, size.recovery_scheduled + size.recovery_files);
    rows.push(row(
        "recovery",
        &format!(
            "{} rows ({} scheduled) + {} files waiting: start → READY=1",
            size.recovery_rows, size.recovery_scheduled, size.recovery_files
        ),
        ready,
        "s",
        None,
        "< 2 s",
        Some(ready < 2.0),
    ));
}

// ------------------------------------------------------------------ 5. backlog

fn backlog(size: &Size, rows: &mut Vec<Row>) {
    let (k, per, spacing) = (size.backlog_accounts, size.backlog_per, size.spacing_ms);
    let cap = per; // the cap is reached exactly, never passed
    let sb = Sandbox::start();
    let extra = (0..k)
        .map(|i| format!("\n[accounts.b{i:02}]\nkind = \"member\"\nmin_spacing = \"{spacing}ms\"\ndaily_cap = {cap}\n"))
        .collect::<String>();
    let env = Env::build(
        &sb,
        "",
        "",
        &format!("\n[publisher]\nmax_concurrent = 64\n{extra}"),
    );
    std::fs::create_dir_all(&env.queue).unwrap();
    // Overdue, but within retry.max_lateness: a publish_at further back is refused.
    let overdue = in_secs(-600);
    for a in 0..k {
        for j in 0..per {
            write_old(
                &env.queue.join(format!("b{a:02}-{j:03}.md")),
                draft(
                    &format!("account = \"b{a:02}\"\npublish_at = \"{overdue}\""),
                    &format!("backlog {a} {j}"),
                ),
            );
        }
    }
    let d = Daemon::start_with_env(&env, &[("RUST_LOG", "warn,lipost::daemon=info")]);
    let expected = (per - 1) as f64 * spacing as f64 / 1000.0;
    assert!(
        wait_until(Duration::from_secs_f64(expected * 3.0 + 30.0), || sb
            .posts()
            .len()
            == k * per),
        "backlog did not drain: {} of {} posts sent\n{}",
        sb.posts().len(),
        k * per,
        d.log_text()
    );
    let posts = sb.posts();
    let mut min_gap = f64::INFINITY;
    let mut max_count = 0;
    let mut drains: Vec<f64> = Vec::new();
    for a in 0..k {
        let author = format!("urn:li:person:sbx-b{a:02}");
        let mut times: Vec<DateTime<Utc>> = posts
            .iter()
            .filter(|p| p["author"] == author.as_str())
            .map(|p| p["received_at"].as_str().unwrap().parse().unwrap())
            .collect();
        times.sort();
        max_count = max_count.max(times.len());
        for w in times.windows(2) {
            min_gap = min_gap.min((w[1] - w[0]).num_microseconds().unwrap() as f64 / 1000.0);
        }
        drains.push((*times.last().unwrap() - times[0]).num_milliseconds() as f64 / 1000.0);
    }
    let drain = drains.iter().cloned().fold(0.0, f64::max);
    rows.push(row(
        "backlog",
        &format!("{k} accounts × {per} past-due posts: smallest gap between an account's posts"),
        min_gap,
        "ms",
        Some(spacing as f64),
        "≥ min_spacing",
        Some(min_gap >= spacing as f64),
    ));
    rows.push(row(
        "backlog",
        "most posts by one account in the day",
        max_count as f64,
        "posts",
        Some(cap as f64),
        "≤ daily_cap",
        Some(max_count <= cap),
    ));
    rows.push(row(
        "backlog",
        "drain time (slowest account)",
        drain,
        "s",
        Some(expected),
        "within 10% of what pacing allows",
        Some(drain >= expected && drain <= expected * 1.1),
    ));
}

// ------------------------------------------------------------------ 6. drop to send

/// Due-now drafts written in place (open, write, close) one every 10 ms, pacing off: from each
/// writer's close to the sandbox receiving the post, beside a bare client's round trip.
fn drop_to_send(_size: &Size, rows: &mut Vec<Row>) {
    let smoke = std::env::var("LIPOST_BENCH").is_ok_and(|v| v == "smoke");
    let n = if smoke { 50 } else { 200 };
    let gap = Duration::from_millis(10);
    let sb = Sandbox::start();
    // `[watcher]` given, so the product's default settle time (2 s) applies, not the tests'.
    let env = Env::new(&sb, &format!("\n[watcher]\n{}", accounts_toml("d", 1, "")));
    let d = Daemon::start(&env);
    env.drop_draft("warm.md", draft("account = \"d00\"", "drop warm-up"));
    wait_post_logged(&sb, &d, "drop warm-up", Duration::from_secs(30));

    let mut closed: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let next = start + gap * i as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let text = draft("account = \"d00\"", &format!("drop {i}"));
        let mut f = std::fs::File::create(env.queue.join(format!("drop-{i:04}.md"))).unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        drop(f);
        closed.push(Utc::now());
    }
    assert!(
        wait_until(Duration::from_secs(60), || sb.posts().len() > n),
        "not all drops were sent:\n{}",
        d.log_text()
    );
    let mut latency: Vec<f64> = sb
        .posts()
        .iter()
        .filter_map(|p| {
            let i: usize = p["text"].as_str()?.strip_prefix("drop ")?.parse().ok()?;
            let at: DateTime<Utc> = p["received_at"].as_str()?.parse().ok()?;
            Some((at - closed[i]).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    latency.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(latency.len(), n);

    let mut bare = bare_round_trips(&sb, n, gap);
    bare.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99) = (percentile(&latency, 0.5), percentile(&latency, 0.99));
    let (b50, b99) = (percentile(&bare, 0.5), percentile(&bare, 0.99));
    rows.push(row(
        "drop_to_send",
        "close→received p50",
        p50,
        "ms",
        Some(b50),
        "",
        None,
    ));
    rows.push(row(
        "drop_to_send",
        "close→received p99",
        p99,
        "ms",
        Some(b99),
        "< 50 ms",
        Some(p99 < 50.0),
    ));
}

/// A video uploaded by the daemon (in 4 MiB parts, streamed from the media store) beside
/// `curl --upload-file` of the same parts to the same sandbox in the same run; and the
/// daemon's peak RSS (VmHWM) while it does it.
fn video_upload(_size: &Size, rows: &mut Vec<Row>) {
    let smoke = std::env::var("LIPOST_BENCH").is_ok_and(|v| v == "smoke");
    let bytes = if smoke { 20_000_000 } else { 200_000_000 };
    let sb = Sandbox::start();
    sb.configure(json!({"media_processing_ms": 0}));
    let env = Env::new(&sb, "\n[media]\npoll_interval = \"100ms\"\n");
    let d = Daemon::start(&env);
    let video = common::fixtures::mp4(600_000, bytes, 1);
    let staging = env.path("staging-video");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(
        staging.join("post.md"),
        draft(
            "video = { file = \"v.mp4\", title = \"Bench\" }",
            "video bench",
        ),
    )
    .unwrap();
    std::fs::write(staging.join("v.mp4"), &video).unwrap();
    std::fs::rename(&staging, env.queue.join("video")).unwrap();
    wait_post_logged(&sb, &d, "video bench", Duration::from_secs(600));
    let hwm_kb = std::fs::read_to_string(format!("/proc/{}/status", d.pid()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN);
    let (started, finished): (String, String) = env
        .db()
        .query_row(
            "SELECT (SELECT MIN(started_at) FROM media_attempts WHERE step = 'initialize'), \
             (SELECT MAX(finished_at) FROM media_attempts WHERE step = 'finalize')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let secs = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let lipost = (secs(&finished) - secs(&started)).num_milliseconds() as f64 / 1000.0;
    drop(d);

    // The reference: the same parts, one curl process, the same sandbox.
    let token: Value = agent_post(
        &format!("{}/_sandbox/token", sb.url),
        &json!({"member": "bench", "scope": "openid profile w_member_social"}),
        None,
    );
    let token = token["access_token"].as_str().unwrap().to_string();
    let init = agent_post(
        &format!("{}/rest/videos?action=initializeUpload", sb.url),
        &json!({"initializeUploadRequest": {"owner": "urn:li:person:sbx-bench", "fileSizeBytes": bytes, "uploadCaptions": false, "uploadThumbnail": false}}),
        Some(&token),
    );
    let parts = init["value"]["uploadInstructions"]
        .as_array()
        .unwrap()
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-f", "-H", "Content-Type: application/octet-stream"]);
    for (i, p) in parts.iter().enumerate() {
        let (first, last) = (
            p["firstByte"].as_u64().unwrap() as usize,
            p["lastByte"].as_u64().unwrap() as usize,
        );
        let file = dir.path().join(format!("part{i}"));
        std::fs::write(&file, &video[first..=last]).unwrap();
        curl.arg("--upload-file")
            .arg(&file)
            .arg(p["uploadUrl"].as_str().unwrap());
    }
    drop(video);
    let t = Instant::now();
    let status = curl.stdout(Stdio::null()).status().expect("curl");
    let reference = t.elapsed().as_secs_f64();
    assert!(status.success(), "curl failed: {status}");
    let mb = bytes as f64 / 1e6;
    rows.push(row(
        "video_upload",
        &format!("{mb:.0} MB in {} parts", parts.len()),
        lipost,
        "s",
        Some(reference),
        "≤ 1.5× curl",
        Some(lipost <= reference * 1.5),
    ));
    rows.push(row(
        "video_upload",
        "daemon peak RSS (VmHWM)",
        hwm_kb / 1024.0,
        "MiB",
        None,
        "< 64 MB",
        Some(hwm_kb * 1024.0 < 64e6),
    ));
}

/// A JSON POST to the sandbox, with LinkedIn's headers when a token is given.
fn agent_post(url: &str, body: &Value, token: Option<&str>) -> Value {
    let mut req = reqwest::blocking::Client::new().post(url).json(body);
    if let Some(t) = token {
        req = req
            .bearer_auth(t)
            .header("LinkedIn-Version", current_version())
            .header("X-Restli-Protocol-Version", "2.0.0");
    }
    let r = req.send().unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().unwrap()
}

/// A bare client's create-post round trips to `sb`, paced like the drafts: the floor under
/// any drop-to-send time.
fn bare_round_trips(sb: &Sandbox, n: usize, gap: Duration) -> Vec<f64> {
    let client = reqwest::blocking::Client::new();
    let token: Value = client
        .post(format!("{}/_sandbox/token", sb.url))
        .json(&json!({"member": "bench-bare", "scope": "openid profile w_member_social"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let me: Value = client
        .get(format!("{}/v2/userinfo", sb.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let author = format!("urn:li:person:{}", me["sub"].as_str().unwrap());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({
            "author": author, "commentary": format!("bare {i}"), "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": false,
        });
        let t = Instant::now();
        let r = client
            .post(format!("{}/rest/posts", sb.url))
            .bearer_auth(&token)
            .header("LinkedIn-Version", current_version())
            .header("X-Restli-Protocol-Version", "2.0.0")
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "bare create: {}", r.status());
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(gap);
    }
    out
}

/// Two daemons (nodes a and b) on one PostgreSQL schedule, one sandbox: `punct` posts due at
/// the same instant, dropped on node a; whichever node claims a post sends it.
fn two_nodes(size: &Size, rows: &mut Vec<Row>) {
    let n = size.punct;
    let k = size.punct_accounts;
    let sb = Sandbox::start();
    let env = Env::build(
        &sb,
        "node_id = \"a\"",
        "",
        &format!(
            "\n[publisher]\nmax_concurrent = {PUNCT_CONCURRENT}\nclaim_lease = \"30s\"\n{}",
            accounts_toml("a", k, "")
        ),
    );
    assert!(env.is_postgres(), "two nodes need PostgreSQL");
    // Node b: the same config but its own name, queue and local files.
    let b_config = env.path("config-b.toml");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text
        .replace("node_id = \"a\"", "node_id = \"b\"")
        .replace("queue_dir = \"queue\"", "queue_dir = \"queue-b\"")
        .replace("data_dir = \"state\"", "data_dir = \"state-b\"");
    std::fs::write(&b_config, text).unwrap();
    let a = Daemon::start(&env);
    let b = Command::new(BIN)
        .arg("--config")
        .arg(&b_config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _b = Kill(b);
    for i in 0..k {
        env.drop_draft(
            &format!("warm{i}.md"),
            draft(&format!("account = \"a{i:02}\""), &format!("warm-up {i}")),
        );
    }
    assert!(
        wait_until(Duration::from_secs(30), || sb.posts().len() == k),
        "warm-up did not finish:\n{}",
        a.log_text()
    );
    let due_at = Utc::now() + chrono::Duration::seconds(if n > 500 { 12 } else { 5 });
    let due = due_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for i in 0..n {
        env.drop_draft(
            &format!("two-{i:04}.md"),
            draft(
                &format!("account = \"a{:02}\"\npublish_at = \"{due}\"", i % k),
                &format!("two nodes post {i}"),
            ),
        );
    }
    assert!(
        wait_until(Duration::from_secs(60), || count(&env, "scheduled") == n),
        "not all scheduled in time"
    );
    assert!(Utc::now() < due_at, "ingest took longer than the lead time");
    assert!(
        wait_until(Duration::from_secs(120), || {
            std::thread::sleep(Duration::from_millis(150));
            count(&env, "published") == n + k
        }),
        "not all published:\n{}",
        a.log_text()
    );
    let posts = sb.posts();
    let mine: Vec<&Value> = posts
        .iter()
        .filter(|p| {
            p["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("two nodes post ")
        })
        .collect();
    assert_eq!(mine.len(), n, "each post exactly once");
    let mut late: Vec<f64> = mine
        .iter()
        .map(|p| {
            let at: DateTime<Utc> = p["received_at"].as_str().unwrap().parse().unwrap();
            (at - due_at).num_microseconds().unwrap() as f64 / 1000.0
        })
        .collect();
    late.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let by_b = env
        .db()
        .query_row(
            "SELECT COUNT(*) FROM posts WHERE claimed_by = 'b' AND id LIKE 'two-%'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    for (what, v, target) in [
        ("p50", percentile(&late, 0.5), ""),
        ("p99", percentile(&late, 0.99), "p99 < 100 ms"),
        ("max", late.last().copied().unwrap_or(f64::NAN), ""),
    ] {
        rows.push(row(
            "two_nodes",
            &format!("{n} posts due at once, 2 nodes ({by_b} sent by node b): {what}"),
            v,
            "ms",
            None,
            target,
            (!target.is_empty()).then_some(v < 100.0),
        ));
    }
}

fn main() {
    let smoke = std::env::var("LIPOST_BENCH").is_ok_and(|v| v == "smoke");
    // `cargo bench` passes `--bench`; a filter argument picks scenarios.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let size = if smoke { &SMOKE } else { &FULL };
    let mut rows = Vec::new();
    type Scenario = fn(&Size, &mut Vec<Row>);
    let scenarios: [(&str, Scenario); 7] = [
        ("ingest", ingest),
        ("punctuality", punctuality),
        ("idle", idle),
        ("recovery", recovery),
        ("backlog", backlog),
        ("drop_to_send", drop_to_send),
        ("video_upload", video_upload),
    ];
    // The SQLite pass first, whatever the environment says.
    let postgres = std::env::var("LIPOST_BENCH_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty());
    std::env::remove_var("LIPOST_TEST_POSTGRES");
    for (name, f) in scenarios {
        if want(name) {
            eprintln!("== {name}");
            f(size, &mut rows);
        }
    }
    // Then the same scenarios on PostgreSQL (tests/common makes a database per Env), and
    // two nodes on one schedule. Recovery writes SQLite rows directly, and a video upload
    // does not touch the database: those two run once.
    if let Some(url) = postgres {
        std::env::set_var("LIPOST_TEST_POSTGRES", &url);
        let first = rows.len();
        for (name, f) in scenarios {
            if want(name) && !matches!(name, "recovery" | "video_upload") {
                eprintln!("== {name} (PostgreSQL)");
                f(size, &mut rows);
            }
        }
        if want("two_nodes") {
            eprintln!("== two nodes (PostgreSQL)");
            two_nodes(size, &mut rows);
        }
        for r in &mut rows[first..] {
            r.metric = format!("PostgreSQL: {}", r.metric);
        }
    }
    println!("\n| scenario | metric | lipost | reference | ratio | target | met |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        let reference = r
            .reference
            .map_or("".into(), |v| format!("{v:.3} {}", r.unit));
        let ratio = r
            .reference
            .filter(|v| *v > 0.0)
            .map_or("".into(), |v| format!("{:.2}", r.value / v));
        let met = match r.ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "| {} | {} | {:.3} {} | {} | {} | {} | {} |",
            r.scenario, r.metric, r.value, r.unit, reference, ratio, r.target, met
        );
    }
    let machine = json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find_map(|l| l.strip_prefix("model name\t: ").map(String::from))),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
    });
    let out = json!({"size": if smoke { "smoke" } else { "full" }, "when": Utc::now(), "machine": machine, "results": rows.iter().map(Row::json).collect::<Vec<_>>()});
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(if smoke { "smoke.json" } else { "latest.json" });
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("\nwritten: {}", path.display());
}
