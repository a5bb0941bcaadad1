//! Live monitoring: every line, in order, exactly once, to every kind of watcher — the
//! API's pages, SSE, WebSocket and `drover tail` over HTTP and over NATS — with no seam
//! between a snapshot and the live stream, and a slow WebSocket client cut off alone.

use drover_tests::Stack;
use drover_tests::watchers::{
    WATCH_TIMEOUT, cli_lines, drover_cli, sse_events, ws_connect, ws_follow, ws_send,
};
use serde_json::{Value, json};
use std::time::Duration;

/// Prints `count` numbered lines through one debug task (one ansible event).
fn lines_playbook(count: u64) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: seq -f 'drover-line-%g' 1 {count}\n      register: out\n    - debug:\n        var: out.stdout_lines\n"
    )
}

/// Twenty short tasks: a job that prints lines for several seconds. (A loop would not
/// do: Ansible reports its items together.)
fn slow_playbook() -> String {
    let mut playbook = String::from("- hosts: all\n  gather_facts: false\n  tasks:\n");
    for step in 1..=20 {
        playbook.push_str(&format!(
            "    - name: step {step}\n      command: sleep 0.3\n"
        ));
    }
    playbook
}

fn id(job: &Value) -> u64 {
    job["id"].as_u64().expect("job id")
}

/// `(line_number, content)` pairs of API log lines or SSE/WS log messages.
fn numbered(lines: &[Value]) -> Vec<(u64, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l["line_number"].as_u64().expect("line_number"),
                l["content"].as_str().expect("content").to_owned(),
            )
        })
        .collect()
}

