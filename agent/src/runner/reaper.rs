//! `drover-agent reap`: one small process per agent, started at start-up, whose only job
//! is to outlive the agent. It asks the kernel for a SIGTERM when the agent dies
//! (`PR_SET_PDEATHSIG`), even of SIGKILL, and then kills every process carrying the
//! agent's marker: ansible-runner, ansible-playbook and whatever the tasks started in
//! other sessions. One reaper serves every job, so a job costs no extra process.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the reaper ends: the agent
//! starts it from its main thread, which lives as long as the agent.
#![allow(unsafe_code)]

use super::process::{self, AGENT_MARKER, JOB_MARKER};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The first argument that selects this mode; the agent's own command line has no
/// subcommands, so this one stays out of `--help`.
pub const SUBCOMMAND: &str = "reap";
/// Signals that end the reaper, after it has killed the agent's processes.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The agent's own binary: through `/proc`, so it is the very binary the agent runs even
/// if the file was replaced since it started.
pub fn own_binary() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}

/// Starts the reaper of this agent, whose job processes carry `agent_marker`. Call it
/// from the main thread.
pub fn start(binary: &std::path::Path, agent_marker: &str) -> std::io::Result<Child> {
    Command::new(binary)
        .args([SUBCOMMAND, agent_marker, &std::process::id().to_string()])
        // The reaper is not one of the jobs' processes: the kills must not reach it.
        .env_remove(JOB_MARKER)
        .env_remove(AGENT_MARKER)
        .stdin(Stdio::null())
        .spawn()
}

/// Parses `reap <agent marker> <agent pid>`; `None` for anything else.
pub fn parse(args: &[String]) -> Option<(String, u32)> {
    match args {
        [mode, marker, pid] if mode == SUBCOMMAND && !marker.is_empty() => {
            Some((marker.clone(), pid.parse().ok()?))
        }
        _ => None,
    }
}

/// Waits for the agent's death, then kills its processes; never returns.
pub fn run(agent_marker: &str, agent_pid: u32) -> ! {
    // Blocked first, so that a SIGTERM waits for the loop below instead of killing the
    // reaper before it has cleaned up.
    let signals = block_signals();
    // SAFETY: prctl(PR_SET_PDEATHSIG) only reads its integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
    // The agent may have died between starting the reaper and the prctl: no SIGTERM
    // comes then, and the parent is already someone else.
    if std::os::unix::process::parent_id() == agent_pid {
        next_signal(&signals);
    }
    process::kill_marked(AGENT_MARKER, agent_marker);
    std::process::exit(0)
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data that sigemptyset initialises; the reaper has one
    // thread, so the mask it changes is the process's.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in STOP_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn next_signal(signals: &libc::sigset_t) -> libc::c_int {
    let mut signal = 0;
    loop {
        // SAFETY: signals was initialised by block_signals; signal is a live local.
        if unsafe { libc::sigwait(signals, &mut signal) } == 0 {
            return signal;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_its_own_arguments_select_the_mode() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse(&args(&["reap", "agent-1:42", "42"])),
            Some(("agent-1:42".to_owned(), 42))
        );
        assert_eq!(parse(&args(&["reap", "agent-1:42"])), None);
        assert_eq!(parse(&args(&["reap", "", "42"])), None);
        assert_eq!(parse(&args(&["reap", "m", "not-a-pid"])), None);
        assert_eq!(parse(&args(&["--pool", "x", "y"])), None);
    }
}
