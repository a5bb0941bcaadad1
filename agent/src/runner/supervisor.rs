//! `drover-agent supervise`: the guard between the agent and one ansible-runner, so that
//! a job's processes die with the agent even when the agent is killed with SIGKILL and
//! runs no code of its own.
//!
//! The agent starts `drover-agent supervise ... -- ansible-runner run ...` instead of
//! ansible-runner (see [`process::spawn`]), with the output pipes ansible-runner would
//! have had. The supervisor asks the kernel for a SIGTERM when the agent dies
//! (`PR_SET_PDEATHSIG`), starts ansible-runner with the job's markers in its environment,
//! and waits for one of two things:
//!
//! - ansible-runner ends: the supervisor reaps it and ends the same way (the same exit
//!   code, or killed by the same signal). The agent's `wait4` of the supervisor then sees
//!   what it saw of ansible-runner before, resource usage included: a reaped child's
//!   usage is added to its parent's, and `ru_maxrss` is the largest of the tree's.
//! - SIGTERM (the agent died, or someone asked), SIGINT or SIGHUP: it kills every process
//!   carrying the job's marker, reaps ansible-runner and dies of that signal.
//!
//! The supervisor does not carry the markers itself: the agent's cancel, timeout and
//! shutdown kill the marked processes directly, as they did before the supervisor, and
//! the supervisor has to outlive them to reap ansible-runner, or the usage of the run
//! would be lost with it.
#![allow(unsafe_code)]

use super::process::{self, AGENT_MARKER, JOB_MARKER};
use clap::Parser;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// The first argument that selects this mode; the agent's own command line has no
/// subcommands, so this one stays out of `--help`.
pub const SUBCOMMAND: &str = "supervise";
/// Exit code when ansible-runner cannot be started: the shells' "cannot execute".
const CANNOT_START: i32 = 127;
/// Signals that stop the run: the agent's death (`PR_SET_PDEATHSIG`), or an operator's.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The supervisor's command line. [`Args::to_argv`] writes it, clap reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "drover-agent supervise",
    about = "Internal: runs one job's ansible-runner for the agent and kills the job's \
             processes when the agent dies"
)]
pub struct Args {
    /// `DROVER_JOB_UUID` of the runner and of everything it starts.
    #[arg(long)]
    pub job_marker: String,
    /// `DROVER_AGENT_ID` of the runner and of everything it starts.
    #[arg(long)]
    pub agent_marker: String,
    /// The agent's pid: when the parent is already someone else, the agent died before
    /// the supervisor could ask to be told.
    #[arg(long)]
    pub agent_pid: u32,
    /// Inherited pipe that reports whether ansible-runner started: closed empty when it
    /// did, the error (see [`decode_start_error`]) when it did not.
    #[arg(long)]
    pub status_fd: Option<RawFd>,
    /// ansible-runner and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

impl Args {
    /// The arguments after the program name, [`SUBCOMMAND`] first.
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![
            SUBCOMMAND.into(),
            "--job-marker".into(),
            self.job_marker.clone().into(),
            "--agent-marker".into(),
            self.agent_marker.clone().into(),
            "--agent-pid".into(),
            self.agent_pid.to_string().into(),
        ];
        if let Some(fd) = self.status_fd {
            argv.extend(["--status-fd".into(), fd.to_string().into()]);
        }
        argv.push("--".into());
        argv.extend(self.command.iter().cloned());
        argv
    }
}

/// The agent's own binary, which it runs as each job's supervisor: through `/proc`, so it
/// is the very binary the agent runs even if the file was replaced since it started.
pub fn own_binary() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}

/// Supervises one run; never returns.
pub fn run(args: Args) -> ! {
    // First of all: from here on a SIGTERM waits (blocked) until the loop below takes it,
    // instead of killing the supervisor before it has cleaned up.
    let signals = block_signals();
    // SAFETY: prctl(PR_SET_PDEATHSIG) only reads its integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
    let status = args.status_fd.and_then(StatusPipe::adopt);
    // The agent may have died between starting the supervisor and the prctl: no SIGTERM
    // will come then, and the parent is already someone else (init or a subreaper).
    if std::os::unix::process::parent_id() != args.agent_pid {
        process::kill_marked(JOB_MARKER, &args.job_marker);
        die_of(libc::SIGTERM);
    }
    let runner = match start_runner(&args) {
        Ok(pid) => pid,
        Err(e) => {
            let program = args.command.first().cloned().unwrap_or_default();
            let _ = writeln!(
                io::stderr(),
                "drover-agent supervise: cannot start {}: {e}",
                program.to_string_lossy()
            );
            if let Some(status) = status {
                status.report(&e);
            }
            std::process::exit(CANNOT_START);
        }
    };
    // Closed empty: the agent now knows the runner started.
    drop(status);

    let mut stopped_by = None;
    let ended = loop {
        let signal = next_signal(&signals);
        if signal == libc::SIGCHLD {
            // The runner is the supervisor's only child.
            if let Some((status, _)) = process::reap(runner, libc::WNOHANG) {
                break status;
            }
        } else if stopped_by.is_none() {
            stopped_by = Some(signal);
            stop(runner, &args.job_marker);
        }
    };
    match stopped_by {
        Some(signal) => die_of(signal),
        None if libc::WIFSIGNALED(ended) => die_of(libc::WTERMSIG(ended)),
        None if libc::WIFEXITED(ended) => std::process::exit(libc::WEXITSTATUS(ended)),
        None => std::process::exit(1),
    }
}

