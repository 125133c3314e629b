//! Parsing a model's answer into plan steps, and rejecting what the catalogue does not allow.
//!
//! Models wrap JSON in fences, add a sentence before it, or invent fields; the parser tolerates
//! the packaging but not the content: every step must name a catalogue tool and action with an
//! input that validates, destructive (break-glass) actions are refused unless the caller holds
//! break-glass, and one bad step rejects the whole plan with every reason listed — silently
//! dropping steps would run a different plan from the one the model reasoned about.
//! The model's `risk_level` is read only to be reported; risk is recomputed from the steps.

use serde_json::{Map, Value};

use crate::model::{StepDraft, MAX_STEPS};

/// Keys a step may carry; others (`why`, `description`, ...) are dropped with a note.
const STEP_KEYS: &[&str] = &[
    "stage",
    "tool",
    "action",
    "input",
    "preconditions",
    "rollback",
    "evidence",
];

/// A model answer that passed every check.
#[derive(Debug, Clone)]
pub struct ParsedPlan {
    pub summary: Option<String>,
    pub steps: Vec<StepDraft>,
    /// What the model said the risk was (ignored for decisions).
    pub claimed_risk: Option<String>,
    pub notes: Vec<String>,
}

/// Why a model answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the model returned an empty answer")]
    Empty,
    #[error("the model's answer is not JSON: {message} (answer starts with {excerpt:?})")]
    NotJson { message: String, excerpt: String },
    #[error("the model's answer has no `steps` array")]
    NoSteps,
    #[error("the model proposed {0} steps; at most {MAX_STEPS} are allowed")]
    TooManySteps(usize),
    #[error("the model proposed steps the catalogue rejects: {}", .0.join("; "))]
    InvalidSteps(Vec<String>),
}

/// Parses and validates a model answer.
pub fn parse_plan_output(text: &str, allow_break_glass: bool) -> Result<ParsedPlan, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    let doc = decode(trimmed)?;
    let (summary, claimed_risk, raw_steps) = match doc {
        Value::Array(items) => (None, None, items),
        Value::Object(mut map) => {
            let summary = map
                .get("summary")
                .and_then(Value::as_str)
                .map(|s| s.chars().take(500).collect::<String>());
            let risk = map
                .get("risk_level")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match map.remove("steps") {
                Some(Value::Array(items)) => (summary, risk, items),
                _ => return Err(ParseError::NoSteps),
            }
        }
        _ => return Err(ParseError::NoSteps),
    };
    if raw_steps.is_empty() {
        return Err(ParseError::NoSteps);
    }
    if raw_steps.len() > MAX_STEPS {
        return Err(ParseError::TooManySteps(raw_steps.len()));
    }
    let mut notes = Vec::new();
    let mut reasons = Vec::new();
    let mut steps = Vec::with_capacity(raw_steps.len());
    for (i, raw) in raw_steps.into_iter().enumerate() {
        match step_from(i, raw, allow_break_glass, &mut notes) {
            Ok(step) => steps.push(step),
            Err(reason) => reasons.push(reason),
        }
    }
    if !reasons.is_empty() {
        return Err(ParseError::InvalidSteps(reasons));
    }
    Ok(ParsedPlan {
        summary,
        steps,
        claimed_risk,
        notes,
    })
}

fn step_from(
    i: usize,
    raw: Value,
    allow_break_glass: bool,
    notes: &mut Vec<String>,
) -> Result<StepDraft, String> {
    let Value::Object(map) = raw else {
        return Err(format!("steps[{i}]: not an object"));
    };
    let mut kept = Map::new();
    for (key, value) in map {
        if STEP_KEYS.contains(&key.as_str()) {
            // Models write `"rollback": {}` or `null` for "no rollback".
            let empty_rollback = key == "rollback"
                && (value.is_null() || value.as_object().is_some_and(Map::is_empty));
            // `null` for an optional field means "absent"; for tool/action it stays an error.
            let null_optional = value.is_null() && key != "tool" && key != "action";
            if !empty_rollback && !null_optional {
                kept.insert(key, value);
            }
        } else {
            notes.push(format!("steps[{i}]: ignored field {key:?}"));
        }
    }
    let mut step: StepDraft =
        serde_json::from_value(Value::Object(kept)).map_err(|e| format!("steps[{i}]: {e}"))?;
    // A model that learned the Go action names (or memory notes written with them) is upgraded,
    // with a note, rather than failing the plan.
    for notice in crate::tools::compat::upgrade_steps(std::slice::from_mut(&mut step)) {
        notes.push(notice.replacen("steps[0]", &format!("steps[{i}]"), 1));
    }
    crate::tools::check_step(&step)
        .map_err(|e| format!("steps[{i}].{}: {}", e.field, e.message))?;
    if !allow_break_glass {
        let mut calls = vec![(step.tool, step.action.as_str())];
        if let Some(rb) = &step.rollback {
            calls.push((rb.tool, rb.action.as_str()));
        }
        for (tool, action) in calls {
            if crate::tools::find(tool, action).is_some_and(|s| s.break_glass) {
                return Err(format!(
                    "steps[{i}]: {tool} {action} is destructive and needs break-glass"
                ));
            }
        }
    }
    Ok(step)
}

