//! `GET /agents`: every agent heard since the coordinator started, grouped by pool, with
//! what its last heartbeat said and whether its lease still holds.

use super::AppState;
use super::auth::authorize;
use super::reply::respond;
use super::views::timestamp;
use crate::error::Error;
use crate::store::Role;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Serialize, ToSchema)]
pub struct AgentView {
    pub agent_id: String,
    pub pool: String,
    /// `up`, or `lost` once silent for longer than the lease.
    pub status: &'static str,
    pub capacity: u32,
    /// Job UUIDs the agent runs, as of its last heartbeat.
    pub running: Vec<String>,
    pub version: String,
    pub labels: Vec<String>,
    pub last_heartbeat: String,
}

#[derive(Serialize, ToSchema)]
pub struct PoolView {
    pub pool: String,
    pub agents_up: usize,
    pub capacity: u64,
    pub busy: u64,
    /// Why a pending job of this pool would wait, if the agents explain it.
    pub pending_reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AgentsView {
    pub lease_seconds: u64,
    pub pools: Vec<PoolView>,
    pub agents: Vec<AgentView>,
}

pub async fn list(state: AppState, auth: Option<String>) -> Response {
    let result = async {
        authorize(&state.store, auth.as_deref(), Role::Viewer).await?;
        let now = tokio::time::Instant::now();
        let agents = state.agents.snapshot(now);
        let mut pools = BTreeMap::new();
        for (agent, _) in &agents {
            pools.entry(agent.pool.clone()).or_insert(());
        }
        let pools = pools
            .into_keys()
            .map(|pool| {
                let current = state.agents.pool_in(&agents, &pool);
                PoolView {
                    pending_reason: crate::agents::pending_reason(&pool, &current, now),
                    agents_up: current.agents_up,
                    capacity: current.capacity,
                    busy: current.busy,
                    pool,
                }
            })
            .collect();
        let agents = agents
            .into_iter()
            .map(|(agent, up)| AgentView {
                status: if up { "up" } else { "lost" },
                agent_id: agent.agent_id,
                pool: agent.pool,
                capacity: agent.capacity,
                running: agent.running.iter().map(ToString::to_string).collect(),
                version: agent.version,
                labels: agent.labels,
                last_heartbeat: timestamp(agent.last_seen_at),
            })
            .collect();
        Ok::<_, Error>(AgentsView {
            lease_seconds: state.agents.lease().as_secs(),
            pools,
            agents,
        })
    }
    .await;
    respond(StatusCode::OK, result)
}
