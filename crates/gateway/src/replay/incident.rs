//! One incident replayed: the gates, the planner, risk, blast radius, policy and the approval
//! requirement run again over what was recorded, and the answer set beside the original.
//!
//! Nothing here writes anywhere: the gates count in memory ([`Gates`]), the planner reads the
//! record (or runs the rules), policy is evaluated on a rebuilt input. What an incident lacks
//! (a purged record, a missing snapshot, an answer dropped for size) is said in `missing`; what
//! changed around it since (policy, playbooks, gate settings) in `drift`, so a replay under the
//! current everything either reproduces the original or says why not.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use carapulse_core::blast_radius::{self, CallGraph};
use carapulse_core::model::{ContextRef, Decision, Intent, PlanStep, StepDraft, Trigger};
use carapulse_core::plan_diff;
use carapulse_core::planner::rules::{self, AlertFacts, PlaybookRule};
use carapulse_core::policy::{ActionType, PolicyEngine, PolicyInput};
use carapulse_core::store::{AlertEventRow, GateState, Snapshot};

use crate::background::event_loop::{alert_intent, gate_rule, service_of, settings_gate, GateStop};

use super::PlannerChoice;

/// The original plan of an incident as recorded.
#[derive(Debug, Clone)]
pub(crate) struct RecordedPlan {
    pub plan_id: uuid::Uuid,
    /// The planning record of its first revision (`None`: purged, or made before records).
    pub record: Option<Value>,
    /// Its first revision as stored (`plan_revisions` snapshot, with its steps).
    pub original: Option<Value>,
}

/// One incident: an alert event (planned or not), or a plan.
#[derive(Debug, Clone)]
pub(crate) struct Incident {
    pub seq: i32,
    /// When it happened: the plan's record time, else the alert's last change.
    pub at: DateTime<Utc>,
    pub alert: Option<AlertEventRow>,
    pub plan: Option<RecordedPlan>,
}

impl Incident {
    /// The context snapshot its planning record names.
    pub(crate) fn snapshot_id(&self) -> Option<uuid::Uuid> {
        self.plan
            .as_ref()
            .and_then(|p| p.record.as_ref())
            .and_then(|r| r["context_snapshot_id"].as_str())
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
    }
}

/// What a replay runs with (the same for every incident of a run).
pub(crate) struct Env<'a> {
    pub tenant: &'a str,
    pub planner: PlannerChoice,
    pub policy: &'a PolicyEngine,
    pub playbooks: &'a [PlaybookRule],
    pub gateway: &'a carapulse_core::config::GatewayConfig,
    /// The alert's plan context from the source's settings (when nothing was recorded).
    pub alert_context: &'a (dyn Fn(&str, &AlertFacts) -> ContextRef + Sync),
    pub depth: u32,
    /// Digests of what the run uses, compared with what each record names.
    pub policy_digest: &'a str,
    pub playbooks_digest: &'a str,
    pub gate_settings: &'a Value,
    /// Whether the run's choices are the current ones (drift is only worth saying then).
    pub policy_is_current: bool,
    pub playbooks_are_current: bool,
}

/// The gates' memory over one run: per-fingerprint counts and each service's plans, in time
/// order (the live gates count in `event_gates` and `plans`; a replay counts in here).
#[derive(Debug, Default)]
pub(crate) struct Gates {
    seen: HashMap<String, GateState>,
    planned: HashMap<String, Vec<DateTime<Utc>>>,
}

