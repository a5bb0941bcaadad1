//! Publishes one job's messages in order. A single task owns the sending: each message
//! is published to JetStream and its ack awaited before the next, so the coordinator
//! and every tailer see lines in the order they were produced (publishing from several
//! tasks reorders them). While the bus is down the task retries, and the bounded queue
//! makes the job wait rather than drop anything.

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, message::PublishMessage};
use drover_shared::protocol::{EventBatch, LogBatch, StatusChange};
use drover_shared::protocol::{Message, events_subject, logs_subject, status_subject};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Messages waiting to be published for one job.
const QUEUE_DEPTH: usize = 64;
const RETRY_DELAY: Duration = Duration::from_millis(250);

pub enum Outgoing {
    Logs(LogBatch),
    Events(EventBatch),
    Status(StatusChange),
}

#[derive(Clone)]
pub struct PublisherHandle {
    queue: mpsc::Sender<Outgoing>,
}

impl PublisherHandle {
    /// Queues a message; waits while the queue is full.
    pub async fn send(&self, message: Outgoing) {
        if self.queue.send(message).await.is_err() {
            tracing::error!("publisher stopped; message lost");
        }
    }
}

/// Starts the publishing task of `job`. It ends once every handle is dropped and the
/// queue is drained; await the returned handle to know everything was published.
pub fn start(js: jetstream::Context, job: Uuid) -> (PublisherHandle, tokio::task::JoinHandle<()>) {
    let (queue, mut messages) = mpsc::channel(QUEUE_DEPTH);
    let task = tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            let (subject, id, payload) = match &message {
                Outgoing::Logs(batch) => (
                    logs_subject(job),
                    format!(
                        "{job}-log-{}",
                        batch.lines.first().map_or(0, |l| l.line_number)
                    ),
                    batch.encode(),
                ),
                Outgoing::Events(batch) => (
                    events_subject(job),
                    format!(
                        "{job}-event-{}",
                        batch.events.first().map_or(0, |e| e.counter)
                    ),
                    batch.encode(),
                ),
                Outgoing::Status(change) => (
                    status_subject(job),
                    format!("{job}-status-{}", change.status),
                    change.encode(),
                ),
            };
            let payload = match payload {
                Ok(payload) => bytes::Bytes::from(payload),
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode a message");
                    continue;
                }
            };
            publish_until_stored(&js, subject, id, payload).await;
        }
    });
    (PublisherHandle { queue }, task)
}

/// The message id lets JetStream drop the copy a retry may send after a lost ack.
async fn publish_until_stored(
    js: &jetstream::Context,
    subject: String,
    id: String,
    payload: bytes::Bytes,
) {
    loop {
        let publish = PublishMessage::build()
            .payload(payload.clone())
            .message_id(&id);
        match js.send_publish(subject.clone(), publish).await {
            Ok(ack) => match ack.await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(%subject, error = %e, "publish not acknowledged; retrying")
                }
            },
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                // Retrying cannot help; batches are sized to stay far below the limit.
                tracing::error!(%subject, error = %e, "message dropped: too large for NATS");
                return;
            }
            Err(e) => tracing::warn!(%subject, error = %e, "publish failed; retrying"),
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}
