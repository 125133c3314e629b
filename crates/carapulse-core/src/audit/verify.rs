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

/// How far a verification walk has got, reported after each page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VerifyProgress {
    pub events_checked: i64,
    pub head_seq: i64,
}

/// Checks every event of `tenant` in sequence: contiguous `seq`, `prev_hash` equal to the
/// previous event's hash, stored hash equal to the recomputed one, and the head row matching
/// the last event (which catches deletion of the newest events).
pub async fn verify_chain(store: &Store, tenant: &TenantId) -> Result<VerifyReport, StoreError> {
    verify_chain_with_progress(store, tenant, |_| {}).await
}

/// [`verify_chain`], calling `on_page` after each page. Memory stays at two pages whatever the
/// chain's length: the next page is fetched while this one's hashes are recomputed, on every
/// core (each event's hash depends only on its own row; the links are checked in order after).
pub async fn verify_chain_with_progress(
    store: &Store,
    tenant: &TenantId,
    mut on_page: impl FnMut(VerifyProgress) + Send,
) -> Result<VerifyReport, StoreError> {
    let head = store.audit_head(tenant).await?;
    let (head_seq, head_hash) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut checked = 0;
    let brk = |seq, event_id: Option<String>, reason: String| ChainBreak {
        seq,
        event_id,
        reason,
    };
    let fetch = |after: i64| {
        let (store, tenant) = (store.clone(), tenant.clone());
        tokio::spawn(async move { store.audit_events_after(&tenant, after, VERIFY_PAGE).await })
    };
    let mut next = fetch(0);
    loop {
        let events = next
            .await
            .map_err(|e| StoreError::Unavailable(format!("verification task: {e}")))??;
        let Some(last) = events.last() else {
            break;
        };
        next = fetch(last.seq);
        let (events, hashes_ok) = tokio::task::spawn_blocking(move || {
            let ok = hashes_match(&events);
            (events, ok)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("verification task: {e}")))?;
        for (event, hash_ok) in events.iter().zip(hashes_ok) {
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
            } else if !hash_ok {
                Some(brk(
                    event.seq,
                    id.clone(),
                    "content does not match its hash (event edited)".into(),
                ))
            } else {
                None
            };
            if let Some(first_break) = problem {
                next.abort();
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
            prev_hash.clone_from(&event.hash);
        }
        on_page(VerifyProgress {
            events_checked: checked,
            head_seq,
        });
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

/// Whether each event's stored hash is the one its content gives, computed on every core.
fn hashes_match(events: &[crate::audit::AuditEvent]) -> Vec<bool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = events.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = events
            .chunks(chunk)
            .map(|part| {
                let len = part.len();
                let handle = scope.spawn(move || {
                    part.iter()
                        .map(|e| e.compute_hash() == e.hash)
                        .collect::<Vec<_>>()
                });
                (len, handle)
            })
            .collect();
        parts
            .into_iter()
            // A panicking hash thread counts every event of its part as a mismatch (one answer
            // per event, so the walk names the first one): verification fails closed.
            .flat_map(|(len, p)| p.join().unwrap_or_else(|_| vec![false; len]))
            .collect()
    })
}