impl Gates {
    /// Whether an alert from `source` passes at `at`, counting it.
    fn pass(
        &mut self,
        gw: &carapulse_core::config::GatewayConfig,
        source: &str,
        alert: &AlertFacts,
        at: DateTime<Utc>,
    ) -> Option<GateStop> {
        if let Some(stop) = settings_gate(gw, source, alert) {
            return Some(stop);
        }
        let key = format!("{source}\u{0}{}", alert.fingerprint);
        let (pass, state) = gate_rule(gw).count(self.seen.get(&key).copied(), at);
        self.seen.insert(key, state);
        if !pass {
            return Some(GateStop::Duplicate);
        }
        if gw.event_gate_service_per_hour > 0 {
            let service = service_of(alert);
            let recent = self
                .planned
                .get(&service)
                .map(|times| {
                    times
                        .iter()
                        .filter(|t| **t >= at - Duration::hours(1) && **t <= at)
                        .count()
                })
                .unwrap_or(0);
            if recent as u64 >= u64::from(gw.event_gate_service_per_hour) {
                return Some(GateStop::ServiceRate);
            }
            self.planned.entry(service).or_default().push(at);
        }
        None
    }
}

/// The alert as planning saw it: the record's copy, else the stored event's payload.
pub(crate) fn facts_of(incident: &Incident) -> Option<AlertFacts> {
    let recorded = incident
        .plan
        .as_ref()
        .and_then(|p| p.record.as_ref())
        .map(|r| &r["alert_planning"]["facts"])
        .filter(|f| f.is_object())
        .and_then(|f| serde_json::from_value::<AlertFacts>(f.clone()).ok());
    recorded.or_else(|| {
        let event = incident.alert.as_ref()?;
        let labels = serde_json::from_value(event.payload_json["labels"].clone()).ok()?;
        let annotations =
            serde_json::from_value(event.payload_json["annotations"].clone()).unwrap_or_default();
        Some(AlertFacts {
            fingerprint: event.fingerprint.clone(),
            labels,
            annotations,
        })
    })
}

/// Steps of a stored plan snapshot, as drafts (what planning and policy work on).
fn snapshot_steps(snapshot: &Value) -> Option<Vec<StepDraft>> {
    let steps: Vec<PlanStep> = serde_json::from_value(snapshot["steps"].clone()).ok()?;
    Some(steps.iter().map(StepDraft::from).collect())
}

/// What a side (original or replayed) decided.
#[derive(Debug, Clone, Default)]
struct Side {
    gate: Option<&'static str>,
    planned: bool,
    planner: Option<String>,
    steps: Vec<StepDraft>,
    risk: Option<String>,
    decision: Option<String>,
    reasons: Vec<String>,
    approvals_required: u64,
    blast_radius: Option<Value>,
    blast_radius_source: Option<&'static str>,
}

impl Side {
    fn json(&self) -> Value {
        json!({
            "gate": self.gate.unwrap_or("passed"),
            "planned": self.planned,
            "planner": self.planner,
            "steps": self.steps.len(),
            "risk": self.risk,
            "decision": self.decision,
            "reasons": self.reasons,
            "approvals_required": self.approvals_required,
            "blast_radius": self.blast_radius,
            "blast_radius_source": self.blast_radius_source,
        })
    }

    /// The side as a plan snapshot, for the semantic diff.
    fn snapshot(&self) -> Value {
        json!({
            "steps": self.steps,
            "risk_level": self.risk,
            "policy_decision": self.decision,
            "policy_reasons": self.reasons,
        })
    }
}

/// People a decision needs: none unless the plan writes and policy (or an alert trigger) asks
/// for approval; then `constraints.approvals_required` (1 to 5), else one.
fn approvals_needed(
    writes: bool,
    decision: &str,
    trigger: Trigger,
    constraints: Option<&Map<String, Value>>,
) -> u64 {
    let asks = decision == Decision::RequireApproval.as_str() || !trigger.is_human();
    if !(writes && asks) || decision == Decision::Deny.as_str() {
        return 0;
    }
    carapulse_core::model::approvals_required_by(
        constraints.and_then(|c| c.get("approvals_required")),
    ) as u64
}

