//! What a step observes, decided without I/O: its concrete input (capture templates filled in
//! and re-checked by the tool catalogue), its preconditions, the values it captures from the
//! tool's JSON result and the verdict of its expectations.
//!
//! Why apart from `activities`: these are the judgements an SRE reads in the execution's
//! evidence, so they are plain functions over values, unit-tested here; the activity only
//! stores what they return.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use carapulse_core::pev::StepCall;
use carapulse_core::verify::{template, Expectation, Outcome, ValuePath, Verdict};

/// The input a call runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub input: Value,
    /// Whether templates were substituted (the grant then binds the concrete call to its
    /// template).
    pub substituted: bool,
}

/// Fills in capture templates and re-validates the result against the tool catalogue, so a
/// captured value cannot become a flag, a path outside the workspace or an unknown field.
pub fn prepare_input(call: &StepCall) -> Result<Prepared, String> {
    if !template::mentions_any(&call.input) {
        return Ok(Prepared {
            input: call.input.clone(),
            substituted: false,
        });
    }
    let input = template::substitute(&call.input, &call.checks.captured)
        .map_err(|e| format!("cannot complete the input: {e}"))?;
    carapulse_core::tools::check_concrete_call(call.tool, call.action.as_str(), &input)
        .map_err(|e| format!("captured value refused by the {} catalogue: {e}", call.tool))?;
    Ok(Prepared {
        input,
        substituted: true,
    })
}

