//! The JSON shapes of the spec, built from store records.

use crate::store::{
    JobDetail, LogMatches, LogPage, LogRecord, PlaybookRecord, Role, ServerRecord, UserRecord,
};
use chrono::{DateTime, Utc};
use drover_shared::protocol::{HostRecap, ResourceUsage};
use drover_shared::{JobStatus, LogLevel};
use serde::Serialize;
use utoipa::ToSchema;

/// Times are UTC, printed as the spec prints them (`2024-01-08T10:00:05`).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

pub fn opt_timestamp(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(timestamp)
}

#[derive(Serialize, ToSchema)]
pub struct PlaybookRef {
    pub id: u64,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct ServerRef {
    pub id: u64,
    pub hostname: String,
    pub ip_address: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserRef {
    pub id: u64,
    pub username: String,
}

#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: u64,
    pub job_id: String,
    pub status: JobStatus,
    pub playbook: Option<PlaybookRef>,
    pub server: Option<ServerRef>,
    pub user: Option<UserRef>,
    #[schema(value_type = Object)]
    pub extra_vars: serde_json::Value,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub exit_code: Option<i32>,
    /// Seconds from start to completion (or to now while running), to the millisecond.
    pub duration: Option<f64>,
    pub artifacts_path: Option<String>,
    pub resource_usage: Option<ResourceUsage>,
    pub error: Option<String>,
    /// Hosts that failed or were unreachable, from the recap.
    pub failed_hosts: Vec<String>,
    pub agent_id: Option<String>,
    pub total_lines: u64,
    pub timeout: Option<u64>,
    /// The job this one retries.
    pub retry_of: Option<u64>,
    /// Who asked to cancel this running job; cleared when it ends.
    pub cancel_requested_by: Option<String>,
    /// Why a pending job has not started, when the agents explain it.
    pub pending_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<PlaybookRecord> for PlaybookRef {
    fn from(p: PlaybookRecord) -> PlaybookRef {
        PlaybookRef {
            id: p.id,
            name: p.name,
        }
    }
}

impl From<UserRecord> for UserRef {
    fn from(u: UserRecord) -> UserRef {
        UserRef {
            id: u.id,
            username: u.username,
        }
    }
}

impl From<JobDetail> for JobView {
    fn from(detail: JobDetail) -> JobView {
        let job = detail.job;
        let failed_hosts = job.failed_hosts();
        let duration = job.started_at.map(|start| {
            let end = job.completed_at.unwrap_or_else(Utc::now);
            (end - start).num_milliseconds() as f64 / 1000.0
        });
        JobView {
            id: job.id,
            job_id: job.uuid.to_string(),
            status: job.status,
            playbook: detail.playbook.map(PlaybookRef::from),
            server: detail.server.map(|s| ServerRef {
                id: s.id,
                hostname: s.hostname,
                ip_address: s.ip_address,
            }),
            user: detail.user.map(UserRef::from),
            extra_vars: job.extra_vars,
            started_at: opt_timestamp(job.started_at),
            completed_at: opt_timestamp(job.completed_at),
            exit_code: job.exit_code,
            duration,
            artifacts_path: job.artifacts_path,
            resource_usage: job.resource_usage,
            error: job.error,
            failed_hosts,
            agent_id: job.agent_id,
            total_lines: job.total_lines,
            timeout: job.timeout_secs,
            retry_of: job.retry_of,
            cancel_requested_by: job.cancel.map(|mark| mark.by_user),
            pending_reason: None,
            created_at: timestamp(job.created_at),
            updated_at: timestamp(job.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LogLineView {
    pub id: u64,
    pub line_number: u64,
    pub content: String,
    pub log_level: LogLevel,
    pub timestamp: String,
}

impl LogLineView {
    pub fn new(line_number: u64, record: LogRecord) -> LogLineView {
        LogLineView {
            id: record.id,
            line_number,
            content: record.content,
            log_level: record.log_level,
            timestamp: timestamp(record.timestamp),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LogPageView {
    pub job_id: u64,
    pub logs: Vec<LogLineView>,
    pub total_lines: u64,
    pub returned_lines: usize,
    pub has_more: bool,
}

impl LogPageView {
    pub fn new(page: LogPage, start_line: u64) -> LogPageView {
        let last_returned = page.lines.last().map_or(start_line, |(number, _)| *number);
        let logs: Vec<LogLineView> = page
            .lines
            .into_iter()
            .map(|(line_number, record)| LogLineView::new(line_number, record))
            .collect();
        LogPageView {
            job_id: page.job_id,
            returned_lines: logs.len(),
            has_more: last_returned < page.total_lines,
            total_lines: page.total_lines,
            logs,
        }
    }

    /// Lines that matched `level`/`contains`; `has_more` says whether more may follow.
    pub fn matching(found: LogMatches) -> LogPageView {
        let logs: Vec<LogLineView> = found
            .page
            .lines
            .into_iter()
            .map(|(line_number, record)| LogLineView::new(line_number, record))
            .collect();
        LogPageView {
            job_id: found.page.job_id,
            returned_lines: logs.len(),
            has_more: found.has_more,
            total_lines: found.page.total_lines,
            logs,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlaybookView {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub content: String,
    /// Where `content` was read from, under the coordinator's `--playbook-dir`.
    pub file_path: Option<String>,
    pub timeout: Option<u64>,
    pub allow_simultaneous: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<PlaybookRecord> for PlaybookView {
    fn from(p: PlaybookRecord) -> PlaybookView {
        PlaybookView {
            id: p.id,
            name: p.name,
            description: p.description,
            content: p.content,
            file_path: p.file_path,
            timeout: p.timeout_secs,
            allow_simultaneous: p.allow_simultaneous,
            created_at: timestamp(p.created_at),
            updated_at: timestamp(p.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ServerView {
    pub id: u64,
    pub hostname: String,
    pub ip_address: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub ssh_key_path: Option<String>,
    pub pool: String,
    pub connection: drover_shared::Connection,
    pub python_interpreter: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl ServerView {
    /// Viewers see only the key's file name: where keys live on agent hosts is for
    /// those who may change servers.
    pub fn for_role(s: ServerRecord, role: Role) -> ServerView {
        let mut view = ServerView::from(s);
        if role < Role::Operator {
            view.ssh_key_path = view.ssh_key_path.map(|path| {
                std::path::Path::new(&path)
                    .file_name()
                    .map_or_else(String::new, |name| name.to_string_lossy().into_owned())
            });
        }
        view
    }
}

impl From<ServerRecord> for ServerView {
    fn from(s: ServerRecord) -> ServerView {
        ServerView {
            id: s.id,
            hostname: s.hostname,
            ip_address: s.ip_address,
            ssh_port: s.ssh_port,
            ssh_user: s.ssh_user,
            ssh_key_path: s.ssh_key_path,
            pool: s.pool,
            connection: s.connection,
            python_interpreter: s.python_interpreter,
            created_at: timestamp(s.created_at),
            updated_at: timestamp(s.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub counter: u64,
    pub event: String,
    pub host: Option<String>,
    pub task: Option<String>,
    pub changed: bool,
    pub failed: bool,
    pub duration: Option<f64>,
    pub created: String,
}

impl From<drover_shared::protocol::JobEvent> for EventView {
    fn from(e: drover_shared::protocol::JobEvent) -> EventView {
        EventView {
            counter: e.counter,
            event: e.event,
            host: e.host,
            task: e.task,
            changed: e.changed,
            failed: e.failed,
            duration: e.duration_secs,
            created: timestamp(e.created),
        }
    }
}

/// `GET /jobs/{id}/events`: one page of a job's ansible-runner events, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EventPageView {
    pub job_id: u64,
    pub events: Vec<EventView>,
    pub returned_events: usize,
    pub has_more: bool,
}

/// `GET /jobs/{id}/hosts`: the per-host recap of the run (empty until it has one).
#[derive(Serialize, ToSchema)]
pub struct HostsView {
    pub job_id: u64,
    pub status: JobStatus,
    pub hosts: Vec<HostRecap>,
}
