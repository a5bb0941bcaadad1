//! JSON of users, tokens, tickets and audit records.

use super::views::{UserRef, opt_timestamp, timestamp};
use crate::store::{AuditRecord, Priority, Role, TicketRecord, TokenRecord, UserRecord};
use drover_shared::JobStatus;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: u64,
    pub username: String,
    pub role: Role,
    pub created_at: String,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> UserView {
        UserView {
            id: u.id,
            username: u.username,
            role: u.role,
            created_at: timestamp(u.created_at),
        }
    }
}

/// A new API token: the only time the token itself is shown.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub token: String,
    pub token_id: u64,
    pub token_type: &'static str,
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
pub struct RevokedView {
    pub token_id: u64,
    pub revoked: bool,
}

impl From<TokenRecord> for RevokedView {
    fn from(token: TokenRecord) -> RevokedView {
        RevokedView {
            token_id: token.id,
            revoked: true,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FailureSummaryView {
    pub status: JobStatus,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub failed_hosts: Vec<String>,
    pub playbook: String,
    pub server: String,
    pub completed_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TicketView {
    pub id: u64,
    pub job_id: u64,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub failure_summary: FailureSummaryView,
    pub created_by: u64,
    pub created_at: String,
}

impl From<TicketRecord> for TicketView {
    fn from(t: TicketRecord) -> TicketView {
        let s = t.failure_summary;
        TicketView {
            id: t.id,
            job_id: t.job_id,
            title: t.title,
            description: t.description,
            priority: t.priority,
            failure_summary: FailureSummaryView {
                status: s.status,
                exit_code: s.exit_code,
                error: s.error,
                failed_hosts: s.failed_hosts,
                playbook: s.playbook,
                server: s.server,
                completed_at: opt_timestamp(s.completed_at),
            },
            created_by: t.created_by,
            created_at: timestamp(t.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: u64,
    pub at: String,
    pub user: UserRef,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
}

impl From<AuditRecord> for AuditView {
    fn from(a: AuditRecord) -> AuditView {
        AuditView {
            id: a.id,
            at: timestamp(a.at),
            user: UserRef {
                id: a.user_id,
                username: a.username,
            },
            action: a.action,
            target: a.target,
            parameters: a.parameters,
        }
    }
}
