//! The Drover agent.
//!
//! The [`pool`] actor pulls dispatches from the pool's JetStream work queue whenever it
//! has a free slot (`--concurrency`), claims each from the coordinator over
//! `drover.coord.claim`, and starts a [`job`] actor per granted job. A job actor runs
//! [`execute`]: it writes the ansible-runner private data dir and starts the run
//! ([`runner`]), turns the event stream into numbered, classified lines and events, and
//! hands them to the job's [`publisher`], the single task that publishes them in order
//! to `drover.jobs.<uuid>.*`, followed by the final status.

pub mod bus;
pub mod config;
pub mod error;
pub mod execute;
pub mod job;
pub mod pool;
pub mod publisher;
pub mod runner;
