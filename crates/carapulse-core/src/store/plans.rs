//! Plans and their steps.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::model::{
    ActionName, ActorId, ContextRef, Decision, Intent, Plan, PlanApprovalState, PlanId, PlanStep,
    RiskLevel, Stage, StepDraft, StepId, Summary, TenantId, ToolName, Trigger,
};

use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
use super::{Page, Paged, Store, StoreError};

/// A plan to insert (already validated and scored).
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub plan_id: PlanId,
    pub tenant_id: TenantId,
    pub created_by: ActorId,
    pub trigger: Trigger,
    pub summary: Summary,
    pub intent: Intent,
    pub context: ContextRef,
    pub risk_level: RiskLevel,
    pub policy_decision: Decision,
    pub constraints: Value,
    pub approval_state: PlanApprovalState,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub session_id: Option<String>,
    pub planner: Option<String>,
    pub plan_text: Option<String>,
    pub meta: Value,
    pub steps: Vec<StepDraft>,
    /// What planning saw (`planning_records`), stored with the plan as its revision 1.
    pub planning_record: Option<Value>,
}

/// Filters of `GET /v1/plans`.
#[derive(Debug, Clone, Default)]
pub struct PlanFilter {
    pub approval_state: Option<PlanApprovalState>,
    pub risk_level: Option<RiskLevel>,
    pub trigger: Option<Trigger>,
    pub created_by: Option<String>,
    pub session_id: Option<String>,
    /// Session scoping: only plans without a session or in a session this member belongs to.
    pub visible_to: Option<String>,
}

/// SQL condition (appended after `AND `) restricting plans to those without a session or in a
/// session `member` belongs to; `$tenant` and `$member` are bound by the caller in that order.
pub(crate) fn push_session_scope(
    qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
    plans_alias: &str,
    tenant: &str,
    member: &str,
) {
    qb.push(format!(
        " AND ({plans_alias}session_id IS NULL OR {plans_alias}session_id IN (SELECT m.session_id::text \
         FROM session_members m JOIN sessions s ON s.session_id = m.session_id WHERE s.tenant_id = "
    ))
    .push_bind(tenant.to_owned())
    .push(" AND m.member_id = ")
    .push_bind(member.to_owned())
    .push("))");
}

/// A plan row without steps (list views).
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub plan_id: PlanId,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub trigger: String,
    pub summary: String,
    pub intent: String,
    pub context: Value,
    pub risk_level: String,
    pub policy_decision: String,
    pub approval_state: String,
    pub session_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    plan_id: Uuid,
    tenant_id: String,
    created_at: DateTime<Utc>,
    created_by: String,
    trigger: String,
    summary: String,
    intent: String,
    context_json: Value,
    risk_level: String,
    policy_decision: String,
    constraints_json: Value,
    approval_state: String,
    approval_expires_at: Option<DateTime<Utc>>,
    session_id: Option<String>,
    planner: Option<String>,
    meta_json: Value,
    revision: i32,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    plan_id: Uuid,
    step_id: Uuid,
    ordinal: i32,
    stage: String,
    tool: String,
    action: String,
    input_json: Value,
    preconditions_json: Value,
    rollback_json: Option<Value>,
    evidence_json: Value,
    verification_json: Value,
}

/// The verification parts of a step as stored in `plan_steps.verification_json`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StepVerification {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    capture: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    expect: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    analysis: Option<Value>,
}

const PLAN_COLUMNS: &str = "plan_id, tenant_id, created_at, created_by, trigger, summary, intent, \
     context_json, risk_level, policy_decision, constraints_json, approval_state, approval_expires_at, \
     session_id, planner, meta_json, revision";

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}

impl StepRow {
    fn into_step(self) -> Result<PlanStep, StoreError> {
        let verification: StepVerification = serde_json::from_value(self.verification_json)
            .map_err(|e| corrupt("plan_steps.verification_json", e))?;
        Ok(PlanStep {
            step_id: StepId(self.step_id),
            ordinal: self.ordinal,
            stage: Stage::parse(&self.stage)?,
            tool: ToolName::parse(&self.tool)?,
            action: ActionName::parse(&self.action)?,
            input: self.input_json,
            preconditions: serde_json::from_value(self.preconditions_json)
                .map_err(|e| corrupt("plan_steps.preconditions_json", e))?,
            rollback: match self.rollback_json {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    serde_json::from_value(v)
                        .map_err(|e| corrupt("plan_steps.rollback_json", e))?,
                ),
            },
            evidence: serde_json::from_value(self.evidence_json)
                .map_err(|e| corrupt("plan_steps.evidence_json", e))?,
            capture: verification.capture,
            expect: verification.expect,
            analysis: verification.analysis,
        })
    }
}

