//! Turning results into HTTP responses: JSON bodies, and `{"error", "detail"}` with the
//! right status for every error kind.

use crate::error::Error;
use serde::Serialize;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

pub fn respond<T: Serialize>(status: StatusCode, result: Result<T, Error>) -> Response {
    match result {
        Ok(body) => json(status, &body),
        Err(e) => error_response(&e),
    }
}

pub fn error_response(error: &Error) -> Response {
    let (status, kind) = match error {
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        Error::Unauthorized | Error::BadCredentials => (StatusCode::UNAUTHORIZED, "unauthorized"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        Error::Nats(_) => (StatusCode::SERVICE_UNAVAILABLE, "bus_unavailable"),
        Error::Storage(_)
        | Error::Codec(_)
        | Error::Io { .. }
        | Error::WriterGone
        | Error::Internal(_) => {
            tracing::error!(error = %error, "request failed inside the coordinator");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    json(
        status,
        &ErrorBody {
            error: kind,
            detail: error.to_string(),
        },
    )
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(value_type = String)]
    pub error: &'static str,
    pub detail: String,
}
