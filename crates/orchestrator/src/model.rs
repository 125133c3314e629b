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
    /// How long an inconclusive analysis waits for `continue` or `rollback` (then rolls back).
    #[serde(default = "default_decision_timeout")]
    pub decision_timeout_secs: u64,
}

fn default_approval_timeout() -> u64 {
    24 * 3600
}

fn default_decision_timeout() -> u64 {
    1800
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
    /// For the step's trace span (absent in histories recorded before traces).
    #[serde(default)]
    pub plan_id: String,
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

/// A person's answer to an inconclusive analysis (or its timeout), recorded by `decided`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub execution_id: String,
    pub tenant_id: String,
    pub step_id: carapulse_core::model::StepId,
    pub ordinal: i32,
    pub decision: carapulse_core::pev::Decision,
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
