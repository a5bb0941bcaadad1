//! Telling agents to stop jobs. A cancel is kept as desired state in the store (the
//! job's cancel mark) and re-sent until the agent confirms, so an agent that was cut off
//! from NATS when the user cancelled still hears it once it is back.

use crate::shutdown::Shutdown;
use crate::store::Store;
use drover_shared::protocol::{CancelRequest, Message, cancel_subject};
use std::time::Duration;
use uuid::Uuid;

/// How often unconfirmed cancels are sent again.
const RESEND_EVERY: Duration = Duration::from_secs(2);

/// Publishes a cancel on `drover.jobs.<uuid>.cancel`. Core NATS: the resend loop, not
/// the bus, makes it reach an agent that is away.
pub async fn send(client: &async_nats::Client, job: Uuid, by_user: &str) {
    let request = CancelRequest {
        by_user: by_user.to_owned(),
    };
    match request.encode() {
        Ok(bytes) => {
            if let Err(e) = client.publish(cancel_subject(job), bytes.into()).await {
                tracing::warn!(%job, error = %e, "cancel not sent; it is sent again shortly");
            }
        }
        Err(e) => tracing::error!(%job, error = %e, "cannot encode a cancel"),
    }
}

pub async fn resend_loop(client: async_nats::Client, store: Store, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RESEND_EVERY) => {}
            () = shutdown.wait() => return,
        }
        match store.unconfirmed_cancels().await {
            Ok(cancels) => {
                for (job, by_user) in cancels {
                    send(&client, job, &by_user).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list unconfirmed cancels"),
        }
    }
}