/// The original side, from the record and the first revision.
fn original_side(incident: &Incident, missing: &mut Vec<String>) -> Side {
    let Some(plan) = &incident.plan else {
        return Side {
            gate: Some("not_planned"),
            ..Side::default()
        };
    };
    let mut side = Side {
        planned: true,
        ..Side::default()
    };
    match &plan.original {
        Some(snapshot) => match snapshot_steps(snapshot) {
            Some(steps) => side.steps = steps,
            None => missing.push("the first revision's steps are unreadable".into()),
        },
        None => missing.push("the plan's first revision is gone".into()),
    }
    let Some(record) = &plan.record else {
        missing.push(
            "no planning record (made before records were kept, or purged by retention)".into(),
        );
        return side;
    };
    let trigger: Option<Trigger> = serde_json::from_value(record["trigger"].clone()).ok();
    side.planner = record["planner"]["label"].as_str().map(str::to_owned);
    let input = &record["policy"]["input"];
    let outcome = &record["policy"]["outcome"];
    side.risk = input["risk"]["level"].as_str().map(str::to_owned);
    side.decision = outcome["decision"].as_str().map(str::to_owned);
    side.reasons = strings(&outcome["reasons"]);
    side.blast_radius = input.get("blast_radius").cloned();
    side.blast_radius_source = Some("recorded");
    side.approvals_required = approvals_needed(
        input["action"]["type"].as_str() == Some("write"),
        side.decision.as_deref().unwrap_or(""),
        trigger.unwrap_or(Trigger::Alert),
        outcome["constraints"].as_object(),
    );
    side
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Where the replayed steps come from.
enum Planned {
    Steps(Vec<StepDraft>, String),
    /// The planner could not plan it (the reason).
    Failed(String),
}

/// The replayed planner's steps. `recorded` reads the model's answer from the record (parsed
/// again: the same text gives the same steps) or, for a plan no model made, takes its first
/// revision's steps; `rules` runs the rule planner with the run's playbooks. `current` is
/// resolved by the caller (it may call a model) and arrives as `current`.
fn plan_steps(
    env: &Env<'_>,
    incident: &Incident,
    original: &Side,
    facts: Option<&AlertFacts>,
    judged: &Judged,
    current: Option<Result<(Vec<StepDraft>, String), String>>,
    missing: &mut Vec<String>,
) -> Planned {
    let (context, intent) = (&judged.context, judged.intent.as_str());
    if let Some(current) = current {
        return match current {
            Ok((steps, label)) => Planned::Steps(steps, label),
            Err(e) => Planned::Failed(e),
        };
    }
    let rules_plan = |facts: Option<&AlertFacts>| -> Planned {
        let planned = match facts {
            Some(alert) => rules::plan_alert(alert, env.playbooks, context),
            None => rules::plan_intent(intent, context),
        };
        match planned.and_then(|p| p.into_draft()) {
            Ok(draft) => {
                let label = draft.label();
                Planned::Steps(draft.steps, label)
            }
            Err(e) => Planned::Failed(e.to_string()),
        }
    };
    if env.planner == PlannerChoice::Rules {
        return rules_plan(facts);
    }
    let record = incident.plan.as_ref().and_then(|p| p.record.as_ref());
    let Some(record) = record else {
        if incident.plan.is_some() {
            return Planned::Steps(original.steps.clone(), "recorded (first revision)".into());
        }
        // Never planned: nothing was recorded to read, so the rules plan it.
        missing
            .push("nothing recorded to replay (never planned): the rule planner planned it".into());
        return rules_plan(facts);
    };
    match &record["llm_response"] {
        Value::String(text) => {
            let break_glass = record["policy"]["input"]["resources"]["break_glass"]
                .as_bool()
                .unwrap_or(false);
            match carapulse_core::planner::parse::parse_plan_output(text, break_glass) {
                Ok(parsed) => Planned::Steps(
                    parsed.steps,
                    format!(
                        "recorded {}",
                        record["planner"]["label"].as_str().unwrap_or("llm")
                    ),
                ),
                Err(e) => Planned::Failed(format!("the recorded model answer does not parse: {e}")),
            }
        }
        Value::Object(dropped) if dropped.contains_key("dropped") => {
            missing.push(
                "the model's answer was dropped from the record (over 512 KiB): the first revision's steps stand in"
                    .into(),
            );
            Planned::Steps(original.steps.clone(), "recorded (first revision)".into())
        }
        _ => Planned::Steps(
            original.steps.clone(),
            format!(
                "recorded {}",
                record["planner"]["label"].as_str().unwrap_or("caller")
            ),
        ),
    }
}

/// The context, intent, trigger, actor and time the incident is judged with: the record's,
/// else the alert's as the event loop would build them now.
struct Judged {
    context: ContextRef,
    intent: String,
    trigger: Trigger,
    input: Option<Value>,
    at: DateTime<Utc>,
}

fn judged(env: &Env<'_>, incident: &Incident, facts: Option<&AlertFacts>) -> Judged {
    let record = incident.plan.as_ref().and_then(|p| p.record.as_ref());
    let original = incident.plan.as_ref().and_then(|p| p.original.as_ref());
    let alert_intent = facts.map(alert_intent);
    let intent = original
        .and_then(|o| o["intent"].as_str())
        .map(str::to_owned)
        .or(alert_intent)
        .unwrap_or_default();
    let recorded_context = record.and_then(|r| {
        serde_json::from_value::<ContextRef>(r["policy"]["input"]["context"].clone()).ok()
    });
    let context = recorded_context.unwrap_or_else(|| match (facts, &incident.alert) {
        (Some(alert), Some(event)) => (env.alert_context)(&event.source, alert),
        _ => ContextRef {
            tenant_id: env.tenant.to_owned(),
            ..Default::default()
        },
    });
    let trigger = record
        .and_then(|r| serde_json::from_value(r["trigger"].clone()).ok())
        .unwrap_or(Trigger::Alert);
    let input = record.map(|r| r["policy"]["input"].clone());
    let at = input
        .as_ref()
        .and_then(|i| i["time"].as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(incident.at, |t| t.with_timezone(&Utc));
    Judged {
        context,
        intent,
        trigger,
        input,
        at,
    }
}

/// The policy input of the replayed plan: built as plan creation builds it, then given the
/// recorded actor, time and break-glass flag (so the same plan gives the same input).
fn replayed_input(
    judged: &Judged,
    tenant: &str,
    action_type: ActionType,
    risk: &carapulse_core::policy::RiskAssessment,
    steps: &[StepDraft],
    blast: Option<&Value>,
) -> Value {
    let action = judged
        .input
        .as_ref()
        .and_then(|i| i["action"]["name"].as_str())
        .unwrap_or("plan.create");
    let built = PolicyInput::new(
        None,
        action,
        action_type,
        &judged.context,
        risk,
        false,
        judged.at,
    )
    .with_steps(steps.iter().map(Into::into));
    let mut input = serde_json::to_value(built).unwrap_or(Value::Null);
    let actor = judged
        .input
        .as_ref()
        .map(|i| i["actor"].clone())
        .unwrap_or_else(
            || json!({"id": "carapulse:event-loop", "roles": ["operator"], "tenant_id": tenant}),
        );
    input["actor"] = actor;
    if let Some(recorded) = &judged.input {
        input["time"] = recorded["time"].clone();
        input["resources"]["break_glass"] = recorded["resources"]["break_glass"].clone();
    }
    if let (Some(map), Some(blast)) = (input.as_object_mut(), blast) {
        map.insert("blast_radius".into(), blast.clone());
    }
    input
}

/// Paths (`risk.level`, `resources.steps`) where two JSON documents differ, at most 10.
fn differing_paths(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    if out.len() >= 10 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                differing_paths(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &path,
                    out,
                );
            }
        }
        _ => out.push(if prefix.is_empty() {
            "(root)".into()
        } else {
            prefix.to_owned()
        }),
    }
}

