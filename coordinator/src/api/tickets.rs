//! `GET /tickets` and `GET /tickets/{id}` (tickets are made by `POST /jobs/{id}/ticket`).

use super::AppState;
use super::admin_views::TicketView;
use super::auth::authorize;
use super::list_views::PageView;
use super::query::{self, Query, parse_id};
use super::reply::respond;
use crate::error::Error;
use crate::store::Role;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn list(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let page = state.store.list_tickets(query::page(&query)?).await?;
        Ok::<_, Error>(PageView::new(page, TicketView::from))
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn get(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let ticket_id = parse_id("ticket", &id)?;
        let ticket = state
            .store
            .ticket(ticket_id)
            .await?
            .ok_or_else(|| Error::not_found("ticket", &id))?;
        Ok(TicketView::from(ticket))
    }
    .await;
    respond(StatusCode::OK, result)
}
