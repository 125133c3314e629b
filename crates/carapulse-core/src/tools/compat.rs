//! The Go version's spellings, accepted so stored plans, playbooks, prompts and callers written
//! for it keep working: old tool action names and old workflow input names map to the current
//! ones. Every use is reported back (a `Deprecation` header and a `Warning` naming the new
//! spelling) so callers can move on; what is stored is always the current spelling.

use serde_json::Value;

use crate::model::{ActionName, StepDraft, ToolName};

/// `(tool, Go action, current action)`.
pub const ACTION_ALIASES: &[(ToolName, &str, &str)] = &[
    (ToolName::Vault, "token_renew", "token-renew"),
    (ToolName::Vault, "renew", "lease-renew"),
    (ToolName::Vault, "revoke", "lease-revoke"),
    (ToolName::Boundary, "session_open", "authorize-session"),
    (ToolName::Boundary, "session_close", "session-cancel"),
    (ToolName::Github, "pr", "pr-create"),
    (ToolName::Github, "pr_status", "pr-status"),
    (ToolName::Github, "pr_merge", "pr-merge"),
    (ToolName::Github, "pr_view", "pr-view"),
    (ToolName::Github, "branch_create", "branch-create"),
    (ToolName::Gitlab, "mr", "mr-create"),
    (ToolName::Gitlab, "mr_status", "mr-list"),
    (ToolName::Gitlab, "mr_merge", "mr-merge"),
    (ToolName::Gitlab, "mr_view", "mr-view"),
    (ToolName::Prometheus, "query_exemplars", "exemplars"),
    (ToolName::Alertmanager, "alerts_list", "alerts"),
    (ToolName::Grafana, "annotate", "annotation-create"),
    (ToolName::Grafana, "dashboard_get", "dashboard-get"),
    (ToolName::Grafana, "dashboard_list", "dashboards"),
    (ToolName::Tempo, "query", "search"),
    (ToolName::Tempo, "traceql", "search"),
    (ToolName::Tempo, "trace_by_id", "trace"),
    (ToolName::Linear, "create", "issue-create"),
    (ToolName::Pagerduty, "create", "trigger"),
    (ToolName::Aws, "assume_role", "assume-role"),
    (
        ToolName::Aws,
        "tagging_get_resources",
        "tagging-get-resources",
    ),
    (
        ToolName::Aws,
        "cloudtrail_lookup_events",
        "cloudtrail-lookup-events",
    ),
    (
        ToolName::Aws,
        "cloudwatch_get_metric_data",
        "cloudwatch-get-metric-data",
    ),
];

/// `(workflow, Go input field, current field)`.
pub const INPUT_ALIASES: &[(&str, &str, &str)] = &[
    ("helm_release", "rollout_resource", "resource"),
    ("gitops_deploy", "argocd_app", "app"),
    ("secret_rotation", "secret_path", "path"),
];

/// The current name of a Go action name of `tool` (`None`: not an old name).
pub fn current_action(tool: ToolName, action: &str) -> Option<&'static str> {
    ACTION_ALIASES
        .iter()
        .find(|(t, old, _)| *t == tool && *old == action)
        .map(|(_, _, new)| *new)
}

/// Rewrites old action names in `steps` (and their rollbacks) to the current ones; returns one
/// notice per rewrite, naming both.
pub fn upgrade_steps(steps: &mut [StepDraft]) -> Vec<String> {
    let mut notices = Vec::new();
    let mut upgrade = |tool: ToolName, action: &mut ActionName, at: String| {
        if let Some(new) = current_action(tool, action.as_str()) {
            if let Ok(name) = ActionName::parse(new) {
                notices.push(format!(
                    "{at}: action {tool}.{old} is deprecated; use {tool}.{new}",
                    old = action.as_str()
                ));
                *action = name;
            }
        }
    };
    for (i, step) in steps.iter_mut().enumerate() {
        upgrade(step.tool, &mut step.action, format!("steps[{i}]"));
        if let Some(rb) = step.rollback.as_mut() {
            upgrade(rb.tool, &mut rb.action, format!("steps[{i}].rollback"));
        }
    }
    notices
}

