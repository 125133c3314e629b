//! Activities: every side effect of a plan run. They are retried (at least once), so each is
//! idempotent or records its attempt: tool calls carry the attempt number, so retries are
//! visible in `tool_calls`.

use std::sync::Arc;

use serde_json::json;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::ApplicationFailure;
use tracing::Instrument;

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry, AuditWriter};
use carapulse_core::model::{ExecutionId, ExecutionStatus, PlanId, TenantId, ToolCallStatus};
use carapulse_core::pev::{CallKind, Decision, StepCall, StepResult};
use carapulse_core::store::{
    FinishedToolCall, NewEvidence, NewToolCall, RecordedResult, Store, StoreError, ToolLogLine,
};
use carapulse_core::verify::{AnalysisNext, Verdict};

use crate::model::{DecisionRecord, FinishRequest, PlanRun, PlanSnapshot, StepRequest};
use crate::router_client::{RouterClient, RouterReply};

/// How often a running step heartbeats (the workflow's heartbeat timeout is a few times this).
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Follows a tool call's log stream on the router and appends the lines to `tool_call_logs` in
/// batches (every 200 ms or 200 lines). Failures only cost log lines, never the step.
fn spawn_log_copier(
    router: RouterClient,
    store: Store,
    tool_call_id: String,
    execution_id: ExecutionId,
    tenant: TenantId,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<serde_json::Value>(1024);
        let id = tool_call_id.clone();
        let follower = tokio::spawn(async move {
            if let Err(e) = router.follow_logs(&id, tx).await {
                tracing::warn!(tool_call_id = %id, error = %e, "cannot follow tool logs");
            }
        });
        let Ok(call_uuid) = uuid::Uuid::parse_str(&tool_call_id) else {
            return;
        };
        let mut batch: Vec<ToolLogLine> = Vec::new();
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            let line = tokio::select! {
                line = rx.recv() => line,
                _ = tick.tick() => {
                    flush(&store, &mut batch).await;
                    continue;
                }
            };
            let Some(line) = line else { break };
            batch.push(ToolLogLine {
                execution_id: execution_id.0,
                tool_call_id: call_uuid,
                tenant_id: tenant.to_string(),
                seq: line["seq"].as_i64().unwrap_or(0),
                stream: match line["stream"].as_str() {
                    Some("stderr") => "stderr".into(),
                    _ => "stdout".into(),
                },
                level: line["level"].as_str().unwrap_or("info").to_owned(),
                message: line["message"].as_str().unwrap_or("").to_owned(),
                ts: line["ts"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or_else(chrono::Utc::now),
            });
            if batch.len() >= 200 {
                flush(&store, &mut batch).await;
            }
        }
        flush(&store, &mut batch).await;
        let _ = follower.await;
    })
}

async fn flush(store: &Store, batch: &mut Vec<ToolLogLine>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.append_tool_logs(batch).await {
        tracing::warn!(error = %e, lines = batch.len(), "tool log lines not stored");
    }
    batch.clear();
}

/// Shared clients of the activities.
pub struct Activities {
    pub store: Store,
    pub audit: AuditWriter,
    pub router: RouterClient,
    /// Mints execution grants; `None` when `tool_router.grant_key` is unset (only plain reads
    /// can then run).
    pub grants: Option<crate::grants::GrantMinter>,
}

fn permanent(message: impl Into<String>) -> ActivityError {
    ActivityError::application(ApplicationFailure::non_retryable(anyhow::anyhow!(
        message.into()
    )))
}

fn ids(execution: &str, tenant: &str) -> Result<(ExecutionId, TenantId), ActivityError> {
    let e = ExecutionId::parse(execution).map_err(|e| permanent(e.to_string()))?;
    let t = TenantId::parse(tenant).map_err(|e| permanent(e.to_string()))?;
    Ok((e, t))
}

fn store_err(err: StoreError) -> ActivityError {
    match err {
        StoreError::NotFound
        | StoreError::Corrupt(_)
        | StoreError::Conflict(_)
        | StoreError::Integrity(_) => permanent(err.to_string()),
        other => anyhow::anyhow!(other.to_string()).into(),
    }
}

