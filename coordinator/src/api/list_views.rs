//! JSON of lists and summaries: the spec's `{items, pagination}`, the job list's items and
//! the statistics.

use super::views::{PlaybookRef, UserRef, opt_timestamp, timestamp};
use crate::store::{JobDetail, Paged, Statistics};
use drover_shared::JobStatus;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Pagination {
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
    pub pages: u64,
}

#[derive(Serialize, ToSchema)]
pub struct PageView<T: ToSchema> {
    pub items: Vec<T>,
    pub pagination: Pagination,
}

impl<T: ToSchema> PageView<T> {
    pub fn new<R>(paged: Paged<R>, view: impl Fn(R) -> T) -> PageView<T> {
        let per_page = paged.page.per_page;
        PageView {
            items: paged.items.into_iter().map(view).collect(),
            pagination: Pagination {
                page: paged.page.page,
                per_page,
                total: paged.total,
                pages: paged.total.div_ceil(per_page),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ServerBrief {
    pub id: u64,
    pub hostname: String,
}

/// A job in a list: the spec's list fields plus how it ended.
#[derive(Serialize, ToSchema)]
pub struct JobSummaryView {
    pub id: u64,
    pub job_id: String,
    pub status: JobStatus,
    pub playbook: Option<PlaybookRef>,
    pub server: Option<ServerBrief>,
    pub user: Option<UserRef>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub exit_code: Option<i32>,
    pub retry_of: Option<u64>,
    /// Why a pending job has not started, when the agents explain it.
    pub pending_reason: Option<String>,
    pub created_at: String,
}

impl From<JobDetail> for JobSummaryView {
    fn from(detail: JobDetail) -> JobSummaryView {
        let job = detail.job;
        JobSummaryView {
            id: job.id,
            job_id: job.uuid.to_string(),
            status: job.status,
            playbook: detail.playbook.map(PlaybookRef::from),
            server: detail.server.map(|s| ServerBrief {
                id: s.id,
                hostname: s.hostname,
            }),
            user: detail.user.map(UserRef::from),
            started_at: opt_timestamp(job.started_at),
            completed_at: opt_timestamp(job.completed_at),
            exit_code: job.exit_code,
            retry_of: job.retry_of,
            pending_reason: None,
            created_at: timestamp(job.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlaybookStatsView {
    pub playbook_id: u64,
    pub playbook_name: String,
    pub total: u64,
    pub success: u64,
    pub failed: u64,
}

#[derive(Serialize, ToSchema)]
pub struct RecentFailureView {
    pub job_id: u64,
    pub playbook: String,
    pub server: String,
    pub failed_at: Option<String>,
    pub error: Option<String>,
}

/// `GET /jobs/statistics`, field for field as the spec's example.
#[derive(Serialize, ToSchema)]
pub struct StatisticsView {
    pub total: u64,
    pub pending: u64,
    pub running: u64,
    pub success: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Percent of all jobs that succeeded (the spec's 1100 of 1250 is 88.0).
    pub success_rate: f64,
    /// Mean seconds from start to end of finished jobs that ran.
    pub average_duration: f64,
    pub by_playbook: Vec<PlaybookStatsView>,
    pub recent_failures: Vec<RecentFailureView>,
}

impl From<Statistics> for StatisticsView {
    fn from(stats: Statistics) -> StatisticsView {
        let count = |wanted: JobStatus| {
            stats
                .counts
                .iter()
                .find(|(status, _)| *status == wanted)
                .map_or(0, |(_, n)| *n)
        };
        let total: u64 = stats.counts.iter().map(|(_, n)| n).sum();
        let success = count(JobStatus::Success);
        StatisticsView {
            total,
            pending: count(JobStatus::Pending),
            running: count(JobStatus::Running),
            success,
            failed: count(JobStatus::Failed),
            cancelled: count(JobStatus::Cancelled),
            success_rate: ratio(success as f64 * 100.0, total),
            average_duration: ratio(stats.duration_ms as f64 / 1000.0, stats.timed_jobs),
            by_playbook: stats
                .by_playbook
                .into_iter()
                .map(|p| PlaybookStatsView {
                    playbook_id: p.playbook_id,
                    playbook_name: p.playbook_name,
                    total: p.total,
                    success: p.success,
                    failed: p.failed,
                })
                .collect(),
            recent_failures: stats
                .recent_failures
                .into_iter()
                .map(|detail| RecentFailureView {
                    job_id: detail.job.id,
                    playbook: detail.playbook.map_or_else(
                        || format!("playbook {}", detail.job.playbook_id),
                        |p| p.name,
                    ),
                    server: detail.server.map_or_else(
                        || format!("server {}", detail.job.server_id),
                        |s| s.hostname,
                    ),
                    failed_at: opt_timestamp(detail.job.completed_at),
                    error: detail.job.error,
                })
                .collect(),
        }
    }
}

/// `part / whole`, rounded to two decimals; 0 when there is nothing to divide by.
fn ratio(part: f64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part / whole as f64 * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_to_two_decimals() {
        assert_eq!(ratio(1100.0 * 100.0, 1250), 88.0);
        assert_eq!(ratio(100.0, 3), 33.33);
        assert_eq!(ratio(5.0, 0), 0.0);
    }
}
