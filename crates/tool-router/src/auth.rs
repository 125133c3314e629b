//! Who is calling the router: a service holding the shared token (gateway, orchestrator), or a
//! user with a verified JWT.

use axum::http::HeaderMap;

use carapulse_core::auth::{AuthError, TokenVerifier};
use carapulse_core::model::Actor;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Holder of `tool_router.auth_token`; trusted to act for any tenant and to assert that a
    /// step belongs to an approved execution.
    Service,
    User(Actor),
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn authenticate(
    headers: &HeaderMap,
    service_token: Option<&str>,
    verifier: Option<&TokenVerifier>,
) -> Result<Principal, AuthError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let token = token.trim();
    if let Some(expected) = service_token.filter(|t| !t.is_empty()) {
        if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
            return Ok(Principal::Service);
        }
    }
    match verifier {
        Some(v) => v.verify(token).await.map(Principal::User),
        None => Err(AuthError::BadSignature),
    }
}