/// The preconditions of an act call over the values captured so far. `Err` carries the reason
/// the step must not run; both sides carry the evidence document.
pub fn check_preconditions(call: &StepCall) -> (Result<(), String>, Value) {
    let captured = Value::Object(
        call.checks
            .captured
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    let mut outcomes = Vec::new();
    let mut refusal = None;
    for (i, doc) in call.checks.preconditions.iter().enumerate() {
        let outcome = match Expectation::parse(doc, &format!("preconditions[{i}]")) {
            Ok(e) => e.evaluate(&captured, &call.checks.captured),
            Err(e) => Outcome::unmeasured(Verdict::Failed, e.to_string()),
        };
        if outcome.verdict != Verdict::Passed && refusal.is_none() {
            refusal = Some(format!("precondition {i} not met: {}", outcome.reason));
        }
        outcomes.push(json!({"check": doc, "outcome": outcome}));
    }
    let passed = refusal.is_none();
    let evidence = json!({"passed": passed, "preconditions": outcomes});
    (refusal.map_or(Ok(()), Err), evidence)
}

/// The values a call captures from its result. A path that selects nothing fails the step:
/// later steps and rollbacks would otherwise act on a value nobody read.
pub fn take_captures(
    call: &StepCall,
    result: Option<&Value>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    if call.checks.capture.is_empty() {
        return Ok(out);
    }
    let Some(result) = result else {
        return Err(format!(
            "cannot capture {}: {}.{} returned no JSON result",
            names(&call.checks.capture),
            call.tool,
            call.action
        ));
    };
    for (name, path) in &call.checks.capture {
        let path = ValuePath::parse(path, &format!("capture.{name}")).map_err(|e| e.to_string())?;
        let value = if path.fans_out() {
            Value::Array(path.select(result).into_iter().cloned().collect())
        } else {
            path.select_one(result).cloned().unwrap_or(Value::Null)
        };
        if value.is_null() || value.as_array().is_some_and(Vec::is_empty) {
            return Err(format!(
                "capture {name}: {path} selects nothing in the {}.{} result",
                call.tool, call.action
            ));
        }
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn names(capture: &BTreeMap<String, String>) -> String {
    capture.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The verdict of a verify call's expectations over its result, with the evidence document
/// (measured values, thresholds, per-expectation verdicts).
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reason: String,
    pub evidence: Value,
}

pub fn judge(call: &StepCall, result: Option<&Value>) -> Judgement {
    let empty = Value::Null;
    let result_value = result.unwrap_or(&empty);
    let mut outcomes = Vec::new();
    let mut failed = None;
    let mut inconclusive = None;
    for (i, doc) in call.checks.expect.iter().enumerate() {
        let outcome = match (result, Expectation::parse(doc, &format!("expect[{i}]"))) {
            (_, Err(e)) => Outcome::unmeasured(Verdict::Failed, e.to_string()),
            (None, Ok(_)) => Outcome::unmeasured(
                Verdict::Inconclusive,
                format!("{}.{} returned no JSON result", call.tool, call.action),
            ),
            (Some(_), Ok(e)) => e.evaluate(result_value, &call.checks.captured),
        };
        match outcome.verdict {
            Verdict::Failed if failed.is_none() => failed = Some(outcome.reason.clone()),
            Verdict::Inconclusive if inconclusive.is_none() => {
                inconclusive = Some(outcome.reason.clone())
            }
            _ => {}
        }
        outcomes.push(json!({"check": doc, "outcome": outcome}));
    }
    let (verdict, reason) = match (failed, inconclusive) {
        (Some(r), _) => (Verdict::Failed, r),
        (None, Some(r)) => (Verdict::Inconclusive, r),
        (None, None) => (
            Verdict::Passed,
            format!("{} expectation(s) hold", outcomes.len()),
        ),
    };
    let sample = call.checks.sample.map(|s| {
        json!({"number": s.number(), "count": s.window.count, "interval_secs": s.window.interval_secs,
               "failure_limit": s.window.failure_limit, "inconclusive_limit": s.window.inconclusive_limit})
    });
    let evidence = json!({
        "verdict": verdict, "reason": reason, "sample": sample, "expectations": outcomes,
    });
    Judgement {
        verdict,
        reason,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carapulse_core::model::{ActionName, StepId, ToolName};
    use carapulse_core::pev::{CallChecks, CallKind};

    fn call(tool: ToolName, action: &str, input: Value, checks: CallChecks) -> StepCall {
        StepCall {
            step_id: StepId::new(),
            ordinal: 1,
            kind: CallKind::Act,
            tool,
            action: ActionName::parse(action).unwrap(),
            input,
            checks,
        }
    }

    fn captured(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn captured_values_are_revalidated_by_the_catalogue() {
        let input = json!({"release": "web", "namespace": "web", "revision": "${capture.rev}"});
        let ok = call(
            ToolName::Helm,
            "rollback",
            input.clone(),
            CallChecks {
                captured: captured(&[("rev", json!(4))]),
                ..Default::default()
            },
        );
        let prepared = prepare_input(&ok).unwrap();
        assert!(prepared.substituted);
        assert_eq!(prepared.input["revision"], json!(4));
        // A value shaped like a flag, or a path escape, never reaches an argv.
        for hostile in [json!("--kubeconfig=x"), json!("../../etc/passwd")] {
            let mut bad = ok.clone();
            bad.input = json!({"release": "${capture.rev}", "namespace": "web"});
            bad.checks.captured = captured(&[("rev", hostile.clone())]);
            let err = prepare_input(&bad).unwrap_err();
            assert!(
                err.contains("refused by the helm catalogue"),
                "{hostile}: {err}"
            );
        }
        let mut missing = ok.clone();
        missing.checks.captured.clear();
        assert!(prepare_input(&missing)
            .unwrap_err()
            .contains("rev, which was not captured"));
    }

    #[test]
    fn preconditions_judge_the_captured_values() {
        let mut c = call(ToolName::Kubectl, "scale", json!({}), CallChecks::default());
        c.checks.captured = captured(&[("replicas", json!(3))]);
        c.checks.preconditions = vec![
            json!({"path": ".replicas", "op": ">=", "value": 1}),
            json!({"path": ".replicas", "op": "<=", "value": 2}),
        ];
        let (result, evidence) = check_preconditions(&c);
        let reason = result.unwrap_err();
        assert!(reason.starts_with("precondition 1 not met"), "{reason}");
        assert_eq!(evidence["passed"], json!(false));
        assert_eq!(
            evidence["preconditions"][0]["outcome"]["verdict"],
            json!("passed")
        );
        c.checks.preconditions.pop();
        assert!(check_preconditions(&c).0.is_ok());
    }

    #[test]
    fn captures_read_the_result_or_fail_the_step() {
        let mut c = call(ToolName::Kubectl, "get", json!({}), CallChecks::default());
        c.checks.capture = [("replicas".to_owned(), ".spec.replicas".to_owned())].into();
        let got = take_captures(&c, Some(&json!({"spec": {"replicas": 3}}))).unwrap();
        assert_eq!(got["replicas"], json!(3));
        let err = take_captures(&c, Some(&json!({"spec": {}}))).unwrap_err();
        assert!(err.contains("selects nothing"), "{err}");
        assert!(take_captures(&c, None).unwrap_err().contains("no JSON"));
    }

    #[test]
    fn expectations_give_one_verdict_with_the_measurements() {
        let mut c = call(
            ToolName::Prometheus,
            "query",
            json!({}),
            CallChecks::default(),
        );
        c.kind = CallKind::Verify;
        c.checks.expect =
            vec![json!({"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05})];
        let body = |v: &str| json!({"status": "success", "data": {"result": [{"value": [1, v]}]}});
        let good = judge(&c, Some(&body("0.01")));
        assert_eq!(good.verdict, Verdict::Passed);
        let bad = judge(&c, Some(&body("0.31")));
        assert_eq!(bad.verdict, Verdict::Failed);
        assert!(bad.reason.contains("0.31"), "{}", bad.reason);
        assert_eq!(
            bad.evidence["expectations"][0]["outcome"]["measured"],
            json!(["0.31"])
        );
        let empty = judge(
            &c,
            Some(&json!({"status": "success", "data": {"result": []}})),
        );
        assert_eq!(empty.verdict, Verdict::Inconclusive);
        assert_eq!(judge(&c, None).verdict, Verdict::Inconclusive);
    }
}