#[activities]
impl Activities {
    /// Loads the plan and marks the execution running.
    #[activity(name = "carapulse.start")]
    pub async fn start(
        self: Arc<Self>,
        _ctx: ActivityContext,
        run: PlanRun,
    ) -> Result<PlanSnapshot, ActivityError> {
        let (execution_id, tenant) = ids(&run.execution_id, &run.tenant_id)?;
        let plan_id = PlanId::parse(&run.plan_id).map_err(|e| permanent(e.to_string()))?;
        let plan = self
            .store
            .get_plan(&tenant, plan_id)
            .await
            .map_err(store_err)?;
        // Immutability after approval: the plan must still hash to what was approved.
        if plan.approval_state == carapulse_core::model::PlanApprovalState::Approved {
            let matches = self
                .store
                .approval_matches(&tenant, &plan)
                .await
                .map_err(store_err)?;
            if !matches {
                return Err(permanent(
                    "plan modified after approval: its hash no longer matches the approved hash",
                ));
            }
        } else if plan.approval_state != carapulse_core::model::PlanApprovalState::NotRequired {
            return Err(permanent(format!(
                "plan is {} and cannot run",
                plan.approval_state.as_str()
            )));
        }
        let execution = self
            .store
            .get_execution(&tenant, execution_id)
            .await
            .map_err(store_err)?;
        if execution.status == ExecutionStatus::Pending {
            self.store
                .transition_execution(&tenant, execution_id, ExecutionStatus::Running, None)
                .await
                .map_err(store_err)?;
        }
        Ok(PlanSnapshot {
            steps: plan.steps,
            context: plan.context,
        })
    }

    /// Runs one step through the tool router and records the tool call, progress and evidence.
    #[activity(name = "carapulse.run_step")]
    pub async fn run_step(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: StepRequest,
    ) -> Result<StepResult, ActivityError> {
        // A child of the activity's span (the Temporal plugin makes that one current); the
        // router call below continues the trace.
        let span = tracing::info_span!(
            "step",
            otel.name = %format!("step {} {}.{}", req.call.kind.as_str(), req.call.tool, req.call.action),
            plan_id = %req.plan_id,
            execution_id = %req.execution_id,
            step_id = %req.call.step_id,
            ordinal = req.call.ordinal,
            attempt = ctx.info().attempt,
            tool_call_id = tracing::field::Empty,
        );
        self.run_step_traced(ctx, req).instrument(span).await
    }

