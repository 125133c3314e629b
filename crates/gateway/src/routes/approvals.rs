//! `POST /v1/approvals`: approve or deny a pending plan, with separation of duties.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{
    ApprovalSource, ApprovalStatus, ModelError, PlanApprovalState, PlanId,
};
use carapulse_core::store::{ApprovalDecision, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::middleware::{Listener, RequestContext};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalRequest {
    #[schema(format = Uuid)]
    plan_id: String,
    #[schema(pattern = "^(approved|denied)$")]
    status: String,
    #[serde(default, alias = "approver_note")]
    #[schema(max_length = 2000)]
    note: Option<String>,
    /// Ignored: the server records the channel the decision came through. Accepted so existing
    /// clients keep working.
    #[serde(default)]
    #[schema(pattern = "^(api|ui|cli|slack)$")]
    #[allow(dead_code)]
    source: Option<String>,
}

#[utoipa::path(post, path = "/approvals", tag = "approvals", summary = "Approve or deny a plan", request_body = ApprovalRequest, responses((status = 201, description = "Decision recorded", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound, (status = 409, description = "Already decided, expired, or the approver created the plan", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    listener: Option<Extension<Listener>>,
    ApiJson(body): ApiJson<ApprovalRequest>,
) -> ApiResult<Response> {
    let plan_id = PlanId::parse(&body.plan_id)?;
    let status = match ApprovalStatus::parse(body.status.trim())? {
        ApprovalStatus::Expired | ApprovalStatus::Superseded => {
            return Err(ModelError::new("status", "must be approved or denied").into())
        }
        s => s,
    };
    // The source is the channel the decision came through, never the body's claim: the Slack
    // agent (delegation), the web UI listener, or the API.
    let source = if ctx.via.is_some() {
        ApprovalSource::Slack
    } else if matches!(listener, Some(Extension(Listener::Ui))) {
        ApprovalSource::Ui
    } else {
        ApprovalSource::Api
    };
    if body
        .note
        .as_deref()
        .is_some_and(|n| n.chars().count() > 2000)
    {
        return Err(ModelError::new("note", "at most 2000 characters").into());
    }
    let deny = |reason: String| {
        ctx.audit("approval.create", AuditDecision::Deny)
            .resource("plan", plan_id)
            .reason(reason)
            .context(json!({"status": status}))
    };
    if !ctx.actor.has_any_role(&state.config.gateway.approver_roles) {
        state
            .audit(deny("actor lacks an approver role".into()))
            .await;
        return Err(ApiError::forbidden(
            "forbidden",
            format!(
                "approving needs one of the roles {:?}",
                state.config.gateway.approver_roles
            ),
        ));
    }
    let plan = super::plans::load_plan(&state, &ctx, plan_id).await?;
    if plan.is_author(&ctx.actor.id) {
        state
            .audit(deny(
                "separation of duties: the plan's creator or reviser cannot decide it".into(),
            ))
            .await;
        return Err(ApiError::forbidden(
            "self_approval",
            "the creator of a plan, or of its current revision, cannot approve or deny it",
        ));
    }
    // An approval looks at the reach of the change again: refused when it grew past what
    // policy decided for this revision, kept with the approval otherwise.
    let blast_check = if status == ApprovalStatus::Approved {
        Some(crate::blast::recheck_for_approval(&state, &ctx, &plan).await?)
    } else {
        None
    };
    let decision = ApprovalDecision {
        status,
        approver: ctx.actor.id.clone(),
        approver_email: ctx.actor.email.clone(),
        source,
        note: body.note.clone(),
    };
    let audit_decision = match status {
        ApprovalStatus::Approved => AuditDecision::Allow,
        _ => AuditDecision::Deny,
    };
    let entry = ctx
        .audit(&format!("approval.{}", status.as_str()), audit_decision)
        .resource("plan", plan_id)
        .context(json!({
            "source": source,
            "note": body.note,
            "blast_radius": blast_check.as_ref().map(crate::blast::ApprovalCheck::summary),
        }));
    let approval = state
        .record_approval(ctx.tenant(), plan_id, decision, entry)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(msg) => ApiError::conflict("already_decided", msg),
            StoreError::NotFound => ApiError::not_found("plan"),
            other => other.into(),
        })?;
    state.metrics.record_audit(true);
    if let Some(check) = &blast_check {
        crate::blast::keep_approval_estimate(&state, &plan, check).await;
    }
    let tally = state.store.approval_tally(ctx.tenant(), plan_id).await?;
    // A run already started for this plan waits for the decision: deliver it once the plan is
    // settled (with several approvers required, an approval may leave it pending).
    let signalled = if tally.approval_state == PlanApprovalState::Pending {
        false
    } else {
        signal_waiting_run(
            &state,
            ctx.tenant(),
            plan_id,
            status == ApprovalStatus::Approved,
            ctx.actor.id.to_string(),
            body.note.clone(),
        )
        .await?
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "approval_id": approval.approval_id,
            "plan_id": approval.plan_id,
            "status": approval.status,
            "approver": approval.approver,
            "source": approval.source,
            "approved_hash": approval.approved_hash,
            "created_at": approval.created_at,
            "revision": approval.revision,
            "plan_approval_state": tally.approval_state,
            "approvals_required": tally.approvals_required,
            "approved_by": tally.approved_by,
            "signalled_run": signalled,
            "blast_radius": blast_check.as_ref().map(crate::blast::ApprovalCheck::summary),
        })),
    )
        .into_response())
}

