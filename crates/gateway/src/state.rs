//! Shared state handed to every handler.

use std::sync::Arc;

use carapulse_core::audit::{AuditEntry, AuditWriter};
use carapulse_core::auth::TokenVerifier;
use carapulse_core::config::Config;
use carapulse_core::dispatch::ExecutionDispatcher;
use carapulse_core::model::ContextRef;
use carapulse_core::policy::{ActionType, PolicyInput, PolicyOutcome, RiskAssessment};

use crate::middleware::RequestContext;
use carapulse_core::store::Store;

use crate::metrics::Metrics;
use crate::planning::Planning;
use crate::rate_limit::RateLimiter;

/// Everything a request may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub audit: AuditWriter,
    /// Group-commits plan creation (each plan with its audit event).
    pub plans: carapulse_core::store::PlanWriter,
    /// Approval decisions go through the group-commit writer too.
    pub approvals: carapulse_core::store::ApprovalWriter,
    pub policy: Arc<crate::policy_store::LoadedPolicy>,
    pub verifier: Arc<TokenVerifier>,
    pub dispatcher: Arc<dyn ExecutionDispatcher>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<RateLimiter>,
    /// Throttles audit rows of unauthenticated refusals per peer.
    pub refusals: Arc<crate::audit_throttle::AuditThrottle>,
    /// Signed audit checkpoints, when `storage.audit_checkpoint_key` is set.
    pub checkpoints: Option<carapulse_core::audit::CheckpointSink>,
    /// Open streams per actor (`gateway.max_streams_per_actor`).
    pub streams: Arc<carapulse_http::serve::Slots<String>>,
    pub planning: Arc<Planning>,
    pub events: crate::events::EventHub,
    /// Fires when the server stops: long-lived streams end on it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Firing alerts for the event loop.
    pub alert_queue: tokio::sync::mpsc::Sender<crate::background::event_loop::AlertWork>,
    /// The context service, when `context.enabled`.
    pub context: Option<Arc<carapulse_context::ContextService>>,
    /// When this process started serving (diagnostics uptime).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Write and plan decisions with their inputs, for policy impact.
    pub decisions: carapulse_core::store::DecisionLog,
}

impl AppState {
    /// Records an approval decision through the group-committing writer (with its audit event)
    /// and counts it: every path that decides — API, UI, Slack, Linear, auto-approval — comes
    /// here.
    pub async fn record_approval(
        &self,
        tenant: &carapulse_core::model::TenantId,
        plan_id: carapulse_core::model::PlanId,
        decision: carapulse_core::store::ApprovalDecision,
        entry: AuditEntry,
    ) -> Result<carapulse_core::model::Approval, carapulse_core::store::StoreError> {
        let (status, source) = (decision.status, decision.source);
        let approval = self
            .approvals
            .record(tenant, plan_id, decision, entry, chrono::Utc::now())
            .await?;
        self.metrics
            .record_approval(status.as_str(), source.as_str());
        Ok(approval)
    }

    /// Appends a standalone audit event (denials, reads): failures are logged and counted, and
    /// do not change the answer already decided for the caller.
    pub async fn audit(&self, entry: AuditEntry) {
        let action = entry.action.clone();
        match self.audit.append(entry).await {
            Ok(_) => self.metrics.record_audit(true),
            Err(err) => {
                self.metrics.record_audit(false);
                tracing::error!(error = %err, %action, "audit append failed");
            }
        }
    }

    /// Appends a standalone audit event the answer does not wait for (read-only questions such
    /// as a policy what-if), batched with others arriving within
    /// [`carapulse_core::audit::SOON_LINGER`] (see `AuditWriter::append_soon`); counted like
    /// [`AppState::audit`] once it commits or fails. A full queue appends it on its own task.
    pub fn audit_soon(&self, entry: AuditEntry) {
        let metrics = self.metrics.clone();
        let done: carapulse_core::audit::SoonDone = Box::new(move |ok| metrics.record_audit(ok));
        if let Err(entry) = self.audit.append_soon(entry, done) {
            let state = self.clone();
            tokio::spawn(async move { state.audit(*entry).await });
        }
    }

