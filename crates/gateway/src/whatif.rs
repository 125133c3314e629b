//! Policy what-if: what the loaded policy — and, side by side, a candidate policy given inline —
//! decides about a plan, as a whole and step by step, and which rules produced each answer.
//! Nothing is stored but an audit event.
//!
//! A stored plan is judged as its creator asking (with the writer roles creating it took), a
//! draft as the person asking; the plan is put to policy exactly as creation does (`plan.create`, risk scored from its steps,
//! what each step verifies); each step alone the same way, its risk scored from that step only.
//! Rules are found by querying each contributing rule on the interpreter
//! (`PolicyEngine::explain_json`): the `*_reasons` sets holding each reason, the
//! `constraint_entries` behind each constraint, the decision, with the `file:line` naming them.
//! A candidate overlays the loaded files: a file of the same name replaces it, a new one is
//! added, an empty one removes it; it must compile and keep the configured package.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{json, Value};

use carapulse_core::model::{Actor, ActorId, ContextRef, Intent, ModelError, StepDraft, MAX_STEPS};
use carapulse_core::policy::{PolicyEngine, PolicyError, PolicyInput, RuleHit};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::state::AppState;

/// Most files a candidate may hold, and bytes per file.
pub const MAX_CANDIDATE_FILES: usize = 20;
pub const MAX_CANDIDATE_FILE_BYTES: usize = 128 * 1024;

/// A candidate policy: file name -> Rego text, over the loaded files.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Candidate {
    /// `name.rego` -> text; an empty text removes the loaded file of that name.
    pub files: BTreeMap<String, String>,
}

fn invalid_policy(message: impl Into<String>) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_policy",
        message,
    )
}

/// Compiled candidates kept, most recently compiled last.
const CANDIDATES_KEPT: usize = 8;

/// Candidates compiled lately, by the digest of their merged files: a reviewer asks about the
/// same candidate again and again (each plan of a review, each page of a replay, the UI as it
/// reloads), and compiling it is most of a what-if's time. The key is the content (package and
/// every merged file), so a reload of the loaded policy or an edited candidate is a new entry;
/// the engines are immutable and shared.
static COMPILED: std::sync::Mutex<Vec<(String, std::sync::Arc<PolicyEngine>)>> =
    std::sync::Mutex::new(Vec::new());

/// Compiles `candidate` over the loaded policy (or takes it compiled from the last few); every
/// refusal is a 422 naming the file.
pub(crate) fn compile_candidate(
    state: &AppState,
    candidate: &Candidate,
) -> Result<std::sync::Arc<PolicyEngine>, ApiError> {
    if candidate.files.is_empty() {
        return Err(invalid_policy("candidate.files: give at least one file"));
    }
    if candidate.files.len() > MAX_CANDIDATE_FILES {
        return Err(invalid_policy(format!(
            "candidate.files: at most {MAX_CANDIDATE_FILES} files"
        )));
    }
    let current = state.policy.current();
    let package = current.package().to_owned();
    let mut files: BTreeMap<String, String> = current.sources().iter().cloned().collect();
    for (name, text) in &candidate.files {
        let valid_name = name.ends_with(".rego")
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid_name {
            return Err(invalid_policy(format!(
                "candidate.files: {name:?} is not a file name ending in .rego"
            )));
        }
        if text.len() > MAX_CANDIDATE_FILE_BYTES {
            return Err(invalid_policy(format!(
                "{name}: larger than {MAX_CANDIDATE_FILE_BYTES} bytes"
            )));
        }
        if text.trim().is_empty() {
            files.remove(name);
            continue;
        }
        let declared = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("package "))
            .map(str::trim);
        if declared != Some(package.as_str()) {
            return Err(invalid_policy(format!(
                "{name}: package {} is not {package}",
                declared.unwrap_or("(none)")
            )));
        }
        files.insert(name.clone(), text.clone());
    }
    let sources: Vec<(String, String)> = files.into_iter().collect();
    let key = PolicyEngine::digest_of(&package, &sources);
    let compiled = || COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, engine)) = compiled().iter().find(|(k, _)| *k == key) {
        return Ok(engine.clone());
    }
    let engine = PolicyEngine::from_sources(&package, sources).map_err(|e| match e {
        PolicyError::Parse { file, message } => invalid_policy(format!("{file}: {message}")),
        other => invalid_policy(other.to_string()),
    })?;
    let engine = std::sync::Arc::new(engine);
    let mut kept = compiled();
    kept.retain(|(k, _)| *k != key);
    if kept.len() >= CANDIDATES_KEPT {
        kept.remove(0);
    }
    kept.push((key, engine.clone()));
    Ok(engine)
}

