//! Store rules on a real redb file: claims granted once, ingest idempotent, a final
//! status held until its lines are stored, reports from the wrong agent refused.

use super::*;
use chrono::Utc;
use drover_shared::protocol::{LogBatch, LogLine, StatusChange};
use drover_shared::{Connection, JobStatus, LogLevel};
use uuid::Uuid;

async fn store_with_job() -> (tempfile::TempDir, Store, JobRecord) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("opens");
    let user = store
        .ensure_user_with_token("admin", Role::Admin, [7; 32])
        .await
        .expect("user");
    let playbook = store
        .create_playbook(
            NewPlaybook {
                name: "p".into(),
                description: String::new(),
                content: "- hosts: all\n".into(),
                file_path: None,
                timeout_secs: Some(60),
                allow_simultaneous: false,
            },
            audit(),
        )
        .await
        .expect("playbook");
    let server = store
        .create_server(
            NewServer {
                hostname: "h".into(),
                ip_address: "127.0.0.1".into(),
                ssh_port: 22,
                ssh_user: "root".into(),
                ssh_key_path: None,
                pool: "default".into(),
                connection: Connection::Local,
                python_interpreter: None,
            },
            audit(),
        )
        .await
        .expect("server");
    let (job, _, _) = store
        .create_job(
            NewJob {
                playbook_id: playbook.id,
                server_id: server.id,
                user_id: user.id,
                extra_vars: serde_json::json!({}),
                timeout_secs: None,
                verbosity: 0,
                retry_of: None,
            },
            audit(),
        )
        .await
        .expect("job");
    (dir, store, job)
}

fn audit() -> Audit {
    Audit {
        user_id: 1,
        username: "admin".into(),
        action: "test".into(),
        parameters: serde_json::json!({}),
    }
}

fn lines(job: Uuid, numbers: std::ops::RangeInclusive<u64>) -> Ingest {
    Ingest::Logs(LogBatch {
        job_uuid: job,
        lines: numbers
            .map(|n| LogLine {
                line_number: n,
                content: format!("line {n}"),
                log_level: LogLevel::Info,
                timestamp: Utc::now(),
            })
            .collect(),
    })
}

fn status(job: Uuid, agent: &str, status: JobStatus, last_line: u64) -> Ingest {
    Ingest::Status(StatusChange {
        job_uuid: job,
        agent_id: agent.into(),
        status,
        exit_code: status.is_finished().then_some(0),
        last_line,
        started_at: Some(Utc::now()),
        completed_at: status.is_finished().then(Utc::now),
        resource_usage: None,
        error: None,
        host_recap: Vec::new(),
    })
}

async fn job_now(store: &Store, job: &JobRecord) -> JobRecord {
    store
        .job_detail(JobFilter::Id(job.id))
        .await
        .expect("reads")
        .expect("exists")
        .job
}

#[tokio::test]
async fn new_job_takes_the_playbook_timeout_and_is_pending() {
    let (_dir, store, job) = store_with_job().await;
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.timeout_secs, Some(60));
    let pending = store.unclaimed_pending_jobs().await.expect("lists");
    assert_eq!(pending.len(), 1);
}

#[tokio::test]
async fn a_job_is_granted_to_one_agent_only() {
    let (_dir, store, job) = store_with_job().await;
    assert!(
        store
            .claim(job.uuid, "a".into())
            .await
            .expect("claims")
            .granted
    );
    assert!(
        store
            .claim(job.uuid, "a".into())
            .await
            .expect("claims")
            .granted,
        "same agent again"
    );
    let refused = store.claim(job.uuid, "b".into()).await.expect("claims");
    assert!(!refused.granted);
    assert!(
        refused
            .reason
            .unwrap_or_default()
            .contains("claimed by agent a")
    );
    assert!(
        !store
            .claim(Uuid::new_v4(), "a".into())
            .await
            .expect("claims")
            .granted
    );
    assert!(
        store
            .unclaimed_pending_jobs()
            .await
            .expect("lists")
            .is_empty()
    );
    // Once it runs, even its own agent cannot claim it again (a redelivered dispatch).
    store
        .ingest(vec![status(job.uuid, "a", JobStatus::Running, 0)], 1)
        .await
        .expect("ingests");
    let again = store.claim(job.uuid, "a".into()).await.expect("claims");
    assert!(!again.granted);
    assert!(again.reason.unwrap_or_default().contains("already running"));
}

