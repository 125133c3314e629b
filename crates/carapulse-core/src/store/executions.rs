//! Executions, with the tool calls and evidence activities record against them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::integrity::plan_hash;
use crate::model::{
    ActorId, Evidence, EvidenceId, Execution, ExecutionId, ExecutionStatus, PlanApprovalState,
    PlanId, StepId, TenantId, ToolCall, ToolCallId, ToolCallStatus,
};

use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
use super::plans::load_plan;
use super::{Page, Paged, Store, StoreError};

/// What the caller of `start_execution` asserts and the limits it applies.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub mode: StartMode,
    /// Break-glass reason when the caller asserted break-glass (already checked for its role).
    pub break_glass_reason: Option<String>,
    /// An approval older than this no longer executes.
    pub approval_validity: chrono::Duration,
    pub now: DateTime<Utc>,
}

impl StartOptions {
    /// `mode` without break-glass, with the default approval validity (24 hours), now.
    pub fn new(mode: StartMode) -> Self {
        Self {
            mode,
            break_glass_reason: None,
            approval_validity: chrono::Duration::hours(24),
            now: Utc::now(),
        }
    }
}

/// How `start_execution` treats a plan still awaiting approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// The plan must be approved (or need no approval).
    RequireApproved,
    /// A pending plan is accepted: the orchestrator waits for the approval signal.
    AwaitApproval,
}

/// Result of an execute request: a new execution, or the one already active (idempotence).
#[derive(Debug, Clone)]
pub enum StartOutcome {
    Created(Execution),
    Existing(Execution),
}

/// Filters of `GET /v1/executions`.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub status: Option<ExecutionStatus>,
    pub plan_id: Option<PlanId>,
    /// Session scoping: only executions of plans this member may see (see `PlanFilter`).
    pub visible_to: Option<String>,
}

/// An execution with what it recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionView {
    #[serde(flatten)]
    pub execution: Execution,
    pub steps: Vec<Value>,
    pub tool_calls: Vec<ToolCall>,
    pub evidence: Vec<Evidence>,
}

/// Largest JSON result kept inline on a tool call row.
pub const INLINE_RESULT_BYTES: usize = 64 * 1024;

/// What a finished tool call ran with and returned, recorded with its completion.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordedResult<'a> {
    /// The input after capture substitution, when it differs from the stored one.
    pub input: Option<&'a Value>,
    /// The parsed JSON result.
    pub result: Option<&'a Value>,
    /// Where the router stored the whole result.
    pub result_ref: Option<&'a str>,
}

/// How a tool call ended, for [`Store::finish_tool_call_with_result`].
#[derive(Debug, Clone)]
pub struct FinishedToolCall<'a> {
    pub status: ToolCallStatus,
    pub output_ref: Option<&'a str>,
    pub exit_code: Option<i32>,
    pub error: Option<&'a str>,
    /// What it ran with and returned, when there is something to keep.
    pub recorded: Option<RecordedResult<'a>>,
    /// The router ran a demo CLI (`tool_router.demo_cli_dir`), not the real tool.
    pub demo: bool,
}

/// A tool call to record.
#[derive(Debug, Clone)]
pub struct NewToolCall {
    pub execution_id: ExecutionId,
    pub step_id: Option<StepId>,
    pub tool_name: String,
    pub action: String,
    pub status: ToolCallStatus,
    pub input_ref: Option<String>,
    pub attempt: i32,
}

/// Evidence to record.
#[derive(Debug, Clone)]
pub struct NewEvidence {
    pub execution_id: ExecutionId,
    pub step_id: Option<StepId>,
    pub kind: String,
    pub query: Option<String>,
    pub result_ref: Option<String>,
    pub summary: Value,
    pub external_ids: Value,
}

#[derive(sqlx::FromRow)]
struct ExecutionRow {
    execution_id: Uuid,
    plan_id: Uuid,
    tenant_id: String,
    status: String,
    created_by: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    workflow_id: Option<String>,
    error: Option<String>,
    break_glass: bool,
    break_glass_reason: Option<String>,
}

