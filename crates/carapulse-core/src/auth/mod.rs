//! Bearer-token authentication: JWT verification for OIDC (RS/ES/PS algorithms through a cached
//! JWKS) and for dev mode (HS256 with a shared secret). No path skips the signature check: a
//! token is accepted only if its algorithm matches a configured verifier and its signature,
//! issuer, audience and lifetime all check out. Claims become an [`Actor`] whose tenant comes
//! from the configured claim of the verified token.

mod claims;
mod jwks;
mod verifier;

pub use claims::{mint_dev_token, DevTokenRequest};
pub use verifier::{AuthError, TokenVerifier, VerifierSettings};
