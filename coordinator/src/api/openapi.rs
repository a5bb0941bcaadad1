//! `GET /openapi.json`: an OpenAPI 3.1 document built from the code. Every route of
//! [`super::routes`] has one row in [`OPERATIONS`]; the JSON shapes come from the
//! views' and requests' `ToSchema` derives, so the document follows the structs.

use super::HealthView;
use super::admin_views::{AuditView, RevokedView, TicketView, TokenView, UserView};
use super::agents::AgentsView;
use super::catalog::{CreatePlaybook, CreateServer, Deleted};
use super::job_actions::{CancelView, CreateTicket};
use super::jobs::CreateJob;
use super::list_views::{JobSummaryView, PageView, Pagination, StatisticsView};
use super::monitoring::AlertsView;
use super::reply::ErrorBody;
use super::timeline::{self, TimelineView};
use super::users::{CreateUser, Login};
use super::views::{EventPageView, HostsView, JobView, LogPageView, PlaybookView, ServerView};
use super::webhooks::{CreateWebhook, DeliveryView, WebhookView};
use super::{jobs, log_filter, query};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, Required,
    ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

/// A query parameter and its type.
#[derive(Clone, Copy)]
enum Q {
    Int(&'static str),
    /// An integer the handler accepts only from `min` to `max` (outside: 422).
    Range(&'static str, u64, u64),
    Time(&'static str),
    Status,
    /// Text of 1 to `max` characters.
    Text(&'static str, usize),
    /// A log level: DEBUG, INFO, WARNING or ERROR.
    Level,
}

/// One route: method, path, who may call it, its query, body and success answer.
struct Operation {
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    /// `None`: no token needed.
    role: Option<&'static str>,
    query: &'static [Q],
    body: Option<&'static str>,
    ok: (u16, &'static str),
    /// Statuses beyond the ones every route may answer.
    errors: &'static [u16],
}

const PAGE_NUMBER: Q = Q::Range("page", 1, query::MAX_PAGE);
const PER_PAGE: Q = Q::Range("per_page", 1, query::MAX_PER_PAGE);
const LIMIT: Q = Q::Range("limit", 1, jobs::MAX_LOG_LIMIT as u64);
const PAGE: [Q; 2] = [PAGE_NUMBER, PER_PAGE];
const JOB_FILTERS: [Q; 8] = [
    Q::Status,
    Q::Int("playbook_id"),
    Q::Int("server_id"),
    Q::Int("user_id"),
    Q::Time("created_after"),
    Q::Time("created_before"),
    PAGE_NUMBER,
    PER_PAGE,
];
const AUDIT_FILTERS: [Q; 5] = [
    Q::Int("user_id"),
    Q::Time("created_after"),
    Q::Time("created_before"),
    PAGE_NUMBER,
    PER_PAGE,
];

use HttpMethod::{Delete, Get, Post, Put};

const OPERATIONS: &[Operation] = &[
    op(
        Get,
        "/healthz",
        "Liveness",
        None,
        &[],
        None,
        (200, "HealthView"),
        &[],
    ),
    op(
        Get,
        "/openapi.json",
        "This document",
        None,
        &[],
        None,
        (200, "Document"),
        &[],
    ),
    op(
        Get,
        "/metrics",
        "Prometheus metrics (OpenMetrics text)",
        None,
        &[],
        None,
        (200, "Metrics"),
        &[],
    ),
    op(
        Get,
        "/alerts",
        "Built-in alerts: firing, and resolved lately",
        Some("viewer"),
        &[],
        None,
        (200, "AlertsView"),
        &[],
    ),
    op(
        Get,
        "/jobs",
        "List jobs, newest first",
        Some("viewer"),
        &JOB_FILTERS,
        None,
        (200, "JobPage"),
        &[],
    ),
    op(
        Post,
        "/jobs",
        "Create and queue a job",
        Some("operator"),
        &[],
        Some("CreateJob"),
        (201, "JobView"),
        &[413],
    ),
    op(
        Get,
        "/jobs/statistics",
        "Job statistics",
        Some("viewer"),
        &[Q::Int("user_id")],
        None,
        (200, "StatisticsView"),
        &[],
    ),
    op(
        Get,
        "/jobs/timeline",
        "Jobs per UTC hour: created, finished by outcome, mean run time",
        Some("viewer"),
        &[Q::Range("hours", 1, timeline::MAX_HOURS)],
        None,
        (200, "TimelineView"),
        &[],
    ),
    op(
        Get,
        "/jobs/{id}",
        "A job (integer id or UUID)",
        Some("viewer"),
        &[],
        None,
        (200, "JobView"),
        &[404],
    ),
    op(
        Get,
        "/jobs/{id}/logs",
        "Log lines after start_line; with level and/or contains, only the lines that match",
        Some("viewer"),
        &[
            Q::Int("start_line"),
            LIMIT,
            Q::Level,
            Q::Text("contains", log_filter::MAX_CONTAINS_CHARS),
        ],
        None,
        (200, "LogPageView"),
        &[404],
    ),
    op(
        Get,
        "/jobs/{id}/logs/stream",
        "Log lines as Server-Sent Events",
        Some("viewer"),
        &[Q::Int("after_line")],
        None,
        (200, "EventStream"),
        &[404],
    ),
    op(
        Get,
        "/jobs/{id}/events",
        "ansible-runner events",
        Some("viewer"),
        &[Q::Int("after_counter"), LIMIT],
        None,
        (200, "EventPageView"),
        &[404],
    ),
    op(
        Get,
        "/jobs/{id}/hosts",
        "Per-host recap",
        Some("viewer"),
        &[],
        None,
        (200, "HostsView"),
        &[404],
    ),
    op(
        Post,
        "/jobs/{id}/cancel",
        "Cancel a pending or running job",
        Some("operator"),
        &[],
        None,
        (200, "CancelView"),
        &[202, 404, 409],
    ),
    op(
        Post,
        "/jobs/{id}/retry",
        "Retry a failed or cancelled job",
        Some("operator"),
        &[],
        None,
        (201, "JobView"),
        &[404, 409],
    ),
    op(
        Post,
        "/jobs/{id}/ticket",
        "Create the job's ticket",
        Some("operator"),
        &[],
        Some("CreateTicket"),
        (201, "TicketView"),
        &[404, 409, 413],
    ),
    op(
        Get,
        "/ws",
        "WebSocket of statuses and log lines",
        Some("viewer"),
        &[],
        None,
        (101, "Upgrade"),
        &[],
    ),
    op(
        Get,
        "/playbooks",
        "List playbooks",
        Some("viewer"),
        &PAGE,
        None,
        (200, "PlaybookPage"),
        &[],
    ),
    op(
        Post,
        "/playbooks",
        "Create a playbook (YAML checked)",
        Some("operator"),
        &[],
        Some("CreatePlaybook"),
        (201, "PlaybookView"),
        &[413],
    ),
    op(
        Get,
        "/playbooks/{id}",
        "A playbook",
        Some("viewer"),
        &[],
        None,
        (200, "PlaybookView"),
        &[404],
    ),
    op(
        Put,
        "/playbooks/{id}",
        "Replace a playbook",
        Some("operator"),
        &[],
        Some("CreatePlaybook"),
        (200, "PlaybookView"),
        &[404, 413],
    ),
    op(
        Post,
        "/playbooks/{id}/sync",
        "Read a file_path playbook's file again (409 for inline content)",
        Some("operator"),
        &[],
        None,
        (200, "PlaybookView"),
        &[404, 409],
    ),
    op(
        Delete,
        "/playbooks/{id}",
        "Delete a playbook no job uses",
        Some("admin"),
        &[],
        None,
        (200, "Deleted"),
        &[404, 409],
    ),
    op(
        Get,
        "/servers",
        "List servers",
        Some("viewer"),
        &PAGE,
        None,
        (200, "ServerPage"),
        &[],
    ),
    op(
        Post,
        "/servers",
        "Create a server",
        Some("operator"),
        &[],
        Some("CreateServer"),
        (201, "ServerView"),
        &[413],
    ),
    op(
        Get,
        "/servers/{id}",
        "A server (viewers see only the key's file name)",
        Some("viewer"),
        &[],
        None,
        (200, "ServerView"),
        &[404],
    ),
    op(
        Put,
        "/servers/{id}",
        "Replace a server",
        Some("operator"),
        &[],
        Some("CreateServer"),
        (200, "ServerView"),
        &[404, 413],
    ),
    op(
        Delete,
        "/servers/{id}",
        "Delete a server no job uses",
        Some("admin"),
        &[],
        None,
        (200, "Deleted"),
        &[404, 409],
    ),
    op(
        Get,
        "/users",
        "List users",
        Some("admin"),
        &PAGE,
        None,
        (200, "UserPage"),
        &[],
    ),
    op(
        Post,
        "/users",
        "Create a user",
        Some("admin"),
        &[],
        Some("CreateUser"),
        (201, "UserView"),
        &[409, 413],
    ),
    op(
        Get,
        "/users/{id}",
        "A user",
        Some("admin"),
        &[],
        None,
        (200, "UserView"),
        &[404],
    ),
    op(
        Post,
        "/auth/token",
        "Username and password for an API token",
        None,
        &[],
        Some("Login"),
        (201, "TokenView"),
        &[401, 413],
    ),
    op(
        Delete,
        "/auth/token",
        "Revoke the token of this request",
        Some("viewer"),
        &[],
        None,
        (200, "RevokedView"),
        &[],
    ),
    op(
        Delete,
        "/auth/tokens/{id}",
        "Revoke a token (own, or any for admins)",
        Some("viewer"),
        &[],
        None,
        (200, "RevokedView"),
        &[404],
    ),
    op(
        Get,
        "/tickets",
        "List tickets",
        Some("viewer"),
        &PAGE,
        None,
        (200, "TicketPage"),
        &[],
    ),
    op(
        Get,
        "/tickets/{id}",
        "A ticket",
        Some("viewer"),
        &[],
        None,
        (200, "TicketView"),
        &[404],
    ),
    op(
        Get,
        "/audit",
        "Audit trail, newest first",
        Some("admin"),
        &AUDIT_FILTERS,
        None,
        (200, "AuditPage"),
        &[],
    ),
    op(
        Get,
        "/agents",
        "Agents and pools, from their heartbeats",
        Some("viewer"),
        &[],
        None,
        (200, "AgentsView"),
        &[],
    ),
    op(
        Get,
        "/webhooks",
        "List webhooks",
        Some("admin"),
        &PAGE,
        None,
        (200, "WebhookPage"),
        &[],
    ),
    op(
        Post,
        "/webhooks",
        "Create a webhook (its secret is shown only here)",
        Some("admin"),
        &[],
        Some("CreateWebhook"),
        (201, "WebhookView"),
        &[413],
    ),
    op(
        Get,
        "/webhooks/{id}",
        "A webhook (without its secret)",
        Some("admin"),
        &[],
        None,
        (200, "WebhookView"),
        &[404],
    ),
    op(
        Put,
        "/webhooks/{id}",
        "Replace a webhook (the secret only if given)",
        Some("admin"),
        &[],
        Some("CreateWebhook"),
        (200, "WebhookView"),
        &[404, 413],
    ),
    op(
        Delete,
        "/webhooks/{id}",
        "Delete a webhook and its delivery log",
        Some("admin"),
        &[],
        None,
        (200, "Deleted"),
        &[404],
    ),
    op(
        Get,
        "/webhooks/{id}/deliveries",
        "A webhook's deliveries and their attempts, newest first",
        Some("admin"),
        &PAGE,
        None,
        (200, "DeliveryPage"),
        &[404],
    ),
];

#[allow(clippy::too_many_arguments)]
const fn op(
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    role: Option<&'static str>,
    query: &'static [Q],
    body: Option<&'static str>,
    ok: (u16, &'static str),
    errors: &'static [u16],
) -> Operation {
    Operation {
        method,
        path,
        summary,
        role,
        query,
        body,
        ok,
        errors,
    }
}

/// Every (method, path) the document lists, for tests that check it against the routes.
pub fn documented_routes() -> Vec<(String, &'static str)> {
    OPERATIONS
        .iter()
        .map(|o| (method_name(&o.method).to_uppercase(), o.path))
        .collect()
}

pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for operation in OPERATIONS {
        paths.add_path_operation(
            operation.path,
            vec![operation.method.clone()],
            build(operation),
        );
    }
    let bearer = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("an API token from POST /auth/token or --admin-token"))
            .build(),
    );
    let components = ComponentsBuilder::new()
        .security_scheme("bearer", bearer)
        .register::<ErrorBody>()
        .register::<JobView>()
        .register::<JobSummaryView>()
        .register::<StatisticsView>()
        .register::<TimelineView>()
        .register::<LogPageView>()
        .register::<EventPageView>()
        .register::<HostsView>()
        .register::<CancelView>()
        .register::<CreateJob>()
        .register::<CreateTicket>()
        .register::<TicketView>()
        .register::<PlaybookView>()
        .register::<CreatePlaybook>()
        .register::<ServerView>()
        .register::<CreateServer>()
        .register::<Deleted>()
        .register::<UserView>()
        .register::<CreateUser>()
        .register::<Login>()
        .register::<TokenView>()
        .register::<RevokedView>()
        .register::<AuditView>()
        .register::<AgentsView>()
        .register::<AlertsView>()
        .register::<CreateWebhook>()
        .register::<WebhookView>()
        .register::<DeliveryView>()
        .register::<Pagination>()
        .page::<JobSummaryView>("JobPage")
        .page::<PlaybookView>("PlaybookPage")
        .page::<ServerView>("ServerPage")
        .page::<UserView>("UserPage")
        .page::<TicketView>("TicketPage")
        .page::<AuditView>("AuditPage")
        .page::<WebhookView>("WebhookPage")
        .page::<DeliveryView>("DeliveryPage")
        .register::<HealthView>()
        .schema("Document", object())
        .schema(
            "EventStream",
            ObjectBuilder::new().schema_type(Type::String).build(),
        )
        .schema(
            "Metrics",
            ObjectBuilder::new().schema_type(Type::String).build(),
        )
        .schema("Upgrade", object())
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Drover")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Run Ansible playbooks against servers and watch them run. Errors are \
                     {\"error\", \"detail\"} with the status of their kind.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// Adds schemas with the schemas they refer to.
trait Register {
    fn register<T: ToSchema>(self) -> Self;
    fn page<T: ToSchema>(self, name: &str) -> Self;
}

impl Register for ComponentsBuilder {
    fn register<T: ToSchema>(self) -> Self {
        let mut referenced = Vec::new();
        T::schemas(&mut referenced);
        self.schemas_from_iter(referenced).schema_from::<T>()
    }

    fn page<T: ToSchema>(self, name: &str) -> Self {
        let mut referenced = Vec::new();
        PageView::<T>::schemas(&mut referenced);
        self.schemas_from_iter(referenced)
            .schema(name, PageView::<T>::schema())
    }
}

fn object() -> utoipa::openapi::Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .build()
        .into()
}

fn build(operation: &Operation) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new()
        .summary(Some(operation.summary))
        .description(
            operation
                .role
                .map(|role| format!("Needs the {role} role or above.")),
        )
        .operation_id(Some(operation_id(operation)));
    if operation.path.contains("{id}") {
        let accepts = if operation.path.starts_with("/jobs/") {
            "the job's integer id or its UUID"
        } else {
            "an integer id"
        };
        builder = builder.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(format!(
                    "{accepts}; anything else names no record (404)"
                )))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .examples(["1"]),
                )),
        );
    }
    for parameter in operation.query {
        let (name, schema) = match parameter {
            Q::Int(name) => (
                *name,
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ),
            Q::Range(name, min, max) => (
                *name,
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(*min))
                    .maximum(Some(*max)),
            ),
            Q::Time(name) => (
                *name,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .examples(["2024-01-08T10:00:05"]),
            ),
            Q::Status => (
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([
                        "pending",
                        "running",
                        "success",
                        "failed",
                        "cancelled",
                    ])),
            ),
            Q::Text(name, max) => (
                *name,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(*max)),
            ),
            Q::Level => (
                "level",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["DEBUG", "INFO", "WARNING", "ERROR"])),
            ),
        };
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(schema)),
        );
    }
    if let Some(body) = operation.body {
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_of(body))
                .required(Some(Required::True))
                .build(),
        ));
    }
    if operation.role.is_some() {
        builder = builder.security(SecurityRequirement::new::<_, [&str; 0], &str>("bearer", []));
    }
    let (status, schema) = operation.ok;
    builder = builder.response(
        status.to_string(),
        ResponseBuilder::new()
            .description("success")
            .content(content_type(schema), json_of(schema))
            .build(),
    );
    let mut errors = vec![400, 422];
    if operation.role.is_some() {
        errors.extend([401, 403]);
    }
    errors.extend(operation.errors.iter().copied());
    for status in errors {
        let response = if status == 202 {
            ResponseBuilder::new()
                .description("cancel requested; the agent has not confirmed yet")
                .content("application/json", json_of("CancelView"))
        } else {
            ResponseBuilder::new()
                .description(error_description(status))
                .content("application/json", json_of("ErrorBody"))
        };
        builder = builder.response(status.to_string(), response.build());
    }
    builder.build()
}

fn content_type(schema: &str) -> &'static str {
    match schema {
        "EventStream" => "text/event-stream",
        "Metrics" => crate::metrics::CONTENT_TYPE,
        _ => "application/json",
    }
}

fn json_of(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

fn operation_id(operation: &Operation) -> String {
    let method = method_name(&operation.method);
    let path: String = operation
        .path
        .trim_start_matches('/')
        .replace(['/', '.'], "_")
        .replace(['{', '}'], "");
    format!("{method}_{path}")
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        Get => "get",
        Post => "post",
        Put => "put",
        Delete => "delete",
        _ => "other",
    }
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "the request cannot be parsed (malformed JSON or query)",
        401 => "missing or unknown token, or bad credentials",
        403 => "the caller's role may not do this",
        404 => "no such record",
        409 => "the record's state forbids this",
        413 => "the body is too large",
        422 => "a value is invalid",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_schema_is_defined() {
        let document = serde_json::to_value(document()).expect("serializes");
        let text = document.to_string();
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| *c != '"').collect();
            assert!(
                schemas.contains_key(&name),
                "schema {name} is referenced but missing"
            );
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut ids: Vec<String> = OPERATIONS.iter().map(operation_id).collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len());
    }
}
