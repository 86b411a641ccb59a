//! The engine's metrics, rendered in Prometheus' text format for the admin
//! endpoint's `/metrics`.
//!
//! Built on the `metrics` crate's handles (atomics) and
//! `metrics-exporter-prometheus`'s recorder, one recorder per [`Engine`]
//! rather than a process-wide one: tests run several servers in one process,
//! and each must count only its own queries. Every handle is registered once
//! — at start, or when a source is attached — and kept here, so recording is
//! an atomic add on the query path: no registry lookup, no lock. Per-source
//! handles sit in a map that is swapped whole when a source is attached and
//! read without a lock ([`ArcSwap`]).
//!
//! What is read rather than counted (connection pools, the memory pool,
//! spill files, background jobs' progress) is set at scrape time ([`Scraped`], read by
//! `Engine::render_metrics` in [`crate::engine::scrape`]).
//! No label ever holds SQL text, a URL or a secret: only outcomes, SQLSTATE
//! classes and source names.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use koios_connector::PoolStatus;

/// Upper bounds of the query duration histogram's buckets, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// SQLSTATE class characters: `0-9A-Z`, two of them.
const CLASS_CHARS: usize = 36;

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// How a query ended, for `koios_queries_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Cancelled,
}

/// One source's handles.
pub struct SourceMetrics {
    pub remote_statements: Counter,
    pub rows_received: Counter,
    pub errors: Counter,
    pub latency: Gauge,
    pool_in_use: Gauge,
    pool_idle: Gauge,
}

