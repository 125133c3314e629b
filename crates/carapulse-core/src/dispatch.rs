//! The seam between "an execution was created" and "an orchestrator runs it".
//!
//! The gateway creates executions in `pending` and hands them to an [`ExecutionDispatcher`]. The
//! Temporal implementation lives with the orchestrator; [`NoOrchestrator`] is used when none is
//! configured and leaves executions pending (they are not lost: a dispatcher can pick them up).

use futures::future::BoxFuture;

use crate::model::{ExecutionId, PlanId, TenantId};

/// What to run.
#[derive(Debug, Clone)]
pub struct DispatchRequest {
    pub execution_id: ExecutionId,
    pub plan_id: PlanId,
    pub tenant_id: TenantId,
    /// Some: the plan is not approved yet; the run waits this long for the approval signal.
    pub await_approval_secs: Option<u64>,
}

/// What happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    /// A workflow was started with this id.
    Started { workflow_id: String },
    /// Nothing runs it yet; it stays pending.
    Queued { reason: String },
}

/// Why dispatch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DispatchError {
    /// The orchestrator cannot be reached; the execution stays pending for a retry.
    #[error("orchestrator unavailable: {0}")]
    Unavailable(String),
    /// The orchestrator refused the request.
    #[error("orchestrator rejected the execution: {0}")]
    Rejected(String),
}

/// Starts (and cancels) executions on an orchestrator.
pub trait ExecutionDispatcher: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn dispatch(
        &self,
        request: DispatchRequest,
    ) -> BoxFuture<'_, Result<DispatchOutcome, DispatchError>>;
    /// Whether runs can start before approval and wait for [`signal_approval`](Self::signal_approval).
    fn supports_approval_wait(&self) -> bool {
        false
    }
    /// Delivers an approval decision to a run waiting for it.
    fn signal_approval(
        &self,
        workflow_id: String,
        approved: bool,
        approver: String,
        note: Option<String>,
    ) -> BoxFuture<'_, Result<(), DispatchError>> {
        let _ = (workflow_id, approved, approver, note);
        Box::pin(async { Err(DispatchError::Rejected("no orchestrator configured".into())) })
    }
    /// Asks the running workflow `workflow_id` to stop and compensate.
    fn cancel(
        &self,
        workflow_id: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), DispatchError>> {
        let _ = (workflow_id, reason);
        Box::pin(async { Err(DispatchError::Rejected("no orchestrator configured".into())) })
    }
}

/// Used when no orchestrator is configured: executions stay pending.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOrchestrator;

impl ExecutionDispatcher for NoOrchestrator {
    fn name(&self) -> &'static str {
        "none"
    }

    fn dispatch(
        &self,
        request: DispatchRequest,
    ) -> BoxFuture<'_, Result<DispatchOutcome, DispatchError>> {
        Box::pin(async move {
            tracing::warn!(execution_id = %request.execution_id, "no orchestrator configured; execution stays pending");
            Ok(DispatchOutcome::Queued {
                reason: "no orchestrator configured (orchestrator.temporal_addr is unset)".into(),
            })
        })
    }
}