/// Replays one incident. `snapshot` is the recorded context snapshot (when the record names
/// one and it is still stored); `current` is the `current` planner's answer, when chosen.
pub(crate) fn replay(
    env: &Env<'_>,
    gates: &mut Gates,
    incident: &Incident,
    snapshot: Option<&(DateTime<Utc>, Snapshot)>,
    current: Option<Result<(Vec<StepDraft>, String), String>>,
) -> Value {
    let mut missing = Vec::new();
    let mut drift = Vec::new();
    let facts = facts_of(incident);
    let original = original_side(incident, &mut missing);
    let record = incident.plan.as_ref().and_then(|p| p.record.as_ref());
    let judged = judged(env, incident, facts.as_ref());

    // What changed around the incident since it was decided.
    if let Some(record) = record {
        match record["policy"]["digest"].as_str() {
            Some(d) if env.policy_is_current && d != env.policy_digest => drift.push(format!(
                "policy changed since: recorded {d}, now {}",
                env.policy_digest
            )),
            None if env.policy_is_current => drift.push(
                "the record names no policy digest (recorded before digests were kept)".into(),
            ),
            _ => {}
        }
        let planning = &record["alert_planning"];
        if planning.is_object() {
            if let Some(d) = planning["playbooks_digest"].as_str() {
                if env.playbooks_are_current
                    && env.planner != PlannerChoice::Recorded
                    && d != env.playbooks_digest
                {
                    drift.push(format!(
                        "playbooks changed since: recorded {d}, now {}",
                        env.playbooks_digest
                    ));
                }
            }
            if &planning["gates"] != env.gate_settings {
                drift.push(format!(
                    "event gate settings changed since: recorded {}, now {}",
                    planning["gates"], env.gate_settings
                ));
            }
        }
    }

    // Gates: alerts only (a person's plan passes none).
    let mut replayed = Side::default();
    if let (Some(alert), Some(event)) = (&facts, &incident.alert) {
        replayed.gate = gates
            .pass(env.gateway, &event.source, alert, incident.at)
            .map(GateStop::as_str);
    }
    if replayed.gate.is_none() {
        match plan_steps(
            env,
            incident,
            &original,
            facts.as_ref(),
            &judged,
            current,
            &mut missing,
        ) {
            Planned::Failed(why) => {
                replayed.gate = Some("no_plan");
                replayed.reasons = vec![why];
            }
            Planned::Steps(mut steps, label) => {
                carapulse_core::tools::compat::upgrade_steps(&mut steps);
                replayed.planned = true;
                replayed.planner = Some(label);
                replayed.steps = steps;
            }
        }
    }

    let mut input_drift = None;
    if replayed.planned {
        let risk = crate::routes::plans::score_drafts(
            &replayed.steps,
            &Intent::parse(&judged.intent).unwrap_or_default(),
            &judged.context,
        );
        let writes = risk.gated();
        let action_type = risk.action_type();
        let targets = |steps: &[StepDraft]| {
            blast_radius::step_targets(steps.iter().map(|s| (s.tool, &s.action, &s.input)))
        };
        let replayed_targets = targets(&replayed.steps);
        let (blast, source) = if record.is_some() && targets(&original.steps) == replayed_targets {
            (original.blast_radius.clone(), "recorded")
        } else if let Some((taken, snap)) = snapshot {
            let graph = blast_radius::snapshot_graph(snap, &replayed_targets);
            let estimate = blast_radius::estimate(replayed_targets, &graph, env.depth, *taken);
            (Some(estimate.policy_input()), "snapshot")
        } else {
            // No graph to read: "nothing" for a plan that writes nothing, unknown otherwise.
            let source = if replayed_targets.is_empty() {
                "no_targets"
            } else {
                missing.push("no recorded context snapshot to estimate new targets against: blast radius unknown".into());
                "unknown"
            };
            let estimate = blast_radius::estimate(
                replayed_targets,
                &CallGraph::default(),
                env.depth,
                judged.at,
            );
            (Some(estimate.policy_input()), source)
        };
        let input = replayed_input(
            &judged,
            env.tenant,
            action_type,
            &risk,
            &replayed.steps,
            blast.as_ref(),
        );
        if let Some(recorded) = &judged.input {
            if env.planner == PlannerChoice::Recorded && recorded != &input {
                let mut paths = Vec::new();
                differing_paths(recorded, &input, "", &mut paths);
                input_drift = Some(paths);
            }
        }
        let outcome = env.policy.evaluate_json(&input);
        replayed.risk = Some(risk.level.as_str().to_owned());
        replayed.decision = Some(outcome.decision.as_str().to_owned());
        let mut reasons = outcome.reasons.clone();
        reasons.sort();
        replayed.reasons = reasons;
        replayed.approvals_required = approvals_needed(
            writes,
            outcome.decision.as_str(),
            judged.trigger,
            Some(&outcome.constraints),
        );
        replayed.blast_radius = blast;
        replayed.blast_radius_source = Some(source);
    }
    if let Some(paths) = input_drift {
        drift.push(format!(
            "the policy input rebuilt from the record differs at: {}",
            paths.join(", ")
        ));
    }

    let mut changes = Vec::new();
    if original.planned != replayed.planned {
        changes.push("gate");
    }
    if original.planned && replayed.planned {
        if original.decision != replayed.decision {
            changes.push("decision");
        }
        if original.reasons != replayed.reasons {
            changes.push("reasons");
        }
        if original.approvals_required != replayed.approvals_required {
            changes.push("approvals_required");
        }
    }
    let diff = (original.planned || replayed.planned)
        .then(|| plan_diff::diff(1, &original.snapshot(), 2, &replayed.snapshot()));
    if diff
        .as_ref()
        .is_some_and(plan_diff::PlanDiff::steps_changed)
    {
        changes.push("steps");
    }
    let alertname = facts
        .as_ref()
        .and_then(|a| a.alertname())
        .map(str::to_owned);
    json!({
        "seq": incident.seq,
        "kind": if incident.alert.is_some() { "alert" } else { "plan" },
        "alert_id": incident.alert.as_ref().map(|a| a.alert_id),
        "plan_id": incident.plan.as_ref().map(|p| p.plan_id),
        "alertname": alertname,
        "fingerprint": facts.as_ref().map(|a| a.fingerprint.clone()),
        "service": facts.as_ref().map(service_of),
        "at": judged.at,
        "original": original.json(),
        "replayed": replayed.json(),
        "changes": changes,
        "changed": !changes.is_empty(),
        "diff": diff.map(|d| json!({"summary": d.summary, "text": d.text, "added": d.added.len(), "removed": d.removed.len(), "moved": d.moved.len(), "changed": d.changed.len()})),
        "drift": drift,
        "missing": missing,
    })
}