    async fn run_step_traced(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: StepRequest,
    ) -> Result<StepResult, ActivityError> {
        let (execution_id, tenant) = ids(&req.execution_id, &req.tenant_id)?;
        let call = &req.call;
        let stage = call.kind.as_str();
        let attempt = i32::try_from(ctx.info().attempt).unwrap_or(i32::MAX);
        self.store
            .record_step_progress(
                &tenant,
                execution_id,
                call.step_id,
                call.ordinal,
                stage,
                "running",
                None,
            )
            .await
            .map_err(store_err)?;
        // Preconditions and capture templates are judged before anything runs: a step that
        // must not run, or cannot be completed, fails here with nothing changed.
        if call.kind == CallKind::Act && !call.checks.preconditions.is_empty() {
            let (verdict, evidence) = crate::observe::check_preconditions(call);
            self.store
                .insert_evidence(
                    &tenant,
                    &NewEvidence {
                        execution_id,
                        step_id: Some(call.step_id),
                        kind: "precondition".into(),
                        query: None,
                        result_ref: None,
                        summary: evidence,
                        external_ids: json!({}),
                    },
                )
                .await
                .map_err(store_err)?;
            if let Err(reason) = verdict {
                return self.refuse_step(&tenant, execution_id, call, reason).await;
            }
        }
        let prepared = match crate::observe::prepare_input(call) {
            Ok(prepared) => prepared,
            Err(reason) => return self.refuse_step(&tenant, execution_id, call, reason).await,
        };
        if attempt > 1 {
            self.store
                .abandon_running_tool_calls(
                    &tenant,
                    execution_id,
                    call.step_id,
                    &format!(
                        "abandoned: the worker running it was lost; retried as attempt {attempt}"
                    ),
                )
                .await
                .map_err(store_err)?;
        }
        let tool_call_id = self
            .store
            .insert_tool_call(
                &tenant,
                &NewToolCall {
                    execution_id,
                    step_id: Some(call.step_id),
                    tool_name: call.tool.to_string(),
                    action: call.action.to_string(),
                    status: ToolCallStatus::Running,
                    input_ref: None,
                    attempt,
                },
            )
            .await
            .map_err(store_err)?;
        tracing::Span::current().record("tool_call_id", tracing::field::display(tool_call_id));
        let substitution = prepared.substituted.then(|| {
            (
                carapulse_core::grant::call_digest(call.tool, call.action.as_str(), &call.input),
                carapulse_core::grant::call_digest(
                    call.tool,
                    call.action.as_str(),
                    &prepared.input,
                ),
            )
        });
        let grant = match &self.grants {
            Some(minter) => match minter
                .mint_for_call(
                    &self.store,
                    &tenant,
                    execution_id,
                    tool_call_id,
                    substitution.as_ref().map(|(t, c)| (t.as_str(), c.as_str())),
                )
                .await
            {
                Ok(grant) => Some(grant),
                Err(crate::grants::MintError::Refused(reason)) => {
                    let reason = format!("no execution grant: {reason}");
                    let _ = self
                        .store
                        .finish_tool_call(
                            &tenant,
                            tool_call_id,
                            ToolCallStatus::Failed,
                            None,
                            None,
                            Some(&reason),
                        )
                        .await;
                    return Err(permanent(reason));
                }
                Err(crate::grants::MintError::Store(e)) => return Err(store_err(e)),
            },
            None => None,
        };
        let body = json!({
            "tool_name": call.tool, "action": call.action, "input": prepared.input,
            "context": req.context, "execution_id": req.execution_id, "tool_call_id": tool_call_id.to_string(),
        });
        // Copy the call's live log lines into Postgres while it runs, for the gateway's logs
        // stream on any replica.
        let copier = spawn_log_copier(
            self.router.clone(),
            self.store.clone(),
            tool_call_id.to_string(),
            execution_id,
            tenant.clone(),
        );
        // Heartbeat while the tool runs, so a worker crash is noticed within the heartbeat
        // timeout instead of the whole start-to-close timeout.
        let router_call = self.router.execute(&body, grant.as_deref());
        tokio::pin!(router_call);
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        let outcome = loop {
            tokio::select! {
                r = &mut router_call => break r,
                _ = beat.tick() => {
                    let _ = ctx.record_heartbeat(tool_call_id.to_string()).await;
                }
            }
        };
        // The stream ends with the call; give the copier a moment to write the tail.
        if tokio::time::timeout(std::time::Duration::from_secs(3), copier)
            .await
            .is_err()
        {
            tracing::warn!(%tool_call_id, "log copy did not finish in time; lines may be missing");
        }
        let reply = match outcome {
            Ok(reply) => reply,
            Err(unavailable) => {
                let message = unavailable.to_string();
                let _ = self
                    .store
                    .finish_tool_call(
                        &tenant,
                        tool_call_id,
                        ToolCallStatus::Failed,
                        None,
                        None,
                        Some(&message),
                    )
                    .await;
                // Retryable: Temporal backs off and tries again.
                return Err(anyhow::anyhow!(message).into());
            }
        };
        // The router has no database: the decision it took on a write is kept here, for policy
        // impact. Losing one is logged, never a reason to fail the step.
        if let Some(mut decision) = reply.policy_decision() {
            decision.plan_id = uuid::Uuid::parse_str(&req.plan_id).ok();
            if let Err(e) = self.store.insert_decisions(&[decision]).await {
                tracing::warn!(error = %e, %tool_call_id, "policy decision of the call not kept");
            }
        }
        let mut data: Option<serde_json::Value> = None;
        let mut result_ref: Option<String> = None;
        // Whether the call returned data (or ran with a substituted input) to record.
        let mut recorded = false;
        let mut demo = false;
        let (result, exit_code, output_ref, output) = match reply {
            RouterReply::Ran(v) => {
                demo = v["demo"] == true;
                data = v.get("result").filter(|r| !r.is_null()).cloned();
                result_ref = v["result_ref"].as_str().map(str::to_owned);
                recorded = data.is_some() || prepared.substituted;
                let ok = v["status"] == "succeeded";
                let reason = if ok {
                    None
                } else if v["timed_out"] == true {
                    Some("timed out".to_owned())
                } else {
                    let detail = v["stderr"]
                        .as_str()
                        .filter(|s| !s.trim().is_empty())
                        .or(v["output"].as_str())
                        .unwrap_or("");
                    Some(format!(
                        "exit {}: {}",
                        v["exit_code"]
                            .as_i64()
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| v["http_status"].to_string()),
                        detail.chars().take(500).collect::<String>()
                    ))
                };
                (
                    match reason {
                        None => StepResult::Succeeded,
                        Some(reason) => StepResult::Failed { reason },
                    },
                    v["exit_code"].as_i64().map(|c| c as i32),
                    v["output_ref"].as_str().map(str::to_owned),
                    v["output"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(4000)
                        .collect::<String>(),
                )
            }
            RouterReply::Refused {
                status, message, ..
            } => (
                StepResult::Failed {
                    reason: format!("tool router refused ({status}): {message}"),
                },
                None,
                None,
                String::new(),
            ),
        };
        let (status, error) = match &result {
            StepResult::Failed { reason } => (ToolCallStatus::Failed, Some(reason.as_str())),
            _ => (ToolCallStatus::Succeeded, None),
        };
        let recorded = recorded.then(|| RecordedResult {
            input: prepared.substituted.then_some(&prepared.input),
            result: data.as_ref(),
            result_ref: result_ref.as_deref(),
        });
        let finished = FinishedToolCall {
            status,
            output_ref: output_ref.as_deref(),
            exit_code,
            error,
            recorded,
            demo,
        };
        self.store
            .finish_tool_call_with_result(&tenant, tool_call_id, &finished)
            .await
            .map_err(store_err)?;
        let observes = !call.checks.capture.is_empty() || !call.checks.expect.is_empty();
        if result == StepResult::Succeeded && observes && call.kind != CallKind::Rollback {
            let observed = self
                .observe(&tenant, execution_id, call, tool_call_id, data.as_ref())
                .await?;
            return self
                .record_observed(&tenant, execution_id, call, observed)
                .await;
        }
        if call.kind == CallKind::Verify {
            self.store
                .insert_evidence(
                    &tenant,
                    &NewEvidence {
                        execution_id,
                        step_id: Some(call.step_id),
                        kind: format!("{}.{}", call.tool, call.action),
                        query: call.input.get("query").and_then(|q| q.as_str()).map(str::to_owned),
                        result_ref: output_ref.clone(),
                        summary: json!({"passed": result == StepResult::Succeeded, "output": output, "error": error}),
                        external_ids: json!({"tool_call_id": tool_call_id}),
                    },
                )
                .await
                .map_err(store_err)?;
        }
        let progress = match (&result, call.kind) {
            (StepResult::Failed { .. }, CallKind::Rollback) => "rollback_failed",
            (_, CallKind::Rollback) => "rolled_back",
            // A sample whose tool failed counts as a failed sample: the analysis may go on.
            (StepResult::Failed { .. }, CallKind::Verify) => {
                match call.checks.sample.map(|s| s.after(Verdict::Failed)) {
                    Some(AnalysisNext::SampleAfter(_)) => "sampling",
                    _ => "failed",
                }
            }
            (StepResult::Failed { .. }, _) => "failed",
            (_, _) => "succeeded",
        };
        self.progress(&tenant, execution_id, call, progress, error)
            .await?;
        Ok(result)
    }

