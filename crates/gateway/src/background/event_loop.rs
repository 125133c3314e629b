//! The event loop: firing alerts from the webhooks become `incident_remediation` plans (or a
//! matching playbook's workflow) through the planner, behind gates — the severity allow-list,
//! one plan per alert fingerprint per `event_gate_backoff_secs`, at most
//! `event_gate_service_per_hour` plans per service. Plans born here carry trigger `alert` and are
//! never auto-approved: a person decides.

use chrono::{Duration, Utc};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{Actor, ActorId, ContextRef, TenantId, Trigger};
use carapulse_core::planner::rules::AlertFacts;
use carapulse_core::store::GateRule;

use crate::middleware::RequestContext;
use crate::routes::plans::{create_plan, PlanCreateRequest};
use crate::state::AppState;

/// Firing alerts waiting to be planned (beyond this the webhook still stores them, and says
/// how many were not queued).
pub const QUEUE: usize = 10_000;

/// One firing alert to plan.
#[derive(Debug, Clone)]
pub struct AlertWork {
    pub tenant: TenantId,
    pub source: String,
    pub alert_id: Uuid,
    pub alert: AlertFacts,
}

/// A gate that stopped an alert before planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateStop {
    /// The event loop is off, or does not plan this source's alerts.
    Off,
    /// The alert's severity is not in `gateway.event_gate_severities`.
    Severity,
    /// Planned recently (the per-fingerprint gate).
    Duplicate,
    /// Too many plans for its service in the last hour.
    ServiceRate,
}

impl GateStop {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Off => "event_loop_off",
            Self::Severity => "severity",
            Self::Duplicate => "duplicate",
            Self::ServiceRate => "service_rate",
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Off => "the event loop is off or does not plan this source",
            Self::Severity => "severity not in gateway.event_gate_severities",
            Self::Duplicate => "duplicate suppressed: this alert was planned recently",
            Self::ServiceRate => "rate limit: too many plans for this service in the last hour",
        }
    }
}

/// The gates that need no history: the event loop on for `source`, the severity allow-list.
pub(crate) fn settings_gate(
    gw: &carapulse_core::config::GatewayConfig,
    source: &str,
    alert: &AlertFacts,
) -> Option<GateStop> {
    if !gw.enable_event_loop || !gw.event_loop_sources.iter().any(|s| s == source) {
        return Some(GateStop::Off);
    }
    if !gw.event_gate_severities.is_empty() {
        let severity = alert.labels.get("severity").map(|s| s.to_lowercase());
        if !severity.is_some_and(|s| {
            gw.event_gate_severities
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&s))
        }) {
            return Some(GateStop::Severity);
        }
    }
    None
}

/// The per-fingerprint gate's rule as configured.
pub(crate) fn gate_rule(gw: &carapulse_core::config::GatewayConfig) -> GateRule {
    GateRule {
        window: Duration::seconds(i64::try_from(gw.event_gate_window_secs).unwrap_or(0)),
        backoff: Duration::seconds(i64::try_from(gw.event_gate_backoff_secs).unwrap_or(0)),
        min_count: i32::try_from(gw.event_gate_min_count).unwrap_or(0),
    }
}

/// The context an alert's plan acts in: the source's configured environment, cluster and
/// namespace, the alert's own `cluster` and `namespace` labels first.
pub(crate) fn alert_context(
    state: &AppState,
    tenant: &TenantId,
    source: &str,
    alert: &AlertFacts,
) -> ContextRef {
    let source_cfg = state
        .config
        .webhooks
        .get(source)
        .cloned()
        .unwrap_or_default();
    ContextRef {
        tenant_id: tenant.to_string(),
        environment: source_cfg.environment.clone(),
        cluster_id: alert
            .labels
            .get("cluster")
            .cloned()
            .unwrap_or(source_cfg.cluster_id.clone()),
        namespace: alert
            .labels
            .get("namespace")
            .cloned()
            .unwrap_or(source_cfg.namespace.clone()),
        ..Default::default()
    }
}

/// The intent of an alert's plan.
pub(crate) fn alert_intent(alert: &AlertFacts) -> String {
    format!(
        "remediate alert {} on {}",
        alert.alertname().unwrap_or("unnamed"),
        service_of(alert)
    )
}

/// The service an alert is about (for the per-service gate and the plan's meta).
pub(crate) fn service_of(alert: &AlertFacts) -> String {
    [
        "service",
        "app",
        "deployment",
        "statefulset",
        "daemonset",
        "job",
    ]
    .iter()
    .find_map(|k| alert.labels.get(*k).filter(|v| !v.is_empty()))
    .cloned()
    .unwrap_or_else(|| "unknown".into())
}

/// Consumes the queue until `stop`.
pub async fn run(state: AppState, mut rx: mpsc::Receiver<AlertWork>, stop: CancellationToken) {
    loop {
        let work = tokio::select! {
            _ = stop.cancelled() => break,
            w = rx.recv() => match w { Some(w) => w, None => break },
        };
        if let Err(e) = handle(&state, &work).await {
            tracing::warn!(error = %e, alert = %work.alert.fingerprint, "event loop could not plan the alert");
        }
    }
    tracing::info!("event loop stopped");
}

