//! `GET /jobs/{id}/logs/stream`: Server-Sent Events. One `log` event per line with
//! `id` = line number, `status` events when the status changes, and a final `end` event
//! once the job is finished and every line has been sent. Resumes after the line named
//! by `Last-Event-ID` or `?after_line=N`.

use super::AppState;
use super::auth::{Role, authorize_request};
use super::jobs::find;
use super::query;
use super::reply::error_response;
use super::views::LogLineView;
use crate::error::Error;
use crate::follow::{FollowItem, follow};
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;
use warp::Reply;
use warp::reply::Response;
use warp::sse::Event;

/// Comment lines that keep idle connections (and proxies) from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn logs(
    state: AppState,
    id: String,
    auth: Option<String>,
    last_event_id: Option<String>,
    query: HashMap<String, String>,
) -> Response {
    let start = async {
        authorize_request(&state.store, auth.as_deref(), &query, Role::Viewer).await?;
        let after_line = match last_event_id {
            Some(raw) => raw.trim().parse::<u64>().map_err(|_| {
                Error::BadRequest(format!("Last-Event-ID '{raw}' is not a line number"))
            })?,
            None => query::number(&query, "after_line", 0)?,
        };
        let job = find(&state, &id).await?.job;
        Ok::<_, Error>((job.id, after_line))
    }
    .await;
    let (job_id, after_line) = match start {
        Ok(start) => start,
        Err(e) => return error_response(&e),
    };
    let items = follow(state.store.clone(), state.hub.clone(), job_id, after_line);
    let events = futures::stream::unfold(items, move |mut items| async move {
        let item = items.recv().await?;
        Some((Ok::<_, Infallible>(to_event(job_id, item)), items))
    });
    warp::sse::reply(warp::sse::keep_alive().interval(KEEP_ALIVE).stream(events)).into_response()
}

fn to_event(job_id: u64, item: FollowItem) -> Event {
    match item {
        FollowItem::Line(number, record) => {
            let line = LogLineView::new(number, record);
            Event::default()
                .id(number.to_string())
                .event("log")
                .data(serde_json::to_string(&line).unwrap_or_default())
        }
        FollowItem::Status {
            status,
            exit_code,
            total_lines,
        } => Event::default().event("status").data(
            json!({"job_id": job_id, "status": status, "exit_code": exit_code, "total_lines": total_lines})
                .to_string(),
        ),
        FollowItem::End { status, exit_code } => Event::default().event("end").data(
            json!({"job_id": job_id, "status": status, "exit_code": exit_code}).to_string(),
        ),
        FollowItem::Failed(detail) => Event::default()
            .event("error")
            .data(json!({"job_id": job_id, "detail": detail}).to_string()),
    }
}
