//! `GET /v1/alerts`: the alert events webhooks stored (deduplicated by fingerprint), for the
//! dashboard and for people asking "what is firing?".

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::{page_json, require_read};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertQuery {
    /// `firing` or `resolved`; both when absent.
    #[param(pattern = "^(firing|resolved)$")]
    status: Option<String>,
    /// `alertmanager`, `argocd`, `git`, `k8s`.
    source: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    /// Start after the last row of a previous page: its `pagination.next_cursor`. Not with `offset`.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// `exact` or `estimate` adds `pagination.total`; without it a page costs only its rows.
    #[param(pattern = "^(none|exact|estimate)$")]
    count: Option<String>,
}

#[utoipa::path(get, path = "/alerts", tag = "events",
    summary = "Stored alert events, most recently updated first",
    params(AlertQuery),
    responses((status = 200, description = "One page of alerts", body = crate::openapi::ListBody),
        crate::openapi::CommonErrors),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "alert.list").await?;
    if let Some(status) = q.status.as_deref() {
        if !matches!(status, "firing" | "resolved") {
            return Err(ApiError::bad_request(
                "invalid_query",
                "status must be firing or resolved",
            ));
        }
    }
    let page = state
        .store
        .list_alerts(
            ctx.tenant(),
            q.status.as_deref(),
            q.source.as_deref(),
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}
