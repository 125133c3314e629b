//! The plan workflow: deterministic glue between Temporal and `carapulse_core::pev`.
//!
//! No clocks, randomness or I/O here — only activities, Temporal timers, signals and the state
//! machine. Signals: `approval` (before the run when it waits for one, and as the answer to an
//! inconclusive analysis: approved = continue, denied = roll back) and `cancel`. Query: `status`.
//!
//! Versioning: executions started before verification existed replay without the
//! [`VERIFICATION_PATCH`] marker; `tests/histories/` holds recorded histories of that code and
//! CI replays them against this one.

use std::time::Duration;

use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, CancellableFuture, SyncWorkflowContext, WorkflowContext, WorkflowContextView,
    WorkflowResult,
};

use carapulse_core::model::ExecutionStatus;
use carapulse_core::pev::{Decision, Next, Outcome, PevMachine, StepResult};

use crate::activities::Activities;
use crate::model::{
    ApprovalSignal, DecisionRecord, FinishRequest, PlanRun, RunResult, StepRequest,
};

/// Patch marker of the workflow code that observes (captures, preconditions, expectations,
/// analysis windows with durable waits and decisions).
pub const VERIFICATION_PATCH: &str = "carapulse-verification-1";

/// Bookkeeping activities (load, finish): short, retried with backoff.
fn bookkeeping() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(500))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(30))
                .maximum_attempts(20)
                .build(),
        )
        .build()
}

/// Tool steps: the router enforces the tool's own timeout; retries cover router outages.
fn step_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(15 * 60))
        .heartbeat_timeout(Duration::from_secs(10))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(5)
                .build(),
        )
        .build()
}

#[workflow]
#[derive(Default)]
pub struct PlanExecutionWorkflow {
    approval: Option<ApprovalSignal>,
    /// The answer to an inconclusive analysis (an `approval` signal received while deciding).
    decision: Option<ApprovalSignal>,
    cancel: Option<String>,
    phase: String,
}

#[workflow_methods]
impl PlanExecutionWorkflow {
    #[run(name = "carapulse.PlanExecution")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: PlanRun) -> WorkflowResult<RunResult> {
        if input.approval_required {
            ctx.state_mut(|s| s.phase = "awaiting_approval".into());
            let signalled = {
                let mut timer = ctx.timer(Duration::from_secs(input.approval_timeout_secs.max(1)));
                let signalled = temporalio_sdk::workflows::select! {
                    r = ctx.wait_condition(|s| s.approval.is_some() || s.cancel.is_some()) => { r?; true }
                    _ = timer => false,
                };
                if signalled {
                    // Dropping a timer does not cancel it on the server.
                    timer.cancel();
                }
                signalled
            };
            let approval = ctx.state(|s| s.approval.clone());
            let early_end = match (signalled, approval) {
                (false, _) => Some(end(ExecutionStatus::Expired, "approval timed out")),
                (true, Some(a)) if !a.approved => Some(end(
                    ExecutionStatus::Failed,
                    &format!("approval denied by {}", a.approver),
                )),
                (true, None) => Some(end(
                    ExecutionStatus::Cancelled,
                    "cancelled while awaiting approval",
                )),
                _ => None,
            };
            if let Some(outcome) = early_end {
                return finish(ctx, &input, outcome).await;
            }
        }

