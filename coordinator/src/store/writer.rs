//! Group commit: one thread owns redb's write side. Callers queue closures; the thread
//! applies everything queued (up to [`MAX_GROUP`]) in one write transaction, commits once,
//! then answers every caller. While a commit is in flight new changes queue up, so the
//! group grows with the load and an fsync is shared by all of it.

use crate::error::Error;
use redb::{Database, WriteTransaction};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Changes waiting for the writer. When full, callers wait (back-pressure on the API and
/// on ingest, which then leaves messages unacked in JetStream): nothing is dropped.
const QUEUE_DEPTH: usize = 4096;
/// Most changes in one commit; bounds a commit's latency under a flood.
const MAX_GROUP: usize = 1024;

/// Runs a change inside the group's transaction and returns what to do once the commit's
/// outcome is known.
type Change = Box<dyn FnOnce(&WriteTransaction) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

#[derive(Clone)]
pub struct WriterHandle {
    queue: mpsc::Sender<Change>,
}

impl WriterHandle {
    pub async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let change: Change = Box::new(move |tx| {
            let result = f(tx);
            Box::new(move |commit: Result<(), String>| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(message) => Err(Error::Codec(format!("commit failed: {message}"))),
                };
                // The caller may have gone away (client disconnected); the change stands.
                let _ = reply.send(outcome);
            })
        });
        self.queue
            .send(change)
            .await
            .map_err(|_| Error::WriterGone)?;
        answer.await.map_err(|_| Error::WriterGone)?
    }
}

pub fn spawn(db: Arc<Database>) -> WriterHandle {
    let (queue, changes) = mpsc::channel(QUEUE_DEPTH);
    std::thread::Builder::new()
        .name("redb-writer".into())
        .spawn(move || run(&db, changes))
        .expect("the writer thread starts");
    WriterHandle { queue }
}

fn run(db: &Database, mut changes: mpsc::Receiver<Change>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = changes.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match changes.try_recv() {
                Ok(change) => group.push(change),
                Err(_) => break,
            }
        }
        commit_group(db, &mut group);
    }
    tracing::info!("store writer stopped: every handle is gone");
}

fn commit_group(db: &Database, group: &mut Vec<Change>) {
    let tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            tracing::error!(error = %message, "cannot begin a write transaction");
            for change in group.drain(..) {
                // Never run: answer with the failure directly.
                drop(change);
            }
            return;
        }
    };
    let completions: Vec<Completion> = group.drain(..).map(|change| change(&tx)).collect();
    let outcome = tx.commit().map_err(|e| e.to_string());
    if let Err(message) = &outcome {
        tracing::error!(error = %message, changes = completions.len(), "group commit failed");
    }
    for complete in completions {
        complete(outcome.clone());
    }
}
