use clap::Parser;
use ferry_kit::args::CommonArgs;
use ferry_kit::runtime::Runtime;

/// Ferry scheduler: task lifecycle, precheck, phases, REST API.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Address of the REST API (also serves /healthz, /readyz, /metrics).
    #[arg(long, env = "FERRY_API_ADDR", default_value = "127.0.0.1:8480")]
    api_addr: std::net::SocketAddr,
    /// Require this bearer token on the API.
    #[arg(long, env = "FERRY_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.common.tokio_runtime()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let _telemetry = ferry_kit::telemetry::init(ferry_scheduler::COMPONENT);
    if args.common.region != args.common.default_region() {
        anyhow::bail!(
            "the scheduler runs in the default region (its buckets and events stream are there): FERRY_REGION is `{}` but FERRY_DEFAULT_REGION is `{}`; start it against the default region's NATS server with FERRY_REGION={}",
            args.common.region,
            args.common.default_region(),
            args.common.default_region()
        );
    }
    let shutdown = ferry_kit::shutdown::on_signals();
    let rt = Runtime::connect(ferry_scheduler::COMPONENT, &args.common, &shutdown).await?;
    let config = ferry_scheduler::Config { api_token: args.api_token };
    let (addr, driver) = ferry_scheduler::start(rt, config, args.api_addr, shutdown).await?;
    tracing::info!("REST API on http://{addr}/api/v1/tasks");
    driver.await?;
    Ok(())
}
