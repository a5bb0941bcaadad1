//! Real things for the agent's tests: a nats-server with JetStream on a free loopback
//! port, fake ansible-runner scripts, and a reader of what a job published.

use crate::execute::Settings;
use crate::runner::process::{JOB_MARKER, kill_marked, marked_pids};
use async_nats::jetstream::{self, stream};
use drover_shared::domain::Connection;
use drover_shared::protocol::{
    JOB_SUBJECTS, JOBS_STREAM, JobDispatch, JobSubjectKind, LogBatch, Message as _, StatusChange,
    Target, parse_job_subject,
};
use futures::StreamExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use uuid::Uuid;

/// Long enough for a loaded two-core machine, short enough to fail a hung test.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// nats-server with JetStream in a temp dir, killed when dropped.
pub struct NatsServer {
    child: Child,
    pub url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    pub async fn start() -> NatsServer {
        let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/nats-server");
        assert!(
            program.is_file(),
            "{} is missing: run scripts/setup first",
            program.display()
        );
        let store = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(program)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let server = NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// A client, with the jobs stream the coordinator would have made, so the agent's
    /// publishes are acknowledged.
    pub async fn client(&self) -> async_nats::Client {
        let client = async_nats::connect(&self.url).await.expect("connects");
        jetstream::new(client.clone())
            .get_or_create_stream(stream::Config {
                name: JOBS_STREAM.to_owned(),
                subjects: JOB_SUBJECTS.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            })
            .await
            .expect("jobs stream");
        client
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an executable stand-in for ansible-runner: `body` runs under `/bin/sh`
/// whatever the arguments.
pub fn fake_runner(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("ansible-runner");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("writes the script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

pub fn settings(work_dir: &Path, runner: PathBuf) -> Arc<Settings> {
    Arc::new(Settings {
        agent_id: "test-agent".into(),
        work_dir: work_dir.join("work"),
        key_dir: work_dir.join("keys"),
        runner,
        keep_work_dirs: false,
        check_host_keys: false,
        stopping: AtomicBool::new(false),
    })
}

pub fn dispatch(timeout_secs: Option<u64>) -> JobDispatch {
    JobDispatch {
        job_uuid: Uuid::new_v4(),
        job_id: 1,
        playbook_name: "test".into(),
        playbook_content: "- hosts: all\n".into(),
        target: Target {
            hostname: "web-01".into(),
            ip_address: "127.0.0.1".into(),
            ssh_port: 22,
            ssh_user: "deploy".into(),
            ssh_key_path: None,
            connection: Connection::Local,
            python_interpreter: None,
        },
        extra_vars: serde_json::json!({}),
        timeout_secs,
        verbosity: 0,
    }
}

/// Pids of the processes still carrying `job`'s marker.
pub fn job_processes(job: Uuid) -> Vec<u32> {
    marked_pids(format!("{JOB_MARKER}={job}\0").as_bytes(), 0)
}

/// Kills whatever a job left running when a test ends, passed or failed, so a failed
/// test does not leave `sleep 300` behind.
pub struct KillLeftovers(pub Uuid);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        kill_marked(JOB_MARKER, &self.0.to_string());
    }
}

/// Waits up to `within` for `job`'s processes to be gone; returns the ones left.
pub async fn processes_left(job: Uuid, within: Duration) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = job_processes(job);
        if left.is_empty() || tokio::time::Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What one job published, read from `drover.jobs.<uuid>.>`.
pub enum Published {
    Logs(LogBatch),
    Status(StatusChange),
    Other,
}

pub struct JobFeed(async_nats::Subscriber);

impl JobFeed {
    /// Subscribe on the connection the agent publishes on, before it does: one
    /// connection keeps the order, so nothing is missed.
    pub async fn subscribe(client: &async_nats::Client, job: Uuid) -> JobFeed {
        JobFeed(
            client
                .subscribe(format!("drover.jobs.{job}.>"))
                .await
                .expect("subscribes"),
        )
    }

    /// The next message, or `None` after [`PATIENCE`].
    pub async fn next(&mut self) -> Option<Published> {
        let message = tokio::time::timeout(PATIENCE, self.0.next()).await.ok()??;
        Some(match parse_job_subject(&message.subject) {
            Some((_, JobSubjectKind::Logs)) => {
                Published::Logs(LogBatch::decode(&message.payload).expect("a log batch"))
            }
            Some((_, JobSubjectKind::Status)) => {
                Published::Status(StatusChange::decode(&message.payload).expect("a status"))
            }
            _ => Published::Other,
        })
    }

    /// Reads until the first log batch; panics if none comes.
    pub async fn first_logs(&mut self) -> LogBatch {
        loop {
            match self.next().await {
                Some(Published::Logs(batch)) => return batch,
                Some(_) => {}
                None => panic!("no log line was published"),
            }
        }
    }

    /// Reads until the final status; returns every line content seen on the way and it.
    pub async fn final_status(&mut self, mut lines: Vec<String>) -> (Vec<String>, StatusChange) {
        loop {
            match self.next().await {
                Some(Published::Logs(batch)) => {
                    lines.extend(batch.lines.into_iter().map(|l| l.content));
                }
                Some(Published::Status(change)) if change.completed_at.is_some() => {
                    return (lines, change);
                }
                Some(_) => {}
                None => panic!("no final status was published"),
            }
        }
    }
}
