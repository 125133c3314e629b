//! The plan-integrity hash: approval stores it, execution recomputes it and refuses on mismatch.
//!
//! It covers everything that decides what will run — steps (tool, action, input, rollback,
//! preconditions, evidence, order, stage), context, constraints, intent and summary — and who
//! asked for it and how (`created_by`, `trigger`, `session_id`: separation of duties and session
//! scoping depend on them) — so a plan edited after approval (through the API or straight in the
//! database) cannot execute.

use serde_json::{json, Value};

use crate::canonical::{canonical_json, sha256_hex};
use crate::model::{Plan, PlanStep};

/// Hex SHA-256 over the canonical form of the plan's executable content.
pub fn plan_hash(plan: &Plan) -> String {
    let steps: Vec<Value> = plan.steps.iter().map(step_value).collect();
    let mut doc = json!({
        "plan_id": plan.plan_id,
        "tenant_id": plan.tenant_id,
        "summary": plan.summary,
        "intent": plan.intent,
        "context": plan.context,
        "constraints": plan.constraints,
        "risk_level": plan.risk_level,
        "created_by": plan.created_by,
        "trigger": plan.trigger,
        "session_id": plan.session_id,
        "steps": steps,
    });
    // A revised plan's hash names its revision, so an approval of revision 1 never matches
    // revision 3 even when 3 restores 1's content (revision 1 keeps its old hash).
    if plan.revision > 1 {
        doc["revision"] = json!(plan.revision);
    }
    sha256_hex(canonical_json(&doc).as_bytes())
}

fn step_value(step: &PlanStep) -> Value {
    let mut value = json!({
        "step_id": step.step_id,
        "ordinal": step.ordinal,
        "stage": step.stage,
        "tool": step.tool,
        "action": step.action,
        "input": step.input,
        "preconditions": step.preconditions,
        "rollback": step.rollback,
        "evidence": step.evidence,
    });
    // Verification parts are hashed when present (older steps keep their hash): changing an
    // expectation, a capture or an analysis window invalidates the approval.
    if !step.capture.is_empty() {
        value["capture"] = json!(step.capture);
    }
    if !step.expect.is_empty() {
        value["expect"] = json!(step.expect);
    }
    if let Some(analysis) = &step.analysis {
        value["analysis"] = analysis.clone();
    }
    value
}
