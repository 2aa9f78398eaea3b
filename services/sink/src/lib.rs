//! The sink: the only writer to the target. Applies a task's FULL stream (structure and row
//! chunks) exactly once, with its checkpoint in the target (see `full` and `checkpoint`).

pub mod checkpoint;
pub mod error;
pub mod full;
pub mod incremental;
pub mod job;
pub mod progress;
pub mod target;

use ferry_kit::runtime::Runtime;
use ferry_schemas::control::Role;
use tokio_util::sync::CancellationToken;

pub const COMPONENT: &str = "sink";

/// Runs every sink assignment until `shutdown`.
pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    rt.ready.set(true);
    let worker = rt.worker(Role::Sink);
    ferry_kit::jobs::supervise(worker, shutdown, move |assignment, cancel| {
        job::run(rt.clone(), assignment, cancel)
    })
    .await;
}
