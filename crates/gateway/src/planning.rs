//! Choosing steps for a plan request that arrived without any: the LLM planner when one is
//! configured, the rule planner otherwise or as its fallback, and the HTTP errors for when
//! neither can plan (422 for an intent the rules do not understand, 429 for a spent budget,
//! 502 when the model failed and no fallback applied).

use std::sync::Arc;

use carapulse_core::config::Config;
use carapulse_core::planner::llm::{LlmPlanError, LlmPlanner};
use carapulse_core::planner::prompt::PromptInput;
use carapulse_core::planner::provider::ProviderError;
use carapulse_core::planner::rules::{self, AlertFacts, PlaybookRule, RuleError};
use carapulse_core::planner::PlanDraft;
use carapulse_core::redact::Redactor;

use crate::error::ApiError;
use crate::metrics::Metrics;
use axum::http::StatusCode;

/// The gateway's planners.
#[derive(Debug)]
pub struct Planning {
    llm: Option<LlmPlanner>,
    fallback_to_rules: bool,
}

impl Planning {
    /// Builds the planners from config; an unusable LLM configuration stops the start.
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> Result<Self, ProviderError> {
        let redactor = Redactor::new(&config.llm.redact_patterns)
            .map_err(|e| ProviderError::Config(e.to_string()))?;
        let llm = LlmPlanner::from_config(&config.llm, redactor, Some(metrics))?;
        match &llm {
            Some(p) => tracing::info!(
                provider = p.provider(),
                fallback_to_rules = config.llm.fallback_to_rules,
                "llm planner configured"
            ),
            None => tracing::info!("no llm.provider: the rule planner plans intents"),
        }
        Ok(Self {
            llm,
            fallback_to_rules: config.llm.fallback_to_rules,
        })
    }

    /// Rules only (tests, or a gateway started without a model).
    pub fn rules_only() -> Self {
        Self {
            llm: None,
            fallback_to_rules: true,
        }
    }

    /// Whether a model plans (and so needs the prompt's context).
    pub fn uses_model(&self) -> bool {
        self.llm.is_some()
    }

    /// Plans `input` for `tenant`.
    pub async fn plan(&self, tenant: &str, input: &PromptInput) -> Result<PlanDraft, ApiError> {
        let Some(llm) = &self.llm else {
            return rules_draft(input).map_err(unplannable);
        };
        let error = match llm.plan(tenant, input).await {
            Ok(draft) => return Ok(draft),
            Err(e) => e,
        };
        tracing::warn!(error = %error, provider = llm.provider(), "llm planner failed");
        if self.fallback_to_rules {
            match rules_draft(input) {
                Ok(mut draft) => {
                    draft.fallback_reason = Some(error.to_string());
                    draft
                        .notes
                        .push(format!("llm failed, rule planner used: {error}"));
                    return Ok(draft);
                }
                Err(rule_error) => return Err(llm_failed(&error, Some(&rule_error))),
            }
        }
        Err(llm_failed(&error, None))
    }
}

impl Planning {
    /// Plans a firing alert: the model when configured (the alert as evidence), else — or when
    /// it fails — the rule planner with the tenant's playbooks.
    pub async fn plan_alert(
        &self,
        tenant: &str,
        alert: &AlertFacts,
        playbooks: &[PlaybookRule],
        context: &carapulse_core::model::ContextRef,
    ) -> Result<PlanDraft, String> {
        let alertname = alert.alertname().unwrap_or("unnamed");
        let mut failure = None;
        if let Some(llm) = &self.llm {
            let input = PromptInput {
                intent: format!("Remediate the firing alert {alertname}. Prefer the incident_remediation steps: confirm the alert, remediate the workload, verify."),
                context: context.clone(),
                service_context: serde_json::Value::Null,
                evidence: serde_json::json!({"alert": alert}),
                memory: Vec::new(),
                constraints: serde_json::json!({}),
                allow_break_glass: false,
            };
            match llm.plan(tenant, &input).await {
                Ok(draft) => return Ok(draft),
                Err(e) => failure = Some(e.to_string()),
            }
        }
        let mut draft = rules::plan_alert(alert, playbooks, context)
            .and_then(|p| p.into_draft())
            .map_err(|e| match &failure {
                Some(f) => format!("llm: {f}; rules: {e}"),
                None => e.to_string(),
            })?;
        draft.fallback_reason = failure;
        Ok(draft)
    }
}

fn rules_draft(input: &PromptInput) -> Result<PlanDraft, RuleError> {
    rules::plan_intent(&input.intent, &input.context)?.into_draft()
}

fn unplannable(e: RuleError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unplannable_intent",
        e.to_string(),
    )
}

fn llm_failed(error: &LlmPlanError, fallback: Option<&RuleError>) -> ApiError {
    let suffix = fallback
        .map(|e| format!("; rule planner fallback: {e}"))
        .unwrap_or_default();
    match error {
        LlmPlanError::Budget(b) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "llm_budget_exhausted",
            format!("{b}{suffix}"),
        ),
        LlmPlanError::Parse { .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "llm_invalid_plan",
            format!("{error}{suffix}"),
        ),
        LlmPlanError::Provider(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "llm_unavailable",
            format!("{error}{suffix}"),
        ),
    }
}
