//! `GET /v1/executions`, `GET /v1/executions/{id}` (with what the run observed), cancelling,
//! and answering an inconclusive analysis.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use carapulse_core::model::{ExecutionId, ExecutionStatus, PlanId};
use carapulse_core::store::{ExecutionFilter, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract;
use crate::extract::ApiQuery;
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::{page_json, require_read};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecutionListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    /// Start after the last row of a previous page: its `pagination.next_cursor`. Not with `offset`.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// `exact` or `estimate` adds `pagination.total`; without it a page costs only its rows.
    #[param(pattern = "^(none|exact|estimate)$")]
    count: Option<String>,
    status: Option<ExecutionStatus>,
    #[param(format = Uuid)]
    plan_id: Option<String>,
}

#[utoipa::path(get, path = "/executions", tag = "executions", summary = "List executions, newest first", params(ExecutionListQuery), responses((status = 200, description = "One page of executions", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<ExecutionListQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "execution.list").await?;
    let plan_id = match q.plan_id.as_deref() {
        Some(raw) => Some(
            PlanId::parse(raw)
                .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?,
        ),
        None => None,
    };
    let filter = ExecutionFilter {
        status: q.status,
        plan_id,
        visible_to: super::sessions::session_scope(&state, &ctx),
    };
    let page = state
        .store
        .list_executions(
            ctx.tenant(),
            &filter,
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

#[utoipa::path(get, path = "/executions/{id}", tag = "executions", summary = "An execution with its steps, tool calls and evidence", params(("id" = String, Path, description = "Execution id (UUID)")), responses((status = 200, description = "The execution", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "execution.get").await?;
    let id = ExecutionId::parse(&id).map_err(|_| ApiError::not_found("execution"))?;
    let view = state
        .store
        .get_execution_view(ctx.tenant(), id)
        .await
        .map_err(execution_not_found)?;
    require_execution_visible(&state, &ctx, view.execution.plan_id).await?;
    let report = carapulse_core::verify::report::execution_report(&view.evidence, &view.steps);
    let mut body = serde_json::to_value(view).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        map.insert("verification".into(), report);
    }
    Ok(Json(body))
}

/// A store error reading an execution: a missing one (or another tenant's) is a 404.
pub(crate) fn execution_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("execution"),
        other => other.into(),
    }
}

/// Session scoping of an execution: through its plan's session.
pub(crate) async fn require_execution_visible(
    state: &AppState,
    ctx: &RequestContext,
    plan_id: PlanId,
) -> Result<(), ApiError> {
    if super::sessions::session_scope(state, ctx).is_none() {
        return Ok(());
    }
    let plan = state
        .store
        .get_plan(ctx.tenant(), plan_id)
        .await
        .map_err(|_| ApiError::not_found("execution"))?;
    super::sessions::require_visible(state, ctx, plan.session_id.as_deref(), "execution").await
}

/// Optional body of cancel.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelRequest {
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// `POST /v1/executions/{id}/cancel`: signals the workflow to stop and compensate; an execution
/// that never reached the orchestrator is cancelled directly.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions", summary = "Cancel a running execution (completed act steps are compensated)", params(("id" = String, Path, description = "Execution id (UUID)")), request_body = Option<CancelRequest>, responses((status = 202, description = "Cancel signalled to the running workflow", body = Object), (status = 200, description = "A pending execution cancelled directly", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound, (status = 409, description = "The execution already finished", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    extract::OptionalJson(body): extract::OptionalJson<CancelRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use carapulse_core::audit::AuditDecision;
    let id = ExecutionId::parse(&id).map_err(|_| ApiError::not_found("execution"))?;
    let reason = body
        .and_then(|b| b.reason)
        .unwrap_or_else(|| format!("cancelled by {}", ctx.actor.id));
    if reason.chars().count() > 500 {
        return Err(
            carapulse_core::model::ModelError::new("reason", "at most 500 characters").into(),
        );
    }
    if !ctx.actor.has_any_role(&state.config.gateway.writer_roles) {
        state
            .audit(
                ctx.audit("execution.cancel", AuditDecision::Deny)
                    .resource("execution", id)
                    .reason("actor lacks a writer role"),
            )
            .await;
        return Err(ApiError::forbidden(
            "forbidden",
            "cancelling needs a writer role",
        ));
    }
    let execution = state
        .store
        .get_execution(ctx.tenant(), id)
        .await
        .map_err(execution_not_found)?;
    if !execution.status.is_active() {
        return Err(ApiError::conflict(
            "already_finished",
            format!("execution is {}", execution.status.as_str()),
        ));
    }
    let entry = ctx
        .audit("execution.cancel", AuditDecision::Allow)
        .resource("execution", id)
        .reason(reason.clone());
    match execution.workflow_id.clone() {
        Some(workflow_id) => {
            state
                .dispatcher
                .cancel(workflow_id, reason)
                .await
                .map_err(|e| {
                    let mut err =
                        ApiError::unavailable(format!("could not reach the orchestrator: {e}"));
                    err.code = "orchestrator_unavailable";
                    err
                })?;
            state.audit(entry).await;
            Ok((
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"execution_id": id, "status": "cancelling"})),
            )
                .into_response())
        }
        None => {
            let done = state
                .store
                .transition_execution(ctx.tenant(), id, ExecutionStatus::Cancelled, Some(&reason))
                .await?;
            state.audit(entry).await;
            Ok((
                StatusCode::OK,
                Json(serde_json::json!({"execution_id": id, "status": done.status})),
            )
                .into_response())
        }
    }
}

/// Body of `POST /v1/executions/{id}/decision`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionRequest {
    decision: crate::decisions::DecisionKind,
    #[serde(default)]
    #[schema(max_length = 500)]
    note: Option<String>,
}

/// `POST /v1/executions/{id}/decision`: continue past, or roll back after, an inconclusive
/// analysis the execution is waiting on.
#[utoipa::path(post, path = "/executions/{id}/decision", tag = "executions", summary = "Answer an inconclusive analysis: continue or roll back", params(("id" = String, Path, description = "Execution id (UUID)")), request_body = DecisionRequest, responses((status = 202, description = "Decision delivered to the waiting run", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound, (status = 409, description = "No analysis of this execution is waiting for a decision", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn decision(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    extract::ApiJson(body): extract::ApiJson<DecisionRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    let id = ExecutionId::parse(&id).map_err(|_| ApiError::not_found("execution"))?;
    let ordinal = crate::decisions::decide(&state, &ctx, id, body.decision, body.note).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(
            serde_json::json!({"execution_id": id, "decision": body.decision.as_str(), "step": ordinal}),
        ),
    ))
}
