//! Wake-ups for live watchers. The store is the only source of lines: after every ingest
//! commit the hub bumps a per-job counter, and each watcher (SSE stream, WebSocket
//! subscription) then reads what it has not sent yet from the store. A watcher that
//! subscribes, then reads, can therefore never miss a line, and a slow one costs
//! ingestion nothing. Status changes of all jobs also go out on one broadcast channel.

use crate::store::JobProgress;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use drover_shared::JobStatus;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Status changes kept for WebSocket clients; one that falls further behind is dropped.
const STATUS_BACKLOG: usize = 4096;

/// A status change as live clients receive it.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent {
    pub job_id: u64,
    pub job_uuid: Uuid,
    pub status: JobStatus,
    pub exit_code: Option<i32>,
    pub total_lines: u64,
    pub playbook_id: u64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<&JobProgress> for StatusEvent {
    fn from(p: &JobProgress) -> StatusEvent {
        StatusEvent {
            job_id: p.job_id,
            job_uuid: p.job_uuid,
            status: p.status,
            exit_code: p.exit_code,
            total_lines: p.total_lines,
            playbook_id: p.playbook_id,
            created_at: p.created_at,
            started_at: p.started_at,
            completed_at: p.completed_at,
        }
    }
}

pub struct Hub {
    /// Per job: a counter bumped after each commit that touched it.
    jobs: DashMap<u64, watch::Sender<u64>>,
    statuses: broadcast::Sender<StatusEvent>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            jobs: DashMap::new(),
            statuses: broadcast::channel(STATUS_BACKLOG).0,
        }
    }
}

impl Hub {
    /// Subscribes to a job's changes. Subscribe first, then read the store.
    pub fn watch(&self, job_id: u64) -> watch::Receiver<u64> {
        self.jobs
            .entry(job_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Forgets a job nobody watches any more.
    pub fn release(&self, job_id: u64) {
        self.jobs
            .remove_if(&job_id, |_, sender| sender.receiver_count() == 0);
    }

    pub fn statuses(&self) -> broadcast::Receiver<StatusEvent> {
        self.statuses.subscribe()
    }

    /// Tells watchers what a commit changed.
    pub fn publish(&self, progress: &[JobProgress]) {
        for job in progress {
            if let Some(sender) = self.jobs.get(&job.job_id) {
                sender.send_modify(|version| *version += 1);
            }
            if job.status_changed {
                // No receiver is fine: nobody is watching statuses right now.
                let _ = self.statuses.send(StatusEvent::from(job));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(job_id: u64, status_changed: bool) -> JobProgress {
        JobProgress {
            job_id,
            job_uuid: Uuid::new_v4(),
            status: JobStatus::Running,
            exit_code: None,
            total_lines: 3,
            status_changed,
            playbook_id: 1,
            created_at: Utc::now(),
            started_at: None,
            completed_at: None,
        }
    }

    #[tokio::test]
    async fn watchers_wake_for_their_job_only() {
        let hub = Hub::default();
        let mut one = hub.watch(1);
        let mut two = hub.watch(2);
        hub.publish(&[progress(1, false)]);
        assert!(one.has_changed().expect("open"));
        assert!(!two.has_changed().expect("open"));
        one.mark_unchanged();
        two.mark_unchanged();
    }

    #[tokio::test]
    async fn only_status_changes_are_broadcast() {
        let hub = Hub::default();
        let mut statuses = hub.statuses();
        hub.publish(&[progress(1, false), progress(2, true)]);
        let event = statuses.recv().await.expect("one event");
        assert_eq!(event.job_id, 2);
        assert!(statuses.try_recv().is_err());
    }

    #[test]
    fn released_jobs_are_forgotten_once_unwatched() {
        let hub = Hub::default();
        let watcher = hub.watch(7);
        hub.release(7);
        assert!(hub.jobs.contains_key(&7), "still watched");
        drop(watcher);
        hub.release(7);
        assert!(!hub.jobs.contains_key(&7));
    }
}
