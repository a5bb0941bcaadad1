//! Every NATS message Drover sends, next to its subject and its MessagePack codec, so
//! the agent and the coordinator cannot drift apart.
//!
//! | subject | direction | payload |
//! |---|---|---|
//! | `drover.dispatch.<pool>` | coordinator → agents (JetStream work queue) | [`JobDispatch`] |
//! | `drover.coord.claim` | agent → coordinator (request/reply) | [`ClaimRequest`] → [`ClaimReply`] |
//! | `drover.jobs.<uuid>.logs` | agent → all | [`LogBatch`] |
//! | `drover.jobs.<uuid>.events` | agent → all | [`EventBatch`] |
//! | `drover.jobs.<uuid>.status` | agent → all | [`StatusChange`] |
//! | `drover.jobs.<uuid>.cancel` | coordinator → agent | [`CancelRequest`] |
//! | `drover.agents.<agent_id>.heartbeat` | agent → coordinator | [`Heartbeat`] |
//! | `drover.alerts.<kind>` | coordinator → all | [`AlertMessage`] (fired and resolved) |

use crate::domain::{Connection, JobStatus, LogLevel};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// JetStream stream holding dispatches, one work-queue subject per pool.
pub const DISPATCH_STREAM: &str = "DROVER_DISPATCH";
/// JetStream stream capturing every job's logs, events and status changes.
pub const JOBS_STREAM: &str = "DROVER_JOBS";
/// Subjects captured by [`DISPATCH_STREAM`].
pub const DISPATCH_SUBJECTS: &str = "drover.dispatch.>";
/// Subjects captured by [`JOBS_STREAM`]: everything agents publish about a job.
pub const JOB_SUBJECTS: [&str; 3] = [
    "drover.jobs.*.logs",
    "drover.jobs.*.events",
    "drover.jobs.*.status",
];
/// Request/reply subject on which the coordinator grants claims.
pub const CLAIM_SUBJECT: &str = "drover.coord.claim";
/// Heartbeats of every agent.
pub const HEARTBEAT_SUBJECTS: &str = "drover.agents.*.heartbeat";

pub fn dispatch_subject(pool: &str) -> String {
    format!("drover.dispatch.{pool}")
}

pub fn logs_subject(job: Uuid) -> String {
    format!("drover.jobs.{job}.logs")
}

pub fn events_subject(job: Uuid) -> String {
    format!("drover.jobs.{job}.events")
}

pub fn status_subject(job: Uuid) -> String {
    format!("drover.jobs.{job}.status")
}

pub fn cancel_subject(job: Uuid) -> String {
    format!("drover.jobs.{job}.cancel")
}

pub fn heartbeat_subject(agent_id: &str) -> String {
    format!("drover.agents.{agent_id}.heartbeat")
}

/// Every built-in alert, fired or resolved.
pub const ALERT_SUBJECTS: &str = "drover.alerts.*";

pub fn alert_subject(kind: AlertKind) -> String {
    format!("drover.alerts.{}", kind.as_str())
}

/// Name of the durable pull consumer shared by all agents of a pool.
pub fn pool_consumer_name(pool: &str) -> String {
    format!("pool-{pool}")
}

/// What kind of message arrived on a `drover.jobs.<uuid>.<kind>` subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobSubjectKind {
    Logs,
    Events,
    Status,
    Cancel,
}

/// Splits `drover.jobs.<uuid>.<kind>` into its job and kind; `None` for anything else.
pub fn parse_job_subject(subject: &str) -> Option<(Uuid, JobSubjectKind)> {
    let rest = subject.strip_prefix("drover.jobs.")?;
    let (uuid, kind) = rest.split_once('.')?;
    let kind = match kind {
        "logs" => JobSubjectKind::Logs,
        "events" => JobSubjectKind::Events,
        "status" => JobSubjectKind::Status,
        "cancel" => JobSubjectKind::Cancel,
        _ => return None,
    };
    Some((Uuid::parse_str(uuid).ok()?, kind))
}

