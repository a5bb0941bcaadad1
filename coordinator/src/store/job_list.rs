//! `GET /jobs` and `GET /jobs/statistics` from indexes and counters, never a scan of
//! every job.
//!
//! Jobs are never deleted and their ids are given in creation order, so ids have no gaps
//! and grow with `created_at`: a time window is an id range found by binary search.

use super::Store;
use super::catalog::get_record;
use super::job_index::{ALL_PLAYBOOKS, ALL_USERS, DURATION_MS, TIMED_JOBS, counter, status_counts};
use super::jobs::JobDetail;
use super::records::{JobRecord, PlaybookRecord, ServerRecord, UserRecord};
use super::tables::{
    COUNTERS, JOBS, JOBS_BY_PLAYBOOK, JOBS_BY_PLAYBOOK_STATUS, JOBS_BY_SERVER,
    JOBS_BY_SERVER_STATUS, JOBS_BY_STATUS, JOBS_BY_USER, JOBS_BY_USER_STATUS, PLAYBOOKS, SERVERS,
    USERS, decode,
};
use crate::error::Error;
use chrono::{DateTime, Utc};
use drover_shared::JobStatus;
use redb::{ReadTransaction, ReadableTable};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Which page of a list: `page` counts from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u64,
    pub per_page: u64,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            page: 1,
            per_page: 20,
        }
    }
}

impl Page {
    /// Items before this page.
    pub fn offset(&self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.per_page)
    }

    /// Whether the item at `position` (0 = newest) is on this page.
    pub fn holds(&self, position: u64) -> bool {
        position >= self.offset() && position < self.offset().saturating_add(self.per_page)
    }
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: Page,
}

impl<T> Paged<T> {
    pub fn empty(page: Page) -> Paged<T> {
        Paged {
            items: Vec::new(),
            total: 0,
            page,
        }
    }
}

/// `GET /jobs` filters. Both time bounds are exclusive.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub status: Option<JobStatus>,
    pub playbook_id: Option<u64>,
    pub server_id: Option<u64>,
    pub user_id: Option<u64>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub page: Page,
}

/// One index the list can walk, newest job first. A status filter pairs with another
/// filter in one index, so the walk yields exactly the jobs matching both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Status(JobStatus),
    Playbook(u64),
    Server(u64),
    User(u64),
    PlaybookStatus(u64, JobStatus),
    ServerStatus(u64, JobStatus),
    UserStatus(u64, JobStatus),
    Every,
}

/// A filter the walked index does not cover, checked by a point lookup in its own index
/// (no job record is read for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Playbook(u64),
    Server(u64),
    User(u64),
}

impl Check {
    fn admits(self, tx: &ReadTransaction, id: u64) -> Result<bool, Error> {
        let (table, key) = match self {
            Check::Playbook(key) => (JOBS_BY_PLAYBOOK, key),
            Check::Server(key) => (JOBS_BY_SERVER, key),
            Check::User(key) => (JOBS_BY_USER, key),
        };
        Ok(tx.open_table(table)?.get((key, id))?.is_some())
    }
}

