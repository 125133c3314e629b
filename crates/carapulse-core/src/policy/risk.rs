//! Risk scoring from the steps themselves — never from what an LLM or a caller claims.
//!
//! Every call a plan can make counts: each step's action *and* its rollback (a rollback runs
//! with the same credentials as the step it undoes, so a read step whose rollback deletes is a
//! delete). Reads that return secret material (`tools::is_sensitive_read`) are gated like
//! medium-risk writes.
//!
//! Base level: the riskiest call's action class. Then: more than 10 targets raises one level, a
//! production environment lifts a low write to medium, and an account-wide blast radius makes it
//! high. Blast radius: account for account-scoped tools (aws, vault, boundary) or more than 50
//! targets; cluster for more than 10 targets or writes with no namespace; otherwise namespace.

use serde::Serialize;
use serde_json::Value;

use crate::model::{ActionName, BlastRadius, ContextRef, RiskLevel, RollbackSpec, ToolName};
use crate::tools::{classify, is_account_scoped, is_sensitive_read};

/// The outcome of scoring: what policy sees as `input.risk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskAssessment {
    pub level: RiskLevel,
    pub targets: u32,
    pub blast_radius: BlastRadius,
    pub writes: bool,
    /// Some call reads secret material.
    pub sensitive_reads: bool,
    pub reasons: Vec<String>,
}

impl RiskAssessment {
    /// Whether policy must treat the plan as a write: it changes something or reads secrets.
    pub fn gated(&self) -> bool {
        self.writes || self.sensitive_reads
    }

    /// How policy is asked about it: a write when [`gated`](Self::gated), else a read.
    pub fn action_type(&self) -> super::ActionType {
        if self.gated() {
            super::ActionType::Write
        } else {
            super::ActionType::Read
        }
    }
}

/// The parts of a call risk scoring reads.
#[derive(Debug, Clone, Copy)]
pub struct StepRef<'a> {
    pub tool: ToolName,
    pub action: &'a ActionName,
    pub input: &'a Value,
    /// A step's rollback rather than the step itself (named so in the reasons).
    pub rollback: bool,
}

impl<'a> StepRef<'a> {
    /// A step's own call.
    pub fn act(tool: ToolName, action: &'a ActionName, input: &'a Value) -> Self {
        Self {
            tool,
            action,
            input,
            rollback: false,
        }
    }
}

/// Every call one step can make: its action, then its rollback when it has one.
pub fn step_calls<'a>(
    tool: ToolName,
    action: &'a ActionName,
    input: &'a Value,
    rollback: Option<&'a RollbackSpec>,
) -> impl Iterator<Item = StepRef<'a>> {
    std::iter::once(StepRef::act(tool, action, input)).chain(rollback.map(|rb| StepRef {
        tool: rb.tool,
        action: &rb.action,
        input: &rb.input,
        rollback: true,
    }))
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

/// Whether an Alertmanager silence matches everything (no matchers, or only matchers like
/// `=~".*"`): it mutes every alert, whatever the plan's label says.
fn silence_is_catch_all(step: &StepRef<'_>) -> bool {
    if step.tool != ToolName::Alertmanager || step.action.as_str() != "silence-create" {
        return false;
    }
    let Some(matchers) = step.input.get("matchers").and_then(Value::as_array) else {
        return true;
    };
    matchers.iter().all(|m| {
        let value = m.get("value").and_then(Value::as_str).unwrap_or("");
        let regex = m.get("isRegex").and_then(Value::as_bool).unwrap_or(false);
        let equal = m.get("isEqual").and_then(Value::as_bool).unwrap_or(true);
        let matches_anything = regex && value.chars().all(|c| ".*+?()|^$".contains(c));
        // `!= ""` or `!~ "^$"` style negations match every alert that has the label at all.
        let negated_empty = !equal && (value.is_empty() || value == "^$");
        matches_anything || negated_empty
    })
}

