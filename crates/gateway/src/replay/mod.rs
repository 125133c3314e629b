//! Incident replay: "what would we have done in these incidents under this policy, these
//! playbooks, this planner?", answered from what was recorded, with no side effects.
//!
//! A replay takes its incidents from one plan, one alert event, or the alert events of a time
//! window (at most [`MAX_WINDOW_EVENTS`]); each alert event is one incident per plan born from it
//! (or one, unplanned). Each is re-run through the event gates (counted in memory), the planner
//! (`recorded`: the model's recorded answer parsed again, or the plan's first revision; `rules`:
//! the rule planner with the current or candidate playbooks; `current`: whatever plans now),
//! risk, blast radius (the recorded estimate for the same targets, else one from the recorded
//! context snapshot), policy (current or candidate) and the approval requirement
//! (`incident.rs`). Nothing executes, nothing is notified, the live tables are not written: the
//! results go to `replay_runs`/`replay_incidents`, with a summary and a hash of the report
//! (`sha256` over the canonical JSON of the choices and every incident's result), so the same
//! replay twice gives the same hash. Routes, the CLI and the UI all come through [`start`].

pub(crate) mod incident;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{ModelError, PlanId, TenantId};
use carapulse_core::planner::rules::PlaybookRule;
use carapulse_core::policy::PolicyEngine;
use carapulse_core::store::{ReplayIncident, Snapshot, StoreError};

use crate::error::ApiError;
use crate::middleware::RequestContext;
use crate::state::AppState;
use crate::whatif::Candidate;

use incident::{Env, Gates, Incident, RecordedPlan};

/// Most alert events one replay may take.
pub const MAX_WINDOW_EVENTS: usize = 500;
/// Most plans of one alert event replayed (its newest).
pub const MAX_PLANS_PER_EVENT: usize = 20;
/// Most candidate playbooks.
pub const MAX_CANDIDATE_PLAYBOOKS: usize = 100;
/// Incidents stored per progress step.
const PROGRESS_BATCH: usize = 50;

/// Which planner a replay plans with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PlannerChoice {
    /// The recorded answer: the model's text parsed again, or the first revision's steps.
    #[default]
    Recorded,
    /// The rule planner, with the run's playbooks.
    Rules,
    /// The gateway's planner now (a configured model is called).
    Current,
}

/// The loaded policy or playbooks, or a candidate given in the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Choice {
    #[default]
    Current,
    Candidate,
}

/// Where a replay's incidents come from: exactly one of a plan, an alert event, or a window.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceRequest {
    /// A plan (UUID): its first revision replayed.
    #[serde(default)]
    pub plan_id: Option<String>,
    /// An alert event (UUID): each plan born from it, or the alert unplanned.
    #[serde(default)]
    pub alert_event_id: Option<String>,
    /// Start of a window of alert events (RFC 3339, or an age: `7d`, `24h`, `30m`).
    #[serde(default)]
    pub since: Option<String>,
    /// End of the window (exclusive; default now).
    #[serde(default)]
    pub until: Option<String>,
}

/// Body of `POST /v1/replays`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    pub source: SourceRequest,
    #[serde(default)]
    pub planner: PlannerChoice,
    /// `current` (the loaded policy) or `candidate` (then give `candidate`).
    #[serde(default)]
    pub policy: Choice,
    #[serde(default)]
    pub candidate: Option<Candidate>,
    /// `current` (the tenant's playbooks) or `candidate` (then give `candidate_playbooks`).
    #[serde(default)]
    pub playbooks: Choice,
    /// Playbook specs by name, in matching order (the first match wins).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub candidate_playbooks: Option<Vec<Value>>,
    /// Answer 202 at once and run in the background (progress on the event stream as
    /// `replay.progress`, the report from `GET /v1/replays/{id}`).
    #[serde(default)]
    pub background: bool,
}

/// A checked source.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Source {
    Plan {
        plan_id: PlanId,
    },
    AlertEvent {
        alert_event_id: Uuid,
    },
    Window {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ModelError::new(field, message).into()
}

