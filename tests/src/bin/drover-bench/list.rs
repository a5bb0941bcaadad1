//! List: `GET /jobs` pages and `GET /jobs/statistics` over a store of many jobs, on a
//! stack of its own so the store holds exactly the jobs made here.
//!
//! Every job is created through the API; its fate follows its id: `id % 4` = 0 failed
//! (claimed by the fake agent, `running` then `failed` with exit code 1), 1 succeeded
//! (the same with `success`), 2 cancelled while pending (`POST /jobs/{id}/cancel`),
//! 3 left pending. Jobs take playbooks in turn from [`PLAYBOOKS`], so the two-filter
//! query matches a known share. Each query is then sent by one client over one
//! keep-alive connection, one request at a time, and every answer is checked against
//! what was made: the exact ids, newest first, and the totals.

use crate::fake::{AGENT, FakeJob, publish, status};
use crate::stats::Samples;
use anyhow::{Context, bail, ensure};
use async_nats::jetstream::{self, message::PublishMessage};
use drover_shared::JobStatus;
use drover_shared::protocol::{
    CLAIM_SUBJECT, ClaimReply, ClaimRequest, Message, StatusChange, status_subject,
};
use drover_tests::{ADMIN_TOKEN, Stack, StackOptions};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Playbooks the jobs take in turn.
pub const PLAYBOOKS: usize = 3;
/// Concurrent HTTP clients creating and cancelling jobs (as in the accept figure).
const CLIENTS: usize = 32;
/// Jobs being claimed and finished at once.
const FINISHING: usize = 512;
/// Requests sent before timing starts, so connection set-up and cold caches are not
/// measured.
const WARM_UP: usize = 20;
/// Items on each page asked for.
const PER_PAGE: usize = 20;
/// The deep page of failed jobs the store allows (fewer failures: the last).
const DEEP_PAGE: usize = 1_000;

/// One job as created.
#[derive(Clone, Copy)]
struct Made {
    id: u64,
    uuid: Uuid,
    playbook: u64,
}

fn fate(id: u64) -> JobStatus {
    match id % 4 {
        0 => JobStatus::Failed,
        1 => JobStatus::Success,
        2 => JobStatus::Cancelled,
        _ => JobStatus::Pending,
    }
}

/// One measured query.
pub struct Query {
    pub name: String,
    pub path: String,
    pub samples: Samples,
    /// `pagination.total` of its answer.
    pub total: u64,
    /// The coordinator's RSS (KiB) after it: a query that reads many records fills
    /// redb's page cache.
    pub rss_after_kb: u64,
}

pub struct ListFigures {
    pub jobs: u64,
    pub failed: u64,
    /// Seconds creating every job through `POST /jobs`.
    pub create_seconds: f64,
    /// Seconds from the first claim or cancel until the statistics show every change.
    pub settle_seconds: f64,
    /// Seconds of the whole section, stack start to last query.
    pub seconds: f64,
    pub queries: Vec<Query>,
    /// The coordinator's RSS (KiB) once every job is stored, and after the queries.
    pub rss_filled_kb: u64,
    pub rss_queried_kb: u64,
    /// Bytes under the coordinator's data dir (the redb file).
    pub store_bytes: u64,
}

