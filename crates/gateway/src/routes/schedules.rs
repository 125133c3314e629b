//! `/v1/schedules`: cron schedules (with time zones) that start a catalogue workflow or plan an
//! intent on time. Inputs are validated when the schedule is written, not when it fires.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{ContextRef, ModelError};
use carapulse_core::schedule::CronSchedule;
use carapulse_core::store::{NewSchedule, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::library::require_writer;
use super::{page_json, require_read};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkflowRef {
    name: String,
    #[serde(default)]
    input: Value,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    summary: String,
    /// Five-field cron; `scheduler.default_cron` when left out.
    #[serde(default)]
    cron: Option<String>,
    #[serde(default = "utc")]
    timezone: String,
    #[serde(default)]
    intent: String,
    #[serde(default)]
    workflow: Option<WorkflowRef>,
    context: ContextRef,
    #[serde(default)]
    constraints: Option<Value>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "skip")]
    missed_run_policy: String,
}

fn utc() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}
fn skip() -> String {
    "skip".into()
}

fn validate(
    ctx: &RequestContext,
    b: ScheduleBody,
    default_cron: Option<&str>,
) -> Result<NewSchedule, ApiError> {
    let summary = carapulse_core::model::Summary::parse(&b.summary)?;
    let expression = match b.cron.as_deref().or(default_cron) {
        Some(expression) => expression,
        None => {
            return Err(ModelError::new(
                "cron",
                "required (no scheduler.default_cron is configured)",
            )
            .into())
        }
    };
    let cron = CronSchedule::parse(expression, &b.timezone)?;
    if !matches!(b.missed_run_policy.as_str(), "skip" | "run_once") {
        return Err(ModelError::new("missed_run_policy", "must be skip or run_once").into());
    }
    let mut context = b.context;
    if !context.tenant_id.is_empty() && context.tenant_id != ctx.tenant().as_str() {
        return Err(ApiError::forbidden(
            "tenant_mismatch",
            "context.tenant_id does not match your token",
        ));
    }
    context.tenant_id = ctx.tenant().to_string();
    context.validate()?;
    let intent = carapulse_core::model::Intent::parse(&b.intent)?;
    let (workflow_name, workflow_input) = match b.workflow {
        Some(w) => {
            let template = carapulse_core::workflows::find(&w.name).ok_or_else(|| {
                ModelError::new(
                    "workflow.name",
                    format!("{:?} is not in the catalogue", w.name),
                )
            })?;
            template.steps(&w.input).map_err(|e| e.within("workflow"))?;
            (Some(w.name), w.input)
        }
        None if intent.is_empty() => {
            return Err(ModelError::new("workflow", "give a workflow or an intent to plan").into());
        }
        None => (None, json!({})),
    };
    let constraints = match b.constraints {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(m)) => Value::Object(m),
        Some(_) => return Err(ModelError::new("constraints", "must be a JSON object").into()),
    };
    let next_run_at = if b.enabled {
        Some(cron.next_after(Utc::now())?)
    } else {
        None
    };
    Ok(NewSchedule {
        cron: expression.split_whitespace().collect::<Vec<_>>().join(" "),
        timezone: b.timezone.trim().to_owned(),
        summary: summary.as_str().to_owned(),
        intent: intent.as_str().to_owned(),
        workflow_name,
        workflow_input,
        context: serde_json::to_value(&context).unwrap_or_default(),
        constraints,
        enabled: b.enabled,
        missed_run_policy: b.missed_run_policy,
        next_run_at,
    })
}

fn id_of(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("schedule"))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("schedule"),
        other => other.into(),
    }
}

#[utoipa::path(post, path = "/schedules", tag = "schedules", summary = "Create a cron schedule", request_body = ScheduleBody, responses((status = 201, description = "The schedule with its next run", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<ScheduleBody>,
) -> ApiResult<Response> {
    require_writer(&state, &ctx, "schedule.create").await?;
    let new = validate(&ctx, b, state.config.scheduler.default_cron.as_deref())?;
    let entry = ctx
        .audit("schedule.create", AuditDecision::Allow)
        .context(json!({"cron": new.cron, "timezone": new.timezone}));
    let s = state
        .store
        .create_schedule(ctx.tenant(), ctx.actor.id.as_str(), &new, entry)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(s))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    /// Start after the last row of a previous page: its `pagination.next_cursor`. Not with `offset`.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// `exact` or `estimate` adds `pagination.total`; without it a page costs only its rows.
    #[param(pattern = "^(none|exact|estimate)$")]
    count: Option<String>,
    enabled: Option<bool>,
}

#[utoipa::path(get, path = "/schedules", tag = "schedules", summary = "List schedules", params(ListQuery), responses((status = 200, description = "One page of schedules", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "schedule.list").await?;
    let page = state
        .store
        .list_schedules(
            ctx.tenant(),
            q.enabled,
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules", summary = "One schedule", params(("id" = String, Path, description = "Schedule id (UUID)")), responses((status = 200, description = "The schedule", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "schedule.get").await?;
    let s = state
        .store
        .get_schedule(ctx.tenant(), id_of(&id)?)
        .await
        .map_err(not_found)?;
    Ok(Json(json!(s)))
}

#[utoipa::path(put, path = "/schedules/{id}", tag = "schedules", summary = "Replace a schedule", params(("id" = String, Path, description = "Schedule id (UUID)")), request_body = ScheduleBody, responses((status = 200, description = "The schedule", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ScheduleBody>,
) -> ApiResult<Json<Value>> {
    require_writer(&state, &ctx, "schedule.update").await?;
    let id = id_of(&id)?;
    let new = validate(&ctx, b, state.config.scheduler.default_cron.as_deref())?;
    let s = state
        .store
        .update_schedule(
            ctx.tenant(),
            id,
            &new,
            ctx.audit("schedule.update", AuditDecision::Allow),
        )
        .await
        .map_err(not_found)?;
    Ok(Json(json!(s)))
}

#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules", summary = "Delete a schedule", params(("id" = String, Path, description = "Schedule id (UUID)")), responses((status = 204, description = "Deleted"), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_writer(&state, &ctx, "schedule.delete").await?;
    let id = id_of(&id)?;
    state
        .store
        .delete_schedule(
            ctx.tenant(),
            id,
            ctx.audit("schedule.delete", AuditDecision::Allow),
        )
        .await
        .map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}
