//! The comparison language of preconditions and expectations.
//!
//! One document shape for both, so a person learns it once:
//!
//! ```json
//! {"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05, "all": true, "on_empty": "inconclusive"}
//! {"path": ".data.result[0].value[1]", "op": "<=", "baseline": "error_ratio_before", "factor": 1.2}
//! {"path": ".status.health.status", "op": "in", "value": ["Healthy", "Progressing"]}
//! {"path": ".status.sync.revision", "op": "exists"}
//! ```
//!
//! `op` is one of `== != < <= > >= in exists`. Ordering ops compare numbers (numeric strings,
//! as Prometheus returns them, count as numbers); `==`/`!=` compare numbers numerically and
//! anything else as JSON. A path that selects several values is a series: `all` (the default)
//! needs every value to pass, `any` one of them. An empty selection is decided by `on_empty`
//! (`fail`, `pass`, or `inconclusive`, the default); `exists` passes exactly when something is
//! selected. `baseline` compares against a value captured earlier in the run, times `factor`
//! (default 1). Everything is checked by [`Expectation::parse`] at plan creation; evaluation
//! never fails, it returns a verdict with the measured values and the reason.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::path::ValuePath;
use super::SpecError;

/// Most elements in an `in` list.
pub const MAX_IN_VALUES: usize = 100;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "in")]
    In,
    #[serde(rename = "exists")]
    Exists,
}

impl Op {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "==" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "in" => Self::In,
            "exists" => Self::Exists,
            _ => return None,
        })
    }

    fn ordering(self) -> bool {
        matches!(self, Self::Lt | Self::Le | Self::Gt | Self::Ge)
    }

    fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::In => "in",
            Self::Exists => "exists",
        }
    }
}

/// What an empty selection means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnEmpty {
    Fail,
    Pass,
    Inconclusive,
}

/// What a value is compared with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Threshold {
    Value(Value),
    Baseline { baseline: String, factor: f64 },
}

/// The verdict of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    Inconclusive,
}

/// One evaluation: the verdict, what was measured, what it was held against, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    pub measured: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Value>,
    pub reason: String,
}

impl Outcome {
    /// A verdict reached without measuring anything (an invalid document, no result to read).
    pub fn unmeasured(verdict: Verdict, reason: impl Into<String>) -> Self {
        Self {
            verdict,
            measured: Vec::new(),
            threshold: None,
            reason: reason.into(),
        }
    }
}

/// A validated expectation (or precondition).
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    path: ValuePath,
    op: Op,
    threshold: Option<Threshold>,
    any: bool,
    on_empty: OnEmpty,
}

/// Whether `name` is a valid capture name (`[a-z_][a-z0-9_]{0,63}`).
pub fn is_capture_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A JSON value as a number: numbers, and strings that parse as finite numbers.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

