use clap::Parser;
use ferry_kit::args::CommonArgs;

/// Ferry checker: verification and correction SQL.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ferry_kit::runtime::run_service(ferry_checker::COMPONENT, args.common, ferry_checker::run).await?;
    Ok(())
}
