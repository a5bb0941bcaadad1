//! One actor per running job. It runs [`execute`](crate::execute::execute) and tells the
//! pool when the job is over; its slot is released when it stops.

use crate::execute::{Settings, execute};
use crate::pool::{JobDone, PoolActor};
use actix::prelude::*;
use async_nats::jetstream;
use drover_shared::protocol::JobDispatch;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

pub struct JobActor {
    /// Taken when the run starts.
    pub dispatch: Option<JobDispatch>,
    pub settings: Arc<Settings>,
    pub js: jetstream::Context,
    pub pool: Addr<PoolActor>,
    /// The pool slot this job occupies; freed when the actor is dropped.
    pub _slot: OwnedSemaphorePermit,
}

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(dispatch) = self.dispatch.take() else {
            ctx.stop();
            return;
        };
        let job = dispatch.job_uuid;
        let run = execute(dispatch, self.settings.clone(), self.js.clone());
        ctx.spawn(run.into_actor(self).map(move |(), actor, ctx| {
            actor.pool.do_send(JobDone(job));
            ctx.stop();
        }));
    }
}
