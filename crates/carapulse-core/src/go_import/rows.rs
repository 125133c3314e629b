//! One writer per kind of Go record: how its row maps onto this project's tables.
//!
//! Rules shared by all: ids that are UUIDs are kept, others become a stable UUID of (kind, Go
//! id); the tenant is the one a row names, else `--tenant`; an unknown status or a missing
//! required value is replaced by the safe choice and reported as a fix; a row that cannot mean
//! anything here (a pending approval, a cron that does not parse, a child of a parent that was
//! not imported) is refused and reported. Imported plans are history, never runnable: a plan
//! Go approved keeps `approved` but its approval has no hash (execution is refused as
//! "modified after approval"), and every other plan is `expired` (its Go state kept in
//! `meta_json.go`). Imported schedules start disabled, so they do not fire beside the Go
//! scheduler during a cut-over.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{importer, Ctx, RowError, Written};
use crate::audit::{append_in_tx, AuditActor, AuditDecision, AuditEntry};
use crate::model::{TenantId, ToolName};

pub(crate) type WriteFn = for<'t, 'c> fn(
    &'t mut Transaction<'static, Postgres>,
    &'t mut Ctx<'c>,
    &'t str,
    &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>>;

/// One kind of Go record.
pub struct Kind {
    /// Its name in the ledger and the report.
    pub name: &'static str,
    /// The Go table.
    pub table: &'static str,
    /// A text key that orders the rows (chronologically for audit events).
    pub key: &'static str,
    pub(crate) write: WriteFn,
}

/// Every kind, parents before children.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "plan",
        table: "plans",
        key: "plan_id",
        write: plan,
    },
    Kind {
        name: "plan_step",
        table: "plan_steps",
        key: "step_id",
        write: step,
    },
    Kind {
        name: "approval",
        table: "approvals",
        key: "approval_id",
        write: approval,
    },
    Kind {
        name: "execution",
        table: "executions",
        key: "execution_id",
        write: execution,
    },
    Kind {
        name: "tool_call",
        table: "tool_calls",
        key: "tool_call_id",
        write: tool_call,
    },
    Kind {
        name: "evidence",
        table: "evidence",
        key: "evidence_id",
        write: evidence,
    },
    Kind {
        name: "session",
        table: "sessions",
        key: "session_id",
        write: session,
    },
    Kind {
        name: "session_member",
        table: "session_members",
        key: "session_id || '/' || member_id",
        write: session_member,
    },
    Kind {
        name: "schedule",
        table: "schedules",
        key: "schedule_id",
        write: schedule,
    },
    Kind {
        name: "playbook",
        table: "playbooks",
        key: "playbook_id",
        write: playbook,
    },
    Kind {
        name: "runbook",
        table: "runbooks",
        key: "runbook_id",
        write: runbook,
    },
    Kind {
        name: "memory",
        table: "operator_memory",
        key: "memory_id",
        write: memory,
    },
    Kind {
        name: "context_node",
        table: "context_nodes",
        key: "node_id",
        write: context_node,
    },
    Kind {
        name: "context_edge",
        table: "context_edges",
        key: "edge_id",
        write: context_edge,
    },
    Kind {
        name: "context_snapshot",
        table: "context_snapshots",
        key: "snapshot_id",
        write: context_snapshot,
    },
    Kind {
        name: "audit_event",
        table: "audit_events",
        key:
            "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || ' ' || event_id",
        write: audit_event,
    },
];

