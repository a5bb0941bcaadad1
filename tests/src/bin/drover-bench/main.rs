//! `drover-bench`: starts a real stack on loopback and measures what Drover adds to
//! Ansible. Run it through `scripts/bench`; it prints a table and writes a JSON summary.
//!
//! - [`fsync`]: the disk's durable-write latency, the floor under every commit;
//! - [`accept`]: durable `POST /jobs` per second;
//! - [`dispatch`]: `POST /jobs` to `running`, at low load and at a fixed rate;
//! - [`ingest`]: log lines per second stored from concurrent fake agents;
//! - [`tail`]: a line's publish to an SSE client and a NATS subscriber, idle and under
//!   a steady ingest load;
//! - [`overhead`]: a trivial playbook through Drover against `ansible-runner` alone;
//! - memory of the coordinator and an agent, read from `/proc`;
//! - [`list`]: `GET /jobs` pages and `GET /jobs/statistics` over 100,000 stored jobs, on
//!   a stack of its own.

mod accept;
mod cpu;
mod dispatch;
mod fake;
mod fsync;
mod ingest;
mod list;
mod overhead;
mod stats;
mod tail;

use clap::Parser;
use drover_tests::{ADMIN_TOKEN, Stack, StackOptions};
use futures::StreamExt;
use serde_json::{Value, json};
use stats::Samples;
use std::time::Duration;

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
    /// Run only the job-list section (it starts its own stack and fills it first).
    #[arg(long)]
    list_only: bool,
}

/// How much work each measurement does.
pub struct Sizes {
    pub tail_lines: u64,
    pub tail_interval: Duration,
    pub ingest_jobs: u64,
    pub ingest_lines_per_job: u64,
    pub batch_lines: u64,
    accept_for: Duration,
    dispatch_low: usize,
    dispatch_rate_jobs: usize,
    overhead_runs: usize,
    stream_jobs: usize,
    list_jobs: u64,
    list_requests: usize,
    list_budget: Duration,
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
                accept_for: Duration::from_millis(500),
                dispatch_low: 20,
                dispatch_rate_jobs: 100,
                overhead_runs: 1,
                stream_jobs: 2,
                list_jobs: 2_000,
                list_requests: 100,
                list_budget: Duration::from_secs(2),
            }
        } else {
            Sizes {
                tail_lines: 2_000,
                tail_interval: Duration::from_millis(2),
                ingest_jobs: 100,
                ingest_lines_per_job: 10_000,
                batch_lines: 100,
                accept_for: Duration::from_secs(5),
                dispatch_low: 200,
                dispatch_rate_jobs: 1_000,
                overhead_runs: 20,
                stream_jobs: 100,
                list_jobs: 100_000,
                list_requests: 500,
                list_budget: Duration::from_secs(10),
            }
        }
    }
}

/// Rows of the final table: figure, measured, target, met.
struct Report {
    rows: Vec<(String, String, String, Option<bool>)>,
    json: serde_json::Map<String, Value>,
}

impl Report {
    fn row(&mut self, figure: &str, measured: String, target: &str, met: Option<bool>) {
        println!("{figure:<52} {measured:>22}   {target}");
        self.rows
            .push((figure.into(), measured, target.into(), met));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = Sizes::new(args.quick);
    let mut report = Report {
        rows: Vec::new(),
        json: serde_json::Map::new(),
    };
    println!("{:<52} {:>22}   target", "figure", "measured");
    if !args.list_only {
        shared_stack_sections(&args, &sizes, &mut report).await?;
    }
    list_section(&sizes, &mut report).await?;

    let missed: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.3 == Some(false))
        .map(|r| r.0.as_str())
        .collect();
    println!(
        "\ntargets met: {} of {}",
        report.rows.iter().filter(|r| r.3 == Some(true)).count(),
        report.rows.iter().filter(|r| r.3.is_some()).count()
    );
    if !missed.is_empty() {
        println!("missed: {}", missed.join("; "));
    }
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&Value::Object(report.json))?,
    )?;
    println!("summary written to {}", args.json.display());
    Ok(())
}