/// The index to walk for `query` (the smallest that covers a filter, per the
/// counters) and the filters left to check.
fn plan(
    counters: &impl ReadableTable<(u64, u64, &'static str), u64>,
    query: &JobQuery,
) -> Result<(Source, Option<u64>, Vec<Check>), Error> {
    let mut checks = Vec::new();
    if let Some(id) = query.playbook_id {
        checks.push(Check::Playbook(id));
    }
    if let Some(id) = query.user_id {
        checks.push(Check::User(id));
    }
    if let Some(id) = query.server_id {
        checks.push(Check::Server(id));
    }
    let candidates: Vec<(Source, Option<Check>)> = match query.status {
        Some(status) if checks.is_empty() => vec![(Source::Status(status), None)],
        Some(status) => checks
            .iter()
            .map(|check| {
                let source = match *check {
                    Check::Playbook(id) => Source::PlaybookStatus(id, status),
                    Check::Server(id) => Source::ServerStatus(id, status),
                    Check::User(id) => Source::UserStatus(id, status),
                };
                (source, Some(*check))
            })
            .collect(),
        None if checks.is_empty() => vec![(Source::Every, None)],
        None => checks
            .iter()
            .map(|check| {
                let source = match *check {
                    Check::Playbook(id) => Source::Playbook(id),
                    Check::Server(id) => Source::Server(id),
                    Check::User(id) => Source::User(id),
                };
                (source, Some(*check))
            })
            .collect(),
    };
    let mut best: Option<(Source, Option<u64>, Option<Check>)> = None;
    for (source, covers) in candidates {
        let size = exact_size(counters, source)?;
        let better = match &best {
            None => true,
            // Known sizes beat unknown ones; smaller beats larger.
            Some((_, current, _)) => size.unwrap_or(u64::MAX) < current.unwrap_or(u64::MAX),
        };
        if better {
            best = Some((source, size, covers));
        }
    }
    let (source, size, covered) = best.unwrap_or((Source::Every, None, None));
    checks.retain(|check| Some(*check) != covered);
    Ok((source, size, checks))
}

#[derive(Debug, Clone)]
pub struct PlaybookCount {
    pub playbook_id: u64,
    pub playbook_name: String,
    pub total: u64,
    pub success: u64,
    pub failed: u64,
}

#[derive(Debug, Clone)]
pub struct Statistics {
    pub counts: [(JobStatus, u64); 5],
    /// Sum of the durations of finished jobs that ran, and how many they are.
    pub duration_ms: u64,
    pub timed_jobs: u64,
    pub by_playbook: Vec<PlaybookCount>,
    pub recent_failures: Vec<JobDetail>,
}

/// Failures listed in the statistics.
const RECENT_FAILURES: usize = 10;

impl Store {
    pub async fn list_jobs(&self, query: JobQuery) -> Result<Paged<JobDetail>, Error> {
        self.read(move |tx| {
            let jobs = tx.open_table(JOBS)?;
            let page = query.page;
            let Some((low, high)) = id_range_by_time(
                &jobs,
                query.created_after,
                query.created_before,
                |job: &JobRecord| job.created_at,
            )?
            else {
                return Ok(Paged::empty(page));
            };
            let counters = tx.open_table(COUNTERS)?;
            let (driver, size, checks) = plan(&counters, &query)?;
            let whole_window = query.created_after.is_none() && query.created_before.is_none();
            let known_total = match (driver, whole_window) {
                (Source::Every, _) => Some(high - low + 1),
                (_, true) => size,
                (_, false) => None,
            };
            let mut ids = Vec::with_capacity(page.per_page as usize);
            let total = match known_total {
                // Stop at the end of the page: the total is known already.
                Some(total) if checks.is_empty() => {
                    walk(tx, driver, low, high, |position, id| {
                        if page.holds(position) {
                            ids.push(id);
                        }
                        Ok(position + 1 < page.offset() + page.per_page)
                    })?;
                    total
                }
                _ => {
                    let mut matched = 0;
                    walk(tx, driver, low, high, |_, id| {
                        for check in &checks {
                            if !check.admits(tx, id)? {
                                return Ok(true);
                            }
                        }
                        if page.holds(matched) {
                            ids.push(id);
                        }
                        matched += 1;
                        Ok(true)
                    })?;
                    matched
                }
            };
            let mut details = Details::new(tx);
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(job) = get_record::<JobRecord>(tx, JOBS, id)? {
                    items.push(details.of(job)?);
                }
            }
            Ok(Paged { items, total, page })
        })
        .await
    }

    /// Statistics of every job, or of one user's jobs.
    pub async fn statistics(&self, user_id: Option<u64>) -> Result<Statistics, Error> {
        self.read(move |tx| {
            let scope = user_id.unwrap_or(ALL_USERS);
            let counters = tx.open_table(COUNTERS)?;
            let counts = status_counts(&counters, scope, ALL_PLAYBOOKS)?;
            let duration_ms = counter(&counters, (scope, ALL_PLAYBOOKS, DURATION_MS))?;
            let timed_jobs = counter(&counters, (scope, ALL_PLAYBOOKS, TIMED_JOBS))?;
            let mut per_playbook: HashMap<u64, [u64; 3]> = HashMap::new();
            for entry in counters.range((scope, 1, "")..(scope.saturating_add(1), 0, ""))? {
                let (key, value) = entry?;
                let (_, playbook, field) = key.value();
                let Ok(status) = field.parse::<JobStatus>() else {
                    continue;
                };
                let sums = per_playbook.entry(playbook).or_default();
                sums[0] += value.value();
                match status {
                    JobStatus::Success => sums[1] += value.value(),
                    JobStatus::Failed => sums[2] += value.value(),
                    _ => {}
                }
            }
            let mut by_playbook = Vec::with_capacity(per_playbook.len());
            for (playbook_id, [total, success, failed]) in per_playbook {
                let name = get_record::<PlaybookRecord>(tx, PLAYBOOKS, playbook_id)?
                    .map_or_else(|| format!("playbook {playbook_id}"), |p| p.name);
                by_playbook.push(PlaybookCount {
                    playbook_id,
                    playbook_name: name,
                    total,
                    success,
                    failed,
                });
            }
            by_playbook.sort_by(|a, b| {
                b.total
                    .cmp(&a.total)
                    .then(a.playbook_id.cmp(&b.playbook_id))
            });
            let failed = JobStatus::Failed.as_str();
            let mut failure_ids = Vec::with_capacity(RECENT_FAILURES);
            match user_id {
                None => {
                    let index = tx.open_table(JOBS_BY_STATUS)?;
                    for entry in index.range((failed, 0)..=(failed, u64::MAX))?.rev() {
                        failure_ids.push(entry?.0.value().1);
                        if failure_ids.len() == RECENT_FAILURES {
                            break;
                        }
                    }
                }
                Some(user) => {
                    let index = tx.open_table(JOBS_BY_USER_STATUS)?;
                    for entry in index
                        .range((user, failed, 0)..=(user, failed, u64::MAX))?
                        .rev()
                    {
                        failure_ids.push(entry?.0.value().2);
                        if failure_ids.len() == RECENT_FAILURES {
                            break;
                        }
                    }
                }
            }
            let mut details = Details::new(tx);
            let mut recent_failures = Vec::with_capacity(failure_ids.len());
            for id in failure_ids {
                if let Some(job) = get_record::<JobRecord>(tx, JOBS, id)? {
                    recent_failures.push(details.of(job)?);
                }
            }
            Ok(Statistics {
                counts,
                duration_ms,
                timed_jobs,
                by_playbook,
                recent_failures,
            })
        })
        .await
    }
}

