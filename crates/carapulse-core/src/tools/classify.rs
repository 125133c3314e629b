//! Read/write class and base risk of a tool action: from the catalogue when the action is
//! declared there, otherwise from its verb (so unknown actions still score conservatively).

use crate::model::{ActionName, RiskLevel, ToolName};

/// Whether an action only observes or changes something, and how risky a change is by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionClass {
    Read,
    Write(RiskLevel),
}

impl ActionClass {
    pub fn is_write(self) -> bool {
        matches!(self, Self::Write(_))
    }

    pub fn risk(self) -> RiskLevel {
        match self {
            Self::Read => RiskLevel::Read,
            Self::Write(level) => level,
        }
    }
}

/// Actions that only observe, whatever the tool.
const READ_VERBS: &[&str] = &[
    "get",
    "list",
    "describe",
    "status",
    "query",
    "query_range",
    "query-range",
    "search",
    "show",
    "view",
    "logs",
    "health",
    "rules",
    "exemplars",
    "alerts",
    "trace",
    "traceql",
    "diff",
    "history",
    "read",
    "sync-dry-run",
    "sync-preview",
    "wait",
    "rollout-status",
    "watch",
    "top",
    "version",
    "tagging-get-resources",
    "cloudtrail-lookup-events",
    "cloudwatch-get-metric-data",
    "dashboards",
    "datasources",
    "silences",
    "pr-status",
    "mr-status",
    "pr-view",
    "mr-view",
    "issue-view",
    "targets",
    "labels",
    "series",
    "annotations-list",
    "token-lookup",
];

/// Actions that destroy or widen access: break-glass territory.
const HIGH_VERBS: &[&str] = &[
    "delete",
    "destroy",
    "uninstall",
    "terminate",
    "drain",
    "cordon",
    "taint",
    "exec",
    "apply",
    "patch",
    "replace",
    "revoke",
    "put-role-policy",
    "create-role",
    "delete-role",
    "attach-role-policy",
    "force-push",
];

/// Changes that alter running workloads or secrets.
const MEDIUM_VERBS: &[&str] = &[
    "scale",
    "rollout-restart",
    "restart",
    "rollout-undo",
    "sync",
    "rollback",
    "upgrade",
    "install",
    "rotate",
    "merge",
    "push",
    "set-image",
    "assume-role",
    "token-renew",
    "write",
    "silence-create",
];

/// Classifies `tool`/`action`. Unknown non-read actions count as medium-risk writes.
pub fn classify(tool: ToolName, action: &ActionName) -> ActionClass {
    if let Some(spec) = super::find(tool, action.as_str()) {
        return spec.class;
    }
    let action = action.as_str();
    let api_only_read = matches!(
        tool,
        ToolName::Prometheus | ToolName::Thanos | ToolName::Tempo
    );
    if api_only_read || READ_VERBS.contains(&action) {
        return ActionClass::Read;
    }
    if HIGH_VERBS.contains(&action) || action.contains("delete") || action.contains("destroy") {
        return ActionClass::Write(RiskLevel::High);
    }
    if MEDIUM_VERBS.contains(&action) {
        return ActionClass::Write(RiskLevel::Medium);
    }
    let low_tool_writes = matches!(
        tool,
        ToolName::Grafana | ToolName::Linear | ToolName::Pagerduty | ToolName::Alertmanager
    );
    let low_verbs = [
        "commit",
        "branch",
        "pr-create",
        "mr-create",
        "comment",
        "annotate",
        "label",
    ];
    if low_tool_writes || low_verbs.contains(&action) || action.ends_with("-create") {
        return ActionClass::Write(RiskLevel::Low);
    }
    ActionClass::Write(RiskLevel::Medium)
}

/// Whether a Kubernetes resource argument (`kind`, `kind/name`, `kind.group/name`) names
/// Secrets.
fn names_secrets(resource: &str) -> bool {
    let kind = resource.split('/').next().unwrap_or("");
    let kind = kind.split('.').next().unwrap_or("").to_ascii_lowercase();
    kind == "secret" || kind == "secrets"
}

