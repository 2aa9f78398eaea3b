//! The dispatcher service: reads a task's CDC stream, applies its filters and renames, and
//! partitions transactions over the APPLY stream by key causality (OMS Incr-Sync, front half).
//! See `job` for the resume protocol and `route` for causality.

pub mod batch;
pub mod job;
pub mod raw;
pub mod route;

use ferry_kit::runtime::Runtime;
use ferry_schemas::control::Role;
use tokio_util::sync::CancellationToken;

pub const COMPONENT: &str = "dispatcher";

/// Runs every dispatcher assignment until `shutdown`.
pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    rt.ready.set(true);
    let worker = rt.worker(Role::Dispatcher);
    ferry_kit::jobs::supervise(worker, shutdown, move |assignment, cancel| {
        job::run(rt.clone(), assignment, cancel)
    })
    .await;
}