/// A Go id as a UUID: itself when it is one, else stable for (kind, id).
pub fn new_uuid(kind: &str, go_id: &str) -> Uuid {
    if let Ok(id) = Uuid::parse_str(go_id.trim()) {
        return id;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("carapulse-go-import/{kind}/{go_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

fn text<'a>(row: &'a Value, col: &str) -> Option<&'a str> {
    row.get(col)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn time(row: &Value, col: &str) -> Option<DateTime<Utc>> {
    text(row, col)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn object(row: &Value, col: &str) -> Option<Map<String, Value>> {
    row.get(col).and_then(Value::as_object).cloned()
}

fn array(row: &Value, col: &str) -> Option<Vec<Value>> {
    row.get(col).and_then(Value::as_array).cloned()
}

/// A required text column, or `fallback` with a fix noted.
fn text_or(row: &Value, col: &str, fallback: &str, fixes: &mut Vec<String>) -> String {
    match text(row, col) {
        Some(v) => v.to_owned(),
        None => {
            fixes.push(format!("{col} was empty: {fallback:?}"));
            fallback.to_owned()
        }
    }
}

fn time_or_now(row: &Value, col: &str, fixes: &mut Vec<String>) -> DateTime<Utc> {
    time(row, col).unwrap_or_else(|| {
        fixes.push(format!("{col} was NULL: the import time"));
        Utc::now()
    })
}

/// Maps a status through `table`; unknown values become `fallback`, noted.
fn status(
    row: &Value,
    col: &str,
    table: &[(&str, &'static str)],
    fallback: &'static str,
    fixes: &mut Vec<String>,
) -> &'static str {
    let raw = text(row, col).unwrap_or("").to_ascii_lowercase();
    match table.iter().find(|(from, _)| *from == raw) {
        Some((_, to)) => to,
        None => {
            fixes.push(format!("{col} {raw:?} is unknown: {fallback}"));
            fallback
        }
    }
}

/// The tenant of a plan already imported here (children take their parent's).
async fn plan_tenant(
    tx: &mut Transaction<'static, Postgres>,
    plan: Uuid,
    go_plan: &str,
) -> Result<TenantId, RowError> {
    let found: Option<(String,)> = sqlx::query_as("SELECT tenant_id FROM plans WHERE plan_id = $1")
        .bind(plan)
        .fetch_optional(&mut **tx)
        .await?;
    let (tenant,) =
        found.ok_or_else(|| RowError::Bad(format!("its plan {go_plan} was not imported")))?;
    TenantId::parse(&tenant).map_err(|e| RowError::Bad(e.message))
}

async fn execution_tenant(
    tx: &mut Transaction<'static, Postgres>,
    execution: Uuid,
    go_execution: &str,
) -> Result<TenantId, RowError> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT tenant_id FROM executions WHERE execution_id = $1")
            .bind(execution)
            .fetch_optional(&mut **tx)
            .await?;
    let (tenant,) = found
        .ok_or_else(|| RowError::Bad(format!("its execution {go_execution} was not imported")))?;
    TenantId::parse(&tenant).map_err(|e| RowError::Bad(e.message))
}

fn written(id: impl ToString, fixes: Vec<String>) -> Written {
    Written {
        new_id: id.to_string(),
        fixes,
    }
}

fn plan<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let mut context = object(row, "context_json").unwrap_or_default();
        let tenant = ctx.tenant(context.get("tenant_id").and_then(Value::as_str))?;
        context.insert("tenant_id".into(), json!(tenant.as_str()));
        let id = new_uuid("plan", go_id);
        let created_at = time_or_now(row, "created_at", &mut fixes);
        let trigger = status(
            row,
            "trigger",
            &[
                ("manual", "manual"),
                ("api", "manual"),
                ("cli", "manual"),
                ("ui", "manual"),
                ("alert", "alert"),
                ("alertmanager", "alert"),
                ("webhook", "webhook"),
                ("scheduled", "scheduled"),
                ("schedule", "scheduled"),
                ("workflow", "workflow"),
                ("chatops", "chatops"),
                ("slack", "chatops"),
            ],
            "manual",
            &mut fixes,
        );
        let risk = status(
            row,
            "risk_level",
            &[
                ("read", "read"),
                ("low", "low"),
                ("medium", "medium"),
                ("high", "high"),
            ],
            "high",
            &mut fixes,
        );
        let summary = text_or(row, "summary", "(no summary in the Go record)", &mut fixes);
        let decisions: Vec<(Option<String>,)> =
            sqlx::query_as("SELECT lower(status) FROM approvals WHERE plan_id = $1")
                .bind(go_id)
                .fetch_all(ctx.go)
                .await
                .map_err(|e| RowError::Bad(format!("reading its approvals: {e}")))?;
        let has = |s: &str| decisions.iter().any(|(d,)| d.as_deref() == Some(s));
        let go_state = if has("denied") {
            "denied"
        } else if has("approved") {
            "approved"
        } else if decisions.is_empty() {
            "not_required"
        } else {
            "pending"
        };
        // Never runnable here: approved keeps its word (its approval carries no hash), the
        // rest is expired.
        let state = match go_state {
            "denied" => "denied",
            "approved" => "approved",
            _ => "expired",
        };
        let mut meta = object(row, "meta_json").unwrap_or_default();
        meta.insert(
            "go".into(),
            json!({"plan_id": go_id, "approval_state": go_state, "imported": true}),
        );
        sqlx::query(
            "INSERT INTO plans (plan_id, tenant_id, created_at, updated_at, created_by, trigger, summary, \
             intent, context_json, risk_level, policy_decision, constraints_json, approval_state, \
             session_id, planner, plan_text, meta_json) \
             VALUES ($1,$2,$3,$3,'go-import',$4,$5,$6,$7,$8,'require_approval',$9,$10,$11,'go-import',$12,$13)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(created_at)
        .bind(trigger)
        .bind(&summary)
        .bind(text(row, "intent").unwrap_or(""))
        .bind(Value::Object(context))
        .bind(risk)
        .bind(Value::Object(object(row, "constraints_json").unwrap_or_default()))
        .bind(state)
        .bind(text(row, "session_id"))
        .bind(text(row, "plan_text"))
        .bind(Value::Object(meta))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn step<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    _ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let go_plan = text(row, "plan_id").ok_or_else(|| RowError::Bad("no plan_id".into()))?;
        let plan = new_uuid("plan", go_plan);
        let tenant = plan_tenant(tx, plan, go_plan).await?;
        let tool = text_or(row, "tool", "unknown", &mut fixes).to_ascii_lowercase();
        let mut action = text_or(row, "action", "unknown", &mut fixes);
        if let Ok(parsed) = ToolName::parse(&tool) {
            if let Some(current) = crate::tools::compat::current_action(parsed, &action) {
                if current != action {
                    fixes.push(format!("action {action:?} is now {current:?}"));
                    action = current.to_owned();
                }
            }
        }
        // Go kept no order: steps follow their ids, as they were read.
        let (ordinal,): (i32,) = sqlx::query_as(
            "SELECT coalesce(max(ordinal) + 1, 0) FROM plan_steps WHERE plan_id = $1",
        )
        .bind(plan)
        .fetch_one(&mut **tx)
        .await?;
        let id = new_uuid("plan_step", go_id);
        sqlx::query(
            "INSERT INTO plan_steps (step_id, plan_id, tenant_id, ordinal, stage, tool, action, \
             input_json, preconditions_json, rollback_json) VALUES ($1,$2,$3,$4,'act',$5,$6,$7,$8,$9)",
        )
        .bind(id)
        .bind(plan)
        .bind(tenant.as_str())
        .bind(ordinal)
        .bind(&tool)
        .bind(&action)
        .bind(Value::Object(object(row, "input_json").unwrap_or_default()))
        .bind(Value::Array(array(row, "preconditions_json").unwrap_or_default()))
        .bind(row.get("rollback_json").filter(|v| !v.is_null()))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn approval<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    _ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let go_plan = text(row, "plan_id").ok_or_else(|| RowError::Bad("no plan_id".into()))?;
        let plan = new_uuid("plan", go_plan);
        let tenant = plan_tenant(tx, plan, go_plan).await?;
        let decision = match text(row, "status").map(str::to_ascii_lowercase).as_deref() {
            Some(s @ ("approved" | "denied" | "expired")) => s.to_owned(),
            Some("pending") => {
                return Err(RowError::Bad(
                    "pending: not a decision (the plan was imported as expired)".into(),
                ))
            }
            other => return Err(RowError::Bad(format!("unknown status {other:?}"))),
        };
        let approver = row.get("approver_json").cloned().unwrap_or(Value::Null);
        let who = ["actor_id", "id", "email", "name", "user"]
            .iter()
            .find_map(|k| approver.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                fixes.push("approver_json names nobody: \"unknown\"".into());
                "unknown".into()
            });
        let source = status(
            row,
            "source",
            &[
                ("api", "api"),
                ("ui", "ui"),
                ("cli", "cli"),
                ("slack", "slack"),
                ("linear", "linear"),
                ("auto", "auto"),
                ("system", "system"),
            ],
            "system",
            &mut fixes,
        );
        let note = match text(row, "approved_hash") {
            Some(hash) => format!("imported from the Go version (Go approved_hash {hash})"),
            None => "imported from the Go version".to_owned(),
        };
        let id = new_uuid("approval", go_id);
        sqlx::query(
            "INSERT INTO approvals (approval_id, plan_id, tenant_id, status, approver, approver_email, \
             source, note, approved_hash, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,NULL,$9)",
        )
        .bind(id)
        .bind(plan)
        .bind(tenant.as_str())
        .bind(&decision)
        .bind(&who)
        .bind(approver.get("email").and_then(Value::as_str))
        .bind(source)
        .bind(&note)
        .bind(time(row, "expires_at").unwrap_or_else(Utc::now))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

const EXECUTION_STATUSES: &[(&str, &str)] = &[
    ("succeeded", "succeeded"),
    ("success", "succeeded"),
    ("completed", "succeeded"),
    ("failed", "failed"),
    ("rolled_back", "rolled_back"),
    ("cancelled", "cancelled"),
    ("canceled", "cancelled"),
    ("expired", "expired"),
];

fn execution<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    _ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let go_plan = text(row, "plan_id").ok_or_else(|| RowError::Bad("no plan_id".into()))?;
        let plan = new_uuid("plan", go_plan);
        let tenant = plan_tenant(tx, plan, go_plan).await?;
        let raw = text(row, "status").unwrap_or("").to_ascii_lowercase();
        let (state, error) = if matches!(raw.as_str(), "pending" | "running") {
            fixes.push(format!("status {raw:?}: cancelled (nothing runs it here)"));
            (
                "cancelled",
                Some(format!("imported from the Go version while {raw}")),
            )
        } else {
            (
                status(row, "status", EXECUTION_STATUSES, "failed", &mut fixes),
                None,
            )
        };
        let started = time(row, "started_at");
        let id = new_uuid("execution", go_id);
        sqlx::query(
            "INSERT INTO executions (execution_id, plan_id, tenant_id, status, created_by, created_at, \
             updated_at, started_at, completed_at, workflow_id, error) \
             VALUES ($1,$2,$3,$4,'go-import',$5,$5,$6,$7,$8,$9)",
        )
        .bind(id)
        .bind(plan)
        .bind(tenant.as_str())
        .bind(state)
        .bind(started.unwrap_or_else(Utc::now))
        .bind(started)
        .bind(time(row, "completed_at"))
        .bind(text(row, "workflow_id"))
        .bind(error)
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn tool_call<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    _ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let go_exec =
            text(row, "execution_id").ok_or_else(|| RowError::Bad("no execution_id".into()))?;
        let execution = new_uuid("execution", go_exec);
        let tenant = execution_tenant(tx, execution, go_exec).await?;
        let state = status(
            row,
            "status",
            &[
                ("succeeded", "succeeded"),
                ("success", "succeeded"),
                ("failed", "failed"),
            ],
            "failed",
            &mut fixes,
        );
        let id = new_uuid("tool_call", go_id);
        sqlx::query(
            "INSERT INTO tool_calls (tool_call_id, execution_id, tenant_id, tool_name, action, status, \
             input_ref, output_ref) VALUES ($1,$2,$3,$4,'(go)',$5,$6,$7)",
        )
        .bind(id)
        .bind(execution)
        .bind(tenant.as_str())
        .bind(text_or(row, "tool_name", "unknown", &mut fixes))
        .bind(state)
        .bind(text(row, "input_ref"))
        .bind(text(row, "output_ref"))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn evidence<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    _ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let go_exec =
            text(row, "execution_id").ok_or_else(|| RowError::Bad("no execution_id".into()))?;
        let execution = new_uuid("execution", go_exec);
        let tenant = execution_tenant(tx, execution, go_exec).await?;
        let id = new_uuid("evidence", go_id);
        let summary = match text(row, "link") {
            Some(link) => json!({ "link": link }),
            None => json!({}),
        };
        sqlx::query(
            "INSERT INTO evidence (evidence_id, execution_id, tenant_id, kind, query, result_ref, \
             summary_json, external_ids, collected_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        )
        .bind(id)
        .bind(execution)
        .bind(tenant.as_str())
        .bind(text_or(row, "type", "unknown", &mut fixes))
        .bind(text(row, "query"))
        .bind(text(row, "result_ref"))
        .bind(summary)
        .bind(Value::Object(
            object(row, "external_ids").unwrap_or_default(),
        ))
        .bind(time_or_now(row, "collected_at", &mut fixes))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn session<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let tenant = ctx.tenant(text(row, "tenant_id"))?;
        if let Some(group) = text(row, "group_id") {
            fixes.push(format!("session group {group:?} is not imported"));
        }
        let id = new_uuid("session", go_id);
        let created = time_or_now(row, "created_at", &mut fixes);
        sqlx::query(
            "INSERT INTO sessions (session_id, tenant_id, name, owner_actor_id, metadata, created_at, \
             updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(text_or(row, "name", "(unnamed Go session)", &mut fixes))
        .bind(text(row, "owner_actor_id"))
        .bind(Value::Object(object(row, "metadata").unwrap_or_default()))
        .bind(created)
        .bind(time(row, "updated_at").unwrap_or(created))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn session_member<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    _ctx: &'t mut Ctx<'_>,
    _go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let go_session =
            text(row, "session_id").ok_or_else(|| RowError::Bad("no session_id".into()))?;
        let member = text(row, "member_id").ok_or_else(|| RowError::Bad("no member_id".into()))?;
        let session = new_uuid("session", go_session);
        let done = sqlx::query(
            "INSERT INTO session_members (session_id, member_id, role, added_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM sessions WHERE session_id = $1)",
        )
        .bind(session)
        .bind(member)
        .bind(text_or(row, "role", "member", &mut fixes))
        .bind(time_or_now(row, "added_at", &mut fixes))
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(RowError::Bad(format!(
                "its session {go_session} was not imported"
            )));
        }
        Ok(written(format!("{session}/{member}"), fixes))
    })
}

fn schedule<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let mut context = object(row, "context_json").unwrap_or_default();
        let tenant = ctx.tenant(context.get("tenant_id").and_then(Value::as_str))?;
        context.insert("tenant_id".into(), json!(tenant.as_str()));
        let cron = text(row, "cron").ok_or_else(|| RowError::Bad("no cron".into()))?;
        crate::schedule::CronSchedule::parse(cron, "UTC")
            .map_err(|e| RowError::Bad(format!("cron {cron:?}: {}", e.message)))?;
        let intent = text(row, "intent")
            .ok_or_else(|| RowError::Bad("no intent: nothing to plan".into()))?;
        if row.get("enabled") != Some(&json!(false)) {
            fixes.push("imported disabled: enable it here once the Go scheduler is off".into());
        }
        let id = new_uuid("schedule", go_id);
        sqlx::query(
            "INSERT INTO schedules (schedule_id, tenant_id, created_at, created_by, cron, summary, intent, \
             context_json, constraints_json, enabled, last_run_at) \
             VALUES ($1,$2,$3,'go-import',$4,$5,$6,$7,$8,false,$9)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(time_or_now(row, "created_at", &mut fixes))
        .bind(cron.split_whitespace().collect::<Vec<_>>().join(" "))
        .bind(text_or(row, "summary", "(no summary in the Go record)", &mut fixes))
        .bind(intent)
        .bind(Value::Object(context))
        .bind(Value::Object(object(row, "constraints_json").unwrap_or_default()))
        .bind(time(row, "last_run_at"))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn version(row: &Value) -> Result<i32, RowError> {
    row.get("version")
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .filter(|v| *v >= 1)
        .ok_or_else(|| RowError::Bad(format!("version {:?} is not 1 or more", row.get("version"))))
}

fn tags(row: &Value) -> Value {
    Value::Array(array(row, "tags").unwrap_or_default())
}

fn playbook<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let tenant = ctx.tenant(text(row, "tenant_id"))?;
        let name = text(row, "name").ok_or_else(|| RowError::Bad("no name".into()))?;
        let spec = object(row, "spec_json").ok_or_else(|| RowError::Bad("no spec".into()))?;
        let id = new_uuid("playbook", go_id);
        sqlx::query(
            "INSERT INTO playbooks (playbook_id, tenant_id, name, version, tags, spec_json, created_by, \
             created_at) VALUES ($1,$2,$3,$4,$5,$6,'go-import',$7)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(name)
        .bind(version(row)?)
        .bind(tags(row))
        .bind(Value::Object(spec))
        .bind(time_or_now(row, "created_at", &mut fixes))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn runbook<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let tenant = ctx.tenant(text(row, "tenant_id"))?;
        let service = text(row, "service").ok_or_else(|| RowError::Bad("no service".into()))?;
        let name = text(row, "name").ok_or_else(|| RowError::Bad("no name".into()))?;
        let id = new_uuid("runbook", go_id);
        sqlx::query(
            "INSERT INTO runbooks (runbook_id, tenant_id, service, name, version, tags, body, spec_json, \
             created_by, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'go-import',$9)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(service)
        .bind(name)
        .bind(version(row)?)
        .bind(tags(row))
        .bind(text(row, "body"))
        .bind(row.get("spec_json").filter(|v| !v.is_null()))
        .bind(time_or_now(row, "created_at", &mut fixes))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn memory<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let tenant = ctx.tenant(text(row, "tenant_id"))?;
        let id = new_uuid("memory", go_id);
        let created = time_or_now(row, "created_at", &mut fixes);
        sqlx::query(
            "INSERT INTO operator_memory (memory_id, tenant_id, title, body, tags, metadata, \
             owner_actor_id, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(text_or(row, "title", "(untitled)", &mut fixes))
        .bind(text_or(row, "body", "", &mut fixes))
        .bind(tags(row))
        .bind(Value::Object(object(row, "metadata").unwrap_or_default()))
        .bind(text(row, "owner_actor_id"))
        .bind(created)
        .bind(time(row, "updated_at").unwrap_or(created))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

/// Go's context graph had no tenant column: a node's `labels.tenant_id`, else the default.
fn node_tenant(ctx: &Ctx<'_>, labels: Option<&Value>) -> Result<TenantId, RowError> {
    ctx.tenant(
        labels
            .and_then(|l| l.get("tenant_id"))
            .and_then(Value::as_str),
    )
}

fn context_node<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let tenant = node_tenant(ctx, row.get("labels_json"))?;
        let done = sqlx::query(
            "INSERT INTO context_nodes (tenant_id, node_id, kind, name, labels_json, owner_team, source) \
             VALUES ($1,$2,$3,$4,$5,$6,'go-import') ON CONFLICT (tenant_id, node_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(go_id)
        .bind(text_or(row, "kind", "unknown", &mut fixes))
        .bind(text_or(row, "name", go_id, &mut fixes))
        .bind(Value::Object(object(row, "labels_json").unwrap_or_default()))
        .bind(text(row, "owner_team"))
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            fixes.push("already collected here: the current node was kept".into());
        }
        Ok(written(format!("{tenant}/{go_id}"), fixes))
    })
}

fn context_edge<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let from =
            text(row, "from_node_id").ok_or_else(|| RowError::Bad("no from_node_id".into()))?;
        let to = text(row, "to_node_id").ok_or_else(|| RowError::Bad("no to_node_id".into()))?;
        let labels: Option<(Option<Value>,)> =
            sqlx::query_as("SELECT labels_json FROM context_nodes WHERE node_id = $1")
                .bind(from)
                .fetch_optional(ctx.go)
                .await
                .map_err(|e| RowError::Bad(format!("reading its node: {e}")))?;
        let tenant = node_tenant(ctx, labels.and_then(|(l,)| l).as_ref())?;
        let done = sqlx::query(
            "INSERT INTO context_edges (tenant_id, edge_id, from_node_id, to_node_id, relation, source) \
             VALUES ($1,$2,$3,$4,$5,'go-import') ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(go_id)
        .bind(from)
        .bind(to)
        .bind(text_or(row, "relation", "related", &mut fixes))
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            fixes.push("already collected here: the current edge was kept".into());
        }
        Ok(written(format!("{tenant}/{go_id}"), fixes))
    })
}

