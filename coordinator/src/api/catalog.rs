//! `POST /playbooks` and `POST /servers`.

use super::AppState;
use super::auth::authorize;
use super::body;
use super::reply::respond;
use super::views::{PlaybookView, ServerView};
use crate::error::Error;
use crate::store::{NewPlaybook, NewServer, Role};
use crate::validate;
use bytes::Bytes;
use drover_shared::Connection;
use drover_shared::protocol::DEFAULT_POOL;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePlaybook {
    name: String,
    #[serde(default)]
    description: String,
    content: String,
    /// Default timeout in seconds for jobs of this playbook.
    timeout: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateServer {
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

pub async fn create_playbook(state: AppState, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let request: CreatePlaybook = body::parse(&raw)?;
        validate::non_empty("name", &request.name, 200)?;
        validate::non_empty("content", &request.content, validate::MAX_PLAYBOOK_BYTES)?;
        let playbook = state
            .store
            .create_playbook(NewPlaybook {
                name: request.name,
                description: request.description,
                content: request.content,
                timeout_secs: request.timeout,
            })
            .await?;
        Ok::<_, Error>(PlaybookView::from(playbook))
    }
    .await;
    respond(StatusCode::CREATED, result)
}

pub async fn create_server(state: AppState, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Operator).await?;
        let request: CreateServer = body::parse(&raw)?;
        validate::hostname(&request.hostname)?;
        validate::ip_address(&request.ip_address)?;
        let ssh_port = validate::ssh_port(request.ssh_port)?;
        validate::non_empty("ssh_user", &request.ssh_user, 64)?;
        if let Some(path) = &request.ssh_key_path {
            validate::ssh_key_path(path)?;
        }
        validate::pool(&request.pool)?;
        let server = state
            .store
            .create_server(NewServer {
                hostname: request.hostname,
                ip_address: request.ip_address,
                ssh_port,
                ssh_user: request.ssh_user,
                ssh_key_path: request.ssh_key_path,
                pool: request.pool,
                connection: request.connection,
                python_interpreter: request.python_interpreter,
            })
            .await?;
        Ok::<_, Error>(ServerView::from(server))
    }
    .await;
    respond(StatusCode::CREATED, result)
}