/// Pool of servers registered without one, and of agents started without `--pool`.
pub const DEFAULT_POOL: &str = "default";

/// Pool names become subject tokens: letters, digits, `-` and `_` only.
pub fn is_valid_pool_name(pool: &str) -> bool {
    !pool.is_empty()
        && pool.len() <= 64
        && pool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed {kind} message: {source}")]
    Decode {
        kind: &'static str,
        #[source]
        source: rmp_serde::decode::Error,
    },
    #[error("cannot encode {kind} message: {source}")]
    Encode {
        kind: &'static str,
        #[source]
        source: rmp_serde::encode::Error,
    },
}

/// A message that travels on NATS as named MessagePack.
pub trait Message: Serialize + DeserializeOwned {
    /// Used in errors and logs ("malformed LogBatch message").
    const KIND: &'static str;

    fn encode(&self) -> Result<Vec<u8>, Error> {
        rmp_serde::to_vec_named(self).map_err(|source| Error::Encode {
            kind: Self::KIND,
            source,
        })
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        rmp_serde::from_slice(bytes).map_err(|source| Error::Decode {
            kind: Self::KIND,
            source,
        })
    }
}

/// The host a job runs against, as the agent needs it to build an inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub hostname: String,
    pub ip_address: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    /// Relative to the agent's `--key-dir`; key material never crosses NATS.
    pub ssh_key_path: Option<String>,
    pub connection: Connection,
    /// Overrides interpreter discovery, which picks broken shims on some hosts.
    pub python_interpreter: Option<String>,
}

/// A job handed to a pool's agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDispatch {
    pub job_uuid: Uuid,
    pub job_id: u64,
    pub playbook_name: String,
    pub playbook_content: String,
    pub target: Target,
    pub extra_vars: serde_json::Value,
    /// Wall-clock limit of the run; `None` means no limit.
    pub timeout_secs: Option<u64>,
    /// ansible-playbook verbosity (number of `-v`).
    pub verbosity: u8,
}

impl Message for JobDispatch {
    const KIND: &'static str = "JobDispatch";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub job_uuid: Uuid,
    pub agent_id: String,
}

impl Message for ClaimRequest {
    const KIND: &'static str = "ClaimRequest";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimReply {
    pub granted: bool,
    /// Why a claim was refused ("job 7 is cancelled"), for the agent's log.
    pub reason: Option<String>,
}

impl Message for ClaimReply {
    const KIND: &'static str = "ClaimReply";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub line_number: u64,
    pub content: String,
    pub log_level: LogLevel,
    pub timestamp: DateTime<Utc>,
}

/// Consecutive lines of one job. Line numbers start at 1, have no gaps and never repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogBatch {
    pub job_uuid: Uuid,
    pub lines: Vec<LogLine>,
}

impl Message for LogBatch {
    const KIND: &'static str = "LogBatch";
}

/// The subset of an ansible-runner event that people query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub counter: u64,
    pub event: String,
    pub host: Option<String>,
    pub task: Option<String>,
    pub changed: bool,
    pub failed: bool,
    pub duration_secs: Option<f64>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    pub job_uuid: Uuid,
    pub events: Vec<JobEvent>,
}

impl Message for EventBatch {
    const KIND: &'static str = "EventBatch";
}

/// CPU and memory the run cost on the agent host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResourceUsage {
    pub cpu_user_secs: f64,
    pub cpu_system_secs: f64,
    /// Peak resident set of the largest process of the run, in KiB.
    pub max_rss_kb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub job_uuid: Uuid,
    pub agent_id: String,
    pub status: JobStatus,
    pub exit_code: Option<i32>,
    /// Number of the last log line published before this change; the coordinator
    /// finishes a job only once it has stored every line up to it.
    pub last_line: u64,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub resource_usage: Option<ResourceUsage>,
    pub error: Option<String>,
    /// Per-host recap from `playbook_on_stats`, on the final status.
    #[serde(default)]
    pub host_recap: Vec<HostRecap>,
}

