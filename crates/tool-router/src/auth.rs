//! Who is calling the router: only service principals holding the shared token (the
//! orchestrator and the context collectors).
//!
//! Why no user tokens: the router runs tools with its own global credentials (kubeconfig, Vault
//! token, cloud keys). A person reaching it directly would bypass plans, approvals and audit, so
//! people go through the gateway and the router refuses their tokens outright. A service token
//! alone is also not enough for a change: writes and sensitive reads need an execution grant
//! (see `carapulse_core::grant`), which only the orchestrator can mint.

use axum::http::HeaderMap;

use carapulse_core::auth::AuthError;

/// An authenticated caller: a holder of `tool_router.auth_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service;

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts the service token and nothing else.
pub fn authenticate(
    headers: &HeaderMap,
    service_token: Option<&str>,
) -> Result<Service, AuthError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    match service_token.filter(|t| !t.is_empty()) {
        Some(expected) if constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) => {
            Ok(Service)
        }
        _ => Err(AuthError::InvalidClaim(
            "the tool router serves only its service principals (orchestrator, context collectors); people use the gateway".into(),
        )),
    }
}
