//! Turns the scheduler's assignments into running jobs.
//!
//! Each service watches the assignments of its role in the `ferry-tasks` bucket. For an
//! assignment whose desired state is `running` it runs one job per task; a job is cancelled when
//! the assignment is paused, stopped or deleted, and restarted when its `epoch` grows (a resume
//! after an error). A job that ended (finished, or failed with a definite error it reported)
//! is not restarted until the epoch changes. The watch is re-established after NATS restarts;
//! replaying the current assignments is harmless because of the epoch check.

use crate::backoff::Backoff;
use async_nats::jetstream::kv;
use ferry_schemas::control::{Assignment, DesiredState, Role};
use ferry_schemas::names;
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct RunningJob {
    epoch: u64,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// Runs `start(assignment, cancel)` for every running assignment of `role` until `shutdown`.
pub async fn supervise<F, Fut>(tasks: kv::Store, role: Role, shutdown: CancellationToken, start: F)
where
    F: Fn(Assignment, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut jobs: HashMap<String, RunningJob> = HashMap::new();
    let mut backoff = Backoff::standard();
    let filter = names::assignment_filter(role.as_str());
    while !shutdown.is_cancelled() {
        let mut watch = match tasks.watch_with_history(&filter).await {
            Ok(w) => w,
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!("cannot watch {role:?} assignments ({e}); retrying in {d:?}");
                tokio::select! { _ = tokio::time::sleep(d) => continue, _ = shutdown.cancelled() => break }
            }
        };
        loop {
            let entry = tokio::select! { e = watch.next() => e, _ = shutdown.cancelled() => None };
            match entry {
                Some(Ok(entry)) => {
                    backoff.reset(Duration::from_millis(200));
                    apply_entry(&mut jobs, entry, &start).await;
                }
                Some(Err(e)) => {
                    tracing::warn!("assignment watch interrupted ({e}); re-establishing it");
                    break;
                }
                None => break,
            }
        }
        if !shutdown.is_cancelled() {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    for (task, job) in jobs.drain() {
        job.cancel.cancel();
        if tokio::time::timeout(Duration::from_secs(20), job.handle).await.is_err() {
            tracing::warn!(task, "job did not stop within 20 s of shutdown");
        }
    }
}

async fn apply_entry<F, Fut>(jobs: &mut HashMap<String, RunningJob>, entry: kv::Entry, start: &F)
where
    F: Fn(Assignment, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let assignment: Option<Assignment> = match entry.operation {
        kv::Operation::Put => match serde_json::from_slice(&entry.value) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(key = entry.key, "ignoring a malformed assignment: {e}");
                None
            }
        },
        _ => None,
    };
    let Some(a) = assignment.filter(|a| a.desired == DesiredState::Running) else {
        let task = entry.key.split('.').nth(1).unwrap_or_default().to_owned();
        stop_job(jobs, &task).await;
        return;
    };
    if jobs.get(&a.task).is_some_and(|j| j.epoch == a.epoch) {
        return;
    }
    stop_job(jobs, &a.task).await;
    let cancel = CancellationToken::new();
    tracing::info!(task = a.task, epoch = a.epoch, "starting job");
    let task = a.task.clone();
    let epoch = a.epoch;
    let handle = tokio::spawn(start(a, cancel.clone()));
    jobs.insert(task, RunningJob { epoch, cancel, handle });
}

async fn stop_job(jobs: &mut HashMap<String, RunningJob>, task: &str) {
    if let Some(job) = jobs.remove(task) {
        tracing::info!(task, "stopping job");
        job.cancel.cancel();
        if tokio::time::timeout(Duration::from_secs(30), job.handle).await.is_err() {
            tracing::warn!(task, "job did not stop within 30 s");
        }
    }
}
