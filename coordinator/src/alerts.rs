//! Built-in alerts: the spec's alert conditions, evaluated by the coordinator itself for
//! users without Prometheus (the same conditions as `dashboards/prometheus/alerts.yml`).
//!
//! Pure: [`conditions`] turns one monitoring round's [`Observation`] into the conditions
//! that hold now; [`Alerts`] remembers which fire and turns each round into the alerts
//! that fired or resolved, which the monitor publishes on `drover.alerts.<kind>`.

use crate::store::StoreObservation;
use chrono::{DateTime, Duration, Utc};
use drover_shared::protocol::{AlertKind, AlertMessage, AlertState};
use std::collections::{BTreeMap, VecDeque};

/// Resolved alerts kept for `GET /alerts`.
const RECENTLY_RESOLVED: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Fraction of the jobs created in [`Thresholds::window`] that failed.
    pub failure_rate: f64,
    /// Finished jobs in the window before the failure rate means anything.
    pub failure_min_jobs: u64,
    pub window: Duration,
    pub consecutive_failures: u64,
    /// A job is long-running past this many times its playbook's mean duration...
    pub long_running_factor: f64,
    /// ...and never before this many seconds.
    pub long_running_min_secs: f64,
    /// A pool's backlog alerts from this many pending jobs, if it grew over
    /// [`Thresholds::backlog_window`].
    pub backlog_jobs: u64,
    pub backlog_window: Duration,
    /// A pool with servers may go this long without a live agent (a restart, a deploy).
    pub no_agent_grace_secs: f64,
}

/// A pool as the heartbeats describe it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolView {
    pub agents_up: u64,
    pub slots: u64,
    pub busy: u64,
    /// How long it has had no live agent; `None` while it has one.
    pub empty_for_secs: Option<f64>,
}

/// Everything one monitoring round saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub at: DateTime<Utc>,
    pub store: StoreObservation,
    /// Every pool that has a server or an agent.
    pub pools: BTreeMap<String, PoolView>,
    pub nats_connected: bool,
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub kind: AlertKind,
    pub subject: String,
    pub message: String,
    pub value: f64,
    pub threshold: f64,
}

/// The longest a playbook's jobs should run, from its mean duration.
pub fn expected_duration_secs(mean_secs: Option<f64>, thresholds: &Thresholds) -> f64 {
    mean_secs.map_or(thresholds.long_running_min_secs, |mean| {
        (mean * thresholds.long_running_factor).max(thresholds.long_running_min_secs)
    })
}

/// Pending jobs per pool over the last window, to tell a growing backlog from a big one.
#[derive(Debug, Default)]
pub struct BacklogHistory {
    samples: BTreeMap<String, VecDeque<(DateTime<Utc>, u64)>>,
}

impl BacklogHistory {
    /// Records this round and answers, per pool, the pending count one window ago (the
    /// newest sample at least a window old), if the history reaches back that far.
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        pending: &BTreeMap<String, u64>,
        window: Duration,
    ) -> BTreeMap<String, u64> {
        self.samples.retain(|pool, _| pending.contains_key(pool));
        let mut before = BTreeMap::new();
        for (pool, count) in pending {
            let samples = self.samples.entry(pool.clone()).or_default();
            samples.push_back((at, *count));
            // Keep one sample older than the window, the reference point.
            while samples.len() > 1 && samples[1].0 <= at - window {
                samples.pop_front();
            }
            if let Some((when, old)) = samples.front()
                && *when <= at - window
            {
                before.insert(pool.clone(), *old);
            }
        }
        before
    }
}

