//! The store service (binlog capture). This version does not implement its work yet: it connects to
//! NATS, serves /healthz, /readyz and /metrics, and waits, so deployments and health checks can
//! be set up ahead of it. It takes no assignments and writes nothing.

use ferry_kit::runtime::Runtime;
use tokio_util::sync::CancellationToken;

pub const COMPONENT: &str = "store";

pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    rt.ready.set(true);
    tracing::info!("the {COMPONENT} service has no work in this version of Ferry; serving health only");
    shutdown.cancelled().await;
}
