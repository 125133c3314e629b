//! `POST/GET /v1/plans`, `GET/DELETE /v1/plans/{id}`, `GET /v1/plans/{id}/risk`,
//! `POST /v1/plans/{id}/execute` (and `:execute`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;

use carapulse_core::audit::AuditDecision;
use carapulse_core::dispatch::{DispatchOutcome, DispatchRequest};
use carapulse_core::integrity::plan_hash;
use carapulse_core::model::{
    ContextRef, Decision, ExecutionId, Intent, ModelError, Plan, PlanApprovalState, PlanId,
    RiskLevel, StepDraft, Summary, Trigger, MAX_STEPS,
};
use carapulse_core::planner::prompt::PromptInput;
use carapulse_core::policy::{assess_intent, assess_steps, step_calls, ActionType, StepRef};
use carapulse_core::store::{
    NewPlan, PlanFilter, StartMode, StartOptions, StartOutcome, StoreError,
};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, OptionalJson};
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::{page_json, policy_denied, require_read};

/// Body of `POST /v1/plans`. Risk is not accepted: it is computed from the steps.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanCreateRequest {
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    pub(crate) summary: String,
    /// Ignored: the server sets the trigger from the channel (manual, or chatops through the
    /// Slack agent). Accepted so existing clients keep working.
    #[serde(default)]
    pub(crate) trigger: Trigger,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub(crate) intent: String,
    pub(crate) context: ContextRef,
    #[serde(default)]
    pub(crate) constraints: Option<Value>,
    #[serde(default)]
    pub(crate) session_id: Option<String>,
    #[serde(default)]
    pub(crate) steps: Vec<StepDraft>,
    /// Plan, score and decide, but store nothing: answers 200 with the would-be plan (its steps,
    /// risk, policy decision and whether it would wait for approval) and audits `plan.preview`.
    #[serde(default)]
    pub(crate) preview: bool,
    /// Set by the event loop: the alert a plan was born from (kept in `meta.alert`).
    #[serde(skip)]
    pub(crate) alert: Option<Value>,
    /// Set by the event loop: what it planned the alert with (kept in the planning record).
    #[serde(skip)]
    pub(crate) alert_planning: Option<Value>,
    /// Set when the caller already planned (the event loop): who planned it.
    #[serde(skip)]
    pub(crate) draft: Option<carapulse_core::planner::PlanDraft>,
    /// Set by the scheduler: the schedule and the run (kept in `meta.schedule`).
    #[serde(skip)]
    pub(crate) schedule: Option<Value>,
}

/// Risk from the steps, or from the intent's words while a plan has no steps.
pub(crate) fn score<'a>(
    steps: impl Iterator<Item = StepRef<'a>>,
    intent: &Intent,
    context: &ContextRef,
) -> carapulse_core::policy::RiskAssessment {
    let refs: Vec<StepRef<'a>> = steps.collect();
    if refs.is_empty() {
        assess_intent(intent.as_str(), context)
    } else {
        assess_steps(&refs, context)
    }
}

/// [`score`] of a plan's (or draft's) steps.
pub(crate) fn score_drafts(
    steps: &[StepDraft],
    intent: &Intent,
    context: &ContextRef,
) -> carapulse_core::policy::RiskAssessment {
    score(
        steps
            .iter()
            .flat_map(|s| step_calls(s.tool, &s.action, &s.input, s.rollback.as_ref())),
        intent,
        context,
    )
}

/// Loads a plan of the caller's tenant; absent (or another tenant's) is a 404.
pub(crate) async fn load_plan(
    state: &AppState,
    ctx: &RequestContext,
    plan_id: PlanId,
) -> ApiResult<Plan> {
    state
        .store
        .get_plan(ctx.tenant(), plan_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("plan"),
            other => other.into(),
        })
}

/// The JSON shape of a plan in responses.
pub(crate) fn plan_json(plan: &Plan) -> Value {
    let mut value = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("plan_hash".into(), Value::String(plan_hash(plan)));
        map.insert("blast_radius".into(), crate::blast::view(plan));
    }
    value
}

