//! Fault injection (issue 5): real nats-server, coordinator, agents and playbooks, with
//! processes killed or cut off mid-job, and a count of what survived.
//!
//! Each test fills one row: the fault injected, jobs expected / finished as expected,
//! marker lines expected / stored exactly once, and processes of its jobs left on the
//! machine. A row is printed to stderr with the prefix `FAULT-ROW`, appended to
//! `target/faults/table.txt` (`scripts/faults` prints the table after a run), and then
//! asserted. A test that panics before its row is complete records the row as `FAIL`.
//!
//! Lines are counted honestly: the playbooks print known markers (`<tag>-line-<i>`),
//! and every job's stored log must be numbered 1..=total_lines with no gap and no repeat;
//! orphans are found by the agent's `DROVER_JOB_UUID` marker in process environments and
//! by unique `sleep <number>` command lines.

use async_nats::jetstream::{self, message::PublishMessage};
use drover_shared::protocol::{
    CLAIM_SUBJECT, ClaimReply, ClaimRequest, Heartbeat, LogBatch, LogLine, Message, StatusChange,
    heartbeat_subject, logs_subject, status_subject,
};
use drover_shared::{JobStatus, LogLevel};
use drover_tests::{
    Stack, StackOptions, bin_dir, kill_pid, processes_matching, processes_with_env, repo_root,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const JOB_TIMEOUT: Duration = Duration::from_secs(90);
/// The agent's environment marker on every process of a job.
const JOB_MARKER: &str = "DROVER_JOB_UUID";
/// Short lease and heartbeat for the tests that wait for a lease to run out.
const LEASE_SECS: &str = "3";
const HEARTBEAT_SECS: &str = "1";

// ---------------------------------------------------------------------------------------
// The table

/// One row of the fault table; recorded when asserted, or as `FAIL` if the test panics
/// first.
struct Row {
    test: &'static str,
    fault: String,
    jobs_expected: usize,
    jobs_finished: usize,
    lines_expected: u64,
    lines_stored: u64,
    orphans: usize,
    started: Instant,
    recorded: bool,
}

impl Row {
    fn new(test: &'static str, fault: &str) -> Row {
        Row {
            test,
            fault: fault.to_owned(),
            jobs_expected: 0,
            jobs_finished: 0,
            lines_expected: 0,
            lines_stored: 0,
            orphans: 0,
            started: Instant::now(),
            recorded: false,
        }
    }

    /// A job that ended as the test expects.
    fn job(&mut self, finished_as_expected: bool) {
        self.jobs_expected += 1;
        if finished_as_expected {
            self.jobs_finished += 1;
        }
    }

    fn lines(&mut self, expected: u64, stored: u64) {
        self.lines_expected += expected;
        self.lines_stored += stored;
    }

    fn passes(&self) -> bool {
        self.jobs_expected == self.jobs_finished
            && self.lines_expected == self.lines_stored
            && self.orphans == 0
    }

    fn record(&mut self, result: &str) {
        self.recorded = true;
        let line = format!(
            "{:<34} | {:<66} | {:>3}/{:<3} | {:>7}/{:<7} | {:>7} | {:<4} | {:>5.1}",
            self.test,
            self.fault,
            self.jobs_expected,
            self.jobs_finished,
            self.lines_expected,
            self.lines_stored,
            self.orphans,
            result,
            self.started.elapsed().as_secs_f64(),
        );
        eprintln!("FAULT-ROW {line}");
        static FILE_LOCK: Mutex<()> = Mutex::new(());
        let _guard = FILE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = repo_root().join("target/faults");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("table.txt"))
        {
            let _ = writeln!(file, "{line}");
        }
    }

    /// Records the row, then asserts it.
    fn assert(mut self) {
        let result = if self.passes() { "pass" } else { "FAIL" };
        self.record(result);
        assert_eq!(
            self.jobs_finished, self.jobs_expected,
            "{}: jobs finished as expected",
            self.test
        );
        assert_eq!(
            self.lines_stored, self.lines_expected,
            "{}: marker lines stored exactly once",
            self.test
        );
        assert_eq!(self.orphans, 0, "{}: processes left", self.test);
    }
}

impl Drop for Row {
    fn drop(&mut self) {
        if !self.recorded {
            self.record("FAIL");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Playbooks, jobs, logs, processes

/// A number no other process has in its command line: seven digits, one per `slot`
/// (test) and test process.
fn marker(slot: u32) -> String {
    (5_000_000 + (std::process::id() % 100_000) * 10 + slot).to_string()
}

/// `steps` tasks, each printing `<tag>-line-<i>` and then sleeping `pause` seconds:
/// a job whose lines flow for a while.
fn flowing_playbook(tag: &str, steps: u32, pause: &str) -> String {
    let mut playbook = String::from("- hosts: all\n  gather_facts: false\n  tasks:\n");
    for step in 1..=steps {
        playbook.push_str(&format!(
            "    - name: print {step}\n      debug:\n        msg: {tag}-line-{step}\n    - name: pause {step}\n      command: sleep {pause}\n"
        ));
    }
    playbook
}

/// Prints `<tag>-line-1`, then runs `sleep <number>` until something kills it.
fn sleeper_playbook(tag: &str, number: &str) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: before\n      debug:\n        msg: {tag}-line-1\n    - name: sleep\n      command: sleep {number}\n"
    )
}

/// Prints `<tag>-line-1`, then appends `start <tag> <ns>` and `end <tag> <ns>` to the
/// extra var `file` around a sleep of `secs`: when the job's work really ran, measured
/// by the work itself.
fn timed_playbook(secs: &str) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: marker\n      debug:\n        msg: \"{{{{ tag }}}}-line-1\"\n    - name: timed\n      shell: \"echo start {{{{ tag }}}} $(date +%s%N) >> {{{{ file }}}}; sleep {secs}; echo end {{{{ tag }}}} $(date +%s%N) >> {{{{ file }}}}\"\n"
    )
}

fn id(job: &Value) -> u64 {
    job["id"].as_u64().expect("job id")
}

fn uuid_of(job: &Value) -> String {
    job["job_id"].as_str().expect("job uuid").to_owned()
}

