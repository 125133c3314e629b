//! Building and running the Temporal worker (shared by the binary and the tests).

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use temporalio_client::{Client, Connection, ConnectionOptions};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

use carapulse_core::audit::AuditWriter;
use carapulse_core::config::Config;
use carapulse_core::store::Store;

use crate::activities::Activities;
use crate::router_client::RouterClient;
use crate::workflow::PlanExecutionWorkflow;

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("temporal: {0}")]
    Temporal(String),
    #[error("tool router client: {0}")]
    Router(String),
}

/// Connects to Temporal at `orchestrator.temporal_addr`.
pub async fn connect(config: &Config) -> Result<Client, WorkerError> {
    let address = config
        .orchestrator
        .temporal_addr
        .clone()
        .ok_or(WorkerError::Missing("orchestrator.temporal_addr"))?;
    let url = if address.contains("://") {
        address.clone()
    } else {
        format!("http://{address}")
    };
    let url =
        url::Url::from_str(&url).map_err(|e| WorkerError::Temporal(format!("{address}: {e}")))?;
    let connection = Connection::connect(ConnectionOptions::new(url).build())
        .await
        .map_err(|e| WorkerError::Temporal(format!("connecting to {address}: {e}")))?;
    Client::new(
        connection,
        crate::telemetry::client_options(config.orchestrator.namespace.clone()),
    )
    .map_err(|e| WorkerError::Temporal(e.to_string()))
}

/// Runs the worker until `stop` completes, then shuts down gracefully. The future is `!Send`
/// (a Temporal SDK property): drive it from the main task or a dedicated thread.
pub async fn run(
    config: &Config,
    store: Store,
    stop: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let router_base = config
        .tool_router
        .base_url
        .clone()
        .ok_or(WorkerError::Missing("tool_router.base_url"))?;
    let router = RouterClient::new(
        &router_base,
        config.tool_router.auth_token.clone(),
        Duration::from_secs(15 * 60),
    )
    .map_err(|e| WorkerError::Router(e.to_string()))?;
    let grants = config
        .tool_router
        .grant_key
        .as_deref()
        .map(|key| crate::grants::GrantMinter::new(key, config.tool_router.grant_ttl_secs));
    if grants.is_none() {
        tracing::warn!(
            "tool_router.grant_key is not set: steps that write or read secrets will be refused by the tool router"
        );
    }
    let activities = Activities {
        store: store.clone(),
        audit: AuditWriter::spawn(store),
        router,
        grants,
    };
    let client = connect(config).await?;
    let runtime = Runtime::from_current_tokio(Default::default())
        .map_err(|e| WorkerError::Temporal(e.to_string()))?;
    let options = WorkerOptions::new(config.orchestrator.task_queue.clone())
        .register_workflow::<PlanExecutionWorkflow>()
        .map_err(|e| WorkerError::Temporal(e.to_string()))?
        .register_activities(activities)
        .graceful_shutdown_period(Duration::from_secs(10))
        .build();
    let mut worker =
        Worker::new(&runtime, client, options).map_err(|e| WorkerError::Temporal(e.to_string()))?;
    let handle = worker.shutdown_handle();
    let stopper = async move {
        stop.await;
        tracing::info!("orchestrator: shutting the worker down");
        handle();
    };
    tracing::info!(task_queue = %config.orchestrator.task_queue, "orchestrator worker running");
    let (result, ()) = tokio::join!(worker.run(), stopper);
    result.map_err(|e| WorkerError::Temporal(e.to_string()))
}
