//! Jobs and their logs: creation, claims, status changes and log ingest, all as
//! check-then-write changes so a rejected one leaves nothing behind.

use super::Store;
use super::audit::{self, Audit};
use super::catalog::{get_record, get_record_tx};
use super::job_index::put_job;
use super::records::{HeldFinal, JobRecord, LogRecord, PlaybookRecord, ServerRecord, UserRecord};
use super::server_queue;
use super::tables::{
    CLAIMS, EVENTS, HELD, JOB_UUIDS, JOBS, JOBS_BY_STATUS, LOGS, META, PLAYBOOKS, SERVERS, USERS,
    decode, encode, next_id, take_ids,
};
use crate::error::Error;
use chrono::{DateTime, Utc};
use drover_shared::JobStatus;
use drover_shared::protocol::{ClaimReply, EventBatch, JobEvent, LogBatch, StatusChange};
use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

/// A job as submitted, already validated by the API.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub playbook_id: u64,
    pub server_id: u64,
    pub user_id: u64,
    pub extra_vars: serde_json::Value,
    pub timeout_secs: Option<u64>,
    pub verbosity: u8,
    /// The job this one retries.
    pub retry_of: Option<u64>,
}

/// A job with the records it refers to, as the API shows it.
#[derive(Debug, Clone)]
pub struct JobDetail {
    pub job: JobRecord,
    pub playbook: Option<PlaybookRecord>,
    pub server: Option<ServerRecord>,
    pub user: Option<UserRecord>,
}

/// Which job an API path names: `GET /jobs/42` or `GET /jobs/<uuid>`.
#[derive(Debug, Clone, Copy)]
pub enum JobFilter {
    Id(u64),
    Uuid(Uuid),
}

#[derive(Debug, Clone)]
pub struct LogPage {
    pub job_id: u64,
    pub lines: Vec<(u64, LogRecord)>,
    pub total_lines: u64,
    /// The job's status in the same snapshot as the lines.
    pub status: JobStatus,
    pub exit_code: Option<i32>,
}

/// Where a job stands after an ingest commit: what live watchers are told.
#[derive(Debug, Clone, PartialEq)]
pub struct JobProgress {
    pub job_id: u64,
    pub job_uuid: Uuid,
    pub status: JobStatus,
    pub exit_code: Option<i32>,
    pub total_lines: u64,
    /// The status differs from the one before the commit.
    pub status_changed: bool,
    /// For metrics: which playbook, and the times dispatch latency and run time come from.
    pub playbook_id: u64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl JobProgress {
    pub fn of(job: &JobRecord, status_changed: bool) -> JobProgress {
        JobProgress {
            job_id: job.id,
            job_uuid: job.uuid,
            status: job.status,
            exit_code: job.exit_code,
            total_lines: job.total_lines,
            status_changed,
            playbook_id: job.playbook_id,
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
        }
    }
}

/// What one ingest commit did: an outcome per message, and the jobs it touched.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub outcomes: Vec<IngestOutcome>,
    pub progress: Vec<JobProgress>,
    /// Finished jobs some agent still reports on (cancelled before they started, or
    /// taken from an agent that was lost and came back): it is told to stop.
    pub stop_agents: Vec<Uuid>,
}

/// What ingest did with one message from an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Applied,
    /// Already stored (a redelivery or a replay): nothing changed.
    Duplicate,
    /// Refused for the reason given; nothing was written.
    Rejected(String),
}

impl Store {
    /// Records a pending job and returns it with the playbook and server it runs.
    pub async fn create_job(
        &self,
        new: NewJob,
        audit: Audit,
    ) -> Result<(JobRecord, PlaybookRecord, ServerRecord), Error> {
        let created = self
            .write(move |tx| {
                let created = insert_job(tx, new)?;
                audit::record(tx, audit, format!("job {}", created.0.id))?;
                Ok(created)
            })
            .await?;
        if created.0.held {
            self.note_held();
        }
        Ok(created)
    }

