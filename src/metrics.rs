//! The Prometheus endpoint (`[metrics] listen`): `GET /metrics` in the OpenMetrics text
//! format, encoded with the Prometheus project's `prometheus-client`.
//!
//! Every value is computed from the store when a scrape comes in (one read transaction on a
//! read-only connection of its own, so a scrape never waits for the scheduler's connection
//! nor it for a scrape): counters and the lateness histogram too, counted in SQL from
//! `attempts` and `posts`. Nothing is kept in memory and no task ticks, so when nobody
//! scrapes the endpoint costs no wake-up: the server only waits on its socket.
//!
//! It shows no secret: labels are states, reasons, outcomes and account names; tokens appear
//! only as their days left. It never writes to the store.

use std::fmt;
use std::net::SocketAddr;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tracing::{info, warn};

use crate::post::{AttemptOutcome, DeadReason, HoldReason, PostState};
use crate::store::{Handle, MetricsSnapshot, Store, StoreError, LATENESS_BUCKETS};

/// What Prometheus is told the body is.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics.listen = \"{addr}\": cannot listen there: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: cannot open the database read-only: {0}")]
    Store(#[from] StoreError),
}

/// Binds `listen` and serves `GET /metrics` until the process ends; the bound address (which
/// differs from `listen` for port 0).
pub async fn serve(
    listen: SocketAddr,
    target: crate::store::Target,
) -> Result<SocketAddr, MetricsError> {
    let store = tokio::task::spawn_blocking(move || Store::connect_read_only(&target))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
    let store = Handle::new(store);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| MetricsError::Bind {
            addr: listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| MetricsError::Bind {
        addr: listen,
        source,
    })?;
    let app = axum::Router::new()
        .route("/metrics", get(scrape))
        .with_state(store);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    info!(address = %bound, "metrics at http://{bound}/metrics");
    Ok(bound)
}

async fn scrape(axum::extract::State(store): axum::extract::State<Handle>) -> Response {
    match store.call(|s| s.metrics_snapshot()).await {
        Ok(snapshot) => (
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            render(snapshot, Utc::now()),
        )
            .into_response(),
        Err(e) => {
            warn!(error = %e, "metrics: cannot read the store");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the store: {e}\n"),
            )
                .into_response()
        }
    }
}

