//! Prunes `event_log` past `gateway.event_retention_hours`: events stay replayable for that long
//! and the table does not grow without bound. Deletes in batches so one prune never holds a long
//! lock.

use crate::state::AppState;

const BATCH: i64 = 10_000;

/// One prune; returns the rows deleted.
pub async fn prune(state: &AppState) -> Result<u64, String> {
    let hours = i64::try_from(state.config.gateway.event_retention_hours).unwrap_or(24);
    let mut total = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM event_log WHERE event_id IN (SELECT event_id FROM event_log \
             WHERE occurred_at < now() - make_interval(hours => $1::int) AND seq IS NOT NULL \
             ORDER BY event_id LIMIT $2)",
        )
        .bind(hours)
        .bind(BATCH)
        .execute(state.store.pool())
        .await
        .map_err(|e| e.to_string())?;
        total += done.rows_affected();
        if done.rows_affected() < BATCH as u64 {
            // Replay protection only needs deliveries as old as a sender's retries.
            let deliveries = state
                .store
                .prune_webhook_deliveries(hours.max(24))
                .await
                .map_err(|e| e.to_string())?;
            return Ok(total + deliveries);
        }
    }
}
