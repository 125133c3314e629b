//! Plans and their steps: what an operation will do, in order, with rollbacks and evidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::reject_control_chars;
use super::{
    ActionName, ActorId, ContextRef, Decision, ModelError, PlanId, RiskLevel, StepId, TenantId,
    ToolName,
};

/// Largest number of steps a plan may carry.
pub const MAX_STEPS: usize = 100;
/// Largest serialised size of one step's input.
const MAX_STEP_INPUT_BYTES: usize = 64 * 1024;

/// Whether a step changes things (`act`) or checks them (`verify`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    Act,
    Verify,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Act => "act",
            Self::Verify => "verify",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        match value {
            "act" => Ok(Self::Act),
            "verify" => Ok(Self::Verify),
            other => Err(ModelError::new(
                "stage",
                format!("{other:?} is not act or verify"),
            )),
        }
    }
}

/// What caused a plan. Webhook-, alert- and schedule-born plans are never auto-approved.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    #[default]
    Manual,
    Alert,
    Webhook,
    Scheduled,
    Workflow,
    Chatops,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Alert => "alert",
            Self::Webhook => "webhook",
            Self::Scheduled => "scheduled",
            Self::Workflow => "workflow",
            Self::Chatops => "chatops",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        serde_json::from_value(Value::String(value.to_owned())).map_err(|_| {
            ModelError::new(
                "trigger",
                format!(
                    "{value:?} is not one of manual, alert, webhook, scheduled, workflow, chatops"
                ),
            )
        })
    }

    /// Triggers that a human started directly.
    pub fn is_human(self) -> bool {
        matches!(self, Self::Manual | Self::Chatops)
    }
}

/// A one-line plan summary, 1-500 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Summary(String);

impl Summary {
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let v = value.trim();
        if v.is_empty() || v.chars().count() > 500 {
            return Err(ModelError::new("summary", "must be 1-500 characters"));
        }
        reject_control_chars("summary", v)?;
        Ok(Self(v.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Summary {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Summary> for String {
    fn from(value: Summary) -> Self {
        value.0
    }
}

/// The operator's request in words, up to 4000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Intent(String);

impl Intent {
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let v = value.trim();
        if v.chars().count() > 4000 {
            return Err(ModelError::new("intent", "must be at most 4000 characters"));
        }
        reject_control_chars("intent", v)?;
        Ok(Self(v.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<String> for Intent {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Intent> for String {
    fn from(value: Intent) -> Self {
        value.0
    }
}

/// The tool call that undoes a step.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackSpec {
    pub tool: ToolName,
    pub action: ActionName,
    #[serde(default = "empty_object")]
    pub input: Value,
}

/// Evidence a step must produce (a PromQL check, a rollout status, ...).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRequirement {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Value>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A step as submitted (API, planner): parsed and checked by [`StepDraft::validate`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDraft {
    #[serde(default)]
    pub stage: Stage,
    pub tool: ToolName,
    pub action: ActionName,
    #[serde(default = "empty_object")]
    pub input: Value,
    #[serde(default)]
    pub preconditions: Vec<Value>,
    #[serde(default)]
    pub rollback: Option<RollbackSpec>,
    #[serde(default)]
    pub evidence: Vec<EvidenceRequirement>,
}

impl StepDraft {
    /// Structural checks that hold for every tool; per-action schemas are checked by `tools`.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_input("input", &self.input)?;
        if let Some(rb) = &self.rollback {
            check_input("rollback.input", &rb.input)?;
        }
        if self.preconditions.len() > 20 {
            return Err(ModelError::new("preconditions", "at most 20 preconditions"));
        }
        if self.evidence.len() > 20 {
            return Err(ModelError::new(
                "evidence",
                "at most 20 evidence requirements",
            ));
        }
        Ok(())
    }
}

fn check_input(field: &str, input: &Value) -> Result<(), ModelError> {
    if !input.is_object() {
        return Err(ModelError::new(field, "must be a JSON object"));
    }
    let size = serde_json::to_vec(input)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_STEP_INPUT_BYTES {
        return Err(ModelError::new(field, "is larger than 64 KiB"));
    }
    Ok(())
}

/// A stored step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    pub step_id: StepId,
    pub ordinal: i32,
    pub stage: Stage,
    pub tool: ToolName,
    pub action: ActionName,
    pub input: Value,
    pub preconditions: Vec<Value>,
    pub rollback: Option<RollbackSpec>,
    pub evidence: Vec<EvidenceRequirement>,
}

/// Where a plan stands with respect to approval.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanApprovalState {
    /// Policy allowed it outright.
    NotRequired,
    Pending,
    Approved,
    Denied,
    Expired,
}

impl PlanApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRequired => "not_required",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        serde_json::from_value(Value::String(value.to_owned()))
            .map_err(|_| ModelError::new("approval_state", format!("unknown state {value:?}")))
    }
}

/// A plan with its steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub plan_id: PlanId,
    pub tenant_id: TenantId,
    pub created_at: DateTime<Utc>,
    pub created_by: ActorId,
    pub trigger: Trigger,
    pub summary: Summary,
    pub intent: Intent,
    pub context: ContextRef,
    pub risk_level: RiskLevel,
    pub policy_decision: Decision,
    pub constraints: Value,
    pub approval_state: PlanApprovalState,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub session_id: Option<String>,
    pub planner: Option<String>,
    pub meta: Value,
    pub steps: Vec<PlanStep>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_draft_parsing() {
        let ok: StepDraft = serde_json::from_value(serde_json::json!({
            "tool": "kubectl", "action": "scale",
            "input": {"deployment": "web", "replicas": 3},
            "rollback": {"tool": "kubectl", "action": "scale", "input": {"replicas": 2}}
        }))
        .unwrap();
        ok.validate().unwrap();
        assert_eq!(ok.stage, Stage::Act);
        let bad = serde_json::from_value::<StepDraft>(serde_json::json!({
            "tool": "bash", "action": "run"
        }));
        assert!(bad.is_err());
        let bad = serde_json::from_value::<StepDraft>(serde_json::json!({
            "tool": "kubectl", "action": "--all"
        }));
        assert!(bad.is_err());
        let arr: StepDraft = serde_json::from_value(serde_json::json!({
            "tool": "kubectl", "action": "get", "input": [1]
        }))
        .unwrap();
        assert_eq!(arr.validate().unwrap_err().field, "input");
    }

    #[test]
    fn summary_and_trigger() {
        assert!(Summary::parse("  ").is_err());
        assert!(Summary::parse(&"x".repeat(501)).is_err());
        assert_eq!(Summary::parse(" scale web ").unwrap().as_str(), "scale web");
        assert_eq!(Trigger::parse("webhook").unwrap(), Trigger::Webhook);
        assert!(Trigger::parse("cron").is_err());
        assert!(!Trigger::Webhook.is_human());
    }
}
