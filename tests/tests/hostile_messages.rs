//! Broken or hostile NATS messages are rejected and logged, never a crash and never a
//! wrong line stored: malformed MessagePack, unknown jobs, a payload naming another job
//! than its subject, replayed lines with other content, a status from an agent that does
//! not hold the claim, a garbage claim request and a garbage heartbeat; each is counted
//! in `GET /healthz`.

use drover_shared::JobStatus;
use drover_shared::LogLevel;
use drover_shared::protocol::{
    CLAIM_SUBJECT, ClaimReply, LogBatch, LogLine, Message, StatusChange, logs_subject,
    status_subject,
};
use drover_tests::Stack;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

fn line(number: u64, content: &str) -> LogLine {
    LogLine {
        line_number: number,
        content: content.into(),
        log_level: LogLevel::Error,
        timestamp: chrono::Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_change_nothing() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    let playbook = stack
        .playbook(
            "hello",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: hello\n",
        )
        .await;
    let first = stack.submit(playbook, server, json!({})).await;
    let first = stack
        .wait_finished(first["id"].as_u64().expect("id"), Duration::from_secs(90))
        .await;
    assert_eq!(first["status"], "success");
    let job_id = first["id"].as_u64().expect("id");
    let uuid = Uuid::parse_str(first["job_id"].as_str().expect("uuid")).expect("uuid");
    let before = stack.all_logs(job_id).await;

    let client = async_nats::connect(&stack.nats_url).await.expect("nats");
    let js = async_nats::jetstream::new(client.clone());
    let publish = |subject: String, payload: Vec<u8>| {
        let js = js.clone();
        async move {
            js.publish(subject, payload.into())
                .await
                .expect("publish")
                .await
                .expect("stored in DROVER_JOBS");
        }
    };
    // Garbage where a LogBatch and a StatusChange belong.
    publish(logs_subject(uuid), b"\xc1\xc1 not msgpack".to_vec()).await;
    publish(status_subject(uuid), vec![0x93, 0x01]).await;
    // Lines for a job that does not exist.
    let ghost = Uuid::new_v4();
    let batch = LogBatch {
        job_uuid: ghost,
        lines: vec![line(1, "ghost")],
    };
    publish(logs_subject(ghost), batch.encode().expect("encodes")).await;
    // A batch whose payload names another job than its subject.
    let batch = LogBatch {
        job_uuid: ghost,
        lines: vec![line(1, "smuggled")],
    };
    publish(logs_subject(uuid), batch.encode().expect("encodes")).await;
    // A replay of line 1 with other content, and a line past the end of a finished job.
    let batch = LogBatch {
        job_uuid: uuid,
        lines: vec![line(1, "rewritten history")],
    };
    publish(logs_subject(uuid), batch.encode().expect("encodes")).await;
    let batch = LogBatch {
        job_uuid: uuid,
        lines: vec![line(before.len() as u64 + 1, "late")],
    };
    publish(logs_subject(uuid), batch.encode().expect("encodes")).await;
    // A status from an agent without the claim.
    let change = StatusChange {
        job_uuid: uuid,
        agent_id: "intruder".into(),
        status: JobStatus::Failed,
        exit_code: Some(1),
        last_line: 0,
        started_at: None,
        completed_at: None,
        resource_usage: None,
        error: Some("forged".into()),
        host_recap: Vec::new(),
    };
    publish(status_subject(uuid), change.encode().expect("encodes")).await;
    // A heartbeat that is not one, and one naming another agent than its subject.
    client
        .publish("drover.agents.mallory.heartbeat", "garbage".into())
        .await
        .expect("publish");
    // A garbage claim is answered, and refused.
    let reply = client
        .request(CLAIM_SUBJECT, "garbage".into())
        .await
        .expect("the coordinator answers");
    let reply = ClaimReply::decode(&reply.payload).expect("a ClaimReply");
    assert!(!reply.granted);
    assert!(
        reply
            .reason
            .unwrap_or_default()
            .contains("malformed ClaimRequest")
    );

    // The coordinator is still ingesting: a new job runs to the end ...
    let second = stack.submit(playbook, server, json!({})).await;
    let second = stack
        .wait_finished(second["id"].as_u64().expect("id"), Duration::from_secs(90))
        .await;
    assert_eq!(second["status"], "success");
    // ... and the first job is exactly as it was.
    let (_, after_job) = stack.get(&format!("/jobs/{job_id}")).await;
    assert_eq!(after_job["status"], "success");
    assert_eq!(after_job["error"], serde_json::Value::Null);
    assert_eq!(after_job["total_lines"], first["total_lines"]);
    assert_eq!(stack.all_logs(job_id).await, before);
    let (status, ghost_job) = stack.get(&format!("/jobs/{ghost}")).await;
    assert_eq!(status, 404, "{ghost_job}");

    // Every refusal was counted: 3 undecodable or mis-addressed messages, 3 refused by
    // the store (unknown job, a line past the end of a finished job, the intruder's
    // status), the rewritten line 1 as a duplicate, and the bad heartbeat.
    let (_, health) = stack.get("/healthz").await;
    let counters = &health["counters"];
    assert_eq!(counters["ingest_malformed"], 3, "{health}");
    assert_eq!(counters["ingest_rejected"], 3, "{health}");
    assert!(
        counters["ingest_duplicates"].as_u64() >= Some(1),
        "{health}"
    );
    assert!(counters["ingest_applied"].as_u64() > Some(4), "{health}");
    assert_eq!(counters["heartbeats_rejected"], 1, "{health}");
}
