//! Domain enums shared by the API, the store and the wire protocol.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Lifecycle of a job: `pending → running → success | failed | cancelled`
/// (a pending job may also be cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Success,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Success,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// A finished job never changes status again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Whether a job in `self` may move to `next`. Repeating the current status is
    /// allowed (a redelivered message), moving backwards or out of a final status is not.
    pub fn can_become(self, next: JobStatus) -> bool {
        if self == next {
            return true;
        }
        match self {
            JobStatus::Pending => true,
            JobStatus::Running => next.is_finished(),
            JobStatus::Success | JobStatus::Failed | JobStatus::Cancelled => false,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status '{s}'; use one of: pending, running, success, failed, cancelled"
                )
            })
    }
}

/// The spec's log levels, serialized in upper case as the spec shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How Ansible reaches a server: over SSH (the default) or on the agent host itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    #[default]
    Ssh,
    Local,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_name() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        }
        assert!("done".parse::<JobStatus>().is_err());
    }

    #[test]
    fn finished_statuses_are_final() {
        assert!(JobStatus::Pending.can_become(JobStatus::Running));
        assert!(JobStatus::Pending.can_become(JobStatus::Cancelled));
        assert!(JobStatus::Running.can_become(JobStatus::Failed));
        assert!(!JobStatus::Running.can_become(JobStatus::Pending));
        assert!(!JobStatus::Success.can_become(JobStatus::Failed));
        assert!(!JobStatus::Cancelled.can_become(JobStatus::Running));
        assert!(JobStatus::Failed.can_become(JobStatus::Failed));
    }

    #[test]
    fn levels_serialize_in_upper_case() {
        assert_eq!(
            serde_json::to_string(&LogLevel::Warning).ok().as_deref(),
            Some("\"WARNING\"")
        );
    }
}
