//! The HTTP API (warp). Routes are listed in [`routes`]; each handler authorizes, parses
//! strictly, calls the store, and answers JSON: the spec's shapes, or
//! `{"error", "detail"}` with the status of the error's kind.

mod admin_views;
mod agents;
mod audit;
mod auth;
mod body;
mod catalog;
mod job_actions;
mod jobs;
mod list_views;
mod log_filter;
mod monitoring;
pub mod openapi;
mod query;
mod reply;
mod stream;
mod tickets;
mod timeline;
mod ui;
mod users;
pub(crate) mod views;
mod webhooks;
mod ws;

pub use auth::hash_token;

use crate::error::Error;
use crate::hub::Hub;
use crate::store::Store;
use async_nats::jetstream;
use bytes::Bytes;
use dashmap::DashSet;
use reply::{error_response, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    /// Jobs stored but not yet on the bus (it was down); the redispatcher retries them.
    pub undispatched: Arc<DashSet<u64>>,
    /// Wakes live watchers after each ingest commit.
    pub hub: Arc<Hub>,
    /// What agents said in their heartbeats.
    pub agents: Arc<crate::agents::Registry>,
    /// What was refused or repeated, for `GET /healthz`.
    pub counters: Arc<crate::telemetry::Counters>,
    /// `--playbook-dir`: where playbooks registered by `file_path` are read.
    pub playbook_dir: Option<Arc<std::path::PathBuf>>,
    /// Metrics and built-in alerts: `GET /metrics`, `GET /alerts`.
    pub monitor: Arc<crate::monitor::Monitor>,
    /// Hands alerts to the webhook loop ([`crate::webhooks::Webhooks::offer_alert`]).
    pub webhooks: crate::webhooks::Webhooks,
}

pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    jobs_routes(state.clone())
        .or(catalog_routes(state.clone()))
        .unify()
        .or(people_routes(state.clone()))
        .unify()
        .or(webhook_routes(state))
        .unify()
        .or(ui::routes())
        .unify()
        .recover(recover)
        .unify()
}

type Route = BoxedFilter<(Response,)>;

/// `GET /healthz`: the coordinator answers, and what it refused or repeated so far.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthView {
    #[schema(value_type = String)]
    pub status: &'static str,
    pub counters: crate::telemetry::CountersView,
    /// What the webhook loop shed or missed (a full queue never slows jobs).
    pub webhooks: crate::webhooks::CountersView,
}

fn with(state: AppState) -> BoxedFilter<(AppState,)> {
    warp::any().map(move || state.clone()).boxed()
}

fn auth() -> BoxedFilter<(Option<String>,)> {
    warp::header::optional::<String>("authorization").boxed()
}

fn json_body() -> BoxedFilter<(Bytes,)> {
    warp::body::content_length_limit(body::MAX_BODY_BYTES)
        .and(warp::body::bytes())
        .boxed()
}

fn query() -> BoxedFilter<(HashMap<String, String>,)> {
    warp::query::<HashMap<String, String>>().boxed()
}

