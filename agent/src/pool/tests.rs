//! Cancels reaching the pool: over NATS for a running job, and just before a job starts.

use super::*;
use crate::test_support::{
    JobFeed, KillLeftovers, NatsServer, PATIENCE, dispatch, fake_runner, job_processes,
    processes_left, settings,
};
use drover_shared::JobStatus;
use drover_shared::protocol::{CancelRequest, cancel_subject};

async fn wait_for_free_slots(slots: &Semaphore, count: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while slots.available_permits() < count {
        assert!(tokio::time::Instant::now() < deadline, "slots not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_cancel_published_on_nats_stops_a_running_job() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = fake_runner(dir.path(), "setsid sleep 300 &\necho one\nwait");
    let pool = PoolActor::new(
        settings(dir.path(), runner),
        client.clone(),
        "test".into(),
        2,
        vec![],
    );
    let slots = pool.slots.clone();
    let pool = pool.start();
    let dispatch = dispatch(None);
    let job = dispatch.job_uuid;
    let _cleanup = KillLeftovers(job);
    let mut feed = JobFeed::subscribe(&client, job).await;
    let slot = slots.clone().acquire_owned().await.expect("a slot");
    pool.send(StartJob { dispatch, slot })
        .await
        .expect("pool up");
    let first = feed.first_logs().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while job_processes(job).len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sleep did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let request: bytes::Bytes = CancelRequest {
        by_user: "alice".into(),
    }
    .encode()
    .expect("encodes")
    .into();
    // The pool subscribes in its own task: repeat the cancel until it is heard (the
    // first one heard wins, the rest change nothing).
    let seen = first.lines.into_iter().map(|l| l.content).collect();
    let final_status = feed.final_status(seen);
    tokio::pin!(final_status);
    let (_, status) = loop {
        // Garbage on the cancel subjects, just ahead of each real cancel, must not stop
        // the listener.
        for subject in [cancel_subject(job), "drover.jobs.nope.cancel".into()] {
            client
                .publish(subject, "garbage".into())
                .await
                .expect("publishes");
        }
        client
            .publish(cancel_subject(job), request.clone())
            .await
            .expect("publishes");
        tokio::select! {
            done = &mut final_status => break done,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };

    assert_eq!(status.status, JobStatus::Cancelled);
    assert_eq!(status.exit_code, Some(99));
    assert_eq!(status.error.as_deref(), Some("cancelled by alice"));
    let left = processes_left(job, Duration::from_secs(5)).await;
    assert!(left.is_empty(), "processes of the job left: {left:?}");
    wait_for_free_slots(&slots, 2).await;
}

#[actix_rt::test]
async fn a_job_cancelled_just_before_its_start_only_reports_cancelled() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let started = dir.path().join("started");
    let runner = fake_runner(dir.path(), &format!("touch {}", started.display()));
    let pool = PoolActor::new(
        settings(dir.path(), runner),
        client.clone(),
        "test".into(),
        2,
        vec![],
    );
    let slots = pool.slots.clone();
    let pool = pool.start();
    let dispatch = dispatch(None);
    let job = dispatch.job_uuid;
    let mut feed = JobFeed::subscribe(&client, job).await;

    // The claim was granted, then the cancel overtook the start.
    let cancel = Cancel {
        job,
        by_user: "bob".into(),
    };
    pool.send(cancel).await.expect("pool up");
    let slot = slots.clone().acquire_owned().await.expect("a slot");
    pool.send(StartJob { dispatch, slot })
        .await
        .expect("pool up");

    let Some(crate::test_support::Published::Status(status)) = feed.next().await else {
        panic!("the first message is not a status");
    };
    assert_eq!(status.status, JobStatus::Cancelled, "no `running` first");
    assert_eq!(status.exit_code, Some(99));
    assert_eq!(status.last_line, 0);
    assert_eq!(
        status.error.as_deref(),
        Some("cancelled by bob before it started")
    );
    wait_for_free_slots(&slots, 2).await;
    assert!(!started.exists(), "the runner was not started");
}
