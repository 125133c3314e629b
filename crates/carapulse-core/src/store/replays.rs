//! Incident replays (migration 0021): what a replay reads — alert events and the planning
//! records of the plans born from them — and its own results, kept in `replay_runs` and
//! `replay_incidents`, never in the live tables.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::model::TenantId;

use super::{Store, StoreError};

/// A stored alert event, as a replay reads it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AlertEventRow {
    pub alert_id: Uuid,
    pub source: String,
    pub fingerprint: String,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub payload_json: Value,
}

/// The first planning record of a plan born from an alert event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertPlanRecord {
    pub alert_id: Uuid,
    pub plan_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub record_json: Value,
}

/// A replay run (see migration 0021).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReplayRun {
    pub replay_id: Uuid,
    pub requested_by: String,
    /// `running`, `done`, `failed`, or `abandoned` (running, but its row has not moved for
    /// [`REPLAY_STALE_SECS`]: the gateway running it stopped).
    pub status: String,
    #[serde(rename = "request")]
    pub request_json: Value,
    pub total: i32,
    pub replayed: i32,
    pub changed: i32,
    #[serde(rename = "summary")]
    pub summary_json: Option<Value>,
    pub report_hash: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One replayed incident as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReplayIncident {
    pub seq: i32,
    pub alert_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
    pub changed: bool,
    #[serde(rename = "result")]
    pub result_json: Value,
}

/// A running replay whose row has not moved for this long is reported as abandoned.
pub const REPLAY_STALE_SECS: i64 = 120;

const RUN_COLUMNS: &str = "replay_id, requested_by, \
     CASE WHEN status = 'running' AND updated_at < now() - make_interval(secs => $2) \
          THEN 'abandoned' ELSE status END AS status, \
     request_json, total, replayed, changed, summary_json, report_hash, error, created_at, updated_at";

