//! What a delivery sends: the body of each attempt, built from the stored payload.

use super::WebhookEvent;
use crate::api::views::{opt_timestamp, timestamp};
use crate::store::{DeliveryRecord, JobDetail};
use chrono::Utc;

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
}
