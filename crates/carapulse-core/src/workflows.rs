//! The workflow catalogue: named templates (`gitops_deploy`, `helm_release`, `scale_service`,
//! `incident_remediation`, `secret_rotation`, and the rule planner's `release_rollback` and
//! `service_restart`) that turn a validated input into plan steps. A
//! started workflow is an ordinary plan — risk, policy, approval and the plan-execute-verify loop
//! all apply — so templates only decide which steps, in which order, with which rollbacks.

use serde_json::{json, Value};

use crate::model::{ActionName, ModelError, RollbackSpec, Stage, StepDraft, ToolName};
use crate::tools::{fields_schema, FieldKind as K, FieldSpec as F, ListOf, ToolInput};

/// One catalogue entry.
#[derive(Debug, Clone, Copy)]
pub struct WorkflowTemplate {
    pub name: &'static str,
    pub description: &'static str,
    pub fields: &'static [F],
    build: fn(&ToolInput) -> Result<Vec<StepDraft>, ModelError>,
}

impl WorkflowTemplate {
    pub fn schema(&self) -> Value {
        fields_schema(self.fields)
    }

    pub fn describe(&self) -> Value {
        json!({"name": self.name, "description": self.description, "input_schema": self.schema()})
    }

    /// Checks a version's input defaults: an object whose every field is one of the template's
    /// and valid for it (none is required: the caller's input completes them).
    pub fn check_defaults(&self, defaults: &Value) -> Result<(), ModelError> {
        if !defaults.is_object() {
            return Err(ModelError::new("defaults", "must be a JSON object"));
        }
        let optional: Vec<F> = self
            .fields
            .iter()
            .map(|f| F {
                required: false,
                ..*f
            })
            .collect();
        ToolInput::validate_fields(self.name, &optional, defaults)
            .map(|_| ())
            .map_err(|e| ModelError::new(format!("defaults.{}", e.field), e.message))
    }

    /// Validates `input` and builds the steps (each checked against the tool catalogue).
    pub fn steps(&self, input: &Value) -> Result<Vec<StepDraft>, ModelError> {
        // The Go version's input names (stored schedules, playbooks) still work.
        let mut input = input.clone();
        crate::tools::compat::upgrade_input(self.name, &mut input);
        let input = ToolInput::validate_fields(self.name, self.fields, &input)
            .map_err(|e| ModelError::new(format!("input.{}", e.field), e.message))?;
        let steps = (self.build)(&input)?;
        for (i, step) in steps.iter().enumerate() {
            crate::tools::check_step(step).map_err(|e| e.within(&format!("template step {i}")))?;
        }
        crate::model::check_step_references(&steps)?;
        Ok(steps)
    }
}

/// `input` over a version's `defaults`: the caller's fields win, absent ones come from the
/// version.
pub fn with_defaults(input: &Value, defaults: &Value) -> Value {
    let mut merged = defaults.as_object().cloned().unwrap_or_default();
    if let Some(given) = input.as_object() {
        for (k, v) in given {
            merged.insert(k.clone(), v.clone());
        }
    }
    Value::Object(merged)
}

fn step(
    stage: Stage,
    tool: ToolName,
    action: &str,
    input: Value,
    rollback: Option<(ToolName, &str, Value)>,
) -> Result<StepDraft, ModelError> {
    Ok(StepDraft {
        stage,
        tool,
        action: ActionName::parse(action)?,
        input,
        preconditions: Vec::new(),
        rollback: match rollback {
            Some((tool, action, input)) => Some(RollbackSpec {
                tool,
                action: ActionName::parse(action)?,
                input,
            }),
            None => None,
        },
        evidence: Vec::new(),
        capture: Default::default(),
        expect: Vec::new(),
        analysis: None,
    })
}

fn capturing(mut step: StepDraft, captures: &[(&str, &str)]) -> StepDraft {
    step.capture = captures
        .iter()
        .map(|(name, path)| ((*name).to_owned(), (*path).to_owned()))
        .collect();
    step
}

fn expecting(mut step: StepDraft, expect: Vec<Value>) -> StepDraft {
    step.expect = expect;
    step
}

