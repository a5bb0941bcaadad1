//! Overhead: the same trivial playbook through Drover (from `POST /jobs` to the SSE
//! stream's `end`) and through `ansible-runner run` alone, alternated.

use crate::stats::Samples;
use drover_agent::runner::private_data;
use drover_shared::Connection;
use drover_shared::protocol::{JobDispatch, Target};
use drover_shared::sse::SseParser;
use drover_tests::{ADMIN_TOKEN, Stack, venv_bin};
use futures::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

pub const TRIVIAL_PLAYBOOK: &str = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ping:\n";

pub struct Overhead {
    pub drover: Samples,
    pub bare: Samples,
    /// Highest agent RSS seen while a job ran, KiB.
    pub agent_rss_running_kb: u64,
}

pub async fn overhead(
    stack: &Stack,
    playbook: u64,
    server: u64,
    agent: usize,
    runs: usize,
) -> anyhow::Result<Overhead> {
    let (mut drover, mut bare) = (Vec::new(), Vec::new());
    let mut agent_rss_running_kb = 0;
    for run in 0..runs {
        let (took, rss) = through_drover(stack, playbook, server, agent).await?;
        drover.push(took);
        agent_rss_running_kb = agent_rss_running_kb.max(rss);
        bare.push(bare_runner(stack, run).await?);
    }
    Ok(Overhead {
        drover: Samples::new(drover),
        bare: Samples::new(bare),
        agent_rss_running_kb,
    })
}

async fn through_drover(
    stack: &Stack,
    playbook: u64,
    server: u64,
    agent: usize,
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let job = stack.submit(playbook, server, json!({})).await;
    let response = reqwest::Client::new()
        .get(format!("{}/jobs/{}/logs/stream", stack.http, job["id"]))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    let mut rss = 0;
    let mut sample = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            chunk = body.next() => {
                let Some(Ok(chunk)) = chunk else { anyhow::bail!("stream ended before the job") };
                if let Some(end) = parser.push(&chunk).into_iter().find(|e| e.event == "end") {
                    let took = started.elapsed();
                    if !end.data.contains("\"success\"") {
                        anyhow::bail!("the trivial playbook did not succeed: {}", end.data);
                    }
                    return Ok((took, rss));
                }
            }
            _ = sample.tick() => rss = rss.max(stack.agent_rss_kb(agent)),
        }
    }
}

async fn bare_runner(stack: &Stack, run: usize) -> anyhow::Result<Duration> {
    let dir = stack.dir.path().join(format!("bare-{run}"));
    let dispatch = JobDispatch {
        job_uuid: uuid::Uuid::new_v4(),
        job_id: 0,
        playbook_name: "trivial".into(),
        playbook_content: TRIVIAL_PLAYBOOK.into(),
        target: Target {
            hostname: "localhost".into(),
            ip_address: "127.0.0.1".into(),
            ssh_port: 22,
            ssh_user: "root".into(),
            ssh_key_path: None,
            connection: Connection::Local,
            python_interpreter: None,
        },
        extra_vars: json!({}),
        timeout_secs: None,
        verbosity: 0,
    };
    let inventory = private_data::inventory(&dispatch.target, None, false);
    private_data::write(&dir, &dispatch, &inventory, false)?;
    let runner = venv_bin("ansible-runner");
    let path = format!(
        "{}:{}",
        runner
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let output = tokio::process::Command::new(&runner)
        .arg("run")
        .arg(&dir)
        .args(["-p", private_data::PLAYBOOK_FILE, "-j"])
        .env("PATH", path)
        .output()
        .await?;
    let took = started.elapsed();
    if !output.status.success() {
        anyhow::bail!(
            "bare ansible-runner failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(took)
}
