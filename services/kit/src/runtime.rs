//! The start-up every service shares: telemetry, signals, NATS, buckets, metrics, health.

use crate::args::CommonArgs;
use crate::http::{self, Readiness};
use crate::members::RunningJobs;
use crate::metrics::Metrics;
use crate::nats::{Buckets, Nats};
use crate::secret::SecretBox;
use crate::KitError;
use axum::Router;
use ferry_schemas::control::Member;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Runtime {
    pub service: String,
    pub instance: String,
    pub nats: Nats,
    pub buckets: Buckets,
    pub metrics: Arc<Metrics>,
    pub secrets: SecretBox,
    pub ready: Readiness,
    /// Tasks whose job runs here, reported in this instance's heartbeat.
    pub jobs: RunningJobs,
}

impl Runtime {
    /// Connects to NATS (retrying until `shutdown`) and provisions the shared buckets.
    pub async fn connect(
        service: &str,
        args: &CommonArgs,
        shutdown: &CancellationToken,
    ) -> Result<Self, KitError> {
        let instance = args.instance_name(service);
        let nats =
            Nats::connect(&args.nats_url, &instance, &args.region, args.default_region(), shutdown).await?;
        let buckets = nats.buckets().await?;
        let metrics = Metrics::new();
        metrics.spawn_rate_updater(Duration::from_secs(5));
        let jobs = RunningJobs::default();
        let now = chrono::Utc::now();
        let member = Member {
            instance: instance.clone(),
            service: service.to_owned(),
            region: args.region.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: now,
            heartbeat_at: now,
            jobs: Vec::new(),
        };
        crate::members::spawn_heartbeat(buckets.members.clone(), member, jobs.clone(), shutdown.clone());
        Ok(Self {
            service: service.to_owned(),
            instance,
            nats,
            buckets,
            metrics,
            secrets: SecretBox::from_env(),
            ready: Readiness::default(),
            jobs,
        })
    }

    /// The identity under which this instance runs jobs of `role`.
    pub fn worker(&self, role: ferry_schemas::control::Role) -> crate::jobs::Worker {
        crate::jobs::Worker {
            tasks: self.buckets.tasks.clone(),
            locks: self.buckets.locks.clone(),
            instance: self.instance.clone(),
            region: self.nats.region.clone(),
            role,
            running: self.jobs.clone(),
        }
    }

    /// Serves health, metrics and `extra` routes on `addr`.
    pub async fn serve_http(
        &self,
        addr: SocketAddr,
        extra: Router,
        shutdown: CancellationToken,
    ) -> Result<SocketAddr, KitError> {
        let router = http::health_routes(self.metrics.clone(), self.ready.clone()).merge(extra);
        http::serve(addr, router, shutdown).await
    }
}

/// The whole life of a worker service: telemetry, signals, NATS, health server, then `run`
/// until shutdown.
pub async fn run_service<F, Fut>(service: &str, args: CommonArgs, run: F) -> Result<(), KitError>
where
    F: FnOnce(Runtime, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _telemetry = crate::telemetry::init(service);
    let shutdown = crate::shutdown::on_signals();
    let rt = Runtime::connect(service, &args, &shutdown).await?;
    rt.serve_http(args.http_addr, Router::new(), shutdown.clone()).await?;
    run(rt, shutdown).await;
    Ok(())
}

/// The `main` of a worker service: `ferry_kit::worker_main!(ferry_sink, "Ferry sink: ...");`
/// parses the common flags and runs the crate's `run` through [`run_service`].
#[macro_export]
macro_rules! worker_main {
    ($krate:ident, $about:literal) => {
        #[derive(clap::Parser)]
        #[command(version, about = $about)]
        struct Args {
            #[command(flatten)]
            common: $crate::args::CommonArgs,
        }

        fn main() -> anyhow::Result<()> {
            let args = <Args as clap::Parser>::parse();
            args.common.tokio_runtime()?.block_on(async move {
                $crate::runtime::run_service($krate::COMPONENT, args.common, $krate::run).await
            })?;
            Ok(())
        }
    };
}