/// The SLO checks a template's input asks for: baseline reads to run before the change (act
/// steps that capture) and verify steps with expectations, sampled over `analysis` when given.
///
/// - `promql` (+ optional `threshold`): every series at most the threshold, or, without one,
///   the query must return data.
/// - `error_ratio`: every series at most `error_ratio_max` (default 0.05).
/// - `latency`: read before the change, and afterwards at most that x `baseline_factor`
///   (default 1.2).
fn slo_checks(i: &ToolInput) -> Result<(Vec<StepDraft>, Vec<StepDraft>), ModelError> {
    let series = ".data.result[*].value[1]";
    let analysis = i.value("analysis").cloned();
    let query = |q: &str, stage: Stage| {
        step(
            stage,
            ToolName::Prometheus,
            "query",
            json!({"query": q}),
            None,
        )
    };
    let mut before = Vec::new();
    let mut checks = Vec::new();
    if let Some(q) = i.str("promql") {
        let expect = match i.number("threshold") {
            Some(t) => json!({"path": series, "op": "<=", "value": t}),
            None => json!({"path": ".data.result[0]", "op": "exists"}),
        };
        checks.push(expecting(query(q, Stage::Verify)?, vec![expect]));
    }
    if let Some(q) = i.str("error_ratio") {
        let max = i.number("error_ratio_max").unwrap_or(0.05);
        checks.push(expecting(
            query(q, Stage::Verify)?,
            vec![json!({"path": series, "op": "<=", "value": max})],
        ));
    }
    if let Some(q) = i.str("latency") {
        let factor = i.number("baseline_factor").unwrap_or(1.2);
        before.push(capturing(
            query(q, Stage::Act)?,
            &[("latency_before", ".data.result[0].value[1]")],
        ));
        checks.push(expecting(
            query(q, Stage::Verify)?,
            vec![
                json!({"path": series, "op": "<=", "baseline": "latency_before", "factor": factor}),
            ],
        ));
    }
    if analysis.is_some() && checks.is_empty() {
        return Err(ModelError::new(
            "input.analysis",
            "an analysis window samples SLO checks: give promql, error_ratio or latency",
        ));
    }
    for check in &mut checks {
        check.analysis = analysis.clone();
    }
    Ok((before, checks))
}

/// `steps` with the SLO reads first and the SLO checks last.
fn with_slo(i: &ToolInput, steps: Vec<StepDraft>) -> Result<Vec<StepDraft>, ModelError> {
    let (mut out, checks) = slo_checks(i)?;
    out.extend(steps);
    out.extend(checks);
    Ok(out)
}

/// An Argo CD application's state, read as JSON.
fn argocd_state(app: &str, stage: Stage) -> Result<StepDraft, ModelError> {
    step(stage, ToolName::Argocd, "status", json!({"app": app}), None)
}

/// Healthy and synced (and at `revision` when one was asked for).
fn argocd_healthy(app: &str, revision: Option<&str>) -> Result<StepDraft, ModelError> {
    let mut expect = vec![
        json!({"path": ".status.health.status", "op": "==", "value": "Healthy"}),
        json!({"path": ".status.sync.status", "op": "==", "value": "Synced"}),
    ];
    if let Some(rev) = revision {
        expect.push(json!({"path": ".status.sync.revision", "op": "==", "value": rev}));
    }
    Ok(expecting(argocd_state(app, Stage::Verify)?, expect))
}

/// A workload's ready replicas reach its desired count (captured before as `replicas_before`,
/// or `desired` when given).
fn workload_ready(
    resource: &str,
    namespace: &str,
    desired: Option<i64>,
) -> Result<StepDraft, ModelError> {
    let ready = match desired {
        Some(0) => {
            json!({"path": ".status.readyReplicas", "op": "==", "value": 0, "on_empty": "pass"})
        }
        Some(n) => {
            json!({"path": ".status.readyReplicas", "op": ">=", "value": n, "on_empty": "fail"})
        }
        None => {
            json!({"path": ".status.readyReplicas", "op": ">=", "baseline": "replicas_before", "on_empty": "fail"})
        }
    };
    Ok(expecting(
        step(
            Stage::Verify,
            ToolName::Kubectl,
            "get",
            json!({"resource": resource, "namespace": namespace}),
            None,
        )?,
        vec![ready],
    ))
}

