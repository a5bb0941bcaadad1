//! Job cancellation on the agent's side.
//!
//! [`listen`] holds the agent's one subscription to `drover.jobs.*.cancel` and hands
//! each request to the pool actor as a [`Cancel`]. The pool forwards it to the job's
//! actor, which fires the job's [`CancelHandle`]; the run loop in
//! [`execute`](crate::execute) waits on the matching [`CancelSignal`]. A cancel for a job
//! the pool is not running yet is kept in [`RecentlyCancelled`], because the claim can be
//! granted just before the coordinator cancels and the dispatch then arrives after the
//! cancel.

use crate::error::Error;
use crate::pool::PoolActor;
use actix::prelude::*;
use drover_shared::protocol::{CancelRequest, JobSubjectKind, Message as _, parse_job_subject};
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Every job's cancel subject (see [`drover_shared::protocol::cancel_subject`]).
pub const CANCEL_SUBJECTS: &str = "drover.jobs.*.cancel";
/// Pause before subscribing again after the subscription failed or ended.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);
/// Cancels remembered for jobs this agent is not running; beyond it the oldest go.
pub const RECENTLY_CANCELLED_CAP: usize = 1024;

/// A user cancelled `job`. Sent to the pool actor, which passes it on to the job's actor.
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub struct Cancel {
    pub job: Uuid,
    pub by_user: String,
}

/// Reads a message from a cancel subject.
pub fn parse(subject: &str, payload: &[u8]) -> Result<Cancel, Error> {
    let bad = |why: String| Error::BadCancel {
        subject: subject.to_owned(),
        why,
    };
    let job = match parse_job_subject(subject) {
        Some((job, JobSubjectKind::Cancel)) => job,
        _ => return Err(bad("not drover.jobs.<uuid>.cancel".into())),
    };
    let request = CancelRequest::decode(payload).map_err(|e| bad(e.to_string()))?;
    Ok(Cancel {
        job,
        by_user: request.by_user,
    })
}

/// Routes every cancel request to `pool` until the pool actor stops. async-nats
/// resubscribes by itself after a reconnect; this loop covers the subscription ending
/// or failing outright.
pub async fn listen(client: async_nats::Client, pool: Addr<PoolActor>) {
    while pool.connected() {
        match client.subscribe(CANCEL_SUBJECTS).await {
            Ok(mut requests) => {
                while let Some(message) = requests.next().await {
                    match parse(&message.subject, &message.payload) {
                        // Cancels are rare and tiny: the pool's mailbox takes them all.
                        Ok(cancel) => pool.do_send(cancel),
                        Err(e) => tracing::warn!(error = %e, "cancel request ignored"),
                    }
                }
                tracing::warn!("cancel subscription ended; subscribing again");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to cancels; retrying"),
        }
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
    }
}

/// Fires a job's cancel; held by its actor.
#[derive(Debug)]
pub struct CancelHandle(watch::Sender<Option<String>>);

/// What the run waits on: who cancelled, once someone has.
#[derive(Debug, Clone)]
pub struct CancelSignal(watch::Receiver<Option<String>>);

/// A connected handle and signal for one job.
pub fn channel() -> (CancelHandle, CancelSignal) {
    let (sender, receiver) = watch::channel(None);
    (CancelHandle(sender), CancelSignal(receiver))
}

impl CancelHandle {
    /// The first cancel wins: its user is the one the job reports.
    pub fn cancel(&self, by_user: String) {
        self.0.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(by_user);
            }
            first
        });
    }
}

