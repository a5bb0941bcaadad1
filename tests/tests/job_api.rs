//! The spec's whole job API over real HTTP, with real agents and playbooks: every
//! endpoint for every role, bad input that writes nothing, cancel of pending and running
//! jobs (no process of the playbook left), retry, tickets, statistics, tokens, audit.

use drover_tests::{ADMIN_TOKEN, RequestBody, Stack, StackOptions, playbooks, processes_matching};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

fn id(value: &Value) -> u64 {
    value["id"].as_u64().expect("id")
}

async fn no_agent() -> Stack {
    Stack::start_with(StackOptions {
        agents: 0,
        ..StackOptions::default()
    })
    .await
}

/// Creates a user with `role` and logs in as it; returns the API token.
async fn user_token(stack: &Stack, username: &str, role: &str) -> String {
    let password = format!("{username}-password-123");
    let (status, body) = stack
        .post(
            "/users",
            json!({"username": username, "password": password, "role": role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    let (status, body) = stack
        .request(
            Method::POST,
            "/auth/token",
            None,
            Some(RequestBody::Json(
                json!({"username": username, "password": password}),
            )),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["role"], role);
    body["token"].as_str().expect("token").to_owned()
}

async fn call(
    stack: &Stack,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, body) = stack
        .request(method, path, Some(token), body.map(RequestBody::Json))
        .await;
    (status.as_u16(), body)
}

/// Total of a list endpoint, as its pagination says.
async fn total(stack: &Stack, path: &str) -> u64 {
    let (status, body) = stack.get(path).await;
    assert_eq!(status, 200, "{body}");
    body["pagination"]["total"].as_u64().expect("total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_for_every_role() {
    let stack = no_agent().await;
    let viewer = user_token(&stack, "vera", "viewer").await;
    let operator = user_token(&stack, "otto", "operator").await;
    let playbook = stack.playbook("p", playbooks::OK).await;
    let server = stack.local_server().await;
    // Jobs for the routes that act on one: pending ones can be cancelled, cancelled ones
    // retried and ticketed.
    let mut jobs = Vec::new();
    for _ in 0..8 {
        jobs.push(id(&stack.submit(playbook, server, json!({})).await));
    }
    for job in &jobs[..4] {
        let (status, body) = stack.post(&format!("/jobs/{job}/cancel"), json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    let yaml = json!({"name": "q", "content": playbooks::OK});
    let host =
        json!({"hostname": "h1", "ip_address": "10.0.0.1", "ssh_key_path": "web/id_ed25519"});
    // (method, path, body, least role, success status); per role a fresh target where the
    // call changes it.
    type Case = (Method, String, Option<Value>, &'static str, u16);
    let cases = |round: usize| -> Vec<Case> {
        vec![
            (Method::GET, "/jobs".into(), None, "viewer", 200),
            (Method::GET, "/jobs/statistics".into(), None, "viewer", 200),
            (
                Method::GET,
                format!("/jobs/{}", jobs[0]),
                None,
                "viewer",
                200,
            ),
            (
                Method::GET,
                format!("/jobs/{}/logs", jobs[0]),
                None,
                "viewer",
                200,
            ),
            (
                Method::GET,
                format!("/jobs/{}/events", jobs[0]),
                None,
                "viewer",
                200,
            ),
            (
                Method::GET,
                format!("/jobs/{}/hosts", jobs[0]),
                None,
                "viewer",
                200,
            ),
            (
                Method::POST,
                "/jobs".into(),
                Some(json!({"playbook_id": playbook, "server_id": server})),
                "operator",
                201,
            ),
            (
                Method::POST,
                format!("/jobs/{}/cancel", jobs[4 + round]),
                None,
                "operator",
                200,
            ),
            (
                Method::POST,
                format!("/jobs/{}/retry", jobs[round]),
                None,
                "operator",
                201,
            ),
            (
                Method::POST,
                format!("/jobs/{}/ticket", jobs[round]),
                Some(json!({"title": "t", "priority": "low"})),
                "operator",
                201,
            ),
            (Method::GET, "/playbooks".into(), None, "viewer", 200),
            (
                Method::GET,
                format!("/playbooks/{playbook}"),
                None,
                "viewer",
                200,
            ),
            (
                Method::POST,
                "/playbooks".into(),
                Some(yaml.clone()),
                "operator",
                201,
            ),
            (
                Method::PUT,
                format!("/playbooks/{playbook}"),
                Some(json!({"name": "p", "content": playbooks::OK})),
                "operator",
                200,
            ),
            (Method::GET, "/servers".into(), None, "viewer", 200),
            (
                Method::GET,
                format!("/servers/{server}"),
                None,
                "viewer",
                200,
            ),
            (
                Method::POST,
                "/servers".into(),
                Some(host.clone()),
                "operator",
                201,
            ),
            (Method::GET, "/tickets".into(), None, "viewer", 200),
            (Method::GET, "/users".into(), None, "admin", 200),
            (Method::GET, "/users/1".into(), None, "admin", 200),
            (
                Method::POST,
                "/users".into(),
                Some(
                    json!({"username": format!("new{round}"), "password": "long-enough-1", "role": "viewer"}),
                ),
                "admin",
                201,
            ),
            (Method::GET, "/audit".into(), None, "admin", 200),
        ]
    };
    let roles = [
        ("viewer", viewer.as_str()),
        ("operator", operator.as_str()),
        ("admin", ADMIN_TOKEN),
    ];
    let rank = |role: &str| {
        ["viewer", "operator", "admin"]
            .iter()
            .position(|r| *r == role)
    };
    for (round, (role, token)) in roles.iter().enumerate() {
        for (method, path, body, least, success) in cases(round) {
            let (status, answer) = call(&stack, method.clone(), &path, token, body).await;
            if rank(role) >= rank(least) {
                assert_eq!(status, success, "{role} {method} {path}: {answer}");
            } else {
                assert_eq!(status, 403, "{role} {method} {path}: {answer}");
                assert_eq!(answer["error"], "forbidden");
            }
        }
        // Deletes: admins only, on records no job uses.
        let (_, spare) = stack
            .post(
                "/playbooks",
                json!({"name": format!("spare{round}"), "content": playbooks::OK}),
            )
            .await;
        let (status, _) = call(
            &stack,
            Method::DELETE,
            &format!("/playbooks/{}", id(&spare)),
            token,
            None,
        )
        .await;
        assert_eq!(
            status,
            if *role == "admin" { 200 } else { 403 },
            "{role} deletes a playbook"
        );
        let (_, spare) = stack
            .post(
                "/servers",
                json!({"hostname": format!("spare{round}"), "ip_address": "10.0.0.9"}),
            )
            .await;
        let (status, _) = call(
            &stack,
            Method::DELETE,
            &format!("/servers/{}", id(&spare)),
            token,
            None,
        )
        .await;
        assert_eq!(
            status,
            if *role == "admin" { 200 } else { 403 },
            "{role} deletes a server"
        );
    }
    // A ticket made above is readable by everyone.
    let (status, ticket) = call(&stack, Method::GET, "/tickets/1", &viewer, None).await;
    assert_eq!(status, 200, "{ticket}");
    // No token at all: 401 everywhere but the login.
    for path in [
        "/jobs",
        "/jobs/statistics",
        "/playbooks",
        "/servers",
        "/tickets",
        "/users",
        "/audit",
    ] {
        let (status, body) = stack.request(Method::GET, path, None, None).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_status_and_writes_nothing() {
    let stack = no_agent().await;
    let playbook = stack.playbook("p", playbooks::OK).await;
    let server = stack.local_server().await;
    let pending = id(&stack.submit(playbook, server, json!({})).await);
    let audit_before = total(&stack, "/audit").await;
    let raw = |bytes: &[u8]| Some(RequestBody::Raw(bytes.to_vec()));
    let j = |value: Value| Some(RequestBody::Json(value));
    let cases: Vec<(Method, String, Option<RequestBody>, u16, &str)> = vec![
        (
            Method::POST,
            "/playbooks".into(),
            j(
                json!({"name": "y", "content": "- hosts: all\n  tasks:\n    - name: x\n     bad: [\n"}),
            ),
            422,
            "line 4, column",
        ),
        (
            Method::POST,
            "/playbooks".into(),
            j(json!({"name": "y", "content": "hosts: all"})),
            422,
            "list of plays",
        ),
        (
            Method::PUT,
            format!("/playbooks/{playbook}"),
            j(json!({"name": "y", "content": "- tasks: []"})),
            422,
            "no 'hosts'",
        ),
        (
            Method::PUT,
            "/playbooks/999".into(),
            j(json!({"name": "y", "content": playbooks::OK})),
            404,
            "playbook 999",
        ),
        (
            Method::PUT,
            format!("/servers/{server}"),
            j(
                json!({"hostname": "h", "ip_address": "127.0.0.1", "ssh_key_path": "../../etc/shadow"}),
            ),
            422,
            "ssh_key_path",
        ),
        (
            Method::PUT,
            format!("/servers/{server}"),
            j(
                json!({"hostname": "h", "ip_address": "127.0.0.1", "ssh_key_path": "/root/.ssh/id_rsa"}),
            ),
            422,
            "ssh_key_path",
        ),
        (
            Method::PUT,
            format!("/servers/{server}"),
            j(json!({"hostname": "h", "ip_address": "1.2.3"})),
            422,
            "ip_address",
        ),
        (
            Method::PUT,
            format!("/servers/{server}"),
            raw(b"{\"hostname\":"),
            400,
            "malformed",
        ),
        (
            Method::DELETE,
            format!("/playbooks/{playbook}"),
            None,
            409,
            "job",
        ),
        (
            Method::DELETE,
            format!("/servers/{server}"),
            None,
            409,
            "job",
        ),
        (Method::DELETE, "/servers/77".into(), None, 404, "server 77"),
        (
            Method::POST,
            "/jobs/999/cancel".into(),
            None,
            404,
            "job 999",
        ),
        (Method::POST, "/jobs/999/retry".into(), None, 404, "job 999"),
        (
            Method::POST,
            format!("/jobs/{pending}/retry"),
            None,
            409,
            "pending",
        ),
        (
            Method::POST,
            format!("/jobs/{pending}/ticket"),
            j(json!({"title": "t"})),
            409,
            "pending",
        ),
        (
            Method::POST,
            format!("/jobs/{pending}/ticket"),
            j(json!({"title": "t", "priority": "urgent"})),
            422,
            "priority",
        ),
        (
            Method::POST,
            format!("/jobs/{pending}/ticket"),
            j(json!({"title": ""})),
            422,
            "title",
        ),
        (
            Method::POST,
            format!("/jobs/{pending}/ticket"),
            j(json!({"title": "t", "severity": 1})),
            422,
            "severity",
        ),
        (
            Method::POST,
            "/jobs".into(),
            j(
                json!({"playbook_id": playbook, "server_id": server, "extra_vars": {"x": "y".repeat(70_000)}}),
            ),
            413,
            "extra_vars",
        ),
        (
            Method::POST,
            "/users".into(),
            j(json!({"username": "admin", "password": "long-enough-1", "role": "viewer"})),
            409,
            "already exists",
        ),
        (
            Method::POST,
            "/users".into(),
            j(json!({"username": "a b", "password": "long-enough-1", "role": "viewer"})),
            422,
            "username",
        ),
        (
            Method::POST,
            "/users".into(),
            j(json!({"username": "ann", "password": "short", "role": "viewer"})),
            422,
            "password",
        ),
        (
            Method::POST,
            "/users".into(),
            j(json!({"username": "ann", "password": "long-enough-1", "role": "root"})),
            422,
            "role",
        ),
        (Method::GET, "/jobs?page=0".into(), None, 422, "page"),
        (
            Method::GET,
            "/jobs?per_page=1000".into(),
            None,
            422,
            "per_page",
        ),
        (Method::GET, "/jobs?page=abc".into(), None, 400, "page"),
        (
            Method::GET,
            "/jobs?status=exploded".into(),
            None,
            400,
            "status",
        ),
        (
            Method::GET,
            "/jobs?created_after=yesterday".into(),
            None,
            400,
            "created_after",
        ),
        (Method::GET, "/tickets/1".into(), None, 404, "ticket"),
        (Method::GET, "/users/99".into(), None, 404, "user"),
        (Method::GET, "/playbooks/x".into(), None, 404, "playbook"),
        (
            Method::DELETE,
            "/auth/tokens/999".into(),
            None,
            404,
            "token 999",
        ),
    ];
    for (method, path, body, expected, mention) in cases {
        let (status, answer) = stack
            .request(method.clone(), &path, Some(ADMIN_TOKEN), body)
            .await;
        assert_eq!(status.as_u16(), expected, "{method} {path}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(mention),
            "{method} {path}: '{detail}' should mention '{mention}'"
        );
    }
    // Nothing above changed anything: the same records, the same job, the same trail.
    assert_eq!(total(&stack, "/playbooks").await, 1);
    assert_eq!(total(&stack, "/servers").await, 1);
    assert_eq!(total(&stack, "/jobs").await, 1);
    assert_eq!(total(&stack, "/tickets").await, 0);
    assert_eq!(total(&stack, "/users").await, 1);
    assert_eq!(total(&stack, "/audit").await, audit_before);
    let (_, job) = stack.get(&format!("/jobs/{pending}")).await;
    assert_eq!(job["status"], "pending");
    let (_, stored) = stack.get(&format!("/servers/{server}")).await;
    assert_eq!(stored["hostname"], "web-server-01");
    // Wrong passwords and unknown users get the same 401.
    for login in [
        json!({"username": "admin", "password": "nope-nope-nope"}),
        json!({"username": "ghost", "password": "nope-nope-nope"}),
    ] {
        let (status, body) = stack
            .request(
                Method::POST,
                "/auth/token",
                None,
                Some(RequestBody::Json(login)),
            )
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["detail"], "invalid username or password");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_pending_job_never_starts() {
    let mut stack = no_agent().await;
    let playbook = stack.playbook("p", playbooks::OK).await;
    let server = stack.local_server().await;
    let job = id(&stack.submit(playbook, server, json!({})).await);
    let (status, body) = stack.post(&format!("/jobs/{job}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["message"], "Job cancelled successfully");
    let (status, body) = stack.post(&format!("/jobs/{job}/cancel"), json!({})).await;
    assert_eq!(status, 409, "a finished job cannot be cancelled: {body}");
    // An agent arrives and takes the queue: the cancelled job is refused, a new one runs.
    stack.start_agent("default", 2);
    let after = id(&stack.submit(playbook, server, json!({})).await);
    let finished = stack.wait_finished(after, JOB_TIMEOUT).await;
    assert_eq!(finished["status"], "success", "{finished}");
    let (_, cancelled) = stack.get(&format!("/jobs/{job}")).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["exit_code"], 99);
    assert!(
        cancelled["started_at"].is_null() && cancelled["agent_id"].is_null(),
        "{cancelled}"
    );
    assert_eq!(cancelled["total_lines"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_leaves_no_process_behind() {
    let stack = Stack::start().await;
    // A number no other process on the machine has in its command line.
    let marker = format!("{}", 3_000_000 + std::process::id());
    let playbook = stack
        .playbook(
            "sleeper",
            &format!(
                "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Before\n      debug:\n        msg: started\n    - name: Sleep\n      command: sleep {marker}\n"
            ),
        )
        .await;
    let server = stack.local_server().await;
    let operator = user_token(&stack, "otto", "operator").await;
    let job = id(&stack.submit(playbook, server, json!({})).await);
    let needle = format!("sleep {marker}");
    let deadline = Instant::now() + JOB_TIMEOUT;
    while processes_matching(&needle).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the playbook's sleep never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asked = Instant::now();
    let (status, body) = call(
        &stack,
        Method::POST,
        &format!("/jobs/{job}/cancel"),
        &operator,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    while !processes_matching(&needle).is_empty() {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "sleep still running 5 s after the cancel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = stack.wait_finished(job, JOB_TIMEOUT).await;
    assert_eq!(finished["status"], "cancelled");
    assert_eq!(finished["exit_code"], 99);
    assert_eq!(finished["error"], "cancelled by otto");
    assert!(finished["cancel_requested_by"].is_null());
    // The lines printed before the cancel are all there.
    let lines = stack.all_logs(job).await;
    assert!(lines.iter().any(|l| {
        l["content"]
            .as_str()
            .is_some_and(|c| c.contains("TASK [Sleep]"))
    }));
    assert_eq!(finished["total_lines"].as_u64(), Some(lines.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_ticket_statistics_and_audit_after_a_known_mix() {
    let stack = Stack::start().await;
    let ok = stack.playbook("Deploy Application", playbooks::OK).await;
    let bad = stack.playbook("Break Things", playbooks::FAILING).await;
    let server = stack.local_server().await;
    let operator = user_token(&stack, "otto", "operator").await;
    let mut finished = Vec::new();
    for (playbook, vars) in [
        (ok, json!({})),
        (ok, json!({})),
        (bad, json!({"db_password": "hunter2"})),
    ] {
        let job = id(&stack.submit(playbook, server, vars).await);
        finished.push(stack.wait_finished(job, JOB_TIMEOUT).await);
    }
    let failed = &finished[2];
    assert_eq!(failed["status"], "failed", "{failed}");

    // Retry: a new job of the same playbook, server and vars, by the caller.
    let (status, retry) = call(
        &stack,
        Method::POST,
        &format!("/jobs/{}/retry", id(failed)),
        &operator,
        None,
    )
    .await;
    assert_eq!(status, 201, "{retry}");
    assert_eq!(retry["retry_of"], id(failed));
    assert_eq!(retry["user"]["username"], "otto");
    assert_eq!(retry["extra_vars"], json!({"db_password": "hunter2"}));
    assert_eq!(retry["playbook"]["id"], bad);
    let retried = stack.wait_finished(id(&retry), JOB_TIMEOUT).await;
    assert_eq!(retried["status"], "failed");

    // Ticket: carries the failure, once per job.
    let (status, ticket) = call(
        &stack,
        Method::POST,
        &format!("/jobs/{}/ticket", id(failed)),
        &operator,
        Some(json!({"title": "Deployment failed on web-server-01", "description": "look", "priority": "high"})),
    )
    .await;
    assert_eq!(status, 201, "{ticket}");
    assert_eq!(ticket["priority"], "high");
    assert_eq!(ticket["job_id"], id(failed));
    assert_eq!(ticket["failure_summary"]["exit_code"], 1);
    assert_eq!(ticket["failure_summary"]["playbook"], "Break Things");
    assert!(
        ticket["failure_summary"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Service not found")),
        "{ticket}"
    );
    assert_eq!(
        ticket["failure_summary"]["failed_hosts"],
        json!(["web-server-01"])
    );
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/jobs/{}/ticket", id(failed)),
        &operator,
        Some(json!({"title": "again"})),
    )
    .await;
    assert_eq!(status, 409);
    let (_, listed) = stack.get("/tickets").await;
    assert_eq!(listed["items"][0]["id"], ticket["id"]);

    // One pending job cancelled.
    let cancelled = id(&stack.submit(ok, server, json!({})).await);
    let (status, _) = stack
        .post(&format!("/jobs/{cancelled}/cancel"), json!({}))
        .await;
    assert!(
        status == 200 || status == 409,
        "cancelled, or it finished first"
    );

    let (_, stats) = stack.get("/jobs/statistics").await;
    let (_, cancelled_job) = stack.get(&format!("/jobs/{cancelled}")).await;
    let last_ok = cancelled_job["status"] == "success";
    let success = 2 + u64::from(last_ok);
    let total = 5;
    assert_eq!(stats["total"], total, "{stats}");
    assert_eq!(stats["success"], success);
    assert_eq!(stats["failed"], 2);
    assert_eq!(stats["cancelled"], 1 - u64::from(last_ok));
    assert_eq!(stats["pending"], 0);
    assert_eq!(stats["running"], 0);
    let rate = ((success as f64 / total as f64) * 10000.0).round() / 100.0;
    assert_eq!(stats["success_rate"].as_f64(), Some(rate));
    // The average duration is the mean of the finished jobs' own durations.
    let mut durations = Vec::new();
    for job in [
        id(&finished[0]),
        id(&finished[1]),
        id(failed),
        id(&retry),
        cancelled,
    ] {
        let (_, job) = stack.get(&format!("/jobs/{job}")).await;
        if let Some(d) = job["duration"].as_f64() {
            durations.push(d);
        }
    }
    let mean = durations.iter().sum::<f64>() / durations.len() as f64;
    let average = stats["average_duration"].as_f64().expect("average");
    assert!((average - mean).abs() < 0.02, "{average} vs {mean}");
    let by: Vec<(u64, u64, u64, u64)> = stats["by_playbook"]
        .as_array()
        .expect("by_playbook")
        .iter()
        .map(|p| {
            (
                p["playbook_id"].as_u64().unwrap_or(0),
                p["total"].as_u64().unwrap_or(0),
                p["success"].as_u64().unwrap_or(0),
                p["failed"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(by, vec![(ok, 3, success, 0), (bad, 2, 0, 2)]);
    assert_eq!(
        stats["by_playbook"][0]["playbook_name"],
        "Deploy Application"
    );
    let failures = stats["recent_failures"]
        .as_array()
        .expect("recent_failures");
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0]["job_id"], id(&retry));
    assert_eq!(failures[0]["playbook"], "Break Things");
    assert_eq!(failures[0]["server"], "web-server-01");
    assert!(
        failures[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Service not found"))
    );
    assert!(failures[0]["failed_at"].is_string());
    let (_, mine) = stack.get("/jobs/statistics?user_id=2").await;
    assert_eq!(mine["total"], 1, "otto's retry only: {mine}");

    // The list: filters and pages over what ran.
    let (_, list) = stack
        .get(&format!("/jobs?status=failed&playbook_id={bad}&per_page=1"))
        .await;
    assert_eq!(
        list["pagination"],
        json!({"page": 1, "per_page": 1, "total": 2, "pages": 2})
    );
    assert_eq!(list["items"][0]["id"], id(&retry));
    let (_, list) = stack.get("/jobs?user_id=2").await;
    assert_eq!(list["pagination"]["total"], 1);

    // Audit: who did what, secrets redacted; filtered by user.
    let (_, trail) = stack.get("/audit?per_page=100").await;
    let entries = trail["items"].as_array().expect("items");
    let job_posts: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "POST /jobs")
        .collect();
    assert_eq!(job_posts.len(), 4);
    assert!(
        job_posts
            .iter()
            .any(|e| e["parameters"]["extra_vars"]["db_password"] == "[redacted]")
    );
    assert!(
        !trail.to_string().contains("hunter2"),
        "no secret in the trail"
    );
    assert!(!trail.to_string().contains("otto-password-123"));
    let (_, otto) = stack.get("/audit?user_id=2").await;
    let actions: Vec<&str> = otto["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        vec![
            "POST /jobs/{id}/ticket",
            "POST /jobs/{id}/retry",
            "POST /auth/token"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_can_be_revoked_and_viewers_see_no_key_paths() {
    let stack = no_agent().await;
    let viewer = user_token(&stack, "vera", "viewer").await;
    let server = stack
        .server(json!({"hostname": "db-01", "ip_address": "10.1.1.1", "ssh_key_path": "prod/db/id_ed25519"}))
        .await;
    let (_, as_viewer) = call(
        &stack,
        Method::GET,
        &format!("/servers/{server}"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(as_viewer["ssh_key_path"], "id_ed25519");
    let (_, listed) = call(&stack, Method::GET, "/servers", &viewer, None).await;
    assert!(!listed.to_string().contains("prod/db"), "{listed}");
    let (_, as_admin) = stack.get(&format!("/servers/{server}")).await;
    assert_eq!(as_admin["ssh_key_path"], "prod/db/id_ed25519");

    // A second token of the viewer; the viewer revokes the first (logs out).
    let (_, second) = stack
        .request(
            Method::POST,
            "/auth/token",
            None,
            Some(RequestBody::Json(
                json!({"username": "vera", "password": "vera-password-123"}),
            )),
        )
        .await;
    let second_token = second["token"].as_str().expect("token").to_owned();
    let (status, _) = call(&stack, Method::DELETE, "/auth/token", &viewer, None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&stack, Method::GET, "/jobs", &viewer, None).await;
    assert_eq!(status, 401, "a revoked token logs nobody in");
    let (status, _) = call(&stack, Method::GET, "/jobs", &second_token, None).await;
    assert_eq!(status, 200, "the other token still works");
    // A viewer cannot revoke someone else's token; an admin can revoke anyone's.
    let (status, _) = call(
        &stack,
        Method::DELETE,
        "/auth/tokens/1",
        &second_token,
        None,
    )
    .await;
    assert_eq!(status, 403, "token 1 is the admin's");
    let (status, _) = stack
        .request(
            Method::DELETE,
            &format!("/auth/tokens/{}", second["token_id"]),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = call(&stack, Method::GET, "/jobs", &second_token, None).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route() {
    let stack = no_agent().await;
    let (status, document) = stack
        .request(Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let paths = document["paths"].as_object().expect("paths");
    for (method, path) in [
        ("get", "/jobs"),
        ("post", "/jobs"),
        ("get", "/jobs/{id}"),
        ("post", "/jobs/{id}/cancel"),
        ("get", "/jobs/{id}/logs"),
        ("post", "/jobs/{id}/retry"),
        ("post", "/jobs/{id}/ticket"),
        ("get", "/jobs/statistics"),
        ("post", "/users"),
        ("post", "/auth/token"),
        ("get", "/audit"),
        ("delete", "/playbooks/{id}"),
        ("put", "/servers/{id}"),
        ("get", "/tickets/{id}"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is documented"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_cancels_retries_and_logs_in() {
    use drover_tests::watchers::drover_cli;
    let stack = no_agent().await;
    let playbook = stack.playbook("p", playbooks::OK).await;
    let server = stack.local_server().await;
    let job = id(&stack.submit(playbook, server, json!({})).await);
    let (out, code) = drover_cli(&stack, &["cancel", &job.to_string()]).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "cancelled: Job cancelled successfully");
    let (out, code) = drover_cli(&stack, &["retry", &job.to_string()]).await;
    assert_eq!(code, 0);
    let retry: u64 = out.trim().parse().expect("the new job's id");
    let (out, code) = drover_cli(&stack, &["jobs", "--status", "cancelled"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(&format!("{job}\tcancelled\t99\tp\tweb-server-01")),
        "{out}"
    );
    let (out, _) = drover_cli(&stack, &["jobs"]).await;
    let ids: Vec<&str> = out.lines().filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(ids, vec![retry.to_string(), job.to_string()]);
    let (_, code) = drover_cli(&stack, &["cancel", &job.to_string()]).await;
    assert_eq!(code, 1, "a finished job cannot be cancelled");

    user_token(&stack, "vera", "viewer").await;
    let (out, code) = drover_cli(
        &stack,
        &[
            "login",
            "--username",
            "vera",
            "--password",
            "vera-password-123",
        ],
    )
    .await;
    assert_eq!(code, 0);
    let (status, _) = call(&stack, Method::GET, "/jobs", out.trim(), None).await;
    assert_eq!(status, 200, "the printed token works");
}
