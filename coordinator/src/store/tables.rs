//! Table definitions and the value codec. Values are named MessagePack so that records
//! can gain fields without a migration.

use crate::error::Error;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Id counters: `next_user`, `next_token`, `next_playbook`, `next_server`, `next_job`,
/// `next_log`, `next_ticket`, `next_audit`,
/// `next_webhook`, `next_webhook_delivery`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
pub const USERNAMES: TableDefinition<&str, u64> = TableDefinition::new("usernames");
/// Token id → token record (user, SHA-256 of the token).
pub const TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("api_tokens");
/// SHA-256 of an API token → token id. Tokens themselves are never stored.
pub const TOKEN_HASHES: TableDefinition<&[u8], u64> = TableDefinition::new("api_token_hashes");
pub const PLAYBOOKS: TableDefinition<u64, &[u8]> = TableDefinition::new("playbooks");
pub const SERVERS: TableDefinition<u64, &[u8]> = TableDefinition::new("servers");
pub const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
pub const JOB_UUIDS: TableDefinition<u128, u64> = TableDefinition::new("job_uuids");
/// (status, job id): finds pending or running jobs without scanning every job.
pub const JOBS_BY_STATUS: TableDefinition<(&str, u64), ()> = TableDefinition::new("jobs_by_status");
/// (playbook id, job id), (server id, job id), (user id, job id): the job list's filters
/// walk these instead of every job.
pub const JOBS_BY_PLAYBOOK: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("jobs_by_playbook");
pub const JOBS_BY_SERVER: TableDefinition<(u64, u64), ()> = TableDefinition::new("jobs_by_server");
pub const JOBS_BY_USER: TableDefinition<(u64, u64), ()> = TableDefinition::new("jobs_by_user");
/// (user id, status, job id), (playbook id, status, job id), (server id, status, job id):
/// a status filter combined with another walks exactly the jobs that match both.
pub const JOBS_BY_USER_STATUS: TableDefinition<(u64, &str, u64), ()> =
    TableDefinition::new("jobs_by_user_status");
pub const JOBS_BY_PLAYBOOK_STATUS: TableDefinition<(u64, &str, u64), ()> =
    TableDefinition::new("jobs_by_playbook_status");
pub const JOBS_BY_SERVER_STATUS: TableDefinition<(u64, &str, u64), ()> =
    TableDefinition::new("jobs_by_server_status");
/// (scope, playbook id, field) → count, kept in step with every job change so the
/// statistics never scan jobs. Scope 0 is everyone, otherwise a user id; playbook 0 is
/// every playbook. Fields are status names, `duration_ms` and `timed_jobs`.
pub const COUNTERS: TableDefinition<(u64, u64, &str), u64> = TableDefinition::new("counters");
/// (UTC hour since the epoch, field) → count: jobs created and finished per hour and
/// their run time, for the statistics charts (see `timeline.rs`).
pub const TIMELINE: TableDefinition<(u64, &str), u64> = TableDefinition::new("timeline");
/// (agent id, job id) of the pending or running jobs an agent holds: the lease check
/// and the reaping of a lost agent read this, not every active job.
pub const CLAIMS: TableDefinition<(&str, u64), ()> = TableDefinition::new("claims");
/// (server id, job id) of held jobs: waiting for their server, oldest first.
pub const HELD: TableDefinition<(u64, u64), ()> = TableDefinition::new("held_jobs");
pub const TICKETS: TableDefinition<u64, &[u8]> = TableDefinition::new("tickets");
/// Job id → its ticket (one per job).
pub const TICKET_BY_JOB: TableDefinition<u64, u64> = TableDefinition::new("ticket_by_job");
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (user id, audit id): one user's trail.
pub const AUDIT_BY_USER: TableDefinition<(u64, u64), ()> = TableDefinition::new("audit_by_user");
/// (job id, line number) → line: a replayed line overwrites itself.
pub const LOGS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("logs");
/// (job id, event counter) → event.
pub const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
/// Webhook id → webhook (url, events, secret).
pub const WEBHOOKS: TableDefinition<u64, &[u8]> = TableDefinition::new("webhooks");
/// Delivery id → delivery with every attempt: the delivery log.
pub const WEBHOOK_DELIVERIES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("webhook_deliveries");
/// (webhook id, delivery id): one webhook's log, newest last.
pub const WEBHOOK_DELIVERIES_BY_HOOK: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("webhook_deliveries_by_hook");
/// Deliveries not settled yet, resumed when the coordinator starts.
pub const WEBHOOK_PENDING: TableDefinition<u64, ()> = TableDefinition::new("webhook_pending");

pub fn create_all(tx: &WriteTransaction) -> Result<(), Error> {
    tx.open_table(META)?;
    tx.open_table(USERS)?;
    tx.open_table(USERNAMES)?;
    tx.open_table(TOKENS)?;
    tx.open_table(TOKEN_HASHES)?;
    tx.open_table(PLAYBOOKS)?;
    tx.open_table(SERVERS)?;
    tx.open_table(JOBS)?;
    tx.open_table(JOB_UUIDS)?;
    tx.open_table(JOBS_BY_STATUS)?;
    tx.open_table(JOBS_BY_PLAYBOOK)?;
    tx.open_table(JOBS_BY_SERVER)?;
    tx.open_table(JOBS_BY_USER)?;
    tx.open_table(JOBS_BY_USER_STATUS)?;
    tx.open_table(JOBS_BY_PLAYBOOK_STATUS)?;
    tx.open_table(JOBS_BY_SERVER_STATUS)?;
    tx.open_table(COUNTERS)?;
    tx.open_table(TIMELINE)?;
    tx.open_table(HELD)?;
    tx.open_table(CLAIMS)?;
    tx.open_table(TICKETS)?;
    tx.open_table(TICKET_BY_JOB)?;
    tx.open_table(AUDIT)?;
    tx.open_table(AUDIT_BY_USER)?;
    tx.open_table(LOGS)?;
    tx.open_table(EVENTS)?;
    tx.open_table(WEBHOOKS)?;
    tx.open_table(WEBHOOK_DELIVERIES)?;
    tx.open_table(WEBHOOK_DELIVERIES_BY_HOOK)?;
    tx.open_table(WEBHOOK_PENDING)?;
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
