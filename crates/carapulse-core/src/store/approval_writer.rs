//! Group commit for approval decisions, like [`super::PlanWriter`] for plans: each decision
//! commits with its audit event, and the tenant's chain head is a lock each one-decision
//! transaction would hold through its own commit. The writer task takes whatever decisions are
//! queued and records them in one transaction ([`Store::record_approvals`]), each in its own
//! savepoint: one refused for its own reasons fails alone; a batch that fails as a whole is
//! retried decision by decision, so no decision ever pays for another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::audit::AuditEntry;
use crate::model::{Approval, PlanId, TenantId};

use super::approvals::{ApprovalDecision, ApprovalWork};
use super::{Store, StoreError};

/// Most decisions committed in one transaction.
const MAX_BATCH: usize = 64;

struct Request {
    work: ApprovalWork,
    reply: oneshot::Sender<Result<Approval, StoreError>>,
}

/// What the writer has done so far (for tests and diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApprovalWriterStats {
    /// Transactions that committed several decisions together.
    pub batches: u64,
    /// Decisions answered from those transactions (recorded or refused alone).
    pub batched_decisions: u64,
    /// Decisions retried one by one after their batch failed as a whole.
    pub retried: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    batched_decisions: AtomicU64,
    retried: AtomicU64,
}

/// Handle to the approval writer task; clone freely. The task stops when every handle is gone.
#[derive(Clone)]
pub struct ApprovalWriter {
    sender: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for ApprovalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalWriter").finish_non_exhaustive()
    }
}

impl ApprovalWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Store) -> Self {
        let (sender, receiver) = mpsc::channel(1024);
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(store, receiver, counters.clone()));
        Self { sender, counters }
    }

    pub fn stats(&self) -> ApprovalWriterStats {
        ApprovalWriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            batched_decisions: self.counters.batched_decisions.load(Ordering::Relaxed),
            retried: self.counters.retried.load(Ordering::Relaxed),
        }
    }

    /// Records `decision` on a pending plan with its audit event (see
    /// [`Store::record_approval`]), waiting until both are committed.
    pub async fn record(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        decision: ApprovalDecision,
        audit: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<Approval, StoreError> {
        let (reply, wait) = oneshot::channel();
        let stopped = || StoreError::Unavailable("approval writer stopped".into());
        let work = ApprovalWork {
            tenant: tenant.clone(),
            plan_id,
            decision,
            audit,
            now,
        };
        self.sender
            .send(Request { work, reply })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn run(store: Store, mut receiver: mpsc::Receiver<Request>, counters: Arc<Counters>) {
    while let Some(batch) = crate::batching::next_batch(&mut receiver, MAX_BATCH, |_| false).await {
        if batch.len() == 1 {
            for r in batch {
                let _ = r.reply.send(record_one(&store, r.work).await);
            }
            continue;
        }
        let (work, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|r| (r.work, r.reply)).unzip();
        match store.record_approvals(work.clone()).await {
            Ok(results) => {
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .batched_decisions
                    .fetch_add(results.len() as u64, Ordering::Relaxed);
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, decisions = work.len(), "approval batch failed; retrying decision by decision");
                counters
                    .retried
                    .fetch_add(work.len() as u64, Ordering::Relaxed);
                for (one, reply) in work.into_iter().zip(replies) {
                    let _ = reply.send(record_one(&store, one).await);
                }
            }
        }
    }
}

async fn record_one(store: &Store, w: ApprovalWork) -> Result<Approval, StoreError> {
    store
        .record_approval(&w.tenant, w.plan_id, w.decision, w.audit, w.now)
        .await
}
