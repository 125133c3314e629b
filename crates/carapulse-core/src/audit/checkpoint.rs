//! Signed audit checkpoints published outside the database.
//!
//! Why: the hash chain proves that events were not edited or re-linked, but someone with write
//! access to Postgres can delete the newest events and rewrite the head row to match: the
//! shorter chain still verifies. A checkpoint — (tenant, seq, hash), signed with a key the
//! database does not hold — is written on an interval and on demand to the object store (a
//! file or bucket path the database admin does not control) and to the log. Verification then
//! compares the chain with the latest checkpoint: a chain that ends before it, or that holds a
//! different event at its sequence number, was truncated or rewritten.
//!
//! Layout in the object store: `audit-checkpoints/<tenant>/<seq, 20 digits>.json` for each
//! checkpoint and `audit-checkpoints/<tenant>/latest.json` for the newest.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::canonical::canonical_json;
use crate::model::TenantId;
use crate::objects::ObjectStore;
use crate::store::{Store, StoreError};

use super::VerifyReport;

/// One published checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub tenant_id: String,
    pub seq: i64,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    /// base64url HMAC-SHA256 over the canonical JSON of the four fields above.
    pub signature: String,
}

/// Why a checkpoint could not be published or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("checkpoint sink: {0}")]
    Sink(String),
    #[error("checkpoint signature does not verify (forged or signed with another key)")]
    BadSignature,
}

/// What verification concluded against the latest checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointCheck {
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub ok: bool,
    pub problem: Option<String>,
}

type HmacSha256 = Hmac<Sha256>;

fn signature(key: &[u8], tenant: &str, seq: i64, hash: &str, at: &DateTime<Utc>) -> String {
    let doc = json!({"tenant_id": tenant, "seq": seq, "hash": hash, "created_at": at});
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(canonical_json(&doc).as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Publishes and reads checkpoints with one signing key.
#[derive(Clone)]
pub struct CheckpointSink {
    objects: std::sync::Arc<dyn ObjectStore>,
    key: Vec<u8>,
}

impl std::fmt::Debug for CheckpointSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSink").finish_non_exhaustive()
    }
}

fn dir(tenant: &str) -> String {
    format!("audit-checkpoints/{tenant}")
}

impl CheckpointSink {
    pub fn new(objects: std::sync::Arc<dyn ObjectStore>, key: &str) -> Self {
        Self {
            objects,
            key: key.as_bytes().to_vec(),
        }
    }

    /// Signs `tenant`'s current head and writes it out (object store, log, and an index row
    /// in Postgres for listing). `None` when the tenant has no events yet, or nothing new since
    /// the latest checkpoint.
    pub async fn publish(
        &self,
        store: &Store,
        tenant: &TenantId,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        let Some((seq, hash)) = store.audit_head(tenant).await? else {
            return Ok(None);
        };
        if let Ok(Some(latest)) = self.latest(tenant).await {
            if latest.seq == seq && latest.hash == hash {
                return Ok(None);
            }
        }
        let created_at = Utc::now();
        let checkpoint = Checkpoint {
            tenant_id: tenant.to_string(),
            seq,
            signature: signature(&self.key, tenant.as_str(), seq, &hash, &created_at),
            hash,
            created_at,
        };
        let bytes = serde_json::to_vec_pretty(&checkpoint)
            .map_err(|e| CheckpointError::Sink(e.to_string()))?;
        let base = dir(tenant.as_str());
        let reference = self
            .objects
            .put(&format!("{base}/{seq:020}.json"), bytes.clone())
            .await
            .map_err(|e| CheckpointError::Sink(e.to_string()))?;
        self.objects
            .put(&format!("{base}/latest.json"), bytes)
            .await
            .map_err(|e| CheckpointError::Sink(e.to_string()))?;
        tracing::info!(
            target: "carapulse::audit_checkpoint",
            tenant = %checkpoint.tenant_id,
            seq = checkpoint.seq,
            hash = %checkpoint.hash,
            signature = %checkpoint.signature,
            sink = %reference,
            "audit checkpoint published"
        );
        store
            .record_audit_checkpoint(tenant, &checkpoint, &reference)
            .await?;
        Ok(Some(checkpoint))
    }

    /// The newest checkpoint of `tenant` from the sink (not from Postgres), signature checked.
    pub async fn latest(&self, tenant: &TenantId) -> Result<Option<Checkpoint>, CheckpointError> {
        let key = format!("{}/latest.json", dir(tenant.as_str()));
        let bytes = match self.objects.get(&key).await {
            Ok(b) => b,
            Err(crate::objects::ObjectError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(CheckpointError::Sink(e.to_string())),
        };
        let cp: Checkpoint =
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Sink(e.to_string()))?;
        let expected = signature(&self.key, &cp.tenant_id, cp.seq, &cp.hash, &cp.created_at);
        if cp.tenant_id != tenant.as_str() || !constant_eq(&expected, &cp.signature) {
            return Err(CheckpointError::BadSignature);
        }
        Ok(Some(cp))
    }

    /// Completes a chain walk with the latest checkpoint: the chain must reach it and hold the
    /// same hash at its sequence number. Updates `report.ok`.
    pub async fn check(
        &self,
        store: &Store,
        tenant: &TenantId,
        report: &mut VerifyReport,
    ) -> Result<(), CheckpointError> {
        let latest = match self.latest(tenant).await {
            Ok(Some(cp)) => cp,
            Ok(None) => return Ok(()),
            Err(CheckpointError::BadSignature) => {
                report.ok = false;
                report.checkpoint = Some(CheckpointCheck {
                    seq: 0,
                    created_at: Utc::now(),
                    ok: false,
                    problem: Some(CheckpointError::BadSignature.to_string()),
                });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let problem = if report.events_checked < latest.seq && report.first_break.is_none() {
            Some(format!(
                "truncated: the chain ends at seq {} but a checkpoint of {} recorded seq {}",
                report.events_checked, latest.created_at, latest.seq
            ))
        } else {
            match store.audit_event_hash(tenant, latest.seq).await? {
                Some(hash) if hash == latest.hash => None,
                Some(_) => Some(format!(
                    "rewritten: the event at seq {} differs from the checkpoint of {}",
                    latest.seq, latest.created_at
                )),
                None => Some(format!(
                    "truncated: no event at seq {} recorded by the checkpoint of {}",
                    latest.seq, latest.created_at
                )),
            }
        };
        if problem.is_some() {
            report.ok = false;
        }
        report.checkpoint = Some(CheckpointCheck {
            seq: latest.seq,
            created_at: latest.created_at,
            ok: problem.is_none(),
            problem,
        });
        Ok(())
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_field() {
        let at = Utc::now();
        let s = signature(b"k", "acme", 5, "abc", &at);
        assert_eq!(s, signature(b"k", "acme", 5, "abc", &at));
        assert_ne!(s, signature(b"k", "acme", 6, "abc", &at));
        assert_ne!(s, signature(b"k", "acme", 5, "abd", &at));
        assert_ne!(s, signature(b"k", "beta", 5, "abc", &at));
        assert_ne!(s, signature(b"other", "acme", 5, "abc", &at));
    }
}
