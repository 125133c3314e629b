//! The OpenAPI 3.1 document of the gateway (`GET /openapi.json`).
//!
//! It is not written by hand: every handler carries a `#[utoipa::path]` annotation naming its
//! method, path, parameters, body type and responses, and the router is assembled with
//! `utoipa_axum`'s `routes!`, which registers the handler and its documentation together. A
//! route therefore cannot be served without being documented, nor documented without being
//! served; `tests/openapi.rs` checks the document against the live server on top of that.

use std::collections::BTreeMap;

use carapulse_http::error::{ErrorBody, ErrorDetail};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// Root of the document; paths are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Carapulse gateway API",
        description = "Plan, approve, execute and audit infrastructure operations. Every `/v1` route \
                       needs `Authorization: Bearer <JWT>`; streaming routes also accept \
                       `?access_token=`. Errors are `{\"error\": {\"code\", \"message\"}}`; lists are \
                       `{\"data\": [...], \"pagination\": {...}}` with `limit` (1-500) and `offset`.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    // Enums used by query parameters: `IntoParams` references them without registering them.
    components(schemas(
        ErrorBody,
        ErrorDetail,
        Pagination,
        carapulse_core::model::ExecutionStatus,
        carapulse_core::model::PlanApprovalState,
        carapulse_core::model::RiskLevel,
        carapulse_core::model::Trigger,
    )),
    tags(
        (name = "plans", description = "Plans: create (planner or explicit steps), read, execute"),
        (name = "approvals", description = "Approve or deny plans; pending approvals and decisions"),
        (name = "executions", description = "Runs of approved plans: status, steps, logs, cancel"),
        (name = "workflows", description = "The catalogue of workflow templates"),
        (name = "audit", description = "The hash-chained audit log: search, verify, export"),
        (name = "context", description = "The service graph built by the collectors"),
        (name = "events", description = "Live events over SSE and WebSocket"),
        (name = "sessions", description = "Sessions that scope plans and streams to their members"),
        (name = "schedules", description = "Cron schedules that start plans"),
        (name = "library", description = "Operator memory, playbooks and runbooks"),
        (name = "policy", description = "The loaded policy and its playground"),
        (name = "replays", description = "Incident replay: recorded incidents re-run under current or candidate policy, playbooks and planner, without side effects"),
        (name = "system", description = "Health, readiness, metrics, diagnostics, webhooks"),
    )
)]
pub struct ApiDoc;

/// `bearer` (the JWT every `/v1` route needs) and `access_token` (the query form browsers use on
/// streaming routes).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("access_token"))),
        );
    }
}

/// The `pagination` object of every list.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Pagination {
    pub limit: i64,
    pub offset: i64,
    /// Whether rows follow this page.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// For offset paging while within the offset cap; absent on the last page.
    pub next_offset: Option<i64>,
    /// Matching rows, only with `count=exact` or `count=estimate`.
    pub total: Option<i64>,
    /// Whether `total` is the query planner's estimate (present with `total`).
    pub total_is_estimate: Option<bool>,
}

/// The failures any authenticated route can answer with, each carrying an [`ErrorBody`].
pub struct CommonErrors;

impl utoipa::IntoResponses for CommonErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        [
            (
                "400",
                "Malformed request: bad JSON, unknown field or bad query parameter",
            ),
            ("401", "Missing, expired or invalid token"),
            ("403", "Refused by policy or by the caller's roles"),
            ("413", "Body larger than gateway.max_body_bytes"),
            ("422", "Well-formed but invalid input"),
            ("429", "Rate limited; retry after Retry-After"),
            (
                "503",
                "Database or orchestrator unavailable; retry after Retry-After",
            ),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_owned(), error_response(description)))
        .collect()
    }
}

/// A 404 for routes that address one resource.
pub struct NotFound;

impl utoipa::IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([(
            "404".to_owned(),
            error_response("No such resource in the caller's tenant"),
        )])
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// The envelope of every list: one page of items and where the next one starts.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ListBody {
    /// The items of this page.
    #[schema(value_type = Vec<Object>)]
    pub data: serde_json::Value,
    pub pagination: Pagination,
}