    pub async fn job_detail(&self, which: JobFilter) -> Result<Option<JobDetail>, Error> {
        self.read(move |tx| {
            let id = match which {
                JobFilter::Id(id) => id,
                JobFilter::Uuid(uuid) => match tx.open_table(JOB_UUIDS)?.get(uuid.as_u128())? {
                    Some(id) => id.value(),
                    None => return Ok(None),
                },
            };
            let Some(job) = get_record::<JobRecord>(tx, JOBS, id)? else {
                return Ok(None);
            };
            Ok(Some(JobDetail {
                playbook: get_record(tx, PLAYBOOKS, job.playbook_id)?,
                server: get_record(tx, SERVERS, job.server_id)?,
                user: get_record(tx, USERS, job.user_id)?,
                job,
            }))
        })
        .await
    }

    /// Lines after `start_line` (exclusive, as the spec polls), at most `limit`.
    pub async fn log_page(
        &self,
        job_id: u64,
        start_line: u64,
        limit: usize,
    ) -> Result<LogPage, Error> {
        self.read(move |tx| {
            let job: JobRecord =
                get_record(tx, JOBS, job_id)?.ok_or_else(|| Error::not_found("job", job_id))?;
            let logs = tx.open_table(LOGS)?;
            let mut lines = Vec::with_capacity(limit.min(1024));
            let from = start_line.saturating_add(1);
            for entry in logs.range((job_id, from)..=(job_id, u64::MAX))?.take(limit) {
                let (key, value) = entry?;
                lines.push((key.value().1, decode::<LogRecord>(value.value())?));
            }
            Ok(LogPage {
                job_id,
                lines,
                total_lines: job.total_lines,
                status: job.status,
                exit_code: job.exit_code,
            })
        })
        .await
    }

    /// Pending jobs that no agent has claimed, oldest first, with what a dispatch needs.
    pub async fn unclaimed_pending_jobs(
        &self,
    ) -> Result<Vec<(JobRecord, PlaybookRecord, ServerRecord)>, Error> {
        self.read(|tx| {
            let index = tx.open_table(JOBS_BY_STATUS)?;
            let mut found = Vec::new();
            let pending = JobStatus::Pending.as_str();
            for entry in index.range((pending, 0)..=(pending, u64::MAX))? {
                let id = entry?.0.value().1;
                let Some(job) = get_record::<JobRecord>(tx, JOBS, id)? else {
                    continue;
                };
                if job.agent_id.is_some() || job.held {
                    continue;
                }
                let playbook = get_record(tx, PLAYBOOKS, job.playbook_id)?;
                let server = get_record(tx, SERVERS, job.server_id)?;
                if let (Some(playbook), Some(server)) = (playbook, server) {
                    found.push((job, playbook, server));
                }
            }
            Ok(found)
        })
        .await
    }

    /// Grants `job_uuid` to `agent_id` once: a second agent, or a job that is no longer
    /// pending, is refused. The same agent asking again is granted again (its first
    /// reply may have been lost).
    pub async fn claim(&self, job_uuid: Uuid, agent_id: String) -> Result<ClaimReply, Error> {
        self.write(move |tx| {
            let Some(mut job) = job_by_uuid(tx, job_uuid)? else {
                return Ok(refuse(format!("unknown job {job_uuid}")));
            };
            match &job.agent_id {
                // Its first reply was lost; once it has started, a redelivered dispatch
                // must not start the job a second time.
                Some(owner) if *owner == agent_id && job.status == JobStatus::Pending => {
                    return Ok(grant());
                }
                Some(owner) if *owner == agent_id => {
                    return Ok(refuse(format!("job {} is already {}", job.id, job.status)));
                }
                Some(owner) => {
                    return Ok(refuse(format!(
                        "job {} is claimed by agent {owner}",
                        job.id
                    )));
                }
                None => {}
            }
            if job.status != JobStatus::Pending {
                return Ok(refuse(format!("job {} is {}", job.id, job.status)));
            }
            if job.held {
                return Ok(refuse(format!("job {} waits for its server", job.id)));
            }
            tx.open_table(CLAIMS)?
                .insert((agent_id.as_str(), job.id), ())?;
            job.agent_id = Some(agent_id);
            job.updated_at = Utc::now();
            put_job(tx, &job, Some(job.status))?;
            Ok(grant())
        })
        .await
    }

