//! The web UI in a real browser: a real stack (nats-server, coordinator, one agent), an
//! operator and a viewer, a job that prints lines slowly, a failed job and a finished
//! 100,000-line job; then `tests/browser/ui.mjs` drives headless Chromium through every
//! page with playwright-core (signs in, watches lines arrive live, cancels, checks what
//! a viewer may do, times the first line of the long log) and saves screenshots under
//! `target/browser-artifacts/`. Chromium and the npm packages come from `scripts/setup`;
//! without them this test fails and says so.

use drover_tests::{Stack, StackOptions, repo_root};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Lines of the long log the UI must open quickly.
const BIG_LINES: u64 = 100_000;
const JOB_TIMEOUT: Duration = Duration::from_secs(120);
/// The whole browser script; it normally takes well under a minute.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);
const CHROMIUM: &str = "/usr/bin/chromium";

/// Prints `count` lines `drover-line-N` through one debug task, one line each.
fn lines_playbook(count: u64) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: seq -f 'drover-line-%.0f' 1 {count}\n      register: out\n    - debug:\n        var: out.stdout_lines\n"
    )
}

/// Two log lines every ~half second for minutes: a job that is running while the browser
/// watches it (the test cancels it). Separate tasks, because Ansible reports a loop's
/// items together.
fn slow_playbook() -> String {
    let mut playbook = String::from("- hosts: all\n  gather_facts: false\n  tasks:\n");
    for step in 1..=300 {
        playbook.push_str(&format!(
            "    - name: step {step}\n      command: sleep 0.3\n"
        ));
    }
    playbook
}

const FAILING_PLAYBOOK: &str = "\
- hosts: all
  gather_facts: false
  tasks:
    - name: Prepare
      debug:
        msg: about to fail
    - name: Start nginx
      fail:
        msg: Service not found
";

fn id(job: &Value) -> u64 {
    job["id"].as_u64().expect("job id")
}

/// What the browser script needs that `scripts/setup` installs; a clear failure if not.
fn browser_prerequisites() -> PathBuf {
    let dir = repo_root().join("tests/browser");
    assert!(
        std::path::Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run scripts/setup as root (it installs Debian's chromium package)"
    );
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{}/node_modules/playwright-core is missing: run scripts/setup (it runs npm ci there)",
        dir.display()
    );
    dir.join("ui.mjs")
}