async fn get_job(stack: &Stack, job: u64) -> Value {
    let (status, body) = stack.get(&format!("/jobs/{job}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `POST /jobs` with any body; asserts 201.
async fn submit_body(stack: &Stack, body: Value) -> Value {
    let (status, job) = stack.post("/jobs", body).await;
    assert_eq!(status, 201, "{job}");
    job
}

/// Polls `job` until `done` holds; panics with `what` after `timeout`.
async fn wait_job(
    stack: &Stack,
    job: u64,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let current = get_job(stack, job).await;
        if done(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "job {job}: {what} not seen in {timeout:?}: {current}; logs in {}",
            stack.dir.path().display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_running(stack: &Stack, job: u64) -> Value {
    wait_job(stack, job, "running", JOB_TIMEOUT, |j| {
        j["status"] == "running"
    })
    .await
}

/// Waits until a process whose command line contains `needle` exists.
async fn wait_process(needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while processes_matching(needle).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no process '{needle}' after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until marker line `<tag>-line-<step>` of `job` is stored.
async fn wait_marker(stack: &Stack, job: u64, tag: &str, step: u32) {
    let needle = format!("{tag}-line-{step}");
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let lines = stack.all_logs(job).await;
        if lines
            .iter()
            .any(|l| l["content"].as_str().is_some_and(|c| c.contains(&needle)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {job}: '{needle}' never stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a job's whole log and asserts it is numbered 1..=total_lines, with no gap and
/// no repeat; returns how many of the markers `<tag>-line-1..=expected` it holds exactly
/// once.
async fn stored_markers(stack: &Stack, job: u64, tag: &str, expected: u64) -> u64 {
    let lines = stack.all_logs(job).await;
    let numbers: Vec<u64> = lines
        .iter()
        .map(|l| l["line_number"].as_u64().expect("line number"))
        .collect();
    let whole: Vec<u64> = (1..=lines.len() as u64).collect();
    assert_eq!(
        numbers,
        whole,
        "job {job}: line numbers with a gap or a repeat; logs in {}",
        stack.dir.path().display()
    );
    let record = get_job(stack, job).await;
    assert_eq!(
        record["total_lines"].as_u64(),
        Some(lines.len() as u64),
        "job {job}: total_lines differs from the lines stored: {record}"
    );
    (1..=expected)
        .filter(|step| {
            // Quoted, as the debug module prints it: `-line-1` is not `-line-10`.
            let needle = format!("\"{tag}-line-{step}\"");
            lines
                .iter()
                .filter(|l| l["content"].as_str().is_some_and(|c| c.contains(&needle)))
                .count()
                == 1
        })
        .count() as u64
}

/// Processes left of `jobs` (by the agent's marker) and of `needles` (command lines),
/// after giving them up to `grace` to go. What is found is counted, then killed by pid
/// so that a failing test leaves nothing running.
async fn orphans(jobs: &[String], needles: &[String], grace: Duration) -> usize {
    let find = || {
        let mut pids: Vec<u32> = jobs
            .iter()
            .flat_map(|uuid| processes_with_env(JOB_MARKER, uuid))
            .chain(needles.iter().flat_map(|n| processes_matching(n)))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    };
    let deadline = Instant::now() + grace;
    let mut left = find();
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = find();
    }
    for pid in &left {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        eprintln!(
            "orphan {pid}: {}",
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        );
        kill_pid(*pid);
    }
    left.len()
}

/// Panics with a clear "waiting for" message unless `binary --help` lists `flag`: the
/// lease flags are part of issue 5 and may not have landed yet.
fn require_flag(binary: &str, flag: &str) {
    let output = std::process::Command::new(bin_dir().join(binary))
        .arg("--help")
        .output()
        .expect("--help runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains(flag),
        "waiting for a feature: {binary} has no {flag} flag yet"
    );
}

fn lease_options(agents: usize, concurrency: u32) -> StackOptions {
    require_flag("drover-coordinator", "--agent-lease-secs");
    require_flag("drover-agent", "--heartbeat-secs");
    StackOptions {
        agents,
        concurrency,
        coordinator_args: vec!["--agent-lease-secs".into(), LEASE_SECS.into()],
        agent_args: vec!["--heartbeat-secs".into(), HEARTBEAT_SECS.into()],
    }
}

/// A `connection: local` server with its own hostname (and pool).
async fn local_server(stack: &Stack, hostname: &str, pool: &str) -> u64 {
    stack
        .server(json!({"hostname": hostname, "ip_address": "127.0.0.1", "connection": "local", "pool": pool}))
        .await
}

// ---------------------------------------------------------------------------------------
// A fake agent: claims jobs and publishes exactly what the test chooses

struct FakeAgent {
    id: String,
    client: async_nats::Client,
    js: jetstream::Context,
    running: Arc<Mutex<Vec<Uuid>>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl FakeAgent {
    /// Connects and heartbeats every second for `pool`, like a live agent, so a lease
    /// never takes its jobs.
    async fn start(stack: &Stack, id: &str, pool: &str) -> FakeAgent {
        let client = async_nats::connect(&stack.nats_url).await.expect("nats");
        let running: Arc<Mutex<Vec<Uuid>>> = Arc::default();
        let beat = {
            let (client, running) = (client.clone(), running.clone());
            let (id, pool) = (id.to_owned(), pool.to_owned());
            async move {
                loop {
                    let heartbeat = Heartbeat {
                        agent_id: id.clone(),
                        pool: pool.clone(),
                        capacity: 8,
                        running: running.lock().expect("running").clone(),
                        version: "fake".into(),
                        labels: Vec::new(),
                    };
                    if let Ok(bytes) = heartbeat.encode() {
                        let _ = client.publish(heartbeat_subject(&id), bytes.into()).await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        FakeAgent {
            id: id.to_owned(),
            js: jetstream::new(client.clone()),
            client,
            running,
            heartbeat: tokio::spawn(beat),
        }
    }

    /// Claims `job`; asserts the claim is granted.
    async fn claim(&self, job: Uuid) {
        let request = ClaimRequest {
            job_uuid: job,
            agent_id: self.id.clone(),
        }
        .encode()
        .expect("encodes");
        let reply = self
            .client
            .request(CLAIM_SUBJECT, request.into())
            .await
            .expect("the coordinator answers claims");
        let reply = ClaimReply::decode(&reply.payload).expect("a ClaimReply");
        assert!(reply.granted, "claim of {job} refused: {:?}", reply.reason);
        self.running.lock().expect("running").push(job);
    }

    /// Publishes to JetStream and waits for its ack, as agents do.
    async fn publish(&self, subject: String, payload: Vec<u8>) {
        self.js
            .send_publish(subject, PublishMessage::build().payload(payload.into()))
            .await
            .expect("publish")
            .await
            .expect("stored by JetStream");
    }

    async fn lines(&self, job: Uuid, numbers: std::ops::RangeInclusive<u64>, text: &str) {
        let batch = LogBatch {
            job_uuid: job,
            lines: numbers
                .map(|n| log_line(n, &format!("{text}-{n}")))
                .collect(),
        };
        self.publish(logs_subject(job), batch.encode().expect("encodes"))
            .await;
    }

    async fn status(&self, job: Uuid, status: JobStatus, last_line: u64) {
        let change = status_change(job, &self.id, status, last_line);
        self.publish(status_subject(job), change.encode().expect("encodes"))
            .await;
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

fn log_line(number: u64, content: &str) -> LogLine {
    LogLine {
        line_number: number,
        content: content.to_owned(),
        log_level: LogLevel::Info,
        timestamp: chrono::Utc::now(),
    }
}

fn status_change(job: Uuid, agent: &str, status: JobStatus, last_line: u64) -> StatusChange {
    let now = chrono::Utc::now();
    StatusChange {
        job_uuid: job,
        agent_id: agent.to_owned(),
        status,
        exit_code: status.is_finished().then_some(0),
        last_line,
        started_at: Some(now),
        completed_at: status.is_finished().then_some(now),
        resource_usage: None,
        error: None,
        host_recap: Vec::new(),
    }
}

/// A job created through the API for a pool no real agent serves, claimed by `fake`.
async fn fake_job(stack: &Stack, fake: &FakeAgent, playbook: u64, server: u64) -> (u64, Uuid) {
    let job = stack.submit(playbook, server, json!({})).await;
    let uuid = Uuid::parse_str(&uuid_of(&job)).expect("uuid");
    fake.claim(uuid).await;
    (id(&job), uuid)
}

// ---------------------------------------------------------------------------------------
// 1. Coordinator crash

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_crash_mid_job() {
    let mut row = Row::new(
        "coordinator crash",
        "kill -9 coordinator mid-job, 4 s down (lease 3 s), restart",
    );
    // Down for longer than the lease: a restarted coordinator must hear the agents
    // again before it holds their silence against them.
    let mut stack = Stack::start_with(lease_options(1, 4)).await;
    let tag = "coordcrash";
    let steps = 20;
    let playbook = stack
        .playbook("flowing", &flowing_playbook(tag, steps, "0.3"))
        .await;
    let server = stack.local_server().await;
    // A job of a pool no agent serves yet: pending across the crash, it must neither be
    // lost nor reaped, and runs once its agent comes.
    let quick = stack
        .playbook("quick", &flowing_playbook(tag, 1, "0"))
        .await;
    let later_server = local_server(&stack, "later-01", "later").await;
    let waiting = stack.submit(quick, later_server, json!({})).await;
    let job = stack.submit(playbook, server, json!({})).await;
    wait_marker(&stack, id(&job), tag, 3).await;

    let before = get_job(&stack, id(&job)).await;
    assert_eq!(before["status"], "running", "{before}");
    stack.kill_coordinator();
    // Lines keep flowing into JetStream while nobody ingests them.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stack.restart_coordinator().await;
    let restarted = get_job(&stack, id(&job)).await;
    eprintln!(
        "coordinator crash: {} lines stored at the kill, job {} with {} right after the restart",
        before["total_lines"], restarted["status"], restarted["total_lines"]
    );

    let finished = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    row.job(finished["status"] == "success");
    row.lines(
        steps as u64,
        stored_markers(&stack, id(&job), tag, steps as u64).await,
    );
    assert_eq!(finished["status"], "success", "{finished}");
    assert_eq!(finished["exit_code"], 0);
    assert!(finished["error"].is_null(), "{finished}");
    assert!(
        finished["total_lines"].as_u64() > before["total_lines"].as_u64(),
        "no line came after the kill: {before} then {finished}"
    );

    let still = get_job(&stack, id(&waiting)).await;
    assert_eq!(still["status"], "pending", "{still}");
    stack.start_agent("later", 1);
    let ran = stack.wait_finished(id(&waiting), JOB_TIMEOUT).await;
    row.job(ran["status"] == "success");
    row.lines(1, stored_markers(&stack, id(&waiting), tag, 1).await);
    assert_eq!(ran["status"], "success", "{ran}");
    row.orphans = orphans(
        &[uuid_of(&job), uuid_of(&waiting)],
        &[],
        Duration::from_secs(5),
    )
    .await;
    row.assert();
}

// ---------------------------------------------------------------------------------------
// 2. Agent crash

/// What both agent-crash tests start with: a playbook that sleeps (the job to lose), a
/// short one and a quick one, and three local servers.
struct CrashScene {
    stack: Stack,
    tag: &'static str,
    needle: String,
    sleeper: u64,
    short: u64,
    quick: u64,
    servers: [u64; 3],
}

async fn crash_scene(tag: &'static str, slot: u32, short_pause: &str) -> CrashScene {
    let stack = Stack::start_with(lease_options(0, 1)).await;
    let number = marker(slot);
    let sleeper = stack
        .playbook("sleeper", &sleeper_playbook(tag, &number))
        .await;
    let short = stack
        .playbook("short", &flowing_playbook(tag, 1, short_pause))
        .await;
    let quick = stack
        .playbook("quick", &flowing_playbook(tag, 1, "0"))
        .await;
    let mut servers = [0; 3];
    for (server, name) in servers.iter_mut().zip(["a", "b", "c"]) {
        *server = local_server(&stack, &format!("{tag}-{name}"), "default").await;
    }
    CrashScene {
        stack,
        tag,
        needle: format!("sleep {number}"),
        sleeper,
        short,
        quick,
        servers,
    }
}

impl CrashScene {
    /// Submits a job and waits until it runs on `agent`.
    async fn running_on(&self, playbook: u64, server: u64, agent: usize) -> Value {
        let job = self.stack.submit(playbook, server, json!({})).await;
        let running = wait_running(&self.stack, id(&job)).await;
        assert_eq!(running["agent_id"], self.stack.agent_id(agent), "{running}");
        job
    }

    /// The lost job ended `failed`, saying its agent was lost; the row counts it.
    async fn check_lost(&self, row: &mut Row, lost: &Value, agent: usize) {
        let failed = self.stack.wait_finished(id(lost), JOB_TIMEOUT).await;
        let expected = format!("agent {} lost while running", self.stack.agent_id(agent));
        row.job(failed["status"] == "failed" && failed["error"] == expected.as_str());
        row.lines(1, stored_markers(&self.stack, id(lost), self.tag, 1).await);
        assert_eq!(failed["status"], "failed", "{failed}");
        assert_eq!(failed["error"], expected.as_str(), "{failed}");
    }

    /// `jobs` succeeded on `agent` and left nothing behind; the row counts them.
    async fn check_ran_on(&self, row: &mut Row, jobs: &[&Value], agent: usize) {
        for job in jobs {
            let done = self.stack.wait_finished(id(job), JOB_TIMEOUT).await;
            row.job(done["status"] == "success" && done["agent_id"] == self.stack.agent_id(agent));
            row.lines(1, stored_markers(&self.stack, id(job), self.tag, 1).await);
            assert_eq!(done["status"], "success", "{done}");
            assert_eq!(done["agent_id"], self.stack.agent_id(agent), "{done}");
        }
        let uuids: Vec<String> = jobs.iter().map(|job| uuid_of(job)).collect();
        row.orphans += orphans(&uuids, &[], Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_crash_mid_job() {
    let mut row = Row::new(
        "agent crash",
        "kill -9 agent A mid-job (lease 3 s); B busy, 1 job queued",
    );
    let mut scene = crash_scene("agentcrash", 2, "4").await;
    let [server_a, server_b, server_c] = scene.servers;
    let a = scene.stack.start_agent("default", 1);
    let lost = scene.running_on(scene.sleeper, server_a, a).await;
    wait_process(&scene.needle, JOB_TIMEOUT).await;
    wait_marker(&scene.stack, id(&lost), scene.tag, 1).await;
    let b = scene.stack.start_agent("default", 1);
    let busy = scene.running_on(scene.short, server_b, b).await;
    // Both slots are busy: this one waits in the pool's queue.
    let queued = scene.stack.submit(scene.quick, server_c, json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get_job(&scene.stack, id(&queued)).await["status"],
        "pending"
    );

    // The orphan check below sees the job's processes by their marker.
    let marked = processes_with_env(JOB_MARKER, &uuid_of(&lost)).len();
    assert!(marked > 0, "no process carries the job's marker");
    scene.stack.kill_agent(a);
    let killed = Instant::now();
    // (a) The playbook's processes die with their agent.
    row.orphans = orphans(
        &[uuid_of(&lost)],
        std::slice::from_ref(&scene.needle),
        Duration::from_secs(5),
    )
    .await;
    // (b) After the lease the job is failed, and says why.
    scene.check_lost(&mut row, &lost, a).await;
    let waited = killed.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "lease of {LEASE_SECS} s, but the job was failed {waited:?} after the kill"
    );
    // (c) The queued job runs on the agent that is left.
    scene.check_ran_on(&mut row, &[&busy, &queued], b).await;
    row.assert();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_crash_with_a_free_slot() {
    let mut row = Row::new(
        "agent crash, free slot",
        "kill -9 agent A (1 of 2 slots busy), submit at once; B busy",
    );
    let mut scene = crash_scene("freeslot", 3, "3").await;
    let [server_a, server_b, server_c] = scene.servers;
    // B first, busy with one slot; then A, with one of its two slots busy: A alone asks
    // the pool's queue for work when the job below is dispatched.
    let b = scene.stack.start_agent("default", 1);
    let busy = scene.running_on(scene.short, server_b, b).await;
    let a = scene.stack.start_agent("default", 2);
    let lost = scene.running_on(scene.sleeper, server_a, a).await;
    wait_process(&scene.needle, JOB_TIMEOUT).await;
    wait_marker(&scene.stack, id(&lost), scene.tag, 1).await;

    scene.stack.kill_agent(a);
    let killed = Instant::now();
    // Dispatched while A's request for work may still be open on the server.
    let next = scene.stack.submit(scene.quick, server_c, json!({})).await;
    row.orphans = orphans(
        &[uuid_of(&lost)],
        std::slice::from_ref(&scene.needle),
        Duration::from_secs(5),
    )
    .await;
    scene.check_lost(&mut row, &lost, a).await;
    scene.check_ran_on(&mut row, &[&busy, &next], b).await;
    // B frees its slot about 3 s after the kill; a dispatch stuck with the dead agent
    // would come back only after the queue's ack wait.
    let waited = killed.elapsed();
    eprintln!(
        "agent crash, free slot: the job dispatched after the kill ended {waited:?} after it"
    );
    assert!(
        waited < Duration::from_secs(20),
        "the job dispatched after the kill waited {waited:?}"
    );
    row.assert();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_stopped_mid_job() {
    let mut row = Row::new(
        "agent SIGTERM",
        "SIGTERM agent mid-job: job failed at once, tree killed",
    );
    let mut stack = Stack::start_with(StackOptions {
        agents: 1,
        concurrency: 1,
        ..StackOptions::default()
    })
    .await;
    let tag = "agentstop";
    let number = marker(4);
    let needle = format!("sleep {number}");
    let sleeper = stack
        .playbook("sleeper", &sleeper_playbook(tag, &number))
        .await;
    let server = stack.local_server().await;
    let job = stack.submit(sleeper, server, json!({})).await;
    wait_process(&needle, JOB_TIMEOUT).await;
    wait_marker(&stack, id(&job), tag, 1).await;
    let stopped = Instant::now();
    stack.stop_agent(0);
    let exited = stopped.elapsed();
    row.orphans = orphans(
        &[uuid_of(&job)],
        std::slice::from_ref(&needle),
        Duration::from_secs(1),
    )
    .await;
    assert!(
        exited < Duration::from_secs(8),
        "the agent took {exited:?} to stop"
    );
    let failed = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    let expected_error = format!("agent {} stopped while the job ran", stack.agent_id(0));
    row.job(failed["status"] == "failed" && failed["error"] == expected_error.as_str());
    row.lines(1, stored_markers(&stack, id(&job), tag, 1).await);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"], expected_error.as_str(), "{failed}");
    row.assert();
}

// ---------------------------------------------------------------------------------------
// 3. Bus restart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_restart_mid_job() {
    bus_restart(
        Row::new(
            "bus restart",
            "SIGTERM nats-server mid-job, 3 s down, restart same port+store",
        ),
        StackOptions::default(),
        Duration::from_secs(3),
    )
    .await;
}

/// Stricter than the words: an outage longer than the lease must not make the
/// coordinator fail jobs whose agents it could not hear because the bus was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_outage_longer_than_the_lease() {
    bus_restart(
        Row::new(
            "bus outage > lease",
            "SIGTERM nats-server mid-job, 5 s down (lease 3 s), restart",
        ),
        lease_options(1, 4),
        Duration::from_secs(5),
    )
    .await;
}

async fn bus_restart(mut row: Row, options: StackOptions, down: Duration) {
    let mut stack = Stack::start_with(options).await;
    let tag = "busrestart";
    let steps = 20;
    let playbook = stack
        .playbook("flowing", &flowing_playbook(tag, steps, "0.3"))
        .await;
    let server = stack.local_server().await;
    let job = stack.submit(playbook, server, json!({})).await;
    wait_marker(&stack, id(&job), tag, 3).await;
    let before = get_job(&stack, id(&job)).await;
    stack.stop_nats();
    tokio::time::sleep(down).await;
    stack.restart_nats().await;

    let finished = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    row.job(finished["status"] == "success");
    row.lines(
        steps as u64,
        stored_markers(&stack, id(&job), tag, steps as u64).await,
    );
    assert_eq!(finished["status"], "success", "{finished}");
    assert_eq!(finished["exit_code"], 0);
    assert!(
        finished["total_lines"].as_u64() > before["total_lines"].as_u64(),
        "no line came after the restart: {before} then {finished}"
    );
    // New work flows too: the coordinator dispatches, the agent pulls and claims.
    let quick = stack
        .playbook("quick", &flowing_playbook(tag, 1, "0"))
        .await;
    let after = stack.submit(quick, server, json!({})).await;
    let after_done = stack.wait_finished(id(&after), JOB_TIMEOUT).await;
    row.job(after_done["status"] == "success");
    row.lines(1, stored_markers(&stack, id(&after), tag, 1).await);
    assert_eq!(after_done["status"], "success", "{after_done}");
    row.orphans = orphans(
        &[uuid_of(&job), uuid_of(&after)],
        &[],
        Duration::from_secs(5),
    )
    .await;
    row.assert();
}

// ---------------------------------------------------------------------------------------
// 4. No agent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_in_pool() {
    let mut row = Row::new(
        "no agent",
        "job for pool 'edge-1' with no agent; agent starts later",
    );
    // An agent of another pool is up: the reason must name the pool that has none.
    let mut stack = Stack::start().await;
    let tag = "noagent";
    let playbook = stack
        .playbook("quick", &flowing_playbook(tag, 1, "0"))
        .await;
    let server = local_server(&stack, "edge-host-01", "edge-1").await;
    let job = stack.submit(playbook, server, json!({})).await;
    let waiting = wait_job(
        &stack,
        id(&job),
        "a pending_reason naming pool 'edge-1'",
        Duration::from_secs(15),
        |j| {
            j["pending_reason"]
                .as_str()
                .is_some_and(|r| r.contains("no agent in pool 'edge-1'"))
        },
    )
    .await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    eprintln!("pending_reason: {}", waiting["pending_reason"]);

    stack.start_agent("edge-1", 1);
    let finished = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    row.job(finished["status"] == "success");
    row.lines(1, stored_markers(&stack, id(&job), tag, 1).await);
    assert_eq!(finished["status"], "success", "{finished}");
    assert!(finished["pending_reason"].is_null(), "{finished}");
    row.orphans = orphans(&[uuid_of(&job)], &[], Duration::from_secs(5)).await;
    row.assert();
}

// ---------------------------------------------------------------------------------------
// 5. Cancel, everywhere

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_pending_job() {
    let mut row = Row::new(
        "cancel pending",
        "cancel a pending job (no agent), then an agent starts",
    );
    let mut stack = Stack::start_with(StackOptions {
        agents: 0,
        ..StackOptions::default()
    })
    .await;
    let tag = "cancelpending";
    let playbook = stack
        .playbook("quick", &flowing_playbook(tag, 1, "0"))
        .await;
    let server = stack.local_server().await;
    let job = stack.submit(playbook, server, json!({})).await;
    let (status, body) = stack
        .post(&format!("/jobs/{}/cancel", id(&job)), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    stack.start_agent("default", 2);
    let after = stack.submit(playbook, server, json!({})).await;
    let after_done = stack.wait_finished(id(&after), JOB_TIMEOUT).await;
    row.job(after_done["status"] == "success");
    row.lines(1, stored_markers(&stack, id(&after), tag, 1).await);
    assert_eq!(after_done["status"], "success", "{after_done}");

    let cancelled = get_job(&stack, id(&job)).await;
    let never_started = cancelled["status"] == "cancelled"
        && cancelled["exit_code"] == 99
        && cancelled["started_at"].is_null()
        && cancelled["agent_id"].is_null()
        && cancelled["total_lines"] == 0;
    assert!(never_started, "{cancelled}");
    row.job(never_started);
    row.orphans = orphans(
        &[uuid_of(&job), uuid_of(&after)],
        &[],
        Duration::from_secs(5),
    )
    .await;
    row.assert();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_job() {
    let mut row = Row::new(
        "cancel running",
        "cancel a job running `sleep N`: tree gone within 5 s",
    );
    let stack = Stack::start().await;
    let tag = "cancelrunning";
    let number = marker(5);
    let needle = format!("sleep {number}");
    let playbook = stack
        .playbook("sleeper", &sleeper_playbook(tag, &number))
        .await;
    let server = stack.local_server().await;
    let job = stack.submit(playbook, server, json!({})).await;
    wait_process(&needle, JOB_TIMEOUT).await;
    wait_marker(&stack, id(&job), tag, 1).await;
    // The orphan check below sees the job's processes by their marker.
    let marked = processes_with_env(JOB_MARKER, &uuid_of(&job)).len();
    assert!(marked > 0, "no process carries the job's marker");
    let asked = Instant::now();
    let (status, body) = stack
        .post(&format!("/jobs/{}/cancel", id(&job)), json!({}))
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    // Every process of the job, not just the sleep, within 5 s of the request.
    let left = asked + Duration::from_secs(5);
    row.orphans = orphans(
        &[uuid_of(&job)],
        std::slice::from_ref(&needle),
        left.saturating_duration_since(Instant::now()),
    )
    .await;
    let finished = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    row.job(finished["status"] == "cancelled" && finished["exit_code"] == 99);
    row.lines(1, stored_markers(&stack, id(&job), tag, 1).await);
    assert_eq!(finished["status"], "cancelled", "{finished}");
    assert_eq!(finished["exit_code"], 99);
    row.assert();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_agent_is_cut_off() {
    let mut row = Row::new(
        "cancel while cut off",
        "nats-server down, POST cancel (202), nats back: cancel arrives",
    );
    let mut stack = Stack::start().await;
    let tag = "cancelcutoff";
    let number = marker(6);
    let needle = format!("sleep {number}");
    let playbook = stack
        .playbook("sleeper", &sleeper_playbook(tag, &number))
        .await;
    let server = stack.local_server().await;
    let job = stack.submit(playbook, server, json!({})).await;
    wait_process(&needle, JOB_TIMEOUT).await;
    wait_marker(&stack, id(&job), tag, 1).await;

    stack.stop_nats();
    let (status, body) = stack
        .post(&format!("/jobs/{}/cancel", id(&job)), json!({}))
        .await;
    assert!(
        status == 202 || status == 200,
        "cancel while the bus is down answered {status}: {body}"
    );
    // The agent cannot have heard it: the job is still running.
    assert!(
        !processes_matching(&needle).is_empty(),
        "the sleep ended while the bus was down"
    );
    let pending = get_job(&stack, id(&job)).await;
    assert_eq!(pending["status"], "running", "{pending}");
    assert!(!pending["cancel_requested_by"].is_null(), "{pending}");
    stack.restart_nats().await;
    let back = Instant::now();

    let finished = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    row.job(finished["status"] == "cancelled" && finished["exit_code"] == 99);
    row.lines(1, stored_markers(&stack, id(&job), tag, 1).await);
    assert_eq!(finished["status"], "cancelled", "{finished}");
    assert_eq!(finished["exit_code"], 99);
    eprintln!(
        "cancel while cut off: {status} at the request, cancelled {:?} after the bus came back",
        back.elapsed()
    );
    row.orphans = orphans(
        &[uuid_of(&job)],
        std::slice::from_ref(&needle),
        Duration::from_secs(5),
    )
    .await;
    row.assert();
}

// ---------------------------------------------------------------------------------------
// 6. Timeouts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_fail_the_job_and_kill_its_tree() {
    let mut row = Row::new(
        "timeouts",
        "job timeout 2 s, and a playbook default of 2 s, over sleep 300",
    );
    let stack = Stack::start().await;
    let tag = "timeout";
    let (first, second) = (marker(7), marker(8));
    let per_job = stack
        .playbook("per-job", &sleeper_playbook(tag, &first))
        .await;
    let (status, body) = stack
        .post(
            "/playbooks",
            json!({"name": "per-playbook", "content": sleeper_playbook(tag, &second), "timeout": 2}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let per_playbook = id(&body);
    let server = stack.local_server().await;
    let with_timeout = submit_body(
        &stack,
        json!({"playbook_id": per_job, "server_id": server, "timeout": 2}),
    )
    .await;
    let by_default = stack.submit(per_playbook, server, json!({})).await;
    assert_eq!(
        by_default["timeout"], 2,
        "the playbook's default: {by_default}"
    );
    for job in [&with_timeout, &by_default] {
        let finished = stack.wait_finished(id(job), JOB_TIMEOUT).await;
        row.job(finished["status"] == "failed" && finished["exit_code"] == 4);
        row.lines(1, stored_markers(&stack, id(job), tag, 1).await);
        assert_eq!(finished["status"], "failed", "{finished}");
        assert_eq!(finished["exit_code"], 4, "{finished}");
    }
    row.orphans = orphans(
        &[uuid_of(&with_timeout), uuid_of(&by_default)],
        &[format!("sleep {first}"), format!("sleep {second}")],
        Duration::from_secs(5),
    )
    .await;
    row.assert();
}

// ---------------------------------------------------------------------------------------
// 7. Concurrency

/// `(tag, start ns, end ns)` of every run the timed playbook wrote to `file`.
fn intervals(file: &std::path::Path) -> Vec<(String, u128, u128)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut starts: HashMap<String, u128> = HashMap::new();
    let mut runs = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [kind, tag, at] = parts[..] else { continue };
        let at: u128 = at.parse().expect("nanoseconds");
        match kind {
            "start" => {
                starts.insert(tag.to_owned(), at);
            }
            "end" => {
                if let Some(start) = starts.remove(tag) {
                    runs.push((tag.to_owned(), start, at));
                }
            }
            _ => {}
        }
    }
    runs.sort_by_key(|run| run.1);
    runs
}

/// Most runs at the same moment.
fn max_overlap(runs: &[(String, u128, u128)]) -> usize {
    let mut edges: Vec<(u128, i32)> = runs
        .iter()
        .flat_map(|(_, start, end)| [(*start, 1), (*end, -1)])
        .collect();
    // An end before a start at the same instant: touching is not overlapping.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// Samples `GET /jobs?status=running` every 100 ms until `jobs` are all finished;
/// returns the most jobs seen running at once, in all and per server id. Informative
/// only: a job shows `running` until its final status is stored, which may be a moment
/// after its agent freed the slot, so the assertions use the timed runs.
async fn sample_running(stack: &Stack, jobs: &[u64]) -> (usize, BTreeMap<u64, usize>) {
    let deadline = Instant::now() + JOB_TIMEOUT;
    let mut most_total = 0;
    let mut most: BTreeMap<u64, usize> = BTreeMap::new();
    loop {
        let (status, page) = stack.get("/jobs?status=running&per_page=100").await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().expect("items");
        most_total = most_total.max(items.len());
        let mut now: BTreeMap<u64, usize> = BTreeMap::new();
        for job in items {
            let server = job["server"]["id"].as_u64().expect("server id");
            *now.entry(server).or_default() += 1;
        }
        for (server, count) in now {
            let entry = most.entry(server).or_default();
            *entry = (*entry).max(count);
        }
        let mut all_done = true;
        for job in jobs {
            let record = get_job(stack, *job).await;
            if !matches!(
                record["status"].as_str(),
                Some("success" | "failed" | "cancelled")
            ) {
                all_done = false;
            }
        }
        if all_done {
            return (most_total, most);
        }
        assert!(Instant::now() < deadline, "jobs {jobs:?} not finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_of_an_agent() {
    let mut row = Row::new(
        "concurrency limit",
        "6 jobs x sleep 2 on 6 servers, one agent --concurrency 2",
    );
    let stack = Stack::start_with(StackOptions {
        agents: 1,
        concurrency: 2,
        ..StackOptions::default()
    })
    .await;
    let times = stack.dir.path().join("times-limit");
    let playbook = stack.playbook("timed", &timed_playbook("2")).await;
    let mut jobs = Vec::new();
    for n in 1..=6 {
        let server = local_server(&stack, &format!("limit-{n}"), "default").await;
        let job = stack
            .submit(
                playbook,
                server,
                json!({"tag": format!("j{n}"), "file": times.display().to_string()}),
            )
            .await;
        jobs.push(job);
    }
    let ids: Vec<u64> = jobs.iter().map(id).collect();
    let (sampled, _) = sample_running(&stack, &ids).await;
    for (n, job) in jobs.iter().enumerate() {
        let done = stack.wait_finished(id(job), JOB_TIMEOUT).await;
        row.job(done["status"] == "success");
        let tag = format!("j{}", n + 1);
        row.lines(1, stored_markers(&stack, id(job), &tag, 1).await);
    }
    let runs = intervals(&times);
    assert_eq!(runs.len(), 6, "every job ran once: {runs:?}");
    let overlap = max_overlap(&runs);
    eprintln!("concurrency limit: at most {overlap} runs at once ({sampled} seen running)");
    assert!(overlap <= 2, "{overlap} jobs ran at once: {runs:?}");
    assert_eq!(overlap, 2, "the agent never used its second slot: {runs:?}");
    // Queued jobs start in submission order. Two dispatches pulled together (both slots
    // free at once) are claimed side by side and may start either way round, so only
    // jobs submitted two or more places apart are compared.
    let start_of = |n: usize| {
        runs.iter()
            .find(|(tag, _, _)| *tag == format!("j{n}"))
            .map(|run| run.1)
            .expect("a run of every job")
    };
    for earlier in 1..=6 {
        for later in earlier + 2..=6 {
            assert!(
                start_of(earlier) < start_of(later),
                "j{later} started before j{earlier}: {runs:?}"
            );
        }
    }
    row.orphans = orphans(
        &jobs.iter().map(uuid_of).collect::<Vec<_>>(),
        &[],
        Duration::from_secs(5),
    )
    .await;
    row.assert();
}

/// Submits three timed jobs to one server of a fresh stack (one agent, concurrency 4);
/// returns the stack, the jobs in submission order, the runs, and the most jobs sampled
/// running on that server at once.
async fn three_jobs_on_one_server(
    allow_simultaneous: bool,
) -> (Stack, Vec<Value>, Vec<(String, u128, u128)>, usize) {
    let stack = Stack::start_with(StackOptions {
        agents: 1,
        concurrency: 4,
        ..StackOptions::default()
    })
    .await;
    let times = stack.dir.path().join("times-server");
    let mut body = json!({"name": "timed", "content": timed_playbook("2")});
    if allow_simultaneous {
        body["allow_simultaneous"] = json!(true);
    }
    let (status, playbook) = stack.post("/playbooks", body).await;
    assert_eq!(status, 201, "POST /playbooks: {playbook}");
    if allow_simultaneous {
        assert_eq!(playbook["allow_simultaneous"], true, "{playbook}");
    }
    let server = stack.local_server().await;
    let mut jobs = Vec::new();
    for n in 1..=3 {
        jobs.push(
            stack
                .submit(
                    id(&playbook),
                    server,
                    json!({"tag": format!("j{n}"), "file": times.display().to_string()}),
                )
                .await,
        );
    }
    let ids: Vec<u64> = jobs.iter().map(id).collect();
    let (_, sampled) = sample_running(&stack, &ids).await;
    let runs = intervals(&times);
    let most = sampled.get(&server).copied().unwrap_or(0);
    (stack, jobs, runs, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_at_a_time_per_server() {
    let mut row = Row::new(
        "one job per server",
        "3 jobs x sleep 2 on one server, agent --concurrency 4",
    );
    let (stack, jobs, runs, sampled) = three_jobs_on_one_server(false).await;
    for (n, job) in jobs.iter().enumerate() {
        let done = stack.wait_finished(id(job), JOB_TIMEOUT).await;
        row.job(done["status"] == "success");
        let tag = format!("j{}", n + 1);
        row.lines(1, stored_markers(&stack, id(job), &tag, 1).await);
    }
    eprintln!("one job per server: runs {runs:?}, sampled at most {sampled} running");
    assert_eq!(runs.len(), 3, "every job ran once: {runs:?}");
    assert_eq!(
        max_overlap(&runs),
        1,
        "two jobs ran on one server at once: {runs:?}"
    );
    let order: Vec<&str> = runs.iter().map(|(tag, _, _)| tag.as_str()).collect();
    assert_eq!(order, ["j1", "j2", "j3"], "not in submission order");
    row.orphans = orphans(
        &jobs.iter().map(uuid_of).collect::<Vec<_>>(),
        &[],
        Duration::from_secs(5),
    )
    .await;
    row.assert();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_simultaneous_runs_jobs_of_one_server_together() {
    let mut row = Row::new(
        "allow_simultaneous",
        "3 jobs x sleep 2 on one server, playbook allow_simultaneous",
    );
    let (stack, jobs, runs, sampled) = three_jobs_on_one_server(true).await;
    for (n, job) in jobs.iter().enumerate() {
        let done = stack.wait_finished(id(job), JOB_TIMEOUT).await;
        row.job(done["status"] == "success");
        let tag = format!("j{}", n + 1);
        row.lines(1, stored_markers(&stack, id(job), &tag, 1).await);
    }
    eprintln!("allow_simultaneous: runs {runs:?}, sampled at most {sampled} running");
    assert_eq!(runs.len(), 3, "every job ran once: {runs:?}");
    assert!(
        max_overlap(&runs) >= 2,
        "allow_simultaneous, yet the jobs ran one by one: {runs:?}"
    );
    row.orphans = orphans(
        &jobs.iter().map(uuid_of).collect::<Vec<_>>(),
        &[],
        Duration::from_secs(5),
    )
    .await;
    row.assert();
}

// ---------------------------------------------------------------------------------------
// 8. Hostile or broken messages

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_broken_messages() {
    let mut row = Row::new(
        "hostile messages",
        "junk, ghost job, smuggled, forged, replay, reorder, bad heartbeat",
    );
    let stack = Stack::start().await;
    let coordinator = stack.coordinator_pid();
    let playbook = stack
        .playbook("quick", &flowing_playbook("hostile", 1, "0"))
        .await;
    let fake_server = local_server(&stack, "hostile-01", "hostile").await;
    let fake = FakeAgent::start(&stack, "fake-hostile", "hostile").await;
    let (job, uuid) = fake_job(&stack, &fake, playbook, fake_server).await;
    fake.status(uuid, JobStatus::Running, 0).await;
    let counted_before = counters(&stack).await;

    // Out of order: lines 3-4 before 1-2.
    fake.lines(uuid, 3..=4, "real").await;
    // A status from an agent that does not hold the claim.
    let forged = status_change(uuid, "intruder", JobStatus::Failed, 4);
    fake.publish(status_subject(uuid), forged.encode().expect("encodes"))
        .await;
    // The real final status, before lines 1-2: held until they are stored.
    fake.status(uuid, JobStatus::Success, 4).await;
    wait_job(
        &stack,
        job,
        "lines 3-4 stored",
        Duration::from_secs(20),
        |j| j["total_lines"] == 2,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = get_job(&stack, job).await;
    assert_eq!(
        held["status"], "running",
        "finished with lines 1-2 missing: {held}"
    );

    // Garbage where a LogBatch and a StatusChange belong.
    fake.publish(logs_subject(uuid), b"\xc1\xc1 not msgpack".to_vec())
        .await;
    fake.publish(status_subject(uuid), vec![0x93, 0x01]).await;
    // Lines for a job that does not exist, and a batch naming another job than its
    // subject.
    let ghost = Uuid::new_v4();
    fake.lines(ghost, 1..=1, "ghost").await;
    let smuggled = LogBatch {
        job_uuid: ghost,
        lines: vec![log_line(1, "smuggled")],
    };
    fake.publish(logs_subject(uuid), smuggled.encode().expect("encodes"))
        .await;
    // A heartbeat that is not one.
    fake.client
        .publish(heartbeat_subject("fake-hostile"), "garbage".into())
        .await
        .expect("publish");
    // A garbage claim is answered, and refused.
    let reply = fake
        .client
        .request(CLAIM_SUBJECT, "garbage".into())
        .await
        .expect("the coordinator answers");
    assert!(
        !ClaimReply::decode(&reply.payload)
            .expect("a ClaimReply")
            .granted
    );
    // The missing lines arrive: the job finishes.
    fake.lines(uuid, 1..=2, "real").await;
    let finished = wait_job(&stack, job, "finished", JOB_TIMEOUT, |j| {
        j["status"] != "running"
    })
    .await;
    // Replays: the same batches again, one with other content.
    fake.lines(uuid, 1..=2, "rewritten").await;
    fake.lines(uuid, 3..=4, "real").await;

    // The coordinator still ingests: a real job runs to its end.
    let server = stack.local_server().await;
    let real = stack.submit(playbook, server, json!({})).await;
    let real_done = stack.wait_finished(id(&real), JOB_TIMEOUT).await;
    row.job(real_done["status"] == "success");
    row.lines(1, stored_markers(&stack, id(&real), "hostile", 1).await);
    assert_eq!(real_done["status"], "success", "{real_done}");

    assert_eq!(finished["status"], "success", "{finished}");
    assert!(finished["error"].is_null(), "{finished}");
    let after = get_job(&stack, job).await;
    assert_eq!(after["status"], "success", "{after}");
    let lines = stack.all_logs(job).await;
    let stored: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["line_number"].as_u64().expect("number"),
                l["content"].as_str().expect("content"),
            )
        })
        .collect();
    let right = stored == [(1, "real-1"), (2, "real-2"), (3, "real-3"), (4, "real-4")]
        && after["total_lines"] == 4;
    assert!(right, "job {job} stored {stored:?}: {after}");
    row.job(after["status"] == "success" && after["error"].is_null());
    row.lines(4, if right { 4 } else { 0 });
    let (status, ghost_job) = stack.get(&format!("/jobs/{ghost}")).await;
    assert_eq!(status, 404, "{ghost_job}");
    assert_eq!(
        stack.coordinator_pid(),
        coordinator,
        "the coordinator was replaced"
    );
    assert!(
        std::path::Path::new(&format!("/proc/{coordinator}")).exists(),
        "the coordinator crashed"
    );
    // Refused and repeated messages are counted, not only logged.
    let counted = counters(&stack).await;
    let delta = |name: &str| {
        counted[name].as_u64().expect("counter") - counted_before[name].as_u64().expect("counter")
    };
    eprintln!("hostile messages: counters {counted_before} then {counted}");
    assert_eq!(
        delta("ingest_malformed"),
        3,
        "two garbage payloads and one smuggled batch"
    );
    assert_eq!(
        delta("ingest_rejected"),
        2,
        "the ghost job's lines and the forged status"
    );
    assert!(delta("ingest_duplicates") >= 2, "two replayed batches");
    assert_eq!(delta("heartbeats_rejected"), 1, "one garbage heartbeat");
    row.orphans = orphans(&[uuid_of(&real)], &[], Duration::from_secs(5)).await;
    row.assert();
}

/// The coordinator's counters of refused and repeated messages (`GET /healthz`).
async fn counters(stack: &Stack) -> Value {
    let (status, health) = stack.get("/healthz").await;
    assert_eq!(status, 200, "{health}");
    assert!(
        health["counters"].is_object(),
        "/healthz shows no counters of refused messages: {health}"
    );
    health["counters"].clone()
}

// ---------------------------------------------------------------------------------------
// 9. Store crash safety

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_survives_kill_during_heavy_ingest() {
    const LINES: u64 = 200_000;
    const BATCH: u64 = 100;
    let mut row = Row::new("store crash safety", "");
    let mut stack = Stack::start_with(StackOptions {
        agents: 0,
        ..StackOptions::default()
    })
    .await;
    let playbook = stack
        .playbook("quick", &flowing_playbook("bulk", 1, "0"))
        .await;
    let server = local_server(&stack, "bulk-01", "bulk").await;
    let fake = Arc::new(FakeAgent::start(&stack, "fake-bulk", "bulk").await);
    let (job, uuid) = fake_job(&stack, &fake, playbook, server).await;
    fake.status(uuid, JobStatus::Running, 0).await;

    // Every batch is acknowledged by JetStream before the next is sent.
    let publisher = {
        let fake = fake.clone();
        tokio::spawn(async move {
            let mut first = 1;
            while first <= LINES {
                fake.lines(uuid, first..=first + BATCH - 1, "bulk").await;
                first += BATCH;
            }
            fake.status(uuid, JobStatus::Success, LINES).await;
        })
    };
    // Kill as soon as ingest is under way.
    let deadline = Instant::now() + JOB_TIMEOUT;
    let at_kill = loop {
        let stored = get_job(&stack, job).await["total_lines"]
            .as_u64()
            .expect("total_lines");
        if stored > 0 {
            stack.kill_coordinator();
            break stored;
        }
        assert!(Instant::now() < deadline, "ingest never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(at_kill < LINES, "ingest ended before the kill; raise LINES");
    row.fault = format!("kill -9 coordinator at {at_kill} of {LINES} lines stored, restart");
    publisher
        .await
        .expect("every batch acknowledged by JetStream");
    stack.restart_coordinator().await;

    // JetStream redelivers what the killed process read but never acknowledged within
    // the ingest's ack wait (seconds), so a minute is ample.
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let current = get_job(&stack, job).await;
        if current["status"] != "running" || Instant::now() > deadline {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    row.job(finished["status"] == "success" && finished["total_lines"] == LINES);
    // Every acknowledged line, once, with its content.
    let lines = stack.all_logs(job).await;
    let mut seen = vec![0u32; LINES as usize + 1];
    for line in &lines {
        let number = line["line_number"].as_u64().expect("line number");
        if line["content"] == format!("bulk-{number}")
            && let Some(count) = seen.get_mut(number as usize)
        {
            *count += 1;
        }
    }
    let wrong: Vec<u64> = (1..=LINES).filter(|n| seen[*n as usize] != 1).collect();
    if let (Some(first), Some(last)) = (wrong.first(), wrong.last()) {
        eprintln!(
            "store crash safety: {} acknowledged lines missing, repeated or altered, from {first} to {last}; job {finished}; logs in {}",
            wrong.len(),
            stack.dir.path().display()
        );
    }
    let exact = LINES - wrong.len() as u64;
    row.lines(LINES, exact);
    assert_eq!(
        lines.len() as u64,
        exact,
        "lines stored beyond the published ones"
    );
    row.assert();
}
