//! `/metrics` after a known mix of real jobs, the Prometheus rules and Grafana dashboard
//! checked against what is exported (and by `promtool check rules`), and every built-in
//! alert firing and clearing, seen on `GET /alerts` and on `drover.alerts.<kind>`.

use drover_shared::protocol::{ALERT_SUBJECTS, AlertMessage, AlertState, Message};
use drover_tests::{Stack, StackOptions, playbooks};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// Fails when the job's `fail_it` variable is true.
const FLAKY_PLAYBOOK: &str = "\
- hosts: all
  gather_facts: false
  tasks:
    - name: Maybe break
      fail:
        msg: asked to fail
      when: fail_it | default(false) | bool
";

const SLOW_PLAYBOOK: &str = "\
- hosts: all
  gather_facts: false
  tasks:
    - name: Take a while
      command: sleep 5
";

fn id(value: &Value) -> u64 {
    value["id"].as_u64().expect("id")
}

async fn metrics_text(stack: &Stack) -> String {
    let response = reqwest::get(format!("{}/metrics", stack.http))
        .await
        .expect("coordinator answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.expect("body")
}

/// The value of the sample `series` (name and labels exactly as exported).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

/// Polls `/metrics` until every `(series, value)` holds; panics with the text if not.
async fn wait_for_metrics(stack: &Stack, expected: &[(String, f64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics_text(stack).await;
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(series, value)| sample(&text, series) != Some(*value))
            .map(|(series, value)| {
                format!("{series}: want {value}, have {:?}", sample(&text, series))
            })
            .collect();
        if wrong.is_empty() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never matched:\n{}\n---\n{text}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every sample name `/metrics` can produce, from its `# TYPE` lines.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

/// Every `drover_*` name in a file (the dashboard's and the rules' queries).
fn used_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("drover_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let before = start.checked_sub(1).map(|b| bytes[b]);
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

fn repo_file(path: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (path, text)
}

#[tokio::test]
async fn metrics_count_a_known_mix_and_the_dashboards_use_only_exported_names() {
    let stack = Stack::start_with(StackOptions {
        coordinator_args: vec!["--monitor-interval-secs".into(), "1".into()],
        ..StackOptions::default()
    })
    .await;
    let server = stack.local_server().await;
    let ok = stack.playbook("ok", playbooks::OK).await;
    let flaky = stack.playbook("flaky", FLAKY_PLAYBOOK).await;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(stack.submit(ok, server, json!({})).await);
    }
    for _ in 0..2 {
        jobs.push(stack.submit(flaky, server, json!({"fail_it": true})).await);
    }
    let mut lines = 0;
    for job in &jobs {
        let done = stack.wait_finished(id(job), JOB_TIMEOUT).await;
        lines += done["total_lines"].as_u64().expect("total_lines");
    }
    assert!(lines > 0);

    let expected: Vec<(String, f64)> = [
        ("drover_jobs{status=\"success\"}", 3.0),
        ("drover_jobs{status=\"failed\"}", 2.0),
        ("drover_jobs{status=\"pending\"}", 0.0),
        ("drover_jobs{status=\"running\"}", 0.0),
        (
            "drover_jobs_finished_total{playbook=\"ok\",status=\"success\"}",
            3.0,
        ),
        (
            "drover_jobs_finished_total{playbook=\"flaky\",status=\"failed\"}",
            2.0,
        ),
        ("drover_job_duration_seconds_count{playbook=\"ok\"}", 3.0),
        ("drover_job_duration_seconds_count{playbook=\"flaky\"}", 2.0),
        ("drover_dispatch_latency_seconds_count", 5.0),
        ("drover_log_lines_ingested_total", lines as f64),
        ("drover_pending_jobs{pool=\"default\"}", 0.0),
        ("drover_running_jobs{pool=\"default\"}", 0.0),
        (
            "drover_playbook_consecutive_failures{playbook=\"flaky\"}",
            2.0,
        ),
        ("drover_playbook_consecutive_failures{playbook=\"ok\"}", 0.0),
        ("drover_agents_up{pool=\"default\"}", 1.0),
        ("drover_agent_slots{pool=\"default\"}", 4.0),
        ("drover_agent_slots_busy{pool=\"default\"}", 0.0),
        ("drover_nats_connected", 1.0),
        ("drover_alerts_firing{kind=\"consecutive_failures\"}", 0.0),
    ]
    .into_iter()
    .map(|(series, value)| (series.to_owned(), value))
    .collect();
    let text = wait_for_metrics(&stack, &expected).await;
    let sum =
        sample(&text, "drover_job_duration_seconds_sum{playbook=\"ok\"}").expect("a duration sum");
    assert!(sum > 0.0 && sum < 3.0 * 60.0, "{sum}");
    let ingest_lag = sample(&text, "drover_ingest_lag_seconds").expect("ingest lag");
    assert!((0.0..60.0).contains(&ingest_lag), "{ingest_lag}");

    // The dashboard and the alert rules only query what is exported. A series appears
    // once there is something to count: look while a job runs.
    let slow = stack.playbook("slow", SLOW_PLAYBOOK).await;
    let running = stack.submit(slow, server, json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = metrics_text(&stack).await;
        if sample(
            &text,
            "drover_running_job_longest_seconds{playbook=\"slow\"}",
        )
        .is_some()
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no running job in /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        sample(&text, "drover_running_jobs{pool=\"default\"}"),
        Some(1.0)
    );
    stack.wait_finished(id(&running), JOB_TIMEOUT).await;
    let exported = exported_names(&text);
    for file in [
        "dashboards/grafana/drover.json",
        "dashboards/prometheus/alerts.yml",
    ] {
        let (path, content) = repo_file(file);
        let used = used_names(&content);
        assert!(used.len() >= 5, "{} uses only {used:?}", path.display());
        let missing: Vec<&String> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{} uses metrics /metrics does not export: {missing:?}\nexported: {exported:?}",
            path.display()
        );
    }
    let (_, dashboard) = repo_file("dashboards/grafana/drover.json");
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
}

#[test]
fn alert_rules_pass_promtool() {
    let (path, _) = repo_file("dashboards/prometheus/alerts.yml");
    let output = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool runs (scripts/setup installs Debian's prometheus package)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{report}"
    );
    assert!(report.contains("SUCCESS: 6 rules found"), "{report}");
}

/// Polls `GET /alerts` until `check` holds for its body.
async fn wait_for_alerts(stack: &Stack, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = stack.get("/alerts").await;
        assert_eq!(status, 200, "{body}");
        if check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened; alerts: {body:#}; logs in {}",
            stack.dir.path().display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn has(list: &Value, kind: &str, subject: &str) -> bool {
    list.as_array().is_some_and(|alerts| {
        alerts
            .iter()
            .any(|a| a["kind"] == kind && a["subject"] == subject)
    })
}

async fn fires(stack: &Stack, kind: &str, subject: &str) {
    wait_for_alerts(stack, &format!("{kind} '{subject}' firing"), |b| {
        has(&b["firing"], kind, subject)
    })
    .await;
}

async fn clears(stack: &Stack, kind: &str, subject: &str) {
    wait_for_alerts(stack, &format!("{kind} '{subject}' resolved"), |b| {
        !has(&b["firing"], kind, subject) && has(&b["resolved"], kind, subject)
    })
    .await;
}

#[tokio::test]
async fn every_alert_fires_and_clears_on_its_condition() {
    let mut stack = Stack::start_with(StackOptions {
        coordinator_args: [
            "--monitor-interval-secs=1",
            "--agent-lease-secs=3",
            "--alert-failure-rate=0.5",
            "--alert-failure-min-jobs=3",
            "--alert-consecutive-failures=3",
            "--alert-long-running-factor=1",
            "--alert-long-running-min-secs=2",
            "--alert-backlog-jobs=2",
            "--alert-backlog-window-secs=2",
        ]
        .map(String::from)
        .to_vec(),
        // Heartbeats well inside the short lease.
        agent_args: vec!["--heartbeat-secs=1".into()],
        ..StackOptions::default()
    })
    .await;
    let nats = async_nats::connect(&stack.nats_url)
        .await
        .expect("nats connects");
    let mut subscription = nats.subscribe(ALERT_SUBJECTS).await.expect("subscribes");
    // A round trip, so the subscription is registered before any alert can fire.
    nats.flush().await.expect("flushes");
    let _ = nats.request("drover.test.ping", "".into()).await;
    let heard: Arc<Mutex<Vec<(String, AlertMessage)>>> = Arc::default();
    let recorder = heard.clone();
    tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            let alert = AlertMessage::decode(&message.payload).expect("an AlertMessage");
            recorder
                .lock()
                .expect("lock")
                .push((message.subject.to_string(), alert));
        }
    });

    let server = stack.local_server().await;
    let flaky = stack.playbook("flaky", FLAKY_PLAYBOOK).await;
    let slow = stack.playbook("slow", SLOW_PLAYBOOK).await;

    // Three failures in a row: the playbook's streak and the failure rate (3 of 3).
    for _ in 0..3 {
        let job = stack.submit(flaky, server, json!({"fail_it": true})).await;
        let done = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
        assert_eq!(done["status"], "failed", "{done}");
    }
    fires(&stack, "consecutive_failures", "flaky").await;
    fires(&stack, "failure_rate", "").await;
    // Three successes: the streak ends, and 3 of 6 is not above half.
    for _ in 0..3 {
        let job = stack.submit(flaky, server, json!({"fail_it": false})).await;
        let done = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
        assert_eq!(done["status"], "success", "{done}");
    }
    clears(&stack, "consecutive_failures", "flaky").await;
    clears(&stack, "failure_rate", "").await;

    // A job running past its expected time (at least 2 s here) until it ends.
    let job = stack.submit(slow, server, json!({})).await;
    let uuid = job["job_id"].as_str().expect("job_id").to_owned();
    fires(&stack, "long_running", &uuid).await;
    stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    clears(&stack, "long_running", &uuid).await;

    // A pool with a server and no agent, and its queue growing.
    let edge = stack
        .server(json!({"hostname": "edge-host", "ip_address": "127.0.0.1", "connection": "local", "pool": "edge-1"}))
        .await;
    let ok = stack.playbook("ok", playbooks::OK).await;
    fires(&stack, "no_agent", "edge-1").await;
    // Submit until the growing queue alerts (it needs 2 pending, more than 2 s before).
    let mut queued = Vec::new();
    while queued.len() < 10 {
        queued.push(stack.submit(ok, edge, json!({})).await);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (_, alerts) = stack.get("/alerts").await;
        if has(&alerts["firing"], "queue_backlog", "edge-1") {
            break;
        }
    }
    fires(&stack, "queue_backlog", "edge-1").await;
    stack.start_agent("edge-1", 4);
    for job in &queued {
        stack.wait_finished(id(job), JOB_TIMEOUT).await;
    }
    clears(&stack, "no_agent", "edge-1").await;
    clears(&stack, "queue_backlog", "edge-1").await;

    let body = wait_for_alerts(&stack, "nothing firing", |b| {
        b["firing"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert!(body["resolved"].as_array().is_some_and(|r| r.len() >= 5));

    // Each alert went out on its subject once firing and once resolved.
    let heard = heard.lock().expect("lock").clone();
    for (kind, about) in [
        ("consecutive_failures", "flaky"),
        ("failure_rate", ""),
        ("long_running", uuid.as_str()),
        ("no_agent", "edge-1"),
        ("queue_backlog", "edge-1"),
    ] {
        let states: Vec<AlertState> = heard
            .iter()
            .filter(|(subject, alert)| {
                *subject == format!("drover.alerts.{kind}")
                    && alert.kind.as_str() == kind
                    && alert.subject == about
            })
            .map(|(_, alert)| alert.state)
            .collect();
        assert_eq!(
            states,
            vec![AlertState::Firing, AlertState::Resolved],
            "{kind} '{about}': {heard:#?}"
        );
    }

    // Viewers may read alerts; without a token, nobody.
    let (status, _) = stack
        .request(reqwest::Method::GET, "/alerts", None, None)
        .await;
    assert_eq!(status, 401);
}
