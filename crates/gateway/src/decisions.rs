//! Answering an inconclusive analysis: a person tells a running execution to `continue` (accept
//! what could not be measured) or `rollback`.
//!
//! Why a service module: the API route, the CLI (through the API) and chat integrations take
//! the same decision with the same rules — who may answer, which executions can be answered, the
//! audit event — so the rules live here and handlers only translate HTTP.

use serde::Deserialize;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{ExecutionId, ModelError};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::state::AppState;

/// What the person decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Accept the inconclusive analysis and finish the run.
    Continue,
    /// Roll the run back.
    Rollback,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Rollback => "rollback",
        }
    }
}

/// Most characters in a decision note.
pub const MAX_NOTE_CHARS: usize = 500;

/// Delivers `decision` to execution `id` of the caller's tenant.
///
/// `continue` accepts risk, so it needs an approver role (like approving a plan); `rollback`
/// only undoes, so writers may ask for it too. The execution must be waiting for exactly this
/// answer (409 otherwise). Every attempt on a visible execution is audited, refused ones
/// included.
pub async fn decide(
    state: &AppState,
    ctx: &RequestContext,
    id: ExecutionId,
    decision: DecisionKind,
    note: Option<String>,
) -> Result<i32, ApiError> {
    if let Some(n) = &note {
        if n.chars().count() > MAX_NOTE_CHARS {
            return Err(ModelError::new("note", "at most 500 characters").into());
        }
    }
    let gateway = &state.config.gateway;
    let allowed = match decision {
        DecisionKind::Continue => ctx.actor.has_any_role(&gateway.approver_roles),
        DecisionKind::Rollback => {
            ctx.actor.has_any_role(&gateway.approver_roles)
                || ctx.actor.has_any_role(&gateway.writer_roles)
        }
    };
    let audit = |d: AuditDecision| {
        ctx.audit("execution.decision", d)
            .resource("execution", id)
            .context(serde_json::json!({"decision": decision.as_str(), "note": note}))
    };
    if !allowed {
        state
            .audit(audit(AuditDecision::Deny).reason("actor lacks the role for this decision"))
            .await;
        return Err(ApiError::forbidden(
            "forbidden",
            match decision {
                DecisionKind::Continue => {
                    "continuing past an inconclusive analysis needs an approver role"
                }
                DecisionKind::Rollback => "asking for a rollback needs a writer or approver role",
            },
        ));
    }
    let execution = state
        .store
        .get_execution(ctx.tenant(), id)
        .await
        .map_err(crate::routes::execution_not_found)?;
    crate::routes::require_execution_visible(state, ctx, execution.plan_id).await?;
    let waiting = state.store.step_awaiting_decision(ctx.tenant(), id).await?;
    let (Some(workflow_id), Some((_, ordinal)), true) = (
        execution.workflow_id.clone(),
        waiting,
        execution.status.is_active(),
    ) else {
        state
            .audit(
                audit(AuditDecision::Deny)
                    .reason("no analysis of the execution waits for a decision"),
            )
            .await;
        return Err(ApiError::conflict(
            "not_awaiting_decision",
            format!(
                "execution is {} and no analysis of it is waiting for a decision",
                execution.status.as_str()
            ),
        ));
    };
    state
        .dispatcher
        .signal_approval(
            workflow_id,
            decision == DecisionKind::Continue,
            ctx.actor.id.to_string(),
            note.clone(),
        )
        .await
        .map_err(|e| {
            let mut err = ApiError::unavailable(format!("could not reach the orchestrator: {e}"));
            err.code = "orchestrator_unavailable";
            err
        })?;
    state.audit(audit(AuditDecision::Allow)).await;
    Ok(ordinal)
}