/// Totals over a run's incidents.
pub(crate) fn summarise(results: &[Value]) -> Value {
    let mut by_change: BTreeMap<String, u64> = BTreeMap::new();
    let mut transitions: BTreeMap<String, u64> = BTreeMap::new();
    let (mut changed, mut drifted, mut missing) = (0u64, 0u64, 0u64);
    let (mut planned_before, mut planned_after) = (0u64, 0u64);
    for r in results {
        if r["changed"].as_bool() == Some(true) {
            changed += 1;
        }
        if r["drift"].as_array().is_some_and(|d| !d.is_empty()) {
            drifted += 1;
        }
        if r["missing"].as_array().is_some_and(|d| !d.is_empty()) {
            missing += 1;
        }
        planned_before += u64::from(r["original"]["planned"].as_bool() == Some(true));
        planned_after += u64::from(r["replayed"]["planned"].as_bool() == Some(true));
        for c in r["changes"].as_array().into_iter().flatten() {
            if let Some(c) = c.as_str() {
                *by_change.entry(c.to_owned()).or_default() += 1;
            }
        }
        let side = |s: &Value| {
            s["decision"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| s["gate"].as_str().unwrap_or("none").to_owned())
        };
        let from = side(&r["original"]);
        let to = side(&r["replayed"]);
        if from != to {
            *transitions.entry(format!("{from} -> {to}")).or_default() += 1;
        }
    }
    json!({
        "incidents": results.len(),
        "changed": changed,
        "unchanged": results.len() as u64 - changed,
        "planned": {"original": planned_before, "replayed": planned_after},
        "by_change": by_change,
        "by_transition": transitions,
        "with_drift": drifted,
        "with_missing_data": missing,
    })
}
