//! Test harness: starts real processes on free loopback ports — nats-server with
//! JetStream, the coordinator, agents and, where a test needs one, an sshd target — and
//! stops them all when dropped.

pub mod playbooks;
mod sshd;
mod stack;
pub mod watchers;

pub use sshd::Sshd;
pub use stack::{ADMIN_TOKEN, RequestBody, Stack, StackOptions};

use std::path::PathBuf;
use std::sync::OnceLock;

/// Repository root (the workspace).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The `.venv` that `scripts/setup` makes: nats-server, ansible-runner, ansible-playbook.
pub fn venv_bin(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup first",
        path.display()
    );
    path
}

/// Directory of the drover binaries: `DROVER_BIN_DIR`, or release binaries built once
/// per test run (so tests never run stale binaries).
pub fn bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("DROVER_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut build = std::process::Command::new(cargo);
        // Cargo describes the test crate in these; passed on, they make build scripts
        // (ring's) think their environment changed and rebuild the TLS stack each time.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name == "CARGO_MANIFEST_DIR"
                || name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || name == "CARGO_CRATE_NAME"
                || name == "CARGO_PRIMARY_PACKAGE"
                || name == "CARGO_TARGET_TMPDIR"
            {
                build.env_remove(name);
            }
        }
        let status = build
            .current_dir(repo_root())
            .args([
                "build",
                "--release",
                "--quiet",
                // The same selection as scripts/setup: features unify the same way, so
                // neither build invalidates the other.
                "--workspace",
                "--bins",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the release binaries failed");
        repo_root().join("target/release")
    })
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Sends SIGTERM to a process (graceful stop).
pub fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// The `ssh_key_path` (relative to the agents' key dir) of the key [`Sshd`] accepts.
pub fn sshd_client_key() -> &'static str {
    sshd::CLIENT_KEY
}

/// Pids of the processes whose command line contains `needle` (this test's own
/// processes included, so make the needle unique).
pub fn processes_matching(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    let line: Vec<u8> = raw
                        .into_iter()
                        .map(|b| if b == 0 { b' ' } else { b })
                        .collect();
                    String::from_utf8_lossy(&line).contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Pids of the processes whose environment holds `name=value` (the agent marks every
/// process of a job with `DROVER_JOB_UUID=<uuid>`, which children inherit even when
/// they leave the job's session). Processes whose environment cannot be read are
/// skipped.
pub fn processes_with_env(name: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{name}={value}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|raw| raw.split(|b| *b == 0).any(|var| var == wanted.as_bytes()))
        })
        .collect()
}

/// Sends SIGKILL to one process (a test's leftover, found by its marker).
pub fn kill_pid(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}