impl SourceRequest {
    fn check(&self, now: DateTime<Utc>) -> Result<Source, ApiError> {
        let given = [
            self.plan_id.is_some(),
            self.alert_event_id.is_some(),
            self.since.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(invalid(
                "source",
                "give exactly one of plan_id, alert_event_id, or since (with an optional until)",
            ));
        }
        if self.until.is_some() && self.since.is_none() {
            return Err(invalid("source.until", "only with source.since"));
        }
        if let Some(id) = &self.plan_id {
            let plan_id = PlanId::parse(id).map_err(|_| ApiError::not_found("plan"))?;
            return Ok(Source::Plan { plan_id });
        }
        if let Some(id) = &self.alert_event_id {
            let id = Uuid::parse_str(id.trim()).map_err(|_| ApiError::not_found("alert event"))?;
            return Ok(Source::AlertEvent { alert_event_id: id });
        }
        let since =
            crate::whatif::parse_when("source.since", self.since.as_deref().unwrap_or(""), now)?;
        let until = match self.until.as_deref() {
            Some(raw) => crate::whatif::parse_when("source.until", raw, now)?,
            None => now,
        };
        if since >= until {
            return Err(invalid("source.since", "must be before source.until"));
        }
        Ok(Source::Window { since, until })
    }
}

/// A replay checked and ready to run.
pub(crate) struct Prepared {
    pub source: Source,
    pub planner: PlannerChoice,
    pub policy: Arc<PolicyEngine>,
    pub policy_choice: Choice,
    pub playbooks: Vec<PlaybookRule>,
    pub playbooks_choice: Choice,
    /// [`crate::replay_record::playbooks_digest`] of `playbooks`.
    pub playbooks_digest: String,
    pub incidents: Vec<Incident>,
    /// Snapshot id -> the snapshot (when still stored).
    pub snapshots: HashMap<Uuid, (DateTime<Utc>, Snapshot)>,
    pub candidate_files: Vec<String>,
}

impl Prepared {
    /// The run's choices as stored and hashed (no times or ids of the run itself).
    fn request_json(&self) -> Value {
        json!({
            "source": self.source,
            "planner": self.planner,
            "policy": {"choice": self.policy_choice, "digest": self.policy.digest(), "candidate_files": self.candidate_files},
            "playbooks": {"choice": self.playbooks_choice, "digest": self.playbooks_digest},
        })
    }
}

