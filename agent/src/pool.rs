//! The pool actor: pulls dispatches from the pool's work queue while it has a free slot,
//! claims each from the coordinator, and starts a [`JobActor`] for every granted claim.
//! It routes cancels to running jobs and remembers those of jobs not started yet. It
//! also announces the agent with heartbeats.

use crate::bus;
use crate::cancel::{self, Cancel, RecentlyCancelled};
use crate::execute::Settings;
use crate::job::JobActor;
use actix::prelude::*;
use async_nats::jetstream::{self, AckKind};
use drover_shared::protocol::{Heartbeat, JobDispatch, Message as _, heartbeat_subject};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Default heartbeat interval (`--heartbeat-secs`).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A pull waits this long for a dispatch before asking again.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Most dispatches asked for in one pull.
const MAX_PULL: usize = 64;
/// How long a shutdown waits for killed jobs to report their final status.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct PoolActor {
    pub settings: Arc<Settings>,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub pool: String,
    pub concurrency: u32,
    pub labels: Vec<String>,
    pub running: HashMap<Uuid, Addr<JobActor>>,
    /// Cancels that came before their job's start: a claim granted just before the
    /// cancel reaches the pool after it.
    pub recently_cancelled: RecentlyCancelled,
    pub slots: Arc<Semaphore>,
    pub heartbeat_every: Duration,
}

impl PoolActor {
    pub fn new(
        settings: Arc<Settings>,
        client: async_nats::Client,
        pool: String,
        concurrency: u32,
        labels: Vec<String>,
    ) -> Self {
        Self {
            settings,
            js: jetstream::new(client.clone()),
            client,
            pool,
            concurrency,
            labels,
            running: HashMap::new(),
            recently_cancelled: RecentlyCancelled::default(),
            slots: Arc::new(Semaphore::new(concurrency as usize)),
            heartbeat_every: HEARTBEAT_EVERY,
        }
    }

    /// How often the agent announces itself; the coordinator's lease must be longer.
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat_every = every;
        self
    }
}

impl Actor for PoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let puller = pull_loop(
            ctx.address(),
            self.client.clone(),
            self.js.clone(),
            self.pool.clone(),
            self.settings.clone(),
            self.slots.clone(),
        );
        actix::spawn(puller);
        actix::spawn(cancel::listen(self.client.clone(), ctx.address()));
        ctx.run_interval(self.heartbeat_every, |actor, _| actor.heartbeat());
        self.heartbeat();
    }
}

impl PoolActor {
    fn heartbeat(&self) {
        let beat = Heartbeat {
            agent_id: self.settings.agent_id.clone(),
            pool: self.pool.clone(),
            capacity: self.concurrency,
            running: self.running.keys().copied().collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            labels: self.labels.clone(),
        };
        let client = self.client.clone();
        let subject = heartbeat_subject(&self.settings.agent_id);
        actix::spawn(async move {
            match beat.encode() {
                Ok(bytes) => {
                    if let Err(e) = client.publish(subject, bytes.into()).await {
                        tracing::warn!(error = %e, "heartbeat not sent");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode heartbeat"),
            }
        });
    }
}

/// A granted job, with the slot it occupies until its actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartJob {
    pub dispatch: JobDispatch,
    pub slot: OwnedSemaphorePermit,
}

impl Handler<StartJob> for PoolActor {
    type Result = ();

    fn handle(&mut self, start: StartJob, ctx: &mut Self::Context) {
        let job = start.dispatch.job_uuid;
        if self.running.contains_key(&job) {
            return; // a redelivered dispatch of a job this agent is running
        }
        let actor = JobActor::new(
            start.dispatch,
            self.settings.clone(),
            self.js.clone(),
            ctx.address(),
            start.slot,
        );
        // The job still goes through its actor, so its `cancelled` status is published
        // the way every status is and its slot is freed when it is done.
        if let Some(by_user) = self.recently_cancelled.take(&job) {
            actor.cancel(by_user);
        }
        self.running.insert(job, actor.start());
    }
}

impl Handler<Cancel> for PoolActor {
    type Result = ();

