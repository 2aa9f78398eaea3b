//! The store service (binlog capture). Its capture loop is not built yet: the service connects
//! to NATS, serves /healthz, /readyz and /metrics, and waits; it takes no assignments and writes
//! nothing. `binlog` holds the decoding it will use (MariaDB GTID events, schema-driven values).

pub mod assemble;
pub mod binlog;
pub mod schema_history;

use ferry_kit::runtime::Runtime;
use tokio_util::sync::CancellationToken;

pub const COMPONENT: &str = "store";

pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    rt.ready.set(true);
    tracing::info!("the {COMPONENT} service has no work in this version of Ferry; serving health only");
    shutdown.cancelled().await;
}
