//! What changed between two revisions of a plan, for the people who approve it: not a text
//! diff but one keyed by step identity.
//!
//! A step's identity is its tool, action and target (the first of the input's naming fields:
//! resource, deployment, release, app, ... plus its namespace), numbered when a plan repeats it
//! (`kubectl scale deployment/web` and `... #2`). Steps are matched by identity: unmatched ones
//! are added or removed; matched ones whose relative order changed are moved (everything outside
//! a longest common subsequence of the two orders); matched ones whose stage, input, rollback,
//! preconditions, evidence, captures, expectations or analysis window differ are changed, field
//! by field (`input.replicas: 3 -> 5`). At plan level: summary, intent, constraints (per key),
//! risk level, blast radius, policy decision and its reasons. The result is JSON with a
//! one-line summary and a human rendering; the ordering is stable (by position in the newer
//! revision, then the older).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Input fields that name what a step acts on, most specific first.
const TARGET_FIELDS: &[&str] = &[
    "resource",
    "deployment",
    "release",
    "app",
    "name",
    "service",
    "path",
    "secret_path",
    "pr",
    "mr",
    "dedup_key",
    "role_arn",
    "target_id",
    "query",
    "chart",
];

/// Step fields compared field by field.
const STEP_FIELDS: &[&str] = &[
    "stage",
    "input",
    "rollback",
    "preconditions",
    "evidence",
    "capture",
    "expect",
    "analysis",
];

/// One value that changed (`None` on a side: absent there).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
}

/// A step present on one side only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepPresence {
    pub key: String,
    /// Position (0-based) in the revision it is in.
    pub index: usize,
    pub step: Value,
}

/// A step whose place among the others changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepMove {
    pub key: String,
    pub from_index: usize,
    pub to_index: usize,
}

/// A step on both sides with different contents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepChange {
    pub key: String,
    pub from_index: usize,
    pub to_index: usize,
    pub fields: Vec<FieldChange>,
}

/// The whole difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanDiff {
    pub from: i64,
    pub to: i64,
    pub added: Vec<StepPresence>,
    pub removed: Vec<StepPresence>,
    pub moved: Vec<StepMove>,
    pub changed: Vec<StepChange>,
    /// Plan-level changes: summary, intent, constraints.*, risk_level, blast_radius,
    /// policy_decision, policy_reasons.
    pub plan: Vec<FieldChange>,
    /// One line: what changed, counted.
    pub summary: String,
    /// The diff for people, one line per change.
    pub text: Vec<String>,
}

impl PlanDiff {
    /// Whether any step was added, removed, moved or changed (plan-level fields aside).
    pub fn steps_changed(&self) -> bool {
        !(self.added.is_empty()
            && self.removed.is_empty()
            && self.moved.is_empty()
            && self.changed.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        !self.steps_changed() && self.plan.is_empty()
    }
}

/// `tool action target` of a step, e.g. `kubectl scale deployment/web@shop`.
pub fn step_identity(step: &Value) -> String {
    let tool = step["tool"].as_str().unwrap_or("?");
    let action = step["action"].as_str().unwrap_or("?");
    let input = &step["input"];
    let target = TARGET_FIELDS.iter().find_map(|f| match &input[*f] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let mut key = format!("{tool} {action}");
    if let Some(target) = target {
        key.push(' ');
        key.push_str(&target);
    }
    if let Some(ns) = input["namespace"].as_str().filter(|s| !s.is_empty()) {
        key.push('@');
        key.push_str(ns);
    }
    key
}

/// Identities of a revision's steps, numbered where repeated (`... #2`).
fn keyed(steps: &[Value]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    steps
        .iter()
        .map(|s| {
            let base = step_identity(s);
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            if *n == 1 {
                base
            } else {
                format!("{base} #{n}")
            }
        })
        .collect()
}

/// Field-level differences of two JSON values under `prefix`: objects key by key, anything else
/// as a whole.
fn field_changes(
    prefix: &str,
    from: Option<&Value>,
    to: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
    match (from, to) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                field_changes(&format!("{prefix}.{k}"), a.get(k), b.get(k), out);
            }
        }
        _ if absent(from) && absent(to) => {}
        _ if from == to => {}
        _ => out.push(FieldChange {
            field: prefix.to_owned(),
            from: from.filter(|v| !v.is_null()).cloned(),
            to: to.filter(|v| !v.is_null()).cloned(),
        }),
    }
}

