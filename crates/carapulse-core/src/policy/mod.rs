//! Policy: OPA/Rego rules evaluated in process by regorus, plus the risk scoring that feeds them.
//!
//! The engine loads the `*.rego` files of `policy.policy_dir` (skipping `*_test.rego`), and
//! answers `{decision, constraints, ttl, reasons}` for an input built by [`PolicyInput`]. Every
//! output rule is queried by its full path. Any error — a parse failure, an undefined decision, an
//! unexpected value — is a `deny` (fail closed, reads included).

mod engine;
mod input;
mod risk;

pub use engine::{PolicyEngine, PolicyError, PolicyOutcome, RuleHit};
pub use input::{ActionType, PolicyInput, StepVerification};
pub use risk::{assess_intent, assess_steps, step_calls, RiskAssessment, StepRef};
