//! Table definitions and the value codec. Values are named MessagePack so that records
//! can gain fields without a migration.

use crate::error::Error;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Id counters: `next_user`, `next_playbook`, `next_server`, `next_job`, `next_log`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
pub const USERNAMES: TableDefinition<&str, u64> = TableDefinition::new("usernames");
/// SHA-256 of an API token → user id. Tokens themselves are never stored.
pub const TOKENS: TableDefinition<&[u8], u64> = TableDefinition::new("tokens");
pub const PLAYBOOKS: TableDefinition<u64, &[u8]> = TableDefinition::new("playbooks");
pub const SERVERS: TableDefinition<u64, &[u8]> = TableDefinition::new("servers");
pub const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
pub const JOB_UUIDS: TableDefinition<u128, u64> = TableDefinition::new("job_uuids");
/// (status, job id): finds pending or running jobs without scanning every job.
pub const JOBS_BY_STATUS: TableDefinition<(&str, u64), ()> = TableDefinition::new("jobs_by_status");
/// (job id, line number) → line: a replayed line overwrites itself.
pub const LOGS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("logs");
/// (job id, event counter) → event.
pub const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");

pub fn create_all(tx: &WriteTransaction) -> Result<(), Error> {
    tx.open_table(META)?;
    tx.open_table(USERS)?;
    tx.open_table(USERNAMES)?;
    tx.open_table(TOKENS)?;
    tx.open_table(PLAYBOOKS)?;
    tx.open_table(SERVERS)?;
    tx.open_table(JOBS)?;
    tx.open_table(JOB_UUIDS)?;
    tx.open_table(JOBS_BY_STATUS)?;
    tx.open_table(LOGS)?;
    tx.open_table(EVENTS)?;
    Ok(())
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    rmp_serde::to_vec_named(value).map_err(|e| Error::Codec(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Codec(e.to_string()))
}

/// Takes the next id of a counter in `META` (ids start at 1).
pub fn next_id(tx: &WriteTransaction, counter: &str) -> Result<u64, Error> {
    take_ids(tx, counter, 1)
}

/// Reserves `count` consecutive ids and returns the first.
pub fn take_ids(tx: &WriteTransaction, counter: &str, count: u64) -> Result<u64, Error> {
    let mut meta = tx.open_table(META)?;
    let first = meta.get(counter)?.map_or(1, |v| v.value());
    meta.insert(counter, first + count)?;
    Ok(first)
}
