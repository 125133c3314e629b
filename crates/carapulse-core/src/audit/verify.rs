//! Walking a tenant's chain to prove nothing was edited, inserted or deleted.

use serde::Serialize;

use crate::model::TenantId;
use crate::store::{Store, StoreError};

use super::GENESIS_HASH;

/// Events read per query while walking.
const VERIFY_PAGE: i64 = 2000;

/// The first place the chain stops holding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub seq: i64,
    pub event_id: Option<String>,
    pub reason: String,
}

/// Result of a verification walk.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub tenant_id: String,
    pub ok: bool,
    pub events_checked: i64,
    pub head_seq: i64,
    pub first_break: Option<ChainBreak>,
    /// The comparison with the latest signed checkpoint, when one was published.
    pub checkpoint: Option<super::CheckpointCheck>,
}

/// Checks every event of `tenant` in sequence: contiguous `seq`, `prev_hash` equal to the
/// previous event's hash, stored hash equal to the recomputed one, and the head row matching
/// the last event (which catches deletion of the newest events).
pub async fn verify_chain(store: &Store, tenant: &TenantId) -> Result<VerifyReport, StoreError> {
    let head = store.audit_head(tenant).await?;
    let (head_seq, head_hash) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut checked = 0;
    let mut after = 0;
    let brk = |seq, event_id: Option<String>, reason: String| ChainBreak {
        seq,
        event_id,
        reason,
    };
    loop {
        let events = store.audit_events_after(tenant, after, VERIFY_PAGE).await?;
        if events.is_empty() {
            break;
        }
        for event in &events {
            let id = Some(event.event_id.to_string());
            let problem = if event.seq != expected_seq {
                Some(brk(
                    expected_seq,
                    id.clone(),
                    format!(
                        "missing event: expected seq {expected_seq}, found {}",
                        event.seq
                    ),
                ))
            } else if event.prev_hash != prev_hash {
                Some(brk(
                    event.seq,
                    id.clone(),
                    "prev_hash does not match the previous event's hash".into(),
                ))
            } else if event.compute_hash() != event.hash {
                Some(brk(
                    event.seq,
                    id.clone(),
                    "content does not match its hash (event edited)".into(),
                ))
            } else {
                None
            };
            if let Some(first_break) = problem {
                return Ok(VerifyReport {
                    tenant_id: tenant.to_string(),
                    ok: false,
                    events_checked: checked,
                    head_seq,
                    first_break: Some(first_break),
                    checkpoint: None,
                });
            }
            checked += 1;
            expected_seq += 1;
            prev_hash = event.hash.clone();
            after = event.seq;
        }
    }
    let tail_problem = if checked != head_seq {
        Some(brk(
            checked + 1,
            None,
            format!(
                "chain ends at seq {checked} but the head records seq {head_seq} (events deleted)"
            ),
        ))
    } else if checked > 0 && prev_hash != head_hash {
        Some(brk(
            checked,
            None,
            "last event's hash does not match the chain head".into(),
        ))
    } else {
        None
    };
    Ok(VerifyReport {
        tenant_id: tenant.to_string(),
        ok: tail_problem.is_none(),
        events_checked: checked,
        head_seq,
        first_break: tail_problem,
        checkpoint: None,
    })
}
