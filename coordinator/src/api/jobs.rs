//! `POST /jobs`, `GET /jobs`, `GET /jobs/statistics`, `GET /jobs/{id}` and what a job
//! shows: its logs, events and per-host recap.

use super::AppState;
use super::audit;
use super::auth::authorize;
use super::body;
use super::list_views::{JobSummaryView, PageView, StatisticsView};
use super::log_filter;
use super::query::{self, Query};
use super::reply::respond;
use super::views::{EventPageView, EventView, HostsView, JobView, LogPageView};
use crate::dispatch;
use crate::error::Error;
use crate::store::{
    JobDetail, JobFilter, JobProgress, JobQuery, JobRecord, NewJob, PlaybookRecord, Role,
    ServerRecord, UserRecord,
};
use crate::validate;
use bytes::Bytes;
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::Response;

/// Lines returned by one `GET /jobs/{id}/logs` when no `limit` is given.
const DEFAULT_LOG_LIMIT: usize = 100;
/// Most lines one page may hold.
pub(super) const MAX_LOG_LIMIT: usize = 5000;
/// Highest ansible-playbook verbosity (`-vvvvv`).
const MAX_VERBOSITY: u8 = 5;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "playbook_id": 1,
    "server_id": 1,
    "extra_vars": {"version": "1.4.2"},
    "timeout": 600,
    "verbosity": 0
})))]
pub struct CreateJob {
    playbook_id: u64,
    server_id: u64,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    extra_vars: serde_json::Value,
    /// Seconds; overrides the playbook's default timeout.
    timeout: Option<u64>,
    #[serde(default)]
    verbosity: u8,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

pub async fn create(state: AppState, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let request: CreateJob = body::parse(&raw)?;
        validate::extra_vars(&request.extra_vars)?;
        if request.verbosity > MAX_VERBOSITY {
            return Err(Error::Invalid(format!(
                "verbosity {} is too high; use 0 to {MAX_VERBOSITY}",
                request.verbosity
            )));
        }
        if request.timeout == Some(0) {
            return Err(Error::Invalid("timeout must be at least 1 second".into()));
        }
        let audit = audit::entry(
            &user,
            "POST /jobs",
            serde_json::json!({
                "playbook_id": request.playbook_id,
                "server_id": request.server_id,
                "extra_vars": request.extra_vars,
                "timeout": request.timeout,
                "verbosity": request.verbosity,
            }),
        );
        let (job, playbook, server) = state
            .store
            .create_job(
                NewJob {
                    playbook_id: request.playbook_id,
                    server_id: request.server_id,
                    user_id: user.id,
                    extra_vars: request.extra_vars,
                    timeout_secs: request.timeout,
                    verbosity: request.verbosity,
                    retry_of: None,
                },
                audit,
            )
            .await
            .map_err(|e| match e {
                // The ids come from the body, so a missing record is a bad request value.
                Error::NotFound { kind, id } => {
                    Error::Invalid(format!("{kind} {id} does not exist"))
                }
                other => other,
            })?;
        Ok(announce(&state, job, playbook, server, user).await)
    }
    .await;
    respond(StatusCode::CREATED, result)
}

/// Tells watchers about a new job and hands it to its pool; returns the job as the API
/// shows it. The job is durable already: if the bus is down the redispatcher retries it.
pub(super) async fn announce(
    state: &AppState,
    job: JobRecord,
    playbook: PlaybookRecord,
    server: ServerRecord,
    user: UserRecord,
) -> JobView {
    state.hub.publish(&[JobProgress::of(&job, true)]);
    // A held job is dispatched when its server is free (see `dispatch::release_loop`).
    if !job.held
        && let Err(e) = dispatch::publish(&state.js, &job, &playbook, &server).await
    {
        tracing::warn!(job = job.id, error = %e, "dispatch deferred");
        state.undispatched.insert(job.id);
    }
    JobView::from(JobDetail {
        job,
        playbook: Some(playbook),
        server: Some(server),
        user: Some(user),
    })
}

