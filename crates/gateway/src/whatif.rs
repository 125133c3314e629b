//! Policy what-if: what the loaded policy — and, side by side, a candidate policy given inline —
//! decides about a plan, as a whole and step by step, and which rules produced each answer.
//! Nothing is stored but an audit event.
//!
//! A stored plan is judged as its creator asking (with the writer roles creating it took), a
//! draft as the person asking; the plan is put to policy exactly as creation does (`plan.create`, risk scored from its steps,
//! what each step verifies); each step alone the same way, its risk scored from that step only.
//! Rules are found by querying each contributing rule on the interpreter
//! (`PolicyEngine::explain_json`): the `*_reasons` sets holding each reason, the
//! `constraint_entries` behind each constraint, the decision, with the `file:line` naming them.
//! A candidate overlays the loaded files: a file of the same name replaces it, a new one is
//! added, an empty one removes it; it must compile and keep the configured package.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use carapulse_core::model::{Actor, ActorId, ContextRef, Intent, ModelError, StepDraft, MAX_STEPS};
use carapulse_core::policy::{step_calls, ActionType, PolicyEngine, PolicyError, PolicyInput};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::state::AppState;

/// Most files a candidate may hold, and bytes per file.
pub const MAX_CANDIDATE_FILES: usize = 20;
pub const MAX_CANDIDATE_FILE_BYTES: usize = 128 * 1024;

/// A candidate policy: file name -> Rego text, over the loaded files.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Candidate {
    /// `name.rego` -> text; an empty text removes the loaded file of that name.
    pub files: BTreeMap<String, String>,
}

fn invalid_policy(message: impl Into<String>) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_policy",
        message,
    )
}

/// Compiles `candidate` over the loaded policy; every refusal is a 422 naming the file.
pub(crate) fn compile_candidate(
    state: &AppState,
    candidate: &Candidate,
) -> Result<PolicyEngine, ApiError> {
    if candidate.files.is_empty() {
        return Err(invalid_policy("candidate.files: give at least one file"));
    }
    if candidate.files.len() > MAX_CANDIDATE_FILES {
        return Err(invalid_policy(format!(
            "candidate.files: at most {MAX_CANDIDATE_FILES} files"
        )));
    }
    let current = state.policy.current();
    let package = current.package().to_owned();
    let mut files: BTreeMap<String, String> = current.sources().iter().cloned().collect();
    for (name, text) in &candidate.files {
        let valid_name = name.ends_with(".rego")
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid_name {
            return Err(invalid_policy(format!(
                "candidate.files: {name:?} is not a file name ending in .rego"
            )));
        }
        if text.len() > MAX_CANDIDATE_FILE_BYTES {
            return Err(invalid_policy(format!(
                "{name}: larger than {MAX_CANDIDATE_FILE_BYTES} bytes"
            )));
        }
        if text.trim().is_empty() {
            files.remove(name);
            continue;
        }
        let declared = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("package "))
            .map(str::trim);
        if declared != Some(package.as_str()) {
            return Err(invalid_policy(format!(
                "{name}: package {} is not {package}",
                declared.unwrap_or("(none)")
            )));
        }
        files.insert(name.clone(), text.clone());
    }
    PolicyEngine::from_sources(&package, files.into_iter().collect()).map_err(|e| match e {
        PolicyError::Parse { file, message } => invalid_policy(format!("{file}: {message}")),
        other => invalid_policy(other.to_string()),
    })
}

/// One policy's answer with the rules behind it.
fn judge(engine: &PolicyEngine, input: &PolicyInput) -> Value {
    let outcome = engine.evaluate(input);
    let rules = serde_json::to_value(input)
        .ok()
        .and_then(|value| engine.explain_json(&value).ok())
        .unwrap_or_default();
    json!({
        "decision": outcome.decision,
        "reasons": outcome.reasons,
        "constraints": outcome.constraints,
        "rules": rules,
        "error": outcome.error,
    })
}

fn changed(a: &Value, b: &Value) -> bool {
    ["decision", "reasons", "constraints"]
        .iter()
        .any(|k| a.get(*k) != b.get(*k))
}

/// Who a plan is judged as: a draft as its asker; a stored plan as its creator asking, with the
/// writer roles (creating it took one), so the answer is the one creation would give — whoever
/// asks the question.
pub(crate) fn judged_as(
    state: &AppState,
    ctx: &RequestContext,
    creator: Option<&ActorId>,
) -> Actor {
    let mut actor = ctx.actor.clone();
    if let Some(creator) = creator {
        actor.id = creator.clone();
        actor.email = None;
        actor.roles = state.config.gateway.writer_roles.clone();
    }
    actor
}

/// The side-by-side answers for a plan (`context`, `intent`, `steps`) asked by `actor`.
pub(crate) fn whatif(
    state: &AppState,
    actor: &Actor,
    context: &ContextRef,
    intent: &Intent,
    steps: &[StepDraft],
    candidate: Option<&PolicyEngine>,
) -> Value {
    let current = state.policy.current();
    let input_for = |subset: &[StepDraft]| {
        let risk = crate::routes::plans::score(
            subset
                .iter()
                .flat_map(|s| step_calls(s.tool, &s.action, &s.input, s.rollback.as_ref())),
            intent,
            context,
        );
        let action_type = if risk.gated() {
            ActionType::Write
        } else {
            ActionType::Read
        };
        PolicyInput::new(
            Some(actor),
            "plan.create",
            action_type,
            context,
            &risk,
            false,
            chrono::Utc::now(),
        )
        .with_steps(subset.iter().map(Into::into))
    };
    let both = |input: &PolicyInput| {
        let now = judge(&current, input);
        let then = candidate.map(|engine| judge(engine, input));
        let differs = then.as_ref().is_some_and(|t| changed(&now, t));
        (now, then, differs)
    };
    let (plan_now, plan_then, plan_changed) = both(&input_for(steps));
    let per_step: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let (now, then, differs) = both(&input_for(std::slice::from_ref(step)));
            json!({
                "index": i,
                "step": carapulse_core::plan_diff::step_identity(&json!(step)),
                "current": now,
                "candidate": then,
                "changed": differs,
            })
        })
        .collect();
    json!({
        "plan": {"current": plan_now, "candidate": plan_then, "changed": plan_changed},
        "steps": per_step,
        "candidate_files": candidate.map(|c| c.files().to_vec()),
    })
}

/// Validates a draft's steps as creation would (schema, then step references).
pub(crate) fn check_steps(steps: &[StepDraft]) -> Result<(), ApiError> {
    if steps.len() > MAX_STEPS {
        return Err(ModelError::new("plan.steps", format!("at most {MAX_STEPS} steps")).into());
    }
    for (i, step) in steps.iter().enumerate() {
        carapulse_core::tools::check_step(step)
            .map_err(|e| e.within(&format!("plan.steps[{i}]")))?;
    }
    carapulse_core::model::check_step_references(steps)?;
    Ok(())
}