/// Fills a store with `jobs` jobs, then sends each query `requests` times or for
/// `budget`, whichever ends first (a query that walks a whole index would otherwise
/// take minutes).
pub async fn list_queries(
    jobs: u64,
    requests: usize,
    budget: Duration,
) -> anyhow::Result<ListFigures> {
    let section = Instant::now();
    let stack = Stack::start_with(StackOptions {
        agents: 0,
        ..StackOptions::default()
    })
    .await;
    let mut playbooks = Vec::new();
    for n in 0..PLAYBOOKS {
        playbooks.push(crate::simultaneous_playbook(&stack, &format!("list-{n}")).await?);
    }
    // A pool no agent serves: only the benchmark claims these jobs.
    let server = stack
        .server(json!({"hostname": "list", "ip_address": "127.0.0.1", "pool": "list"}))
        .await;

    let started = Instant::now();
    let mut made = create(&stack, jobs, &playbooks, server).await?;
    let create_seconds = started.elapsed().as_secs_f64();
    made.sort_by_key(|job| job.id);

    let started = Instant::now();
    let client = async_nats::connect(&stack.nats_url).await?;
    let _beats = crate::fake::heartbeats(client.clone(), "list");
    let js = jetstream::new(client.clone());
    let (finished, cancelled) = tokio::join!(finish(&client, &js, &made), cancel(&stack, &made));
    finished?;
    cancelled?;
    let expected = Expected::of(&made);
    wait_settled(&stack, &expected).await?;
    let settle_seconds = started.elapsed().as_secs_f64();
    let rss_filled_kb = stack.coordinator_rss_kb();

    let failed: Vec<&Made> = made
        .iter()
        .rev()
        .filter(|job| fate(job.id) == JobStatus::Failed)
        .collect();
    let newest: Vec<&Made> = made.iter().rev().collect();
    let deep = DEEP_PAGE.min(failed.len().div_ceil(PER_PAGE)).max(1);
    let playbook = playbooks[0];
    let failed_of_playbook: Vec<&Made> = failed
        .iter()
        .copied()
        .filter(|job| job.playbook == playbook)
        .collect();
    let failed_only = Some(JobStatus::Failed);
    let lists = [
        (
            "/jobs failed, page 1".to_string(),
            format!("/jobs?status=failed&page=1&per_page={PER_PAGE}"),
            Page::new(&failed, 1, failed_only, None),
        ),
        (
            "/jobs unfiltered, page 1".to_string(),
            format!("/jobs?page=1&per_page={PER_PAGE}"),
            Page::new(&newest, 1, None, None),
        ),
        (
            format!("/jobs failed, page {deep}"),
            format!("/jobs?status=failed&page={deep}&per_page={PER_PAGE}"),
            Page::new(&failed, deep, failed_only, None),
        ),
        (
            "/jobs failed + playbook, page 1".to_string(),
            format!("/jobs?status=failed&playbook_id={playbook}&page=1&per_page={PER_PAGE}"),
            Page::new(&failed_of_playbook, 1, failed_only, Some(playbook)),
        ),
    ];
    let http = reqwest::Client::new();
    let mut queries = Vec::new();
    for (name, path, want) in lists {
        let url = format!("{}{path}", stack.http);
        let samples = measure(&http, &url, requests, budget, |body| want.check(body)).await?;
        queries.push(Query {
            name,
            path,
            samples,
            total: want.matching.len() as u64,
            rss_after_kb: stack.coordinator_rss_kb(),
        });
    }
    let url = format!("{}/jobs/statistics", stack.http);
    let samples = measure(&http, &url, requests, budget, |body| expected.check(body)).await?;
    queries.push(Query {
        name: "/jobs/statistics".into(),
        path: "/jobs/statistics".into(),
        samples,
        total: jobs,
        rss_after_kb: stack.coordinator_rss_kb(),
    });

    Ok(ListFigures {
        jobs,
        failed: expected.failed,
        create_seconds,
        settle_seconds,
        seconds: section.elapsed().as_secs_f64(),
        queries,
        rss_filled_kb,
        rss_queried_kb: stack.coordinator_rss_kb(),
        store_bytes: dir_bytes(&stack.dir.path().join("data")),
    })
}

/// Creates `jobs` jobs from [`CLIENTS`] concurrent clients.
async fn create(
    stack: &Stack,
    jobs: u64,
    playbooks: &[u64],
    server: u64,
) -> anyhow::Result<Vec<Made>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let next = next.clone();
        let url = format!("{}/jobs", stack.http);
        let playbooks = playbooks.to_vec();
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut made = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= jobs {
                    return anyhow::Ok(made);
                }
                let playbook = playbooks[n as usize % playbooks.len()];
                let body = json!({"playbook_id": playbook, "server_id": server});
                let response = http
                    .post(&url)
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&body)
                    .send()
                    .await?;
                let code = response.status();
                let job: Value = response.json().await?;
                ensure!(code == 201, "POST /jobs answered {code}: {job}");
                made.push(Made {
                    id: job["id"].as_u64().context("job id")?,
                    uuid: Uuid::parse_str(job["job_id"].as_str().context("job uuid")?)?,
                    playbook,
                });
            }
        }));
    }
    let mut made = Vec::with_capacity(jobs as usize);
    for worker in workers {
        made.extend(worker.await??);
    }
    Ok(made)
}

