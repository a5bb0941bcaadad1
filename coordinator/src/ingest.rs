//! Durable ingest of what agents publish: logs, events and status changes are read from
//! the `DROVER_JOBS` stream in order, in chunks, and each chunk is stored in one group
//! commit together with the stream sequence it reaches. That sequence is the
//! coordinator's place in the stream: after a crash it reads on from the last commit, in
//! order, so nothing is skipped and nothing arrives out of order (storing a message twice
//! would change nothing anyway: lines are keyed by job and line number). No
//! acknowledgements are needed; an earlier version acknowledged in bulk, and a restart
//! could then acknowledge messages the crashed process had read but never stored.

use crate::api::AppState;
use crate::shutdown::Shutdown;
use crate::store::{Ingest, IngestOutcome};
use crate::telemetry::Counters;
use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
};
use drover_shared::protocol::{
    EventBatch, JOBS_STREAM, JobSubjectKind, LogBatch, Message, StatusChange, parse_job_subject,
};
use futures::StreamExt;
use std::time::Duration;

/// The durable consumer of earlier versions, deleted at start-up.
const OLD_CONSUMER: &str = "coordinator-ingest";
/// Most messages stored in one commit.
const CHUNK: usize = 512;
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
    let mut stream = js
        .get_stream(JOBS_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let last_in_stream = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .last_sequence;
    let mut position = store.ingest_position().await.map_err(|e| e.to_string())?;
    if position > last_in_stream {
        tracing::warn!(
            position,
            last_in_stream,
            "the jobs stream is behind the store (was it recreated?); reading it from its start"
        );
        position = 0;
    }
    // The consumer of an older version acknowledged in bulk; it is not used any more.
    let _ = stream.delete_consumer(OLD_CONSUMER).await;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: position + 1,
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(from = position + 1, "ingesting the jobs stream");
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
        let info = last
            .info()
            .map_err(|e| format!("a message without stream info: {e}"))?;
        let (through, published) = (info.stream_sequence, info.published);
        let decoded: Vec<Ingest> = messages.iter().filter_map(decode).collect();
        let lines: Vec<u64> = decoded.iter().map(Ingest::line_count).collect();
        Counters::add(
            &counters.ingest_malformed,
            (messages.len() - decoded.len()) as u64,
        );
        let ingested = store
            .ingest(decoded, through)
            .await
            .map_err(|e| e.to_string())?;
        // Stored: now live watchers may read it.
        hub.publish(&ingested.progress);
        for job in ingested.stop_agents {
            crate::cancel::send(client, job, "the coordinator").await;
        }
        let mut lines_applied = 0;
        for (outcome, lines) in ingested.outcomes.into_iter().zip(lines) {
            match outcome {
                IngestOutcome::Applied => {
                    Counters::add(&counters.ingest_applied, 1);
                    lines_applied += lines;
                }
                IngestOutcome::Duplicate => Counters::add(&counters.ingest_duplicates, 1),
                IngestOutcome::Rejected(reason) => {
                    Counters::add(&counters.ingest_rejected, 1);
                    tracing::warn!(%reason, "rejected a message from an agent");
                }
            }
        }
        state
            .monitor
            .metrics
            .lines_ingested(lines_applied, age_secs(published));
    }
    Err("the jobs stream's consumer ended".to_owned())
}

/// How long ago a message reached the stream.
fn age_secs(published: time::OffsetDateTime) -> f64 {
    let now = time::OffsetDateTime::now_utc();
    (now - published).as_seconds_f64().max(0.0)
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