/// One policy's answer to `input` (encoded as JSON text) with the rules behind it.
fn judge(engine: &PolicyEngine, input: &str) -> Value {
    // Decided and explained in one VM run where the policy compiled.
    let (outcome, rules) = engine.judge_text(input);
    answer(&outcome, &rules.unwrap_or_default())
}

/// How one policy's answer reads in a what-if.
fn answer(outcome: &carapulse_core::policy::PolicyOutcome, rules: &[RuleHit]) -> Value {
    json!({
        "decision": outcome.decision,
        "reasons": outcome.reasons,
        "constraints": outcome.constraints,
        "rules": rules,
        "error": outcome.error,
    })
}

fn changed(a: &Value, b: &Value) -> bool {
    ["decision", "reasons", "constraints"]
        .iter()
        .any(|k| a.get(*k) != b.get(*k))
}

/// Who a plan is judged as: a draft as its asker; a stored plan as its creator asking, with the
/// writer roles (creating it took one), so the answer is the one creation would give — whoever
/// asks the question.
pub(crate) fn judged_as(
    state: &AppState,
    ctx: &RequestContext,
    creator: Option<&ActorId>,
) -> Actor {
    match creator {
        Some(creator) => as_creator(state, ctx.actor.tenant_id.clone(), creator),
        None => ctx.actor.clone(),
    }
}

/// `creator` of a stored plan of `tenant`, with the writer roles creating it took.
pub(crate) fn as_creator(
    state: &AppState,
    tenant_id: carapulse_core::model::TenantId,
    creator: &ActorId,
) -> Actor {
    Actor {
        id: creator.clone(),
        email: None,
        roles: state.config.gateway.writer_roles.clone(),
        tenant_id,
    }
}

/// The question plan creation puts to policy for `steps` asked by `actor` at `now`: risk
/// scored from the steps (from the intent when there are none), what each step verifies.
pub(crate) fn creation_input(
    actor: &Actor,
    context: &ContextRef,
    intent: &Intent,
    steps: &[StepDraft],
    now: chrono::DateTime<chrono::Utc>,
) -> PolicyInput {
    let risk = crate::routes::plans::score_drafts(steps, intent, context);
    PolicyInput::new(
        Some(actor),
        "plan.create",
        risk.action_type(),
        context,
        &risk,
        false,
        now,
    )
    .with_steps(steps.iter().map(Into::into))
}

/// One question's answers: the loaded policy's, the candidate's, whether they differ.
type Judged = (Value, Option<Value>, bool);

/// Plans with at least this many steps are judged on two threads.
const PARALLEL_FROM: usize = 8;

