//! The run loop against fake ansible-runner scripts and a real nats-server.

use super::*;
use crate::cancel;
use crate::test_support::{
    JobFeed, KillLeftovers, NatsServer, PATIENCE, dispatch, fake_runner, job_processes,
    processes_left, settings,
};

/// ansible-runner's shape: output, then a task's child in a session of its own.
const PRINTS_THEN_SLEEPS: &str = "setsid sleep 300 &\necho one\necho two\nwait";

async fn wait_for_processes(job: uuid::Uuid, at_least: usize) {
    let deadline = Instant::now() + PATIENCE;
    while job_processes(job).len() < at_least {
        assert!(
            Instant::now() < deadline,
            "the fake runner's processes did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_kills_every_process_of_the_job_and_reports_cancelled() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings(dir.path(), fake_runner(dir.path(), PRINTS_THEN_SLEEPS));
    let dispatch = dispatch(None);
    let job = dispatch.job_uuid;
    let _cleanup = KillLeftovers(job);
    let mut feed = JobFeed::subscribe(&client, job).await;
    let (canceller, signal) = cancel::channel();
    let run = tokio::spawn(execute(dispatch, settings, jetstream::new(client), signal));

    let first = feed.first_logs().await;
    wait_for_processes(job, 2).await; // the shell and its sleep
    canceller.cancel("alice".into());
    let seen = first.lines.into_iter().map(|l| l.content).collect();
    let (lines, status) = feed.final_status(seen).await;
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the job ends")
        .expect("the job does not panic");

    assert_eq!(status.status, JobStatus::Cancelled);
    assert_eq!(status.exit_code, Some(99));
    assert_eq!(status.error.as_deref(), Some("cancelled by alice"));
    assert_eq!(status.last_line, 2, "lines printed before the cancel count");
    let lines: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
    assert_eq!(lines, ["one", "two"]);
    let left = processes_left(job, Duration::from_secs(5)).await;
    assert!(left.is_empty(), "processes of the job left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_before_it_starts_runs_nothing_and_reports_only_cancelled() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let started = dir.path().join("started");
    let script = format!("touch {}", started.display());
    let settings = settings(dir.path(), fake_runner(dir.path(), &script));
    let dispatch = dispatch(None);
    let mut feed = JobFeed::subscribe(&client, dispatch.job_uuid).await;
    let (canceller, signal) = cancel::channel();
    canceller.cancel("bob".into());
    tokio::time::timeout(
        PATIENCE,
        execute(dispatch, settings, jetstream::new(client), signal),
    )
    .await
    .expect("the job ends");

    let Some(crate::test_support::Published::Status(status)) = feed.next().await else {
        panic!("the first message is not a status");
    };
    assert_eq!(status.status, JobStatus::Cancelled, "no `running` first");
    assert_eq!(status.exit_code, Some(99));
    assert_eq!(status.last_line, 0);
    assert_eq!(status.started_at, None);
    assert_eq!(
        status.error.as_deref(),
        Some("cancelled by bob before it started")
    );
    assert!(!started.exists(), "the runner was not started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_after_the_runner_exited_is_ignored() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    // The sleep keeps the output open after the runner exits: the run is draining.
    let script = format!(
        "echo $$ > {}\nsetsid sleep 3 &\necho one\nexit 0",
        pid_file.display()
    );
    let settings = settings(dir.path(), fake_runner(dir.path(), &script));
    let dispatch = dispatch(None);
    let job = dispatch.job_uuid;
    let _cleanup = KillLeftovers(job);
    let mut feed = JobFeed::subscribe(&client, job).await;
    let (canceller, signal) = cancel::channel();
    let run = tokio::spawn(execute(dispatch, settings, jetstream::new(client), signal));

    let first = feed.first_logs().await;
    let pid = std::fs::read_to_string(&pid_file).expect("pid written");
    let deadline = Instant::now() + PATIENCE;
    while std::path::Path::new(&format!("/proc/{}", pid.trim())).exists() {
        assert!(Instant::now() < deadline, "the runner did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Reaped; give the run loop a moment to see the exit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    canceller.cancel("carol".into());
    let seen = first.lines.into_iter().map(|l| l.content).collect();
    let (_, status) = feed.final_status(seen).await;
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the job ends")
        .expect("the job does not panic");

    assert_eq!(status.status, JobStatus::Success);
    assert_eq!(status.exit_code, Some(0));
    assert_eq!(status.error, None);
    let left = processes_left(job, Duration::from_secs(5)).await;
    assert!(left.is_empty(), "processes of the job left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_still_kills_the_run_and_a_later_cancel_changes_nothing() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings(dir.path(), fake_runner(dir.path(), PRINTS_THEN_SLEEPS));
    let dispatch = dispatch(Some(1));
    let job = dispatch.job_uuid;
    let _cleanup = KillLeftovers(job);
    let mut feed = JobFeed::subscribe(&client, job).await;
    let (canceller, signal) = cancel::channel();
    let run = tokio::spawn(execute(dispatch, settings, jetstream::new(client), signal));

    let first = feed.first_logs().await;
    let seen = first.lines.into_iter().map(|l| l.content).collect();
    let (_, status) = feed.final_status(seen).await;
    canceller.cancel("dave".into());
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the job ends")
        .expect("the job does not panic");

    assert_eq!(status.status, JobStatus::Failed);
    assert_eq!(status.exit_code, Some(4));
    assert_eq!(status.error.as_deref(), Some("timed out after 1 s"));
    assert_eq!(status.last_line, 2);
    let left = processes_left(job, Duration::from_secs(5)).await;
    assert!(left.is_empty(), "processes of the job left: {left:?}");
}