/// The conditions that hold in `observation`; `backlog_before` is what
/// [`BacklogHistory::record`] answered for this round.
pub fn conditions(
    observation: &Observation,
    thresholds: &Thresholds,
    backlog_before: &BTreeMap<String, u64>,
) -> Vec<Condition> {
    let mut found = Vec::new();
    let store = &observation.store;

    if store.window_finished >= thresholds.failure_min_jobs && store.window_finished > 0 {
        let rate = store.window_failed as f64 / store.window_finished as f64;
        if rate > thresholds.failure_rate {
            found.push(Condition {
                kind: AlertKind::FailureRate,
                subject: String::new(),
                message: format!(
                    "{} of the {} jobs created in the last {} failed ({:.0} %, threshold {:.0} %)",
                    store.window_failed,
                    store.window_finished,
                    span(thresholds.window),
                    rate * 100.0,
                    thresholds.failure_rate * 100.0
                ),
                value: rate,
                threshold: thresholds.failure_rate,
            });
        }
    }

    let means: BTreeMap<&str, Option<f64>> = store
        .playbooks
        .iter()
        .map(|p| (p.name.as_str(), p.mean_duration_secs))
        .collect();
    for job in &store.running {
        let Some(started) = job.started_at else {
            continue;
        };
        let running_secs = (observation.at - started).num_milliseconds() as f64 / 1000.0;
        let mean = means.get(job.playbook.as_str()).copied().flatten();
        let expected = expected_duration_secs(mean, thresholds);
        if running_secs > expected {
            found.push(Condition {
                kind: AlertKind::LongRunning,
                subject: job.uuid.to_string(),
                message: format!(
                    "job {} ({}) has run {:.0} s; its playbook is expected to take at most {:.0} s",
                    job.id, job.playbook, running_secs, expected
                ),
                value: running_secs,
                threshold: expected,
            });
        }
    }

    for playbook in &store.playbooks {
        if playbook.consecutive_failures >= thresholds.consecutive_failures {
            found.push(Condition {
                kind: AlertKind::ConsecutiveFailures,
                subject: playbook.name.clone(),
                message: format!(
                    "playbook '{}' failed {} times in a row",
                    playbook.name, playbook.consecutive_failures
                ),
                value: playbook.consecutive_failures as f64,
                threshold: thresholds.consecutive_failures as f64,
            });
        }
    }

    for (pool, view) in &observation.pools {
        let has_servers = store.pending_by_pool.contains_key(pool);
        if let (true, Some(empty_for)) = (has_servers, view.empty_for_secs)
            && empty_for >= thresholds.no_agent_grace_secs
        {
            found.push(Condition {
                kind: AlertKind::NoAgent,
                subject: pool.clone(),
                message: format!("no agent in pool '{pool}' for {empty_for:.0} s"),
                value: 0.0,
                threshold: 1.0,
            });
        }
    }

    for (pool, pending) in &store.pending_by_pool {
        let Some(before) = backlog_before.get(pool) else {
            continue;
        };
        if *pending >= thresholds.backlog_jobs && pending > before {
            found.push(Condition {
                kind: AlertKind::QueueBacklog,
                subject: pool.clone(),
                message: format!(
                    "pool '{pool}' has {pending} pending jobs, up from {before} {} ago",
                    span(thresholds.backlog_window)
                ),
                value: *pending as f64,
                threshold: thresholds.backlog_jobs as f64,
            });
        }
    }
    found
}

