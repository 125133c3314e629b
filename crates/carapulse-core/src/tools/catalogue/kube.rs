//! kubectl, helm and argocd.

use serde_json::json;

use crate::model::{RiskLevel, ToolName};
use crate::tools::spec::seg;
use crate::tools::{
    ActionClass, ActionSpec, ApiRequest, FieldKind as K, FieldSpec as F, HttpMethod,
};

use super::{argv, flag_eq};

const W_MED: ActionClass = ActionClass::Write(RiskLevel::Medium);
const W_HIGH: ActionClass = ActionClass::Write(RiskLevel::High);
const R: ActionClass = ActionClass::Read;

const RESOURCE: F = F::req(
    "resource",
    K::K8sResource,
    "kind or kind/name, e.g. deployment/web",
);
const NAMESPACE: F = F::opt("namespace", K::Namespace, "Kubernetes namespace");
const RELEASE: F = F::req("release", K::K8sName, "Helm release name");
const DRY_RUN: F = F::opt(
    "dry_run",
    K::Bool,
    "kubectl --dry-run=client: show what would change",
);
const APP: F = F::req("app", K::K8sName, "Argo CD application");
const CHART: F = F::req("chart", K::Chart, "chart reference");
const CHART_VERSION: F = F::opt("version", K::Revision, "chart version");
const VALUES_FILE: F = F::opt(
    "values_file",
    K::RelPath,
    "values file inside the workspace (resolved from values_ref)",
);
const VALUES_REF: F = F::opt(
    "values_ref",
    K::Object,
    "{kind: git_path|object_store|inline, ref, sha256?}: resolved by the router",
);

fn ns(out: &mut Vec<String>, i: &crate::tools::ToolInput) {
    flag_eq(out, "--namespace", i.str("namespace"));
}

fn dry_run(out: &mut Vec<String>, i: &crate::tools::ToolInput) {
    if i.flag("dry_run") {
        out.push("--dry-run=client".into());
        out.push("--output=json".into());
    }
}

