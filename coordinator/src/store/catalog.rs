//! Users, API tokens, playbooks and servers: the things jobs refer to.

use super::Store;
use super::records::{PlaybookRecord, Role, ServerRecord, UserRecord};
use super::tables::{PLAYBOOKS, SERVERS, TOKENS, USERNAMES, USERS, decode, encode, next_id};
use crate::error::Error;
use chrono::Utc;
use drover_shared::Connection;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

/// A playbook as submitted, already validated by the API.
#[derive(Debug, Clone)]
pub struct NewPlaybook {
    pub name: String,
    pub description: String,
    pub content: String,
    pub timeout_secs: Option<u64>,
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
    /// Makes sure user `username` exists with `role` and that `token_hash` logs in as it.
    pub async fn ensure_user_with_token(
        &self,
        username: &str,
        role: Role,
        token_hash: [u8; 32],
    ) -> Result<UserRecord, Error> {
        let username = username.to_owned();
        self.write(move |tx| {
            let user = match find_user_id(tx, &username)? {
                Some(id) => {
                    get_record_tx(tx, USERS, id)?.ok_or_else(|| Error::not_found("user", id))?
                }
                None => {
                    let user = UserRecord {
                        id: next_id(tx, "next_user")?,
                        username: username.clone(),
                        role,
                        created_at: Utc::now(),
                    };
                    tx.open_table(USERS)?
                        .insert(user.id, encode(&user)?.as_slice())?;
                    tx.open_table(USERNAMES)?
                        .insert(username.as_str(), user.id)?;
                    user
                }
            };
            tx.open_table(TOKENS)?
                .insert(token_hash.as_slice(), user.id)?;
            Ok(user)
        })
        .await
    }

    /// The user a token hash belongs to, if any.
    pub async fn user_for_token(&self, token_hash: [u8; 32]) -> Result<Option<UserRecord>, Error> {
        self.read(move |tx| {
            let Some(id) = tx
                .open_table(TOKENS)?
                .get(token_hash.as_slice())?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            get_record(tx, USERS, id)
        })
        .await
    }

    pub async fn create_playbook(&self, new: NewPlaybook) -> Result<PlaybookRecord, Error> {
        self.write(move |tx| {
            let now = Utc::now();
            let playbook = PlaybookRecord {
                id: next_id(tx, "next_playbook")?,
                name: new.name,
                description: new.description,
                content: new.content,
                timeout_secs: new.timeout_secs,
                created_at: now,
                updated_at: now,
            };
            tx.open_table(PLAYBOOKS)?
                .insert(playbook.id, encode(&playbook)?.as_slice())?;
            Ok(playbook)
        })
        .await
    }

    pub async fn create_server(&self, new: NewServer) -> Result<ServerRecord, Error> {
        self.write(move |tx| {
            let now = Utc::now();
            let server = ServerRecord {
                id: next_id(tx, "next_server")?,
                hostname: new.hostname,
                ip_address: new.ip_address,
                ssh_port: new.ssh_port,
                ssh_user: new.ssh_user,
                ssh_key_path: new.ssh_key_path,
                pool: new.pool,
                connection: new.connection,
                python_interpreter: new.python_interpreter,
                created_at: now,
                updated_at: now,
            };
            tx.open_table(SERVERS)?
                .insert(server.id, encode(&server)?.as_slice())?;
            Ok(server)
        })
        .await
    }
}

fn find_user_id(tx: &WriteTransaction, username: &str) -> Result<Option<u64>, Error> {
    Ok(tx.open_table(USERNAMES)?.get(username)?.map(|v| v.value()))
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
