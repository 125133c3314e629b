//! `/v1/sessions`: create, list (the caller's, or all for admins), get with members, update and
//! delete (owners), add and remove members (owners only). With `gateway.session_required`, plans and event streams must
//! name a session the caller belongs to ([`require_member`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::ModelError;
use carapulse_core::store::{SessionChange, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::library::require_writer;
use super::{page_json, require_read};

fn session_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| ApiError::not_found("session"))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("session"),
        other => other.into(),
    }
}

/// Checks the caller belongs to `session` (admins pass); 403 `session_denied` otherwise.
/// With `gateway.session_required`, reads are scoped to the caller's sessions too: the member
/// id the store filters by, or `None` when the caller sees the whole tenant (an admin, or
/// sessions not required). Plans without a session (alerts, schedules) stay visible.
pub(crate) fn session_scope(state: &AppState, ctx: &RequestContext) -> Option<String> {
    (state.config.gateway.session_required && !ctx.is_admin()).then(|| ctx.actor.id.to_string())
}

/// Whether the caller may read an object of `session` (a plan's, or an execution's plan's).
/// Hidden objects answer 404 like another tenant's, so their existence is not revealed.
pub(crate) async fn require_visible(
    state: &AppState,
    ctx: &RequestContext,
    session: Option<&str>,
    what: &'static str,
) -> Result<(), ApiError> {
    let (Some(member), Some(session)) = (session_scope(state, ctx), session) else {
        return Ok(());
    };
    let visible = match Uuid::parse_str(session.trim()) {
        Ok(id) => state
            .store
            .session_role(ctx.tenant(), id, &member)
            .await?
            .is_some(),
        Err(_) => false,
    };
    if visible {
        Ok(())
    } else {
        Err(ApiError::not_found(what))
    }
}

