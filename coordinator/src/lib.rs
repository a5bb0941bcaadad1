//! The Drover coordinator.
//!
//! Requests arrive at the HTTP API ([`api`]), which validates them and records them in
//! the redb [`store`] through its group-commit writer. New jobs are published to their
//! pool's JetStream work queue ([`dispatch`]); an agent that pulls one asks for it on
//! `drover.coord.claim` ([`claims`]) and is granted it once. Agents then publish log
//! batches, events and status changes, which [`ingest`] reads from the `DROVER_JOBS`
//! stream, stores, and acknowledges only after the commit; then the [`hub`] wakes live
//! watchers, which [`follow`] a job by reading the store (SSE, WebSocket). Readers see
//! the store through snapshots and never wait for the writer. The [`monitor`] counts
//! jobs for `/metrics` ([`metrics`]) and evaluates the built-in [`alerts`]. Finished jobs
//! and alerts become signed HTTP deliveries to admin-registered URLs in [`webhooks`],
//! which only listens to the hub and never holds up the job path. The API also serves the
//! web UI (`api/ui.rs`), whose files in `dashboards/ui/` are compiled into the binary.

pub mod agents;
pub mod alerts;
pub mod api;
pub mod bus;
pub mod cancel;
pub mod claims;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod follow;
pub mod hub;
pub mod ingest;
pub mod metrics;
pub mod monitor;
pub mod password;
pub mod playbook_files;
pub mod playbook_yaml;
pub mod redact;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod validate;
pub mod webhooks;

use crate::api::AppState;
use crate::config::Config;
use crate::error::Error;
use crate::shutdown::Shutdown;
use crate::store::{Role, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Runs the coordinator on `listener` until `shutdown` fires.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> Result<(), Error> {
    let store = Store::open(&config.data_dir)?;
    if let Some(token) = &config.admin_token {
        store
            .ensure_user_with_token("admin", Role::Admin, api::hash_token(token))
            .await?;
    }
    let client = bus::connect(&config.nats_url).await?;
    let js = async_nats::jetstream::new(client.clone());
    bus::ensure_streams(&js, Duration::from_secs(config.jobs_max_age_hours * 3600)).await?;

    let (webhooks, webhook_inbox) = webhooks::channel(webhooks::Settings::from_config(&config));
    let state = AppState {
        store: store.clone(),
        client: client.clone(),
        js: js.clone(),
        undispatched: Arc::default(),
        hub: Arc::default(),
        agents: Arc::new(agents::Registry::new(Duration::from_secs(
            config.agent_lease_secs,
        ))),
        counters: Arc::default(),
        playbook_dir: config.playbook_dir.clone().map(Arc::new),
        monitor: Arc::new(monitor::Monitor::new(
            config.thresholds(),
            Duration::from_secs(config.monitor_interval_secs),
        )),
        webhooks,
    };
    let republished = dispatch::republish_pending(&store, &js).await?;
    if republished > 0 {
        tracing::info!(jobs = republished, "re-published pending jobs");
    }
    tokio::spawn(claims::serve(
        client.clone(),
        store.clone(),
        shutdown.clone(),
    ));
    // Before ingest: jobs that finish while the coordinator starts get their webhooks.
    tokio::spawn(webhooks::run(
        state.clone(),
        webhook_inbox,
        shutdown.clone(),
    ));
    tokio::spawn(ingest::run(state.clone(), shutdown.clone()));
    tokio::spawn(dispatch::redispatch_loop(state.clone(), shutdown.clone()));
    tokio::spawn(dispatch::release_loop(state.clone(), shutdown.clone()));
    tokio::spawn(agents::listen(
        client.clone(),
        state.agents.clone(),
        state.counters.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(agents::reap_loop(state.clone(), shutdown.clone()));
    tokio::spawn(monitor::record_jobs(state.clone(), shutdown.clone()));
    tokio::spawn(monitor::rounds(state.clone(), shutdown.clone()));
    tokio::spawn(cancel::resend_loop(
        client.clone(),
        store.clone(),
        shutdown.clone(),
    ));

    let address = listener.local_addr().map_err(|source| Error::Io {
        path: "http listener".into(),
        source,
    })?;
    tracing::info!(%address, "coordinator listening");
    let mut stop = shutdown.clone();
    warp::serve(api::routes(state))
        .incoming(listener)
        .graceful(async move { stop.wait().await })
        .run()
        .await;
    client.flush().await.ok();
    Ok(())
}