fn jobs_routes(state: AppState) -> Route {
    let s = || with(state.clone());
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(s())
        .map(|state: AppState| {
            json(
                StatusCode::OK,
                &HealthView {
                    status: "ok",
                    counters: state.counters.snapshot(),
                    webhooks: state.webhooks.counters(),
                },
            )
        });
    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .map(|| json(StatusCode::OK, &openapi::document()));
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(s())
        .map(monitoring::metrics);
    let alerts = warp::path!("alerts")
        .and(warp::get())
        .and(s())
        .and(auth())
        .then(monitoring::alerts);
    let create = warp::path!("jobs")
        .and(warp::post())
        .and(s())
        .and(auth())
        .and(json_body())
        .then(jobs::create);
    let list = warp::path!("jobs")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(jobs::list);
    let statistics = warp::path!("jobs" / "statistics")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(jobs::statistics);
    let timeline = warp::path!("jobs" / "timeline")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(timeline::get);
    let get = warp::path!("jobs" / String)
        .and(warp::get())
        .and(s())
        .and(auth())
        .then(|id, state, auth| jobs::get(state, id, auth));
    let logs = warp::path!("jobs" / String / "logs")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(|id, state, auth, query| jobs::logs(state, id, auth, query));
    let stream_logs = warp::path!("jobs" / String / "logs" / "stream")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(query())
        .then(|id, state, auth, last, query| stream::logs(state, id, auth, last, query));
    let events = warp::path!("jobs" / String / "events")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(|id, state, auth, query| jobs::events(state, id, auth, query));
    let hosts = warp::path!("jobs" / String / "hosts")
        .and(warp::get())
        .and(s())
        .and(auth())
        .then(|id, state, auth| jobs::hosts(state, id, auth));
    let cancel = warp::path!("jobs" / String / "cancel")
        .and(warp::post())
        .and(s())
        .and(auth())
        .then(|id, state, auth| job_actions::cancel(state, id, auth));
    let retry = warp::path!("jobs" / String / "retry")
        .and(warp::post())
        .and(s())
        .and(auth())
        .then(|id, state, auth| job_actions::retry(state, id, auth));
    let ticket = warp::path!("jobs" / String / "ticket")
        .and(warp::post())
        .and(s())
        .and(auth())
        .and(json_body())
        .then(|id, state, auth, body| job_actions::ticket(state, id, auth, body));
    let websocket = warp::path!("ws")
        .and(s())
        .and(warp::ws())
        .and(auth())
        .and(query())
        .then(ws::upgrade);
    healthz
        .or(openapi)
        .unify()
        .or(metrics)
        .unify()
        .or(alerts)
        .unify()
        .or(create)
        .unify()
        .or(list)
        .unify()
        .or(statistics)
        .unify()
        .or(timeline)
        .unify()
        .or(get)
        .unify()
        .boxed()
        .or(logs)
        .unify()
        .or(stream_logs)
        .unify()
        .or(events)
        .unify()
        .or(hosts)
        .unify()
        .or(cancel)
        .unify()
        .or(retry)
        .unify()
        .or(ticket)
        .unify()
        .or(websocket)
        .unify()
        .boxed()
}

fn catalog_routes(state: AppState) -> Route {
    let sync = warp::path!("playbooks" / String / "sync")
        .and(warp::post())
        .and(with(state.clone()))
        .and(auth())
        .then(|id, state, auth| catalog::sync_playbook(state, id, auth));
    catalog_kind::<catalog::Playbooks>(state.clone())
        .or(catalog_kind::<catalog::Servers>(state))
        .unify()
        .or(sync)
        .unify()
        .boxed()
}

/// `/playbooks` or `/servers`: list, create, get, replace, delete.
fn catalog_kind<K: catalog::Kind>(state: AppState) -> Route {
    let s = || with(state.clone());
    let collection = || warp::path(K::SEGMENT).and(warp::path::end());
    let one = || {
        warp::path(K::SEGMENT)
            .and(warp::path::param::<String>())
            .and(warp::path::end())
    };
    let create = collection()
        .and(warp::post())
        .and(s())
        .and(auth())
        .and(json_body())
        .then(catalog::create::<K>);
    let list = collection()
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(catalog::list::<K>);
    let get = one()
        .and(warp::get())
        .and(s())
        .and(auth())
        .then(|id, state, auth| catalog::get::<K>(state, id, auth));
    let update = one()
        .and(warp::put())
        .and(s())
        .and(auth())
        .and(json_body())
        .then(|id, state, auth, body| catalog::update::<K>(state, id, auth, body));
    let delete = one()
        .and(warp::delete())
        .and(s())
        .and(auth())
        .then(|id, state, auth| catalog::delete::<K>(state, id, auth));
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .boxed()
}

