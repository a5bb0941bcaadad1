//! Durable ingest of what agents publish: logs, events and status changes are read from
//! the `DROVER_JOBS` stream in chunks, stored in one group commit per chunk, and only
//! then acknowledged. A crash between the two re-delivers the chunk, and storing it
//! again changes nothing (lines are keyed by job and line number).

use crate::api::AppState;
use crate::shutdown::Shutdown;
use crate::store::{Ingest, IngestOutcome};
use crate::telemetry::Counters;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use drover_shared::protocol::{
    EventBatch, JOBS_STREAM, JobSubjectKind, LogBatch, Message, StatusChange, parse_job_subject,
};
use futures::StreamExt;
use std::time::Duration;

/// Durable consumer name: the coordinator's place in the stream survives its restarts.
pub const CONSUMER: &str = "coordinator-ingest";
/// Most messages stored in one commit.
const CHUNK: usize = 512;
/// How long JetStream waits for our ack before delivering a message again: after a
/// coordinator crash, what the dead process had read comes back this soon. A chunk
/// is stored in well under a second; the margin covers a backlog under a flood.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// Unacknowledged messages JetStream lets us hold; bounds memory under a flood.
const MAX_ACK_PENDING: i64 = 8192;

pub async fn run(state: AppState, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            result = consume(&state) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "ingest interrupted; resuming in 1 s");
                }
            }
            () = shutdown.wait() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.wait() => return,
        }
    }
}

async fn consume(state: &AppState) -> Result<(), String> {
    let (client, js, store, hub, counters) = (
        &state.client,
        &state.js,
        &state.store,
        &state.hub,
        &state.counters,
    );
    let stream = js
        .get_stream(JOBS_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::All,
                ack_wait: ACK_WAIT,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut chunks = consumer
        .messages()
        .await
        .map_err(|e| e.to_string())?
        .ready_chunks(CHUNK);
    while let Some(chunk) = chunks.next().await {
        let messages: Vec<jetstream::Message> = chunk
            .into_iter()
            .filter_map(|m| {
                m.map_err(|e| tracing::warn!(error = %e, "bad delivery"))
                    .ok()
            })
            .collect();
        let Some(last) = messages.last() else {
            continue;
        };
        let decoded: Vec<Ingest> = messages.iter().filter_map(decode).collect();
        Counters::add(
            &counters.ingest_malformed,
            (messages.len() - decoded.len()) as u64,
        );
        let ingested = store.ingest(decoded).await.map_err(|e| e.to_string())?;
        // Stored: now live watchers may read it.
        hub.publish(&ingested.progress);
        for job in ingested.stop_agents {
            crate::cancel::send(client, job, "the coordinator").await;
        }
        for outcome in ingested.outcomes {
            match outcome {
                IngestOutcome::Applied => Counters::add(&counters.ingest_applied, 1),
                IngestOutcome::Duplicate => Counters::add(&counters.ingest_duplicates, 1),
                IngestOutcome::Rejected(reason) => {
                    Counters::add(&counters.ingest_rejected, 1);
                    tracing::warn!(%reason, "rejected a message from an agent");
                }
            }
        }
        // AckPolicy::All: acknowledging the last message acknowledges the whole chunk.
        last.ack_with(AckKind::Ack)
            .await
            .map_err(|e| e.to_string())?;
    }
    Err("the jobs stream's consumer ended".to_owned())
}

/// Decodes one message by its subject; logs and drops what cannot be read.
fn decode(message: &jetstream::Message) -> Option<Ingest> {
    let subject = message.subject.as_str();
    let Some((job, kind)) = parse_job_subject(subject) else {
        tracing::warn!(%subject, "message on an unknown subject dropped");
        return None;
    };
    let decoded = match kind {
        JobSubjectKind::Logs => LogBatch::decode(&message.payload).map(Ingest::Logs),
        JobSubjectKind::Events => EventBatch::decode(&message.payload).map(Ingest::Events),
        JobSubjectKind::Status => StatusChange::decode(&message.payload).map(Ingest::Status),
        JobSubjectKind::Cancel => return None,
    };
    match decoded {
        Ok(ingest) if ingest.job_uuid() == job => Some(ingest),
        Ok(_) => {
            tracing::warn!(%subject, "message names another job than its subject; dropped");
            None
        }
        Err(e) => {
            tracing::warn!(%subject, error = %e, "malformed message dropped");
            None
        }
    }
}