pub(super) fn actions() -> Vec<ActionSpec> {
    vec![
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "get",
            description: "Get resources as JSON",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    RESOURCE,
                    NAMESPACE,
                    F::opt("selector", K::Selector, "label selector"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "kubectl",
                    "get",
                    i.str("resource").unwrap_or_default(),
                    "--output=json",
                ]);
                ns(&mut a, i);
                flag_eq(&mut a, "--selector", i.str("selector"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "describe",
            description: "Describe resources",
            class: R,
            break_glass: false,
            fields: const { &[RESOURCE, NAMESPACE] },
            cli: Some(|i| {
                let mut a = argv(&["kubectl", "describe", i.str("resource").unwrap_or_default()]);
                ns(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "logs",
            description: "Logs of a pod",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    F::req("pod", K::K8sName, "pod name"),
                    NAMESPACE,
                    F::opt("container", K::K8sName, "container name"),
                    F::opt(
                        "tail",
                        K::Int {
                            min: 1,
                            max: 100_000,
                        },
                        "lines from the end",
                    ),
                    F::opt("since", K::Duration, "only newer than this"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["kubectl", "logs", i.str("pod").unwrap_or_default()]);
                ns(&mut a, i);
                flag_eq(&mut a, "--container", i.str("container"));
                flag_eq(&mut a, "--tail", i.int("tail"));
                flag_eq(&mut a, "--since", i.str("since"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "scale",
            description: "Set the replica count",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    RESOURCE,
                    NAMESPACE,
                    F::req("replicas", K::Int { min: 0, max: 1000 }, "desired replicas"),
                    F::opt(
                        "current_replicas",
                        K::Int { min: 0, max: 1000 },
                        "precondition on the current count",
                    ),
                    DRY_RUN,
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["kubectl", "scale", i.str("resource").unwrap_or_default()]);
                flag_eq(&mut a, "--replicas", i.int("replicas"));
                ns(&mut a, i);
                flag_eq(&mut a, "--current-replicas", i.int("current_replicas"));
                dry_run(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "rollout-status",
            description: "Wait for a rollout to finish",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    RESOURCE,
                    NAMESPACE,
                    F::opt("timeout", K::Duration, "give up after"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "kubectl",
                    "rollout",
                    "status",
                    i.str("resource").unwrap_or_default(),
                ]);
                ns(&mut a, i);
                flag_eq(&mut a, "--timeout", i.str("timeout"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "rollout-restart",
            description: "Restart a workload",
            class: W_MED,
            break_glass: false,
            fields: const { &[RESOURCE, NAMESPACE, DRY_RUN] },
            cli: Some(|i| {
                let mut a = argv(&[
                    "kubectl",
                    "rollout",
                    "restart",
                    i.str("resource").unwrap_or_default(),
                ]);
                ns(&mut a, i);
                dry_run(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "rollout-undo",
            description: "Roll a workload back",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    RESOURCE,
                    NAMESPACE,
                    F::opt(
                        "to_revision",
                        K::Int {
                            min: 1,
                            max: 100_000,
                        },
                        "target revision",
                    ),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "kubectl",
                    "rollout",
                    "undo",
                    i.str("resource").unwrap_or_default(),
                ]);
                ns(&mut a, i);
                flag_eq(&mut a, "--to-revision", i.int("to_revision"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "watch",
            description: "Watch resources, emitting events as JSON",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    RESOURCE,
                    NAMESPACE,
                    F::opt("selector", K::Selector, "label selector"),
                    F::opt(
                        "timeout_seconds",
                        K::Int { min: 1, max: 3600 },
                        "stop after",
                    ),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "kubectl",
                    "get",
                    i.str("resource").unwrap_or_default(),
                    "--output=json",
                    "--watch",
                    "--output-watch-events",
                ]);
                ns(&mut a, i);
                flag_eq(&mut a, "--selector", i.str("selector"));
                flag_eq(
                    &mut a,
                    "--request-timeout",
                    i.int("timeout_seconds").map(|s| format!("{s}s")),
                );
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Kubectl,
            action: "delete",
            description: "Delete a resource (break-glass only)",
            class: W_HIGH,
            break_glass: true,
            fields: const { &[RESOURCE, NAMESPACE, DRY_RUN] },
            cli: Some(|i| {
                let mut a = argv(&[
                    "kubectl",
                    "delete",
                    i.str("resource").unwrap_or_default(),
                    "--wait=false",
                ]);
                ns(&mut a, i);
                dry_run(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "status",
            description: "Release status",
            class: R,
            break_glass: false,
            fields: const { &[RELEASE, NAMESPACE] },
            cli: Some(|i| {
                let mut a = argv(&[
                    "helm",
                    "status",
                    i.str("release").unwrap_or_default(),
                    "--output=json",
                ]);
                ns(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "list",
            description: "List releases",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    NAMESPACE,
                    F::opt("all_namespaces", K::Bool, "all namespaces"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["helm", "list", "--output=json"]);
                if i.flag("all_namespaces") {
                    a.push("--all-namespaces".into());
                } else {
                    ns(&mut a, i);
                }
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "get",
            description: "Release details (all, values, manifest or notes)",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    RELEASE,
                    NAMESPACE,
                    F::opt(
                        "what",
                        K::Enum(&["all", "values", "manifest", "notes"]),
                        "default all",
                    ),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "helm",
                    "get",
                    i.str("what").unwrap_or("all"),
                    i.str("release").unwrap_or_default(),
                ]);
                ns(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "history",
            description: "Release revisions",
            class: R,
            break_glass: false,
            fields: const { &[RELEASE, NAMESPACE] },
            cli: Some(|i| {
                let mut a = argv(&[
                    "helm",
                    "history",
                    i.str("release").unwrap_or_default(),
                    "--output=json",
                ]);
                ns(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "upgrade",
            description: "Upgrade or install a release",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    RELEASE,
                    CHART,
                    NAMESPACE,
                    CHART_VERSION,
                    VALUES_FILE,
                    VALUES_REF,
                    F::opt("wait", K::Bool, "wait for resources"),
                    F::opt("atomic", K::Bool, "roll back on failure"),
                    F::opt("timeout", K::Duration, "helm timeout"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "helm",
                    "upgrade",
                    "--install",
                    i.str("release").unwrap_or_default(),
                    i.str("chart").unwrap_or_default(),
                ]);
                ns(&mut a, i);
                flag_eq(&mut a, "--version", i.str("version"));
                flag_eq(&mut a, "--values", i.str("values_file"));
                if i.flag("wait") {
                    a.push("--wait".into());
                }
                if i.flag("atomic") {
                    a.push("--atomic".into());
                }
                flag_eq(&mut a, "--timeout", i.str("timeout"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "rollback",
            description: "Roll back to a revision (default: the previous one)",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    RELEASE,
                    NAMESPACE,
                    F::opt(
                        "revision",
                        K::Int {
                            min: 1,
                            max: 1_000_000,
                        },
                        "target revision",
                    ),
                    F::opt("wait", K::Bool, "wait"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["helm", "rollback", i.str("release").unwrap_or_default()]);
                if let Some(rev) = i.int("revision") {
                    a.push(rev.to_string());
                }
                ns(&mut a, i);
                if i.flag("wait") {
                    a.push("--wait".into());
                }
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "uninstall",
            description: "Remove a release (break-glass only)",
            class: W_HIGH,
            break_glass: true,
            fields: const { &[RELEASE, NAMESPACE] },
            cli: Some(|i| {
                let mut a = argv(&["helm", "uninstall", i.str("release").unwrap_or_default()]);
                ns(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "template",
            description: "Render a chart locally with its values (no cluster; output withheld: it carries rendered Secrets)",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    RELEASE,
                    CHART,
                    NAMESPACE,
                    CHART_VERSION,
                    VALUES_FILE,
                    VALUES_REF,
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "helm",
                    "template",
                    i.str("release").unwrap_or_default(),
                    i.str("chart").unwrap_or_default(),
                ]);
                ns(&mut a, i);
                flag_eq(&mut a, "--version", i.str("version"));
                flag_eq(&mut a, "--values", i.str("values_file"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "lint",
            description: "Lint a chart with its values (no cluster)",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    CHART,
                    VALUES_FILE,
                    VALUES_REF,
                    F::opt("strict", K::Bool, "fail on lint warnings"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["helm", "lint", i.str("chart").unwrap_or_default()]);
                if i.flag("strict") {
                    a.push("--strict".into());
                }
                flag_eq(&mut a, "--values", i.str("values_file"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Helm,
            action: "show",
            description: "A chart's default values, metadata or README (no cluster)",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    CHART,
                    CHART_VERSION,
                    F::opt(
                        "what",
                        K::Enum(&["values", "chart", "readme", "all"]),
                        "default values",
                    ),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "helm",
                    "show",
                    i.str("what").unwrap_or("values"),
                    i.str("chart").unwrap_or_default(),
                ]);
                flag_eq(&mut a, "--version", i.str("version"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Argocd,
            action: "status",
            description: "Application state",
            class: R,
            break_glass: false,
            fields: const { &[APP] },
            cli: Some(|i| {
                argv(&[
                    "argocd",
                    "app",
                    "get",
                    i.str("app").unwrap_or_default(),
                    "--output=json",
                ])
            }),
            api: Some(|i| {
                ApiRequest::get(format!(
                    "/api/v1/applications/{}",
                    seg(i.str("app").unwrap_or_default())
                ))
            }),
        },
        ActionSpec {
            tool: ToolName::Argocd,
            action: "list",
            description: "List applications",
            class: R,
            break_glass: false,
            fields: const { &[F::opt("project", K::Name, "Argo CD project")] },
            cli: Some(|i| {
                let mut a = argv(&["argocd", "app", "list", "--output=json"]);
                flag_eq(&mut a, "--project", i.str("project"));
                a
            }),
            api: Some(|i| {
                ApiRequest::get("/api/v1/applications").query_opt("projects", i.str("project"))
            }),
        },
        ActionSpec {
            tool: ToolName::Argocd,
            action: "sync",
            description: "Sync an application",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    APP,
                    F::opt("revision", K::Revision, "target revision"),
                    F::opt("prune", K::Bool, "prune"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["argocd", "app", "sync", i.str("app").unwrap_or_default()]);
                flag_eq(&mut a, "--revision", i.str("revision"));
                if i.flag("prune") {
                    a.push("--prune".into());
                }
                a
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!(
                        "/api/v1/applications/{}/sync",
                        seg(i.str("app").unwrap_or_default())
                    ),
                    json!({"revision": i.str("revision"), "prune": i.flag("prune")}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Argocd,
            action: "sync-dry-run",
            description: "Dry-run a sync",
            class: R,
            break_glass: false,
            fields: const { &[APP] },
            cli: Some(|i| {
                argv(&[
                    "argocd",
                    "app",
                    "sync",
                    i.str("app").unwrap_or_default(),
                    "--dry-run",
                ])
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!(
                        "/api/v1/applications/{}/sync",
                        seg(i.str("app").unwrap_or_default())
                    ),
                    json!({"dryRun": true}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Argocd,
            action: "sync-preview",
            description: "Preview the changes a sync would make",
            class: R,
            break_glass: false,
            fields: const { &[APP] },
            cli: Some(|i| {
                argv(&[
                    "argocd",
                    "app",
                    "sync",
                    i.str("app").unwrap_or_default(),
                    "--dry-run",
                    "--preview-changes",
                ])
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Argocd,
            action: "wait",
            description: "Wait until healthy",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    APP,
                    F::opt("timeout", K::Int { min: 1, max: 7200 }, "seconds"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "argocd",
                    "app",
                    "wait",
                    i.str("app").unwrap_or_default(),
                    "--health",
                ]);
                flag_eq(&mut a, "--timeout", i.int("timeout"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Argocd,
            action: "rollback",
            description: "Roll back to a history id (default: previous)",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    APP,
                    F::opt(
                        "id",
                        K::Int {
                            min: 0,
                            max: 1_000_000,
                        },
                        "history id",
                    ),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "argocd",
                    "app",
                    "rollback",
                    i.str("app").unwrap_or_default(),
                ]);
                if let Some(id) = i.int("id") {
                    a.push(id.to_string());
                }
                a
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!(
                        "/api/v1/applications/{}/rollback",
                        seg(i.str("app").unwrap_or_default())
                    ),
                    json!({"id": i.int("id").unwrap_or(0)}),
                )
                .with_method(HttpMethod::Put)
            }),
        },
        ActionSpec {
            tool: ToolName::Argocd,
            action: "history",
            description: "Deployment history",
            class: R,
            break_glass: false,
            fields: const { &[APP] },
            cli: Some(|i| {
                argv(&[
                    "argocd",
                    "app",
                    "history",
                    i.str("app").unwrap_or_default(),
                    "--output=json",
                ])
            }),
            api: None,
        },
    ]
}
