//! Capture templates: a later step's input (or any rollback's input) may name a value captured
//! earlier in the run as `"${capture.<name>}"`.
//!
//! Why so narrow: a template is a whole top-level input value, never a fragment of a string and
//! never nested, so what it can become is exactly one field's value, and the tool catalogue
//! re-validates that field (names cannot start with `-`, paths stay in the workspace) after
//! substitution. Only scalars (strings, numbers, booleans) substitute; a captured object or list
//! is refused rather than flattened. The plan stores and hashes the templates, so an approval
//! binds what the run may substitute, not what it happened to read.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::expect::is_capture_name;
use super::SpecError;

const PREFIX: &str = "${capture.";

/// The capture a value names when it is exactly `"${capture.<name>}"`.
pub fn template_name(value: &Value) -> Option<&str> {
    let text = value.as_str()?;
    let name = text.strip_prefix(PREFIX)?.strip_suffix('}')?;
    is_capture_name(name).then_some(name)
}

/// The captures an input refers to, by field, in field order. Refuses a `${capture.` anywhere
/// else (inside a longer string, nested in a list or object), so nothing looks like a template
/// that is not substituted.
pub fn references<'a>(input: &'a Value, field: &str) -> Result<Vec<(&'a str, &'a str)>, SpecError> {
    let mut out = Vec::new();
    let Some(map) = input.as_object() else {
        return Ok(out);
    };
    for (key, value) in map {
        if let Some(name) = template_name(value) {
            out.push((key.as_str(), name));
            continue;
        }
        if mentions_template(value) {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                "a capture template is a whole top-level value: \"${capture.<name>}\"",
            ));
        }
    }
    Ok(out)
}

/// Whether an input holds any template (cheap test before copying captures into a call).
pub fn mentions_any(input: &Value) -> bool {
    mentions_template(input)
}

fn mentions_template(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains(PREFIX),
        Value::Array(items) => items.iter().any(mentions_template),
        Value::Object(map) => map.values().any(mentions_template),
        _ => false,
    }
}

/// Why an input could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    #[error("input.{field} needs capture {name}, which was not captured in this run")]
    Missing { field: String, name: String },
    #[error(
        "input.{field}: capture {name} is {kind}; only strings, numbers and booleans substitute"
    )]
    NotScalar {
        field: String,
        name: String,
        kind: &'static str,
    },
}

/// `input` with every template replaced by its captured value.
pub fn substitute(
    input: &Value,
    captures: &BTreeMap<String, Value>,
) -> Result<Value, SubstituteError> {
    let Some(map) = input.as_object() else {
        return Ok(input.clone());
    };
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        let value = match template_name(value) {
            None => value.clone(),
            Some(name) => match captures.get(name) {
                None => {
                    return Err(SubstituteError::Missing {
                        field: key.clone(),
                        name: name.to_owned(),
                    })
                }
                Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v.clone(),
                Some(other) => {
                    return Err(SubstituteError::NotScalar {
                        field: key.clone(),
                        name: name.to_owned(),
                        kind: match other {
                            Value::Null => "null",
                            Value::Array(_) => "a list",
                            _ => "an object",
                        },
                    })
                }
            },
        };
        out.insert(key.clone(), value);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_top_level_templates_substitute_scalars_only() {
        let input =
            json!({"name": "web", "replicas": "${capture.replicas}", "revision": "${capture.rev}"});
        assert_eq!(
            references(&input, "input").unwrap(),
            vec![("replicas", "replicas"), ("revision", "rev")]
        );
        let captures: BTreeMap<String, Value> =
            [("replicas".into(), json!(3)), ("rev".into(), json!("7"))].into();
        assert_eq!(
            substitute(&input, &captures).unwrap(),
            json!({"name": "web", "replicas": 3, "revision": "7"})
        );
        let missing: BTreeMap<String, Value> = [("rev".into(), json!("7"))].into();
        assert_eq!(
            substitute(&input, &missing).unwrap_err(),
            SubstituteError::Missing {
                field: "replicas".into(),
                name: "replicas".into()
            }
        );
        let listy: BTreeMap<String, Value> =
            [("replicas".into(), json!([1])), ("rev".into(), json!("7"))].into();
        assert!(matches!(
            substitute(&input, &listy),
            Err(SubstituteError::NotScalar { kind: "a list", .. })
        ));
    }

    #[test]
    fn templates_anywhere_else_are_refused() {
        for input in [
            json!({"name": "web-${capture.x}"}),
            json!({"args": ["${capture.x}"]}),
            json!({"values": {"image": "${capture.x}"}}),
            json!({"name": "${capture.Bad}"}),
        ] {
            let err = references(&input, "input").unwrap_err();
            assert!(err.field.starts_with("input."), "{input}: {err}");
        }
        assert_eq!(template_name(&json!("${capture.ok_1}")), Some("ok_1"));
        assert_eq!(template_name(&json!("${capture.}")), None);
        assert_eq!(template_name(&json!(" ${capture.x}")), None);
    }
}
