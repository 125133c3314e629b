//! `POST /v1/replays`, `GET /v1/replays`, `GET /v1/replays/{id}`: incident replay over HTTP.
//! The replay itself lives in `crate::replay`; these handlers only check who asks and translate.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use carapulse_core::model::ModelError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::RequestContext;
use crate::replay::ReplayRequest;
use crate::state::AppState;

use super::library::require_writer;

/// Most incidents one `GET /v1/replays/{id}` answers with.
const MAX_INCIDENT_PAGE: i64 = 500;
/// Most replays one list page holds.
const MAX_RUN_PAGE: i64 = 100;

/// A replay with a page of its incidents.
async fn view(
    state: &AppState,
    ctx: &RequestContext,
    replay_id: Uuid,
    after: i32,
    limit: i64,
    changed_only: bool,
) -> ApiResult<Value> {
    let Some(run) = state.store.replay_run(ctx.tenant(), replay_id).await? else {
        return Err(ApiError::not_found("replay"));
    };
    let incidents = state
        .store
        .replay_incidents(replay_id, after, limit + 1, changed_only)
        .await?;
    let more = incidents.len() as i64 > limit;
    let page: Vec<_> = incidents.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|i| i.seq)
    } else {
        None
    };
    let mut answer = serde_json::to_value(run).unwrap_or(Value::Null);
    answer["incidents"] = serde_json::to_value(page).unwrap_or(Value::Null);
    answer["next_after"] = json!(next);
    Ok(answer)
}

#[utoipa::path(post, path = "/replays", tag = "replays", summary = "Replay recorded incidents (a plan, an alert event, or a window of at most 500 alert events) through gates, planner, risk, blast radius and policy — current or candidate — with no side effects; the report sets original against replayed per incident", request_body = ReplayRequest, responses((status = 200, description = "Ran here: `{replay_id, status, total, replayed, changed, summary, report_hash, request, incidents: [...first 100], next_after}`", body = Object), (status = 202, description = "`background`: started: `{replay_id, status, total}`", body = Object), (status = 410, description = "The records the replay needs were purged by retention", body = carapulse_http::error::ErrorBody), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // Writers only: a replay re-runs planning and policy over up to 500 incidents.
    require_writer(&state, &ctx, "replay.start").await?;
    let (replay_id, finished) = crate::replay::start(&state, &ctx, body).await?;
    if finished {
        let answer = view(&state, &ctx, replay_id, -1, 100, false).await?;
        return Ok((StatusCode::OK, Json(answer)));
    }
    let run = state.store.replay_run(ctx.tenant(), replay_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "replay_id": replay_id,
            "status": run.as_ref().map_or("running", |r| r.status.as_str()),
            "total": run.as_ref().map_or(0, |r| r.total),
        })),
    ))
}

/// Query of `GET /v1/replays/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncidentQuery {
    /// Incidents after this sequence number (`next_after` of the previous page).
    #[serde(default)]
    after: Option<i32>,
    /// Incidents per page (1 to 500; default 100).
    #[serde(default)]
    limit: Option<i64>,
    /// Only incidents whose outcome changed.
    #[serde(default)]
    changed: Option<bool>,
}

#[utoipa::path(get, path = "/replays/{id}", tag = "replays", summary = "A replay: its status and progress, its summary and report hash once done, and a page of its incidents (original against replayed)", params(("id" = String, Path, description = "Replay id (UUID)"), IncidentQuery), responses((status = 200, description = "`{replay_id, status, total, replayed, changed, summary, report_hash, request, incidents, next_after}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> ApiResult<Json<Value>> {
    require_writer(&state, &ctx, "replay.read").await?;
    let replay_id = Uuid::parse_str(id.trim()).map_err(|_| ApiError::not_found("replay"))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_INCIDENT_PAGE).contains(&limit) {
        return Err(ModelError::new("limit", format!("1 to {MAX_INCIDENT_PAGE}")).into());
    }
    let after = q.after.unwrap_or(-1);
    if after < -1 {
        return Err(ModelError::new("after", "a sequence number (0 or more)").into());
    }
    Ok(Json(
        view(
            &state,
            &ctx,
            replay_id,
            after,
            limit,
            q.changed.unwrap_or(false),
        )
        .await?,
    ))
}

/// Query of `GET /v1/replays`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Replays per page (1 to 100; default 20).
    #[serde(default)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    #[param(max_length = 512)]
    cursor: Option<String>,
}

/// `created_at|replay_id` of the last replay of a page.
fn parse_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ModelError::new("cursor", "the next_cursor of a previous page");
    let (at, id) = raw.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at.with_timezone(&Utc), id))
}

#[utoipa::path(get, path = "/replays", tag = "replays", summary = "The tenant's replays, newest first (without their incidents)", params(ListQuery), responses((status = 200, description = "`{items: [replay], next_cursor}`", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    require_writer(&state, &ctx, "replay.list").await?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_RUN_PAGE).contains(&limit) {
        return Err(ModelError::new("limit", format!("1 to {MAX_RUN_PAGE}")).into());
    }
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut runs = state
        .store
        .replay_runs(ctx.tenant(), after, limit + 1)
        .await?;
    let more = runs.len() as i64 > limit;
    runs.truncate(limit as usize);
    let next = if more {
        runs.last()
            .map(|r| format!("{}|{}", r.created_at.to_rfc3339(), r.replay_id))
    } else {
        None
    };
    Ok(Json(json!({"items": runs, "next_cursor": next})))
}
