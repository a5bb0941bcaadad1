//! Playbooks and servers: the things jobs run and where. A record a job refers to
//! cannot be deleted.

use super::Store;
use super::audit::{self, Audit};
use super::job_list::{Page, Paged};
use super::records::{PlaybookRecord, ServerRecord};
use super::tables::{
    JOBS_BY_PLAYBOOK, JOBS_BY_SERVER, PLAYBOOKS, SERVERS, decode, encode, next_id,
};
use crate::error::Error;
use chrono::{DateTime, Utc};
use drover_shared::Connection;
use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;

/// A playbook as submitted, already validated by the API.
#[derive(Debug, Clone)]
pub struct NewPlaybook {
    pub name: String,
    pub description: String,
    pub content: String,
    pub file_path: Option<String>,
    pub timeout_secs: Option<u64>,
    pub allow_simultaneous: bool,
}

/// A server as submitted, already validated by the API.
#[derive(Debug, Clone)]
pub struct NewServer {
    pub hostname: String,
    pub ip_address: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub ssh_key_path: Option<String>,
    pub pool: String,
    pub connection: Connection,
    pub python_interpreter: Option<String>,
}

impl Store {
    pub async fn create_playbook(
        &self,
        new: NewPlaybook,
        audit: Audit,
    ) -> Result<PlaybookRecord, Error> {
        self.write(move |tx| {
            let now = Utc::now();
            let playbook = new.into_record(next_id(tx, "next_playbook")?, now, now);
            put(tx, PLAYBOOKS, playbook.id, &playbook)?;
            audit::record(tx, audit, format!("playbook {}", playbook.id))?;
            Ok(playbook)
        })
        .await
    }

    /// Replaces a playbook's fields; jobs already dispatched keep the text they got.
    pub async fn update_playbook(
        &self,
        id: u64,
        new: NewPlaybook,
        audit: Audit,
    ) -> Result<PlaybookRecord, Error> {
        self.write(move |tx| {
            let old: PlaybookRecord = get_record_tx(tx, PLAYBOOKS, id)?
                .ok_or_else(|| Error::not_found("playbook", id))?;
            let playbook = new.into_record(id, old.created_at, Utc::now());
            put(tx, PLAYBOOKS, id, &playbook)?;
            audit::record(tx, audit, format!("playbook {id}"))?;
            Ok(playbook)
        })
        .await
    }

    pub async fn delete_playbook(&self, id: u64, audit: Audit) -> Result<(), Error> {
        self.write(move |tx| {
            delete_unused(tx, PLAYBOOKS, JOBS_BY_PLAYBOOK, "playbook", id)?;
            audit::record(tx, audit, format!("playbook {id}"))
        })
        .await
    }

    pub async fn playbook(&self, id: u64) -> Result<Option<PlaybookRecord>, Error> {
        self.read(move |tx| get_record(tx, PLAYBOOKS, id)).await
    }

    pub async fn list_playbooks(&self, page: Page) -> Result<Paged<PlaybookRecord>, Error> {
        self.read(move |tx| list_page(tx, PLAYBOOKS, page)).await
    }

    pub async fn create_server(&self, new: NewServer, audit: Audit) -> Result<ServerRecord, Error> {
        self.write(move |tx| {
            let now = Utc::now();
            let server = new.into_record(next_id(tx, "next_server")?, now, now);
            put(tx, SERVERS, server.id, &server)?;
            audit::record(tx, audit, format!("server {}", server.id))?;
            Ok(server)
        })
        .await
    }

    /// Replaces a server's fields; jobs already dispatched keep the target they got.
    pub async fn update_server(
        &self,
        id: u64,
        new: NewServer,
        audit: Audit,
    ) -> Result<ServerRecord, Error> {
        self.write(move |tx| {
            let old: ServerRecord =
                get_record_tx(tx, SERVERS, id)?.ok_or_else(|| Error::not_found("server", id))?;
            let server = new.into_record(id, old.created_at, Utc::now());
            put(tx, SERVERS, id, &server)?;
            audit::record(tx, audit, format!("server {id}"))?;
            Ok(server)
        })
        .await
    }

