//! `/v1/memory`, `/v1/playbooks`, `/v1/runbooks`: the tenant's operator notes (fed to the
//! planner), alert playbooks (matched by the event loop; a spec must name a catalogue workflow)
//! and runbooks. Lists are paged and filterable; playbook and runbook updates add a version.
//! Writes need a writer role and are audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::ModelError;
use carapulse_core::planner::rules::PlaybookRule;
use carapulse_core::store::{Shelf, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::{page_json, require_read};

/// Refuses callers without a writer role (audited).
pub(crate) async fn require_writer(
    state: &AppState,
    ctx: &RequestContext,
    action: &str,
) -> Result<(), ApiError> {
    if ctx.actor.has_any_role(&state.config.gateway.writer_roles) {
        return Ok(());
    }
    state
        .audit(
            ctx.audit(action, AuditDecision::Deny)
                .reason("actor lacks a writer role"),
        )
        .await;
    Err(ApiError::forbidden(
        "forbidden",
        format!(
            "{action} needs one of the roles {:?}",
            state.config.gateway.writer_roles
        ),
    ))
}

fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}

pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(ModelError::new(field, format!("must be 1-{max} characters")).into());
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ModelError::new(field, "must not contain control characters").into());
    }
    Ok(v.to_owned())
}

fn tags(value: &[String]) -> Result<Value, ApiError> {
    if value.len() > 20 {
        return Err(ModelError::new("tags", "at most 20 tags").into());
    }
    for t in value {
        text("tags", t, 64)?;
    }
    Ok(json!(value))
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
    /// Text search (memory) or exact name (playbooks, runbooks).
    q: Option<String>,
    name: Option<String>,
    service: Option<String>,
    tag: Option<String>,
}

// ---- memory ----

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemoryBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    title: String,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[utoipa::path(get, path = "/memory", tag = "library", summary = "Operator memory notes (fed to the planner)", params(ListQuery), responses((status = 200, description = "One page of notes", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn memory_list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "memory.list").await?;
    let page = state
        .store
        .list_memory(
            ctx.tenant(),
            q.q.as_deref(),
            q.tag.as_deref(),
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

#[utoipa::path(post, path = "/memory", tag = "library", summary = "Add a memory note", request_body = MemoryBody, responses((status = 201, description = "The note", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn memory_create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<MemoryBody>,
) -> ApiResult<Response> {
    require_writer(&state, &ctx, "memory.create").await?;
    let note = state
        .store
        .create_memory(
            ctx.tenant(),
            &text("title", &b.title, 200)?,
            &text("body", &b.body, 20_000)?,
            &tags(&b.tags)?,
            ctx.actor.id.as_str(),
            ctx.audit("memory.create", AuditDecision::Allow),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(note))).into_response())
}

#[utoipa::path(get, path = "/memory/{id}", tag = "library", summary = "One memory note", params(("id" = String, Path, description = "Note id (UUID)")), responses((status = 200, description = "The note", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn memory_get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "memory.get").await?;
    let note = state
        .store
        .get_memory(ctx.tenant(), parse_id(&id, "memory")?)
        .await
        .map_err(not_found("memory"))?;
    Ok(Json(json!(note)))
}

#[utoipa::path(put, path = "/memory/{id}", tag = "library", summary = "Replace a memory note", params(("id" = String, Path, description = "Note id (UUID)")), request_body = MemoryBody, responses((status = 200, description = "The note", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn memory_update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MemoryBody>,
) -> ApiResult<Json<Value>> {
    require_writer(&state, &ctx, "memory.update").await?;
    let id = parse_id(&id, "memory")?;
    let note = state
        .store
        .update_memory(
            ctx.tenant(),
            id,
            &text("title", &b.title, 200)?,
            &text("body", &b.body, 20_000)?,
            &tags(&b.tags)?,
            ctx.audit("memory.update", AuditDecision::Allow),
        )
        .await
        .map_err(not_found("memory"))?;
    Ok(Json(json!(note)))
}

#[utoipa::path(delete, path = "/memory/{id}", tag = "library", summary = "Delete a memory note", params(("id" = String, Path, description = "Note id (UUID)")), responses((status = 204, description = "Deleted"), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn memory_delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_writer(&state, &ctx, "memory.delete").await?;
    let id = parse_id(&id, "memory")?;
    state
        .store
        .delete_memory(
            ctx.tenant(),
            id,
            ctx.audit("memory.delete", AuditDecision::Allow),
        )
        .await
        .map_err(not_found("memory"))?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- playbooks and runbooks ----

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocBody {
    /// Required on create; an update keeps the document's name (and service).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    name: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    spec: Option<Value>,
    #[serde(default)]
    body: Option<String>,
}

fn shelf_name(shelf: Shelf) -> &'static str {
    match shelf {
        Shelf::Playbooks => "playbook",
        Shelf::Runbooks => "runbook",
    }
}

