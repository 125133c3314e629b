//! `orchestrator`: the Temporal worker that runs plan-execute-verify workflows.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use carapulse_core::cli::ConfigArgs;
use carapulse_core::config::{parse_listen_addr, Component, Config};
use carapulse_core::store::Store;
use clap::Parser;

/// Carapulse orchestrator: the Temporal worker for plan workflows.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    carapulse_core::cli::library_backtraces_off();
    let args = Args::parse_from(carapulse_core::cli::args_accepting_go_config());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("orchestrator: runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "orchestrator failed");
            eprintln!("orchestrator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load(Component::Orchestrator)?;
    // Inside the runtime: the OTLP exporter's channel needs it. Flushes when run() returns.
    let _telemetry = orchestrator::telemetry::init("orchestrator", &config.telemetry)?;
    let store = Store::connect_lazy(&config.storage)?;
    store.ping().await.context("postgres")?;
    if let Some(addr) = &config.orchestrator.health_addr {
        spawn_health(&config, addr, store.clone()).await?;
    }
    orchestrator::worker::run(&config, store, carapulse_core::cli::shutdown_signal()).await?;
    tracing::info!("orchestrator stopped");
    Ok(())
}

async fn spawn_health(config: &Config, addr: &str, store: Store) -> anyhow::Result<()> {
    use axum::routing::get;
    let listen = parse_listen_addr("orchestrator.health_addr", addr)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let store = Arc::new(store);
    let temporal = config
        .orchestrator
        .temporal_addr
        .clone()
        .unwrap_or_default()
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_owned();
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let store = store.clone();
                let temporal = temporal.clone();
                async move {
                    let postgres = match store.ping().await {
                        Ok(()) => "ok".to_owned(),
                        Err(e) => format!("error: {e}"),
                    };
                    let reach = tokio::time::timeout(
                        std::time::Duration::from_secs(2),
                        tokio::net::TcpStream::connect(temporal.clone()),
                    )
                    .await;
                    let temporal = match reach {
                        Ok(Ok(_)) => "ok".to_owned(),
                        Ok(Err(e)) => format!("error: {e}"),
                        Err(_) => "error: timed out".to_owned(),
                    };
                    let ready = postgres == "ok" && temporal == "ok";
                    let status = if ready {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    };
                    (
                        status,
                        axum::Json(serde_json::json!({
                            "status": if ready { "ready" } else { "not_ready" },
                            "checks": {"postgres": postgres, "temporal": temporal},
                        })),
                    )
                }
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    orchestrator::metrics::metrics().encode(),
                )
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}