fn gitops_deploy(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let app = i.str("app").unwrap_or_default();
    let mut sync = json!({"app": app});
    if let Some(rev) = i.str("revision") {
        sync["revision"] = json!(rev);
    }
    let mut steps = with_slo(
        i,
        vec![
            // The history entry deployed now is what a rollback returns to.
            capturing(
                argocd_state(app, Stage::Act)?,
                &[
                    ("history_id", ".status.history[-1].id"),
                    ("synced_revision", ".status.sync.revision"),
                ],
            ),
            step(
                Stage::Act,
                ToolName::Argocd,
                "sync-preview",
                json!({"app": app}),
                None,
            )?,
            step(
                Stage::Act,
                ToolName::Argocd,
                "sync",
                sync,
                Some((
                    ToolName::Argocd,
                    "rollback",
                    json!({"app": app, "id": "${capture.history_id}"}),
                )),
            )?,
            step(
                Stage::Verify,
                ToolName::Argocd,
                "wait",
                json!({"app": app, "timeout": 600}),
                None,
            )?,
            argocd_healthy(app, i.str("revision"))?,
        ],
    )?;
    steps.push(step(
        Stage::Verify,
        ToolName::Grafana,
        "annotation-create",
        json!({"text": format!("carapulse: deployed {app} {}", i.str("revision").unwrap_or("")), "tags": ["carapulse", "deploy"]}),
        None,
    )?);
    Ok(steps)
}

fn helm_release(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let release = i.str("release").unwrap_or_default();
    let namespace = i.str("namespace").unwrap_or_default();
    let mut upgrade =
        json!({"release": release, "chart": i.str("chart"), "namespace": namespace, "wait": true});
    if let Some(v) = i.str("version") {
        upgrade["version"] = json!(v);
    }
    if let Some(v) = i.value("values_ref") {
        upgrade["values_ref"] = v.clone();
    }
    let target = json!({"release": release, "namespace": namespace});
    let mut steps = vec![
        // The revision deployed now, read before the upgrade: the rollback returns to exactly it.
        capturing(
            step(Stage::Act, ToolName::Helm, "status", target.clone(), None)?,
            &[("revision", ".version")],
        ),
        step(
            Stage::Act,
            ToolName::Helm,
            "upgrade",
            upgrade,
            Some((
                ToolName::Helm,
                "rollback",
                json!({"release": release, "namespace": namespace, "revision": "${capture.revision}", "wait": true}),
            )),
        )?,
        expecting(
            step(Stage::Verify, ToolName::Helm, "status", target, None)?,
            vec![json!({"path": ".info.status", "op": "==", "value": "deployed"})],
        ),
    ];
    if let Some(resource) = i.str("resource") {
        steps.push(step(
            Stage::Verify,
            ToolName::Kubectl,
            "rollout-status",
            json!({"resource": resource, "namespace": namespace, "timeout": "5m"}),
            None,
        )?);
    }
    with_slo(i, steps)
}

fn scale_service(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let resource = i.str("resource").unwrap_or_default();
    let namespace = i.str("namespace").unwrap_or_default();
    let replicas = i.int("replicas").unwrap_or(0);
    let max_delta = i.int("max_delta").unwrap_or(10);
    let target = json!({"resource": resource, "namespace": namespace});
    // The change is bounded against what the cluster reports, not what the caller believes.
    let mut guard = vec![
        json!({"path": ".current_replicas", "op": ">=", "value": (replicas - max_delta).max(0)}),
        json!({"path": ".current_replicas", "op": "<=", "value": replicas + max_delta}),
    ];
    if let Some(expected) = i.int("current_replicas") {
        // A stated count that already breaks the bound would fail the precondition anyway.
        if (replicas - expected).abs() > max_delta {
            return Err(ModelError::new(
                "input.replicas",
                format!("changing {expected} -> {replicas} exceeds max_delta {max_delta}"),
            ));
        }
        guard.push(json!({"path": ".current_replicas", "op": "==", "value": expected}));
    }
    let mut scale = step(
        Stage::Act,
        ToolName::Kubectl,
        "scale",
        // --current-replicas makes kubectl refuse if the count moved since it was read.
        json!({"resource": resource, "namespace": namespace, "replicas": replicas, "current_replicas": "${capture.current_replicas}"}),
        Some((
            ToolName::Kubectl,
            "scale",
            json!({"resource": resource, "namespace": namespace, "replicas": "${capture.current_replicas}"}),
        )),
    )?;
    scale.preconditions = guard;
    let steps = vec![
        capturing(
            step(Stage::Act, ToolName::Kubectl, "get", target, None)?,
            &[("current_replicas", ".spec.replicas")],
        ),
        scale,
        step(
            Stage::Verify,
            ToolName::Kubectl,
            "rollout-status",
            json!({"resource": resource, "namespace": namespace, "timeout": "5m"}),
            None,
        )?,
        workload_ready(resource, namespace, Some(replicas))?,
    ];
    with_slo(i, steps)
}

