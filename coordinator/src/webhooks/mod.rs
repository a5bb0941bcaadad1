//! Webhook notifications: admins register URLs (`/webhooks`, [`crate::api`]) for
//! `job.finished`, `job.failed` and `alert`; each such event becomes one signed `POST`
//! per matching webhook, retried with backoff, every attempt written to the delivery log.
//!
//! Nothing on the job path waits for a receiver. Job status changes reach [`run`] on the
//! hub's status broadcast ([`crate::hub::Hub::statuses`]), whose send never blocks: when
//! this loop falls more than the broadcast's backlog behind, the oldest events are
//! *shed and counted* (`events_missed`). Alerts arrive through [`Webhooks::offer_alert`],
//! a bounded queue that also sheds and counts (`alerts_shed`) instead of waiting. For a
//! batch of finished jobs the loop reads the jobs and matching webhooks in one snapshot,
//! stores one `pending` delivery per (event, webhook) in one commit, and starts a task
//! per delivery. Those tasks wait for their due time, take one of their webhook's
//! [`MAX_ATTEMPTS_PER_WEBHOOK`] permits and one of [`MAX_CONCURRENT_ATTEMPTS`] overall
//! for the HTTP attempt ([`deliver`]), and record it
//! ([`crate::store::Store::record_attempt`]); a failure is retried after
//! [`backoff::delay_after`]. Deliveries still pending when the coordinator stops are
//! resumed when it starts.

pub mod backoff;
mod courier;
pub mod deliver;
pub mod payload;
pub mod signature;

use crate::api::AppState;
use crate::config::Config;
use crate::hub::StatusEvent;
use crate::shutdown::Shutdown;
use courier::Courier;
use drover_shared::JobStatus;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};

/// HTTP attempts in flight at once, over all webhooks: a slow receiver holds at most
/// this many while the others wait their turn.
pub const MAX_CONCURRENT_ATTEMPTS: usize = 8;
/// HTTP attempts in flight at once to one webhook: a receiver that hangs until the
/// timeout holds this many of the overall permits, not all of them.
pub const MAX_ATTEMPTS_PER_WEBHOOK: usize = 2;
/// Deliveries waiting in memory (due or backing off). Beyond it a new delivery is stored
/// `failed` ("shed") at once rather than let memory grow behind a dead receiver.
pub const MAX_PENDING: usize = 10_000;
/// Alerts queued for the loop; when full, [`Webhooks::offer_alert`] sheds and counts.
const ALERT_QUEUE: usize = 256;
/// Finished jobs fanned out with one store read and one commit.
const MAX_BATCH: usize = 256;

/// What a webhook subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum WebhookEvent {
    /// A job ended: success, failed or cancelled.
    #[serde(rename = "job.finished")]
    JobFinished,
    /// A job failed.
    #[serde(rename = "job.failed")]
    JobFailed,
    /// A built-in alert fired (see [`Webhooks::offer_alert`]).
    #[serde(rename = "alert")]
    Alert,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::JobFinished => "job.finished",
            WebhookEvent::JobFailed => "job.failed",
            WebhookEvent::Alert => "alert",
        }
    }

    /// The events a job's change to `status` raises: none until it is finished, and a
    /// failed job raises both `job.finished` and `job.failed`.
    pub fn for_status(status: JobStatus) -> &'static [WebhookEvent] {
        match status {
            JobStatus::Failed => &[WebhookEvent::JobFinished, WebhookEvent::JobFailed],
            JobStatus::Success | JobStatus::Cancelled => &[WebhookEvent::JobFinished],
            JobStatus::Pending | JobStatus::Running => &[],
        }
    }
}

/// Delivery settings, from the coordinator's flags.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Wait after the first failed attempt; doubles after each further one.
    pub retry_base: Duration,
    pub max_attempts: u32,
    /// Per attempt, connect to last byte.
    pub timeout: Duration,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            retry_base: Duration::from_millis(config.webhook_retry_base_ms),
            max_attempts: config.webhook_max_attempts,
            timeout: Duration::from_millis(config.webhook_timeout_ms),
        }
    }
}

/// What was shed or missed; logged, and readable with [`Webhooks::counters`].
#[derive(Debug, Default)]
struct Counters {
    events_missed: AtomicU64,
    alerts_shed: AtomicU64,
    deliveries_shed: AtomicU64,
}

/// A snapshot of what the webhook loop shed or missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookCounters)]
pub struct CountersView {
    /// Job status changes the loop fell too far behind to see.
    pub events_missed: u64,
    /// Alerts offered while the queue was full.
    pub alerts_shed: u64,
    /// Deliveries stored failed at once because [`MAX_PENDING`] were pending.
    pub deliveries_shed: u64,
}

/// The handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Webhooks {
    alerts: mpsc::Sender<serde_json::Value>,
    counters: Arc<Counters>,
    settings: Settings,
}

/// The loop's end of the handle's queue; given to [`run`].
pub struct Inbox {
    alerts: mpsc::Receiver<serde_json::Value>,
}

