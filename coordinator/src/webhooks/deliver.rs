//! One HTTP attempt of a delivery: `POST` the body, signed, to the webhook's URL, within
//! the attempt timeout. A 2xx answer is a success; any other answer, a connection error
//! or the timeout is a failure the caller may retry. Redirects are not followed (as
//! GitHub does not): a receiver that moved says so with a failed delivery.

use super::signature;
use std::error::Error as _;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const EVENT_HEADER: &str = "X-Drover-Event";
pub const DELIVERY_HEADER: &str = "X-Drover-Delivery";
pub const SIGNATURE_HEADER: &str = "X-Drover-Signature";

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's answer, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed, if it did: the receiver's status, a connection error, the timeout.
    pub error: Option<String>,
    pub duration: Duration,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// The client every attempt shares (its connection pool), with the attempt timeout.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("drover-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `body` once.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    event: &str,
    delivery: Uuid,
    body: Vec<u8>,
) -> Attempt {
    let signature = signature::sign(secret.as_bytes(), &body);
    let started = Instant::now();
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, event)
        .header(DELIVERY_HEADER, delivery.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    let (status_code, error) = match sent {
        Ok(response) => {
            let status = response.status();
            // The answer's body is not read: nothing in it matters, and a huge one must
            // not cost memory. Dropping it closes the connection.
            drop(response);
            if status.is_success() {
                (Some(status.as_u16()), None)
            } else {
                (
                    Some(status.as_u16()),
                    Some(format!("the receiver answered {status}")),
                )
            }
        }
        Err(e) => (e.status().map(|s| s.as_u16()), Some(describe(&e))),
    };
    Attempt {
        status_code,
        error,
        duration: started.elapsed(),
    }
}

/// reqwest's own message ("error sending request for url") hides the cause: name it.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out waiting for the receiver".into();
    }
    let mut message = if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper's wrapper ("client error (Connect)") says nothing the next cause does not.
        if !text.starts_with("client error (") {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