fn context_snapshot<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let tenant = node_tenant(ctx, row.get("labels_json"))?;
        let id = new_uuid("context_snapshot", go_id);
        sqlx::query(
            "INSERT INTO context_snapshots (snapshot_id, tenant_id, source, collected_at, nodes_json, \
             edges_json, labels_json) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(text_or(row, "source", "go-import", &mut fixes))
        .bind(time_or_now(row, "collected_at", &mut fixes))
        .bind(Value::Array(array(row, "nodes_json").unwrap_or_default()))
        .bind(Value::Array(array(row, "edges_json").unwrap_or_default()))
        .bind(Value::Object(object(row, "labels_json").unwrap_or_default()))
        .execute(&mut **tx)
        .await?;
        Ok(written(id, fixes))
    })
}

fn audit_event<'t>(
    tx: &'t mut Transaction<'static, Postgres>,
    ctx: &'t mut Ctx<'_>,
    _go_id: &'t str,
    row: &'t Value,
) -> BoxFuture<'t, Result<Written, RowError>> {
    Box::pin(async move {
        let mut fixes = Vec::new();
        let event_id = text(row, "event_id").ok_or_else(|| RowError::Bad("no event_id".into()))?;
        let context = row.get("context_json").cloned().unwrap_or(Value::Null);
        let named = ["/tenant_id", "/context/tenant_id", "/labels/tenant_id"]
            .iter()
            .find_map(|p| context.pointer(p).and_then(Value::as_str));
        let tenant = ctx.tenant(named)?;
        let decision =
            AuditDecision::parse(&text(row, "decision").unwrap_or("").to_ascii_lowercase())
                .unwrap_or_else(|| {
                    fixes.push(format!(
                        "decision {:?} is unknown: info",
                        row.get("decision")
                    ));
                    AuditDecision::Info
                });
        let actor_json = row.get("actor_json").cloned().unwrap_or(Value::Null);
        let actor_id = ["actor_id", "id", "sub", "email", "name"]
            .iter()
            .find_map(|k| actor_json.get(*k).and_then(Value::as_str))
            .unwrap_or("unknown");
        let mut actor = AuditActor::person(
            actor_id,
            actor_json
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        actor.roles = actor_json
            .get("roles")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let action = text_or(row, "action", "unknown", &mut fixes);
        if !ctx.audited.contains_key(tenant.as_str()) {
            append_in_tx(
                tx,
                AuditEntry::new(tenant.clone(), importer(), "import.go.started", AuditDecision::Info)
                    .resource("import", "go")
                    .context(json!({"note": "the events up to import.go.finished are the Go version's, original fields under context.go"})),
            )
            .await?;
        }
        let event = append_in_tx(
            tx,
            AuditEntry::new(tenant.clone(), actor, &format!("go.{action}"), decision)
                .resource("go_audit_event", event_id)
                .context(json!({"go": {
                    "event_id": event_id,
                    "occurred_at": row.get("occurred_at"),
                    "actor": actor_json,
                    "action": action,
                    "decision": row.get("decision"),
                    "context": context,
                    "evidence_refs": row.get("evidence_refs_json"),
                    "hash": row.get("hash"),
                }})),
        )
        .await?;
        *ctx.audited.entry(tenant.to_string()).or_default() += 1;
        Ok(written(event.event_id, fixes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_or_derived_stably() {
        let kept = "0193a1b2-0000-7000-8000-000000000001";
        assert_eq!(new_uuid("plan", kept).to_string(), kept);
        let a = new_uuid("plan", "plan-17");
        assert_eq!(a, new_uuid("plan", "plan-17"));
        assert_ne!(a, new_uuid("execution", "plan-17"));
        assert_ne!(a, new_uuid("plan", "plan-18"));
    }
}
