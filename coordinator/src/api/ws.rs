//! `GET /ws`: a WebSocket for dashboards. A client subscribes to the status changes of
//! all jobs and to the logs of chosen jobs, and may change that at any time:
//!
//! ```json
//! {"action": "subscribe", "statuses": true, "jobs": [42], "after_line": 0}
//! {"action": "unsubscribe", "statuses": false, "jobs": [42]}
//! ```
//!
//! The server sends `{"type": "log" | "status" | "end" | "subscribed" | "error", ...}`.
//! Every client has a bounded queue. One whose queue stays full longer than
//! [`SLOW_CLIENT_GRACE`] (or that falls behind the status backlog) is sent a close frame
//! saying so and disconnected; it never slows ingestion or other clients.

use super::AppState;
use super::auth::{Role, authorize_request};
use super::reply::error_response;
use super::views::LogLineView;
use crate::follow::{FollowItem, follow};
use crate::hub::StatusEvent;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use warp::Reply;
use warp::reply::Response;
use warp::ws::{Message, WebSocket, Ws};

/// Messages waiting to be written to one client.
pub const CLIENT_QUEUE: usize = 1024;
/// How long a client's queue may stay full before the client is dropped.
pub const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(2);
/// How long a dropped client has to read what was queued and the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(30);
/// Close code for "policy violation": the client did not keep up.
const CLOSE_TOO_SLOW: u16 = 1008;

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
enum ClientMessage {
    Subscribe {
        #[serde(default)]
        statuses: bool,
        #[serde(default)]
        jobs: Vec<u64>,
        #[serde(default)]
        after_line: u64,
    },
    Unsubscribe {
        #[serde(default)]
        statuses: bool,
        #[serde(default)]
        jobs: Vec<u64>,
    },
}

/// A text message waiting to be written to the client.
struct Outbound(String);

