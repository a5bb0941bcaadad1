//! The Drover agent.
//!
//! The [`pool`] actor pulls dispatches from the pool's JetStream work queue whenever it
//! has a free slot (`--concurrency`), claims each from the coordinator over
//! `drover.coord.claim`, and starts a [`job`] actor per granted job. A job actor runs
//! [`execute`]: it writes the ansible-runner private data dir and starts the run
//! ([`runner`]); a reaper process started with the agent (its own binary, `drover-agent
//! reap`) kills every job's processes if the agent dies, even of SIGKILL. The run
//! turns the event stream into numbered, classified lines and events, and hands them to
//! the job's [`publisher`], the single task that publishes them in order to
//! `drover.jobs.<uuid>.*`, followed by the final status.
//!
//! Cancels travel the other way: [`cancel`] subscribes to `drover.jobs.*.cancel` and
//! hands each request to the pool, which forwards it to the job's actor, whose run loop
//! kills the job's processes; a cancel for a job not started yet is remembered so its
//! dispatch, if it still arrives, only reports `cancelled`.

pub mod bus;
pub mod cancel;
pub mod config;
pub mod error;
pub mod execute;
pub mod job;
pub mod pool;
pub mod publisher;
pub mod runner;
#[cfg(test)]
mod test_support;
