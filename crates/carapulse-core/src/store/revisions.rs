//! Plan revisions: a plan that is not running is revised in one transaction — the first
//! revision is kept as it was, the plan row and its steps become the new one, earlier approvals
//! are superseded, the new revision is stored whole with its hash, and the audit event commits
//! with it. Revisions never change afterwards (a trigger refuses updates).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::integrity::plan_hash;
use crate::model::{
    Decision, Intent, Plan, PlanApprovalState, PlanId, RiskLevel, StepDraft, Summary, TenantId,
};

use super::plans::{insert_steps, load_plan};
use super::{Store, StoreError};

/// What a revision changes: everything that decides what runs, re-decided by policy.
#[derive(Debug, Clone)]
pub struct NewRevision {
    pub summary: Summary,
    pub intent: Intent,
    pub constraints: Value,
    pub risk_level: RiskLevel,
    pub policy_decision: Decision,
    /// Policy's reasons, kept in the revision for the diff.
    pub policy_reasons: Vec<String>,
    pub approval_state: PlanApprovalState,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub planner: Option<String>,
    pub plan_text: Option<String>,
    pub meta: Value,
    pub steps: Vec<StepDraft>,
    pub revised_by: String,
    pub note: Option<String>,
    /// What planning saw for this revision (`planning_records`).
    pub planning_record: Option<Value>,
}

/// One stored revision: the plan as it was, and who made it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRevision {
    pub plan_id: PlanId,
    pub revision: i32,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub note: Option<String>,
    pub hash: String,
    /// The plan (with its steps) and `policy_reasons`.
    pub snapshot: Value,
}

/// The revisions of a plan, with what revising did.
#[derive(Debug, Clone)]
pub struct Revised {
    pub plan: Plan,
    pub revision: PlanRevision,
    /// Approvals this revision superseded.
    pub superseded: u64,
}

#[derive(sqlx::FromRow)]
struct RevisionRow {
    plan_id: Uuid,
    revision: i32,
    created_at: DateTime<Utc>,
    created_by: String,
    note: Option<String>,
    hash: String,
    snapshot_json: Value,
}

impl From<RevisionRow> for PlanRevision {
    fn from(r: RevisionRow) -> Self {
        Self {
            plan_id: PlanId(r.plan_id),
            revision: r.revision,
            created_at: r.created_at,
            created_by: r.created_by,
            note: r.note,
            hash: r.hash,
            snapshot: r.snapshot_json,
        }
    }
}

/// Revisions one plan may have: a plan revised this often is a new plan.
pub const MAX_REVISIONS: i32 = 100;

const REVISION_COLUMNS: &str =
    "plan_id, revision, created_at, created_by, note, hash, snapshot_json";

/// The stored form of a plan at one revision.
fn snapshot(plan: &Plan, policy_reasons: Option<&[String]>) -> Value {
    let mut value = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("policy_reasons".into(), json!(policy_reasons));
    }
    value
}

/// The revision a plan that was never revised is at: itself, as created.
fn first_revision(plan: &Plan) -> PlanRevision {
    PlanRevision {
        plan_id: plan.plan_id,
        revision: 1,
        created_at: plan.created_at,
        created_by: plan.created_by.to_string(),
        note: None,
        hash: plan_hash(plan),
        snapshot: snapshot(plan, None),
    }
}

