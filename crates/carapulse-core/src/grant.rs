//! Execution grants: the only thing that lets the tool router run a write (or a sensitive read).
//!
//! Why: the router's service token is held by every component that reads through the router
//! (the orchestrator and the context collectors). If that token alone authorised writes, any
//! holder — or anything that stole it — could run arbitrary changes with the router's
//! credentials. A grant is minted by the orchestrator for one tool call of one execution, after it
//! has re-read the plan from Postgres and checked its approval and integrity hash. It lists the
//! digests of every call the approved revision can make (act, verify and rollback), binds the
//! tool call id, says whether the execution was started with break-glass, and expires soon. It is
//! signed with `tool_router.grant_key` (HMAC-SHA256), a secret only the orchestrator and the
//! router hold.
//!
//! Wire form (header `X-Carapulse-Grant`): `base64url(claims JSON) "." base64url(mac)`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::canonical::{canonical_json, sha256_hex};
use crate::model::{Plan, ToolName};

/// The HTTP header a grant travels in.
pub const GRANT_HEADER: &str = "x-carapulse-grant";

/// Shortest key accepted: the same floor as the dev JWT secret.
pub const MIN_KEY_BYTES: usize = 32;

/// Longest encoded grant the router reads (a plan of 50 steps with rollbacks fits easily).
pub const MAX_ENCODED_LEN: usize = 32 * 1024;

/// What a grant allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaims {
    /// Format version.
    pub v: u8,
    pub tenant_id: String,
    pub execution_id: String,
    pub plan_id: String,
    /// The integrity hash of the plan revision this grant was minted from.
    pub plan_hash: String,
    /// The tool call this grant is for; the router refuses any other id with it.
    pub tool_call_id: String,
    /// Digests (see [`call_digest`]) of every call the approved revision can make.
    pub calls: Vec<String>,
    /// The plan was approved by a person (policy's `require_approval` is satisfied).
    pub approved: bool,
    /// The execution was started with break-glass by someone allowed to assert it.
    pub break_glass: bool,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// Why a grant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("no grant: writes and sensitive reads run only as steps of an approved execution")]
    Missing,
    #[error("grant is malformed")]
    Malformed,
    #[error("grant signature is not valid")]
    BadSignature,
    #[error("grant expired")]
    Expired,
    #[error("grant does not cover this call: {0}")]
    NotCovered(&'static str),
    #[error("tool_router.grant_key is not set: grants cannot be minted or checked")]
    NoKey,
}

/// The digest of one call: tool, action and input in canonical JSON.
pub fn call_digest(tool: ToolName, action: &str, input: &Value) -> String {
    let doc = json!({"tool": tool.as_str(), "action": action, "input": input});
    sha256_hex(canonical_json(&doc).as_bytes())
}

/// Digests of every call `plan` can make: each step's action and each rollback.
pub fn plan_call_digests(plan: &Plan) -> Vec<String> {
    let mut out = Vec::with_capacity(plan.steps.len() * 2);
    for step in &plan.steps {
        out.push(call_digest(step.tool, step.action.as_str(), &step.input));
        if let Some(rb) = &step.rollback {
            out.push(call_digest(rb.tool, rb.action.as_str(), &rb.input));
        }
    }
    out.sort();
    out.dedup();
    out
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], payload: &[u8]) -> Result<HmacSha256, GrantError> {
    if key.len() < MIN_KEY_BYTES {
        return Err(GrantError::NoKey);
    }
    let mut m = HmacSha256::new_from_slice(key).map_err(|_| GrantError::NoKey)?;
    m.update(payload);
    Ok(m)
}

