//! One job from dispatch to final status: write the private data dir, report `running`,
//! run ansible-runner, publish its lines and events in batches as they come, enforce the
//! timeout and honour a cancel, then report the final status with the mapped exit code
//! and resource usage.

use crate::cancel::CancelSignal;
use crate::publisher::{self, Outgoing, PublisherHandle};
use crate::runner::events::EventReader;
use crate::runner::{private_data, process};
use async_nats::jetstream;
use chrono::{DateTime, Utc};
use drover_shared::protocol::{EventBatch, JobDispatch, LogBatch, ResourceUsage, StatusChange};
use drover_shared::{JobStatus, Termination, exit_code};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Most raw output lines read before publishing what they produced.
const MAX_BATCH_LINES: usize = 1000;
/// Most content bytes in one published log batch: NATS refuses payloads over 1 MiB.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// After ansible-runner exits, how long stragglers may keep its pipes open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What every job of this agent shares.
#[derive(Debug)]
pub struct Settings {
    pub agent_id: String,
    pub work_dir: PathBuf,
    pub key_dir: PathBuf,
    pub runner: PathBuf,
    pub keep_work_dirs: bool,
    pub check_host_keys: bool,
    /// Set when the agent is shutting down, so killed runs say why.
    pub stopping: AtomicBool,
}

/// How the run ended, for the final status.
struct Finish {
    status: JobStatus,
    exit_code: i32,
    usage: Option<ResourceUsage>,
    error: Option<String>,
}

/// Why the agent stopped a run before it ended by itself; the first reason wins.
enum Stop {
    Timeout,
    Cancel { by_user: String },
}

/// ansible-runner has exited; its output is still read until the pipes close.
struct Exited {
    info: Option<process::ExitInfo>,
    /// Past this, whatever still holds the pipes open is killed.
    drain_until: Instant,
}

pub async fn execute(
    dispatch: JobDispatch,
    settings: Arc<Settings>,
    js: jetstream::Context,
    mut cancel: CancelSignal,
) {
    let job = dispatch.job_uuid;
    let (publisher, published) = publisher::start(js, job);
    match cancel.cancelled_by() {
        // Cancelled between the claim and the start: nothing ran, so no `running` either.
        Some(by_user) => {
            tracing::info!(%job, %by_user, "job cancelled before it started");
            let change = cancelled_before_start(&settings, &dispatch, &by_user);
            publisher.send(Outgoing::Status(change)).await;
        }
        None => run_and_report(&dispatch, &settings, &publisher, &mut cancel).await,
    }
    drop(publisher);
    if published.await.is_err() {
        tracing::error!(%job, "publisher task failed");
    }
}