fn incident_remediation(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let resource = i.str("resource").unwrap_or_default();
    let namespace = i.str("namespace").unwrap_or_default();
    let alertname = i.str("alertname").unwrap_or_default();
    let mut steps = vec![step(
        Stage::Act,
        ToolName::Alertmanager,
        "alerts",
        json!({"filter": [format!("alertname=\"{alertname}\"")], "active": true}),
        None,
    )?];
    if let (Some(q), Some(start), Some(end)) = (i.str("promql"), i.str("start"), i.str("end")) {
        steps.push(step(
            Stage::Act,
            ToolName::Prometheus,
            "query_range",
            json!({"query": q, "start": start, "end": end, "step": "30s"}),
            None,
        )?);
        steps.push(step(
            Stage::Act,
            ToolName::Prometheus,
            "exemplars",
            json!({"query": q, "start": start, "end": end}),
            None,
        )?);
    }
    if let Some(trace) = i.str("trace_id") {
        steps.push(step(
            Stage::Act,
            ToolName::Tempo,
            "trace",
            json!({"trace_id": trace}),
            None,
        )?);
    }
    steps.push(capturing(
        step(
            Stage::Act,
            ToolName::Kubectl,
            "get",
            json!({"resource": resource, "namespace": namespace}),
            None,
        )?,
        &[("replicas_before", ".spec.replicas")],
    ));
    let remediation = match i.str("remediation").unwrap_or("restart") {
        "rollback" => step(
            Stage::Act,
            ToolName::Kubectl,
            "rollout-undo",
            json!({"resource": resource, "namespace": namespace}),
            None,
        )?,
        _ => step(
            Stage::Act,
            ToolName::Kubectl,
            "rollout-restart",
            json!({"resource": resource, "namespace": namespace}),
            None,
        )?,
    };
    steps.push(remediation);
    steps.push(step(
        Stage::Verify,
        ToolName::Kubectl,
        "rollout-status",
        json!({"resource": resource, "namespace": namespace, "timeout": "5m"}),
        None,
    )?);
    steps.push(workload_ready(resource, namespace, None)?);
    let mut steps = with_slo(i, steps)?;
    if let Some(key) = i.str("dedup_key") {
        // Resolve the page only once verification passed.
        steps.push(step(
            Stage::Verify,
            ToolName::Pagerduty,
            "resolve",
            json!({"dedup_key": key}),
            None,
        )?);
    }
    steps.push(step(
        Stage::Verify,
        ToolName::Grafana,
        "annotation-create",
        json!({"text": format!("carapulse: remediated {alertname} on {resource}"), "tags": ["carapulse", "incident"]}),
        None,
    )?);
    Ok(steps)
}

fn secret_rotation(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let path = i.str("path").unwrap_or_default();
    let rollback = i
        .str("rollback_path")
        .map(|rb| (ToolName::Vault, "rotate", json!({"path": rb})));
    let mut steps = vec![
        step(
            Stage::Act,
            ToolName::Vault,
            "read",
            json!({"path": i.str("read_path").unwrap_or(path)}),
            None,
        )?,
        step(
            Stage::Act,
            ToolName::Vault,
            "rotate",
            json!({"path": path}),
            rollback,
        )?,
    ];
    for app in i.strings("dependents") {
        steps.push(step(
            Stage::Act,
            ToolName::Argocd,
            "sync",
            json!({"app": app}),
            Some((ToolName::Argocd, "rollback", json!({"app": app}))),
        )?);
    }
    for app in i.strings("dependents") {
        steps.push(step(
            Stage::Verify,
            ToolName::Argocd,
            "wait",
            json!({"app": app, "timeout": 600}),
            None,
        )?);
        // Each dependent must come back healthy on the new secret.
        steps.push(argocd_healthy(app, None)?);
    }
    with_slo(i, steps)
}

fn release_rollback(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let release = i.str("release").unwrap_or_default();
    let namespace = i.str("namespace").unwrap_or_default();
    let target = json!({"release": release, "namespace": namespace});
    let mut rollback = json!({"release": release, "namespace": namespace, "wait": true});
    if let Some(rev) = i.int("revision") {
        rollback["revision"] = json!(rev);
    }
    // No automatic undo: rolling "forward" again would re-apply the release that was judged
    // bad. A failed verification leaves the release on the rolled-back revision for a human.
    let mut steps = vec![
        step(Stage::Act, ToolName::Helm, "history", target.clone(), None)?,
        step(Stage::Act, ToolName::Helm, "rollback", rollback, None)?,
        expecting(
            step(Stage::Verify, ToolName::Helm, "status", target, None)?,
            vec![json!({"path": ".info.status", "op": "==", "value": "deployed"})],
        ),
    ];
    if let Some(resource) = i.str("resource") {
        steps.push(step(
            Stage::Verify,
            ToolName::Kubectl,
            "rollout-status",
            json!({"resource": resource, "namespace": namespace, "timeout": "5m"}),
            None,
        )?);
    }
    with_slo(i, steps)
}