pub async fn upgrade(
    state: AppState,
    ws: Ws,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Response {
    match authorize_request(&state.store, auth.as_deref(), &query, Role::Viewer).await {
        Ok(_) => ws
            .max_message_size(64 * 1024)
            .on_upgrade(move |socket| serve(socket, state))
            .into_response(),
        Err(e) => error_response(&e),
    }
}

async fn serve(socket: WebSocket, state: AppState) {
    let (mut sink, mut source) = socket.split();
    let (queue, mut outbound) = mpsc::channel::<Outbound>(CLIENT_QUEUE);
    // The close frame jumps the (full) queue: it is the next thing the client reads.
    let (close, mut closing) = tokio::sync::oneshot::channel::<String>();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                reason = &mut closing => {
                    if let Ok(reason) = reason {
                        let _ = sink.send(Message::close_with(CLOSE_TOO_SLOW, reason)).await;
                    }
                    break;
                }
                message = outbound.recv() => match message {
                    Some(Outbound(text)) => {
                        if sink.send(Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
        let _ = sink.close().await;
    });
    // Followers and the status loop report a client that does not keep up here.
    let (kick, mut kicked) = mpsc::channel::<String>(1);
    let mut statuses: Option<broadcast::Receiver<StatusEvent>> = None;
    let mut followers: HashMap<u64, JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            incoming = source.next() => match incoming {
                Some(Ok(message)) if message.is_text() => {
                    let reply = handle(&state, message.to_str().unwrap_or(""), &mut statuses, &mut followers, &queue, &kick).await;
                    if deliver(&queue, reply).await.is_err() {
                        let _ = kick.try_send(too_slow());
                    }
                }
                Some(Ok(message)) if message.is_close() => break,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            event = next_status(&mut statuses) => match event {
                Ok(event) => {
                    let text = json!({"type": "status", "job_id": event.job_id, "job_uuid": event.job_uuid, "status": event.status, "exit_code": event.exit_code, "total_lines": event.total_lines});
                    if deliver(&queue, text).await.is_err() {
                        let _ = kick.try_send(too_slow());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let _ = kick.try_send(format!("client too slow: missed {missed} status changes"));
                }
                Err(broadcast::error::RecvError::Closed) => statuses = None,
            },
            Some(reason) = kicked.recv() => {
                tracing::info!(%reason, "websocket client disconnected");
                let _ = close.send(reason);
                break;
            }
        }
    }
    for (_, follower) in followers {
        follower.abort();
    }
    drop(queue);
    // A client that never reads again cannot hold the connection open for ever.
    let abort = writer.abort_handle();
    if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
        abort.abort();
    }
}

fn too_slow() -> String {
    format!(
        "client too slow: its queue of {CLIENT_QUEUE} messages stayed full for {} s",
        SLOW_CLIENT_GRACE.as_secs()
    )
}

async fn next_status(
    statuses: &mut Option<broadcast::Receiver<StatusEvent>>,
) -> Result<StatusEvent, broadcast::error::RecvError> {
    match statuses {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Queues a message, waiting at most the grace period for room.
async fn deliver(queue: &mpsc::Sender<Outbound>, message: Value) -> Result<(), ()> {
    queue
        .send_timeout(Outbound(message.to_string()), SLOW_CLIENT_GRACE)
        .await
        .map_err(|_| ())
}

async fn handle(
    state: &AppState,
    text: &str,
    statuses: &mut Option<broadcast::Receiver<StatusEvent>>,
    followers: &mut HashMap<u64, JoinHandle<()>>,
    queue: &mpsc::Sender<Outbound>,
    kick: &mpsc::Sender<String>,
) -> Value {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(e) => {
            return json!({"type": "error", "detail": format!("unreadable message: {e}; send {{\"action\": \"subscribe\", \"statuses\": true, \"jobs\": [ID]}}")});
        }
    };
    match message {
        ClientMessage::Subscribe {
            statuses: want_statuses,
            jobs,
            after_line,
        } => {
            if want_statuses && statuses.is_none() {
                *statuses = Some(state.hub.statuses());
            }
            for job_id in &jobs {
                if followers.contains_key(job_id) {
                    continue;
                }
                match state
                    .store
                    .job_detail(crate::store::JobFilter::Id(*job_id))
                    .await
                {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return json!({"type": "error", "detail": format!("job {job_id} not found")});
                    }
                    Err(e) => return json!({"type": "error", "detail": e.to_string()}),
                }
                let items = follow(state.store.clone(), state.hub.clone(), *job_id, after_line);
                followers.insert(
                    *job_id,
                    tokio::spawn(forward(*job_id, items, queue.clone(), kick.clone())),
                );
            }
        }
        ClientMessage::Unsubscribe {
            statuses: drop_statuses,
            jobs,
        } => {
            if drop_statuses {
                *statuses = None;
            }
            for job_id in jobs {
                if let Some(follower) = followers.remove(&job_id) {
                    follower.abort();
                }
            }
        }
    }
    let mut jobs: Vec<u64> = followers.keys().copied().collect();
    jobs.sort_unstable();
    json!({"type": "subscribed", "statuses": statuses.is_some(), "jobs": jobs})
}

/// Moves one job's followed lines into the client's queue.
async fn forward(
    job_id: u64,
    mut items: mpsc::Receiver<FollowItem>,
    queue: mpsc::Sender<Outbound>,
    kick: mpsc::Sender<String>,
) {
    while let Some(item) = items.recv().await {
        let message = match item {
            FollowItem::Line(number, record) => {
                let line = LogLineView::new(number, record);
                let mut value = serde_json::to_value(&line).unwrap_or(Value::Null);
                value["type"] = json!("log");
                value["job_id"] = json!(job_id);
                value
            }
            FollowItem::Status {
                status,
                exit_code,
                total_lines,
            } => {
                json!({"type": "status", "job_id": job_id, "status": status, "exit_code": exit_code, "total_lines": total_lines})
            }
            FollowItem::End { status, exit_code } => {
                json!({"type": "end", "job_id": job_id, "status": status, "exit_code": exit_code})
            }
            FollowItem::Failed(detail) => {
                json!({"type": "error", "job_id": job_id, "detail": detail})
            }
        };
        if deliver(&queue, message).await.is_err() {
            let _ = kick.try_send(too_slow());
            return;
        }
    }
}
