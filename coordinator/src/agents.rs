//! Who is out there. The coordinator listens to agents' heartbeats and keeps what each
//! last said; from that it tells why a pending job waits ("no agent in pool 'edge-1' for
//! 45 s") and which agents are lost: an agent silent for longer than the lease loses its
//! jobs, which end `failed` ("agent <id> lost while running").
//!
//! Leases count from the coordinator's start for agents it has not heard yet, so a
//! coordinator restart reaps nobody: a live agent's next heartbeat comes well within it.

use crate::api::AppState;
use crate::dispatch;
use crate::shutdown::Shutdown;
use crate::store::JobProgress;
use crate::telemetry::Counters;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use drover_shared::protocol::{HEARTBEAT_SUBJECTS, Heartbeat, Message};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// What an agent said in its last heartbeat, and when.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub agent_id: String,
    pub pool: String,
    pub capacity: u32,
    pub running: Vec<Uuid>,
    pub version: String,
    pub labels: Vec<String>,
    pub last_seen: Instant,
    pub last_seen_at: DateTime<Utc>,
}

/// One pool as the heartbeats describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolState {
    pub agents_up: usize,
    pub capacity: u64,
    pub busy: u64,
    /// Since when the pool has had no live agent (the coordinator's start if it never
    /// had one); `None` while it has one.
    pub empty_since: Option<Instant>,
}

pub struct Registry {
    agents: DashMap<String, AgentInfo>,
    started: Instant,
    /// Leases count from here at the earliest: the coordinator's start, or the end of
    /// its last disconnection from NATS (agents could not be heard meanwhile).
    leases_from: std::sync::Mutex<Instant>,
    lease: Duration,
}