/// "15 min", or "20 s" when not whole minutes.
fn span(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    if seconds % 60 == 0 {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}

/// Which alerts fire, and which resolved lately.
#[derive(Debug, Default)]
pub struct Alerts {
    firing: BTreeMap<(AlertKind, String), AlertMessage>,
    resolved: VecDeque<AlertMessage>,
}

impl Alerts {
    /// Applies a round's conditions; returns the alerts that fired or resolved in it.
    pub fn apply(&mut self, now: DateTime<Utc>, conditions: Vec<Condition>) -> Vec<AlertMessage> {
        let mut changes = Vec::new();
        let mut holding = BTreeMap::new();
        for condition in conditions {
            let key = (condition.kind, condition.subject.clone());
            let alert = match self.firing.remove(&key) {
                Some(mut alert) => {
                    alert.message = condition.message;
                    alert.value = condition.value;
                    alert.threshold = condition.threshold;
                    alert
                }
                None => {
                    let alert = AlertMessage {
                        kind: condition.kind,
                        subject: condition.subject,
                        state: AlertState::Firing,
                        message: condition.message,
                        value: condition.value,
                        threshold: condition.threshold,
                        since: now,
                        resolved_at: None,
                    };
                    changes.push(alert.clone());
                    alert
                }
            };
            holding.insert(key, alert);
        }
        for (_, mut alert) in std::mem::replace(&mut self.firing, holding) {
            alert.state = AlertState::Resolved;
            alert.resolved_at = Some(now);
            changes.push(alert.clone());
            self.resolved.push_front(alert);
            self.resolved.truncate(RECENTLY_RESOLVED);
        }
        changes
    }

    /// Firing alerts, oldest first.
    pub fn firing(&self) -> Vec<AlertMessage> {
        let mut firing: Vec<AlertMessage> = self.firing.values().cloned().collect();
        firing.sort_by_key(|a| a.since);
        firing
    }

    /// Recently resolved alerts, newest first.
    pub fn resolved(&self) -> Vec<AlertMessage> {
        self.resolved.iter().cloned().collect()
    }

    pub fn firing_by_kind(&self) -> BTreeMap<AlertKind, u64> {
        let mut counts: BTreeMap<AlertKind, u64> = AlertKind::ALL.map(|k| (k, 0)).into();
        for (kind, _) in self.firing.keys() {
            *counts.entry(*kind).or_default() += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PlaybookHealth, RunningJob};
    use uuid::Uuid;

    fn thresholds() -> Thresholds {
        Thresholds {
            failure_rate: 0.5,
            failure_min_jobs: 4,
            window: Duration::minutes(15),
            consecutive_failures: 3,
            long_running_factor: 3.0,
            long_running_min_secs: 60.0,
            backlog_jobs: 10,
            backlog_window: Duration::minutes(5),
            no_agent_grace_secs: 20.0,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("a valid time")
    }

    fn observation(store: StoreObservation) -> Observation {
        Observation {
            at: at(0),
            store,
            pools: BTreeMap::new(),
            nats_connected: true,
        }
    }

    fn kinds(found: &[Condition]) -> Vec<(AlertKind, &str)> {
        found.iter().map(|c| (c.kind, c.subject.as_str())).collect()
    }

    #[test]
    fn failure_rate_needs_enough_jobs_and_a_rate_above_the_threshold() {
        let none = BTreeMap::new();
        let case = |finished, failed| {
            let o = observation(StoreObservation {
                window_finished: finished,
                window_failed: failed,
                ..StoreObservation::default()
            });
            kinds(&conditions(&o, &thresholds(), &none)).len()
        };
        assert_eq!(case(3, 3), 0, "too few jobs to judge");
        assert_eq!(case(4, 2), 0, "exactly the threshold is not above it");
        assert_eq!(case(4, 3), 1);
        assert_eq!(case(0, 0), 0);
    }

    #[test]
    fn long_running_compares_with_the_playbooks_mean_and_the_floor() {
        let running = |playbook: &str, secs: i64| RunningJob {
            id: 1,
            uuid: Uuid::from_u128(secs as u128),
            playbook: playbook.into(),
            pool: "default".into(),
            started_at: Some(at(-secs)),
        };
        let o = observation(StoreObservation {
            playbooks: vec![
                PlaybookHealth {
                    id: 1,
                    name: "slow".into(),
                    consecutive_failures: 0,
                    mean_duration_secs: Some(100.0),
                },
                PlaybookHealth {
                    id: 2,
                    name: "quick".into(),
                    consecutive_failures: 0,
                    mean_duration_secs: Some(1.0),
                },
            ],
            running: vec![
                running("slow", 299),
                running("slow", 301),
                running("quick", 59),
                running("quick", 61),
                running("new", 61),
            ],
            ..StoreObservation::default()
        });
        let found = conditions(&o, &thresholds(), &BTreeMap::new());
        let long: Vec<f64> = found.iter().map(|c| c.value).collect();
        assert_eq!(long, vec![301.0, 61.0, 61.0]);
        assert!(found.iter().all(|c| c.kind == AlertKind::LongRunning));
        assert_eq!(found[0].threshold, 300.0);
        assert_eq!(
            found[1].threshold, 60.0,
            "3 s expected, but the floor is 60 s"
        );
    }

    #[test]
    fn consecutive_failures_fire_at_the_threshold() {
        let health = |name: &str, n| PlaybookHealth {
            id: 1,
            name: name.into(),
            consecutive_failures: n,
            mean_duration_secs: None,
        };
        let o = observation(StoreObservation {
            playbooks: vec![health("a", 2), health("b", 3)],
            ..StoreObservation::default()
        });
        let found = conditions(&o, &thresholds(), &BTreeMap::new());
        assert_eq!(kinds(&found), vec![(AlertKind::ConsecutiveFailures, "b")]);
    }

    #[test]
    fn no_agent_fires_for_pools_with_servers_after_the_grace() {
        let mut o = observation(StoreObservation {
            pending_by_pool: [("edge-1".to_string(), 0), ("edge-2".to_string(), 0)].into(),
            ..StoreObservation::default()
        });
        let empty = |secs| PoolView {
            empty_for_secs: Some(secs),
            ..PoolView::default()
        };
        o.pools.insert("edge-1".into(), empty(25.0));
        o.pools.insert("edge-2".into(), empty(5.0));
        o.pools.insert("agents-only".into(), empty(100.0));
        let found = conditions(&o, &thresholds(), &BTreeMap::new());
        assert_eq!(kinds(&found), vec![(AlertKind::NoAgent, "edge-1")]);
    }

    #[test]
    fn backlog_fires_when_big_and_grown_over_the_window() {
        let window = Duration::minutes(5);
        let mut history = BacklogHistory::default();
        let pending = |n: u64| BTreeMap::from([("default".to_string(), n)]);
        assert!(history.record(at(0), &pending(12), window).is_empty());
        assert!(history.record(at(120), &pending(15), window).is_empty());
        let before = history.record(at(300), &pending(20), window);
        assert_eq!(before, BTreeMap::from([("default".to_string(), 12)]));
        let o = observation(StoreObservation {
            pending_by_pool: pending(20),
            ..StoreObservation::default()
        });
        let found = conditions(&o, &thresholds(), &before);
        assert_eq!(kinds(&found), vec![(AlertKind::QueueBacklog, "default")]);
        // Shrinking since then: no alert, even though it is big.
        let before = history.record(at(420), &pending(11), window);
        assert_eq!(before, BTreeMap::from([("default".to_string(), 15)]));
        let o = observation(StoreObservation {
            pending_by_pool: pending(11),
            ..StoreObservation::default()
        });
        assert!(conditions(&o, &thresholds(), &before).is_empty());
    }

    #[test]
    fn alerts_fire_once_and_resolve_once() {
        let condition = |value| Condition {
            kind: AlertKind::NoAgent,
            subject: "edge-1".into(),
            message: "no agent".into(),
            value,
            threshold: 1.0,
        };
        let mut alerts = Alerts::default();
        let fired = alerts.apply(at(0), vec![condition(0.0)]);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].state, AlertState::Firing);
        assert!(
            alerts.apply(at(10), vec![condition(0.0)]).is_empty(),
            "still firing"
        );
        assert_eq!(alerts.firing()[0].since, at(0));
        assert_eq!(alerts.firing_by_kind()[&AlertKind::NoAgent], 1);
        let resolved = alerts.apply(at(20), vec![]);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, AlertState::Resolved);
        assert_eq!(resolved[0].resolved_at, Some(at(20)));
        assert!(alerts.firing().is_empty());
        assert_eq!(alerts.resolved().len(), 1);
        assert_eq!(alerts.firing_by_kind()[&AlertKind::NoAgent], 0);
    }
}
