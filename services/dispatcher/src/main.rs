use clap::Parser;
use ferry_kit::args::CommonArgs;
use ferry_kit::runtime::Runtime;

/// Ferry dispatcher: filtering, routing and causality partitioning of CDC.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ferry_kit::telemetry::init(ferry_dispatcher::COMPONENT);
    let shutdown = ferry_kit::shutdown::on_signals();
    let rt = Runtime::connect(ferry_dispatcher::COMPONENT, &args.common, &shutdown).await?;
    rt.serve_http(args.common.http_addr, axum::Router::new(), shutdown.clone()).await?;
    ferry_dispatcher::run(rt, shutdown).await;
    Ok(())
}
