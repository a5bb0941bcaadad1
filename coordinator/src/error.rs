//! The coordinator's one error type. Each kind maps to one HTTP status in `api::reply`.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    #[error("stored record cannot be read: {0}")]
    Codec(String),
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the store's writer has stopped; restart the coordinator")]
    WriterGone,
    /// A failure inside the coordinator that no request can cause (a task panicked).
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed JSON but a value is wrong (422).
    #[error("{0}")]
    Invalid(String),
    /// The request cannot be parsed at all (400).
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or unknown API token; send 'Authorization: Bearer <token>'")]
    Unauthorized,
    #[error("invalid username or password")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("request body too large: {0}")]
    TooLarge(String),
    #[error("message bus error: {0}")]
    Nats(String),
}

impl Error {
    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Error {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

/// redb reports each operation with its own error type; all of them are storage errors.
macro_rules! storage_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Error {
                Error::Storage(e.into())
            }
        }
    )*};
}

storage_errors!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);