/// Starts ansible-runner, marked, in its own process group as the agent did before the
/// supervisor: a terminal's signals do not reach it. Its stdio are the supervisor's.
fn start_runner(args: &Args) -> io::Result<u32> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no command to supervise",
        ));
    };
    let mut command = Command::new(program);
    command
        .args(rest)
        .env(JOB_MARKER, &args.job_marker)
        .env(AGENT_MARKER, &args.agent_marker)
        .process_group(0);
    // SAFETY: runs in the child between fork and exec, where only async-signal-safe calls
    // may be made: sigemptyset and pthread_sigmask are, and set is the child's own copy.
    // The signal mask survives exec, and the runner must not start with the supervisor's
    // signals blocked: ansible-runner and Ansible would ignore SIGTERM and SIGINT.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            match libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) {
                0 => Ok(()),
                errno => Err(io::Error::from_raw_os_error(errno)),
            }
        });
    }
    let child = command.spawn()?;
    // std's Child is dropped without waiting: process::reap collects the runner, so its
    // resource usage is added to the supervisor's children's.
    Ok(child.id())
}

/// Kills the job: every marked process, and the runner's own group in case it is past
/// reading (a zombie has no environment, and then the group is what is left).
fn stop(runner: u32, job_marker: &str) {
    process::kill_marked(JOB_MARKER, job_marker);
    // SAFETY: kill has no memory effects; the runner is this process's child and not
    // reaped yet, so neither its pid nor its process group id can have been reused.
    unsafe { libc::kill(-(runner as libc::pid_t), libc::SIGKILL) };
}

/// Blocks the stop signals and SIGCHLD, to be taken one at a time by [`next_signal`].
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data that sigemptyset initialises; the supervisor has one
    // thread, so the mask it changes is the process's. SIGCHLD goes back to its default
    // because an ignored one (inherited through exec) would have the kernel reap the
    // runner itself and drop its resource usage.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in STOP_SIGNALS.into_iter().chain([libc::SIGCHLD]) {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
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

/// Ends the supervisor as if killed by `signal`, so the agent sees a killed run as it did
/// without the supervisor; no core file is left behind.
fn die_of(signal: libc::c_int) -> ! {
    // SAFETY: these calls only take integers and a sigset_t initialised by sigemptyset;
    // the supervisor has one thread, and nothing of its state needs to survive.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    // Still here: a signal that does not kill by default. The shells' convention, then.
    std::process::exit(128 + signal)
}

/// The supervisor's end of `--status-fd`.
struct StatusPipe(File);

impl StatusPipe {
    /// Takes the inherited descriptor, kept from ansible-runner, or `None` if it is not
    /// an open descriptor above stdio.
    fn adopt(fd: RawFd) -> Option<StatusPipe> {
        if fd <= 2 {
            return None;
        }
        // SAFETY: fcntl(F_SETFD) only changes the descriptor's close-on-exec flag, and
        // fails harmlessly when fd is not open.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            return None;
        }
        // SAFETY: fd is open (fcntl succeeded) and the agent handed it to this process for
        // this use only; nothing else here owns it.
        Some(StatusPipe(unsafe { File::from_raw_fd(fd) }))
    }

    fn report(mut self, error: &io::Error) {
        let _ = self.0.write_all(encode_start_error(error).as_bytes());
    }
}

/// What the status pipe carries when ansible-runner could not be started.
fn encode_start_error(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(errno) => format!("errno {errno}"),
        None => format!("error {error}"),
    }
}

/// Reads the status pipe after the supervisor closed it: `None` when the runner started
/// (nothing was written), the error otherwise.
pub fn decode_start_error(report: &str) -> Option<io::Error> {
    if report.is_empty() {
        return None;
    }
    Some(match report.strip_prefix("errno ").map(str::parse) {
        Some(Ok(errno)) => io::Error::from_raw_os_error(errno),
        _ => io::Error::other(report.strip_prefix("error ").unwrap_or(report).to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_reads_back() {
        let args = Args {
            job_marker: "0b7c".into(),
            agent_marker: "edge-1:42".into(),
            agent_pid: 42,
            status_fd: Some(7),
            command: vec!["/venv/ansible-runner".into(), "run".into(), "--".into()],
        };
        let argv = std::iter::once(OsString::from("drover-agent")).chain(args.to_argv());
        // As main does: "supervise" stands in for the program name.
        let read = Args::try_parse_from(argv.skip(1)).expect("parses");
        assert_eq!(read, args);
    }

    #[test]
    fn start_errors_cross_the_pipe() {
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        let read = decode_start_error(&encode_start_error(&missing)).expect("an error");
        assert_eq!(read.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(read.to_string(), missing.to_string());
        let other = io::Error::other("no command to supervise");
        let read = decode_start_error(&encode_start_error(&other)).expect("an error");
        assert_eq!(read.to_string(), "no command to supervise");
        assert!(decode_start_error("").is_none());
    }
}
