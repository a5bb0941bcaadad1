//! Playbooks and servers: list and get (viewers), create and update (operators), delete
//! (admins; refused while jobs refer to them).

use super::AppState;
use super::audit;
use super::auth::authorize;
use super::body;
use super::list_views::PageView;
use super::query::{self, Query, parse_id};
use super::reply::respond;
use super::views::{PlaybookView, ServerView};
use crate::error::Error;
use crate::store::{
    Audit, NewPlaybook, NewServer, Page, Paged, PlaybookRecord, Role, ServerRecord, Store,
};
use crate::validate;
use crate::{playbook_files, playbook_yaml};
use bytes::Bytes;
use drover_shared::Connection;
use drover_shared::protocol::DEFAULT_POOL;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
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
    /// The playbook's YAML; or give `file_path` instead.
    content: Option<String>,
    /// A YAML file under the coordinator's `--playbook-dir`, read now and on
    /// `POST /playbooks/{id}/sync`; or give `content` instead.
    file_path: Option<String>,
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
    /// Checks every field, reading `file_path` if given; the YAML must parse and be a
    /// list of plays.
    async fn validated(self, playbook_dir: Option<Arc<PathBuf>>) -> Result<NewPlaybook, Error> {
        validate::non_empty("name", &self.name, 200)?;
        let content = match (self.content, &self.file_path) {
            (Some(content), None) => content,
            (None, Some(path)) => playbook_files::read_async(playbook_dir, path.clone()).await?,
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(
                    "give either content or file_path, not both".into(),
                ));
            }
            (None, None) => {
                return Err(Error::Invalid(
                    "content is missing; give the playbook's YAML as content, or a file_path under the coordinator's --playbook-dir".into(),
                ));
            }
        };
        validate::non_empty("content", &content, validate::MAX_PLAYBOOK_BYTES)?;
        if self.description.len() > MAX_DESCRIPTION {
            return Err(Error::Invalid(format!(
                "description is {} bytes; the limit is {MAX_DESCRIPTION}",
                self.description.len()
            )));
        }
        if self.timeout == Some(0) {
            return Err(Error::Invalid("timeout must be at least 1 second".into()));
        }
        playbook_yaml::check(&content)?;
        Ok(NewPlaybook {
            name: self.name,
            description: self.description,
            content,
            file_path: self.file_path,
            timeout_secs: self.timeout,
            allow_simultaneous: self.allow_simultaneous,
        })
    }

    fn audited(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "description": self.description, "timeout": self.timeout, "allow_simultaneous": self.allow_simultaneous, "content_bytes": self.content.as_ref().map(String::len), "file_path": self.file_path})
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

/// What differs between playbooks and servers; their handlers are written once, below.
pub trait Kind: Send + Sync + 'static {
    /// Singular, for errors and audit targets: `playbook`.
    const NAME: &'static str;
    /// The collection's path segment: `playbooks`.
    const SEGMENT: &'static str;
    type Request: DeserializeOwned + Send;
    type Record: Send + 'static;
    type View: Serialize + ToSchema;

    fn audited(request: &Self::Request) -> serde_json::Value;
    fn view(record: Self::Record, role: Role) -> Self::View;
    fn create(
        state: &AppState,
        request: Self::Request,
        audit: Audit,
    ) -> impl Future<Output = Result<Self::Record, Error>> + Send;
    fn update(
        state: &AppState,
        id: u64,
        request: Self::Request,
        audit: Audit,
    ) -> impl Future<Output = Result<Self::Record, Error>> + Send;
    fn delete(
        store: &Store,
        id: u64,
        audit: Audit,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    fn get(
        store: &Store,
        id: u64,
    ) -> impl Future<Output = Result<Option<Self::Record>, Error>> + Send;
    fn list(
        store: &Store,
        page: Page,
    ) -> impl Future<Output = Result<Paged<Self::Record>, Error>> + Send;
}

pub struct Playbooks;
pub struct Servers;

impl Kind for Playbooks {
    const NAME: &'static str = "playbook";
    const SEGMENT: &'static str = "playbooks";
    type Request = CreatePlaybook;
    type Record = PlaybookRecord;
    type View = PlaybookView;

    fn audited(request: &CreatePlaybook) -> serde_json::Value {
        request.audited()
    }
    fn view(record: PlaybookRecord, _: Role) -> PlaybookView {
        PlaybookView::from(record)
    }
    async fn create(
        state: &AppState,
        request: CreatePlaybook,
        audit: Audit,
    ) -> Result<PlaybookRecord, Error> {
        let new = request.validated(state.playbook_dir.clone()).await?;
        state.store.create_playbook(new, audit).await
    }
    async fn update(
        state: &AppState,
        id: u64,
        request: CreatePlaybook,
        audit: Audit,
    ) -> Result<PlaybookRecord, Error> {
        let new = request.validated(state.playbook_dir.clone()).await?;
        state.store.update_playbook(id, new, audit).await
    }
    async fn delete(store: &Store, id: u64, audit: Audit) -> Result<(), Error> {
        store.delete_playbook(id, audit).await
    }
    async fn get(store: &Store, id: u64) -> Result<Option<PlaybookRecord>, Error> {
        store.playbook(id).await
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<PlaybookRecord>, Error> {
        store.list_playbooks(page).await
    }
}

impl Kind for Servers {
    const NAME: &'static str = "server";
    const SEGMENT: &'static str = "servers";
    type Request = CreateServer;
    type Record = ServerRecord;
    type View = ServerView;

