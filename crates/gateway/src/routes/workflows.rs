//! `GET /v1/workflows` and `POST /v1/workflows/{name}/start`: catalogue workflows become plans
//! (policy, approval, the same loop) and start at once when no approval is needed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use carapulse_core::model::{ContextRef, PlanApprovalState};
use carapulse_core::workflows::{find, CATALOGUE};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, OptionalJson};
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::plans::{create_plan, created_json, execute_plan, preview_plan, PlanCreateRequest};
use super::require_read;

#[utoipa::path(get, path = "/workflows", tag = "workflows", summary = "The workflow catalogue with each template's inputs", responses((status = 200, description = "`{data: [...]}`", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "workflow.list").await?;
    let data: Vec<Value> = CATALOGUE.iter().map(|t| t.describe()).collect();
    Ok(Json(json!({"data": data})))
}

/// Body of a workflow start.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRequest {
    #[serde(default)]
    input: Value,
    context: ContextRef,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    constraints: Option<Value>,
    /// Build the plan and ask policy, store nothing: 200 with the would-be plan.
    #[serde(default)]
    preview: bool,
}

#[utoipa::path(post, path = "/workflows/{name}/start", tag = "workflows", summary = "Turn a catalogue workflow into a plan and start it when no approval is needed", params(("name" = String, Path, description = "Catalogue workflow name")), request_body = StartRequest, responses((status = 201, description = "Plan created and waiting for approval", body = Object), (status = 200, description = "With `preview: true`: the plan that would be created; nothing is stored or started", body = Object), (status = 202, description = "Plan created and execution started", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn start(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<StartRequest>,
) -> ApiResult<Response> {
    let template = find(&name).ok_or_else(|| ApiError::not_found("workflow"))?;
    let steps = template.steps(&body.input)?;
    let request = PlanCreateRequest {
        summary: body
            .summary
            .unwrap_or_else(|| format!("{} workflow", template.name)),
        trigger: ctx.trigger(),
        intent: String::new(),
        context: body.context,
        constraints: body.constraints,
        session_id: None,
        steps,
        alert: None,
        draft: None,
        schedule: None,
        preview: false,
    };
    let workflow = json!({"name": template.name, "input": body.input});
    if body.preview {
        let mut preview = preview_plan(&state, &ctx, request, Some(workflow)).await?;
        preview["workflow"] = json!(template.name);
        return Ok(Json(preview).into_response());
    }
    let (plan, outcome) = create_plan(&state, &ctx, request, Some(workflow)).await?;
    if plan.approval_state == PlanApprovalState::Pending {
        let mut created = created_json(&plan, &outcome);
        created["workflow"] = json!(template.name);
        return Ok((StatusCode::CREATED, Json(created)).into_response());
    }
    execute_plan(
        State(state),
        ctx,
        plan.plan_id.to_string(),
        OptionalJson(None),
    )
    .await
}
