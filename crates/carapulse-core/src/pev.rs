//! The plan-execute-verify loop as a deterministic state machine, independent of Temporal.
//!
//! Act steps run in order, then verify steps. A failed act step rolls back the act steps that
//! completed, newest first; a failed verify step rolls back every act step. Rollbacks are best
//! effort — one failing does not stop the others — and a failed rollback is reported, never
//! swallowed: the outcome is then `Failed` with `rollback_failed`. Cancellation compensates the
//! same way. The orchestrator's workflow only asks [`PevMachine::next_action`] what to run and reports
//! each result with [`PevMachine::record`]; it adds no logic of its own, so this file is where the
//! behaviour is tested.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ActionName, ExecutionStatus, PlanStep, Stage, StepId, ToolName};

/// Why a call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    Act,
    Verify,
    Rollback,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Act => "act",
            Self::Verify => "verify",
            Self::Rollback => "rollback",
        }
    }
}

/// One tool call the loop wants made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepCall {
    pub step_id: StepId,
    pub ordinal: i32,
    pub kind: CallKind,
    pub tool: ToolName,
    pub action: ActionName,
    pub input: Value,
}

/// The result of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StepResult {
    Succeeded,
    Failed { reason: String },
}

/// How the loop ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: ExecutionStatus,
    /// The first failure (act, verify or cancellation), if any.
    pub reason: Option<String>,
    pub rollback_failed: bool,
    /// Rollback failures, in the order they happened.
    pub rollback_errors: Vec<String>,
    /// Completed act steps that had no rollback to run.
    pub not_rolled_back: Vec<StepId>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Run(StepCall),
    Finished(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    Act,
    Verify,
    Rollback,
    Done,
}

/// The loop's state. Serialisable, so a workflow can expose it through a query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PevMachine {
    acts: Vec<PlanStep>,
    verifies: Vec<PlanStep>,
    phase: Phase,
    act_index: usize,
    verify_index: usize,
    completed_acts: Vec<usize>,
    rollback_queue: Vec<usize>,
    /// Rollback calls that succeeded: "rolled back" means something was undone.
    rollbacks_done: usize,
    failure: Option<String>,
    cancelled: bool,
    rollback_errors: Vec<String>,
    not_rolled_back: Vec<StepId>,
    pending: Option<StepCall>,
}

impl PevMachine {
    /// Steps in ordinal order; `stage` decides act or verify.
    pub fn new(mut steps: Vec<PlanStep>) -> Self {
        steps.sort_by_key(|s| s.ordinal);
        let (acts, verifies): (Vec<_>, Vec<_>) =
            steps.into_iter().partition(|s| s.stage == Stage::Act);
        Self {
            acts,
            verifies,
            phase: Phase::Act,
            act_index: 0,
            verify_index: 0,
            completed_acts: Vec::new(),
            rollback_queue: Vec::new(),
            rollbacks_done: 0,
            failure: None,
            cancelled: false,
            rollback_errors: Vec::new(),
            not_rolled_back: Vec::new(),
            pending: None,
        }
    }

    fn call(step: &PlanStep, kind: CallKind) -> StepCall {
        StepCall {
            step_id: step.step_id,
            ordinal: step.ordinal,
            kind,
            tool: step.tool,
            action: step.action.clone(),
            input: step.input.clone(),
        }
    }

    fn start_rollback(&mut self) {
        self.phase = Phase::Rollback;
        self.rollback_queue = self.completed_acts.iter().rev().copied().collect();
    }

