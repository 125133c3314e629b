//! `GET /v1/workflows`, `GET /v1/workflows/{name}` (with the tenant's versions),
//! `POST /v1/workflows/{name}/versions` and `POST /v1/workflows/{name}/start`: catalogue workflows become plans
//! (policy, approval, the same loop) and start at once when no approval is needed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::ModelError;
use carapulse_core::model::{ContextRef, PlanApprovalState};
use carapulse_core::store::StoreError;
use carapulse_core::workflows::{find, with_defaults, CATALOGUE};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, OptionalJson};
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::plans::{
    create_plan, created_json, deprecated, deprecations, execute_plan, preview_plan,
    PlanCreateRequest,
};
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

#[utoipa::path(get, path = "/workflows/{name}", tag = "workflows", summary = "One catalogue workflow: description, input schema and the steps it builds", params(("name" = String, Path, description = "Catalogue workflow name")), responses((status = 200, description = "`{name, description, input_schema}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "workflow.get").await?;
    let template = find(&name).ok_or_else(|| ApiError::not_found("workflow"))?;
    let versions = state
        .store
        .workflow_versions(ctx.tenant(), template.name, 50)
        .await?;
    let mut body = template.describe();
    body["versions"] = json!(versions);
    Ok(Json(body))
}

/// Body of a new workflow version: input defaults (validated against the template) and an
/// optional description of when to use it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionRequest {
    defaults: Value,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: Option<String>,
}

#[utoipa::path(post, path = "/workflows/{name}/versions", tag = "workflows", summary = "Store the next version of a workflow for your tenant: input defaults a start at that version fills in (writers)", params(("name" = String, Path, description = "Catalogue workflow name")), request_body = VersionRequest, responses((status = 201, description = "The version", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn add_version(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<VersionRequest>,
) -> ApiResult<Response> {
    let template = find(&name).ok_or_else(|| ApiError::not_found("workflow"))?;
    super::library::require_writer(&state, &ctx, "workflow.version.create").await?;
    template.check_defaults(&body.defaults)?;
    if body
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        return Err(ModelError::new("description", "at most 2000 characters").into());
    }
    let spec = json!({"defaults": body.defaults, "description": body.description, "created_by": ctx.actor.id});
    let entry = ctx
        .audit("workflow.version.create", AuditDecision::Allow)
        .context(json!({"workflow": template.name}));
    let version = state
        .store
        .add_workflow_version(ctx.tenant(), template.name, &spec, entry)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(version))).into_response())
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
    /// Start at this stored version: its input defaults fill the fields `input` leaves out.
    #[serde(default)]
    version: Option<i32>,
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
    let mut given = body.input;
    let mut notices = carapulse_core::tools::compat::upgrade_input(template.name, &mut given);
    let (input, version) = match body.version {
        None => (given, None),
        Some(n) => {
            let stored = state
                .store
                .workflow_version(ctx.tenant(), template.name, n)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => ApiError::not_found("workflow version"),
                    other => other.into(),
                })?;
            let merged = with_defaults(&given, &stored.spec["defaults"]);
            (merged, Some(n))
        }
    };
    let steps = template.steps(&input)?;
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
        alert_planning: None,
        draft: None,
        schedule: None,
        preview: false,
    };
    let workflow = json!({"name": template.name, "input": input, "version": version});
    if body.preview {
        let mut preview = preview_plan(&state, &ctx, request, Some(workflow)).await?;
        preview["workflow"] = json!(template.name);
        notices.extend(deprecations(&preview["plan"]["meta"]));
        return Ok(deprecated(Json(preview).into_response(), &notices));
    }
    let (plan, outcome) = create_plan(&state, &ctx, request, Some(workflow)).await?;
    notices.extend(deprecations(&plan.meta));
    if plan.approval_state == PlanApprovalState::Pending {
        let mut created = created_json(&plan, &outcome);
        created["workflow"] = json!(template.name);
        return Ok(deprecated(
            (StatusCode::CREATED, Json(created)).into_response(),
            &notices,
        ));
    }
    let started = execute_plan(
        State(state),
        ctx,
        plan.plan_id.to_string(),
        OptionalJson(None),
    )
    .await?;
    Ok(deprecated(started, &notices))
}
