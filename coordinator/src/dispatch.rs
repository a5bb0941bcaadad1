//! Hands pending jobs to their pool's work queue.

use crate::error::Error;
use crate::store::{JobRecord, PlaybookRecord, ServerRecord, Store};
use async_nats::jetstream::{self, message::PublishMessage};
use drover_shared::protocol::{JobDispatch, Message, Target, dispatch_subject};

/// The dispatch message for a job, built from its records.
pub fn dispatch_for(
    job: &JobRecord,
    playbook: &PlaybookRecord,
    server: &ServerRecord,
) -> JobDispatch {
    JobDispatch {
        job_uuid: job.uuid,
        job_id: job.id,
        playbook_name: playbook.name.clone(),
        playbook_content: playbook.content.clone(),
        target: Target {
            hostname: server.hostname.clone(),
            ip_address: server.ip_address.clone(),
            ssh_port: server.ssh_port,
            ssh_user: server.ssh_user.clone(),
            ssh_key_path: server.ssh_key_path.clone(),
            connection: server.connection,
            python_interpreter: server.python_interpreter.clone(),
        },
        extra_vars: job.extra_vars.clone(),
        timeout_secs: job.timeout_secs,
        verbosity: job.verbosity,
    }
}

/// Publishes a job to `drover.dispatch.<pool>` and waits for JetStream to store it.
/// The job uuid is the message id, so publishing the same job twice queues it once.
pub async fn publish(
    js: &jetstream::Context,
    job: &JobRecord,
    playbook: &PlaybookRecord,
    server: &ServerRecord,
) -> Result<(), Error> {
    publish_as(js, job, playbook, server, job.uuid.to_string()).await
}

/// Queues a job again after the agent that claimed it was lost. Its first dispatch was
/// taken, so this one needs a message id of its own to pass JetStream's de-duplication.
pub async fn requeue(
    js: &jetstream::Context,
    job: &JobRecord,
    playbook: &PlaybookRecord,
    server: &ServerRecord,
) -> Result<(), Error> {
    let id = format!(
        "{}-requeued-{}",
        job.uuid,
        job.updated_at.timestamp_micros()
    );
    publish_as(js, job, playbook, server, id).await
}

async fn publish_as(
    js: &jetstream::Context,
    job: &JobRecord,
    playbook: &PlaybookRecord,
    server: &ServerRecord,
    message_id: String,
) -> Result<(), Error> {
    let payload = dispatch_for(job, playbook, server)
        .encode()
        .map_err(|e| Error::Nats(e.to_string()))?;
    let publish = PublishMessage::build()
        .payload(payload.into())
        .message_id(message_id);
    js.send_publish(dispatch_subject(&job.pool), publish)
        .await
        .map_err(|e| Error::Nats(format!("cannot dispatch job {}: {e}", job.id)))?
        .await
        .map_err(|e| Error::Nats(format!("dispatch of job {} not stored: {e}", job.id)))?;
    Ok(())
}

/// Re-publishes every pending job no agent has claimed. Run at start-up: a job accepted
/// just before a crash may be in redb but not in JetStream (which fsyncs lazily).
pub async fn republish_pending(store: &Store, js: &jetstream::Context) -> Result<usize, Error> {
    let pending = store.unclaimed_pending_jobs().await?;
    for (job, playbook, server) in &pending {
        publish(js, job, playbook, server).await?;
    }
    Ok(pending.len())
}

/// How often dispatches the bus refused are tried again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Retries dispatches that failed while the bus was unreachable, until they succeed.
pub async fn redispatch_loop(state: crate::api::AppState, mut shutdown: crate::shutdown::Shutdown) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RETRY_EVERY) => {}
            () = shutdown.wait() => return,
        }
        if state.undispatched.is_empty() {
            continue;
        }
        let pending = match state.store.unclaimed_pending_jobs().await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list pending jobs to redispatch");
                continue;
            }
        };
        // Jobs claimed or cancelled meanwhile need no dispatch any more.
        let still_pending: std::collections::HashSet<u64> =
            pending.iter().map(|(job, _, _)| job.id).collect();
        state.undispatched.retain(|id| still_pending.contains(id));
        for (job, playbook, server) in pending {
            if !state.undispatched.contains(&job.id) {
                continue;
            }
            match publish(&state.js, &job, &playbook, &server).await {
                Ok(()) => {
                    state.undispatched.remove(&job.id);
                    tracing::info!(job = job.id, "dispatched after retry");
                }
                Err(e) => tracing::warn!(job = job.id, error = %e, "dispatch still deferred"),
            }
        }
    }
}

/// Dispatches held jobs as their servers become free: after every status change, and
/// once a second in case a change was missed.
pub async fn release_loop(state: crate::api::AppState, mut shutdown: crate::shutdown::Shutdown) {
    let mut statuses = state.hub.statuses();
    loop {
        let always = tokio::select! {
            _ = statuses.recv() => false,
            () = tokio::time::sleep(RELEASE_EVERY) => true,
            () = shutdown.wait() => return,
        };
        let released = match state.store.release_held(always).await {
            Ok(released) => released,
            Err(e) => {
                tracing::warn!(error = %e, "cannot release held jobs");
                continue;
            }
        };
        for (job, playbook, server) in released {
            tracing::info!(
                job = job.id,
                server = server.id,
                "server free; job dispatched"
            );
            if let Err(e) = publish(&state.js, &job, &playbook, &server).await {
                tracing::warn!(job = job.id, error = %e, "dispatch deferred");
                state.undispatched.insert(job.id);
            }
        }
    }
}

/// How often held jobs are checked even without a status change.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