pub fn channel(settings: Settings) -> (Webhooks, Inbox) {
    let (alerts, receiver) = mpsc::channel(ALERT_QUEUE);
    (
        Webhooks {
            alerts,
            counters: Arc::default(),
            settings,
        },
        Inbox { alerts: receiver },
    )
}

impl Webhooks {
    /// Hands an alert to every webhook subscribed to `alert`; the body they get is
    /// `{"event": "alert", "alert": <alert>, ...}`. Never waits: if the queue is full the
    /// alert is dropped, counted (`alerts_shed`), and `false` returned. Meant for the
    /// alert evaluator: `state.webhooks.offer_alert(serde_json::to_value(&alert)?)`.
    pub fn offer_alert(&self, alert: serde_json::Value) -> bool {
        match self.alerts.try_send(alert) {
            Ok(()) => true,
            Err(_) => {
                let shed = self.counters.alerts_shed.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(shed, "webhook alert queue full; alert dropped");
                false
            }
        }
    }

    pub fn counters(&self) -> CountersView {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersView {
            events_missed: read(&self.counters.events_missed),
            alerts_shed: read(&self.counters.alerts_shed),
            deliveries_shed: read(&self.counters.deliveries_shed),
        }
    }
}

/// Turns job status changes and offered alerts into deliveries until `shutdown`.
/// Subscribes to the hub when called, not when first polled: spawned before ingest
/// starts, it misses no job that finishes while the coordinator starts up.
pub fn run(
    state: AppState,
    inbox: Inbox,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + Send + 'static {
    let statuses = state.hub.statuses();
    serve(state, inbox, statuses, shutdown)
}

async fn serve(
    state: AppState,
    mut inbox: Inbox,
    mut statuses: broadcast::Receiver<StatusEvent>,
    mut shutdown: Shutdown,
) {
    let handle = state.webhooks.clone();
    let client = match deliver::client(handle.settings.timeout) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are off");
            return;
        }
    };
    let courier = Courier::new(
        state.store.clone(),
        client,
        handle.settings,
        handle.counters.clone(),
        shutdown.clone(),
    );
    match state.store.pending_deliveries().await {
        Ok(pending) => {
            if !pending.is_empty() {
                tracing::info!(
                    deliveries = pending.len(),
                    "resuming pending webhook deliveries"
                );
            }
            for delivery in pending {
                courier.start(delivery);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read pending webhook deliveries"),
    }
    loop {
        tokio::select! {
            first = statuses.recv() => {
                let mut finished = Vec::new();
                match first {
                    Ok(event) => keep_finished(&mut finished, event),
                    Err(RecvError::Lagged(missed)) => courier.missed(missed),
                    Err(RecvError::Closed) => return,
                }
                while finished.len() < MAX_BATCH {
                    match statuses.try_recv() {
                        Ok(event) => keep_finished(&mut finished, event),
                        Err(TryRecvError::Lagged(missed)) => courier.missed(missed),
                        Err(_) => break,
                    }
                }
                if !finished.is_empty() {
                    courier.fan_out_jobs(finished).await;
                }
            }
            Some(alert) = inbox.alerts.recv() => courier.fan_out_alert(alert).await,
            () = shutdown.wait() => return,
        }
    }
}

fn keep_finished(finished: &mut Vec<StatusEvent>, event: StatusEvent) {
    if event.status.is_finished() {
        finished.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_statuses_raise_their_events() {
        use WebhookEvent::{JobFailed, JobFinished};
        assert_eq!(
            WebhookEvent::for_status(JobStatus::Failed),
            &[JobFinished, JobFailed]
        );
        assert_eq!(WebhookEvent::for_status(JobStatus::Success), &[JobFinished]);
        assert_eq!(
            WebhookEvent::for_status(JobStatus::Cancelled),
            &[JobFinished]
        );
        assert!(WebhookEvent::for_status(JobStatus::Running).is_empty());
        assert!(WebhookEvent::for_status(JobStatus::Pending).is_empty());
    }

    #[test]
    fn event_names_are_their_wire_names() {
        for event in [
            WebhookEvent::JobFinished,
            WebhookEvent::JobFailed,
            WebhookEvent::Alert,
        ] {
            assert_eq!(
                serde_json::to_value(event).ok(),
                Some(serde_json::Value::from(event.as_str()))
            );
        }
    }

    #[tokio::test]
    async fn a_full_alert_queue_sheds_and_counts() {
        let (handle, _inbox) = channel(Settings {
            retry_base: Duration::from_secs(1),
            max_attempts: 6,
            timeout: Duration::from_secs(5),
        });
        for _ in 0..ALERT_QUEUE {
            assert!(handle.offer_alert(serde_json::json!({"name": "x"})));
        }
        assert!(!handle.offer_alert(serde_json::json!({"name": "y"})));
        assert_eq!(handle.counters().alerts_shed, 1);
    }
}
