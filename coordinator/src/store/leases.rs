//! Jobs held by agents, and what happens to them when an agent is lost: a job that ran
//! fails, a job that was only claimed goes back to its pool.

use super::Store;
use super::catalog::get_record_tx;
use super::job_index::put_job;
use super::records::{JobRecord, PlaybookRecord, ServerRecord};
use super::tables::{CLAIMS, JOBS, PLAYBOOKS, SERVERS};
use crate::error::Error;
use chrono::Utc;
use drover_shared::{JobStatus, exit_code};
use redb::ReadableTable;

/// What losing an agent did to its jobs.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Jobs that were running: now `failed`.
    pub failed: Vec<JobRecord>,
    /// Jobs it had claimed but not started: pending again, to be dispatched anew.
    pub requeued: Vec<(JobRecord, PlaybookRecord, ServerRecord)>,
}

impl Store {
    /// Agents holding pending or running jobs.
    pub async fn claiming_agents(&self) -> Result<Vec<String>, Error> {
        self.read(|tx| {
            let mut agents: Vec<String> = Vec::new();
            for entry in tx.open_table(CLAIMS)?.iter()? {
                let (key, _) = entry?;
                let agent = key.value().0;
                if agents.last().map(String::as_str) != Some(agent) {
                    agents.push(agent.to_owned());
                }
            }
            Ok(agents)
        })
        .await
    }

    /// Ends what `agent` held: running jobs fail with `error`, claimed ones are
    /// requeued.
    pub async fn reap_agent(&self, agent: String, error: String) -> Result<Reaped, Error> {
        self.write(move |tx| {
            let mut reaped = Reaped::default();
            let ids: Vec<u64> = {
                let claims = tx.open_table(CLAIMS)?;
                let mut ids = Vec::new();
                for entry in claims.range((agent.as_str(), 0)..=(agent.as_str(), u64::MAX))? {
                    ids.push(entry?.0.value().1);
                }
                ids
            };
            for id in ids {
                tx.open_table(CLAIMS)?.remove((agent.as_str(), id))?;
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
                } else if old == JobStatus::Pending {
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