async fn run_and_report(
    dispatch: &JobDispatch,
    settings: &Settings,
    publisher: &PublisherHandle,
    cancel: &mut CancelSignal,
) {
    let job = dispatch.job_uuid;
    let started_at = Some(Utc::now());
    publisher
        .send(Outgoing::Status(status_change(
            settings,
            dispatch,
            JobStatus::Running,
            started_at,
        )))
        .await;
    let dir = settings.work_dir.join(format!("job-{job}"));
    let mut reader = EventReader::default();
    let finish = run(dispatch, settings, &dir, publisher, &mut reader, cancel).await;
    tracing::info!(%job, status = %finish.status, exit_code = finish.exit_code, lines = reader.last_line(), "job finished");
    let mut change = status_change(settings, dispatch, finish.status, started_at);
    change.exit_code = Some(finish.exit_code);
    change.last_line = reader.last_line();
    change.completed_at = Some(Utc::now());
    change.resource_usage = finish.usage;
    change.error = finish.error;
    change.host_recap = reader.host_recap().to_vec();
    publisher.send(Outgoing::Status(change)).await;
    if !settings.keep_work_dirs {
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
}

/// The marker every job process of this agent process carries: the id alone could be
/// shared by two agents on one host (or by test stacks), the pid cannot. The agent's
/// reaper kills what carries it if the agent dies.
pub fn process_marker(agent_id: &str) -> String {
    format!("{agent_id}:{}", std::process::id())
}

impl Settings {
    pub fn process_marker(&self) -> String {
        process_marker(&self.agent_id)
    }
}

fn status_change(
    settings: &Settings,
    dispatch: &JobDispatch,
    status: JobStatus,
    started_at: Option<DateTime<Utc>>,
) -> StatusChange {
    StatusChange {
        job_uuid: dispatch.job_uuid,
        agent_id: settings.agent_id.clone(),
        status,
        exit_code: None,
        last_line: 0,
        started_at,
        completed_at: None,
        resource_usage: None,
        error: None,
        host_recap: Vec::new(),
    }
}

fn failed_before_start(exit_code: i32, error: String) -> Finish {
    Finish {
        status: JobStatus::Failed,
        exit_code,
        usage: None,
        error: Some(error),
    }
}

fn cancelled(by_user: &str, reader: &EventReader, usage: Option<ResourceUsage>) -> Finish {
    Finish {
        status: JobStatus::Cancelled,
        exit_code: exit_code(&reader.outcome(Termination::Cancelled)),
        usage,
        error: Some(format!("cancelled by {by_user}")),
    }
}

/// The only status of a job cancelled before it started.
fn cancelled_before_start(
    settings: &Settings,
    dispatch: &JobDispatch,
    by_user: &str,
) -> StatusChange {
    let mut change = status_change(settings, dispatch, JobStatus::Cancelled, None);
    change.exit_code = Some(exit_code(
        &EventReader::default().outcome(Termination::Cancelled),
    ));
    change.completed_at = Some(Utc::now());
    change.error = Some(format!("cancelled by {by_user} before it started"));
    change
}

/// Waits until `at`, or forever when there is no such instant.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn run(
    dispatch: &JobDispatch,
    settings: &Settings,
    dir: &std::path::Path,
    publisher: &PublisherHandle,
    reader: &mut EventReader,
    cancel: &mut CancelSignal,
) -> Finish {
    let key = match &dispatch.target.ssh_key_path {
        Some(relative) => match private_data::resolve_key(&settings.key_dir, relative) {
            Ok(key) => Some(key),
            Err(e) => {
                return failed_before_start(
                    drover_shared::exit_code::CONNECTION_ERROR,
                    e.to_string(),
                );
            }
        },
        None => None,
    };
    let inventory =
        private_data::inventory(&dispatch.target, key.as_deref(), settings.check_host_keys);
    let prepared = {
        let (dir, dispatch, check) = (dir.to_owned(), dispatch.clone(), settings.check_host_keys);
        tokio::task::spawn_blocking(move || private_data::write(&dir, &dispatch, &inventory, check))
            .await
    };
    match prepared {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return failed_before_start(exit_code::TASK_FAILURE, e.to_string()),
        Err(e) => return failed_before_start(exit_code::TASK_FAILURE, e.to_string()),
    }
    // Writing the data dir cannot be interrupted; a cancel that came meanwhile ends the
    // job here, before anything runs.
    if let Some(by_user) = cancel.cancelled_by() {
        return cancelled(&by_user, reader, None);
    }

    let verbosity = "-".to_owned() + &"v".repeat(usize::from(dispatch.verbosity));
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("run"),
        dir.as_os_str(),
        OsStr::new("-p"),
        OsStr::new(private_data::PLAYBOOK_FILE),
        OsStr::new("-j"),
    ];
    if dispatch.verbosity > 0 {
        args.push(OsStr::new(&verbosity));
    }
    let marker = dispatch.job_uuid.to_string();
    let agent_marker = settings.process_marker();
    let command = process::RunnerCommand {
        program: &settings.runner,
        args: &args,
        job_marker: &marker,
        agent_marker: &agent_marker,
        extra_path: settings.runner.parent(),
    };
    let mut spawned = match process::spawn(command).await {
        Ok(spawned) => spawned,
        Err(e) => {
            let error = crate::error::Error::Runner {
                program: settings.runner.display().to_string(),
                source: e,
            };
            return failed_before_start(exit_code::TASK_FAILURE, error.to_string());
        }
    };
    tracing::info!(job = %dispatch.job_uuid, pid = spawned.pid, "ansible-runner started");

    let deadline = dispatch
        .timeout_secs
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let mut stop: Option<Stop> = None;
    let mut exited: Option<Exited> = None;
    loop {
        // Timeout and cancel only stop a run that is still going, and only the first.
        let may_stop = stop.is_none() && exited.is_none();
        tokio::select! {
            line = spawned.output.recv() => match line {
                Some(line) => {
                    let mut batch = vec![line];
                    while batch.len() < MAX_BATCH_LINES {
                        match spawned.output.try_recv() {
                            Ok(line) => batch.push(line),
                            Err(_) => break,
                        }
                    }
                    publish_output(dispatch, reader, publisher, &batch).await;
                }
                None => break,
            },
            info = &mut spawned.exit, if exited.is_none() => {
                exited = Some(Exited {
                    info: info.ok(),
                    drain_until: Instant::now() + DRAIN_GRACE,
                });
            }
            () = sleep_until(deadline), if may_stop => {
                stop = Some(Stop::Timeout);
                tracing::warn!(job = %dispatch.job_uuid, "timeout reached; stopping the run");
                kill(&marker).await;
            }
            by_user = cancel.requested(), if may_stop => {
                tracing::info!(job = %dispatch.job_uuid, %by_user, "job cancelled; stopping the run");
                stop = Some(Stop::Cancel { by_user });
                kill(&marker).await;
            }
            () = sleep_until(exited.as_ref().map(|e| e.drain_until)) => {
                // Something the playbook started still holds the output open.
                kill(&marker).await;
                break;
            }
        }
    }
    let exit = match exited {
        Some(exited) => exited.info,
        None => (&mut spawned.exit).await.ok(),
    };
    let usage = exit.map(|e| e.usage);
    let termination = match stop {
        Some(Stop::Cancel { by_user }) => return cancelled(&by_user, reader, usage),
        Some(Stop::Timeout) => Termination::TimedOut,
        None => match exit.and_then(|e| e.code) {
            Some(code) => Termination::Exited(code),
            None => Termination::Crashed,
        },
    };
    let code = exit_code(&reader.outcome(termination));
    Finish {
        status: if code == exit_code::SUCCESS {
            JobStatus::Success
        } else {
            JobStatus::Failed
        },
        exit_code: code,
        usage,
        error: match termination {
            Termination::TimedOut => Some(format!(
                "timed out after {} s",
                dispatch.timeout_secs.unwrap_or_default()
            )),
            Termination::Crashed if settings.stopping.load(Ordering::Relaxed) => Some(format!(
                "agent {} stopped while the job ran",
                settings.agent_id
            )),
            Termination::Crashed => Some("ansible-runner was killed by a signal".into()),
            Termination::Exited(_) if code != exit_code::SUCCESS => reader
                .first_error()
                .map(str::to_owned)
                .or_else(|| Some(format!("the run failed with exit code {code}"))),
            _ => None,
        },
    }
}