#[utoipa::path(delete, path = "/plans/{id}", tag = "plans", summary = "Withdraw a plan that never ran (its creator or an admin); it leaves every read and list", params(("id" = String, Path, description = "Plan id (UUID)")), responses((status = 204, description = "Withdrawn"), crate::openapi::CommonErrors, crate::openapi::NotFound, (status = 409, description = "The plan has an execution", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let plan_id = parse_plan_id(&id)?;
    let plan = load_plan(&state, &ctx, plan_id).await?;
    super::sessions::require_visible(&state, &ctx, plan.session_id.as_deref(), "plan").await?;
    if plan.created_by != ctx.actor.id && !ctx.is_admin() {
        state
            .audit(
                ctx.audit("plan.delete", AuditDecision::Deny)
                    .resource("plan", plan_id)
                    .reason("only the plan's creator or an admin deletes it"),
            )
            .await;
        return Err(ApiError::forbidden(
            "forbidden",
            "only the plan's creator or an admin deletes it",
        ));
    }
    let entry = ctx
        .audit("plan.delete", AuditDecision::Allow)
        .context(json!({"summary": plan.summary, "approval_state": plan.approval_state}));
    state
        .store
        .delete_plan(ctx.tenant(), plan_id, ctx.actor.id.as_str(), entry)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("plan"),
            StoreError::Conflict(m) => ApiError::conflict("plan_executed", m),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/plans/{id}/risk", tag = "plans", summary = "The plan's risk: stored level, the assessment recomputed from its steps, and each step's class", params(("id" = String, Path, description = "Plan id (UUID)")), responses((status = 200, description = "`{plan_id, risk_level, assessment, steps}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn risk(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "plan.risk").await?;
    let plan_id = parse_plan_id(&id)?;
    let plan = load_plan(&state, &ctx, plan_id).await?;
    super::sessions::require_visible(&state, &ctx, plan.session_id.as_deref(), "plan").await?;
    // The same scoring creation used, over the stored steps: what an approver should weigh.
    let assessment = score(
        plan.steps
            .iter()
            .flat_map(|s| step_calls(s.tool, &s.action, &s.input, s.rollback.as_ref())),
        &plan.intent,
        &plan.context,
    );
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|s| {
            let spec = carapulse_core::tools::find(s.tool, s.action.as_str());
            json!({
                "step_id": s.step_id,
                "ordinal": s.ordinal,
                "stage": s.stage,
                "tool": s.tool,
                "action": s.action,
                "type": spec.map(|a| if a.is_write() { "write" } else { "read" }),
                "risk": spec.map(|a| a.risk()),
                "rollback": s.rollback.as_ref().map(|r| format!("{} {}", r.tool, r.action)),
            })
        })
        .collect();
    Ok(Json(json!({
        "plan_id": plan.plan_id,
        "risk_level": plan.risk_level,
        "policy_decision": plan.policy_decision,
        "approval_state": plan.approval_state,
        "assessment": assessment,
        "at_creation": plan.meta.get("risk"),
        "steps": steps,
    })))
}

#[utoipa::path(post, path = "/plans", tag = "plans", summary = "Create a plan (planned from the intent when no steps are given)", request_body = PlanCreateRequest, responses((status = 201, description = "Plan stored; approval_required says whether it waits for approval", body = Object), (status = 200, description = "With `preview: true`: the plan that would be created (steps, risk, policy decision, approval_required); nothing is stored", body = Object), crate::openapi::CommonErrors, (status = 409, description = "Conflict", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(mut body): ApiJson<PlanCreateRequest>,
) -> ApiResult<Response> {
    // The trigger is the server's word (a caller could otherwise claim "alert" to look like a
    // system plan); the body's value is accepted for compatibility and ignored.
    body.trigger = ctx.trigger();
    if body.preview {
        let preview = preview_plan(&state, &ctx, body, None).await?;
        let notices = deprecations(&preview["plan"]["meta"]);
        return Ok(deprecated(Json(preview).into_response(), &notices));
    }
    let (plan, outcome) = create_plan(&state, &ctx, body, None).await?;
    let notices = deprecations(&plan.meta);
    Ok(deprecated(
        (StatusCode::CREATED, Json(created_json(&plan, &outcome))).into_response(),
        &notices,
    ))
}

/// The deprecation notices a plan's creation recorded in its `meta`.
pub(crate) fn deprecations(meta: &Value) -> Vec<String> {
    meta["deprecations"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Marks a response that accepted an old spelling: `Deprecation: true` and a `Warning` per
/// notice naming the current spelling.
pub(crate) fn deprecated(mut response: Response, notices: &[String]) -> Response {
    carapulse_core::tools::compat::mark_deprecated(response.headers_mut(), notices);
    response
}

/// The body answering a created plan.
pub(crate) fn created_json(plan: &Plan, outcome: &carapulse_core::policy::PolicyOutcome) -> Value {
    json!({
        "plan_id": plan.plan_id,
        "created_at": plan.created_at,
        "approval_required": plan.approval_state == PlanApprovalState::Pending,
        "policy": {"decision": outcome.decision, "reasons": outcome.reasons, "constraints": outcome.constraints},
        "plan": plan_json(plan),
    })
}

/// A plan validated, planned, scored and decided by policy, not yet stored.
pub(crate) struct PreparedPlan {
    pub(crate) new_plan: NewPlan,
    pub(crate) outcome: carapulse_core::policy::PolicyOutcome,
}

/// Validates, scores, authorises and stores a plan (with its audit event); auto-approves when
/// configured. `workflow` records which catalogue template produced it.
pub(crate) async fn create_plan(
    state: &AppState,
    ctx: &RequestContext,
    body: PlanCreateRequest,
    workflow: Option<Value>,
) -> ApiResult<(Plan, carapulse_core::policy::PolicyOutcome)> {
    let PreparedPlan { new_plan, outcome } =
        prepare_plan(state, ctx, body, workflow, "plan.create").await?;
    let tenant = ctx.tenant().clone();
    let planner_label = new_plan.planner.clone().unwrap_or_default();
    let plan_id = new_plan.plan_id;
    let entry = ctx
        .audit("plan.create", audit_decision(&outcome))
        .resource("plan", plan_id)
        .context(json!({
            "risk_level": new_plan.risk_level,
            "policy_reasons": outcome.reasons,
            "approval_state": new_plan.approval_state,
            "trigger": new_plan.trigger,
            "planner": planner_label,
        }));
    let mut plan = state.plans.create(new_plan, entry).await?;
    state.metrics.plans_created.inc();
    state.metrics.record_planner(&planner_label);
    state.metrics.record_audit(true);

    // Opt-in auto-approval of low-risk plans started by a human (never webhooks or schedules,
    // never break-glass).
    let auto = state.config.approvals.auto_approve_low
        && plan.approval_state == PlanApprovalState::Pending
        && plan.risk_level == RiskLevel::Low
        && plan.trigger.is_human()
        && outcome.constraints.get("break_glass_required").is_none()
        && !ctx.break_glass;
    if auto {
        let decision = carapulse_core::store::ApprovalDecision {
            status: carapulse_core::model::ApprovalStatus::Approved,
            approver: carapulse_core::model::ActorId::parse("carapulse:auto-approve")?,
            approver_email: None,
            source: carapulse_core::model::ApprovalSource::Auto,
            note: Some("approvals.auto_approve_low".into()),
        };
        let entry = ctx
            .audit("approval.auto", AuditDecision::Allow)
            .resource("plan", plan_id)
            .reason("low risk, human trigger, approvals.auto_approve_low is on");
        state
            .record_approval(&tenant, plan_id, decision, entry)
            .await?;
        plan = state.store.get_plan(&tenant, plan_id).await?;
    }

    Ok((plan, outcome))
}

/// What creating the plan would give — its steps, risk, policy decision and whether it would
/// wait for approval — without storing anything but a `plan.preview` audit event. The web UI's
/// "New plan" form shows it before the person submits.
pub(crate) async fn preview_plan(
    state: &AppState,
    ctx: &RequestContext,
    body: PlanCreateRequest,
    workflow: Option<Value>,
) -> ApiResult<Value> {
    let PreparedPlan { new_plan, outcome } =
        prepare_plan(state, ctx, body, workflow, "plan.preview").await?;
    let approval_required = new_plan.approval_state == PlanApprovalState::Pending;
    state
        .audit(
            ctx.audit("plan.preview", audit_decision(&outcome))
                .context(json!({
                    "risk_level": new_plan.risk_level,
                    "policy_reasons": outcome.reasons,
                    "approval_required": approval_required,
                    "steps": new_plan.steps.len(),
                    "planner": new_plan.planner,
                })),
        )
        .await;
    Ok(json!({
        "preview": true,
        "approval_required": approval_required,
        "policy": {"decision": outcome.decision, "reasons": outcome.reasons, "constraints": outcome.constraints},
        "plan": {
            "summary": new_plan.summary.as_str(),
            "intent": new_plan.intent.as_str(),
            "trigger": new_plan.trigger,
            "context": new_plan.context,
            "risk_level": new_plan.risk_level,
            "policy_decision": new_plan.policy_decision,
            "approval_state": new_plan.approval_state,
            "constraints": new_plan.constraints,
            "planner": new_plan.planner,
            "steps": new_plan.steps,
            "meta": new_plan.meta,
        },
    }))
}

fn audit_decision(outcome: &carapulse_core::policy::PolicyOutcome) -> AuditDecision {
    match outcome.decision {
        Decision::RequireApproval => AuditDecision::RequireApproval,
        _ => AuditDecision::Allow,
    }
}

/// Validates the request, plans it when it has no steps, scores it and asks policy (as
/// `plan.create`): everything creating a plan does before storing it. Refusals are audited under
/// `audit_action` (`plan.create`, or `plan.preview` for a preview).
pub(crate) async fn prepare_plan(
    state: &AppState,
    ctx: &RequestContext,
    body: PlanCreateRequest,
    workflow: Option<Value>,
    audit_action: &'static str,
) -> ApiResult<PreparedPlan> {
    let state = state.clone();
    let ctx = ctx.clone();
    let tenant = ctx.tenant().clone();
    let mut context = body.context;
    if !context.tenant_id.is_empty() && context.tenant_id != tenant.as_str() {
        state
            .audit(
                ctx.audit(audit_action, AuditDecision::Deny)
                    .reason("context.tenant_id does not match the token's tenant")
                    .context(json!({"requested_tenant": context.tenant_id})),
            )
            .await;
        return Err(ApiError::forbidden(
            "tenant_mismatch",
            "context.tenant_id does not match the tenant of your token",
        ));
    }
    context.tenant_id = tenant.to_string();
    let summary = Summary::parse(&body.summary)?;
    let intent = Intent::parse(&body.intent)?;
    context.validate()?;
    let constraints = match body.constraints {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(map)) => Value::Object(map),
        Some(_) => return Err(ModelError::new("constraints", "must be a JSON object").into()),
    };
    if let Some(session) = &body.session_id {
        if session.is_empty() || session.len() > 128 {
            return Err(ModelError::new("session_id", "must be 1-128 characters").into());
        }
    }
    // With sessions required, a person's plan must belong to a session they are in (system
    // triggers such as alerts and schedules are exempt: they have no person behind them).
    if state.config.gateway.session_required && body.trigger.is_human() {
        match &body.session_id {
            Some(session) => super::sessions::require_member(&state, &ctx, session).await?,
            None => return Err(ApiError::forbidden(
                "session_required",
                "gateway.session_required is on: give the session_id of a session you belong to",
            )),
        }
    }

    // Steps: the caller's, or the planner's when none were given.
    let mut steps = body.steps;
    let mut draft = body.draft;
    let mut unplanned: Option<String> = None;
    if steps.is_empty() && workflow.is_none() && draft.is_none() {
        let intent_text = if intent.is_empty() {
            summary.as_str().to_owned()
        } else {
            intent.as_str().to_owned()
        };
        // Memory, the service graph and alerts only feed a model prompt: the rule planner needs
        // none of them, so they are not read for it.
        let (memory, service_context, evidence) = if state.planning.uses_model() {
            let memory = state
                .store
                .planner_memory(&tenant, 20)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "operator memory unavailable; planning without it");
                    Vec::new()
                });
            let (graph, alerts) = planning_context(&state, &tenant, &intent_text).await;
            (memory, graph, alerts)
        } else {
            (Vec::new(), Value::Null, Value::Null)
        };
        let input = PromptInput {
            intent: intent_text,
            context: context.clone(),
            service_context,
            evidence,
            memory,
            constraints: constraints.clone(),
            allow_break_glass: ctx.break_glass,
        };
        match state.planning.plan(tenant.as_str(), &input).await {
            Ok(d) => {
                steps = d.steps.clone();
                draft = Some(d);
            }
            // A summary alone (no intent, no steps) is a draft the caller will fill in or plan
            // later: keep it, step-less, with the reason planning did not fill it.
            Err(err) if intent.is_empty() => {
                unplanned = Some(format!("{}: {}", err.code, err.message));
            }
            Err(err) => {
                state
                    .audit(
                        ctx.audit(audit_action, AuditDecision::Deny)
                            .reason(format!("planning failed: {}", err.message))
                            .context(json!({"code": err.code})),
                    )
                    .await;
                return Err(err);
            }
        }
    }
    if steps.len() > MAX_STEPS {
        return Err(ModelError::new("steps", format!("at most {MAX_STEPS} steps")).into());
    }
    // The Go version's action names (old callers, stored prompts, a model trained on them) are
    // stored under their current names; the notices travel in `meta.deprecations`.
    let deprecations = carapulse_core::tools::compat::upgrade_steps(&mut steps);
    for (i, step) in steps.iter().enumerate() {
        carapulse_core::tools::check_step(step).map_err(|e| e.within(&format!("steps[{i}]")))?;
        // Every call must act in the plan's environment: the connector bindings decide.
        let rollback = step.rollback.as_ref().map(|r| (r.tool, "rollback"));
        for (tool, part) in std::iter::once((step.tool, "tool")).chain(rollback) {
            if let Err(message) = state.config.connectors.check_binding(tool, &context) {
                return Err(ModelError::new(format!("steps[{i}].{part}"), message).into());
            }
        }
    }

    // What steps say about each other: captures named once, read only after they are taken.
    carapulse_core::model::check_step_references(&steps)?;

    let risk = score_drafts(&steps, &intent, &context);
    let action_type = risk.action_type();
    let blast_radius = crate::blast::estimate(&state, &tenant, &steps).await;
    let context_snapshot_id = crate::replay_record::planning_snapshot(&state, &tenant).await;
    let (outcome, policy_input) = state.decide_plan(
        &ctx,
        "plan.create",
        action_type,
        &context,
        &risk,
        steps.iter().map(Into::into),
        Some(&blast_radius),
    );
    if outcome.decision == Decision::Deny {
        return Err(policy_denied(&state, &ctx, audit_action, &outcome, None).await);
    }

    // Constraints: the caller's, overlaid with the policy's (policy keys win).
    let mut merged = constraints;
    if let Value::Object(map) = &mut merged {
        for (k, v) in &outcome.constraints {
            map.insert(k.clone(), v.clone());
        }
    }
    let now = Utc::now();
    let needs_approval =
        risk.gated() && (outcome.decision == Decision::RequireApproval || !body.trigger.is_human());
    let approval_state = if needs_approval {
        PlanApprovalState::Pending
    } else {
        PlanApprovalState::NotRequired
    };
    let timeout_hours = i64::try_from(state.config.approvals.timeout_hours).unwrap_or(24);
    let new_plan = NewPlan {
        plan_id: PlanId::new(),
        tenant_id: tenant.clone(),
        created_by: ctx.actor.id.clone(),
        trigger: body.trigger,
        summary,
        intent,
        context,
        risk_level: risk.level,
        policy_decision: outcome.decision,
        constraints: merged,
        approval_state,
        approval_expires_at: needs_approval.then(|| now + Duration::hours(timeout_hours)),
        session_id: body.session_id,
        planner: Some(match (&draft, &workflow) {
            (Some(d), _) => d.label(),
            (None, Some(_)) => "workflow".to_owned(),
            (None, None) if unplanned.is_some() => "none".to_owned(),
            (None, None) => "caller".to_owned(),
        }),
        plan_text: draft.as_ref().and_then(|d| d.plan_text.clone()),
        planning_record: Some(crate::replay_record::record(
            &body.trigger,
            body.alert.as_ref(),
            body.alert_planning.as_ref(),
            state.policy.current().digest(),
            draft.as_ref(),
            unplanned.as_deref(),
            context_snapshot_id,
            &policy_input,
            &outcome,
        )),
        meta: json!({
            "risk": {"targets": risk.targets, "blast_radius": risk.blast_radius, "reasons": risk.reasons},
            "blast_radius": blast_radius,
            "context_snapshot_id": context_snapshot_id,
            "workflow": workflow.clone().or_else(|| draft.as_ref().and_then(|d| d.workflow.clone())),
            "alert": body.alert,
            "unplanned": unplanned,
            "schedule": body.schedule,
            "deprecations": deprecations,
            "planning": draft.as_ref().map(|d| json!({
                "planner": d.label(),
                "model": d.model,
                "suggested_summary": d.summary,
                "notes": d.notes,
                "neutralised_injections": d.neutralised,
                "fallback_reason": d.fallback_reason,
            })),
        }),
        steps,
    };
    Ok(PreparedPlan { new_plan, outcome })
}

/// What the planner is told besides the intent: the graph of each known service the intent
/// names (by whole word), and the tenant's alerts firing in the last hour. Failures only shrink
/// the prompt; they never block planning.
async fn planning_context(
    state: &AppState,
    tenant: &carapulse_core::model::TenantId,
    intent: &str,
) -> (Value, Value) {
    let words: std::collections::BTreeSet<String> = intent
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut graphs = serde_json::Map::new();
    if let Ok(services) = state
        .store
        .context_services(tenant, carapulse_core::store::Page::new(Some(200), None))
        .await
    {
        for service in services
            .items
            .iter()
            .filter(|s| words.contains(&s.name.to_lowercase()))
            .take(3)
        {
            if let Ok(graph) = state.store.context_graph(tenant, &service.name, 2).await {
                graphs.insert(
                    service.name.clone(),
                    json!({"nodes": graph.nodes, "edges": graph.edges}),
                );
            }
        }
    }
    let alerts = state
        .store
        .recent_firing_alerts(tenant, 1, 20)
        .await
        .unwrap_or_default();
    let service_context = if graphs.is_empty() {
        Value::Null
    } else {
        Value::Object(graphs)
    };
    let evidence = if alerts.is_empty() {
        Value::Null
    } else {
        json!({"firing_alerts": alerts})
    };
    (service_context, evidence)
}

/// Query of `GET /v1/plans`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    /// Start after the last row of a previous page: its `pagination.next_cursor`. Not with `offset`.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// `exact` or `estimate` adds `pagination.total`; without it a page costs only its rows.
    #[param(pattern = "^(none|exact|estimate)$")]
    count: Option<String>,
    approval_state: Option<PlanApprovalState>,
    risk_level: Option<RiskLevel>,
    trigger: Option<Trigger>,
    created_by: Option<String>,
    session_id: Option<String>,
}

#[utoipa::path(get, path = "/plans", tag = "plans", summary = "List plans, newest first", params(PlanListQuery), responses((status = 200, description = "One page of plans", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<PlanListQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "plan.list").await?;
    let filter = PlanFilter {
        approval_state: q.approval_state,
        risk_level: q.risk_level,
        trigger: q.trigger,
        created_by: q.created_by,
        session_id: q.session_id,
        visible_to: super::sessions::session_scope(&state, &ctx),
    };
    let page = state
        .store
        .list_plans(
            ctx.tenant(),
            &filter,
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

fn parse_plan_id(raw: &str) -> Result<PlanId, ApiError> {
    PlanId::parse(raw).map_err(|_| ApiError::not_found("plan"))
}

#[utoipa::path(get, path = "/plans/{id}", tag = "plans", summary = "A plan with its steps, risk, policy decision and approval", params(("id" = String, Path, description = "Plan id (UUID)")), responses((status = 200, description = "The plan", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "plan.get").await?;
    let plan_id = parse_plan_id(&id)?;
    let plan = load_plan(&state, &ctx, plan_id).await?;
    super::sessions::require_visible(&state, &ctx, plan.session_id.as_deref(), "plan").await?;
    let approval = state.store.plan_approval(ctx.tenant(), plan_id).await?;
    let tally = state.store.approval_tally(ctx.tenant(), plan_id).await?;
    let mut body = plan_json(&plan);
    if let Value::Object(map) = &mut body {
        map.insert(
            "approval".into(),
            serde_json::to_value(approval).unwrap_or(Value::Null),
        );
        // Who approved the current revision, against what policy requires.
        map.insert(
            "approvals".into(),
            json!({"required": tally.approvals_required, "approved_by": tally.approved_by}),
        );
    }
    Ok(Json(body))
}

/// Optional body of execute.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecuteRequest {
    #[serde(default)]
    #[schema(format = Uuid)]
    plan_id: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /v1/plans/{id}:execute` arrives as `{id}` = `<uuid>:execute`.
