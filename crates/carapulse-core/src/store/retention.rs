//! Retention: what the tables that grow with traffic keep. Each table is pruned in batches of
//! short autocommit DELETEs by primary key, so a prune never holds a lock writers wait on for
//! more than one batch of old rows (new rows are never touched), and a year of backlog drains a
//! batch at a time instead of in one long transaction. A batch skips rows another transaction
//! holds (`SKIP LOCKED`): a webhook updating an old alert, or the prune of another gateway
//! replica, is never waited on and never deadlocks with this one.

use std::time::Duration;

use super::{Store, StoreError};

/// Rows deleted per statement.
const BATCH: i64 = 5_000;
/// Pause between batches, so a large backlog yields to live traffic.
const PAUSE: Duration = Duration::from_millis(20);

/// How long each growing table keeps its rows; 0 keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Change events (`Last-Event-ID` replay); only events already delivered (sequenced) go.
    pub event_hours: u64,
    /// Tool output lines of finished calls.
    pub tool_log_hours: u64,
    /// Alerts whose last update (resolved) is older; firing alerts are kept.
    pub resolved_alert_hours: u64,
    /// Webhook delivery ids (replay protection).
    pub webhook_delivery_hours: u64,
    /// Stored policy decisions (policy impact's history).
    pub policy_decision_hours: u64,
}

/// Rows deleted by one prune, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub events: u64,
    pub tool_log_lines: u64,
    pub resolved_alerts: u64,
    pub webhook_deliveries: u64,
    pub policy_decisions: u64,
    /// Ended (or abandoned) policy impact jobs, kept as long as the decisions they re-ran.
    pub impact_jobs: u64,
    /// Planning records (what incident replay reads), kept as long as policy decisions.
    pub planning_records: u64,
    /// Incident replays and their results, kept as long as the records they replayed.
    pub replay_runs: u64,
}

impl Store {
    /// Deletes what `policy` no longer keeps.
    pub async fn prune(&self, policy: &RetentionPolicy) -> Result<Pruned, StoreError> {
        Ok(Pruned {
            events: self
                .prune_table(
                    "event_log",
                    "event_id",
                    "occurred_at < now() - make_interval(hours => $1::int) AND seq IS NOT NULL",
                    policy.event_hours,
                )
                .await?,
            tool_log_lines: self
                .prune_table(
                    "tool_call_logs",
                    "tool_call_id, seq",
                    "ts < now() - make_interval(hours => $1::int)",
                    policy.tool_log_hours,
                )
                .await?,
            resolved_alerts: self
                .prune_table(
                    "alert_events",
                    "alert_id",
                    "status = 'resolved' AND updated_at < now() - make_interval(hours => $1::int)",
                    policy.resolved_alert_hours,
                )
                .await?,
            webhook_deliveries: self
                .prune_table(
                    "webhook_deliveries",
                    "source, delivery_key",
                    "received_at < now() - make_interval(hours => $1::int)",
                    policy.webhook_delivery_hours,
                )
                .await?,
            policy_decisions: self
                .prune_table(
                    "policy_decisions",
                    "decision_id",
                    "decided_at < now() - make_interval(hours => $1::int)",
                    policy.policy_decision_hours,
                )
                .await?,
            planning_records: self
                .prune_table(
                    "planning_records",
                    "record_id",
                    "recorded_at < now() - make_interval(hours => $1::int)",
                    policy.policy_decision_hours,
                )
                .await?,
            impact_jobs: self
                .prune_table(
                    "policy_impact_jobs",
                    "job_id",
                    "updated_at < now() - make_interval(hours => $1::int)",
                    policy.policy_decision_hours,
                )
                .await?,
            replay_runs: self
                .prune_table(
                    "replay_runs",
                    "replay_id",
                    "updated_at < now() - make_interval(hours => $1::int)",
                    policy.policy_decision_hours,
                )
                .await?,
        })
    }

    /// Deletes rows of `table` matching `condition` (`$1` = `hours`), `BATCH` at a time by `key`.
    async fn prune_table(
        &self,
        table: &str,
        key: &str,
        condition: &str,
        hours: u64,
    ) -> Result<u64, StoreError> {
        if hours == 0 {
            return Ok(0);
        }
        let hours = i32::try_from(hours).unwrap_or(i32::MAX);
        let sql = format!(
            "DELETE FROM {table} WHERE ({key}) IN \
             (SELECT {key} FROM {table} WHERE {condition} LIMIT $2 FOR UPDATE SKIP LOCKED)"
        );
        let mut total = 0;
        loop {
            let done = sqlx::query(&sql)
                .bind(hours)
                .bind(BATCH)
                .execute(self.pool())
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < BATCH as u64 {
                return Ok(total);
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
}
