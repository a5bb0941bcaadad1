//! The coordinator's configuration: flags, each also an environment variable.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_DATA_DIR: &str = "./drover-data";
/// A week of logs and events kept in the `DROVER_JOBS` stream for replay.
pub const DEFAULT_JOBS_MAX_AGE_HOURS: u64 = 168;
/// Seconds an agent may stay silent before its jobs are taken from it: four missed
/// heartbeats at the agents' default of one every 5 s.
pub const DEFAULT_AGENT_LEASE_SECS: u64 = 20;
/// Seconds between monitoring rounds (gauges of `/metrics`, built-in alerts).
pub const DEFAULT_MONITOR_INTERVAL_SECS: u64 = 10;
/// Alert when more than half of the recent jobs failed...
pub const DEFAULT_ALERT_FAILURE_RATE: f64 = 0.5;
/// ...once at least this many finished.
pub const DEFAULT_ALERT_FAILURE_MIN_JOBS: u64 = 5;
/// "Recent": jobs created in the last 15 minutes.
pub const DEFAULT_ALERT_WINDOW_SECS: u64 = 900;
/// A backlog alerts if it grew over the last 5 minutes.
pub const DEFAULT_ALERT_BACKLOG_WINDOW_SECS: u64 = 300;
pub const DEFAULT_ALERT_CONSECUTIVE_FAILURES: u64 = 3;
/// A job is long-running past three times its playbook's mean duration...
pub const DEFAULT_ALERT_LONG_RUNNING_FACTOR: f64 = 3.0;
/// ...and never before five minutes.
pub const DEFAULT_ALERT_LONG_RUNNING_MIN_SECS: u64 = 300;
pub const DEFAULT_ALERT_BACKLOG_JOBS: u64 = 20;
/// Wait after a webhook delivery's first failure; doubles after each further one
/// (1, 2, 4, 8, 16 s with the default attempts).
pub const DEFAULT_WEBHOOK_RETRY_BASE_MS: u64 = 1000;
/// Attempts of a webhook delivery before it is marked failed.
pub const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u32 = 6;
/// Time a webhook receiver has to answer one attempt.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 5000;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "drover-coordinator",
    version,
    about = "Drover coordinator: HTTP API, job store and NATS dispatch"
)]
pub struct Config {
    /// Directory of the redb store.
    #[arg(long, env = "DROVER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address the HTTP API listens on.
    #[arg(long, env = "DROVER_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// NATS server (with JetStream) shared with the agents.
    #[arg(long, env = "DROVER_NATS_URL", default_value = DEFAULT_NATS_URL)]
    pub nats_url: String,
    /// Ensures an admin user `admin` that logs in with this API token.
    #[arg(long, env = "DROVER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Hours the `DROVER_JOBS` stream keeps logs, events and statuses for replay.
    #[arg(long, env = "DROVER_JOBS_MAX_AGE_HOURS", default_value_t = DEFAULT_JOBS_MAX_AGE_HOURS)]
    pub jobs_max_age_hours: u64,
    /// Seconds without a heartbeat after which an agent is lost: its running jobs fail
    /// ("agent <id> lost while running") and its claimed ones go back to the pool.
    #[arg(long, env = "DROVER_AGENT_LEASE_SECS", default_value_t = DEFAULT_AGENT_LEASE_SECS)]
    pub agent_lease_secs: u64,
    /// Directory of playbook files: a playbook may be registered by a `file_path`
    /// relative to it instead of its `content`.
    #[arg(long, env = "DROVER_PLAYBOOK_DIR")]
    pub playbook_dir: Option<PathBuf>,
    /// Seconds between monitoring rounds: `/metrics` gauges and the built-in alerts.
    #[arg(long, env = "DROVER_MONITOR_INTERVAL_SECS", default_value_t = DEFAULT_MONITOR_INTERVAL_SECS)]
    pub monitor_interval_secs: u64,
    /// Alert when this fraction of the jobs created in the alert window failed.
    #[arg(long, env = "DROVER_ALERT_FAILURE_RATE", default_value_t = DEFAULT_ALERT_FAILURE_RATE)]
    pub alert_failure_rate: f64,
    /// Finished jobs in the window before the failure rate can alert.
    #[arg(long, env = "DROVER_ALERT_FAILURE_MIN_JOBS", default_value_t = DEFAULT_ALERT_FAILURE_MIN_JOBS)]
    pub alert_failure_min_jobs: u64,
    /// Seconds of the failure-rate window: it counts the jobs created in it.
    #[arg(long, env = "DROVER_ALERT_WINDOW_SECS", default_value_t = DEFAULT_ALERT_WINDOW_SECS)]
    pub alert_window_secs: u64,
    /// Alert when a playbook failed this many times in a row.
    #[arg(long, env = "DROVER_ALERT_CONSECUTIVE_FAILURES", default_value_t = DEFAULT_ALERT_CONSECUTIVE_FAILURES)]
    pub alert_consecutive_failures: u64,
    /// A job is long-running past this many times its playbook's mean duration...
    #[arg(long, env = "DROVER_ALERT_LONG_RUNNING_FACTOR", default_value_t = DEFAULT_ALERT_LONG_RUNNING_FACTOR)]
    pub alert_long_running_factor: f64,
    /// ...and never before this many seconds.
    #[arg(long, env = "DROVER_ALERT_LONG_RUNNING_MIN_SECS", default_value_t = DEFAULT_ALERT_LONG_RUNNING_MIN_SECS)]
    pub alert_long_running_min_secs: u64,
    /// A pool's backlog alerts from this many pending jobs, if it grew over the backlog
    /// window.
    #[arg(long, env = "DROVER_ALERT_BACKLOG_JOBS", default_value_t = DEFAULT_ALERT_BACKLOG_JOBS)]
    pub alert_backlog_jobs: u64,
    /// Seconds over which a backlog must have grown to alert.
    #[arg(long, env = "DROVER_ALERT_BACKLOG_WINDOW_SECS", default_value_t = DEFAULT_ALERT_BACKLOG_WINDOW_SECS)]
    pub alert_backlog_window_secs: u64,
    /// Milliseconds to wait after a webhook delivery's first failed attempt; the wait
    /// doubles after each further failure.
    #[arg(long, env = "DROVER_WEBHOOK_RETRY_BASE_MS", default_value_t = DEFAULT_WEBHOOK_RETRY_BASE_MS)]
    pub webhook_retry_base_ms: u64,
    /// Attempts of a webhook delivery (the first one included) before it is failed.
    #[arg(long, env = "DROVER_WEBHOOK_MAX_ATTEMPTS", default_value_t = DEFAULT_WEBHOOK_MAX_ATTEMPTS)]
    pub webhook_max_attempts: u32,
    /// Milliseconds a webhook receiver has to answer one attempt (connect to last byte).
    #[arg(long, env = "DROVER_WEBHOOK_TIMEOUT_MS", default_value_t = DEFAULT_WEBHOOK_TIMEOUT_MS)]
    pub webhook_timeout_ms: u64,
}

