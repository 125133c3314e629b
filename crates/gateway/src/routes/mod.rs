//! The HTTP routes and how they are layered.

mod alerts;
pub(crate) mod approvals;
mod audit;
mod context;
mod diagnostics;
mod events;
mod executions;
pub(crate) use executions::{execution_not_found, require_execution_visible};
mod health;
mod hooks;
pub(crate) mod library;
mod logs;
pub(crate) mod plans;
mod policy;
mod replays;
mod revisions;
mod schedules;
pub(crate) mod sessions;
mod whatif;
mod workflows;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use carapulse_core::audit::AuditDecision;
use carapulse_core::policy::PolicyOutcome;
use carapulse_core::store::{Page, Paged};

use crate::error::ApiError;
use crate::middleware::{authenticate, track_metrics, RequestContext};
use crate::openapi::{ApiDoc, ListBody, Pagination};
use crate::state::AppState;

/// The full API router with its OpenAPI document. Handlers are registered through
/// `utoipa_axum::routes!`, which adds each one's `#[utoipa::path]` to the document, so the two
/// cannot drift apart.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = documented_routes(&state).split_for_parts();
    let openapi = std::sync::Arc::new(openapi);
    let cfg = &state.config.gateway;
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { Json(doc) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(cfg.request_timeout_secs.max(1)),
        ))
        .layer(from_fn_with_state(state.clone(), track_metrics))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let rid = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let span = tracing::info_span!(
                    "http",
                    otel.name = %format!("{} {}", req.method(), req.uri().path()),
                    otel.kind = "server",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = %rid,
                );
                // A caller's W3C traceparent makes this request part of its trace.
                carapulse_core::telemetry::continue_trace(&span, req.headers());
                span
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// The OpenAPI document alone (what `GET /openapi.json` serves).
pub fn openapi(state: &AppState) -> utoipa::openapi::OpenApi {
    documented_routes(state).split_for_parts().1
}

/// Every documented route: `/v1` behind authentication, then the unauthenticated ones.
fn documented_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .routes(routes!(plans::create, plans::list))
        .routes(routes!(plans::get, plans::execute_colon, plans::delete))
        .routes(routes!(plans::execute))
        .routes(routes!(plans::risk))
        .routes(routes!(revisions::create, revisions::list))
        .routes(routes!(revisions::get))
        .routes(routes!(revisions::diff))
        .routes(routes!(whatif::plan))
        .routes(routes!(whatif::draft))
        .routes(routes!(whatif::impact))
        .routes(routes!(whatif::impact_job))
        .routes(routes!(replays::create, replays::list))
        .routes(routes!(replays::get))
        .routes(routes!(approvals::create, approvals::list))
        .routes(routes!(executions::list))
        .routes(routes!(executions::get))
        .routes(routes!(executions::cancel))
        .routes(routes!(executions::decision))
        .routes(routes!(logs::stream))
        .routes(routes!(workflows::list))
        .routes(routes!(workflows::start))
        .routes(routes!(workflows::get))
        .routes(routes!(workflows::add_version))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::checkpoints, audit::checkpoint_now))
        .routes(routes!(audit::export))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(
            schedules::get,
            schedules::update,
            schedules::delete
        ))
        .routes(routes!(library::reload))
        .routes(routes!(sessions::list, sessions::create))
        .routes(routes!(sessions::get, sessions::update, sessions::delete))
        .routes(routes!(sessions::add_member))
        .routes(routes!(sessions::remove_member))
        .routes(routes!(library::memory_list, library::memory_create))
        .routes(routes!(
            library::memory_get,
            library::memory_update,
            library::memory_delete
        ))
        .routes(routes!(library::playbook_list, library::playbook_create))
        .routes(routes!(
            library::playbook_get,
            library::playbook_update,
            library::playbook_delete
        ))
        .routes(routes!(library::runbook_list, library::runbook_create))
        .routes(routes!(
            library::runbook_get,
            library::runbook_update,
            library::runbook_delete
        ))
        .routes(routes!(context::services))
        .routes(routes!(context::graph))
        .routes(routes!(context::snapshots))
        .routes(routes!(context::snapshot))
        .routes(routes!(context::snapshot_diff))
        .routes(routes!(context::refresh))
        .routes(routes!(alerts::list))
        .routes(routes!(diagnostics::diagnostics))
        .routes(routes!(policy::show))
        .routes(routes!(policy::evaluate))
        .routes(routes!(policy::reload))
        .routes(routes!(events::sse))
        .routes(routes!(events::ws))
        .layer(from_fn_with_state(state.clone(), authenticate));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        // Webhooks authenticate per source (bearer or HMAC), not with user tokens.
        .routes(routes!(hooks::receive))
        .nest("/v1", api)
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
    json!(ListBody {
        data: json!(paged.items),
        pagination: Pagination {
            limit: paged.page.limit,
            offset: paged.page.offset,
            has_more: paged.has_more,
            next_cursor: paged.next_cursor.clone(),
            next_offset: paged.next_offset(),
            total: paged.total,
            total_is_estimate: paged.total.map(|_| paged.total_is_estimate()),
        },
    })
}

/// A list request's page from its query parameters; a bad combination is a 400.
pub(crate) fn page_request(
    limit: Option<i64>,
    offset: Option<i64>,
    cursor: Option<&str>,
    count: Option<&str>,
) -> Result<Page, ApiError> {
    Page::parse(limit, offset, cursor, count)
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))
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
