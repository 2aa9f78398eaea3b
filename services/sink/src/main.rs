use clap::Parser;
use ferry_kit::args::CommonArgs;
use ferry_kit::runtime::Runtime;

/// Ferry sink: applies the FULL and APPLY streams to the target.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ferry_kit::telemetry::init(ferry_sink::COMPONENT);
    let shutdown = ferry_kit::shutdown::on_signals();
    let rt = Runtime::connect(ferry_sink::COMPONENT, &args.common, &shutdown).await?;
    rt.serve_http(args.common.http_addr, axum::Router::new(), shutdown.clone()).await?;
    ferry_sink::run(rt, shutdown).await;
    Ok(())
}
