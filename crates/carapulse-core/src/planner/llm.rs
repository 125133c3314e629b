//! The LLM planner: budget, prompt, provider call, parse — and a record of every call for the
//! caller's metrics (this module counts nothing itself; see [`LlmObserver`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::LlmConfig;
use crate::redact::Redactor;

use super::auth_profiles::{default_auth_path, AuthProfiles};
use super::budget::{BudgetExceeded, CallBudget};
use super::parse::{parse_plan_output, ParseError};
use super::prompt::{build_prompt, PromptInput};
use super::provider::{Credential, ProviderClient, ProviderError, ProviderKind, ProviderSettings};
use super::{PlanDraft, PlannerKind};

/// One finished model call, for metrics.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub provider: &'static str,
    /// `ok`, `parse_error`, `budget`, or the provider error kind.
    pub outcome: &'static str,
    pub latency: Duration,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub attempts: u32,
}

/// Receives a [`CallRecord`] per call (the gateway turns them into Prometheus metrics).
pub trait LlmObserver: Send + Sync {
    fn observe(&self, record: &CallRecord);
}

/// Why the LLM planner produced no plan.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmPlanError {
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{error}{}", if *.truncated { " (the answer was cut off at llm.max_output_tokens)" } else { "" })]
    Parse { error: ParseError, truncated: bool },
}

/// Where the credential comes from: fixed at start, or re-read from the auth profile file on
/// every call (so `assistantctl llm auth login` takes effect without a restart).
#[derive(Debug, Clone)]
enum CredentialSource {
    Fixed(Credential),
    CodexProfile { path: PathBuf, id: Option<String> },
}

/// A configured LLM planner.
pub struct LlmPlanner {
    client: ProviderClient,
    source: CredentialSource,
    redactor: Redactor,
    budget: CallBudget,
    observer: Option<Arc<dyn LlmObserver>>,
}

impl std::fmt::Debug for LlmPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmPlanner")
            .field("provider", &self.client.provider())
            .field("model", &self.client.model())
            .finish()
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn codex_profile_credential(path: &Path, id: Option<&str>) -> Result<Credential, ProviderError> {
    let profiles = AuthProfiles::load(path).map_err(|e| ProviderError::Config(e.to_string()))?;
    let profile = profiles.select("openai-codex", id).ok_or_else(|| {
        ProviderError::Config(format!(
            "no openai-codex auth profile in {} (run `assistantctl llm auth import --codex-auth ~/.codex/auth.json`)",
            path.display()
        ))
    })?;
    if profile.expired(Utc::now()) {
        return Err(ProviderError::Config(format!(
            "auth profile {} expired; run `assistantctl llm auth login` again",
            profile.id
        )));
    }
    let token = profile
        .access_token
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            ProviderError::Config(format!("auth profile {} has no access token", profile.id))
        })?;
    Ok(Credential::AccessToken {
        token,
        account_id: profile.account_id.clone(),
    })
}

