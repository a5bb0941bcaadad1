//! Playbooks registered by `file_path` under the coordinator's `--playbook-dir`: a job
//! runs the file's content as read at registration, `POST /playbooks/{id}/sync` reads it
//! again, and paths that leave the directory are refused without writing anything.

use drover_tests::{RequestBody, Stack, StackOptions};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

fn playbook_saying(message: &str) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Say which version\n      debug:\n        msg: {message}\n"
    )
}

/// Runs the playbook on the server and returns the job's log as one text.
async fn run(stack: &Stack, playbook: u64, server: u64) -> String {
    let job = stack.submit(playbook, server, json!({})).await;
    let id = job["id"].as_u64().expect("id");
    let done = stack.wait_finished(id, JOB_TIMEOUT).await;
    assert_eq!(done["status"], "success", "{done}");
    stack
        .all_logs(id)
        .await
        .iter()
        .map(|line| line["content"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("writes the playbook file");
}

#[tokio::test]
async fn file_playbooks_run_sync_and_refuse_paths_outside_their_directory() {
    let files = tempfile::tempdir().expect("temp dir");
    let dir = files.path().join("playbooks");
    std::fs::create_dir_all(dir.join("web")).expect("creates the playbook dir");
    write(&dir.join("web/site.yml"), &playbook_saying("first version"));
    write(&dir.join("broken.yml"), "- hosts: all\n  tasks: [\n");
    write(
        &files.path().join("outside.yml"),
        &playbook_saying("outside"),
    );
    std::os::unix::fs::symlink(files.path().join("outside.yml"), dir.join("link.yml"))
        .expect("symlink");
    let stack = Stack::start_with(StackOptions {
        coordinator_args: vec!["--playbook-dir".into(), dir.display().to_string()],
        ..StackOptions::default()
    })
    .await;
    let server = stack.local_server().await;

    let (status, created) = stack
        .post(
            "/playbooks",
            json!({"name": "site", "file_path": "web/site.yml"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["file_path"], "web/site.yml");
    assert_eq!(created["content"], playbook_saying("first version"));
    let site = created["id"].as_u64().expect("id");
    assert!(run(&stack, site, server).await.contains("first version"));

    // An edit on disk reaches jobs only through a sync.
    write(
        &dir.join("web/site.yml"),
        &playbook_saying("second version"),
    );
    assert!(run(&stack, site, server).await.contains("first version"));
    let (status, synced) = stack
        .post(&format!("/playbooks/{site}/sync"), json!({}))
        .await;
    assert_eq!(status, 200, "{synced}");
    assert_eq!(synced["content"], playbook_saying("second version"));
    assert!(run(&stack, site, server).await.contains("second version"));

    let inline = stack
        .playbook("inline", &playbook_saying("inline version"))
        .await;
    let (_, audit_before) = stack.get("/audit?per_page=1").await;
    let refused: Vec<(Value, u16, &str)> = vec![
        (
            json!({"name": "x", "file_path": "../outside.yml"}),
            422,
            "relative path",
        ),
        (
            json!({"name": "x", "file_path": "/etc/passwd"}),
            422,
            "relative path",
        ),
        (
            json!({"name": "x", "file_path": "link.yml"}),
            422,
            "outside",
        ),
        (
            json!({"name": "x", "file_path": "missing.yml"}),
            422,
            "does not exist",
        ),
        (
            json!({"name": "x", "file_path": "web"}),
            422,
            "not a regular file",
        ),
        (json!({"name": "x", "file_path": "broken.yml"}), 422, "line"),
        (
            json!({"name": "x", "file_path": "web/site.yml", "content": "- hosts: all\n"}),
            422,
            "not both",
        ),
        (json!({"name": "x"}), 422, "content is missing"),
    ];
    for (body, want, says) in refused {
        let (status, answer) = stack.post("/playbooks", body.clone()).await;
        assert_eq!(status.as_u16(), want, "{body}: {answer}");
        assert!(
            answer["detail"].as_str().is_some_and(|d| d.contains(says)),
            "{body}: {answer}"
        );
    }
    let (status, answer) = stack
        .post(&format!("/playbooks/{inline}/sync"), json!({}))
        .await;
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = stack.post("/playbooks/999/sync", json!({})).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = stack
        .request(
            Method::POST,
            &format!("/playbooks/{site}/sync"),
            None,
            Some(RequestBody::Json(json!({}))),
        )
        .await;
    assert_eq!(status, 401, "{answer}");

    // Nothing refused was written: two playbooks, and no audit record since.
    let (_, list) = stack.get("/playbooks").await;
    assert_eq!(list["pagination"]["total"], 2, "{list}");
    let (_, audit_after) = stack.get("/audit?per_page=1").await;
    assert_eq!(
        audit_after["pagination"]["total"], audit_before["pagination"]["total"],
        "{audit_after}"
    );
}