async fn insert_revision(
    conn: &mut PgConnection,
    tenant: &TenantId,
    revision: &PlanRevision,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO plan_revisions (plan_id, revision, tenant_id, created_at, created_by, note, hash, \
         snapshot_json) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    )
    .bind(revision.plan_id.0)
    .bind(revision.revision)
    .bind(tenant.as_str())
    .bind(revision.created_at)
    .bind(&revision.created_by)
    .bind(&revision.note)
    .bind(&revision.hash)
    .bind(&revision.snapshot)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Revises a plan of `tenant` that has no active execution: `NotFound` for an absent or
    /// deleted plan, `Conflict` while an execution is pending or running. `audit` gets the
    /// revision numbers and how many approvals were superseded, and commits with the change.
    pub async fn revise_plan(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        change: NewRevision,
        audit: AuditEntry,
    ) -> Result<Revised, StoreError> {
        let mut tx = self.pool().begin().await?;
        let current = load_plan(&mut tx, tenant, plan_id, true).await?;
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM executions WHERE plan_id = $1 AND tenant_id = $2 \
             AND status IN ('pending', 'running')",
        )
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if active > 0 {
            return Err(StoreError::Conflict(
                "an execution of this plan is active: revise it after the execution ends".into(),
            ));
        }
        if current.revision == 1 {
            let exists: Option<i32> = sqlx::query_scalar(
                "SELECT revision FROM plan_revisions WHERE plan_id = $1 AND revision = 1",
            )
            .bind(plan_id.0)
            .fetch_optional(&mut *tx)
            .await?;
            if exists.is_none() {
                insert_revision(&mut tx, tenant, &first_revision(&current)).await?;
            }
        }
        let next = current.revision + 1;
        if next > MAX_REVISIONS {
            return Err(StoreError::Precondition(format!(
                "a plan has at most {MAX_REVISIONS} revisions: create a new plan"
            )));
        }
        sqlx::query(
            "UPDATE plans SET summary = $3, intent = $4, constraints_json = $5, risk_level = $6, \
             policy_decision = $7, approval_state = $8, approval_expires_at = $9, planner = $10, \
             plan_text = $11, meta_json = $12, revision = $13, updated_at = now() \
             WHERE plan_id = $1 AND tenant_id = $2",
        )
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .bind(change.summary.as_str())
        .bind(change.intent.as_str())
        .bind(&change.constraints)
        .bind(change.risk_level.as_str())
        .bind(change.policy_decision.as_str())
        .bind(change.approval_state.as_str())
        .bind(change.approval_expires_at)
        .bind(&change.planner)
        .bind(&change.plan_text)
        .bind(&change.meta)
        .bind(next)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM plan_steps WHERE plan_id = $1 AND tenant_id = $2")
            .bind(plan_id.0)
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        insert_steps(
            &mut tx,
            &[(plan_id.0, tenant.as_str(), change.steps.as_slice())],
        )
        .await?;
        let superseded = sqlx::query(
            "UPDATE approvals SET status = 'superseded' WHERE plan_id = $1 AND tenant_id = $2 \
             AND status <> 'superseded'",
        )
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if change.approval_state == PlanApprovalState::Pending {
            // Ask again, for this revision: a new issue; the earlier one is told where it went.
            sqlx::query(
                "UPDATE approval_requests SET status = 'creating', \
                 previous_external_id = coalesce(external_id, previous_external_id), \
                 external_id = NULL, external_key = NULL, external_url = NULL, attempts = 0, \
                 last_error = NULL, next_attempt_at = now(), updated_at = now() WHERE plan_id = $1",
            )
            .bind(plan_id.0)
            .execute(&mut *tx)
            .await?;
        }
        let plan = load_plan(&mut tx, tenant, plan_id, false).await?;
        let revision = PlanRevision {
            plan_id,
            revision: next,
            created_at: Utc::now(),
            created_by: change.revised_by.clone(),
            note: change.note.clone(),
            hash: plan_hash(&plan),
            snapshot: snapshot(&plan, Some(&change.policy_reasons)),
        };
        insert_revision(&mut tx, tenant, &revision).await?;
        if let Some(record) = &change.planning_record {
            super::planning_records::insert_planning_records(
                &mut tx,
                &[(plan_id.0, next, tenant.as_str(), record)],
            )
            .await?;
        }
        let mut audit = audit.resource("plan", plan_id);
        if let Value::Object(map) = &mut audit.context {
            map.insert("from_revision".into(), json!(current.revision));
            map.insert("to_revision".into(), json!(next));
            map.insert("hash".into(), json!(revision.hash));
            map.insert("superseded_approvals".into(), json!(superseded));
        }
        append_in_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Revised {
            plan,
            revision,
            superseded,
        })
    }

    /// Every revision of a plan, oldest first (a plan never revised has its one, itself).
    pub async fn plan_revisions(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
    ) -> Result<Vec<PlanRevision>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let plan = load_plan(&mut conn, tenant, plan_id, false).await?;
        let rows: Vec<RevisionRow> = sqlx::query_as(&format!(
            "SELECT {REVISION_COLUMNS} FROM plan_revisions WHERE plan_id = $1 AND tenant_id = $2 \
             ORDER BY revision"
        ))
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(vec![first_revision(&plan)]);
        }
        Ok(rows.into_iter().map(PlanRevision::from).collect())
    }

    /// One revision of a plan; `NotFound` for a revision it does not have.
    pub async fn plan_revision(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        revision: i32,
    ) -> Result<PlanRevision, StoreError> {
        self.plan_revisions(tenant, plan_id)
            .await?
            .into_iter()
            .find(|r| r.revision == revision)
            .ok_or(StoreError::NotFound)
    }
}