impl LlmPlanner {
    /// Builds the planner from config; `Ok(None)` when `llm.provider` is not set.
    pub fn from_config(
        cfg: &LlmConfig,
        redactor: Redactor,
        observer: Option<Arc<dyn LlmObserver>>,
    ) -> Result<Option<Self>, ProviderError> {
        let Some(provider) = cfg.provider.as_deref().filter(|p| !p.trim().is_empty()) else {
            return Ok(None);
        };
        let kind = ProviderKind::parse(provider)?;
        let key = cfg.api_key.clone().filter(|k| !k.trim().is_empty());
        let source = match kind {
            ProviderKind::OpenAi => CredentialSource::Fixed(
                key.or_else(|| env_nonempty("OPENAI_API_KEY"))
                    .map(Credential::ApiKey)
                    .unwrap_or(Credential::None),
            ),
            ProviderKind::Anthropic => CredentialSource::Fixed(
                key.or_else(|| env_nonempty("ANTHROPIC_API_KEY"))
                    .map(Credential::ApiKey)
                    .unwrap_or(Credential::None),
            ),
            ProviderKind::OpenAiCompatible => {
                CredentialSource::Fixed(key.map(Credential::ApiKey).unwrap_or(Credential::None))
            }
            ProviderKind::OpenAiCodex => {
                match key.or_else(|| env_nonempty("OPENAI_ACCESS_TOKEN")) {
                    Some(token) => CredentialSource::Fixed(Credential::AccessToken {
                        token,
                        account_id: env_nonempty("CHATGPT_ACCOUNT_ID"),
                    }),
                    None => {
                        let path = match cfg
                            .auth_path
                            .clone()
                            .filter(|p| !p.trim().is_empty())
                            .or_else(|| env_nonempty("CARAPULSE_AUTH_PATH"))
                        {
                            Some(p) => PathBuf::from(p),
                            None => default_auth_path()
                                .map_err(|e| ProviderError::Config(e.to_string()))?,
                        };
                        let id = cfg
                            .auth_profile
                            .clone()
                            .filter(|p| !p.trim().is_empty())
                            .or_else(|| env_nonempty("CARAPULSE_AUTH_PROFILE"));
                        // Fail at start when the profile is unusable, not on the first plan.
                        codex_profile_credential(&path, id.as_deref())?;
                        CredentialSource::CodexProfile { path, id }
                    }
                }
            }
        };
        let initial = match &source {
            CredentialSource::Fixed(c) => c.clone(),
            CredentialSource::CodexProfile { path, id } => {
                codex_profile_credential(path, id.as_deref())?
            }
        };
        let api_base = cfg
            .api_base
            .clone()
            .filter(|b| !b.trim().is_empty())
            .or_else(|| kind.default_base().map(str::to_owned))
            .unwrap_or_default();
        let settings = ProviderSettings {
            kind,
            api_base,
            model: cfg.model.clone().unwrap_or_default(),
            credential: initial,
            timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
            max_output_tokens: cfg.max_output_tokens.max(1),
            max_retries: cfg.max_retries,
            retry_base: Duration::from_millis(cfg.retry_base_ms),
        };
        let client = ProviderClient::new(settings, redactor.clone())?;
        Ok(Some(Self {
            client,
            source,
            redactor,
            budget: CallBudget::new(cfg.tenant_calls_per_hour),
            observer,
        }))
    }

    pub fn provider(&self) -> &'static str {
        self.client.provider()
    }

    fn record(
        &self,
        outcome: &'static str,
        started: Instant,
        completion: Option<&super::provider::Completion>,
    ) {
        if let Some(observer) = &self.observer {
            observer.observe(&CallRecord {
                provider: self.client.provider(),
                outcome,
                latency: started.elapsed(),
                input_tokens: completion.and_then(|c| c.input_tokens),
                output_tokens: completion.and_then(|c| c.output_tokens),
                attempts: completion.map(|c| c.attempts).unwrap_or(1),
            });
        }
    }

    /// Plans `input` for `tenant`.
    pub async fn plan(&self, tenant: &str, input: &PromptInput) -> Result<PlanDraft, LlmPlanError> {
        let started = Instant::now();
        if let Err(e) = self.budget.try_take(tenant) {
            self.record("budget", started, None);
            return Err(e.into());
        }
        let prompt = build_prompt(input, &self.redactor);
        let client = match &self.source {
            CredentialSource::Fixed(_) => self.client.clone(),
            CredentialSource::CodexProfile { path, id } => {
                match codex_profile_credential(path, id.as_deref()) {
                    Ok(c) => self.client.with_credential(c),
                    Err(e) => {
                        self.record(e.kind(), started, None);
                        return Err(e.into());
                    }
                }
            }
        };
        let completion = match client.complete(&prompt).await {
            Ok(c) => c,
            Err(e) => {
                self.record(e.kind(), started, None);
                return Err(e.into());
            }
        };
        let truncated = matches!(
            completion.stop_reason.as_deref(),
            Some("length" | "max_tokens" | "incomplete")
        );
        match parse_plan_output(&completion.text, input.allow_break_glass) {
            Ok(parsed) => {
                self.record("ok", started, Some(&completion));
                let mut notes = parsed.notes;
                if let Some(risk) = parsed.claimed_risk {
                    notes.push(format!(
                        "model claimed risk {risk:?} (ignored; recomputed from steps)"
                    ));
                }
                Ok(PlanDraft {
                    planner: PlannerKind::Llm,
                    provider: Some(self.client.provider().to_owned()),
                    model: Some(self.client.model().to_owned()),
                    steps: parsed.steps,
                    summary: parsed.summary,
                    plan_text: Some(self.redactor.redact(&completion.text).into_owned()),
                    workflow: None,
                    notes,
                    neutralised: prompt.neutralised,
                    fallback_reason: None,
                    request: Some(
                        serde_json::json!({"system": prompt.system, "user": prompt.user}),
                    ),
                })
            }
            Err(error) => {
                self.record("parse_error", started, Some(&completion));
                Err(LlmPlanError::Parse { error, truncated })
            }
        }
    }
}

#[cfg(test)]
mod tests;