    /// Records a person's answer to an inconclusive analysis (or its timeout): the step's
    /// progress and an audit event naming who decided.
    #[activity(name = "carapulse.decided")]
    pub async fn decided(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: DecisionRecord,
    ) -> Result<(), ActivityError> {
        let (execution_id, tenant) = ids(&req.execution_id, &req.tenant_id)?;
        let (progress, actor, what) = match &req.decision {
            Decision::Continue { by } => ("succeeded", by.clone(), "continue".to_owned()),
            Decision::Rollback { by } => ("failed", by.clone(), "rollback".to_owned()),
            Decision::TimedOut { after_secs } => (
                "failed",
                "system".to_owned(),
                format!("timed out after {after_secs}s"),
            ),
        };
        let error = (progress == "failed").then(|| format!("inconclusive analysis: {what}"));
        self.store
            .record_step_progress(
                &tenant,
                execution_id,
                req.step_id,
                req.ordinal,
                "verify",
                progress,
                error.as_deref(),
            )
            .await
            .map_err(store_err)?;
        let actor = if actor == "system" {
            AuditActor::system()
        } else {
            AuditActor::person(actor, None)
        };
        let entry = AuditEntry::new(tenant, actor, "execution.decision", AuditDecision::Info)
            .resource("execution", execution_id)
            .context(json!({"step": req.ordinal, "decision": req.decision, "note": req.note}));
        self.audit
            .append(entry)
            .await
            .map_err(|e| ActivityError::from(anyhow::anyhow!(e.to_string())))?;
        Ok(())
    }

