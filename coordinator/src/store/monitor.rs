//! What the monitor needs from the store each round, read from indexes and counters:
//! jobs per status, pending jobs per pool, the running jobs, each playbook's failure
//! streak and mean duration, and how jobs created in a recent window ended. Only running
//! jobs (bounded by the agents' slots) and one job per playbook are decoded.

use super::Store;
use super::job_index::{ALL_PLAYBOOKS, ALL_USERS, DURATION_MS, TIMED_JOBS, counter, status_counts};
use super::job_list::id_range_by_time;
use super::records::{JobRecord, PlaybookRecord, ServerRecord};
use super::tables::{
    COUNTERS, JOBS, JOBS_BY_PLAYBOOK_STATUS, JOBS_BY_SERVER_STATUS, JOBS_BY_STATUS, PLAYBOOKS,
    SERVERS, decode,
};
use crate::error::Error;
use chrono::{DateTime, Utc};
use drover_shared::JobStatus;
use redb::ReadableTable;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The store's part of one monitoring round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreObservation {
    pub jobs_by_status: Vec<(JobStatus, u64)>,
    /// Pending jobs per pool of their server; every pool that has a server is listed.
    pub pending_by_pool: BTreeMap<String, u64>,
    pub running: Vec<RunningJob>,
    pub playbooks: Vec<PlaybookHealth>,
    /// Jobs created since the window's start that have finished, and how many failed.
    pub window_finished: u64,
    pub window_failed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    pub id: u64,
    pub uuid: Uuid,
    pub playbook: String,
    pub pool: String,
    pub started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlaybookHealth {
    pub id: u64,
    pub name: String,
    /// Failed jobs submitted after its newest successful one (cancelled jobs neither
    /// break nor extend the streak).
    pub consecutive_failures: u64,
    /// Mean run time of its finished jobs; `None` before the first.
    pub mean_duration_secs: Option<f64>,
}

impl Store {
    pub async fn observe(&self, window_start: DateTime<Utc>) -> Result<StoreObservation, Error> {
        self.read(move |tx| {
            let counters = tx.open_table(COUNTERS)?;
            let jobs = tx.open_table(JOBS)?;
            let by_status = tx.open_table(JOBS_BY_STATUS)?;
            let mut observation = StoreObservation {
                jobs_by_status: status_counts(&counters, ALL_USERS, ALL_PLAYBOOKS)?.to_vec(),
                ..StoreObservation::default()
            };

            let by_server = tx.open_table(JOBS_BY_SERVER_STATUS)?;
            let pending = JobStatus::Pending.as_str();
            for entry in tx.open_table(SERVERS)?.iter()? {
                let server: ServerRecord = decode(entry?.1.value())?;
                let count = by_server
                    .range((server.id, pending, 0)..=(server.id, pending, u64::MAX))?
                    .count() as u64;
                *observation.pending_by_pool.entry(server.pool).or_default() += count;
            }

            let playbooks = tx.open_table(PLAYBOOKS)?;
            let mut names = BTreeMap::new();
            let by_playbook = tx.open_table(JOBS_BY_PLAYBOOK_STATUS)?;
            let (success, failed) = (JobStatus::Success.as_str(), JobStatus::Failed.as_str());
            for entry in playbooks.iter()? {
                let playbook: PlaybookRecord = decode(entry?.1.value())?;
                let newest_success = by_playbook
                    .range((playbook.id, success, 0)..=(playbook.id, success, u64::MAX))?
                    .next_back()
                    .transpose()?
                    .map_or(0, |(key, _)| key.value().2);
                let consecutive_failures = by_playbook
                    .range(
                        (playbook.id, failed, newest_success.saturating_add(1))
                            ..=(playbook.id, failed, u64::MAX),
                    )?
                    .count() as u64;
                let timed = counter(&counters, (ALL_USERS, playbook.id, TIMED_JOBS))?;
                let total_ms = counter(&counters, (ALL_USERS, playbook.id, DURATION_MS))?;
                observation.playbooks.push(PlaybookHealth {
                    id: playbook.id,
                    name: playbook.name.clone(),
                    consecutive_failures,
                    mean_duration_secs: (timed > 0)
                        .then(|| total_ms as f64 / timed as f64 / 1000.0),
                });
                names.insert(playbook.id, playbook.name);
            }

            let running = JobStatus::Running.as_str();
            for entry in by_status.range((running, 0)..=(running, u64::MAX))? {
                let id = entry?.0.value().1;
                let Some(bytes) = jobs.get(id)? else { continue };
                let job: JobRecord = decode(bytes.value())?;
                let playbook = names
                    .get(&job.playbook_id)
                    .cloned()
                    .unwrap_or_else(|| format!("playbook {}", job.playbook_id));
                observation.running.push(RunningJob {
                    id,
                    uuid: job.uuid,
                    playbook,
                    pool: job.pool,
                    started_at: job.started_at,
                });
            }

            if let Some((low, high)) =
                id_range_by_time(&jobs, Some(window_start), None, |job: &JobRecord| {
                    job.created_at
                })?
            {
                for status in JobStatus::ALL.into_iter().filter(|s| s.is_finished()) {
                    let count = by_status
                        .range((status.as_str(), low)..=(status.as_str(), high))?
                        .count() as u64;
                    observation.window_finished += count;
                    if status == JobStatus::Failed {
                        observation.window_failed += count;
                    }
                }
            }
            Ok(observation)
        })
        .await
    }
}