    /// Applies agents' messages in order, in one commit, and records `through`, the
    /// stream sequence of the last of them, as the place to read on from. Each message
    /// gets an outcome; a rejected one writes nothing.
    pub async fn ingest(&self, messages: Vec<Ingest>, through: u64) -> Result<Ingested, Error> {
        self.write(move |tx| {
            tx.open_table(META)?.insert(INGEST_POSITION, through)?;
            // Status of each touched job before the commit, to tell who changed.
            let mut before: Vec<(Uuid, Option<JobStatus>)> = Vec::new();
            let mut outcomes = Vec::with_capacity(messages.len());
            let mut stop_agents = Vec::new();
            for message in messages {
                let uuid = message.job_uuid();
                if !before.iter().any(|(seen, _)| *seen == uuid) {
                    before.push((uuid, job_by_uuid(tx, uuid)?.map(|job| job.status)));
                }
                outcomes.push(match message {
                    Ingest::Logs(batch) => apply_logs(tx, batch, &mut stop_agents)?,
                    Ingest::Events(batch) => apply_events(tx, batch)?,
                    Ingest::Status(change) => apply_status(tx, change, &mut stop_agents)?,
                });
            }
            let mut progress = Vec::with_capacity(before.len());
            for (uuid, old_status) in before {
                if let Some(job) = job_by_uuid(tx, uuid)? {
                    progress.push(JobProgress::of(&job, old_status != Some(job.status)));
                }
            }
            Ok(Ingested {
                outcomes,
                progress,
                stop_agents,
            })
        })
        .await
    }

    /// Events after `after_counter` (exclusive), at most `limit`, oldest first.
    pub async fn event_page(
        &self,
        job_id: u64,
        after_counter: u64,
        limit: usize,
    ) -> Result<(Vec<JobEvent>, bool), Error> {
        self.read(move |tx| {
            let events = tx.open_table(EVENTS)?;
            let mut page = Vec::with_capacity(limit.min(1024));
            let mut range =
                events.range((job_id, after_counter.saturating_add(1))..=(job_id, u64::MAX))?;
            for entry in range.by_ref().take(limit) {
                page.push(decode::<JobEvent>(entry?.1.value())?);
            }
            let has_more = range.next().is_some();
            Ok((page, has_more))
        })
        .await
    }
}

/// The last `DROVER_JOBS` sequence whose message is stored (in `META`).
const INGEST_POSITION: &str = "ingest_position";

impl Store {
    /// Where ingest reads on from: the last stream sequence stored (0 for none).
    pub async fn ingest_position(&self) -> Result<u64, Error> {
        self.read(|tx| {
            Ok(tx
                .open_table(META)?
                .get(INGEST_POSITION)?
                .map_or(0, |v| v.value()))
        })
        .await
    }
}

/// One decoded message from the `DROVER_JOBS` stream.
#[derive(Debug, Clone)]
pub enum Ingest {
    Logs(LogBatch),
    Events(EventBatch),
    Status(StatusChange),
}

