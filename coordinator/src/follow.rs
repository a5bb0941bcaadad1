//! Following one job's log: every line after a given one, in order, exactly once, then
//! the job's end. The follower reads the store in pages and sleeps on the hub between
//! commits, so it holds at most one page in memory however long the log, and a job
//! that is already finished is simply read to its end.

use crate::hub::Hub;
use crate::store::{LogRecord, Store};
use drover_shared::JobStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Lines read from the store at a time.
const PAGE: usize = 256;
/// Items buffered between the follower and its consumer; the follower waits when full.
const QUEUE: usize = 256;
/// Re-check the store this often even without a wake-up (belt and braces).
const RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub enum FollowItem {
    Line(u64, LogRecord),
    Status {
        status: JobStatus,
        exit_code: Option<i32>,
        total_lines: u64,
    },
    /// The job is finished and every line has been sent.
    End {
        status: JobStatus,
        exit_code: Option<i32>,
    },
    /// The job cannot be read (it vanished or the store failed).
    Failed(String),
}

/// Starts following `job_id` after line `after_line`. The follower stops when the job
/// ends or the receiver is dropped.
pub fn follow(
    store: Store,
    hub: Arc<Hub>,
    job_id: u64,
    after_line: u64,
) -> mpsc::Receiver<FollowItem> {
    let (items, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        run(&store, &hub, job_id, after_line, &items).await;
        hub.release(job_id);
    });
    receiver
}

async fn run(
    store: &Store,
    hub: &Hub,
    job_id: u64,
    mut last: u64,
    items: &mpsc::Sender<FollowItem>,
) {
    let mut changes = hub.watch(job_id);
    let mut last_status = None;
    loop {
        changes.mark_unchanged();
        let page = match store.log_page(job_id, last, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                let _ = items.send(FollowItem::Failed(e.to_string())).await;
                return;
            }
        };
        let full = page.lines.len() == PAGE;
        for (number, record) in page.lines {
            last = number;
            if items.send(FollowItem::Line(number, record)).await.is_err() {
                return;
            }
        }
        if full {
            continue;
        }
        if last_status != Some(page.status) {
            last_status = Some(page.status);
            let status = FollowItem::Status {
                status: page.status,
                exit_code: page.exit_code,
                total_lines: page.total_lines,
            };
            if items.send(status).await.is_err() {
                return;
            }
        }
        if page.status.is_finished() && last >= page.total_lines {
            let _ = items
                .send(FollowItem::End {
                    status: page.status,
                    exit_code: page.exit_code,
                })
                .await;
            return;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(RECHECK) => {}
            () = items.closed() => return,
        }
    }
}
