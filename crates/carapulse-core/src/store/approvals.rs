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

use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
use super::plans::load_plan;
use super::{Page, Paged, Store, StoreError};

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
pub(super) struct ApprovalRow {
    approval_id: Uuid,
    plan_id: Uuid,
    tenant_id: String,
    status: String,
    approver: String,
    approver_email: Option<String>,
    source: String,
    note: Option<String>,
    approved_hash: Option<String>,
    revision: i32,
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
            revision: self.revision,
            created_at: self.created_at,
        })
    }
}

const APPROVAL_COLUMNS: &str =
    "approval_id, plan_id, tenant_id, status, approver, approver_email, \
     source, note, approved_hash, revision, created_at";

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
        let row = decide_in_tx(&mut tx, tenant, plan_id, &decision, audit, now).await?;
        tx.commit().await?;
        row.into_model()
    }

    /// Records several decisions in one transaction (group commit, see `ApprovalWriter`): each
    /// inside its own savepoint, so a decision refused for its own reasons (already decided,
    /// expired, not found) is rolled back alone and answered with its error while the others
    /// commit. Failures that are not about one decision (the connection, a deadlock with another
    /// batch, the commit) fail the whole batch: the caller retries decision by decision.
    pub async fn record_approvals(
        &self,
        batch: Vec<ApprovalWork>,
    ) -> Result<Vec<Result<Approval, StoreError>>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut results = Vec::with_capacity(batch.len());
        for work in batch {
            sqlx::query("SAVEPOINT approval").execute(&mut *tx).await?;
            match decide_in_tx(
                &mut tx,
                &work.tenant,
                work.plan_id,
                &work.decision,
                work.audit,
                work.now,
            )
            .await
            {
                Ok(row) => {
                    sqlx::query("RELEASE SAVEPOINT approval")
                        .execute(&mut *tx)
                        .await?;
                    results.push(row.into_model());
                }
                Err(err) if err.is_about_the_request() => {
                    sqlx::query("ROLLBACK TO SAVEPOINT approval")
                        .execute(&mut *tx)
                        .await?;
                    results.push(Err(err));
                }
                Err(err) => return Err(err),
            }
        }
        tx.commit().await?;
        Ok(results)
    }

    /// Whether `plan` stands approved as it is now: as many approvals of its current revision
    /// as policy requires, every one of them recorded for exactly this content (its hash).
    pub async fn approval_matches(
        &self,
        tenant: &TenantId,
        plan: &crate::model::Plan,
    ) -> Result<bool, StoreError> {
        let hashes: Vec<(Option<String>,)> = sqlx::query_as(
            "SELECT approved_hash FROM approvals WHERE plan_id = $1 AND tenant_id = $2 AND status = 'approved'",
        )
        .bind(plan.plan_id.0)
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        let current = plan_hash(plan);
        Ok(hashes.len() >= plan.approvals_required()
            && hashes
                .iter()
                .all(|(h,)| h.as_deref() == Some(current.as_str())))
    }

    /// The latest decision recorded on a plan's current revision, if any.
    pub async fn plan_approval(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
    ) -> Result<Option<Approval>, StoreError> {
        let row: Option<ApprovalRow> = sqlx::query_as(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE plan_id = $1 AND tenant_id = $2 \
             AND status <> 'superseded' ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(ApprovalRow::into_model).transpose()
    }
}

/// One decision of a batch (see [`Store::record_approvals`]).
#[derive(Debug, Clone)]
pub struct ApprovalWork {
    pub tenant: TenantId,
    pub plan_id: PlanId,
    pub decision: ApprovalDecision,
    pub audit: AuditEntry,
    pub now: DateTime<Utc>,
}

/// Locks the plan, re-checks it is still pending and inside its approval window, records the
/// decision and appends `audit`, inside the caller's transaction.
async fn decide_in_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &TenantId,
    plan_id: PlanId,
    decision: &ApprovalDecision,
    audit: AuditEntry,
    now: DateTime<Utc>,
) -> Result<ApprovalRow, StoreError> {
    let plan = load_plan(tx, tenant, plan_id, true).await?;
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
    let row = insert_decision(tx, tenant, &plan, decision, now).await?;
    append_in_tx(tx, audit).await?;
    Ok(row)
}

