//! `POST /v1/plans/{id}/whatif` and `POST /v1/policy/whatif`: what policy — the loaded one and
//! a candidate side by side — decides about a stored plan or an unsaved draft, step by step,
//! with the rules behind each answer. The rules live in `crate::whatif`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{ContextRef, Intent, PlanId, StepDraft};

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::middleware::RequestContext;
use crate::state::AppState;
use crate::whatif::{check_steps, compile_candidate, judged_as, whatif, Candidate};

use super::require_read;

/// Body of `POST /v1/plans/{id}/whatif`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanWhatIf {
    /// A candidate policy to compare with the loaded one.
    #[serde(default)]
    candidate: Option<Candidate>,
}

/// An unsaved plan.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DraftPlan {
    #[serde(default)]
    #[schema(max_length = 4000)]
    intent: String,
    context: ContextRef,
    #[serde(default)]
    steps: Vec<StepDraft>,
}

/// Body of `POST /v1/policy/whatif`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DraftWhatIf {
    plan: DraftPlan,
    #[serde(default)]
    candidate: Option<Candidate>,
}

/// Compiles the candidate (when there is one) and runs `judge` on a blocking thread: both are
/// CPU work of milliseconds that would stall other requests on an async worker.
async fn off_the_workers(
    state: &AppState,
    candidate: Option<Candidate>,
    judge: impl FnOnce(&AppState, Option<&carapulse_core::policy::PolicyEngine>) -> Value
        + Send
        + 'static,
) -> Result<Value, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let candidate = candidate
            .as_ref()
            .map(|c| compile_candidate(&state, c))
            .transpose()?;
        Ok(judge(&state, candidate.as_deref()))
    })
    .await
    .map_err(|_| ApiError::internal())?
}

/// The names of a candidate's files, for the audit event (the candidate itself moves to the
/// blocking thread that compiles it).
fn candidate_files(candidate: Option<&Candidate>) -> Option<Vec<String>> {
    candidate.map(|c| c.files.keys().cloned().collect())
}

/// Records the question. A what-if changes nothing, so its answer does not wait for the event
/// to commit (about half of an answer's time), and the event is batched with others asked
/// within a few milliseconds (`AppState::audit_soon`): one commit per request competed with the
/// next requests and was most of the answer's tail. A failure is logged and counted like any
/// other audit failure.
fn audited(
    state: &AppState,
    ctx: &RequestContext,
    plan: Option<PlanId>,
    answer: &Value,
    files: Option<Vec<String>>,
) {
    let entry = ctx
        .audit("policy.whatif", AuditDecision::Info)
        .context(json!({
            "plan_id": plan,
            "candidate_files": files,
            "plan_changed": answer["plan"]["changed"],
            "steps": answer["steps"].as_array().map(Vec::len),
        }));
    state.audit_soon(entry);
}

#[utoipa::path(post, path = "/plans/{id}/whatif", tag = "policy", summary = "What the loaded policy (and a candidate, side by side) decides about this plan and each of its steps, with the rules behind each answer; nothing is stored but an audit event", params(("id" = String, Path, description = "Plan id (UUID)")), request_body = PlanWhatIf, responses((status = 200, description = "`{plan: {current, candidate, changed}, steps: [{index, step, current, candidate, changed}], candidate_files}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn plan(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PlanWhatIf>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "plan.get").await?;
    let plan_id = PlanId::parse(&id).map_err(|_| ApiError::not_found("plan"))?;
    let plan = super::plans::load_plan(&state, &ctx, plan_id).await?;
    super::sessions::require_visible(&state, &ctx, plan.session_id.as_deref(), "plan").await?;
    let steps: Vec<StepDraft> = plan.steps.iter().map(StepDraft::from).collect();
    let asker = judged_as(&state, &ctx, Some(&plan.created_by));
    let files = candidate_files(body.candidate.as_ref());
    let blast_radius = crate::blast::stored(&plan);
    let answer = off_the_workers(&state, body.candidate, move |state, candidate| {
        whatif(
            state,
            &asker,
            &plan.context,
            &plan.intent,
            &steps,
            blast_radius.as_ref(),
            candidate,
        )
    })
    .await?;
    audited(&state, &ctx, Some(plan_id), &answer, files);
    Ok(Json(answer))
}

#[utoipa::path(post, path = "/policy/whatif", tag = "policy", summary = "What-if for an unsaved plan: the loaded policy (and a candidate) on the draft and each of its steps, with the rules behind each answer", request_body = DraftWhatIf, responses((status = 200, description = "As `POST /v1/plans/{id}/whatif`", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn draft(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(body): ApiJson<DraftWhatIf>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "policy.evaluate").await?;
    let mut context = body.plan.context;
    if !context.tenant_id.is_empty() && context.tenant_id != ctx.tenant().as_str() {
        return Err(ApiError::forbidden(
            "tenant_mismatch",
            "plan.context.tenant_id does not match the tenant of your token",
        ));
    }
    context.tenant_id = ctx.tenant().to_string();
    context.validate().map_err(|e| e.within("plan"))?;
    let intent = Intent::parse(&body.plan.intent).map_err(|e| e.within("plan"))?;
    check_steps(&body.plan.steps)?;
    let asker = judged_as(&state, &ctx, None);
    let steps = body.plan.steps.clone();
    let files = candidate_files(body.candidate.as_ref());
    let blast_radius = crate::blast::estimate(&state, ctx.tenant(), &steps).await;
    let answer = off_the_workers(&state, body.candidate, move |state, candidate| {
        whatif(
            state,
            &asker,
            &context,
            &intent,
            &steps,
            Some(&blast_radius),
            candidate,
        )
    })
    .await?;
    audited(&state, &ctx, None, &answer, files);
    Ok(Json(answer))
}

