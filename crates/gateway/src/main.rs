//! `gateway`: the Carapulse API server.

use std::process::ExitCode;

use clap::Parser;

use carapulse_core::cli::ConfigArgs;
use carapulse_core::config::Component;
use carapulse_core::store::Store;
use gateway::Application;

/// Carapulse API gateway: REST API, authentication, policy and audit.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Apply database migrations and exit.
    #[arg(long)]
    migrate_only: bool,
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
            tracing::error!(error = %format!("{err:#}"), "gateway failed");
            eprintln!("gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load(Component::Gateway)?;
    // Flushes queued spans when run() returns.
    let _telemetry = carapulse_core::telemetry::init_with("gateway", &config.telemetry)?;
    if args.migrate_only {
        let store = Store::connect_lazy(&config.storage)?;
        store.migrate().await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    let app = Application::build(config).await?;
    let token = app.shutdown_token();
    tokio::spawn(async move {
        carapulse_core::cli::shutdown_signal().await;
        token.cancel();
    });
    app.run_until_stopped().await?;
    Ok(())
}
