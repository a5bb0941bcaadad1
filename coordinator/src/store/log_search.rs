//! Log lines that match a level and/or a piece of text, for the UI's "jump to first
//! error" and search: the coordinator scans one job's lines so a browser never has to
//! download a whole log to find something in it.

use super::Store;
use super::catalog::get_record;
use super::jobs::LogPage;
use super::records::{JobRecord, LogRecord};
use super::tables::{JOBS, LOGS, decode};
use crate::error::Error;
use drover_shared::LogLevel;

/// What a line must match; both filters must hold when both are set.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub level: Option<LogLevel>,
    /// Matched without regard to case.
    pub contains: Option<String>,
}

impl LogFilter {
    pub fn is_empty(&self) -> bool {
        self.level.is_none() && self.contains.is_none()
    }
}

/// A page of matching lines, and whether the scan stopped before the log's end.
#[derive(Debug, Clone)]
pub struct LogMatches {
    pub page: LogPage,
    pub has_more: bool,
}

impl Store {
    /// Lines after `start_line` (exclusive) that match `filter`, at most `limit`.
    pub async fn log_matches(
        &self,
        job_id: u64,
        start_line: u64,
        limit: usize,
        filter: LogFilter,
    ) -> Result<LogMatches, Error> {
        self.read(move |tx| {
            let job: JobRecord =
                get_record(tx, JOBS, job_id)?.ok_or_else(|| Error::not_found("job", job_id))?;
            let logs = tx.open_table(LOGS)?;
            let needle = filter.contains.as_deref().map(str::to_lowercase);
            let mut lines = Vec::new();
            let mut has_more = false;
            let from = start_line.saturating_add(1);
            for entry in logs.range((job_id, from)..=(job_id, u64::MAX))? {
                let (key, value) = entry?;
                let record = decode::<LogRecord>(value.value())?;
                if !matches(&record, filter.level, needle.as_deref()) {
                    continue;
                }
                if lines.len() == limit {
                    has_more = true;
                    break;
                }
                lines.push((key.value().1, record));
            }
            Ok(LogMatches {
                page: LogPage {
                    job_id,
                    lines,
                    total_lines: job.total_lines,
                    status: job.status,
                    exit_code: job.exit_code,
                },
                has_more,
            })
        })
        .await
    }
}

/// `needle` is already lower case.
fn matches(record: &LogRecord, level: Option<LogLevel>, needle: Option<&str>) -> bool {
    if level.is_some_and(|level| record.log_level != level) {
        return false;
    }
    match needle {
        None => true,
        Some("") => true,
        // Most lines are ASCII; only those that are not pay for a lowered copy.
        Some(needle) if record.content.is_ascii() && needle.is_ascii() => record
            .content
            .as_bytes()
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle.as_bytes())),
        Some(needle) => record.content.to_lowercase().contains(needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn line(content: &str, level: LogLevel) -> LogRecord {
        LogRecord {
            id: 1,
            content: content.into(),
            log_level: level,
            timestamp: Utc::now(),
        }
    }

    #[test]
    fn level_and_text_both_filter() {
        let fatal = line(
            "fatal: [web-01]: FAILED! => Service not found",
            LogLevel::Error,
        );
        assert!(matches(&fatal, Some(LogLevel::Error), None));
        assert!(matches(&fatal, None, Some("service not")));
        assert!(matches(&fatal, Some(LogLevel::Error), Some("web-01")));
        assert!(!matches(&fatal, Some(LogLevel::Info), Some("web-01")));
        assert!(!matches(&fatal, None, Some("nginx")));
        assert!(matches(
            &line("Ünïcode Ärger", LogLevel::Info),
            None,
            Some("ärger")
        ));
        assert!(matches(&line("short", LogLevel::Info), None, Some("")));
        assert!(!matches(&line("ab", LogLevel::Info), None, Some("abc")));
    }
}
