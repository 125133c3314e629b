//! Risk scoring from the steps themselves — never from what an LLM or a caller claims.
//!
//! Base level: the riskiest step's action class. Then: more than 10 targets raises one level, a
//! production environment lifts a low write to medium, and an account-wide blast radius makes it
//! high. Blast radius: account for account-scoped tools (aws, vault, boundary) or more than 50
//! targets; cluster for more than 10 targets or writes with no namespace; otherwise namespace.

use serde::Serialize;
use serde_json::Value;

use crate::model::{ActionName, BlastRadius, ContextRef, RiskLevel, ToolName};
use crate::tools::{classify, is_account_scoped};

/// The outcome of scoring: what policy sees as `input.risk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskAssessment {
    pub level: RiskLevel,
    pub targets: u32,
    pub blast_radius: BlastRadius,
    pub writes: bool,
    pub reasons: Vec<String>,
}

/// The parts of a step risk scoring reads.
#[derive(Debug, Clone, Copy)]
pub struct StepRef<'a> {
    pub tool: ToolName,
    pub action: &'a ActionName,
    pub input: &'a Value,
}

/// How many objects one step touches: the length of its first non-empty list among `targets`,
/// `resources`, `names`, `namespaces`, `items`; otherwise one.
fn step_targets(input: &Value) -> u32 {
    for key in ["targets", "resources", "names", "namespaces", "items"] {
        if let Some(list) = input.get(key).and_then(Value::as_array) {
            if !list.is_empty() {
                return u32::try_from(list.len()).unwrap_or(u32::MAX);
            }
        }
    }
    1
}

