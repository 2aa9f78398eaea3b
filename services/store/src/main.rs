use clap::Parser;
use ferry_kit::args::CommonArgs;
use ferry_kit::runtime::Runtime;

/// Ferry store: binlog capture.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ferry_kit::telemetry::init(ferry_store::COMPONENT);
    let shutdown = ferry_kit::shutdown::on_signals();
    let rt = Runtime::connect(ferry_store::COMPONENT, &args.common, &shutdown).await?;
    rt.serve_http(args.common.http_addr, axum::Router::new(), shutdown.clone()).await?;
    ferry_store::run(rt, shutdown).await;
    Ok(())
}