/// Checks a new job's playbook and server, then writes it as `pending`.
pub(super) fn insert_job(
    tx: &WriteTransaction,
    new: NewJob,
) -> Result<(JobRecord, PlaybookRecord, ServerRecord), Error> {
    let playbook: PlaybookRecord = get_record_tx(tx, PLAYBOOKS, new.playbook_id)?
        .ok_or_else(|| Error::not_found("playbook", new.playbook_id))?;
    let server: ServerRecord = get_record_tx(tx, SERVERS, new.server_id)?
        .ok_or_else(|| Error::not_found("server", new.server_id))?;
    let id = next_id(tx, "next_job")?;
    // Creation times never go backwards, so the job list can find a time window by
    // binary search over ids even if the clock steps back.
    let previous = get_record_tx::<JobRecord>(tx, JOBS, id.saturating_sub(1))?;
    let now = previous.map_or_else(Utc::now, |p| p.created_at.max(Utc::now()));
    let held = server_queue::must_wait(tx, &playbook, server.id)?;
    let job = JobRecord {
        id,
        uuid: Uuid::new_v4(),
        playbook_id: playbook.id,
        server_id: server.id,
        user_id: new.user_id,
        pool: server.pool.clone(),
        status: JobStatus::Pending,
        extra_vars: new.extra_vars,
        timeout_secs: new.timeout_secs.or(playbook.timeout_secs),
        verbosity: new.verbosity,
        agent_id: None,
        started_at: None,
        completed_at: None,
        exit_code: None,
        artifacts_path: None,
        resource_usage: None,
        error: None,
        total_lines: 0,
        held_final: None,
        host_recap: Vec::new(),
        retry_of: new.retry_of,
        cancel: None,
        held,
        created_at: now,
        updated_at: now,
    };
    tx.open_table(JOB_UUIDS)?
        .insert(job.uuid.as_u128(), job.id)?;
    if held {
        tx.open_table(HELD)?.insert((server.id, job.id), ())?;
    }
    put_job(tx, &job, None)?;
    Ok((job, playbook, server))
}

fn grant() -> ClaimReply {
    ClaimReply {
        granted: true,
        reason: None,
    }
}

fn refuse(reason: String) -> ClaimReply {
    ClaimReply {
        granted: false,
        reason: Some(reason),
    }
}

pub(super) fn job_by_uuid(tx: &WriteTransaction, uuid: Uuid) -> Result<Option<JobRecord>, Error> {
    let id = tx
        .open_table(JOB_UUIDS)?
        .get(uuid.as_u128())?
        .map(|v| v.value());
    match id {
        Some(id) => get_record_tx(tx, JOBS, id),
        None => Ok(None),
    }
}

fn apply_logs(
    tx: &WriteTransaction,
    batch: LogBatch,
    stop_agents: &mut Vec<Uuid>,
) -> Result<IngestOutcome, Error> {
    let Some(mut job) = job_by_uuid(tx, batch.job_uuid)? else {
        return Ok(IngestOutcome::Rejected(format!(
            "log batch for unknown job {}",
            batch.job_uuid
        )));
    };
    if let Some(bad) = batch.lines.iter().find(|line| line.line_number == 0) {
        return Ok(IngestOutcome::Rejected(format!(
            "line number {} of job {}: line numbers start at 1",
            bad.line_number, job.id
        )));
    }
    if job.status.is_finished() && batch.lines.iter().any(|l| l.line_number > job.total_lines) {
        // Whoever still runs it (an agent declared lost that came back) must stop.
        stop_agents.push(job.uuid);
        return Ok(IngestOutcome::Rejected(format!(
            "new lines for job {}, which is already {}",
            job.id, job.status
        )));
    }
    let mut logs = tx.open_table(LOGS)?;
    let mut fresh = Vec::with_capacity(batch.lines.len());
    for line in &batch.lines {
        if logs.get((job.id, line.line_number))?.is_none() {
            fresh.push(line);
        }
    }
    if fresh.is_empty() {
        return Ok(IngestOutcome::Duplicate);
    }
    let first_id = take_ids(tx, "next_log", fresh.len() as u64)?;
    for (offset, line) in fresh.iter().enumerate() {
        let record = LogRecord {
            id: first_id + offset as u64,
            content: line.content.clone(),
            log_level: line.log_level,
            timestamp: line.timestamp,
        };
        logs.insert((job.id, line.line_number), encode(&record)?.as_slice())?;
    }
    drop(logs);
    let old = job.status;
    job.total_lines += fresh.len() as u64;
    job.updated_at = Utc::now();
    release_held_final(&mut job);
    put_job(tx, &job, Some(old))?;
    Ok(IngestOutcome::Applied)
}

