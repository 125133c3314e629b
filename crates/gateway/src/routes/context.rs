//! `/v1/context/*`: services, a service's neighbourhood graph, snapshots, refresh. Every read is
//! scoped to the caller's tenant; client-supplied nodes need a writer role.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use carapulse_core::audit::AuditDecision;
use carapulse_core::store::{Snapshot, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, OptionalJson};
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::{page_json, require_read};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    /// Start after the last row of a previous page: its `pagination.next_cursor`. Not with `offset`.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// `exact` or `estimate` adds `pagination.total`; without it a page costs only its rows.
    #[param(pattern = "^(none|exact|estimate)$")]
    count: Option<String>,
}

#[utoipa::path(get, path = "/context/services", tag = "context", summary = "Services known to the context graph", params(PageQuery), responses((status = 200, description = "One page of services", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn services(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "context.read").await?;
    let page = state
        .store
        .context_services(
            ctx.tenant(),
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct GraphQuery {
    #[param(min_length = 1, max_length = 253)]
    service: String,
    depth: Option<u32>,
}

#[utoipa::path(get, path = "/context/graph", tag = "context", summary = "The neighbourhood of a service", params(GraphQuery), responses((status = 200, description = "`{nodes, edges}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn graph(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<GraphQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "context.read").await?;
    let service = q.service.trim();
    if service.is_empty() || service.len() > 253 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "service must be 1-253 characters",
        ));
    }
    let depth = q.depth.unwrap_or(2).clamp(1, 6);
    let graph = state
        .store
        .context_graph(ctx.tenant(), service, depth)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("service"),
            other => other.into(),
        })?;
    Ok(Json(
        json!({"service": service, "depth": depth, "nodes": graph.nodes, "edges": graph.edges}),
    ))
}

#[utoipa::path(get, path = "/context/snapshots", tag = "context", summary = "Stored whole-graph snapshots", params(PageQuery), responses((status = 200, description = "One page of snapshots", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn snapshots(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "context.read").await?;
    let page = state
        .store
        .context_snapshots(
            ctx.tenant(),
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

#[utoipa::path(get, path = "/context/snapshots/{id}", tag = "context", summary = "One snapshot with its nodes and edges", params(("id" = String, Path, description = "Snapshot id (UUID)")), responses((status = 200, description = "The snapshot", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "context.read").await?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found("snapshot"))?;
    let (info, snap) = state
        .store
        .context_snapshot(ctx.tenant(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("snapshot"),
            other => other.into(),
        })?;
    Ok(Json(
        json!({"snapshot": info, "nodes": snap.nodes, "edges": snap.edges}),
    ))
}

/// Query of a snapshot diff.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffQuery {
    /// The snapshot to compare against (the older one, usually).
    #[param(format = "uuid")]
    base: String,
}

#[utoipa::path(get, path = "/context/snapshots/{id}/diff", tag = "context", summary = "What changed from snapshot `base` to this one: nodes and edges added, removed and changed (by id)", params(("id" = String, Path, description = "Snapshot id (UUID)"), DiffQuery), responses((status = 200, description = "`{snapshot, base, counts, diff}`", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn snapshot_diff(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "context.read").await?;
    let load = |raw: String| {
        let state = state.clone();
        let tenant = ctx.tenant().clone();
        async move {
            let id =
                uuid::Uuid::parse_str(raw.trim()).map_err(|_| ApiError::not_found("snapshot"))?;
            state
                .store
                .context_snapshot(&tenant, id)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => ApiError::not_found("snapshot"),
                    other => other.into(),
                })
        }
    };
    let ((info, snap), (base_info, base)) = tokio::try_join!(load(id), load(q.base))?;
    let diff = carapulse_core::store::SnapshotDiff::between(&base, &snap);
    Ok(Json(json!({
        "snapshot": info,
        "base": base_info,
        "counts": {
            "nodes_added": diff.nodes_added.len(),
            "nodes_removed": diff.nodes_removed.len(),
            "nodes_changed": diff.nodes_changed.len(),
            "edges_added": diff.edges_added.len(),
            "edges_removed": diff.edges_removed.len(),
            "edges_changed": diff.edges_changed.len(),
        },
        "diff": diff,
    })))
}

/// Body of a refresh: empty (collect now), or nodes and edges to ingest (writers only).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    nodes: Vec<carapulse_core::store::ContextNode>,
    #[serde(default)]
    edges: Vec<carapulse_core::store::ContextEdge>,
}

#[utoipa::path(post, path = "/context/refresh", tag = "context", summary = "Run the collectors now, or ingest nodes and edges (writers)", request_body = Option<RefreshRequest>, responses((status = 200, description = "Per-collector results, or the ingested counts", body = Object), crate::openapi::CommonErrors, (status = 409, description = "The context service is disabled (context.enabled)", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ctx: RequestContext,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> ApiResult<Response> {
    require_read(&state, &ctx, "context.refresh").await?;
    let body = body.unwrap_or(RefreshRequest {
        service: None,
        nodes: Vec::new(),
        edges: Vec::new(),
    });
    if !body.nodes.is_empty() || !body.edges.is_empty() {
        // Client-supplied graph data feeds plans and prompts: writers only, into their tenant.
        if !ctx.actor.has_any_role(&state.config.gateway.writer_roles) {
            state
                .audit(
                    ctx.audit("context.ingest", AuditDecision::Deny)
                        .reason("actor lacks a writer role"),
                )
                .await;
            return Err(ApiError::forbidden(
                "forbidden",
                "supplying context nodes needs a writer role",
            ));
        }
        if body.nodes.len() > 5000 || body.edges.len() > 20000 {
            return Err(ApiError::bad_request(
                "too_large",
                "at most 5000 nodes and 20000 edges",
            ));
        }
        let snap = Snapshot {
            nodes: body.nodes,
            edges: body.edges,
            refs: Vec::new(),
        };
        let entry = ctx.audit("context.ingest", AuditDecision::Allow).context(
            json!({"nodes": snap.nodes.len(), "edges": snap.edges.len(), "service": body.service}),
        );
        state
            .store
            .apply_context_delta(
                ctx.tenant(),
                &format!("api:{}", ctx.actor.id),
                &snap,
                &[],
                Some(entry),
            )
            .await?;
        return Ok((
            StatusCode::OK,
            Json(json!({"ingested": {"nodes": snap.nodes.len(), "edges": snap.edges.len()}})),
        )
            .into_response());
    }
    let Some(context) = &state.context else {
        // Off by configuration, not a passing outage: a 409, not a 503 to retry.
        return Err(ApiError::conflict(
            "context_disabled",
            "the context service is disabled (context.enabled)",
        ));
    };
    if context.tenant != *ctx.tenant() {
        return Err(ApiError::forbidden(
            "forbidden",
            "the context service collects for another tenant",
        ));
    }
    let outcome = context.refresh_now().await;
    let collectors: serde_json::Map<String, Value> = outcome
        .into_iter()
        .map(|(name, r)| {
            (
                name,
                match r {
                    Ok(()) => json!({"ok": true}),
                    Err(e) => json!({"ok": false, "error": e}),
                },
            )
        })
        .collect();
    state
        .audit(
            ctx.audit("context.refresh", AuditDecision::Allow)
                .context(json!({"service": body.service})),
        )
        .await;
    Ok((StatusCode::OK, Json(json!({"collectors": collectors}))).into_response())
}