fn assert_whole(seen: &[(u64, String)], total: u64, who: &str) {
    let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers.len() as u64,
        total,
        "{who} saw {} lines of {total}",
        numbers.len()
    );
    assert!(
        numbers.iter().copied().eq(1..=total),
        "{who} saw lines out of order or twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_watcher_sees_every_line_once_in_order() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    let playbook = stack
        .playbook("ten thousand lines", &lines_playbook(12_000))
        .await;
    let job = stack.submit(playbook, server, json!({})).await;
    let job_id = id(&job);
    let uuid = job["job_id"].as_str().expect("uuid").to_owned();
    let nats = stack.nats_url.clone();
    let job_arg = job_id.to_string();

    // All watchers start before the first line and follow the job live.
    let (sse, ws, http_tail, nats_tail) = tokio::join!(
        sse_events(&stack, job_id, None),
        ws_follow(&stack, job_id),
        drover_cli(&stack, &["tail", &job_arg]),
        drover_cli(&stack, &["tail", &uuid, "--nats", &nats]),
    );
    let finished = stack.wait_finished(job_id, WATCH_TIMEOUT).await;
    assert_eq!(finished["status"], "success", "{finished}");
    let total = finished["total_lines"].as_u64().expect("total");
    assert!(total >= 12_000, "{total}");

    let api = numbered(&stack.all_logs(job_id).await);
    assert_whole(&api, total, "the API pages");
    assert!(api.iter().any(|(_, c)| c.contains("drover-line-12000")));

    let sse_lines: Vec<Value> = sse
        .iter()
        .filter(|e| e.event == "log")
        .map(|e| e.data.clone())
        .collect();
    let sse_seen = numbered(&sse_lines);
    assert_eq!(sse_seen, api, "SSE saw the same lines as the API");
    for event in sse.iter().filter(|e| e.event == "log") {
        assert_eq!(
            event.id.as_deref(),
            Some(event.data["line_number"].to_string().as_str())
        );
    }
    let last = sse.last().expect("events");
    assert_eq!(last.event, "end");
    assert_eq!(last.data["status"], "success");
    assert!(
        sse.iter()
            .any(|e| e.event == "status" && e.data["status"] == "running")
    );

    let (ws_lines, ws_end) = ws;
    assert_eq!(numbered(&ws_lines), api, "the WebSocket saw the same lines");
    assert_eq!(ws_end["status"], "success");

    for (who, (stdout, code)) in [
        ("drover tail", http_tail),
        ("drover tail --nats", nats_tail),
    ] {
        assert_eq!(code, 0, "{who} exits with the job's code");
        assert_eq!(cli_lines(&stdout), api, "{who} printed the same lines");
        assert!(
            stdout
                .lines()
                .last()
                .unwrap_or("")
                .contains(&format!("job {uuid} success: exit code 0")),
            "{who}: {}",
            stdout.lines().last().unwrap_or("")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_has_no_seam() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    let playbook = stack.playbook("slow", &slow_playbook()).await;
    let job = stack.submit(playbook, server, json!({})).await;
    let job_id = id(&job);

    // A stream that starts before the first line.
    let early = sse_events(&stack, job_id, None);
    let snapshots = async {
        let mut unions = Vec::new();
        // First as soon as the job has printed something, then twice more while it runs.
        let deadline = std::time::Instant::now() + WATCH_TIMEOUT;
        while stack.all_logs(job_id).await.len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the job printed nothing"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for wait_ms in [0u64, 1500, 1500] {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            // Read what is stored now, then follow from its last line.
            let snapshot = numbered(&stack.all_logs(job_id).await);
            let last = snapshot.last().map_or(0, |(n, _)| *n);
            let rest: Vec<Value> = sse_events(&stack, job_id, Some(last))
                .await
                .into_iter()
                .filter(|e| e.event == "log")
                .map(|e| e.data)
                .collect();
            let mut union = snapshot.clone();
            union.extend(numbered(&rest));
            unions.push((last, union));
        }
        unions
    };
    let (early, unions) = tokio::join!(early, snapshots);
    let finished = stack.wait_finished(job_id, WATCH_TIMEOUT).await;
    assert_eq!(finished["status"], "success", "{finished}");
    let total = finished["total_lines"].as_u64().expect("total");
    let whole = numbered(&stack.all_logs(job_id).await);
    assert_whole(&whole, total, "the API");

    let early: Vec<Value> = early
        .into_iter()
        .filter(|e| e.event == "log")
        .map(|e| e.data)
        .collect();
    assert_eq!(
        numbered(&early),
        whole,
        "a stream from before the first line"
    );
    assert!(
        unions.iter().any(|(last, _)| *last > 0 && *last < total),
        "at least one snapshot was taken mid-job: {:?}",
        unions.iter().map(|(l, _)| l).collect::<Vec<_>>()
    );
    for (last, union) in unions {
        assert_eq!(union, whole, "snapshot to line {last} then stream");
    }
    // A stream that starts after the last line ends at once with the final status.
    let after_end = sse_events(&stack, job_id, Some(total)).await;
    assert!(after_end.iter().all(|e| e.event != "log"));
    assert_eq!(after_end.last().map(|e| e.event.as_str()), Some("end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_log_is_stored_whole_and_a_slow_websocket_client_is_cut_off_alone() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    let big = stack.playbook("100k lines", &lines_playbook(100_000)).await;
    let job = stack.submit(big, server, json!({})).await;
    let big_job = stack.wait_finished(id(&job), WATCH_TIMEOUT).await;
    assert_eq!(big_job["status"], "success", "{big_job}");
    let total = big_job["total_lines"].as_u64().expect("total");
    assert!(total >= 100_000, "{total}");

    // Any page of the large log, e.g. deep inside it.
    let (status, page) = stack
        .get(&format!(
            "/jobs/{}/logs?start_line=90000&limit=3",
            id(&big_job)
        ))
        .await;
    assert_eq!(status, 200);
    let numbers: Vec<u64> = page["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|l| l["line_number"].as_u64().expect("n"))
        .collect();
    assert_eq!(numbers, [90_001, 90_002, 90_003]);

    // A client that subscribes to the whole log and never reads.
    let mut slow = ws_connect(&stack).await;
    ws_send(
        &mut slow,
        json!({"action": "subscribe", "jobs": [id(&big_job)]}),
    )
    .await;
    let rss_before = stack.coordinator_rss_kb();

    // Meanwhile a normal client reads the whole log, and a new job runs to the end.
    let (normal, small_job) = tokio::join!(ws_follow(&stack, id(&big_job)), async {
        let small = stack.playbook("small", &lines_playbook(10)).await;
        let job = stack.submit(small, server, json!({})).await;
        stack.wait_finished(id(&job), WATCH_TIMEOUT).await
    });
    assert_eq!(
        normal.0.len() as u64,
        total,
        "the normal client got every line"
    );
    assert_eq!(
        small_job["status"], "success",
        "ingestion went on: {small_job}"
    );

    // The slow client is told why it was dropped.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = 0u64;
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(30), futures::StreamExt::next(&mut slow))
            .await
        {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => {
                break frame.map(|f| f.reason.to_string()).unwrap_or_default();
            }
            Ok(Some(Ok(_))) => received += 1,
            Ok(Some(Err(e))) => panic!("slow client saw an error instead of a close frame: {e}"),
            Ok(None) => panic!("slow client closed without a reason"),
            Err(_) => panic!("slow client was never disconnected ({received} messages)"),
        }
    };
    assert!(reason.contains("too slow"), "{reason}");
    assert!(
        received < total,
        "it was cut off before the end ({received} messages)"
    );

    // Memory does not grow with the log: streaming 100k lines twice cost little.
    let rss_after = stack.coordinator_rss_kb();
    assert!(
        rss_after < rss_before + 100 * 1024,
        "coordinator RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_recap_names_the_failing_host() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    // A second host joins through add_host; only it fails.
    let playbook = stack
        .playbook(
            "two hosts",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - add_host:\n        name: web-server-02\n        ansible_connection: local\n        ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n- hosts: all:web-server-02\n  gather_facts: false\n  tasks:\n    - command: /bin/true\n    - fail:\n        msg: broken host\n      when: inventory_hostname == 'web-server-02'\n    - debug:\n        msg: still here\n",
        )
        .await;
    let job = stack.submit(playbook, server, json!({})).await;
    let job = stack.wait_finished(id(&job), WATCH_TIMEOUT).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["exit_code"], 1);
    assert_eq!(job["failed_hosts"], json!(["web-server-02"]));

    let (status, hosts) = stack.get(&format!("/jobs/{}/hosts", id(&job))).await;
    assert_eq!(status, 200);
    let hosts = hosts["hosts"].as_array().expect("hosts").clone();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    let host = |name: &str| {
        hosts
            .iter()
            .find(|h| h["host"] == name)
            .cloned()
            .expect("host")
    };
    let good = host("web-server-01");
    let bad = host("web-server-02");
    assert_eq!(
        (good["failed"].as_u64(), good["ok"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(bad["failed"], 1);
    assert_eq!(bad["unreachable"], 0);

    let (status, events) = stack
        .get(&format!("/jobs/{}/events?limit=1000", id(&job)))
        .await;
    assert_eq!(status, 200);
    let events = events["events"].as_array().expect("events").clone();
    let failed: Vec<&Value> = events.iter().filter(|e| e["failed"] == true).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["host"], "web-server-02");
    assert_eq!(failed[0]["event"], "runner_on_failed");
    let counters: Vec<u64> = events
        .iter()
        .map(|e| e["counter"].as_u64().expect("counter"))
        .collect();
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "events in order");
    let (_, first_page) = stack
        .get(&format!("/jobs/{}/events?limit=2", id(&job)))
        .await;
    assert_eq!(first_page["returned_events"], 2);
    assert_eq!(first_page["has_more"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drover_tail_over_http_and_nats_agree_and_exit_with_the_jobs_code() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    let playbook = stack
        .playbook("fails", "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: before\n    - fail:\n        msg: on purpose\n")
        .await;
    let job = stack.submit(playbook, server, json!({})).await;
    let uuid = job["job_id"].as_str().expect("uuid").to_owned();
    let job_arg = id(&job).to_string();
    let nats = stack.nats_url.clone();
    let (http, over_nats) = tokio::join!(
        drover_cli(&stack, &["tail", &job_arg]),
        drover_cli(&stack, &["tail", &job_arg, "--nats", &nats]),
    );
    assert_eq!(http.1, 1, "{}", http.0);
    assert_eq!(over_nats.1, 1, "{}", over_nats.0);
    assert_eq!(http.0, over_nats.0, "both print the same text");
    assert!(http.0.contains("on purpose"));
    assert!(
        http.0
            .lines()
            .last()
            .unwrap_or("")
            .starts_with(&format!("job {uuid} failed: exit code 1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_choose_and_change_what_they_receive() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    let playbook = stack.playbook("short", &lines_playbook(3)).await;
    let mut socket = ws_connect(&stack).await;

    ws_send(&mut socket, json!({"action": "subscribe", "jobs": [999]})).await;
    let refused = drover_tests::watchers::ws_next(&mut socket)
        .await
        .expect("reply");
    assert_eq!(refused["type"], "error");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or("")
            .contains("job 999 not found")
    );
    ws_send(
        &mut socket,
        json!({"action": "subscribe", "statuses": true}),
    )
    .await;
    let subscribed = drover_tests::watchers::ws_next(&mut socket)
        .await
        .expect("reply");
    assert_eq!(
        subscribed,
        json!({"type": "subscribed", "statuses": true, "jobs": []})
    );

    // Every status of a new job arrives, without asking for the job by id.
    let job = stack.submit(playbook, server, json!({})).await;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("success") {
        let message =
            tokio::time::timeout(WATCH_TIMEOUT, drover_tests::watchers::ws_next(&mut socket))
                .await
                .expect("statuses arrive")
                .expect("socket open");
        if message["type"] == "status" && message["job_id"] == job["id"] {
            seen.push(message["status"].as_str().unwrap_or("").to_owned());
        }
    }
    assert_eq!(seen, ["pending", "running", "success"]);

    // Unsubscribed, the client hears nothing of the next job.
    ws_send(
        &mut socket,
        json!({"action": "unsubscribe", "statuses": true}),
    )
    .await;
    let unsubscribed = drover_tests::watchers::ws_next(&mut socket)
        .await
        .expect("reply");
    assert_eq!(
        unsubscribed,
        json!({"type": "subscribed", "statuses": false, "jobs": []})
    );
    let next = stack.submit(playbook, server, json!({})).await;
    stack.wait_finished(id(&next), WATCH_TIMEOUT).await;
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        drover_tests::watchers::ws_next(&mut socket),
    )
    .await;
    assert!(quiet.is_err(), "no message after unsubscribing: {quiet:?}");

    // Garbage is answered with an error, and the connection stays usable.
    ws_send(&mut socket, json!({"action": "dance"})).await;
    let error = drover_tests::watchers::ws_next(&mut socket)
        .await
        .expect("reply");
    assert_eq!(error["type"], "error");
}
