//! The approval-expiry sweeper: pending plans past `approvals.timeout_hours` become `expired`,
//! each with an approval row and an `approval.expired` audit event (one transaction per plan,
//! so a replica racing a human decision or another replica changes nothing twice).

use chrono::Utc;
use serde_json::json;

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry};

use crate::state::AppState;

/// Plans handled per tick.
const BATCH: i64 = 200;

/// One sweep; returns how many plans it expired.
pub async fn sweep(state: &AppState) -> Result<usize, String> {
    let now = Utc::now();
    let overdue = state
        .store
        .overdue_approvals(now, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let mut expired = 0;
    for (tenant, plan_id) in overdue {
        let entry = AuditEntry::new(
            tenant.clone(),
            AuditActor::system(),
            "approval.expired",
            AuditDecision::Deny,
        )
        .resource("plan", plan_id)
        .reason("no decision within approvals.timeout_hours")
        .context(json!({"timeout_hours": state.config.approvals.timeout_hours}));
        match state
            .store
            .expire_approval(&tenant, plan_id, now, entry)
            .await
        {
            Ok(true) => {
                expired += 1;
                state.metrics.record_audit(true);
                state.metrics.record_approval("expired", "sweeper");
                tracing::info!(%plan_id, tenant = %tenant, "approval expired");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(%plan_id, error = %e, "could not expire approval"),
        }
    }
    Ok(expired)
}
