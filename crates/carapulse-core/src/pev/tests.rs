//! Unit tests of the loop: every path, without Temporal.

use super::*;
use crate::model::{RollbackSpec, ToolName};
use serde_json::json;

fn step(ordinal: i32, stage: Stage, action: &str, rollback: bool) -> PlanStep {
    PlanStep {
        step_id: StepId::new(),
        ordinal,
        stage,
        tool: ToolName::Kubectl,
        action: ActionName::parse(action).unwrap(),
        input: json!({"n": ordinal}),
        preconditions: vec![],
        rollback: rollback.then(|| RollbackSpec {
            tool: ToolName::Kubectl,
            action: ActionName::parse("rollout-undo").unwrap(),
            input: json!({"undo": ordinal}),
        }),
        evidence: vec![],
        capture: Default::default(),
        expect: Vec::new(),
        analysis: None,
    }
}

/// Runs the machine, failing the calls for which `fail` says so; returns the calls made.
fn drive(
    machine: &mut PevMachine,
    fail: impl Fn(&StepCall) -> bool,
) -> (Vec<(CallKind, i32)>, Outcome) {
    let mut calls = Vec::new();
    loop {
        match machine.next_action() {
            Next::Run(call) => {
                calls.push((call.kind, call.ordinal));
                let result = if fail(&call) {
                    StepResult::Failed {
                        reason: "boom".into(),
                    }
                } else {
                    StepResult::Succeeded
                };
                machine.record(result);
            }
            Next::Finished(outcome) => return (calls, outcome),
        }
    }
}

fn three_steps() -> Vec<PlanStep> {
    vec![
        step(0, Stage::Act, "scale", true),
        step(1, Stage::Act, "rollout-restart", true),
        step(2, Stage::Verify, "rollout-status", false),
    ]
}

#[test]
fn all_succeed() {
    let mut m = PevMachine::new(three_steps());
    let (calls, outcome) = drive(&mut m, |_| false);
    assert_eq!(
        calls,
        vec![
            (CallKind::Act, 0),
            (CallKind::Act, 1),
            (CallKind::Verify, 2)
        ]
    );
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert!(outcome.reason.is_none());
}

#[test]
fn failed_act_rolls_back_completed_steps_in_reverse() {
    let steps = vec![
        step(0, Stage::Act, "scale", true),
        step(1, Stage::Act, "rollout-restart", true),
        step(2, Stage::Act, "set-image", true),
        step(3, Stage::Verify, "rollout-status", false),
    ];
    let mut m = PevMachine::new(steps);
    let (calls, outcome) = drive(&mut m, |c| c.kind == CallKind::Act && c.ordinal == 2);
    assert_eq!(
        calls,
        vec![
            (CallKind::Act, 0),
            (CallKind::Act, 1),
            (CallKind::Act, 2),
            (CallKind::Rollback, 1),
            (CallKind::Rollback, 0)
        ]
    );
    assert_eq!(outcome.status, ExecutionStatus::RolledBack);
    assert!(outcome.reason.unwrap().contains("act step 2"));
}

#[test]
fn failed_verify_rolls_back_every_act_step() {
    let mut m = PevMachine::new(three_steps());
    let (calls, outcome) = drive(&mut m, |c| c.kind == CallKind::Verify);
    assert_eq!(
        calls,
        vec![
            (CallKind::Act, 0),
            (CallKind::Act, 1),
            (CallKind::Verify, 2),
            (CallKind::Rollback, 1),
            (CallKind::Rollback, 0)
        ]
    );
    assert_eq!(outcome.status, ExecutionStatus::RolledBack);
    assert!(outcome.reason.unwrap().starts_with("verify step 2"));
}

#[test]
fn failed_rollback_is_surfaced_and_others_still_run() {
    let mut m = PevMachine::new(three_steps());
    let (calls, outcome) = drive(&mut m, |c| {
        c.kind == CallKind::Verify || (c.kind == CallKind::Rollback && c.ordinal == 1)
    });
    assert_eq!(
        calls.last(),
        Some(&(CallKind::Rollback, 0)),
        "the next rollback still ran"
    );
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert!(outcome.rollback_failed);
    assert_eq!(outcome.rollback_errors.len(), 1);
    assert!(outcome.rollback_errors[0].contains("step 1"));
}

#[test]
fn steps_without_rollback_are_reported() {
    let steps = vec![
        step(0, Stage::Act, "annotate", false),
        step(1, Stage::Act, "scale", true),
        step(2, Stage::Verify, "get", false),
    ];
    let mut m = PevMachine::new(steps);
    let (calls, outcome) = drive(&mut m, |c| c.kind == CallKind::Verify);
    assert_eq!(
        calls.iter().filter(|c| c.0 == CallKind::Rollback).count(),
        1
    );
    assert_eq!(outcome.not_rolled_back.len(), 1);
    assert_eq!(outcome.status, ExecutionStatus::RolledBack);
}

#[test]
fn first_act_failing_needs_no_rollback() {
    let mut m = PevMachine::new(three_steps());
    let (calls, outcome) = drive(&mut m, |c| c.ordinal == 0);
    assert_eq!(calls, vec![(CallKind::Act, 0)]);
    // Nothing was changed, so nothing was rolled back: the run failed.
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert!(!outcome.rollback_failed);
}

#[test]
fn cancel_mid_run_compensates_after_the_call_in_flight() {
    let mut m = PevMachine::new(three_steps());
    let first = m.next_action();
    assert!(matches!(first, Next::Run(ref c) if c.ordinal == 0));
    m.cancel("operator request");
    // The call in flight is still the one to report.
    assert!(
        matches!(m.next_action(), Next::Run(ref c) if c.ordinal == 0 && c.kind == CallKind::Act)
    );
    m.record(StepResult::Succeeded);
    let (calls, outcome) = drive(&mut m, |_| false);
    assert_eq!(calls, vec![(CallKind::Rollback, 0)]);
    assert_eq!(outcome.status, ExecutionStatus::Cancelled);
    assert!(outcome.reason.unwrap().contains("operator request"));
}

#[test]
fn cancel_before_start_runs_nothing() {
    let mut m = PevMachine::new(three_steps());
    m.cancel("stop");
    let (calls, outcome) = drive(&mut m, |_| false);
    assert!(calls.is_empty());
    assert_eq!(outcome.status, ExecutionStatus::Cancelled);
}

#[test]
fn ordinals_decide_order_and_state_round_trips() {
    let mut steps = three_steps();
    steps.reverse();
    let mut m = PevMachine::new(steps);
    assert!(matches!(m.next_action(), Next::Run(ref c) if c.ordinal == 0));
    let json = serde_json::to_string(&m).unwrap();
    let mut back: PevMachine = serde_json::from_str(&json).unwrap();
    back.record(StepResult::Succeeded);
    assert!(matches!(back.next_action(), Next::Run(ref c) if c.ordinal == 1));
}

#[test]
fn empty_plan_succeeds() {
    let mut m = PevMachine::new(vec![]);
    assert_eq!(
        m.next_action(),
        Next::Finished(Outcome {
            status: ExecutionStatus::Succeeded,
            reason: None,
            rollback_failed: false,
            rollback_errors: vec![],
            not_rolled_back: vec![],
        })
    );
}