/// The risk an Alertmanager silence carries by itself: a day or more raises it to medium, a
/// week or more (or a catch-all) to high. Other calls: read (no contribution).
fn silence_risk(step: &StepRef<'_>, reasons: &mut Vec<String>) -> RiskLevel {
    if step.tool != ToolName::Alertmanager || step.action.as_str() != "silence-create" {
        return RiskLevel::Read;
    }
    let time = |k: &str| {
        step.input
            .get(k)
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let mut level = RiskLevel::Read;
    if silence_is_catch_all(step) {
        reasons.push("silence:catch_all".into());
        level = RiskLevel::High;
    }
    match (time("starts_at"), time("ends_at")) {
        (Some(start), Some(end)) => {
            let hours = (end - start).num_hours();
            if hours >= 7 * 24 {
                reasons.push(format!("silence:duration_{hours}h"));
                level = RiskLevel::High;
            } else if hours >= 24 {
                reasons.push(format!("silence:duration_{hours}h"));
                level = level.max(RiskLevel::Medium);
            }
        }
        // A silence whose length cannot be read is treated as a long one.
        _ => {
            reasons.push("silence:duration_unknown".into());
            level = level.max(RiskLevel::Medium);
        }
    }
    level
}

/// Scores a list of steps in `context`.
pub fn assess_steps(steps: &[StepRef<'_>], context: &ContextRef) -> RiskAssessment {
    let mut level = RiskLevel::Read;
    let mut targets: u32 = 0;
    let mut writes = false;
    let mut sensitive_reads = false;
    let mut account_scoped = false;
    let mut unscoped_write = false;
    let mut reasons = Vec::new();
    for step in steps {
        let role = if step.rollback { "rollback" } else { "action" };
        let class = classify(step.tool, step.action);
        if !class.is_write() && is_sensitive_read(step.tool, step.action.as_str(), step.input) {
            sensitive_reads = true;
            let reason = format!("sensitive_read:{}.{}", step.tool, step.action);
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
            if RiskLevel::Medium > level {
                level = RiskLevel::Medium;
                reasons
                    .retain(|r: &String| !r.starts_with("action:") && !r.starts_with("rollback:"));
            }
            continue;
        }
        if class.is_write() {
            writes = true;
            targets = targets.saturating_add(step_targets(step.input));
            if is_account_scoped(step.tool) {
                account_scoped = true;
            }
            if step_namespace(step.input).is_none() && context.namespace.is_empty() {
                unscoped_write = true;
            }
            let class_risk = class.risk().max(silence_risk(step, &mut reasons));
            if class_risk > level {
                level = class_risk;
                reasons
                    .retain(|r: &String| !r.starts_with("action:") && !r.starts_with("rollback:"));
                reasons.push(format!("{role}:{}.{}", step.tool, step.action));
            }
            if silence_is_catch_all(step) {
                account_scoped = true;
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
        sensitive_reads,
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
        sensitive_reads: false,
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
            .map(|((t, _, i), a)| StepRef::act(*t, a, i))
            .collect();
        assess_steps(&refs, c)
    }

    #[test]
    fn rollbacks_count_like_actions() {
        let get = ActionName::parse("get").unwrap();
        let input = json!({"resource": "deployment/web", "namespace": "web"});
        let rollback = RollbackSpec {
            tool: ToolName::Kubectl,
            action: ActionName::parse("delete").unwrap(),
            input: json!({"resource": "deployment/web", "namespace": "web"}),
        };
        let calls: Vec<StepRef> =
            step_calls(ToolName::Kubectl, &get, &input, Some(&rollback)).collect();
        let r = assess_steps(&calls, &ctx("prod", "web"));
        assert_eq!(r.level, RiskLevel::High);
        assert!(r.writes);
        assert!(
            r.reasons.contains(&"rollback:kubectl.delete".to_owned()),
            "{:?}",
            r.reasons
        );
        // Without the rollback the same step is a read.
        let calls: Vec<StepRef> = step_calls(ToolName::Kubectl, &get, &input, None).collect();
        assert_eq!(
            assess_steps(&calls, &ctx("prod", "web")).level,
            RiskLevel::Read
        );
    }

    #[test]
    fn catch_all_and_long_silences_are_high() {
        let catch_all = json!({"matchers": [{"name": "alertname", "value": ".*", "isRegex": true}],
            "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z",
            "comment": "x", "created_by": "a"});
        let r = score(
            &[(ToolName::Alertmanager, "silence-create", catch_all)],
            &ctx("dev", "web"),
        );
        assert_eq!(r.level, RiskLevel::High);
        assert_eq!(r.blast_radius, BlastRadius::Account);
        assert!(
            r.reasons.contains(&"silence:catch_all".to_owned()),
            "{:?}",
            r.reasons
        );
        let narrow_short = json!({"matchers": [{"name": "alertname", "value": "WebDown", "isRegex": false}],
            "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-01T02:00:00Z",
            "comment": "x", "created_by": "a"});
        let r = score(
            &[(ToolName::Alertmanager, "silence-create", narrow_short)],
            &ctx("dev", "web"),
        );
        assert_eq!(r.level, RiskLevel::Low);
        let narrow_week = json!({"matchers": [{"name": "alertname", "value": "WebDown", "isRegex": false}],
            "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-09T00:00:00Z",
            "comment": "x", "created_by": "a"});
        let r = score(
            &[(ToolName::Alertmanager, "silence-create", narrow_week)],
            &ctx("dev", "web"),
        );
        assert_eq!(r.level, RiskLevel::High);
    }

    #[test]
    fn secret_reads_are_gated() {
        let r = score(
            &[(ToolName::Kubectl, "get", json!({"resource": "secret/db"}))],
            &ctx("dev", "web"),
        );
        assert!(r.sensitive_reads && r.gated() && !r.writes);
        assert_eq!(r.level, RiskLevel::Medium);
        let r = score(
            &[(ToolName::Vault, "read", json!({"path": "sys/raw/core"}))],
            &ctx("dev", ""),
        );
        assert!(r.gated());
        assert_eq!(r.level, RiskLevel::Medium);
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