impl Registry {
    pub fn new(lease: Duration) -> Registry {
        Registry {
            agents: DashMap::new(),
            started: Instant::now(),
            leases_from: std::sync::Mutex::new(Instant::now()),
            lease,
        }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn record(&self, beat: Heartbeat, now: Instant) {
        let info = AgentInfo {
            agent_id: beat.agent_id.clone(),
            pool: beat.pool,
            capacity: beat.capacity,
            running: beat.running,
            version: beat.version,
            labels: beat.labels,
            last_seen: now,
            last_seen_at: Utc::now(),
        };
        self.agents.insert(beat.agent_id, info);
    }

    /// Every agent heard since the coordinator started, with whether it is up.
    pub fn snapshot(&self, now: Instant) -> Vec<(AgentInfo, bool)> {
        let mut agents: Vec<(AgentInfo, bool)> = self
            .agents
            .iter()
            .map(|entry| {
                let info = entry.value().clone();
                let up = now.saturating_duration_since(info.last_seen) <= self.lease;
                (info, up)
            })
            .collect();
        agents.sort_by(|a, b| {
            a.0.pool
                .cmp(&b.0.pool)
                .then(a.0.agent_id.cmp(&b.0.agent_id))
        });
        agents
    }

    pub fn pool(&self, pool: &str, now: Instant) -> PoolState {
        self.pool_in(&self.snapshot(now), pool)
    }

    /// A pool's state from a [`Registry::snapshot`] already taken: one copy of the
    /// registry for all pools.
    pub fn pool_in(&self, snapshot: &[(AgentInfo, bool)], pool: &str) -> PoolState {
        pool_state(snapshot, pool, self.started)
    }

    /// Why a pending job of `pool` has not started, if the agents explain it.
    pub fn pending_reason(&self, pool: &str, now: Instant) -> Option<String> {
        pending_reason(pool, &self.pool(pool, now), now)
    }

    /// Agents among `claiming` (those holding jobs) silent for longer than the lease.
    pub fn lost(&self, claiming: &[String], now: Instant) -> Vec<String> {
        let from = self.leases_from();
        let last_seen = |agent: &str| self.agents.get(agent).map(|info| info.last_seen.max(from));
        lost_agents(claiming, last_seen, from, now, self.lease)
    }

    /// Gives every agent a whole lease from `now`: the coordinator was cut off from
    /// NATS, so silence meanwhile says nothing about the agents.
    pub fn restart_leases(&self, now: Instant) {
        if let Ok(mut from) = self.leases_from.lock() {
            *from = now;
        }
    }

    fn leases_from(&self) -> Instant {
        self.leases_from.lock().map_or(self.started, |from| *from)
    }
}

pub fn pool_state(agents: &[(AgentInfo, bool)], pool: &str, started: Instant) -> PoolState {
    let members: Vec<&(AgentInfo, bool)> = agents.iter().filter(|(a, _)| a.pool == pool).collect();
    let up: Vec<&AgentInfo> = members
        .iter()
        .filter(|(_, up)| *up)
        .map(|(a, _)| a)
        .collect();
    let empty_since = if up.is_empty() {
        // The last agent went silent at its last heartbeat; with none ever, the wait
        // started with the coordinator.
        Some(
            members
                .iter()
                .map(|(a, _)| a.last_seen)
                .max()
                .unwrap_or(started),
        )
    } else {
        None
    };
    PoolState {
        agents_up: up.len(),
        capacity: up.iter().map(|a| u64::from(a.capacity)).sum(),
        busy: up.iter().map(|a| a.running.len() as u64).sum(),
        empty_since,
    }
}

pub fn pending_reason(pool: &str, state: &PoolState, now: Instant) -> Option<String> {
    if let Some(since) = state.empty_since {
        let waited = now.saturating_duration_since(since).as_secs();
        return Some(format!("no agent in pool '{pool}' for {waited} s"));
    }
    if state.busy >= state.capacity {
        return Some(format!(
            "every slot of pool '{pool}' is busy ({} agent(s), {} of {} slots)",
            state.agents_up, state.busy, state.capacity
        ));
    }
    None
}

/// Agents among `claiming` not heard for longer than `lease`, counting from `started`
/// for agents never heard.
pub fn lost_agents(
    claiming: &[String],
    last_seen: impl Fn(&str) -> Option<Instant>,
    started: Instant,
    now: Instant,
    lease: Duration,
) -> Vec<String> {
    let mut lost: Vec<String> = claiming
        .iter()
        .filter(|agent| {
            let seen = last_seen(agent).unwrap_or(started);
            now.saturating_duration_since(seen) > lease
        })
        .cloned()
        .collect();
    lost.sort();
    lost.dedup();
    lost
}

/// Listens to heartbeats until shutdown.
pub async fn listen(
    client: async_nats::Client,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
    mut shutdown: Shutdown,
) {
    loop {
        let mut beats = match client.subscribe(HEARTBEAT_SUBJECTS).await {
            Ok(subscription) => subscription,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to heartbeats; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shutdown.wait() => return,
                }
            }
        };
        loop {
            let message = tokio::select! {
                message = beats.next() => match message {
                    Some(message) => message,
                    None => break,
                },
                () = shutdown.wait() => return,
            };
            match Heartbeat::decode(&message.payload) {
                Ok(beat)
                    if message.subject.as_str()
                        == drover_shared::protocol::heartbeat_subject(&beat.agent_id) =>
                {
                    registry.record(beat, Instant::now());
                }
                Ok(beat) => {
                    Counters::add(&counters.heartbeats_rejected, 1);
                    tracing::warn!(subject = %message.subject, agent = %beat.agent_id, "heartbeat names another agent than its subject; ignored");
                }
                Err(e) => {
                    Counters::add(&counters.heartbeats_rejected, 1);
                    tracing::warn!(subject = %message.subject, error = %e, "malformed heartbeat ignored");
                }
            }
        }
    }
}

