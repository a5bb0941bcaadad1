//! `GET /metrics` (Prometheus, no token: scrapers rarely carry one, and it holds counts
//! and names, no secrets) and `GET /alerts` (the built-in alerts).

use super::AppState;
use super::auth::authorize;
use super::reply::respond;
use crate::metrics::CONTENT_TYPE;
use crate::store::Role;
use drover_shared::protocol::AlertMessage;
use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

pub fn metrics(state: AppState) -> Response {
    let text = state.monitor.metrics.encode();
    let mut response = Response::new(text.into());
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

/// `GET /alerts`: what fires now, and what resolved lately.
#[derive(Serialize, ToSchema)]
pub struct AlertsView {
    /// Oldest first.
    pub firing: Vec<AlertMessage>,
    /// Newest first; the last 50.
    pub resolved: Vec<AlertMessage>,
}

pub async fn alerts(state: AppState, auth: Option<String>) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let (firing, resolved) = state.monitor.alerts();
        Ok(AlertsView { firing, resolved })
    }
    .await;
    respond(StatusCode::OK, result)
}
