//! What users do to existing jobs: cancel, retry, and turn a failure into a ticket.

use super::Store;
use super::audit::{self, Audit};
use super::catalog::{get_record, get_record_tx};
use super::job_index::put_job;
use super::job_list::{Page, Paged};
use super::jobs::{NewJob, insert_job};
use super::records::{
    CancelMark, FailureSummary, JobRecord, PlaybookRecord, Priority, ServerRecord, TicketRecord,
};
use super::tables::{
    JOBS, JOBS_BY_STATUS, PLAYBOOKS, SERVERS, TICKET_BY_JOB, TICKETS, decode, encode, next_id,
};
use crate::error::Error;
use chrono::Utc;
use drover_shared::{JobStatus, exit_code};
use redb::{ReadableTable, ReadableTableMetadata};
use uuid::Uuid;

/// What a cancel did.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// The job had not started and never will. If an agent had claimed it, that agent
    /// must still be told.
    Cancelled(JobRecord),
    /// The job runs: its agent is asked to stop it, and the job ends when it confirms.
    Requested(JobRecord),
}

#[derive(Debug, Clone)]
pub struct NewTicket {
    pub title: String,
    pub description: String,
    pub priority: Priority,
}

impl Store {
    /// Cancels a pending job at once, or marks a running one for its agent to stop.
    pub async fn cancel_job(
        &self,
        job_id: u64,
        by_user: String,
        audit: Audit,
    ) -> Result<CancelOutcome, Error> {
        self.write(move |tx| {
            let mut job: JobRecord =
                get_record_tx(tx, JOBS, job_id)?.ok_or_else(|| Error::not_found("job", job_id))?;
            let old = job.status;
            let now = Utc::now();
            let outcome = match old {
                JobStatus::Pending => {
                    job.status = JobStatus::Cancelled;
                    job.exit_code = Some(exit_code::CANCELLED);
                    job.completed_at = Some(now);
                    job.error = Some(format!("cancelled by {by_user} before it started"));
                    job.held = false;
                    CancelOutcome::Cancelled
                }
                JobStatus::Running => {
                    job.cancel = Some(CancelMark { by_user, at: now });
                    CancelOutcome::Requested
                }
                finished => {
                    return Err(Error::Conflict(format!(
                        "job {job_id} is already {finished}; only pending or running jobs can be cancelled"
                    )));
                }
            };
            job.updated_at = now;
            put_job(tx, &job, Some(old))?;
            audit::record(tx, audit, format!("job {job_id}"))?;
            Ok(outcome(job))
        })
        .await
    }

    /// Running jobs whose cancel the agent has not confirmed yet, with who asked.
    pub async fn unconfirmed_cancels(&self) -> Result<Vec<(Uuid, String)>, Error> {
        self.read(|tx| {
            let index = tx.open_table(JOBS_BY_STATUS)?;
            let running = JobStatus::Running.as_str();
            let mut found = Vec::new();
            for entry in index.range((running, 0)..=(running, u64::MAX))? {
                let id = entry?.0.value().1;
                if let Some(job) = get_record::<JobRecord>(tx, JOBS, id)?
                    && let Some(mark) = job.cancel
                {
                    found.push((job.uuid, mark.by_user));
                }
            }
            Ok(found)
        })
        .await
    }

    /// A new pending job with a failed or cancelled job's playbook, server and variables.
    pub async fn retry_job(
        &self,
        job_id: u64,
        user_id: u64,
        audit: Audit,
    ) -> Result<(JobRecord, PlaybookRecord, ServerRecord), Error> {
        self.write(move |tx| {
            let original: JobRecord =
                get_record_tx(tx, JOBS, job_id)?.ok_or_else(|| Error::not_found("job", job_id))?;
            if !matches!(original.status, JobStatus::Failed | JobStatus::Cancelled) {
                return Err(Error::Conflict(format!(
                    "job {job_id} is {}; only failed or cancelled jobs can be retried",
                    original.status
                )));
            }
            let created = insert_job(
                tx,
                NewJob {
                    playbook_id: original.playbook_id,
                    server_id: original.server_id,
                    user_id,
                    extra_vars: original.extra_vars,
                    timeout_secs: original.timeout_secs,
                    verbosity: original.verbosity,
                    retry_of: Some(job_id),
                },
            )?;
            audit::record(tx, audit, format!("job {job_id}"))?;
            Ok(created)
        })
        .await
        .inspect(|(job, _, _)| {
            if job.held {
                self.note_held();
            }
        })
    }

    /// One ticket per failed or cancelled job, carrying what went wrong.
    pub async fn create_ticket(
        &self,
        job_id: u64,
        new: NewTicket,
        created_by: u64,
        audit: Audit,
    ) -> Result<TicketRecord, Error> {
        self.write(move |tx| {
            let job: JobRecord =
                get_record_tx(tx, JOBS, job_id)?.ok_or_else(|| Error::not_found("job", job_id))?;
            if !matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
                return Err(Error::Conflict(format!(
                    "job {job_id} is {}; tickets are for failed or cancelled jobs",
                    job.status
                )));
            }
            if let Some(existing) = tx.open_table(TICKET_BY_JOB)?.get(job_id)? {
                return Err(Error::Conflict(format!(
                    "job {job_id} already has ticket {}",
                    existing.value()
                )));
            }
            let playbook = get_record_tx::<PlaybookRecord>(tx, PLAYBOOKS, job.playbook_id)?;
            let server = get_record_tx::<ServerRecord>(tx, SERVERS, job.server_id)?;
            let ticket = TicketRecord {
                id: next_id(tx, "next_ticket")?,
                job_id,
                title: new.title,
                description: new.description,
                priority: new.priority,
                failure_summary: FailureSummary {
                    status: job.status,
                    exit_code: job.exit_code,
                    error: job.error.clone(),
                    failed_hosts: job.failed_hosts(),
                    playbook: playbook
                        .map_or_else(|| format!("playbook {}", job.playbook_id), |p| p.name),
                    server: server
                        .map_or_else(|| format!("server {}", job.server_id), |s| s.hostname),
                    completed_at: job.completed_at,
                },
                created_by,
                created_at: Utc::now(),
            };
            tx.open_table(TICKETS)?
                .insert(ticket.id, encode(&ticket)?.as_slice())?;
            tx.open_table(TICKET_BY_JOB)?.insert(job_id, ticket.id)?;
            audit::record(tx, audit, format!("job {job_id}"))?;
            Ok(ticket)
        })
        .await
    }

    pub async fn ticket(&self, id: u64) -> Result<Option<TicketRecord>, Error> {
        self.read(move |tx| get_record(tx, TICKETS, id)).await
    }

    /// Tickets, newest first.
    pub async fn list_tickets(&self, page: Page) -> Result<Paged<TicketRecord>, Error> {
        self.read(move |tx| {
            let tickets = tx.open_table(TICKETS)?;
            let total = tickets.len()?;
            let mut items = Vec::with_capacity(page.per_page as usize);
            for entry in tickets
                .iter()?
                .rev()
                .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
                .take(page.per_page as usize)
            {
                items.push(decode::<TicketRecord>(entry?.1.value())?);
            }
            Ok(Paged { items, total, page })
        })
        .await
    }
}
