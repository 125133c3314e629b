//! Approval decisions: one per plan, recorded atomically with the plan's new state and the
//! approved plan hash.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::integrity::plan_hash;
use crate::model::{
    ActorId, Approval, ApprovalId, ApprovalSource, ApprovalStatus, PlanApprovalState, PlanId,
    TenantId,
};

use super::plans::load_plan;
use super::{Store, StoreError};

/// A decision to record.
#[derive(Debug, Clone)]
pub struct ApprovalDecision {
    pub status: ApprovalStatus,
    pub approver: ActorId,
    pub approver_email: Option<String>,
    pub source: ApprovalSource,
    pub note: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    approval_id: Uuid,
    plan_id: Uuid,
    tenant_id: String,
    status: String,
    approver: String,
    approver_email: Option<String>,
    source: String,
    note: Option<String>,
    approved_hash: Option<String>,
    created_at: DateTime<Utc>,
}

impl ApprovalRow {
    fn into_model(self) -> Result<Approval, StoreError> {
        Ok(Approval {
            approval_id: ApprovalId(self.approval_id),
            plan_id: PlanId(self.plan_id),
            tenant_id: TenantId::parse(&self.tenant_id)?,
            status: ApprovalStatus::parse(&self.status)?,
            approver: ActorId::parse(&self.approver)?,
            approver_email: self.approver_email,
            source: ApprovalSource::parse(&self.source)?,
            note: self.note,
            approved_hash: self.approved_hash,
            created_at: self.created_at,
        })
    }
}

const APPROVAL_COLUMNS: &str =
    "approval_id, plan_id, tenant_id, status, approver, approver_email, \
     source, note, approved_hash, created_at";

impl Store {
    /// Records `decision` on a pending plan. Locks the plan, re-checks it is still pending and not
    /// past its approval deadline, stores the SHA-256 of the plan as approved, moves the plan's
    /// state and appends `audit` — all in one transaction.
    pub async fn record_approval(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        decision: ApprovalDecision,
        audit: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<Approval, StoreError> {
        let mut tx = self.pool().begin().await?;
        let plan = load_plan(&mut tx, tenant, plan_id, true).await?;
        match plan.approval_state {
            PlanApprovalState::Pending => {}
            PlanApprovalState::NotRequired => {
                return Err(StoreError::Conflict(
                    "plan does not require approval".into(),
                ))
            }
            other => {
                return Err(StoreError::Conflict(format!(
                    "plan approval is already {}",
                    other.as_str()
                )))
            }
        }
        if plan
            .approval_expires_at
            .is_some_and(|deadline| deadline <= now)
        {
            return Err(StoreError::Conflict(
                "the approval window of this plan has expired".into(),
            ));
        }
        let approved_hash = (decision.status == ApprovalStatus::Approved).then(|| plan_hash(&plan));
        let new_state = match decision.status {
            ApprovalStatus::Approved => PlanApprovalState::Approved,
            ApprovalStatus::Denied => PlanApprovalState::Denied,
            ApprovalStatus::Expired => PlanApprovalState::Expired,
        };
        let row: ApprovalRow = sqlx::query_as(&format!(
            "INSERT INTO approvals (approval_id, plan_id, tenant_id, status, approver, approver_email, \
             source, note, approved_hash, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) \
             RETURNING {APPROVAL_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .bind(decision.status.as_str())
        .bind(decision.approver.as_str())
        .bind(&decision.approver_email)
        .bind(decision.source.as_str())
        .bind(&decision.note)
        .bind(&approved_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| {
            if StoreError::is_unique_violation(&err, "approvals_one_per_plan") {
                StoreError::Conflict("plan approval is already decided".into())
            } else {
                err.into()
            }
        })?;
        sqlx::query("UPDATE plans SET approval_state = $3, updated_at = now() WHERE plan_id = $1 AND tenant_id = $2")
            .bind(plan_id.0)
            .bind(tenant.as_str())
            .bind(new_state.as_str())
            .execute(&mut *tx)
            .await?;
        append_in_tx(&mut tx, audit).await?;
        tx.commit().await?;
        row.into_model()
    }

    /// The decision recorded on a plan, if any.
    pub async fn plan_approval(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
    ) -> Result<Option<Approval>, StoreError> {
        let row: Option<ApprovalRow> = sqlx::query_as(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE plan_id = $1 AND tenant_id = $2"
        ))
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(ApprovalRow::into_model).transpose()
    }
}
