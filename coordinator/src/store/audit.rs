//! The audit trail: each mutating call's record is written in the same commit as its
//! change, so the trail has exactly the changes that happened.

use super::Store;
use super::job_list::{Page, Paged, id_range_by_time};
use super::records::AuditRecord;
use super::tables::{AUDIT, AUDIT_BY_USER, decode, encode, next_id};
use crate::error::Error;
use chrono::{DateTime, Utc};
use redb::WriteTransaction;

/// Who did what, recorded along with the change it makes.
#[derive(Debug, Clone)]
pub struct Audit {
    pub user_id: u64,
    pub username: String,
    /// Method and route, e.g. `POST /jobs/{id}/cancel`.
    pub action: String,
    /// Already redacted (see [`crate::redact`]).
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user_id: Option<u64>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    pub page: Page,
}

/// Writes `audit` about `target` in the caller's transaction.
pub fn record(tx: &WriteTransaction, audit: Audit, target: String) -> Result<(), Error> {
    let entry = AuditRecord {
        id: next_id(tx, "next_audit")?,
        at: Utc::now(),
        user_id: audit.user_id,
        username: audit.username,
        action: audit.action,
        target,
        parameters: audit.parameters,
    };
    tx.open_table(AUDIT)?
        .insert(entry.id, encode(&entry)?.as_slice())?;
    tx.open_table(AUDIT_BY_USER)?
        .insert((entry.user_id, entry.id), ())?;
    Ok(())
}

impl Store {
    /// Newest first. Ids grow with time, so the time bounds become an id range.
    pub async fn audit_page(&self, query: AuditQuery) -> Result<Paged<AuditRecord>, Error> {
        self.read(move |tx| {
            let audit = tx.open_table(AUDIT)?;
            let page = query.page;
            let Some((low, high)) =
                id_range_by_time(&audit, query.after, query.before, |r: &AuditRecord| r.at)?
            else {
                return Ok(Paged::empty(page));
            };
            let mut ids = Vec::with_capacity(page.per_page as usize);
            let total = match query.user_id {
                Some(user) => {
                    let index = tx.open_table(AUDIT_BY_USER)?;
                    let mut total = 0;
                    for entry in index.range((user, low)..=(user, high))?.rev() {
                        if page.holds(total) {
                            ids.push(entry?.0.value().1);
                        }
                        total += 1;
                    }
                    total
                }
                // Audit records are never deleted: their ids have no gaps.
                None => {
                    let newest = high.saturating_sub(page.offset());
                    ids.extend((low..=newest).rev().take(page.per_page as usize));
                    high - low + 1
                }
            };
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(bytes) = audit.get(id)? {
                    items.push(decode::<AuditRecord>(bytes.value())?);
                }
            }
            Ok(Paged { items, total, page })
        })
        .await
    }
}
