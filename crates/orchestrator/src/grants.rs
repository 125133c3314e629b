//! Minting the execution grant a step's tool call carries to the router.
//!
//! Why here and per call: the orchestrator is the only component that both holds the grant key
//! and reads the approved plan from Postgres. Minting right before each call (instead of once per
//! run, or in workflow history) keeps grants short-lived, re-checks on every call that the
//! execution is still running and the plan still hashes to what was approved, and never stores
//! a grant where Temporal operators could replay it.

use chrono::{Duration, Utc};

use carapulse_core::grant::{mint, plan_call_digests, GrantClaims};
use carapulse_core::integrity::plan_hash;
use carapulse_core::model::{
    ExecutionId, ExecutionStatus, PlanApprovalState, TenantId, ToolCallId,
};
use carapulse_core::store::{Store, StoreError};

/// The key and lifetime grants are minted with.
#[derive(Clone)]
pub struct GrantMinter {
    key: Vec<u8>,
    ttl: Duration,
}

impl std::fmt::Debug for GrantMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantMinter")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Why no grant could be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The execution or its plan is not in a state that may run tools; do not retry.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl GrantMinter {
    pub fn new(key: &str, ttl_secs: u64) -> Self {
        Self {
            key: key.as_bytes().to_vec(),
            ttl: Duration::seconds(i64::try_from(ttl_secs).unwrap_or(1200)),
        }
    }

    /// Mints a grant for `tool_call_id` of `execution_id`, re-reading the execution, its plan
    /// and the plan's approval. `substituted` is `(template digest, concrete digest)` of a call
    /// whose capture templates were filled in: the concrete call is covered only when the
    /// template call is one the approved plan makes.
    pub async fn mint_for_call(
        &self,
        store: &Store,
        tenant: &TenantId,
        execution_id: ExecutionId,
        tool_call_id: ToolCallId,
        substituted: Option<(&str, &str)>,
    ) -> Result<String, MintError> {
        let execution = store.get_execution(tenant, execution_id).await?;
        if execution.status != ExecutionStatus::Running {
            return Err(MintError::Refused(format!(
                "execution is {} and may not run tools",
                execution.status.as_str()
            )));
        }
        let plan = store.get_plan(tenant, execution.plan_id).await?;
        let hash = plan_hash(&plan);
        let approved = match plan.approval_state {
            PlanApprovalState::Approved => {
                if !store.approval_matches(tenant, &plan).await? {
                    return Err(MintError::Refused(
                        "plan modified after approval: its hash no longer matches the approved hash"
                            .into(),
                    ));
                }
                true
            }
            PlanApprovalState::NotRequired => false,
            other => {
                return Err(MintError::Refused(format!(
                    "plan is {} and cannot run",
                    other.as_str()
                )))
            }
        };
        let mut calls = plan_call_digests(&plan);
        if let Some((template, concrete)) = substituted {
            if !calls.iter().any(|c| c == template) {
                return Err(MintError::Refused(
                    "the call's template is not one the approved plan makes".into(),
                ));
            }
            calls.push(concrete.to_owned());
        }
        let claims = GrantClaims {
            v: 1,
            tenant_id: tenant.to_string(),
            execution_id: execution_id.to_string(),
            plan_id: plan.plan_id.to_string(),
            plan_hash: hash,
            tool_call_id: tool_call_id.to_string(),
            calls,
            approved,
            break_glass: execution.break_glass,
            exp: (Utc::now() + self.ttl).timestamp(),
        };
        mint(&claims, &self.key).map_err(|e| MintError::Refused(e.to_string()))
    }
}
