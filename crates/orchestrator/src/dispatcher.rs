//! How the gateway hands executions to Temporal: workflow id = execution id, so a duplicate start
//! is refused by Temporal too.

use std::str::FromStr;
use std::sync::Arc;

use futures::future::BoxFuture;
use temporalio_client::{
    Client, Connection, ConnectionOptions, WorkflowSignalOptions, WorkflowStartOptions,
};
use tokio::sync::Mutex;
use url::Url;

use carapulse_core::config::OrchestratorConfig;
use carapulse_core::dispatch::{
    DispatchError, DispatchOutcome, DispatchRequest, ExecutionDispatcher,
};

use crate::model::PlanRun;
use crate::workflow::PlanExecutionWorkflow;

/// Starts plan workflows; connects on first use and reconnects after failures.
pub struct TemporalDispatcher {
    address: String,
    namespace: String,
    task_queue: String,
    decision_timeout_secs: u64,
    client: Mutex<Option<Arc<Client>>>,
}

impl TemporalDispatcher {
    pub fn new(cfg: &OrchestratorConfig) -> Option<Self> {
        let address = cfg.temporal_addr.clone()?;
        Some(Self {
            address,
            namespace: cfg.namespace.clone(),
            task_queue: cfg.task_queue.clone(),
            decision_timeout_secs: cfg.decision_timeout_secs.max(1),
            client: Mutex::new(None),
        })
    }

    /// A connected client (cached).
    pub async fn client(&self) -> Result<Arc<Client>, DispatchError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let url = if self.address.contains("://") {
            self.address.clone()
        } else {
            format!("http://{}", self.address)
        };
        let url = Url::from_str(&url)
            .map_err(|e| DispatchError::Rejected(format!("orchestrator.temporal_addr: {e}")))?;
        let connection = Connection::connect(ConnectionOptions::new(url).build())
            .await
            .map_err(|e| DispatchError::Unavailable(e.to_string()))?;
        let client = Client::new(
            connection,
            crate::telemetry::client_options(self.namespace.clone()),
        )
        .map_err(|e| DispatchError::Unavailable(e.to_string()))?;
        let client = Arc::new(client);
        *guard = Some(client.clone());
        Ok(client)
    }

    async fn forget_client(&self) {
        *self.client.lock().await = None;
    }
}

impl ExecutionDispatcher for TemporalDispatcher {
    fn name(&self) -> &'static str {
        "temporal"
    }

    fn dispatch(
        &self,
        request: DispatchRequest,
    ) -> BoxFuture<'_, Result<DispatchOutcome, DispatchError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let workflow_id = request.execution_id.to_string();
            let input = PlanRun {
                execution_id: workflow_id.clone(),
                tenant_id: request.tenant_id.to_string(),
                plan_id: request.plan_id.to_string(),
                approval_required: request.await_approval_secs.is_some(),
                approval_timeout_secs: request.await_approval_secs.unwrap_or(24 * 3600).max(1),
                decision_timeout_secs: self.decision_timeout_secs,
            };
            let options =
                WorkflowStartOptions::new(self.task_queue.clone(), workflow_id.clone()).build();
            match client
                .start_workflow(PlanExecutionWorkflow::run, input, options)
                .await
            {
                Ok(_) => Ok(DispatchOutcome::Started { workflow_id }),
                Err(err) => {
                    let text = err.to_string();
                    if text.contains("already started") || text.contains("AlreadyStarted") {
                        return Ok(DispatchOutcome::Started { workflow_id });
                    }
                    self.forget_client().await;
                    Err(DispatchError::Unavailable(text))
                }
            }
        })
    }

    fn cancel(
        &self,
        workflow_id: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let handle = client.get_workflow_handle::<PlanExecutionWorkflow>(workflow_id);
            match handle
                .signal(
                    PlanExecutionWorkflow::cancel,
                    reason,
                    WorkflowSignalOptions::default(),
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(err) => {
                    self.forget_client().await;
                    Err(DispatchError::Unavailable(err.to_string()))
                }
            }
        })
    }

    fn supports_approval_wait(&self) -> bool {
        true
    }

    fn signal_approval(
        &self,
        workflow_id: String,
        approved: bool,
        approver: String,
        note: Option<String>,
    ) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let handle = client.get_workflow_handle::<PlanExecutionWorkflow>(workflow_id);
            let signal = crate::model::ApprovalSignal {
                approved,
                approver,
                note,
            };
            match handle
                .signal(
                    PlanExecutionWorkflow::approval,
                    signal,
                    WorkflowSignalOptions::default(),
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(err) => {
                    self.forget_client().await;
                    Err(DispatchError::Unavailable(err.to_string()))
                }
            }
        })
    }
}
