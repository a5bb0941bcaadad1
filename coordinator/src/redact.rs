//! Secrets out of the audit trail: values under keys that name a secret are replaced,
//! however deep they sit in the parameters.

use serde_json::Value;

/// Replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Key fragments that mark a secret (`password`, `db_password`, `api_token`, ...).
const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "private_key",
    "api_key",
    "credential",
    "vault",
];

pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, inner)| {
                    let shown = if is_secret_key(key) {
                        Value::String(REDACTED.into())
                    } else {
                        redact(inner)
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let params = json!({
            "username": "ops",
            "password": "hunter2",
            "extra_vars": {"db_password": "x", "port": 8080, "nested": [{"API_TOKEN": "t"}]},
            "ssh_key_path": "web/id_ed25519"
        });
        assert_eq!(
            redact(&params),
            json!({
                "username": "ops",
                "password": REDACTED,
                "extra_vars": {"db_password": REDACTED, "port": 8080, "nested": [{"API_TOKEN": REDACTED}]},
                "ssh_key_path": "web/id_ed25519"
            })
        );
    }
}