impl PlanRow {
    fn into_plan(self, steps: Vec<PlanStep>) -> Result<Plan, StoreError> {
        Ok(Plan {
            plan_id: PlanId(self.plan_id),
            tenant_id: TenantId::parse(&self.tenant_id)?,
            created_at: self.created_at,
            created_by: ActorId::parse(&self.created_by)?,
            trigger: Trigger::parse(&self.trigger)?,
            summary: Summary::parse(&self.summary)?,
            intent: Intent::parse(&self.intent)?,
            context: serde_json::from_value(self.context_json)
                .map_err(|e| corrupt("plans.context_json", e))?,
            risk_level: RiskLevel::parse(&self.risk_level)?,
            policy_decision: Decision::parse(&self.policy_decision)?,
            constraints: self.constraints_json,
            approval_state: PlanApprovalState::parse(&self.approval_state)?,
            approval_expires_at: self.approval_expires_at,
            session_id: self.session_id,
            planner: self.planner,
            meta: self.meta_json,
            revision: self.revision,
            steps,
        })
    }
}

impl Store {
    /// Inserts the plan, its steps and its audit event in one transaction.
    pub async fn create_plan(&self, plan: NewPlan, audit: AuditEntry) -> Result<Plan, StoreError> {
        only_plan(self.create_plans(&[(plan, audit)]).await?)
    }

