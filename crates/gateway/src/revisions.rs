//! Revising a plan: the rules, in one place for every caller (the API route today; the CLI goes
//! through it). A revision is made like a new plan — validated, planned again on request,
//! scored, decided by policy, refused and audited the same way — and then replaces the plan's
//! content in one transaction that keeps the earlier revision and supersedes its approvals.

use serde::Deserialize;
use serde_json::{json, Value};

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{Decision, ModelError, PlanApprovalState, PlanId, StepDraft};
use carapulse_core::plan_diff;
use carapulse_core::policy::PolicyOutcome;
use carapulse_core::store::{NewRevision, PlanRevision, Revised, StoreError};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::routes::plans::{load_plan, prepare_plan, PlanCreateRequest, PreparedPlan};
use crate::state::AppState;

/// Most characters in a revision note.
pub const MAX_NOTE_CHARS: usize = 500;

/// Body of `POST /v1/plans/{id}/revisions`: what changes (everything left out stays).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviseRequest {
    #[schema(min_length = 1, max_length = 500)]
    pub summary: Option<String>,
    #[schema(max_length = 4000)]
    pub intent: Option<String>,
    pub constraints: Option<Value>,
    /// The new steps (all of them, in order).
    pub steps: Option<Vec<StepDraft>>,
    /// Run the planner again on the intent with fresh context instead of giving steps.
    #[serde(default)]
    pub replan: bool,
    /// Why (kept with the revision and in the audit event).
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// A stored revision and what policy said about it.
pub(crate) struct Outcome {
    pub revised: Revised,
    pub policy: PolicyOutcome,
    /// From the previous revision to this one.
    pub diff: plan_diff::PlanDiff,
}

/// Revises plan `plan_id` of the caller's tenant.
pub(crate) async fn revise(
    state: &AppState,
    ctx: &RequestContext,
    plan_id: PlanId,
    body: ReviseRequest,
) -> Result<Outcome, ApiError> {
    crate::routes::library::require_writer(state, ctx, "plan.revise").await?;
    if body.replan && body.steps.is_some() {
        return Err(ModelError::new("replan", "give steps or replan, not both").into());
    }
    if body
        .note
        .as_deref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ModelError::new("note", format!("at most {MAX_NOTE_CHARS} characters")).into());
    }
    let plan = load_plan(state, ctx, plan_id).await?;
    crate::routes::sessions::require_visible(state, ctx, plan.session_id.as_deref(), "plan")
        .await?;
    let previous = state
        .store
        .plan_revision(ctx.tenant(), plan_id, plan.revision)
        .await?;
    let steps = match (body.replan, body.steps) {
        (true, _) => Vec::new(),
        (false, Some(steps)) => steps,
        (false, None) => plan.steps.iter().map(StepDraft::from).collect(),
    };
    let request = PlanCreateRequest {
        summary: body
            .summary
            .unwrap_or_else(|| plan.summary.as_str().to_owned()),
        trigger: plan.trigger,
        intent: body
            .intent
            .unwrap_or_else(|| plan.intent.as_str().to_owned()),
        context: plan.context.clone(),
        constraints: Some(body.constraints.unwrap_or_else(|| plan.constraints.clone())),
        session_id: plan.session_id.clone(),
        steps,
        preview: false,
        alert: plan.meta.get("alert").filter(|v| !v.is_null()).cloned(),
        alert_planning: None,
        draft: None,
        schedule: plan.meta.get("schedule").filter(|v| !v.is_null()).cloned(),
    };
    // A catalogue plan keeps its template unless the planner is asked again.
    let workflow = (!body.replan)
        .then(|| plan.meta.get("workflow").filter(|v| !v.is_null()).cloned())
        .flatten();
    let PreparedPlan { new_plan, outcome } =
        prepare_plan(state, ctx, request, workflow, "plan.revise").await?;
    // What this revision changes, said where approvers look (Slack cards, Linear issues): the
    // diff of the earlier revision against the would-be one (steps are matched by identity, so
    // their new ids do not matter).
    let would_be = json!({
        "summary": new_plan.summary.as_str(),
        "intent": new_plan.intent.as_str(),
        "constraints": new_plan.constraints,
        "risk_level": new_plan.risk_level,
        "policy_decision": new_plan.policy_decision,
        "policy_reasons": outcome.reasons,
        "meta": new_plan.meta,
        "steps": new_plan.steps,
    });
    let change_summary = plan_diff::diff(
        i64::from(previous.revision),
        &previous.snapshot,
        i64::from(previous.revision + 1),
        &would_be,
    )
    .summary;
    let mut meta = new_plan.meta;
    if let Value::Object(map) = &mut meta {
        map.insert("revised_by".into(), json!(ctx.actor.id));
        map.insert("revision_summary".into(), json!(change_summary));
    }
    let change = NewRevision {
        planning_record: new_plan.planning_record,
        summary: new_plan.summary,
        intent: new_plan.intent,
        constraints: new_plan.constraints,
        risk_level: new_plan.risk_level,
        policy_decision: new_plan.policy_decision,
        policy_reasons: outcome.reasons.clone(),
        approval_state: new_plan.approval_state,
        approval_expires_at: new_plan.approval_expires_at,
        planner: new_plan.planner,
        plan_text: new_plan.plan_text,
        meta,
        steps: new_plan.steps,
        revised_by: ctx.actor.id.to_string(),
        note: body.note.clone(),
    };
    let decision = match outcome.decision {
        Decision::RequireApproval => AuditDecision::RequireApproval,
        _ => AuditDecision::Allow,
    };
    let entry = ctx.audit("plan.revise", decision).context(json!({
        "risk_level": change.risk_level,
        "approval_state": change.approval_state,
        "policy_reasons": outcome.reasons,
        "note": body.note,
    }));
    let revised = state
        .store
        .revise_plan(ctx.tenant(), plan_id, change, entry)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("plan"),
            StoreError::Conflict(m) => ApiError::conflict("plan_active", m),
            StoreError::Precondition(m) => ApiError::conflict("too_many_revisions", m),
            other => other.into(),
        })?;
    state.metrics.record_audit(true);
    let diff = diff_of(&previous, &revised.revision);
    Ok(Outcome {
        revised,
        policy: outcome,
        diff,
    })
}

/// The semantic diff between two stored revisions.
pub(crate) fn diff_of(from: &PlanRevision, to: &PlanRevision) -> plan_diff::PlanDiff {
    plan_diff::diff(
        i64::from(from.revision),
        &from.snapshot,
        i64::from(to.revision),
        &to.snapshot,
    )
}

/// The JSON answer to a revision.
pub(crate) fn outcome_json(outcome: &Outcome) -> Value {
    let plan = &outcome.revised.plan;
    json!({
        "plan_id": plan.plan_id,
        "revision": outcome.revised.revision.revision,
        "hash": outcome.revised.revision.hash,
        "approval_required": plan.approval_state == PlanApprovalState::Pending,
        "superseded_approvals": outcome.revised.superseded,
        "policy": {
            "decision": outcome.policy.decision,
            "reasons": outcome.policy.reasons,
            "constraints": outcome.policy.constraints,
        },
        "diff": outcome.diff,
        "plan": crate::routes::plans::plan_json(plan),
    })
}