impl Expectation {
    /// Validates `doc`; errors name the field under `field` (e.g. `steps[2].expect[0]`).
    pub fn parse(doc: &Value, field: &str) -> Result<Self, SpecError> {
        let at = |k: &str| format!("{field}.{k}");
        let obj = doc
            .as_object()
            .ok_or_else(|| SpecError::new(field, "must be an object {path, op, value}"))?;
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "path" | "op" | "value" | "baseline" | "factor" | "all" | "any" | "on_empty"
            ) {
                return Err(SpecError::new(
                    at(key),
                    "unknown field (path, op, value, baseline, factor, all, any, on_empty)",
                ));
            }
        }
        let path_text = obj
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::new(at("path"), "required, a string"))?;
        let path = ValuePath::parse(path_text, &at("path"))?;
        let op_text = obj
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::new(at("op"), "required: == != < <= > >= in exists"))?;
        let op = Op::parse(op_text).ok_or_else(|| {
            SpecError::new(
                at("op"),
                format!("unknown operator {op_text:?}: use == != < <= > >= in exists"),
            )
        })?;
        let value = obj.get("value");
        let baseline = obj.get("baseline");
        let threshold = match (op, value, baseline) {
            (Op::Exists, None, None) => None,
            (Op::Exists, _, _) => {
                return Err(SpecError::new(
                    at("value"),
                    "exists takes no value or baseline",
                ))
            }
            (_, Some(_), Some(_)) => {
                return Err(SpecError::new(
                    at("baseline"),
                    "give either value or baseline, not both",
                ))
            }
            (_, None, None) => {
                return Err(SpecError::new(
                    at("value"),
                    format!("{} needs a value (or a baseline)", op.symbol()),
                ))
            }
            (Op::In, Some(Value::Array(items)), None) => {
                if items.is_empty() || items.len() > MAX_IN_VALUES {
                    return Err(SpecError::new(
                        at("value"),
                        format!("in needs 1 to {MAX_IN_VALUES} values"),
                    ));
                }
                Some(Threshold::Value(Value::Array(items.clone())))
            }
            (Op::In, _, _) => return Err(SpecError::new(at("value"), "in needs a list of values")),
            (_, Some(v), None) => {
                if op.ordering() && number(v).is_none() {
                    return Err(SpecError::new(
                        at("value"),
                        format!("{} compares numbers: {v} is not one", op.symbol()),
                    ));
                }
                if matches!(v, Value::Array(_) | Value::Object(_)) {
                    return Err(SpecError::new(
                        at("value"),
                        "compare with a number, string, boolean or null",
                    ));
                }
                Some(Threshold::Value(v.clone()))
            }
            (_, None, Some(b)) => {
                let name = b.as_str().filter(|n| is_capture_name(n)).ok_or_else(|| {
                    SpecError::new(
                        at("baseline"),
                        "the name of a capture ([a-z_][a-z0-9_]*, at most 64)",
                    )
                })?;
                if !op.ordering() && !matches!(op, Op::Eq | Op::Ne) {
                    return Err(SpecError::new(
                        at("baseline"),
                        format!("{} cannot compare with a baseline", op.symbol()),
                    ));
                }
                let factor = match obj.get("factor") {
                    None => 1.0,
                    Some(f) => f
                        .as_f64()
                        .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0)
                        .ok_or_else(|| {
                            SpecError::new(at("factor"), "a number above 0, at most 1000")
                        })?,
                };
                Some(Threshold::Baseline {
                    baseline: name.to_owned(),
                    factor,
                })
            }
        };
        if obj.contains_key("factor") && !matches!(threshold, Some(Threshold::Baseline { .. })) {
            return Err(SpecError::new(at("factor"), "factor goes with a baseline"));
        }
        let flag = |k: &str| -> Result<Option<bool>, SpecError> {
            obj.get(k)
                .map(|v| {
                    v.as_bool()
                        .ok_or_else(|| SpecError::new(at(k), "true or false"))
                })
                .transpose()
        };
        let any = match (flag("all")?, flag("any")?) {
            (Some(true), Some(true)) => {
                return Err(SpecError::new(at("any"), "all and any exclude each other"))
            }
            (_, Some(any)) => any,
            (Some(all), None) => !all,
            (None, None) => false,
        };
        let on_empty = match obj.get("on_empty").map(|v| v.as_str()) {
            None => OnEmpty::Inconclusive,
            Some(Some("fail")) => OnEmpty::Fail,
            Some(Some("pass")) => OnEmpty::Pass,
            Some(Some("inconclusive")) => OnEmpty::Inconclusive,
            Some(_) => return Err(SpecError::new(at("on_empty"), "fail, pass or inconclusive")),
        };
        Ok(Self {
            path,
            op,
            threshold,
            any,
            on_empty,
        })
    }

    /// The capture a baseline refers to, if any (so plan validation can check it is captured
    /// by an earlier step).
    pub fn baseline(&self) -> Option<&str> {
        match &self.threshold {
            Some(Threshold::Baseline { baseline, .. }) => Some(baseline),
            _ => None,
        }
    }

    /// The path it reads.
    pub fn path(&self) -> &ValuePath {
        &self.path
    }

    /// Judges `result` (a tool's JSON result); `captures` holds the run's captured values.
    pub fn evaluate(&self, result: &Value, captures: &BTreeMap<String, Value>) -> Outcome {
        let selected = self.path.select(result);
        let measured: Vec<Value> = selected.iter().map(|v| (*v).clone()).collect();
        let outcome = |verdict, threshold: Option<Value>, reason: String| Outcome {
            verdict,
            measured: measured.clone(),
            threshold,
            reason,
        };
        if self.op == Op::Exists {
            return if selected.is_empty() {
                outcome(
                    Verdict::Failed,
                    None,
                    format!("{} selects nothing", self.path),
                )
            } else {
                outcome(Verdict::Passed, None, format!("{} exists", self.path))
            };
        }
        let threshold = match &self.threshold {
            Some(Threshold::Value(v)) => v.clone(),
            Some(Threshold::Baseline { baseline, factor }) => {
                match captures.get(baseline).and_then(number) {
                    Some(base) => serde_json::json!(base * factor),
                    None => {
                        return outcome(
                            Verdict::Inconclusive,
                            None,
                            format!("baseline {baseline} was not captured as a number"),
                        )
                    }
                }
            }
            None => Value::Null,
        };
        if selected.is_empty() {
            let verdict = match self.on_empty {
                OnEmpty::Fail => Verdict::Failed,
                OnEmpty::Pass => Verdict::Passed,
                OnEmpty::Inconclusive => Verdict::Inconclusive,
            };
            return outcome(
                verdict,
                Some(threshold),
                format!("{} selects nothing (on_empty)", self.path),
            );
        }
        let mut failing = Vec::new();
        for value in &selected {
            match self.holds(value, &threshold) {
                Ok(true) => {}
                Ok(false) => {
                    failing.push(format!("{value} {} {threshold} is false", self.op.symbol()))
                }
                Err(why) => failing.push(why),
            }
        }
        let passed = if self.any {
            failing.len() < selected.len()
        } else {
            failing.is_empty()
        };
        let reason = if passed {
            format!(
                "{} {} {threshold} holds for {} of {} value(s)",
                self.path,
                self.op.symbol(),
                selected.len() - failing.len(),
                selected.len()
            )
        } else {
            format!(
                "{}: {} of {} value(s) fail ({})",
                self.path,
                failing.len(),
                selected.len(),
                failing.first().map(String::as_str).unwrap_or("")
            )
        };
        outcome(
            if passed {
                Verdict::Passed
            } else {
                Verdict::Failed
            },
            Some(threshold),
            reason,
        )
    }

    fn holds(&self, value: &Value, threshold: &Value) -> Result<bool, String> {
        match self.op {
            Op::Exists => Ok(true),
            Op::In => Ok(threshold
                .as_array()
                .is_some_and(|items| items.iter().any(|t| same(value, t)))),
            Op::Eq => Ok(same(value, threshold)),
            Op::Ne => Ok(!same(value, threshold)),
            _ => {
                let (Some(v), Some(t)) = (number(value), number(threshold)) else {
                    return Err(format!("{value} is not a number"));
                };
                Ok(match self.op {
                    Op::Lt => v < t,
                    Op::Le => v <= t,
                    Op::Gt => v > t,
                    _ => v >= t,
                })
            }
        }
    }
}