impl CancelSignal {
    /// Who cancelled, if anyone has yet.
    pub fn cancelled_by(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Waits for a cancel and returns who sent it. Never returns once the handle is
    /// gone without firing: such a job is simply never cancelled.
    pub async fn requested(&mut self) -> String {
        let by_user = match self.0.wait_for(Option::is_some).await {
            Ok(by_user) => by_user.clone(),
            Err(_) => None,
        };
        match by_user {
            Some(by_user) => by_user,
            None => std::future::pending().await,
        }
    }
}

/// Cancels of jobs this agent is not running, oldest evicted first.
#[derive(Debug)]
pub struct RecentlyCancelled {
    cap: usize,
    by_job: HashMap<Uuid, String>,
    /// Insertion order, for eviction.
    order: VecDeque<Uuid>,
}

impl Default for RecentlyCancelled {
    fn default() -> Self {
        Self::with_cap(RECENTLY_CANCELLED_CAP)
    }
}

impl RecentlyCancelled {
    pub fn with_cap(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            by_job: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers that `by_user` cancelled `job`; a repeated cancel keeps the first user.
    pub fn insert(&mut self, job: Uuid, by_user: String) {
        if self.by_job.contains_key(&job) {
            return;
        }
        while self.by_job.len() >= self.cap {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_job.remove(&oldest);
        }
        self.by_job.insert(job, by_user);
        self.order.push_back(job);
    }

    /// Who cancelled `job`, forgetting it: a job starts at most once.
    pub fn take(&mut self, job: &Uuid) -> Option<String> {
        let by_user = self.by_job.remove(job)?;
        self.order.retain(|j| j != job);
        Some(by_user)
    }

    pub fn len(&self) -> usize {
        self.by_job.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_job.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_shared::protocol::cancel_subject;

    #[test]
    fn parses_a_cancel_request() {
        let job = Uuid::new_v4();
        let payload = CancelRequest {
            by_user: "alice".into(),
        }
        .encode()
        .expect("encodes");
        assert_eq!(
            parse(&cancel_subject(job), &payload).expect("parses"),
            Cancel {
                job,
                by_user: "alice".into()
            }
        );
    }

    #[test]
    fn refuses_bad_subjects_and_payloads() {
        let payload = CancelRequest {
            by_user: "alice".into(),
        }
        .encode()
        .expect("encodes");
        let job = Uuid::new_v4();
        for subject in [
            "drover.jobs.not-a-uuid.cancel",
            &format!("drover.jobs.{job}.status"),
            "drover.jobs",
        ] {
            assert!(parse(subject, &payload).is_err(), "{subject}");
        }
        let error = parse(&cancel_subject(job), b"\xc1garbage").expect_err("garbage");
        assert!(error.to_string().contains(&job.to_string()), "{error}");
    }

    #[test]
    fn remembers_cancels_up_to_its_cap_and_evicts_the_oldest() {
        let mut recent = RecentlyCancelled::with_cap(3);
        let jobs: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        for (i, job) in jobs.iter().enumerate() {
            recent.insert(*job, format!("user{i}"));
        }
        assert_eq!(recent.len(), 3);
        assert_eq!(recent.take(&jobs[0]), None, "the oldest was evicted");
        assert_eq!(recent.take(&jobs[2]), Some("user2".into()));
        assert_eq!(recent.take(&jobs[2]), None, "taken once");
        assert_eq!(recent.len(), 2);
        // Taking freed a place: nothing else is evicted by the next insert.
        recent.insert(Uuid::new_v4(), "user9".into());
        assert_eq!(recent.take(&jobs[1]), Some("user1".into()));
        assert_eq!(recent.take(&jobs[3]), Some("user3".into()));
    }

    #[test]
    fn a_repeated_cancel_keeps_the_first_user_and_its_place() {
        let mut recent = RecentlyCancelled::with_cap(2);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        recent.insert(a, "alice".into());
        recent.insert(b, "bob".into());
        recent.insert(a, "carol".into());
        recent.insert(c, "dave".into());
        assert_eq!(recent.take(&a), None, "a stayed the oldest and was evicted");
        assert_eq!(recent.take(&b), Some("bob".into()));
        assert_eq!(recent.take(&c), Some("dave".into()));
        assert!(recent.is_empty());
    }

    #[tokio::test]
    async fn the_first_cancel_wins_and_a_dropped_handle_never_fires() {
        let (handle, mut signal) = channel();
        assert_eq!(signal.cancelled_by(), None);
        handle.cancel("alice".into());
        handle.cancel("bob".into());
        assert_eq!(signal.requested().await, "alice");
        assert_eq!(signal.cancelled_by().as_deref(), Some("alice"));

        let (handle, mut signal) = channel();
        drop(handle);
        let waited = tokio::time::timeout(Duration::from_millis(50), signal.requested()).await;
        assert!(waited.is_err(), "no cancel without a handle");
    }
}
