//! The declaration of one tool action.

use serde_json::{json, Map, Value};

use crate::model::{RiskLevel, ToolName};

use super::input::argv_is_safe;
use super::{ActionClass, FieldSpec, ToolInput, ToolInputError};

/// HTTP method of an API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
}

/// An HTTP request against the tool's configured base address.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    pub method: HttpMethod,
    /// Path below the base address; every dynamic segment is percent-encoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl ApiRequest {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: HttpMethod::Get,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: HttpMethod::Post,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
        }
    }

    pub fn with_method(mut self, method: HttpMethod) -> Self {
        self.method = method;
        self
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    pub fn query_opt(self, key: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }
}

/// Percent-encodes one path segment.
pub fn seg(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub type CliBuilder = fn(&ToolInput) -> Vec<String>;
pub type ApiBuilder = fn(&ToolInput) -> ApiRequest;

/// One action of one tool.
#[derive(Debug, Clone)]
pub struct ActionSpec {
    pub tool: ToolName,
    pub action: &'static str,
    pub description: &'static str,
    pub class: ActionClass,
    /// Destructive: only runs with break-glass.
    pub break_glass: bool,
    pub fields: &'static [FieldSpec],
    pub cli: Option<CliBuilder>,
    pub api: Option<ApiBuilder>,
}

impl ActionSpec {
    /// Checks `input` against the declared fields.
    pub fn validate(&self, input: &Value) -> Result<ToolInput, ToolInputError> {
        ToolInput::validate(self, input)
    }

    /// The argv (binary first) for the CLI path, if this action has one.
    pub fn argv(&self, input: &ToolInput) -> Option<Vec<String>> {
        let argv = (self.cli?)(input);
        // Belt and braces: a validated value can never appear as an option.
        argv_is_safe(&argv, self, input).then_some(argv)
    }

    /// The HTTP request for the API path, if this action has one.
    pub fn api_request(&self, input: &ToolInput) -> Option<ApiRequest> {
        self.api.map(|build| build(input))
    }

    pub fn is_write(&self) -> bool {
        self.class.is_write()
    }

    pub fn risk(&self) -> RiskLevel {
        self.class.risk()
    }

    /// The published JSON schema of the input.
    pub fn schema(&self) -> Value {
        fields_schema(self.fields)
    }

    /// The catalogue entry as published by `GET /v1/tools`.
    pub fn describe(&self) -> Value {
        json!({
            "action": self.action,
            "description": self.description,
            "type": if self.is_write() { "write" } else { "read" },
            "risk": self.risk(),
            "break_glass": self.break_glass,
            "cli": self.cli.is_some(),
            "api": self.api.is_some(),
            "input_schema": self.schema(),
        })
    }
}

/// The JSON schema of an object made of `fields`.
pub fn fields_schema(fields: &[FieldSpec]) -> Value {
    let mut properties = Map::new();
    for f in fields {
        let mut s = f.kind.schema();
        if let Value::Object(m) = &mut s {
            if !f.description.is_empty() {
                m.insert("description".into(), Value::String(f.description.into()));
            }
        }
        properties.insert(f.name.to_owned(), s);
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "required": required,
    })
}
