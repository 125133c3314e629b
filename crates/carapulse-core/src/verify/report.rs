//! What an execution observed, gathered for people: the values it captured, the preconditions
//! it checked, and each analysis with its samples and verdict.
//!
//! Why here: the API, the CLI and the UI show the same report, and Slack states its reason, so it
//! is built once from the execution's evidence rows and step progress (no extra storage).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::Evidence;

/// The `verification` section of an execution view. `steps` are the execution's step-progress
/// rows (`step_id`, `ordinal`, `stage`, `status`, `error`).
pub fn execution_report(evidence: &[Evidence], steps: &[Value]) -> Value {
    let mut captures = Map::new();
    let mut preconditions = Vec::new();
    let mut samples: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in evidence {
        let step = e.step_id.map(|s| s.to_string()).unwrap_or_default();
        match e.kind.as_str() {
            "capture" => {
                if let Some(values) = e.summary["captured"].as_object() {
                    for (name, value) in values {
                        captures.insert(
                            name.clone(),
                            json!({"value": value, "path": e.summary["paths"][name], "step_id": step, "at": e.collected_at}),
                        );
                    }
                }
            }
            "precondition" => preconditions.push(json!({
                "step_id": step, "passed": e.summary["passed"], "checks": e.summary["preconditions"], "at": e.collected_at,
            })),
            "analysis.sample" => {
                let outcomes = e.summary["expectations"].as_array().cloned().unwrap_or_default();
                samples.entry(step).or_default().push(json!({
                    "number": e.summary["sample"]["number"],
                    "verdict": e.summary["verdict"],
                    "reason": e.summary["reason"],
                    "measured": outcomes.first().map(|o| o["outcome"]["measured"].clone()),
                    "threshold": outcomes.first().map(|o| o["outcome"]["threshold"].clone()),
                    "query": e.query,
                    "at": e.collected_at,
                }));
            }
            _ => {}
        }
    }
    let status_of = |step_id: &str| {
        steps
            .iter()
            .find(|s| s["step_id"].as_str() == Some(step_id) && s["stage"] == "verify")
    };
    let mut awaiting_decision = false;
    let analyses: Vec<Value> = samples
        .into_iter()
        .map(|(step_id, samples)| {
            let row = status_of(&step_id);
            let status = row.and_then(|r| r["status"].as_str()).unwrap_or("");
            awaiting_decision |= status == "awaiting_decision";
            let verdict = match status {
                "succeeded" => "passed",
                "failed" => "failed",
                "awaiting_decision" => "inconclusive",
                _ => "sampling",
            };
            json!({
                "step_id": step_id,
                "ordinal": row.map(|r| r["ordinal"].clone()).unwrap_or(Value::Null),
                "status": status,
                "verdict": verdict,
                "reason": row.map(|r| r["error"].clone()).unwrap_or(Value::Null),
                "samples": samples,
            })
        })
        .collect();
    json!({
        "captures": captures,
        "preconditions": preconditions,
        "analyses": analyses,
        "awaiting_decision": awaiting_decision,
    })
}

/// One line saying why a run was rolled back by its analysis, for chat cards: "error ratio 0.31
/// > 0.05 in 2 of 2 samples". `None` when no analysis failed.
pub fn rollback_reason(report: &Value) -> Option<String> {
    let failed = report["analyses"]
        .as_array()?
        .iter()
        .find(|a| a["verdict"] == "failed")?;
    let samples = failed["samples"].as_array()?;
    let failing: Vec<&Value> = samples
        .iter()
        .filter(|s| s["verdict"] == "failed")
        .collect();
    let last = failing.last()?;
    let measured = last["measured"]
        .as_array()
        .and_then(|m| m.first())
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| "no value".into());
    let query = last["query"].as_str().unwrap_or("the check");
    Some(format!(
        "{query}: {measured} against threshold {} in {} of {} samples",
        last["threshold"],
        failing.len(),
        samples.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EvidenceId, ExecutionId, StepId, TenantId};

    fn evidence(step: StepId, kind: &str, summary: Value, query: Option<&str>) -> Evidence {
        Evidence {
            evidence_id: EvidenceId::new(),
            execution_id: ExecutionId::new(),
            step_id: Some(step),
            tenant_id: TenantId::parse("acme").unwrap(),
            kind: kind.into(),
            query: query.map(str::to_owned),
            result_ref: None,
            summary,
            external_ids: json!({}),
            collected_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn captures_preconditions_and_analyses_are_gathered() {
        let read = StepId::new();
        let check = StepId::new();
        let sample = |n: u32, v: &str| {
            json!({"verdict": "failed", "reason": "0.31 <= 0.05 is false", "sample": {"number": n},
                   "expectations": [{"outcome": {"measured": [v], "threshold": 0.05}}]})
        };
        let rows = vec![
            evidence(
                read,
                "capture",
                json!({"captured": {"revision": 4}, "paths": {"revision": ".version"}}),
                None,
            ),
            evidence(
                read,
                "precondition",
                json!({"passed": true, "preconditions": []}),
                None,
            ),
            evidence(
                check,
                "analysis.sample",
                sample(1, "0.31"),
                Some("error_ratio"),
            ),
            evidence(
                check,
                "analysis.sample",
                sample(2, "0.33"),
                Some("error_ratio"),
            ),
        ];
        let steps = vec![
            json!({"step_id": check.to_string(), "ordinal": 2, "stage": "verify", "status": "failed", "error": "x"}),
        ];
        let report = execution_report(&rows, &steps);
        assert_eq!(report["captures"]["revision"]["value"], json!(4));
        assert_eq!(report["captures"]["revision"]["path"], ".version");
        assert_eq!(report["preconditions"][0]["passed"], json!(true));
        let analysis = &report["analyses"][0];
        assert_eq!(analysis["verdict"], "failed");
        assert_eq!(analysis["samples"].as_array().unwrap().len(), 2);
        assert_eq!(analysis["samples"][1]["measured"], json!(["0.33"]));
        assert_eq!(report["awaiting_decision"], json!(false));
        assert_eq!(
            rollback_reason(&report).unwrap(),
            "error_ratio: 0.33 against threshold 0.05 in 2 of 2 samples"
        );
    }
}
