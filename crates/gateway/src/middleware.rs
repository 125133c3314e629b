//! Cross-cutting request handling: authentication + tenancy + rate limiting for `/v1`, request
//! metrics, and the per-request context handlers read (actor, request id, break-glass flag).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::Instrument;

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry};
use carapulse_core::model::{Actor, TenantId};

use crate::error::ApiError;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::AppState;

/// Audit chain for security events that have no trusted tenant (refused tokens).
pub const SYSTEM_TENANT: &str = "carapulse-system";

/// What every authenticated handler knows about its request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub actor: Actor,
    pub request_id: Option<String>,
    pub break_glass: bool,
    /// The service principal that acts for `actor` (the Slack agent), when delegated.
    pub via: Option<String>,
}

impl RequestContext {
    pub fn tenant(&self) -> &TenantId {
        &self.actor.tenant_id
    }

    /// An audit entry for this request's tenant and actor.
    pub fn audit(&self, action: &str, decision: AuditDecision) -> AuditEntry {
        let mut actor = AuditActor::from(&self.actor);
        actor.via = self.via.clone();
        AuditEntry::new(self.actor.tenant_id.clone(), actor, action, decision)
            .request_id(self.request_id.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Browsers cannot set headers on `EventSource` or `WebSocket`, so the streaming routes (and
/// only they) also take the token from `?access_token=`.
fn stream_query_token(req: &Request) -> Option<String> {
    let path = req.uri().path();
    if !(path.ends_with("/events") || path.ends_with("/ws") || path.ends_with("/logs")) {
        return None;
    }
    url_query_param(req.uri().query()?, "access_token")
}

fn url_query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Header naming the person a delegating service acts for.
pub const ON_BEHALF_OF: &str = "x-carapulse-on-behalf-of";
pub const ON_BEHALF_OF_EMAIL: &str = "x-carapulse-on-behalf-of-email";
pub const ON_BEHALF_OF_ROLES: &str = "x-carapulse-on-behalf-of-roles";

/// Delegation: a service principal holding one of `gateway.delegation_roles` (the Slack agent)
/// may act for a person it has identified. The person gets the service's tenant and at most the
/// service's own roles (never the delegation roles), so delegation cannot widen authority;
/// separation of duties and audit then see the person, with the service recorded as `via`.
fn delegate(
    state: &AppState,
    service: Actor,
    headers: &HeaderMap,
) -> Result<(Actor, Option<String>), ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(person) = header(ON_BEHALF_OF) else {
        return Ok((service, None));
    };
    let delegation_roles = &state.config.gateway.delegation_roles;
    if !service.has_any_role(delegation_roles) {
        return Err(ApiError::forbidden(
            "delegation_forbidden",
            format!("acting on behalf of someone needs one of the roles {delegation_roles:?}"),
        ));
    }
    let id = carapulse_core::model::ActorId::parse(person)
        .map_err(|e| ApiError::bad_request("invalid_delegation", e.message))?;
    let roles = header(ON_BEHALF_OF_ROLES)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .filter(|r| service.roles.iter().any(|own| own == r))
                .filter(|r| !delegation_roles.iter().any(|d| d == r))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let via = service.id.to_string();
    Ok((
        Actor {
            id,
            email: header(ON_BEHALF_OF_EMAIL).map(str::to_owned),
            roles,
            tenant_id: service.tenant_id,
        },
        Some(via),
    ))
}

/// Verifies the bearer token, binds the request to the token's tenant and applies the per-actor
/// rate limit. Refusals are audited on the system chain.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let rid = request_id(req.headers());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let token = bearer(req.headers())
        .map(str::to_owned)
        .or_else(|| stream_query_token(&req));
    let verified = match token {
        None => Err(carapulse_core::auth::AuthError::Missing),
        Some(token) => state.verifier.verify(&token).await,
    };
    let actor = match verified {
        Ok(actor) => actor,
        Err(err) => {
            state.metrics.auth_failures.inc();
            // Throttle refusals per peer so bad tokens cannot flood the audit log.
            if state.limiter.check(&format!("peer:{peer}")).is_ok() {
                if let Ok(tenant) = TenantId::parse(SYSTEM_TENANT) {
                    let entry = AuditEntry::new(
                        tenant,
                        AuditActor::anonymous(),
                        "auth.verify",
                        AuditDecision::Deny,
                    )
                    .reason(err.to_string())
                    .request_id(rid.clone())
                    .context(json!({"peer": peer, "path": req.uri().path()}));
                    state.audit(entry).await;
                }
            }
            return ApiError::unauthorized(err.to_string()).into_response();
        }
    };
    let (actor, via) = match delegate(&state, actor, req.headers()) {
        Ok(pair) => pair,
        Err(err) => return err.into_response(),
    };
    let key = format!("{}/{}", actor.tenant_id, actor.id);
    if let Err(retry_after) = state.limiter.check(&key) {
        state.metrics.rate_limited.inc();
        let mut err = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {retry_after}s"),
        );
        err.retry_after_secs = Some(retry_after);
        return err.into_response();
    }
    let break_glass = req
        .headers()
        .get("x-break-glass")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let span = tracing::info_span!("request", request_id = rid.as_deref().unwrap_or(""), tenant = %actor.tenant_id, actor = %actor.id);
    req.extensions_mut().insert(RequestContext {
        actor,
        request_id: rid,
        break_glass,
        via,
    });
    next.run(req).instrument(span).await
}

/// Counts requests and observes latency by matched route (not raw path, to bound cardinality).
pub async fn track_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    state
        .metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}
