//! The benchmark acting as an agent: jobs created through the API, claimed, and their
//! lines and statuses published exactly as agents publish them.

use anyhow::{Context, bail};
use async_nats::jetstream::{self, message::PublishMessage};
use drover_shared::protocol::{
    CLAIM_SUBJECT, ClaimReply, ClaimRequest, LogLine, Message, StatusChange,
};
use drover_shared::{JobStatus, LogLevel};
use drover_tests::Stack;
use serde_json::json;
use uuid::Uuid;

pub const AGENT: &str = "bench-agent";

/// A job created through the API and claimed by the benchmark.
pub struct FakeJob {
    pub id: u64,
    pub uuid: Uuid,
}

pub async fn fake_job(
    stack: &Stack,
    client: &async_nats::Client,
    playbook: u64,
    server: u64,
) -> anyhow::Result<FakeJob> {
    let job = stack.submit(playbook, server, json!({})).await;
    let id = job["id"].as_u64().context("job id")?;
    let uuid = Uuid::parse_str(job["job_id"].as_str().context("job uuid")?)?;
    let request = ClaimRequest {
        job_uuid: uuid,
        agent_id: AGENT.into(),
    }
    .encode()?;
    let reply = client.request(CLAIM_SUBJECT, request.into()).await?;
    if !ClaimReply::decode(&reply.payload)?.granted {
        bail!("claim of job {id} refused");
    }
    Ok(FakeJob { id, uuid })
}

pub fn status(job: &FakeJob, status: JobStatus, last_line: u64) -> StatusChange {
    let now = chrono::Utc::now();
    StatusChange {
        job_uuid: job.uuid,
        agent_id: AGENT.into(),
        status,
        exit_code: status.is_finished().then_some(0),
        last_line,
        started_at: Some(now),
        completed_at: status.is_finished().then_some(now),
        resource_usage: None,
        error: None,
        host_recap: Vec::new(),
    }
}

/// Publishes as an agent does: to JetStream, waiting for the stream's ack.
pub async fn publish(
    js: &jetstream::Context,
    subject: String,
    payload: Vec<u8>,
) -> anyhow::Result<()> {
    js.send_publish(subject, PublishMessage::build().payload(payload.into()))
        .await?
        .await?;
    Ok(())
}

pub fn lines(first: u64, count: u64, text: impl Fn(u64) -> String) -> Vec<LogLine> {
    let now = chrono::Utc::now();
    (first..first + count)
        .map(|n| LogLine {
            line_number: n,
            content: text(n),
            log_level: LogLevel::Info,
            timestamp: now,
        })
        .collect()
}

/// Announces the benchmark's agent every second, as a real agent does, so that the
/// coordinator's lease does not take its jobs away. Stops when dropped.
pub struct Heartbeats(tokio::task::JoinHandle<()>);

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn heartbeats(client: async_nats::Client, pool: &str) -> Heartbeats {
    let beat = drover_shared::protocol::Heartbeat {
        agent_id: AGENT.into(),
        pool: pool.into(),
        capacity: 1000,
        running: Vec::new(),
        version: "bench".into(),
        labels: Vec::new(),
    };
    Heartbeats(tokio::spawn(async move {
        let subject = drover_shared::protocol::heartbeat_subject(AGENT);
        loop {
            if let Ok(bytes) = beat.encode() {
                let _ = client.publish(subject.clone(), bytes.into()).await;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }))
}
