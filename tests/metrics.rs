//! The metrics endpoint: `[metrics] listen` serves GET /metrics in the OpenMetrics text
//! format; every value matches what the store says. Real binary, real sandbox, the scrape
//! parsed line by line by a strict parser here.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::time::Duration;

use common::*;
use serde_json::json;

/// One scrape, parsed: the declared families and every sample.
#[derive(Debug)]
struct Exposition {
    /// family name → type
    types: HashMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Exposition {
    /// Parses the OpenMetrics text format strictly: a line that is neither metadata nor a
    /// well-formed sample of a declared family fails the test, and the text must end with
    /// `# EOF`.
    fn parse(text: &str) -> Exposition {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        let mut eof = false;
        for line in text.lines() {
            assert!(!eof, "a line after # EOF: {line:?}");
            if line == "# EOF" {
                eof = true;
                continue;
            }
            if let Some(meta) = line.strip_prefix("# ") {
                let mut parts = meta.splitn(3, ' ');
                let (kind, name) = (parts.next().unwrap(), parts.next().unwrap());
                match kind {
                    "TYPE" => {
                        types.insert(name.to_string(), parts.next().unwrap().to_string());
                    }
                    "HELP" | "UNIT" => {}
                    other => panic!("unknown metadata {other:?} in {line:?}"),
                }
                continue;
            }
            let (name, labels, rest) = Self::sample(line);
            let declared = types.keys().any(|f: &String| {
                name == *f
                    || ["_total", "_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{f}{s}"))
            });
            assert!(declared, "sample of an undeclared family: {line:?}");
            let value = match rest.trim() {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            samples.push((name, labels, value));
        }
        assert!(eof, "no # EOF at the end:\n{text}");
        Exposition { types, samples }
    }

    /// `name{a="b",...} rest` → (name, labels, rest), label values unescaped.
    fn sample(line: &str) -> (String, BTreeMap<String, String>, String) {
        let end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = &line[..end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name in {line:?}"
        );
        let mut labels = BTreeMap::new();
        let mut chars = line[end..].chars().peekable();
        if chars.peek() == Some(&'{') {
            chars.next();
            loop {
                let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
                assert_eq!(chars.next(), Some('='), "{line:?}");
                assert_eq!(chars.next(), Some('"'), "{line:?}");
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some(c @ ('\\' | '"')) => value.push(c),
                            other => panic!("bad escape {other:?} in {line:?}"),
                        },
                        Some(c) => value.push(c),
                        None => panic!("unterminated label value in {line:?}"),
                    }
                }
                assert!(
                    labels.insert(key.clone(), value).is_none(),
                    "label {key} twice in {line:?}"
                );
                match chars.next() {
                    Some(',') => continue,
                    Some('}') => break,
                    other => panic!("unexpected {other:?} in {line:?}"),
                }
            }
        }
        assert_eq!(chars.next(), Some(' '), "{line:?}");
        (name.to_string(), labels, chars.collect())
    }

    /// The samples of `name` whose labels include `with`.
    fn find(&self, name: &str, with: &[(&str, &str)]) -> Vec<(&BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, l, v)| (l, *v))
            .collect()
    }

    /// The one sample of `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .find(name, labels)
            .into_iter()
            .filter(|(l, _)| l.len() == labels.len())
            .map(|(_, v)| v)
            .collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
        found[0]
    }
}

