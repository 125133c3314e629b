//! Schedules: CRUD, and the claim that makes a run happen exactly once across gateway replicas —
//! due rows are locked with `FOR UPDATE SKIP LOCKED` for the length of the run, and each run is
//! keyed by `(schedule_id, scheduled_for)` on the plan, so a run that already made its plan is
//! never repeated, even after a crash between the plan and the schedule update.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::model::TenantId;

use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
use super::{Page, Paged, Store, StoreError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ScheduleRecord {
    pub schedule_id: Uuid,
    pub tenant_id: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub cron: String,
    pub timezone: String,
    pub summary: String,
    pub intent: String,
    pub workflow_name: Option<String>,
    pub workflow_input: Value,
    #[sqlx(rename = "context_json")]
    #[serde(rename = "context")]
    pub context: Value,
    #[sqlx(rename = "constraints_json")]
    #[serde(rename = "constraints")]
    pub constraints: Value,
    pub enabled: bool,
    pub missed_run_policy: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// A schedule to store.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub cron: String,
    pub timezone: String,
    pub summary: String,
    pub intent: String,
    pub workflow_name: Option<String>,
    pub workflow_input: Value,
    pub context: Value,
    pub constraints: Value,
    pub enabled: bool,
    pub missed_run_policy: String,
    pub next_run_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "schedule_id, tenant_id, created_at, created_by, cron, timezone, summary, intent, workflow_name, \
                       workflow_input, context_json, constraints_json, enabled, missed_run_policy, last_run_at, next_run_at";

impl Store {
    /// Stores a schedule; `audit` (given the schedule as its resource) commits with it.
    pub async fn create_schedule(
        &self,
        tenant: &TenantId,
        by: &str,
        s: &NewSchedule,
        audit: AuditEntry,
    ) -> Result<ScheduleRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let record: ScheduleRecord = sqlx::query_as(&format!(
            "INSERT INTO schedules (schedule_id, tenant_id, created_by, cron, timezone, summary, intent, workflow_name, \
             workflow_input, context_json, constraints_json, enabled, missed_run_policy, next_run_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(tenant.as_str())
        .bind(by)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(&s.summary)
        .bind(&s.intent)
        .bind(&s.workflow_name)
        .bind(&s.workflow_input)
        .bind(&s.context)
        .bind(&s.constraints)
        .bind(s.enabled)
        .bind(&s.missed_run_policy)
        .bind(s.next_run_at)
        .fetch_one(&mut *tx)
        .await?;
        append_in_tx(&mut tx, audit.resource("schedule", record.schedule_id)).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Replaces a schedule's definition; `audit` commits with the change.
    pub async fn update_schedule(
        &self,
        tenant: &TenantId,
        id: Uuid,
        s: &NewSchedule,
        audit: AuditEntry,
    ) -> Result<ScheduleRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let record: ScheduleRecord = sqlx::query_as(&format!(
            "UPDATE schedules SET cron = $3, timezone = $4, summary = $5, intent = $6, workflow_name = $7, workflow_input = $8, \
             context_json = $9, constraints_json = $10, enabled = $11, missed_run_policy = $12, next_run_at = $13 \
             WHERE tenant_id = $1 AND schedule_id = $2 RETURNING {COLUMNS}"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(&s.summary)
        .bind(&s.intent)
        .bind(&s.workflow_name)
        .bind(&s.workflow_input)
        .bind(&s.context)
        .bind(&s.constraints)
        .bind(s.enabled)
        .bind(&s.missed_run_policy)
        .bind(s.next_run_at)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        append_in_tx(&mut tx, audit.resource("schedule", id)).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn get_schedule(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<ScheduleRecord, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM schedules WHERE tenant_id = $1 AND schedule_id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn list_schedules(
        &self,
        tenant: &TenantId,
        enabled: Option<bool>,
        page: Page,
    ) -> Result<Paged<ScheduleRecord>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "schedules",
            columns: &[
                ("created_at", KeyKind::Time),
                ("schedule_id", KeyKind::Uuid),
            ],
            descending: true,
        };
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(qb, COLUMNS, "FROM schedules WHERE tenant_id = ", tenant);
            if let Some(enabled) = enabled {
                qb.push(" AND enabled = ").push_bind(enabled);
            }
        };
        let map = |row: &sqlx::postgres::PgRow| Ok(sqlx::FromRow::from_row(row)?);
        fetch_page(
            self.pool(),
            page,
            &ORDER,
            query,
            map,
            |s: &ScheduleRecord| vec![KeyValue::Time(s.created_at), KeyValue::Uuid(s.schedule_id)],
        )
        .await
    }

    /// Deletes a schedule; `audit` commits with the change.
    pub async fn delete_schedule(
        &self,
        tenant: &TenantId,
        id: Uuid,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM schedules WHERE tenant_id = $1 AND schedule_id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        append_in_tx(&mut tx, audit.resource("schedule", id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Locks up to `limit` due schedules (any tenant) for this transaction; other replicas skip
    /// them. The caller runs them, records each with [`Store::schedule_ran`] in `tx`, and commits.
    pub async fn claim_due_schedules(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM schedules WHERE enabled AND next_run_at <= $1 ORDER BY next_run_at \
             LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Advances a claimed schedule (in the claim's transaction).
    pub async fn schedule_ran(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        id: Uuid,
        ran_at: Option<DateTime<Utc>>,
        next: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE schedules SET last_run_at = COALESCE($2, last_run_at), next_run_at = $3 WHERE schedule_id = $1")
            .bind(id)
            .bind(ran_at)
            .bind(next)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The plan already made for this run, if any (the run's idempotency key).
    pub async fn scheduled_plan(
        &self,
        tenant: &TenantId,
        schedule: Uuid,
        scheduled_for: DateTime<Utc>,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT plan_id FROM plans WHERE tenant_id = $1 AND trigger = 'scheduled' \
             AND meta_json->'schedule'->>'schedule_id' = $2 AND meta_json->'schedule'->>'scheduled_for' = $3 LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(schedule.to_string())
        .bind(scheduled_for.to_rfc3339())
        .fetch_optional(self.pool())
        .await?)
    }
}