/// Delivers a recorded decision to the run waiting for it, if one was started; returns
/// whether a run was signalled. A signalling failure is logged: the decision is already stored
/// and the run re-checks it when its approval timer fires.
pub(crate) async fn signal_waiting_run(
    state: &AppState,
    tenant: &carapulse_core::model::TenantId,
    plan_id: PlanId,
    approved: bool,
    actor: String,
    note: Option<String>,
) -> ApiResult<bool> {
    let active = state
        .store
        .list_executions(
            tenant,
            &carapulse_core::store::ExecutionFilter {
                status: Some(carapulse_core::model::ExecutionStatus::Pending),
                plan_id: Some(plan_id),
                visible_to: None,
            },
            carapulse_core::store::Page::new(Some(1), None),
        )
        .await?;
    let Some(workflow_id) = active.items.first().and_then(|e| e.workflow_id.clone()) else {
        return Ok(false);
    };
    match state
        .dispatcher
        .signal_approval(workflow_id, approved, actor, note)
        .await
    {
        Ok(()) => Ok(true),
        Err(err) => {
            tracing::warn!(error = %err, %plan_id, "approval recorded but the waiting run could not be signalled");
            Ok(false)
        }
    }
}

/// Query of `GET /v1/approvals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalListQuery {
    /// `pending` (default): plans waiting; `approved`, `denied`, `expired`: recorded decisions.
    #[param(pattern = "^(pending|approved|denied|expired)$")]
    status: Option<String>,
    #[param(format = Uuid)]
    plan_id: Option<String>,
    #[param(pattern = "^(api|ui|cli|slack|linear|auto|system)$")]
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

#[utoipa::path(get, path = "/approvals", tag = "approvals", summary = "Plans waiting for approval (default) or recorded decisions", params(ApprovalListQuery), responses((status = 200, description = "One page", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<ApprovalListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    super::require_read(&state, &ctx, "approval.list").await?;
    let page = super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?;
    let status = q.status.as_deref().unwrap_or("pending").trim();
    if status == "pending" {
        if q.plan_id.is_some() || q.source.is_some() {
            return Err(ModelError::new(
                "status",
                "plan_id and source filter recorded decisions, not pending ones",
            )
            .into());
        }
        let pending = state
            .store
            .pending_approvals(ctx.tenant(), Utc::now(), page)
            .await?;
        let mut body = super::page_json(&pending);
        // Where each request was sent (a Linear issue), when it was: one query for the page.
        let ids: Vec<PlanId> = pending.items.iter().map(|p| p.plan_id).collect();
        let requests = state.store.approval_requests(ctx.tenant(), &ids).await?;
        if let Some(items) = body.get_mut("data").and_then(|d| d.as_array_mut()) {
            // `data` is the page's items, in order.
            for (item, pending) in items.iter_mut().zip(&pending.items) {
                let Some(req) = requests.iter().find(|r| r.plan_id == pending.plan_id) else {
                    continue;
                };
                item["external"] = json!({
                    "channel": "linear",
                    "status": req.status.as_str(),
                    "key": req.external_key,
                    "url": req.external_url,
                });
            }
        }
        return Ok(Json(body));
    }
    let filter = carapulse_core::store::ApprovalFilter {
        status: Some(ApprovalStatus::parse(status)?),
        plan_id: q.plan_id.as_deref().map(PlanId::parse).transpose()?,
        source: q.source.as_deref().map(ApprovalSource::parse).transpose()?,
    };
    let decided = state
        .store
        .list_approvals(ctx.tenant(), &filter, page)
        .await?;
    Ok(Json(super::page_json(&decided)))
}