/// Every section but the job list, on one stack with agents.
async fn shared_stack_sections(
    args: &Args,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        agents: 0,
        ..StackOptions::default()
    })
    .await;
    // Agent 0 runs real playbooks; agent 1 runs an instant stand-in for dispatch figures.
    let real_agent = stack.start_agent("default", 1);
    let instant = dispatch::instant_runner(stack.dir.path())?;
    stack.start_agent_with_runner("dispatch", 64, &instant);
    let client = async_nats::connect(&stack.nats_url).await?;
    let _beats = fake::heartbeats(client.clone(), "bench");
    let js = async_nats::jetstream::new(client.clone());
    let playbook = simultaneous_playbook(&stack, "trivial").await?;
    let nowhere = stack
        .server(json!({"hostname": "bench", "ip_address": "127.0.0.1", "pool": "bench"}))
        .await;
    let local = stack
        .server(json!({"hostname": "localhost", "ip_address": "127.0.0.1", "connection": "local"}))
        .await;
    let instant_server = stack
        .server(json!({"hostname": "instant", "ip_address": "127.0.0.1", "pool": "dispatch", "connection": "local"}))
        .await;

    let fsync = fsync::fsync_latency(stack.dir.path(), if args.quick { 50 } else { 500 })?;
    report.row(
        "fsync of one 4 KiB page, p50 / p99",
        format!("{:.3} / {:.3} ms", fsync.ms(50.0), fsync.ms(99.0)),
        "(the disk's floor)",
        None,
    );
    report.json.insert(
        "fsync_ms".into(),
        json!({"p50": fsync.ms(50.0), "p99": fsync.ms(99.0)}),
    );

    let (accepted, seconds) =
        accept::accept_rate(&stack, playbook, nowhere, 32, sizes.accept_for).await?;
    let rate = accepted as f64 / seconds;
    report.row(
        "durable jobs accepted (32 clients)",
        format!("{rate:.0} /s"),
        ">= 5,000 /s",
        Some(rate >= 5_000.0),
    );
    report.json.insert(
        "accept".into(),
        json!({"jobs": accepted, "seconds": seconds, "per_second": rate}),
    );

    let low = dispatch::dispatch_latency(
        &stack,
        &client,
        playbook,
        instant_server,
        sizes.dispatch_low,
        Duration::from_millis(10),
    )
    .await?;
    let cpu_start = cpu::now();
    let busy = dispatch::dispatch_latency(
        &stack,
        &client,
        playbook,
        instant_server,
        sizes.dispatch_rate_jobs,
        Duration::from_millis(2),
    )
    .await?;
    let dispatch_cpu = cpu::busy_percent(cpu_start);
    for (name, samples) in [
        ("dispatch latency, low load", &low),
        ("dispatch latency, 500 jobs/s", &busy),
    ] {
        let met = samples.ms(50.0) <= 5.0 && samples.ms(99.0) <= 25.0;
        report.row(
            &format!("{name}, p50 / p99"),
            format!("{:.2} / {:.2} ms", samples.ms(50.0), samples.ms(99.0)),
            "p50 <= 5 ms, p99 <= 25 ms",
            Some(met),
        );
    }
    report.row(
        "CPU busy during the 500 jobs/s run (both cores)",
        format!("{dispatch_cpu:.0} %"),
        "",
        None,
    );
    report.json.insert(
        "dispatch_ms".into(),
        json!({
            "cpu_busy_percent_at_500": dispatch_cpu,
            "low": {"p50": low.ms(50.0), "p99": low.ms(99.0), "jobs": low.len()},
            "rate_500": {"p50": busy.ms(50.0), "p99": busy.ms(99.0), "jobs": busy.len()},
        }),
    );

    let (lines, seconds, ingest_jobs) =
        ingest::ingest_load(&stack, &js, playbook, nowhere, sizes).await?;
    let rate = lines as f64 / seconds;
    report.row(
        &format!(
            "lines persisted and fanned out ({} jobs)",
            sizes.ingest_jobs
        ),
        format!("{rate:.0} /s"),
        ">= 200,000 /s",
        Some(rate >= 200_000.0),
    );
    report.json.insert(
        "ingest".into(),
        json!({"lines": lines, "seconds": seconds, "per_second": rate}),
    );

    let rss_stored = stack.coordinator_rss_kb();
    let streamed = &ingest_jobs[..sizes.stream_jobs.min(ingest_jobs.len())];
    let rss_streaming = stream_everything(&stack, streamed).await?;
    report.row(
        &format!("coordinator RSS with {lines} lines stored"),
        format!("{:.1} MB", rss_stored as f64 / 1024.0),
        "<= 150 MB",
        Some(rss_stored <= 150 * 1024),
    );
    report.row(
        &format!(
            "coordinator RSS streaming {} jobs' logs (SSE)",
            sizes.stream_jobs
        ),
        format!("{:.1} MB", rss_streaming as f64 / 1024.0),
        "<= 150 MB",
        Some(rss_streaming <= 150 * 1024),
    );

    let idle = tail::tail_latency(&stack, &client, &js, playbook, nowhere, sizes).await?;
    let steady = (rate / 3.0).max(1_000.0);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let cpu_start = cpu::now();
    let (loaded, sent) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let loaded = tail::tail_latency(&stack, &client, &js, playbook, nowhere, sizes).await;
            let _ = stop.send(true);
            loaded
        },
        ingest::steady_load(&stack, &js, playbook, nowhere, sizes, steady, stopped)
    );
    let (loaded, sent) = (loaded?, sent?);
    let tail_cpu = cpu::busy_percent(cpu_start);
    let tail_met =
        |s: &Samples, p99: f64, idle: bool| (!idle || s.ms(50.0) <= 2.0) && s.ms(99.0) <= p99;
    report.row(
        "tail latency to SSE, idle, p50 / p99",
        format!("{:.2} / {:.2} ms", idle.sse.ms(50.0), idle.sse.ms(99.0)),
        "p50 <= 2 ms, p99 <= 10 ms",
        Some(tail_met(&idle.sse, 10.0, true)),
    );
    report.row(
        "tail latency to NATS subscriber, idle, p50 / p99",
        format!("{:.2} / {:.2} ms", idle.nats.ms(50.0), idle.nats.ms(99.0)),
        "",
        None,
    );
    report.row(
        &format!("tail latency to SSE, {steady:.0} lines/s ingest, p50 / p99"),
        format!("{:.2} / {:.2} ms", loaded.sse.ms(50.0), loaded.sse.ms(99.0)),
        "p99 <= 30 ms",
        Some(tail_met(&loaded.sse, 30.0, false)),
    );
    report.row(
        &format!("tail latency to NATS, {steady:.0} lines/s ingest, p50 / p99"),
        format!(
            "{:.2} / {:.2} ms",
            loaded.nats.ms(50.0),
            loaded.nats.ms(99.0)
        ),
        "",
        None,
    );
    report.row(
        "CPU busy during the ingest-load tail run (both cores)",
        format!("{tail_cpu:.0} %"),
        "",
        None,
    );
    report.json.insert("tail_ms".into(), json!({
        "idle": {"sse": {"p50": idle.sse.ms(50.0), "p99": idle.sse.ms(99.0)}, "nats": {"p50": idle.nats.ms(50.0), "p99": idle.nats.ms(99.0)}},
        "under_ingest": {"cpu_busy_percent": tail_cpu, "lines_per_second": steady, "lines_sent": sent, "sse": {"p50": loaded.sse.ms(50.0), "p99": loaded.sse.ms(99.0)}, "nats": {"p50": loaded.nats.ms(50.0), "p99": loaded.nats.ms(99.0)}},
    }));

    let agent_idle = stack.agent_rss_kb(real_agent);
    let overhead =
        overhead::overhead(&stack, playbook, local, real_agent, sizes.overhead_runs).await?;
    let added = overhead.drover.ms(50.0) - overhead.bare.ms(50.0);
    report.row(
        &format!(
            "trivial playbook: Drover / ansible-runner alone, median of {}",
            sizes.overhead_runs
        ),
        format!(
            "{:.0} / {:.0} ms",
            overhead.drover.ms(50.0),
            overhead.bare.ms(50.0)
        ),
        "",
        None,
    );
    report.row(
        "overhead over bare ansible-runner, median",
        format!("{added:.0} ms"),
        "<= 20 ms",
        Some(added <= 20.0),
    );
    report.row(
        "agent RSS idle / while running a job",
        format!(
            "{:.1} / {:.1} MB",
            agent_idle as f64 / 1024.0,
            overhead.agent_rss_running_kb as f64 / 1024.0
        ),
        "",
        None,
    );
    report.json.insert("overhead_ms".into(), json!({"drover_median": overhead.drover.ms(50.0), "bare_median": overhead.bare.ms(50.0), "added_median": added, "runs": sizes.overhead_runs}));
    report.json.insert(
        "memory_mb".into(),
        json!({
            "coordinator_stored": rss_stored as f64 / 1024.0,
            "coordinator_streaming": rss_streaming as f64 / 1024.0,
            "agent_idle": agent_idle as f64 / 1024.0,
            "agent_running": overhead.agent_rss_running_kb as f64 / 1024.0,
        }),
    );
    Ok(())
}

