//! Hourly counters for the statistics page's charts: jobs created, finished by outcome,
//! and their run time, per UTC hour. [`super::job_index::put_job`] keeps them in the
//! same commit as the job, so a chart of the last day reads 24 hours of counters instead
//! of decoding every job. A store written before these counters existed shows its older
//! hours as empty.

use super::Store;
use super::records::JobRecord;
use super::tables::TIMELINE;
use crate::error::Error;
use chrono::{DateTime, Utc};
use drover_shared::JobStatus;
use redb::{ReadableTable, WriteTransaction};

/// Jobs created in the hour.
const CREATED: &str = "created";
/// Sum of run times, in milliseconds, of jobs that finished in the hour after running.
const DURATION_MS: &str = "duration_ms";
/// How many jobs [`DURATION_MS`] adds up.
const TIMED_JOBS: &str = "timed_jobs";

/// One UTC hour of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct HourBucket {
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    pub created: u64,
    pub success: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub duration_ms: u64,
    pub timed_jobs: u64,
}

/// Hours since the Unix epoch: the counters' key.
fn hour_of(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0) / 3600
}

/// Counts a change of `job` (called by `put_job` only when its status changed):
/// a new job in its creation hour, a newly finished one in its completion hour.
pub(super) fn count(
    tx: &WriteTransaction,
    job: &JobRecord,
    old_status: Option<JobStatus>,
    duration_ms: Option<u64>,
) -> Result<(), Error> {
    let newly_finished = job.status.is_finished() && !old_status.is_some_and(|s| s.is_finished());
    if old_status.is_some() && !newly_finished {
        return Ok(());
    }
    let mut table = tx.open_table(TIMELINE)?;
    let mut add = |hour: u64, field: &str, delta: u64| -> Result<(), Error> {
        let current = table.get((hour, field))?.map_or(0, |v| v.value());
        table.insert((hour, field), current.saturating_add(delta))?;
        Ok(())
    };
    if old_status.is_none() {
        add(hour_of(job.created_at), CREATED, 1)?;
    }
    if newly_finished {
        let hour = hour_of(job.completed_at.unwrap_or(job.updated_at));
        add(hour, job.status.as_str(), 1)?;
        if let Some(ms) = duration_ms {
            add(hour, DURATION_MS, ms)?;
            add(hour, TIMED_JOBS, 1)?;
        }
    }
    Ok(())
}

impl Store {
    /// The `hours` whole UTC hours up to and including the one `now` falls in, oldest
    /// first; hours without jobs are there with zeros.
    pub async fn timeline(&self, hours: u64, now: DateTime<Utc>) -> Result<Vec<HourBucket>, Error> {
        let last = hour_of(now);
        let first = last.saturating_sub(hours.saturating_sub(1));
        self.read(move |tx| {
            let table = tx.open_table(TIMELINE)?;
            let mut buckets: Vec<HourBucket> = (first..=last)
                .map(|hour| HourBucket {
                    hour: DateTime::from_timestamp((hour * 3600) as i64, 0).unwrap_or_default(),
                    created: 0,
                    success: 0,
                    failed: 0,
                    cancelled: 0,
                    duration_ms: 0,
                    timed_jobs: 0,
                })
                .collect();
            for entry in table.range((first, "")..(last + 1, ""))? {
                let (key, value) = entry?;
                let (hour, field) = key.value();
                let bucket = &mut buckets[(hour - first) as usize];
                let slot = match field {
                    CREATED => &mut bucket.created,
                    DURATION_MS => &mut bucket.duration_ms,
                    TIMED_JOBS => &mut bucket.timed_jobs,
                    "success" => &mut bucket.success,
                    "failed" => &mut bucket.failed,
                    "cancelled" => &mut bucket.cancelled,
                    _ => continue,
                };
                *slot = value.value();
            }
            Ok(buckets)
        })
        .await
    }
}
