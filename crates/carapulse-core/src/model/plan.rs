//! Plans and their steps: what an operation will do, in order, with rollbacks and evidence.

use std::collections::BTreeMap;

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
/// Most captures, preconditions or expectations on one step.
const MAX_CHECKS: usize = 20;

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
    /// Values to keep from this step's JSON result: capture name -> path (`verify::path`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, String>,
    /// Verify steps: what the step's result must show (`verify::expect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<Value>,
    /// Verify steps: sample the check repeatedly (`verify::analysis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Value>,
}

impl StepDraft {
    /// Structural checks that hold for every tool; per-action schemas are checked by `tools`.
    /// Captures, preconditions, expectations and analysis windows are parsed here, so a bad
    /// one is refused at plan creation, naming its field.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_input("input", &self.input)?;
        if let Some(rb) = &self.rollback {
            check_input("rollback.input", &rb.input)?;
        }
        if self.preconditions.len() > MAX_CHECKS {
            return Err(ModelError::new("preconditions", "at most 20 preconditions"));
        }
        if self.evidence.len() > MAX_CHECKS {
            return Err(ModelError::new(
                "evidence",
                "at most 20 evidence requirements",
            ));
        }
        check_verification(
            self.stage,
            &self.capture,
            &self.preconditions,
            &self.expect,
            self.analysis.as_ref(),
        )
    }
}

fn spec_error(e: crate::verify::SpecError) -> ModelError {
    ModelError::new(e.field, e.message)
}

/// The verification parts of one step, on their own.
fn check_verification(
    stage: Stage,
    capture: &BTreeMap<String, String>,
    preconditions: &[Value],
    expect: &[Value],
    analysis: Option<&Value>,
) -> Result<(), ModelError> {
    use crate::verify::{expect::is_capture_name, Analysis, Expectation, ValuePath};
    if capture.len() > MAX_CHECKS {
        return Err(ModelError::new("capture", "at most 20 captures"));
    }
    for (name, path) in capture {
        if !is_capture_name(name) {
            return Err(ModelError::new(
                format!("capture.{name}"),
                "capture names are [a-z_][a-z0-9_]*, at most 64",
            ));
        }
        ValuePath::parse(path, &format!("capture.{name}")).map_err(spec_error)?;
    }
    if !preconditions.is_empty() && stage != Stage::Act {
        return Err(ModelError::new(
            "preconditions",
            "preconditions guard act steps; a verify step states expectations",
        ));
    }
    for (i, p) in preconditions.iter().enumerate() {
        Expectation::parse(p, &format!("preconditions[{i}]")).map_err(spec_error)?;
    }
    if !expect.is_empty() && stage != Stage::Verify {
        return Err(ModelError::new(
            "expect",
            "expectations belong to verify steps; an act step takes preconditions",
        ));
    }
    if expect.len() > MAX_CHECKS {
        return Err(ModelError::new("expect", "at most 20 expectations"));
    }
    for (i, e) in expect.iter().enumerate() {
        Expectation::parse(e, &format!("expect[{i}]")).map_err(spec_error)?;
    }
    if let Some(a) = analysis {
        if expect.is_empty() {
            return Err(ModelError::new(
                "analysis",
                "an analysis samples expectations: add expect",
            ));
        }
        Analysis::parse(a, "analysis").map_err(spec_error)?;
    }
    Ok(())
}