/// Renames old input fields of `workflow` in `input` (an object); a field given under both
/// names keeps the current one. Returns one notice per rename.
pub fn upgrade_input(workflow: &str, input: &mut Value) -> Vec<String> {
    let mut notices = Vec::new();
    let Some(map) = input.as_object_mut() else {
        return notices;
    };
    for (w, old, new) in INPUT_ALIASES {
        if *w != workflow {
            continue;
        }
        if let Some(value) = map.remove(*old) {
            notices.push(format!(
                "input.{old} of {workflow} is deprecated; use input.{new}"
            ));
            map.entry((*new).to_owned()).or_insert(value);
        }
    }
    notices
}

/// Marks a response that accepted old spellings: `Deprecation: true` and one `Warning` value per
/// notice (nothing when `notices` is empty).
pub fn mark_deprecated(headers: &mut http::HeaderMap, notices: &[String]) {
    if notices.is_empty() {
        return;
    }
    headers.insert("deprecation", http::HeaderValue::from_static("true"));
    if let Ok(v) = http::HeaderValue::from_str(&warning_header(notices)) {
        headers.insert(http::header::WARNING, v);
    }
}

/// The `Warning` header value (RFC 9111 warn-code 299) for `notices`.
pub fn warning_header(notices: &[String]) -> String {
    notices
        .iter()
        .map(|n| format!("299 carapulse \"{}\"", n.replace('"', "'")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::find;

    #[test]
    fn every_alias_names_a_current_action_and_no_current_one() {
        for (tool, old, new) in ACTION_ALIASES {
            assert!(
                find(*tool, new).is_some(),
                "{tool}.{new} is not in the catalogue"
            );
            assert!(
                find(*tool, old).is_none(),
                "{tool}.{old} is a current action, not an alias"
            );
        }
        for (workflow, old, new) in INPUT_ALIASES {
            let template = crate::workflows::find(workflow).expect("catalogue workflow");
            let fields: Vec<&str> = template.fields.iter().map(|f| f.name).collect();
            assert!(fields.contains(new), "{workflow}.{new} is not a field");
            assert!(!fields.contains(old), "{workflow}.{old} is a current field");
        }
    }

    #[test]
    fn steps_and_inputs_are_upgraded_with_notices() {
        let mut steps: Vec<StepDraft> = serde_json::from_value(serde_json::json!([
            {"tool": "alertmanager", "action": "alerts_list", "input": {}},
            {"tool": "kubectl", "action": "get", "input": {"resource": "pod/x"},
             "rollback": {"tool": "grafana", "action": "annotate", "input": {}}}
        ]))
        .unwrap();
        let notices = upgrade_steps(&mut steps);
        assert_eq!(steps[0].action.as_str(), "alerts");
        assert_eq!(steps[1].action.as_str(), "get", "current names stay");
        assert_eq!(
            steps[1].rollback.as_ref().unwrap().action.as_str(),
            "annotation-create"
        );
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(
            notices[0].contains("alertmanager.alerts_list")
                && notices[0].contains("alertmanager.alerts")
        );

        let mut input = serde_json::json!({"rollout_resource": "deployment/web", "release": "web"});
        let notices = upgrade_input("helm_release", &mut input);
        assert_eq!(input["resource"], "deployment/web");
        assert!(input.get("rollout_resource").is_none());
        assert_eq!(notices.len(), 1);
        let mut both = serde_json::json!({"rollout_resource": "a/old", "resource": "a/new"});
        upgrade_input("helm_release", &mut both);
        assert_eq!(both["resource"], "a/new", "the current name wins");
        assert!(warning_header(&notices).starts_with("299 carapulse \"input.rollout_resource"));
    }
}
