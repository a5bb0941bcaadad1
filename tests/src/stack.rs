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
    /// Flags added to the coordinator's command line, at start and at every restart
    /// (fault tests shorten leases with them).
    pub coordinator_args: Vec<String>,
    /// Flags added to every agent's command line (e.g. a short heartbeat).
    pub agent_args: Vec<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            agents: 1,
            concurrency: 4,
            coordinator_args: Vec::new(),
            agent_args: Vec::new(),
        }
    }
}

pub struct Stack {
    pub dir: TempDir,
    pub http: String,
    pub nats_url: String,
    client: reqwest::Client,
    nats_port: u16,
    http_port: u16,
    nats: Child,
    coordinator: Child,
    coordinator_args: Vec<String>,
    agent_args: Vec<String>,
    agents: Vec<Child>,
    agent_ids: Vec<String>,
}

/// A service's log file. Appended to, so a restarted process continues the log of the
/// one it replaces.
fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

fn spawn_nats(dir: &Path, port: u16) -> Child {
    Command::new(venv_bin("nats-server"))
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("jetstream"))
        .stdout(log_file(dir, "nats"))
        .stderr(log_file(dir, "nats-err"))
        .spawn()
        .expect("nats-server starts")
}

fn spawn_coordinator(dir: &Path, http_port: u16, nats_url: &str, extra: &[String]) -> Child {
    Command::new(bin_dir().join("drover-coordinator"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
        .args(["--nats-url", nats_url, "--admin-token", ADMIN_TOKEN])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(log_file(dir, "coordinator"))
        .stderr(log_file(dir, "coordinator-err"))
        .spawn()
        .expect("coordinator starts")
}

/// Sends SIGKILL and reaps the process (a no-op if it already exited and was reaped).
fn kill_now(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends SIGTERM and waits up to `grace` for the exit, then SIGKILL.
fn terminate_and_wait(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    terminate(child.id());
    wait_or_kill(child, grace);
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
        let nats = spawn_nats(dir.path(), nats_port);
        let coordinator =
            spawn_coordinator(dir.path(), http_port, &nats_url, &options.coordinator_args);
        std::fs::create_dir_all(dir.path().join("keys")).expect("key dir");
        let mut stack = Stack {
            http: format!("http://127.0.0.1:{http_port}"),
            nats_url,
            client: reqwest::Client::new(),
            nats_port,
            http_port,
            nats,
            coordinator,
            coordinator_args: options.coordinator_args.clone(),
            agent_args: options.agent_args.clone(),
            agents: Vec::new(),
            agent_ids: Vec::new(),
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
        self.spawn_agent(pool, concurrency, runner, &[])
    }

    /// Starts one more agent with `extra` flags after the stack's own agent flags;
    /// returns its index.
    pub fn start_agent_with_args(&mut self, pool: &str, concurrency: u32, extra: &[&str]) -> usize {
        self.spawn_agent(pool, concurrency, &venv_bin("ansible-runner"), extra)
    }

    fn spawn_agent(
        &mut self,
        pool: &str,
        concurrency: u32,
        runner: &Path,
        extra: &[&str],
    ) -> usize {
        let index = self.agents.len();
        let agent_id = format!(
            "agent-{index}-{}",
            self.nats_url.rsplit(':').next().unwrap_or("0")
        );
        let agent = Command::new(bin_dir().join("drover-agent"))
            .args(["--nats-url", &self.nats_url, "--pool", pool])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--agent-id", &agent_id])
            .args(&self.agent_args)
            .args(extra)
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
        self.agent_ids.push(agent_id);
        index
    }

    /// The `--agent-id` of agent `index`.
    pub fn agent_id(&self, index: usize) -> &str {
        &self.agent_ids[index]
    }

    pub fn agent_pid(&self, index: usize) -> u32 {
        self.agents[index].id()
    }

    /// kill -9 of agent `index`: it gets no chance to clean up.
    pub fn kill_agent(&mut self, index: usize) {
        kill_now(&mut self.agents[index]);
    }

    /// SIGTERM to agent `index`, waiting up to 10 s for it to exit (then SIGKILL).
    pub fn stop_agent(&mut self, index: usize) {
        terminate_and_wait(&mut self.agents[index], Duration::from_secs(10));
    }

    pub fn coordinator_pid(&self) -> u32 {
        self.coordinator.id()
    }

    /// The coordinator's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// kill -9 of the coordinator: no shutdown, no flush.
    pub fn kill_coordinator(&mut self) {
        kill_now(&mut self.coordinator);
    }

    /// Starts the coordinator again on the same data dir, HTTP port, NATS URL and flags
    /// (stopping the running one first with kill -9 if there is one); waits until it is
    /// healthy. Its log continues `coordinator.log`.
    pub async fn restart_coordinator(&mut self) {
        kill_now(&mut self.coordinator);
        self.coordinator = spawn_coordinator(
            self.dir.path(),
            self.http_port,
            &self.nats_url,
            &self.coordinator_args,
        );
        self.wait_healthy().await;
    }

    pub fn nats_pid(&self) -> u32 {
        self.nats.id()
    }

    /// Stops nats-server with SIGTERM (it flushes its JetStream store) and waits for it.
    pub fn stop_nats(&mut self) {
        terminate_and_wait(&mut self.nats, Duration::from_secs(10));
    }

    /// kill -9 of nats-server.
    pub fn kill_nats(&mut self) {
        kill_now(&mut self.nats);
    }

    /// Starts nats-server again on the same port with the same JetStream store dir
    /// (stopping the running one first, with SIGTERM, if there is one); waits until it
    /// accepts connections.
    pub async fn restart_nats(&mut self) {
        terminate_and_wait(&mut self.nats, Duration::from_secs(10));
        self.nats = spawn_nats(self.dir.path(), self.nats_port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(client) = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(1))
                .connect(&self.nats_url)
                .await
            {
                // A round trip: the server is serving, not just listening.
                if client.flush().await.is_ok()
                    && async_nats::jetstream::new(client)
                        .query_account()
                        .await
                        .is_ok()
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not come back in 20 s; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
        // Agents first, gracefully: they kill their jobs' processes on SIGTERM. One a
        // test already stopped (and reaped) is skipped: its pid may be someone else's now.
        for agent in &mut self.agents {
            if !matches!(agent.try_wait(), Ok(Some(_))) {
                terminate(agent.id());
            }
        }
        for agent in &mut self.agents {
            wait_or_kill(agent, Duration::from_secs(8));
        }
        terminate_and_wait(&mut self.coordinator, Duration::from_secs(5));
        kill_now(&mut self.nats);
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