/// Checks what steps say about each other, in run order (act steps, then verify steps): a
/// capture is named once; preconditions read captures of earlier steps (their path starts with
/// the capture's name); a baseline and an input template name a capture of an earlier step; a
/// rollback's template names a capture of its own step or an earlier act step (what exists
/// whenever that rollback can run). Errors name the step (`steps[i]...`).
pub fn check_step_references(steps: &[StepDraft]) -> Result<(), ModelError> {
    use crate::verify::{template, Expectation};
    let in_run_order = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.stage == Stage::Act)
        .chain(
            steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.stage != Stage::Act),
        );
    let mut captured: BTreeMap<&str, usize> = BTreeMap::new();
    let unknown = |field: String, name: &str| {
        ModelError::new(field, format!("{name} is not captured by an earlier step"))
    };
    for (i, step) in in_run_order {
        let at = |field: String| format!("steps[{i}].{field}");
        for (j, p) in step.preconditions.iter().enumerate() {
            let field = format!("preconditions[{j}]");
            let e = Expectation::parse(p, &field)
                .map_err(|e| spec_error(e).within(&format!("steps[{i}]")))?;
            let first = e.path().first_key().unwrap_or("");
            if !captured.contains_key(first) {
                return Err(ModelError::new(
                    at(format!("{field}.path")),
                    format!(
                        "a precondition reads a capture of an earlier step (.<capture>...); {:?} is none",
                        e.path().as_str()
                    ),
                ));
            }
            if let Some(b) = e.baseline().filter(|b| !captured.contains_key(b)) {
                return Err(unknown(at(format!("{field}.baseline")), b));
            }
        }
        for (j, x) in step.expect.iter().enumerate() {
            let field = format!("expect[{j}]");
            let e = Expectation::parse(x, &field)
                .map_err(|e| spec_error(e).within(&format!("steps[{i}]")))?;
            if let Some(b) = e.baseline().filter(|b| !captured.contains_key(b)) {
                return Err(unknown(at(format!("{field}.baseline")), b));
            }
        }
        for (key, name) in template::references(&step.input, "input")
            .map_err(|e| spec_error(e).within(&format!("steps[{i}]")))?
        {
            if !captured.contains_key(name) {
                return Err(unknown(at(format!("input.{key}")), name));
            }
        }
        for name in step.capture.keys() {
            if let Some(first) = captured.insert(name, i) {
                return Err(ModelError::new(
                    at(format!("capture.{name}")),
                    format!("already captured by steps[{first}]"),
                ));
            }
        }
        if let Some(rb) = &step.rollback {
            for (key, name) in template::references(&rb.input, "rollback.input")
                .map_err(|e| spec_error(e).within(&format!("steps[{i}]")))?
            {
                let by = captured.get(name).copied();
                let usable = by.is_some_and(|b| b == i || steps[b].stage == Stage::Act);
                if !usable {
                    return Err(ModelError::new(
                        at(format!("rollback.input.{key}")),
                        format!("{name} is not captured by this step or an earlier act step"),
                    ));
                }
            }
        }
    }
    Ok(())
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Value>,
}

impl PlanStep {
    /// Whether the step captures, checks preconditions, states expectations or samples.
    pub fn declares_verification(&self) -> bool {
        !self.capture.is_empty()
            || !self.preconditions.is_empty()
            || !self.expect.is_empty()
            || self.analysis.is_some()
    }
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
    /// The current revision (1 until the plan is revised; see `plan_revisions`).
    pub revision: i32,
    pub steps: Vec<PlanStep>,
}

/// Most approvers policy may require for one plan.
pub const MAX_APPROVERS: usize = 5;

/// How many different people a `constraints.approvals_required` value (set by policy) asks to
/// approve a plan: 1 unless it says more, at most [`MAX_APPROVERS`].
pub fn approvals_required_by(value: Option<&Value>) -> usize {
    value
        .and_then(Value::as_u64)
        .map(|n| {
            usize::try_from(n)
                .unwrap_or(MAX_APPROVERS)
                .clamp(1, MAX_APPROVERS)
        })
        .unwrap_or(1)
}

impl Plan {
    /// How many different people must approve this plan (`constraints.approvals_required`,
    /// set by policy): 1 unless policy says more, at most [`MAX_APPROVERS`].
    pub fn approvals_required(&self) -> usize {
        approvals_required_by(self.constraints.get("approvals_required"))
    }

    /// Whether `actor` wrote this plan: its creator, or the author of its current revision
    /// (`meta.revised_by`). Neither may approve it (separation of duties).
    pub fn is_author(&self, actor: &ActorId) -> bool {
        self.created_by.same_person(actor)
            || self
                .meta
                .get("revised_by")
                .and_then(Value::as_str)
                .and_then(|r| ActorId::parse(r).ok())
                .is_some_and(|r| r.same_person(actor))
    }
}

impl From<&PlanStep> for StepDraft {
    /// The step as a caller would have written it (what a revision starts from).
    fn from(step: &PlanStep) -> Self {
        Self {
            stage: step.stage,
            tool: step.tool,
            action: step.action.clone(),
            input: step.input.clone(),
            preconditions: step.preconditions.clone(),
            rollback: step.rollback.clone(),
            evidence: step.evidence.clone(),
            capture: step.capture.clone(),
            expect: step.expect.clone(),
            analysis: step.analysis.clone(),
        }
    }
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

