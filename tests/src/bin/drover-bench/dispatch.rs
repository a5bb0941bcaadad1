//! Dispatch latency: from `POST /jobs` to the agent reporting `running` (claim granted,
//! runner started). The agent runs an instant stand-in for ansible-runner so that the
//! figure is Drover's alone, at low load and at a fixed submission rate.

use crate::stats::Samples;
use anyhow::Context;
use drover_shared::JobStatus;
use drover_shared::protocol::{Message, StatusChange, parse_job_subject};
use drover_tests::{ADMIN_TOKEN, Stack};
use futures::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use uuid::Uuid;

type Arrivals = Arc<Mutex<HashMap<Uuid, Instant>>>;

/// Submits `jobs` jobs, one every `every`, and returns POST-to-running delays.
pub async fn dispatch_latency(
    stack: &Stack,
    client: &async_nats::Client,
    playbook: u64,
    server: u64,
    jobs: usize,
    every: Duration,
) -> anyhow::Result<Samples> {
    let running: Arrivals = Arc::default();
    let mut statuses = client.subscribe("drover.jobs.*.status").await?;
    // A request is a round trip: once answered, the subscription is registered.
    let _ = client
        .request("drover.bench.no-such-responder", "".into())
        .await;
    let recorder = {
        let running = running.clone();
        tokio::spawn(async move {
            while let Some(message) = statuses.next().await {
                let at = Instant::now();
                let (Some((job, _)), Ok(change)) = (
                    parse_job_subject(&message.subject),
                    StatusChange::decode(&message.payload),
                ) else {
                    continue;
                };
                if change.status == JobStatus::Running {
                    running.lock().await.entry(job).or_insert(at);
                }
            }
        })
    };
    let http = reqwest::Client::new();
    let url = format!("{}/jobs", stack.http);
    let mut submissions = Vec::new();
    let mut tick = tokio::time::interval(every);
    for _ in 0..jobs {
        tick.tick().await;
        let (http, url) = (http.clone(), url.clone());
        submissions.push(tokio::spawn(async move {
            let sent = Instant::now();
            let job: serde_json::Value = http
                .post(&url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"playbook_id": playbook, "server_id": server}))
                .send()
                .await?
                .json()
                .await?;
            let uuid = Uuid::parse_str(job["job_id"].as_str().context("job uuid")?)?;
            anyhow::Ok((uuid, sent))
        }));
    }
    let mut sent = Vec::new();
    for submission in submissions {
        sent.push(submission.await??);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = running.lock().await.len();
        if seen >= jobs || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    recorder.abort();
    let running = running.lock().await;
    let delays: Vec<Duration> = sent
        .iter()
        .filter_map(|(uuid, at)| running.get(uuid).map(|r| r.saturating_duration_since(*at)))
        .collect();
    if delays.len() < jobs {
        anyhow::bail!("{} of {jobs} jobs were reported running", delays.len());
    }
    Ok(Samples::new(delays))
}

/// A stand-in for ansible-runner that exits at once, written into `dir`.
pub fn instant_runner(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("instant-runner");
    std::fs::write(&path, "#!/bin/sh\nexit 0\n")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}