/// Signs `claims` with `key`.
pub fn mint(claims: &GrantClaims, key: &[u8]) -> Result<String, GrantError> {
    let body = serde_json::to_vec(claims).map_err(|_| GrantError::Malformed)?;
    let payload = URL_SAFE_NO_PAD.encode(body);
    let sig = mac(key, payload.as_bytes())?.finalize().into_bytes();
    Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Checks the signature and expiry of `encoded`; what it covers is the caller's to check.
pub fn verify(encoded: &str, key: &[u8], now: DateTime<Utc>) -> Result<GrantClaims, GrantError> {
    if encoded.len() > MAX_ENCODED_LEN {
        return Err(GrantError::Malformed);
    }
    let (payload, sig) = encoded
        .trim()
        .split_once('.')
        .ok_or(GrantError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| GrantError::Malformed)?;
    // `verify_slice` compares in constant time.
    mac(key, payload.as_bytes())?
        .verify_slice(&sig)
        .map_err(|_| GrantError::BadSignature)?;
    let body = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| GrantError::Malformed)?;
    let claims: GrantClaims = serde_json::from_slice(&body).map_err(|_| GrantError::Malformed)?;
    if claims.v != 1 {
        return Err(GrantError::Malformed);
    }
    if claims.exp <= now.timestamp() {
        return Err(GrantError::Expired);
    }
    Ok(claims)
}

impl GrantClaims {
    /// Checks that this grant covers one concrete call.
    pub fn covers(
        &self,
        tenant_id: &str,
        execution_id: Option<&str>,
        tool_call_id: Option<&str>,
        digest: &str,
    ) -> Result<(), GrantError> {
        if self.tenant_id != tenant_id {
            return Err(GrantError::NotCovered("another tenant"));
        }
        if execution_id != Some(self.execution_id.as_str()) {
            return Err(GrantError::NotCovered("another execution"));
        }
        if tool_call_id != Some(self.tool_call_id.as_str()) {
            return Err(GrantError::NotCovered("another tool call"));
        }
        if !self.calls.iter().any(|c| c == digest) {
            return Err(GrantError::NotCovered(
                "tool, action or input differ from the approved plan",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp: i64) -> GrantClaims {
        GrantClaims {
            v: 1,
            tenant_id: "acme".into(),
            execution_id: "e1".into(),
            plan_id: "p1".into(),
            plan_hash: "h".into(),
            tool_call_id: "t1".into(),
            calls: vec![call_digest(
                ToolName::Kubectl,
                "scale",
                &json!({"resource": "deployment/web", "replicas": 3}),
            )],
            approved: true,
            break_glass: false,
            exp,
        }
    }

    #[test]
    fn round_trip_and_coverage() {
        let now = Utc::now();
        let g = mint(&claims(now.timestamp() + 60), KEY).unwrap();
        let c = verify(&g, KEY, now).unwrap();
        let d = call_digest(
            ToolName::Kubectl,
            "scale",
            &json!({"replicas": 3, "resource": "deployment/web"}),
        );
        c.covers("acme", Some("e1"), Some("t1"), &d).unwrap();
        let other = call_digest(
            ToolName::Kubectl,
            "scale",
            &json!({"resource": "deployment/web", "replicas": 30}),
        );
        assert!(matches!(
            c.covers("acme", Some("e1"), Some("t1"), &other),
            Err(GrantError::NotCovered(_))
        ));
        assert!(c.covers("beta", Some("e1"), Some("t1"), &d).is_err());
        assert!(c.covers("acme", Some("e2"), Some("t1"), &d).is_err());
        assert!(c.covers("acme", Some("e1"), Some("t2"), &d).is_err());
        assert!(c.covers("acme", None, Some("t1"), &d).is_err());
    }

    #[test]
    fn tampering_expiry_and_keys_are_refused() {
        let now = Utc::now();
        let g = mint(&claims(now.timestamp() + 60), KEY).unwrap();
        let other_key = b"ffffffffffffffffffffffffffffffff";
        assert_eq!(verify(&g, other_key, now), Err(GrantError::BadSignature));
        // Re-encode the claims with break_glass flipped, keeping the old signature.
        let (_, sig) = g.split_once('.').unwrap();
        let mut forged = claims(now.timestamp() + 60);
        forged.break_glass = true;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            verify(&format!("{payload}.{sig}"), KEY, now),
            Err(GrantError::BadSignature)
        );
        let old = mint(&claims(now.timestamp() - 1), KEY).unwrap();
        assert_eq!(verify(&old, KEY, now), Err(GrantError::Expired));
        assert_eq!(verify("garbage", KEY, now), Err(GrantError::Malformed));
        assert_eq!(mint(&claims(0), b"short"), Err(GrantError::NoKey));
    }
}
