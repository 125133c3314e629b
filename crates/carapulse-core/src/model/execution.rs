//! Executions of plans, and the tool calls and evidence they record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ActorId, EvidenceId, ExecutionId, ModelError, PlanId, StepId, TenantId, ToolCallId};

/// `pending -> running -> succeeded | failed | rolled_back | cancelled | expired`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    RolledBack,
    Cancelled,
    Expired,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 7] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::RolledBack,
        Self::Cancelled,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// Whether the execution can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| ModelError::new("status", format!("unknown execution status {value:?}")))
    }

    /// Still pending or running: at most one such execution exists per plan.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }

    /// Whether moving from `self` to `next` is a legal transition.
    pub fn can_become(self, next: ExecutionStatus) -> bool {
        match self {
            Self::Pending => next != Self::Pending,
            Self::Running => !matches!(next, Self::Pending | Self::Running),
            _ => false,
        }
    }
}

/// One run of a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    pub execution_id: ExecutionId,
    pub plan_id: PlanId,
    pub tenant_id: TenantId,
    pub status: ExecutionStatus,
    pub created_by: ActorId,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub workflow_id: Option<String>,
    pub error: Option<String>,
    /// Started with break-glass (by a holder of a break-glass role, with a reason).
    #[serde(default)]
    pub break_glass: bool,
    #[serde(default)]
    pub break_glass_reason: Option<String>,
}

/// State of one tool invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl ToolCallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        serde_json::from_value(Value::String(value.to_owned()))
            .map_err(|_| ModelError::new("status", format!("unknown tool call status {value:?}")))
    }
}

/// One tool invocation made by an execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCall {
    pub tool_call_id: ToolCallId,
    pub execution_id: ExecutionId,
    pub step_id: Option<StepId>,
    pub tenant_id: TenantId,
    pub tool_name: String,
    pub action: String,
    pub status: ToolCallStatus,
    pub input_ref: Option<String>,
    pub output_ref: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub attempt: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The concrete input, when capture templates were substituted into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// The tool's parsed JSON result (inline up to 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Where a larger JSON result is kept in the object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_ref: Option<String>,
    /// The call ran a demo CLI (a recording fake from `tool_router.demo_cli_dir`): nothing
    /// outside the machine was changed or read.
    #[serde(default)]
    pub demo: bool,
}

/// An observation recorded after a step (a query result, a rollout status, a trace).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub evidence_id: EvidenceId,
    pub execution_id: ExecutionId,
    pub step_id: Option<StepId>,
    pub tenant_id: TenantId,
    pub kind: String,
    pub query: Option<String>,
    pub result_ref: Option<String>,
    pub summary: Value,
    pub external_ids: Value,
    pub collected_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use ExecutionStatus::*;
        assert!(Pending.can_become(Running));
        assert!(Running.can_become(RolledBack));
        assert!(!Succeeded.can_become(Running));
        assert!(!Running.can_become(Pending));
        assert!(Pending.is_active() && Running.is_active() && !Failed.is_active());
        assert_eq!(ExecutionStatus::parse("rolled_back").unwrap(), RolledBack);
        assert!(ExecutionStatus::parse("done").is_err());
    }
}
