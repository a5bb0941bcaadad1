//! `GET /jobs/timeline?hours=24`: jobs per UTC hour for the statistics page's charts,
//! read from the hourly counters the store keeps with every job change.

use super::AppState;
use super::auth::authorize;
use super::query::{self, Query};
use super::reply::respond;
use super::views::timestamp;
use crate::error::Error;
use crate::store::{HourBucket, Role};
use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

/// Hours shown when `hours` is absent: one day.
const DEFAULT_HOURS: u64 = 24;
/// Longest window: 30 days.
pub const MAX_HOURS: u64 = 720;

/// One UTC hour. `total` counts jobs created in it; the outcomes and the average count
/// jobs that finished in it.
#[derive(Serialize, ToSchema)]
pub struct HourView {
    /// Start of the hour (UTC).
    pub hour: String,
    pub total: u64,
    pub success: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Mean run time of the jobs that finished in this hour after running; null if none.
    pub avg_duration_seconds: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct TimelineView {
    pub hours: u64,
    /// Oldest first; the last is the current hour.
    pub buckets: Vec<HourView>,
}

impl From<HourBucket> for HourView {
    fn from(b: HourBucket) -> HourView {
        HourView {
            hour: timestamp(b.hour),
            total: b.created,
            success: b.success,
            failed: b.failed,
            cancelled: b.cancelled,
            avg_duration_seconds: (b.timed_jobs > 0)
                .then(|| b.duration_ms as f64 / 1000.0 / b.timed_jobs as f64),
        }
    }
}

pub async fn get(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let hours = query::number(&query, "hours", DEFAULT_HOURS)?;
        if hours == 0 || hours > MAX_HOURS {
            return Err(Error::Invalid(format!(
                "hours {hours} is out of range; use 1 to {MAX_HOURS}"
            )));
        }
        let buckets = state.store.timeline(hours, chrono::Utc::now()).await?;
        Ok(TimelineView {
            hours,
            buckets: buckets.into_iter().map(HourView::from).collect(),
        })
    }
    .await;
    respond(StatusCode::OK, result)
}
