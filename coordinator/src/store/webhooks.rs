//! Webhooks and their delivery log. A delivery is stored `pending` before its first
//! attempt and every attempt is written back to it, so the log shows each try and a
//! restarted coordinator resumes what was still pending (see [`crate::webhooks`]).

use super::Store;
use super::audit::{self, Audit};
use super::catalog::{get_record, get_record_tx, list_page};
use super::job_list::{Page, Paged};
use super::jobs::JobDetail;
use super::records::JobRecord;
use super::tables::{
    JOBS, PLAYBOOKS, SERVERS, USERS, WEBHOOK_DELIVERIES, WEBHOOK_DELIVERIES_BY_HOOK,
    WEBHOOK_PENDING, WEBHOOKS, decode, encode, next_id, take_ids,
};
use crate::error::Error;
use crate::webhooks::WebhookEvent;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use uuid::Uuid;

/// Deliveries kept per webhook; older ones are dropped as new ones are made, so a busy
/// webhook's log does not grow without end.
pub const DELIVERIES_KEPT: u64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub id: u64,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    /// Signs each delivery. Kept as is (signing needs it); the API never shows it after
    /// creation.
    pub secret: String,
    pub description: String,
    /// An inactive webhook gets no new deliveries; pending ones end at their next try.
    pub active: bool,
    pub created_by: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookRecord {
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.active && self.events.contains(&event)
    }
}

/// A webhook as submitted, already validated by the API.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<WebhookEvent>,
    /// `None` on update: keep the secret there is.
    pub secret: Option<String>,
    pub description: String,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not delivered yet; another attempt is due at `next_attempt_at`.
    Pending,
    /// A 2xx answer.
    Delivered,
    /// Every attempt failed, or the delivery was abandoned.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: u64,
    /// `X-Drover-Delivery` and the body's `delivery_id`: the same on every attempt, so a
    /// receiver can tell a retry from a new event.
    pub uuid: Uuid,
    pub webhook_id: u64,
    pub event: WebhookEvent,
    /// The body's `job` or `alert` object.
    pub payload: serde_json::Value,
    pub state: DeliveryState,
    pub attempts: Vec<AttemptRecord>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Counts from 1.
    pub number: u32,
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// When the next attempt is due; `None` after the last one.
    pub next_retry_at: Option<DateTime<Utc>>,
}

/// A delivery to make: `payload` for `event` to webhook `webhook_id`.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub webhook_id: u64,
    pub event: WebhookEvent,
    pub payload: serde_json::Value,
    /// Set when the delivery is refused before any attempt (too many pending): it is
    /// stored `failed` with this reason, so the shedding shows in the log.
    pub shed: Option<String>,
}

