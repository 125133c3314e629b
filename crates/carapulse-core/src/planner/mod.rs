//! Planning: turning an operator's intent (or an alert) into validated plan steps.
//!
//! Two planners share one output type, [`PlanDraft`]:
//! - the **rule planner** ([`rules`]) maps a small grammar of intents and Alertmanager alerts
//!   to catalogue workflows with filled inputs. It needs no network, so it is the default when
//!   no model is configured and the fallback when the model fails;
//! - the **LLM planner** ([`llm`]) builds a prompt from the intent, the service context, recent
//!   evidence and operator memory ([`prompt`]), neutralises injection phrases in every untrusted
//!   string ([`sanitize`]), redacts secrets from the whole prompt (always on), calls one of the
//!   providers ([`provider`]) with retries and a per-tenant budget ([`budget`]), and parses the
//!   answer ([`parse`]). Every step the model proposes is checked against the tool catalogue and
//!   the risk level is recomputed from the steps by the caller: the model's own claim is ignored.
//!
//! Nothing here executes a tool; the model is told so, and its output only ever becomes a plan
//! that goes through policy and approval like any other.

pub mod auth_profiles;
pub mod budget;
pub mod llm;
pub mod parse;
pub mod prompt;
pub mod provider;
pub mod rules;
pub mod sanitize;

use serde::Serialize;
use serde_json::Value;

use crate::model::StepDraft;

/// Which planner produced a plan (stored on the plan as `planner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannerKind {
    /// The offline rule planner.
    Rules,
    /// A language model, named by its provider in [`PlanDraft::provider`].
    Llm,
}

impl PlannerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Llm => "llm",
        }
    }
}

/// What a planner proposes: steps plus where they came from.
#[derive(Debug, Clone)]
pub struct PlanDraft {
    pub planner: PlannerKind,
    /// `openai`, `anthropic`, ... for the LLM planner.
    pub provider: Option<String>,
    pub model: Option<String>,
    pub steps: Vec<StepDraft>,
    /// The summary the planner suggests (the caller's own summary wins).
    pub summary: Option<String>,
    /// The raw model answer, redacted (LLM only).
    pub plan_text: Option<String>,
    /// The catalogue workflow and input the rule planner chose.
    pub workflow: Option<Value>,
    /// Why this plan: the rule that matched, or notes from parsing.
    pub notes: Vec<String>,
    /// How many injection phrases were neutralised in the prompt.
    pub neutralised: usize,
    /// Set when the rule planner ran because the model failed.
    pub fallback_reason: Option<String>,
    /// What the model was asked (`{system, user}`, redacted), kept in the planning record.
    pub request: Option<serde_json::Value>,
}

impl PlanDraft {
    /// The label stored in `plans.planner`: `rules`, `llm:<provider>`, `rules(fallback)`.
    pub fn label(&self) -> String {
        match (self.planner, &self.provider, &self.fallback_reason) {
            (PlannerKind::Llm, Some(p), _) => format!("llm:{p}"),
            (PlannerKind::Llm, None, _) => "llm".into(),
            (PlannerKind::Rules, _, Some(_)) => "rules(fallback)".into(),
            (PlannerKind::Rules, _, None) => "rules".into(),
        }
    }
}