/// Equality: numerically when both sides are numbers (or numeric strings), else as JSON.
fn same(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(doc: Value) -> Expectation {
        Expectation::parse(&doc, "expect[0]").unwrap()
    }

    fn prom(values: &[&str]) -> Value {
        let result: Vec<Value> = values
            .iter()
            .map(|v| json!({"metric": {}, "value": [1700000000.0, v]}))
            .collect();
        json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }

    #[test]
    fn thresholds_over_prometheus_series() {
        let none = BTreeMap::new();
        let ok = e(json!({"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05}));
        let out = ok.evaluate(&prom(&["0.01", "0.02"]), &none);
        assert_eq!(out.verdict, Verdict::Passed, "{out:?}");
        assert_eq!(out.measured, vec![json!("0.01"), json!("0.02")]);
        let out = ok.evaluate(&prom(&["0.01", "0.31"]), &none);
        assert_eq!(out.verdict, Verdict::Failed);
        assert!(out.reason.contains("1 of 2"), "{}", out.reason);
        assert_eq!(out.threshold, Some(json!(0.05)));
        let any =
            e(json!({"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05, "any": true}));
        assert_eq!(
            any.evaluate(&prom(&["0.01", "0.31"]), &none).verdict,
            Verdict::Passed
        );
        // Empty results: inconclusive unless said otherwise.
        assert_eq!(
            ok.evaluate(&prom(&[]), &none).verdict,
            Verdict::Inconclusive
        );
        let strict = e(
            json!({"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05, "on_empty": "fail"}),
        );
        assert_eq!(strict.evaluate(&prom(&[]), &none).verdict, Verdict::Failed);
        // A value that is not a number fails an ordering check instead of passing it.
        assert_eq!(
            ok.evaluate(&prom(&["NaN?"]), &none).verdict,
            Verdict::Failed
        );
    }

    #[test]
    fn baselines_come_from_captures() {
        let rel = e(
            json!({"path": ".data.result[0].value[1]", "op": "<=", "baseline": "errors_before", "factor": 1.2}),
        );
        assert_eq!(rel.baseline(), Some("errors_before"));
        let mut captures = BTreeMap::new();
        assert_eq!(
            rel.evaluate(&prom(&["0.02"]), &captures).verdict,
            Verdict::Inconclusive,
            "no baseline captured"
        );
        captures.insert("errors_before".into(), json!("0.02"));
        let out = rel.evaluate(&prom(&["0.023"]), &captures);
        assert_eq!(out.verdict, Verdict::Passed, "{out:?}");
        assert_eq!(
            rel.evaluate(&prom(&["0.03"]), &captures).verdict,
            Verdict::Failed
        );
    }

    #[test]
    fn equality_membership_and_existence() {
        let none = BTreeMap::new();
        let app = json!({"status": {"sync": {"status": "Synced", "revision": "abc"}, "health": {"status": "Healthy"}}, "spec": {"replicas": 3}});
        assert_eq!(
            e(json!({"path": ".status.sync.status", "op": "==", "value": "Synced"}))
                .evaluate(&app, &none)
                .verdict,
            Verdict::Passed
        );
        assert_eq!(e(json!({"path": ".status.health.status", "op": "in", "value": ["Healthy", "Progressing"]})).evaluate(&app, &none).verdict, Verdict::Passed);
        assert_eq!(
            e(json!({"path": ".status.health.status", "op": "!=", "value": "Healthy"}))
                .evaluate(&app, &none)
                .verdict,
            Verdict::Failed
        );
        assert_eq!(
            e(json!({"path": ".spec.replicas", "op": "==", "value": "3"}))
                .evaluate(&app, &none)
                .verdict,
            Verdict::Passed,
            "numbers compare numerically"
        );
        assert_eq!(
            e(json!({"path": ".status.sync.revision", "op": "exists"}))
                .evaluate(&app, &none)
                .verdict,
            Verdict::Passed
        );
        assert_eq!(
            e(json!({"path": ".status.nothing", "op": "exists"}))
                .evaluate(&app, &none)
                .verdict,
            Verdict::Failed
        );
    }

    #[test]
    fn invalid_documents_name_the_field() {
        let cases = [
            (json!("x"), "expect[0]"),
            (json!({"op": "<", "value": 1}), "expect[0].path"),
            (
                json!({"path": "spec", "op": "<", "value": 1}),
                "expect[0].path",
            ),
            (
                json!({"path": ".a", "op": "~=", "value": 1}),
                "expect[0].op",
            ),
            (
                json!({"path": ".a", "op": "<", "value": "high"}),
                "expect[0].value",
            ),
            (json!({"path": ".a", "op": "<"}), "expect[0].value"),
            (
                json!({"path": ".a", "op": "in", "value": 3}),
                "expect[0].value",
            ),
            (
                json!({"path": ".a", "op": "in", "value": []}),
                "expect[0].value",
            ),
            (
                json!({"path": ".a", "op": "exists", "value": 1}),
                "expect[0].value",
            ),
            (
                json!({"path": ".a", "op": "<", "value": 1, "baseline": "b"}),
                "expect[0].baseline",
            ),
            (
                json!({"path": ".a", "op": "<", "baseline": "Bad-Name"}),
                "expect[0].baseline",
            ),
            (
                json!({"path": ".a", "op": "in", "baseline": "b"}),
                "expect[0].value",
            ),
            (
                json!({"path": ".a", "op": "<", "baseline": "b", "factor": -1}),
                "expect[0].factor",
            ),
            (
                json!({"path": ".a", "op": "<", "value": 1, "factor": 2}),
                "expect[0].factor",
            ),
            (
                json!({"path": ".a", "op": "<", "value": 1, "on_empty": "maybe"}),
                "expect[0].on_empty",
            ),
            (
                json!({"path": ".a", "op": "<", "value": 1, "all": true, "any": true}),
                "expect[0].any",
            ),
            (
                json!({"path": ".a", "op": "<", "value": 1, "then": "rm -rf"}),
                "expect[0].then",
            ),
            (
                json!({"path": ".a", "op": "==", "value": {"a": 1}}),
                "expect[0].value",
            ),
        ];
        for (doc, field) in cases {
            let err = Expectation::parse(&doc, "expect[0]").unwrap_err();
            assert_eq!(err.field, field, "{doc}: {err}");
        }
    }

    #[test]
    fn capture_names() {
        assert!(is_capture_name("replicas_before"));
        assert!(is_capture_name("_x1"));
        for bad in ["", "1x", "A", "a-b", "a.b", &"a".repeat(65)] {
            assert!(!is_capture_name(bad), "{bad}");
        }
    }
}