impl Store {
    pub async fn create_webhook(
        &self,
        new: NewWebhook,
        created_by: u64,
        audit: Audit,
    ) -> Result<WebhookRecord, Error> {
        let secret = new
            .secret
            .clone()
            .ok_or_else(|| Error::Internal("a new webhook needs its secret".into()))?;
        self.write(move |tx| {
            let now = Utc::now();
            let hook = WebhookRecord {
                id: next_id(tx, "next_webhook")?,
                url: new.url,
                events: new.events,
                secret,
                description: new.description,
                active: new.active,
                created_by,
                created_at: now,
                updated_at: now,
            };
            put_hook(tx, &hook)?;
            audit::record(tx, audit, format!("webhook {}", hook.id))?;
            Ok(hook)
        })
        .await
        .inspect(|_| {
            self.webhooks_stored.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Replaces a webhook's fields; its secret only if a new one is given.
    pub async fn update_webhook(
        &self,
        id: u64,
        new: NewWebhook,
        audit: Audit,
    ) -> Result<WebhookRecord, Error> {
        self.write(move |tx| {
            let old: WebhookRecord =
                get_record_tx(tx, WEBHOOKS, id)?.ok_or_else(|| Error::not_found("webhook", id))?;
            let hook = WebhookRecord {
                id,
                url: new.url,
                events: new.events,
                secret: new.secret.unwrap_or(old.secret),
                description: new.description,
                active: new.active,
                created_by: old.created_by,
                created_at: old.created_at,
                updated_at: Utc::now(),
            };
            put_hook(tx, &hook)?;
            audit::record(tx, audit, format!("webhook {id}"))?;
            Ok(hook)
        })
        .await
    }

    /// Deletes a webhook with its delivery log; its pending deliveries stop.
    pub async fn delete_webhook(&self, id: u64, audit: Audit) -> Result<(), Error> {
        self.write(move |tx| {
            let mut hooks = tx.open_table(WEBHOOKS)?;
            if hooks.remove(id)?.is_none() {
                return Err(Error::not_found("webhook", id));
            }
            let mut index = tx.open_table(WEBHOOK_DELIVERIES_BY_HOOK)?;
            let mut deliveries = tx.open_table(WEBHOOK_DELIVERIES)?;
            let mut pending = tx.open_table(WEBHOOK_PENDING)?;
            for entry in index.extract_from_if((id, 0)..=(id, u64::MAX), |_, _| true)? {
                let delivery = entry?.0.value().1;
                deliveries.remove(delivery)?;
                pending.remove(delivery)?;
            }
            audit::record(tx, audit, format!("webhook {id}"))
        })
        .await
        .inspect(|()| {
            self.webhooks_stored.fetch_sub(1, Ordering::Relaxed);
        })
    }

    pub async fn webhook(&self, id: u64) -> Result<Option<WebhookRecord>, Error> {
        self.read(move |tx| get_record(tx, WEBHOOKS, id)).await
    }

    pub async fn list_webhooks(&self, page: Page) -> Result<Paged<WebhookRecord>, Error> {
        self.read(move |tx| list_page(tx, WEBHOOKS, page)).await
    }

    /// The webhooks that want any of `events`, and, only if there is one, the jobs of
    /// `job_ids` with what they refer to: one snapshot per batch of finished jobs.
    pub async fn webhook_targets(
        &self,
        events: Vec<WebhookEvent>,
        job_ids: Vec<u64>,
    ) -> Result<(Vec<WebhookRecord>, Vec<JobDetail>), Error> {
        // With no webhook at all (the usual case), finished jobs cost no read.
        if self.webhooks_stored.load(Ordering::Relaxed) == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        self.read(move |tx| {
            let mut hooks = Vec::new();
            for entry in tx.open_table(WEBHOOKS)?.iter()? {
                let hook: WebhookRecord = decode(entry?.1.value())?;
                if events.iter().any(|event| hook.wants(*event)) {
                    hooks.push(hook);
                }
            }
            let mut jobs = Vec::new();
            if hooks.is_empty() {
                return Ok((hooks, jobs));
            }
            for id in job_ids {
                let Some(job) = get_record::<JobRecord>(tx, JOBS, id)? else {
                    continue;
                };
                jobs.push(JobDetail {
                    playbook: get_record(tx, PLAYBOOKS, job.playbook_id)?,
                    server: get_record(tx, SERVERS, job.server_id)?,
                    user: get_record(tx, USERS, job.user_id)?,
                    job,
                });
            }
            Ok((hooks, jobs))
        })
        .await
    }

    /// Stores new deliveries, `pending` and due now (or `failed` if shed), in one commit;
    /// drops each webhook's oldest beyond [`DELIVERIES_KEPT`].
    pub async fn create_deliveries(
        &self,
        new: Vec<NewDelivery>,
    ) -> Result<Vec<DeliveryRecord>, Error> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            let now = Utc::now();
            let first = take_ids(tx, "next_webhook_delivery", new.len() as u64)?;
            let mut made = Vec::with_capacity(new.len());
            let mut hooks = Vec::new();
            for (id, delivery) in (first..).zip(new) {
                let shed = delivery.shed.is_some();
                let record = DeliveryRecord {
                    id,
                    uuid: Uuid::new_v4(),
                    webhook_id: delivery.webhook_id,
                    event: delivery.event,
                    payload: delivery.payload,
                    state: if shed {
                        DeliveryState::Failed
                    } else {
                        DeliveryState::Pending
                    },
                    attempts: delivery
                        .shed
                        .map(|reason| AttemptRecord {
                            number: 0,
                            at: now,
                            status_code: None,
                            error: Some(reason),
                            duration_ms: 0,
                            next_retry_at: None,
                        })
                        .into_iter()
                        .collect(),
                    next_attempt_at: (!shed).then_some(now),
                    created_at: now,
                    updated_at: now,
                };
                put_delivery(tx, &record)?;
                tx.open_table(WEBHOOK_DELIVERIES_BY_HOOK)?
                    .insert((record.webhook_id, id), ())?;
                if !hooks.contains(&record.webhook_id) {
                    hooks.push(record.webhook_id);
                }
                made.push(record);
            }
            for hook in hooks {
                prune(tx, hook)?;
            }
            Ok(made)
        })
        .await
    }

