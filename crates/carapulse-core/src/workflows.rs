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

    /// Validates `input` and builds the steps (each checked against the tool catalogue).
    pub fn steps(&self, input: &Value) -> Result<Vec<StepDraft>, ModelError> {
        let input = ToolInput::validate_fields(self.name, self.fields, input)
            .map_err(|e| ModelError::new(format!("input.{}", e.field), e.message))?;
        let steps = (self.build)(&input)?;
        for (i, step) in steps.iter().enumerate() {
            crate::tools::check_step(step).map_err(|e| e.within(&format!("template step {i}")))?;
        }
        Ok(steps)
    }
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

/// `{query}` verification against Prometheus when a query is given.
fn promql(i: &ToolInput) -> Result<Option<StepDraft>, ModelError> {
    match i.str("promql") {
        Some(q) => Ok(Some(step(
            Stage::Verify,
            ToolName::Prometheus,
            "query",
            json!({"query": q}),
            None,
        )?)),
        None => Ok(None),
    }
}

fn gitops_deploy(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let app = i.str("app").unwrap_or_default();
    let mut sync = json!({"app": app});
    if let Some(rev) = i.str("revision") {
        sync["revision"] = json!(rev);
    }
    let mut steps = vec![
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
            Some((ToolName::Argocd, "rollback", json!({"app": app}))),
        )?,
        step(
            Stage::Verify,
            ToolName::Argocd,
            "wait",
            json!({"app": app, "timeout": 600}),
            None,
        )?,
    ];
    steps.extend(promql(i)?);
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
    let mut steps = vec![
        step(
            Stage::Act,
            ToolName::Helm,
            "status",
            json!({"release": release, "namespace": namespace}),
            None,
        )?,
        // helm rollback without a revision returns to the release's previous revision: the one
        // captured by the status step just before the upgrade.
        step(
            Stage::Act,
            ToolName::Helm,
            "upgrade",
            upgrade,
            Some((
                ToolName::Helm,
                "rollback",
                json!({"release": release, "namespace": namespace, "wait": true}),
            )),
        )?,
        step(
            Stage::Verify,
            ToolName::Helm,
            "status",
            json!({"release": release, "namespace": namespace}),
            None,
        )?,
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
    steps.extend(promql(i)?);
    Ok(steps)
}

fn scale_service(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let resource = i.str("resource").unwrap_or_default();
    let namespace = i.str("namespace").unwrap_or_default();
    let replicas = i.int("replicas").unwrap_or(0);
    let current = i.int("current_replicas").unwrap_or(0);
    let max_delta = i.int("max_delta").unwrap_or(10);
    if (replicas - current).abs() > max_delta {
        return Err(ModelError::new(
            "input.replicas",
            format!("changing {current} -> {replicas} exceeds max_delta {max_delta}"),
        ));
    }
    let mut steps = vec![
        step(
            Stage::Act,
            ToolName::Kubectl,
            "get",
            json!({"resource": resource, "namespace": namespace}),
            None,
        )?,
        step(
            Stage::Act,
            ToolName::Kubectl,
            "scale",
            json!({"resource": resource, "namespace": namespace, "replicas": replicas, "current_replicas": current}),
            Some((
                ToolName::Kubectl,
                "scale",
                json!({"resource": resource, "namespace": namespace, "replicas": current}),
            )),
        )?,
        step(
            Stage::Verify,
            ToolName::Kubectl,
            "rollout-status",
            json!({"resource": resource, "namespace": namespace, "timeout": "5m"}),
            None,
        )?,
    ];
    steps.extend(promql(i)?);
    Ok(steps)
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
    steps.extend(promql(i)?);
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
    }
    steps.extend(promql(i)?);
    Ok(steps)
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
        step(Stage::Verify, ToolName::Helm, "status", target, None)?,
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
    steps.extend(promql(i)?);
    Ok(steps)
}