/// Claims the jobs fated to fail or succeed and publishes `running` and then their end,
/// as an agent does, [`FINISHING`] jobs at a time.
async fn finish(
    client: &async_nats::Client,
    js: &jetstream::Context,
    made: &[Made],
) -> anyhow::Result<()> {
    futures::stream::iter(
        made.iter()
            .filter(|job| matches!(fate(job.id), JobStatus::Failed | JobStatus::Success)),
    )
    .map(Ok)
    .try_for_each_concurrent(FINISHING, |job| async move {
        let job = FakeJob {
            id: job.id,
            uuid: job.uuid,
        };
        let request = ClaimRequest {
            job_uuid: job.uuid,
            agent_id: AGENT.into(),
        }
        .encode()?;
        let reply = client.request(CLAIM_SUBJECT, request.into()).await?;
        if !ClaimReply::decode(&reply.payload)?.granted {
            bail!("claim of job {} refused", job.id);
        }
        let end = match fate(job.id) {
            JobStatus::Failed => StatusChange {
                exit_code: Some(1),
                error: Some("a task failed (benchmark)".into()),
                ..status(&job, JobStatus::Failed, 0)
            },
            _ => status(&job, JobStatus::Success, 0),
        };
        // Both published before either ack is awaited: one connection keeps their
        // order, and the job's two round trips overlap.
        let subject = status_subject(job.uuid);
        let running = js
            .send_publish(
                subject.clone(),
                PublishMessage::build()
                    .payload(status(&job, JobStatus::Running, 0).encode()?.into()),
            )
            .await?;
        publish(js, subject, end.encode()?).await?;
        running.await?;
        Ok(())
    })
    .await
}

/// Cancels the jobs fated to be cancelled through the API, from [`CLIENTS`] clients.
async fn cancel(stack: &Stack, made: &[Made]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    futures::stream::iter(
        made.iter()
            .filter(|job| fate(job.id) == JobStatus::Cancelled),
    )
    .map(Ok)
    .try_for_each_concurrent(CLIENTS, |job| {
        let request = http
            .post(format!("{}/jobs/{}/cancel", stack.http, job.id))
            .bearer_auth(ADMIN_TOKEN);
        async move {
            let response = request.send().await?;
            let code = response.status();
            ensure!(
                code.is_success(),
                "cancel of job {} answered {code}: {}",
                job.id,
                response.text().await?
            );
            Ok(())
        }
    })
    .await
}

/// What `GET /jobs/statistics` must show once everything is stored.
struct Expected {
    total: u64,
    pending: u64,
    success: u64,
    failed: u64,
    cancelled: u64,
}

impl Expected {
    fn of(made: &[Made]) -> Expected {
        let count = |status| made.iter().filter(|job| fate(job.id) == status).count() as u64;
        Expected {
            total: made.len() as u64,
            pending: count(JobStatus::Pending),
            success: count(JobStatus::Success),
            failed: count(JobStatus::Failed),
            cancelled: count(JobStatus::Cancelled),
        }
    }

    fn check(&self, stats: &Value) -> anyhow::Result<()> {
        let shown = |field: &str| stats[field].as_u64();
        let wanted = [
            ("total", self.total),
            ("pending", self.pending),
            ("running", 0),
            ("success", self.success),
            ("failed", self.failed),
            ("cancelled", self.cancelled),
        ];
        for (field, want) in wanted {
            ensure!(
                shown(field) == Some(want),
                "statistics show {field} {}, expected {want}",
                stats[field]
            );
        }
        let by_playbook: u64 = stats["by_playbook"]
            .as_array()
            .context("by_playbook")?
            .iter()
            .filter_map(|p| p["total"].as_u64())
            .sum();
        ensure!(
            by_playbook == self.total,
            "by_playbook sums to {by_playbook}, expected {}",
            self.total
        );
        Ok(())
    }
}