/// Jobs an index holds, from the counters; `None` where no counter keeps it (servers,
/// and every job: the caller knows that one).
fn exact_size(
    counters: &impl ReadableTable<(u64, u64, &'static str), u64>,
    source: Source,
) -> Result<Option<u64>, Error> {
    let sum = |scope, playbook| -> Result<Option<u64>, Error> {
        Ok(Some(
            status_counts(counters, scope, playbook)?
                .iter()
                .map(|(_, n)| n)
                .sum(),
        ))
    };
    match source {
        Source::Status(status) => {
            counter(counters, (ALL_USERS, ALL_PLAYBOOKS, status.as_str())).map(Some)
        }
        Source::PlaybookStatus(id, status) => {
            counter(counters, (ALL_USERS, id, status.as_str())).map(Some)
        }
        Source::UserStatus(id, status) => {
            counter(counters, (id, ALL_PLAYBOOKS, status.as_str())).map(Some)
        }
        Source::Playbook(id) => sum(ALL_USERS, id),
        Source::User(id) => sum(id, ALL_PLAYBOOKS),
        Source::Server(_) | Source::ServerStatus(..) | Source::Every => Ok(None),
    }
}

/// Calls `visit(position, id)` for each job of `source` with an id in `low..=high`,
/// newest first, until it returns `false`. Returns how many it visited.
fn walk(
    tx: &ReadTransaction,
    source: Source,
    low: u64,
    high: u64,
    mut visit: impl FnMut(u64, u64) -> Result<bool, Error>,
) -> Result<u64, Error> {
    let mut position = 0;
    let mut step = |id: u64| -> Result<bool, Error> {
        let more = visit(position, id)?;
        position += 1;
        Ok(more)
    };
    match source {
        Source::Status(status) => {
            let s = status.as_str();
            for entry in tx
                .open_table(JOBS_BY_STATUS)?
                .range((s, low)..=(s, high))?
                .rev()
            {
                if !step(entry?.0.value().1)? {
                    break;
                }
            }
        }
        Source::Playbook(key) => {
            for entry in tx
                .open_table(JOBS_BY_PLAYBOOK)?
                .range((key, low)..=(key, high))?
                .rev()
            {
                if !step(entry?.0.value().1)? {
                    break;
                }
            }
        }
        Source::Server(key) => {
            for entry in tx
                .open_table(JOBS_BY_SERVER)?
                .range((key, low)..=(key, high))?
                .rev()
            {
                if !step(entry?.0.value().1)? {
                    break;
                }
            }
        }
        Source::User(key) => {
            for entry in tx
                .open_table(JOBS_BY_USER)?
                .range((key, low)..=(key, high))?
                .rev()
            {
                if !step(entry?.0.value().1)? {
                    break;
                }
            }
        }
        Source::PlaybookStatus(key, status) => {
            walk_paired(
                tx,
                JOBS_BY_PLAYBOOK_STATUS,
                key,
                status,
                low,
                high,
                &mut step,
            )?;
        }
        Source::ServerStatus(key, status) => {
            walk_paired(tx, JOBS_BY_SERVER_STATUS, key, status, low, high, &mut step)?;
        }
        Source::UserStatus(key, status) => {
            walk_paired(tx, JOBS_BY_USER_STATUS, key, status, low, high, &mut step)?;
        }
        Source::Every => {
            for id in (low..=high).rev() {
                if !step(id)? {
                    break;
                }
            }
        }
    }
    Ok(position)
}

/// Walks a `(key, status, job id)` index, newest first.
fn walk_paired(
    tx: &ReadTransaction,
    table: redb::TableDefinition<(u64, &str, u64), ()>,
    key: u64,
    status: JobStatus,
    low: u64,
    high: u64,
    step: &mut impl FnMut(u64) -> Result<bool, Error>,
) -> Result<(), Error> {
    let s = status.as_str();
    for entry in tx
        .open_table(table)?
        .range((key, s, low)..=(key, s, high))?
        .rev()
    {
        if !step(entry?.0.value().2)? {
            break;
        }
    }
    Ok(())
}

/// The ids in a table of records keyed by gap-free, time-ordered ids whose time lies
/// strictly between `after` and `before`; `None` when there are none.
pub fn id_range_by_time<T: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
    at: impl Fn(&T) -> DateTime<Utc>,
) -> Result<Option<(u64, u64)>, Error> {
    let (Some(first), Some(last)) = (table.first()?, table.last()?) else {
        return Ok(None);
    };
    let (first, last) = (first.0.value(), last.0.value());
    let time_of = |id: u64| -> Result<Option<DateTime<Utc>>, Error> {
        match table.get(id)? {
            Some(bytes) => Ok(Some(at(&decode::<T>(bytes.value())?))),
            None => Ok(None),
        }
    };
    // First id whose time is past `after`.
    let low = match after {
        None => first,
        Some(after) => first_where(first, last + 1, |id| {
            Ok(time_of(id)?.is_some_and(|t| t > after))
        })?,
    };
    // First id whose time is at or past `before`; the range ends just before it.
    let end = match before {
        None => last + 1,
        Some(before) => first_where(first, last + 1, |id| {
            Ok(time_of(id)?.is_some_and(|t| t >= before))
        })?,
    };
    Ok((low < end).then(|| (low, end - 1)))
}

