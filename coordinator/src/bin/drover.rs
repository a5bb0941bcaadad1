//! `drover`: the command line for people and scripts. It talks to the coordinator's HTTP
//! API: register playbooks and servers, submit jobs, and follow a job's log live.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Pause before `tail` reconnects a broken stream.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

#[derive(Parser)]
#[command(
    name = "drover",
    version,
    about = "Drover command line: playbooks, servers, jobs, live logs"
)]
struct Cli {
    /// Coordinator base URL.
    #[arg(
        long,
        env = "DROVER_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API token.
    #[arg(long, env = "DROVER_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upload a playbook; prints its id.
    PlaybookCreate {
        #[arg(long)]
        name: String,
        /// YAML file to upload.
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Register a server; prints its id.
    ServerCreate {
        #[arg(long)]
        hostname: String,
        #[arg(long)]
        ip_address: String,
        /// `ssh` or `local`.
        #[arg(long, default_value = "ssh")]
        connection: String,
        #[arg(long, default_value_t = 22)]
        ssh_port: u32,
        #[arg(long, default_value = "root")]
        ssh_user: String,
        /// Relative to the agents' --key-dir.
        #[arg(long)]
        ssh_key_path: Option<String>,
        #[arg(long, default_value = "default")]
        pool: String,
        #[arg(long)]
        python_interpreter: Option<String>,
    },
    /// Submit a job; prints its id, or follows it with --follow.
    Submit {
        #[arg(long)]
        playbook_id: u64,
        #[arg(long)]
        server_id: u64,
        /// JSON object, e.g. '{"port": 8080}'.
        #[arg(long, default_value = "{}")]
        extra_vars: String,
        /// Seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Print the log live and exit with the job's exit code.
        #[arg(long)]
        follow: bool,
    },
    /// List jobs, newest first, one per line: id, status, exit code, playbook, server.
    Jobs {
        /// pending, running, success, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        playbook_id: Option<u64>,
        #[arg(long)]
        server_id: Option<u64>,
        #[arg(long, default_value_t = 1)]
        page: u64,
        #[arg(long, default_value_t = 20)]
        per_page: u64,
    },
    /// Cancel a pending or running job.
    Cancel {
        /// Job id or UUID.
        job: String,
    },
    /// Retry a failed or cancelled job; prints the new job's id, or follows it.
    Retry {
        /// Job id or UUID.
        job: String,
        #[arg(long)]
        follow: bool,
    },
    /// Exchange a username and password (DROVER_PASSWORD) for an API token; prints it.
    Login {
        #[arg(long)]
        username: String,
        #[arg(long, env = "DROVER_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Print a job's log from the start, live, then its final status; exits with the
    /// job's exit code.
    Tail {
        /// Job id or UUID.
        job: String,
        /// Start after this line.
        #[arg(long, default_value_t = 0)]
        after_line: u64,
        /// Follow the job straight from NATS (replaying the DROVER_JOBS stream from its
        /// first line) instead of the HTTP API. An integer job id is resolved over HTTP.
        #[arg(long)]
        nats: Option<String>,
    },
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the coordinator at {}", self.url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            bail!("{path}: {status}: {detail}");
        }
        Ok(body)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let api = Api {
        http: reqwest::Client::new(),
        url: cli.url,
        token: cli.token,
    };
    match run(&api, cli.command).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("drover: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(api: &Api, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::PlaybookCreate {
            name,
            file,
            description,
        } => {
            let content = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let created = api
                .post(
                    "/playbooks",
                    json!({"name": name, "description": description, "content": content}),
                )
                .await?;
            println!("{}", created["id"]);
        }
        Command::ServerCreate {
            hostname,
            ip_address,
            connection,
            ssh_port,
            ssh_user,
            ssh_key_path,
            pool,
            python_interpreter,
        } => {
            let created = api
                .post(
                    "/servers",
                    json!({
                        "hostname": hostname, "ip_address": ip_address, "connection": connection,
                        "ssh_port": ssh_port, "ssh_user": ssh_user, "ssh_key_path": ssh_key_path,
                        "pool": pool, "python_interpreter": python_interpreter,
                    }),
                )
                .await?;
            println!("{}", created["id"]);
        }
        Command::Submit {
            playbook_id,
            server_id,
            extra_vars,
            timeout,
            follow,
        } => {
            let extra_vars: Value =
                serde_json::from_str(&extra_vars).context("--extra-vars is not JSON")?;
            let job = api
                .post(
                    "/jobs",
                    json!({"playbook_id": playbook_id, "server_id": server_id, "extra_vars": extra_vars, "timeout": timeout}),
                )
                .await?;
            if !follow {
                println!("{}", job["id"]);
                return Ok(0);
            }
            eprintln!(
                "job {} ({}) submitted",
                job["id"],
                job["job_id"].as_str().unwrap_or("?")
            );
            return tail(api, &job["id"].to_string(), 0).await;
        }
        Command::Jobs {
            status,
            playbook_id,
            server_id,
            page,
            per_page,
        } => {
            let mut path = format!("/jobs?page={page}&per_page={per_page}");
            for (name, value) in [
                ("status", status),
                ("playbook_id", playbook_id.map(|v| v.to_string())),
                ("server_id", server_id.map(|v| v.to_string())),
            ] {
                if let Some(value) = value {
                    path.push_str(&format!("&{name}={value}"));
                }
            }
            let listed = api.get(&path).await?;
            for job in listed["items"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    job["id"],
                    job["status"].as_str().unwrap_or("?"),
                    job["exit_code"],
                    job["playbook"]["name"].as_str().unwrap_or("?"),
                    job["server"]["hostname"].as_str().unwrap_or("?"),
                );
            }
            let pages = &listed["pagination"];
            eprintln!(
                "page {} of {} ({} jobs)",
                pages["page"], pages["pages"], pages["total"]
            );
        }
        Command::Cancel { job } => {
            let answer = api.post(&format!("/jobs/{job}/cancel"), json!({})).await?;
            println!(
                "{}: {}",
                answer["status"].as_str().unwrap_or("?"),
                answer["message"].as_str().unwrap_or("")
            );
        }
        Command::Retry { job, follow } => {
            let retry = api.post(&format!("/jobs/{job}/retry"), json!({})).await?;
            if !follow {
                println!("{}", retry["id"]);
                return Ok(0);
            }
            eprintln!("job {} retries job {}", retry["id"], retry["retry_of"]);
            return tail(api, &retry["id"].to_string(), 0).await;
        }
        Command::Login { username, password } => {
            let answer = api
                .post(
                    "/auth/token",
                    json!({"username": username, "password": password}),
                )
                .await?;
            println!("{}", answer["token"].as_str().unwrap_or_default());
        }
        Command::Tail {
            job,
            after_line,
            nats: None,
        } => return tail(api, &job, after_line).await,
        Command::Tail {
            job,
            after_line,
            nats: Some(url),
        } => return tail_nats(api, &url, &job, after_line).await,
    }
    Ok(0)
}

