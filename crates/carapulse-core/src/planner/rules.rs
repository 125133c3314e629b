//! The rule planner: intents and alerts to catalogue workflows, with no network at all.
//!
//! It understands a small, documented grammar (see [`SUPPORTED`]) and refuses everything else
//! with the list of what it understands — guessing is the model's job, not this one's. Alerts
//! are matched against operator playbooks first (alertname and label equality, inputs filled
//! from `{{labels.x}}` / `{{annotations.x}}` / `{{fingerprint}}` placeholders), then mapped to
//! `incident_remediation` from the workload labels Alertmanager carries.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::model::{ContextRef, ModelError};
use crate::workflows;

use super::{PlanDraft, PlannerKind};

/// The intents the rule planner understands, as shown to users.
pub const SUPPORTED: &[&str] = &[
    "scale <workload> [in <namespace>] to <N> [from <current>]",
    "deploy [app] <argo-app> [at|to] [revision] <rev>",
    "rollback [release] <helm-release> [in <namespace>] [to revision <n>]",
    "restart [service|deployment] <workload> [in <namespace>]",
    "rotate [secret] <vault rotate path>",
];

/// Why the rule planner could not plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("the rule planner does not understand {intent:?}; it understands: {}", SUPPORTED.join(" | "))]
    NoRule { intent: String },
    #[error("{0}")]
    MissingDetail(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl From<ModelError> for RuleError {
    fn from(e: ModelError) -> Self {
        Self::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

/// A catalogue workflow with its input, and the rule that chose it.
#[derive(Debug, Clone, PartialEq)]
pub struct RulePlan {
    pub workflow: &'static str,
    pub input: Value,
    pub rule: String,
}

impl RulePlan {
    /// Builds the workflow's steps (validating the input against its schema).
    pub fn into_draft(self) -> Result<PlanDraft, RuleError> {
        let template = workflows::find(self.workflow).ok_or_else(|| RuleError::Invalid {
            field: "workflow".into(),
            message: format!("{} is not in the catalogue", self.workflow),
        })?;
        let steps = template.steps(&self.input)?;
        Ok(PlanDraft {
            planner: PlannerKind::Rules,
            provider: None,
            model: None,
            steps,
            summary: None,
            plan_text: None,
            workflow: Some(json!({"name": self.workflow, "input": self.input})),
            notes: vec![format!("rule: {}", self.rule)],
            neutralised: 0,
            fallback_reason: None,
            request: None,
        })
    }
}

struct Grammar {
    namespace: Regex,
    loose_namespace: Regex,
    scale: Regex,
    deploy: Regex,
    rollback: Regex,
    restart: Regex,
    rotate: Regex,
}

fn grammar() -> &'static Grammar {
    static G: OnceLock<Grammar> = OnceLock::new();
    G.get_or_init(|| {
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("rule grammar {p}: {e}"));
        let workload = r"(?:(?P<kind>deployment|deploy|statefulset|sts|daemonset|ds)\s+)?(?P<res>[a-z0-9][a-z0-9./-]*)";
        Grammar {
            namespace: re(
                r"\s+(?:(?:in|on)\s+(?:the\s+)?(?:namespace|ns)\s+(?P<a>[a-z0-9][a-z0-9-]*)|-n\s+(?P<b>[a-z0-9][a-z0-9-]*)|(?:in|on)\s+(?P<c>[a-z0-9][a-z0-9-]*)\s+namespace|--namespace[= ](?P<d>[a-z0-9][a-z0-9-]*))",
            ),
            loose_namespace: re(r"\s+in\s+(?P<a>[a-z0-9][a-z0-9-]*)(?:\s|$)"),
            scale: re(&format!(
                r"^scale\s+(?:up\s+|down\s+)?(?:the\s+)?{workload}\s+to\s+(?P<n>\d{{1,4}})(?:\s+replicas?)?(?:\s+from\s+(?P<cur>\d{{1,4}})(?:\s+replicas?)?)?$"
            )),
            deploy: re(
                r"^(?:deploy|sync)\s+(?:app(?:lication)?\s+)?(?P<app>[a-z0-9][a-z0-9.-]*)(?:\s+(?:at|to|@)\s+(?:revision\s+|rev\s+|version\s+|tag\s+)?(?P<rev>[A-Za-z0-9][A-Za-z0-9._/-]*))?$",
            ),
            rollback: re(
                r"^roll\s*back\s+(?:(?:the\s+)?(?:helm\s+)?release\s+)?(?P<rel>[a-z0-9][a-z0-9.-]*)(?:\s+to\s+(?:revision\s+|rev\s+)?(?P<rev>\d{1,7}))?$",
            ),
            restart: re(&format!(
                r"^restart\s+(?:the\s+)?(?:service\s+|workload\s+)?{workload}$"
            )),
            rotate: re(
                r"^rotate\s+(?:the\s+)?(?:(?:secret|credentials?|password|key)\s+)?(?:at\s+|for\s+)?(?P<path>[a-z0-9][a-z0-9/_.-]*)$",
            ),
        }
    })
}

/// Pulls a namespace phrase out of the intent; returns (rest, namespace).
fn take_namespace(intent: &str, loose: bool) -> (String, Option<String>) {
    let g = grammar();
    for (re, enabled) in [(&g.namespace, true), (&g.loose_namespace, loose)] {
        if !enabled {
            continue;
        }
        if let Some(caps) = re.captures(intent) {
            let ns = ["a", "b", "c", "d"]
                .iter()
                .find_map(|k| caps.name(k))
                .map(|m| m.as_str().to_owned());
            let whole = caps.get(0).map(|m| m.range()).unwrap_or(0..0);
            let mut rest = intent[..whole.start].to_owned();
            rest.push(' ');
            rest.push_str(&intent[whole.end..]);
            return (rest.split_whitespace().collect::<Vec<_>>().join(" "), ns);
        }
    }
    (intent.to_owned(), None)
}

fn resource_of(kind: Option<&str>, name: &str) -> String {
    if name.contains('/') {
        return name.to_owned();
    }
    let kind = match kind {
        Some("statefulset" | "sts") => "statefulset",
        Some("daemonset" | "ds") => "daemonset",
        _ => "deployment",
    };
    format!("{kind}/{name}")
}

fn namespace_or_context(
    ns: Option<String>,
    context: &ContextRef,
    what: &str,
) -> Result<String, RuleError> {
    ns.or_else(|| (!context.namespace.is_empty()).then(|| context.namespace.clone()))
        .ok_or_else(|| {
            RuleError::MissingDetail(format!(
                "which namespace? say \"{what} ... in <namespace>\" or set context.namespace"
            ))
        })
}

/// Plans an operator intent.
pub fn plan_intent(intent: &str, context: &ContextRef) -> Result<RulePlan, RuleError> {
    let normalised = intent
        .trim()
        .trim_end_matches(['.', '!'])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let lower = normalised.to_lowercase();
    let lower = lower
        .strip_prefix("please ")
        .unwrap_or(&lower)
        .trim()
        .to_owned();
    let g = grammar();
    let no_rule = || RuleError::NoRule {
        intent: intent.trim().chars().take(200).collect(),
    };

    if lower.starts_with("scale ") {
        let (rest, ns) = take_namespace(&lower, true);
        let caps = g.scale.captures(&rest).ok_or_else(no_rule)?;
        let resource = resource_of(caps.name("kind").map(|m| m.as_str()), &caps["res"]);
        let replicas: i64 = caps["n"].parse().map_err(|_| no_rule())?;
        // "from N" is optional: the workflow reads the live count and rolls back to it; a
        // stated count becomes a precondition that the cluster agrees.
        let current: Option<i64> = caps.name("cur").and_then(|m| m.as_str().parse().ok());
        let namespace = namespace_or_context(ns, context, "scale")?;
        let mut input = json!({"resource": resource, "namespace": namespace, "replicas": replicas});
        if let Some(current) = current {
            input["current_replicas"] = json!(current);
        }
        return Ok(RulePlan {
            workflow: "scale_service",
            input,
            rule: "scale".into(),
        });
    }
    if lower.starts_with("deploy ") || lower.starts_with("sync ") {
        // Revisions keep their case (git refs, tags): match on the original text.
        let original = normalised
            .strip_prefix("please ")
            .or_else(|| normalised.strip_prefix("Please "))
            .unwrap_or(&normalised);
        let head_len = original.find(' ').unwrap_or(original.len());
        let candidate = format!(
            "{}{}",
            original[..head_len].to_lowercase(),
            &original[head_len..]
        );
        let caps = g.deploy.captures(&candidate).ok_or_else(no_rule)?;
        let mut input = json!({"app": &caps["app"]});
        if let Some(rev) = caps.name("rev") {
            input["revision"] = json!(rev.as_str());
        }
        return Ok(RulePlan {
            workflow: "gitops_deploy",
            input,
            rule: "deploy".into(),
        });
    }
    if lower.starts_with("rollback ") || lower.starts_with("roll back ") {
        let (rest, ns) = take_namespace(&lower, true);
        let caps = g.rollback.captures(&rest).ok_or_else(no_rule)?;
        let namespace = namespace_or_context(ns, context, "rollback")?;
        let mut input = json!({"release": &caps["rel"], "namespace": namespace});
        if let Some(rev) = caps
            .name("rev")
            .and_then(|m| m.as_str().parse::<i64>().ok())
        {
            input["revision"] = json!(rev);
        }
        return Ok(RulePlan {
            workflow: "release_rollback",
            input,
            rule: "rollback".into(),
        });
    }
    if lower.starts_with("restart ") {
        let (rest, ns) = take_namespace(&lower, true);
        let caps = g.restart.captures(&rest).ok_or_else(no_rule)?;
        let resource = resource_of(caps.name("kind").map(|m| m.as_str()), &caps["res"]);
        let namespace = namespace_or_context(ns, context, "restart")?;
        return Ok(RulePlan {
            workflow: "service_restart",
            input: json!({"resource": resource, "namespace": namespace}),
            rule: "restart".into(),
        });
    }
    if lower.starts_with("rotate ") {
        let caps = g.rotate.captures(&lower).ok_or_else(no_rule)?;
        return Ok(RulePlan {
            workflow: "secret_rotation",
            input: json!({"path": &caps["path"]}),
            rule: "rotate".into(),
        });
    }
    Err(no_rule())
}

/// The facts of one alert the rule planner looks at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AlertFacts {
    pub fingerprint: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl AlertFacts {
    pub fn alertname(&self) -> Option<&str> {
        self.labels.get("alertname").map(String::as_str)
    }
}

/// An operator playbook reduced to what matching needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaybookRule {
    pub name: String,
    /// Matches when equal to the alert's `alertname` (any alert when absent).
    #[serde(default)]
    pub alertname: Option<String>,
    /// Every pair must be present on the alert.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    pub workflow: String,
    /// The workflow input; strings may hold `{{labels.x}}`, `{{annotations.x}}`,
    /// `{{fingerprint}}` placeholders.
    #[serde(default)]
    pub input: Value,
    /// Who wrote the playbook's newest version: the requester of the plans it makes (so they
    /// cannot approve them). Set by the store, never read from a spec.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// The playbook an alert is planned from: the first that matches.
pub fn matching_playbook<'a>(
    alert: &AlertFacts,
    playbooks: &'a [PlaybookRule],
) -> Option<&'a PlaybookRule> {
    playbooks.iter().find(|pb| pb.matches(alert))
}

