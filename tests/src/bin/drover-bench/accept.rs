//! Accept: durable `POST /jobs` per second from concurrent clients. Every 201 means the
//! job was committed to redb (group commit) and stored in the dispatch stream.

use drover_tests::{ADMIN_TOKEN, Stack};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub async fn accept_rate(
    stack: &Stack,
    playbook: u64,
    server: u64,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(u64, f64)> {
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (accepted, refused) = (accepted.clone(), refused.clone());
        let url = format!("{}/jobs", stack.http);
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let body = json!({"playbook_id": playbook, "server_id": server, "extra_vars": {"bench": true}});
            while started.elapsed() < duration {
                let response = http.post(&url).bearer_auth(ADMIN_TOKEN).json(&body).send().await;
                match response {
                    Ok(r) if r.status() == 201 => accepted.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let refused = refused.load(Ordering::Relaxed);
    if refused > 0 {
        anyhow::bail!("{refused} submissions were refused");
    }
    Ok((accepted.load(Ordering::Relaxed), seconds))
}
