//! `POST /v1/approvals`: approve or deny a pending plan, with separation of duties.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{ApprovalSource, ApprovalStatus, ModelError, PlanId};
use carapulse_core::store::{ApprovalDecision, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::middleware::RequestContext;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalRequest {
    plan_id: String,
    status: String,
    #[serde(default, alias = "approver_note")]
    note: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(body): ApiJson<ApprovalRequest>,
) -> ApiResult<Response> {
    let plan_id = PlanId::parse(&body.plan_id)?;
    let status = match ApprovalStatus::parse(body.status.trim())? {
        ApprovalStatus::Expired => {
            return Err(ModelError::new("status", "must be approved or denied").into())
        }
        s => s,
    };
    let source = match body.source.as_deref() {
        None => ApprovalSource::Api,
        Some(raw) => match ApprovalSource::parse(raw)? {
            s @ (ApprovalSource::Api
            | ApprovalSource::Ui
            | ApprovalSource::Cli
            | ApprovalSource::Slack) => s,
            _ => {
                return Err(ModelError::new("source", "must be one of api, ui, cli, slack").into())
            }
        },
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
    if plan.created_by == ctx.actor.id {
        state
            .audit(deny(
                "separation of duties: creator cannot decide own plan".into(),
            ))
            .await;
        return Err(ApiError::forbidden(
            "self_approval",
            "the creator of a plan cannot approve or deny it",
        ));
    }
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
        .context(json!({"source": source, "note": body.note}));
    let approval = state
        .store
        .record_approval(ctx.tenant(), plan_id, decision, entry, Utc::now())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(msg) => ApiError::conflict("already_decided", msg),
            StoreError::NotFound => ApiError::not_found("plan"),
            other => other.into(),
        })?;
    state.metrics.record_audit(true);
    // A run already started for this plan waits for the decision: deliver it.
    let mut signalled = false;
    let active = state
        .store
        .list_executions(
            ctx.tenant(),
            &carapulse_core::store::ExecutionFilter {
                status: Some(carapulse_core::model::ExecutionStatus::Pending),
                plan_id: Some(plan_id),
            },
            carapulse_core::store::Page::new(Some(1), None),
        )
        .await?;
    if let Some(workflow_id) = active.items.first().and_then(|e| e.workflow_id.clone()) {
        match state
            .dispatcher
            .signal_approval(
                workflow_id,
                status == ApprovalStatus::Approved,
                ctx.actor.id.to_string(),
                body.note.clone(),
            )
            .await
        {
            Ok(()) => signalled = true,
            Err(err) => {
                tracing::warn!(error = %err, %plan_id, "approval recorded but the waiting run could not be signalled")
            }
        }
    }
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
            "signalled_run": signalled,
        })),
    )
        .into_response())
}