/// The first id in `low..high` for which the monotonic `holds` is true, or `high`.
fn first_where(
    mut low: u64,
    mut high: u64,
    holds: impl Fn(u64) -> Result<bool, Error>,
) -> Result<u64, Error> {
    while low < high {
        let middle = low + (high - low) / 2;
        if holds(middle)? {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok(low)
}

/// Loads the playbook, server and user of jobs, each record once.
struct Details<'a> {
    tx: &'a ReadTransaction,
    playbooks: HashMap<u64, Option<PlaybookRecord>>,
    servers: HashMap<u64, Option<ServerRecord>>,
    users: HashMap<u64, Option<UserRecord>>,
}

impl<'a> Details<'a> {
    fn new(tx: &'a ReadTransaction) -> Details<'a> {
        Details {
            tx,
            playbooks: HashMap::new(),
            servers: HashMap::new(),
            users: HashMap::new(),
        }
    }

    fn of(&mut self, job: JobRecord) -> Result<JobDetail, Error> {
        let tx = self.tx;
        let playbook = cached(&mut self.playbooks, job.playbook_id, |id| {
            get_record(tx, PLAYBOOKS, id)
        })?;
        let server = cached(&mut self.servers, job.server_id, |id| {
            get_record(tx, SERVERS, id)
        })?;
        let user = cached(&mut self.users, job.user_id, |id| get_record(tx, USERS, id))?;
        Ok(JobDetail {
            job,
            playbook,
            server,
            user,
        })
    }
}

fn cached<T: Clone>(
    cache: &mut HashMap<u64, Option<T>>,
    id: u64,
    load: impl FnOnce(u64) -> Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    if let Some(hit) = cache.get(&id) {
        return Ok(hit.clone());
    }
    let loaded = load(id)?;
    cache.insert(id, loaded.clone());
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_their_positions() {
        let page = Page {
            page: 2,
            per_page: 20,
        };
        assert_eq!(page.offset(), 20);
        assert!(!page.holds(19));
        assert!(page.holds(20));
        assert!(page.holds(39));
        assert!(!page.holds(40));
    }

    #[test]
    fn binary_search_finds_the_first_match() {
        let ids = |cut: u64| first_where(1, 11, move |id| Ok(id >= cut)).ok();
        assert_eq!(ids(1), Some(1));
        assert_eq!(ids(7), Some(7));
        assert_eq!(ids(11), Some(11));
        assert_eq!(ids(99), Some(11));
    }
}