    /// Adds `attempt` to delivery `id` and settles it: delivered, failed (no retry left)
    /// or pending until `attempt.next_retry_at`. `None` if the delivery is gone (its
    /// webhook was deleted, or it was pruned): the caller stops.
    pub async fn record_attempt(
        &self,
        id: u64,
        attempt: AttemptRecord,
    ) -> Result<Option<DeliveryRecord>, Error> {
        self.write(move |tx| {
            let Some(mut delivery) = get_record_tx::<DeliveryRecord>(tx, WEBHOOK_DELIVERIES, id)?
            else {
                return Ok(None);
            };
            delivery.state = match (&attempt.error, attempt.next_retry_at) {
                (None, _) => DeliveryState::Delivered,
                (Some(_), Some(_)) => DeliveryState::Pending,
                (Some(_), None) => DeliveryState::Failed,
            };
            delivery.next_attempt_at = match delivery.state {
                DeliveryState::Pending => attempt.next_retry_at,
                _ => None,
            };
            delivery.updated_at = Utc::now();
            delivery.attempts.push(attempt);
            put_delivery(tx, &delivery)?;
            let mut pending = tx.open_table(WEBHOOK_PENDING)?;
            if delivery.state == DeliveryState::Pending {
                pending.insert(id, ())?;
            } else {
                pending.remove(id)?;
            }
            Ok(Some(delivery))
        })
        .await
    }

    /// One webhook's deliveries, newest first; `None` if there is no such webhook.
    pub async fn deliveries_page(
        &self,
        webhook_id: u64,
        page: Page,
    ) -> Result<Option<Paged<DeliveryRecord>>, Error> {
        self.read(move |tx| {
            if tx.open_table(WEBHOOKS)?.get(webhook_id)?.is_none() {
                return Ok(None);
            }
            let index = tx.open_table(WEBHOOK_DELIVERIES_BY_HOOK)?;
            let deliveries = tx.open_table(WEBHOOK_DELIVERIES)?;
            let mut items = Vec::with_capacity(page.per_page as usize);
            let mut total = 0;
            for entry in index.range((webhook_id, 0)..=(webhook_id, u64::MAX))?.rev() {
                let id = entry?.0.value().1;
                if page.holds(total)
                    && let Some(bytes) = deliveries.get(id)?
                {
                    items.push(decode::<DeliveryRecord>(bytes.value())?);
                }
                total += 1;
            }
            Ok(Some(Paged { items, total, page }))
        })
        .await
    }

    /// Deliveries still pending, oldest first: resumed when the coordinator starts.
    pub async fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>, Error> {
        self.read(move |tx| {
            let pending = tx.open_table(WEBHOOK_PENDING)?;
            let deliveries = tx.open_table(WEBHOOK_DELIVERIES)?;
            let mut found = Vec::new();
            for entry in pending.iter()? {
                if let Some(bytes) = deliveries.get(entry?.0.value())? {
                    found.push(decode::<DeliveryRecord>(bytes.value())?);
                }
            }
            Ok(found)
        })
        .await
    }
}

fn put_hook(tx: &WriteTransaction, hook: &WebhookRecord) -> Result<(), Error> {
    tx.open_table(WEBHOOKS)?
        .insert(hook.id, encode(hook)?.as_slice())?;
    Ok(())
}

