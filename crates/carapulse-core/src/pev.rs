//! The plan-execute-verify loop as a deterministic state machine, independent of Temporal.
//!
//! Act steps run in order, then verify steps. A failed act step rolls back the act steps that
//! completed, newest first; a failed verify step rolls back every act step. Rollbacks are best
//! effort — one failing does not stop the others — and a failed rollback is reported, never
//! swallowed: the outcome is then `Failed` with `rollback_failed`. Cancellation compensates the
//! same way. The orchestrator's workflow only asks [`PevMachine::next_action`] what to run and reports
//! each result with [`PevMachine::record`]; it adds no logic of its own, so this file is where the
//! behaviour is tested.
//!
//! Observation: values a step captures are kept here and handed to every later call (for
//! `${capture.x}` templates, baselines and preconditions). A verify step with expectations is an
//! analysis (one sample unless it declares a window): between samples the machine asks for a
//! durable wait ([`Next::Wait`]); an inconclusive analysis asks for a human decision
//! ([`Next::Decide`]) that continues or rolls back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ActionName, ExecutionStatus, PlanStep, Stage, StepId, ToolName};
use crate::verify::{Analysis, AnalysisNext, AnalysisState, Verdict};

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
    /// May hold `${capture.x}` templates; the activity substitutes them from `checks.captured`.
    pub input: Value,
    /// What the call observes beyond the tool's exit; empty (and absent from workflow history)
    /// for plain calls, so histories recorded before verification still replay.
    #[serde(default, skip_serializing_if = "CallChecks::is_empty")]
    pub checks: CallChecks,
}

/// What a call captures and checks, and what it can read of the run so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallChecks {
    /// Capture name -> path into this call's JSON result.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, String>,
    /// Act calls: checked over `captured` before the tool runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preconditions: Vec<Value>,
    /// Verify calls: checked over this call's JSON result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<Value>,
    /// Values captured earlier in the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub captured: BTreeMap<String, Value>,
    /// Verify calls of an analysis: its window and the samples taken before this one, so the
    /// activity can say where this sample leaves the analysis (the machine decides the same way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleOf>,
}

/// Which sample of which analysis a verify call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleOf {
    pub window: Analysis,
    pub before: AnalysisState,
}

impl SampleOf {
    /// 1-based number of this sample.
    pub fn number(&self) -> u32 {
        self.before.samples + 1
    }

    /// Where the analysis stands once this sample's verdict is in.
    pub fn after(&self, verdict: Verdict) -> AnalysisNext {
        let mut state = self.before;
        state.record(&self.window, verdict)
    }
}

impl CallChecks {
    pub fn is_empty(&self) -> bool {
        self.capture.is_empty()
            && self.preconditions.is_empty()
            && self.expect.is_empty()
            && self.captured.is_empty()
            && self.sample.is_none()
    }
}

/// The result of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StepResult {
    Succeeded,
    Failed {
        reason: String,
    },
    /// The tool ran and its result was judged: captured values, and the verdict of the
    /// expectations (`Passed` when there were none).
    Observed {
        verdict: Verdict,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        captured: BTreeMap<String, Value>,
    },
}

/// A person's answer to an inconclusive analysis, or its absence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    Continue { by: String },
    Rollback { by: String },
    TimedOut { after_secs: u64 },
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
    /// Wait this long (a durable timer), then call [`PevMachine::waited`].
    Wait {
        secs: u64,
    },
    /// An analysis was inconclusive: wait for a person, then call [`PevMachine::decide`].
    Decide {
        step_ordinal: i32,
        reason: String,
    },
    Finished(Outcome),
}

/// The analysis of the verify step in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ActiveAnalysis {
    window: Analysis,
    state: AnalysisState,
    /// Reason of the most recent failed (or else inconclusive, or else passed) sample.
    last_failure: Option<String>,
    last_inconclusive: Option<String>,
    waiting: Option<u64>,
    deciding: Option<String>,
}