/// Inserts the approval row and moves the plan's state (inside the caller's transaction).
async fn insert_decision(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &TenantId,
    plan: &crate::model::Plan,
    decision: &ApprovalDecision,
    now: DateTime<Utc>,
) -> Result<ApprovalRow, StoreError> {
    let approved_hash = (decision.status == ApprovalStatus::Approved).then(|| plan_hash(plan));
    let new_state = match decision.status {
        // Approved once enough different people have approved this revision; pending until then.
        ApprovalStatus::Approved => {
            let (already,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM approvals WHERE plan_id = $1 AND tenant_id = $2 AND status = 'approved'",
            )
            .bind(plan.plan_id.0)
            .bind(tenant.as_str())
            .fetch_one(&mut **tx)
            .await?;
            if usize::try_from(already).unwrap_or(0) + 1 >= plan.approvals_required() {
                PlanApprovalState::Approved
            } else {
                PlanApprovalState::Pending
            }
        }
        ApprovalStatus::Denied => PlanApprovalState::Denied,
        ApprovalStatus::Expired => PlanApprovalState::Expired,
        ApprovalStatus::Superseded => {
            return Err(StoreError::Conflict(
                "superseded is not a decision: a new revision supersedes approvals".into(),
            ))
        }
    };
    let row: ApprovalRow = sqlx::query_as(&format!(
        "INSERT INTO approvals (approval_id, plan_id, tenant_id, status, approver, approver_email, \
         source, note, approved_hash, created_at, revision) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) \
         RETURNING {APPROVAL_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(plan.plan_id.0)
    .bind(tenant.as_str())
    .bind(decision.status.as_str())
    .bind(decision.approver.as_str())
    .bind(&decision.approver_email)
    .bind(decision.source.as_str())
    .bind(&decision.note)
    .bind(&approved_hash)
    .bind(now)
    .bind(plan.revision)
    .fetch_one(&mut **tx)
    .await
    .map_err(|err| {
        if StoreError::is_unique_violation(&err, "approvals_one_per_person") {
            StoreError::Conflict("you have already decided this plan".into())
        } else {
            err.into()
        }
    })?;
    sqlx::query("UPDATE plans SET approval_state = $3, updated_at = now() WHERE plan_id = $1 AND tenant_id = $2")
        .bind(plan.plan_id.0)
        .bind(tenant.as_str())
        .bind(new_state.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(row)
}

/// Filters of `GET /v1/approvals` for decided approvals.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
    pub plan_id: Option<PlanId>,
    pub source: Option<ApprovalSource>,
}

/// A plan waiting for a decision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingApproval {
    pub plan_id: PlanId,
    pub summary: String,
    pub risk_level: String,
    pub trigger: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub approval_expires_at: Option<DateTime<Utc>>,
}

/// Where a plan's approval stands: who approved the current revision, and how many must.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalTally {
    pub approval_state: PlanApprovalState,
    pub approvals_required: usize,
    pub approved_by: Vec<String>,
}