/// Follows the job's SSE stream (`GET /jobs/{id}/logs/stream`): prints each line as it is
/// stored, then the final status; reconnects after the last line if the stream breaks.
async fn tail(api: &Api, job: &str, mut after: u64) -> anyhow::Result<i32> {
    use drover_shared::sse::SseParser;
    use futures::StreamExt;

    let colour = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    loop {
        let mut request = api
            .http
            .get(format!(
                "{}/jobs/{job}/logs/stream",
                api.url.trim_end_matches('/')
            ))
            .header("Last-Event-ID", after.to_string());
        if let Some(token) = &api.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the coordinator at {}", api.url))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            bail!(
                "job {job}: {status}: {}",
                body["detail"].as_str().unwrap_or("no detail")
            );
        }
        let mut body = response.bytes_stream();
        let mut parser = SseParser::default();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            for event in parser.push(&chunk) {
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                match event.event.as_str() {
                    "log" => {
                        after = data["line_number"].as_u64().unwrap_or(after);
                        print_line(&mut out, &data, colour)?;
                    }
                    "end" => {
                        out.flush()?;
                        let detail = api.get(&format!("/jobs/{job}")).await?;
                        let code = detail["exit_code"].as_i64().unwrap_or(1) as i32;
                        print_summary(
                            &mut out,
                            detail["job_id"].as_str().unwrap_or("?"),
                            detail["status"].as_str().unwrap_or("?"),
                            code,
                            detail["duration"].as_f64().unwrap_or(0.0),
                            detail["error"].as_str(),
                        )?;
                        return Ok(code);
                    }
                    "error" => bail!(
                        "job {job}: {}",
                        data["detail"].as_str().unwrap_or("stream error")
                    ),
                    _ => {}
                }
            }
            out.flush()?;
        }
        // The connection dropped before the end: resume after the last printed line.
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

