//! Prometheus metrics (`GET /metrics`, OpenMetrics text from `prometheus-client`).
//!
//! Two kinds live here. Counters and histograms count what happened in this process:
//! jobs finishing, their durations, dispatch latency, log lines ingested. Gauges describe
//! the present and are replaced as a whole after each monitoring round ([`Metrics::set`])
//! from the store and the agents' heartbeats, so a series for a pool or playbook that is
//! gone disappears instead of freezing at its last value.
//!
//! Every metric name is a constant below; `dashboards/` uses the same names, and a test
//! checks that every name the dashboard and the alert rules use is exported.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

pub const JOBS: &str = "drover_jobs";
/// Registered without its `_total` suffix, which prometheus-client adds to counters.
pub const JOBS_FINISHED: &str = "drover_jobs_finished";
pub const JOB_DURATION: &str = "drover_job_duration_seconds";
pub const DISPATCH_LATENCY: &str = "drover_dispatch_latency_seconds";
pub const PENDING_JOBS: &str = "drover_pending_jobs";
pub const RUNNING_JOBS: &str = "drover_running_jobs";
pub const LONGEST_RUNNING: &str = "drover_running_job_longest_seconds";
pub const EXPECTED_DURATION: &str = "drover_playbook_expected_duration_seconds";
pub const CONSECUTIVE_FAILURES: &str = "drover_playbook_consecutive_failures";
pub const LOG_LINES: &str = "drover_log_lines_ingested";
pub const INGEST_LAG: &str = "drover_ingest_lag_seconds";
pub const AGENTS_UP: &str = "drover_agents_up";
pub const AGENT_SLOTS: &str = "drover_agent_slots";
pub const AGENT_SLOTS_BUSY: &str = "drover_agent_slots_busy";
pub const NATS_CONNECTED: &str = "drover_nats_connected";
pub const ALERTS_FIRING: &str = "drover_alerts_firing";

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlaybookLabel {
    pub playbook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    pub playbook: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// The present, as one monitoring round saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    pub jobs_by_status: Vec<(String, i64)>,
    pub pending_by_pool: Vec<(String, i64)>,
    pub running_by_pool: Vec<(String, i64)>,
    pub longest_running: Vec<(String, f64)>,
    pub expected_duration: Vec<(String, f64)>,
    pub consecutive_failures: Vec<(String, i64)>,
    /// Per pool: agents up, slots, busy slots.
    pub agents: Vec<(String, [i64; 3])>,
    pub nats_connected: bool,
    pub alerts_firing: Vec<(String, i64)>,
}

/// Job durations: 0.5 s to about 70 minutes.
fn duration_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 14))
}

/// From submission to the run's start: 1 ms to about 33 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    /// Held while gauges are replaced and while the text is encoded, so a scrape never
    /// sees a round half-applied.
    round: Mutex<()>,
    jobs: Family<StatusLabel, Gauge>,
    finished: Family<FinishedLabels, Counter>,
    duration: Family<PlaybookLabel, Histogram>,
    dispatch_latency: Histogram,
    pending: Family<PoolLabel, Gauge>,
    running: Family<PoolLabel, Gauge>,
    longest_running: Family<PlaybookLabel, FloatGauge>,
    expected_duration: Family<PlaybookLabel, FloatGauge>,
    consecutive_failures: Family<PlaybookLabel, Gauge>,
    log_lines: Counter,
    ingest_lag: FloatGauge,
    agents_up: Family<PoolLabel, Gauge>,
    slots: Family<PoolLabel, Gauge>,
    slots_busy: Family<PoolLabel, Gauge>,
    nats_connected: Gauge,
    alerts_firing: Family<KindLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let metrics = Metrics {
            registry: Registry::default(),
            round: Mutex::new(()),
            jobs: Family::default(),
            finished: Family::default(),
            duration: Family::new_with_constructor(duration_buckets),
            dispatch_latency: latency_buckets(),
            pending: Family::default(),
            running: Family::default(),
            longest_running: Family::default(),
            expected_duration: Family::default(),
            consecutive_failures: Family::default(),
            log_lines: Counter::default(),
            ingest_lag: FloatGauge::default(),
            agents_up: Family::default(),
            slots: Family::default(),
            slots_busy: Family::default(),
            nats_connected: Gauge::default(),
            alerts_firing: Family::default(),
        };
        metrics.registered()
    }
}

