//! Checks on submitted values, as plain functions. Each error names the bad value and
//! says what is accepted.

use crate::error::Error;
use std::net::IpAddr;
use std::path::{Component, Path};

/// `extra_vars` larger than this (as JSON) are refused: they travel in every dispatch.
pub const MAX_EXTRA_VARS_BYTES: usize = 64 * 1024;
/// Playbook text larger than this is refused.
pub const MAX_PLAYBOOK_BYTES: usize = 512 * 1024;

pub fn non_empty(field: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::Invalid(format!("{field} must not be empty")));
    }
    if value.len() > max {
        return Err(Error::Invalid(format!(
            "{field} is {} bytes; the limit is {max}",
            value.len()
        )));
    }
    Ok(())
}

pub fn extra_vars(value: &serde_json::Value) -> Result<(), Error> {
    if !value.is_object() {
        return Err(Error::Invalid(
            "extra_vars must be a JSON object, e.g. {\"port\": 8080}".into(),
        ));
    }
    let size = value.to_string().len();
    if size > MAX_EXTRA_VARS_BYTES {
        return Err(Error::TooLarge(format!(
            "extra_vars is {size} bytes; the limit is {MAX_EXTRA_VARS_BYTES}"
        )));
    }
    Ok(())
}

/// A hostname (RFC 1123 labels) or an IP address.
pub fn hostname(value: &str) -> Result<(), Error> {
    let valid = value.parse::<IpAddr>().is_ok()
        || (!value.is_empty()
            && value.len() <= 253
            && value.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }));
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "hostname '{value}' is not a valid host name; use letters, digits, '-' and '.'"
        )))
    }
}

pub fn ip_address(value: &str) -> Result<(), Error> {
    value.parse::<IpAddr>().map(|_| ()).map_err(|_| {
        Error::Invalid(format!(
            "ip_address '{value}' is not an IPv4 or IPv6 address"
        ))
    })
}

pub fn ssh_port(port: u32) -> Result<u16, Error> {
    match u16::try_from(port) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(Error::Invalid(format!(
            "ssh_port {port} is out of range; use 1-65535"
        ))),
    }
}

/// Key paths are resolved inside the agent's `--key-dir`: they must be relative and must
/// not climb out of it.
pub fn ssh_key_path(value: &str) -> Result<(), Error> {
    relative_path("ssh_key_path", value, "the agent's key directory")
}

/// A path that stays inside `inside`: relative, no `..`, no NUL.
pub fn relative_path(field: &str, value: &str, inside: &str) -> Result<(), Error> {
    let path = Path::new(value);
    let escapes = path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if value.is_empty() || value.len() > 4096 || escapes || value.contains('\0') {
        return Err(Error::Invalid(format!(
            "{field} '{}' must be a relative path inside {inside}, without '..'",
            value.escape_debug()
        )));
    }
    Ok(())
}

pub fn pool(value: &str) -> Result<(), Error> {
    if drover_shared::protocol::is_valid_pool_name(value) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "pool '{value}' is not a valid pool name; use up to 64 letters, digits, '-' or '_'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_paths_stay_inside_the_key_dir() {
        assert!(ssh_key_path("web/id_ed25519").is_ok());
        assert!(ssh_key_path("./id_rsa").is_ok());
        for hostile in ["/etc/shadow", "../id_rsa", "keys/../../x", ""] {
            assert!(ssh_key_path(hostile).is_err(), "{hostile}");
        }
    }

    #[test]
    fn hosts_and_addresses() {
        assert!(hostname("web-server-01").is_ok());
        assert!(hostname("db.example.com").is_ok());
        assert!(hostname("127.0.0.1").is_ok());
        assert!(hostname("bad host").is_err());
        assert!(hostname("-x").is_err());
        assert!(ip_address("192.168.1.100").is_ok());
        assert!(ip_address("::1").is_ok());
        assert!(ip_address("300.1.1.1").is_err());
    }

    #[test]
    fn ports_in_range() {
        assert_eq!(ssh_port(22).ok(), Some(22));
        assert!(ssh_port(0).is_err());
        assert!(ssh_port(70_000).is_err());
    }

    #[test]
    fn extra_vars_are_a_bounded_object() {
        assert!(extra_vars(&json!({"port": 8080})).is_ok());
        assert!(extra_vars(&json!([1, 2])).is_err());
        let huge = json!({"blob": "x".repeat(MAX_EXTRA_VARS_BYTES)});
        assert!(matches!(extra_vars(&huge), Err(Error::TooLarge(_))));
    }
}
