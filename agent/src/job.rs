//! One actor per running job. It runs [`execute`](crate::execute::execute), passes a
//! [`Cancel`] on to the run, and tells the pool when the job is over; its slot is
//! released when it stops.

use crate::cancel::{self, Cancel, CancelHandle};
use crate::execute::{Settings, execute};
use crate::pool::{JobDone, PoolActor};
use actix::prelude::*;
use async_nats::jetstream;
use drover_shared::protocol::JobDispatch;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

pub struct JobActor {
    /// Taken when the run starts.
    dispatch: Option<JobDispatch>,
    settings: Arc<Settings>,
    js: jetstream::Context,
    pool: Addr<PoolActor>,
    canceller: CancelHandle,
    /// The run's end of `canceller`; taken when the run starts.
    signal: Option<cancel::CancelSignal>,
    /// The pool slot this job occupies; freed when the actor is dropped.
    _slot: OwnedSemaphorePermit,
}

impl JobActor {
    pub fn new(
        dispatch: JobDispatch,
        settings: Arc<Settings>,
        js: jetstream::Context,
        pool: Addr<PoolActor>,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        let (canceller, signal) = cancel::channel();
        Self {
            dispatch: Some(dispatch),
            settings,
            js,
            pool,
            canceller,
            signal: Some(signal),
            _slot: slot,
        }
    }

    /// Before the actor starts, this makes the job end as cancelled without running.
    pub fn cancel(&self, by_user: String) {
        self.canceller.cancel(by_user);
    }
}

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (Some(dispatch), Some(signal)) = (self.dispatch.take(), self.signal.take()) else {
            ctx.stop();
            return;
        };
        let job = dispatch.job_uuid;
        let run = execute(dispatch, self.settings.clone(), self.js.clone(), signal);
        ctx.spawn(run.into_actor(self).map(move |(), actor, ctx| {
            actor.pool.do_send(JobDone(job));
            ctx.stop();
        }));
    }
}

impl Handler<Cancel> for JobActor {
    type Result = ();

    fn handle(&mut self, cancel: Cancel, _: &mut Self::Context) {
        self.cancel(cancel.by_user);
    }
}