    /// Takes one of the caller's stream slots; 429 when they hold `max_streams_per_actor`.
    pub fn stream_slot(
        &self,
        ctx: &RequestContext,
    ) -> Result<carapulse_http::serve::SlotGuard<String>, carapulse_http::ApiError> {
        let max = self.config.gateway.max_streams_per_actor.max(1);
        // The person, not the delegating service, so one Slack user cannot hold every slot.
        let key = format!("{}/{}", ctx.actor.tenant_id, ctx.actor.id.normalised());
        self.streams.take(key, max).ok_or_else(|| {
            let mut err = carapulse_http::ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {max} open streams per actor (gateway.max_streams_per_actor); close one first"),
            );
            err.retry_after_secs = Some(5);
            err
        })
    }

    /// Evaluates policy for this request and counts the decision.
    pub fn decide(
        &self,
        ctx: &RequestContext,
        action: &str,
        action_type: ActionType,
        context: &ContextRef,
        risk: &RiskAssessment,
    ) -> PolicyOutcome {
        self.evaluate_input(
            &Self::input(ctx, action, action_type, context, risk),
            action,
        )
    }

    /// Like [`decide`](Self::decide) for a plan: policy also sees what each step verifies and
    /// the plan's blast radius. Returns the input too (the planning record keeps it).
    #[allow(clippy::too_many_arguments)]
    pub fn decide_plan<'a>(
        &self,
        ctx: &RequestContext,
        action: &str,
        action_type: ActionType,
        context: &ContextRef,
        risk: &RiskAssessment,
        steps: impl IntoIterator<Item = carapulse_core::policy::StepVerification<'a>>,
        blast_radius: Option<&carapulse_core::blast_radius::BlastEstimate>,
    ) -> (PolicyOutcome, PolicyInput) {
        let input = Self::input(ctx, action, action_type, context, risk)
            .with_steps(steps)
            .with_blast_radius(blast_radius);
        let outcome = self.evaluate_input(&input, action);
        (outcome, input)
    }

    /// The policy input of `ctx`'s request, at this moment.
    pub(crate) fn input(
        ctx: &RequestContext,
        action: &str,
        action_type: ActionType,
        context: &ContextRef,
        risk: &RiskAssessment,
    ) -> PolicyInput {
        PolicyInput::new(
            Some(&ctx.actor),
            action,
            action_type,
            context,
            risk,
            ctx.break_glass,
            chrono::Utc::now(),
        )
    }

    fn evaluate_input(&self, input: &PolicyInput, action: &str) -> PolicyOutcome {
        let outcome = self.policy.current().evaluate(input);
        if let Some(err) = &outcome.error {
            tracing::error!(error = %err, action, "policy evaluation failed; denying");
        }
        self.keep_decision(input, action, &outcome);
        self.metrics
            .record_decision(action, outcome.decision.as_str());
        outcome
    }

    /// Keeps a write or plan decision for policy impact (see [`DecisionRecord::of`]).
    fn keep_decision(&self, input: &PolicyInput, action: &str, outcome: &PolicyOutcome) {
        if let Some(record) = carapulse_core::store::DecisionRecord::of(input, action, outcome) {
            self.decisions.record(record);
        }
    }

    /// A read check: a context naming only the caller's tenant, read risk.
    pub fn decide_read(&self, ctx: &RequestContext, action: &str) -> PolicyOutcome {
        let context = ContextRef {
            tenant_id: ctx.tenant().to_string(),
            ..Default::default()
        };
        let risk = RiskAssessment {
            level: carapulse_core::model::RiskLevel::Read,
            targets: 0,
            blast_radius: carapulse_core::model::BlastRadius::Namespace,
            writes: false,
            sensitive_reads: false,
            reasons: Vec::new(),
        };
        self.decide(ctx, action, ActionType::Read, &context, &risk)
    }
}
