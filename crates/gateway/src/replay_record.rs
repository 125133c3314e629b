//! What planning saw, kept so an incident can be replayed against it: one planning record per
//! plan revision (`planning_records`, written with the plan or revision) holding the trigger
//! and alert, the planner, the request sent to a model and its answer (both redacted; capped at
//! `MAX_RECORD_BYTES`), the context snapshot planning used (taken now when the newest is
//! stale), and the policy input and outcome that decided the revision (its `blast_radius`
//! included).

use chrono::Utc;
use serde_json::{json, Value};

use carapulse_core::model::{TenantId, Trigger};
use carapulse_core::planner::rules::{AlertFacts, PlaybookRule};
use carapulse_core::planner::PlanDraft;
use carapulse_core::policy::{PolicyInput, PolicyOutcome};

use crate::state::AppState;

/// The record of one revision's planning. Versioned so a replay can tell what it holds.
/// `alert_planning` is what the event loop planned an alert with ([`alert_planning`]);
/// `policy_digest` names the policy that decided.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    trigger: &Trigger,
    alert: Option<&Value>,
    alert_planning: Option<&Value>,
    policy_digest: &str,
    draft: Option<&PlanDraft>,
    unplanned: Option<&str>,
    context_snapshot_id: Option<uuid::Uuid>,
    policy_input: &PolicyInput,
    outcome: &PolicyOutcome,
) -> Value {
    let mut input = serde_json::to_value(policy_input).unwrap_or(Value::Null);
    // The decision log keeps inputs without e-mail addresses; so does the record.
    if let Some(actor) = input.get_mut("actor").and_then(Value::as_object_mut) {
        actor.remove("email");
    }
    carapulse_core::store::capped_planning_record(json!({
        "version": 1,
        "trigger": trigger,
        "alert": alert,
        "alert_planning": alert_planning,
        "planner": draft.map(|d| json!({
            "label": d.label(),
            "provider": d.provider,
            "model": d.model,
            "workflow": d.workflow,
            "notes": d.notes,
            "fallback_reason": d.fallback_reason,
        })),
        "unplanned": unplanned,
        "llm_request": draft.and_then(|d| d.request.clone()),
        "llm_response": draft.and_then(|d| d.plan_text.clone()),
        "context_snapshot_id": context_snapshot_id,
        "policy": {
            "digest": policy_digest,
            "input": input,
            "outcome": {
                "decision": outcome.decision,
                "reasons": outcome.reasons,
                "constraints": outcome.constraints,
                "error": outcome.error,
            },
        },
    }))
}

/// What the event loop planned an alert with, for its plan's record: the alert itself (the
/// stored event changes as the alert does), the gates it passed as configured then, the
/// digest of the tenant's playbooks and the one that matched.
pub(crate) fn alert_planning(
    state: &AppState,
    alert: &AlertFacts,
    playbooks: &[PlaybookRule],
) -> Value {
    let matched = carapulse_core::planner::rules::matching_playbook(alert, playbooks);
    json!({
        "facts": alert,
        "gates": gate_settings(&state.config.gateway),
        "playbooks_digest": playbooks_digest(playbooks),
        "playbook": matched.map(|pb| json!({"name": pb.name, "digest": playbooks_digest(std::slice::from_ref(pb))})),
    })
}

/// The event-loop gate settings a replay compares with.
pub(crate) fn gate_settings(gw: &carapulse_core::config::GatewayConfig) -> Value {
    json!({
        "severities": gw.event_gate_severities,
        "window_secs": gw.event_gate_window_secs,
        "backoff_secs": gw.event_gate_backoff_secs,
        "min_count": gw.event_gate_min_count,
        "service_per_hour": gw.event_gate_service_per_hour,
    })
}

/// `sha256:<hex>` of playbooks in their order (the first match wins, so order matters).
pub(crate) fn playbooks_digest(playbooks: &[PlaybookRule]) -> String {
    use sha2::{Digest, Sha256};
    let canonical = carapulse_core::canonical::canonical_json(
        &serde_json::to_value(playbooks).unwrap_or(Value::Null),
    );
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// A context snapshot no older than this serves a new plan's record; an older one is replaced.
pub(crate) const PLANNING_SNAPSHOT_MAX_AGE_SECS: i64 = 600;

/// The context snapshot a plan is made against (kept as `meta.context_snapshot_id`, what an
/// incident replay reads the graph from): the tenant's newest when it is fresh, else one taken
/// now. `None` when the tenant has no graph or it cannot be read (logged): planning never waits
/// on it.
pub(crate) async fn planning_snapshot(state: &AppState, tenant: &TenantId) -> Option<uuid::Uuid> {
    let now = Utc::now();
    match state.store.latest_context_snapshot(tenant).await {
        Ok(Some((id, at))) if (now - at).num_seconds() <= PLANNING_SNAPSHOT_MAX_AGE_SECS => {
            return Some(id)
        }
        Ok(_) => {}
        Err(err) => {
            tracing::warn!(error = %err, "context snapshots unreadable; plan made without one");
            return None;
        }
    }
    let graph = match state.store.context_all(tenant).await {
        Ok(graph) if !graph.nodes.is_empty() => graph,
        Ok(_) => return None,
        Err(err) => {
            tracing::warn!(error = %err, "context graph unreadable; plan made without a snapshot");
            return None;
        }
    };
    match state
        .store
        .insert_context_snapshot(tenant, "planning", &graph)
        .await
    {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::warn!(error = %err, "planning snapshot not stored");
            None
        }
    }
}