fn print_summary(
    out: &mut impl Write,
    uuid: &str,
    status: &str,
    code: i32,
    duration: f64,
    error: Option<&str>,
) -> std::io::Result<()> {
    let error = error.map(|e| format!(" ({e})")).unwrap_or_default();
    writeln!(
        out,
        "job {uuid} {status}: exit code {code}, {duration:.2} s{error}"
    )
}

/// Replays a job's logs and status from the `DROVER_JOBS` stream, then follows it live,
/// printing each line once, in order; exits with the job's exit code.
async fn tail_nats(api: &Api, url: &str, job: &str, mut after: u64) -> anyhow::Result<i32> {
    use async_nats::jetstream::{self, consumer};
    use drover_shared::protocol::{self, JobSubjectKind, LogBatch, Message, StatusChange};
    use futures::StreamExt;

    let uuid = match uuid::Uuid::parse_str(job) {
        Ok(uuid) => uuid,
        Err(_) => {
            let detail = api.get(&format!("/jobs/{job}")).await?;
            uuid::Uuid::parse_str(detail["job_id"].as_str().unwrap_or(""))
                .context("the coordinator returned no job uuid")?
        }
    };
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(protocol::JOBS_STREAM)
        .await
        .with_context(|| format!("stream {} not found", protocol::JOBS_STREAM))?;
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subjects: vec![protocol::logs_subject(uuid), protocol::status_subject(uuid)],
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("cannot replay the job's subjects")?;
    let mut messages = ordered.messages().await?;
    let colour = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    let mut finished: Option<StatusChange> = None;
    while let Some(message) = messages.next().await {
        let message = message?;
        match protocol::parse_job_subject(&message.subject) {
            Some((_, JobSubjectKind::Logs)) => {
                let batch = LogBatch::decode(&message.payload)?;
                for line in batch.lines {
                    // Redelivered or replayed batches repeat lines: print each once.
                    if line.line_number <= after {
                        continue;
                    }
                    after = line.line_number;
                    let line = serde_json::json!({
                        "line_number": line.line_number,
                        "log_level": line.log_level,
                        "content": line.content,
                    });
                    print_line(&mut out, &line, colour)?;
                }
                out.flush()?;
            }
            Some((_, JobSubjectKind::Status)) => {
                let change = StatusChange::decode(&message.payload)?;
                if change.status.is_finished() {
                    finished = Some(change);
                }
            }
            _ => {}
        }
        if let Some(change) = finished.as_ref().filter(|c| after >= c.last_line) {
            let code = change.exit_code.unwrap_or(1);
            let duration = match (change.started_at, change.completed_at) {
                (Some(start), Some(end)) => (end - start).num_milliseconds() as f64 / 1000.0,
                _ => 0.0,
            };
            print_summary(
                &mut out,
                &uuid.to_string(),
                change.status.as_str(),
                code,
                duration,
                change.error.as_deref(),
            )?;
            return Ok(code);
        }
    }
    bail!("the NATS subscription ended before job {uuid} finished")
}

fn print_line(out: &mut impl Write, line: &Value, colour: bool) -> std::io::Result<()> {
    let level = line["log_level"].as_str().unwrap_or("INFO");
    let content = line["content"].as_str().unwrap_or("");
    let number = line["line_number"].as_u64().unwrap_or(0);
    let (start, end) = match (colour, level) {
        (true, "ERROR") => ("\x1b[31m", "\x1b[0m"),
        (true, "WARNING") => ("\x1b[33m", "\x1b[0m"),
        (true, "DEBUG") => ("\x1b[2m", "\x1b[0m"),
        _ => ("", ""),
    };
    writeln!(out, "{number:>5} {start}{level:<7} {content}{end}")
}
