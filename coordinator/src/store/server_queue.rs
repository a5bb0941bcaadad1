//! One job at a time per server, unless the playbook allows simultaneous runs (AWX's
//! `allow_simultaneous`). A job whose server is busy is *held*: stored as pending but not
//! dispatched. When the server is free again, its oldest held job is released, so jobs
//! on one server start in submission order.

use super::Store;
use super::catalog::get_record_tx;
use super::records::{JobRecord, PlaybookRecord, ServerRecord};
use super::tables::{HELD, JOBS, JOBS_BY_SERVER_STATUS, PLAYBOOKS, SERVERS, encode};
use crate::error::Error;
use drover_shared::JobStatus;
use redb::{ReadableTable, WriteTransaction};
use std::sync::atomic::Ordering;

/// Whether a new job of `playbook` on `server_id` must wait: its playbook runs alone,
/// and the server is busy or has jobs waiting already (which go first).
pub(super) fn must_wait(
    tx: &WriteTransaction,
    playbook: &PlaybookRecord,
    server_id: u64,
) -> Result<bool, Error> {
    if playbook.allow_simultaneous {
        return Ok(false);
    }
    let queued = tx
        .open_table(HELD)?
        .range((server_id, 0)..=(server_id, u64::MAX))?
        .next()
        .is_some();
    Ok(queued || busy(tx, server_id)?)
}

/// A job runs on the server, or is dispatched (pending, not held).
fn busy(tx: &WriteTransaction, server_id: u64) -> Result<bool, Error> {
    let index = tx.open_table(JOBS_BY_SERVER_STATUS)?;
    let running = JobStatus::Running.as_str();
    if index
        .range((server_id, running, 0)..=(server_id, running, u64::MAX))?
        .next()
        .is_some()
    {
        return Ok(true);
    }
    let held = tx.open_table(HELD)?;
    let pending = JobStatus::Pending.as_str();
    for entry in index.range((server_id, pending, 0)..=(server_id, pending, u64::MAX))? {
        let id = entry?.0.value().2;
        if held.get((server_id, id))?.is_none() {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Store {
    /// Notes that a job was held, so the next [`Store::release_held`] looks.
    pub(super) fn note_held(&self) {
        self.held_hint.store(true, Ordering::Release);
    }

    /// Releases the oldest held job of every server that is free; returns them for
    /// dispatch. Without `always`, it only looks if a job was held since it last found
    /// none.
    pub async fn release_held(
        &self,
        always: bool,
    ) -> Result<Vec<(JobRecord, PlaybookRecord, ServerRecord)>, Error> {
        if !always && !self.held_hint.load(Ordering::Acquire) {
            return Ok(Vec::new());
        }
        // Usually nothing waits: a read answers that without a commit.
        let waiting = self
            .read(|tx| Ok(tx.open_table(HELD)?.first()?.is_some()))
            .await?;
        if !waiting {
            self.held_hint.store(false, Ordering::Release);
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let mut heads = Vec::new();
            {
                let held = tx.open_table(HELD)?;
                let mut last_server = None;
                for entry in held.iter()? {
                    let (server, job) = entry?.0.value();
                    if last_server != Some(server) {
                        heads.push((server, job));
                        last_server = Some(server);
                    }
                }
            }
            let mut released = Vec::new();
            for (server_id, job_id) in heads {
                if busy(tx, server_id)? {
                    continue;
                }
                tx.open_table(HELD)?.remove((server_id, job_id))?;
                let Some(mut job) = get_record_tx::<JobRecord>(tx, JOBS, job_id)? else {
                    continue;
                };
                job.held = false;
                tx.open_table(JOBS)?
                    .insert(job.id, encode(&job)?.as_slice())?;
                let playbook = get_record_tx(tx, PLAYBOOKS, job.playbook_id)?;
                let server = get_record_tx(tx, SERVERS, job.server_id)?;
                if let (Some(playbook), Some(server)) = (playbook, server) {
                    released.push((job, playbook, server));
                }
            }
            Ok(released)
        })
        .await
    }
}
