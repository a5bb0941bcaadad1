//! The coordinator's record: one redb file.
//!
//! Reads run on tokio's blocking pool against their own read transaction and never wait
//! for writers. Every write goes through one writer thread ([`writer`]) that groups
//! whatever changes are queued into one durable commit, so a burst of log batches or job
//! submissions costs one fsync, not one each.

mod audit;
mod catalog;
mod job_control;
mod job_index;
mod job_list;
mod jobs;
mod leases;
mod log_search;
mod monitor;
mod records;
mod server_queue;
mod tables;
mod timeline;
mod users;
mod webhooks;
mod writer;

pub use audit::{Audit, AuditQuery};
pub use catalog::{NewPlaybook, NewServer};
pub use job_control::{CancelOutcome, NewTicket};
pub use job_list::{JobQuery, Page, Paged, PlaybookCount, Statistics};
pub use jobs::{
    Ingest, IngestOutcome, Ingested, JobDetail, JobFilter, JobProgress, LogPage, NewJob,
};
pub use leases::Reaped;
pub use log_search::{LogFilter, LogMatches};
pub use monitor::{PlaybookHealth, RunningJob, StoreObservation};
pub use records::{
    AuditRecord, FailureSummary, JobRecord, LogRecord, PlaybookRecord, Priority, Role,
    ServerRecord, TicketRecord, TokenRecord, UserRecord,
};
pub use timeline::HourBucket;
pub use users::NewUser;
pub use webhooks::{
    AttemptRecord, DELIVERIES_KEPT, DeliveryRecord, DeliveryState, NewDelivery, NewWebhook,
    WebhookRecord,
};

use crate::error::Error;
use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use std::path::Path;
use std::sync::Arc;
use writer::WriterHandle;

/// Name of the redb file under `--data-dir`.
pub const DB_FILE: &str = "drover.redb";
/// redb's page cache. Its default (1 GiB) would let the coordinator's memory grow with
/// the logs it reads; recent pages are what live watchers need.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: WriterHandle,
    /// Reads running at once. Each takes a blocking-pool thread; a hundred live
    /// streams must not mean a hundred threads (and their memory).
    read_slots: Arc<tokio::sync::Semaphore>,
    /// Set when a job was held for its server since the last look found none: spares the
    /// release check a read after every status change when nothing waits.
    held_hint: Arc<std::sync::atomic::AtomicBool>,
    /// Webhooks in the store: while there are none, the webhook loop skips its read of
    /// each finished job.
    webhooks_stored: Arc<std::sync::atomic::AtomicU64>,
}

/// Most store reads in flight; more wait their turn (reads take well under 1 ms).
const MAX_CONCURRENT_READS: usize = 8;

impl Store {
    /// Opens (or creates) the store under `data_dir` and starts its writer thread.
    pub fn open(data_dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let db = Arc::new(
            redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(data_dir.join(DB_FILE))
                .map_err(redb::Error::from)?,
        );
        let setup = db.begin_write().map_err(redb::Error::from)?;
        tables::create_all(&setup)?;
        let webhooks = {
            use redb::ReadableTableMetadata;
            setup.open_table(tables::WEBHOOKS)?.len()?
        };
        setup.commit().map_err(redb::Error::from)?;
        let writer = writer::spawn(db.clone());
        Ok(Store {
            db,
            writer,
            read_slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_READS)),
            // A restart may find held jobs: look once.
            held_hint: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            webhooks_stored: Arc::new(std::sync::atomic::AtomicU64::new(webhooks)),
        })
    }

    /// Runs `f` against a consistent snapshot on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, Error> + Send + 'static,
    {
        let db = self.db.clone();
        let _slot = self
            .read_slots
            .acquire()
            .await
            .map_err(|_| Error::Internal("the store's read slots are closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(redb::Error::from)?;
            f(&tx)
        })
        .await
        .map_err(|e| Error::Internal(format!("a store read failed: {e}")))?
    }

    /// Applies `f` in the next group commit and returns its result once that commit is
    /// durable. `f` must check everything before it writes anything: an `Err` from it
    /// must leave the transaction as it found it, because other changes share the commit.
    pub async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    {
        self.writer.write(f).await
    }
}

#[cfg(test)]
impl Store {
    /// Closes `store` and opens its file again, as a restarted coordinator would. The
    /// writer thread lets go of the file once it sees its queue closed.
    pub async fn reopen(store: Store, data_dir: &Path) -> Store {
        drop(store);
        for _ in 0..100 {
            if let Ok(store) = Store::open(data_dir) {
                return store;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Store::open(data_dir).expect("the store reopens")
    }
}

#[cfg(test)]
mod job_api_tests;
#[cfg(test)]
mod tests;