#[tokio::test]
async fn replayed_lines_are_stored_once() {
    let (_dir, store, job) = store_with_job().await;
    store.claim(job.uuid, "a".into()).await.expect("claims");
    let ingested = store
        .ingest(
            vec![
                lines(job.uuid, 1..=3),
                lines(job.uuid, 1..=3),
                lines(job.uuid, 3..=5),
            ],
            2,
        )
        .await
        .expect("ingests");
    assert_eq!(ingested.progress.len(), 1, "one job touched");
    assert_eq!(ingested.progress[0].total_lines, 5);
    assert!(!ingested.progress[0].status_changed);
    assert_eq!(
        ingested.outcomes,
        [
            IngestOutcome::Applied,
            IngestOutcome::Duplicate,
            IngestOutcome::Applied
        ]
    );
    let page = store.log_page(job.id, 0, 100).await.expect("page");
    assert_eq!(page.total_lines, 5);
    let numbers: Vec<u64> = page.lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert_eq!(page.lines[4].1.content, "line 5");
}

#[tokio::test]
async fn final_status_waits_for_its_lines() {
    let (_dir, store, job) = store_with_job().await;
    store.claim(job.uuid, "a".into()).await.expect("claims");
    store
        .ingest(
            vec![
                status(job.uuid, "a", JobStatus::Running, 0),
                lines(job.uuid, 1..=2),
            ],
            3,
        )
        .await
        .expect("ingests");
    // The final status says 4 lines were published; only 2 are stored.
    store
        .ingest(vec![status(job.uuid, "a", JobStatus::Success, 4)], 4)
        .await
        .expect("ingests");
    assert_eq!(job_now(&store, &job).await.status, JobStatus::Running);
    let ingested = store
        .ingest(vec![lines(job.uuid, 3..=4)], 5)
        .await
        .expect("ingests");
    assert!(
        ingested.progress[0].status_changed,
        "the held status is released"
    );
    let finished = job_now(&store, &job).await;
    assert_eq!(finished.status, JobStatus::Success);
    assert_eq!(finished.exit_code, Some(0));
    assert_eq!(finished.total_lines, 4);
}

#[tokio::test]
async fn reports_from_an_agent_without_the_claim_are_refused() {
    let (_dir, store, job) = store_with_job().await;
    store.claim(job.uuid, "a".into()).await.expect("claims");
    let outcomes = store
        .ingest(vec![status(job.uuid, "intruder", JobStatus::Failed, 0)], 6)
        .await
        .expect("ingests")
        .outcomes;
    assert!(matches!(&outcomes[0], IngestOutcome::Rejected(r) if r.contains("intruder")));
    assert_eq!(job_now(&store, &job).await.status, JobStatus::Pending);
}

#[tokio::test]
async fn finished_jobs_do_not_change_or_grow() {
    let (_dir, store, job) = store_with_job().await;
    store.claim(job.uuid, "a".into()).await.expect("claims");
    store
        .ingest(
            vec![
                lines(job.uuid, 1..=1),
                status(job.uuid, "a", JobStatus::Success, 1),
            ],
            7,
        )
        .await
        .expect("ingests");
    let outcomes = store
        .ingest(
            vec![
                status(job.uuid, "a", JobStatus::Failed, 1),
                status(job.uuid, "a", JobStatus::Running, 0),
                lines(job.uuid, 2..=2),
                lines(Uuid::new_v4(), 1..=1),
            ],
            8,
        )
        .await
        .expect("ingests")
        .outcomes;
    assert!(matches!(outcomes[0], IngestOutcome::Rejected(_)));
    assert_eq!(outcomes[1], IngestOutcome::Duplicate);
    assert!(matches!(outcomes[2], IngestOutcome::Rejected(_)));
    assert!(matches!(outcomes[3], IngestOutcome::Rejected(_)));
    let now = job_now(&store, &job).await;
    assert_eq!(now.status, JobStatus::Success);
    assert_eq!(now.total_lines, 1);
}

#[tokio::test]
async fn the_store_survives_a_reopen() {
    let (dir, store, job) = store_with_job().await;
    store.claim(job.uuid, "a".into()).await.expect("claims");
    store
        .ingest(vec![lines(job.uuid, 1..=3)], 9)
        .await
        .expect("ingests");
    let reopened = Store::reopen(store, dir.path()).await;
    let page = reopened.log_page(job.id, 0, 10).await.expect("page");
    assert_eq!(page.total_lines, 3);
    // Ingest reads on from the stream sequence committed with those lines.
    assert_eq!(reopened.ingest_position().await.expect("reads"), 9);
    let again = reopened
        .job_detail(JobFilter::Uuid(job.uuid))
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(again.job.agent_id.as_deref(), Some("a"));
}

