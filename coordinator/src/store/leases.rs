//! Jobs held by agents, and what happens to them when an agent is lost: a job that ran
//! fails, a job that was only claimed goes back to its pool.

use super::Store;
use super::catalog::{get_record, get_record_tx};
use super::job_index::put_job;
use super::records::{JobRecord, PlaybookRecord, ServerRecord};
use super::tables::{JOBS, JOBS_BY_STATUS, PLAYBOOKS, SERVERS};
use crate::error::Error;
use chrono::Utc;
use drover_shared::{JobStatus, exit_code};
use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

/// What losing an agent did to its jobs.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Jobs that were running: now `failed`.
    pub failed: Vec<JobRecord>,
    /// Jobs it had claimed but not started: pending again, to be dispatched anew.
    pub requeued: Vec<(JobRecord, PlaybookRecord, ServerRecord)>,
}

impl Store {
    /// Running jobs and claimed pending ones: (job id, uuid, agent).
    pub async fn claimed_jobs(&self) -> Result<Vec<(u64, Uuid, String)>, Error> {
        self.read(|tx| {
            let index = tx.open_table(JOBS_BY_STATUS)?;
            let mut claimed = Vec::new();
            for status in [JobStatus::Pending, JobStatus::Running] {
                let s = status.as_str();
                for entry in index.range((s, 0)..=(s, u64::MAX))? {
                    let id = entry?.0.value().1;
                    if let Some(job) = get_record::<JobRecord>(tx, JOBS, id)?
                        && let Some(agent) = job.agent_id
                    {
                        claimed.push((job.id, job.uuid, agent));
                    }
                }
            }
            Ok(claimed)
        })
        .await
    }

    /// Ends what `agent` held: running jobs fail with `error`, claimed ones are
    /// requeued.
    pub async fn reap_agent(&self, agent: String, error: String) -> Result<Reaped, Error> {
        self.write(move |tx| {
            let mut reaped = Reaped::default();
            for id in jobs_of(tx, &agent)? {
                let Some(mut job) = get_record_tx::<JobRecord>(tx, JOBS, id)? else {
                    continue;
                };
                let old = job.status;
                let now = Utc::now();
                job.updated_at = now;
                if old == JobStatus::Running {
                    job.status = JobStatus::Failed;
                    job.exit_code = Some(exit_code::TASK_FAILURE);
                    job.completed_at = Some(now);
                    job.error = Some(error.clone());
                    job.held_final = None;
                    job.cancel = None;
                    put_job(tx, &job, Some(old))?;
                    reaped.failed.push(job);
                } else {
                    job.agent_id = None;
                    put_job(tx, &job, Some(old))?;
                    let playbook = get_record_tx(tx, PLAYBOOKS, job.playbook_id)?;
                    let server = get_record_tx(tx, SERVERS, job.server_id)?;
                    if let (Some(playbook), Some(server)) = (playbook, server) {
                        reaped.requeued.push((job, playbook, server));
                    }
                }
            }
            Ok(reaped)
        })
        .await
    }
}

/// Ids of the pending or running jobs `agent` holds.
fn jobs_of(tx: &WriteTransaction, agent: &str) -> Result<Vec<u64>, Error> {
    let index = tx.open_table(JOBS_BY_STATUS)?;
    let jobs = tx.open_table(JOBS)?;
    let mut ids = Vec::new();
    for status in [JobStatus::Pending, JobStatus::Running] {
        let s = status.as_str();
        for entry in index.range((s, 0)..=(s, u64::MAX))? {
            let id = entry?.0.value().1;
            if let Some(bytes) = jobs.get(id)? {
                let job: JobRecord = super::tables::decode(bytes.value())?;
                if job.agent_id.as_deref() == Some(agent) {
                    ids.push(id);
                }
            }
        }
    }
    Ok(ids)
}
