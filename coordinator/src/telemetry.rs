//! Counters of what the coordinator refused or repeated, so a hostile or broken sender
//! is visible without reading logs. `GET /healthz` shows them.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use utoipa::ToSchema;

#[derive(Debug, Default)]
pub struct Counters {
    /// Agents' messages stored.
    pub ingest_applied: AtomicU64,
    /// Agents' messages already stored (a redelivery or a replay): nothing changed.
    pub ingest_duplicates: AtomicU64,
    /// Agents' messages refused by the store's rules (unknown job, wrong agent, ...).
    pub ingest_rejected: AtomicU64,
    /// Messages that could not be decoded, or named another job than their subject.
    pub ingest_malformed: AtomicU64,
    /// Heartbeats that could not be decoded or named another agent than their subject.
    pub heartbeats_rejected: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
pub struct CountersView {
    pub ingest_applied: u64,
    pub ingest_duplicates: u64,
    pub ingest_rejected: u64,
    pub ingest_malformed: u64,
    pub heartbeats_rejected: u64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersView {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersView {
            ingest_applied: read(&self.ingest_applied),
            ingest_duplicates: read(&self.ingest_duplicates),
            ingest_rejected: read(&self.ingest_rejected),
            ingest_malformed: read(&self.ingest_malformed),
            heartbeats_rejected: read(&self.heartbeats_rejected),
        }
    }
}
