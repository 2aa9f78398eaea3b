//! The scheduler: task lifecycle, precheck, phase driving and the REST API.

pub mod api;
pub mod cleanup;
pub mod driver;
pub mod events;
pub mod placement;
pub mod precheck;
pub mod report;
pub mod store;
pub mod verification;
pub mod view;

use ferry_kit::runtime::Runtime;
use std::net::SocketAddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use store::COMPONENT;

#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Bearer token the API requires, if any.
    pub api_token: Option<String>,
}

/// Serves the API on `addr` and drives tasks until `shutdown`. Returns the bound address and
/// the driver's handle.
pub async fn start(
    rt: Runtime,
    config: Config,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), ferry_kit::KitError> {
    let state = api::ApiState { rt: rt.clone(), store: store::Store::new(&rt), token: config.api_token };
    let bound = rt.serve_http(addr, api::router(state), shutdown.clone()).await?;
    rt.ready.set(true);
    let driver = driver::Driver::new(rt);
    let handle = tokio::spawn(driver.run(shutdown));
    Ok((bound, handle))
}