#[utoipa::path(post, path = "/plans/{id}", tag = "plans", summary = "Execute a plan (Google-style `{id}:execute` form of /plans/{id}/execute)", params(("id" = String, Path, description = "`<plan id>:execute`")), request_body = Option<ExecuteRequest>, responses((status = 202, description = "Execution created and dispatched", body = Object), (status = 200, description = "The plan already has an execution", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound, (status = 405, description = "POST on a plan must end in :execute", body = carapulse_http::error::ErrorBody), (status = 409, description = "Plan not approved or modified", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn execute_colon(
    state: State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: OptionalJson<ExecuteRequest>,
) -> ApiResult<Response> {
    match id.strip_suffix(":execute") {
        Some(plan) => execute_plan(state, ctx, plan.to_owned(), body).await,
        None => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "POST on a plan must target /v1/plans/{id}/execute",
        )),
    }
}

#[utoipa::path(post, path = "/plans/{id}/execute", tag = "plans", summary = "Execute an approved (or approval-free) plan", params(("id" = String, Path, description = "Plan id (UUID)")), request_body = Option<ExecuteRequest>, responses((status = 202, description = "Execution created and dispatched", body = Object), (status = 200, description = "The plan already has an execution", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound, (status = 409, description = "Plan not approved or modified", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn execute(
    state: State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: OptionalJson<ExecuteRequest>,
) -> ApiResult<Response> {
    execute_plan(state, ctx, id, body).await
}

