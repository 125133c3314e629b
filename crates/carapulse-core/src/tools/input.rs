//! Validated tool input: a JSON object whose every field was declared and checked.

use serde_json::{Map, Value};

use super::{ActionSpec, FieldKind};

/// Why an input was refused; `field` names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input.{field}: {message}")]
pub struct ToolInputError {
    pub field: String,
    pub message: String,
}

/// Input that passed [`ActionSpec::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInput {
    map: Map<String, Value>,
}

impl ToolInput {
    pub(crate) fn validate(spec: &ActionSpec, input: &Value) -> Result<Self, ToolInputError> {
        Self::validate_fields(
            &format!("{}.{}", spec.tool, spec.action),
            spec.fields,
            input,
        )
    }

    /// Validates `input` against declared `fields` (`what` names the owner in errors).
    pub fn validate_fields(
        what: &str,
        fields: &[super::FieldSpec],
        input: &Value,
    ) -> Result<Self, ToolInputError> {
        let err = |field: &str, message: String| ToolInputError {
            field: field.to_owned(),
            message,
        };
        let map = match input {
            Value::Object(map) => map.clone(),
            Value::Null => Map::new(),
            _ => return Err(err("", "must be a JSON object".into())),
        };
        for key in map.keys() {
            if !fields.iter().any(|f| f.name == key) {
                let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
                return Err(err(
                    key,
                    format!("unknown field for {what} (known: {})", known.join(", ")),
                ));
            }
        }
        for field in fields {
            match map.get(field.name) {
                None | Some(Value::Null) if field.required => {
                    return Err(err(field.name, "is required".into()))
                }
                None | Some(Value::Null) => {}
                Some(value) => field.kind.check(value).map_err(|m| err(field.name, m))?,
            }
        }
        let map = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
        Ok(Self { map })
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.map.get(name).and_then(Value::as_str)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.map.get(name).and_then(Value::as_i64)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.map.get(name).and_then(Value::as_bool).unwrap_or(false)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.map.get(name).and_then(Value::as_bool)
    }

    pub fn strings(&self, name: &str) -> Vec<&str> {
        self.map
            .get(name)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    pub fn number(&self, name: &str) -> Option<f64> {
        self.map.get(name).and_then(Value::as_f64)
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    pub fn as_value(&self) -> Value {
        Value::Object(self.map.clone())
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// Declared kinds never produce argv elements starting with '-'; this double-checks a built argv.
pub(crate) fn argv_is_safe(argv: &[String], spec: &ActionSpec, input: &ToolInput) -> bool {
    let values: Vec<String> = spec
        .fields
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Text { .. }))
        .filter_map(|f| input.str(f.name).map(str::to_owned))
        .collect();
    argv.iter()
        .all(|a| !(a.starts_with('-') && values.iter().any(|v| v == a)))
}
