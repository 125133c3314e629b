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
    /// Why break-glass was asserted (`X-Break-Glass-Reason`); always set when `break_glass` is.
    pub break_glass_reason: Option<String>,
    /// The service principal that acts for `actor` (the Slack agent), when delegated.
    pub via: Option<String>,
}

/// Which listener a request arrived on; inserted by the server, never read from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Api,
    Ui,
}

impl RequestContext {
    pub fn tenant(&self) -> &TenantId {
        &self.actor.tenant_id
    }

    /// Whether the caller holds the `admin` role of its tenant.
    pub fn is_admin(&self) -> bool {
        self.actor.roles.iter().any(|r| r == "admin")
    }

    /// How a person's plan came in, from the authenticated channel: through the Slack agent
    /// (delegation) or directly. Never taken from a request body.
    pub fn trigger(&self) -> carapulse_core::model::Trigger {
        if self.via.is_some() {
            carapulse_core::model::Trigger::Chatops
        } else {
            carapulse_core::model::Trigger::Manual
        }
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

/// Longest `X-Request-Id` accepted.
const MAX_REQUEST_ID: usize = 128;

/// The caller's `X-Request-Id`: absent, or 1-128 characters of `[A-Za-z0-9._:-]` (it lands in
/// logs and audit rows, so nothing else is let through).
fn request_id(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("x-request-id") else {
        return Ok(None);
    };
    let valid = value.to_str().ok().filter(|v| {
        !v.is_empty()
            && v.len() <= MAX_REQUEST_ID
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    });
    match valid {
        Some(v) => Ok(Some(v.to_owned())),
        None => Err(ApiError::bad_request(
            "invalid_request_id",
            format!("X-Request-Id must be 1-{MAX_REQUEST_ID} characters of A-Z a-z 0-9 . _ : -"),
        )),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `method path` is one of the three stream routes: `GET /v1/events`, `GET /v1/ws`
/// and `GET /v1/executions/{uuid}/logs` — matched exactly, never by suffix (a
/// `DELETE .../members/events?access_token=` must not authenticate).
fn is_stream_route(method: &axum::http::Method, path: &str) -> bool {
    if method != axum::http::Method::GET {
        return false;
    }
    // Inside the nested `/v1` router the prefix is already stripped.
    let path = path.strip_prefix("/v1").unwrap_or(path);
    if path == "/events" || path == "/ws" {
        return true;
    }
    path.strip_prefix("/executions/")
        .and_then(|rest| rest.strip_suffix("/logs"))
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok() && !id.contains('/'))
}

/// Browsers cannot set headers on `EventSource` or `WebSocket`, so the streaming routes (and
/// only they) also take the token from `?access_token=`.
fn stream_query_token(req: &Request) -> Option<String> {
    if !is_stream_route(req.method(), req.uri().path()) {
        return None;
    }
    url_query_param(req.uri().query()?, "access_token")
}

/// Longest break-glass reason.
const MAX_BREAK_GLASS_REASON: usize = 500;

/// `X-Break-Glass: true` is honoured only from a holder of `gateway.break_glass_roles` who says
/// why in `X-Break-Glass-Reason`; anything else is refused (not silently ignored), and audited.
fn break_glass(
    state: &AppState,
    actor: &Actor,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let asserted = headers
        .get("x-break-glass")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !asserted {
        return Ok(None);
    }
    let roles = &state.config.gateway.break_glass_roles;
    if !actor.has_any_role(roles) {
        return Err(ApiError::forbidden(
            "break_glass_forbidden",
            format!("break-glass needs one of the roles {roles:?}"),
        ));
    }
    let reason = headers
        .get("x-break-glass-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if reason.is_empty() || reason.chars().count() > MAX_BREAK_GLASS_REASON {
        return Err(ApiError::bad_request(
            "break_glass_reason_required",
            format!(
                "break-glass needs X-Break-Glass-Reason (1-{MAX_BREAK_GLASS_REASON} characters)"
            ),
        ));
    }
    carapulse_http::text::check_text("X-Break-Glass-Reason", reason)
        .map_err(|m| ApiError::bad_request("invalid_text", m))?;
    Ok(Some(reason.to_owned()))
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

/// Why a request was refused, with what to do instead when it came the Go version's way (a
/// tenant header and no token).
fn refusal_text(err: &carapulse_core::auth::AuthError, headers: &HeaderMap) -> String {
    if headers.contains_key("x-tenant-id") && bearer(headers).is_none() {
        return format!(
            "{err}: X-Tenant-Id is not accepted (the Go version's way); the tenant comes from the bearer token's tenant claim: send Authorization: Bearer <token>"
        );
    }
    err.to_string()
}

/// Verifies the bearer token, binds the request to the token's tenant and applies the per-actor
/// rate limit. Refusals are audited on the system chain.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let rid = match request_id(req.headers()) {
        Ok(rid) => rid,
        Err(err) => return err.into_response(),
    };
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
    // The system tenant holds the chain of refused requests; no token may act in it.
    let verified = verified.and_then(|actor| {
        if actor.tenant_id.as_str() == SYSTEM_TENANT {
            Err(carapulse_core::auth::AuthError::InvalidClaim(format!(
                "tenant {SYSTEM_TENANT} is reserved"
            )))
        } else {
            Ok(actor)
        }
    });
    let actor = match verified {
        Ok(actor) => actor,
        Err(err) => {
            state.metrics.auth_failures.inc();
            // Throttle refusals per peer so bad tokens cannot flood the audit log.
            if let Some(suppressed) = state.refusals.admit(&format!("auth:{peer}")) {
                if let Ok(tenant) = TenantId::parse(SYSTEM_TENANT) {
                    let entry = AuditEntry::new(
                        tenant,
                        AuditActor::anonymous(),
                        "auth.verify",
                        AuditDecision::Deny,
                    )
                    .reason(err.to_string())
                    .request_id(rid.clone())
                    .context(
                        json!({"peer": peer, "path": req.uri().path(), "suppressed": suppressed}),
                    );
                    state.audit(entry).await;
                }
            }
            return ApiError::unauthorized(refusal_text(&err, req.headers())).into_response();
        }
    };
    let (actor, via) = match delegate(&state, actor, req.headers()) {
        Ok(pair) => pair,
        Err(err) => return err.into_response(),
    };
    // A delegating service spends its own budget too, so it cannot multiply its rate by
    // cycling through the people it acts for.
    let mut keys = vec![format!("{}/{}", actor.tenant_id, actor.id)];
    if let Some(service) = &via {
        keys.push(format!("{}/{}", actor.tenant_id, service));
    }
    if let Some(retry_after) = keys.iter().find_map(|k| state.limiter.check(k).err()) {
        state.metrics.rate_limited.inc();
        let mut err = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {retry_after}s"),
        );
        err.retry_after_secs = Some(retry_after);
        return err.into_response();
    }
    let break_glass_reason = match break_glass(&state, &actor, req.headers()) {
        Ok(reason) => reason,
        Err(err) => {
            let mut audit_actor = AuditActor::from(&actor);
            audit_actor.via = via.clone();
            let entry = AuditEntry::new(
                actor.tenant_id.clone(),
                audit_actor,
                "break_glass.refused",
                AuditDecision::Deny,
            )
            .reason(err.message.clone())
            .request_id(rid.clone())
            .context(json!({"path": req.uri().path()}));
            state.audit(entry).await;
            return err.into_response();
        }
    };
    let span = tracing::info_span!("request", request_id = rid.as_deref().unwrap_or(""), tenant = %actor.tenant_id, actor = %actor.id);
    req.extensions_mut().insert(RequestContext {
        actor,
        request_id: rid,
        break_glass: break_glass_reason.is_some(),
        break_glass_reason,
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
        .observe(
            started.elapsed().as_secs_f64(),
            carapulse_core::telemetry::exemplar(),
            None,
        );
    response
}

#[cfg(test)]
mod tests {
    use super::is_stream_route;
    use axum::http::Method;

    #[test]
    fn only_the_three_stream_routes_take_query_tokens() {
        let id = "0190b8f4-4c1e-7c3a-9b1e-6a4f1e2d3c4b";
        for path in [
            "/v1/events",
            "/events",
            "/v1/ws",
            "/ws",
            &format!("/v1/executions/{id}/logs"),
        ] {
            assert!(is_stream_route(&Method::GET, path), "{path}");
        }
        for (method, path) in [
            (Method::DELETE, "/v1/sessions/x/members/events".to_owned()),
            (Method::GET, "/v1/sessions/x/members/events".to_owned()),
            (Method::POST, "/v1/events".to_owned()),
            (Method::GET, "/v1/plans/ws".to_owned()),
            (Method::GET, "/v1/executions/not-a-uuid/logs".to_owned()),
            (Method::GET, format!("/v1/executions/{id}/x/logs")),
            (Method::DELETE, format!("/v1/executions/{id}/logs")),
        ] {
            assert!(!is_stream_route(&method, &path), "{method} {path}");
        }
    }
}
