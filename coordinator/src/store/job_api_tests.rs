//! The job API's store side on a real redb file: list filters and pages, statistics
//! counters after a known mix of outcomes, cancel, retry, tickets, deletes refused while
//! jobs refer to a record, tokens and the audit trail.

use super::*;
use chrono::Utc;
use drover_shared::protocol::StatusChange;
use drover_shared::{Connection, JobStatus};

fn audit(action: &str) -> Audit {
    Audit {
        user_id: 1,
        username: "admin".into(),
        action: action.into(),
        parameters: serde_json::json!({}),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    playbooks: [u64; 2],
    servers: [u64; 2],
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("opens");
    store
        .ensure_user_with_token("admin", Role::Admin, [7; 32])
        .await
        .expect("admin");
    let mut playbooks = [0; 2];
    let mut servers = [0; 2];
    for i in 0..2 {
        playbooks[i] = store
            .create_playbook(
                NewPlaybook {
                    name: format!("playbook-{i}"),
                    description: String::new(),
                    content: "- hosts: all\n".into(),
                    file_path: None,
                    timeout_secs: None,
                    // These tests are about lists and counts, not about servers' queues.
                    allow_simultaneous: true,
                },
                audit("POST /playbooks"),
            )
            .await
            .expect("playbook")
            .id;
        servers[i] = store
            .create_server(
                NewServer {
                    hostname: format!("web-{i}"),
                    ip_address: "127.0.0.1".into(),
                    ssh_port: 22,
                    ssh_user: "root".into(),
                    ssh_key_path: None,
                    pool: "default".into(),
                    connection: Connection::Local,
                    python_interpreter: None,
                },
                audit("POST /servers"),
            )
            .await
            .expect("server")
            .id;
    }
    Fixture {
        _dir: dir,
        store,
        playbooks,
        servers,
    }
}

impl Fixture {
    async fn job(&self, playbook: usize, server: usize, user: u64) -> JobRecord {
        self.store
            .create_job(
                NewJob {
                    playbook_id: self.playbooks[playbook],
                    server_id: self.servers[server],
                    user_id: user,
                    extra_vars: serde_json::json!({"n": 1}),
                    timeout_secs: None,
                    verbosity: 0,
                    retry_of: None,
                },
                audit("POST /jobs"),
            )
            .await
            .expect("job")
            .0
    }

    /// Claims, starts and finishes `job` as an agent would, `seconds` long.
    async fn finish(&self, job: &JobRecord, status: JobStatus, seconds: i64) {
        assert!(
            self.store
                .claim(job.uuid, "a".into())
                .await
                .expect("claims")
                .granted
        );
        let start = Utc::now() - chrono::Duration::seconds(seconds);
        let change = |status: JobStatus| StatusChange {
            job_uuid: job.uuid,
            agent_id: "a".into(),
            status,
            exit_code: status
                .is_finished()
                .then_some(if status == JobStatus::Success { 0 } else { 1 }),
            last_line: 0,
            started_at: Some(start),
            completed_at: status
                .is_finished()
                .then_some(start + chrono::Duration::seconds(seconds)),
            resource_usage: None,
            error: (status == JobStatus::Failed).then(|| "Connection timeout".to_owned()),
            host_recap: Vec::new(),
        };
        let mut messages = vec![Ingest::Status(change(JobStatus::Running))];
        if status.is_finished() {
            messages.push(Ingest::Status(change(status)));
        }
        self.store.ingest(messages, 1).await.expect("ingests");
    }

    async fn list(&self, query: JobQuery) -> Paged<JobDetail> {
        self.store.list_jobs(query).await.expect("lists")
    }
}

fn ids(page: &Paged<JobDetail>) -> Vec<u64> {
    page.items.iter().map(|d| d.job.id).collect()
}

#[tokio::test]
async fn the_list_filters_and_pages_newest_first() {
    let f = fixture().await;
    let mut jobs = Vec::new();
    for i in 0..30 {
        jobs.push(f.job(i % 2, i % 3 % 2, 1 + (i % 5 == 0) as u64).await);
    }
    for job in jobs.iter().filter(|j| j.id % 4 == 0) {
        f.finish(job, JobStatus::Failed, 3).await;
    }
    let all = f.list(JobQuery::default()).await;
    assert_eq!(all.total, 30);
    assert_eq!(ids(&all), (11..=30).rev().collect::<Vec<_>>());
    let second = f
        .list(JobQuery {
            page: Page {
                page: 2,
                per_page: 20,
            },
            ..Default::default()
        })
        .await;
    assert_eq!(ids(&second), (1..=10).rev().collect::<Vec<_>>());

    let failed = f
        .list(JobQuery {
            status: Some(JobStatus::Failed),
            ..Default::default()
        })
        .await;
    assert_eq!(ids(&failed), vec![28, 24, 20, 16, 12, 8, 4]);
    assert_eq!(failed.total, 7);

    // Every combination of filters agrees with filtering all jobs by hand.
    let everything: Vec<JobRecord> = f
        .list(JobQuery {
            page: Page {
                page: 1,
                per_page: 100,
            },
            ..Default::default()
        })
        .await
        .items
        .into_iter()
        .map(|d| d.job)
        .collect();
    // Jobs 11..=30, as a time window.
    let after_ten = Some(everything[20].created_at);
    for status in [None, Some(JobStatus::Failed), Some(JobStatus::Pending)] {
        for playbook in [None, Some(f.playbooks[0]), Some(f.playbooks[1])] {
            for server in [None, Some(f.servers[1])] {
                for user in [None, Some(2)] {
                    for created_after in [None, after_ten] {
                        let query = JobQuery {
                            status,
                            playbook_id: playbook,
                            server_id: server,
                            user_id: user,
                            created_after,
                            page: Page {
                                page: 1,
                                per_page: 5,
                            },
                            ..Default::default()
                        };
                        let expected: Vec<u64> = everything
                            .iter()
                            .filter(|j| status.is_none_or(|s| j.status == s))
                            .filter(|j| playbook.is_none_or(|p| j.playbook_id == p))
                            .filter(|j| server.is_none_or(|s| j.server_id == s))
                            .filter(|j| user.is_none_or(|u| j.user_id == u))
                            .filter(|j| created_after.is_none_or(|t| j.created_at > t))
                            .map(|j| j.id)
                            .collect();
                        let page = f.list(query.clone()).await;
                        assert_eq!(page.total, expected.len() as u64, "{query:?}");
                        assert_eq!(
                            ids(&page),
                            expected.into_iter().take(5).collect::<Vec<_>>(),
                            "{query:?}"
                        );
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn time_windows_are_exclusive_and_found_by_id() {
    let f = fixture().await;
    let mut jobs = Vec::new();
    for _ in 0..5 {
        jobs.push(f.job(0, 0, 1).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let window = f
        .list(JobQuery {
            created_after: Some(jobs[1].created_at),
            created_before: Some(jobs[4].created_at),
            ..Default::default()
        })
        .await;
    assert_eq!(ids(&window), vec![jobs[3].id, jobs[2].id]);
    assert_eq!(window.total, 2);
    let none = f
        .list(JobQuery {
            created_after: Some(jobs[4].created_at),
            ..Default::default()
        })
        .await;
    assert_eq!(none.total, 0);
    let failed_in_window = f
        .list(JobQuery {
            status: Some(JobStatus::Pending),
            created_before: Some(jobs[2].created_at),
            ..Default::default()
        })
        .await;
    assert_eq!(ids(&failed_in_window), vec![jobs[1].id, jobs[0].id]);
}

#[tokio::test]
async fn statistics_count_a_known_mix() {
    let f = fixture().await;
    // playbook 0: 3 success (2 s, 4 s, 6 s), 1 failed (8 s); playbook 1: 1 failed (10 s),
    // 1 cancelled while pending, 1 pending, 1 running. User 2 owns the failure of playbook 1.
    let mut seconds = 2;
    for _ in 0..3 {
        let job = f.job(0, 0, 1).await;
        f.finish(&job, JobStatus::Success, seconds).await;
        seconds += 2;
    }
    let failed_0 = f.job(0, 1, 1).await;
    f.finish(&failed_0, JobStatus::Failed, 8).await;
    let failed_1 = f.job(1, 0, 2).await;
    f.finish(&failed_1, JobStatus::Failed, 10).await;
    let cancelled = f.job(1, 0, 1).await;
    f.store
        .cancel_job(cancelled.id, "admin".into(), audit("cancel"))
        .await
        .expect("cancels");
    f.job(1, 1, 1).await;
    let running = f.job(1, 1, 1).await;
    f.finish(&running, JobStatus::Running, 1).await;

    let stats = f.store.statistics(None).await.expect("stats");
    let count = |s: JobStatus| stats.counts.iter().find(|(x, _)| *x == s).map(|(_, n)| *n);
    assert_eq!(count(JobStatus::Success), Some(3));
    assert_eq!(count(JobStatus::Failed), Some(2));
    assert_eq!(count(JobStatus::Cancelled), Some(1));
    assert_eq!(count(JobStatus::Pending), Some(1));
    assert_eq!(count(JobStatus::Running), Some(1));
    // The cancelled job never ran: five finished jobs have durations.
    assert_eq!(stats.timed_jobs, 5);
    assert_eq!(stats.duration_ms, (2 + 4 + 6 + 8 + 10) * 1000);
    let by: Vec<(u64, u64, u64, u64)> = stats
        .by_playbook
        .iter()
        .map(|p| (p.playbook_id, p.total, p.success, p.failed))
        .collect();
    assert_eq!(
        by,
        vec![(f.playbooks[0], 4, 3, 1), (f.playbooks[1], 4, 0, 1)]
    );
    let failures: Vec<u64> = stats.recent_failures.iter().map(|d| d.job.id).collect();
    assert_eq!(failures, vec![failed_1.id, failed_0.id]);
    assert_eq!(
        stats.recent_failures[0].job.error.as_deref(),
        Some("Connection timeout")
    );

    let mine = f.store.statistics(Some(2)).await.expect("stats");
    assert_eq!(mine.counts.iter().map(|(_, n)| n).sum::<u64>(), 1);
    assert_eq!(mine.timed_jobs, 1);
    let failures: Vec<u64> = mine.recent_failures.iter().map(|d| d.job.id).collect();
    assert_eq!(failures, vec![failed_1.id]);
}

#[tokio::test]
async fn the_timeline_counts_jobs_per_hour() {
    let f = fixture().await;
    let before = Utc::now();
    for (status, seconds) in [
        (JobStatus::Success, 2),
        (JobStatus::Success, 4),
        (JobStatus::Failed, 6),
    ] {
        let job = f.job(0, 0, 1).await;
        f.finish(&job, status, seconds).await;
    }
    let cancelled = f.job(1, 0, 1).await;
    f.store
        .cancel_job(cancelled.id, "admin".into(), audit("cancel"))
        .await
        .expect("cancels");
    let running = f.job(1, 1, 1).await;
    f.finish(&running, JobStatus::Running, 1).await;
    f.job(0, 1, 1).await;
    let after = Utc::now();

    // Seen from three hours later, a 24-hour window holds the jobs 4th from its end
    // (the 5th too, if the test ran across an hour's end).
    let later = after + chrono::Duration::hours(3);
    let buckets = f.store.timeline(24, later).await.expect("timeline");
    assert_eq!(buckets.len(), 24);
    assert!(
        buckets
            .windows(2)
            .all(|w| w[1].hour - w[0].hour == chrono::Duration::hours(1))
    );
    assert_eq!(
        buckets[23].hour.timestamp() / 3600,
        later.timestamp() / 3600
    );
    let sum = |field: fn(&HourBucket) -> u64| buckets.iter().map(field).sum::<u64>();
    assert_eq!(sum(|b| b.created), 6);
    assert_eq!(sum(|b| b.success), 2);
    assert_eq!(sum(|b| b.failed), 1);
    assert_eq!(sum(|b| b.cancelled), 1);
    // The cancelled job never ran; the running one has not finished.
    assert_eq!(sum(|b| b.timed_jobs), 3);
    assert_eq!(sum(|b| b.duration_ms), (2 + 4 + 6) * 1000);
    let busy: Vec<usize> = (0..24).filter(|i| buckets[*i].created > 0).collect();
    if before.timestamp() / 3600 == after.timestamp() / 3600 {
        assert_eq!(busy, vec![20]);
    }
    // A window that ends before the jobs were made is empty, and zero hours is one hour.
    let earlier = f
        .store
        .timeline(2, before - chrono::Duration::hours(2))
        .await
        .expect("timeline");
    assert_eq!(earlier.len(), 2);
    assert!(earlier.iter().all(|b| b.created == 0 && b.success == 0));
    assert_eq!(f.store.timeline(1, later).await.expect("timeline").len(), 1);
}

#[tokio::test]
async fn cancel_retry_and_ticket_follow_the_job_state() {
    let f = fixture().await;
    let pending = f.job(0, 0, 1).await;
    let outcome = f
        .store
        .cancel_job(pending.id, "alice".into(), audit("cancel"))
        .await
        .expect("cancels");
    let CancelOutcome::Cancelled(cancelled) = outcome else {
        panic!("a pending job is cancelled at once");
    };
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.exit_code, Some(99));
    let refused = f
        .store
        .claim(pending.uuid, "a".into())
        .await
        .expect("claims");
    assert!(!refused.granted, "a cancelled job is never granted");
    let again = f
        .store
        .cancel_job(pending.id, "alice".into(), audit("cancel"))
        .await;
    assert!(matches!(again, Err(crate::error::Error::Conflict(_))));

    let running = f.job(0, 0, 1).await;
    f.finish(&running, JobStatus::Running, 1).await;
    let outcome = f
        .store
        .cancel_job(running.id, "alice".into(), audit("cancel"))
        .await
        .expect("cancels");
    assert!(
        matches!(outcome, CancelOutcome::Requested(ref job) if job.status == JobStatus::Running)
    );
    let unconfirmed = f.store.unconfirmed_cancels().await.expect("lists");
    assert_eq!(unconfirmed, vec![(running.uuid, "alice".to_owned())]);

    let (retry, _, _) = f
        .store
        .retry_job(pending.id, 2, audit("retry"))
        .await
        .expect("retries");
    assert_eq!(retry.retry_of, Some(pending.id));
    assert_eq!(retry.user_id, 2);
    assert_eq!(retry.extra_vars, pending.extra_vars);
    assert_eq!(retry.status, JobStatus::Pending);
    let not_failed = f.store.retry_job(retry.id, 2, audit("retry")).await;
    assert!(matches!(not_failed, Err(crate::error::Error::Conflict(_))));

    let ticket = |job: u64| {
        f.store.create_ticket(
            job,
            NewTicket {
                title: "broken".into(),
                description: String::new(),
                priority: Priority::High,
            },
            1,
            audit("ticket"),
        )
    };
    let made = ticket(pending.id).await.expect("ticket");
    assert_eq!(made.failure_summary.status, JobStatus::Cancelled);
    assert_eq!(made.failure_summary.playbook, "playbook-0");
    assert!(matches!(
        ticket(pending.id).await,
        Err(crate::error::Error::Conflict(_))
    ));
    assert!(matches!(
        ticket(retry.id).await,
        Err(crate::error::Error::Conflict(_))
    ));
    assert_eq!(
        f.store
            .list_tickets(Page::default())
            .await
            .expect("lists")
            .total,
        1
    );
}

#[tokio::test]
async fn records_with_jobs_cannot_be_deleted() {
    let f = fixture().await;
    f.job(0, 0, 1).await;
    let refused = f
        .store
        .delete_playbook(f.playbooks[0], audit("delete"))
        .await;
    assert!(matches!(refused, Err(crate::error::Error::Conflict(_))));
    let refused = f.store.delete_server(f.servers[0], audit("delete")).await;
    assert!(matches!(refused, Err(crate::error::Error::Conflict(_))));
    f.store
        .delete_playbook(f.playbooks[1], audit("delete"))
        .await
        .expect("unused playbook deleted");
    assert!(
        f.store
            .playbook(f.playbooks[1])
            .await
            .expect("reads")
            .is_none()
    );
    let missing = f.store.delete_server(999, audit("delete")).await;
    assert!(matches!(missing, Err(crate::error::Error::NotFound { .. })));
}

#[tokio::test]
async fn tokens_revoke_and_the_audit_has_only_what_happened() {
    let f = fixture().await;
    let user = f
        .store
        .create_user(
            NewUser {
                username: "ops".into(),
                role: Role::Operator,
                password_hash: "x".into(),
            },
            audit("POST /users"),
        )
        .await
        .expect("user");
    let duplicate = f
        .store
        .create_user(
            NewUser {
                username: "ops".into(),
                role: Role::Viewer,
                password_hash: "x".into(),
            },
            audit("POST /users"),
        )
        .await;
    assert!(matches!(duplicate, Err(crate::error::Error::Conflict(_))));
    let token = f
        .store
        .issue_token(user.clone(), [9; 32], audit("POST /auth/token"))
        .await
        .expect("token");
    let (found, token_id) = f
        .store
        .user_for_token([9; 32])
        .await
        .expect("reads")
        .expect("known");
    assert_eq!((found.id, token_id), (user.id, token.id));
    let admin = f.store.user(1).await.expect("reads").expect("admin");
    let viewer = UserRecord {
        id: 99,
        role: Role::Viewer,
        ..user.clone()
    };
    let forbidden = f
        .store
        .revoke_token(token.id, viewer, audit("revoke"))
        .await;
    assert!(matches!(forbidden, Err(crate::error::Error::Forbidden(_))));
    f.store
        .revoke_token(token.id, admin, audit("revoke"))
        .await
        .expect("revokes");
    assert!(
        f.store
            .user_for_token([9; 32])
            .await
            .expect("reads")
            .is_none()
    );

    let trail = f
        .store
        .audit_page(AuditQuery::default())
        .await
        .expect("reads");
    let actions: Vec<&str> = trail.items.iter().map(|a| a.action.as_str()).collect();
    // Newest first; the refused duplicate user and the forbidden revoke left nothing.
    assert_eq!(actions[..3], ["revoke", "POST /auth/token", "POST /users"]);
    assert_eq!(
        trail.total,
        4 + 3,
        "2 playbooks, 2 servers, user, token, revoke"
    );
    let later = f
        .store
        .audit_page(AuditQuery {
            after: Some(trail.items[2].at - chrono::Duration::microseconds(1)),
            ..Default::default()
        })
        .await
        .expect("reads");
    assert_eq!(later.total, 3);
}

#[tokio::test]
async fn a_lost_agent_fails_what_it_ran_and_returns_what_it_claimed() {
    let f = fixture().await;
    let running = f.job(0, 0, 1).await;
    f.finish(&running, JobStatus::Running, 1).await;
    let claimed = f.job(0, 1, 1).await;
    assert!(
        f.store
            .claim(claimed.uuid, "a".into())
            .await
            .expect("claims")
            .granted
    );
    let other = f.job(1, 0, 1).await;
    assert!(
        f.store
            .claim(other.uuid, "b".into())
            .await
            .expect("claims")
            .granted
    );

    let claiming = f.store.claiming_agents().await.expect("lists");
    assert_eq!(claiming, vec!["a".to_owned(), "b".to_owned()]);

    let reaped = f
        .store
        .reap_agent("a".into(), "agent a lost while running".into())
        .await
        .expect("reaps");
    let failed: Vec<u64> = reaped.failed.iter().map(|j| j.id).collect();
    assert_eq!(failed, vec![running.id]);
    assert_eq!(reaped.failed[0].status, JobStatus::Failed);
    assert_eq!(
        reaped.failed[0].error.as_deref(),
        Some("agent a lost while running")
    );
    let requeued: Vec<(u64, Option<String>)> = reaped
        .requeued
        .iter()
        .map(|(j, _, _)| (j.id, j.agent_id.clone()))
        .collect();
    assert_eq!(requeued, vec![(claimed.id, None)]);
    // The requeued job can be claimed by another agent; b's job was not touched.
    assert!(
        f.store
            .claim(claimed.uuid, "c".into())
            .await
            .expect("claims")
            .granted
    );
    let left = f.store.claiming_agents().await.expect("lists");
    assert_eq!(left, vec!["b".to_owned(), "c".to_owned()]);
    let stats = f.store.statistics(None).await.expect("stats");
    assert!(stats.counts.contains(&(JobStatus::Failed, 1)));
}

#[tokio::test]
async fn one_job_at_a_time_per_server_in_submission_order() {
    let f = fixture().await;
    let alone = f
        .store
        .create_playbook(
            NewPlaybook {
                name: "alone".into(),
                description: String::new(),
                content: "- hosts: all\n".into(),
                file_path: None,
                timeout_secs: None,
                allow_simultaneous: false,
            },
            audit("POST /playbooks"),
        )
        .await
        .expect("playbook");
    let new_job = |server: u64, playbook: u64| {
        f.store.create_job(
            NewJob {
                playbook_id: playbook,
                server_id: server,
                user_id: 1,
                extra_vars: serde_json::json!({}),
                timeout_secs: None,
                verbosity: 0,
                retry_of: None,
            },
            audit("POST /jobs"),
        )
    };
    let server = f.servers[0];
    let first = new_job(server, alone.id).await.expect("job").0;
    let second = new_job(server, alone.id).await.expect("job").0;
    let third = new_job(server, alone.id).await.expect("job").0;
    let elsewhere = new_job(f.servers[1], alone.id).await.expect("job").0;
    let together = new_job(server, f.playbooks[0]).await.expect("job").0;
    assert!(!first.held && second.held && third.held);
    assert!(!elsewhere.held, "another server is free");
    assert!(!together.held, "its playbook allows simultaneous runs");
    let refused = f
        .store
        .claim(second.uuid, "a".into())
        .await
        .expect("claims");
    assert!(!refused.granted, "a held job cannot be claimed");
    let unclaimed: Vec<u64> = f
        .store
        .unclaimed_pending_jobs()
        .await
        .expect("lists")
        .iter()
        .map(|(j, _, _)| j.id)
        .collect();
    assert!(!unclaimed.contains(&second.id) && !unclaimed.contains(&third.id));

    assert!(
        f.store
            .release_held(false)
            .await
            .expect("releases")
            .is_empty(),
        "the server is busy"
    );
    f.finish(&first, JobStatus::Success, 1).await;
    assert!(
        f.store
            .release_held(false)
            .await
            .expect("releases")
            .is_empty(),
        "the other job still runs there"
    );
    f.finish(&together, JobStatus::Success, 1).await;
    let released: Vec<u64> = f
        .store
        .release_held(false)
        .await
        .expect("releases")
        .iter()
        .map(|(j, _, _)| j.id)
        .collect();
    assert_eq!(released, vec![second.id], "the oldest first, one at a time");
    assert!(
        f.store
            .release_held(false)
            .await
            .expect("releases")
            .is_empty()
    );
    // The third is cancelled while it waits: it leaves the queue.
    f.store
        .cancel_job(third.id, "admin".into(), audit("cancel"))
        .await
        .expect("cancels");
    f.finish(&second, JobStatus::Failed, 1).await;
    assert!(
        f.store
            .release_held(false)
            .await
            .expect("releases")
            .is_empty()
    );
    let next = new_job(server, alone.id).await.expect("job").0;
    assert!(!next.held, "the server is free again");
}

#[tokio::test]
async fn the_monitor_sees_streaks_queues_and_the_window() {
    let f = fixture().await;
    // playbook 0: success, failed, failed (2 s, 4 s, 6 s); playbook 1: failed, success,
    // failed, cancelled while pending, failed, failed. Then one pending and one running.
    for (status, seconds) in [
        (JobStatus::Success, 2),
        (JobStatus::Failed, 4),
        (JobStatus::Failed, 6),
    ] {
        let job = f.job(0, 0, 1).await;
        f.finish(&job, status, seconds).await;
    }
    for status in [JobStatus::Failed, JobStatus::Success, JobStatus::Failed] {
        let job = f.job(1, 0, 1).await;
        f.finish(&job, status, 1).await;
    }
    let cancelled = f.job(1, 0, 1).await;
    f.store
        .cancel_job(cancelled.id, "admin".into(), audit("cancel"))
        .await
        .expect("cancels");
    for _ in 0..2 {
        let job = f.job(1, 0, 1).await;
        f.finish(&job, JobStatus::Failed, 1).await;
    }
    f.job(0, 0, 1).await;
    let running = f.job(0, 1, 1).await;
    f.finish(&running, JobStatus::Running, 30).await;

    let seen = f
        .store
        .observe(Utc::now() - chrono::Duration::hours(1))
        .await
        .expect("observes");
    let streaks: Vec<(&str, u64, Option<f64>)> = seen
        .playbooks
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.consecutive_failures,
                p.mean_duration_secs,
            )
        })
        .collect();
    assert_eq!(
        streaks,
        vec![("playbook-0", 2, Some(4.0)), ("playbook-1", 3, Some(1.0))]
    );
    assert_eq!(seen.pending_by_pool, [("default".to_string(), 1)].into());
    assert_eq!(seen.running.len(), 1);
    assert_eq!(seen.running[0].id, running.id);
    assert_eq!(seen.running[0].playbook, "playbook-0");
    assert_eq!(seen.running[0].pool, "default");
    assert_eq!((seen.window_finished, seen.window_failed), (9, 6));
    let count = |s: JobStatus| {
        seen.jobs_by_status
            .iter()
            .find(|(x, _)| *x == s)
            .map(|(_, n)| *n)
    };
    assert_eq!(count(JobStatus::Failed), Some(6));
    assert_eq!(count(JobStatus::Pending), Some(1));

    let later = f
        .store
        .observe(Utc::now() + chrono::Duration::hours(1))
        .await
        .expect("observes");
    assert_eq!((later.window_finished, later.window_failed), (0, 0));
}
