//! Webhooks (admins only): `POST /webhooks`, `GET /webhooks`, `GET|PUT|DELETE
//! /webhooks/{id}` and `GET /webhooks/{id}/deliveries`, the delivery log. A webhook's
//! secret is shown once, in the answer to its creation, like an API token.

use super::AppState;
use super::audit;
use super::auth::authorize;
use super::body;
use super::catalog::Deleted;
use super::list_views::PageView;
use super::query::{self, Query, parse_id};
use super::reply::respond;
use super::views::{opt_timestamp, timestamp};
use crate::error::Error;
use crate::store::{AttemptRecord, DeliveryRecord, DeliveryState, NewWebhook, Role, WebhookRecord};
use crate::webhooks::WebhookEvent;
use bytes::Bytes;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

/// Longest webhook URL.
pub const MAX_URL: usize = 2048;
/// Bounds of a secret the admin chooses (a generated one is 64 hex characters).
pub const MIN_SECRET: usize = 16;
pub const MAX_SECRET: usize = 256;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "url": "https://chat.example.com/hooks/drover",
    "events": ["job.failed"],
    "description": "failed jobs to the ops channel"
})))]
pub struct CreateWebhook {
    /// http or https, with a host; no user name or password in it.
    #[schema(max_length = 2048, examples("https://hooks.example.com/drover"))]
    url: String,
    /// At least one.
    #[schema(min_items = 1)]
    events: Vec<WebhookEvent>,
    /// Signs every delivery (`X-Drover-Signature`). Generated when absent and shown only
    /// in the answer to `POST`; on `PUT`, absent keeps the current one.
    #[schema(min_length = 16, max_length = 256)]
    secret: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: String,
    /// An inactive webhook gets no deliveries.
    #[serde(default = "active_by_default")]
    active: bool,
}

fn active_by_default() -> bool {
    true
}

impl CreateWebhook {
    fn validated(self) -> Result<NewWebhook, Error> {
        check_url(&self.url)?;
        if self.events.is_empty() {
            return Err(Error::Invalid(
                "events is empty; name at least one of job.finished, job.failed, alert".into(),
            ));
        }
        if let Some(secret) = &self.secret {
            let length = secret.chars().count();
            if !(MIN_SECRET..=MAX_SECRET).contains(&length) {
                return Err(Error::Invalid(format!(
                    "secret has {length} characters; use {MIN_SECRET} to {MAX_SECRET}, or leave it out to have one generated"
                )));
            }
        }
        let length = self.description.chars().count();
        if length > MAX_DESCRIPTION {
            return Err(Error::Invalid(format!(
                "description has {length} characters; the limit is {MAX_DESCRIPTION}"
            )));
        }
        let mut events = self.events;
        events.sort_by_key(|e| e.as_str());
        events.dedup();
        Ok(NewWebhook {
            url: self.url,
            events,
            secret: self.secret,
            description: self.description,
            active: self.active,
        })
    }

    /// The parameters as audited: the secret only as whether one was given (redacted).
    fn audited(&self) -> serde_json::Value {
        let mut params = serde_json::json!({
            "url": self.url,
            "events": self.events,
            "description": self.description,
            "active": self.active,
        });
        if self.secret.is_some() {
            params["secret"] = "given".into();
        }
        params
    }
}