impl ExecutionRow {
    fn into_model(self) -> Result<Execution, StoreError> {
        Ok(Execution {
            execution_id: ExecutionId(self.execution_id),
            plan_id: PlanId(self.plan_id),
            tenant_id: TenantId::parse(&self.tenant_id)?,
            status: ExecutionStatus::parse(&self.status)?,
            created_by: ActorId::parse(&self.created_by)?,
            created_at: self.created_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
            workflow_id: self.workflow_id,
            error: self.error,
            break_glass: self.break_glass,
            break_glass_reason: self.break_glass_reason,
        })
    }
}

/// Per-step progress of an execution, as the orchestrator records it.
#[derive(sqlx::FromRow, Serialize)]
struct StepProgressRow {
    step_id: Uuid,
    ordinal: i32,
    stage: String,
    status: String,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ToolCallRow {
    tool_call_id: Uuid,
    execution_id: Uuid,
    step_id: Option<Uuid>,
    tenant_id: String,
    tool_name: String,
    action: String,
    status: String,
    input_ref: Option<String>,
    output_ref: Option<String>,
    exit_code: Option<i32>,
    error: Option<String>,
    attempt: i32,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    result_json: Option<Value>,
    result_ref: Option<String>,
    input_json: Option<Value>,
    demo: bool,
}

#[derive(sqlx::FromRow)]
struct EvidenceRow {
    evidence_id: Uuid,
    execution_id: Uuid,
    step_id: Option<Uuid>,
    tenant_id: String,
    kind: String,
    query: Option<String>,
    result_ref: Option<String>,
    summary_json: Value,
    external_ids: Value,
    collected_at: DateTime<Utc>,
}

const EXECUTION_COLUMNS: &str =
    "execution_id, plan_id, tenant_id, status, created_by, created_at, \
     started_at, completed_at, workflow_id, error, break_glass, break_glass_reason";

impl Store {
    /// Creates a pending execution of an executable plan, or returns the active one.
    ///
    /// Under a lock on the plan row: the plan must not be waiting for, denied or expired approval;
    /// an approved plan's current hash must equal the hash stored with its approval (refusing plans
    /// edited after approval); and at most one pending/running execution may exist.
    pub async fn start_execution(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        execution_id: ExecutionId,
        created_by: &ActorId,
        audit: AuditEntry,
        options: StartOptions,
    ) -> Result<StartOutcome, StoreError> {
        let mode = options.mode;
        let mut tx = self.pool().begin().await?;
        let plan = load_plan(&mut tx, tenant, plan_id, true).await?;
        let active: Option<ExecutionRow> = sqlx::query_as(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE plan_id = $1 AND tenant_id = $2 \
             AND status IN ('pending','running')"
        ))
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = active {
            tx.commit().await?;
            return Ok(StartOutcome::Existing(existing.into_model()?));
        }
        match plan.approval_state {
            PlanApprovalState::NotRequired => {}
            PlanApprovalState::Approved => {
                // Every approval of this revision, each for exactly this content; as many as
                // policy requires (constraints.approvals_required).
                let approvals: Vec<(Option<String>, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT approved_hash, created_at FROM approvals WHERE plan_id = $1 AND tenant_id = $2 AND status = 'approved'",
                )
                .bind(plan_id.0)
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await?;
                if approvals.len() < plan.approvals_required() {
                    return Err(StoreError::Precondition(format!(
                        "approved by {} of the {} approvers policy requires",
                        approvals.len(),
                        plan.approvals_required()
                    )));
                }
                // The oldest approval decides when the approval goes stale.
                let approved_at = approvals.iter().map(|(_, at)| *at).min();
                let current = plan_hash(&plan);
                if approvals
                    .iter()
                    .any(|(hash, _)| hash.as_deref() != Some(current.as_str()))
                {
                    return Err(StoreError::Integrity(
                        "plan modified after approval: its hash no longer matches the approved hash".into(),
                    ));
                }
                // One approval authorises one execution.
                let used: Option<(Uuid,)> = sqlx::query_as(
                    "SELECT execution_id FROM executions WHERE plan_id = $1 AND tenant_id = $2 LIMIT 1",
                )
                .bind(plan_id.0)
                .bind(tenant.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((used_by,)) = used {
                    return Err(StoreError::Precondition(format!(
                        "this plan's approval was used by execution {used_by}: one approval authorises one execution; create a new plan to run it again"
                    )));
                }
                if plan
                    .approval_expires_at
                    .is_some_and(|deadline| deadline <= options.now)
                {
                    return Err(StoreError::Precondition(
                        "the approval window of this plan has passed (approval_expires_at)".into(),
                    ));
                }
                if approved_at.is_some_and(|at| at + options.approval_validity <= options.now) {
                    return Err(StoreError::Precondition(
                        "the approval is older than approvals.validity_hours and no longer executes"
                            .into(),
                    ));
                }
            }
            PlanApprovalState::Pending if mode == StartMode::AwaitApproval => {}
            PlanApprovalState::Pending => {
                return Err(StoreError::Precondition(
                    "plan requires approval before it can execute".into(),
                ))
            }
            PlanApprovalState::Denied => {
                return Err(StoreError::Precondition("plan was denied".into()))
            }
            PlanApprovalState::Expired => {
                return Err(StoreError::Precondition("plan approval expired".into()))
            }
        }
        let row: ExecutionRow = sqlx::query_as(&format!(
            "INSERT INTO executions (execution_id, plan_id, tenant_id, status, created_by, \
             break_glass, break_glass_reason) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6) RETURNING {EXECUTION_COLUMNS}"
        ))
        .bind(execution_id.0)
        .bind(plan_id.0)
        .bind(tenant.as_str())
        .bind(created_by.as_str())
        .bind(options.break_glass_reason.is_some())
        .bind(&options.break_glass_reason)
        .fetch_one(&mut *tx)
        .await?;
        append_in_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(StartOutcome::Created(row.into_model()?))
    }