/// Playbook specs must be alert rules naming a catalogue workflow.
fn check_spec(shelf: Shelf, name: &str, spec: &Value) -> Result<(), ApiError> {
    if shelf == Shelf::Playbooks {
        parse_playbook(name, spec, "spec")?;
        return Ok(());
    }
    check_spec_size(spec, "spec")
}

fn check_spec_size(spec: &Value, field: &str) -> Result<(), ApiError> {
    if !spec.is_object() {
        return Err(ModelError::new(field, "must be a JSON object").into());
    }
    if serde_json::to_vec(spec)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > 64 * 1024
    {
        return Err(ModelError::new(field, "is larger than 64 KiB").into());
    }
    Ok(())
}

/// A playbook spec named `name` as the event loop matches it: a JSON object of at most 64 KiB
/// that is an alert rule naming a catalogue workflow. `field` names it in refusals.
pub(crate) fn parse_playbook(
    name: &str,
    spec: &Value,
    field: &str,
) -> Result<PlaybookRule, ApiError> {
    check_spec_size(spec, field)?;
    let mut with_name = spec.clone();
    with_name["name"] = json!(name);
    let rule: PlaybookRule = serde_json::from_value(with_name)
        .map_err(|e| ModelError::new(field, format!("not a playbook rule: {e}")))?;
    if carapulse_core::workflows::find(&rule.workflow).is_none() {
        return Err(ModelError::new(
            format!("{field}.workflow"),
            format!("{:?} is not in the workflow catalogue", rule.workflow),
        )
        .into());
    }
    Ok(rule)
}

async fn doc_create(
    state: &AppState,
    ctx: &RequestContext,
    shelf: Shelf,
    b: DocBody,
) -> ApiResult<Response> {
    let what = shelf_name(shelf);
    require_writer(state, ctx, &format!("{what}.create")).await?;
    let name = text("name", b.name.as_deref().unwrap_or(""), 128)?;
    let service = match shelf {
        Shelf::Runbooks => text("service", b.service.as_deref().unwrap_or(""), 128)?,
        Shelf::Playbooks => String::new(),
    };
    let spec = b.spec.unwrap_or_else(|| json!({}));
    check_spec(shelf, &name, &spec)?;
    let body = match &b.body {
        Some(text_body) => Some(text("body", text_body, 200_000)?),
        None => None,
    };
    let doc = state
        .store
        .add_version(
            shelf,
            ctx.tenant(),
            &service,
            &name,
            &tags(&b.tags)?,
            &spec,
            body.as_deref(),
            ctx.actor.id.as_str(),
            ctx.audit(&format!("{what}.create"), AuditDecision::Allow),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(doc))).into_response())
}

async fn doc_update(
    state: &AppState,
    ctx: &RequestContext,
    shelf: Shelf,
    id: &str,
    b: DocBody,
) -> ApiResult<Response> {
    let what = shelf_name(shelf);
    let current = state
        .store
        .get_version(shelf, ctx.tenant(), parse_id(id, what)?)
        .await
        .map_err(not_found(what))?;
    let merged = DocBody {
        name: Some(current.name.clone()),
        service: Some(current.service.clone()).filter(|s| !s.is_empty()),
        tags: if b.tags.is_empty() {
            serde_json::from_value(current.tags.clone()).unwrap_or_default()
        } else {
            b.tags
        },
        spec: b.spec.or(Some(current.spec.clone())),
        body: b.body.or(current.body.clone()),
    };
    doc_create(state, ctx, shelf, merged).await
}