/// A webhook URL: http or https, a host, no credentials, at most [`MAX_URL`] bytes.
pub fn check_url(raw: &str) -> Result<(), Error> {
    if raw.len() > MAX_URL {
        return Err(Error::Invalid(format!(
            "url is {} bytes; the limit is {MAX_URL}",
            raw.len()
        )));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| {
        Error::Invalid(format!(
            "url '{raw}' is not a URL ({e}); use e.g. https://hooks.example.com/drover"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Invalid(format!(
            "url '{raw}' has scheme '{}'; use http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Invalid(format!("url '{raw}' has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Invalid(
            "url carries a user name or password; leave them out (the signature authenticates Drover, and a URL is shown to every admin)".into(),
        ));
    }
    Ok(())
}

/// A webhook as admins see it: never its secret, except once at creation.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: u64,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub description: String,
    pub active: bool,
    /// Always true: every webhook has a secret; it is shown only when it is made.
    pub secret_set: bool,
    /// Only in the answer to `POST /webhooks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_by: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<WebhookRecord> for WebhookView {
    fn from(hook: WebhookRecord) -> WebhookView {
        WebhookView {
            id: hook.id,
            url: hook.url,
            events: hook.events,
            description: hook.description,
            active: hook.active,
            secret_set: !hook.secret.is_empty(),
            secret: None,
            created_by: hook.created_by,
            created_at: timestamp(hook.created_at),
            updated_at: timestamp(hook.updated_at),
        }
    }
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    /// Counts from 1; 0 for a delivery shed before any attempt.
    pub attempt: u32,
    pub at: String,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed; absent for a success.
    pub error: Option<String>,
    pub duration_ms: u64,
    /// When the next attempt is due, if there is one.
    pub next_retry_at: Option<String>,
}

impl From<AttemptRecord> for AttemptView {
    fn from(a: AttemptRecord) -> AttemptView {
        AttemptView {
            attempt: a.number,
            at: timestamp(a.at),
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
            next_retry_at: opt_timestamp(a.next_retry_at),
        }
    }
}

/// One delivery of the log with all its attempts.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: u64,
    /// `X-Drover-Delivery` and the body's `delivery_id`.
    pub delivery_id: String,
    pub webhook_id: u64,
    pub event: WebhookEvent,
    /// pending (another attempt is due), delivered (a 2xx answer) or failed (final).
    pub status: DeliveryState,
    pub attempt_count: u32,
    pub next_retry_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The body's `job` or `alert` object.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub attempts: Vec<AttemptView>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> DeliveryView {
        DeliveryView {
            id: d.id,
            delivery_id: d.uuid.to_string(),
            webhook_id: d.webhook_id,
            event: d.event,
            status: d.state,
            attempt_count: d.attempts.iter().filter(|a| a.number > 0).count() as u32,
            next_retry_at: opt_timestamp(d.next_attempt_at),
            created_at: timestamp(d.created_at),
            updated_at: timestamp(d.updated_at),
            payload: d.payload,
            attempts: d.attempts.into_iter().map(AttemptView::from).collect(),
        }
    }
}

/// `POST /webhooks`: 201 with the webhook and, this once, its secret.
pub async fn create(state: AppState, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        let admin = authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let request: CreateWebhook = body::parse(&raw)?;
        let audit = audit::entry(&admin, "POST /webhooks", request.audited());
        let mut new = request.validated()?;
        let secret = new.secret.take().unwrap_or_else(new_secret);
        new.secret = Some(secret.clone());
        let hook = state.store.create_webhook(new, admin.id, audit).await?;
        let mut view = WebhookView::from(hook);
        view.secret = Some(secret);
        Ok::<_, Error>(view)
    }
    .await;
    respond(StatusCode::CREATED, result)
}

/// `PUT /webhooks/{id}`: replaces url, events, description and active; the secret only
/// if one is given.
pub async fn update(state: AppState, id: String, auth: Option<String>, raw: Bytes) -> Response {
    let result = async {
        let admin = authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let hook_id = parse_id("webhook", &id)?;
        let request: CreateWebhook = body::parse(&raw)?;
        let mut params = request.audited();
        params["id"] = hook_id.into();
        let audit = audit::entry(&admin, "PUT /webhooks/{id}", params);
        let hook = state
            .store
            .update_webhook(hook_id, request.validated()?, audit)
            .await?;
        Ok::<_, Error>(WebhookView::from(hook))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `DELETE /webhooks/{id}`: the webhook and its delivery log; pending deliveries stop.
pub async fn delete(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        let admin = authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let hook_id = parse_id("webhook", &id)?;
        let audit = audit::entry(
            &admin,
            "DELETE /webhooks/{id}",
            serde_json::json!({"id": hook_id}),
        );
        state.store.delete_webhook(hook_id, audit).await?;
        Ok::<_, Error>(Deleted {
            id: hook_id,
            deleted: true,
        })
    }
    .await;
    respond(StatusCode::OK, result)
}

pub async fn get(state: AppState, id: String, auth: Option<String>) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let hook = state
            .store
            .webhook(parse_id("webhook", &id)?)
            .await?
            .ok_or_else(|| Error::not_found("webhook", &id))?;
        Ok::<_, Error>(WebhookView::from(hook))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `GET /webhooks`, in id order.
pub async fn list(state: AppState, auth: Option<String>, query: Query) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let page = state.store.list_webhooks(query::page(&query)?).await?;
        Ok::<_, Error>(PageView::new(page, WebhookView::from))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// `GET /webhooks/{id}/deliveries`, newest first.
pub async fn deliveries(
    state: AppState,
    id: String,
    auth: Option<String>,
    query: Query,
) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Admin).await?;
        let hook_id = parse_id("webhook", &id)?;
        let page = query::page(&query)?;
        let deliveries = state
            .store
            .deliveries_page(hook_id, page)
            .await?
            .ok_or_else(|| Error::not_found("webhook", &id))?;
        Ok::<_, Error>(PageView::new(deliveries, DeliveryView::from))
    }
    .await;
    respond(StatusCode::OK, result)
}

