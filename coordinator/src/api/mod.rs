//! The HTTP API (warp). Routes are listed in [`routes`]; each handler authorizes, parses
//! strictly, calls the store, and answers JSON: the spec's shapes, or
//! `{"error", "detail"}` with the status of the error's kind.

mod auth;
mod body;
mod catalog;
mod jobs;
mod reply;
mod stream;
mod views;
mod ws;

pub use auth::hash_token;

use crate::error::Error;
use crate::hub::Hub;
use crate::store::Store;
use async_nats::jetstream;
use dashmap::DashSet;
use reply::{error_response, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub js: jetstream::Context,
    /// Jobs stored but not yet on the bus (it was down); the redispatcher retries them.
    pub undispatched: Arc<DashSet<u64>>,
    /// Wakes live watchers after each ingest commit.
    pub hub: Arc<Hub>,
}

pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with_state = warp::any().map(move || state.clone());
    let auth = warp::header::optional::<String>("authorization");
    let json_body = warp::body::content_length_limit(body::MAX_BODY_BYTES).and(warp::body::bytes());

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| json(StatusCode::OK, &serde_json::json!({"status": "ok"})));
    let create_job = warp::path!("jobs")
        .and(warp::post())
        .and(with_state.clone())
        .and(auth)
        .and(json_body)
        .then(jobs::create);
    let get_job = warp::path!("jobs" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .then(|id, state, auth| jobs::get(state, id, auth));
    let job_logs = warp::path!("jobs" / String / "logs")
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .and(warp::query::<HashMap<String, String>>())
        .then(|id, state, auth, query| jobs::logs(state, id, auth, query));
    let query = || warp::query::<HashMap<String, String>>();
    let stream_logs = warp::path!("jobs" / String / "logs" / "stream")
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .and(warp::header::optional::<String>("last-event-id"))
        .and(query())
        .then(|id, state, auth, last, query| stream::logs(state, id, auth, last, query));
    let job_events = warp::path!("jobs" / String / "events")
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .and(query())
        .then(|id, state, auth, query| jobs::events(state, id, auth, query));
    let job_hosts = warp::path!("jobs" / String / "hosts")
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .then(|id, state, auth| jobs::hosts(state, id, auth));
    let websocket = warp::path!("ws")
        .and(with_state.clone())
        .and(warp::ws())
        .and(auth)
        .and(query())
        .then(ws::upgrade);
    let create_playbook = warp::path!("playbooks")
        .and(warp::post())
        .and(with_state.clone())
        .and(auth)
        .and(json_body)
        .then(catalog::create_playbook);
    let create_server = warp::path!("servers")
        .and(warp::post())
        .and(with_state)
        .and(auth)
        .and(json_body)
        .then(catalog::create_server);

    healthz
        .or(create_job)
        .unify()
        .or(get_job)
        .unify()
        .or(job_logs)
        .unify()
        .or(stream_logs)
        .unify()
        .or(job_events)
        .unify()
        .or(job_hosts)
        .unify()
        .or(websocket)
        .unify()
        .or(create_playbook)
        .unify()
        .or(create_server)
        .unify()
        .recover(recover)
        .unify()
}

/// Requests no route took: unknown paths, wrong methods, oversized or unreadable bodies.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        Error::not_found("route", "for this path")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        Error::TooLarge(format!("the limit is {} bytes", body::MAX_BODY_BYTES))
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(json(
            StatusCode::METHOD_NOT_ALLOWED,
            &reply::ErrorBody {
                error: "method_not_allowed",
                detail: "this path does not accept that method".into(),
            },
        ));
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        Error::BadRequest(format!("invalid query string: {e}"))
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        Error::BadRequest("send a Content-Length header with the body".into())
    } else {
        Error::BadRequest(format!("request not understood: {rejection:?}"))
    };
    Ok(error_response(&error))
}
