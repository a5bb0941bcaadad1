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
pub mod deliver;
pub mod signature;

use crate::api::AppState;
use crate::api::views::{opt_timestamp, timestamp};
use crate::config::Config;
use crate::hub::StatusEvent;
use crate::shutdown::Shutdown;
use crate::store::{AttemptRecord, DeliveryRecord, JobDetail, NewDelivery, Store, WebhookRecord};
use chrono::Utc;
use dashmap::DashMap;
use drover_shared::JobStatus;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Semaphore, broadcast, mpsc};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    let courier = Courier {
        store: state.store.clone(),
        client,
        settings: handle.settings,
        permits: Arc::new(Semaphore::new(MAX_CONCURRENT_ATTEMPTS)),
        per_webhook: Arc::default(),
        pending: Arc::default(),
        counters: handle.counters.clone(),
        shutdown: shutdown.clone(),
    };
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

/// Makes deliveries and drives each to its end.
#[derive(Clone)]
struct Courier {
    store: Store,
    client: reqwest::Client,
    settings: Settings,
    permits: Arc<Semaphore>,
    /// Per webhook id: its [`MAX_ATTEMPTS_PER_WEBHOOK`] permits.
    per_webhook: Arc<DashMap<u64, Arc<Semaphore>>>,
    /// Deliveries with a task, for [`MAX_PENDING`].
    pending: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    shutdown: Shutdown,
}

impl Courier {
    fn missed(&self, missed: u64) {
        self.counters
            .events_missed
            .fetch_add(missed, Ordering::Relaxed);
        tracing::warn!(
            missed,
            "webhooks fell behind the job status broadcast; those jobs get no webhook"
        );
    }

    async fn fan_out_jobs(&self, finished: Vec<StatusEvent>) {
        let events: Vec<WebhookEvent> = vec![WebhookEvent::JobFinished, WebhookEvent::JobFailed];
        let ids = finished.iter().map(|e| e.job_id).collect();
        let (hooks, jobs) = match self.store.webhook_targets(events, ids).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, jobs = finished.len(), "cannot read webhook targets");
                return;
            }
        };
        let mut new = Vec::new();
        for detail in &jobs {
            let payload = job_payload(detail);
            for event in WebhookEvent::for_status(detail.job.status) {
                for hook in hooks.iter().filter(|h| h.wants(*event)) {
                    new.push(self.delivery(hook, *event, payload.clone(), new.len()));
                }
            }
        }
        self.store_and_start(new).await;
    }

    async fn fan_out_alert(&self, alert: serde_json::Value) {
        let hooks = match self
            .store
            .webhook_targets(vec![WebhookEvent::Alert], Vec::new())
            .await
        {
            Ok((hooks, _)) => hooks,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read webhook targets for an alert");
                return;
            }
        };
        let mut new = Vec::new();
        for hook in &hooks {
            new.push(self.delivery(hook, WebhookEvent::Alert, alert.clone(), new.len()));
        }
        self.store_and_start(new).await;
    }

    /// A new delivery, shed if `made_before` more would pass [`MAX_PENDING`].
    fn delivery(
        &self,
        hook: &WebhookRecord,
        event: WebhookEvent,
        payload: serde_json::Value,
        made_before: usize,
    ) -> NewDelivery {
        let pending = self.pending.load(Ordering::Relaxed) + made_before;
        let shed = (pending >= MAX_PENDING).then(|| {
            self.counters
                .deliveries_shed
                .fetch_add(1, Ordering::Relaxed);
            format!("shed: {MAX_PENDING} deliveries were already pending")
        });
        NewDelivery {
            webhook_id: hook.id,
            event,
            payload,
            shed,
        }
    }

    async fn store_and_start(&self, new: Vec<NewDelivery>) {
        let count = new.len();
        match self.store.create_deliveries(new).await {
            Ok(made) => {
                for delivery in made {
                    self.start(delivery);
                }
            }
            Err(e) => tracing::warn!(error = %e, deliveries = count, "cannot store deliveries"),
        }
    }

    fn start(&self, delivery: DeliveryRecord) {
        if delivery.next_attempt_at.is_none() {
            return;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(self.clone().drive(delivery));
    }

    /// Attempts `delivery` until it is delivered, out of attempts, or gone; stops early
    /// at shutdown (it stays pending in the store and resumes at the next start).
    async fn drive(self, mut delivery: DeliveryRecord) {
        let _counted = PendingGuard(self.pending.clone());
        let mut shutdown = self.shutdown.clone();
        while let Some(due) = delivery.next_attempt_at {
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            let permits = self.permits.clone();
            let own = self
                .per_webhook
                .entry(delivery.webhook_id)
                .or_insert_with(|| Arc::new(Semaphore::new(MAX_ATTEMPTS_PER_WEBHOOK)))
                .clone();
            let permit = tokio::select! {
                permit = async move {
                    tokio::time::sleep(wait).await;
                    // The webhook's own permit first: deliveries waiting for a busy
                    // receiver hold none of the shared ones.
                    let own = own.acquire_owned().await?;
                    let shared = permits.acquire_owned().await?;
                    Ok::<_, tokio::sync::AcquireError>((own, shared))
                } => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                () = shutdown.wait() => return,
            };
            let hook = match self.store.webhook(delivery.webhook_id).await {
                Ok(Some(hook)) => hook,
                // Deleted with its log: nothing left to record.
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, delivery = delivery.id, "cannot read its webhook");
                    return;
                }
            };
            let number = delivery.attempts.len() as u32 + 1;
            let at = Utc::now();
            let attempt = if hook.active {
                let body = body(&delivery, number);
                let sent = tokio::select! {
                    sent = deliver::post(
                        &self.client,
                        &hook.url,
                        &hook.secret,
                        delivery.event.as_str(),
                        delivery.uuid,
                        body,
                    ) => sent,
                    () = shutdown.wait() => return,
                };
                drop(permit);
                let next_retry_at = if sent.succeeded() {
                    None
                } else {
                    backoff::delay_after(
                        number,
                        self.settings.retry_base,
                        self.settings.max_attempts,
                    )
                    .and_then(|wait| chrono::Duration::from_std(wait).ok())
                    .map(|wait| Utc::now() + wait)
                };
                AttemptRecord {
                    number,
                    at,
                    status_code: sent.status_code,
                    error: sent.error,
                    duration_ms: u64::try_from(sent.duration.as_millis()).unwrap_or(u64::MAX),
                    next_retry_at,
                }
            } else {
                AttemptRecord {
                    number,
                    at,
                    status_code: None,
                    error: Some("not sent: the webhook is inactive".into()),
                    duration_ms: 0,
                    next_retry_at: None,
                }
            };
            if let Some(error) = &attempt.error {
                tracing::info!(
                    webhook = hook.id,
                    delivery = delivery.id,
                    attempt = number,
                    error = %error,
                    retry = attempt.next_retry_at.is_some(),
                    "webhook delivery attempt failed"
                );
            }
            delivery = match self.store.record_attempt(delivery.id, attempt).await {
                Ok(Some(delivery)) => delivery,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, delivery = delivery.id, "cannot record a webhook attempt");
                    return;
                }
            };
        }
    }
}