/// Positions of `a` not in a longest common subsequence with `b` (both lists of distinct keys).
fn out_of_order(a: &[&String], b: &[&String]) -> Vec<usize> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut kept) = (0, 0, vec![false; n]);
    while i < n && j < m {
        if a[i] == b[j] {
            kept[i] = true;
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    (0..n).filter(|i| !kept[*i]).collect()
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The difference from snapshot `a` (revision `from`) to snapshot `b` (revision `to`); both are
/// plans as `plan_revisions.snapshot_json` stores them.
pub fn diff(from: i64, a: &Value, to: i64, b: &Value) -> PlanDiff {
    let empty = Vec::new();
    let steps_a = a["steps"].as_array().unwrap_or(&empty);
    let steps_b = b["steps"].as_array().unwrap_or(&empty);
    let (keys_a, keys_b) = (keyed(steps_a), keyed(steps_b));
    let index_a: BTreeMap<&String, usize> =
        keys_a.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let index_b: BTreeMap<&String, usize> =
        keys_b.iter().enumerate().map(|(i, k)| (k, i)).collect();

    let mut added = Vec::new();
    let mut changed = Vec::new();
    for (j, key) in keys_b.iter().enumerate() {
        match index_a.get(key) {
            None => added.push(StepPresence {
                key: key.clone(),
                index: j,
                step: steps_b[j].clone(),
            }),
            Some(&i) => {
                let mut fields = Vec::new();
                for f in STEP_FIELDS {
                    field_changes(f, steps_a[i].get(*f), steps_b[j].get(*f), &mut fields);
                }
                if !fields.is_empty() {
                    changed.push(StepChange {
                        key: key.clone(),
                        from_index: i,
                        to_index: j,
                        fields,
                    });
                }
            }
        }
    }
    let removed: Vec<StepPresence> = keys_a
        .iter()
        .enumerate()
        .filter(|(_, k)| !index_b.contains_key(k))
        .map(|(i, k)| StepPresence {
            key: k.clone(),
            index: i,
            step: steps_a[i].clone(),
        })
        .collect();
    let common_a: Vec<&String> = keys_a.iter().filter(|k| index_b.contains_key(k)).collect();
    let common_b: Vec<&String> = keys_b.iter().filter(|k| index_a.contains_key(k)).collect();
    let mut moved: Vec<StepMove> = out_of_order(&common_b, &common_a)
        .into_iter()
        .map(|pos| {
            let key = common_b[pos];
            StepMove {
                key: key.clone(),
                from_index: index_a[key],
                to_index: index_b[key],
            }
        })
        .collect();
    moved.sort_by_key(|m| m.to_index);

    let mut plan = Vec::new();
    for f in ["summary", "intent"] {
        field_changes(f, a.get(f), b.get(f), &mut plan);
    }
    field_changes(
        "constraints",
        a.get("constraints"),
        b.get("constraints"),
        &mut plan,
    );
    field_changes(
        "risk_level",
        a.get("risk_level"),
        b.get("risk_level"),
        &mut plan,
    );
    field_changes(
        "blast_radius",
        a.pointer("/meta/risk/blast_radius"),
        b.pointer("/meta/risk/blast_radius"),
        &mut plan,
    );
    field_changes(
        "policy_decision",
        a.get("policy_decision"),
        b.get("policy_decision"),
        &mut plan,
    );
    if a.get("policy_reasons") != b.get("policy_reasons")
        && !(a["policy_reasons"].is_null() || b["policy_reasons"].is_null())
    {
        plan.push(FieldChange {
            field: "policy_reasons".into(),
            from: a.get("policy_reasons").cloned(),
            to: b.get("policy_reasons").cloned(),
        });
    }

    let mut text = Vec::new();
    for c in &plan {
        text.push(format!(
            "~ {}: {} -> {}",
            c.field,
            show(&c.from),
            show(&c.to)
        ));
    }
    for r in &removed {
        text.push(format!("- step {} ({})", r.index + 1, r.key));
    }
    for s in &added {
        text.push(format!("+ step {} ({})", s.index + 1, s.key));
    }
    for m in &moved {
        text.push(format!(
            "> {} moved: step {} -> {}",
            m.key,
            m.from_index + 1,
            m.to_index + 1
        ));
    }
    for c in &changed {
        for f in &c.fields {
            text.push(format!(
                "~ step {} ({}) {}: {} -> {}",
                c.to_index + 1,
                c.key,
                f.field,
                show(&f.from),
                show(&f.to)
            ));
        }
    }
    let mut parts = Vec::new();
    let count = |n: usize, what: &str| format!("{n} step{} {what}", if n == 1 { "" } else { "s" });
    if !added.is_empty() {
        parts.push(count(added.len(), "added"));
    }
    if !removed.is_empty() {
        parts.push(count(removed.len(), "removed"));
    }
    if !moved.is_empty() {
        parts.push(count(moved.len(), "moved"));
    }
    if !changed.is_empty() {
        parts.push(count(changed.len(), "changed"));
    }
    for c in plan.iter().filter(|c| {
        matches!(
            c.field.as_str(),
            "risk_level" | "policy_decision" | "blast_radius"
        )
    }) {
        parts.push(format!("{} {} -> {}", c.field, show(&c.from), show(&c.to)));
    }
    let summary = if parts.is_empty() && plan.is_empty() {
        "no change".to_owned()
    } else if parts.is_empty() {
        format!("{} plan field(s) changed", plan.len())
    } else {
        parts.join("; ")
    };
    PlanDiff {
        from,
        to,
        added,
        removed,
        moved,
        changed,
        plan,
        summary,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(tool: &str, action: &str, input: Value) -> Value {
        json!({"stage": "act", "tool": tool, "action": action, "input": input, "preconditions": [], "evidence": []})
    }

    fn plan(steps: Vec<Value>, risk: &str, decision: &str) -> Value {
        json!({"summary": "scale web", "intent": "", "constraints": {"window": "night"},
               "risk_level": risk, "policy_decision": decision,
               "meta": {"risk": {"blast_radius": 1}}, "steps": steps})
    }

    fn scale(replicas: i64) -> Value {
        step(
            "kubectl",
            "scale",
            json!({"resource": "deployment/web", "namespace": "shop", "replicas": replicas}),
        )
    }

    fn status() -> Value {
        step(
            "helm",
            "status",
            json!({"release": "web", "namespace": "shop"}),
        )
    }

    fn check() -> Value {
        let mut s = step("prometheus", "query", json!({"query": "up{job=\"web\"}"}));
        s["stage"] = json!("verify");
        s["expect"] = json!([{"path": ".data", "op": "exists"}]);
        s
    }

    #[test]
    fn identical_revisions_have_no_diff() {
        let a = plan(vec![scale(3), status()], "medium", "require_approval");
        let d = diff(1, &a, 2, &a);
        assert!(d.is_empty());
        assert_eq!(d.summary, "no change");
    }

    #[test]
    fn changed_input_is_per_field() {
        let a = plan(vec![scale(3)], "medium", "require_approval");
        let b = plan(vec![scale(5)], "medium", "require_approval");
        let d = diff(1, &a, 2, &b);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].key, "kubectl scale deployment/web@shop");
        assert_eq!(
            d.changed[0].fields,
            [FieldChange {
                field: "input.replicas".into(),
                from: Some(json!(3)),
                to: Some(json!(5))
            }]
        );
        assert!(d.added.is_empty() && d.removed.is_empty() && d.moved.is_empty());
        assert_eq!(d.summary, "1 step changed");
        assert_eq!(
            d.text,
            ["~ step 1 (kubectl scale deployment/web@shop) input.replicas: 3 -> 5"]
        );
    }

    #[test]
    fn added_removed_and_reordered() {
        let a = plan(
            vec![scale(3), status(), check()],
            "medium",
            "require_approval",
        );
        let b = plan(
            vec![
                status(),
                scale(3),
                step(
                    "kubectl",
                    "rollout-status",
                    json!({"resource": "deployment/web"}),
                ),
            ],
            "medium",
            "require_approval",
        );
        let d = diff(1, &a, 2, &b);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].key, "kubectl rollout-status deployment/web");
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].key, "prometheus query up{job=\"web\"}");
        assert_eq!(
            d.moved,
            [StepMove {
                key: "helm status web@shop".into(),
                from_index: 1,
                to_index: 0
            }]
        );
        assert!(d.changed.is_empty());
        assert_eq!(d.summary, "1 step added; 1 step removed; 1 step moved");
    }

    #[test]
    fn expectation_risk_and_policy_changes() {
        let a = plan(vec![scale(3), check()], "medium", "allow");
        let mut stricter = check();
        stricter["expect"] = json!([{"path": ".data", "op": "exists"}, {"path": ".status", "op": "eq", "value": "success"}]);
        stricter["analysis"] = json!({"samples": 5, "interval": "30s"});
        let mut b = plan(vec![scale(30), stricter], "high", "require_approval");
        b["meta"]["risk"]["blast_radius"] = json!(10);
        b["policy_reasons"] = json!(["production write needs approval"]);
        let mut a2 = a.clone();
        a2["policy_reasons"] = json!([]);
        let d = diff(1, &a2, 2, &b);
        let fields: Vec<&str> = d
            .changed
            .iter()
            .flat_map(|c| c.fields.iter().map(|f| f.field.as_str()))
            .collect();
        assert_eq!(fields, ["input.replicas", "expect", "analysis"]);
        let plan_fields: Vec<&str> = d.plan.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            plan_fields,
            [
                "risk_level",
                "blast_radius",
                "policy_decision",
                "policy_reasons"
            ]
        );
        assert_eq!(
            d.summary,
            "2 steps changed; risk_level medium -> high; blast_radius 1 -> 10; policy_decision allow -> require_approval"
        );
    }

    #[test]
    fn repeated_steps_are_numbered_and_constraints_keyed() {
        let a = plan(vec![scale(3), scale(4)], "medium", "allow");
        let mut b = plan(vec![scale(3)], "medium", "allow");
        b["constraints"] = json!({"window": "day", "approvals_required": 2});
        let d = diff(1, &a, 2, &b);
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].key, "kubectl scale deployment/web@shop #2");
        let fields: Vec<(&str, Option<&Value>, Option<&Value>)> = d
            .plan
            .iter()
            .map(|f| (f.field.as_str(), f.from.as_ref(), f.to.as_ref()))
            .collect();
        assert_eq!(
            fields,
            [
                ("constraints.approvals_required", None, Some(&json!(2))),
                (
                    "constraints.window",
                    Some(&json!("night")),
                    Some(&json!("day"))
                )
            ]
        );
    }
}