async fn kill(marker: &str) {
    let marker = marker.to_owned();
    let _ = tokio::task::spawn_blocking(move || process::kill_marked(process::JOB_MARKER, &marker))
        .await;
}

async fn publish_output(
    dispatch: &JobDispatch,
    reader: &mut EventReader,
    publisher: &PublisherHandle,
    batch: &[String],
) {
    let now = Utc::now();
    let mut lines = Vec::new();
    let mut events = Vec::new();
    for raw in batch {
        let produced = reader.feed(raw, now);
        lines.extend(produced.lines);
        events.extend(produced.event);
    }
    // One ansible event can print tens of thousands of lines: split by size.
    let mut batch = Vec::new();
    let mut bytes = 0;
    for line in lines {
        if !batch.is_empty() && bytes + line.content.len() > MAX_BATCH_BYTES {
            let full = std::mem::take(&mut batch);
            bytes = 0;
            publisher
                .send(Outgoing::Logs(LogBatch {
                    job_uuid: dispatch.job_uuid,
                    lines: full,
                }))
                .await;
        }
        bytes += line.content.len() + 64;
        batch.push(line);
    }
    if !batch.is_empty() {
        publisher
            .send(Outgoing::Logs(LogBatch {
                job_uuid: dispatch.job_uuid,
                lines: batch,
            }))
            .await;
    }
    if !events.is_empty() {
        publisher
            .send(Outgoing::Events(EventBatch {
                job_uuid: dispatch.job_uuid,
                events,
            }))
            .await;
    }
}

#[cfg(test)]
mod tests;
