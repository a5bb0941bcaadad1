//! Users and their API tokens. Passwords arrive already hashed (argon2, in the API);
//! tokens are kept only as their SHA-256.

use super::Store;
use super::audit::{self, Audit};
use super::catalog::{get_record, get_record_tx, list_page};
use super::job_list::{Page, Paged};
use super::records::{Role, TokenRecord, UserRecord};
use super::tables::{TOKEN_HASHES, TOKENS, USERNAMES, USERS, encode, next_id};
use crate::error::Error;
use chrono::Utc;
use redb::{ReadableTable, WriteTransaction};

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    pub password_hash: String,
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
                None => insert_user(tx, username, role, None)?,
            };
            if tx
                .open_table(TOKEN_HASHES)?
                .get(token_hash.as_slice())?
                .is_none()
            {
                insert_token(tx, user.id, token_hash)?;
            }
            Ok(user)
        })
        .await
    }

    pub async fn create_user(&self, new: NewUser, audit: Audit) -> Result<UserRecord, Error> {
        self.write(move |tx| {
            if find_user_id(tx, &new.username)?.is_some() {
                return Err(Error::Conflict(format!(
                    "user '{}' already exists; pick another username",
                    new.username
                )));
            }
            let user = insert_user(tx, new.username, new.role, Some(new.password_hash))?;
            audit::record(tx, audit, format!("user {}", user.id))?;
            Ok(user)
        })
        .await
    }

    pub async fn user(&self, id: u64) -> Result<Option<UserRecord>, Error> {
        self.read(move |tx| get_record(tx, USERS, id)).await
    }

    pub async fn user_by_name(&self, username: String) -> Result<Option<UserRecord>, Error> {
        self.read(move |tx| {
            let Some(id) = tx
                .open_table(USERNAMES)?
                .get(username.as_str())?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            get_record(tx, USERS, id)
        })
        .await
    }

    /// Users in id order.
    pub async fn list_users(&self, page: Page) -> Result<Paged<UserRecord>, Error> {
        self.read(move |tx| list_page(tx, USERS, page)).await
    }

    /// Stores a new token of `user` (who logged in with their password).
    pub async fn issue_token(
        &self,
        user: UserRecord,
        token_hash: [u8; 32],
        audit: Audit,
    ) -> Result<TokenRecord, Error> {
        self.write(move |tx| {
            let token = insert_token(tx, user.id, token_hash)?;
            audit::record(tx, audit, format!("token {}", token.id))?;
            Ok(token)
        })
        .await
    }

    /// The user a token hash belongs to, and the token's id.
    pub async fn user_for_token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<(UserRecord, u64)>, Error> {
        self.read(move |tx| {
            let Some(token_id) = tx
                .open_table(TOKEN_HASHES)?
                .get(token_hash.as_slice())?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            let Some(token) = get_record::<TokenRecord>(tx, TOKENS, token_id)? else {
                return Ok(None);
            };
            Ok(get_record::<UserRecord>(tx, USERS, token.user_id)?.map(|user| (user, token_id)))
        })
        .await
    }

    /// Revokes token `token_id`. Users may revoke their own tokens, admins any.
    pub async fn revoke_token(
        &self,
        token_id: u64,
        by: UserRecord,
        audit: Audit,
    ) -> Result<TokenRecord, Error> {
        self.write(move |tx| {
            let token: TokenRecord = get_record_tx(tx, TOKENS, token_id)?
                .ok_or_else(|| Error::not_found("token", token_id))?;
            if token.user_id != by.id && by.role < Role::Admin {
                return Err(Error::Forbidden(format!(
                    "token {token_id} belongs to another user; only admins may revoke it"
                )));
            }
            tx.open_table(TOKENS)?.remove(token_id)?;
            tx.open_table(TOKEN_HASHES)?.remove(token.hash.as_slice())?;
            audit::record(tx, audit, format!("token {token_id}"))?;
            Ok(token)
        })
        .await
    }
}

fn find_user_id(tx: &WriteTransaction, username: &str) -> Result<Option<u64>, Error> {
    Ok(tx.open_table(USERNAMES)?.get(username)?.map(|v| v.value()))
}

fn insert_user(
    tx: &WriteTransaction,
    username: String,
    role: Role,
    password_hash: Option<String>,
) -> Result<UserRecord, Error> {
    let user = UserRecord {
        id: next_id(tx, "next_user")?,
        username,
        role,
        password_hash,
        created_at: Utc::now(),
    };
    tx.open_table(USERS)?
        .insert(user.id, encode(&user)?.as_slice())?;
    tx.open_table(USERNAMES)?
        .insert(user.username.as_str(), user.id)?;
    Ok(user)
}

fn insert_token(tx: &WriteTransaction, user_id: u64, hash: [u8; 32]) -> Result<TokenRecord, Error> {
    let token = TokenRecord {
        id: next_id(tx, "next_token")?,
        user_id,
        hash,
        created_at: Utc::now(),
    };
    tx.open_table(TOKENS)?
        .insert(token.id, encode(&token)?.as_slice())?;
    tx.open_table(TOKEN_HASHES)?
        .insert(hash.as_slice(), token.id)?;
    Ok(token)
}
