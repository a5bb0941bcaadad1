//! Drover's shared vocabulary: everything the coordinator and the agents must agree on.
//!
//! - [`protocol`]: every NATS message, its subject and its MessagePack codec.
//! - [`domain`]: job statuses, log levels, server connection kinds.
//! - [`classify`]: the log-level classifier for Ansible output lines.
//! - [`exit_code`]: the mapping from an ansible-runner result to Drover's exit codes.
//! - [`sse`]: a parser for the Server-Sent Events the coordinator streams.
//!
//! No sockets, no files: the crate is pure data and functions, tested on bytes and strings.

pub mod classify;
pub mod domain;
pub mod exit_code;
pub mod protocol;
pub mod sse;

pub use classify::classify;
pub use domain::{Connection, JobStatus, LogLevel};
pub use exit_code::{RunOutcome, Termination, exit_code};