/// Finds the JSON document in an answer: a fenced block, the whole text, or the outermost
/// object/array inside surrounding prose.
fn decode(text: &str) -> Result<Value, ParseError> {
    let candidate = fenced(text).unwrap_or(text);
    let first_error = match serde_json::from_str::<Value>(candidate) {
        Ok(v) => return Ok(v),
        Err(e) => e.to_string(),
    };
    let start = candidate.find(['{', '[']);
    let end = candidate.rfind(['}', ']']);
    if let (Some(s), Some(e)) = (start, end) {
        if s < e {
            if let Ok(v) = serde_json::from_str::<Value>(&candidate[s..=e]) {
                return Ok(v);
            }
        }
    }
    Err(ParseError::NotJson {
        message: first_error,
        excerpt: text.chars().take(120).collect(),
    })
}

/// The content of the first ``` fence (the info string after the fence is skipped).
fn fenced(text: &str) -> Option<&str> {
    let open = text.find("```")?;
    let after = &text[open + 3..];
    let body_start = after.find('\n').map(|n| n + 1).unwrap_or(0);
    let body = &after[body_start..];
    let close = body.find("```").unwrap_or(body.len());
    Some(body[..close].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;

    const GOOD: &str = r#"{"summary":"scale web","risk_level":"low","steps":[
        {"stage":"act","tool":"kubectl","action":"scale","why":"more capacity",
         "input":{"resource":"deployment/web","namespace":"prod","replicas":4},
         "rollback":{"tool":"kubectl","action":"scale","input":{"resource":"deployment/web","namespace":"prod","replicas":2}}},
        {"stage":"verify","tool":"kubectl","action":"rollout-status","input":{"resource":"deployment/web","namespace":"prod"},"rollback":null}]}"#;

    #[test]
    fn plain_fenced_and_prose_wrapped_answers_parse() {
        for text in [
            GOOD.to_owned(),
            format!("```json\n{GOOD}\n```"),
            format!("Here is the plan:\n```\n{GOOD}\n```\nLet me know."),
            format!("Sure. {GOOD} Done."),
        ] {
            let plan = parse_plan_output(&text, false).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(plan.steps.len(), 2);
            assert_eq!(plan.steps[1].stage, Stage::Verify);
            assert_eq!(plan.summary.as_deref(), Some("scale web"));
            assert_eq!(plan.claimed_risk.as_deref(), Some("low"));
            assert!(plan.notes.iter().any(|n| n.contains("why")));
        }
    }

    #[test]
    fn go_action_names_from_a_model_are_upgraded_with_a_note() {
        let plan = parse_plan_output(
            r#"[{"tool":"prometheus","action":"query","input":{"query":"up"}},
                {"tool":"alertmanager","action":"alerts_list","input":{}}]"#,
            false,
        )
        .unwrap();
        assert_eq!(plan.steps[1].action.as_str(), "alerts");
        assert!(
            plan.notes
                .iter()
                .any(|n| n.starts_with("steps[1]: action alertmanager.alerts_list is deprecated")),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn a_bare_array_of_steps_parses() {
        let plan = parse_plan_output(
            r#"[{"tool":"prometheus","action":"query","input":{"query":"up"}}]"#,
            false,
        )
        .unwrap();
        assert_eq!(plan.steps[0].stage, Stage::Act);
    }

    #[test]
    fn malformed_answers_say_why() {
        assert_eq!(
            parse_plan_output("  ", false).unwrap_err(),
            ParseError::Empty
        );
        let err = parse_plan_output("I would scale the deployment.", false).unwrap_err();
        assert!(matches!(err, ParseError::NotJson { .. }), "{err}");
        assert!(err.to_string().contains("I would scale"));
        assert_eq!(
            parse_plan_output(r#"{"summary":"x"}"#, false).unwrap_err(),
            ParseError::NoSteps
        );
        assert_eq!(
            parse_plan_output(r#"{"steps":[]}"#, false).unwrap_err(),
            ParseError::NoSteps
        );
    }

    #[test]
    fn catalogue_violations_reject_the_whole_plan_with_every_reason() {
        let text = r#"{"steps":[
            {"tool":"bash","action":"run","input":{}},
            {"tool":"kubectl","action":"exec","input":{}},
            {"tool":"kubectl","action":"scale","input":{"resource":"--all","namespace":"prod","replicas":1}},
            {"tool":"prometheus","action":"query","input":{"query":"up"}}]}"#;
        let ParseError::InvalidSteps(reasons) = parse_plan_output(text, false).unwrap_err() else {
            panic!("expected InvalidSteps");
        };
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("steps[0]"));
        assert!(reasons[1].contains("no action \"exec\""), "{reasons:?}");
        assert!(reasons[2].contains("input.resource"), "{reasons:?}");
    }

    #[test]
    fn destructive_actions_need_break_glass() {
        let text = r#"{"steps":[{"tool":"kubectl","action":"delete","input":{"resource":"pod/web-1","namespace":"prod"}}]}"#;
        let err = parse_plan_output(text, false).unwrap_err();
        assert!(err.to_string().contains("break-glass"), "{err}");
        assert_eq!(parse_plan_output(text, true).unwrap().steps.len(), 1);
    }

    #[test]
    fn too_many_steps() {
        let step = r#"{"tool":"prometheus","action":"query","input":{"query":"up"}}"#;
        let text = format!("[{}]", vec![step; MAX_STEPS + 1].join(","));
        assert_eq!(
            parse_plan_output(&text, false).unwrap_err(),
            ParseError::TooManySteps(MAX_STEPS + 1)
        );
    }
}
