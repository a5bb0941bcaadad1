//! `drover-agent supervise` as the real binary, under a parent that stands in for the
//! agent: killed with SIGKILL, the parent takes the job's processes with it.

use drover_agent::runner::process::{JOB_MARKER, kill_marked, marked_pids};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_drover-agent");
/// Long enough for a loaded two-core machine, short enough to fail a hung test.
const PATIENCE: Duration = Duration::from_secs(30);

/// An executable stand-in for ansible-runner.
fn fake_runner(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("ansible-runner");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("writes the script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn unique_marker() -> String {
    format!("supervisor-test-{}", uuid::Uuid::new_v4())
}

fn needle(marker: &str) -> Vec<u8> {
    format!("{JOB_MARKER}={marker}\0").into_bytes()
}

/// Pids of the processes whose arguments (program first) satisfy `matches`.
fn processes(matches: impl Fn(&[&[u8]]) -> bool) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| {
                let args: Vec<&[u8]> = line
                    .strip_suffix(b"\0")
                    .unwrap_or(&line)
                    .split(|b| *b == 0)
                    .collect();
                matches(&args)
            })
        })
        .collect()
}

/// Polls `check` until it returns true or `within` passes.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills whatever a test left running, passed or failed.
struct KillLeftovers(String);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        kill_marked(JOB_MARKER, &self.0);
    }
}

/// Runs the supervisor as a child of this test, which plays the agent.
fn supervise(marker: &str, agent_pid: u32, runner: &Path) -> Output {
    Command::new(AGENT)
        .args([
            "supervise",
            "--job-marker",
            marker,
            "--agent-marker",
            "test",
        ])
        .args(["--agent-pid", &agent_pid.to_string(), "--"])
        .arg(runner)
        .stdin(Stdio::null())
        .output()
        .expect("the supervisor runs")
}

#[test]
fn sigkill_of_the_agent_kills_every_process_of_the_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = unique_marker();
    let _cleanup = KillLeftovers(marker.clone());
    // A duration no other process on the machine sleeps for.
    let seconds = (3_000_000 + std::process::id()).to_string();
    let runner = fake_runner(
        dir.path(),
        &format!("setsid sleep {seconds} &\necho started\nwait"),
    );
    // The stand-in agent: a shell that starts the supervisor, as the agent does, and waits.
    let agent = Command::new("/bin/sh")
        .arg("-c")
        .arg(
            r#""$0" supervise --job-marker "$1" --agent-marker test --agent-pid $$ -- "$2" & wait"#,
        )
        .args([Path::new(AGENT), Path::new(&marker), runner.as_path()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("the stand-in agent starts");
    let mut agent = ChildGuard(agent);
    let needle = needle(&marker);
    let sleeps = || processes(|args| args == [b"sleep".as_slice(), seconds.as_bytes()]);
    let supervisors = || processes(|args| args.contains(&marker.as_bytes()));
    assert!(
        eventually(PATIENCE, || marked_pids(&needle, 0).len() >= 2
            && !sleeps().is_empty()),
        "the runner and its sleep in another session did not start"
    );

    agent.kill().expect("SIGKILL"); // std's Child::kill is SIGKILL
    agent.wait().expect("reaped");

    let gone = eventually(Duration::from_secs(5), || {
        marked_pids(&needle, 0).is_empty() && sleeps().is_empty()
    });
    assert!(
        gone,
        "left after the agent's SIGKILL: marked {:?}, sleep {:?}",
        marked_pids(&needle, 0),
        sleeps()
    );
    // And the supervisor went too, its work done.
    let supervisor_gone = eventually(Duration::from_secs(5), || supervisors().is_empty());
    assert!(supervisor_gone, "the supervisor is still running");
}

/// A child killed (SIGKILL) and reaped when the test ends early.
struct ChildGuard(std::process::Child);

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_runners_output_and_end_pass_through() {
    let dir = tempfile::tempdir().expect("temp dir");
    let me = std::process::id();
    let runner = fake_runner(dir.path(), "echo out\necho err >&2\nexit 3");
    let output = supervise(&unique_marker(), me, &runner);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");

    let runner = fake_runner(dir.path(), "kill -KILL $$");
    let output = supervise(&unique_marker(), me, &runner);
    assert_eq!(output.status.signal(), Some(libc::SIGKILL));
    assert!(!output.status.core_dumped());

    let runner = fake_runner(dir.path(), "exit 0");
    assert!(supervise(&unique_marker(), me, &runner).status.success());
}

#[test]
fn a_supervisor_whose_agent_is_already_gone_starts_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = dir.path().join("started");
    let runner = fake_runner(dir.path(), &format!("touch {}", started.display()));
    // Its parent is this test, not the agent pid it is told: the agent died before the
    // supervisor could ask to be told.
    let output = supervise(&unique_marker(), 1, &runner);
    assert_eq!(output.status.signal(), Some(libc::SIGTERM));
    assert!(!started.exists(), "the runner started");
}

#[test]
fn a_missing_runner_is_reported_on_stderr() {
    let output = supervise(
        &unique_marker(),
        std::process::id(),
        Path::new("/nonexistent"),
    );
    assert_eq!(output.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot start /nonexistent"), "{stderr}");
}

#[test]
fn the_agents_own_command_line_is_unchanged() {
    let help = Command::new(AGENT).arg("--help").output().expect("runs");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--nats-url"), "{help}");
    assert!(
        !help.contains("supervise"),
        "the internal mode shows in --help"
    );
}
