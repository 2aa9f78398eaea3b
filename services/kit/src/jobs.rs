//! Turns the scheduler's assignments into running jobs.
//!
//! Each service watches the assignments of its role in the `ferry-tasks` bucket. For an
//! assignment whose desired state is `running` it runs one job per task; a job is cancelled when
//! the assignment is paused, stopped or deleted, and restarted when its `epoch` grows (a resume
//! after an error). A job that ended (finished, or failed with a definite error it reported)
//! is not restarted until the epoch changes. The watch is re-established after NATS restarts;
//! replaying the current assignments is harmless because of the epoch check.
//!
//! Placement: an assignment that names a region runs only on instances of that region; the
//! others ignore it (`region` is the task's source region for store and full-migrator, its
//! target region for the others).
//!
//! Only one instance of a role runs a task's job at a time: before the job starts, its instance
//! takes the lease `lease.<task>.<role>` in `ferry-locks` (create-if-absent), renews it every
//! [`LEASE_RENEW`] by compare-and-set, and releases it when the job ends. The bucket's TTL
//! ([`LEASE_TTL`]) frees the lease of an instance that died, so another instance of the role
//! takes the job over; an instance restarted under the same name takes its own lease back at
//! once. An instance that cannot renew (the lease expired or was taken) cancels its job.
//!
//! Standbys try the lease every [`LEASE_POLL`], so a job whose instance died runs again at most
//! `LEASE_TTL + LEASE_POLL` after the holder's last renewal: inside the heartbeat TTL
//! ([`crate::members::MEMBER_TTL`]), before the dead instance even drops out of `ferry-members`.

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

/// Lifetime of a lease that is not renewed (the `ferry-locks` bucket's max age).
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the holder renews its lease: three tries before it expires.
pub const LEASE_RENEW: Duration = Duration::from_secs(3);
/// How often a standby tries to take a lease held by another instance.
pub const LEASE_POLL: Duration = Duration::from_secs(1);

const _: () = assert!(
    LEASE_TTL.as_secs() + LEASE_POLL.as_secs() < crate::members::MEMBER_TTL.as_secs(),
    "a standby must take a dead instance's job over within the heartbeat TTL"
);

/// Who runs jobs here: the buckets and this instance's name.
#[derive(Clone)]
pub struct Worker {
    pub tasks: kv::Store,
    pub locks: kv::Store,
    pub instance: String,
    /// This instance's region.
    pub region: String,
    pub role: Role,
    /// Tasks whose job runs here (reported in the instance's heartbeat).
    pub running: crate::members::RunningJobs,
}

/// Runs `start(assignment, cancel)` for every running assignment of the worker's role until
/// `shutdown`, holding the task's lease while the job runs.
pub async fn supervise<F, Fut>(worker: Worker, shutdown: CancellationToken, start: F)
where
    F: Fn(Assignment, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tasks = worker.tasks.clone();
    let role = worker.role;
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
                    apply_entry(&worker, &mut jobs, entry, &start).await;
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

async fn apply_entry<F, Fut>(
    worker: &Worker,
    jobs: &mut HashMap<String, RunningJob>,
    entry: kv::Entry,
    start: &F,
) where
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
    let here = |a: &Assignment| a.region.as_ref().is_none_or(|r| *r == worker.region);
    let Some(a) = assignment.filter(|a| a.desired == DesiredState::Running && here(a)) else {
        let task = entry.key.split('.').nth(1).unwrap_or_default().to_owned();
        stop_job(jobs, &task).await;
        return;
    };
    if jobs.get(&a.task).is_some_and(|j| j.epoch == a.epoch) {
        return;
    }
    stop_job(jobs, &a.task).await;
    let cancel = CancellationToken::new();
    let task = a.task.clone();
    let epoch = a.epoch;
    let job = start(a, cancel.clone());
    let handle = tokio::spawn(run_leased(worker.clone(), task.clone(), cancel.clone(), job));
    jobs.insert(task, RunningJob { epoch, cancel, handle });
}

/// Waits for the task's lease, runs the job while renewing it, and releases it at the end.
async fn run_leased<Fut: Future<Output = ()> + Send + 'static>(
    worker: Worker,
    task: String,
    cancel: CancellationToken,
    job: Fut,
) {
    let key = names::lease_key(&task, worker.role.as_str());
    let mut waited = false;
    let mut revision = loop {
        match acquire(&worker, &key).await {
            Some(rev) => break rev,
            None => {
                if !waited {
                    tracing::info!(
                        task,
                        instance = worker.instance,
                        "another instance holds the job's lease; standing by"
                    );
                    waited = true;
                }
                tokio::select! { _ = tokio::time::sleep(LEASE_POLL) => {}, _ = cancel.cancelled() => return }
            }
        }
    };
    tracing::info!(task, instance = worker.instance, "starting job");
    worker.running.insert(&task);
    let mut job = std::pin::pin!(job);
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + LEASE_RENEW, LEASE_RENEW);
    loop {
        tokio::select! {
            _ = &mut job => break,
            _ = renew.tick() => {
                match worker.locks.update(&key, worker.instance.clone().into(), revision).await {
                    Ok(rev) => revision = rev,
                    Err(e) => {
                        tracing::warn!(task, instance = worker.instance, "lost the job's lease ({e}); stopping the job");
                        cancel.cancel();
                        job.await;
                        worker.running.remove(&task);
                        return;
                    }
                }
            }
        }
    }
    worker.running.remove(&task);
    if let Err(e) = worker.locks.delete_expect_revision(&key, Some(revision)).await {
        tracing::debug!(task, "lease not released ({e}); it expires by itself");
    }
}

/// Takes the lease if it is free or already this instance's; its revision if taken.
async fn acquire(worker: &Worker, key: &str) -> Option<u64> {
    match worker.locks.create(key, worker.instance.clone().into()).await {
        Ok(rev) => Some(rev),
        Err(_) => {
            let entry = worker.locks.entry(key).await.ok().flatten()?;
            let mine =
                entry.operation == kv::Operation::Put && entry.value.as_ref() == worker.instance.as_bytes();
            if mine {
                worker.locks.update(key, worker.instance.clone().into(), entry.revision).await.ok()
            } else {
                None
            }
        }
    }
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