async fn user(stack: &Stack, username: &str, role: &str) -> String {
    let password = format!("{username}-password-123");
    let (status, body) = stack
        .post(
            "/users",
            json!({"username": username, "password": password, "role": role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    password
}

async fn local_server(stack: &Stack, hostname: &str) -> u64 {
    stack
        .server(json!({"hostname": hostname, "ip_address": "127.0.0.1", "connection": "local"}))
        .await
}

async fn job(stack: &Stack, id: u64) -> Value {
    let (status, job) = stack.get(&format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

/// Waits until the job runs and has printed a line.
async fn wait_running(stack: &Stack, id: u64) {
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let current = job(stack, id).await;
        if current["status"] == "running" && current["total_lines"].as_u64() > Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline && current["status"] != "failed",
            "job {id} never ran: {current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A finished job whose log has exactly `BIG_LINES` lines: Ansible adds its own lines
/// around `seq`'s, so a short run of the same playbook measures how many.
async fn big_job(stack: &Stack, server: u64) -> u64 {
    let probe = stack.playbook("lines-probe", &lines_playbook(10)).await;
    let probe = id(&stack.submit(probe, server, json!({})).await);
    let done = stack.wait_finished(probe, JOB_TIMEOUT).await;
    assert_eq!(done["status"], "success", "{done}");
    let overhead = done["total_lines"].as_u64().expect("total_lines") - 10;
    let playbook = stack
        .playbook(
            "hundred-thousand-lines",
            &lines_playbook(BIG_LINES - overhead),
        )
        .await;
    id(&stack.submit(playbook, server, json!({})).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_in_chromium() {
    let script = browser_prerequisites();
    let stack = Stack::start_with(StackOptions {
        agents: 1,
        concurrency: 4,
        // Alerts evaluated every second, so the alerts page shows the failure streak.
        coordinator_args: vec!["--monitor-interval-secs=1".into()],
        ..StackOptions::default()
    })
    .await;
    let operator_password = user(&stack, "olivia", "operator").await;
    let viewer_password = user(&stack, "victor", "viewer").await;
    let slow = stack.playbook("deploy-slowly", &slow_playbook()).await;
    let failing = stack.playbook("deploy-nginx", FAILING_PLAYBOOK).await;
    let servers = [
        local_server(&stack, "web-01").await,
        local_server(&stack, "web-02").await,
        local_server(&stack, "web-03").await,
        local_server(&stack, "web-04").await,
    ];
    let big = big_job(&stack, servers[0]).await;
    let failed = id(&stack.submit(failing, servers[1], json!({})).await);
    let running = id(&stack.submit(slow, servers[2], json!({})).await);
    let other_running = id(&stack.submit(slow, servers[3], json!({})).await);
    let big_done = stack.wait_finished(big, JOB_TIMEOUT).await;
    assert_eq!(big_done["status"], "success", "{big_done}");
    assert_eq!(big_done["total_lines"], BIG_LINES, "{big_done}");
    assert_eq!(
        stack.wait_finished(failed, JOB_TIMEOUT).await["status"],
        "failed"
    );
    wait_running(&stack, running).await;
    wait_running(&stack, other_running).await;

    // The API behind "search" and "jump to first error", and the charts' timeline.
    let (status, found) = stack
        .get(&format!(
            "/jobs/{big}/logs?contains=DROVER-LINE-77777&limit=10"
        ))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["returned_lines"], 1, "{found}");
    assert_eq!(found["has_more"], false, "{found}");
    let (_, errors) = stack
        .get(&format!("/jobs/{failed}/logs?level=ERROR&limit=1"))
        .await;
    assert_eq!(errors["logs"][0]["log_level"], "ERROR", "{errors}");
    let (_, timeline) = stack.get("/jobs/timeline?hours=6").await;
    let buckets = timeline["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 6, "{timeline}");
    let created: u64 = buckets.iter().filter_map(|b| b["total"].as_u64()).sum();
    assert_eq!(created, 5, "{timeline}");

    let artifacts = repo_root().join("target/browser-artifacts");
    let started = Instant::now();
    let child = tokio::process::Command::new("node")
        .arg(&script)
        .env("DROVER_URL", &stack.http)
        .env("DROVER_OPERATOR", "olivia")
        .env("DROVER_OPERATOR_PASSWORD", &operator_password)
        .env("DROVER_VIEWER", "victor")
        .env("DROVER_VIEWER_PASSWORD", &viewer_password)
        .env("DROVER_RUNNING_JOB", running.to_string())
        .env("DROVER_OTHER_RUNNING_JOB", other_running.to_string())
        .env("DROVER_FAILED_JOB", failed.to_string())
        .env("DROVER_BIG_JOB", big.to_string())
        .env("DROVER_BIG_JOB_LINES", BIG_LINES.to_string())
        .env("DROVER_ARTIFACTS", &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (Node.js 20 or newer)");
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser script took longer than {SCRIPT_TIMEOUT:?}"))
        .expect("the browser script's output");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!(
        "browser script: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
    assert!(
        output.status.success(),
        "the browser script failed ({}); see its output above, {}/failure.png and the services' logs in {}",
        output.status,
        artifacts.display(),
        stack.dir.path().display()
    );
    assert_eq!(job(&stack, running).await["status"], "cancelled");
    let (status, body) = stack
        .post(&format!("/jobs/{other_running}/cancel"), json!({}))
        .await;
    assert!(status.is_success(), "{body}");
}
