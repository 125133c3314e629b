//! The policy decision log: write decisions with their (redacted) input and outcome, kept for
//! policy impact — re-running a candidate policy over what really happened. Recorded off the
//! request path by a batching writer; read back in keyset pages by time window.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::model::TenantId;

use super::{Store, StoreError};

/// One decision to keep.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub tenant_id: TenantId,
    pub action: String,
    pub environment: String,
    pub plan_id: Option<Uuid>,
    pub decision: String,
    pub reasons: Vec<String>,
    /// The policy input, already redacted.
    pub input: Value,
}

/// A stored decision, as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDecision {
    pub decision_id: Uuid,
    pub decided_at: DateTime<Utc>,
    pub action: String,
    pub environment: String,
    pub plan_id: Option<Uuid>,
    pub decision: String,
    pub reasons: Value,
    pub input_json: Value,
}

/// Decisions waiting to be written; beyond this the newest are dropped (and counted) rather
/// than slowing the requests that made them.
const QUEUE: usize = 8192;
const MAX_BATCH: usize = 500;

/// Handle to the batching writer; clone freely.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    sender: mpsc::Sender<DecisionRecord>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl DecisionLog {
    pub fn spawn(store: Store) -> Self {
        let (sender, mut receiver) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            while let Some(batch) =
                crate::batching::next_batch(&mut receiver, MAX_BATCH, |_| false).await
            {
                if let Err(e) = store.insert_decisions(&batch).await {
                    tracing::warn!(error = %e, lost = batch.len(), "policy decisions not recorded");
                }
            }
        });
        Self {
            sender,
            dropped: Default::default(),
        }
    }

    /// Queues `record` without waiting.
    pub fn record(&self, record: DecisionRecord) {
        if self.sender.try_send(record).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Decisions dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Store {
    /// Inserts decisions in one statement.
    pub async fn insert_decisions(&self, batch: &[DecisionRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT INTO policy_decisions (decision_id, tenant_id, action, environment, plan_id, \
             decision, reasons, input_json) ",
        );
        qb.push_values(batch, |mut b, r| {
            b.push_bind(Uuid::now_v7())
                .push_bind(r.tenant_id.as_str())
                .push_bind(&r.action)
                .push_bind(&r.environment)
                .push_bind(r.plan_id)
                .push_bind(&r.decision)
                .push_bind(serde_json::json!(r.reasons))
                .push_bind(&r.input);
        });
        qb.build().execute(self.pool()).await?;
        Ok(())
    }

    /// Up to `limit` decisions of `tenant` in `[since, until)`, after `after` (keyset:
    /// `(decided_at, decision_id)`), oldest first.
    pub async fn decisions_page(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let (at, id) = after.unwrap_or((since, Uuid::nil()));
        Ok(sqlx::query_as(
            "SELECT decision_id, decided_at, action, environment, plan_id, decision, reasons, input_json \
             FROM policy_decisions WHERE tenant_id = $1 AND decided_at >= $2 AND decided_at < $3 \
             AND (decided_at, decision_id) > ($4, $5) ORDER BY decided_at, decision_id LIMIT $6",
        )
        .bind(tenant.as_str())
        .bind(since)
        .bind(until)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
