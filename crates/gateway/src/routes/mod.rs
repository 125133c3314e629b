//! The HTTP routes and how they are layered.

pub(crate) mod approvals;
mod audit;
mod context;
mod events;
mod executions;
mod health;
mod hooks;
mod library;
mod logs;
pub(crate) mod plans;
mod schedules;
pub(crate) mod sessions;
mod workflows;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use carapulse_core::audit::AuditDecision;
use carapulse_core::policy::PolicyOutcome;
use carapulse_core::store::Paged;

use crate::error::ApiError;
use crate::middleware::{authenticate, track_metrics, RequestContext};
use crate::state::AppState;

/// The full API router.
pub fn router(state: AppState) -> Router {
    let cfg = &state.config.gateway;
    let api = Router::new()
        .route("/plans", post(plans::create).get(plans::list))
        .route("/plans/{id}", get(plans::get).post(plans::execute_colon))
        .route("/plans/{id}/execute", post(plans::execute))
        .route("/approvals", post(approvals::create).get(approvals::list))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::get))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/executions/{id}/logs", get(logs::stream))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{name}/start", post(workflows::start))
        .route("/audit/events", get(audit::list))
        .route("/audit/verify", get(audit::verify))
        .route("/audit/export", get(audit::export))
        .route("/schedules", get(schedules::list).post(schedules::create))
        .route(
            "/schedules/{id}",
            get(schedules::get)
                .put(schedules::update)
                .delete(schedules::delete),
        )
        .route("/library/reload", post(library::reload))
        .route("/sessions", get(sessions::list).post(sessions::create))
        .route("/sessions/{id}", get(sessions::get))
        .route("/sessions/{id}/members", post(sessions::add_member))
        .route(
            "/sessions/{id}/members/{member}",
            axum::routing::delete(sessions::remove_member),
        )
        .route(
            "/memory",
            get(library::memory_list).post(library::memory_create),
        )
        .route(
            "/memory/{id}",
            get(library::memory_get)
                .put(library::memory_update)
                .delete(library::memory_delete),
        )
        .route(
            "/playbooks",
            get(library::playbook_list).post(library::playbook_create),
        )
        .route(
            "/playbooks/{id}",
            get(library::playbook_get)
                .put(library::playbook_update)
                .delete(library::playbook_delete),
        )
        .route(
            "/runbooks",
            get(library::runbook_list).post(library::runbook_create),
        )
        .route(
            "/runbooks/{id}",
            get(library::runbook_get)
                .put(library::runbook_update)
                .delete(library::runbook_delete),
        )
        .route("/context/services", get(context::services))
        .route("/context/graph", get(context::graph))
        .route("/context/snapshots", get(context::snapshots))
        .route("/context/snapshots/{id}", get(context::snapshot))
        .route("/context/refresh", post(context::refresh))
        .route("/events", get(events::sse))
        .route("/ws", get(events::ws))
        .layer(from_fn_with_state(state.clone(), authenticate));
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        // Webhooks authenticate per source (bearer or HMAC), not with user tokens.
        .route("/v1/hooks/{source}", post(hooks::receive))
        .nest("/v1", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(cfg.request_timeout_secs.max(1)),
        ))
        .layer(from_fn_with_state(state.clone(), track_metrics))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let rid = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %rid)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// `{data, pagination}` list envelope.
pub(crate) fn page_json<T: Serialize>(paged: &Paged<T>) -> serde_json::Value {
    json!({
        "data": paged.items,
        "pagination": {
            "limit": paged.page.limit,
            "offset": paged.page.offset,
            "total": paged.total,
            "next_offset": paged.next_offset(),
        }
    })
}

/// Audits a refused request and builds its 403.
pub(crate) async fn policy_denied(
    state: &AppState,
    ctx: &RequestContext,
    action: &str,
    outcome: &PolicyOutcome,
    resource: Option<(&str, String)>,
) -> ApiError {
    let reasons = outcome.reasons.join(", ");
    let mut entry = ctx
        .audit(action, AuditDecision::Deny)
        .reason(format!("policy: {reasons}"))
        .context(json!({"reasons": outcome.reasons, "error": outcome.error}));
    if let Some((kind, id)) = resource {
        entry = entry.resource(kind, id);
    }
    state.audit(entry).await;
    ApiError::forbidden(
        "policy_denied",
        if reasons.is_empty() {
            "denied by policy".to_owned()
        } else {
            format!("denied by policy: {reasons}")
        },
    )
}

/// Runs the read policy check for `action`, auditing a denial.
pub(crate) async fn require_read(
    state: &AppState,
    ctx: &RequestContext,
    action: &str,
) -> Result<(), ApiError> {
    let outcome = state.decide_read(ctx, action);
    if outcome.decision == carapulse_core::model::Decision::Allow {
        Ok(())
    } else {
        Err(policy_denied(state, ctx, action, &outcome, None).await)
    }
}
