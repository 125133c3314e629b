//! Turning verified claims into an actor, and minting dev tokens.

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::model::{Actor, ActorId, TenantId};

use super::AuthError;

/// Extracts `sub`, `email`, roles and tenant from verified claims.
pub(crate) fn actor_from_claims(
    claims: &Map<String, Value>,
    tenant_claim: &str,
    roles_claim: &str,
) -> Result<Actor, AuthError> {
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(AuthError::MissingClaim("sub".into()))?;
    let id = ActorId::parse(sub).map_err(|e| AuthError::InvalidClaim(e.to_string()))?;
    let tenant = claims
        .get(tenant_claim)
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::MissingClaim(tenant_claim.to_owned()))?;
    let tenant_id = TenantId::parse(tenant).map_err(|e| AuthError::InvalidClaim(e.to_string()))?;
    let roles = match claims.get(roles_claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s
            .split([' ', ','])
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Actor {
        id,
        email,
        roles,
        tenant_id,
    })
}

/// What a dev token should say.
#[derive(Debug, Clone)]
pub struct DevTokenRequest<'a> {
    pub secret: &'a str,
    pub issuer: &'a str,
    pub audience: Option<&'a str>,
    pub subject: &'a str,
    pub tenant: &'a str,
    pub roles: &'a [String],
    pub email: Option<&'a str>,
    pub ttl_secs: i64,
    pub tenant_claim: &'a str,
    pub roles_claim: &'a str,
}

/// Signs an HS256 token for dev mode.
pub fn mint_dev_token(req: &DevTokenRequest<'_>) -> Result<String, AuthError> {
    let now = chrono::Utc::now().timestamp();
    let mut claims = Map::new();
    claims.insert("sub".into(), req.subject.into());
    claims.insert("iss".into(), req.issuer.into());
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), (now - 5).into());
    claims.insert("exp".into(), (now + req.ttl_secs).into());
    claims.insert(req.tenant_claim.into(), req.tenant.into());
    claims.insert(
        req.roles_claim.into(),
        Value::Array(req.roles.iter().cloned().map(Value::String).collect()),
    );
    if let Some(aud) = req.audience {
        claims.insert("aud".into(), aud.into());
    }
    if let Some(email) = req.email {
        claims.insert("email".into(), email.into());
    }
    encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &Value::Object(claims),
        &EncodingKey::from_secret(req.secret.as_bytes()),
    )
    .map_err(|e| AuthError::Malformed(e.to_string()))
}
