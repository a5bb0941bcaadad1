//! Bearer tokens: only their SHA-256 is stored, and a request's role is checked against
//! what the route needs.

use crate::error::Error;
pub use crate::store::Role;
use crate::store::{Store, UserRecord};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The user behind an `Authorization: Bearer <token>` header and the token's id.
pub async fn authenticate(store: &Store, header: Option<&str>) -> Result<(UserRecord, u64), Error> {
    let token = header
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(Error::Unauthorized)?;
    store
        .user_for_token(hash_token(token))
        .await?
        .ok_or(Error::Unauthorized)
}

/// The user behind an `Authorization: Bearer <token>` header, if they have `needed`.
pub async fn authorize(
    store: &Store,
    header: Option<&str>,
    needed: Role,
) -> Result<UserRecord, Error> {
    let (user, _) = authenticate(store, header).await?;
    if user.role < needed {
        return Err(Error::Forbidden(
            format!(
                "user '{}' is {:?}; this needs {:?} or above",
                user.username, user.role, needed
            )
            .to_lowercase(),
        ));
    }
    Ok(user)
}

/// Like [`authorize`], but also accepts `?token=` for clients that cannot set headers
/// (a browser's EventSource and WebSocket).
pub async fn authorize_request(
    store: &Store,
    header: Option<&str>,
    query: &HashMap<String, String>,
    needed: Role,
) -> Result<UserRecord, Error> {
    match (header, query.get("token")) {
        (None, Some(token)) => authorize(store, Some(&format!("Bearer {token}")), needed).await,
        _ => authorize(store, header, needed).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256() {
        assert_eq!(
            hex::encode(hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