fn put_delivery(tx: &WriteTransaction, delivery: &DeliveryRecord) -> Result<(), Error> {
    tx.open_table(WEBHOOK_DELIVERIES)?
        .insert(delivery.id, encode(delivery)?.as_slice())?;
    if delivery.state == DeliveryState::Pending {
        tx.open_table(WEBHOOK_PENDING)?.insert(delivery.id, ())?;
    }
    Ok(())
}

/// Drops webhook `hook`'s oldest deliveries beyond [`DELIVERIES_KEPT`].
fn prune(tx: &WriteTransaction, hook: u64) -> Result<(), Error> {
    let mut index = tx.open_table(WEBHOOK_DELIVERIES_BY_HOOK)?;
    let kept = index.range((hook, 0)..=(hook, u64::MAX))?.count() as u64;
    let excess = kept.saturating_sub(DELIVERIES_KEPT);
    if excess == 0 {
        return Ok(());
    }
    let mut oldest = Vec::new();
    for entry in index
        .range((hook, 0)..=(hook, u64::MAX))?
        .take(excess as usize)
    {
        oldest.push(entry?.0.value().1);
    }
    let mut deliveries = tx.open_table(WEBHOOK_DELIVERIES)?;
    let mut pending = tx.open_table(WEBHOOK_PENDING)?;
    for id in oldest {
        index.remove((hook, id))?;
        deliveries.remove(id)?;
        pending.remove(id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditQuery;

    fn audit() -> Audit {
        Audit {
            user_id: 1,
            username: "admin".into(),
            action: "test".into(),
            parameters: serde_json::json!({"secret": crate::redact::REDACTED}),
        }
    }

    fn hook(url: &str, secret: Option<&str>) -> NewWebhook {
        NewWebhook {
            url: url.into(),
            events: vec![WebhookEvent::JobFailed],
            secret: secret.map(str::to_owned),
            description: "d".into(),
            active: true,
        }
    }

    fn failed(number: u32, next: Option<DateTime<Utc>>) -> AttemptRecord {
        AttemptRecord {
            number,
            at: Utc::now(),
            status_code: Some(500),
            error: Some("the receiver answered 500".into()),
            duration_ms: 3,
            next_retry_at: next,
        }
    }

    #[tokio::test]
    async fn webhooks_and_deliveries_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("opens");
        let made = store
            .create_webhook(
                hook("http://a.example/", Some("s".repeat(20).as_str())),
                1,
                audit(),
            )
            .await
            .expect("created");
        let read = store.webhook(made.id).await.expect("read").expect("there");
        assert_eq!(read.url, "http://a.example/");
        assert_eq!(read.secret, "s".repeat(20));
        assert!(read.wants(WebhookEvent::JobFailed) && !read.wants(WebhookEvent::Alert));

        // An update without a secret keeps it.
        let updated = store
            .update_webhook(made.id, hook("https://b.example/x", None), audit())
            .await
            .expect("updated");
        assert_eq!(updated.secret, "s".repeat(20));
        assert_eq!(updated.created_at, made.created_at);
        assert!(matches!(
            store
                .update_webhook(99, hook("http://c/", None), audit())
                .await,
            Err(Error::NotFound { .. })
        ));

        let new = |n: u64| NewDelivery {
            webhook_id: made.id,
            event: WebhookEvent::JobFailed,
            payload: serde_json::json!({"id": n}),
            shed: None,
        };
        let deliveries = store
            .create_deliveries(vec![new(1), new(2)])
            .await
            .expect("stored");
        assert_eq!(deliveries.len(), 2);
        assert!(deliveries.iter().all(|d| d.state == DeliveryState::Pending));
        assert_eq!(store.pending_deliveries().await.expect("pending").len(), 2);

        // First delivery: a failure with a retry, then a success.
        let first = deliveries[0].id;
        let later = Utc::now() + chrono::Duration::seconds(1);
        let after = store
            .record_attempt(first, failed(1, Some(later)))
            .await
            .expect("recorded")
            .expect("there");
        assert_eq!(after.state, DeliveryState::Pending);
        assert_eq!(after.next_attempt_at, Some(later));
        let mut ok = failed(2, None);
        ok.status_code = Some(204);
        ok.error = None;
        let done = store
            .record_attempt(first, ok)
            .await
            .expect("recorded")
            .expect("there");
        assert_eq!(done.state, DeliveryState::Delivered);
        assert_eq!(done.attempts.len(), 2);
        // Second: a final failure.
        let second = store
            .record_attempt(deliveries[1].id, failed(1, None))
            .await
            .expect("recorded")
            .expect("there");
        assert_eq!(second.state, DeliveryState::Failed);
        assert!(
            store
                .pending_deliveries()
                .await
                .expect("pending")
                .is_empty()
        );

        let page = store
            .deliveries_page(made.id, Page::default())
            .await
            .expect("read")
            .expect("webhook exists");
        assert_eq!(page.total, 2);
        let ids: Vec<u64> = page.items.iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![deliveries[1].id, first], "newest first");
        assert!(
            store
                .deliveries_page(99, Page::default())
                .await
                .expect("read")
                .is_none()
        );

        // Delete takes the log with it; a late attempt finds nothing to record.
        let pending = store.create_deliveries(vec![new(3)]).await.expect("stored");
        store
            .delete_webhook(made.id, audit())
            .await
            .expect("deleted");
        assert!(store.webhook(made.id).await.expect("read").is_none());
        assert!(
            store
                .pending_deliveries()
                .await
                .expect("pending")
                .is_empty()
        );
        assert!(
            store
                .record_attempt(pending[0].id, failed(1, None))
                .await
                .expect("no error")
                .is_none()
        );
        assert!(matches!(
            store.delete_webhook(made.id, audit()).await,
            Err(Error::NotFound { .. })
        ));
        // Create, update and both deletes... the refused ones wrote no audit record.
        let trail = store
            .audit_page(AuditQuery::default())
            .await
            .expect("audit");
        assert_eq!(trail.total, 3);
        assert!(
            !trail
                .items
                .iter()
                .any(|r| r.parameters.to_string().contains("ssss"))
        );
    }

    #[tokio::test]
    async fn targets_are_read_only_while_webhooks_exist_also_after_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let targets = |store: Store| async move {
            store
                .webhook_targets(vec![WebhookEvent::JobFailed], vec![])
                .await
                .expect("targets")
                .0
                .len()
        };
        let store = Store::open(dir.path()).expect("opens");
        assert_eq!(targets(store.clone()).await, 0);
        let made = store
            .create_webhook(hook("http://a.example/", Some(&"s".repeat(20))), 1, audit())
            .await
            .expect("created");
        assert_eq!(targets(store.clone()).await, 1);
        // The count is the table's, not the process's.
        let store = Store::reopen(store, dir.path()).await;
        assert_eq!(targets(store.clone()).await, 1);
        store
            .delete_webhook(made.id, audit())
            .await
            .expect("deleted");
        assert_eq!(targets(store.clone()).await, 0);
        assert!(store.delete_webhook(made.id, audit()).await.is_err());
        assert_eq!(targets(store).await, 0, "a refused delete changes nothing");
    }

    #[tokio::test]
    async fn each_webhook_keeps_its_newest_deliveries() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("opens");
        let made = store
            .create_webhook(
                hook("http://a.example/", Some("s".repeat(20).as_str())),
                1,
                audit(),
            )
            .await
            .expect("created");
        let batch = |n: u64| {
            (0..n)
                .map(|i| NewDelivery {
                    webhook_id: made.id,
                    event: WebhookEvent::JobFailed,
                    payload: serde_json::json!({"id": i}),
                    shed: Some("shed".into()),
                })
                .collect::<Vec<_>>()
        };
        store
            .create_deliveries(batch(DELIVERIES_KEPT))
            .await
            .expect("stored");
        let newest = store.create_deliveries(batch(5)).await.expect("stored");
        assert!(newest.iter().all(|d| d.state == DeliveryState::Failed));
        let page = store
            .deliveries_page(made.id, Page::default())
            .await
            .expect("read")
            .expect("there");
        assert_eq!(page.total, DELIVERIES_KEPT);
        assert_eq!(page.items[0].id, newest[4].id);
    }
}