    /// One execution (no children).
    pub async fn get_execution(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
    ) -> Result<Execution, StoreError> {
        let row: Option<ExecutionRow> = sqlx::query_as(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE execution_id = $1 AND tenant_id = $2"
        ))
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.ok_or(StoreError::NotFound)?.into_model()
    }

    /// An execution with its step progress, tool calls and evidence.
    pub async fn get_execution_view(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
    ) -> Result<ExecutionView, StoreError> {
        let execution = self.get_execution(tenant, execution_id).await?;
        let steps: Vec<StepProgressRow> = sqlx::query_as(
            "SELECT step_id, ordinal, stage, status, started_at, finished_at, error FROM execution_steps \
             WHERE execution_id = $1 AND tenant_id = $2 ORDER BY ordinal, started_at",
        )
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        let steps = steps
            .into_iter()
            .map(|row| serde_json::to_value(row).unwrap_or(Value::Null))
            .collect();
        let calls: Vec<ToolCallRow> = sqlx::query_as(
            "SELECT tool_call_id, execution_id, step_id, tenant_id, tool_name, action, status, input_ref, \
             output_ref, exit_code, error, attempt, started_at, completed_at, result_json, result_ref, \
             input_json, demo FROM tool_calls \
             WHERE execution_id = $1 AND tenant_id = $2 ORDER BY created_at, tool_call_id LIMIT 1000",
        )
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        let evidence: Vec<EvidenceRow> = sqlx::query_as(
            "SELECT evidence_id, execution_id, step_id, tenant_id, kind, query, result_ref, summary_json, \
             external_ids, collected_at FROM evidence WHERE execution_id = $1 AND tenant_id = $2 \
             ORDER BY collected_at, evidence_id LIMIT 1000",
        )
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        let tool_calls = calls
            .into_iter()
            .map(|r| {
                Ok(ToolCall {
                    tool_call_id: ToolCallId(r.tool_call_id),
                    execution_id: ExecutionId(r.execution_id),
                    step_id: r.step_id.map(StepId),
                    tenant_id: TenantId::parse(&r.tenant_id)?,
                    tool_name: r.tool_name,
                    action: r.action,
                    status: ToolCallStatus::parse(&r.status)?,
                    input_ref: r.input_ref,
                    output_ref: r.output_ref,
                    exit_code: r.exit_code,
                    error: r.error,
                    attempt: r.attempt,
                    started_at: r.started_at,
                    completed_at: r.completed_at,
                    input: r.input_json,
                    result: r.result_json,
                    result_ref: r.result_ref,
                    demo: r.demo,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let evidence = evidence
            .into_iter()
            .map(|r| {
                Ok(Evidence {
                    evidence_id: EvidenceId(r.evidence_id),
                    execution_id: ExecutionId(r.execution_id),
                    step_id: r.step_id.map(StepId),
                    tenant_id: TenantId::parse(&r.tenant_id)?,
                    kind: r.kind,
                    query: r.query,
                    result_ref: r.result_ref,
                    summary: r.summary_json,
                    external_ids: r.external_ids,
                    collected_at: r.collected_at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ExecutionView {
            execution,
            steps,
            tool_calls,
            evidence,
        })
    }

    /// Executions of `tenant`, newest first.
    pub async fn list_executions(
        &self,
        tenant: &TenantId,
        filter: &ExecutionFilter,
        page: Page,
    ) -> Result<Paged<Execution>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "executions",
            columns: &[
                ("created_at", KeyKind::Time),
                ("execution_id", KeyKind::Uuid),
            ],
            descending: true,
        };
        let query = |qb: &mut QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(
                qb,
                EXECUTION_COLUMNS,
                "FROM executions WHERE tenant_id = ",
                tenant,
            );
            if let Some(status) = filter.status {
                qb.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(plan) = filter.plan_id {
                qb.push(" AND plan_id = ").push_bind(plan.0);
            }
            if let Some(member) = &filter.visible_to {
                qb.push(" AND plan_id IN (SELECT p.plan_id FROM plans p WHERE p.tenant_id = ")
                    .push_bind(tenant.as_str().to_owned());
                super::plans::push_session_scope(qb, "p.", tenant.as_str(), member);
                qb.push(")");
            }
        };
        let map = |row: &sqlx::postgres::PgRow| {
            use sqlx::FromRow;
            ExecutionRow::from_row(row)?.into_model()
        };
        fetch_page(self.pool(), page, &ORDER, query, map, |e: &Execution| {
            vec![
                KeyValue::Time(e.created_at),
                KeyValue::Uuid(e.execution_id.0),
            ]
        })
        .await
    }

    /// Moves an execution to `next` if the transition is legal; sets started/completed times.
    pub async fn transition_execution(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        next: ExecutionStatus,
        error: Option<&str>,
    ) -> Result<Execution, StoreError> {
        self.transition(tenant, execution_id, next, error, None)
            .await
    }

    /// [`Store::transition_execution`] with its audit event in the same transaction: the new
    /// status never exists without the event (a worker killed between the two used to leave a
    /// finished execution unaudited). No event when the status was already `next`.
    pub async fn transition_execution_audited(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        next: ExecutionStatus,
        error: Option<&str>,
        audit: crate::audit::AuditEntry,
    ) -> Result<Execution, StoreError> {
        self.transition(tenant, execution_id, next, error, Some(audit))
            .await
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        next: ExecutionStatus,
        error: Option<&str>,
        audit: Option<crate::audit::AuditEntry>,
    ) -> Result<Execution, StoreError> {
        let mut tx = self.pool().begin().await?;
        let current: Option<ExecutionRow> = sqlx::query_as(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE execution_id = $1 AND tenant_id = $2 FOR UPDATE"
        ))
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let current = current.ok_or(StoreError::NotFound)?.into_model()?;
        if current.status == next {
            tx.commit().await?;
            return Ok(current);
        }
        if !current.status.can_become(next) {
            return Err(StoreError::Conflict(format!(
                "execution is {} and cannot become {}",
                current.status.as_str(),
                next.as_str()
            )));
        }
        let row: ExecutionRow = sqlx::query_as(&format!(
            "UPDATE executions SET status = $3, updated_at = now(), \
             started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END, \
             completed_at = CASE WHEN $3 IN ('pending','running') THEN completed_at ELSE now() END, \
             error = COALESCE($4, error) \
             WHERE execution_id = $1 AND tenant_id = $2 RETURNING {EXECUTION_COLUMNS}"
        ))
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .bind(next.as_str())
        .bind(error)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(audit) = audit {
            crate::audit::append_in_tx(&mut tx, audit).await?;
        }
        tx.commit().await?;
        row.into_model()
    }

    /// Records the orchestrator's workflow id for an execution.
    pub async fn set_workflow_id(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        workflow_id: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE executions SET workflow_id = $3, updated_at = now() WHERE execution_id = $1 AND tenant_id = $2",
        )
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .bind(workflow_id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records a tool call of an execution of `tenant`.
    pub async fn insert_tool_call(
        &self,
        tenant: &TenantId,
        call: &NewToolCall,
    ) -> Result<ToolCallId, StoreError> {
        let id = ToolCallId::new();
        sqlx::query(
            "INSERT INTO tool_calls (tool_call_id, execution_id, step_id, tenant_id, tool_name, action, status, \
             input_ref, attempt, started_at) \
             SELECT $1, execution_id, $3, tenant_id, $4, $5, $6, $7, $8, \
             CASE WHEN $6 = 'pending' THEN NULL ELSE now() END \
             FROM executions WHERE execution_id = $2 AND tenant_id = $9",
        )
        .bind(id.0)
        .bind(call.execution_id.0)
        .bind(call.step_id.map(|s| s.0))
        .bind(&call.tool_name)
        .bind(&call.action)
        .bind(call.status.as_str())
        .bind(&call.input_ref)
        .bind(call.attempt)
        .bind(tenant.as_str())
        .execute(self.pool())
        .await
        .and_then(|r| if r.rows_affected() == 0 { Err(sqlx::Error::RowNotFound) } else { Ok(r) })?;
        Ok(id)
    }

    /// Completes a tool call.
    pub async fn finish_tool_call(
        &self,
        tenant: &TenantId,
        id: ToolCallId,
        status: ToolCallStatus,
        output_ref: Option<&str>,
        exit_code: Option<i32>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let finished = FinishedToolCall {
            status,
            output_ref,
            exit_code,
            error,
            recorded: None,
            demo: false,
        };
        self.finish_tool_call_with_result(tenant, id, &finished)
            .await
    }

    /// Completes a tool call and, in the same statement, records what it ran with and returned
    /// (`finished.recorded`): the concrete input (after capture substitution) and the parsed JSON
    /// result, inline up to [`INLINE_RESULT_BYTES`], else only the object-store reference the
    /// router wrote it to. One UPDATE per tool call, whatever it returned.
    pub async fn finish_tool_call_with_result(
        &self,
        tenant: &TenantId,
        id: ToolCallId,
        finished: &FinishedToolCall<'_>,
    ) -> Result<(), StoreError> {
        let recorded = finished.recorded.as_ref();
        let inline = recorded.and_then(|r| r.result).filter(|r| {
            serde_json::to_vec(r).map(|b| b.len()).unwrap_or(usize::MAX) <= INLINE_RESULT_BYTES
        });
        let done = sqlx::query(
            "UPDATE tool_calls SET status = $3, output_ref = COALESCE($4, output_ref), exit_code = $5, \
             error = $6, completed_at = now(), input_json = COALESCE($7, input_json), \
             result_json = CASE WHEN $10 THEN $8 ELSE result_json END, \
             result_ref = CASE WHEN $10 THEN $9 ELSE result_ref END, demo = $11 \
             WHERE tool_call_id = $1 AND tenant_id = $2",
        )
        .bind(id.0)
        .bind(tenant.as_str())
        .bind(finished.status.as_str())
        .bind(finished.output_ref)
        .bind(finished.exit_code)
        .bind(finished.error)
        .bind(recorded.and_then(|r| r.input))
        .bind(inline)
        .bind(recorded.and_then(|r| r.result_ref))
        .bind(recorded.is_some())
        .bind(finished.demo)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records evidence for an execution of `tenant`.
    pub async fn insert_evidence(
        &self,
        tenant: &TenantId,
        evidence: &NewEvidence,
    ) -> Result<EvidenceId, StoreError> {
        let id = EvidenceId::new();
        sqlx::query(
            "INSERT INTO evidence (evidence_id, execution_id, step_id, tenant_id, kind, query, result_ref, \
             summary_json, external_ids) \
             SELECT $1, execution_id, $3, tenant_id, $4, $5, $6, $7, $8 \
             FROM executions WHERE execution_id = $2 AND tenant_id = $9",
        )
        .bind(id.0)
        .bind(evidence.execution_id.0)
        .bind(evidence.step_id.map(|s| s.0))
        .bind(&evidence.kind)
        .bind(&evidence.query)
        .bind(&evidence.result_ref)
        .bind(&evidence.summary)
        .bind(&evidence.external_ids)
        .bind(tenant.as_str())
        .execute(self.pool())
        .await
        .and_then(|r| if r.rows_affected() == 0 { Err(sqlx::Error::RowNotFound) } else { Ok(r) })?;
        Ok(id)
    }
}

impl Store {
    /// Upserts the progress row of one step call (act, verify or rollback) of an execution.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_step_progress(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        step_id: StepId,
        ordinal: i32,
        stage: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let finished = !matches!(
            status,
            "pending" | "running" | "sampling" | "awaiting_decision"
        );
        sqlx::query(
            "INSERT INTO execution_steps (execution_id, step_id, tenant_id, ordinal, stage, status, started_at, finished_at, error) \
             SELECT execution_id, $3, tenant_id, $4, $5, $6, now(), CASE WHEN $7 THEN now() END, $8 \
             FROM executions WHERE execution_id = $1 AND tenant_id = $2 \
             ON CONFLICT (execution_id, step_id, stage) DO UPDATE SET status = EXCLUDED.status, \
             finished_at = CASE WHEN $7 THEN now() ELSE execution_steps.finished_at END, error = EXCLUDED.error",
        )
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .bind(step_id.0)
        .bind(ordinal)
        .bind(stage)
        .bind(status)
        .bind(finished)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

impl Store {
    /// The verify step of an execution waiting for a person to continue or roll back its
    /// inconclusive analysis, as `(step id, ordinal)`.
    pub async fn step_awaiting_decision(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
    ) -> Result<Option<(StepId, i32)>, StoreError> {
        let row: Option<(Uuid, i32)> = sqlx::query_as(
            "SELECT step_id, ordinal FROM execution_steps WHERE execution_id = $1 AND tenant_id = $2 \
             AND stage = 'verify' AND status = 'awaiting_decision' ORDER BY ordinal LIMIT 1",
        )
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(step, ordinal)| (StepId(step), ordinal)))
    }

    /// Marks tool calls of a step still `running` as failed — used when an activity retries after
    /// its worker was lost, so the abandoned attempt does not look live forever.
    pub async fn abandon_running_tool_calls(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        step_id: StepId,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE tool_calls SET status = 'failed', error = $4, completed_at = now() \
             WHERE execution_id = $1 AND tenant_id = $2 AND step_id = $3 AND status = 'running'",
        )
        .bind(execution_id.0)
        .bind(tenant.as_str())
        .bind(step_id.0)
        .bind(reason)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
