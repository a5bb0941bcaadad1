//! What operators do to a job: `POST /jobs/{id}/cancel`, `/retry` and `/ticket`.

use super::AppState;
use super::admin_views::TicketView;
use super::audit;
use super::auth::authorize;
use super::body;
use super::jobs::{announce, find};
use super::reply::{json, respond};
use crate::cancel;
use crate::error::Error;
use crate::store::{CancelOutcome, NewTicket, Priority, Role};
use crate::validate;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

/// How long a cancel of a running job waits for the agent to confirm before answering
/// 202. The agent kills the run within a second or two; this covers a loaded host.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// The spec's cancel response.
#[derive(Serialize, ToSchema)]
pub struct CancelView {
    pub job_id: String,
    pub status: drover_shared::JobStatus,
    pub message: String,
}

pub async fn cancel(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let job = find(&state, &id).await?.job;
        // Watch before the change so the agent's confirmation cannot slip past.
        let mut changes = state.hub.watch(job.id);
        let audit = audit::entry(
            &user,
            "POST /jobs/{id}/cancel",
            serde_json::json!({"id": job.id}),
        );
        let outcome = state
            .store
            .cancel_job(job.id, user.username.clone(), audit)
            .await;
        let answer = match outcome {
            Ok(CancelOutcome::Cancelled(job)) => {
                state
                    .hub
                    .publish(&[crate::store::JobProgress::of(&job, true)]);
                if job.agent_id.is_some() {
                    // Claimed but not started: its agent must not start it.
                    cancel::send(&state.client, job.uuid, &user.username).await;
                }
                Ok((StatusCode::OK, cancelled(&job.uuid.to_string())))
            }
            Ok(CancelOutcome::Requested(job)) => {
                cancel::send(&state.client, job.uuid, &user.username).await;
                let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
                let mut answer = None;
                while answer.is_none() {
                    let current = find(&state, &job.id.to_string()).await?.job;
                    if current.status.is_finished() {
                        answer = Some(finished_after_cancel(&current));
                        break;
                    }
                    if !matches!(
                        tokio::time::timeout_at(deadline, changes.changed()).await,
                        Ok(Ok(()))
                    ) {
                        break;
                    }
                }
                answer.unwrap_or_else(|| {
                    Ok((
                        StatusCode::ACCEPTED,
                        CancelView {
                            job_id: job.uuid.to_string(),
                            status: job.status,
                            message: format!(
                                "cancel requested; agent {} has not confirmed yet",
                                job.agent_id.as_deref().unwrap_or("?")
                            ),
                        },
                    ))
                })
            }
            Err(e) => Err(e),
        };
        drop(changes);
        state.hub.release(job.id);
        answer
    }
    .await;
    match result {
        Ok((status, view)) => json(status, &view),
        Err(e) => respond::<()>(StatusCode::OK, Err(e)),
    }
}

fn cancelled(job_uuid: &str) -> CancelView {
    CancelView {
        job_id: job_uuid.to_owned(),
        status: drover_shared::JobStatus::Cancelled,
        message: "Job cancelled successfully".into(),
    }
}

/// A running job ended while its cancel was on the way: cancelled, or it finished first.
fn finished_after_cancel(job: &crate::store::JobRecord) -> Result<(StatusCode, CancelView), Error> {
    if job.status == drover_shared::JobStatus::Cancelled {
        Ok((StatusCode::OK, cancelled(&job.uuid.to_string())))
    } else {
        Err(Error::Conflict(format!(
            "job {} finished as {} before the cancel reached it",
            job.id, job.status
        )))
    }
}

pub async fn retry(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let original = find(&state, &id).await?.job;
        let audit = audit::entry(
            &user,
            "POST /jobs/{id}/retry",
            serde_json::json!({"id": original.id}),
        );
        let (job, playbook, server) = state.store.retry_job(original.id, user.id, audit).await?;
        Ok::<_, Error>(announce(&state, job, playbook, server, user).await)
    }
    .await;
    respond(StatusCode::CREATED, result)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "title": "deploy failed on web-01",
    "description": "the health check timed out after the restart",
    "priority": "high"
})))]
pub struct CreateTicket {
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_priority")]
    priority: Priority,
}

fn default_priority() -> Priority {
    Priority::Medium
}

/// Longest ticket title and description.
const MAX_TITLE: usize = 200;
const MAX_DESCRIPTION: usize = 10_000;

pub async fn ticket(state: AppState, id: String, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let request: CreateTicket = body::parse(&raw)?;
        validate::non_empty("title", &request.title, MAX_TITLE)?;
        if request.description.len() > MAX_DESCRIPTION {
            return Err(Error::Invalid(format!(
                "description is {} bytes; the limit is {MAX_DESCRIPTION}",
                request.description.len()
            )));
        }
        let job = find(&state, &id).await?.job;
        let audit = audit::entry(
            &user,
            "POST /jobs/{id}/ticket",
            serde_json::json!({"id": job.id, "title": request.title, "priority": request.priority}),
        );
        let ticket = state
            .store
            .create_ticket(
                job.id,
                NewTicket {
                    title: request.title,
                    description: request.description,
                    priority: request.priority,
                },
                user.id,
                audit,
            )
            .await?;
        Ok(TicketView::from(ticket))
    }
    .await;
    respond(StatusCode::CREATED, result)
}
