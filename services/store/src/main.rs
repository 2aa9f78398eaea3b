use clap::Parser;
use ferry_kit::args::CommonArgs;

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
    ferry_kit::runtime::run_service(ferry_store::COMPONENT, args.common, ferry_store::run).await?;
    Ok(())
}