impl PlaybookRule {
    fn matches(&self, alert: &AlertFacts) -> bool {
        self.alertname
            .as_deref()
            .is_none_or(|name| alert.alertname() == Some(name))
            && self
                .match_labels
                .iter()
                .all(|(k, v)| alert.labels.get(k) == Some(v))
    }
}

fn placeholder() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\{\{\s*(labels|annotations)\.([A-Za-z0-9_]+)\s*\}\}|\{\{\s*fingerprint\s*\}\}")
            .unwrap_or_else(|e| panic!("placeholder: {e}"))
    })
}

fn fill(value: &Value, alert: &AlertFacts) -> Result<Value, RuleError> {
    Ok(match value {
        Value::String(s) => {
            let mut missing = None;
            let out = placeholder().replace_all(s, |caps: &regex::Captures<'_>| {
                let found = match (caps.get(1).map(|m| m.as_str()), caps.get(2)) {
                    (Some("labels"), Some(k)) => alert.labels.get(k.as_str()).cloned(),
                    (Some(_), Some(k)) => alert.annotations.get(k.as_str()).cloned(),
                    _ => Some(alert.fingerprint.clone()),
                };
                found.unwrap_or_else(|| {
                    missing = Some(caps[0].to_owned());
                    String::new()
                })
            });
            if let Some(m) = missing {
                return Err(RuleError::MissingDetail(format!(
                    "the alert has no value for {m}"
                )));
            }
            // A whole-number placeholder result becomes a number (replicas, revisions).
            match out.parse::<i64>() {
                Ok(n) if s.contains("{{") => json!(n),
                _ => Value::String(out.into_owned()),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill(v, alert))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), fill(v, alert)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Plans a firing alert: the first matching playbook, else `incident_remediation` on the
/// workload named by the alert's labels.
pub fn plan_alert(
    alert: &AlertFacts,
    playbooks: &[PlaybookRule],
    context: &ContextRef,
) -> Result<RulePlan, RuleError> {
    if let Some(pb) = matching_playbook(alert, playbooks) {
        let workflow = workflows::find(&pb.workflow).ok_or_else(|| RuleError::Invalid {
            field: format!("playbook {}.workflow", pb.name),
            message: format!("{} is not in the catalogue", pb.workflow),
        })?;
        return Ok(RulePlan {
            workflow: workflow.name,
            input: fill(&pb.input, alert)?,
            rule: format!("playbook {}", pb.name),
        });
    }
    let alertname = alert
        .alertname()
        .ok_or_else(|| RuleError::MissingDetail("the alert has no alertname label".into()))?;
    let label = |k: &str| alert.labels.get(k).filter(|v| !v.is_empty());
    let resource = if let Some(d) = label("deployment") {
        format!("deployment/{d}")
    } else if let Some(s) = label("statefulset") {
        format!("statefulset/{s}")
    } else if let Some(d) = label("daemonset") {
        format!("daemonset/{d}")
    } else if let Some(s) = label("service").or_else(|| label("app")) {
        format!("deployment/{s}")
    } else {
        return Err(RuleError::MissingDetail(format!(
            "alert {alertname} names no workload (labels deployment, statefulset, daemonset, service or app) and no playbook matches it"
        )));
    };
    let namespace = namespace_or_context(label("namespace").cloned(), context, "alert")?;
    let mut input = json!({
        "alertname": alertname,
        "resource": resource,
        "namespace": namespace,
        "remediation": "restart",
    });
    if let Some(q) = alert.annotations.get("carapulse_verify") {
        input["promql"] = json!(q);
    }
    Ok(RulePlan {
        workflow: "incident_remediation",
        input,
        rule: "alert default".into(),
    })
}

#[cfg(test)]
mod tests;
