//! External approval requests (a Linear issue per pending plan): enqueue, claim with a lease,
//! and record what happened. The watcher that drives them lives in the gateway.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::model::{PlanId, TenantId};

use super::{Store, StoreError};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// The issue is not created yet.
    Creating,
    /// The issue exists; its labels are polled.
    Open,
    Approved,
    Denied,
    Expired,
    /// The plan was decided elsewhere.
    Closed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Open => "open",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Closed => "closed",
        }
    }

    fn parse(raw: &str) -> Self {
        match raw {
            "creating" => Self::Creating,
            "open" => Self::Open,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            _ => Self::Closed,
        }
    }
}

/// A claimed request.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub plan_id: PlanId,
    pub tenant_id: TenantId,
    pub status: RequestStatus,
    pub external_id: Option<String>,
    pub external_key: Option<String>,
    pub external_url: Option<String>,
    pub attempts: i32,
    /// The last failure or refusal (to avoid repeating the same comment on every poll).
    pub last_error: Option<String>,
    /// The issue of an earlier revision, told where the decision moved once the new one exists.
    pub previous_external_id: Option<String>,
}

type Row = (
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i32,
    Option<String>,
    Option<String>,
);

fn from_row(r: Row) -> Result<ApprovalRequest, StoreError> {
    Ok(ApprovalRequest {
        plan_id: PlanId(r.0),
        tenant_id: TenantId::parse(&r.1)?,
        status: RequestStatus::parse(&r.2),
        external_id: r.3,
        external_key: r.4,
        external_url: r.5,
        attempts: r.6,
        last_error: r.7,
        previous_external_id: r.8,
    })
}

impl Store {
    /// Creates a `creating` request for every pending plan that has none (up to `limit`).
    pub async fn enqueue_approval_requests(&self, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO approval_requests (plan_id, tenant_id, channel, status) \
             SELECT p.plan_id, p.tenant_id, 'linear', 'creating' FROM plans p \
             WHERE p.approval_state = 'pending' AND p.deleted_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM approval_requests r WHERE r.plan_id = p.plan_id) \
             ORDER BY p.created_at LIMIT $1 ON CONFLICT (plan_id) DO NOTHING",
        )
        .bind(limit.clamp(1, 1000))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Claims up to `limit` due requests for `lease`: nobody else picks them up meanwhile.
    pub async fn claim_approval_requests(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "UPDATE approval_requests SET next_attempt_at = $2, updated_at = now() WHERE plan_id IN ( \
               SELECT plan_id FROM approval_requests WHERE status IN ('creating','open') \
               AND next_attempt_at <= $1 ORDER BY next_attempt_at, plan_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING plan_id, tenant_id, status, external_id, external_key, external_url, attempts, last_error, previous_external_id",
        )
        .bind(now)
        .bind(now + lease)
        .bind(limit.clamp(1, 500))
        .fetch_all(self.pool())
        .await?;
        // RETURNING has no order; plan ids are time-ordered (v7), so this is creation order.
        let mut claimed: Vec<ApprovalRequest> =
            rows.into_iter().map(from_row).collect::<Result<_, _>>()?;
        claimed.sort_by_key(|r| r.plan_id.0);
        Ok(claimed)
    }

    /// The issue exists: poll it from `next_poll`.
    pub async fn approval_request_opened(
        &self,
        plan_id: PlanId,
        external: (&str, &str, &str),
        next_poll: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE approval_requests SET status = 'open', external_id = $2, external_key = $3, \
             external_url = $4, attempts = 0, last_error = NULL, next_attempt_at = $5, \
             previous_external_id = NULL, updated_at = now() WHERE plan_id = $1",
        )
        .bind(plan_id.0)
        .bind(external.0)
        .bind(external.1)
        .bind(external.2)
        .bind(next_poll)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Polled without a decision: look again at `next_poll` (`note` keeps a refusal).
    pub async fn approval_request_polled(
        &self,
        plan_id: PlanId,
        next_poll: DateTime<Utc>,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE approval_requests SET attempts = 0, last_error = $3, next_attempt_at = $2, updated_at = now() WHERE plan_id = $1",
        )
        .bind(plan_id.0)
        .bind(next_poll)
        .bind(note)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A call failed: record why and retry at `retry_at`.
    pub async fn approval_request_failed(
        &self,
        plan_id: PlanId,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE approval_requests SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, updated_at = now() WHERE plan_id = $1",
        )
        .bind(plan_id.0)
        .bind(error.chars().take(500).collect::<String>())
        .bind(retry_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The request is finished.
    pub async fn approval_request_closed(
        &self,
        plan_id: PlanId,
        status: RequestStatus,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE approval_requests SET status = $2, updated_at = now() WHERE plan_id = $1",
        )
        .bind(plan_id.0)
        .bind(status.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The request of a plan (for tests and single-plan reads).
    pub async fn approval_request(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        Ok(self
            .approval_requests(tenant, &[plan_id])
            .await?
            .into_iter()
            .next())
    }

    /// The requests of several plans in one query (a page of `GET /v1/approvals`), in no
    /// particular order; plans without one are absent.
    pub async fn approval_requests(
        &self,
        tenant: &TenantId,
        plan_ids: &[PlanId],
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        if plan_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<uuid::Uuid> = plan_ids.iter().map(|p| p.0).collect();
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT plan_id, tenant_id, status, external_id, external_key, external_url, attempts, last_error, previous_external_id \
             FROM approval_requests WHERE plan_id = ANY($1) AND tenant_id = $2",
        )
        .bind(&ids)
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(from_row).collect()
    }
}
