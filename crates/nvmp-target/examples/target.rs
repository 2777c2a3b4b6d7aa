//! `cargo run -p nvmp-target --example target -- run --config FILE [--control SOCK]`
//! (and the other `nvmp target` subcommands), for testing without the nvmp binary.

use clap::Parser;
use nvmp_target::cli::{run_command, TargetCommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: TargetCommand,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    run_command(Cli::parse().cmd).await
}