/// The side-by-side answers for a plan (`context`, `intent`, `steps`) asked by `actor`. CPU
/// work (milliseconds for a long plan): call it off the async workers.
pub(crate) fn whatif(
    state: &AppState,
    actor: &Actor,
    context: &ContextRef,
    intent: &Intent,
    steps: &[StepDraft],
    blast_radius: Option<&carapulse_core::blast_radius::BlastEstimate>,
    candidate: Option<&PolicyEngine>,
) -> Value {
    let current = state.policy.current();
    // One moment for the whole answer: every judgement asks about the same time, and identical
    // questions (steps of the same shape) are answered once.
    let now = chrono::Utc::now();
    let input_for = |subset: &[StepDraft]| creation_input(actor, context, intent, subset, now);
    let answered: std::sync::Mutex<HashMap<String, Judged>> = std::sync::Mutex::default();
    let both = |input: &PolicyInput| {
        // Encoded once: the text is both what the policies are asked and the key answers are
        // remembered by. An input that cannot be encoded is denied, as `evaluate` does.
        let key = match serde_json::to_string(input) {
            Ok(key) => key,
            Err(_) => {
                let outcome = |engine: &PolicyEngine| answer(&engine.evaluate(input), &[]);
                let now = outcome(&current);
                let then = candidate.map(outcome);
                let differs = then.as_ref().is_some_and(|t| changed(&now, t));
                return (now, then, differs);
            }
        };
        let known = answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(known) = known {
            return known;
        }
        let now = judge(&current, &key);
        let then = candidate.map(|engine| judge(engine, &key));
        let differs = then.as_ref().is_some_and(|t| changed(&now, t));
        let answer = (now, then, differs);
        answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, answer.clone());
        answer
    };
    let judge_step = |i: usize, step: &StepDraft| {
        let (now, then, differs) = both(&input_for(std::slice::from_ref(step)));
        json!({
            "index": i,
            "step": carapulse_core::plan_diff::step_identity(&json!(step)),
            "current": now,
            "candidate": then,
            "changed": differs,
        })
    };
    // Each judgement is a few VM runs (the decision and each explaining rule): a long plan's
    // steps are judged on two threads, the second half beside the plan and the first half.
    let (plan_now, plan_then, plan_changed, per_step) = std::thread::scope(|scope| {
        let split = if steps.len() >= PARALLEL_FROM {
            steps.len() / 2
        } else {
            steps.len()
        };
        let judge_step = &judge_step;
        let second = (split < steps.len()).then(|| {
            scope.spawn(move || {
                steps[split..]
                    .iter()
                    .enumerate()
                    .map(|(i, step)| judge_step(split + i, step))
                    .collect::<Vec<Value>>()
            })
        });
        // The plan as a whole carries its blast-radius estimate, as creation put it to policy;
        // a step alone is asked without one.
        let (plan_now, plan_then, plan_changed) =
            both(&input_for(steps).with_blast_radius(blast_radius));
        let mut per_step: Vec<Value> = steps[..split]
            .iter()
            .enumerate()
            .map(|(i, step)| judge_step(i, step))
            .collect();
        if let Some(second) = second {
            match second.join() {
                Ok(rest) => per_step.extend(rest),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (plan_now, plan_then, plan_changed, per_step)
    });
    json!({
        "plan": {"current": plan_now, "candidate": plan_then, "changed": plan_changed},
        "steps": per_step,
        "candidate_files": candidate.map(|c| c.files().to_vec()),
    })
}

/// Validates a draft's steps as creation would (schema, then step references).
pub(crate) fn check_steps(steps: &[StepDraft]) -> Result<(), ApiError> {
    if steps.len() > MAX_STEPS {
        return Err(ModelError::new("plan.steps", format!("at most {MAX_STEPS} steps")).into());
    }
    for (i, step) in steps.iter().enumerate() {
        carapulse_core::tools::check_step(step)
            .map_err(|e| e.within(&format!("plan.steps[{i}]")))?;
    }
    carapulse_core::model::check_step_references(steps)?;
    Ok(())
}

/// Most stored decisions one impact run re-evaluates.
pub const MAX_IMPACT_DECISIONS: i64 = 100_000;
const IMPACT_PAGE: i64 = 1_000;
const SAMPLES_PER_CHANGE: usize = 5;

/// What a candidate would have changed over stored decisions.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Impact {
    pub evaluated: u64,
    pub changed: u64,
    /// `"old -> new"` decision -> count (changed reasons under the same decision count as
    /// `"allow -> allow"` and the like).
    pub by_transition: BTreeMap<String, u64>,
    /// action -> changed count.
    pub by_action: BTreeMap<String, u64>,
    /// environment -> changed count.
    pub by_environment: BTreeMap<String, u64>,
    /// transition -> the first few decisions that changed that way.
    pub samples: BTreeMap<String, Vec<Value>>,
    /// More decisions matched than `limit`: the rest were not evaluated.
    pub truncated: bool,
}

