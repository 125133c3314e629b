//! The tool catalogue shared by the router, the planner and the gateway.
//!
//! Every tool action is declared once ([`ActionSpec`]): its input fields with their formats
//! (from which the published JSON schema and the validation both come), whether it reads or
//! writes and how risky it is, whether it is break-glass only, the exact argv builder for the CLI,
//! and the HTTP request used as fallback or as the only path. Values that reach an argv are
//! validated per field kind first: names never start with `-`, Kubernetes names follow
//! DNS-1123, free text only travels behind `--flag=value`, paths stay inside the workspace.

mod catalogue;
mod classify;
pub mod compat;
mod fields;
mod input;
mod spec;

pub use catalogue::{catalogue, find};
pub use classify::{classify, is_account_scoped, is_sensitive_read, ActionClass};
pub use fields::{FieldKind, FieldSpec, ListOf};
pub use input::{ToolInput, ToolInputError};
pub use spec::{fields_schema, ActionSpec, ApiRequest, HttpMethod};

use crate::model::{ActionName, ModelError, StepDraft, ToolName};

fn check_call(
    tool: ToolName,
    action: &ActionName,
    input: &serde_json::Value,
) -> Result<(), ModelError> {
    let spec = find(tool, action.as_str()).ok_or_else(|| {
        let known: Vec<&str> = catalogue()
            .iter()
            .filter(|s| s.tool == tool)
            .map(|s| s.action)
            .collect();
        ModelError::new(
            "action",
            format!(
                "{tool} has no action {:?} (known: {})",
                action.as_str(),
                known.join(", ")
            ),
        )
    })?;
    let templated = crate::verify::template::references(input, "input")
        .map_err(|e| ModelError::new(e.field, e.message))?;
    if templated.is_empty() {
        return spec
            .validate(input)
            .map(|_| ())
            .map_err(|e| ModelError::new(format!("input.{}", e.field), e.message));
    }
    // A templated field is checked for existence now and for its value after substitution at
    // run time (the orchestrator re-validates the concrete input before the call).
    let mut fields: Vec<FieldSpec> = spec.fields.to_vec();
    for (key, _) in &templated {
        let field = fields.iter_mut().find(|f| f.name == *key).ok_or_else(|| {
            ModelError::new(
                format!("input.{key}"),
                format!("unknown field for {}.{}", spec.tool, spec.action),
            )
        })?;
        field.required = false;
    }
    let mut concrete = input.clone();
    if let Some(map) = concrete.as_object_mut() {
        for (key, _) in &templated {
            map.remove(*key);
        }
    }
    ToolInput::validate_fields(
        &format!("{}.{}", spec.tool, spec.action),
        &fields,
        &concrete,
    )
    .map(|_| ())
    .map_err(|e| ModelError::new(format!("input.{}", e.field), e.message))
}

/// Checks a concrete call (templates already substituted) against the catalogue, as the
/// orchestrator does right before a call whose input came from captures.
pub fn check_concrete_call(
    tool: ToolName,
    action: &str,
    input: &serde_json::Value,
) -> Result<ToolInput, ModelError> {
    let spec = find(tool, action)
        .ok_or_else(|| ModelError::new("action", format!("{tool} has no action {action:?}")))?;
    spec.validate(input)
        .map_err(|e| ModelError::new(format!("input.{}", e.field), e.message))
}

/// Checks a step (and its rollback) against the catalogue: known action, valid input.
pub fn check_step(step: &StepDraft) -> Result<(), ModelError> {
    step.validate()?;
    check_call(step.tool, &step.action, &step.input)?;
    if let Some(rb) = &step.rollback {
        check_call(rb.tool, &rb.action, &rb.input).map_err(|e| e.within("rollback"))?;
    }
    Ok(())
}