#[tokio::test]
async fn log_matches_filter_by_level_and_text_and_page() {
    let (_dir, store, job) = store_with_job().await;
    let uuid = job.uuid;
    assert!(store.claim(uuid, "a".into()).await.expect("claims").granted);
    let batch = Ingest::Logs(LogBatch {
        job_uuid: uuid,
        lines: (1..=1000)
            .map(|n| LogLine {
                line_number: n,
                content: if n % 100 == 0 {
                    format!("fatal: [web-{n}]: FAILED!")
                } else {
                    format!("ok: [web-{n}]")
                },
                log_level: if n % 100 == 0 {
                    LogLevel::Error
                } else {
                    LogLevel::Info
                },
                timestamp: Utc::now(),
            })
            .collect(),
    });
    store.ingest(vec![batch], 1).await.expect("ingests");
    let errors = LogFilter {
        level: Some(LogLevel::Error),
        contains: None,
    };
    let first = store
        .log_matches(job.id, 0, 1, errors.clone())
        .await
        .expect("matches");
    let numbers = |m: &LogMatches| m.page.lines.iter().map(|(n, _)| *n).collect::<Vec<_>>();
    assert_eq!(numbers(&first), vec![100]);
    assert!(first.has_more);
    assert_eq!(first.page.total_lines, 1000);
    let rest = store
        .log_matches(job.id, 100, 50, errors)
        .await
        .expect("matches");
    assert_eq!(
        numbers(&rest),
        (2..=10).map(|n| n * 100).collect::<Vec<_>>()
    );
    assert!(!rest.has_more, "the scan reached the end");
    let text = LogFilter {
        level: None,
        contains: Some("WEB-55".into()),
    };
    let found = store
        .log_matches(job.id, 0, 100, text)
        .await
        .expect("matches");
    assert_eq!(
        numbers(&found),
        vec![55, 550, 551, 552, 553, 554, 555, 556, 557, 558, 559]
    );
    let both = LogFilter {
        level: Some(LogLevel::Info),
        contains: Some("web-50".into()),
    };
    let found = store
        .log_matches(job.id, 0, 100, both)
        .await
        .expect("matches");
    assert!(numbers(&found).iter().all(|n| n % 100 != 0) && numbers(&found).contains(&501));
}

/// What the hourly timeline counters add to a job's writes: 20,000 jobs created, started
/// and finished through `put_job` in one transaction (no fsync), against the counters'
/// share of that alone. Run with `--ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn timeline_counters_cost_beside_put_job() {
    use super::job_index::put_job;
    use std::time::Instant;
    const JOBS: u64 = 20_000;
    let (_dir, store, template) = store_with_job().await;
    let db = store.db.clone();
    tokio::task::spawn_blocking(move || {
        let tx = db.begin_write().expect("write");
        let now = Utc::now();
        let mut jobs: Vec<JobRecord> = (0..JOBS)
            .map(|i| {
                let mut job = template.clone();
                job.id = 1_000_000 + i;
                job.uuid = Uuid::new_v4();
                job
            })
            .collect();
        let started = Instant::now();
        for job in &mut jobs {
            put_job(&tx, job, None).expect("create");
            job.status = JobStatus::Running;
            job.started_at = Some(now);
            put_job(&tx, job, Some(JobStatus::Pending)).expect("start");
            job.status = JobStatus::Success;
            job.completed_at = Some(now + chrono::Duration::seconds(2));
            put_job(&tx, job, Some(JobStatus::Running)).expect("finish");
        }
        let whole = started.elapsed();
        let started = Instant::now();
        for job in &jobs {
            super::timeline::count(&tx, job, None, None).expect("created");
            super::timeline::count(&tx, job, Some(JobStatus::Running), Some(2000))
                .expect("finished");
        }
        let counters = started.elapsed();
        println!(
            "put_job, 3 writes per job: {:.1} µs per job, of which the timeline counters {:.1} µs ({:.0} %)",
            whole.as_secs_f64() * 1e6 / JOBS as f64,
            counters.as_secs_f64() * 1e6 / JOBS as f64,
            100.0 * counters.as_secs_f64() / whole.as_secs_f64()
        );
    })
    .await
    .expect("measures");
}
