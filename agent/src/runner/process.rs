//! The ansible-runner process of one job: started in its own process group with a
//! marker in its environment, its output read on a plain thread, its exit and resource
//! usage collected with `wait4`. Killing a job kills every process carrying the marker:
//! ansible-runner starts ansible-playbook in a new session, so neither the process
//! group nor the parent chain reaches everything, but the environment is inherited.
#![allow(unsafe_code)]

use drover_shared::protocol::ResourceUsage;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Environment variable that marks every process of a job.
pub const JOB_MARKER: &str = "DROVER_JOB_UUID";
/// Environment variable that marks every job process an agent started.
pub const AGENT_MARKER: &str = "DROVER_AGENT_ID";
/// Output lines buffered between the reader thread and the job; when full the reader
/// waits, and so does ansible-runner on its pipe: nothing is dropped.
const OUTPUT_QUEUE: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct ExitInfo {
    /// Exit code, when the process exited rather than died of a signal.
    pub code: Option<i32>,
    pub usage: ResourceUsage,
}

pub struct Spawned {
    pub pid: u32,
    /// Lines of stdout and stderr; closed when both pipes are.
    pub output: mpsc::Receiver<String>,
    pub exit: oneshot::Receiver<ExitInfo>,
}

pub fn spawn(
    program: &Path,
    args: &[&OsStr],
    job_marker: &str,
    agent_marker: &str,
    extra_path: Option<&Path>,
) -> std::io::Result<Spawned> {
    let mut command = Command::new(program);
    command
        .args(args)
        .env(JOB_MARKER, job_marker)
        .env(AGENT_MARKER, agent_marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = extra_path {
        // ansible-runner finds ansible-playbook on PATH: put its own directory first.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut joined = dir.as_os_str().to_owned();
        joined.push(":");
        joined.push(path);
        command.env("PATH", joined);
    }
    let mut child = command.spawn()?;
    let pid = child.id();
    let (lines, output) = mpsc::channel(OUTPUT_QUEUE);
    if let Some(stdout) = child.stdout.take() {
        forward_lines(stdout, lines.clone(), "runner-stdout");
    }
    if let Some(stderr) = child.stderr.take() {
        forward_lines(stderr, lines, "runner-stderr");
    }
    // std's Child is dropped without waiting: wait4 below reaps the process itself.
    drop(child);
    let (exited, exit) = oneshot::channel();
    std::thread::Builder::new()
        .name("runner-wait".into())
        .spawn(move || {
            let _ = exited.send(wait(pid));
        })?;
    Ok(Spawned { pid, output, exit })
}

fn forward_lines(pipe: impl Read + Send + 'static, lines: mpsc::Sender<String>, name: &str) {
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buffer = Vec::with_capacity(4096);
            loop {
                buffer.clear();
                match reader.read_until(b'\n', &mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buffer).into_owned();
                        if lines.blocking_send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start an output reader thread");
    }
}

fn wait(pid: u32) -> ExitInfo {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let result = loop {
        // SAFETY: pid is our own child, not reaped by anyone else (std's Child was
        // dropped without waiting); status and usage point to live locals.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break r;
    };
    let code = (result == pid as libc::pid_t && libc::WIFEXITED(status))
        .then(|| libc::WEXITSTATUS(status));
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ExitInfo {
        code,
        usage: ResourceUsage {
            cpu_user_secs: seconds(usage.ru_utime),
            cpu_system_secs: seconds(usage.ru_stime),
            max_rss_kb: usage.ru_maxrss.max(0) as u64,
        },
    }
}

/// Kills every process whose environment carries `<variable>=<value>` (a job's or an
/// agent's marker), until none is left. Returns how many were signalled.
pub fn kill_marked(variable: &str, value: &str) -> usize {
    let needle = format!("{variable}={value}\0").into_bytes();
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..50 {
        let found = marked_pids(&needle, me);
        if found.is_empty() {
            break;
        }
        for pid in found {
            // SAFETY: kill has no memory effects; pid was read from /proc just now.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            killed += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    killed
}

/// Processes still alive (not zombies) whose environment contains `needle`.
pub fn marked_pids(needle: &[u8], skip: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != skip)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_output_and_exit_code() {
        let args = [
            OsStr::new("-c"),
            OsStr::new("echo one; echo two >&2; exit 3"),
        ];
        let mut spawned =
            spawn(Path::new("/bin/sh"), &args, "test-read", "test-agent", None).expect("spawns");
        let mut lines = Vec::new();
        while let Some(line) = spawned.output.recv().await {
            lines.push(line.trim_end().to_owned());
        }
        lines.sort();
        assert_eq!(lines, ["one", "two"]);
        let exit = spawned.exit.await.expect("exit reported");
        assert_eq!(exit.code, Some(3));
    }

    #[tokio::test]
    async fn kill_marked_reaches_processes_in_other_sessions() {
        let marker = format!("test-kill-{}", std::process::id());
        // setsid puts the sleep in its own session, as ansible-runner does with Ansible.
        let args = [OsStr::new("-c"), OsStr::new("setsid sleep 300 & sleep 300")];
        let spawned =
            spawn(Path::new("/bin/sh"), &args, &marker, "test-agent", None).expect("spawns");
        let needle = format!("{JOB_MARKER}={marker}\0").into_bytes();
        for _ in 0..100 {
            if marked_pids(&needle, 0).len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            marked_pids(&needle, 0).len() >= 3,
            "shell and both sleeps run"
        );
        assert!(kill_marked(JOB_MARKER, &marker) >= 3);
        let exit = spawned.exit.await.expect("exit reported");
        assert_eq!(exit.code, None, "killed by a signal");
        assert!(
            marked_pids(&needle, 0).is_empty(),
            "no process of the job is left"
        );
    }
}
