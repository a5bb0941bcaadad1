//! `level=` and `contains=` of `GET /jobs/{id}/logs`: the UI's "jump to first error" and
//! log search, answered from the store instead of a downloaded log.

use super::query::Query;
use crate::error::Error;
use crate::store::LogFilter;
use drover_shared::LogLevel;

/// Longest `contains=` text accepted.
pub const MAX_CONTAINS_CHARS: usize = 200;

pub fn parse(query: &Query) -> Result<LogFilter, Error> {
    let level = match query.get("level") {
        None => None,
        Some(raw) => Some(level(raw)?),
    };
    let contains = match query.get("contains") {
        None => None,
        Some(text) if text.is_empty() || text.chars().count() > MAX_CONTAINS_CHARS => {
            return Err(Error::Invalid(format!(
                "contains must be 1 to {MAX_CONTAINS_CHARS} characters long"
            )));
        }
        Some(text) => Some(text.clone()),
    };
    Ok(LogFilter { level, contains })
}

fn level(raw: &str) -> Result<LogLevel, Error> {
    [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
    ]
    .into_iter()
    .find(|level| level.as_str().eq_ignore_ascii_case(raw))
    .ok_or_else(|| {
        Error::Invalid(format!(
            "unknown log level '{raw}'; use one of: DEBUG, INFO, WARNING, ERROR"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn levels_in_any_case_and_bounded_text() {
        let filter = parse(&query(&[("level", "error"), ("contains", "fatal")])).expect("parses");
        assert_eq!(filter.level, Some(LogLevel::Error));
        assert_eq!(filter.contains.as_deref(), Some("fatal"));
        assert!(parse(&query(&[])).expect("parses").is_empty());
        assert!(parse(&query(&[("level", "LOUD")])).is_err());
        assert!(parse(&query(&[("contains", "")])).is_err());
        let long = "x".repeat(MAX_CONTAINS_CHARS + 1);
        assert!(parse(&query(&[("contains", &long)])).is_err());
    }
}
