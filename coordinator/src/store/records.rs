//! What the store keeps, one struct per table value.

use chrono::{DateTime, Utc};
use drover_shared::protocol::{HostRecap, ResourceUsage};
use drover_shared::{Connection, JobStatus, LogLevel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Roles in increasing power: each may do everything the one before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: u64,
    pub username: String,
    pub role: Role,
    /// Argon2 PHC string; `None` for users who only log in with a token (the bootstrap
    /// admin).
    #[serde(default)]
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An API token. Only its SHA-256 is kept, so a stolen store file logs nobody in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: u64,
    pub user_id: u64,
    pub hash: [u8; 32],
    pub created_at: DateTime<Utc>,
}

/// Who asked for a job to stop, kept until the agent confirms so it can be re-sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelMark {
    pub by_user: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketRecord {
    pub id: u64,
    pub job_id: u64,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    /// What went wrong, copied from the job when the ticket was made.
    pub failure_summary: FailureSummary,
    pub created_by: u64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureSummary {
    pub status: JobStatus,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub failed_hosts: Vec<String>,
    pub playbook: String,
    pub server: String,
    pub completed_at: Option<DateTime<Utc>>,
}

/// One mutating API call, written in the same commit as the change it made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub user_id: u64,
    pub username: String,
    /// Method and route, e.g. `POST /jobs/{id}/cancel`.
    pub action: String,
    /// What it acted on, e.g. `job 42`.
    pub target: String,
    /// The request's parameters with secrets redacted.
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaybookRecord {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub content: String,
    /// Where `content` was read from, under `--playbook-dir`; `None` for inline content.
    #[serde(default)]
    pub file_path: Option<String>,
    /// Default wall-clock limit for jobs of this playbook.
    pub timeout_secs: Option<u64>,
    /// Jobs of this playbook may run while other jobs run on the same server (AWX's
    /// `allow_simultaneous`); by default a job waits for its server to be free.
    #[serde(default)]
    pub allow_simultaneous: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerRecord {
    pub id: u64,
    pub hostname: String,
    pub ip_address: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    /// Relative to the agents' `--key-dir`.
    pub ssh_key_path: Option<String>,
    /// Agents of this pool run the server's jobs.
    pub pool: String,
    pub connection: Connection,
    pub python_interpreter: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub uuid: Uuid,
    pub playbook_id: u64,
    pub server_id: u64,
    pub user_id: u64,
    pub pool: String,
    pub status: JobStatus,
    pub extra_vars: serde_json::Value,
    pub timeout_secs: Option<u64>,
    pub verbosity: u8,
    /// The agent whose claim was granted; no other agent may report on the job.
    pub agent_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub artifacts_path: Option<String>,
    pub resource_usage: Option<ResourceUsage>,
    pub error: Option<String>,
    /// Distinct log lines stored so far.
    pub total_lines: u64,
    /// A final status that arrived before all of its lines; applied once they are stored.
    pub held_final: Option<HeldFinal>,
    /// Per-host recap of the run (from `playbook_on_stats`).
    #[serde(default)]
    pub host_recap: Vec<HostRecap>,
    /// The job this one retries.
    #[serde(default)]
    pub retry_of: Option<u64>,
    /// Set while a cancel of a running job waits for its agent.
    #[serde(default)]
    pub cancel: Option<CancelMark>,
    /// Not dispatched yet: another job runs on its server. Released in submission order.
    #[serde(default)]
    pub held: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl JobRecord {
    /// Hosts that failed or were unreachable, from the recap.
    pub fn failed_hosts(&self) -> Vec<String> {
        self.host_recap
            .iter()
            .filter(|h| h.failed > 0 || h.unreachable > 0)
            .map(|h| h.host.clone())
            .collect()
    }
}

/// A final status waiting for the lines it says were published before it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldFinal {
    pub status: JobStatus,
    pub exit_code: Option<i32>,
    pub last_line: u64,
    pub completed_at: Option<DateTime<Utc>>,
    pub resource_usage: Option<ResourceUsage>,
    pub error: Option<String>,
    #[serde(default)]
    pub host_recap: Vec<HostRecap>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogRecord {
    /// Global, increasing id of the stored line (the spec's `id`).
    pub id: u64,
    pub content: String,
    pub log_level: LogLevel,
    pub timestamp: DateTime<Utc>,
}
