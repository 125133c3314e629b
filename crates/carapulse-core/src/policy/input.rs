//! The JSON input handed to the Rego rules: `{actor, action, context, resources, risk, time}`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::model::{Actor, ContextRef};

use super::RiskAssessment;

/// Whether the request only reads or changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    Read,
    Write,
}

/// A policy question, serialised with stable lower-case keys.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyInput {
    pub actor: Value,
    pub action: Value,
    pub context: ContextRef,
    pub resources: Value,
    pub risk: Value,
    pub time: DateTime<Utc>,
}

impl PolicyInput {
    /// Builds the input for `actor` doing `action_name` of `action_type` in `context`.
    pub fn new(
        actor: Option<&Actor>,
        action_name: &str,
        action_type: ActionType,
        context: &ContextRef,
        risk: &RiskAssessment,
        break_glass: bool,
        now: DateTime<Utc>,
    ) -> Self {
        let actor = match actor {
            Some(a) => serde_json::json!({
                "id": a.id.as_str(),
                "email": a.email.clone().unwrap_or_default(),
                "roles": a.roles,
                "tenant_id": a.tenant_id.as_str(),
            }),
            None => serde_json::json!({}),
        };
        Self {
            actor,
            action: serde_json::json!({"name": action_name, "type": action_type}),
            context: context.clone(),
            resources: serde_json::json!({"break_glass": break_glass}),
            risk: serde_json::json!({
                "level": risk.level.as_str(),
                "targets": risk.targets,
                "blast_radius": risk.blast_radius.as_str(),
                "tier": risk.level.tier().as_str(),
            }),
            time: now,
        }
    }
}
