//! `/v1/plans/{id}/revisions` and `/v1/plans/{id}/diff`: revise a plan that is not running, list
//! and read its revisions, and see what changed between two of them. The rules live in
//! `crate::revisions`; these handlers only translate HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use carapulse_core::model::{ModelError, PlanId};
use carapulse_core::store::{StoreError, MAX_REVISIONS};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::RequestContext;
use crate::revisions::{diff_of, outcome_json, revise, ReviseRequest};
use crate::state::AppState;

use super::require_read;

fn plan_id(raw: &str) -> Result<PlanId, ApiError> {
    PlanId::parse(raw).map_err(|_| ApiError::not_found("plan"))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("plan revision"),
        other => other.into(),
    }
}

/// Reads need the read policy and, for a session's plan, membership.
async fn readable(state: &AppState, ctx: &RequestContext, id: PlanId) -> Result<i32, ApiError> {
    require_read(state, ctx, "plan.get").await?;
    let plan = super::plans::load_plan(state, ctx, id).await?;
    super::sessions::require_visible(state, ctx, plan.session_id.as_deref(), "plan").await?;
    Ok(plan.revision)
}

#[utoipa::path(post, path = "/plans/{id}/revisions", tag = "plans", summary = "Revise a plan that is not running: new steps, constraints, summary or intent (or replan); re-validated, re-scored and re-decided by policy; earlier approvals are superseded", params(("id" = String, Path, description = "Plan id (UUID)")), request_body = ReviseRequest, responses((status = 201, description = "`{plan_id, revision, hash, approval_required, superseded_approvals, policy, diff, plan}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound, (status = 409, description = "An execution of the plan is active", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReviseRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let outcome = revise(&state, &ctx, plan_id(&id)?, body).await?;
    Ok((StatusCode::CREATED, Json(outcome_json(&outcome))))
}

#[utoipa::path(get, path = "/plans/{id}/revisions", tag = "plans", summary = "The plan's revisions, oldest first (number, author, time, note, hash)", params(("id" = String, Path, description = "Plan id (UUID)")), responses((status = 200, description = "`{plan_id, current, data: [...]}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = plan_id(&id)?;
    let current = readable(&state, &ctx, id).await?;
    let revisions = state.store.plan_revisions(ctx.tenant(), id).await?;
    let data: Vec<Value> = revisions
        .iter()
        .map(|r| {
            json!({
                "revision": r.revision,
                "created_at": r.created_at,
                "created_by": r.created_by,
                "note": r.note,
                "hash": r.hash,
                "risk_level": r.snapshot["risk_level"],
                "policy_decision": r.snapshot["policy_decision"],
                "steps": r.snapshot["steps"].as_array().map(Vec::len),
            })
        })
        .collect();
    Ok(Json(
        json!({"plan_id": id, "current": current, "data": data}),
    ))
}

/// A revision number from the path or query: 1..=MAX_REVISIONS.
fn revision_number(field: &str, raw: &str) -> Result<i32, ApiError> {
    raw.trim()
        .parse::<i32>()
        .ok()
        .filter(|n| (1..=MAX_REVISIONS).contains(n))
        .ok_or_else(|| {
            ModelError::new(field, format!("a revision number, 1 to {MAX_REVISIONS}")).into()
        })
}

#[utoipa::path(get, path = "/plans/{id}/revisions/{revision}", tag = "plans", summary = "One revision of a plan, whole: its steps, risk, policy decision and reasons, hash", params(("id" = String, Path, description = "Plan id (UUID)"), ("revision" = String, Path, description = "Revision number (1 = as created)")), responses((status = 200, description = "`{revision, created_at, created_by, note, hash, plan}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, revision)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = plan_id(&id)?;
    let revision = revision_number("revision", &revision)?;
    readable(&state, &ctx, id).await?;
    let r = state
        .store
        .plan_revision(ctx.tenant(), id, revision)
        .await
        .map_err(not_found)?;
    Ok(Json(json!({
        "plan_id": id,
        "revision": r.revision,
        "created_at": r.created_at,
        "created_by": r.created_by,
        "note": r.note,
        "hash": r.hash,
        "plan": r.snapshot,
    })))
}

/// Query of `GET /v1/plans/{id}/diff`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffQuery {
    /// The older revision (default: the one before `to`).
    from: Option<String>,
    /// The newer revision (default: the current one).
    to: Option<String>,
}

#[utoipa::path(get, path = "/plans/{id}/diff", tag = "plans", summary = "What changed between two revisions, keyed by step identity (tool, action, target): steps added, removed, moved and changed field by field; summary, constraints, risk, blast radius and policy before/after; a one-line summary and a rendering for people", params(("id" = String, Path, description = "Plan id (UUID)"), DiffQuery), responses((status = 200, description = "`{from, to, added, removed, moved, changed, plan, summary, text}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn diff(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<Value>> {
    let id = plan_id(&id)?;
    let current = readable(&state, &ctx, id).await?;
    let to = match q.to.as_deref() {
        Some(raw) => revision_number("to", raw)?,
        None => current,
    };
    let from = match q.from.as_deref() {
        Some(raw) => revision_number("from", raw)?,
        None => (to - 1).max(1),
    };
    if from > to {
        return Err(ModelError::new("from", "must not be after `to`").into());
    }
    let revisions = state.store.plan_revisions(ctx.tenant(), id).await?;
    let find = |n: i32| {
        revisions
            .iter()
            .find(|r| r.revision == n)
            .ok_or_else(|| ApiError::not_found("plan revision"))
    };
    let diff = diff_of(find(from)?, find(to)?);
    Ok(Json(serde_json::to_value(diff).unwrap_or(Value::Null)))
}