const EVENT_LOOP: &str = "carapulse:event-loop";

fn system_context(tenant: &TenantId) -> Result<RequestContext, String> {
    Ok(RequestContext {
        actor: Actor {
            id: ActorId::parse(EVENT_LOOP).map_err(|e| e.to_string())?,
            email: None,
            roles: vec!["operator".into()],
            tenant_id: tenant.clone(),
        },
        request_id: None,
        break_glass: false,
        break_glass_reason: None,
        via: None,
    })
}

/// A plan made from a playbook is requested by the playbook's author (so separation of duties
/// keeps them from approving it), with the event loop recorded as `via`; other alert plans are
/// the event loop's own.
fn requester_context(
    base: &RequestContext,
    draft: &carapulse_core::planner::PlanDraft,
    alert: &carapulse_core::planner::rules::AlertFacts,
    playbooks: &[carapulse_core::planner::rules::PlaybookRule],
) -> RequestContext {
    if draft.planner != carapulse_core::planner::PlannerKind::Rules {
        return base.clone();
    }
    let author = carapulse_core::planner::rules::matching_playbook(alert, playbooks)
        .and_then(|pb| pb.author.as_deref())
        .and_then(|a| ActorId::parse(a).ok());
    match author {
        Some(id) => {
            let mut ctx = base.clone();
            ctx.actor.id = id;
            ctx.via = Some(EVENT_LOOP.to_owned());
            ctx
        }
        None => base.clone(),
    }
}

async fn handle(state: &AppState, work: &AlertWork) -> Result<(), String> {
    let gw = &state.config.gateway;
    let ctx = system_context(&work.tenant)?;
    let alertname = work.alert.alertname().unwrap_or("unnamed").to_owned();
    let service = service_of(&work.alert);
    let gate_deny = |reason: String| {
        ctx.audit("event.gate", AuditDecision::Deny)
            .resource("alert", work.alert_id)
            .reason(reason)
            .context(json!({"alertname": alertname, "fingerprint": work.alert.fingerprint, "service": service}))
    };
    match settings_gate(gw, &work.source, &work.alert) {
        None => {}
        Some(GateStop::Off) => return Ok(()),
        Some(stop) => {
            state.audit(gate_deny(stop.reason().into())).await;
            return Ok(());
        }
    }
    let now = Utc::now();
    let rule = gate_rule(gw);
    let key = format!("alert:{}", work.alert.fingerprint);
    let pass = state
        .store
        .pass_event_gate(&work.tenant, &work.source, &key, now, rule)
        .await
        .map_err(|e| e.to_string())?;
    if !pass {
        state.metrics.record_hook(&work.source, "gated");
        state
            .audit(gate_deny(GateStop::Duplicate.reason().into()))
            .await;
        return Ok(());
    }
    if gw.event_gate_service_per_hour > 0 {
        let recent = state
            .store
            .alert_plans_since(&work.tenant, &service, now - Duration::hours(1))
            .await
            .map_err(|e| e.to_string())?;
        if recent >= i64::from(gw.event_gate_service_per_hour) {
            state.metrics.record_hook(&work.source, "gated");
            state
                .audit(gate_deny(format!(
                    "rate limit: {recent} plans for service {service} in the last hour"
                )))
                .await;
            return Ok(());
        }
    }
    let context = alert_context(state, &work.tenant, &work.source, &work.alert);
    let playbooks = state
        .store
        .playbook_rules(&work.tenant)
        .await
        .unwrap_or_default();
    let draft = match state
        .planning
        .plan_alert(work.tenant.as_str(), &work.alert, &playbooks, &context)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            state
                .audit(
                    ctx.audit("event.loop", AuditDecision::Deny)
                        .resource("alert", work.alert_id)
                        .reason(format!("no plan: {e}"))
                        .context(
                            json!({"alertname": alertname, "fingerprint": work.alert.fingerprint}),
                        ),
                )
                .await;
            return Ok(());
        }
    };
    let requester = requester_context(&ctx, &draft, &work.alert, &playbooks);
    let summary = work
        .alert
        .annotations
        .get("summary")
        .map(|s| format!("{alertname}: {s}"))
        .unwrap_or_else(|| format!("{alertname} on {service}"));
    let request = PlanCreateRequest {
        summary: summary.chars().take(480).collect(),
        trigger: Trigger::Alert,
        intent: alert_intent(&work.alert),
        context,
        constraints: None,
        session_id: None,
        steps: draft.steps.clone(),
        alert: Some(json!({
            "alert_id": work.alert_id, "fingerprint": work.alert.fingerprint, "alertname": alertname,
            "service": service, "source": work.source,
        })),
        alert_planning: Some(crate::replay_record::alert_planning(
            state,
            &work.alert,
            &playbooks,
        )),
        draft: Some(draft),
        schedule: None,
        preview: false,
    };
    match create_plan(state, &requester, request, None).await {
        Ok((plan, _)) => {
            state.metrics.record_hook(&work.source, "planned");
            tracing::info!(plan_id = %plan.plan_id, alert = %work.alert.fingerprint, "alert planned");
            Ok(())
        }
        Err(e) => Err(e.message),
    }
}
