//! The ansible-runner process of one job: started in its own process group with markers
//! in its environment, its output read on plain threads, its exit and resource usage
//! collected with `wait4`. Killing a job kills every process carrying the job's marker:
//! ansible-runner starts ansible-playbook in a new session, so neither the process group
//! nor the parent chain reaches everything, but the environment is inherited. If the
//! agent itself dies, its [`reaper`](super::reaper) kills what carries the agent's marker.
#![allow(unsafe_code)]

use drover_shared::protocol::ResourceUsage;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
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

/// How to start one job's ansible-runner.
pub struct RunnerCommand<'a> {
    pub program: &'a Path,
    pub args: &'a [&'a OsStr],
    pub job_marker: &'a str,
    pub agent_marker: &'a str,
    /// Put first on ansible-runner's PATH.
    pub extra_path: Option<&'a Path>,
}

/// Starts ansible-runner with the job's and the agent's markers in its environment.
pub async fn spawn(run: RunnerCommand<'_>) -> io::Result<Spawned> {
    let mut command = Command::new(run.program);
    command
        .args(run.args)
        .env(JOB_MARKER, run.job_marker)
        .env(AGENT_MARKER, run.agent_marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = run.extra_path {
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
    let reaped = reap(pid, 0);
    let code =
        reaped.and_then(|(status, _)| libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)));
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let usage = reaped.map(|(_, usage)| usage);
    ExitInfo {
        code,
        usage: ResourceUsage {
            cpu_user_secs: usage.map_or(0.0, |u| seconds(u.ru_utime)),
            cpu_system_secs: usage.map_or(0.0, |u| seconds(u.ru_stime)),
            max_rss_kb: usage.map_or(0, |u| u.ru_maxrss.max(0) as u64),
        },
    }
}

/// Reaps the child `pid` with `wait4`: its raw wait status, and the resources used by it
/// and by the descendants it reaped (`ru_maxrss`: the largest of them). `None` when it
/// has not ended yet (with `WNOHANG`) or is not this process's child to wait for.
pub(crate) fn reap(pid: u32, options: libc::c_int) -> Option<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, reaped by nobody else (std's Child was dropped
        // without waiting); status and usage point to live locals.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, options, &mut usage) };
        if r == pid as libc::pid_t {
            return Some((status, usage));
        }
        if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
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

    /// Runs `script` under `/bin/sh` as the job's runner.
    async fn run_script(script: &str, marker: &str) -> io::Result<Spawned> {
        spawn(RunnerCommand {
            program: Path::new("/bin/sh"),
            args: &[OsStr::new("-c"), OsStr::new(script)],
            job_marker: marker,
            agent_marker: "test-agent",
            extra_path: None,
        })
        .await
    }

    fn unique_marker(test: &str) -> String {
        format!("{test}-{}", uuid::Uuid::new_v4())
    }

    /// Kills what a test left running, passed or failed.
    struct KillLeftovers(String);

    impl Drop for KillLeftovers {
        fn drop(&mut self) {
            kill_marked(JOB_MARKER, &self.0);
        }
    }

    async fn wait_for_marked(needle: &[u8], at_least: usize) {
        for _ in 0..500 {
            if marked_pids(needle, 0).len() >= at_least {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {at_least} processes of the job started");
    }

    #[tokio::test]
    async fn reads_output_and_exit_code() {
        let script = "echo one; echo two >&2; exit 3";
        let mut spawned = run_script(script, "test-read").await.expect("spawns");
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
    async fn a_runner_killed_by_a_signal_has_no_exit_code() {
        let spawned = run_script("kill -TERM $$", "test-signal")
            .await
            .expect("spawns");
        let exit = spawned.exit.await.expect("exit reported");
        assert_eq!(exit.code, None, "killed by a signal");
    }

    #[tokio::test]
    async fn a_runner_that_cannot_start_is_an_error() {
        let result = spawn(RunnerCommand {
            program: Path::new("/nonexistent/ansible-runner"),
            args: &[OsStr::new("run")],
            job_marker: "test-missing",
            agent_marker: "test-agent",
            extra_path: None,
        })
        .await;
        let Err(error) = result else {
            panic!("a missing runner started");
        };
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT), "{error}");
        let not_executable = tempfile::NamedTempFile::new().expect("temp file");
        let result = spawn(RunnerCommand {
            program: not_executable.path(),
            args: &[],
            job_marker: "test-not-executable",
            agent_marker: "test-agent",
            extra_path: None,
        })
        .await;
        let Err(error) = result else {
            panic!("a file without the x bit started");
        };
        assert_eq!(error.raw_os_error(), Some(libc::EACCES), "{error}");
    }

    #[tokio::test]
    async fn the_runner_gets_the_markers() {
        let marker = unique_marker("test-env");
        let script = "echo job=$DROVER_JOB_UUID agent=$DROVER_AGENT_ID";
        let mut spawned = run_script(script, &marker).await.expect("spawns");
        let line = spawned.output.recv().await.expect("a line");
        assert_eq!(line.trim_end(), format!("job={marker} agent=test-agent"));
        assert_eq!(spawned.exit.await.expect("exit reported").code, Some(0));
    }

    /// The blocked and ignored standard signals (1 to 31) in a `/proc/<pid>/status`.
    /// Above them are glibc's own (SIGCANCEL, SIGSETXID), which its `posix_spawn` leaves
    /// ignored in the child and fork does not; no program relies on their state.
    #[tokio::test]
    async fn resource_usage_covers_the_runners_tree() {
        // A grandchild holding 40 MB, and the runner's shell busy for a while.
        let script = "head -c 40000000 /dev/zero | sort > /dev/null; \
                      i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";
        let spawned = run_script(script, "test-usage").await.expect("spawns");
        let usage = spawned.exit.await.expect("exit reported").usage;
        assert!(usage.max_rss_kb > 30_000, "{usage:?}");
        assert!(
            usage.cpu_user_secs + usage.cpu_system_secs > 0.03,
            "{usage:?}"
        );
    }

    #[tokio::test]
    async fn kill_marked_reaches_processes_in_other_sessions() {
        let marker = unique_marker("test-kill");
        let _cleanup = KillLeftovers(marker.clone());
        // setsid puts the sleep in its own session, as ansible-runner does with Ansible.
        let spawned = run_script("setsid sleep 300 & sleep 300", &marker)
            .await
            .expect("spawns");
        let needle = format!("{JOB_MARKER}={marker}\0").into_bytes();
        wait_for_marked(&needle, 3).await; // the shell and both sleeps
        assert!(kill_marked(JOB_MARKER, &marker) >= 3);
        let exit = spawned.exit.await.expect("exit reported");
        assert_eq!(exit.code, None, "killed by a signal");
        assert!(
            marked_pids(&needle, 0).is_empty(),
            "no process of the job is left"
        );
    }
}