/// Polls the statistics until they show every status change stored.
async fn wait_settled(stack: &Stack, expected: &Expected) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (code, stats) = stack.get("/jobs/statistics").await;
        ensure!(code == 200, "GET /jobs/statistics answered {code}: {stats}");
        match expected.check(&stats) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!("jobs not settled after 300 s: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What one page of a list must hold.
struct Page<'a> {
    /// Every job the query matches, newest first.
    matching: &'a [&'a Made],
    page: usize,
    playbook: Option<u64>,
    status: Option<JobStatus>,
}

impl<'a> Page<'a> {
    fn new(
        matching: &'a [&'a Made],
        page: usize,
        status: Option<JobStatus>,
        playbook: Option<u64>,
    ) -> Page<'a> {
        Page {
            matching,
            page,
            playbook,
            status,
        }
    }

    fn check(&self, body: &Value) -> anyhow::Result<()> {
        let total = self.matching.len() as u64;
        let pagination = &body["pagination"];
        ensure!(
            pagination["total"].as_u64() == Some(total)
                && pagination["page"].as_u64() == Some(self.page as u64)
                && pagination["per_page"].as_u64() == Some(PER_PAGE as u64)
                && pagination["pages"].as_u64() == Some(total.div_ceil(PER_PAGE as u64)),
            "pagination {pagination}, expected total {total} on page {}",
            self.page
        );
        let want: Vec<u64> = self
            .matching
            .iter()
            .skip((self.page - 1) * PER_PAGE)
            .take(PER_PAGE)
            .map(|job| job.id)
            .collect();
        ensure!(
            want.len() == PER_PAGE,
            "the benchmark asks for a page that is not full"
        );
        let items = body["items"].as_array().context("items")?;
        let ids: Vec<u64> = items.iter().filter_map(|i| i["id"].as_u64()).collect();
        ensure!(ids == want, "items {ids:?}, expected {want:?}");
        let created: Vec<&str> = items
            .iter()
            .filter_map(|i| i["created_at"].as_str())
            .collect();
        ensure!(
            created.len() == items.len() && created.is_sorted_by(|a, b| a >= b),
            "items not newest first: created_at {created:?}"
        );
        for item in items {
            if let Some(status) = self.status {
                ensure!(
                    item["status"] == status.as_str(),
                    "item {} is {}, expected {status}",
                    item["id"],
                    item["status"]
                );
            }
            if let Some(playbook) = self.playbook {
                ensure!(
                    item["playbook"]["id"] == playbook,
                    "item {} has playbook {}, expected {playbook}",
                    item["id"],
                    item["playbook"]
                );
            }
        }
        Ok(())
    }
}

/// Sends `GET url` `requests` times or until `budget` is spent, one at a time, timing
/// each to its last body byte; every answer must be a 200 that `check` accepts.
async fn measure(
    http: &reqwest::Client,
    url: &str,
    requests: usize,
    budget: Duration,
    check: impl Fn(&Value) -> anyhow::Result<()>,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::with_capacity(requests);
    let mut timed = None;
    for n in 0..WARM_UP + requests {
        if n == WARM_UP {
            timed = Some(Instant::now());
        }
        if timed.is_some_and(|timed| timed.elapsed() > budget) {
            break;
        }
        let started = Instant::now();
        let response = http.get(url).bearer_auth(ADMIN_TOKEN).send().await?;
        let code = response.status();
        let body = response.bytes().await?;
        let took = started.elapsed();
        let body: Value = serde_json::from_slice(&body)
            .with_context(|| format!("GET {url}: {}", String::from_utf8_lossy(&body)))?;
        ensure!(code == 200, "GET {url} answered {code}: {body}");
        check(&body).with_context(|| format!("GET {url}"))?;
        if n >= WARM_UP {
            samples.push(took);
        }
    }
    Ok(Samples::new(samples))
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
