//! The coordinator's NATS connection and the JetStream streams it owns.

use crate::error::Error;
use async_nats::jetstream::{self, stream};
use drover_shared::protocol::{DISPATCH_STREAM, DISPATCH_SUBJECTS, JOB_SUBJECTS, JOBS_STREAM};
use std::time::Duration;

/// Connects, retrying until the server answers: a coordinator started before its
/// nats-server simply waits for it.
pub async fn connect(url: &str) -> Result<async_nats::Client, Error> {
    async_nats::ConnectOptions::new()
        .name("drover-coordinator")
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|e| Error::Nats(format!("cannot connect to {url}: {e}")))
}

/// Creates the dispatch work queue and the jobs stream if they do not exist yet.
pub async fn ensure_streams(js: &jetstream::Context, jobs_max_age: Duration) -> Result<(), Error> {
    js.get_or_create_stream(stream::Config {
        name: DISPATCH_STREAM.to_owned(),
        subjects: vec![DISPATCH_SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::WorkQueue,
        // Re-publishing a pending job after a restart must not queue it twice.
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| Error::Nats(format!("cannot create stream {DISPATCH_STREAM}: {e}")))?;
    js.get_or_create_stream(stream::Config {
        name: JOBS_STREAM.to_owned(),
        subjects: JOB_SUBJECTS.iter().map(|s| (*s).to_owned()).collect(),
        retention: stream::RetentionPolicy::Limits,
        max_age: jobs_max_age,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| Error::Nats(format!("cannot create stream {JOBS_STREAM}: {e}")))?;
    Ok(())
}
