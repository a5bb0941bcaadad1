//! Playbooks and servers: list and get (viewers), create and update (operators), delete
//! (admins; refused while jobs refer to them).

use super::AppState;
use super::audit;
use super::auth::authorize;
use super::body;
use super::list_views::PageView;
use super::query::{self, Query};
use super::reply::respond;
use super::tickets::parse_id;
use super::views::{PlaybookView, ServerView};
use crate::error::Error;
use crate::playbook_yaml;
use crate::store::{NewPlaybook, NewServer, Role};
use crate::validate;
use bytes::Bytes;
use drover_shared::Connection;
use drover_shared::protocol::DEFAULT_POOL;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "name": "ping",
    "description": "checks that every host answers",
    "content": "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n",
    "timeout": 300
})))]
pub struct CreatePlaybook {
    name: String,
    #[serde(default)]
    description: String,
    content: String,
    /// Default timeout in seconds for jobs of this playbook.
    timeout: Option<u64>,
    /// Jobs of this playbook may run while others run on the same server.
    #[serde(default)]
    allow_simultaneous: bool,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "hostname": "web-01",
    "ip_address": "192.0.2.10",
    "ssh_port": 22,
    "ssh_user": "deploy",
    "ssh_key_path": "web/id_ed25519",
    "pool": "default",
    "connection": "ssh"
})))]
pub struct CreateServer {
    hostname: String,
    ip_address: String,
    #[serde(default = "default_ssh_port")]
    ssh_port: u32,
    #[serde(default = "default_ssh_user")]
    ssh_user: String,
    ssh_key_path: Option<String>,
    #[serde(default = "default_pool")]
    pool: String,
    #[serde(default)]
    connection: Connection,
    python_interpreter: Option<String>,
}

fn default_ssh_port() -> u32 {
    22
}

fn default_ssh_user() -> String {
    "root".to_owned()
}

fn default_pool() -> String {
    DEFAULT_POOL.to_owned()
}

impl CreatePlaybook {
    /// Checks every field; the YAML must parse and be a list of plays.
    fn validated(self) -> Result<NewPlaybook, Error> {
        validate::non_empty("name", &self.name, 200)?;
        validate::non_empty("content", &self.content, validate::MAX_PLAYBOOK_BYTES)?;
        if self.description.len() > MAX_DESCRIPTION {
            return Err(Error::Invalid(format!(
                "description is {} bytes; the limit is {MAX_DESCRIPTION}",
                self.description.len()
            )));
        }
        if self.timeout == Some(0) {
            return Err(Error::Invalid("timeout must be at least 1 second".into()));
        }
        playbook_yaml::check(&self.content)?;
        Ok(NewPlaybook {
            name: self.name,
            description: self.description,
            content: self.content,
            timeout_secs: self.timeout,
            allow_simultaneous: self.allow_simultaneous,
        })
    }

    fn audited(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "description": self.description, "timeout": self.timeout, "allow_simultaneous": self.allow_simultaneous, "content_bytes": self.content.len()})
    }
}

impl CreateServer {
    fn validated(self) -> Result<NewServer, Error> {
        validate::hostname(&self.hostname)?;
        validate::ip_address(&self.ip_address)?;
        let ssh_port = validate::ssh_port(self.ssh_port)?;
        validate::non_empty("ssh_user", &self.ssh_user, 64)?;
        if let Some(path) = &self.ssh_key_path {
            validate::ssh_key_path(path)?;
        }
        validate::pool(&self.pool)?;
        if let Some(python) = &self.python_interpreter {
            validate::non_empty("python_interpreter", python, 4096)?;
        }
        Ok(NewServer {
            hostname: self.hostname,
            ip_address: self.ip_address,
            ssh_port,
            ssh_user: self.ssh_user,
            ssh_key_path: self.ssh_key_path,
            pool: self.pool,
            connection: self.connection,
            python_interpreter: self.python_interpreter,
        })
    }

    fn audited(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Longest playbook description.
const MAX_DESCRIPTION: usize = 10_000;

pub async fn create_playbook(state: AppState, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let request: CreatePlaybook = body::parse(&raw)?;
        let audit = audit::entry(&user, "POST /playbooks", request.audited());
        let playbook = state
            .store
            .create_playbook(request.validated()?, audit)
            .await?;
        Ok::<_, Error>(PlaybookView::from(playbook))
    }
    .await;
    respond(StatusCode::CREATED, result)
}

pub async fn update_playbook(
    state: AppState,
    id: String,
    auth: Option<String>,
    raw: Bytes,
) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let playbook_id = parse_id("playbook", &id)?;
        let request: CreatePlaybook = body::parse(&raw)?;
        let mut params = request.audited();
        params["id"] = playbook_id.into();
        let audit = audit::entry(&user, "PUT /playbooks/{id}", params);
        let playbook = state
            .store
            .update_playbook(playbook_id, request.validated()?, audit)
            .await?;
        Ok::<_, Error>(PlaybookView::from(playbook))
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn delete_playbook(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let playbook_id = parse_id("playbook", &id)?;
        let audit = audit::entry(
            &user,
            "DELETE /playbooks/{id}",
            serde_json::json!({"id": playbook_id}),
        );
        state.store.delete_playbook(playbook_id, audit).await?;
        Ok::<_, Error>(Deleted {
            id: playbook_id,
            deleted: true,
        })
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn get_playbook(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let playbook = state
            .store
            .playbook(parse_id("playbook", &id)?)
            .await?
            .ok_or_else(|| Error::not_found("playbook", &id))?;
        Ok::<_, Error>(PlaybookView::from(playbook))
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn list_playbooks(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let page = state.store.list_playbooks(query::page(&query)?).await?;
        Ok::<_, Error>(PageView::new(page, PlaybookView::from))
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn create_server(state: AppState, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let request: CreateServer = body::parse(&raw)?;
        let audit = audit::entry(&user, "POST /servers", request.audited());
        let server = state
            .store
            .create_server(request.validated()?, audit)
            .await?;
        Ok::<_, Error>(ServerView::from(server))
    }
    .await;
    respond(StatusCode::CREATED, result)
}

pub async fn update_server(
    state: AppState,
    id: String,
    auth: Option<String>,
    raw: Bytes,
) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let server_id = parse_id("server", &id)?;
        let request: CreateServer = body::parse(&raw)?;
        let mut params = request.audited();
        params["id"] = server_id.into();
        let audit = audit::entry(&user, "PUT /servers/{id}", params);
        let server = state
            .store
            .update_server(server_id, request.validated()?, audit)
            .await?;
        Ok::<_, Error>(ServerView::from(server))
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn delete_server(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let server_id = parse_id("server", &id)?;
        let audit = audit::entry(
            &user,
            "DELETE /servers/{id}",
            serde_json::json!({"id": server_id}),
        );
        state.store.delete_server(server_id, audit).await?;
        Ok::<_, Error>(Deleted {
            id: server_id,
            deleted: true,
        })
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn get_server(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let server = state
            .store
            .server(parse_id("server", &id)?)
            .await?
            .ok_or_else(|| Error::not_found("server", &id))?;
        Ok::<_, Error>(ServerView::for_role(server, user.role))
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn list_servers(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let page = state.store.list_servers(query::page(&query)?).await?;
        Ok::<_, Error>(PageView::new(page, |s| ServerView::for_role(s, user.role)))
    }
    .await;
    respond(StatusCode::OK, result)
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub id: u64,
    pub deleted: bool,
}