impl ActiveAnalysis {
    fn for_step(step: &PlanStep) -> Result<Self, String> {
        let window = match &step.analysis {
            Some(doc) => Analysis::parse(doc, "analysis").map_err(|e| e.to_string())?,
            None => Analysis::single(),
        };
        Ok(Self {
            waiting: (window.initial_delay_secs > 0).then_some(window.initial_delay_secs),
            window,
            state: AnalysisState::default(),
            last_failure: None,
            last_inconclusive: None,
            deciding: None,
        })
    }

    fn summary(&self, reason: &Option<String>, what: &str, n: u32) -> String {
        format!(
            "{} ({what} in {n} of {} samples)",
            reason.as_deref().unwrap_or("no reason given"),
            self.state.samples
        )
    }
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
    /// Values captured so far, by name.
    captured: BTreeMap<String, Value>,
    analysis: Option<ActiveAnalysis>,
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
            captured: BTreeMap::new(),
            analysis: None,
        }
    }

    fn call(&self, step: &PlanStep, kind: CallKind) -> StepCall {
        let observes =
            !step.capture.is_empty() || !step.preconditions.is_empty() || !step.expect.is_empty();
        let checks = CallChecks {
            capture: step.capture.clone(),
            preconditions: if kind == CallKind::Act {
                step.preconditions.clone()
            } else {
                Vec::new()
            },
            expect: if kind == CallKind::Verify {
                step.expect.clone()
            } else {
                Vec::new()
            },
            captured: if observes || crate::verify::template::mentions_any(&step.input) {
                self.captured.clone()
            } else {
                BTreeMap::new()
            },
            sample: self
                .analysis
                .as_ref()
                .filter(|_| kind == CallKind::Verify)
                .map(|a| SampleOf {
                    window: a.window,
                    before: a.state,
                }),
        };
        StepCall {
            step_id: step.step_id,
            ordinal: step.ordinal,
            kind,
            tool: step.tool,
            action: step.action.clone(),
            input: step.input.clone(),
            checks,
        }
    }

    fn start_rollback(&mut self) {
        self.phase = Phase::Rollback;
        self.analysis = None;
        self.rollback_queue = self.completed_acts.iter().rev().copied().collect();
    }

    /// The verify step in progress, if any.
    pub fn current_verify_step(&self) -> Option<&PlanStep> {
        (self.phase == Phase::Verify)
            .then(|| self.verifies.get(self.verify_index))
            .flatten()
    }

    /// Values captured so far.
    pub fn captured(&self) -> &BTreeMap<String, Value> {
        &self.captured
    }

    /// The wait asked for by [`Next::Wait`] is over.
    pub fn waited(&mut self) {
        if let Some(a) = &mut self.analysis {
            a.waiting = None;
        }
    }

    /// Answers the question asked by [`Next::Decide`].
    pub fn decide(&mut self, decision: Decision) {
        let Some(active) = self.analysis.as_ref().filter(|a| a.deciding.is_some()) else {
            return;
        };
        let reason = active.deciding.clone().unwrap_or_default();
        let Some(step) = self.verifies.get(self.verify_index) else {
            return;
        };
        let what = format!(
            "verify step {} ({}.{})",
            step.ordinal, step.tool, step.action
        );
        match decision {
            Decision::Continue { .. } => {
                self.analysis = None;
                self.verify_index += 1;
                if self.cancelled {
                    self.start_rollback();
                }
            }
            Decision::Rollback { by } => {
                self.failure.get_or_insert(format!(
                    "{what} was inconclusive: {reason}; {by} chose to roll back"
                ));
                self.start_rollback();
            }
            Decision::TimedOut { after_secs } => {
                self.failure.get_or_insert(format!(
                    "{what} was inconclusive: {reason}; no decision within {after_secs}s, rolled back"
                ));
                self.start_rollback();
            }
        }
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
                        let call = self.call(step, CallKind::Act);
                        self.pending = Some(call.clone());
                        return Next::Run(call);
                    }
                    None => self.phase = Phase::Verify,
                },
                Phase::Verify => match self.verifies.get(self.verify_index) {
                    Some(step) => {
                        if !step.expect.is_empty() && self.analysis.is_none() {
                            match ActiveAnalysis::for_step(step) {
                                Ok(active) => self.analysis = Some(active),
                                Err(why) => {
                                    self.failure.get_or_insert(format!(
                                        "verify step {} has an invalid analysis: {why}",
                                        step.ordinal
                                    ));
                                    self.start_rollback();
                                    continue;
                                }
                            }
                        }
                        if let Some(active) = &self.analysis {
                            if let Some(reason) = &active.deciding {
                                return Next::Decide {
                                    step_ordinal: step.ordinal,
                                    reason: reason.clone(),
                                };
                            }
                            if let Some(secs) = active.waiting {
                                return Next::Wait { secs };
                            }
                        }
                        let call = self.call(step, CallKind::Verify);
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
                            let captured = if crate::verify::template::mentions_any(&rb.input) {
                                self.captured.clone()
                            } else {
                                BTreeMap::new()
                            };
                            let call = StepCall {
                                step_id: step.step_id,
                                ordinal: step.ordinal,
                                kind: CallKind::Rollback,
                                tool: rb.tool,
                                action: rb.action.clone(),
                                input: rb.input.clone(),
                                checks: CallChecks {
                                    captured,
                                    ..CallChecks::default()
                                },
                            };
                            self.pending = Some(call.clone());
                            return Next::Run(call);
                        }
                        None => {
                            // A read (what captures are taken with) changed nothing to undo.
                            if crate::tools::classify(step.tool, &step.action).is_write() {
                                self.not_rolled_back.push(step.step_id);
                            }
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
        if call.kind == CallKind::Verify && self.analysis.is_some() {
            self.record_sample(&call, result);
            return;
        }
        let result = match result {
            StepResult::Observed {
                verdict,
                reason,
                captured,
            } => {
                self.captured.extend(captured);
                match verdict {
                    Verdict::Passed => StepResult::Succeeded,
                    _ => StepResult::Failed {
                        reason: reason.unwrap_or_else(|| "check did not pass".into()),
                    },
                }
            }
            other => other,
        };
        match (call.kind, result) {
            (CallKind::Act, StepResult::Succeeded | StepResult::Observed { .. }) => {
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
            (CallKind::Verify, StepResult::Succeeded | StepResult::Observed { .. }) => {
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
                    _ => self.rollbacks_done += 1,
                }
                if !self.rollback_queue.is_empty() {
                    self.rollback_queue.remove(0);
                }
            }
        }
    }

    /// One analysis sample of the current verify step.
    fn record_sample(&mut self, call: &StepCall, result: StepResult) {
        let (verdict, reason) = match result {
            StepResult::Succeeded => (Verdict::Passed, None),
            StepResult::Failed { reason } => (Verdict::Failed, Some(reason)),
            StepResult::Observed {
                verdict,
                reason,
                captured,
            } => {
                self.captured.extend(captured);
                (verdict, reason)
            }
        };
        let Some(active) = self.analysis.as_mut() else {
            return;
        };
        match verdict {
            Verdict::Failed => active.last_failure = reason,
            Verdict::Inconclusive => active.last_inconclusive = reason,
            Verdict::Passed => {}
        }
        let what = format!(
            "verify step {} ({}.{})",
            call.ordinal, call.tool, call.action
        );
        match active.state.record(&active.window, verdict) {
            AnalysisNext::SampleAfter(wait) => {
                active.waiting = (wait.as_secs() > 0).then_some(wait.as_secs());
            }
            AnalysisNext::Done(Verdict::Passed) => {
                self.analysis = None;
                self.verify_index += 1;
                if self.cancelled {
                    self.start_rollback();
                }
            }
            AnalysisNext::Done(Verdict::Failed) => {
                let summary = active.summary(&active.last_failure, "failed", active.state.failures);
                self.failure
                    .get_or_insert(format!("{what} failed: {summary}"));
                self.start_rollback();
            }
            AnalysisNext::Done(Verdict::Inconclusive) => {
                let summary = active.summary(
                    &active.last_inconclusive,
                    "inconclusive",
                    active.state.inconclusives,
                );
                if self.cancelled {
                    self.failure
                        .get_or_insert(format!("{what} was inconclusive: {summary}"));
                    self.start_rollback();
                } else {
                    active.deciding = Some(summary);
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