/// Counts a delivery task out when it ends, however it ends.
struct PendingGuard(Arc<AtomicUsize>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The body of attempt `attempt` of `delivery`: `delivered_at` is this attempt's time,
/// everything else is the same on every attempt.
pub fn body(delivery: &DeliveryRecord, attempt: u32) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    body.insert("event".into(), delivery.event.as_str().into());
    body.insert("delivery_id".into(), delivery.uuid.to_string().into());
    body.insert("delivered_at".into(), timestamp(Utc::now()).into());
    body.insert("attempt".into(), attempt.into());
    let key = match delivery.event {
        WebhookEvent::Alert => "alert",
        WebhookEvent::JobFinished | WebhookEvent::JobFailed => "job",
    };
    body.insert(key.into(), delivery.payload.clone());
    serde_json::to_vec(&serde_json::Value::Object(body)).unwrap_or_default()
}

/// The body's `job` object.
pub fn job_payload(detail: &JobDetail) -> serde_json::Value {
    let job = &detail.job;
    let duration_seconds = match (job.started_at, job.completed_at) {
        (Some(start), Some(end)) => Some((end - start).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    serde_json::json!({
        "id": job.id,
        "uuid": job.uuid.to_string(),
        "status": job.status,
        "exit_code": job.exit_code,
        "error": job.error,
        "playbook_id": job.playbook_id,
        "playbook_name": detail.playbook.as_ref().map(|p| p.name.clone()),
        "server_id": job.server_id,
        "server_hostname": detail.server.as_ref().map(|s| s.hostname.clone()),
        "user_id": job.user_id,
        "created_at": timestamp(job.created_at),
        "started_at": opt_timestamp(job.started_at),
        "completed_at": opt_timestamp(job.completed_at),
        "duration_seconds": duration_seconds,
    })
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

    #[test]
    fn bodies_carry_the_event_its_id_and_the_payload_under_its_kind() {
        let now = Utc::now();
        let mut delivery = DeliveryRecord {
            id: 7,
            uuid: uuid::Uuid::new_v4(),
            webhook_id: 1,
            event: WebhookEvent::Alert,
            payload: serde_json::json!({"name": "failure_rate", "value": 0.5}),
            state: crate::store::DeliveryState::Pending,
            attempts: Vec::new(),
            next_attempt_at: Some(now),
            created_at: now,
            updated_at: now,
        };
        let alert: serde_json::Value = serde_json::from_slice(&body(&delivery, 2)).expect("JSON");
        assert_eq!(alert["event"], "alert");
        assert_eq!(alert["attempt"], 2);
        assert_eq!(alert["delivery_id"], delivery.uuid.to_string());
        assert_eq!(alert["alert"]["name"], "failure_rate");
        assert!(alert["delivered_at"].is_string() && alert.get("job").is_none());
        delivery.event = WebhookEvent::JobFailed;
        let job: serde_json::Value = serde_json::from_slice(&body(&delivery, 1)).expect("JSON");
        assert_eq!(job["event"], "job.failed");
        assert_eq!(job["job"]["name"], "failure_rate");
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