/// Checks a request and loads what its incidents need. Every refusal is a 4xx naming what is
/// wrong; nothing is written.
pub(crate) async fn prepare(
    state: &AppState,
    tenant: &TenantId,
    body: &ReplayRequest,
) -> Result<Prepared, ApiError> {
    let now = Utc::now();
    let source = body.source.check(now)?;
    let (policy, candidate_files) = match (body.policy, &body.candidate) {
        (Choice::Current, None) => (state.policy.current(), Vec::new()),
        (Choice::Candidate, Some(candidate)) => (
            crate::whatif::compile_candidate(state, candidate)?,
            candidate.files.keys().cloned().collect(),
        ),
        (Choice::Current, Some(_)) => {
            return Err(invalid("candidate", "only with \"policy\": \"candidate\""))
        }
        (Choice::Candidate, None) => {
            return Err(invalid(
                "candidate",
                "required with \"policy\": \"candidate\"",
            ))
        }
    };
    let playbooks = match (body.playbooks, &body.candidate_playbooks) {
        (Choice::Current, None) => state.store.playbook_rules(tenant).await?,
        (Choice::Candidate, Some(specs)) => {
            if specs.len() > MAX_CANDIDATE_PLAYBOOKS {
                return Err(invalid(
                    "candidate_playbooks",
                    format!("at most {MAX_CANDIDATE_PLAYBOOKS} playbooks"),
                ));
            }
            specs
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    // Named as `/v1/playbooks` names them: 1-128 characters, no control ones.
                    let name = crate::routes::library::text(
                        &format!("candidate_playbooks[{i}].name"),
                        spec["name"].as_str().unwrap_or(""),
                        128,
                    )?;
                    crate::routes::library::parse_playbook(
                        &name,
                        spec,
                        &format!("candidate_playbooks[{i}]"),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        (Choice::Current, Some(_)) => {
            return Err(invalid(
                "candidate_playbooks",
                "only with \"playbooks\": \"candidate\"",
            ))
        }
        (Choice::Candidate, None) => {
            return Err(invalid(
                "candidate_playbooks",
                "required with \"playbooks\": \"candidate\"",
            ))
        }
    };
    let incidents = load_incidents(state, tenant, &source).await?;
    let mut snapshots = HashMap::new();
    for incident in &incidents {
        if let Some(id) = incident.snapshot_id() {
            if snapshots.contains_key(&id) {
                continue;
            }
            match state.store.context_snapshot(tenant, id).await {
                Ok((info, snapshot)) => {
                    snapshots.insert(id, (info.collected_at, snapshot));
                }
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Prepared {
        source,
        planner: body.planner,
        policy,
        policy_choice: body.policy,
        playbooks_digest: crate::replay_record::playbooks_digest(&playbooks),
        playbooks,
        playbooks_choice: body.playbooks,
        incidents,
        snapshots,
        candidate_files,
    })
}

fn gone(code: &'static str, message: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::GONE, code, message)
}

/// The plan of `plan_id` as recorded: its first revision and first planning record.
async fn recorded_plan(
    state: &AppState,
    tenant: &TenantId,
    plan_id: PlanId,
) -> Result<RecordedPlan, ApiError> {
    let record = state
        .store
        .planning_record(tenant, plan_id, 1)
        .await?
        .map(|(_, r)| r);
    let original = match state.store.plan_revision(tenant, plan_id, 1).await {
        Ok(r) => Some(r.snapshot),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(RecordedPlan {
        plan_id: plan_id.0,
        record,
        original,
    })
}

async fn load_incidents(
    state: &AppState,
    tenant: &TenantId,
    source: &Source,
) -> Result<Vec<Incident>, ApiError> {
    match source {
        Source::Plan { plan_id } => {
            let plan = match state.store.get_plan(tenant, *plan_id).await {
                Ok(plan) => plan,
                Err(StoreError::NotFound) => return Err(ApiError::not_found("plan")),
                Err(e) => return Err(e.into()),
            };
            let recorded = recorded_plan(state, tenant, *plan_id).await?;
            let Some(record) = &recorded.record else {
                return Err(gone(
                    "planning_record_missing",
                    format!("plan {plan_id} has no planning record to replay: purged by retention (retention.policy_decision_hours) or made before records were kept"),
                ));
            };
            let at = record["policy"]["input"]["time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or(plan.created_at, |t| t.with_timezone(&Utc));
            let alert = match record["alert"]["alert_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                Some(id) => state.store.alert_event(tenant, id).await?,
                None => None,
            };
            Ok(vec![Incident {
                seq: 0,
                at,
                alert,
                plan: Some(recorded),
            }])
        }
        Source::AlertEvent { alert_event_id } => {
            let Some(event) = state.store.alert_event(tenant, *alert_event_id).await? else {
                return Err(ApiError::not_found("alert event"));
            };
            let incidents = alert_incidents(state, tenant, vec![event]).await?;
            let unplanned = incidents.iter().all(|i| i.plan.is_none());
            if unplanned && state.store.alert_has_plans(tenant, *alert_event_id).await? {
                return Err(gone(
                    "planning_record_missing",
                    format!("the plans of alert event {alert_event_id} have no planning records to replay: purged by retention (retention.policy_decision_hours) or made before records were kept"),
                ));
            }
            Ok(incidents)
        }
        Source::Window { since, until } => {
            let events = state
                .store
                .alert_events_between(tenant, *since, *until, MAX_WINDOW_EVENTS as i64 + 1)
                .await?;
            if events.len() > MAX_WINDOW_EVENTS {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "window_too_large",
                    format!("the window holds more than {MAX_WINDOW_EVENTS} alert events; narrow source.since/source.until"),
                ));
            }
            alert_incidents(state, tenant, events).await
        }
    }
}

/// Incidents of alert events, in time order: one per plan born from each (its newest
/// [`MAX_PLANS_PER_EVENT`]), or one unplanned.
async fn alert_incidents(
    state: &AppState,
    tenant: &TenantId,
    events: Vec<carapulse_core::store::AlertEventRow>,
) -> Result<Vec<Incident>, ApiError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.alert_id).collect();
    let records = state.store.alert_planning_records(tenant, &ids).await?;
    let mut by_alert: HashMap<Uuid, Vec<carapulse_core::store::AlertPlanRecord>> = HashMap::new();
    for r in records {
        by_alert.entry(r.alert_id).or_default().push(r);
    }
    let mut incidents = Vec::new();
    for event in events {
        let mut plans = by_alert.remove(&event.alert_id).unwrap_or_default();
        if plans.len() > MAX_PLANS_PER_EVENT {
            plans.drain(..plans.len() - MAX_PLANS_PER_EVENT);
        }
        if plans.is_empty() {
            incidents.push(Incident {
                seq: 0,
                at: event.started_at.unwrap_or(event.updated_at),
                alert: Some(event),
                plan: None,
            });
            continue;
        }
        for r in plans {
            let original = match state
                .store
                .plan_revision(tenant, PlanId(r.plan_id), 1)
                .await
            {
                Ok(rev) => Some(rev.snapshot),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            incidents.push(Incident {
                seq: 0,
                at: r.recorded_at,
                alert: Some(event.clone()),
                plan: Some(RecordedPlan {
                    plan_id: r.plan_id,
                    record: Some(r.record_json),
                    original,
                }),
            });
        }
    }
    incidents.sort_by(|a, b| {
        a.at.cmp(&b.at)
            .then_with(|| {
                a.alert
                    .as_ref()
                    .map(|e| e.alert_id)
                    .cmp(&b.alert.as_ref().map(|e| e.alert_id))
            })
            .then_with(|| {
                a.plan
                    .as_ref()
                    .map(|p| p.plan_id)
                    .cmp(&b.plan.as_ref().map(|p| p.plan_id))
            })
    });
    for (seq, incident) in incidents.iter_mut().enumerate() {
        incident.seq = i32::try_from(seq).unwrap_or(i32::MAX);
    }
    Ok(incidents)
}

/// `sha256:<hex>` of a replay's report: its choices and every incident's result, canonical.
pub(crate) fn report_hash(request: &Value, results: &[Value]) -> String {
    use sha2::{Digest, Sha256};
    let report = json!({"request": request, "incidents": results});
    let canonical = carapulse_core::canonical::canonical_json(&report);
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// Runs `prepared` for `tenant` to its end, storing results as it goes (progress on the event
/// stream). Returns the summary and the report hash.
pub(crate) async fn run(
    state: &AppState,
    tenant: &TenantId,
    replay_id: Uuid,
    prepared: &Prepared,
) -> Result<(Value, String), ApiError> {
    let gateway = &state.config.gateway;
    let gate_settings = crate::replay_record::gate_settings(gateway);
    // Drift is said against the current playbooks: the run's own when it uses them (loaded
    // once, in `prepare`), else read here.
    let playbooks_digest = match prepared.playbooks_choice {
        Choice::Current => prepared.playbooks_digest.clone(),
        Choice::Candidate => {
            crate::replay_record::playbooks_digest(&state.store.playbook_rules(tenant).await?)
        }
    };
    let current_policy = state.policy.current();
    let alert_context = |source: &str, alert: &carapulse_core::planner::rules::AlertFacts| {
        crate::background::event_loop::alert_context(state, tenant, source, alert)
    };
    let env = Env {
        tenant: tenant.as_str(),
        planner: prepared.planner,
        policy: &prepared.policy,
        playbooks: &prepared.playbooks,
        gateway,
        alert_context: &alert_context,
        depth: state.config.context.blast_radius_depth,
        policy_digest: current_policy.digest(),
        playbooks_digest: &playbooks_digest,
        gate_settings: &gate_settings,
        policy_is_current: prepared.policy_choice == Choice::Current,
        playbooks_are_current: prepared.playbooks_choice == Choice::Current,
    };
    let mut gates = Gates::default();
    let mut results = Vec::with_capacity(prepared.incidents.len());
    let mut batch = Vec::new();
    let mut changed = 0;
    for incident in &prepared.incidents {
        let snapshot = incident
            .snapshot_id()
            .and_then(|id| prepared.snapshots.get(&id));
        let current = match prepared.planner {
            PlannerChoice::Current => Some(current_plan(state, tenant, &env, incident).await),
            _ => None,
        };
        let result = incident::replay(&env, &mut gates, incident, snapshot, current);
        let is_changed = result["changed"].as_bool() == Some(true);
        changed += i32::from(is_changed);
        batch.push(ReplayIncident {
            seq: incident.seq,
            alert_id: incident.alert.as_ref().map(|a| a.alert_id),
            plan_id: incident.plan.as_ref().map(|p| p.plan_id),
            changed: is_changed,
            result_json: result.clone(),
        });
        results.push(result);
        if batch.len() >= PROGRESS_BATCH {
            let done = i32::try_from(results.len()).unwrap_or(i32::MAX);
            state
                .store
                .record_replay_progress(replay_id, &batch, done, changed)
                .await?;
            batch.clear();
        }
    }
    let done = i32::try_from(results.len()).unwrap_or(i32::MAX);
    state
        .store
        .record_replay_progress(replay_id, &batch, done, changed)
        .await?;
    let summary = incident::summarise(&results);
    let hash = report_hash(&prepared.request_json(), &results);
    Ok((summary, hash))
}

/// The `current` planner's steps for an incident (a configured model is called; the rules
/// otherwise, or as its fallback).
async fn current_plan(
    state: &AppState,
    tenant: &TenantId,
    env: &Env<'_>,
    incident: &Incident,
) -> Result<(Vec<carapulse_core::model::StepDraft>, String), String> {
    let record = incident.plan.as_ref().and_then(|p| p.record.as_ref());
    let context =
        record.and_then(|r| serde_json::from_value(r["policy"]["input"]["context"].clone()).ok());
    if let (Some(event), Some(alert)) = (&incident.alert, incident::facts_of(incident)) {
        let context = context.unwrap_or_else(|| (env.alert_context)(&event.source, &alert));
        return state
            .planning
            .plan_alert(tenant.as_str(), &alert, env.playbooks, &context)
            .await
            .map(|d| {
                let label = d.label();
                (d.steps, label)
            });
    }
    let intent = incident
        .plan
        .as_ref()
        .and_then(|p| p.original.as_ref())
        .and_then(|o| o["intent"].as_str())
        .unwrap_or("")
        .to_owned();
    let input = carapulse_core::planner::prompt::PromptInput {
        intent,
        context: context.unwrap_or_default(),
        service_context: Value::Null,
        evidence: Value::Null,
        memory: Vec::new(),
        constraints: json!({}),
        allow_break_glass: false,
    };
    state
        .planning
        .plan(tenant.as_str(), &input)
        .await
        .map(|d| {
            let label = d.label();
            (d.steps, label)
        })
        .map_err(|e| e.message)
}

/// Replays on this gateway at once.
static REPLAY_RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Starts a replay for the caller: checks and loads (4xx on refusal, nothing written), records
/// the run and audits it, then runs it inline or, with `background`, on its own task. Returns
/// the run's id and whether it ran to its end here.
pub(crate) async fn start(
    state: &AppState,
    ctx: &RequestContext,
    body: ReplayRequest,
) -> Result<(Uuid, bool), ApiError> {
    let tenant = ctx.tenant().clone();
    // Taken before any loading: a busy gateway refuses at once instead of reading first.
    let Ok(permit) = REPLAY_RUNS.try_acquire() else {
        let mut err = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "replay_busy",
            "replays are running on this gateway; retry shortly",
        );
        err.retry_after_secs = Some(5);
        return Err(err);
    };
    let prepared = prepare(state, &tenant, &body).await?;
    let replay_id = Uuid::now_v7();
    let request = prepared.request_json();
    let total = i32::try_from(prepared.incidents.len()).unwrap_or(i32::MAX);
    state
        .store
        .start_replay(&tenant, replay_id, ctx.actor.id.as_str(), &request, total)
        .await?;
    state
        .audit(
            ctx.audit("replay.start", AuditDecision::Info)
                .resource("replay", replay_id)
                .context(
                    json!({"request": request, "incidents": total, "background": body.background}),
                ),
        )
        .await;
    let span = tracing::info_span!("replay", %replay_id, tenant = %tenant);
    let task = {
        let state = state.clone();
        async move {
            let _permit = permit;
            let outcome = tokio::select! {
                r = run(&state, &tenant, replay_id, &prepared) => r.map_err(|e| e.message),
                () = state.shutdown.cancelled() => Err("the gateway stopped during the replay".to_owned()),
            };
            let finished = match &outcome {
                Ok((summary, hash)) => {
                    state
                        .store
                        .finish_replay(replay_id, Ok((summary, hash)))
                        .await
                }
                Err(message) => {
                    tracing::warn!(error = %message, "replay failed");
                    state.store.finish_replay(replay_id, Err(message)).await
                }
            };
            if let Err(e) = finished {
                tracing::error!(error = %e, "replay end not recorded");
            }
        }
    };
    let task = tracing::Instrument::instrument(task, span);
    if body.background {
        tokio::spawn(task);
        return Ok((replay_id, false));
    }
    task.await;
    Ok((replay_id, true))
}