async fn doc_list(
    state: &AppState,
    ctx: &RequestContext,
    shelf: Shelf,
    q: ListQuery,
) -> ApiResult<Json<Value>> {
    require_read(state, ctx, &format!("{}.list", shelf_name(shelf))).await?;
    let name = q.name.or(q.q);
    let page = state
        .store
        .list_latest(
            shelf,
            ctx.tenant(),
            name.as_deref(),
            q.service.as_deref(),
            q.tag.as_deref(),
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

async fn doc_get(
    state: &AppState,
    ctx: &RequestContext,
    shelf: Shelf,
    id: &str,
) -> ApiResult<Json<Value>> {
    let what = shelf_name(shelf);
    require_read(state, ctx, &format!("{what}.get")).await?;
    let id = parse_id(id, what)?;
    let doc = state
        .store
        .get_version(shelf, ctx.tenant(), id)
        .await
        .map_err(not_found(what))?;
    let versions: Vec<Value> = state
        .store
        .versions_of(shelf, ctx.tenant(), id)
        .await?
        .into_iter()
        .map(|v| json!({"id": v.id, "version": v.version, "created_at": v.created_at, "created_by": v.created_by}))
        .collect();
    let mut body = json!(doc);
    body["versions"] = json!(versions);
    Ok(Json(body))
}

async fn doc_delete(
    state: &AppState,
    ctx: &RequestContext,
    shelf: Shelf,
    id: &str,
) -> ApiResult<StatusCode> {
    let what = shelf_name(shelf);
    require_writer(state, ctx, &format!("{what}.delete")).await?;
    let id = parse_id(id, what)?;
    state
        .store
        .delete_version(
            shelf,
            ctx.tenant(),
            id,
            ctx.audit(&format!("{what}.delete"), AuditDecision::Allow),
        )
        .await
        .map_err(not_found(what))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The five handlers of a shelf, documented under `$coll` and `$item` (literals, because the
/// OpenAPI attribute needs them spelled out).
macro_rules! shelf_routes {
    ($shelf:expr, $coll:literal, $item:literal, $list:ident, $create:ident, $get:ident, $update:ident, $delete:ident) => {
        #[utoipa::path(get, path = $coll, tag = "library", summary = "List documents (latest version of each name)", params(ListQuery),
            responses((status = 200, description = "One page of documents", body = crate::openapi::ListBody), crate::openapi::CommonErrors),
            security(("bearer" = [])))]
        pub(crate) async fn $list(
            State(state): State<AppState>,
            ctx: RequestContext,
            ApiQuery(q): ApiQuery<ListQuery>,
        ) -> ApiResult<Json<Value>> {
            doc_list(&state, &ctx, $shelf, q).await
        }
        #[utoipa::path(post, path = $coll, tag = "library", summary = "Store a document; an existing name gets a new version", request_body = DocBody,
            responses((status = 201, description = "The stored version", body = Object), crate::openapi::CommonErrors),
            security(("bearer" = [])))]
        pub(crate) async fn $create(
            State(state): State<AppState>,
            ctx: RequestContext,
            ApiJson(b): ApiJson<DocBody>,
        ) -> ApiResult<Response> {
            doc_create(&state, &ctx, $shelf, b).await
        }
        #[utoipa::path(get, path = $item, tag = "library", summary = "One document with its version history",
            params(("id" = String, Path, description = "Document id (UUID)")),
            responses((status = 200, description = "The document", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound),
            security(("bearer" = [])))]
        pub(crate) async fn $get(
            State(state): State<AppState>,
            ctx: RequestContext,
            Path(id): Path<String>,
        ) -> ApiResult<Json<Value>> {
            doc_get(&state, &ctx, $shelf, &id).await
        }
        #[utoipa::path(put, path = $item, tag = "library", summary = "Store a new version of a document",
            params(("id" = String, Path, description = "Document id (UUID)")), request_body = DocBody,
            responses((status = 201, description = "The new version", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound),
            security(("bearer" = [])))]
        pub(crate) async fn $update(
            State(state): State<AppState>,
            ctx: RequestContext,
            Path(id): Path<String>,
            ApiJson(b): ApiJson<DocBody>,
        ) -> ApiResult<Response> {
            doc_update(&state, &ctx, $shelf, &id, b).await
        }
        #[utoipa::path(delete, path = $item, tag = "library", summary = "Delete one version of a document",
            params(("id" = String, Path, description = "Document id (UUID)")),
            responses((status = 204, description = "Deleted"), crate::openapi::CommonErrors, crate::openapi::NotFound),
            security(("bearer" = [])))]
        pub(crate) async fn $delete(
            State(state): State<AppState>,
            ctx: RequestContext,
            Path(id): Path<String>,
        ) -> ApiResult<StatusCode> {
            doc_delete(&state, &ctx, $shelf, &id).await
        }
    };
}

shelf_routes!(
    Shelf::Playbooks,
    "/playbooks",
    "/playbooks/{id}",
    playbook_list,
    playbook_create,
    playbook_get,
    playbook_update,
    playbook_delete
);
shelf_routes!(
    Shelf::Runbooks,
    "/runbooks",
    "/runbooks/{id}",
    runbook_list,
    runbook_create,
    runbook_get,
    runbook_update,
    runbook_delete
);

/// `POST /v1/library/reload`: loads the workspace folder's playbooks and runbooks now.
#[utoipa::path(post, path = "/library/reload", tag = "library", summary = "Load the workspace folder's playbooks and runbooks now", responses((status = 200, description = "What was loaded, changed and refused", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn reload(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> ApiResult<Json<Value>> {
    require_writer(&state, &ctx, "library.reload").await?;
    if ctx.tenant().as_str() != state.config.context.tenant_id {
        return Err(ApiError::forbidden(
            "forbidden",
            "the workspace belongs to another tenant",
        ));
    }
    let report = crate::workspace::load(&state)
        .await
        .map_err(|e| ApiError::bad_request("workspace", e))?;
    state
        .audit(
            ctx.audit("library.reload", AuditDecision::Allow)
                .context(json!({"added": report.added, "errors": report.errors})),
        )
        .await;
    Ok(Json(json!(report)))
}
