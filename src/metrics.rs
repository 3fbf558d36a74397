//! Prometheus metrics, one registry per server (so tests can run many servers
//! in one process). Gauges that mirror the database are refreshed at scrape.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    signature_rejections: IntCounter,
    decisions: IntCounterVec,
    requests_created: IntCounter,
    refusals: IntCounterVec,
    deliveries: IntCounterVec,
    slack_rate_limited: IntCounter,
    usergroup_reads: IntCounterVec,
    delivery_latency: Histogram,
    pub outbox_depth: IntGaugeVec,
    pub requests_by_status: IntGaugeVec,
    pub up: IntGauge,
}

const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const DELIVERY_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 1800.0];

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new_custom(Some("accessbot".into()), None).unwrap_or_default();
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap_or_else(|e| unreachable!("metric: {e}"));
        let _ = r.register(Box::new(http_duration.clone()));
        let delivery_latency = Histogram::with_opts(
            HistogramOpts::new("outbox_delivery_latency_seconds", "Time from an outbox row's creation to its delivery")
                .buckets(DELIVERY_BUCKETS.to_vec()),
        )
        .unwrap_or_else(|e| unreachable!("metric: {e}"));
        let _ = r.register(Box::new(delivery_latency.clone()));
        let up = IntGauge::new("up", "1 while the server runs").unwrap_or_else(|e| unreachable!("metric: {e}"));
        let _ = r.register(Box::new(up.clone()));
        up.set(1);
        Metrics {
            http_requests: counter_vec(
                &r,
                "http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            http_duration,
            signature_rejections: counter(
                &r,
                "slack_signature_rejections_total",
                "Slack requests refused for a bad signature",
            ),
            decisions: counter_vec(&r, "decisions_total", "Approver decisions recorded", &["decision"]),
            requests_created: counter(&r, "requests_created_total", "Access requests created"),
            refusals: counter_vec(
                &r,
                "refusals_total",
                "Refused actions (security.request.blocked), logged or over the per-actor log budget",
                &["action"],
            ),
            deliveries: counter_vec(
                &r,
                "outbox_deliveries_total",
                "Outbox delivery attempts by kind and result",
                &["kind", "result"],
            ),
            slack_rate_limited: counter(&r, "slack_rate_limited_total", "Deliveries Slack rate limited: its HTTP 429 answers, and calls held back while a 429's Retry-After runs"),
            usergroup_reads: counter_vec(
                &r,
                "usergroup_reads_total",
                "Slack user group reads (usergroups.users.list) by result",
                &["result"],
            ),
            delivery_latency,
            outbox_depth: gauge_vec(&r, "outbox_rows", "Outbox rows by status (pending = depth)", &["status"]),
            requests_by_status: gauge_vec(&r, "requests", "Access requests by status", &["status"]),
            up,
            registry: r,
        }
    }
}

impl Metrics {
    pub fn http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.http_duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    pub fn signature_rejected(&self) {
        self.signature_rejections.inc();
    }

    pub fn signature_rejections(&self) -> u64 {
        self.signature_rejections.get()
    }

    pub fn decision(&self, decision: &str) {
        self.decisions.with_label_values(&[decision]).inc();
    }

    pub fn request_created(&self) {
        self.requests_created.inc();
    }

    pub fn refused(&self, action: &str) {
        self.refusals.with_label_values(&[action]).inc();
    }

    pub fn delivery(&self, kind: &str, result: &str) {
        self.deliveries.with_label_values(&[kind, result]).inc();
    }

    pub fn rate_limited(&self) {
        self.slack_rate_limited.inc();
    }

    /// One refresh's reads of Slack user groups: unchanged, changed, failed (last members kept).
    pub fn usergroups(&self, unchanged: usize, changed: usize, failed: usize) {
        for (result, n) in [("unchanged", unchanged), ("changed", changed), ("failed", failed)] {
            self.usergroup_reads.with_label_values(&[result]).inc_by(n as u64);
        }
    }

    pub fn delivered_after(&self, latency: Duration) {
        self.delivery_latency.observe(latency.as_secs_f64());
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