fn service_restart(i: &ToolInput) -> Result<Vec<StepDraft>, ModelError> {
    let resource = i.str("resource").unwrap_or_default();
    let namespace = i.str("namespace").unwrap_or_default();
    let target = json!({"resource": resource, "namespace": namespace});
    // A restart changes no spec, so there is nothing to roll back to.
    let mut steps = vec![
        step(Stage::Act, ToolName::Kubectl, "get", target.clone(), None)?,
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
    ];
    steps.extend(promql(i)?);
    Ok(steps)
}

const PROMQL: F = F::opt(
    "promql",
    K::Text { max: 5000 },
    "PromQL check that must return data",
);
const NAMESPACE: F = F::req("namespace", K::Namespace, "Kubernetes namespace");
const RESOURCE: F = F::req("resource", K::K8sResource, "workload, e.g. deployment/web");

/// The whole catalogue.
pub const CATALOGUE: &[WorkflowTemplate] = &[
    WorkflowTemplate {
        name: "gitops_deploy",
        description: "Argo CD sync preview, sync, wait healthy, PromQL verify, Grafana annotation; rollback = Argo rollback",
        fields: &[
            F::req("app", K::K8sName, "Argo CD application"),
            F::opt("revision", K::Revision, "target revision"),
            PROMQL,
        ],
        build: gitops_deploy,
    },
    WorkflowTemplate {
        name: "helm_release",
        description: "Helm status, upgrade --install, rollout status, verify; rollback = helm rollback to the previous revision",
        fields: &[
            F::req("release", K::K8sName, "release"),
            F::req("chart", K::Chart, "chart"),
            NAMESPACE,
            F::opt("version", K::Revision, "chart version"),
            F::opt("values_ref", K::Object, "values reference"),
            F::opt("resource", K::K8sResource, "workload to wait for"),
            PROMQL,
        ],
        build: helm_release,
    },
    WorkflowTemplate {
        name: "scale_service",
        description: "Read replicas, max-delta check, scale, rollout status, verify; rollback = previous replicas",
        fields: &[
            RESOURCE,
            NAMESPACE,
            F::req("replicas", K::Int { min: 0, max: 1000 }, "target replicas"),
            F::req("current_replicas", K::Int { min: 0, max: 1000 }, "current replicas (rollback target)"),
            F::opt("max_delta", K::Int { min: 1, max: 1000 }, "largest allowed change (default 10)"),
            PROMQL,
        ],
        build: scale_service,
    },
    WorkflowTemplate {
        name: "incident_remediation",
        description: "Alert, PromQL range, exemplars -> Tempo trace, remediation, verify, PagerDuty resolve + annotation",
        fields: &[
            F::req("alertname", K::Name, "alert"),
            RESOURCE,
            NAMESPACE,
            F::opt("remediation", K::Enum(&["restart", "rollback"]), "what to do (default restart)"),
            PROMQL,
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
        fields: &[
            F::req("path", K::VaultPath, "rotation endpoint, e.g. database/rotate-role/app"),
            F::opt("read_path", K::VaultPath, "path read before rotating"),
            F::opt("rollback_path", K::VaultPath, "endpoint that restores the previous version"),
            F::opt("dependents", K::List(ListOf::Names), "Argo CD apps to resync"),
            PROMQL,
        ],
        build: secret_rotation,
    },
    WorkflowTemplate {
        name: "release_rollback",
        description: "Helm history, rollback to the previous (or a given) revision, verify status and rollout",
        fields: &[
            F::req("release", K::K8sName, "release"),
            NAMESPACE,
            F::opt("revision", K::Int { min: 1, max: 1_000_000 }, "target revision (default: previous)"),
            F::opt("resource", K::K8sResource, "workload to wait for"),
            PROMQL,
        ],
        build: release_rollback,
    },
    WorkflowTemplate {
        name: "service_restart",
        description: "Read the workload, rollout restart, wait for the rollout, verify",
        fields: &[RESOURCE, NAMESPACE, PROMQL],
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