    /// Inserts plans with their steps and audit events in one transaction (group commit): one
    /// INSERT for the plans, one for all their steps, a set-based read-back, then one chain-head
    /// lock per tenant for all audit events, last before commit. Either every plan and its audit
    /// event commits, or none does. Returns the stored plans in input order.
    pub async fn create_plans(
        &self,
        batch: &[(NewPlan, AuditEntry)],
    ) -> Result<Vec<Plan>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let plans: Vec<&NewPlan> = batch.iter().map(|(plan, _)| plan).collect();
        // Borrowed, so a writer can retry the same batch plan by plan without copying it.
        let audits: Vec<AuditEntry> = batch.iter().map(|(_, audit)| audit.clone()).collect();
        let mut tx = self.pool().begin().await?;
        let contexts = plans
            .iter()
            .map(|p| serde_json::to_value(&p.context).map_err(|e| corrupt("context", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut qb = QueryBuilder::new(
            "INSERT INTO plans (plan_id, tenant_id, created_by, trigger, summary, intent, context_json, \
             risk_level, policy_decision, constraints_json, approval_state, approval_expires_at, session_id, \
             planner, plan_text, meta_json) ",
        );
        qb.push_values(plans.iter().zip(&contexts), |mut b, (plan, context)| {
            b.push_bind(plan.plan_id.0)
                .push_bind(plan.tenant_id.as_str())
                .push_bind(plan.created_by.as_str())
                .push_bind(plan.trigger.as_str())
                .push_bind(plan.summary.as_str())
                .push_bind(plan.intent.as_str())
                .push_bind(context)
                .push_bind(plan.risk_level.as_str())
                .push_bind(plan.policy_decision.as_str())
                .push_bind(&plan.constraints)
                .push_bind(plan.approval_state.as_str())
                .push_bind(plan.approval_expires_at)
                .push_bind(&plan.session_id)
                .push_bind(&plan.planner)
                .push_bind(&plan.plan_text)
                .push_bind(&plan.meta);
        });
        qb.build().execute(&mut *tx).await?;
        let items: Vec<(Uuid, &str, &[StepDraft])> = plans
            .iter()
            .map(|p| (p.plan_id.0, p.tenant_id.as_str(), p.steps.as_slice()))
            .collect();
        insert_steps(&mut tx, &items).await?;
        let records: Vec<(Uuid, i32, &str, &Value)> = plans
            .iter()
            .filter_map(|p| {
                p.planning_record
                    .as_ref()
                    .map(|r| (p.plan_id.0, 1, p.tenant_id.as_str(), r))
            })
            .collect();
        super::planning_records::insert_planning_records(&mut tx, &records).await?;
        let ids: Vec<Uuid> = plans.iter().map(|p| p.plan_id.0).collect();
        let stored = load_plans(&mut tx, &ids).await?;
        // Last before commit: the audit append locks each tenant's chain head until commit.
        crate::audit::append_many_in_tx(&mut tx, audits).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Withdraws a plan that never ran: every read and list leaves it out from now on, its
    /// open approval requests are closed, and `audit` commits with it. `NotFound` for an absent
    /// (or already withdrawn) plan, `Conflict` once it has an execution. The plan row is locked
    /// first, so an execute racing this one either comes first (and this is refused) or finds
    /// the plan gone.
    pub async fn delete_plan(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        deleted_by: &str,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        load_plan(&mut tx, tenant, plan_id, true).await?;
        let executions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM executions WHERE plan_id = $1 AND tenant_id = $2",
        )
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if executions > 0 {
            return Err(StoreError::Conflict(format!(
                "the plan has {executions} execution(s); only a plan that never ran can be deleted"
            )));
        }
        sqlx::query(
            "UPDATE plans SET deleted_at = now(), deleted_by = $3, updated_at = now() \
             WHERE plan_id = $1 AND tenant_id = $2",
        )
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .bind(deleted_by)
        .execute(&mut *tx)
        .await?;
        // A request with no issue yet just closes; an open one stays for the Linear watcher,
        // which finds the plan gone, says so on the issue and closes it.
        sqlx::query(
            "UPDATE approval_requests SET status = 'closed', updated_at = now() \
             WHERE plan_id = $1 AND status = 'creating'",
        )
        .bind(plan_id.0)
        .execute(&mut *tx)
        .await?;
        crate::audit::append_in_tx(&mut tx, audit.resource("plan", plan_id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One plan with its steps, or `NotFound` (also for another tenant's plan).
    pub async fn get_plan(&self, tenant: &TenantId, plan_id: PlanId) -> Result<Plan, StoreError> {
        let mut conn = self.pool().acquire().await?;
        load_plan(&mut conn, tenant, plan_id, false).await
    }

    /// Plans of `tenant`, newest first.
    pub async fn list_plans(
        &self,
        tenant: &TenantId,
        filter: &PlanFilter,
        page: Page,
    ) -> Result<Paged<PlanSummary>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "plans",
            columns: &[("created_at", KeyKind::Time), ("plan_id", KeyKind::Uuid)],
            descending: true,
        };
        let query = |qb: &mut QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(
                qb,
                "plan_id, created_at, created_by, trigger, summary, intent, context_json, \
                     risk_level, policy_decision, approval_state, session_id",
                "FROM plans WHERE tenant_id = ",
                tenant,
            );
            qb.push(" AND deleted_at IS NULL");
            if let Some(state) = filter.approval_state {
                qb.push(" AND approval_state = ").push_bind(state.as_str());
            }
            if let Some(risk) = filter.risk_level {
                qb.push(" AND risk_level = ").push_bind(risk.as_str());
            }
            if let Some(trigger) = filter.trigger {
                qb.push(" AND trigger = ").push_bind(trigger.as_str());
            }
            if let Some(by) = &filter.created_by {
                qb.push(" AND created_by = ").push_bind(by.clone());
            }
            if let Some(member) = &filter.visible_to {
                push_session_scope(qb, "", tenant.as_str(), member);
            }
            if let Some(session) = &filter.session_id {
                qb.push(" AND session_id = ").push_bind(session.clone());
            }
        };
        let map = |row: &sqlx::postgres::PgRow| {
            use sqlx::Row;
            Ok(PlanSummary {
                plan_id: PlanId(row.try_get("plan_id")?),
                created_at: row.try_get("created_at")?,
                created_by: row.try_get("created_by")?,
                trigger: row.try_get("trigger")?,
                summary: row.try_get("summary")?,
                intent: row.try_get("intent")?,
                context: row.try_get("context_json")?,
                risk_level: row.try_get("risk_level")?,
                policy_decision: row.try_get("policy_decision")?,
                approval_state: row.try_get("approval_state")?,
                session_id: row.try_get("session_id")?,
            })
        };
        fetch_page(self.pool(), page, &ORDER, query, map, |p: &PlanSummary| {
            vec![KeyValue::Time(p.created_at), KeyValue::Uuid(p.plan_id.0)]
        })
        .await
    }
}

/// The plan of a one-plan batch.
pub(crate) fn only_plan(mut plans: Vec<Plan>) -> Result<Plan, StoreError> {
    plans
        .pop()
        .ok_or_else(|| StoreError::Corrupt("plan insert returned nothing".into()))
}

/// Loads plans (any tenant: the caller names its own ids) with their steps in two statements,
/// in the order of `ids`.
async fn load_plans(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Plan>, StoreError> {
    let rows: Vec<PlanRow> = sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE plan_id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let steps: Vec<StepRow> = sqlx::query_as(
        "SELECT plan_id, step_id, ordinal, stage, tool, action, input_json, preconditions_json, rollback_json, \
         evidence_json, verification_json FROM plan_steps WHERE plan_id = ANY($1) ORDER BY plan_id, ordinal",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut steps_of: std::collections::HashMap<Uuid, Vec<PlanStep>> =
        std::collections::HashMap::new();
    for row in steps {
        steps_of
            .entry(row.plan_id)
            .or_default()
            .push(row.into_step()?);
    }
    let mut by_id: std::collections::HashMap<Uuid, PlanRow> =
        rows.into_iter().map(|r| (r.plan_id, r)).collect();
    ids.iter()
        .map(|id| {
            let row = by_id.remove(id).ok_or(StoreError::NotFound)?;
            row.into_plan(steps_of.remove(id).unwrap_or_default())
        })
        .collect()
}

/// Inserts the steps of each (plan, tenant), numbered from 0 in order, with new step ids.
pub(super) async fn insert_steps(
    conn: &mut PgConnection,
    items: &[(Uuid, &str, &[StepDraft])],
) -> Result<(), StoreError> {
    let mut steps = Vec::new();
    for &(plan_id, tenant, plan_steps) in items {
        for (i, step) in plan_steps.iter().enumerate() {
            let verification = StepVerification {
                capture: step.capture.clone(),
                expect: step.expect.clone(),
                analysis: step.analysis.clone(),
            };
            steps.push((
                plan_id,
                tenant,
                i as i32,
                step,
                serde_json::to_value(&step.preconditions)
                    .map_err(|e| corrupt("preconditions", e))?,
                match &step.rollback {
                    Some(rb) => Some(serde_json::to_value(rb).map_err(|e| corrupt("rollback", e))?),
                    None => None,
                },
                serde_json::to_value(&step.evidence).map_err(|e| corrupt("evidence", e))?,
                serde_json::to_value(verification).map_err(|e| corrupt("verification", e))?,
            ));
        }
    }
    // Postgres takes at most 65,535 parameters per statement: 12 per step.
    for chunk in steps.chunks(5_000) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO plan_steps (step_id, plan_id, tenant_id, ordinal, stage, tool, action, \
             input_json, preconditions_json, rollback_json, evidence_json, verification_json) ",
        );
        qb.push_values(
            chunk,
            |mut b, (plan_id, tenant, i, step, pre, rb, ev, ver)| {
                b.push_bind(Uuid::now_v7())
                    .push_bind(*plan_id)
                    .push_bind(*tenant)
                    .push_bind(*i)
                    .push_bind(step.stage.as_str())
                    .push_bind(step.tool.as_str())
                    .push_bind(step.action.as_str())
                    .push_bind(&step.input)
                    .push_bind(pre)
                    .push_bind(rb)
                    .push_bind(ev)
                    .push_bind(ver);
            },
        );
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Loads a plan and its steps on `conn`; `for_update` locks the plan row.
pub(crate) async fn load_plan(
    conn: &mut PgConnection,
    tenant: &TenantId,
    plan_id: PlanId,
    for_update: bool,
) -> Result<Plan, StoreError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row: Option<PlanRow> = sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE plan_id = $1 AND tenant_id = $2 AND deleted_at IS NULL{lock}"
    ))
    .bind(plan_id.0)
    .bind(tenant.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(StoreError::NotFound)?;
    let steps: Vec<StepRow> = sqlx::query_as(
        "SELECT plan_id, step_id, ordinal, stage, tool, action, input_json, preconditions_json, rollback_json, \
         evidence_json, verification_json FROM plan_steps WHERE plan_id = $1 AND tenant_id = $2 ORDER BY ordinal",
    )
    .bind(plan_id.0)
    .bind(tenant.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let steps = steps
        .into_iter()
        .map(StepRow::into_step)
        .collect::<Result<Vec<_>, _>>()?;
    row.into_plan(steps)
}

impl Store {
    /// Keeps the blast-radius estimate made when `plan_id` was approved (`meta.blast_radius_at_approval`),
    /// beside the one made when its revision was created. Meta is not part of the plan hash.
    pub async fn record_approval_blast_radius(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        estimate: &crate::blast_radius::BlastEstimate,
    ) -> Result<(), StoreError> {
        let value =
            serde_json::to_value(estimate).map_err(|e| StoreError::InvalidValue(e.to_string()))?;
        sqlx::query(
            "UPDATE plans SET meta_json = jsonb_set(meta_json, '{blast_radius_at_approval}', $3) \
             WHERE tenant_id = $1 AND plan_id = $2",
        )
        .bind(tenant.as_str())
        .bind(plan_id.0)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
