//! Environment bindings: which environment (and cluster) each connector's credentials act in.
//!
//! Why: the router holds one set of credentials per tool. Without a binding, a plan labelled
//! `dev` runs with whatever those credentials reach — production — while policy and risk scoring
//! believe it is `dev` (a catch-all silence in production scored `low` and ran unapproved). The
//! label is the caller's; the binding is the server's word, so a mismatch refuses the step.

use crate::model::{ContextRef, ToolName};

use super::ConnectorsConfig;

/// The connector (config key) a tool's credentials come from.
pub fn connector_key(tool: ToolName) -> &'static str {
    match tool {
        ToolName::Kubectl | ToolName::Helm => "k8s",
        ToolName::Git => "git",
        other => other.as_str(),
    }
}

impl ConnectorsConfig {
    /// The environment `tool`'s connector is bound to (`None`: unbound, `Some("*")`: shared).
    pub fn environment_of(&self, tool: ToolName) -> Option<&str> {
        self.environments
            .get(connector_key(tool))
            .map(String::as_str)
            .or(self.default_environment.as_deref())
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }

    /// Refuses a call of `tool` in `context` when the connector serves another environment or
    /// (for kubectl/helm) another cluster.
    pub fn check_binding(&self, tool: ToolName, context: &ContextRef) -> Result<(), String> {
        if let Some(bound) = self.environment_of(tool) {
            let wanted = context.environment.trim();
            if bound != "*" && !bound.eq_ignore_ascii_case(wanted) {
                return Err(format!(
                    "{tool} acts in environment {bound:?} (connectors.environments), not {:?}: the plan's environment does not match the credentials it would use",
                    if wanted.is_empty() { "(none)" } else { wanted }
                ));
            }
        }
        if matches!(tool, ToolName::Kubectl | ToolName::Helm) {
            if let Some(cluster) = self.cluster_id.as_deref().filter(|c| !c.is_empty()) {
                let wanted = context.cluster_id.trim();
                if !wanted.is_empty() && wanted != cluster {
                    return Err(format!(
                        "{tool} acts on cluster {cluster:?} (connectors.cluster_id), not {wanted:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(env: &str, cluster: &str) -> ContextRef {
        ContextRef {
            environment: env.into(),
            cluster_id: cluster.into(),
            ..Default::default()
        }
    }

    #[test]
    fn bound_connectors_refuse_other_environments() {
        let mut c = ConnectorsConfig::default();
        assert!(
            c.check_binding(ToolName::Alertmanager, &ctx("dev", ""))
                .is_ok(),
            "unbound"
        );
        c.default_environment = Some("prod".into());
        c.environments.insert("linear".into(), "*".into());
        c.environments.insert("k8s".into(), "staging".into());
        c.cluster_id = Some("eu-1".into());
        let err = c
            .check_binding(ToolName::Alertmanager, &ctx("dev", ""))
            .unwrap_err();
        assert!(err.contains("\"prod\""), "{err}");
        assert!(c
            .check_binding(ToolName::Alertmanager, &ctx("PROD", ""))
            .is_ok());
        assert!(
            c.check_binding(ToolName::Linear, &ctx("dev", "")).is_ok(),
            "shared"
        );
        assert!(c
            .check_binding(ToolName::Kubectl, &ctx("staging", "eu-1"))
            .is_ok());
        assert!(c
            .check_binding(ToolName::Helm, &ctx("staging", "us-2"))
            .is_err());
        assert!(c
            .check_binding(ToolName::Kubectl, &ctx("prod", "eu-1"))
            .is_err());
    }
}