fn step_namespace(input: &Value) -> Option<&str> {
    input
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Scores a list of steps in `context`.
pub fn assess_steps(steps: &[StepRef<'_>], context: &ContextRef) -> RiskAssessment {
    let mut level = RiskLevel::Read;
    let mut targets: u32 = 0;
    let mut writes = false;
    let mut account_scoped = false;
    let mut unscoped_write = false;
    let mut reasons = Vec::new();
    for step in steps {
        let class = classify(step.tool, step.action);
        if class.is_write() {
            writes = true;
            targets = targets.saturating_add(step_targets(step.input));
            if is_account_scoped(step.tool) {
                account_scoped = true;
            }
            if step_namespace(step.input).is_none() && context.namespace.is_empty() {
                unscoped_write = true;
            }
            if class.risk() > level {
                level = class.risk();
                reasons.retain(|r: &String| !r.starts_with("action:"));
                reasons.push(format!("action:{}.{}", step.tool, step.action));
            }
        }
    }
    let blast_radius = if account_scoped || targets > 50 {
        BlastRadius::Account
    } else if targets > 10 || unscoped_write {
        BlastRadius::Cluster
    } else {
        BlastRadius::Namespace
    };
    if writes {
        if targets > 10 {
            level = level.raise();
            reasons.push(format!("targets:{targets}"));
        }
        let prod = context.environment().is_some_and(|e| e.is_production());
        if prod && level == RiskLevel::Low {
            level = RiskLevel::Medium;
            reasons.push("environment:production".into());
        }
        if blast_radius == BlastRadius::Account {
            level = RiskLevel::High;
            reasons.push("blast_radius:account".into());
        }
    }
    RiskAssessment {
        level,
        targets,
        blast_radius,
        writes,
        reasons,
    }
}

/// Scores a plan that has no steps yet from the words of its intent (whole words only, so
/// "Williams" is not "iam"). Used only until a planner has produced steps.
pub fn assess_intent(intent: &str, context: &ContextRef) -> RiskAssessment {
    const HIGH: &[&str] = &[
        "destroy",
        "delete",
        "terminate",
        "iam",
        "policy",
        "role",
        "user",
        "network",
        "vpc",
        "subnet",
        "firewall",
        "drain",
        "uninstall",
    ];
    const MEDIUM: &[&str] = &[
        "sync", "restart", "rollout", "migrate", "upgrade", "rotate", "scale",
    ];
    const LOW: &[&str] = &["deploy", "rollback", "annotate"];
    let lower = intent.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
    let (level, reason) = if has(HIGH) {
        (RiskLevel::High, "intent:high")
    } else if has(MEDIUM) {
        (RiskLevel::Medium, "intent:medium")
    } else if has(LOW) {
        (RiskLevel::Low, "intent:low")
    } else {
        (RiskLevel::Read, "intent:read")
    };
    let writes = level != RiskLevel::Read;
    let prod = context.environment().is_some_and(|e| e.is_production());
    let mut reasons = vec![reason.to_owned()];
    let level = if writes && prod && level == RiskLevel::Low {
        reasons.push("environment:production".into());
        RiskLevel::Medium
    } else {
        level
    };
    RiskAssessment {
        level,
        targets: u32::from(writes),
        blast_radius: if context.namespace.is_empty() && writes {
            BlastRadius::Cluster
        } else {
            BlastRadius::Namespace
        },
        writes,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(env: &str, ns: &str) -> ContextRef {
        ContextRef {
            environment: env.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    fn score(steps: &[(ToolName, &str, Value)], c: &ContextRef) -> RiskAssessment {
        let actions: Vec<ActionName> = steps
            .iter()
            .map(|(_, a, _)| ActionName::parse(a).unwrap())
            .collect();
        let refs: Vec<StepRef> = steps
            .iter()
            .zip(&actions)
            .map(|((t, _, i), a)| StepRef {
                tool: *t,
                action: a,
                input: i,
            })
            .collect();
        assess_steps(&refs, c)
    }

    #[test]
    fn reads_only_are_read() {
        let r = score(
            &[(ToolName::Kubectl, "get", json!({}))],
            &ctx("prod", "web"),
        );
        assert_eq!(r.level, RiskLevel::Read);
        assert!(!r.writes);
        assert_eq!(r.targets, 0);
    }

    #[test]
    fn riskiest_step_wins() {
        let r = score(
            &[
                (ToolName::Grafana, "annotation-create", json!({})),
                (ToolName::Kubectl, "scale", json!({"namespace": "web"})),
            ],
            &ctx("dev", ""),
        );
        assert_eq!(r.level, RiskLevel::Medium);
        assert_eq!(r.targets, 2);
    }

    #[test]
    fn production_lifts_low() {
        let r = score(
            &[(ToolName::Grafana, "annotation-create", json!({}))],
            &ctx("prod", "web"),
        );
        assert_eq!(r.level, RiskLevel::Medium);
        let r = score(
            &[(ToolName::Grafana, "annotation-create", json!({}))],
            &ctx("dev", "web"),
        );
        assert_eq!(r.level, RiskLevel::Low);
        assert_eq!(r.blast_radius, BlastRadius::Namespace);
    }

    #[test]
    fn many_targets_raise_and_widen() {
        let names: Vec<String> = (0..11).map(|i| format!("d{i}")).collect();
        let r = score(
            &[(ToolName::Kubectl, "scale", json!({"names": names}))],
            &ctx("dev", "web"),
        );
        assert_eq!(r.targets, 11);
        assert_eq!(r.blast_radius, BlastRadius::Cluster);
        assert_eq!(r.level, RiskLevel::High);
        let names: Vec<String> = (0..51).map(|i| format!("d{i}")).collect();
        let r = score(
            &[(
                ToolName::Grafana,
                "annotation-create",
                json!({"items": names}),
            )],
            &ctx("dev", "web"),
        );
        assert_eq!(r.blast_radius, BlastRadius::Account);
        assert_eq!(r.level, RiskLevel::High);
    }

    #[test]
    fn account_scoped_tools_are_high() {
        let r = score(
            &[(ToolName::Vault, "rotate", json!({}))],
            &ctx("dev", "web"),
        );
        assert_eq!(r.blast_radius, BlastRadius::Account);
        assert_eq!(r.level, RiskLevel::High);
    }

    #[test]
    fn intent_words_not_substrings() {
        assert_eq!(
            assess_intent("ask Williams about it", &ctx("dev", "")).level,
            RiskLevel::Read
        );
        assert_eq!(
            assess_intent("delete the vpc", &ctx("dev", "")).level,
            RiskLevel::High
        );
        assert_eq!(
            assess_intent("scale web to 3", &ctx("dev", "")).level,
            RiskLevel::Medium
        );
        assert_eq!(
            assess_intent("deploy web", &ctx("dev", "")).level,
            RiskLevel::Low
        );
        assert_eq!(
            assess_intent("deploy web", &ctx("prod", "")).level,
            RiskLevel::Medium
        );
    }
}