    fn handle(&mut self, cancel: Cancel, _: &mut Self::Context) {
        let (job, by_user) = (cancel.job, &cancel.by_user);
        match self.running.get(&job) {
            Some(actor) => {
                tracing::info!(%job, %by_user, "cancel requested; stopping the job");
                actor.do_send(cancel);
            }
            None => {
                tracing::info!(%job, %by_user, "cancel requested for a job not running here");
                self.recently_cancelled.insert(cancel.job, cancel.by_user);
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct JobDone(pub Uuid);

impl Handler<JobDone> for PoolActor {
    type Result = ();

    fn handle(&mut self, JobDone(job): JobDone, _: &mut Self::Context) {
        self.running.remove(&job);
    }
}

/// Stops taking jobs, kills the running ones (they report `failed`), waits for their
/// final status to be published, then stops the system.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for PoolActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        self.settings.stopping.store(true, Ordering::Relaxed);
        self.slots.close();
        let agent = self.settings.process_marker();
        let killed =
            crate::runner::process::kill_marked(crate::runner::process::AGENT_MARKER, &agent);
        tracing::info!(killed, running = self.running.len(), "agent stopping");
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        ctx.run_interval(Duration::from_millis(50), move |actor, _| {
            if actor.running.is_empty() || tokio::time::Instant::now() > deadline {
                System::current().stop();
            }
        });
    }
}

async fn pull_loop(
    pool_actor: Addr<PoolActor>,
    client: async_nats::Client,
    js: jetstream::Context,
    pool: String,
    settings: Arc<Settings>,
    slots: Arc<Semaphore>,
) {
    loop {
        let consumer = match bus::pool_consumer(&js, &pool).await {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(error = %e, "waiting for the dispatch queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::info!(%pool, "taking jobs");
        loop {
            // Ask for as many dispatches as there are free slots, and wait (long poll)
            // until the first arrives: never more than the agent can start.
            let Ok(first) = slots.clone().acquire_owned().await else {
                return; // closed: the agent is stopping
            };
            let mut free = vec![first];
            while free.len() < MAX_PULL {
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => free.push(slot),
                    Err(_) => break,
                }
            }
            let batch = consumer
                .batch()
                .max_messages(free.len())
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "pull failed; reopening the consumer");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            };
            while let Some(message) = batch.next().await {
                let Ok(message) = message else { break };
                let Some(slot) = free.pop() else { break };
                // Claims run side by side: a burst of jobs does not queue behind
                // one claim's round trip.
                actix::spawn(take(
                    pool_actor.clone(),
                    client.clone(),
                    settings.clone(),
                    message,
                    slot,
                ));
            }
        }
    }
}

/// Claims one dispatch and hands it to the pool actor if granted.
async fn take(
    pool_actor: Addr<PoolActor>,
    client: async_nats::Client,
    settings: Arc<Settings>,
    message: jetstream::Message,
    slot: OwnedSemaphorePermit,
) {
    let dispatch = match JobDispatch::decode(&message.payload) {
        Ok(dispatch) => dispatch,
        Err(e) => {
            tracing::warn!(error = %e, "dispatch dropped");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let job = dispatch.job_uuid;
    match bus::claim(&client, job, &settings.agent_id).await {
        Ok(reply) if reply.granted => {
            tracing::info!(%job, id = dispatch.job_id, "claim granted");
            pool_actor.do_send(StartJob { dispatch, slot });
            // The claim is what counts; the ack only retires the dispatch message, so
            // the job need not wait for it. A lost ack redelivers the dispatch: the
            // coordinator refuses it once the job runs, and the pool ignores a job it
            // is already running.
            if let Err(e) = message.double_ack().await {
                tracing::warn!(%job, error = %e, "dispatch ack lost; the claim still holds");
            }
        }
        Ok(reply) => {
            tracing::info!(%job, reason = ?reply.reason, "claim refused; dispatch dropped");
            let _ = message.ack_with(AckKind::Term).await;
        }
        Err(e) => {
            tracing::warn!(%job, error = %e, "claim undecided; dispatch put back");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

#[cfg(test)]
mod tests;