/// Every metric of one engine.
pub struct EngineMetrics {
    recorder: PrometheusRecorder,
    connections: Gauge,
    connections_total: Counter,
    queries_ok: Counter,
    queries_error: Counter,
    queries_cancelled: Counter,
    query_duration: Histogram,
    rows_sent: Counter,
    bytes_sent: Counter,
    /// `koios_errors_total{class}`, made at the first error of each class
    /// (then read lock-free); indexed by [`class_index`].
    errors: Box<[OnceLock<Counter>]>,
    memory_reserved: Gauge,
    spilled: Gauge,
    sources: ArcSwap<HashMap<String, Arc<SourceMetrics>>>,
}

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineMetrics").finish_non_exhaustive()
    }
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineMetrics {
    pub fn new() -> EngineMetrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("koios_query_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder)
            // Only fails on empty buckets, which the constant is not.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let counter = |name: &'static str, help: &'static str, labels: Vec<Label>| {
            recorder.describe_counter(name.into(), None, help.into());
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        let gauge = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            recorder.describe_gauge(name.into(), unit, help.into());
            recorder.register_gauge(&Key::from_name(name), &METADATA)
        };
        let outcome = |value: &'static str| {
            counter(
                "koios_queries_total",
                "Statements run for clients, by outcome",
                vec![Label::new("outcome", value)],
            )
        };
        recorder.describe_histogram(
            "koios_query_duration_seconds".into(),
            Some(Unit::Seconds),
            "Time from a statement's start to its last row sent".into(),
        );
        let query_duration =
            recorder.register_histogram(&Key::from_name("koios_query_duration_seconds"), &METADATA);
        EngineMetrics {
            connections: gauge(
                "koios_client_connections",
                None,
                "Client connections open now",
            ),
            connections_total: counter(
                "koios_client_connections_accepted_total",
                "Client connections accepted",
                Vec::new(),
            ),
            queries_ok: outcome("ok"),
            queries_error: outcome("error"),
            queries_cancelled: outcome("cancelled"),
            query_duration,
            rows_sent: counter("koios_rows_sent_total", "Rows sent to clients", Vec::new()),
            bytes_sent: counter(
                "koios_bytes_sent_total",
                "Bytes of row data sent to clients",
                Vec::new(),
            ),
            errors: (0..CLASS_CHARS * CLASS_CHARS)
                .map(|_| OnceLock::new())
                .collect(),
            memory_reserved: gauge(
                "koios_memory_reserved_bytes",
                Some(Unit::Bytes),
                "Bytes reserved in the query memory pool now",
            ),
            spilled: gauge(
                "koios_spilled_bytes",
                Some(Unit::Bytes),
                "Bytes of query data spilled to disk now",
            ),
            sources: ArcSwap::from_pointee(HashMap::new()),
            recorder,
        }
    }

    /// A client connected; the returned guard counts it until dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.increment(1.0);
        self.connections_total.increment(1);
        ConnectionGuard(Arc::clone(self))
    }

    /// A statement ended: its outcome, how long it took, and (for an error)
    /// its SQLSTATE.
    pub fn query(&self, outcome: Outcome, seconds: f64, sqlstate: Option<&str>) {
        match outcome {
            Outcome::Ok => self.queries_ok.increment(1),
            Outcome::Error => self.queries_error.increment(1),
            Outcome::Cancelled => self.queries_cancelled.increment(1),
        }
        self.query_duration.record(seconds);
        if let Some(code) = sqlstate {
            self.error(code);
        }
    }

    /// Rows and their bytes sent to a client.
    pub fn sent(&self, rows: u64, bytes: u64) {
        self.rows_sent.increment(rows);
        self.bytes_sent.increment(bytes);
    }

    /// An error of SQLSTATE `code` sent to a client, counted by its class.
    pub fn error(&self, code: &str) {
        let Some(index) = class_index(code) else {
            return;
        };
        let Some(slot) = self.errors.get(index) else {
            return;
        };
        slot.get_or_init(|| {
            self.recorder.describe_counter(
                "koios_errors_total".into(),
                None,
                "Errors sent to clients, by SQLSTATE class".into(),
            );
            let class = code[..2].to_string();
            self.recorder.register_counter(
                &Key::from_parts("koios_errors_total", vec![Label::new("class", class)]),
                &METADATA,
            )
        })
        .increment(1);
    }

    /// Makes `source`'s handles (when it is attached); kept if it already
    /// has them, so a re-attached source keeps counting.
    pub fn add_source(&self, source: &str) {
        if self.sources.load().contains_key(source) {
            return;
        }
        let counter = |name: &'static str, help: &'static str| {
            self.recorder
                .describe_counter(name.into(), None, help.into());
            self.recorder
                .register_counter(&source_key(name, source), &METADATA)
        };
        let gauge = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            self.recorder.describe_gauge(name.into(), unit, help.into());
            self.recorder
                .register_gauge(&source_key(name, source), &METADATA)
        };
        let handles = Arc::new(SourceMetrics {
            remote_statements: counter(
                "koios_source_remote_statements_total",
                "Statements (scans, pushed-down queries) sent to a source",
            ),
            rows_received: counter(
                "koios_source_rows_received_total",
                "Rows received from a source",
            ),
            errors: counter(
                "koios_source_errors_total",
                "Failed connections and statements of a source",
            ),
            latency: gauge(
                "koios_source_latency_seconds",
                Some(Unit::Seconds),
                "Round trip of a source's last health check",
            ),
            pool_in_use: gauge(
                "koios_source_pool_connections_in_use",
                None,
                "Pooled connections to a source in use now",
            ),
            pool_idle: gauge(
                "koios_source_pool_connections_idle",
                None,
                "Pooled connections to a source idle now",
            ),
        });
        // Attaches are rare and may race: retry on a concurrent swap.
        self.sources.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.entry(source.to_string())
                .or_insert_with(|| Arc::clone(&handles));
            next
        });
    }

    /// `source`'s handles, if it was ever attached.
    pub fn source(&self, source: &str) -> Option<Arc<SourceMetrics>> {
        self.sources.load().get(source).cloned()
    }

    /// The round trip of `source`'s last health check.
    pub fn source_latency(&self, source: &str, seconds: f64) {
        if let Some(handles) = self.source(source) {
            handles.latency.set(seconds);
        }
    }

    /// Keeps the histogram's unread samples bounded when nobody scrapes:
    /// the recorder holds them until a render or an upkeep drains them.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        let metrics: Weak<EngineMetrics> = Arc::downgrade(self);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    match metrics.upgrade() {
                        Some(metrics) => metrics.recorder.handle().run_upkeep(),
                        None => return,
                    }
                }
            });
        }
    }
}

/// Counts one open client connection while alive.
pub struct ConnectionGuard(Arc<EngineMetrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.decrement(1.0);
    }
}

fn source_key(name: &'static str, source: &str) -> Key {
    Key::from_parts(name, vec![Label::new("source", source.to_string())])
}

/// Index of a SQLSTATE's class (its first two characters, `0-9A-Z`).
fn class_index(code: &str) -> Option<usize> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some((c - b'0') as usize),
        b'A'..=b'Z' => Some((c - b'A') as usize + 10),
        _ => None,
    };
    match code.as_bytes() {
        [a, b, ..] => Some(digit(*a)? * CLASS_CHARS + digit(*b)?),
        _ => None,
    }
}