    pub async fn delete_server(&self, id: u64, audit: Audit) -> Result<(), Error> {
        self.write(move |tx| {
            delete_unused(tx, SERVERS, JOBS_BY_SERVER, "server", id)?;
            audit::record(tx, audit, format!("server {id}"))
        })
        .await
    }

    pub async fn server(&self, id: u64) -> Result<Option<ServerRecord>, Error> {
        self.read(move |tx| get_record(tx, SERVERS, id)).await
    }

    pub async fn list_servers(&self, page: Page) -> Result<Paged<ServerRecord>, Error> {
        self.read(move |tx| list_page(tx, SERVERS, page)).await
    }
}

impl NewPlaybook {
    fn into_record(
        self,
        id: u64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> PlaybookRecord {
        PlaybookRecord {
            id,
            name: self.name,
            description: self.description,
            content: self.content,
            file_path: self.file_path,
            timeout_secs: self.timeout_secs,
            allow_simultaneous: self.allow_simultaneous,
            created_at,
            updated_at,
        }
    }
}

impl NewServer {
    fn into_record(
        self,
        id: u64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> ServerRecord {
        ServerRecord {
            id,
            hostname: self.hostname,
            ip_address: self.ip_address,
            ssh_port: self.ssh_port,
            ssh_user: self.ssh_user,
            ssh_key_path: self.ssh_key_path,
            pool: self.pool,
            connection: self.connection,
            python_interpreter: self.python_interpreter,
            created_at,
            updated_at,
        }
    }
}

fn put<T: serde::Serialize>(
    tx: &WriteTransaction,
    table: TableDefinition<u64, &[u8]>,
    id: u64,
    record: &T,
) -> Result<(), Error> {
    tx.open_table(table)?
        .insert(id, encode(record)?.as_slice())?;
    Ok(())
}

/// Deletes record `id` of `kind` unless a job refers to it (`uses` is keyed by
/// `(record id, job id)`): jobs keep their history.
fn delete_unused(
    tx: &WriteTransaction,
    table: TableDefinition<u64, &[u8]>,
    uses: TableDefinition<(u64, u64), ()>,
    kind: &'static str,
    id: u64,
) -> Result<(), Error> {
    let mut records = tx.open_table(table)?;
    if records.get(id)?.is_none() {
        return Err(Error::not_found(kind, id));
    }
    let uses = tx.open_table(uses)?;
    let jobs = uses.range((id, 0)..=(id, u64::MAX))?.count();
    if jobs > 0 {
        return Err(Error::Conflict(format!(
            "{kind} {id} has {jobs} job(s); it cannot be deleted while jobs refer to it"
        )));
    }
    records.remove(id)?;
    Ok(())
}

/// One page of a table of records, in id order.
pub(super) fn list_page<T: DeserializeOwned>(
    tx: &ReadTransaction,
    table: TableDefinition<u64, &[u8]>,
    page: Page,
) -> Result<Paged<T>, Error> {
    let table = tx.open_table(table)?;
    let total = table.len()?;
    let mut items = Vec::with_capacity(page.per_page as usize);
    for entry in table
        .iter()?
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(page.per_page as usize)
    {
        items.push(decode::<T>(entry?.1.value())?);
    }
    Ok(Paged { items, total, page })
}

/// Reads one msgpack record by id from a read snapshot.
pub(super) fn get_record<T: serde::de::DeserializeOwned>(
    tx: &ReadTransaction,
    table: redb::TableDefinition<u64, &[u8]>,
    id: u64,
) -> Result<Option<T>, Error> {
    let table = tx.open_table(table)?;
    let value = table.get(id)?;
    value.map(|bytes| decode(bytes.value())).transpose()
}

/// Reads one msgpack record by id inside a write transaction.
pub(super) fn get_record_tx<T: serde::de::DeserializeOwned>(
    tx: &WriteTransaction,
    table: redb::TableDefinition<u64, &[u8]>,
    id: u64,
) -> Result<Option<T>, Error> {
    let table = tx.open_table(table)?;
    let value = table.get(id)?;
    value.map(|bytes| decode(bytes.value())).transpose()
}
