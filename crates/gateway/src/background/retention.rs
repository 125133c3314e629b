//! The retention job: prunes what the growing tables no longer keep (`event_log` past
//! `gateway.event_retention_hours`, tool output lines past `gateway.tool_log_retention_days`,
//! resolved alerts past `gateway.resolved_alert_retention_days`, webhook delivery ids past a day
//! or the event retention, whichever is longer). The batching that keeps it from blocking writers
//! lives in the store (`store/retention.rs`).

use carapulse_core::store::{Pruned, RetentionPolicy};

use crate::state::AppState;

/// The retention the gateway's configuration asks for.
pub fn policy(state: &AppState) -> RetentionPolicy {
    let gateway = &state.config.gateway;
    RetentionPolicy {
        event_hours: gateway.event_retention_hours,
        tool_log_hours: gateway.tool_log_retention_days.saturating_mul(24),
        resolved_alert_hours: gateway.resolved_alert_retention_days.saturating_mul(24),
        // Replay protection only needs deliveries as old as a sender's retries.
        webhook_delivery_hours: gateway.event_retention_hours.max(24),
        policy_decision_hours: gateway.policy_decision_retention_days.saturating_mul(24),
    }
}

/// One prune; returns the rows deleted per table.
pub async fn prune(state: &AppState) -> Result<Pruned, String> {
    let pruned = state
        .store
        .prune(&policy(state))
        .await
        .map_err(|e| e.to_string())?;
    if pruned != Pruned::default() {
        tracing::info!(?pruned, "retention pruned old rows");
    }
    Ok(pruned)
}
