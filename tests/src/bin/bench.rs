//! `drover-bench`: starts a real stack on loopback and measures what Drover adds. Run it
//! through `scripts/bench`.
//!
//! Measured now:
//! - **tail latency**: from a log line's publish (as an agent publishes it, to JetStream)
//!   to its arrival at an SSE client and at a plain NATS subscriber, idle and while the
//!   ingest load below runs;
//! - **ingest**: log lines per second persisted to redb (and so visible to the API and
//!   live streams), from `LogBatch` messages published by many concurrent fake agents.

use anyhow::{Context, bail};
use async_nats::jetstream::{self, message::PublishMessage};
use clap::Parser;
use drover_shared::protocol::{
    CLAIM_SUBJECT, ClaimReply, ClaimRequest, LogBatch, LogLine, Message, StatusChange,
    logs_subject, status_subject,
};
use drover_shared::sse::SseParser;
use drover_shared::{JobStatus, LogLevel};
use drover_tests::{ADMIN_TOKEN, Stack, StackOptions};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "drover-bench",
    about = "Measure Drover on a real loopback stack"
)]
struct Args {
    /// A short run (seconds) that checks the benchmark still works.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON summary.
    #[arg(long, default_value = "target/bench/summary.json")]
    json: std::path::PathBuf,
}

struct Sizes {
    tail_lines: u64,
    tail_interval: Duration,
    ingest_jobs: u64,
    ingest_lines_per_job: u64,
    batch_lines: u64,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                tail_lines: 200,
                tail_interval: Duration::from_millis(2),
                ingest_jobs: 10,
                ingest_lines_per_job: 2_000,
                batch_lines: 100,
            }
        } else {
            Sizes {
                tail_lines: 2_000,
                tail_interval: Duration::from_millis(2),
                ingest_jobs: 100,
                ingest_lines_per_job: 10_000,
                batch_lines: 100,
            }
        }
    }
}

/// A job created through the API and claimed by this benchmark acting as its agent.
struct FakeJob {
    id: u64,
    uuid: Uuid,
}

const AGENT: &str = "bench-agent";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = Sizes::new(args.quick);
    // No agents: the benchmark publishes what agents would.
    let stack = Stack::start_with(StackOptions {
        agents: 0,
        ..StackOptions::default()
    })
    .await;
    let client = async_nats::connect(&stack.nats_url).await?;
    let js = jetstream::new(client.clone());
    let playbook = stack.playbook("bench", "- hosts: all\n  tasks: []\n").await;
    let server = stack
        .server(json!({"hostname": "bench", "ip_address": "127.0.0.1", "pool": "bench"}))
        .await;

    let mut summary = serde_json::Map::new();
    println!("{:<56} {:>12} {:>12}", "figure", "p50", "p99");

    let idle = tail_latency(&stack, &client, &js, playbook, server, &sizes).await?;
    report(&mut summary, "tail_idle", &idle);

    // Ingest flat out: how many lines per second can be stored.
    let (lines, seconds) = ingest_load(&stack, &js, playbook, server, &sizes).await?;
    let rate = lines as f64 / seconds;
    println!(
        "{:<56} {:>12.0} lines/s ({lines} lines from {} jobs in {seconds:.2} s)",
        "ingest: persisted and visible", rate, sizes.ingest_jobs
    );
    summary.insert(
        "ingest".into(),
        json!({"lines": lines, "seconds": seconds, "lines_per_second": rate, "jobs": sizes.ingest_jobs}),
    );

    // Tail latency while a steady load (a third of that rate) is being ingested.
    let steady = (rate / 3.0).max(1_000.0);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = steady_load(&stack, &js, playbook, server, &sizes, steady, stopped);
    let (loaded, background) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let loaded = tail_latency(&stack, &client, &js, playbook, server, &sizes).await;
            let _ = stop.send(true);
            loaded
        },
        background
    );
    let sent = background?;
    println!(
        "(steady load: {steady:.0} lines/s offered, {sent} lines sent during the measurement)"
    );
    report(&mut summary, "tail_under_ingest", &loaded?);
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&Value::Object(summary))?,
    )?;
    println!("summary written to {}", args.json.display());
    Ok(())
}

struct Latencies {
    sse: Vec<Duration>,
    nats: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(summary: &mut serde_json::Map<String, Value>, name: &str, latencies: &Latencies) {
    let mut entry = serde_json::Map::new();
    for (who, samples) in [("sse", &latencies.sse), ("nats", &latencies.nats)] {
        let mut sorted = samples.clone();
        sorted.sort();
        let (p50, p99) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0));
        println!(
            "{:<56} {:>9.3} ms {:>9.3} ms",
            format!("{name}: publish -> {who} client ({} lines)", sorted.len()),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        entry.insert(
            who.into(),
            json!({"p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3, "samples": sorted.len()}),
        );
    }
    summary.insert(name.into(), Value::Object(entry));
}

/// Creates a job through the API and claims it as the benchmark's agent.
async fn fake_job(
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

fn status(job: &FakeJob, status: JobStatus, last_line: u64) -> StatusChange {
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
async fn publish(js: &jetstream::Context, subject: String, payload: Vec<u8>) -> anyhow::Result<()> {
    js.send_publish(subject, PublishMessage::build().payload(payload.into()))
        .await?
        .await?;
    Ok(())
}

fn lines(first: u64, count: u64, text: impl Fn(u64) -> String) -> Vec<LogLine> {
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

/// One line at a time on a fresh job; an SSE client and a NATS subscriber note when each
/// line arrives.
async fn tail_latency(
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
        sse: delays(sse),
        nats: delays(nats),
    })
}

/// Fake agents publish batches at a steady total of `lines_per_second` until stopped;
/// returns the lines sent.
async fn steady_load(
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
    for job in jobs {
        let (js, batch, stopped) = (js.clone(), sizes.batch_lines, stopped.clone());
        publishers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
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
async fn ingest_load(
    stack: &Stack,
    js: &jetstream::Context,
    playbook: u64,
    server: u64,
    sizes: &Sizes,
) -> anyhow::Result<(u64, f64)> {
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
    ))
}