/// One host's line of the play recap.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostRecap {
    pub host: String,
    pub ok: u64,
    pub changed: u64,
    pub failed: u64,
    pub unreachable: u64,
    pub skipped: u64,
    pub rescued: u64,
    pub ignored: u64,
}

impl Message for StatusChange {
    const KIND: &'static str = "StatusChange";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub by_user: String,
}

impl Message for CancelRequest {
    const KIND: &'static str = "CancelRequest";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub agent_id: String,
    pub pool: String,
    pub capacity: u32,
    pub running: Vec<Uuid>,
    pub version: String,
    pub labels: Vec<String>,
}

impl Message for Heartbeat {
    const KIND: &'static str = "Heartbeat";
}

/// The conditions the coordinator watches (the spec's "Alert Conditions").
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Too many of the recently submitted jobs failed.
    FailureRate,
    /// A job has run longer than its playbook usually takes.
    LongRunning,
    /// One playbook failed several times in a row.
    ConsecutiveFailures,
    /// A pool that has servers has no live agent.
    NoAgent,
    /// A pool's pending jobs keep growing.
    QueueBacklog,
}

impl AlertKind {
    pub const ALL: [AlertKind; 5] = [
        AlertKind::FailureRate,
        AlertKind::LongRunning,
        AlertKind::ConsecutiveFailures,
        AlertKind::NoAgent,
        AlertKind::QueueBacklog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::FailureRate => "failure_rate",
            AlertKind::LongRunning => "long_running",
            AlertKind::ConsecutiveFailures => "consecutive_failures",
            AlertKind::NoAgent => "no_agent",
            AlertKind::QueueBacklog => "queue_backlog",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// An alert as it fires or resolves, on `drover.alerts.<kind>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertMessage {
    pub kind: AlertKind,
    /// What it is about: a pool, a playbook, a job uuid; empty for the whole fleet.
    pub subject: String,
    pub state: AlertState,
    pub message: String,
    /// The measured value and the threshold it crossed.
    pub value: f64,
    pub threshold: f64,
    #[schema(value_type = String, format = DateTime)]
    pub since: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Message for AlertMessage {
    const KIND: &'static str = "AlertMessage";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Debug;

    #[test]
    fn alert_message_round_trips_on_its_kind_subject() {
        let alert = AlertMessage {
            kind: AlertKind::NoAgent,
            subject: "edge-1".into(),
            state: AlertState::Firing,
            message: "no agent in pool 'edge-1'".into(),
            value: 0.0,
            threshold: 1.0,
            since: now(),
            resolved_at: None,
        };
        round_trip(alert.clone());
        assert_eq!(alert_subject(alert.kind), "drover.alerts.no_agent");
    }

    fn round_trip<T: Message + PartialEq + Debug>(message: T) {
        let bytes = message.encode().expect("encodes");
        let back = T::decode(&bytes).expect("decodes");
        assert_eq!(back, message);
    }

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn job_dispatch_round_trips() {
        round_trip(JobDispatch {
            job_uuid: Uuid::new_v4(),
            job_id: 42,
            playbook_name: "Deploy Application".into(),
            playbook_content: "- hosts: all\n  tasks: []\n".into(),
            target: Target {
                hostname: "web-server-01".into(),
                ip_address: "192.168.1.100".into(),
                ssh_port: 22,
                ssh_user: "deploy".into(),
                ssh_key_path: Some("web/id_ed25519".into()),
                connection: Connection::Ssh,
                python_interpreter: None,
            },
            extra_vars: serde_json::json!({"service_name": "nginx", "port": 8080, "enable_ssl": true, "nested": {"a": [1, 2.5, null]}}),
            timeout_secs: Some(3600),
            verbosity: 1,
        });
    }

    #[test]
    fn claims_round_trip() {
        round_trip(ClaimRequest {
            job_uuid: Uuid::new_v4(),
            agent_id: "agent-1".into(),
        });
        round_trip(ClaimReply {
            granted: false,
            reason: Some("job 7 is cancelled".into()),
        });
    }

    #[test]
    fn log_batch_round_trips() {
        round_trip(LogBatch {
            job_uuid: Uuid::new_v4(),
            lines: vec![
                LogLine {
                    line_number: 1,
                    content: "PLAY [x] ***".into(),
                    log_level: LogLevel::Info,
                    timestamp: now(),
                },
                LogLine {
                    line_number: 2,
                    content: "ünïcödé ✓".into(),
                    log_level: LogLevel::Error,
                    timestamp: now(),
                },
            ],
        });
    }

    #[test]
    fn event_batch_round_trips() {
        round_trip(EventBatch {
            job_uuid: Uuid::new_v4(),
            events: vec![JobEvent {
                counter: 3,
                event: "runner_on_ok".into(),
                host: Some("h1".into()),
                task: Some("ping".into()),
                changed: true,
                failed: false,
                duration_secs: Some(0.25),
                created: now(),
            }],
        });
    }

    #[test]
    fn status_change_round_trips() {
        round_trip(StatusChange {
            job_uuid: Uuid::new_v4(),
            agent_id: "agent-1".into(),
            status: JobStatus::Failed,
            exit_code: Some(1),
            last_line: 17,
            started_at: Some(now()),
            completed_at: Some(now()),
            resource_usage: Some(ResourceUsage {
                cpu_user_secs: 1.5,
                cpu_system_secs: 0.25,
                max_rss_kb: 65_536,
            }),
            error: Some("task failed".into()),
            host_recap: vec![HostRecap {
                host: "web-01".into(),
                ok: 3,
                failed: 1,
                ..HostRecap::default()
            }],
        });
    }

    #[test]
    fn cancel_and_heartbeat_round_trip() {
        round_trip(CancelRequest {
            by_user: "admin".into(),
        });
        round_trip(Heartbeat {
            agent_id: "agent-1".into(),
            pool: "edge-1".into(),
            capacity: 4,
            running: vec![Uuid::new_v4()],
            version: "0.1.0".into(),
            labels: vec!["dc=eu".into()],
        });
    }

    #[test]
    fn malformed_bytes_are_a_named_error() {
        let error = LogBatch::decode(b"\xc1 not msgpack").expect_err("rejects garbage");
        assert!(error.to_string().starts_with("malformed LogBatch message"));
        // A valid message of another type is not a LogBatch either.
        let claim = ClaimReply {
            granted: true,
            reason: None,
        }
        .encode()
        .expect("encodes");
        assert!(LogBatch::decode(&claim).is_err());
    }

    /// docs/nats.md promises third-party tailers this encoding.
    #[test]
    fn uuids_are_16_byte_bins_and_fields_are_named() {
        let job = Uuid::new_v4();
        let bytes = LogBatch {
            job_uuid: job,
            lines: Vec::new(),
        }
        .encode()
        .expect("encodes");
        let mut expected_uuid = vec![0xc4, 16];
        expected_uuid.extend_from_slice(job.as_bytes());
        assert!(bytes.windows(18).any(|w| w == expected_uuid.as_slice()));
        assert!(bytes.windows(8).any(|w| w == b"job_uuid"));
    }

    #[test]
    fn job_subjects_parse_back() {
        let job = Uuid::new_v4();
        assert_eq!(
            parse_job_subject(&logs_subject(job)),
            Some((job, JobSubjectKind::Logs))
        );
        assert_eq!(
            parse_job_subject(&status_subject(job)),
            Some((job, JobSubjectKind::Status))
        );
        assert_eq!(
            parse_job_subject(&cancel_subject(job)),
            Some((job, JobSubjectKind::Cancel))
        );
        assert_eq!(parse_job_subject("drover.jobs.nope.logs"), None);
        assert_eq!(parse_job_subject(&format!("drover.jobs.{job}.other")), None);
    }

    #[test]
    fn pool_names_are_subject_tokens() {
        assert!(is_valid_pool_name("edge-1"));
        assert!(!is_valid_pool_name("edge.1"));
        assert!(!is_valid_pool_name("*"));
        assert!(!is_valid_pool_name(""));
    }
}
