//! Bad input gets a clear 4xx with `{"error", "detail"}` and writes nothing.

use drover_tests::{ADMIN_TOKEN, RequestBody, Stack, StackOptions};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn stack() -> Stack {
    // No agent: these tests never run a playbook.
    Stack::start_with(StackOptions {
        agents: 0,
        ..StackOptions::default()
    })
    .await
}

fn assert_error(status: reqwest::StatusCode, body: &Value, expected: u16, kind: &str) {
    assert_eq!(status.as_u16(), expected, "{body}");
    assert_eq!(body["error"], kind, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a detail says what is wrong: {body}"
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let stack = stack().await;
    let (status, body) = stack.request(Method::GET, "/jobs/1", None, None).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = stack
        .request(
            Method::GET,
            "/jobs/1",
            Some("not-a-real-token-at-all"),
            None,
        )
        .await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = stack
        .request(
            Method::POST,
            "/playbooks",
            Some("wrong-token-0123456789"),
            Some(RequestBody::Json(
                json!({"name": "x", "content": "- hosts: all\n"}),
            )),
        )
        .await;
    assert_error(status, &body, 401, "unauthorized");
    // Nothing was created by the refused request: the first playbook gets id 1.
    assert_eq!(stack.playbook("first", "- hosts: all\n").await, 1);
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_refused_and_write_nothing() {
    let stack = stack().await;
    let raw = |bytes: &[u8]| Some(RequestBody::Raw(bytes.to_vec()));
    let cases: Vec<(&str, Option<RequestBody>, u16, &str)> = vec![
        ("/playbooks", raw(b"{not json"), 400, "bad_request"),
        ("/playbooks", raw(b""), 400, "bad_request"),
        (
            "/playbooks",
            Some(RequestBody::Json(json!({"name": "x"}))),
            422,
            "invalid",
        ),
        (
            "/playbooks",
            Some(RequestBody::Json(
                json!({"name": "x", "content": "a", "owner": "me"}),
            )),
            422,
            "invalid",
        ),
        (
            "/playbooks",
            Some(RequestBody::Json(json!({"name": " ", "content": "a"}))),
            422,
            "invalid",
        ),
        (
            "/servers",
            Some(RequestBody::Json(
                json!({"hostname": "bad host", "ip_address": "127.0.0.1"}),
            )),
            422,
            "invalid",
        ),
        (
            "/servers",
            Some(RequestBody::Json(
                json!({"hostname": "h", "ip_address": "999.1.1.1"}),
            )),
            422,
            "invalid",
        ),
        (
            "/servers",
            Some(RequestBody::Json(
                json!({"hostname": "h", "ip_address": "127.0.0.1", "ssh_port": 70000}),
            )),
            422,
            "invalid",
        ),
        (
            "/servers",
            Some(RequestBody::Json(
                json!({"hostname": "h", "ip_address": "127.0.0.1", "ssh_key_path": "../../etc/shadow"}),
            )),
            422,
            "invalid",
        ),
        (
            "/servers",
            Some(RequestBody::Json(
                json!({"hostname": "h", "ip_address": "127.0.0.1", "ssh_key_path": "/root/.ssh/id_rsa"}),
            )),
            422,
            "invalid",
        ),
        (
            "/servers",
            Some(RequestBody::Json(
                json!({"hostname": "h", "ip_address": "127.0.0.1", "pool": "a.b"}),
            )),
            422,
            "invalid",
        ),
        (
            "/servers",
            Some(RequestBody::Json(
                json!({"hostname": "h", "ip_address": "127.0.0.1", "connection": "telnet"}),
            )),
            422,
            "invalid",
        ),
        (
            "/jobs",
            Some(RequestBody::Json(
                json!({"playbook_id": "one", "server_id": 1}),
            )),
            422,
            "invalid",
        ),
        (
            "/jobs",
            Some(RequestBody::Json(json!({"playbook_id": 1, "server_id": 1}))),
            422,
            "invalid",
        ),
        ("/jobs", raw(b"[1,2"), 400, "bad_request"),
    ];
    for (path, body, expected, kind) in cases {
        let (status, answer) = stack
            .request(Method::POST, path, Some(ADMIN_TOKEN), body)
            .await;
        assert_error(status, &answer, expected, kind);
    }
    // None of the refused requests stored anything: ids start at 1.
    assert_eq!(stack.playbook("p", "- hosts: all\n").await, 1);
    assert_eq!(stack.local_server().await, 1);
    let (status, _) = stack.get("/jobs/1").await;
    assert_eq!(status, 404, "no job was created");
}

#[tokio::test]
async fn oversized_bodies_and_extra_vars_are_413() {
    let stack = stack().await;
    // The coordinator refuses on the Content-Length alone, before reading the body, and
    // may close the connection while a client still writes: announce 2 MiB, send none.
    let address = stack.http.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    let head = format!(
        "POST /playbooks HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    socket
        .write_all(head.as_bytes())
        .await
        .expect("writes the head");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"too_large\""), "{answer}");

    let playbook = stack.playbook("p", "- hosts: all\n").await;
    let server = stack.local_server().await;
    let (status, body) = stack
        .post(
            "/jobs",
            json!({"playbook_id": playbook, "server_id": server, "extra_vars": {"blob": "x".repeat(70 * 1024)}}),
        )
        .await;
    assert_error(status, &body, 413, "too_large");
    let (status, body) = stack
        .post(
            "/jobs",
            json!({"playbook_id": playbook, "server_id": server, "extra_vars": [1, 2]}),
        )
        .await;
    assert_error(status, &body, 422, "invalid");
    let (status, _) = stack.get("/jobs/1").await;
    assert_eq!(status, 404, "no job was created");
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404() {
    let stack = stack().await;
    for path in [
        "/jobs/999",
        "/jobs/550e8400-e29b-41d4-a716-446655440000",
        "/jobs/not-an-id",
        "/jobs/999/logs",
        "/no/such/route",
    ] {
        let (status, body) = stack.get(path).await;
        assert_error(status, &body, 404, "not_found");
    }
}

#[tokio::test]
async fn a_job_on_a_pool_without_agents_stays_pending() {
    let stack = stack().await;
    let playbook = stack.playbook("p", "- hosts: all\n").await;
    let server = stack.local_server().await;
    let job = stack.submit(playbook, server, json!({"k": "v"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, job) = stack.get(&format!("/jobs/{}", job["id"])).await;
    assert_eq!(status, 200);
    assert_eq!(job["status"], "pending");
    assert!(job["started_at"].is_null() && job["exit_code"].is_null());
    let (status, logs) = stack.get(&format!("/jobs/{}/logs", job["id"])).await;
    assert_eq!(status, 200);
    assert_eq!(logs["total_lines"], 0);
    assert_eq!(logs["has_more"], false);
}
