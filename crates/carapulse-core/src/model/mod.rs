//! The domain model shared by every Carapulse component.
//!
//! Values that come from outside (API bodies, config, LLM output) are parsed into these types at
//! the edge, so code past the edge can rely on them: a [`TenantId`] is well-formed, an
//! [`ActionName`] never starts with `-`, a [`RiskLevel`] is one of four tiers. This module depends
//! on nothing else in the crate.

mod actor;
mod approval;
mod context_ref;
mod error;
mod execution;
mod ids;
mod plan;
mod risk;
mod tool;

pub use actor::{Actor, ActorId, Role};
pub use approval::{Approval, ApprovalSource, ApprovalStatus};
pub use context_ref::{is_dns1123_label, ContextRef, Environment};
pub use error::ModelError;
pub use execution::{Evidence, Execution, ExecutionStatus, ToolCall, ToolCallStatus};
pub use ids::{
    ApprovalId, AuditEventId, EvidenceId, ExecutionId, PlanId, StepId, TenantId, ToolCallId,
};
pub use plan::{
    approvals_required_by, check_step_references, EvidenceRequirement, Intent, Plan,
    PlanApprovalState, PlanStep, RollbackSpec, Stage, StepDraft, Summary, Trigger, MAX_APPROVERS,
    MAX_STEPS,
};
pub use risk::{BlastRadius, Decision, RiskLevel, Tier};
pub use tool::{ActionName, ToolName};
