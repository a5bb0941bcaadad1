//! Request bodies: bounded in size, parsed strictly (unknown fields are an error).

use crate::error::Error;
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// Largest request body accepted; bigger ones get 413 before they are read.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Parses a JSON body; a wrong value's error names the field it is in.
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Error> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let parsed: T = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if field != "." => {
                Error::Invalid(format!("invalid request body: {field}: {inner}"))
            }
            serde_json::error::Category::Data => {
                Error::Invalid(format!("invalid request body: {inner}"))
            }
            _ => Error::BadRequest(format!("malformed JSON body: {inner}")),
        }
    })?;
    json.end()
        .map_err(|e| Error::BadRequest(format!("malformed JSON body: {e}")))?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        priority: u8,
    }

    #[test]
    fn errors_name_the_field_and_the_kind() {
        let wrong = parse::<Sample>(&Bytes::from_static(b"{\"inner\": {\"priority\": \"x\"}}"));
        assert!(
            matches!(&wrong, Err(Error::Invalid(m)) if m.contains("inner.priority")),
            "{wrong:?}"
        );
        let broken = parse::<Sample>(&Bytes::from_static(b"{\"inner\": "));
        assert!(matches!(broken, Err(Error::BadRequest(_))), "{broken:?}");
        let trailing = parse::<Sample>(&Bytes::from_static(b"{\"inner\": {\"priority\": 1}} x"));
        assert!(
            matches!(trailing, Err(Error::BadRequest(_))),
            "{trailing:?}"
        );
    }
}