/// How often the lease is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Ends the claims of agents whose lease ran out: their running jobs fail, their
/// claimed jobs go back to the pool.
pub async fn reap_loop(state: AppState, mut shutdown: Shutdown) {
    let mut cut_off = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            () = shutdown.wait() => return,
        }
        // While the coordinator itself is cut off, nobody can be heard: no lease runs
        // out, and every lease starts over once it is back.
        if state.client.connection_state() != async_nats::connection::State::Connected {
            cut_off = true;
            continue;
        }
        if cut_off {
            cut_off = false;
            state.agents.restart_leases(Instant::now());
            tracing::info!("back on NATS; agents' leases start over");
            continue;
        }
        let claiming = match state.store.claiming_agents().await {
            Ok(claiming) => claiming,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list claimed jobs for the lease check");
                continue;
            }
        };
        for agent in state.agents.lost(&claiming, Instant::now()) {
            let error = format!("agent {agent} lost while running");
            match state.store.reap_agent(agent.clone(), error).await {
                Ok(reaped) => {
                    tracing::warn!(%agent, failed = reaped.failed.len(), requeued = reaped.requeued.len(), "agent lost");
                    let progress: Vec<JobProgress> = reaped
                        .failed
                        .iter()
                        .map(|job| JobProgress::of(job, true))
                        .collect();
                    state.hub.publish(&progress);
                    // If it comes back, it must not go on with them.
                    for job in &reaped.failed {
                        crate::cancel::send(&state.client, job.uuid, "the coordinator").await;
                    }
                    for (job, playbook, server) in &reaped.requeued {
                        if let Err(e) = dispatch::requeue(&state.js, job, playbook, server).await {
                            tracing::warn!(job = job.id, error = %e, "requeue deferred");
                            state.undispatched.insert(job.id);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(%agent, error = %e, "cannot end the claims of a lost agent")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, pool: &str, capacity: u32, running: usize, seen: Instant) -> AgentInfo {
        AgentInfo {
            agent_id: id.into(),
            pool: pool.into(),
            capacity,
            running: (0..running).map(|_| Uuid::new_v4()).collect(),
            version: "0".into(),
            labels: Vec::new(),
            last_seen: seen,
            last_seen_at: Utc::now(),
        }
    }

    #[test]
    fn an_empty_pool_says_for_how_long() {
        let started = Instant::now();
        let now = started + Duration::from_secs(45);
        let state = pool_state(&[], "edge-1", started);
        assert_eq!(
            pending_reason("edge-1", &state, now).as_deref(),
            Some("no agent in pool 'edge-1' for 45 s")
        );
        // An agent that went silent 10 s ago: the pool has been empty since then.
        let gone = agent("a", "edge-1", 2, 0, now - Duration::from_secs(10));
        let state = pool_state(&[(gone, false)], "edge-1", started);
        assert_eq!(
            pending_reason("edge-1", &state, now).as_deref(),
            Some("no agent in pool 'edge-1' for 10 s")
        );
    }

    #[test]
    fn a_full_pool_says_so_and_a_free_one_says_nothing() {
        let now = Instant::now();
        let agents = [
            (agent("a", "p", 2, 2, now), true),
            (agent("b", "p", 1, 1, now), true),
            (agent("c", "other", 4, 0, now), true),
        ];
        let state = pool_state(&agents, "p", now);
        assert_eq!(state.agents_up, 2);
        assert_eq!(
            pending_reason("p", &state, now).as_deref(),
            Some("every slot of pool 'p' is busy (2 agent(s), 3 of 3 slots)")
        );
        assert_eq!(
            pending_reason("other", &pool_state(&agents, "other", now), now),
            None
        );
    }

    #[test]
    fn leases_count_from_the_start_for_agents_never_heard() {
        let started = Instant::now();
        let lease = Duration::from_secs(20);
        let claimed = vec!["quiet".to_owned(), "alive".to_owned(), "unknown".to_owned()];
        let seen = |now: Instant| {
            move |agent: &str| match agent {
                "quiet" => Some(started),
                "alive" => Some(now - Duration::from_secs(1)),
                _ => None,
            }
        };
        let early = started + Duration::from_secs(15);
        assert!(lost_agents(&claimed, seen(early), started, early, lease).is_empty());
        let late = started + Duration::from_secs(21);
        assert_eq!(
            lost_agents(&claimed, seen(late), started, late, lease),
            vec!["quiet".to_owned(), "unknown".to_owned()]
        );
    }

    #[test]
    fn leases_start_over_after_the_coordinator_was_cut_off() {
        let registry = Registry::new(Duration::from_secs(20));
        let start = Instant::now();
        registry.record(
            Heartbeat {
                agent_id: "a".into(),
                pool: "p".into(),
                capacity: 1,
                running: Vec::new(),
                version: "0".into(),
                labels: Vec::new(),
            },
            start,
        );
        let claimed = vec!["a".to_owned()];
        let late = start + Duration::from_secs(30);
        assert_eq!(registry.lost(&claimed, late), vec!["a".to_owned()]);
        // The coordinator was off NATS until `late`: the agent gets a whole new lease.
        registry.restart_leases(late);
        assert!(
            registry
                .lost(&claimed, late + Duration::from_secs(19))
                .is_empty()
        );
        assert_eq!(
            registry.lost(&claimed, late + Duration::from_secs(21)),
            vec!["a".to_owned()]
        );
    }
}
