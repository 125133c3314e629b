//! Publishes a signed checkpoint of every tenant's audit chain on an interval (see
//! `carapulse_core::audit::CheckpointSink` for why). Safe on several replicas: a head already
//! checkpointed is skipped, and two replicas publishing the same head write the same facts.

use crate::state::AppState;

/// One pass over all tenants; returns how many checkpoints were published.
pub async fn publish_all(state: &AppState) -> Result<usize, String> {
    let Some(sink) = &state.checkpoints else {
        return Ok(0);
    };
    let mut published = 0;
    for tenant in state
        .store
        .audit_tenants()
        .await
        .map_err(|e| e.to_string())?
    {
        let Ok(tenant) = carapulse_core::model::TenantId::parse(&tenant) else {
            continue;
        };
        match sink.publish(&state.store, &tenant).await {
            Ok(Some(_)) => published += 1,
            Ok(None) => {}
            Err(e) => return Err(format!("checkpoint of {tenant}: {e}")),
        }
    }
    Ok(published)
}
