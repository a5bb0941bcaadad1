//! Query-string parameters: numbers, pages, times and statuses, each with an error that
//! names the parameter and what it accepts.

use crate::error::Error;
use crate::store::Page;
use chrono::{DateTime, NaiveDateTime, Utc};
use drover_shared::JobStatus;
use std::collections::HashMap;
use std::str::FromStr;

pub type Query = HashMap<String, String>;

/// Most items on one page of a list.
pub const MAX_PER_PAGE: u64 = 100;
/// Highest page number accepted; deeper pages are better reached with filters.
pub const MAX_PAGE: u64 = 1_000_000;

pub fn number(query: &Query, name: &str, default: u64) -> Result<u64, Error> {
    Ok(optional_number(query, name)?.unwrap_or(default))
}

pub fn optional_number(query: &Query, name: &str) -> Result<Option<u64>, Error> {
    query
        .get(name)
        .map(|raw| {
            raw.parse().map_err(|_| {
                Error::BadRequest(format!("{name} '{raw}' is not a non-negative integer"))
            })
        })
        .transpose()
}

/// `page` (from 1) and `per_page` (1 to [`MAX_PER_PAGE`], default 20).
pub fn page(query: &Query) -> Result<Page, Error> {
    let defaults = Page::default();
    let page = number(query, "page", defaults.page)?;
    let per_page = number(query, "per_page", defaults.per_page)?;
    if page == 0 || page > MAX_PAGE {
        return Err(Error::Invalid(format!(
            "page {page} is out of range; pages count from 1 to {MAX_PAGE}"
        )));
    }
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(Error::Invalid(format!(
            "per_page {per_page} is out of range; use 1 to {MAX_PER_PAGE}"
        )));
    }
    Ok(Page { page, per_page })
}

/// A time as the API prints it (`2024-01-08T10:00:05`, UTC) or RFC 3339 with an offset.
pub fn time(query: &Query, name: &str) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(raw) = query.get(name) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|at| Some(at.and_utc()))
        .map_err(|_| {
            Error::BadRequest(format!(
                "{name} '{raw}' is not a time; use 2024-01-08T10:00:05 (UTC) or RFC 3339"
            ))
        })
}

pub fn status(query: &Query) -> Result<Option<JobStatus>, Error> {
    query
        .get("status")
        .map(|raw| JobStatus::from_str(raw).map_err(Error::BadRequest))
        .transpose()
}

/// A numeric id from a path; anything else names nothing, so it is a 404.
pub fn parse_id(kind: &'static str, raw: &str) -> Result<u64, Error> {
    raw.parse().map_err(|_| Error::not_found(kind, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(page(&query(&[])).ok(), Some(Page::default()));
        assert_eq!(
            page(&query(&[("page", "3"), ("per_page", "50")])).ok(),
            Some(Page {
                page: 3,
                per_page: 50
            })
        );
        for bad in [("page", "0"), ("per_page", "0"), ("per_page", "101")] {
            assert!(
                matches!(page(&query(&[bad])), Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            page(&query(&[("page", "-1")])),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn times_in_the_api_format_or_rfc3339() {
        let spec = time(&query(&[("t", "2024-01-08T10:00:05")]), "t")
            .ok()
            .flatten();
        let rfc = time(&query(&[("t", "2024-01-08T11:00:05+01:00")]), "t")
            .ok()
            .flatten();
        assert!(spec.is_some());
        assert_eq!(spec, rfc);
        assert!(time(&query(&[("t", "yesterday")]), "t").is_err());
    }

    #[test]
    fn statuses_by_name() {
        assert_eq!(
            status(&query(&[("status", "failed")])).ok().flatten(),
            Some(JobStatus::Failed)
        );
        assert!(status(&query(&[("status", "exploded")])).is_err());
    }
}
