//! A real playbook runs on a real agent over NATS and its log comes back through the
//! API: the spec's example, SSH, syntax errors, unreachable hosts, extra vars, paging.

use drover_tests::{Sshd, Stack, free_port};
use serde_json::{Value, json};
use std::time::Duration;

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// The spec's "Parsed Output Examples" as a real playbook.
const SPEC_PLAYBOOK: &str = "\
- name: Deploy Application
  hosts: all
  gather_facts: true
  tasks:
    - name: Install Nginx
      command: /bin/true
      changed_when: true
    - name: Start Nginx service
      fail:
        msg: Service not found
";

fn id(job: &Value) -> u64 {
    job["id"].as_u64().expect("job id")
}

fn contents(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["content"].as_str().expect("content"))
        .collect()
}

/// Line numbers run 1..=N without a gap and `total_lines` says N.
fn assert_numbered(lines: &[Value], job: &Value) {
    let numbers: Vec<u64> = lines
        .iter()
        .map(|l| l["line_number"].as_u64().expect("number"))
        .collect();
    let expected: Vec<u64> = (1..=lines.len() as u64).collect();
    assert_eq!(numbers, expected);
    assert_eq!(job["total_lines"].as_u64(), Some(lines.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_example_fails_with_exit_code_1_and_the_spec_levels() {
    let stack = Stack::start().await;
    let playbook = stack.playbook("Deploy Application", SPEC_PLAYBOOK).await;
    let server = stack.local_server().await;
    let submitted = stack.submit(playbook, server, json!({})).await;
    assert_eq!(submitted["status"], "pending");
    assert_eq!(submitted["playbook"]["name"], "Deploy Application");
    assert_eq!(submitted["server"]["hostname"], "web-server-01");
    assert_eq!(submitted["user"]["username"], "admin");

    let job = stack.wait_finished(id(&submitted), JOB_TIMEOUT).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["exit_code"], 1);
    assert!(job["started_at"].is_string() && job["completed_at"].is_string());
    assert!(
        job["error"]
            .as_str()
            .unwrap_or("")
            .contains("Service not found"),
        "{job}"
    );
    let usage = &job["resource_usage"];
    assert!(
        usage["cpu_user_secs"].as_f64().unwrap_or(0.0) > 0.0,
        "{job}"
    );
    assert!(usage["max_rss_kb"].as_u64().unwrap_or(0) > 0, "{job}");

    let lines = stack.all_logs(id(&job)).await;
    assert_numbered(&lines, &job);
    // The spec's seven lines, in order, with the spec's levels.
    let expected = [
        ("PLAY [Deploy Application] *", "INFO"),
        ("TASK [Gathering Facts] *", "INFO"),
        ("ok: [web-server-01]", "INFO"),
        ("TASK [Install Nginx] *", "INFO"),
        ("changed: [web-server-01]", "WARNING"),
        ("TASK [Start Nginx service] *", "INFO"),
        ("fatal: [web-server-01]: FAILED! =>", "ERROR"),
    ];
    let mut after = 0;
    for (prefix, level) in expected {
        let line = lines
            .iter()
            .find(|l| {
                l["line_number"].as_u64() > Some(after)
                    && l["content"].as_str().is_some_and(|c| c.starts_with(prefix))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no line '{prefix}' after line {after}: {:#?}",
                    contents(&lines)
                )
            });
        assert_eq!(line["log_level"], level, "{line}");
        after = line["line_number"].as_u64().expect("number");
    }

    // The same job by UUID.
    let uuid = job["job_id"].as_str().expect("uuid");
    let (status, by_uuid) = stack.get(&format!("/jobs/{uuid}")).await;
    assert_eq!(status, 200);
    assert_eq!(by_uuid["id"], job["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbook_over_ssh_to_a_real_sshd_succeeds() {
    let stack = Stack::start().await;
    let sshd = Sshd::start(&stack.dir.path().join("sshd"), &stack.key_dir());
    let server = stack
        .server(json!({
            "hostname": "ssh-target",
            "ip_address": "127.0.0.1",
            "ssh_port": sshd.port,
            "ssh_user": sshd.user,
            "ssh_key_path": drover_tests::sshd_client_key(),
            "python_interpreter": "/usr/bin/python3",
        }))
        .await;
    let playbook = stack
        .playbook(
            "over ssh",
            "- hosts: all\n  gather_facts: true\n  tasks:\n    - command: echo hello-over-ssh\n      register: out\n    - debug:\n        msg: \"remote said {{ out.stdout }}\"\n",
        )
        .await;
    let job = stack.submit(playbook, server, json!({})).await;
    let job = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    let lines = stack.all_logs(id(&job)).await;
    assert_eq!(job["status"], "success", "{job} {:#?}", contents(&lines));
    assert_eq!(job["exit_code"], 0);
    assert!(job["error"].is_null());
    assert_numbered(&lines, &job);
    let text = contents(&lines).join("\n");
    assert!(text.contains("ok: [ssh-target]"), "{text}");
    assert!(text.contains("remote said hello-over-ssh"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_fail_with_exit_code_2() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    // Broken YAML never gets in: the upload names the line and column.
    let (status, refused) = stack
        .post(
            "/playbooks",
            json!({"name": "broken yaml", "content": "- hosts: all\n  tasks: [\n"}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or("")
            .contains("line 3, column 1"),
        "{refused}"
    );
    // Valid YAML that Ansible cannot run: an unknown module, an unknown play keyword.
    let unknown_module = stack
        .playbook(
            "unknown module",
            "- hosts: all\n  tasks:\n    - name: x\n      no_such_module_xyz: {}\n",
        )
        .await;
    let unknown_keyword = stack
        .playbook(
            "unknown keyword",
            "- hosts: all\n  no_such_keyword_xyz: 1\n  tasks: []\n",
        )
        .await;
    let first = stack.submit(unknown_module, server, json!({})).await;
    let second = stack.submit(unknown_keyword, server, json!({})).await;
    for (submitted, needle) in [
        (first, "no_such_module_xyz"),
        (second, "no_such_keyword_xyz"),
    ] {
        let job = stack.wait_finished(id(&submitted), JOB_TIMEOUT).await;
        let lines = stack.all_logs(id(&job)).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["exit_code"], 2, "{job} {:#?}", contents(&lines));
        assert!(
            lines.iter().any(|l| l["log_level"] == "ERROR"
                && l["content"].as_str().unwrap_or("").contains(needle)),
            "{:#?}",
            contents(&lines)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_host_fails_with_exit_code_3() {
    let stack = Stack::start().await;
    let closed_port = free_port();
    let server = stack
        .server(json!({
            "hostname": "nobody-home",
            "ip_address": "127.0.0.1",
            "ssh_port": closed_port,
            "python_interpreter": "/usr/bin/python3",
        }))
        .await;
    let playbook = stack
        .playbook("ping", "- hosts: all\n  tasks:\n    - ping:\n")
        .await;
    let job = stack.submit(playbook, server, json!({})).await;
    let job = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    let lines = stack.all_logs(id(&job)).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["exit_code"], 3, "{job} {:#?}", contents(&lines));
    assert!(
        lines.iter().any(|l| l["log_level"] == "ERROR"
            && l["content"].as_str().unwrap_or("").contains("UNREACHABLE!")),
        "{:#?}",
        contents(&lines)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_vars_reach_the_playbook() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    let playbook = stack
        .playbook(
            "echo vars",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: \"greeting={{ greeting }} port={{ port + 1 }} ssl={{ enable_ssl }}\"\n",
        )
        .await;
    let submitted = stack
        .submit(
            playbook,
            server,
            json!({"greeting": "hello-drover", "port": 8080, "enable_ssl": true}),
        )
        .await;
    assert_eq!(submitted["extra_vars"]["port"], 8080);
    let job = stack.wait_finished(id(&submitted), JOB_TIMEOUT).await;
    assert_eq!(job["status"], "success", "{job}");
    let lines = stack.all_logs(id(&job)).await;
    assert!(
        contents(&lines)
            .iter()
            .any(|c| c.contains("greeting=hello-drover port=8081 ssl=True")),
        "{:#?}",
        contents(&lines)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_pages_follow_the_spec() {
    let stack = Stack::start().await;
    let server = stack.local_server().await;
    let playbook = stack
        .playbook(
            "many lines",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: \"item {{ item }}\"\n      loop: \"{{ range(1, 13) | list }}\"\n",
        )
        .await;
    let job = stack.submit(playbook, server, json!({})).await;
    let job = stack.wait_finished(id(&job), JOB_TIMEOUT).await;
    assert_eq!(job["status"], "success", "{job}");
    let total = job["total_lines"].as_u64().expect("total");
    assert!(
        total > 20,
        "the loop prints several lines per item: {total}"
    );
    let page = |start: u64, limit: u64| {
        let path = format!("/jobs/{}/logs?start_line={start}&limit={limit}", id(&job));
        let stack = &stack;
        async move {
            let (status, page) = stack.get(&path).await;
            assert_eq!(status, 200, "{page}");
            page
        }
    };
    let numbers = |page: &Value| -> Vec<u64> {
        page["logs"]
            .as_array()
            .expect("logs")
            .iter()
            .map(|l| l["line_number"].as_u64().expect("number"))
            .collect()
    };

    let first = page(0, 7).await;
    assert_eq!(first["job_id"], job["id"]);
    assert_eq!(numbers(&first), (1..=7).collect::<Vec<_>>());
    assert_eq!(first["returned_lines"], 7);
    assert_eq!(first["total_lines"], total);
    assert_eq!(first["has_more"], true);

    // Polling as the spec does: start_line is the last line already seen.
    let second = page(7, 7).await;
    assert_eq!(numbers(&second), (8..=14).collect::<Vec<_>>());
    assert_eq!(second["has_more"], true);

    let last = page(total - 3, 7).await;
    assert_eq!(numbers(&last), vec![total - 2, total - 1, total]);
    assert_eq!(last["returned_lines"], 3);
    assert_eq!(last["has_more"], false);

    let beyond = page(total, 7).await;
    assert_eq!(beyond["returned_lines"], 0);
    assert_eq!(beyond["has_more"], false);

    let exact = page(total - 7, 7).await;
    assert_eq!(exact["returned_lines"], 7);
    assert_eq!(exact["has_more"], false);

    // Ids grow with line numbers, and every line has the spec's fields.
    let line = &first["logs"][0];
    for field in ["id", "line_number", "content", "log_level", "timestamp"] {
        assert!(!line[field].is_null(), "{field} missing in {line}");
    }
    let ids: Vec<u64> = first["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|l| l["id"].as_u64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Bad paging parameters are refused.
    let bad_limit = format!("/jobs/{}/logs?limit=0", id(&job));
    assert_eq!(stack.get(&bad_limit).await.0, 422);
    let bad_start = format!("/jobs/{}/logs?start_line=abc", id(&job));
    assert_eq!(stack.get(&bad_start).await.0, 400);
}