    fn audited(request: &CreateServer) -> serde_json::Value {
        request.audited()
    }
    fn view(record: ServerRecord, role: Role) -> ServerView {
        ServerView::for_role(record, role)
    }
    async fn create(
        state: &AppState,
        request: CreateServer,
        audit: Audit,
    ) -> Result<ServerRecord, Error> {
        state.store.create_server(request.validated()?, audit).await
    }
    async fn update(
        state: &AppState,
        id: u64,
        request: CreateServer,
        audit: Audit,
    ) -> Result<ServerRecord, Error> {
        state
            .store
            .update_server(id, request.validated()?, audit)
            .await
    }
    async fn delete(store: &Store, id: u64, audit: Audit) -> Result<(), Error> {
        store.delete_server(id, audit).await
    }
    async fn get(store: &Store, id: u64) -> Result<Option<ServerRecord>, Error> {
        store.server(id).await
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<ServerRecord>, Error> {
        store.list_servers(page).await
    }
}

/// `POST /playbooks`, `POST /servers` (operators).
pub async fn create<K: Kind>(state: AppState, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let request: K::Request = body::parse(&raw)?;
        let action = format!("POST /{}", K::SEGMENT);
        let audit = audit::entry(&user, &action, K::audited(&request));
        let record = K::create(&state, request, audit).await?;
        Ok::<_, Error>(K::view(record, user.role))
    }
    .await;
    respond(StatusCode::CREATED, result)
}

/// `PUT /playbooks/{id}`, `PUT /servers/{id}` (operators): replaces the whole record.
pub async fn update<K: Kind>(
    state: AppState,
    id: String,
    auth: Option<String>,
    raw: Bytes,
) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let record_id = parse_id(K::NAME, &id)?;
        let request: K::Request = body::parse(&raw)?;
        let mut params = K::audited(&request);
        params["id"] = record_id.into();
        let action = format!("PUT /{}/{{id}}", K::SEGMENT);
        let audit = audit::entry(&user, &action, params);
        let record = K::update(&state, record_id, request, audit).await?;
        Ok::<_, Error>(K::view(record, user.role))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `DELETE /playbooks/{id}`, `DELETE /servers/{id}` (admins; 409 while jobs use it).
pub async fn delete<K: Kind>(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let record_id = parse_id(K::NAME, &id)?;
        let action = format!("DELETE /{}/{{id}}", K::SEGMENT);
        let audit = audit::entry(&user, &action, serde_json::json!({"id": record_id}));
        K::delete(&state.store, record_id, audit).await?;
        Ok::<_, Error>(Deleted {
            id: record_id,
            deleted: true,
        })
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `GET /playbooks/{id}`, `GET /servers/{id}` (viewers).
pub async fn get<K: Kind>(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let record = K::get(&state.store, parse_id(K::NAME, &id)?)
            .await?
            .ok_or_else(|| Error::not_found(K::NAME, &id))?;
        Ok::<_, Error>(K::view(record, user.role))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `GET /playbooks`, `GET /servers` (viewers), in id order.
pub async fn list<K: Kind>(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let page = K::list(&state.store, query::page(&query)?).await?;
        Ok::<_, Error>(PageView::new(page, |record| K::view(record, user.role)))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `POST /playbooks/{id}/sync` (operators): reads a `file_path` playbook's file again;
/// its next jobs run what it holds now. 409 for a playbook with inline content.
pub async fn sync_playbook(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let user = authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let record_id = parse_id(Playbooks::NAME, &id)?;
        let current = state
            .store
            .playbook(record_id)
            .await?
            .ok_or_else(|| Error::not_found(Playbooks::NAME, &id))?;
        let Some(file_path) = current.file_path.clone() else {
            return Err(Error::Conflict(format!(
                "playbook {record_id} has inline content, not a file_path: update it with PUT"
            )));
        };
        let request = CreatePlaybook {
            name: current.name,
            description: current.description,
            content: None,
            file_path: Some(file_path),
            timeout: current.timeout_secs,
            allow_simultaneous: current.allow_simultaneous,
        };
        let mut params = request.audited();
        params["id"] = record_id.into();
        let audit = audit::entry(&user, "POST /playbooks/{id}/sync", params);
        let record = Playbooks::update(&state, record_id, request, audit).await?;
        Ok::<_, Error>(PlaybookView::from(record))
    }
    .await;
    respond(StatusCode::OK, result)
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub id: u64,
    pub deleted: bool,
}
