use clap::Parser;
use ferry_kit::args::CommonArgs;

/// Ferry full-migrator: structure migration and full copy into JetStream.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ferry_kit::runtime::run_service(ferry_full_migrator::COMPONENT, args.common, ferry_full_migrator::run)
        .await?;
    Ok(())
}