    /// The next call to make, or the outcome. Calling it again before [`record`](Self::record)
    /// returns the same call.
    pub fn next_action(&mut self) -> Next {
        if let Some(call) = &self.pending {
            return Next::Run(call.clone());
        }
        loop {
            match self.phase {
                Phase::Act => match self.acts.get(self.act_index) {
                    Some(step) => {
                        let call = Self::call(step, CallKind::Act);
                        self.pending = Some(call.clone());
                        return Next::Run(call);
                    }
                    None => self.phase = Phase::Verify,
                },
                Phase::Verify => match self.verifies.get(self.verify_index) {
                    Some(step) => {
                        let call = Self::call(step, CallKind::Verify);
                        self.pending = Some(call.clone());
                        return Next::Run(call);
                    }
                    None => self.phase = Phase::Done,
                },
                Phase::Rollback => {
                    let Some(index) = self.rollback_queue.first().copied() else {
                        self.phase = Phase::Done;
                        continue;
                    };
                    let step = &self.acts[index];
                    match &step.rollback {
                        Some(rb) => {
                            let call = StepCall {
                                step_id: step.step_id,
                                ordinal: step.ordinal,
                                kind: CallKind::Rollback,
                                tool: rb.tool,
                                action: rb.action.clone(),
                                input: rb.input.clone(),
                            };
                            self.pending = Some(call.clone());
                            return Next::Run(call);
                        }
                        None => {
                            self.not_rolled_back.push(step.step_id);
                            self.rollback_queue.remove(0);
                        }
                    }
                }
                Phase::Done => return Next::Finished(self.outcome()),
            }
        }
    }

    /// Reports the result of the call last returned by [`next_action`](Self::next_action).
    pub fn record(&mut self, result: StepResult) {
        let Some(call) = self.pending.take() else {
            return;
        };
        match (call.kind, result) {
            (CallKind::Act, StepResult::Succeeded) => {
                self.completed_acts.push(self.act_index);
                self.act_index += 1;
                if self.cancelled {
                    self.start_rollback();
                }
            }
            (CallKind::Act, StepResult::Failed { reason }) => {
                self.failure.get_or_insert(format!(
                    "act step {} ({}.{}) failed: {reason}",
                    call.ordinal, call.tool, call.action
                ));
                self.start_rollback();
            }
            (CallKind::Verify, StepResult::Succeeded) => {
                self.verify_index += 1;
                if self.cancelled {
                    self.start_rollback();
                }
            }
            (CallKind::Verify, StepResult::Failed { reason }) => {
                self.failure.get_or_insert(format!(
                    "verify step {} ({}.{}) failed: {reason}",
                    call.ordinal, call.tool, call.action
                ));
                self.start_rollback();
            }
            (CallKind::Rollback, result) => {
                match result {
                    StepResult::Failed { reason } => self.rollback_errors.push(format!(
                        "rollback of step {} ({}.{}) failed: {reason}",
                        call.ordinal, call.tool, call.action
                    )),
                    StepResult::Succeeded => self.rollbacks_done += 1,
                }
                if !self.rollback_queue.is_empty() {
                    self.rollback_queue.remove(0);
                }
            }
        }
    }

    /// Requests cancellation: no new act or verify step starts; completed act steps are rolled
    /// back once the call in flight (if any) has been recorded.
    pub fn cancel(&mut self, reason: &str) {
        if self.cancelled || matches!(self.phase, Phase::Rollback | Phase::Done) {
            self.cancelled = true;
            return;
        }
        self.cancelled = true;
        self.failure.get_or_insert(format!("cancelled: {reason}"));
        if self.pending.is_none() {
            self.start_rollback();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    fn outcome(&self) -> Outcome {
        let rollback_failed = !self.rollback_errors.is_empty();
        let status = if self.failure.is_none() {
            ExecutionStatus::Succeeded
        } else if rollback_failed {
            ExecutionStatus::Failed
        } else if self.cancelled {
            ExecutionStatus::Cancelled
        } else if self.rollbacks_done > 0 {
            ExecutionStatus::RolledBack
        } else {
            // The first act step failed, or nothing done had a rollback: nothing was undone.
            ExecutionStatus::Failed
        };
        Outcome {
            status,
            reason: self.failure.clone(),
            rollback_failed,
            rollback_errors: self.rollback_errors.clone(),
            not_rolled_back: self.not_rolled_back.clone(),
        }
    }
}

#[cfg(test)]
#[path = "pev/tests.rs"]
mod tests;
