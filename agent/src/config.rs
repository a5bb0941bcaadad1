//! The agent's configuration: flags, each also an environment variable.

use clap::Parser;
use drover_shared::protocol::DEFAULT_POOL;
use std::path::PathBuf;

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_CONCURRENCY: u32 = 4;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "drover-agent",
    version,
    about = "Drover agent: runs jobs of one pool with ansible-runner"
)]
pub struct Config {
    /// NATS server (with JetStream) shared with the coordinator.
    #[arg(long, env = "DROVER_NATS_URL", default_value = DEFAULT_NATS_URL)]
    pub nats_url: String,
    /// Pool whose jobs this agent takes (servers name their pool).
    #[arg(long, env = "DROVER_POOL", default_value = DEFAULT_POOL)]
    pub pool: String,
    /// Where each job's ansible-runner private data dir is made.
    #[arg(long, env = "DROVER_WORK_DIR", default_value = "./drover-work")]
    pub work_dir: PathBuf,
    /// Most jobs run at once.
    #[arg(long, env = "DROVER_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: u32,
    /// Directory of SSH private keys; servers' `ssh_key_path` is resolved inside it.
    #[arg(long, env = "DROVER_KEY_DIR", default_value = "./drover-keys")]
    pub key_dir: PathBuf,
    /// The ansible-runner executable (its directory also provides ansible-playbook).
    #[arg(long, env = "DROVER_ANSIBLE_RUNNER", default_value = "ansible-runner")]
    pub ansible_runner: PathBuf,
    /// Unique id of this agent; defaults to `<hostname>-<pid>`.
    #[arg(long, env = "DROVER_AGENT_ID")]
    pub agent_id: Option<String>,
    /// Keep each job's private data dir (artifacts) instead of removing it.
    #[arg(long, env = "DROVER_KEEP_WORK_DIRS")]
    pub keep_work_dirs: bool,
    /// Verify SSH host keys (off by default, as in AWX).
    #[arg(long, env = "DROVER_CHECK_HOST_KEYS")]
    pub check_host_keys: bool,
    /// Labels announced in heartbeats (e.g. `dc=eu`).
    #[arg(long = "label", env = "DROVER_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Seconds between heartbeats; keep it well under the coordinator's
    /// `--agent-lease-secs` (20 by default).
    #[arg(long, env = "DROVER_HEARTBEAT_SECS", default_value_t = 5)]
    pub heartbeat_secs: u64,
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_secs == 0 {
            return Err("--heartbeat-secs must be at least 1".into());
        }
        if !drover_shared::protocol::is_valid_pool_name(&self.pool) {
            return Err(format!(
                "--pool '{}' is not a valid pool name; use letters, digits, '-' or '_'",
                self.pool
            ));
        }
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if let Some(id) = &self.agent_id
            && !drover_shared::protocol::is_valid_pool_name(id)
        {
            return Err(format!(
                "--agent-id '{id}' must use only letters, digits, '-' or '_'"
            ));
        }
        Ok(())
    }

    pub fn agent_id(&self) -> String {
        self.agent_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().replace(|c: char| !c.is_ascii_alphanumeric(), "-"))
                .unwrap_or_else(|_| "agent".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// The runner program as a path: found on PATH when given as a bare name.
    pub fn runner_program(&self) -> PathBuf {
        if self.ansible_runner.components().count() > 1 {
            return self.ansible_runner.clone();
        }
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join(&self.ansible_runner))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| self.ansible_runner.clone())
    }
}