fn service_restart(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let resource = i.str("resource").unwrap_or_default();
    let namespace = i.str("namespace").unwrap_or_default();
    let target = json!({"resource": resource, "namespace": namespace});
    // A restart changes no spec, so there is nothing to roll back to; the replicas read first
    // are what must be ready again afterwards.
    let steps = vec![
        capturing(
            step(Stage::Act, ToolName::Kubectl, "get", target.clone(), None)?,
            &[("replicas_before", ".spec.replicas")],
        ),
        step(
            Stage::Act,
            ToolName::Kubectl,
            "rollout-restart",
            target,
            None,
        )?,
        step(
            Stage::Verify,
            ToolName::Kubectl,
            "rollout-status",
            json!({"resource": resource, "namespace": namespace, "timeout": "5m"}),
            None,
        )?,
        workload_ready(resource, namespace, None)?,
    ];
    with_slo(i, steps)
}

const PROMQL: F = F::opt(
    "promql",
    K::Text { max: 5000 },
    "PromQL check: every series at most `threshold`, or, without one, the query returns data",
);
const THRESHOLD: F = F::opt(
    "threshold",
    K::Number,
    "upper bound of every `promql` series",
);
const ERROR_RATIO: F = F::opt(
    "error_ratio",
    K::Text { max: 5000 },
    "PromQL of the error ratio: every series at most `error_ratio_max`",
);
const ERROR_RATIO_MAX: F = F::opt("error_ratio_max", K::Number, "default 0.05");
const LATENCY: F = F::opt(
    "latency",
    K::Text { max: 5000 },
    "PromQL of a latency, read before the change: afterwards at most that x `baseline_factor`",
);
const BASELINE_FACTOR: F = F::opt("baseline_factor", K::Number, "default 1.2");
const ANALYSIS: F = F::opt(
    "analysis",
    K::Object,
    "sample the SLO checks: {initial_delay, interval, count, failure_limit, inconclusive_limit}",
);
const NAMESPACE: F = F::req("namespace", K::Namespace, "Kubernetes namespace");
const RESOURCE: F = F::req("resource", K::K8sResource, "workload, e.g. deployment/web");

/// A template's fields followed by the SLO check fields every template takes (`slo_checks`).
macro_rules! with_slo {
    ($($field:expr),* $(,)?) => {
        &[
            $($field,)*
            PROMQL,
            THRESHOLD,
            ERROR_RATIO,
            ERROR_RATIO_MAX,
            LATENCY,
            BASELINE_FACTOR,
            ANALYSIS,
        ]
    };
}

