//! Answers agents' claim requests on `drover.coord.claim`: each job is granted once.

use crate::shutdown::Shutdown;
use crate::store::Store;
use drover_shared::protocol::{CLAIM_SUBJECT, ClaimReply, ClaimRequest, Message};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Claims decided at once; the rest wait in the subscription's buffer.
const MAX_IN_FLIGHT: usize = 256;

pub async fn serve(client: async_nats::Client, store: Store, mut shutdown: Shutdown) {
    let mut requests = match client.subscribe(CLAIM_SUBJECT).await {
        Ok(subscription) => subscription,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to claims; agents cannot start jobs");
            return;
        }
    };
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let request = tokio::select! {
            request = requests.next() => match request {
                Some(request) => request,
                None => break,
            },
            () = shutdown.wait() => break,
        };
        let Some(reply_to) = request.reply.clone() else {
            tracing::warn!("claim without a reply subject ignored");
            continue;
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let (client, store) = (client.clone(), store.clone());
        tokio::spawn(async move {
            let reply = decide(&store, &request.payload).await;
            match reply.encode() {
                Ok(bytes) => {
                    if let Err(e) = client.publish(reply_to, bytes.into()).await {
                        tracing::warn!(error = %e, "cannot answer a claim");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a claim reply"),
            }
            drop(permit);
        });
    }
}

async fn decide(store: &Store, payload: &[u8]) -> ClaimReply {
    let request = match ClaimRequest::decode(payload) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "rejected claim");
            return ClaimReply {
                granted: false,
                reason: Some(e.to_string()),
            };
        }
    };
    match store
        .claim(request.job_uuid, request.agent_id.clone())
        .await
    {
        Ok(reply) => {
            tracing::info!(job = %request.job_uuid, agent = %request.agent_id, granted = reply.granted, reason = ?reply.reason, "claim");
            reply
        }
        Err(e) => {
            tracing::error!(error = %e, job = %request.job_uuid, "claim not decided");
            ClaimReply {
                granted: false,
                reason: Some(format!("coordinator cannot decide: {e}")),
            }
        }
    }
}
