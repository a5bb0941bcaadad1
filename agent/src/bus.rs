//! The agent's side of NATS: connecting, the pool's pull consumer, and claims.

use crate::error::Error;
use async_nats::jetstream::{self, consumer::pull};
use drover_shared::protocol::{
    CLAIM_SUBJECT, ClaimReply, ClaimRequest, DISPATCH_STREAM, Message, dispatch_subject,
    pool_consumer_name,
};
use std::time::Duration;
use uuid::Uuid;

pub type PoolConsumer = jetstream::consumer::Consumer<pull::Config>;

/// How long a claim may wait for the coordinator before the job is put back.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn connect(url: &str, agent_id: &str) -> Result<async_nats::Client, Error> {
    async_nats::ConnectOptions::new()
        .name(format!("drover-agent {agent_id}"))
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|e| Error::Nats(format!("cannot connect to {url}: {e}")))
}

/// The durable pull consumer shared by every agent of `pool`. The coordinator creates the
/// stream; until it has, this fails and the caller retries.
pub async fn pool_consumer(js: &jetstream::Context, pool: &str) -> Result<PoolConsumer, Error> {
    let stream = js.get_stream(DISPATCH_STREAM).await.map_err(|e| {
        Error::Nats(format!(
            "stream {DISPATCH_STREAM} unavailable (is the coordinator up?): {e}"
        ))
    })?;
    let name = pool_consumer_name(pool);
    stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: dispatch_subject(pool),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| Error::Nats(format!("cannot open consumer {name}: {e}")))
}

/// Asks the coordinator for `job`; only a granted claim may run.
pub async fn claim(
    client: &async_nats::Client,
    job: Uuid,
    agent_id: &str,
) -> Result<ClaimReply, Error> {
    let request = ClaimRequest {
        job_uuid: job,
        agent_id: agent_id.to_owned(),
    }
    .encode()
    .map_err(|e| Error::Nats(e.to_string()))?;
    let reply = tokio::time::timeout(CLAIM_TIMEOUT, client.request(CLAIM_SUBJECT, request.into()))
        .await
        .map_err(|_| Error::Nats("claim timed out; is the coordinator up?".into()))?
        .map_err(|e| Error::Nats(format!("claim failed: {e}")))?;
    ClaimReply::decode(&reply.payload).map_err(|e| Error::Nats(e.to_string()))
}
