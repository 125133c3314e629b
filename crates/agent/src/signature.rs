//! Slack request signatures: `v0=` + HMAC-SHA256(signing secret, `v0:<timestamp>:<body>`),
//! checked with slack-morphism's verifier, plus our own timestamp window so a captured request
//! cannot be replayed later, and a memory of the signatures seen inside that window so it cannot
//! be replayed sooner either (each signature is accepted once).

use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
use slack_morphism::SlackSigningSecret;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature")]
    Missing,
    #[error("the request timestamp is not a number")]
    BadTimestamp,
    #[error("the request is {0}s away from now (replay window exceeded)")]
    Stale(i64),
    #[error("the signature does not match")]
    Mismatch,
    #[error("this signed request was already received (replay)")]
    Replayed,
}

/// Verifies Slack signatures.
#[derive(Clone)]
pub struct SignatureCheck {
    verifier: SlackEventSignatureVerifier,
    tolerance_secs: i64,
    /// Signatures accepted within the window, with the request timestamp (for pruning).
    seen: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

impl std::fmt::Debug for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCheck")
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl SignatureCheck {
    pub fn new(secret: &str, tolerance_secs: u64) -> Self {
        Self {
            verifier: SlackEventSignatureVerifier::new(&SlackSigningSecret::new(secret.to_owned())),
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(300),
            seen: Default::default(),
        }
    }

    /// Checks a request received at `now` (Unix seconds).
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &str,
        now: i64,
    ) -> Result<(), SignatureError> {
        let (Some(ts), Some(sig)) = (timestamp, signature) else {
            return Err(SignatureError::Missing);
        };
        let sent: i64 = ts
            .trim()
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        let skew = now - sent;
        if skew.abs() > self.tolerance_secs {
            return Err(SignatureError::Stale(skew));
        }
        self.verifier
            .verify(sig.trim(), body, ts.trim())
            .map_err(|_| SignatureError::Mismatch)?;
        // Remembered only once valid, so forged requests cannot fill the memory; entries older
        // than the window are refused by the timestamp check anyway and are pruned here.
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let tolerance = self.tolerance_secs;
        seen.retain(|_, at| (now - *at).abs() <= tolerance);
        if seen.insert(sig.trim().to_owned(), sent).is_some() {
            return Err(SignatureError::Replayed);
        }
        Ok(())
    }
}