fn people_routes(state: AppState) -> Route {
    let s = || with(state.clone());
    let create_user = warp::path!("users")
        .and(warp::post())
        .and(s())
        .and(auth())
        .and(json_body())
        .then(users::create);
    let list_users = warp::path!("users")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(users::list);
    let get_user = warp::path!("users" / String)
        .and(warp::get())
        .and(s())
        .and(auth())
        .then(|id, state, auth| users::get(state, id, auth));
    let login = warp::path!("auth" / "token")
        .and(warp::post())
        .and(s())
        .and(json_body())
        .then(users::login);
    let logout = warp::path!("auth" / "token")
        .and(warp::delete())
        .and(s())
        .and(auth())
        .then(users::revoke_own);
    let revoke = warp::path!("auth" / "tokens" / String)
        .and(warp::delete())
        .and(s())
        .and(auth())
        .then(|id, state, auth| users::revoke_by_id(state, id, auth));
    let list_tickets = warp::path!("tickets")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(tickets::list);
    let get_ticket = warp::path!("tickets" / String)
        .and(warp::get())
        .and(s())
        .and(auth())
        .then(|id, state, auth| tickets::get(state, id, auth));
    let agents = warp::path!("agents")
        .and(warp::get())
        .and(s())
        .and(auth())
        .then(agents::list);
    let audit_trail = warp::path!("audit")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(audit::list);
    create_user
        .or(list_users)
        .unify()
        .or(get_user)
        .unify()
        .or(login)
        .unify()
        .or(logout)
        .unify()
        .boxed()
        .or(revoke)
        .unify()
        .or(list_tickets)
        .unify()
        .or(get_ticket)
        .unify()
        .or(audit_trail)
        .unify()
        .or(agents)
        .unify()
        .boxed()
}

/// `/webhooks`: list, create, get, replace, delete, and each one's delivery log.
fn webhook_routes(state: AppState) -> Route {
    let s = || with(state.clone());
    let create = warp::path!("webhooks")
        .and(warp::post())
        .and(s())
        .and(auth())
        .and(json_body())
        .then(webhooks::create);
    let list = warp::path!("webhooks")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(webhooks::list);
    let get = warp::path!("webhooks" / String)
        .and(warp::get())
        .and(s())
        .and(auth())
        .then(|id, state, auth| webhooks::get(state, id, auth));
    let update = warp::path!("webhooks" / String)
        .and(warp::put())
        .and(s())
        .and(auth())
        .and(json_body())
        .then(|id, state, auth, body| webhooks::update(state, id, auth, body));
    let delete = warp::path!("webhooks" / String)
        .and(warp::delete())
        .and(s())
        .and(auth())
        .then(|id, state, auth| webhooks::delete(state, id, auth));
    let deliveries = warp::path!("webhooks" / String / "deliveries")
        .and(warp::get())
        .and(s())
        .and(auth())
        .and(query())
        .then(|id, state, auth, query| webhooks::deliveries(state, id, auth, query));
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(deliveries)
        .unify()
        .boxed()
}

/// Requests no route took: unknown paths, wrong methods, oversized or unreadable bodies.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    // A request can be refused by several routes at once (another method of the same
    // path answers 405): what was wrong with the request itself comes first.
    let error = if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        Error::TooLarge(format!("the limit is {} bytes", body::MAX_BODY_BYTES))
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        Error::BadRequest("send a Content-Length header with the body".into())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        Error::BadRequest(format!("invalid query string: {e}"))
    } else if rejection.is_not_found() {
        Error::not_found("route", "for this path")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(json(
            StatusCode::METHOD_NOT_ALLOWED,
            &reply::ErrorBody {
                error: "method_not_allowed",
                detail: "this path does not accept that method".into(),
            },
        ));
    } else {
        Error::BadRequest(format!("request not understood: {rejection:?}"))
    };
    Ok(error_response(&error))
}
