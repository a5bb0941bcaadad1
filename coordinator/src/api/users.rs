//! Users and API tokens: `POST /users`, `GET /users`, `GET /users/{id}` (admins),
//! `POST /auth/token` (username and password → token), `DELETE /auth/token` (the token
//! used) and `DELETE /auth/tokens/{id}`.

use super::AppState;
use super::admin_views::{RevokedView, TokenView, UserView};
use super::audit;
use super::auth::{authenticate, authorize, hash_token};
use super::body;
use super::list_views::PageView;
use super::query::{self, Query, parse_id};
use super::reply::respond;
use crate::error::Error;
use crate::password;
use crate::store::{NewUser, Role, UserRecord};
use bytes::Bytes;
use rand::RngCore;
use serde::Deserialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"username": "alice", "password": "correct horse battery", "role": "operator"})))]
pub struct CreateUser {
    /// 1 to 64 letters, digits, '-', '_', '.' or '@'.
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    username: String,
    #[schema(min_length = 8, max_length = 256)]
    password: String,
    role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"username": "alice", "password": "correct horse battery"})))]
pub struct Login {
    username: String,
    password: String,
}

pub async fn create(state: AppState, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        let admin = authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let request: CreateUser = body::parse(&raw)?;
        username(&request.username)?;
        password_rules(&request.password)?;
        let password_hash = hash_password(request.password.clone()).await?;
        let audit = audit::entry(
            &admin,
            "POST /users",
            serde_json::json!({"username": request.username, "role": request.role, "password": ""}),
        );
        let user = state
            .store
            .create_user(
                NewUser {
                    username: request.username,
                    role: request.role,
                    password_hash,
                },
                audit,
            )
            .await?;
        Ok::<_, Error>(UserView::from(user))
    }
    .await;
    respond(StatusCode::CREATED, result)
}

pub async fn list(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let page = state.store.list_users(query::page(&query)?).await?;
        Ok::<_, Error>(PageView::new(page, UserView::from))
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn get(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let user = state
            .store
            .user(parse_id("user", &id)?)
            .await?
            .ok_or_else(|| Error::not_found("user", &id))?;
        Ok::<_, Error>(UserView::from(user))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// Username and password in, a new API token out. Unknown users and wrong passwords
/// get the same answer, after the same work.
pub async fn login(state: AppState, raw: Bytes) -> Response {
    let result = async {
        let request: Login = body::parse(&raw)?;
        if request.password.len() > password::MAX_LENGTH * 4 {
            return Err(Error::BadCredentials);
        }
        let user = state.store.user_by_name(request.username.clone()).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let matches = verify_password(request.password, stored).await?;
        let user = match (user, matches) {
            (Some(user), true) => user,
            _ => {
                return Err(Error::BadCredentials);
            }
        };
        let token = new_token();
        let audit = audit::entry(
            &user,
            "POST /auth/token",
            serde_json::json!({"username": user.username}),
        );
        let record = state
            .store
            .issue_token(user.clone(), hash_token(&token), audit)
            .await?;
        Ok(TokenView {
            token,
            token_id: record.id,
            token_type: "Bearer",
            user: UserView::from(user),
        })
    }
    .await;
    respond(StatusCode::CREATED, result)
}

/// Revokes the token this request was made with (log out).
pub async fn revoke_own(state: AppState, auth: Option<String>) -> Response {
    let result = async {
        let (user, token_id) = authenticate(&state.store, auth.as_deref()).await?;
        revoke(&state, user, token_id, "DELETE /auth/token").await
    }
    .await;
    respond(StatusCode::OK, result)
}

/// Revokes any token of the caller's, or anyone's for an admin.
pub async fn revoke_by_id(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let token_id = parse_id("token", &id)?;
        revoke(&state, user, token_id, "DELETE /auth/tokens/{id}").await
    }
    .await;
    respond(StatusCode::OK, result)
}

async fn revoke(
    state: &AppState,
    user: UserRecord,
    token_id: u64,
    action: &str,
) -> Result<RevokedView, Error> {
    let audit = audit::entry(&user, action, serde_json::json!({"token_id": token_id}));
    let token = state.store.revoke_token(token_id, user, audit).await?;
    Ok(RevokedView::from(token))
}

/// 32 random bytes, hex: 256 bits nobody guesses.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn username(value: &str) -> Result<(), Error> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "username '{value}' is not valid; use 1 to 64 letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

fn password_rules(value: &str) -> Result<(), Error> {
    let length = value.chars().count();
    if (password::MIN_LENGTH..=password::MAX_LENGTH).contains(&length) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "password has {length} characters; use {} to {}",
            password::MIN_LENGTH,
            password::MAX_LENGTH
        )))
    }
}

async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(Error::Internal)
}

/// Checks `password` against `stored`; with no stored hash it still spends the time of
/// a check, so a wrong username cannot be told from a wrong password by timing.
async fn verify_password(password: String, stored: Option<String>) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || match stored {
        Some(phc) => password::verify(&password, &phc),
        None => {
            let _ = password::hash(&password);
            false
        }
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    /// The document's limits are literals (utoipa takes no constants); they must say what
    /// `username` and `password_rules` check.
    #[test]
    fn the_documented_user_rules_are_the_checked_ones() {
        let schema = serde_json::to_value(CreateUser::schema()).expect("serializes");
        let password = &schema["properties"]["password"];
        assert_eq!(password["minLength"], password::MIN_LENGTH);
        assert_eq!(password["maxLength"], password::MAX_LENGTH);
        assert!(password_rules(&"x".repeat(password::MIN_LENGTH)).is_ok());
        assert!(password_rules(&"x".repeat(password::MIN_LENGTH - 1)).is_err());
        assert!(password_rules(&"é".repeat(password::MAX_LENGTH)).is_ok());
        assert!(password_rules(&"x".repeat(password::MAX_LENGTH + 1)).is_err());

        assert_eq!(
            schema["properties"]["username"]["pattern"],
            "^[A-Za-z0-9._@-]{1,64}$"
        );
        for good in ["a", "alice.smith@example-1_x", &"u".repeat(64)] {
            assert!(username(good).is_ok(), "{good}");
        }
        for bad in ["", "bob smith", "bob/x", "é", &"u".repeat(65)] {
            assert!(username(bad).is_err(), "{bad}");
        }
    }
}