fn apply_events(tx: &WriteTransaction, batch: EventBatch) -> Result<IngestOutcome, Error> {
    let Some(job) = job_by_uuid(tx, batch.job_uuid)? else {
        return Ok(IngestOutcome::Rejected(format!(
            "event batch for unknown job {}",
            batch.job_uuid
        )));
    };
    let mut events = tx.open_table(EVENTS)?;
    for event in &batch.events {
        events.insert((job.id, event.counter), encode(event)?.as_slice())?;
    }
    Ok(IngestOutcome::Applied)
}

fn apply_status(
    tx: &WriteTransaction,
    change: StatusChange,
    stop_agents: &mut Vec<Uuid>,
) -> Result<IngestOutcome, Error> {
    let Some(mut job) = job_by_uuid(tx, change.job_uuid)? else {
        return Ok(IngestOutcome::Rejected(format!(
            "status for unknown job {}",
            change.job_uuid
        )));
    };
    if job.agent_id.as_deref() != Some(change.agent_id.as_str()) {
        return Ok(IngestOutcome::Rejected(format!(
            "status of job {} from agent {}, which does not hold its claim",
            job.id, change.agent_id
        )));
    }
    let old = job.status;
    if old == JobStatus::Cancelled
        && change.status == JobStatus::Running
        && job.started_at.is_none()
    {
        // Cancelled between its claim and its start: the cancel may have missed the
        // agent, so it is told again.
        stop_agents.push(job.uuid);
        return Ok(IngestOutcome::Rejected(format!(
            "job {} was cancelled before it started; its agent is told to stop",
            job.id
        )));
    }
    if old == change.status || (old.is_finished() && change.status == JobStatus::Running) {
        return Ok(IngestOutcome::Duplicate);
    }
    if !old.can_become(change.status) {
        return Ok(IngestOutcome::Rejected(format!(
            "job {} cannot go from {old} to {}",
            job.id, change.status
        )));
    }
    if job.started_at.is_none() {
        job.started_at = change.started_at;
    }
    job.updated_at = Utc::now();
    if change.status.is_finished() {
        job.held_final = Some(HeldFinal {
            status: change.status,
            exit_code: change.exit_code,
            last_line: change.last_line,
            completed_at: change.completed_at,
            resource_usage: change.resource_usage,
            error: change.error,
            host_recap: change.host_recap,
        });
        if old == JobStatus::Pending {
            job.status = JobStatus::Running;
        }
        release_held_final(&mut job);
    } else {
        job.status = change.status;
    }
    put_job(tx, &job, Some(old))?;
    Ok(IngestOutcome::Applied)
}

/// Finishes the job if it holds a final status whose lines are all stored.
fn release_held_final(job: &mut JobRecord) {
    let ready = matches!(&job.held_final, Some(held) if job.total_lines >= held.last_line);
    if !ready {
        return;
    }
    if let Some(held) = job.held_final.take() {
        job.status = held.status;
        job.exit_code = held.exit_code;
        job.completed_at = held.completed_at.or_else(|| Some(Utc::now()));
        job.resource_usage = held.resource_usage;
        job.error = held.error;
        job.host_recap = held.host_recap;
        job.cancel = None;
    }
}

impl Ingest {
    pub fn job_uuid(&self) -> Uuid {
        match self {
            Ingest::Logs(batch) => batch.job_uuid,
            Ingest::Events(batch) => batch.job_uuid,
            Ingest::Status(change) => change.job_uuid,
        }
    }

    /// Log lines the message carries.
    pub fn line_count(&self) -> u64 {
        match self {
            Ingest::Logs(batch) => batch.lines.len() as u64,
            _ => 0,
        }
    }
}
