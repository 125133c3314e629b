//! Group commit for plan creation. Every plan commits with its audit event, and each tenant's
//! audit chain head is a lock: one transaction per plan makes concurrent creators queue on that
//! lock, each holding it through its own commit (and WAL flush). The writer task takes whatever
//! is queued and commits it in one transaction ([`Store::create_plans`]): one head lock and one
//! flush for the whole batch. A batch that fails is retried plan by plan, so a plan Postgres
//! refuses fails alone and its caller hears why.

use tokio::sync::{mpsc, oneshot};

use crate::audit::AuditEntry;
use crate::model::Plan;

use super::{NewPlan, Store, StoreError};

/// Most plans committed in one transaction.
const MAX_BATCH_PLANS: usize = 64;
/// Most steps in one transaction (bounded statement size).
const MAX_BATCH_STEPS: usize = 4_000;

struct Request {
    plan: NewPlan,
    audit: AuditEntry,
    reply: oneshot::Sender<Result<Plan, StoreError>>,
}

/// Handle to the plan writer task; clone freely. The task stops when every handle is gone.
#[derive(Clone)]
pub struct PlanWriter {
    sender: mpsc::Sender<Request>,
}

impl std::fmt::Debug for PlanWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanWriter").finish_non_exhaustive()
    }
}

impl PlanWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Store) -> Self {
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(run(store, receiver));
        Self { sender }
    }

    /// Stores `plan` with its audit event, waiting until both are committed.
    pub async fn create(&self, plan: NewPlan, audit: AuditEntry) -> Result<Plan, StoreError> {
        let (reply, wait) = oneshot::channel();
        let stopped = || StoreError::Unavailable("plan writer stopped".into());
        self.sender
            .send(Request { plan, audit, reply })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn run(store: Store, mut receiver: mpsc::Receiver<Request>) {
    let too_many_steps = |batch: &[Request]| {
        batch.iter().map(|r| r.plan.steps.len()).sum::<usize>() >= MAX_BATCH_STEPS
    };
    while let Some(batch) =
        crate::batching::next_batch(&mut receiver, MAX_BATCH_PLANS, too_many_steps).await
    {
        let (work, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|r| ((r.plan, r.audit), r.reply))
            .unzip();
        match store.create_plans(&work).await {
            Ok(plans) => {
                for (reply, plan) in replies.into_iter().zip(plans) {
                    let _ = reply.send(Ok(plan));
                }
            }
            Err(err) if work.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(err));
                }
            }
            Err(err) => {
                // One plan must never cost the others theirs: retry them one by one.
                tracing::warn!(error = %err, plans = work.len(), "plan batch failed; retrying plan by plan");
                for (one, reply) in work.chunks(1).zip(replies) {
                    let result = store.create_plans(one).await;
                    let _ = reply.send(result.and_then(super::plans::only_plan));
                }
            }
        }
    }
}
