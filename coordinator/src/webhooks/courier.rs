//! The courier: turns finished jobs and alerts into stored deliveries, and drives each
//! delivery through its attempts (wait until due, take a permit, send, record).

use super::payload::{body, job_payload};
use super::{
    Counters, MAX_ATTEMPTS_PER_WEBHOOK, MAX_CONCURRENT_ATTEMPTS, MAX_PENDING, Settings,
    WebhookEvent, backoff, deliver,
};
use crate::hub::StatusEvent;
use crate::shutdown::Shutdown;
use crate::store::{AttemptRecord, DeliveryRecord, NewDelivery, Store, WebhookRecord};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Makes deliveries and drives each to its end.
#[derive(Clone)]
pub(super) struct Courier {
    store: Store,
    client: reqwest::Client,
    settings: Settings,
    /// The [`MAX_CONCURRENT_ATTEMPTS`] permits all attempts share.
    permits: Arc<Semaphore>,
    /// Per webhook id: its [`MAX_ATTEMPTS_PER_WEBHOOK`] permits.
    per_webhook: Arc<DashMap<u64, Arc<Semaphore>>>,
    /// Deliveries with a task, for [`MAX_PENDING`].
    pending: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    shutdown: Shutdown,
}

impl Courier {
    pub(super) fn new(
        store: Store,
        client: reqwest::Client,
        settings: Settings,
        counters: Arc<Counters>,
        shutdown: Shutdown,
    ) -> Courier {
        Courier {
            store,
            client,
            settings,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_ATTEMPTS)),
            per_webhook: Arc::default(),
            pending: Arc::default(),
            counters,
            shutdown,
        }
    }

    pub(super) fn missed(&self, missed: u64) {
        self.counters
            .events_missed
            .fetch_add(missed, Ordering::Relaxed);
        tracing::warn!(
            missed,
            "webhooks fell behind the job status broadcast; those jobs get no webhook"
        );
    }

    pub(super) async fn fan_out_jobs(&self, finished: Vec<StatusEvent>) {
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

    pub(super) async fn fan_out_alert(&self, alert: serde_json::Value) {
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

    pub(super) fn start(&self, delivery: DeliveryRecord) {
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
            let turn = tokio::select! {
                turn = self.turn(delivery.webhook_id, due) => turn,
                () = shutdown.wait() => return,
            };
            let Some(_permits) = turn else { return };
            let hook = match self.store.webhook(delivery.webhook_id).await {
                Ok(Some(hook)) => hook,
                // Deleted with its log: nothing left to record.
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, delivery = delivery.id, "cannot read its webhook");
                    return;
                }
            };
            let attempt = tokio::select! {
                attempt = self.attempt(&hook, &delivery) => attempt,
                () = shutdown.wait() => return,
            };
            if let Some(error) = &attempt.error {
                tracing::info!(
                    webhook = hook.id,
                    delivery = delivery.id,
                    attempt = attempt.number,
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

    /// Waits until `due`, then for a permit of webhook `hook` and a shared one (in that
    /// order: deliveries queued behind a busy receiver hold none of the shared ones).
    async fn turn(
        &self,
        hook: u64,
        due: DateTime<Utc>,
    ) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        tokio::time::sleep((due - Utc::now()).to_std().unwrap_or_default()).await;
        let own = self
            .per_webhook
            .entry(hook)
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_ATTEMPTS_PER_WEBHOOK)))
            .clone();
        let own = own.acquire_owned().await.ok()?;
        let shared = self.permits.clone().acquire_owned().await.ok()?;
        Some((own, shared))
    }

    /// The next attempt of `delivery` to `hook`, and when the one after it is due.
    async fn attempt(&self, hook: &WebhookRecord, delivery: &DeliveryRecord) -> AttemptRecord {
        let number = delivery.attempts.len() as u32 + 1;
        let at = Utc::now();
        if !hook.active {
            return AttemptRecord {
                number,
                at,
                status_code: None,
                error: Some("not sent: the webhook is inactive".into()),
                duration_ms: 0,
                next_retry_at: None,
            };
        }
        let sent = deliver::post(
            &self.client,
            &hook.url,
            &hook.secret,
            delivery.event.as_str(),
            delivery.uuid,
            body(delivery, number),
        )
        .await;
        let next_retry_at = if sent.succeeded() {
            None
        } else {
            backoff::delay_after(number, self.settings.retry_base, self.settings.max_attempts)
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
    }
}

/// Counts a delivery task out when it ends, however it ends.
struct PendingGuard(Arc<AtomicUsize>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
