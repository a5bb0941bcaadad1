//! Request bodies: bounded in size, parsed strictly (unknown fields are an error).

use crate::error::Error;
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// Largest request body accepted; bigger ones get 413 before they are read.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Error::Invalid(format!("invalid request body: {e}")),
        _ => Error::BadRequest(format!("malformed JSON body: {e}")),
    })
}