        ctx.state_mut(|s| s.phase = "starting".into());
        // Loads the plan, re-checks its approved hash, and marks the execution running.
        let snapshot = match ctx
            .execute_activity(Activities::start, input.clone(), bookkeeping())
            .await
        {
            Ok(snapshot) => snapshot,
            Err(err) => {
                let outcome = end(
                    ExecutionStatus::Failed,
                    &format!("could not start: {}", failure_chain(&err)),
                );
                return finish(ctx, &input, outcome).await;
            }
        };
        let observes = ctx.patched(VERIFICATION_PATCH);
        if !observes && snapshot.steps.iter().any(|s| s.declares_verification()) {
            // Only reachable by a history recorded before verification existed, whose start
            // refused such plans; kept so a replay never takes a path the old code could not.
            let outcome = end(
                ExecutionStatus::Failed,
                "plan declares verification that this run's workflow version does not evaluate",
            );
            return finish(ctx, &input, outcome).await;
        }
        ctx.state_mut(|s| s.phase = "running".into());
        let mut machine = PevMachine::new(snapshot.steps);
        loop {
            if let Some(reason) = ctx.state(|s| s.cancel.clone()) {
                machine.cancel(&reason);
            }
            match machine.next_action() {
                Next::Run(call) => {
                    let request = StepRequest {
                        execution_id: input.execution_id.clone(),
                        tenant_id: input.tenant_id.clone(),
                        plan_id: input.plan_id.clone(),
                        context: snapshot.context.clone(),
                        call,
                    };
                    let result = match ctx
                        .execute_activity(Activities::run_step, request, step_options())
                        .await
                    {
                        Ok(result) => result,
                        // Retries exhausted or a permanent error: the step failed, the loop rolls back.
                        Err(err) => StepResult::Failed {
                            reason: format!("step activity failed: {}", failure_chain(&err)),
                        },
                    };
                    machine.record(result);
                }
                Next::Wait { secs } => {
                    ctx.state_mut(|s| s.phase = "sampling".into());
                    let cancelled = {
                        let mut timer = ctx.timer(Duration::from_secs(secs));
                        let cancelled = temporalio_sdk::workflows::select! {
                            r = ctx.wait_condition(|s| s.cancel.is_some()) => { r?; true }
                            _ = timer => false,
                        };
                        if cancelled {
                            timer.cancel();
                        }
                        cancelled
                    };
                    if !cancelled {
                        machine.waited();
                    }
                    ctx.state_mut(|s| s.phase = "running".into());
                }
                Next::Decide {
                    step_ordinal,
                    reason: _,
                } => {
                    ctx.state_mut(|s| {
                        s.phase = "awaiting_decision".into();
                        s.decision = None;
                    });
                    let answered = {
                        let mut timer =
                            ctx.timer(Duration::from_secs(input.decision_timeout_secs.max(1)));
                        let answered = temporalio_sdk::workflows::select! {
                            r = ctx.wait_condition(|s| s.decision.is_some() || s.cancel.is_some()) => { r?; true }
                            _ = timer => false,
                        };
                        if answered {
                            timer.cancel();
                        }
                        answered
                    };
                    ctx.state_mut(|s| s.phase = "running".into());
                    let signal = ctx.state(|s| s.decision.clone());
                    let decision = match (answered, signal) {
                        (false, _) => Decision::TimedOut {
                            after_secs: input.decision_timeout_secs.max(1),
                        },
                        (true, Some(a)) if a.approved => Decision::Continue { by: a.approver },
                        (true, Some(a)) => Decision::Rollback { by: a.approver },
                        // Cancelled: the loop top turns it into a rollback.
                        (true, None) => continue,
                    };
                    let note = ctx.state(|s| s.decision.as_ref().and_then(|d| d.note.clone()));
                    let step_id = machine.current_verify_step().map(|s| s.step_id);
                    if let Some(step_id) = step_id {
                        let record = DecisionRecord {
                            execution_id: input.execution_id.clone(),
                            tenant_id: input.tenant_id.clone(),
                            step_id,
                            ordinal: step_ordinal,
                            decision: decision.clone(),
                            note,
                        };
                        ctx.execute_activity(Activities::decided, record, bookkeeping())
                            .await?;
                    }
                    machine.decide(decision);
                }
                Next::Finished(outcome) => return finish(ctx, &input, outcome).await,
            }
        }
    }

    #[signal(name = "approval")]
    pub fn approval(&mut self, _ctx: &mut SyncWorkflowContext<Self>, signal: ApprovalSignal) {
        if self.phase == "awaiting_decision" {
            self.decision = Some(signal);
        } else {
            self.approval = Some(signal);
        }
    }

    #[signal(name = "cancel")]
    pub fn cancel(&mut self, _ctx: &mut SyncWorkflowContext<Self>, reason: String) {
        self.cancel.get_or_insert(reason);
    }

    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> String {
        self.phase.clone()
    }
}

fn end(status: ExecutionStatus, reason: &str) -> Outcome {
    Outcome {
        status,
        reason: Some(reason.to_owned()),
        rollback_failed: false,
        rollback_errors: Vec::new(),
        not_rolled_back: Vec::new(),
    }
}

async fn finish(
    ctx: &mut WorkflowContext<PlanExecutionWorkflow>,
    input: &PlanRun,
    outcome: Outcome,
) -> WorkflowResult<RunResult> {
    ctx.state_mut(|s| s.phase = "finishing".into());
    let request = FinishRequest {
        execution_id: input.execution_id.clone(),
        tenant_id: input.tenant_id.clone(),
        outcome: outcome.clone(),
    };
    ctx.execute_activity(Activities::finish, request, bookkeeping())
        .await?;
    ctx.state_mut(|s| s.phase = outcome.status.as_str().into());
    Ok(RunResult {
        status: outcome.status.as_str().to_owned(),
        reason: outcome.reason,
        rollback_failed: outcome.rollback_failed,
    })
}

/// The messages of an activity failure and its causes, outermost first, so the execution's
/// error says why ("Activity task failed: tool router unreachable: ...") and not only that.
fn failure_chain(err: &temporalio_common::error::ActivityExecutionError) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut failure = err.failure();
    while let Some(f) = failure {
        if !f.message.is_empty() && parts.last() != Some(&f.message.as_str()) {
            parts.push(&f.message);
        }
        failure = f.cause.as_deref();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}