pub(crate) async fn require_member(
    state: &AppState,
    ctx: &RequestContext,
    session: &str,
) -> Result<(), ApiError> {
    let id = Uuid::parse_str(session.trim())
        .map_err(|_| ApiError::forbidden("session_denied", "not a member of this session"))?;
    if ctx.is_admin() && state.store.get_session(ctx.tenant(), id).await.is_ok() {
        return Ok(());
    }
    match state
        .store
        .session_role(ctx.tenant(), id, ctx.actor.id.as_str())
        .await?
    {
        Some(_) => Ok(()),
        None => {
            state
                .audit(
                    ctx.audit("session.access", AuditDecision::Deny)
                        .resource("session", id)
                        .reason("not a member"),
                )
                .await;
            Err(ApiError::forbidden(
                "session_denied",
                "not a member of this session",
            ))
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSession {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

fn name(field: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 128 || v.chars().any(char::is_control) {
        return Err(
            ModelError::new(field, "must be 1-128 characters without control characters").into(),
        );
    }
    Ok(v.to_owned())
}

#[utoipa::path(post, path = "/sessions", tag = "sessions", summary = "Create a session (the creator owns it)", request_body = CreateSession, responses((status = 201, description = "The session", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<CreateSession>,
) -> ApiResult<Response> {
    require_writer(&state, &ctx, "session.create").await?;
    let group = b.group.as_deref().map(|g| name("group", g)).transpose()?;
    if b.members.len() > 200 {
        return Err(ModelError::new("members", "at most 200 members").into());
    }
    let members = b
        .members
        .iter()
        .map(|m| name("members", m))
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = match b.metadata {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(m)) => Value::Object(m),
        Some(_) => return Err(ModelError::new("metadata", "must be a JSON object").into()),
    };
    let session = state
        .store
        .create_session(
            ctx.tenant(),
            &name("name", &b.name)?,
            group.as_deref(),
            ctx.actor.id.as_str(),
            &members,
            &metadata,
            ctx.audit("session.create", AuditDecision::Allow),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(session))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListSessions {
    limit: Option<i64>,
    offset: Option<i64>,
    /// Start after the last row of a previous page: its `pagination.next_cursor`. Not with `offset`.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// `exact` or `estimate` adds `pagination.total`; without it a page costs only its rows.
    #[param(pattern = "^(none|exact|estimate)$")]
    count: Option<String>,
    group: Option<String>,
    /// Admins only: every session of the tenant.
    #[serde(default)]
    all: Option<bool>,
}

#[utoipa::path(get, path = "/sessions", tag = "sessions", summary = "Sessions the caller belongs to (admins: all=true for every one)", params(ListSessions), responses((status = 200, description = "One page of sessions", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<ListSessions>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "session.list").await?;
    let member = if q.all == Some(true) && ctx.is_admin() {
        None
    } else {
        Some(ctx.actor.id.as_str())
    };
    let page = state
        .store
        .list_sessions(
            ctx.tenant(),
            member,
            q.group.as_deref(),
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions", summary = "One session with its members", params(("id" = String, Path, description = "Session id (UUID)")), responses((status = 200, description = "The session", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "session.get").await?;
    let id = session_id(&id)?;
    let session = state
        .store
        .get_session(ctx.tenant(), id)
        .await
        .map_err(not_found)?;
    require_member(&state, &ctx, &id.to_string()).await?;
    let members = state.store.session_members(ctx.tenant(), id).await?;
    let mut body = json!(session);
    body["members"] = json!(members);
    Ok(Json(body))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddMember {
    member_id: String,
    #[serde(default)]
    role: Option<String>,
}

async fn require_owner(state: &AppState, ctx: &RequestContext, id: Uuid) -> Result<(), ApiError> {
    require_owner_for(state, ctx, id, "session.members", "changes its members").await
}

/// The caller owns session `id` (or is an admin); else a refusal audited as `action`.
async fn require_owner_for(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    action: &'static str,
    what: &'static str,
) -> Result<(), ApiError> {
    state
        .store
        .get_session(ctx.tenant(), id)
        .await
        .map_err(not_found)?;
    let role = state
        .store
        .session_role(ctx.tenant(), id, ctx.actor.id.as_str())
        .await?;
    if role.as_deref() == Some("owner") || ctx.is_admin() {
        return Ok(());
    }
    state
        .audit(
            ctx.audit(action, AuditDecision::Deny)
                .resource("session", id)
                .reason("not the owner"),
        )
        .await;
    Err(ApiError::forbidden(
        "forbidden",
        format!("only the session's owner {what}"),
    ))
}

/// Body of `PUT /v1/sessions/{id}`: what changes (at least one field).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSession {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    /// A group name, or `null` to take the session out of its group.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(nullable, max_length = 128)]
    group: Option<Option<String>>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[utoipa::path(put, path = "/sessions/{id}", tag = "sessions", summary = "Rename, regroup or re-describe a session (owners)", params(("id" = String, Path, description = "Session id (UUID)")), request_body = UpdateSession, responses((status = 200, description = "The session", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateSession>,
) -> ApiResult<Json<Value>> {
    let id = session_id(&id)?;
    require_owner_for(&state, &ctx, id, "session.update", "changes it").await?;
    if b.name.is_none() && b.group.is_none() && b.metadata.is_none() {
        return Err(
            ModelError::new("body", "nothing to change: give name, group or metadata").into(),
        );
    }
    let new_name = b.name.as_deref().map(|n| name("name", n)).transpose()?;
    let group = match &b.group {
        None => None,
        Some(None) => Some(None),
        Some(Some(g)) => Some(Some(name("group", g)?)),
    };
    let metadata = match b.metadata {
        None => None,
        Some(Value::Object(m)) => Some(Value::Object(m)),
        Some(_) => return Err(ModelError::new("metadata", "must be a JSON object").into()),
    };
    let change = SessionChange {
        name: new_name.as_deref(),
        group: group.as_ref().map(|g| g.as_deref()),
        metadata: metadata.as_ref(),
    };
    let entry = ctx
        .audit("session.update", AuditDecision::Allow)
        .context(json!({
            "name": new_name, "group": group, "metadata_changed": metadata.is_some(),
        }));
    let session = state
        .store
        .update_session(ctx.tenant(), id, &change, entry)
        .await
        .map_err(not_found)?;
    Ok(Json(json!(session)))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", summary = "Delete a session and its memberships (owners); refused while its plans have executions running", params(("id" = String, Path, description = "Session id (UUID)")), responses((status = 204, description = "Deleted"), crate::openapi::CommonErrors, crate::openapi::NotFound, (status = 409, description = "An execution of the session's plans has not ended", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = session_id(&id)?;
    require_owner_for(&state, &ctx, id, "session.delete", "deletes it").await?;
    let entry = ctx.audit("session.delete", AuditDecision::Allow);
    state
        .store
        .delete_session(ctx.tenant(), id, entry)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("session"),
            StoreError::Conflict(m) => ApiError::conflict("session_busy", m),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/sessions/{id}/members", tag = "sessions", summary = "Add a member (owners)", params(("id" = String, Path, description = "Session id (UUID)")), request_body = AddMember, responses((status = 204, description = "Added"), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AddMember>,
) -> ApiResult<StatusCode> {
    let id = session_id(&id)?;
    require_owner(&state, &ctx, id).await?;
    let role = b.role.unwrap_or_else(|| "member".into());
    if !matches!(role.as_str(), "member" | "viewer") {
        return Err(ModelError::new("role", "must be member or viewer").into());
    }
    let member = name("member_id", &b.member_id)?;
    let entry = ctx
        .audit("session.member_add", AuditDecision::Allow)
        .context(json!({"member": member, "role": role}));
    state
        .store
        .add_session_member(ctx.tenant(), id, &member, &role, entry)
        .await
        .map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/sessions/{id}/members/{member}", tag = "sessions", summary = "Remove a member (owners)", params(("id" = String, Path, description = "Session id (UUID)"), ("member" = String, Path, description = "Member id")), responses((status = 204, description = "Removed"), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = [])))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = session_id(&id)?;
    require_owner(&state, &ctx, id).await?;
    let entry = ctx
        .audit("session.member_remove", AuditDecision::Allow)
        .context(json!({"member": member}));
    state
        .store
        .remove_session_member(ctx.tenant(), id, &member, entry)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("member"),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
