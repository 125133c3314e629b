//! Tool names and action names as they appear in plan steps.
//!
//! The catalogue of actions, their schemas and argv builders lives in `crate::tools`; this file
//! only holds the names so the model stays free of tool logic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ModelError;

/// The sixteen tools the router knows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolName {
    Kubectl,
    Helm,
    Argocd,
    Aws,
    Vault,
    Boundary,
    Git,
    Github,
    Gitlab,
    Prometheus,
    Thanos,
    Alertmanager,
    Grafana,
    Tempo,
    Linear,
    Pagerduty,
}

impl ToolName {
    pub const ALL: [ToolName; 16] = [
        Self::Kubectl,
        Self::Helm,
        Self::Argocd,
        Self::Aws,
        Self::Vault,
        Self::Boundary,
        Self::Git,
        Self::Github,
        Self::Gitlab,
        Self::Prometheus,
        Self::Thanos,
        Self::Alertmanager,
        Self::Grafana,
        Self::Tempo,
        Self::Linear,
        Self::Pagerduty,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubectl => "kubectl",
            Self::Helm => "helm",
            Self::Argocd => "argocd",
            Self::Aws => "aws",
            Self::Vault => "vault",
            Self::Boundary => "boundary",
            Self::Git => "git",
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Prometheus => "prometheus",
            Self::Thanos => "thanos",
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Tempo => "tempo",
            Self::Linear => "linear",
            Self::Pagerduty => "pagerduty",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let lower = value.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == lower)
            .ok_or_else(|| ModelError::new("tool", format!("unknown tool {value:?}")))
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ToolName {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An action of a tool (`scale`, `rollout-status`, `query_range`): lower-case, never starting
/// with `-`, so it can never smuggle an option into an argv.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActionName(String);

impl ActionName {
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(ModelError::new(
                "action",
                format!(
                    "{value:?} is not a valid action name (lower-case letters, digits, '-', '_')"
                ),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ActionName {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ActionName> for String {
    fn from(value: ActionName) -> Self {
        value.0
    }
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_and_action_names() {
        assert_eq!(ToolName::parse("KubeCtl").unwrap(), ToolName::Kubectl);
        assert!(ToolName::parse("bash").is_err());
        assert_eq!(ToolName::ALL.len(), 16);
        assert!(ActionName::parse("rollout-status").is_ok());
        assert!(ActionName::parse("-n").is_err());
        assert!(ActionName::parse("get;rm").is_err());
        assert!(ActionName::parse("").is_err());
    }
}
