//! The monitor: feeds `/metrics` and the built-in alerts.
//!
//! Two loops. [`record_jobs`] follows every status change on the hub and counts jobs
//! starting (dispatch latency) and finishing (run time, final status). [`rounds`] looks
//! at the store, the agents' heartbeats and the NATS connection every
//! `--monitor-interval-secs`, replaces the metrics' gauges, evaluates the alert
//! conditions ([`crate::alerts`]) and publishes each alert that fires or resolves on
//! `drover.alerts.<kind>` and to the webhooks subscribed to `alert`.

use crate::agents::Registry;
use crate::alerts::{Alerts, BacklogHistory, Observation, PoolView, Thresholds, conditions};
use crate::api::AppState;
use crate::hub::StatusEvent;
use crate::metrics::{Gauges, Metrics};
use crate::shutdown::Shutdown;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use drover_shared::JobStatus;
use drover_shared::protocol::{AlertMessage, Message, alert_subject};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub struct Monitor {
    pub metrics: Metrics,
    alerts: Mutex<Alerts>,
    thresholds: Thresholds,
    interval: Duration,
    /// Playbook names by id, for labels; refreshed each round, read on a miss.
    playbook_names: DashMap<u64, String>,
}

impl Monitor {
    pub fn new(thresholds: Thresholds, interval: Duration) -> Monitor {
        Monitor {
            metrics: Metrics::default(),
            alerts: Mutex::default(),
            thresholds,
            interval,
            playbook_names: DashMap::new(),
        }
    }

    /// Alerts firing now, oldest first, and those resolved lately, newest first.
    pub fn alerts(&self) -> (Vec<AlertMessage>, Vec<AlertMessage>) {
        let alerts = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        (alerts.firing(), alerts.resolved())
    }

    async fn playbook_name(&self, state: &AppState, id: u64) -> String {
        if let Some(name) = self.playbook_names.get(&id) {
            return name.clone();
        }
        let name = match state.store.playbook(id).await {
            Ok(Some(playbook)) => playbook.name,
            _ => format!("playbook {id}"),
        };
        self.playbook_names.insert(id, name.clone());
        name
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6
}

/// Counts jobs starting and finishing, from the hub's status changes.
pub async fn record_jobs(state: AppState, mut shutdown: Shutdown) {
    let monitor = state.monitor.clone();
    let mut statuses = state.hub.statuses();
    loop {
        let event: StatusEvent = tokio::select! {
            event = statuses.recv() => match event {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the monitor fell behind the status changes; their durations are not counted");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            () = shutdown.wait() => return,
        };
        match event.status {
            JobStatus::Running => {
                if let Some(started) = event.started_at {
                    monitor
                        .metrics
                        .job_started(seconds_between(event.created_at, started));
                }
            }
            status if status.is_finished() => {
                let playbook = monitor.playbook_name(&state, event.playbook_id).await;
                let duration = event
                    .started_at
                    .zip(event.completed_at)
                    .map(|(start, end)| seconds_between(start, end));
                monitor
                    .metrics
                    .job_finished(&playbook, status.as_str(), duration);
            }
            _ => {}
        }
    }
}

/// Every interval: replace the gauges, evaluate the alerts, publish what changed.
pub async fn rounds(state: AppState, mut shutdown: Shutdown) {
    let monitor = state.monitor.clone();
    let mut ticks = tokio::time::interval(monitor.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backlog = BacklogHistory::default();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.wait() => return,
        }
        let at = Utc::now();
        let store = match state.store.observe(at - monitor.thresholds.window).await {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!(error = %e, "monitoring round skipped: the store cannot be read");
                continue;
            }
        };
        for playbook in &store.playbooks {
            monitor
                .playbook_names
                .insert(playbook.id, playbook.name.clone());
        }
        let connected = state.client.connection_state() == async_nats::connection::State::Connected;
        let observation = Observation {
            at,
            pools: pools(&state.agents, store.pending_by_pool.keys()),
            store,
            nats_connected: connected,
        };
        let before = backlog.record(
            at,
            &observation.store.pending_by_pool,
            monitor.thresholds.backlog_window,
        );
        let found = conditions(&observation, &monitor.thresholds, &before);
        let (changes, firing) = {
            let mut alerts = monitor.alerts.lock().unwrap_or_else(|e| e.into_inner());
            let changes = alerts.apply(at, found);
            (changes, alerts.firing_by_kind())
        };
        monitor
            .metrics
            .set(&gauges(&observation, &monitor.thresholds, &firing));
        for alert in changes {
            tracing::warn!(kind = alert.kind.as_str(), subject = %alert.subject, state = ?alert.state, message = %alert.message, "alert");
            publish(&state.client, &alert).await;
            match serde_json::to_value(&alert) {
                // Never waits: a full queue drops the delivery and counts it.
                Ok(body) => {
                    state.webhooks.offer_alert(body);
                }
                Err(e) => tracing::error!(error = %e, "cannot encode an alert for webhooks"),
            }
        }
    }
}

