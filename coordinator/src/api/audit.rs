//! The audit trail: [`entry`] builds the record a mutating handler hands to the store
//! (which writes it in the same commit as the change), and `GET /audit` reads it.

use super::AppState;
use super::admin_views::AuditView;
use super::auth::authorize;
use super::list_views::PageView;
use super::query::{self, Query};
use super::reply::respond;
use crate::error::Error;
use crate::redact::redact;
use crate::store::{Audit, AuditQuery, Role, UserRecord};
use warp::http::StatusCode;
use warp::reply::Response;

/// What `user` did: `action` is the method and route, `parameters` the request's
/// (path ids and body); secrets in them are redacted here.
pub fn entry(user: &UserRecord, action: &str, parameters: serde_json::Value) -> Audit {
    Audit {
        user_id: user.id,
        username: user.username.clone(),
        action: action.to_owned(),
        parameters: redact(&parameters),
    }
}

/// `GET /audit?user_id=&created_after=&created_before=&page=&per_page=`, newest first.
pub async fn list(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let request = AuditQuery {
            user_id: query::optional_number(&query, "user_id")?,
            after: query::time(&query, "created_after")?,
            before: query::time(&query, "created_before")?,
            page: query::page(&query)?,
        };
        let page = state.store.audit_page(request).await?;
        Ok::<_, Error>(PageView::new(page, AuditView::from))
    }
    .await;
    respond(StatusCode::OK, result)
}
