//! The error every model constructor returns: which field, and what is wrong with it.

/// A value rejected at the edge, naming the field so API errors can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ModelError {
    pub field: String,
    pub message: String,
}

impl ModelError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field with a parent path (`steps[2]` + `action` -> `steps[2].action`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Rejects control characters, which have no business in names, summaries or notes.
pub(crate) fn reject_control_chars(field: &str, value: &str) -> Result<(), ModelError> {
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ModelError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}
