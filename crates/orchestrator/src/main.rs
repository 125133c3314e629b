//! `orchestrator`: the Temporal worker that runs plan-execute-verify workflows.

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

use carapulse_core::audit::AuditWriter;
use carapulse_core::cli::ConfigArgs;
use carapulse_core::config::{parse_listen_addr, Component, Config};
use carapulse_core::store::Store;
use orchestrator::activities::Activities;
use orchestrator::router_client::RouterClient;
use orchestrator::workflow::PlanExecutionWorkflow;

/// Carapulse orchestrator: the Temporal worker for plan workflows.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    carapulse_core::telemetry::init("orchestrator");
    let args = Args::parse();
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
    let address = config
        .orchestrator
        .temporal_addr
        .clone()
        .context("orchestrator.temporal_addr is required")?;
    let store = Store::connect_lazy(&config.storage)?;
    store.ping().await.context("postgres")?;
    let router_base = config
        .tool_router
        .base_url
        .clone()
        .context("tool_router.base_url is required: activities call the tool router")?;
    let router = RouterClient::new(
        &router_base,
        config.tool_router.auth_token.clone(),
        Duration::from_secs(15 * 60),
    )?;
    let activities = Activities {
        store: store.clone(),
        audit: AuditWriter::spawn(store.clone()),
        router,
    };

    let url = if address.contains("://") {
        address.clone()
    } else {
        format!("http://{address}")
    };
    let connection = Connection::connect(ConnectionOptions::new(url::Url::from_str(&url)?).build())
        .await
        .with_context(|| format!("connecting to Temporal at {address}"))?;
    let client = Client::new(
        connection,
        ClientOptions::new(config.orchestrator.namespace.clone()).build(),
    )?;
    let temporal_runtime = Runtime::from_current_tokio(Default::default())?;
    let options = WorkerOptions::new(config.orchestrator.task_queue.clone())
        .register_workflow::<PlanExecutionWorkflow>()?
        .register_activities(activities)
        .graceful_shutdown_period(Duration::from_secs(10))
        .build();
    let mut worker = Worker::new(&temporal_runtime, client, options)?;
    let stop = worker.shutdown_handle();
    if let Some(addr) = &config.orchestrator.health_addr {
        spawn_health(&config, addr, store.clone()).await?;
    }
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight tasks");
        stop();
    });
    tracing::info!(task_queue = %config.orchestrator.task_queue, namespace = %config.orchestrator.namespace, "orchestrator worker running");
    worker.run().await?;
    tracing::info!("orchestrator stopped");
    Ok(())
}

async fn spawn_health(config: &Config, addr: &str, store: Store) -> anyhow::Result<()> {
    use axum::routing::get;
    let listen = parse_listen_addr("orchestrator.health_addr", addr)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let store = Arc::new(store);
    let app = axum::Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route(
            "/readyz",
            get(move || {
                let store = store.clone();
                async move {
                    match store.ping().await {
                        Ok(()) => (axum::http::StatusCode::OK, axum::Json(serde_json::json!({"status": "ready"}))),
                        Err(e) => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(serde_json::json!({"status": "not_ready", "postgres": e.to_string()})),
                        ),
                    }
                }
            }),
        );
    let _ = config;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
