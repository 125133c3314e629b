//! Blast radius in the plan lifecycle: estimated when a revision is made (and put to policy as
//! `input.blast_radius`), estimated again when someone approves, and read back for execute and
//! what-if so they ask policy the same question creation did. Routes, the Slack agent (through
//! the API) and background jobs all come through here.

use chrono::Utc;
use serde_json::{json, Value};

use carapulse_core::blast_radius::{step_targets, BlastEstimate};
use carapulse_core::model::{Decision, Plan, StepDraft, TenantId};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::state::AppState;

/// The estimate for `steps` in `tenant`'s graph now. A graph that cannot be read makes an
/// unknown estimate (which policy treats as such), never a failed request.
pub(crate) async fn estimate<'a>(
    state: &AppState,
    tenant: &TenantId,
    steps: impl IntoIterator<Item = &'a StepDraft>,
) -> BlastEstimate {
    let targets = step_targets(steps.into_iter().map(|s| (s.tool, &s.action, &s.input)));
    let now = Utc::now();
    match state
        .store
        .blast_radius(
            tenant,
            targets.clone(),
            state.config.context.blast_radius_depth,
            now,
        )
        .await
    {
        Ok(estimate) => estimate,
        Err(err) => {
            tracing::warn!(error = %err, "service graph unreadable; blast radius unknown");
            BlastEstimate::unknown(targets, format!("service graph unreadable: {err}"), now)
        }
    }
}

/// The estimate a stored plan was last decided or approved with: the approval-time one when
/// there is one, else the one made with its revision.
pub(crate) fn stored(plan: &Plan) -> Option<BlastEstimate> {
    latest(plan).map(|(_, estimate)| estimate)
}

/// The latest stored estimate and the stage it was made at (`approval` or `revision`).
fn latest(plan: &Plan) -> Option<(&'static str, BlastEstimate)> {
    [
        ("approval", "blast_radius_at_approval"),
        ("revision", "blast_radius"),
    ]
    .iter()
    .find_map(|(stage, key)| {
        plan.meta
            .get(*key)
            .filter(|v| !v.is_null())
            .map(|v| (*stage, v))
    })
    .and_then(|(stage, v)| serde_json::from_value(v.clone()).ok().map(|e| (stage, e)))
}

/// `blast_radius` of a plan's JSON: the latest estimate (`stage` says whether it was made
/// with the revision or at approval), a one-line `headline` and its age; `null` for plans made
/// before estimates existed.
pub(crate) fn view(plan: &Plan) -> Value {
    let Some(estimate) = stored(plan) else {
        return Value::Null;
    };
    let now = Utc::now();
    let stage = if plan
        .meta
        .get("blast_radius_at_approval")
        .is_some_and(|v| !v.is_null())
    {
        "approval"
    } else {
        "revision"
    };
    json!({
        "stage": stage,
        "headline": estimate.headline(now),
        "age_secs": (now - estimate.computed_at).num_seconds().max(0),
        "estimate": estimate,
    })
}

/// What an approval found when it estimated the blast radius again.
pub(crate) struct ApprovalCheck {
    pub estimate: BlastEstimate,
    /// How many approvers policy asks for with the fresh estimate.
    pub approvals_required: usize,
    /// Why the approval must wait for a revision: policy now denies the plan, or asks for more
    /// approvers than it records. `None` when the approval may proceed.
    pub grew: Option<String>,
}

impl ApprovalCheck {
    pub fn summary(&self) -> Value {
        json!({
            "headline": self.estimate.headline(Utc::now()),
            "unknown": self.estimate.unknown,
            "services": self.estimate.service_count,
            "rps": self.estimate.rps,
            "tier": self.estimate.tier,
            "computed_at": self.estimate.computed_at,
            "approvals_required": self.approvals_required,
        })
    }

    /// The refusal reason for people (API error, audit, Linear comment).
    pub fn refusal(&self, plan: &Plan) -> Option<String> {
        self.grew.as_ref().map(|what| {
            format!(
                "the blast radius changed since this revision was decided ({}): {what}. Revise the plan (POST /v1/plans/{}/revisions) so policy decides it again",
                self.estimate.headline(Utc::now()),
                plan.plan_id
            )
        })
    }
}

/// Estimates `plan`'s blast radius again for an approval — whichever channel it comes
/// through (API, UI, Slack, Linear) — and asks policy the creation question with it. When
/// policy would now deny, or ask for more approvers than the plan records, `grew` says so and
/// the caller refuses the approval: the plan must be revised so policy decides it again; an
/// approver never signs off on a reach nobody decided.
pub(crate) async fn check_for_approval(state: &AppState, plan: &Plan) -> ApprovalCheck {
    let drafts: Vec<StepDraft> = plan.steps.iter().map(StepDraft::from).collect();
    let estimate = estimate(state, &plan.tenant_id, &drafts).await;
    // The creator's question (with the writer roles creating it took), not the approver's;
    // this answer is not a decision of its own, so it is not recorded for policy impact.
    let creator = crate::whatif::as_creator(state, plan.tenant_id.clone(), &plan.created_by);
    let input =
        crate::whatif::creation_input(&creator, &plan.context, &plan.intent, &drafts, Utc::now())
            .with_blast_radius(Some(&estimate));
    let outcome = state.policy.current().evaluate(&input);
    let approvals_required =
        carapulse_core::model::approvals_required_by(outcome.constraints.get("approvals_required"));
    let grew = if outcome.decision == Decision::Deny {
        Some(format!(
            "policy now denies it ({})",
            outcome.reasons.join(", ")
        ))
    } else if approvals_required > plan.approvals_required() {
        Some(format!(
            "policy now asks for {approvals_required} approvers, the plan records {}",
            plan.approvals_required()
        ))
    } else {
        None
    };
    ApprovalCheck {
        estimate,
        approvals_required,
        grew,
    }
}

/// [`check_for_approval`] for an API approval: a grown reach is audited and answered 409
/// `blast_radius_changed`.
pub(crate) async fn recheck_for_approval(
    state: &AppState,
    ctx: &RequestContext,
    plan: &Plan,
) -> Result<ApprovalCheck, ApiError> {
    let check = check_for_approval(state, plan).await;
    if let Some(message) = check.refusal(plan) {
        state
            .audit(
                ctx.audit(
                    "approval.create",
                    carapulse_core::audit::AuditDecision::Deny,
                )
                .resource("plan", plan.plan_id)
                .reason(message.clone())
                .context(json!({"blast_radius": check.summary()})),
            )
            .await;
        return Err(ApiError::conflict("blast_radius_changed", message));
    }
    Ok(check)
}

/// Keeps the approval-time estimate on the plan; a failure is logged (the approval and its
/// audit event, which carries the estimate's summary, are already stored).
pub(crate) async fn keep_approval_estimate(state: &AppState, plan: &Plan, check: &ApprovalCheck) {
    if let Err(err) = state
        .store
        .record_approval_blast_radius(&plan.tenant_id, plan.plan_id, &check.estimate)
        .await
    {
        tracing::warn!(error = %err, plan_id = %plan.plan_id, "approval-time blast radius not kept on the plan");
    }
}
