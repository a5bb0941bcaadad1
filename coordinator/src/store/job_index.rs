//! Every write of a job goes through [`put_job`], which keeps the job's indexes and the
//! statistics counters in step with it in the same transaction: the job list and the
//! statistics read these instead of scanning jobs.

use super::records::JobRecord;
use super::tables::{
    CLAIMS, COUNTERS, HELD, JOBS, JOBS_BY_PLAYBOOK, JOBS_BY_PLAYBOOK_STATUS, JOBS_BY_SERVER,
    JOBS_BY_SERVER_STATUS, JOBS_BY_STATUS, JOBS_BY_USER, JOBS_BY_USER_STATUS, encode,
};
use crate::error::Error;
use drover_shared::JobStatus;
use redb::{ReadableTable, Table, WriteTransaction};

/// Counter scope for everyone (user ids start at 1).
pub const ALL_USERS: u64 = 0;
/// Counter "playbook" for every playbook (playbook ids start at 1).
pub const ALL_PLAYBOOKS: u64 = 0;
/// Sum of the durations of finished jobs that ran, in milliseconds.
pub const DURATION_MS: &str = "duration_ms";
/// How many finished jobs [`DURATION_MS`] adds up.
pub const TIMED_JOBS: &str = "timed_jobs";

/// Writes `job`; `old_status` is the status of the record it replaces (`None` for a new
/// job).
pub fn put_job(
    tx: &WriteTransaction,
    job: &JobRecord,
    old_status: Option<JobStatus>,
) -> Result<(), Error> {
    tx.open_table(JOBS)?
        .insert(job.id, encode(job)?.as_slice())?;
    if old_status == Some(job.status) {
        return Ok(());
    }
    if job.status.is_finished() {
        // A held job cancelled while it waited leaves the queue of its server, and a
        // finished job is no longer its agent's.
        tx.open_table(HELD)?.remove((job.server_id, job.id))?;
        if let Some(agent) = &job.agent_id {
            tx.open_table(CLAIMS)?.remove((agent.as_str(), job.id))?;
        }
    }
    let mut by_status = tx.open_table(JOBS_BY_STATUS)?;
    let mut paired = [
        (tx.open_table(JOBS_BY_USER_STATUS)?, job.user_id),
        (tx.open_table(JOBS_BY_PLAYBOOK_STATUS)?, job.playbook_id),
        (tx.open_table(JOBS_BY_SERVER_STATUS)?, job.server_id),
    ];
    let mut counters = tx.open_table(COUNTERS)?;
    let keys = counter_keys(job);
    match old_status {
        Some(old) => {
            by_status.remove((old.as_str(), job.id))?;
            for (index, key) in &mut paired {
                index.remove((*key, old.as_str(), job.id))?;
            }
            for (scope, playbook) in keys {
                add(&mut counters, (scope, playbook, old.as_str()), -1)?;
            }
        }
        None => {
            tx.open_table(JOBS_BY_PLAYBOOK)?
                .insert((job.playbook_id, job.id), ())?;
            tx.open_table(JOBS_BY_SERVER)?
                .insert((job.server_id, job.id), ())?;
            tx.open_table(JOBS_BY_USER)?
                .insert((job.user_id, job.id), ())?;
        }
    }
    by_status.insert((job.status.as_str(), job.id), ())?;
    for (index, key) in &mut paired {
        index.insert((*key, job.status.as_str(), job.id), ())?;
    }
    for (scope, playbook) in keys {
        add(&mut counters, (scope, playbook, job.status.as_str()), 1)?;
    }
    super::timeline::count(tx, job, old_status, duration_ms(job))?;
    let newly_finished = job.status.is_finished() && !old_status.is_some_and(|s| s.is_finished());
    if let (true, Some(ms)) = (newly_finished, duration_ms(job)) {
        for (scope, playbook) in keys {
            add(&mut counters, (scope, playbook, DURATION_MS), ms as i64)?;
            add(&mut counters, (scope, playbook, TIMED_JOBS), 1)?;
        }
    }
    Ok(())
}

/// Milliseconds from start to completion, for jobs that ran.
pub fn duration_ms(job: &JobRecord) -> Option<u64> {
    let (start, end) = (job.started_at?, job.completed_at?);
    u64::try_from((end - start).num_milliseconds()).ok()
}

/// The four counters a job counts in: everyone and its user, over all playbooks and its own.
fn counter_keys(job: &JobRecord) -> [(u64, u64); 4] {
    [
        (ALL_USERS, ALL_PLAYBOOKS),
        (ALL_USERS, job.playbook_id),
        (job.user_id, ALL_PLAYBOOKS),
        (job.user_id, job.playbook_id),
    ]
}

fn add(
    counters: &mut Table<(u64, u64, &str), u64>,
    key: (u64, u64, &str),
    delta: i64,
) -> Result<(), Error> {
    let current = counters.get(key)?.map_or(0, |v| v.value());
    let next = current.saturating_add_signed(delta);
    if next == 0 {
        counters.remove(key)?;
    } else {
        counters.insert(key, next)?;
    }
    Ok(())
}

/// Jobs per status for a scope and playbook, from the counters.
pub fn status_counts(
    counters: &impl ReadableTable<(u64, u64, &'static str), u64>,
    scope: u64,
    playbook: u64,
) -> Result<[(JobStatus, u64); 5], Error> {
    let mut counts = JobStatus::ALL.map(|status| (status, 0));
    for (status, count) in &mut counts {
        *count = counters
            .get((scope, playbook, status.as_str()))?
            .map_or(0, |v| v.value());
    }
    Ok(counts)
}

pub fn counter(
    counters: &impl ReadableTable<(u64, u64, &'static str), u64>,
    key: (u64, u64, &str),
) -> Result<u64, Error> {
    Ok(counters.get(key)?.map_or(0, |v| v.value()))
}
