//! Workflow and activity payloads. They are stored in Temporal history: add fields only as
//! optional with defaults.

use serde::{Deserialize, Serialize};

use carapulse_core::model::{ContextRef, PlanStep};
use carapulse_core::pev::{Outcome, StepCall};

/// Input of the plan workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanRun {
    pub execution_id: String,
    pub tenant_id: String,
    pub plan_id: String,
    /// Wait for an `approval` signal before acting.
    #[serde(default)]
    pub approval_required: bool,
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_secs: u64,
}

fn default_approval_timeout() -> u64 {
    24 * 3600
}

/// What the first activity returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanSnapshot {
    pub steps: Vec<PlanStep>,
    pub context: ContextRef,
}

/// One step to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRequest {
    pub execution_id: String,
    pub tenant_id: String,
    pub context: ContextRef,
    pub call: StepCall,
}

/// The `approval` signal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalSignal {
    pub approved: bool,
    pub approver: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// The final write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishRequest {
    pub execution_id: String,
    pub tenant_id: String,
    pub outcome: Outcome,
}

/// What the workflow returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub status: String,
    pub reason: Option<String>,
    pub rollback_failed: bool,
}