/// Values read at scrape time rather than counted.
pub struct Scraped {
    /// Bytes reserved in the query memory pool.
    pub memory_reserved: usize,
    /// Bytes of spill files on disk.
    pub spilled: u64,
    /// Each source's pool, if it has one.
    pub pools: Vec<(String, PoolStatus)>,
    /// Every background job.
    pub jobs: Vec<ScrapedJob>,
}

/// A background job as `/metrics` shows it (gauges labelled with its id
/// and kind).
pub struct ScrapedJob {
    pub id: i64,
    pub kind: String,
    pub running: bool,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub bytes: i64,
}

impl EngineMetrics {
    /// Every metric in Prometheus' text format, with `scraped` set first.
    pub fn render(&self, scraped: &Scraped) -> String {
        self.memory_reserved.set(scraped.memory_reserved as f64);
        self.spilled.set(scraped.spilled as f64);
        for (name, pool) in &scraped.pools {
            if let Some(handles) = self.source(name) {
                handles.pool_in_use.set(pool.in_use as f64);
                handles.pool_idle.set(pool.idle as f64);
            }
        }
        for job in &scraped.jobs {
            self.job_gauge(job, "koios_job_rows_done", "Rows a background job has done")
                .set(job.rows_done as f64);
            if let Some(total) = job.rows_total {
                self.job_gauge(
                    job,
                    "koios_job_rows_total",
                    "Rows a background job has in all",
                )
                .set(total as f64);
            }
            self.job_gauge(job, "koios_job_bytes", "Bytes a background job has moved")
                .set(job.bytes as f64);
            self.job_gauge(
                job,
                "koios_job_running",
                "1 while a background job runs, 0 when paused or finished",
            )
            .set(if job.running { 1.0 } else { 0.0 });
        }
        self.recorder.handle().render()
    }

    fn job_gauge(&self, job: &ScrapedJob, name: &'static str, help: &'static str) -> Gauge {
        self.recorder.describe_gauge(name.into(), None, help.into());
        let labels = vec![
            Label::new("job", job.id.to_string()),
            Label::new("kind", job.kind.clone()),
        ];
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_in_prometheus_text() {
        let metrics = Arc::new(EngineMetrics::new());
        let guard = metrics.connection();
        metrics.query(Outcome::Ok, 0.002, None);
        metrics.query(Outcome::Error, 0.5, Some("42P01"));
        metrics.query(Outcome::Cancelled, 1.0, Some("57014"));
        metrics.sent(3, 120);
        metrics.add_source("pg");
        metrics.add_source("pg");
        metrics.source_latency("pg", 0.25);
        if let Some(pg) = metrics.source("pg") {
            pg.remote_statements.increment(2);
        }
        let text = metrics.render(&Scraped {
            memory_reserved: 0,
            spilled: 0,
            pools: Vec::new(),
            jobs: vec![ScrapedJob {
                id: 7,
                kind: "add mirror".into(),
                running: true,
                rows_done: 50_000,
                rows_total: Some(200_000),
                bytes: 1024,
            }],
        });
        for line in [
            "koios_job_rows_done{job=\"7\",kind=\"add mirror\"} 50000",
            "koios_job_rows_total{job=\"7\",kind=\"add mirror\"} 200000",
            "koios_job_running{job=\"7\",kind=\"add mirror\"} 1",
            "koios_client_connections 1",
            "koios_client_connections_accepted_total 1",
            "koios_queries_total{outcome=\"ok\"} 1",
            "koios_queries_total{outcome=\"error\"} 1",
            "koios_queries_total{outcome=\"cancelled\"} 1",
            "koios_query_duration_seconds_count 3",
            "koios_query_duration_seconds_bucket{le=\"0.0025\"} 1",
            "koios_rows_sent_total 3",
            "koios_bytes_sent_total 120",
            "koios_errors_total{class=\"42\"} 1",
            "koios_errors_total{class=\"57\"} 1",
            "koios_source_remote_statements_total{source=\"pg\"} 2",
            "koios_source_latency_seconds{source=\"pg\"} 0.25",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
        drop(guard);
        let text = metrics.recorder.handle().render();
        assert!(
            text.lines().any(|l| l == "koios_client_connections 0"),
            "{text}"
        );
        assert_eq!(class_index("0A000"), Some(10));
        assert_eq!(class_index("x"), None);
        assert_eq!(class_index("a1"), None);
    }
}