/// Impact runs in flight on this gateway (one).
static IMPACT_RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Body of `POST /v1/policy/impact`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImpactRequest {
    candidate: Candidate,
    /// Start of the window: RFC 3339 or an age (`7d`, `24h`, `30m`); default 7 days ago.
    #[serde(default)]
    since: Option<String>,
    /// End of the window (exclusive); default now.
    #[serde(default)]
    until: Option<String>,
    /// Most decisions to re-evaluate (1 to 100,000; default 10,000).
    #[serde(default)]
    limit: Option<i64>,
    /// Run as a background job: answer 202 with its id at once; progress on the event stream
    /// (`policy.impact`), the report from `GET /v1/policy/impact/{job_id}`.
    #[serde(default)]
    background: bool,
}

#[utoipa::path(post, path = "/policy/impact", tag = "policy", summary = "Re-evaluate the tenant's stored decisions of a window under a candidate policy: what would change (old -> new decision, by action and environment, samples)", request_body = ImpactRequest, responses((status = 200, description = "`{window, evaluated, changed, by_transition, by_action, by_environment, samples, truncated}`", body = Object), (status = 202, description = "`background`: the job started: `{job_id, status, total, window}`", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn impact(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(body): ApiJson<ImpactRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    // Writers (and admins) only: a run re-evaluates up to 100,000 decisions.
    super::library::require_writer(&state, &ctx, "policy.impact").await?;
    let now = chrono::Utc::now();
    let since = match body.since.as_deref() {
        Some(raw) => crate::whatif::parse_when("since", raw, now)?,
        None => now - chrono::Duration::days(7),
    };
    let until = match body.until.as_deref() {
        Some(raw) => crate::whatif::parse_when("until", raw, now)?,
        None => now,
    };
    if since >= until {
        return Err(
            carapulse_core::model::ModelError::new("since", "must be before `until`").into(),
        );
    }
    let limit = body.limit.unwrap_or(10_000);
    if !(1..=crate::whatif::MAX_IMPACT_DECISIONS).contains(&limit) {
        return Err(carapulse_core::model::ModelError::new(
            "limit",
            format!("1 to {}", crate::whatif::MAX_IMPACT_DECISIONS),
        )
        .into());
    }
    let candidate = compile_candidate(&state, &body.candidate)?;
    // One run at a time per gateway: a second caller is told to retry rather than queue CPU.
    let Ok(_running) = IMPACT_RUNS.try_acquire() else {
        let mut err = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "impact_busy",
            "a policy impact run is in progress on this gateway; retry shortly",
        );
        err.retry_after_secs = Some(5);
        return Err(err);
    };
    if body.background {
        let total = state
            .store
            .count_decisions(ctx.tenant(), since, until, limit)
            .await?;
        let job = uuid::Uuid::now_v7();
        let window = json!({"since": since, "until": until, "limit": limit});
        state
            .store
            .start_impact_job(ctx.tenant(), job, ctx.actor.id.as_str(), total, &window)
            .await?;
        state
            .audit(
                ctx.audit("policy.impact", AuditDecision::Info)
                    .context(json!({
                        "candidate_files": body.candidate.files.keys().collect::<Vec<_>>(),
                        "since": since, "until": until, "job_id": job, "background": true,
                        "total": total,
                    })),
            )
            .await;
        crate::whatif::spawn_impact_job(
            state.clone(),
            ctx.tenant().clone(),
            job,
            candidate,
            since,
            until,
            limit,
            _running,
        );
        let started = json!({"job_id": job, "status": "running", "total": total, "window": window});
        return Ok((axum::http::StatusCode::ACCEPTED, Json(started)));
    }
    let report =
        crate::whatif::impact(&state, ctx.tenant(), candidate, since, until, limit, None).await?;
    state
        .audit(
            ctx.audit("policy.impact", AuditDecision::Info)
                .context(json!({
                    "candidate_files": body.candidate.files.keys().collect::<Vec<_>>(),
                    "since": since, "until": until,
                    "evaluated": report.evaluated, "changed": report.changed,
                })),
        )
        .await;
    let mut answer = serde_json::to_value(&report).unwrap_or(Value::Null);
    answer["window"] = json!({"since": since, "until": until, "limit": limit});
    Ok((axum::http::StatusCode::OK, Json(answer)))
}

#[utoipa::path(get, path = "/policy/impact/{job_id}", tag = "policy", summary = "A background policy impact job: status (running, done, failed, abandoned), progress, and its report once done", params(("job_id" = String, Path, description = "the job id (UUID) `POST /v1/policy/impact` answered with")), responses((status = 200, description = "`{job_id, status, total, evaluated, changed, window, report, error, ...}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn impact_job(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(job_id): Path<String>,
) -> ApiResult<Json<Value>> {
    // The report carries decisions' plans and reasons: who may run impact may read it.
    super::library::require_writer(&state, &ctx, "policy.impact.read").await?;
    // Not a job id: no such job (the JSON error every route gives, not the extractor's text).
    let job_id =
        uuid::Uuid::parse_str(job_id.trim()).map_err(|_| ApiError::not_found("impact job"))?;
    let Some(job) = state.store.impact_job(ctx.tenant(), job_id).await? else {
        return Err(ApiError::not_found("impact job"));
    };
    Ok(Json(serde_json::to_value(job).unwrap_or(Value::Null)))
}