impl Store {
    /// One alert event of `tenant`.
    pub async fn alert_event(
        &self,
        tenant: &TenantId,
        alert_id: Uuid,
    ) -> Result<Option<AlertEventRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT alert_id, source, fingerprint, status, started_at, updated_at, payload_json \
             FROM alert_events WHERE tenant_id = $1 AND alert_id = $2",
        )
        .bind(tenant.as_str())
        .bind(alert_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// `tenant`'s alert events last changed in `[since, until)`, oldest first, at most `limit`.
    pub async fn alert_events_between(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AlertEventRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT alert_id, source, fingerprint, status, started_at, updated_at, payload_json \
             FROM alert_events WHERE tenant_id = $1 AND updated_at >= $2 AND updated_at < $3 \
             ORDER BY updated_at, alert_id LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// The first planning record of each plan born from one of `alert_ids` (oldest first).
    pub async fn alert_planning_records(
        &self,
        tenant: &TenantId,
        alert_ids: &[Uuid],
    ) -> Result<Vec<AlertPlanRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT alert_id, plan_id, recorded_at, record_json FROM planning_records \
             WHERE tenant_id = $1 AND alert_id = ANY($2) AND revision = 1 \
             ORDER BY recorded_at, plan_id",
        )
        .bind(tenant.as_str())
        .bind(alert_ids)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records a started replay of `total` incidents.
    pub async fn start_replay(
        &self,
        tenant: &TenantId,
        replay_id: Uuid,
        requested_by: &str,
        request: &Value,
        total: i32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO replay_runs (replay_id, tenant_id, requested_by, status, request_json, total) \
             VALUES ($1, $2, $3, 'running', $4, $5)",
        )
        .bind(replay_id)
        .bind(tenant.as_str())
        .bind(requested_by)
        .bind(request)
        .bind(total)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores replayed incidents and moves the run's counters (announced on the event stream
    /// as `replay.progress` by the table's trigger), in one transaction.
    pub async fn record_replay_progress(
        &self,
        replay_id: Uuid,
        incidents: &[ReplayIncident],
        replayed: i32,
        changed: i32,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        if !incidents.is_empty() {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO replay_incidents (replay_id, seq, alert_id, plan_id, changed, result_json) ",
            );
            qb.push_values(incidents, |mut b, i| {
                b.push_bind(replay_id)
                    .push_bind(i.seq)
                    .push_bind(i.alert_id)
                    .push_bind(i.plan_id)
                    .push_bind(i.changed)
                    .push_bind(&i.result_json);
            });
            qb.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE replay_runs SET replayed = $2, changed = $3, updated_at = now() \
             WHERE replay_id = $1 AND status = 'running'",
        )
        .bind(replay_id)
        .bind(replayed)
        .bind(changed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a replay: `Ok((summary, report hash))` is done, `Err(message)` failed.
    pub async fn finish_replay(
        &self,
        replay_id: Uuid,
        outcome: Result<(&Value, &str), &str>,
    ) -> Result<(), StoreError> {
        let (status, summary, hash, error) = match outcome {
            Ok((summary, hash)) => ("done", Some(summary), Some(hash), None),
            Err(message) => ("failed", None, None, Some(message)),
        };
        sqlx::query(
            "UPDATE replay_runs SET status = $2, summary_json = $3, report_hash = $4, error = $5, \
             updated_at = now() WHERE replay_id = $1 AND status = 'running'",
        )
        .bind(replay_id)
        .bind(status)
        .bind(summary)
        .bind(hash)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One of `tenant`'s replays; `None` when it is not there (or is another tenant's).
    pub async fn replay_run(
        &self,
        tenant: &TenantId,
        replay_id: Uuid,
    ) -> Result<Option<ReplayRun>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM replay_runs WHERE tenant_id = $1 AND replay_id = $3"
        ))
        .bind(tenant.as_str())
        .bind(REPLAY_STALE_SECS as f64)
        .bind(replay_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// `tenant`'s replays, newest first, after the keyset `(created_at, replay_id)` when given.
    pub async fn replay_runs(
        &self,
        tenant: &TenantId,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<ReplayRun>, StoreError> {
        let (at, id) = after.unzip();
        Ok(sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM replay_runs WHERE tenant_id = $1 \
             AND ($3::timestamptz IS NULL OR (created_at, replay_id) < ($3, $4)) \
             ORDER BY created_at DESC, replay_id DESC LIMIT $5"
        ))
        .bind(tenant.as_str())
        .bind(REPLAY_STALE_SECS as f64)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// A replay's incidents in order after `after_seq`, at most `limit`; only the changed ones
    /// when `changed_only`. The caller has checked the replay is the tenant's.
    pub async fn replay_incidents(
        &self,
        replay_id: Uuid,
        after_seq: i32,
        limit: i64,
        changed_only: bool,
    ) -> Result<Vec<ReplayIncident>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT seq, alert_id, plan_id, changed, result_json FROM replay_incidents \
             WHERE replay_id = $1 AND seq > $2 AND (changed OR NOT $3) ORDER BY seq LIMIT $4",
        )
        .bind(replay_id)
        .bind(after_seq)
        .bind(changed_only)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every incident of a replay, in order (the report hash is computed over them).
    pub async fn replay_results(&self, replay_id: Uuid) -> Result<Vec<Value>, StoreError> {
        let rows: Vec<(Value,)> = sqlx::query_as(
            "SELECT result_json FROM replay_incidents WHERE replay_id = $1 ORDER BY seq",
        )
        .bind(replay_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// Whether plans were born from alert event `alert_id` (read when its records are gone, to
    /// tell "purged" from "never planned").
    pub async fn alert_has_plans(
        &self,
        tenant: &TenantId,
        alert_id: Uuid,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM plans WHERE tenant_id = $1 AND trigger = 'alert' \
             AND meta_json->'alert'->>'alert_id' = $2)",
        )
        .bind(tenant.as_str())
        .bind(alert_id.to_string())
        .fetch_one(self.pool())
        .await?)
    }
}
