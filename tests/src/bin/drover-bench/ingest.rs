//! Ingest: log lines per second stored from many concurrent fake agents, flat out and as
//! a steady background load.

use crate::Sizes;
use crate::fake::{fake_job, lines, publish};
use anyhow::bail;
use async_nats::jetstream;
use drover_shared::protocol::{LogBatch, Message, logs_subject};
use drover_tests::Stack;
use std::time::{Duration, Instant};

/// Fake agents publish batches at a steady total of `lines_per_second` until stopped;
/// returns the lines sent.
pub async fn steady_load(
    stack: &Stack,
    js: &jetstream::Context,
    playbook: u64,
    server: u64,
    sizes: &Sizes,
    lines_per_second: f64,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let client = async_nats::connect(&stack.nats_url).await?;
    let mut jobs = Vec::new();
    for _ in 0..sizes.ingest_jobs {
        jobs.push(fake_job(stack, &client, playbook, server).await?);
    }
    let per_job = lines_per_second / sizes.ingest_jobs as f64;
    let every = Duration::from_secs_f64(sizes.batch_lines as f64 / per_job);
    let mut publishers = Vec::new();
    let count = jobs.len() as u32;
    for (index, job) in jobs.into_iter().enumerate() {
        let (js, batch, stopped) = (js.clone(), sizes.batch_lines, stopped.clone());
        // Spread the agents' ticks over the period: a hundred agents do not publish in
        // lock step, and a load that does measures its own bursts.
        let phase = every * index as u32 / count.max(1);
        publishers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, every);
            let mut next = 1;
            while !*stopped.borrow() {
                tick.tick().await;
                let payload = LogBatch {
                    job_uuid: job.uuid,
                    lines: lines(next, batch, |n| {
                        format!(
                            "steady line {n} of a benchmark job, about as long as an ansible line"
                        )
                    }),
                }
                .encode()?;
                publish(&js, logs_subject(job.uuid), payload).await?;
                next += batch;
            }
            anyhow::Ok(next - 1)
        }));
    }
    let mut sent = 0;
    for publisher in publishers {
        sent += publisher.await??;
    }
    Ok(sent)
}

/// Many fake agents publish log batches at once; returns lines stored and seconds taken
/// until every job's lines are all stored.
pub async fn ingest_load(
    stack: &Stack,
    js: &jetstream::Context,
    playbook: u64,
    server: u64,
    sizes: &Sizes,
) -> anyhow::Result<(u64, f64, Vec<u64>)> {
    let client = async_nats::connect(&stack.nats_url).await?;
    let mut jobs = Vec::new();
    for _ in 0..sizes.ingest_jobs {
        jobs.push(fake_job(stack, &client, playbook, server).await?);
    }
    let started = Instant::now();
    let mut publishers = Vec::new();
    for job in &jobs {
        let (js, uuid) = (js.clone(), job.uuid);
        let (total, batch) = (sizes.ingest_lines_per_job, sizes.batch_lines);
        publishers.push(tokio::spawn(async move {
            let mut next = 1;
            while next <= total {
                let count = batch.min(total - next + 1);
                let payload = LogBatch {
                    job_uuid: uuid,
                    lines: lines(next, count, |n| {
                        format!(
                            "ingest line {n} of a benchmark job, about as long as an ansible line"
                        )
                    }),
                }
                .encode()?;
                publish(&js, logs_subject(uuid), payload).await?;
                next += count;
            }
            anyhow::Ok(())
        }));
    }
    for publisher in publishers {
        publisher.await??;
    }
    // Stored means visible through the API: wait until every job has all its lines.
    let expected = sizes.ingest_lines_per_job;
    for job in &jobs {
        loop {
            let (_, detail) = stack.get(&format!("/jobs/{}", job.id)).await;
            if detail["total_lines"].as_u64() == Some(expected) {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!(
                    "job {} stored {} of {expected} lines",
                    job.id,
                    detail["total_lines"]
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok((
        expected * sizes.ingest_jobs,
        started.elapsed().as_secs_f64(),
        jobs.iter().map(|job| job.id).collect(),
    ))
}