/// The whole catalogue.
pub const CATALOGUE: &[WorkflowTemplate] = &[
    WorkflowTemplate {
        name: "gitops_deploy",
        description: "Argo CD state (captures the deployed history id), sync preview, sync, Healthy + Synced at the revision, SLO checks, Grafana annotation; rollback = Argo rollback to the captured history id",
        fields: with_slo![
            F::req("app", K::K8sName, "Argo CD application"),
            F::opt("revision", K::Revision, "target revision"),
        ],
        build: gitops_deploy,
    },
    WorkflowTemplate {
        name: "helm_release",
        description: "Helm status (captures the deployed revision), upgrade, status deployed, rollout status, SLO checks; rollback = helm rollback to the captured revision",
        fields: with_slo![
            F::req("release", K::K8sName, "release"),
            F::req("chart", K::Chart, "chart"),
            NAMESPACE,
            F::opt("version", K::Revision, "chart version"),
            F::opt("values_ref", K::Object, "values reference"),
            F::opt("resource", K::K8sResource, "workload to wait for"),
        ],
        build: helm_release,
    },
    WorkflowTemplate {
        name: "scale_service",
        description: "Read replicas, max-delta precondition on the observed count, scale, rollout status, ready replicas; rollback = the replicas read",
        fields: with_slo![
            RESOURCE,
            NAMESPACE,
            F::req("replicas", K::Int { min: 0, max: 1000 }, "target replicas"),
            F::opt("current_replicas", K::Int { min: 0, max: 1000 }, "what you expect the current count to be: the run stops if the cluster reports otherwise (the rollback target is always the count read)"),
            F::opt("max_delta", K::Int { min: 1, max: 1000 }, "largest allowed change (default 10)"),
        ],
        build: scale_service,
    },
    WorkflowTemplate {
        name: "incident_remediation",
        description: "Alert, PromQL range, exemplars -> Tempo trace, remediation, verify, PagerDuty resolve + annotation",
        fields: with_slo![
            F::req("alertname", K::Name, "alert"),
            RESOURCE,
            NAMESPACE,
            F::opt("remediation", K::Enum(&["restart", "rollback"]), "what to do (default restart)"),
            F::opt("start", K::Timestamp, "PromQL range start"),
            F::opt("end", K::Timestamp, "PromQL range end"),
            F::opt("trace_id", K::TraceId, "a trace from the exemplars"),
            F::opt("dedup_key", K::Name, "PagerDuty incident to resolve"),
        ],
        build: incident_remediation,
    },
    WorkflowTemplate {
        name: "secret_rotation",
        description: "Vault rotate, GitOps update of dependents, verify; rollback = rotate back",
        fields: with_slo![
            F::req("path", K::VaultPath, "rotation endpoint, e.g. database/rotate-role/app"),
            F::opt("read_path", K::VaultPath, "path read before rotating"),
            F::opt("rollback_path", K::VaultPath, "endpoint that restores the previous version"),
            F::opt("dependents", K::List(ListOf::Names), "Argo CD apps to resync"),
        ],
        build: secret_rotation,
    },
    WorkflowTemplate {
        name: "release_rollback",
        description: "Helm history, rollback to the previous (or a given) revision, verify status and rollout",
        fields: with_slo![
            F::req("release", K::K8sName, "release"),
            NAMESPACE,
            F::opt("revision", K::Int { min: 1, max: 1_000_000 }, "target revision (default: previous)"),
            F::opt("resource", K::K8sResource, "workload to wait for"),
        ],
        build: release_rollback,
    },
    WorkflowTemplate {
        name: "service_restart",
        description: "Read the workload, rollout restart, wait for the rollout, verify",
        fields: with_slo![
            RESOURCE,
            NAMESPACE,
        ],
        build: service_restart,
    },
];

/// A template by name.
pub fn find(name: &str) -> Option<&'static WorkflowTemplate> {
    CATALOGUE.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_builds_valid_steps() {
        let inputs = [
            (
                "gitops_deploy",
                json!({"app": "web", "revision": "v2", "promql": "up"}),
            ),
            (
                "helm_release",
                json!({"release": "web", "chart": "charts/web", "namespace": "web", "resource": "deployment/web"}),
            ),
            (
                "scale_service",
                json!({"resource": "deployment/web", "namespace": "web", "replicas": 4, "current_replicas": 2}),
            ),
            (
                "incident_remediation",
                json!({"alertname": "HighLatency", "resource": "deployment/web", "namespace": "web", "dedup_key": "web-latency"}),
            ),
            (
                "secret_rotation",
                json!({"path": "database/rotate-role/web", "dependents": ["web", "api"]}),
            ),
            (
                "release_rollback",
                json!({"release": "web", "namespace": "web", "revision": 3, "promql": "up"}),
            ),
            (
                "service_restart",
                json!({"resource": "deployment/web", "namespace": "web"}),
            ),
        ];
        assert_eq!(CATALOGUE.len(), 7);
        for (name, input) in inputs {
            let steps = find(name)
                .unwrap()
                .steps(&input)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                steps.iter().any(|s| s.stage == Stage::Verify),
                "{name} verifies"
            );
            assert!(
                steps.iter().any(|s| s.rollback.is_some())
                    || matches!(
                        name,
                        "incident_remediation" | "release_rollback" | "service_restart"
                    ),
                "{name} has a rollback"
            );
        }
    }

    #[test]
    fn inputs_are_validated() {
        let t = find("scale_service").unwrap();
        let err = t.steps(&json!({"resource": "deployment/web", "namespace": "web", "replicas": 40, "current_replicas": 2})).unwrap_err();
        assert_eq!(err.field, "input.replicas");
        let err = t.steps(&json!({"resource": "--all", "namespace": "web", "replicas": 1, "current_replicas": 1})).unwrap_err();
        assert_eq!(err.field, "input.resource");
        let err = find("gitops_deploy")
            .unwrap()
            .steps(&json!({"app": "web", "extra": 1}))
            .unwrap_err();
        assert_eq!(err.field, "input.extra");
    }
}