/// The address the daemon logged for its endpoint.
fn endpoint(d: &Daemon) -> String {
    d.wait_log("metrics at http://", Duration::from_secs(20));
    let log = d.log_text();
    let at = log.find("metrics at http://").unwrap() + "metrics at ".len();
    log[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(['"', ','])
        .to_string()
}

fn scrape(url: &str) -> (String, Exposition) {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let text = r.text().unwrap();
    let parsed = Exposition::parse(&text);
    (ct, parsed)
}

fn wait_sql(env: &Env, sql: &str, what: &str, d: &Daemon) {
    let ok = wait_until(Duration::from_secs(30), || {
        env.db()
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
            > 0
    });
    assert!(ok, "never {what}; daemon log:\n{}", d.log_text());
}

/// `lipost run`, which must refuse to start: its output.
fn refused_run(env: &Env) -> String {
    let mut d = Daemon::spawn_with_env(env, &[]);
    let stopped = wait_until(Duration::from_secs(20), || !d.alive());
    assert!(stopped, "it started:\n{}", d.log_text());
    d.log_text()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_endpoint_is_scraped_and_every_value_matches_the_store() {
    let sb = Sandbox::start();
    sb.configure(json!({"issue_refresh_tokens": true}));
    // The page `acme` posts through `me`: a login checks that `me` may.
    post_json(
        &format!("{}/_sandbox/roles", sb.url),
        &json!({"member": "me", "organization": "urn:li:organization:2414183", "role": "ADMINISTRATOR"}),
    );
    // The webhook's port refuses: its events stay pending.
    let dead_port = free_port();
    let env = Env::build(
        &sb,
        "",
        &format!("redirect_uri = \"http://127.0.0.1:{}/callback\"", free_port()),
        &format!(
            "\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[notify]\nwebhook = \"http://127.0.0.1:{dead_port}/hook\"\n"
        ),
    );
    login_paste(&env);
    let d = Daemon::start(&env);
    let url = endpoint(&d);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let (ct, before) = scrape(&url);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert_eq!(before.types["lipost_posts"], "gauge");
    assert_eq!(before.types["lipost_attempts"], "counter");
    assert_eq!(before.types["lipost_publish_lateness_seconds"], "histogram");
    let all_posts: f64 = before.find("lipost_posts", &[]).iter().map(|s| s.1).sum();
    assert_eq!(all_posts, 0.0);
    assert_eq!(
        before.value("lipost_posts", &[("state", "dead"), ("hold_reason", "")]),
        0.0,
        "a series exists before its first post"
    );
    assert_eq!(
        before.value(
            "lipost_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // One refused for good, one published, one for tomorrow, one held for a login.
    sb.faults(json!([{"path": "/rest/posts", "status": 400, "times": 1}]));
    env.drop_draft("refused.md", "LinkedIn says no\n");
    wait_sql(
        &env,
        "SELECT COUNT(*) FROM posts WHERE id = 'refused' AND state = 'dead'",
        "dead",
        &d,
    );
    // Late by a retry: LinkedIn asks it to slow down once.
    sb.faults(json!([{"path": "/rest/posts", "status": 429, "times": 1}]));
    env.drop_draft("ok.md", "This one goes out\n");
    wait_post_logged(&sb, &d, "This one goes out", Duration::from_secs(30));
    wait_sql(
        &env,
        "SELECT COUNT(*) FROM posts WHERE id = 'ok' AND state = 'published'",
        "published",
        &d,
    );
    env.drop_draft(
        "later.md",
        draft(&format!("publish_at = \"{}\"", in_secs(86_400)), "Tomorrow"),
    );
    post_json(
        &format!("{}/_sandbox/revoke", sb.url),
        &json!({"member": "me"}),
    );
    env.drop_draft("held.md", "Held, not lost\n");
    wait_sql(
        &env,
        "SELECT COUNT(*) FROM posts WHERE id = 'held' AND hold_reason = 'needs_reauth'",
        "held",
        &d,
    );
    wait_sql(
        &env,
        "SELECT COUNT(*) FROM posts WHERE id = 'later'",
        "taken",
        &d,
    );

    let (_, m) = scrape(&url);
    let db = env.db();

    // Posts per state and hold reason: every row of the store, and nothing else non-zero.
    let mut stmt = db
        .prepare("SELECT state, CASE WHEN state = 'scheduled' THEN COALESCE(hold_reason, '') ELSE '' END, COUNT(*) FROM posts GROUP BY 1, 2")
        .unwrap();
    let rows: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.2).sum::<i64>(), 4, "{rows:?}");
    for (state, hold, n) in &rows {
        assert_eq!(
            m.value(
                "lipost_posts",
                &[("state", state.as_str()), ("hold_reason", hold.as_str())]
            ),
            *n as f64,
            "{state}/{hold}"
        );
    }
    let shown: f64 = m.find("lipost_posts", &[]).iter().map(|s| s.1).sum();
    assert_eq!(shown, 4.0);
    assert_eq!(
        m.value(
            "lipost_posts",
            &[("state", "scheduled"), ("hold_reason", "needs_reauth")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "lipost_posts",
            &[("state", "scheduled"), ("hold_reason", "")]
        ),
        1.0
    );

    // Attempts per outcome, as counted in `attempts`.
    let mut stmt = db
        .prepare("SELECT outcome, COUNT(*) FROM attempts WHERE outcome IS NOT NULL GROUP BY 1")
        .unwrap();
    let outcomes: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        outcomes.iter().any(|(o, _)| o == "published"),
        "{outcomes:?}"
    );
    assert!(outcomes.iter().any(|(o, _)| o == "dead"), "{outcomes:?}");
    assert!(
        outcomes.iter().any(|(o, _)| o == "rate_limited"),
        "{outcomes:?}"
    );
    for (o, n) in &outcomes {
        assert_eq!(
            m.value("lipost_attempts_total", &[("outcome", o.as_str())]),
            *n as f64,
            "{o}"
        );
    }
    let counted: f64 = m
        .find("lipost_attempts_total", &[])
        .iter()
        .map(|s| s.1)
        .sum();
    assert_eq!(counted, outcomes.iter().map(|o| o.1).sum::<i64>() as f64);

    // Lateness: the one published post, in the bucket its own lateness falls in.
    let (due, published): (String, String) = db
        .query_row(
            "SELECT due_at, published_at FROM posts WHERE id = 'ok'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let late = (t(&published) - t(&due)).num_milliseconds() as f64 / 1000.0;
    assert!(late >= 0.5, "the retry made it late: {late}");
    assert_eq!(m.value("lipost_publish_lateness_seconds_count", &[]), 1.0);
    let sum = m.value("lipost_publish_lateness_seconds_sum", &[]);
    assert!((sum - late).abs() < 0.01, "sum {sum}, store says {late}");
    let mut buckets: Vec<(f64, f64)> = m
        .find("lipost_publish_lateness_seconds_bucket", &[])
        .into_iter()
        .map(|(l, v)| {
            let le = &l["le"];
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, v)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 1.0));
    for (le, n) in &buckets {
        // 10 ms of slack for the bound itself: the store keeps milliseconds.
        if *le >= late + 0.01 {
            assert_eq!(*n, 1.0, "le={le}, lateness {late}");
        } else if *le < late - 0.01 {
            assert_eq!(*n, 0.0, "le={le}, lateness {late}");
        }
    }

    // Token days left, for the access and the refresh token.
    let (access, refresh, secret): (String, String, String) = db
        .query_row(
            "SELECT access_expires_at, refresh_expires_at, access_token FROM tokens WHERE account = 'me'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let days = |s: &str| {
        (t(s).with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds() as f64 / 86_400.0
    };
    for (token, at) in [("access", &access), ("refresh", &refresh)] {
        let v = m.value(
            "lipost_token_days_left",
            &[("account", "me"), ("token", token)],
        );
        assert!((v - days(at)).abs() < 0.01, "{token}: {v} vs {}", days(at));
    }

    // Notifications waiting for the refusing webhook, as the outbox counts them.
    let pending: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM notifications WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(pending >= 1, "the dead post's event at least");
    assert_eq!(m.value("lipost_notifications_pending", &[]), pending as f64);

    assert_eq!(
        m.value("lipost_dead_letters_open", &[("reason", "rejected")]),
        1.0
    );
    assert_eq!(m.value("lipost_posts_in_doubt", &[]), 0.0);

    // Nothing secret: the token itself appears nowhere in the scrape.
    let body = reqwest::blocking::get(&url).unwrap().text().unwrap();
    assert!(!body.contains(&secret));
    let r = reqwest::blocking::get(url.replace("/metrics", "/other")).unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn a_metrics_address_off_loopback_is_refused_unless_allowed() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "\n[metrics]\nlisten = \"0.0.0.0:9464\"\n");
    let o = env.lipost(&["check-config"]);
    assert!(!o.status.success(), "check-config accepted it");
    for err in [
        String::from_utf8_lossy(&o.stderr).into_owned(),
        refused_run(&env),
    ] {
        assert!(
            err.contains("metrics.listen") && err.contains("metrics.allow_remote"),
            "{err}"
        );
    }
    let allowed = Env::new(
        &sb,
        "\n[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n",
    );
    let o = allowed.lipost(&["check-config"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("http://0.0.0.0:9464/metrics"));
}

#[test]
fn a_metrics_port_in_use_stops_the_start_naming_the_key() {
    let sb = Sandbox::start();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = Env::new(
        &sb,
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let err = refused_run(&env);
    assert!(
        err.contains(&format!("metrics.listen = \"127.0.0.1:{port}\"")),
        "{err}"
    );
}
