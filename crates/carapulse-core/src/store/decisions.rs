//! The policy decision log: write decisions with their (redacted) input and outcome, kept for
//! policy impact — re-running a candidate policy over what really happened. Recorded off the
//! request path by a batching writer; read back in keyset pages by time window.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::model::TenantId;

use super::{Store, StoreError};

/// One decision to keep. It travels from the tool router (which has no database) to the
/// orchestrator in the router's answer, hence serde.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

impl DecisionRecord {
    /// The record of a decision worth keeping for policy impact — writes, and plan and approval
    /// decisions; reads (every GET) are not — without the caller's e-mail address. Decided
    /// before anything is serialised.
    pub fn of(
        input: &crate::policy::PolicyInput,
        action: &str,
        outcome: &crate::policy::PolicyOutcome,
    ) -> Option<Self> {
        let write = input.action["type"] == "write";
        if !(write || action.starts_with("plan.") || action.starts_with("approval.")) {
            return None;
        }
        let tenant_id = TenantId::parse(&input.context.tenant_id).ok()?;
        let mut document = serde_json::to_value(input).ok()?;
        if let Some(actor) = document.get_mut("actor").and_then(|a| a.as_object_mut()) {
            actor.remove("email");
        }
        Some(Self {
            tenant_id,
            action: action.to_owned(),
            environment: input.context.environment.clone(),
            plan_id: None,
            decision: outcome.decision.as_str().to_owned(),
            reasons: outcome.reasons.clone(),
            input: document,
        })
    }
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

/// A background policy impact run (see migration 0018).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ImpactJob {
    pub job_id: Uuid,
    pub requested_by: String,
    /// `running`, `done`, `failed`, or `abandoned` (running, but its row has not moved for
    /// [`IMPACT_JOB_STALE_SECS`]: the gateway running it stopped).
    pub status: String,
    pub total: i64,
    pub evaluated: i64,
    pub changed: i64,
    #[serde(rename = "window")]
    pub window_json: serde_json::Value,
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A running impact job whose row has not moved for this long is reported as abandoned (a page
/// of re-evaluations takes well under a second).
pub const IMPACT_JOB_STALE_SECS: i64 = 120;

impl Store {
    /// How many of `tenant`'s decisions in `[since, until)` an impact run of at most `limit`
    /// would re-evaluate (counted on the window index, stopping at `limit`).
    pub async fn count_decisions(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM policy_decisions WHERE tenant_id = $1 \
             AND decided_at >= $2 AND decided_at < $3 LIMIT $4) AS window_rows",
        )
        .bind(tenant.as_str())
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_one(self.pool())
        .await?)
    }

    /// Records a started impact job.
    pub async fn start_impact_job(
        &self,
        tenant: &TenantId,
        job_id: Uuid,
        requested_by: &str,
        total: i64,
        window: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO policy_impact_jobs (job_id, tenant_id, requested_by, status, total, window_json) \
             VALUES ($1, $2, $3, 'running', $4, $5)",
        )
        .bind(job_id)
        .bind(tenant.as_str())
        .bind(requested_by)
        .bind(total)
        .bind(window)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Moves a running job's counters (and announces them on the event stream, by trigger).
    pub async fn impact_job_progress(
        &self,
        job_id: Uuid,
        evaluated: i64,
        changed: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE policy_impact_jobs SET evaluated = $2, changed = $3, updated_at = now() \
             WHERE job_id = $1 AND status = 'running'",
        )
        .bind(job_id)
        .bind(evaluated)
        .bind(changed)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends a job: `Ok(report)` is done, `Err(message)` failed.
    pub async fn finish_impact_job(
        &self,
        job_id: Uuid,
        evaluated: i64,
        changed: i64,
        outcome: Result<&serde_json::Value, &str>,
    ) -> Result<(), StoreError> {
        let (status, report, error) = match outcome {
            Ok(report) => ("done", Some(report), None),
            Err(message) => ("failed", None, Some(message)),
        };
        sqlx::query(
            "UPDATE policy_impact_jobs SET status = $2, evaluated = $3, changed = $4, report = $5, \
             error = $6, updated_at = now() WHERE job_id = $1 AND status = 'running'",
        )
        .bind(job_id)
        .bind(status)
        .bind(evaluated)
        .bind(changed)
        .bind(report)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One of `tenant`'s impact jobs; `None` when it is not there (or is another tenant's).
    pub async fn impact_job(
        &self,
        tenant: &TenantId,
        job_id: Uuid,
    ) -> Result<Option<ImpactJob>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT job_id, requested_by, \
             CASE WHEN status = 'running' AND updated_at < now() - make_interval(secs => $3) \
                  THEN 'abandoned' ELSE status END AS status, \
             total, evaluated, changed, window_json, report, error, created_at, updated_at \
             FROM policy_impact_jobs WHERE tenant_id = $1 AND job_id = $2",
        )
        .bind(tenant.as_str())
        .bind(job_id)
        .bind(IMPACT_JOB_STALE_SECS as f64)
        .fetch_optional(self.pool())
        .await?)
    }
}