/// 32 random bytes, hex, as API tokens are made.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    fn request(json: serde_json::Value) -> Result<NewWebhook, Error> {
        body::parse::<CreateWebhook>(&Bytes::from(json.to_string()))?.validated()
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        for good in [
            "http://127.0.0.1:9000/hook",
            "https://hooks.example.com/drover?x=1",
            "http://[::1]:80/",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "hooks.example.com/x",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://",
            "https://user:pw@example.com/",
            "mailto:ops@example.com",
            &format!("https://example.com/{}", "a".repeat(MAX_URL)),
        ] {
            assert!(matches!(check_url(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn bad_requests_are_refused_with_the_right_kind() {
        let ok = request(
            serde_json::json!({"url": "http://a.example/", "events": ["job.failed", "alert", "job.failed"]}),
        );
        let ok = ok.expect("valid");
        assert_eq!(
            ok.events,
            vec![WebhookEvent::Alert, WebhookEvent::JobFailed]
        );
        assert!(ok.active && ok.secret.is_none());
        for (bad, why) in [
            (
                serde_json::json!({"url": "http://a.example/", "events": []}),
                "no events",
            ),
            (
                serde_json::json!({"url": "http://a.example/", "events": ["job.started"]}),
                "unknown event",
            ),
            (
                serde_json::json!({"url": "ftp://a.example/", "events": ["alert"]}),
                "scheme",
            ),
            (
                serde_json::json!({"url": "http://a.example/", "events": ["alert"], "secret": "short"}),
                "short secret",
            ),
            (
                serde_json::json!({"url": "http://a.example/", "events": ["alert"], "secret": "s".repeat(257)}),
                "long secret",
            ),
            (
                serde_json::json!({"url": "http://a.example/", "events": ["alert"], "colour": "red"}),
                "unknown field",
            ),
            (serde_json::json!({"events": ["alert"]}), "no url"),
        ] {
            assert!(matches!(request(bad), Err(Error::Invalid(_))), "{why}");
        }
        let broken = body::parse::<CreateWebhook>(&Bytes::from_static(b"{\"url\": "));
        assert!(matches!(broken, Err(Error::BadRequest(_))));
    }

    #[test]
    fn the_documented_secret_bounds_are_the_checked_ones() {
        let schema = serde_json::to_value(CreateWebhook::schema()).expect("serializes");
        let secret = &schema["properties"]["secret"];
        assert_eq!(secret["minLength"], MIN_SECRET);
        assert_eq!(secret["maxLength"], MAX_SECRET);
        assert_eq!(schema["properties"]["url"]["maxLength"], MAX_URL);
        assert_eq!(
            schema["properties"]["description"]["maxLength"],
            MAX_DESCRIPTION
        );
    }

    #[test]
    fn the_audited_parameters_redact_the_secret() {
        let request: CreateWebhook = body::parse(&Bytes::from(
            serde_json::json!({"url": "http://a.example/", "events": ["alert"], "secret": "0123456789abcdef-top"}).to_string(),
        ))
        .expect("parses");
        let redacted = crate::redact::redact(&request.audited());
        assert_eq!(redacted["secret"], crate::redact::REDACTED);
        assert!(!redacted.to_string().contains("0123456789abcdef-top"));
    }
}
