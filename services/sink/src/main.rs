use clap::Parser;
use ferry_kit::args::CommonArgs;

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
    ferry_kit::runtime::run_service(ferry_sink::COMPONENT, args.common, ferry_sink::run).await?;
    Ok(())
}
