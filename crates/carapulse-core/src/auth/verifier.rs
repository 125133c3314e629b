//! The token verifier the gateway (and later the tool router) use on every request.

use std::time::Duration;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::GatewayConfig;
use crate::model::Actor;

use super::claims::actor_from_claims;
use super::jwks::JwksCache;

/// Why a token was refused. Messages are safe to return to the caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token signing key is unknown")]
    UnknownKey,
    #[error("token lacks the {0} claim")]
    MissingClaim(String),
    #[error("invalid claim: {0}")]
    InvalidClaim(String),
    #[error("key set unavailable: {0}")]
    Jwks(String),
}

/// What the verifier accepts.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub oidc_issuer: Option<String>,
    pub oidc_audience: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_ttl: Duration,
    /// HS256 secret, only when dev mode is on.
    pub dev_secret: Option<String>,
    pub dev_issuer: String,
    pub tenant_claim: String,
    pub roles_claim: String,
    /// Allowed clock skew.
    pub leeway_secs: u64,
}

impl VerifierSettings {
    pub fn from_gateway(cfg: &GatewayConfig) -> Self {
        Self {
            oidc_issuer: cfg.oidc_issuer.clone().filter(|s| !s.is_empty()),
            oidc_audience: cfg.oidc_client_id.clone().filter(|s| !s.is_empty()),
            jwks_url: cfg.oidc_jwks_url.clone().filter(|s| !s.is_empty()),
            jwks_ttl: Duration::from_secs(cfg.jwks_cache_ttl_secs.max(10)),
            dev_secret: if cfg.dev_mode {
                cfg.dev_jwt_secret.clone()
            } else {
                None
            },
            dev_issuer: cfg.dev_issuer.clone(),
            tenant_claim: cfg.tenant_claim.clone(),
            roles_claim: cfg.roles_claim.clone(),
            leeway_secs: 30,
        }
    }
}

/// Verifies bearer tokens and turns them into actors.
#[derive(Debug)]
pub struct TokenVerifier {
    settings: VerifierSettings,
    jwks: Option<JwksCache>,
}

impl TokenVerifier {
    pub fn new(settings: VerifierSettings) -> Result<Self, AuthError> {
        let jwks = match &settings.jwks_url {
            Some(url) => Some(JwksCache::new(url.clone(), settings.jwks_ttl)?),
            None => None,
        };
        Ok(Self { settings, jwks })
    }

    /// Verifies `token` and returns the actor it names.
    pub async fn verify(&self, token: &str) -> Result<Actor, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let claims = match header.alg {
            Algorithm::HS256 => self.verify_dev(token)?,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384 => self.verify_oidc(token, header.alg, header.kid).await?,
            other => return Err(AuthError::Algorithm(format!("{other:?}"))),
        };
        actor_from_claims(
            &claims,
            &self.settings.tenant_claim,
            &self.settings.roles_claim,
        )
    }

    fn verify_dev(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        let secret = self
            .settings
            .dev_secret
            .as_deref()
            .ok_or_else(|| AuthError::Algorithm("HS256 (dev mode is off)".into()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = self.settings.leeway_secs;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&[&self.settings.dev_issuer]);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        let data = decode::<Map<String, Value>>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .map_err(map_jwt_error)?;
        Ok(data.claims)
    }

    async fn verify_oidc(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<Map<String, Value>, AuthError> {
        let jwks = self
            .jwks
            .as_ref()
            .ok_or_else(|| AuthError::Algorithm(format!("{alg:?} (no OIDC JWKS configured)")))?;
        let mut set = jwks.get().await?;
        let mut key = select_key(&set, kid.as_deref());
        if key.is_none() {
            set = jwks.refresh(true).await?;
            key = select_key(&set, kid.as_deref());
        }
        let jwk = key.ok_or(AuthError::UnknownKey)?;
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::UnknownKey)?;
        let mut validation = Validation::new(alg);
        validation.leeway = self.settings.leeway_secs;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.validate_nbf = true;
        match &self.settings.oidc_issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => return Err(AuthError::WrongIssuer),
        }
        match &self.settings.oidc_audience {
            // A token without `aud` would otherwise pass: with a client id set, it is required.
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            }
            None => validation.validate_aud = false,
        }
        let data =
            decode::<Map<String, Value>>(token, &decoding, &validation).map_err(map_jwt_error)?;
        Ok(data.claims)
    }
}

fn select_key(
    set: &jsonwebtoken::jwk::JwkSet,
    kid: Option<&str>,
) -> Option<jsonwebtoken::jwk::Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

fn map_jwt_error(err: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
        ErrorKind::InvalidAlgorithm => AuthError::Algorithm("mismatch".into()),
        _ => AuthError::Malformed(err.to_string()),
    }
}