pub(crate) async fn execute_plan(
    State(state): State<AppState>,
    ctx: RequestContext,
    id: String,
    OptionalJson(body): OptionalJson<ExecuteRequest>,
) -> ApiResult<Response> {
    let plan_id = parse_plan_id(&id)?;
    if let Some(body) = &body {
        if body
            .plan_id
            .as_deref()
            .is_some_and(|p| p != plan_id.to_string())
        {
            return Err(ApiError::bad_request(
                "invalid_request",
                "plan_id in the body does not match the URL",
            ));
        }
        if body.note.as_deref().is_some_and(|n| n.len() > 2000) {
            return Err(ModelError::new("note", "at most 2000 characters").into());
        }
    }
    let tenant = ctx.tenant().clone();
    let plan = load_plan(&state, &ctx, plan_id).await?;
    // Running a plan drives tools with the router's credentials, even when every step only
    // reads: it takes a writer role, whatever the policy says about the steps.
    if !ctx.actor.has_any_role(&state.config.gateway.writer_roles) {
        return Err(refuse_execute(
            &state,
            &ctx,
            plan_id,
            "missing_write_role",
            ApiError::forbidden("forbidden", "executing a plan needs a writer role"),
        )
        .await);
    }
    let mut risk = score(
        plan.steps
            .iter()
            .flat_map(|s| step_calls(s.tool, &s.action, &s.input, s.rollback.as_ref())),
        &plan.intent,
        &plan.context,
    );
    // Never below what was recorded at creation (and covered by the approval hash).
    risk.level = risk.level.max(plan.risk_level);
    let action_type = if risk.level == RiskLevel::Read {
        ActionType::Read
    } else {
        ActionType::Write
    };
    // The estimate the plan was decided (or approved) with: execute asks policy creation's
    // question, so the answers agree unless policy itself changed.
    let blast_radius = crate::blast::stored(&plan);
    let (outcome, _) = state.decide_plan(
        &ctx,
        "plan.execute",
        action_type,
        &plan.context,
        &risk,
        plan.steps.iter().map(Into::into),
        blast_radius.as_ref(),
    );
    let resource = Some(("plan", plan_id.to_string()));
    if outcome.decision == Decision::Deny {
        return Err(policy_denied(&state, &ctx, "plan.execute", &outcome, resource).await);
    }
    if plan.constraints.get("break_glass_required") == Some(&Value::Bool(true)) && !ctx.break_glass
    {
        return Err(refuse_execute(
            &state,
            &ctx,
            plan_id,
            "break_glass_required",
            ApiError::forbidden(
                "break_glass_required",
                "this plan is high risk: execute it with X-Break-Glass: true and X-Break-Glass-Reason (needs a role from gateway.break_glass_roles)",
            ),
        )
        .await);
    }
    if outcome.decision == Decision::RequireApproval
        && plan.approval_state == PlanApprovalState::NotRequired
    {
        return Err(refuse_execute(
            &state,
            &ctx,
            plan_id,
            "policy_changed",
            ApiError::forbidden(
                "approval_required",
                "policy now requires approval for this plan; create a new plan",
            ),
        )
        .await);
    }
    // With an orchestrator that can wait, a plan still awaiting approval starts now and its run
    // blocks on the approval signal (durable timer until the approval deadline).
    let awaiting = plan.approval_state == PlanApprovalState::Pending
        && state.dispatcher.supports_approval_wait();
    let mode = if awaiting {
        StartMode::AwaitApproval
    } else {
        StartMode::RequireApproved
    };
    let await_approval_secs = awaiting.then(|| {
        plan.approval_expires_at
            .map(|deadline| (deadline - Utc::now()).num_seconds().max(1) as u64)
            .unwrap_or(state.config.approvals.timeout_hours * 3600)
    });
    let execution_id = ExecutionId::new();
    let entry = ctx
        .audit("plan.execute", AuditDecision::Allow)
        .resource("execution", execution_id)
        .context(json!({
            "plan_id": plan_id,
            "note": body.as_ref().and_then(|b| b.note.clone()),
            "break_glass": ctx.break_glass,
            "break_glass_reason": ctx.break_glass_reason,
        }));
    let options = StartOptions {
        mode,
        break_glass_reason: ctx.break_glass_reason.clone(),
        approval_validity: Duration::hours(
            i64::try_from(state.config.approvals.validity_hours).unwrap_or(24),
        ),
        now: Utc::now(),
    };
    let started = state
        .store
        .start_execution(
            &tenant,
            plan_id,
            execution_id,
            &ctx.actor.id,
            entry,
            options,
        )
        .await;
    let (execution, created) = match started {
        Ok(StartOutcome::Created(e)) => (e, true),
        Ok(StartOutcome::Existing(e)) => (e, false),
        Err(StoreError::Precondition(msg)) => {
            let err = ApiError::forbidden("approval_required", msg);
            return Err(refuse_execute(&state, &ctx, plan_id, "refused", err).await);
        }
        Err(StoreError::Integrity(msg)) => {
            let err = ApiError::conflict("plan_modified", msg);
            return Err(refuse_execute(&state, &ctx, plan_id, "tampered", err).await);
        }
        Err(other) => return Err(other.into()),
    };
    if !created {
        count_execute(&state, "existing");
        let body = json!({
            "execution_id": execution.execution_id,
            "plan_id": plan_id,
            "status": execution.status,
            "created": false,
            "workflow_id": execution.workflow_id,
        });
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    state.metrics.record_audit(true);
    count_execute(&state, "created");
    let request = DispatchRequest {
        execution_id: execution.execution_id,
        plan_id,
        tenant_id: tenant.clone(),
        await_approval_secs,
    };
    // The workflow start carries this span's trace context to Temporal (workflow headers).
    let dispatch_span = tracing::info_span!(
        "execution.dispatch",
        plan_id = %plan_id,
        execution_id = %execution.execution_id,
        tenant = %tenant,
    );
    let dispatched = state
        .dispatcher
        .dispatch(request)
        .instrument(dispatch_span)
        .await;
    let (workflow_id, dispatch_note) = match dispatched {
        Ok(DispatchOutcome::Started { workflow_id }) => {
            state
                .store
                .set_workflow_id(&tenant, execution.execution_id, &workflow_id)
                .await?;
            (Some(workflow_id), None)
        }
        Ok(DispatchOutcome::Queued { reason }) => (None, Some(reason)),
        Err(err) => {
            tracing::warn!(error = %err, execution_id = %execution.execution_id, "dispatch failed; execution stays pending");
            let mut api = ApiError::unavailable(format!(
                "execution {} was created but could not be started: {err}; it stays pending",
                execution.execution_id
            ));
            api.code = "orchestrator_unavailable";
            return Err(api);
        }
    };
    let body = json!({
        "execution_id": execution.execution_id,
        "plan_id": plan_id,
        "status": execution.status,
        "created": true,
        "workflow_id": workflow_id,
        "dispatch": dispatch_note,
        "awaiting_approval": awaiting,
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Audits a refused execute (reason = the error message), counts it under `outcome`, and
/// returns the error for the caller.
async fn refuse_execute(
    state: &AppState,
    ctx: &RequestContext,
    plan_id: PlanId,
    outcome: &str,
    err: ApiError,
) -> ApiError {
    state
        .audit(
            ctx.audit("plan.execute", AuditDecision::Deny)
                .resource("plan", plan_id)
                .reason(err.message.clone()),
        )
        .await;
    count_execute(state, outcome);
    err
}

fn count_execute(state: &AppState, outcome: &str) {
    state
        .metrics
        .executions_started
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: outcome.into(),
        })
        .inc();
}