impl Store {
    /// The approvals of the plan's current revision against what policy requires.
    pub async fn approval_tally(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
    ) -> Result<ApprovalTally, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let plan = load_plan(&mut conn, tenant, plan_id, false).await?;
        let approved_by: Vec<(String,)> = sqlx::query_as(
            "SELECT approver FROM approvals WHERE plan_id = $1 AND tenant_id = $2 AND status = 'approved' \
             ORDER BY created_at",
        )
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .fetch_all(&mut *conn)
        .await?;
        Ok(ApprovalTally {
            approval_state: plan.approval_state,
            approvals_required: plan.approvals_required(),
            approved_by: approved_by.into_iter().map(|(a,)| a).collect(),
        })
    }

    /// Plans of `tenant` waiting for approval (not yet past their deadline), oldest first.
    pub async fn pending_approvals(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
        page: Page,
    ) -> Result<Paged<PendingApproval>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "pending-approvals",
            columns: &[("created_at", KeyKind::Time), ("plan_id", KeyKind::Uuid)],
            descending: false,
        };
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(qb, "plan_id, summary, risk_level, trigger, created_by, created_at, approval_expires_at", "FROM plans WHERE approval_state = 'pending' AND deleted_at IS NULL AND tenant_id = ", tenant);
            qb.push(" AND (approval_expires_at IS NULL OR approval_expires_at > ")
                .push_bind(now)
                .push(")");
        };
        let map = |row: &sqlx::postgres::PgRow| {
            use sqlx::Row;
            Ok(PendingApproval {
                plan_id: PlanId(row.try_get("plan_id")?),
                summary: row.try_get("summary")?,
                risk_level: row.try_get("risk_level")?,
                trigger: row.try_get("trigger")?,
                created_by: row.try_get("created_by")?,
                created_at: row.try_get("created_at")?,
                approval_expires_at: row.try_get("approval_expires_at")?,
            })
        };
        fetch_page(
            self.pool(),
            page,
            &ORDER,
            query,
            map,
            |p: &PendingApproval| vec![KeyValue::Time(p.created_at), KeyValue::Uuid(p.plan_id.0)],
        )
        .await
    }

    /// Recorded decisions of `tenant`, newest first.
    pub async fn list_approvals(
        &self,
        tenant: &TenantId,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Paged<Approval>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "approvals",
            columns: &[
                ("created_at", KeyKind::Time),
                ("approval_id", KeyKind::Uuid),
            ],
            descending: true,
        };
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(
                qb,
                APPROVAL_COLUMNS,
                "FROM approvals WHERE tenant_id = ",
                tenant,
            );
            if let Some(status) = filter.status {
                qb.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(plan) = filter.plan_id {
                qb.push(" AND plan_id = ").push_bind(plan.0);
            }
            if let Some(source) = filter.source {
                qb.push(" AND source = ").push_bind(source.as_str());
            }
        };
        let map = |row: &sqlx::postgres::PgRow| {
            use sqlx::FromRow;
            ApprovalRow::from_row(row)?.into_model()
        };
        fetch_page(self.pool(), page, &ORDER, query, map, |a: &Approval| {
            vec![
                KeyValue::Time(a.created_at),
                KeyValue::Uuid(a.approval_id.0),
            ]
        })
        .await
    }

    /// Pending plans past their approval deadline (any tenant), oldest deadline first.
    pub async fn overdue_approvals(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(TenantId, PlanId)>, StoreError> {
        let rows: Vec<(String, Uuid)> = sqlx::query_as(
            "SELECT tenant_id, plan_id FROM plans WHERE approval_state = 'pending' \
             AND deleted_at IS NULL AND approval_expires_at <= $1 ORDER BY approval_expires_at ASC LIMIT $2",
        )
        .bind(now)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(t, p)| Ok((TenantId::parse(&t)?, PlanId(p))))
            .collect()
    }

    /// Marks an overdue pending plan `expired` (approval row, plan state and audit event in one
    /// transaction). Returns false when another replica or a decision got there first.
    pub async fn expire_approval(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        now: DateTime<Utc>,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let plan = load_plan(&mut tx, tenant, plan_id, true).await?;
        let overdue = plan.approval_state == PlanApprovalState::Pending
            && plan.approval_expires_at.is_some_and(|d| d <= now);
        if !overdue {
            return Ok(false);
        }
        let decision = ApprovalDecision {
            status: ApprovalStatus::Expired,
            approver: ActorId::parse("carapulse:expiry")?,
            approver_email: None,
            source: ApprovalSource::System,
            note: Some("approval window elapsed".into()),
        };
        insert_decision(&mut tx, tenant, &plan, &decision, now).await?;
        append_in_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
