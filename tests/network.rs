//! Nothing leaves the machine: requests to a sandbox on loopback never go through a proxy
//! named in the environment.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// A "proxy" that only counts the connections it gets; it never answers.
fn fake_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        // Keep each connection open, so a client using the proxy waits instead of failing
        // over to a direct connection.
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    (url, seen)
}

#[test]
fn sandbox_requests_ignore_http_proxy() {
    let sb = Sandbox::start();
    let env = Env::new(&sb, "");
    let (proxy, seen) = fake_proxy();
    let vars: Vec<(&str, &str)> = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .into_iter()
    .map(|k| (k, proxy.as_str()))
    .chain([("NO_PROXY", ""), ("no_proxy", "")])
    .collect();
    let d = Daemon::start_with_env(&env, &vars);
    env.drop_draft("hello.md", "Through no proxy\n");
    wait_post_logged(&sb, &d, "Through no proxy", Duration::from_secs(20));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the proxy saw a connection; daemon log:\n{}",
        d.log_text()
    );
}
