//! The store service: binlog capture into each task's CDC stream (OMS Store). See `capture`
//! for the protocol, `binlog` for decoding, `schema_history` and `history_log` for the schema
//! versions rows are decoded with.

pub mod assemble;
pub mod binlog;
pub mod capture;
pub mod ddl;
pub mod error;
pub mod history_log;
pub mod schema_history;
pub mod start_point;
pub mod written_schema;

use ferry_kit::runtime::Runtime;
use ferry_schemas::control::Role;
use tokio_util::sync::CancellationToken;

pub const COMPONENT: &str = "store";

/// Runs every store assignment until `shutdown`.
pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    rt.ready.set(true);
    let worker = rt.worker(Role::Store);
    ferry_kit::jobs::supervise(worker, shutdown, move |assignment, cancel| {
        capture::run(rt.clone(), assignment, cancel)
    })
    .await;
}
