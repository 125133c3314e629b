//! `GET /v1/executions` and `GET /v1/executions/{id}`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use carapulse_core::model::{ExecutionId, ExecutionStatus, PlanId};
use carapulse_core::store::{ExecutionFilter, Page, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::{page_json, require_read};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecutionListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    status: Option<ExecutionStatus>,
    plan_id: Option<String>,
}

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
    };
    let page = state
        .store
        .list_executions(ctx.tenant(), &filter, Page::new(q.limit, q.offset))
        .await?;
    Ok(Json(page_json(&page)))
}

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
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("execution"),
            other => other.into(),
        })?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}
