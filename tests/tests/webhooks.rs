//! Webhooks over a real stack: receivers in this test (tiny HTTP servers on loopback)
//! get signed deliveries when jobs finish; `job.failed` fires only for failed jobs; a
//! failing, absent or slow receiver is retried with backoff, every attempt in the
//! delivery log, while jobs run as fast as without it; pending deliveries survive a
//! coordinator restart; bad requests write nothing.

use drover_tests::{ADMIN_TOKEN, RequestBody, Stack, StackOptions, playbooks};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warp::Filter;

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str).trim()
    }
}

/// How a receiver answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Sleeps this long, then answers 200.
    Sleep(Duration),
}

/// A webhook receiver on 127.0.0.1 that records every request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer = Arc::new(Mutex::new(answer));
        let (log, how) = (got.clone(), answer.clone());
        let route = warp::post()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(move |headers: warp::http::HeaderMap, body: bytes::Bytes| {
                let (log, how) = (log.clone(), how.clone());
                async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_owned(),
                                v.to_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect();
                    log.lock().expect("lock").push(Received {
                        at: Instant::now(),
                        headers,
                        body: body.to_vec(),
                    });
                    let answer = *how.lock().expect("lock");
                    let status = match answer {
                        Answer::Status(code) => code,
                        Answer::Sleep(pause) => {
                            tokio::time::sleep(pause).await;
                            200
                        }
                    };
                    warp::reply::with_status(
                        "",
                        warp::http::StatusCode::from_u16(status).expect("a status"),
                    )
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let address = listener.local_addr().expect("address");
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver {
            url: format!("http://{address}/hook"),
            got,
            answer,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("lock") = answer;
    }

    /// Waits until at least `count` requests arrived; returns them all.
    async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.got();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} got {} requests in {timeout:?}, expected {count}",
                self.url,
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(digest) = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// Creates a webhook, asserting 201; returns its id and secret.
async fn webhook(stack: &Stack, body: Value) -> (u64, String) {
    let (status, created) = stack.post("/webhooks", body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["secret_set"], true);
    let secret = created["secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    (created["id"].as_u64().expect("id"), secret)
}

async fn deliveries(stack: &Stack, hook: u64) -> Vec<Value> {
    let (status, page) = stack
        .get(&format!("/webhooks/{hook}/deliveries?per_page=100"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until every delivery of `hook` is settled (not pending) and there are `count`.
async fn settled(stack: &Stack, hook: u64, count: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = deliveries(stack, hook).await;
        if found.len() >= count && found.iter().all(|d| d["status"] != "pending") {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries of webhook {hook} not settled in {timeout:?}: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits a job and waits for its end; returns it and how long that took.
async fn run_job(stack: &Stack, playbook: u64, server: u64) -> (Value, Duration) {
    let started = Instant::now();
    let job = stack.submit(playbook, server, json!({})).await;
    let id = job["id"].as_u64().expect("id");
    let done = stack.wait_finished(id, JOB_TIMEOUT).await;
    (done, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_delivered_signed_and_failed_ones_also_as_job_failed() {
    let stack = Stack::start().await;
    let finished = Receiver::start(Answer::Status(200)).await;
    let failures = Receiver::start(Answer::Status(204)).await;
    let (finished_hook, finished_secret) = webhook(
        &stack,
        json!({"url": finished.url, "events": ["job.finished"], "description": "all jobs"}),
    )
    .await;
    let chosen_secret = "a-secret-the-admin-chose-0123";
    let (failed_hook, failed_secret) = webhook(
        &stack,
        json!({"url": failures.url, "events": ["job.failed"], "secret": chosen_secret}),
    )
    .await;
    assert_eq!(failed_secret, chosen_secret);
    assert_eq!(finished_secret.len(), 64, "generated: 32 random bytes, hex");

    // The secret is never shown again, nor stored in the audit trail.
    let (status, shown) = stack.get(&format!("/webhooks/{finished_hook}")).await;
    assert_eq!(status, 200);
    assert!(shown.get("secret").is_none(), "{shown}");
    assert_eq!(shown["secret_set"], true);
    assert_eq!(shown["events"], json!(["job.finished"]));
    let (_, list) = stack.get("/webhooks").await;
    assert_eq!(list["pagination"]["total"], 2);
    assert!(!list.to_string().contains(&finished_secret));
    let (_, audit) = stack.get("/audit").await;
    assert!(!audit.to_string().contains(chosen_secret), "{audit}");
    assert!(audit.to_string().contains("POST /webhooks"));

    let server = stack.local_server().await;
    let ok = stack.playbook("ok", playbooks::OK).await;
    let (job, _) = run_job(&stack, ok, server).await;
    assert_eq!(job["status"], "success");
    let got = finished.wait_for(1, Duration::from_secs(20)).await;
    let delivery = &got[0];
    assert_eq!(delivery.header("content-type"), "application/json");
    assert_eq!(delivery.header("x-drover-event"), "job.finished");
    assert!(
        verify(
            &finished_secret,
            &delivery.body,
            delivery.header("x-drover-signature")
        ),
        "the signature is HMAC-SHA256 of the body with the secret: {:?}",
        delivery.headers
    );
    assert!(!verify(
        chosen_secret,
        &delivery.body,
        delivery.header("x-drover-signature")
    ));
    let body = delivery.json();
    assert_eq!(body["event"], "job.finished");
    assert_eq!(body["delivery_id"], delivery.header("x-drover-delivery"));
    assert_eq!(body["attempt"], 1);
    assert!(body["delivered_at"].is_string());
    let sent = &body["job"];
    assert_eq!(sent["id"], job["id"]);
    assert_eq!(sent["uuid"], job["job_id"]);
    assert_eq!(sent["status"], "success");
    assert_eq!(sent["exit_code"], 0);
    assert_eq!(sent["playbook_id"], ok);
    assert_eq!(sent["playbook_name"], "ok");
    assert_eq!(sent["server_id"], server);
    assert_eq!(sent["user_id"], 1);
    assert_eq!(sent["created_at"], job["created_at"]);
    assert_eq!(sent["started_at"], job["started_at"]);
    assert_eq!(sent["completed_at"], job["completed_at"]);
    assert!(sent["duration_seconds"].as_f64().expect("a duration") > 0.0);

    // The success went to job.finished only.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(failures.got().is_empty(), "job.failed fired for a success");

    let failing = stack.playbook("broken", playbooks::FAILING).await;
    let (job, _) = run_job(&stack, failing, server).await;
    assert_eq!(job["status"], "failed");
    let got = failures.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].header("x-drover-event"), "job.failed");
    assert!(verify(
        chosen_secret,
        &got[0].body,
        got[0].header("x-drover-signature")
    ));
    let body = got[0].json();
    assert_eq!(body["job"]["status"], "failed");
    assert_eq!(body["job"]["exit_code"], 1);
    assert_eq!(body["job"]["playbook_name"], "broken");
    let got = finished.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(got[1].json()["job"]["status"], "failed");
    assert_ne!(
        got[0].header("x-drover-delivery"),
        got[1].header("x-drover-delivery")
    );

    // Exactly one delivery each, and the log says so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(finished.got().len(), 2);
    assert_eq!(failures.got().len(), 1);
    let log = settled(&stack, finished_hook, 2, Duration::from_secs(10)).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["payload"]["status"], "failed", "newest first");
    for delivery in &log {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["attempt_count"], 1);
        assert_eq!(delivery["attempts"][0]["status_code"], 200);
        assert_eq!(delivery["attempts"][0]["error"], Value::Null);
        assert_eq!(delivery["next_retry_at"], Value::Null);
    }
    let log = settled(&stack, failed_hook, 1, Duration::from_secs(10)).await;
    assert_eq!(log[0]["attempts"][0]["status_code"], 204);
    assert_eq!(
        log[0]["delivery_id"],
        failures.got()[0].header("x-drover-delivery")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receivers_are_retried_with_backoff_without_slowing_jobs() {
    // Waits of 2, 4, 8 s between four attempts; a receiver has 1 s to answer.
    let stack = Stack::start_with(StackOptions {
        coordinator_args: [
            "--webhook-retry-base-ms",
            "2000",
            "--webhook-max-attempts",
            "4",
            "--webhook-timeout-ms",
            "1000",
        ]
        .map(String::from)
        .to_vec(),
        ..StackOptions::default()
    })
    .await;
    let server = stack.local_server().await;
    let ok = stack.playbook("ok", playbooks::OK).await;
    // A baseline while no delivery is pending (the second run: the first one warms up).
    run_job(&stack, ok, server).await;
    let (_, baseline) = run_job(&stack, ok, server).await;

    let erroring = Receiver::start(Answer::Status(500)).await;
    let slow = Receiver::start(Answer::Sleep(Duration::from_secs(3))).await;
    let nobody = format!("http://127.0.0.1:{}/hook", drover_tests::free_port());
    let (erroring_hook, _) = webhook(
        &stack,
        json!({"url": erroring.url, "events": ["job.finished"]}),
    )
    .await;
    let (slow_hook, _) =
        webhook(&stack, json!({"url": slow.url, "events": ["job.finished"]})).await;
    let (nobody_hook, _) =
        webhook(&stack, json!({"url": nobody, "events": ["job.finished"]})).await;

    let (first, _) = run_job(&stack, ok, server).await;
    let got = erroring.wait_for(1, Duration::from_secs(20)).await;
    let first_attempt = got[0].at;
    // While its retries are due, another job runs as fast as the baseline.
    let (second, took) = run_job(&stack, ok, server).await;
    let finished_at = Instant::now();
    assert_eq!(second["status"], "success");
    eprintln!("baseline {baseline:?}, with failing webhooks {took:?}");
    assert!(
        took < baseline * 3 + Duration::from_secs(2),
        "a job took {took:?} while webhooks failed; {baseline:?} without"
    );
    // The third attempt of the first job's delivery is due 6 s after its first: the job
    // finished well before it, so nothing about it waited on the retries.
    assert!(
        finished_at < first_attempt + Duration::from_secs(6),
        "the second job finished {:?} after the first delivery attempt",
        finished_at - first_attempt
    );
    assert!(
        erroring.got().len() <= 2 + 1,
        "its own first attempt at most"
    );

    // Both jobs' deliveries: four attempts each, 2, 4 and 8 s apart, then failed.
    let log = settled(&stack, erroring_hook, 2, Duration::from_secs(60)).await;
    for delivery in &log {
        assert_eq!(delivery["status"], "failed", "{delivery}");
        assert_eq!(delivery["attempt_count"], 4);
        let attempts = delivery["attempts"].as_array().expect("attempts");
        for (n, attempt) in attempts.iter().enumerate() {
            assert_eq!(attempt["attempt"], n + 1);
            assert_eq!(attempt["status_code"], 500);
            assert_eq!(
                attempt["error"],
                "the receiver answered 500 Internal Server Error"
            );
            assert_eq!(attempt["next_retry_at"].is_null(), n == 3, "{attempt}");
        }
    }
    let got = erroring.got();
    assert_eq!(got.len(), 8, "4 attempts × 2 jobs");
    let first_job = first["job_id"].as_str().expect("uuid");
    let times: Vec<(Instant, u64)> = got
        .iter()
        .filter(|r| r.json()["job"]["uuid"] == first_job)
        .map(|r| (r.at, r.json()["attempt"].as_u64().expect("attempt")))
        .collect();
    assert_eq!(
        times.iter().map(|t| t.1).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let ids: Vec<&str> = got
        .iter()
        .filter(|r| r.json()["job"]["uuid"] == first_job)
        .map(|r| r.header("x-drover-delivery"))
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one delivery id: {ids:?}"
    );
    for (gap, wait) in times.windows(2).zip([2.0, 4.0, 8.0]) {
        let seconds = (gap[1].0 - gap[0].0).as_secs_f64();
        assert!(
            seconds >= wait - 0.1 && seconds < wait + 3.0,
            "waited {seconds:.2} s where the schedule says {wait} s"
        );
    }

    let log = settled(&stack, nobody_hook, 2, Duration::from_secs(60)).await;
    for delivery in &log {
        assert_eq!(delivery["status"], "failed");
        assert_eq!(delivery["attempt_count"], 4);
        let attempt = &delivery["attempts"][0];
        assert_eq!(attempt["status_code"], Value::Null);
        let error = attempt["error"].as_str().expect("error");
        assert!(error.starts_with("cannot connect"), "{error}");
    }
    let log = settled(&stack, slow_hook, 2, Duration::from_secs(60)).await;
    for delivery in &log {
        assert_eq!(delivery["status"], "failed");
        let attempt = &delivery["attempts"][0];
        assert_eq!(attempt["error"], "timed out waiting for the receiver");
        let ms = attempt["duration_ms"].as_u64().expect("duration");
        assert!((900..2500).contains(&ms), "{ms} ms against a 1 s timeout");
    }
    assert_eq!(slow.got().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_resume_after_a_restart() {
    let mut stack = Stack::start_with(StackOptions {
        agents: 0,
        coordinator_args: ["--webhook-retry-base-ms", "3000"]
            .map(String::from)
            .to_vec(),
        ..StackOptions::default()
    })
    .await;
    let receiver = Receiver::start(Answer::Status(503)).await;
    let (hook, secret) = webhook(
        &stack,
        json!({"url": receiver.url, "events": ["job.finished", "job.failed"]}),
    )
    .await;
    let server = stack.local_server().await;
    let ok = stack.playbook("ok", playbooks::OK).await;
    // A pending job cancelled: finished without an agent.
    let job = stack.submit(ok, server, json!({})).await;
    let id = job["id"].as_u64().expect("id");
    let (status, _) = stack.post(&format!("/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    let first = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(first[0].json()["job"]["status"], "cancelled");
    // The failure is recorded with its retry time before the restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = deliveries(&stack, hook).await;
        if log.len() == 1 && log[0]["attempt_count"] == 1 {
            assert_eq!(log[0]["status"], "pending");
            assert!(log[0]["next_retry_at"].is_string());
            break;
        }
        assert!(Instant::now() < deadline, "{log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stack.kill_coordinator();
    receiver.answer(Answer::Status(200));
    stack.restart_coordinator().await;
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "one attempt before, one after the restart");
    assert_eq!(
        got[0].header("x-drover-delivery"),
        got[1].header("x-drover-delivery")
    );
    assert_eq!(got[1].json()["attempt"], 2);
    assert!(verify(
        &secret,
        &got[1].body,
        got[1].header("x-drover-signature")
    ));
    let log = settled(&stack, hook, 1, Duration::from_secs(10)).await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"][0]["status_code"], 503);
    assert_eq!(log[0]["attempts"][1]["status_code"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_requests_are_refused_and_write_nothing() {
    let stack = Stack::start_with(StackOptions {
        agents: 0,
        ..StackOptions::default()
    })
    .await;
    let (status, _) = stack
        .post(
            "/users",
            json!({"username": "otto", "password": "otto-password-123", "role": "operator"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, login) = stack
        .request(
            Method::POST,
            "/auth/token",
            None,
            Some(RequestBody::Json(
                json!({"username": "otto", "password": "otto-password-123"}),
            )),
        )
        .await;
    let operator = login["token"].as_str().expect("token").to_owned();
    let (_, audit_before) = stack.get("/audit").await;
    let audit_total = audit_before["pagination"]["total"].clone();

    let good = json!({"url": "http://127.0.0.1:9/hook", "events": ["job.failed"]});
    let call =
        |method: Method, path: &'static str, token: Option<String>, body: Option<RequestBody>| {
            let stack = &stack;
            async move {
                let (status, body) = stack.request(method, path, token.as_deref(), body).await;
                (status.as_u16(), body)
            }
        };
    let admin = || Some(ADMIN_TOKEN.to_owned());
    let json_body = |v: Value| Some(RequestBody::Json(v));

    for (method, path) in [
        (Method::GET, "/webhooks"),
        (Method::POST, "/webhooks"),
        (Method::GET, "/webhooks/1"),
        (Method::PUT, "/webhooks/1"),
        (Method::DELETE, "/webhooks/1"),
        (Method::GET, "/webhooks/1/deliveries"),
    ] {
        let (status, body) = call(method.clone(), path, None, json_body(good.clone())).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        let (status, body) = call(
            method.clone(),
            path,
            Some(operator.clone()),
            json_body(good.clone()),
        )
        .await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"], "forbidden");
    }
    for bad in [
        json!({"url": "not a url", "events": ["job.failed"]}),
        json!({"url": "ftp://example.com/x", "events": ["job.failed"]}),
        json!({"url": "https://user:pw@example.com/x", "events": ["job.failed"]}),
        json!({"url": "http://example.com/x", "events": []}),
        json!({"url": "http://example.com/x", "events": ["job.started"]}),
        json!({"url": "http://example.com/x", "events": ["alert"], "secret": "short"}),
        json!({"url": "http://example.com/x", "events": ["alert"], "verify_tls": false}),
    ] {
        let (status, body) = call(Method::POST, "/webhooks", admin(), json_body(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"], "invalid");
        assert!(body["detail"].is_string());
    }
    let (status, body) = call(
        Method::POST,
        "/webhooks",
        admin(),
        Some(RequestBody::Raw(b"{\"url\": \"http://x/\", ".to_vec())),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    for (method, path) in [
        (Method::GET, "/webhooks/7"),
        (Method::PUT, "/webhooks/7"),
        (Method::DELETE, "/webhooks/7"),
        (Method::GET, "/webhooks/7/deliveries"),
        (Method::GET, "/webhooks/nope"),
    ] {
        let (status, body) = call(method.clone(), path, admin(), json_body(good.clone())).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"], "not_found");
    }

    let (_, list) = stack.get("/webhooks").await;
    assert_eq!(list["pagination"]["total"], 0, "{list}");
    // And the document describes every webhook route.
    let (_, document) = stack
        .request(Method::GET, "/openapi.json", None, None)
        .await;
    for (method, path) in [
        ("get", "/webhooks"),
        ("post", "/webhooks"),
        ("get", "/webhooks/{id}"),
        ("put", "/webhooks/{id}"),
        ("delete", "/webhooks/{id}"),
        ("get", "/webhooks/{id}/deliveries"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    let (_, audit_after) = stack.get("/audit").await;
    assert_eq!(audit_after["pagination"]["total"], audit_total);

    // A good one, then update (secret kept unless given) and delete, each audited.
    let (hook, secret) = webhook(&stack, good.clone()).await;
    let (status, updated) = call(
        Method::PUT,
        "/webhooks/1",
        admin(),
        json_body(json!({"url": "https://hooks.example.com/d", "events": ["alert", "job.finished"], "active": false})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["id"], hook);
    assert_eq!(updated["active"], false);
    assert_eq!(updated["events"], json!(["alert", "job.finished"]));
    assert!(updated.get("secret").is_none());
    let (status, deleted) = call(Method::DELETE, "/webhooks/1", admin(), None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted, json!({"id": hook, "deleted": true}));
    let (status, _) = call(Method::GET, "/webhooks/1/deliveries", admin(), None).await;
    assert_eq!(status, 404);
    let (_, audit) = stack.get("/audit?per_page=3").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        vec![
            "DELETE /webhooks/{id}",
            "PUT /webhooks/{id}",
            "POST /webhooks"
        ]
    );
    assert!(!audit.to_string().contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_other_webhooks() {
    // Receivers have 5 s; the hanging one never answers in time, and nothing is retried
    // within the test.
    let stack = Stack::start_with(StackOptions {
        agents: 0,
        coordinator_args: ["--webhook-retry-base-ms", "60000"]
            .map(String::from)
            .to_vec(),
        ..StackOptions::default()
    })
    .await;
    let hanging = Receiver::start(Answer::Sleep(Duration::from_secs(30))).await;
    let healthy = Receiver::start(Answer::Status(200)).await;
    webhook(
        &stack,
        json!({"url": hanging.url, "events": ["job.finished"]}),
    )
    .await;
    webhook(
        &stack,
        json!({"url": healthy.url, "events": ["job.finished"]}),
    )
    .await;
    let server = stack.local_server().await;
    let ok = stack.playbook("ok", playbooks::OK).await;
    // Twelve jobs finish (cancelled while pending): 12 deliveries to each receiver, more
    // than all the coordinator's concurrent attempts together.
    let mut jobs = Vec::new();
    for _ in 0..12 {
        jobs.push(stack.submit(ok, server, json!({})).await["id"].clone());
    }
    let started = Instant::now();
    for job in &jobs {
        let (status, body) = stack.post(&format!("/jobs/{job}/cancel"), json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    healthy.wait_for(12, Duration::from_secs(30)).await;
    let took = started.elapsed();
    eprintln!("12 deliveries to the healthy receiver in {took:?}");
    // A hanging receiver holds its own attempts (2 at a time) until the 5 s timeout,
    // never the others' share.
    assert!(
        took < Duration::from_secs(4),
        "the healthy receiver waited {took:?} behind the hanging one"
    );
    assert!(hanging.got().len() <= 2, "{} at once", hanging.got().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_webhooks_subscribed_to_them() {
    let stack = Stack::start_with(StackOptions {
        agents: 0,
        coordinator_args: ["--monitor-interval-secs=1", "--agent-lease-secs=2"]
            .map(String::from)
            .to_vec(),
        ..StackOptions::default()
    })
    .await;
    let alerts = Receiver::start(Answer::Status(200)).await;
    let jobs = Receiver::start(Answer::Status(200)).await;
    let (_, secret) = webhook(&stack, json!({"url": alerts.url, "events": ["alert"]})).await;
    webhook(
        &stack,
        json!({"url": jobs.url, "events": ["job.finished", "job.failed"]}),
    )
    .await;
    // A pool with a server and no agent: the no_agent alert fires after the lease.
    stack
        .server(json!({"hostname": "edge-host", "ip_address": "127.0.0.1", "connection": "local", "pool": "edge-9"}))
        .await;
    let got = alerts.wait_for(1, Duration::from_secs(20)).await;
    let delivery = &got[0];
    assert!(
        verify(
            &secret,
            &delivery.body,
            delivery.header("x-drover-signature")
        ),
        "signature of {:?}",
        delivery.headers
    );
    assert_eq!(delivery.header("x-drover-event"), "alert");
    let body = delivery.json();
    assert_eq!(body["event"], "alert", "{body}");
    assert_eq!(body["alert"]["kind"], "no_agent", "{body}");
    assert_eq!(body["alert"]["subject"], "edge-9", "{body}");
    assert_eq!(body["alert"]["state"], "firing", "{body}");
    assert!(jobs.got().is_empty(), "job webhooks get no alerts");
}
