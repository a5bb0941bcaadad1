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