impl Metrics {
    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(JOBS, "Jobs in the store by status", self.jobs.clone());
        r.register(
            JOBS_FINISHED,
            "Jobs that finished since the coordinator started, by playbook and final status",
            self.finished.clone(),
        );
        r.register(
            JOB_DURATION,
            "Run time of finished jobs (start to completion), by playbook",
            self.duration.clone(),
        );
        r.register(
            DISPATCH_LATENCY,
            "Time from a job's submission to its run starting on an agent",
            self.dispatch_latency.clone(),
        );
        r.register(PENDING_JOBS, "Pending jobs per pool", self.pending.clone());
        r.register(RUNNING_JOBS, "Running jobs per pool", self.running.clone());
        r.register(
            LONGEST_RUNNING,
            "Run time so far of the longest-running job of each playbook",
            self.longest_running.clone(),
        );
        r.register(
            EXPECTED_DURATION,
            "How long a playbook's jobs are expected to run at most (the long-running alert's threshold)",
            self.expected_duration.clone(),
        );
        r.register(
            CONSECUTIVE_FAILURES,
            "Failed jobs of each playbook submitted since its last success",
            self.consecutive_failures.clone(),
        );
        r.register(
            LOG_LINES,
            "Log lines stored by ingest",
            self.log_lines.clone(),
        );
        r.register(
            INGEST_LAG,
            "Age of the newest agent message at the moment its ingest commit finished",
            self.ingest_lag.clone(),
        );
        r.register(AGENTS_UP, "Live agents per pool", self.agents_up.clone());
        r.register(
            AGENT_SLOTS,
            "Job slots of the live agents per pool",
            self.slots.clone(),
        );
        r.register(
            AGENT_SLOTS_BUSY,
            "Busy job slots of the live agents per pool",
            self.slots_busy.clone(),
        );
        r.register(
            NATS_CONNECTED,
            "1 while the coordinator is connected to NATS",
            self.nats_connected.clone(),
        );
        r.register(
            ALERTS_FIRING,
            "Built-in alerts firing, by kind",
            self.alerts_firing.clone(),
        );
        self
    }

    pub fn job_finished(&self, playbook: &str, status: &str, duration_secs: Option<f64>) {
        self.finished
            .get_or_create(&FinishedLabels {
                playbook: playbook.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        if let Some(seconds) = duration_secs {
            self.duration
                .get_or_create(&PlaybookLabel {
                    playbook: playbook.to_owned(),
                })
                .observe(seconds);
        }
    }

    pub fn job_started(&self, latency_secs: f64) {
        self.dispatch_latency.observe(latency_secs);
    }

    pub fn lines_ingested(&self, lines: u64, lag_secs: f64) {
        self.log_lines.inc_by(lines);
        self.ingest_lag.set(lag_secs);
    }

    /// Replaces every gauge with what this round saw.
    pub fn set(&self, gauges: &Gauges) {
        let _round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        replace(&self.jobs, &gauges.jobs_by_status, |status| StatusLabel {
            status,
        });
        replace(&self.pending, &gauges.pending_by_pool, |pool| PoolLabel {
            pool,
        });
        replace(&self.running, &gauges.running_by_pool, |pool| PoolLabel {
            pool,
        });
        replace(&self.longest_running, &gauges.longest_running, |playbook| {
            PlaybookLabel { playbook }
        });
        replace(
            &self.expected_duration,
            &gauges.expected_duration,
            |playbook| PlaybookLabel { playbook },
        );
        replace(
            &self.consecutive_failures,
            &gauges.consecutive_failures,
            |playbook| PlaybookLabel { playbook },
        );
        for (i, family) in [&self.agents_up, &self.slots, &self.slots_busy]
            .into_iter()
            .enumerate()
        {
            let values: Vec<(String, i64)> = gauges
                .agents
                .iter()
                .map(|(pool, v)| (pool.clone(), v[i]))
                .collect();
            replace(family, &values, |pool| PoolLabel { pool });
        }
        self.nats_connected.set(i64::from(gauges.nats_connected));
        replace(&self.alerts_firing, &gauges.alerts_firing, |kind| {
            KindLabel { kind }
        });
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let _round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::with_capacity(8 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        text
    }
}

/// Values a gauge family can be set to.
trait Settable<V> {
    fn put(&self, value: V);
}

impl Settable<i64> for Gauge {
    fn put(&self, value: i64) {
        self.set(value);
    }
}

impl Settable<f64> for FloatGauge {
    fn put(&self, value: f64) {
        self.set(value);
    }
}

fn replace<L, G, V>(family: &Family<L, G>, values: &[(String, V)], label: impl Fn(String) -> L)
where
    L: Clone + std::hash::Hash + Eq,
    G: Default + Settable<V>,
    V: Copy,
{
    family.clear();
    for (name, value) in values {
        family.get_or_create(&label(name.clone())).put(*value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_metric_is_in_the_text() {
        let metrics = Metrics::default();
        metrics.job_finished("deploy", "success", Some(3.0));
        metrics.job_started(0.004);
        metrics.lines_ingested(10, 0.2);
        metrics.set(&Gauges {
            jobs_by_status: vec![("pending".into(), 2)],
            pending_by_pool: vec![("default".into(), 2)],
            running_by_pool: vec![("default".into(), 1)],
            longest_running: vec![("deploy".into(), 12.5)],
            expected_duration: vec![("deploy".into(), 300.0)],
            consecutive_failures: vec![("deploy".into(), 0)],
            agents: vec![("default".into(), [1, 4, 1])],
            nats_connected: true,
            alerts_firing: vec![("no_agent".into(), 0)],
        });
        let text = metrics.encode();
        for name in [
            JOBS,
            PENDING_JOBS,
            RUNNING_JOBS,
            LONGEST_RUNNING,
            EXPECTED_DURATION,
            CONSECUTIVE_FAILURES,
            INGEST_LAG,
            AGENTS_UP,
            AGENT_SLOTS,
            AGENT_SLOTS_BUSY,
            NATS_CONNECTED,
            ALERTS_FIRING,
        ] {
            assert!(
                text.contains(&format!("\n{name}{{")) || text.contains(&format!("\n{name} ")),
                "{name} missing from:\n{text}"
            );
        }
        assert!(
            text.contains("drover_jobs_finished_total{playbook=\"deploy\",status=\"success\"} 1")
        );
        assert!(text.contains("drover_job_duration_seconds_count{playbook=\"deploy\"} 1"));
        assert!(text.contains("drover_dispatch_latency_seconds_count 1"));
        assert!(text.contains("drover_log_lines_ingested_total 10"));
        assert!(text.contains("drover_agent_slots{pool=\"default\"} 4"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_round_replaces_series_that_are_gone() {
        let metrics = Metrics::default();
        let mut gauges = Gauges {
            pending_by_pool: vec![("edge-1".into(), 5), ("edge-2".into(), 1)],
            ..Gauges::default()
        };
        metrics.set(&gauges);
        assert!(
            metrics
                .encode()
                .contains("drover_pending_jobs{pool=\"edge-2\"} 1")
        );
        gauges.pending_by_pool = vec![("edge-1".into(), 6)];
        metrics.set(&gauges);
        let text = metrics.encode();
        assert!(text.contains("drover_pending_jobs{pool=\"edge-1\"} 6"));
        assert!(!text.contains("edge-2"), "{text}");
    }
}
