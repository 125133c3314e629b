//! Unit tests of the loop: every path, without Temporal.

use super::*;
use crate::model::{RollbackSpec, ToolName};
use crate::verify::Verdict;
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
            Next::Wait { .. } => machine.waited(),
            Next::Decide { .. } => panic!("no decision expected"),
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

fn observed(verdict: Verdict, reason: &str, captured: &[(&str, Value)]) -> StepResult {
    StepResult::Observed {
        verdict,
        reason: Some(reason.into()),
        captured: captured
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

/// A read that captures the replica count, a scale whose rollback uses it, and a verify step
/// with an analysis window.
fn observed_plan(analysis: Value) -> Vec<PlanStep> {
    let mut read = step(0, Stage::Act, "get", false);
    read.capture = [("replicas".to_owned(), ".spec.replicas".to_owned())].into();
    let mut scale = step(1, Stage::Act, "scale", true);
    scale.preconditions = vec![json!({"path": ".replicas", "op": "<=", "value": 10})];
    scale.rollback.as_mut().unwrap().input = json!({"replicas": "${capture.replicas}"});
    let mut verify = step(2, Stage::Verify, "query", false);
    verify.tool = ToolName::Prometheus;
    verify.expect = vec![json!({"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05})];
    verify.analysis = Some(analysis);
    vec![read, scale, verify]
}

/// Drives a machine through the act steps of `observed_plan`, capturing replicas = 3.
fn through_acts(machine: &mut PevMachine) {
    let Next::Run(read) = machine.next_action() else {
        panic!("read first")
    };
    assert!(read.checks.captured.is_empty());
    assert_eq!(read.checks.capture["replicas"], ".spec.replicas");
    machine.record(observed(Verdict::Passed, "", &[("replicas", json!(3))]));
    let Next::Run(scale) = machine.next_action() else {
        panic!("scale next")
    };
    assert_eq!(
        scale.checks.captured["replicas"],
        json!(3),
        "captures reach later calls"
    );
    assert_eq!(scale.checks.preconditions.len(), 1);
    machine.record(observed(Verdict::Passed, "", &[]));
}

#[test]
fn analysis_waits_between_samples_and_passes() {
    let mut machine = PevMachine::new(observed_plan(
        json!({"initial_delay": "10s", "interval": "5s", "count": 3, "failure_limit": 0}),
    ));
    through_acts(&mut machine);
    assert_eq!(
        machine.next_action(),
        Next::Wait { secs: 10 },
        "initial delay"
    );
    assert_eq!(
        machine.next_action(),
        Next::Wait { secs: 10 },
        "asks again until waited"
    );
    let mut samples = Vec::new();
    for _ in 0..3 {
        machine.waited();
        let Next::Run(call) = machine.next_action() else {
            panic!("a sample")
        };
        samples.push(call.checks.sample.map(|s| (s.number(), s.window.count)));
        assert_eq!(call.checks.expect.len(), 1);
        machine.record(observed(Verdict::Passed, "0.01 <= 0.05", &[]));
        if samples.len() < 3 {
            assert_eq!(machine.next_action(), Next::Wait { secs: 5 });
        }
    }
    assert_eq!(samples, vec![Some((1, 3)), Some((2, 3)), Some((3, 3))]);
    let Next::Finished(outcome) = machine.next_action() else {
        panic!("done")
    };
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert!(
        outcome.not_rolled_back.is_empty(),
        "a read has nothing to roll back"
    );
}

#[test]
fn failing_samples_roll_back_to_the_captured_value_with_the_reason() {
    let mut machine = PevMachine::new(observed_plan(
        json!({"interval": 1, "count": 5, "failure_limit": 1}),
    ));
    through_acts(&mut machine);
    let mut taken = 0;
    let rollback = loop {
        match machine.next_action() {
            Next::Wait { secs } => {
                assert_eq!(secs, 1);
                machine.waited();
            }
            Next::Run(call) if call.kind == CallKind::Verify => {
                taken += 1;
                machine.record(observed(
                    Verdict::Failed,
                    "error ratio 0.31 <= 0.05 is false",
                    &[],
                ));
            }
            Next::Run(call) => break call,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(taken, 2, "failure_limit 1: the second failure ends it");
    assert_eq!(rollback.kind, CallKind::Rollback);
    assert_eq!(rollback.input, json!({"replicas": "${capture.replicas}"}));
    assert_eq!(rollback.checks.captured["replicas"], json!(3));
    machine.record(StepResult::Succeeded);
    let Next::Finished(outcome) = machine.next_action() else {
        panic!("done")
    };
    assert_eq!(outcome.status, ExecutionStatus::RolledBack);
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("error ratio 0.31 <= 0.05 is false (failed in 2 of 2 samples)"),
        "{reason}"
    );
}

#[test]
fn inconclusive_analysis_waits_for_a_person() {
    let window = json!({"interval": 1, "count": 2});
    for (decision, status, text) in [
        (
            Decision::Continue { by: "bob".into() },
            ExecutionStatus::Succeeded,
            None,
        ),
        (
            Decision::Rollback { by: "bob".into() },
            ExecutionStatus::RolledBack,
            Some("bob chose to roll back"),
        ),
        (
            Decision::TimedOut { after_secs: 60 },
            ExecutionStatus::RolledBack,
            Some("no decision within 60s"),
        ),
    ] {
        let mut machine = PevMachine::new(observed_plan(window.clone()));
        through_acts(&mut machine);
        let Next::Run(_) = machine.next_action() else {
            panic!("sample")
        };
        machine.record(observed(Verdict::Inconclusive, "no data", &[]));
        let ask = machine.next_action();
        assert_eq!(
            ask,
            Next::Decide {
                step_ordinal: 2,
                reason: "no data (inconclusive in 1 of 1 samples)".into()
            }
        );
        assert_eq!(machine.next_action(), ask, "asks until answered");
        machine.decide(decision);
        let (_, outcome) = drive(&mut machine, |_| false);
        assert_eq!(outcome.status, status);
        if let Some(text) = text {
            assert!(outcome.reason.unwrap().contains(text));
        }
    }
}

#[test]
fn cancel_while_waiting_rolls_back_at_once() {
    let mut machine = PevMachine::new(observed_plan(json!({"initial_delay": 30, "interval": 1})));
    through_acts(&mut machine);
    assert_eq!(machine.next_action(), Next::Wait { secs: 30 });
    machine.cancel("operator");
    let Next::Run(call) = machine.next_action() else {
        panic!("rollback")
    };
    assert_eq!(call.kind, CallKind::Rollback);
}

#[test]
fn a_failed_check_on_an_act_step_rolls_back_what_ran() {
    let mut machine = PevMachine::new(observed_plan(json!({"interval": 1})));
    let Next::Run(_) = machine.next_action() else {
        panic!()
    };
    machine.record(observed(Verdict::Passed, "", &[("replicas", json!(30))]));
    let Next::Run(_) = machine.next_action() else {
        panic!()
    };
    machine.record(StepResult::Failed {
        reason: "precondition .replicas <= 10 failed".into(),
    });
    let Next::Finished(outcome) = machine.next_action() else {
        panic!("the read has nothing to undo")
    };
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert!(outcome.not_rolled_back.is_empty());
    assert!(outcome.reason.unwrap().contains("precondition"));
}

#[test]
fn plain_calls_serialise_as_before() {
    // Workflow histories recorded before verification hold calls without `checks`.
    let mut machine = PevMachine::new(three_steps());
    let Next::Run(call) = machine.next_action() else {
        panic!()
    };
    let text = serde_json::to_value(&call).unwrap();
    assert!(text.get("checks").is_none(), "{text}");
    let back: StepCall = serde_json::from_value(text).unwrap();
    assert_eq!(back, call);
    assert_eq!(
        serde_json::to_value(StepResult::Succeeded).unwrap(),
        json!("Succeeded")
    );
}
