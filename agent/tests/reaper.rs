//! `drover-agent reap` as the real binary, under a shell that stands in for the agent:
//! when the shell is killed with SIGKILL, the reaper kills every process carrying the
//! agent's marker, in whatever session it runs.

use drover_agent::runner::process::{AGENT_MARKER, kill_marked, marked_pids};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_drover-agent");
/// Long enough for a loaded two-core machine, short enough to fail a hung test.
const PATIENCE: Duration = Duration::from_secs(30);

fn needle(marker: &str) -> Vec<u8> {
    format!("{AGENT_MARKER}={marker}\0").into_bytes()
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

/// Reapers running for `marker` (their arguments are `reap`, the marker, the pid).
fn reapers(marker: &str) -> usize {
    let text = format!("reap\0{marker}\0");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(text.len()).any(|w| w == text.as_bytes()))
        })
        .count()
}

/// Kills whatever a test left running, passed or failed.
struct KillLeftovers(String);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        kill_marked(AGENT_MARKER, &self.0);
    }
}

/// SIGKILLs a stand-in agent a failed test left behind.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// The agent's processes, and its reaper, end with a SIGKILLed agent.
#[test]
fn the_reaper_kills_the_agents_processes_when_the_agent_is_killed() {
    let marker = format!("reaper-test-{}", uuid::Uuid::new_v4());
    let _cleanup = KillLeftovers(marker.clone());
    // The shell plays the agent: it starts its reaper, then two marked "jobs", one in a
    // session of its own as Ansible's tasks are, and waits.
    let script = format!(
        "{AGENT} reap {marker} $$ & \
         {AGENT_MARKER}={marker} setsid sleep 300 & \
         {AGENT_MARKER}={marker} sleep 300 & \
         wait"
    );
    let mut agent = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the stand-in agent starts");
    let _agent_cleanup = KillOnDrop(agent.id());
    assert!(
        eventually(PATIENCE, || {
            marked_pids(&needle(&marker), 0).len() == 2 && reapers(&marker) == 1
        }),
        "the two jobs and the reaper did not start"
    );
    // Time for the reaper to arm PR_SET_PDEATHSIG before its agent dies.
    std::thread::sleep(Duration::from_millis(300));
    agent.kill().expect("SIGKILL the stand-in agent");
    agent.wait().expect("reaped");
    assert!(
        eventually(Duration::from_secs(5), || {
            marked_pids(&needle(&marker), 0).is_empty()
        }),
        "processes of the dead agent are left: {:?}",
        marked_pids(&needle(&marker), 0)
    );
    assert!(
        eventually(Duration::from_secs(5), || reapers(&marker) == 0),
        "the reaper outlived its work"
    );
}

/// A reaper whose agent is already gone kills what is left at once and exits.
#[test]
fn a_reaper_without_its_agent_cleans_up_and_exits() {
    let marker = format!("reaper-orphan-{}", uuid::Uuid::new_v4());
    let _cleanup = KillLeftovers(marker.clone());
    let mut job = Command::new("setsid")
        .args(["sleep", "300"])
        .env(AGENT_MARKER, &marker)
        .spawn()
        .expect("a marked process starts");
    assert!(eventually(PATIENCE, || {
        marked_pids(&needle(&marker), 0).len() == 1
    }));
    // Pid 1 is not the reaper's parent (this test is): its agent is gone.
    let status = Command::new(AGENT)
        .args(["reap", &marker, "1"])
        .status()
        .expect("the reaper runs");
    assert!(status.success());
    let _ = job.wait();
    assert!(marked_pids(&needle(&marker), 0).is_empty());
}

/// The reaper's mode stays out of the agent's own command line.
#[test]
fn help_does_not_mention_the_reaper() {
    let output = Command::new(AGENT).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--pool"), "{help}");
    assert!(!help.contains("reap"), "{help}");
}