    fn draft(doc: serde_json::Value) -> StepDraft {
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn verification_parts_are_checked_where_they_are_written() {
        let ok = draft(serde_json::json!({
            "stage": "verify", "tool": "prometheus", "action": "query", "input": {"query": "x"},
            "capture": {"ratio": ".data.result[0].value[1]"},
            "expect": [{"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05}],
            "analysis": {"interval": "10s", "count": 3}
        }));
        ok.validate().unwrap();
        let cases = [
            (
                serde_json::json!({"tool": "kubectl", "action": "get", "capture": {"Bad": ".a"}}),
                "capture.Bad",
            ),
            (
                serde_json::json!({"tool": "kubectl", "action": "get", "capture": {"r": "spec"}}),
                "capture.r",
            ),
            (
                serde_json::json!({"tool": "kubectl", "action": "get", "expect": [{"path": ".a", "op": "exists"}]}),
                "expect",
            ),
            (
                serde_json::json!({"stage": "verify", "tool": "kubectl", "action": "get", "preconditions": [{"path": ".a", "op": "exists"}]}),
                "preconditions",
            ),
            (
                serde_json::json!({"tool": "kubectl", "action": "get", "preconditions": [{"path": ".a", "op": "~"}]}),
                "preconditions[0].op",
            ),
            (
                serde_json::json!({"stage": "verify", "tool": "kubectl", "action": "get", "expect": [{"path": ".a", "op": "<", "value": "x"}]}),
                "expect[0].value",
            ),
            (
                serde_json::json!({"stage": "verify", "tool": "kubectl", "action": "get", "analysis": {"interval": 5}}),
                "analysis",
            ),
            (
                serde_json::json!({"stage": "verify", "tool": "kubectl", "action": "get", "expect": [{"path": ".a", "op": "exists"}], "analysis": {"interval": "9h"}}),
                "analysis.interval",
            ),
        ];
        for (doc, field) in cases {
            let err = draft(doc.clone()).validate().unwrap_err();
            assert_eq!(err.field, field, "{doc}: {err}");
        }
    }

    #[test]
    fn steps_read_only_what_earlier_steps_captured() {
        let capture = draft(serde_json::json!({
            "stage": "act", "tool": "kubectl", "action": "get", "input": {},
            "capture": {"replicas_before": ".spec.replicas"}
        }));
        let guarded = draft(serde_json::json!({
            "tool": "kubectl", "action": "scale", "input": {},
            "preconditions": [{"path": ".replicas_before", "op": "<=", "value": 10}]
        }));
        let checked = draft(serde_json::json!({
            "stage": "verify", "tool": "prometheus", "action": "query", "input": {},
            "expect": [{"path": ".data.result[0].value[1]", "op": "<=", "baseline": "replicas_before", "factor": 2}]
        }));
        check_step_references(&[capture.clone(), guarded.clone(), checked.clone()]).unwrap();
        let err = check_step_references(&[guarded.clone(), capture.clone()]).unwrap_err();
        assert_eq!(err.field, "steps[0].preconditions[0].path", "{err}");
        // A verify step listed first still runs after the act step that captures its baseline.
        check_step_references(&[checked.clone(), capture.clone()]).unwrap();
        let err = check_step_references(&[checked]).unwrap_err();
        assert_eq!(err.field, "steps[0].expect[0].baseline", "{err}");
        let err = check_step_references(&[capture.clone(), capture.clone()]).unwrap_err();
        assert_eq!(err.field, "steps[1].capture.replicas_before", "{err}");
        // Run order, not list order: act steps run before verify steps, so a verify step's
        // capture is not there for an act step listed after it.
        let mut late = capture.clone();
        late.stage = Stage::Verify;
        let err = check_step_references(&[late, guarded.clone()]).unwrap_err();
        assert_eq!(err.field, "steps[1].preconditions[0].path", "{err}");
        // Templates: inputs read earlier captures; rollbacks their own step's or earlier acts'.
        let templated = draft(serde_json::json!({
            "tool": "kubectl", "action": "scale",
            "input": {"resource": "deployment/web", "replicas": "${capture.replicas_before}"},
            "rollback": {"tool": "kubectl", "action": "scale",
                         "input": {"resource": "deployment/web", "replicas": "${capture.replicas_before}"}}
        }));
        check_step_references(&[capture.clone(), templated.clone()]).unwrap();
        let err = check_step_references(&[templated.clone(), capture.clone()]).unwrap_err();
        assert_eq!(err.field, "steps[0].input.replicas", "{err}");
        let mut nested = templated.clone();
        nested.input = serde_json::json!({"resource": "deployment/web-${capture.replicas_before}"});
        let err = check_step_references(&[capture.clone(), nested]).unwrap_err();
        assert_eq!(err.field, "steps[1].input.resource", "{err}");
        let mut rollback_only = templated;
        rollback_only.input = serde_json::json!({"resource": "deployment/web", "replicas": 3});
        rollback_only.rollback.as_mut().unwrap().input =
            serde_json::json!({"resource": "deployment/web", "replicas": "${capture.nope}"});
        let err = check_step_references(&[capture, rollback_only]).unwrap_err();
        assert_eq!(err.field, "steps[1].rollback.input.replicas", "{err}");
    }
}
