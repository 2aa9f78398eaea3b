use clap::Parser;
use ferry_kit::args::CommonArgs;

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
    ferry_kit::runtime::run_service(ferry_dispatcher::COMPONENT, args.common, ferry_dispatcher::run).await?;
    Ok(())
}
