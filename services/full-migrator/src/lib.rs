//! The full-migrator: structure migration and full copy of a task's source tables into the
//! task's FULL stream (OMS DBCat + Full-Import). See `copy` for the resume protocol.

pub mod copy;
pub mod ddl;
pub mod error;
pub mod job;
pub mod plan;
pub mod structure;

use ferry_kit::runtime::Runtime;
use ferry_schemas::control::Role;
use tokio_util::sync::CancellationToken;

pub const COMPONENT: &str = "full-migrator";

/// Runs every full-migrator assignment until `shutdown`.
pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    rt.ready.set(true);
    let worker = rt.worker(Role::FullMigrator);
    ferry_kit::jobs::supervise(worker, shutdown, move |assignment, cancel| {
        job::run(rt.clone(), assignment, cancel)
    })
    .await;
}
