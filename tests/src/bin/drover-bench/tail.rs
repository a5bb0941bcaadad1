//! Tail latency: from a line's publish (to JetStream, as an agent publishes it) to its
//! arrival at an SSE client and at a plain NATS subscriber.

use crate::Sizes;
use crate::fake::{fake_job, lines, publish, status};
use crate::stats::Samples;
use anyhow::{Context, bail};
use async_nats::jetstream;
use drover_shared::JobStatus;
use drover_shared::protocol::{LogBatch, Message, logs_subject, status_subject};
use drover_shared::sse::SseParser;
use drover_tests::{ADMIN_TOKEN, Stack};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub struct Latencies {
    pub sse: Samples,
    pub nats: Samples,
}

/// One line at a time on a fresh job; an SSE client and a NATS subscriber note when each
/// line arrives.
pub async fn tail_latency(
    stack: &Stack,
    client: &async_nats::Client,
    js: &jetstream::Context,
    playbook: u64,
    server: u64,
    sizes: &Sizes,
) -> anyhow::Result<Latencies> {
    let job = fake_job(stack, client, playbook, server).await?;
    publish(
        js,
        status_subject(job.uuid),
        status(&job, JobStatus::Running, 0).encode()?,
    )
    .await?;
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();

    // NATS subscriber, confirmed live by a round trip before the first line.
    let mut subscriber = client.subscribe(logs_subject(job.uuid)).await?;
    client
        .publish(
            logs_subject(job.uuid),
            LogBatch {
                job_uuid: job.uuid,
                lines: Vec::new(),
            }
            .encode()?
            .into(),
        )
        .await?;
    subscriber.next().await.context("subscription confirmed")?;
    let last_line = sizes.tail_lines;
    let nats_arrivals = tokio::spawn(async move {
        let mut arrivals = Vec::new();
        while let Some(message) = subscriber.next().await {
            let at = Instant::now();
            if let Ok(batch) = LogBatch::decode(&message.payload) {
                arrivals.extend(batch.lines.iter().map(|l| (l.line_number, at)));
                if batch.lines.iter().any(|l| l.line_number == last_line) {
                    break;
                }
            }
        }
        arrivals
    });

    // SSE client, connected before the first line.
    let response = reqwest::Client::new()
        .get(format!("{}/jobs/{}/logs/stream", stack.http, job.id))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    let mut body = response.bytes_stream();
    let sse_arrivals = tokio::spawn(async move {
        let mut parser = SseParser::default();
        let mut arrivals = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            let at = Instant::now();
            for event in parser.push(&chunk) {
                if event.event == "log"
                    && let Some(n) = event.id.and_then(|id| id.parse::<u64>().ok())
                {
                    arrivals.push((n, at));
                }
                if event.event == "end" {
                    return arrivals;
                }
            }
        }
        arrivals
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    for n in 1..=sizes.tail_lines {
        let batch = LogBatch {
            job_uuid: job.uuid,
            lines: lines(n, 1, |n| format!("bench line {n}")),
        }
        .encode()?;
        sent.lock().await.insert(n, Instant::now());
        publish(js, logs_subject(job.uuid), batch).await?;
        tokio::time::sleep(sizes.tail_interval).await;
    }
    publish(
        js,
        status_subject(job.uuid),
        status(&job, JobStatus::Success, sizes.tail_lines).encode()?,
    )
    .await?;
    let sse = tokio::time::timeout(Duration::from_secs(60), sse_arrivals).await??;
    let nats = tokio::time::timeout(Duration::from_secs(60), nats_arrivals).await??;
    let sent = sent.lock().await;
    let delays = |arrivals: Vec<(u64, Instant)>| -> Vec<Duration> {
        arrivals
            .into_iter()
            .filter_map(|(n, at)| sent.get(&n).map(|s| at.saturating_duration_since(*s)))
            .collect()
    };
    for (who, seen) in [("SSE", sse.len()), ("NATS", nats.len())] {
        if seen as u64 != sizes.tail_lines {
            bail!("the {who} client saw {seen} of {} lines", sizes.tail_lines);
        }
    }
    Ok(Latencies {
        sse: Samples::new(delays(sse)),
        nats: Samples::new(delays(nats)),
    })
}
