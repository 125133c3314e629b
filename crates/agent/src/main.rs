//! `agent`: the Carapulse Slack ChatOps bridge.

use std::process::ExitCode;

use clap::Parser;

use agent::Application;
use carapulse_core::cli::{shutdown_signal, ConfigArgs};
use carapulse_core::config::Component;

/// Carapulse agent: Slack slash commands and approval buttons.
#[derive(Debug, Parser)]
#[command(name = "agent", version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    carapulse_core::cli::library_backtraces_off();
    main_async()
}

#[tokio::main]
async fn main_async() -> ExitCode {
    let args = Args::parse_from(carapulse_core::cli::args_accepting_go_config());
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "agent failed");
            eprintln!("agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load(Component::Agent)?;
    // Flushes queued spans when run() returns.
    let _telemetry = carapulse_core::telemetry::init_with("agent", &config.telemetry)?;
    let app = Application::build(config).await?;
    let token = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    app.run_until_stopped().await?;
    Ok(())
}