/// `GET /jobs` and `GET /jobs/statistics` over a store filled for them.
async fn list_section(sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let list = list::list_queries(sizes.list_jobs, sizes.list_requests, sizes.list_budget).await?;
    report.row(
        &format!("job list: {} jobs created / settled / section", list.jobs),
        format!(
            "{:.1} / {:.1} / {:.0} s",
            list.create_seconds, list.settle_seconds, list.seconds
        ),
        "",
        None,
    );
    let mut queries = serde_json::Map::new();
    for query in &list.queries {
        // The time budget cut this query short: say on how many requests it stands.
        let of = if query.samples.len() < sizes.list_requests {
            format!(" of {}", query.samples.len())
        } else {
            String::new()
        };
        report.row(
            &format!("GET {}, p50 / p99{of}", query.name),
            format!(
                "{:.2} / {:.2} ms",
                query.samples.ms(50.0),
                query.samples.ms(99.0)
            ),
            "",
            None,
        );
        queries.insert(
            query.path.clone(),
            json!({
                "p50_ms": query.samples.ms(50.0),
                "p99_ms": query.samples.ms(99.0),
                "requests": query.samples.len(),
                "total": query.total,
                "coordinator_rss_mb_after": query.rss_after_kb as f64 / 1024.0,
            }),
        );
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    report.row(
        &format!("coordinator RSS, {} jobs stored / after queries", list.jobs),
        format!(
            "{:.1} / {:.1} MB",
            mb(list.rss_filled_kb),
            mb(list.rss_queried_kb)
        ),
        "",
        None,
    );
    report.row(
        &format!("store (redb file), {} jobs", list.jobs),
        format!("{:.1} MB", list.store_bytes as f64 / 1e6),
        "",
        None,
    );
    report.json.insert(
        "list".into(),
        json!({
            "jobs": list.jobs,
            "failed": list.failed,
            "create_seconds": list.create_seconds,
            "settle_seconds": list.settle_seconds,
            "section_seconds": list.seconds,
            "coordinator_rss_mb": {"filled": mb(list.rss_filled_kb), "queried": mb(list.rss_queried_kb)},
            "store_mb": list.store_bytes as f64 / 1e6,
            "queries": queries,
        }),
    );
    Ok(())
}

/// Streams the logs of `jobs` (all stored, never finished) over SSE at once, sampling
/// the coordinator's RSS; returns the highest sample (KiB).
async fn stream_everything(stack: &Stack, jobs: &[u64]) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let mut readers = Vec::new();
    for id in jobs {
        let request = http
            .get(format!("{}/jobs/{id}/logs/stream", stack.http))
            .bearer_auth(ADMIN_TOKEN);
        readers.push(tokio::spawn(async move {
            let response = request.send().await?;
            let mut body = response.bytes_stream();
            let mut bytes = 0usize;
            // These jobs never finish: read until the stream goes quiet.
            while let Ok(Some(Ok(chunk))) =
                tokio::time::timeout(Duration::from_millis(500), body.next()).await
            {
                bytes += chunk.len();
            }
            anyhow::Ok(bytes)
        }));
    }
    let mut peak = stack.coordinator_rss_kb();
    while readers.iter().any(|r| !r.is_finished()) {
        peak = peak.max(stack.coordinator_rss_kb());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for reader in readers {
        reader.await??;
    }
    Ok(peak)
}

/// The benchmark's playbook: its jobs share a few servers and run side by side (by
/// default a server runs one job at a time).
pub async fn simultaneous_playbook(stack: &Stack, name: &str) -> anyhow::Result<u64> {
    let (status, body) = stack
        .post(
            "/playbooks",
            json!({"name": name, "content": overhead::TRIVIAL_PLAYBOOK, "allow_simultaneous": true}),
        )
        .await;
    anyhow::ensure!(status.is_success(), "playbook not created: {body}");
    anyhow::Context::context(body["id"].as_u64(), "playbook id")
}
