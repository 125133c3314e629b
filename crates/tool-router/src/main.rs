//! `tool-router`: typed tool RPC over HTTP.

use std::process::ExitCode;

use clap::Parser;

use carapulse_core::cli::ConfigArgs;
use carapulse_core::config::Component;
use tool_router::Application;

/// Carapulse tool router: validates, authorises and runs tool actions through the sandbox.
#[derive(Debug, Parser)]
#[command(name = "tool-router", version, about)]
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
            tracing::error!(error = %format!("{err:#}"), "tool-router failed");
            eprintln!("tool-router: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load(Component::ToolRouter)?;
    // Flushes queued spans when run() returns.
    let _telemetry = carapulse_core::telemetry::init_with("tool-router", &config.telemetry)?;
    let app = Application::build(config).await?;
    let token = app.shutdown_token();
    tokio::spawn(async move {
        carapulse_core::cli::shutdown_signal().await;
        token.cancel();
    });
    app.run_until_stopped().await?;
    Ok(())
}
