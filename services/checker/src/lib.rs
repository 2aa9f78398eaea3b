//! The checker: full and live verification of a task's tables, diff reports and correction
//! SQL (OMS Full-Verification, sync-diff-inspector, DM's validator). See `verify` for how
//! tables are compared, `job` for the restart protocol, `correct` for corrections.

pub mod correct;
pub mod diff;
pub mod error;
pub mod job;
pub mod live;
pub mod pair;
pub mod sql;
pub mod verify;
pub mod watch;

use ferry_kit::runtime::Runtime;
use ferry_schemas::control::Role;
use tokio_util::sync::CancellationToken;

pub const COMPONENT: &str = "checker";

/// Runs every checker assignment until `shutdown`.
pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    rt.ready.set(true);
    let worker = rt.worker(Role::Checker);
    ferry_kit::jobs::supervise(worker, shutdown, move |assignment, cancel| {
        job::run(rt.clone(), assignment, cancel)
    })
    .await;
}