impl Config {
    /// The built-in alerts' thresholds.
    pub fn thresholds(&self) -> crate::alerts::Thresholds {
        crate::alerts::Thresholds {
            failure_rate: self.alert_failure_rate,
            failure_min_jobs: self.alert_failure_min_jobs,
            window: chrono::Duration::seconds(self.alert_window_secs as i64),
            consecutive_failures: self.alert_consecutive_failures,
            long_running_factor: self.alert_long_running_factor,
            long_running_min_secs: self.alert_long_running_min_secs as f64,
            backlog_jobs: self.alert_backlog_jobs,
            backlog_window: chrono::Duration::seconds(self.alert_backlog_window_secs as i64),
            no_agent_grace_secs: self.agent_lease_secs as f64,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            return Err(format!(
                "--admin-token is {} characters; use at least 16",
                token.len()
            ));
        }
        if !self.nats_url.contains("://") && !self.nats_url.contains(':') {
            return Err(format!(
                "--nats-url '{}' is not a URL; use e.g. {DEFAULT_NATS_URL}",
                self.nats_url
            ));
        }
        if self.agent_lease_secs == 0 {
            return Err("--agent-lease-secs must be at least 1".into());
        }
        if let Some(dir) = &self.playbook_dir
            && !dir.is_dir()
        {
            return Err(format!(
                "--playbook-dir '{}' is not a directory; create it or leave the flag out",
                dir.display()
            ));
        }
        if self.monitor_interval_secs == 0 {
            return Err("--monitor-interval-secs must be at least 1".into());
        }
        if !(self.alert_failure_rate > 0.0 && self.alert_failure_rate < 1.0) {
            return Err(format!(
                "--alert-failure-rate {} is not a fraction; use e.g. 0.5 for half",
                self.alert_failure_rate
            ));
        }
        if self.alert_long_running_factor.is_nan() || self.alert_long_running_factor < 1.0 {
            return Err(format!(
                "--alert-long-running-factor {} is below 1; use e.g. 3",
                self.alert_long_running_factor
            ));
        }
        if self.alert_window_secs == 0
            || self.alert_backlog_window_secs == 0
            || self.alert_consecutive_failures == 0
        {
            return Err("--alert-window-secs, --alert-backlog-window-secs and --alert-consecutive-failures must be at least 1".into());
        }
        if self.webhook_retry_base_ms == 0 {
            return Err("--webhook-retry-base-ms must be at least 1".into());
        }
        if !(1..=20).contains(&self.webhook_max_attempts) {
            return Err(format!(
                "--webhook-max-attempts is {}; use 1 to 20",
                self.webhook_max_attempts
            ));
        }
        if self.webhook_timeout_ms == 0 {
            return Err("--webhook-timeout-ms must be at least 1".into());
        }
        if self.jobs_max_age_hours == 0 {
            return Err("--jobs-max-age-hours must be at least 1".into());
        }
        Ok(())
    }
}