async fn publish(client: &async_nats::Client, alert: &AlertMessage) {
    match alert.encode() {
        // While NATS is down the message waits in the client's buffer; `GET /alerts`
        // has it meanwhile.
        Ok(bytes) => {
            if let Err(e) = client
                .publish(alert_subject(alert.kind), bytes.into())
                .await
            {
                tracing::warn!(error = %e, "cannot publish an alert");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot encode an alert"),
    }
}

/// Every pool that has a server or an agent, as the heartbeats describe it.
fn pools<'a>(
    agents: &Registry,
    with_servers: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, PoolView> {
    let now = tokio::time::Instant::now();
    let snapshot = agents.snapshot(now);
    let mut names: Vec<String> = with_servers.cloned().collect();
    names.extend(snapshot.iter().map(|(agent, _)| agent.pool.clone()));
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|pool| {
            let state = agents.pool_in(&snapshot, &pool);
            let view = PoolView {
                agents_up: state.agents_up as u64,
                slots: state.capacity,
                busy: state.busy,
                empty_for_secs: state
                    .empty_since
                    .map(|since| now.saturating_duration_since(since).as_secs_f64()),
            };
            (pool, view)
        })
        .collect()
}

fn gauges(
    observation: &Observation,
    thresholds: &Thresholds,
    firing: &BTreeMap<drover_shared::protocol::AlertKind, u64>,
) -> Gauges {
    let store = &observation.store;
    let mut running_by_pool: BTreeMap<String, i64> = observation
        .pools
        .keys()
        .map(|pool| (pool.clone(), 0))
        .collect();
    let mut longest: BTreeMap<String, f64> = BTreeMap::new();
    for job in &store.running {
        *running_by_pool.entry(job.pool.clone()).or_default() += 1;
        if let Some(started) = job.started_at {
            let secs = seconds_between(started, observation.at);
            let entry = longest.entry(job.playbook.clone()).or_default();
            *entry = entry.max(secs);
        }
    }
    Gauges {
        jobs_by_status: store
            .jobs_by_status
            .iter()
            .map(|(status, n)| (status.as_str().to_owned(), *n as i64))
            .collect(),
        pending_by_pool: store
            .pending_by_pool
            .iter()
            .map(|(pool, n)| (pool.clone(), *n as i64))
            .collect(),
        running_by_pool: running_by_pool.into_iter().collect(),
        longest_running: longest.into_iter().collect(),
        expected_duration: store
            .playbooks
            .iter()
            .map(|p| {
                let expected =
                    crate::alerts::expected_duration_secs(p.mean_duration_secs, thresholds);
                (p.name.clone(), expected)
            })
            .collect(),
        consecutive_failures: store
            .playbooks
            .iter()
            .map(|p| (p.name.clone(), p.consecutive_failures as i64))
            .collect(),
        agents: observation
            .pools
            .iter()
            .map(|(pool, v)| {
                (
                    pool.clone(),
                    [v.agents_up as i64, v.slots as i64, v.busy as i64],
                )
            })
            .collect(),
        nats_connected: observation.nats_connected,
        alerts_firing: firing
            .iter()
            .map(|(kind, n)| (kind.as_str().to_owned(), *n as i64))
            .collect(),
    }
}