/// `GET /jobs?status=&playbook_id=&server_id=&user_id=&created_after=&created_before=&page=&per_page=`,
/// newest first.
pub async fn list(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let request = JobQuery {
            status: query::status(&query)?,
            playbook_id: query::optional_number(&query, "playbook_id")?,
            server_id: query::optional_number(&query, "server_id")?,
            user_id: query::optional_number(&query, "user_id")?,
            created_after: query::time(&query, "created_after")?,
            created_before: query::time(&query, "created_before")?,
            page: query::page(&query)?,
        };
        let page = state.store.list_jobs(request).await?;
        let now = tokio::time::Instant::now();
        Ok::<_, Error>(PageView::new(page, |detail| {
            let reason = pending_reason(&state, &detail, now);
            let mut view = JobSummaryView::from(detail);
            view.pending_reason = reason;
            view
        }))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `GET /jobs/statistics[?user_id=N]`.
pub async fn statistics(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let user_id = query::optional_number(&query, "user_id")?;
        let stats = state.store.statistics(user_id).await?;
        Ok::<_, Error>(StatisticsView::from(stats))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// Why a job waits, if it is pending: its server is busy, or its pool's agents explain it.
fn pending_reason(
    state: &AppState,
    detail: &JobDetail,
    now: tokio::time::Instant,
) -> Option<String> {
    let job = &detail.job;
    if job.status != drover_shared::JobStatus::Pending || job.agent_id.is_some() {
        return None;
    }
    if job.held {
        let server = detail.server.as_ref().map_or_else(
            || job.server_id.to_string(),
            |s| format!("'{}'", s.hostname),
        );
        return Some(format!(
            "waiting for server {server} to be free: the playbook does not allow simultaneous runs"
        ));
    }
    state.agents.pending_reason(&job.pool, now)
}

/// `GET /jobs/42` or `GET /jobs/550e8400-e29b-41d4-a716-446655440000`.
pub fn parse_job_ref(raw: &str) -> Result<JobFilter, Error> {
    if let Ok(id) = raw.parse::<u64>() {
        return Ok(JobFilter::Id(id));
    }
    Uuid::parse_str(raw)
        .map(JobFilter::Uuid)
        .map_err(|_| Error::not_found("job", raw))
}

pub(super) async fn find(state: &AppState, raw: &str) -> Result<JobDetail, Error> {
    state
        .store
        .job_detail(parse_job_ref(raw)?)
        .await?
        .ok_or_else(|| Error::not_found("job", raw))
}

pub async fn get(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let detail = find(&state, &id).await?;
        let reason = pending_reason(&state, &detail, tokio::time::Instant::now());
        let mut view = JobView::from(detail);
        view.pending_reason = reason;
        Ok::<_, Error>(view)
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn logs(
    state: AppState,
    id: String,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let start_line = query::number(&query, "start_line", 0)?;
        let limit = page_limit(&query)?;
        let filter = log_filter::parse(&query)?;
        let job = find(&state, &id).await?.job;
        if filter.is_empty() {
            let page = state.store.log_page(job.id, start_line, limit).await?;
            return Ok(LogPageView::new(page, start_line));
        }
        let found = state
            .store
            .log_matches(job.id, start_line, limit, filter)
            .await?;
        Ok(LogPageView::matching(found))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `limit` of a paged read: 1 to [`MAX_LOG_LIMIT`], [`DEFAULT_LOG_LIMIT`] when absent.
fn page_limit(query: &HashMap<String, String>) -> Result<usize, Error> {
    let limit = query::number(query, "limit", DEFAULT_LOG_LIMIT as u64)?;
    if limit == 0 || limit > MAX_LOG_LIMIT as u64 {
        return Err(Error::Invalid(format!(
            "limit {limit} is out of range; use 1 to {MAX_LOG_LIMIT}"
        )));
    }
    Ok(limit as usize)
}

/// `GET /jobs/{id}/events?after_counter=N&limit=M`: ansible-runner events, oldest first.
pub async fn events(
    state: AppState,
    id: String,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let after = query::number(&query, "after_counter", 0)?;
        let limit = page_limit(&query)?;
        let job = find(&state, &id).await?.job;
        let (events, has_more) = state.store.event_page(job.id, after, limit).await?;
        let events: Vec<EventView> = events.into_iter().map(EventView::from).collect();
        Ok(EventPageView {
            job_id: job.id,
            returned_events: events.len(),
            events,
            has_more,
        })
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `GET /jobs/{id}/hosts`: the per-host recap of the run.
pub async fn hosts(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let job = find(&state, &id).await?.job;
        Ok::<_, Error>(HostsView {
            job_id: job.id,
            status: job.status,
            hosts: job.host_recap,
        })
    }
    .await;
    respond(StatusCode::OK, result)
}