    /// Writes the final status and its audit event.
    #[activity(name = "carapulse.finish")]
    pub async fn finish(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: FinishRequest,
    ) -> Result<(), ActivityError> {
        let (execution_id, tenant) = ids(&req.execution_id, &req.tenant_id)?;
        let mut error = req.outcome.reason.clone();
        if req.outcome.rollback_failed {
            error = Some(format!(
                "{}; rollback_failed: {}",
                error.unwrap_or_default(),
                req.outcome.rollback_errors.join("; ")
            ));
        }
        let current = self
            .store
            .get_execution(&tenant, execution_id)
            .await
            .map_err(store_err)?;
        if current.status == req.outcome.status {
            return Ok(());
        }
        if current.status == ExecutionStatus::Pending
            && req.outcome.status != ExecutionStatus::Running
        {
            // Approval expired or denied before anything ran: pending goes straight to the end.
        }
        let decision = if req.outcome.status == ExecutionStatus::Succeeded {
            AuditDecision::Info
        } else {
            AuditDecision::Error
        };
        let entry = AuditEntry::new(tenant.clone(), AuditActor::system(), "execution.finished", decision)
            .resource("execution", execution_id)
            .context(json!({"status": req.outcome.status, "reason": req.outcome.reason, "rollback_failed": req.outcome.rollback_failed}));
        // The status and its audit event commit together.
        self.store
            .transition_execution_audited(
                &tenant,
                execution_id,
                req.outcome.status,
                error.as_deref(),
                entry,
            )
            .await
            .map_err(store_err)?;
        crate::metrics::metrics()
            .finished
            .get_or_create(&crate::metrics::StatusLabels {
                status: req.outcome.status.as_str().to_owned(),
            })
            .inc();
        Ok(())
    }
}

/// Bookkeeping shared by the activities (not activities themselves).
impl Activities {
    /// Records a step's progress and counts it.
    async fn progress(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        call: &StepCall,
        progress: &str,
        error: Option<&str>,
    ) -> Result<(), ActivityError> {
        crate::metrics::metrics()
            .steps
            .get_or_create(&crate::metrics::StepLabels {
                kind: call.kind.as_str().to_owned(),
                outcome: progress.to_owned(),
            })
            .inc();
        self.store
            .record_step_progress(
                tenant,
                execution_id,
                call.step_id,
                call.ordinal,
                call.kind.as_str(),
                progress,
                error,
            )
            .await
            .map_err(store_err)
    }