/// Whether a read returns secret material: Kubernetes Secrets, Vault data, Helm values and
/// manifests (which carry rendered Secrets), cloud secret stores. Such a read is a class of its
/// own: policy gates it like a write (it needs an approved plan and an execution grant) and the
/// router masks its output structurally. Writes are never "sensitive reads".
pub fn is_sensitive_read(tool: ToolName, action: &str, input: &serde_json::Value) -> bool {
    let str_field = |k: &str| input.get(k).and_then(serde_json::Value::as_str);
    match tool {
        ToolName::Kubectl => {
            matches!(action, "get" | "describe" | "watch" | "list")
                && str_field("resource").is_some_and(names_secrets)
        }
        // Rendered manifests carry the Secrets the values fill in, like `get`.
        ToolName::Helm => {
            (action == "get" && str_field("what") != Some("notes")) || action == "template"
        }
        ToolName::Vault => {
            !matches!(action, "health" | "token-lookup")
                && ActionName::parse(action).is_ok_and(|a| !classify(tool, &a).is_write())
        }
        _ => {
            let a = action.to_ascii_lowercase();
            a.contains("secret") || a.contains("get-parameter") || a.contains("decrypt")
        }
    }
}

/// Whether a write of this tool reaches a whole cloud account rather than one cluster.
pub fn is_account_scoped(tool: ToolName) -> bool {
    matches!(tool, ToolName::Aws | ToolName::Vault | ToolName::Boundary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(tool: ToolName, action: &str) -> ActionClass {
        classify(tool, &ActionName::parse(action).unwrap())
    }

    #[test]
    fn sensitive_reads() {
        use serde_json::json;
        assert!(is_sensitive_read(
            ToolName::Kubectl,
            "get",
            &json!({"resource": "secret/db"})
        ));
        assert!(is_sensitive_read(
            ToolName::Kubectl,
            "get",
            &json!({"resource": "secrets"})
        ));
        assert!(is_sensitive_read(
            ToolName::Kubectl,
            "get",
            &json!({"resource": "Secrets.v1/db"})
        ));
        assert!(is_sensitive_read(
            ToolName::Kubectl,
            "describe",
            &json!({"resource": "secret"})
        ));
        assert!(!is_sensitive_read(
            ToolName::Kubectl,
            "get",
            &json!({"resource": "deployment/web"})
        ));
        assert!(!is_sensitive_read(
            ToolName::Kubectl,
            "get",
            &json!({"resource": "secretstores"})
        ));
        assert!(is_sensitive_read(
            ToolName::Vault,
            "read",
            &json!({"path": "sys/raw/core"})
        ));
        assert!(!is_sensitive_read(ToolName::Vault, "health", &json!({})));
        assert!(!is_sensitive_read(ToolName::Vault, "rotate", &json!({})));
        assert!(is_sensitive_read(
            ToolName::Helm,
            "get",
            &json!({"release": "web"})
        ));
        assert!(!is_sensitive_read(
            ToolName::Helm,
            "get",
            &json!({"release": "web", "what": "notes"})
        ));
        // Rendered manifests carry Secrets; lint reports and chart defaults do not.
        assert!(is_sensitive_read(
            ToolName::Helm,
            "template",
            &json!({"release": "web", "chart": "charts/web"})
        ));
        assert!(!is_sensitive_read(
            ToolName::Helm,
            "lint",
            &json!({"chart": "charts/web"})
        ));
        assert!(!is_sensitive_read(
            ToolName::Helm,
            "show",
            &json!({"chart": "charts/web"})
        ));
        assert!(is_sensitive_read(
            ToolName::Aws,
            "secretsmanager-get-secret-value",
            &json!({})
        ));
        assert!(!is_sensitive_read(
            ToolName::Prometheus,
            "query",
            &json!({"query": "up"})
        ));
    }

    #[test]
    fn classification_table() {
        use ActionClass::*;
        assert_eq!(class(ToolName::Kubectl, "get"), Read);
        assert_eq!(class(ToolName::Kubectl, "rollout-status"), Read);
        assert_eq!(class(ToolName::Prometheus, "query_range"), Read);
        assert_eq!(class(ToolName::Kubectl, "scale"), Write(RiskLevel::Medium));
        assert_eq!(class(ToolName::Kubectl, "delete"), Write(RiskLevel::High));
        assert_eq!(class(ToolName::Helm, "uninstall"), Write(RiskLevel::High));
        assert_eq!(class(ToolName::Helm, "upgrade"), Write(RiskLevel::Medium));
        assert_eq!(
            class(ToolName::Grafana, "annotation-create"),
            Write(RiskLevel::Low)
        );
        assert_eq!(class(ToolName::Aws, "frobnicate"), Write(RiskLevel::Medium));
        assert_eq!(
            class(ToolName::Vault, "kv-destroy-all"),
            Write(RiskLevel::High)
        );
    }
}