/// Re-evaluates `tenant`'s stored decisions of `[since, until)` (at most `limit`) under
/// `candidate` and counts what would change against what was decided then. With a `job`, its row
/// is moved after every page (and so announced on the event stream).
pub(crate) async fn impact(
    state: &AppState,
    tenant: &carapulse_core::model::TenantId,
    candidate: std::sync::Arc<PolicyEngine>,
    since: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
    limit: i64,
    job: Option<uuid::Uuid>,
) -> Result<Impact, ApiError> {
    let mut out = Impact::default();
    let mut after = None;
    let mut remaining = limit;
    while remaining > 0 {
        let page = state
            .store
            .decisions_page(tenant, since, until, after, IMPACT_PAGE.min(remaining))
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.decided_at, last.decision_id));
        remaining -= page.len() as i64;
        let engine = candidate.clone();
        // CPU work off the async workers: a page is ~25 ms of compiled evaluations.
        let judged = tokio::task::spawn_blocking(move || {
            page.into_iter()
                .map(|d| {
                    let outcome = engine.evaluate_json(&d.input_json);
                    (d, outcome)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| ApiError::internal())?;
        for (stored, outcome) in judged {
            out.evaluated += 1;
            let mut old_reasons: Vec<String> = stored
                .reasons
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let mut new_reasons = outcome.reasons.clone();
            old_reasons.sort();
            new_reasons.sort();
            let new_decision = outcome.decision.as_str();
            if stored.decision == new_decision && old_reasons == new_reasons {
                continue;
            }
            out.changed += 1;
            let transition = format!("{} -> {new_decision}", stored.decision);
            *out.by_transition.entry(transition.clone()).or_default() += 1;
            *out.by_action.entry(stored.action.clone()).or_default() += 1;
            *out.by_environment
                .entry(stored.environment.clone())
                .or_default() += 1;
            let samples = out.samples.entry(transition).or_default();
            if samples.len() < SAMPLES_PER_CHANGE {
                samples.push(json!({
                    "decision_id": stored.decision_id,
                    "decided_at": stored.decided_at,
                    "action": stored.action,
                    "environment": stored.environment,
                    "plan_id": stored.plan_id,
                    "reasons_then": old_reasons,
                    "reasons_candidate": new_reasons,
                }));
            }
        }
        if let Some(job) = job {
            // Progress is best effort: a failed update must not end the run.
            if let Err(e) = state
                .store
                .impact_job_progress(job, out.evaluated as i64, out.changed as i64)
                .await
            {
                tracing::warn!(error = %e, %job, "impact progress not recorded");
            }
        }
    }
    if remaining <= 0 {
        out.truncated = !state
            .store
            .decisions_page(tenant, since, until, after, 1)
            .await?
            .is_empty();
    }
    Ok(out)
}

/// `7d`, `24h`, `30m` before `now`, or an RFC 3339 time.
pub(crate) fn parse_when(
    field: &str,
    raw: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let raw = raw.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let amount: i64 = number
        .parse()
        .map_err(|_| ModelError::new(field, "an RFC 3339 time or an age such as 7d, 24h, 30m"))?;
    let age = match unit {
        "d" if (0..=366).contains(&amount) => chrono::Duration::days(amount),
        "h" if (0..=366 * 24).contains(&amount) => chrono::Duration::hours(amount),
        "m" if (0..=366 * 24 * 60).contains(&amount) => chrono::Duration::minutes(amount),
        _ => {
            return Err(ModelError::new(
                field,
                "an RFC 3339 time or an age such as 7d, 24h, 30m (at most a year)",
            )
            .into())
        }
    };
    Ok(now - age)
}

/// Runs an impact job to its end on its own task, holding `permit` (the gateway's one impact run)
/// until then; a gateway shutting down ends it as failed rather than leaving it running.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_impact_job(
    state: AppState,
    tenant: carapulse_core::model::TenantId,
    job: uuid::Uuid,
    candidate: std::sync::Arc<PolicyEngine>,
    since: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
    limit: i64,
    permit: tokio::sync::SemaphorePermit<'static>,
) {
    let span = tracing::info_span!("policy_impact_job", %job, tenant = %tenant);
    let task = async move {
        let _permit = permit;
        let run = impact(&state, &tenant, candidate, since, until, limit, Some(job));
        let result = tokio::select! {
            result = run => result.map_err(|e| e.message),
            () = state.shutdown.cancelled() => Err("the gateway stopped during the run".to_owned()),
        };
        let finished = match &result {
            Ok(report) => {
                let mut answer = serde_json::to_value(report).unwrap_or(Value::Null);
                answer["window"] = json!({"since": since, "until": until, "limit": limit});
                state
                    .store
                    .finish_impact_job(
                        job,
                        report.evaluated as i64,
                        report.changed as i64,
                        Ok(&answer),
                    )
                    .await
            }
            Err(message) => {
                tracing::warn!(error = %message, "policy impact job failed");
                state.store.finish_impact_job(job, 0, 0, Err(message)).await
            }
        };
        if let Err(e) = finished {
            tracing::error!(error = %e, "policy impact job end not recorded");
        }
    };
    tokio::spawn(tracing::Instrument::instrument(task, span));
}
