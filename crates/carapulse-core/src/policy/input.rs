//! The JSON input handed to the Rego rules: `{actor, action, context, resources, risk, time}`,
//! and for plans `blast_radius` (who depends on what the plan changes; see
//! [`crate::blast_radius`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::blast_radius::BlastEstimate;
use crate::model::{Actor, ContextRef};

use super::RiskAssessment;

/// Whether the request only reads or changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    Read,
    Write,
}

/// A policy question, serialised with stable lower-case keys.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyInput {
    pub actor: Value,
    pub action: Value,
    pub context: ContextRef,
    pub resources: Value,
    pub risk: Value,
    pub time: DateTime<Utc>,
    /// A plan's blast-radius estimate ([`BlastEstimate::policy_input`]); absent for single
    /// tool calls and reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<Value>,
}

impl PolicyInput {
    /// Builds the input for `actor` doing `action_name` of `action_type` in `context`.
    pub fn new(
        actor: Option<&Actor>,
        action_name: &str,
        action_type: ActionType,
        context: &ContextRef,
        risk: &RiskAssessment,
        break_glass: bool,
        now: DateTime<Utc>,
    ) -> Self {
        let actor = match actor {
            Some(a) => serde_json::json!({
                "id": a.id.as_str(),
                "email": a.email.clone().unwrap_or_default(),
                "roles": a.roles,
                "tenant_id": a.tenant_id.as_str(),
            }),
            None => serde_json::json!({}),
        };
        Self {
            actor,
            action: serde_json::json!({"name": action_name, "type": action_type}),
            context: context.clone(),
            resources: serde_json::json!({"break_glass": break_glass}),
            risk: serde_json::json!({
                "level": risk.level.as_str(),
                "targets": risk.targets,
                "blast_radius": risk.blast_radius.as_str(),
                "tier": risk.level.tier().as_str(),
            }),
            time: now,
            blast_radius: None,
        }
    }

    /// Adds the plan's blast-radius estimate as `blast_radius`.
    pub fn with_blast_radius(mut self, estimate: Option<&BlastEstimate>) -> Self {
        self.blast_radius = estimate.map(BlastEstimate::policy_input);
        self
    }

    /// Adds what a plan's steps verify: `resources.steps` (one summary per step) and
    /// `resources.verification` (totals), so rules can ask for expectations on risky writes.
    pub fn with_steps<'a>(mut self, steps: impl IntoIterator<Item = StepVerification<'a>>) -> Self {
        let steps: Vec<StepVerification<'a>> = steps.into_iter().collect();
        let expectations: usize = steps.iter().map(|s| s.expectations).sum();
        let guarded_verify_steps = steps
            .iter()
            .filter(|s| s.stage == "verify" && s.expectations > 0)
            .count();
        let verification = serde_json::json!({
            "expectations": expectations,
            "verify_steps_with_expectations": guarded_verify_steps,
            "analysis": steps.iter().any(|s| s.analysis),
            "captures": steps.iter().map(|s| s.captures).sum::<usize>(),
            "preconditions": steps.iter().map(|s| s.preconditions).sum::<usize>(),
        });
        if let Value::Object(map) = &mut self.resources {
            map.insert(
                "steps".into(),
                serde_json::to_value(&steps).unwrap_or(Value::Null),
            );
            map.insert("verification".into(), verification);
        }
        self
    }
}

/// What one step verifies, as policy sees it.
#[derive(Debug, Clone, Serialize)]
pub struct StepVerification<'a> {
    pub stage: &'a str,
    pub tool: &'a str,
    pub action: &'a str,
    pub expectations: usize,
    pub preconditions: usize,
    pub captures: usize,
    pub analysis: bool,
}

impl<'a> From<&'a crate::model::StepDraft> for StepVerification<'a> {
    fn from(s: &'a crate::model::StepDraft) -> Self {
        Self {
            stage: s.stage.as_str(),
            tool: s.tool.as_str(),
            action: s.action.as_str(),
            expectations: s.expect.len(),
            preconditions: s.preconditions.len(),
            captures: s.capture.len(),
            analysis: s.analysis.is_some(),
        }
    }
}

impl<'a> From<&'a crate::model::PlanStep> for StepVerification<'a> {
    fn from(s: &'a crate::model::PlanStep) -> Self {
        Self {
            stage: s.stage.as_str(),
            tool: s.tool.as_str(),
            action: s.action.as_str(),
            expectations: s.expect.len(),
            preconditions: s.preconditions.len(),
            captures: s.capture.len(),
            analysis: s.analysis.is_some(),
        }
    }
}
