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
    spec.validate(input)
        .map(|_| ())
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