    /// A step that must not run (a precondition is not met, its input cannot be completed):
    /// failed before any tool call.
    async fn refuse_step(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        call: &StepCall,
        reason: String,
    ) -> Result<StepResult, ActivityError> {
        tracing::info!(%execution_id, ordinal = call.ordinal, %reason, "step refused before running");
        self.progress(tenant, execution_id, call, "failed", Some(&reason))
            .await?;
        Ok(StepResult::Failed { reason })
    }

    /// Captures and judges a call that ran: captured values become evidence and an audit
    /// event; a verify call's expectations become a sample with its verdict.
    async fn observe(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        call: &StepCall,
        tool_call_id: carapulse_core::model::ToolCallId,
        data: Option<&serde_json::Value>,
    ) -> Result<StepResult, ActivityError> {
        let captured = match crate::observe::take_captures(call, data) {
            Ok(captured) => captured,
            Err(reason) => return Ok(StepResult::Failed { reason }),
        };
        if !captured.is_empty() {
            self.store
                .insert_evidence(
                    tenant,
                    &NewEvidence {
                        execution_id,
                        step_id: Some(call.step_id),
                        kind: "capture".into(),
                        query: None,
                        result_ref: None,
                        summary: json!({"captured": captured, "paths": call.checks.capture}),
                        external_ids: json!({"tool_call_id": tool_call_id}),
                    },
                )
                .await
                .map_err(store_err)?;
            let entry = AuditEntry::new(
                tenant.clone(),
                AuditActor::system(),
                "execution.captured",
                AuditDecision::Info,
            )
            .resource("execution", execution_id)
            .context(
                json!({"step": call.ordinal, "tool_call_id": tool_call_id, "captured": captured}),
            );
            self.audit
                .append(entry)
                .await
                .map_err(|e| ActivityError::from(anyhow::anyhow!(e.to_string())))?;
        }
        if call.kind != CallKind::Verify || call.checks.expect.is_empty() {
            return Ok(StepResult::Observed {
                verdict: Verdict::Passed,
                reason: None,
                captured,
            });
        }
        let judgement = crate::observe::judge(call, data);
        self.store
            .insert_evidence(
                tenant,
                &NewEvidence {
                    execution_id,
                    step_id: Some(call.step_id),
                    kind: "analysis.sample".into(),
                    query: call
                        .input
                        .get("query")
                        .and_then(|q| q.as_str())
                        .map(str::to_owned),
                    result_ref: None,
                    summary: judgement.evidence,
                    external_ids: json!({"tool_call_id": tool_call_id}),
                },
            )
            .await
            .map_err(store_err)?;
        Ok(StepResult::Observed {
            verdict: judgement.verdict,
            reason: Some(judgement.reason),
            captured,
        })
    }

    /// Step progress of an observed call: a sample in the middle of an analysis is `sampling`,
    /// an inconclusive analysis `awaiting_decision`.
    async fn record_observed(
        &self,
        tenant: &TenantId,
        execution_id: ExecutionId,
        call: &StepCall,
        result: StepResult,
    ) -> Result<StepResult, ActivityError> {
        let (progress, error) = match &result {
            StepResult::Failed { reason } => ("failed", Some(reason.as_str())),
            StepResult::Observed {
                verdict, reason, ..
            } => {
                let progress = match call.checks.sample.map(|s| s.after(*verdict)) {
                    Some(AnalysisNext::SampleAfter(_)) => "sampling",
                    Some(AnalysisNext::Done(Verdict::Failed)) => "failed",
                    Some(AnalysisNext::Done(Verdict::Inconclusive)) => "awaiting_decision",
                    Some(AnalysisNext::Done(Verdict::Passed)) => "succeeded",
                    None if *verdict == Verdict::Passed => "succeeded",
                    None => "failed",
                };
                let error = (progress != "succeeded" && progress != "sampling")
                    .then_some(reason.as_deref())
                    .flatten();
                (progress, error)
            }
            StepResult::Succeeded => ("succeeded", None),
        };
        self.progress(tenant, execution_id, call, progress, error)
            .await?;
        Ok(result)
    }
}
