//! Verification as data: the pieces the plan-execute-verify loop uses to observe the world
//! instead of trusting a tool's exit code.
//!
//! - [`path`]: a small path syntax over a tool's JSON result (`.spec.replicas`,
//!   `.data.result[0].value[1]`, `.items[*].status.phase`), parsed once, never executed.
//! - [`expect`]: the typed comparison language shared by preconditions and expectations
//!   (`{"path", "op", "value"}`, baselines relative to a captured value, `all`/`any` over series,
//!   an explicit rule for empty results), validated at plan creation and evaluated to a verdict.
//! - [`analysis`]: analysis windows (initial delay, interval, count, failure and inconclusive
//!   limits) and the pure state machine that turns a sequence of sample verdicts into a result.
//! - [`report`]: what an execution captured, checked and sampled, gathered for people.
//! - [`template`]: `"${capture.<name>}"` in a later step's input, substituted at run time.
//!
//! Everything here is pure: no I/O, no clock, no Temporal. The orchestrator supplies results and
//! timers; these modules say what they mean.

pub mod analysis;
pub mod expect;
pub mod path;
pub mod report;
pub mod template;

pub use analysis::{Analysis, AnalysisNext, AnalysisState};
pub use expect::{Expectation, Outcome, Verdict};
pub use path::ValuePath;

/// Why a verification document is invalid: the field (relative to the document) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