/// The exposition of one snapshot, `now` being the time the token gauges count from.
pub fn render(snapshot: MetricsSnapshot, now: DateTime<Utc>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { snapshot, now }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// One scrape's values, encoded by `prometheus-client` as it walks the registry.
#[derive(Debug)]
struct Scrape {
    snapshot: MetricsSnapshot,
    now: DateTime<Utc>,
}

/// Counts keyed by label text, with a zero for every spelling the enum knows, so a series
/// exists before its first event (a rate over it needs the zero).
fn with_zeros<'a>(
    known: impl IntoIterator<Item = &'a str>,
    counted: &[(String, u64)],
) -> std::collections::BTreeMap<String, u64> {
    let mut m: std::collections::BTreeMap<String, u64> =
        known.into_iter().map(|k| (k.to_string(), 0)).collect();
    for (k, n) in counted {
        *m.entry(k.clone()).or_default() += n;
    }
    m
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = &self.snapshot;

        // Holds apply to scheduled posts only: those are the combinations with a zero.
        let mut posts = std::collections::BTreeMap::<(String, String), u64>::new();
        for st in PostState::ALL {
            posts.insert((st.as_str().into(), String::new()), 0);
        }
        for r in HoldReason::ALL {
            posts.insert((PostState::Scheduled.as_str().into(), r.as_str().into()), 0);
        }
        for (st, r, n) in &s.posts {
            *posts.entry((st.clone(), r.clone())).or_default() += n;
        }
        let mut m = e.encode_descriptor(
            "lipost_posts",
            "Posts per state, and why a scheduled post is held (hold_reason is empty when it is not)",
            None,
            MetricType::Gauge,
        )?;
        for ((state, hold), n) in &posts {
            let labels = [("state", state.as_str()), ("hold_reason", hold.as_str())];
            m.encode_family(&labels)?.encode_gauge(n)?;
        }

        let outcomes = AttemptOutcome::ALL
            .iter()
            .filter(|o| **o != AttemptOutcome::Pending)
            .map(|o| o.as_str());
        let mut m = e.encode_descriptor(
            "lipost_attempts",
            "Settled tries to publish, per outcome",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in with_zeros(outcomes, &s.attempts) {
            m.encode_family(&[("outcome", outcome.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }

        // The encoder takes per-bucket counts and adds them up; the store gave cumulative
        // ones.
        let mut buckets = Vec::with_capacity(LATENESS_BUCKETS.len() + 1);
        let mut below = 0;
        for (bound, cumulative) in LATENESS_BUCKETS.iter().zip(&s.lateness_buckets) {
            buckets.push((*bound, cumulative.saturating_sub(below)));
            below = (*cumulative).max(below);
        }
        buckets.push((f64::INFINITY, s.lateness_count.saturating_sub(below)));
        let mut m = e.encode_descriptor(
            "lipost_publish_lateness",
            "Published posts: the time they were recorded published minus their due time",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(s.lateness_sum, s.lateness_count, &buckets, None)?;

        let mut m = e.encode_descriptor(
            "lipost_token_days_left",
            "Days until a member account's token expires (negative: expired)",
            None,
            MetricType::Gauge,
        )?;
        for (account, access, refresh) in &s.tokens {
            let days = |t: &DateTime<Utc>| (*t - self.now).num_seconds() as f64 / 86_400.0;
            let mut one = |token: &str, left: f64| {
                m.encode_family(&[("account", account.as_str()), ("token", token)])?
                    .encode_gauge(&left)
            };
            one("access", days(access))?;
            if let Some(r) = refresh {
                one("refresh", days(r))?;
            }
        }

        for (name, help, n) in [
            (
                "lipost_notifications_pending",
                "Notification deliveries (event and sink) not yet received",
                s.notifications_pending,
            ),
            (
                "lipost_notifications_failed",
                "Notification deliveries given up on",
                s.notifications_failed,
            ),
            (
                "lipost_posts_in_doubt",
                "Waiting posts whose last try may have reached LinkedIn, being resolved",
                s.in_doubt,
            ),
        ] {
            e.encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&n)?;
        }

        let reasons = DeadReason::ALL.iter().map(|r| r.as_str());
        let mut m = e.encode_descriptor(
            "lipost_dead_letters_open",
            "Dead posts a person has not requeued, per dead-letter reason",
            None,
            MetricType::Gauge,
        )?;
        for (reason, n) in with_zeros(reasons, &s.dead_letters_open) {
            m.encode_family(&[("reason", reason.as_str())])?
                .encode_gauge(&n)?;
        }

        let mut m = e.encode_descriptor(
            "lipost_build_info",
            "The running lipost; always 1",
            None,
            MetricType::Gauge,
        )?;
        m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?
            .encode_gauge(&1u64)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_renders_with_zeros_and_cumulative_buckets() {
        let now = Utc::now();
        let snapshot = MetricsSnapshot {
            posts: vec![("scheduled".into(), "needs_reauth".into(), 2)],
            attempts: vec![("published".into(), 3)],
            lateness_count: 3,
            lateness_sum: 4.5,
            // Two within 0.5 s, one at 4 s.
            lateness_buckets: LATENESS_BUCKETS
                .iter()
                .map(|b| {
                    if *b < 0.5 {
                        0
                    } else if *b < 4.0 {
                        2
                    } else {
                        3
                    }
                })
                .collect(),
            tokens: vec![("me".into(), now + chrono::Duration::days(30), None)],
            ..MetricsSnapshot::default()
        };
        let text = render(snapshot, now);
        for line in [
            "lipost_posts{state=\"scheduled\",hold_reason=\"needs_reauth\"} 2",
            "lipost_posts{state=\"dead\",hold_reason=\"\"} 0",
            "lipost_attempts_total{outcome=\"published\"} 3",
            "lipost_attempts_total{outcome=\"rate_limited\"} 0",
            "lipost_publish_lateness_seconds_bucket{le=\"0.25\"} 0",
            "lipost_publish_lateness_seconds_bucket{le=\"0.5\"} 2",
            "lipost_publish_lateness_seconds_bucket{le=\"5.0\"} 3",
            "lipost_publish_lateness_seconds_bucket{le=\"+Inf\"} 3",
            "lipost_publish_lateness_seconds_count 3",
            "lipost_token_days_left{account=\"me\",token=\"access\"} 30.0",
            "lipost_dead_letters_open{reason=\"in_doubt\"} 0",
            "lipost_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("token=\"refresh\""), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
