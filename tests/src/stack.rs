//! A whole Drover on loopback: nats-server, coordinator, agents.

use crate::{bin_dir, free_port, terminate, venv_bin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Agents started in pool `default`.
    pub agents: usize,
    pub concurrency: u32,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            agents: 1,
            concurrency: 4,
        }
    }
}

pub struct Stack {
    pub dir: TempDir,
    pub http: String,
    pub nats_url: String,
    client: reqwest::Client,
    nats: Child,
    coordinator: Child,
    agents: Vec<Child>,
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(format!("{name}.log")))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("drover-test-")
            .tempdir()
            .expect("temp dir");
        let nats_port = free_port();
        let http_port = free_port();
        let nats_url = format!("nats://127.0.0.1:{nats_port}");
        let nats = Command::new(venv_bin("nats-server"))
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port.to_string(),
                "-sd",
            ])
            .arg(dir.path().join("jetstream"))
            .stdout(log_file(dir.path(), "nats"))
            .stderr(log_file(dir.path(), "nats-err"))
            .spawn()
            .expect("nats-server starts");
        let coordinator = Command::new(bin_dir().join("drover-coordinator"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
            .args(["--nats-url", &nats_url, "--admin-token", ADMIN_TOKEN])
            .env("RUST_LOG", "info")
            .stdout(log_file(dir.path(), "coordinator"))
            .stderr(log_file(dir.path(), "coordinator-err"))
            .spawn()
            .expect("coordinator starts");
        std::fs::create_dir_all(dir.path().join("keys")).expect("key dir");
        let mut stack = Stack {
            http: format!("http://127.0.0.1:{http_port}"),
            nats_url,
            client: reqwest::Client::new(),
            nats,
            coordinator,
            agents: Vec::new(),
            dir,
        };
        for _ in 0..options.agents {
            stack.start_agent("default", options.concurrency);
        }
        stack.wait_healthy().await;
        stack
    }

    /// Resident memory of the coordinator process, in KiB.
    pub fn coordinator_rss_kb(&self) -> u64 {
        rss_kb(self.coordinator.id())
    }

    /// Resident memory of agent `index`, in KiB.
    pub fn agent_rss_kb(&self, index: usize) -> u64 {
        rss_kb(self.agents[index].id())
    }

    pub fn key_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Starts one more agent; returns its index.
    pub fn start_agent(&mut self, pool: &str, concurrency: u32) -> usize {
        self.start_agent_with_runner(pool, concurrency, &venv_bin("ansible-runner"))
    }

    /// Starts an agent that runs `runner` instead of ansible-runner (the benchmark's
    /// instant runner); returns its index.
    pub fn start_agent_with_runner(
        &mut self,
        pool: &str,
        concurrency: u32,
        runner: &Path,
    ) -> usize {
        let index = self.agents.len();
        let agent = Command::new(bin_dir().join("drover-agent"))
            .args(["--nats-url", &self.nats_url, "--pool", pool])
            .args(["--concurrency", &concurrency.to_string()])
            .args([
                "--agent-id",
                &format!(
                    "agent-{index}-{}",
                    self.nats_url.rsplit(':').next().unwrap_or("0")
                ),
            ])
            .arg("--work-dir")
            .arg(self.dir.path().join(format!("work-{index}")))
            .arg("--key-dir")
            .arg(self.key_dir())
            .arg("--ansible-runner")
            .arg(runner)
            .env("RUST_LOG", "info")
            .stdout(log_file(self.dir.path(), &format!("agent-{index}")))
            .stderr(log_file(self.dir.path(), &format!("agent-{index}-err")))
            .spawn()
            .expect("agent starts");
        self.agents.push(agent);
        index
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = self
                .client
                .get(format!("{}/healthz", self.http))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "coordinator not healthy in 20 s; logs in {}",
            self.dir.path().display()
        );
    }

    /// Sends a request with the admin token (or `token`), returns status and JSON body.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<RequestBody>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.http));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Some(RequestBody::Json(value)) => request.json(&value),
            Some(RequestBody::Raw(bytes)) => request
                .header("content-type", "application/json")
                .body(bytes),
            None => request,
        };
        let response = request.send().await.expect("coordinator answers");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, Some(ADMIN_TOKEN), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(
            reqwest::Method::POST,
            path,
            Some(ADMIN_TOKEN),
            Some(RequestBody::Json(body)),
        )
        .await
    }

    /// Creates a playbook, asserting success; returns its id.
    pub async fn playbook(&self, name: &str, content: &str) -> u64 {
        let (status, body) = self
            .post("/playbooks", json!({"name": name, "content": content}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().expect("playbook id")
    }

    /// Creates a server, asserting success; returns its id.
    pub async fn server(&self, server: Value) -> u64 {
        let (status, body) = self.post("/servers", server).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().expect("server id")
    }

    /// A `connection: local` server named like the spec's example host.
    pub async fn local_server(&self) -> u64 {
        self.server(
            json!({"hostname": "web-server-01", "ip_address": "127.0.0.1", "connection": "local"}),
        )
        .await
    }

    /// Submits a job, asserting 201; returns the job as the API shows it.
    pub async fn submit(&self, playbook_id: u64, server_id: u64, extra_vars: Value) -> Value {
        let (status, body) = self
            .post(
                "/jobs",
                json!({"playbook_id": playbook_id, "server_id": server_id, "extra_vars": extra_vars}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Polls the job until it is finished; panics after `timeout`.
    pub async fn wait_finished(&self, job_id: u64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, job) = self.get(&format!("/jobs/{job_id}")).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if matches!(
                job["status"].as_str(),
                Some("success" | "failed" | "cancelled")
            ) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} not finished after {timeout:?}: {job}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every stored line of a job, read page by page.
    pub async fn all_logs(&self, job_id: u64) -> Vec<Value> {
        let mut lines = Vec::new();
        let mut after = 0;
        loop {
            let (status, page) = self
                .get(&format!("/jobs/{job_id}/logs?start_line={after}&limit=500"))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let batch = page["logs"].as_array().cloned().unwrap_or_default();
            if let Some(last) = batch.last() {
                after = last["line_number"].as_u64().expect("line number");
            }
            lines.extend(batch);
            if !page["has_more"].as_bool().expect("has_more") {
                return lines;
            }
        }
    }
}

pub enum RequestBody {
    Json(Value),
    Raw(Vec<u8>),
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Agents first, gracefully: they kill their jobs' processes on SIGTERM.
        for agent in &self.agents {
            terminate(agent.id());
        }
        for agent in &mut self.agents {
            wait_or_kill(agent, Duration::from_secs(8));
        }
        terminate(self.coordinator.id());
        wait_or_kill(&mut self.coordinator, Duration::from_secs(5));
        let _ = self.nats.kill();
        let _ = self.nats.wait();
        if std::thread::panicking() || std::env::var_os("DROVER_KEEP_TEST_DIRS").is_some() {
            // Keep the logs of a failed test for whoever reads its output.
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!("test logs kept in {}", kept.keep().display());
        }
    }
}

/// `VmRSS` of a running process, in KiB.
pub fn rss_kb(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is running");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc status")
}

fn wait_or_kill(child: &mut Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
