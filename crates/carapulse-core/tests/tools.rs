//! The tool catalogue: every action's argv builder against the exact expected argv (and every
//! helm argv through the real helm's parser), API requests, schemas, and injection attempts
//! rejected with the field named.

use carapulse_core::model::ToolName;
use carapulse_core::tools::{catalogue, find, HttpMethod};
use serde_json::{json, Value};

fn argv(tool: ToolName, action: &str, input: Value) -> Vec<String> {
    let spec = find(tool, action).unwrap_or_else(|| panic!("{tool}.{action} not in catalogue"));
    let input = spec
        .validate(&input)
        .unwrap_or_else(|e| panic!("{tool}.{action}: {e}"));
    spec.argv(&input)
        .unwrap_or_else(|| panic!("{tool}.{action} has no CLI"))
}

fn s(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

#[test]
fn argv_table() {
    use ToolName::*;
    let cases: Vec<(ToolName, &str, Value, Vec<String>)> = vec![
        (
            Kubectl,
            "get",
            json!({"resource": "pods", "namespace": "web", "selector": "app=web"}),
            s(&[
                "kubectl",
                "get",
                "pods",
                "--output=json",
                "--namespace=web",
                "--selector=app=web",
            ]),
        ),
        (
            Kubectl,
            "describe",
            json!({"resource": "deployment/web"}),
            s(&["kubectl", "describe", "deployment/web"]),
        ),
        (
            Kubectl,
            "logs",
            json!({"pod": "web-1", "namespace": "web", "container": "app", "tail": 100, "since": "5m"}),
            s(&[
                "kubectl",
                "logs",
                "web-1",
                "--namespace=web",
                "--container=app",
                "--tail=100",
                "--since=5m",
            ]),
        ),
        (
            Kubectl,
            "scale",
            json!({"resource": "deployment/web", "replicas": 3, "namespace": "web", "current_replicas": 2}),
            s(&[
                "kubectl",
                "scale",
                "deployment/web",
                "--replicas=3",
                "--namespace=web",
                "--current-replicas=2",
            ]),
        ),
        (
            Kubectl,
            "rollout-status",
            json!({"resource": "deployment/web", "namespace": "web", "timeout": "2m"}),
            s(&[
                "kubectl",
                "rollout",
                "status",
                "deployment/web",
                "--namespace=web",
                "--timeout=2m",
            ]),
        ),
        (
            Kubectl,
            "rollout-restart",
            json!({"resource": "deployment/web"}),
            s(&["kubectl", "rollout", "restart", "deployment/web"]),
        ),
        (
            Kubectl,
            "scale",
            json!({"resource": "deployment/web", "replicas": 1, "dry_run": true}),
            s(&[
                "kubectl",
                "scale",
                "deployment/web",
                "--replicas=1",
                "--dry-run=client",
                "--output=json",
            ]),
        ),
        (
            Kubectl,
            "rollout-restart",
            json!({"resource": "deployment/web", "dry_run": true}),
            s(&[
                "kubectl",
                "rollout",
                "restart",
                "deployment/web",
                "--dry-run=client",
                "--output=json",
            ]),
        ),
        (
            Kubectl,
            "rollout-undo",
            json!({"resource": "deployment/web", "to_revision": 4}),
            s(&[
                "kubectl",
                "rollout",
                "undo",
                "deployment/web",
                "--to-revision=4",
            ]),
        ),
        (
            Kubectl,
            "watch",
            json!({"resource": "pods", "namespace": "web", "timeout_seconds": 30}),
            s(&[
                "kubectl",
                "get",
                "pods",
                "--output=json",
                "--watch",
                "--output-watch-events",
                "--namespace=web",
                "--request-timeout=30s",
            ]),
        ),
        (
            Kubectl,
            "delete",
            json!({"resource": "pod/web-1", "namespace": "web"}),
            s(&[
                "kubectl",
                "delete",
                "pod/web-1",
                "--wait=false",
                "--namespace=web",
            ]),
        ),
        (
            Helm,
            "status",
            json!({"release": "web", "namespace": "web"}),
            s(&["helm", "status", "web", "--output=json", "--namespace=web"]),
        ),
        (
            Helm,
            "list",
            json!({"all_namespaces": true}),
            s(&["helm", "list", "--output=json", "--all-namespaces"]),
        ),
        (
            Helm,
            "get",
            json!({"release": "web", "what": "values"}),
            s(&["helm", "get", "values", "web"]),
        ),
        (
            Helm,
            "history",
            json!({"release": "web"}),
            s(&["helm", "history", "web", "--output=json"]),
        ),
        (
            Helm,
            "upgrade",
            json!({"release": "web", "chart": "charts/web", "namespace": "web", "version": "1.2.3", "values_file": "values/web.yaml", "wait": true, "atomic": true, "timeout": "5m"}),
            s(&[
                "helm",
                "upgrade",
                "--install",
                "web",
                "charts/web",
                "--namespace=web",
                "--version=1.2.3",
                "--values=values/web.yaml",
                "--wait",
                "--atomic",
                "--timeout=5m",
            ]),
        ),
        (
            Helm,
            "rollback",
            json!({"release": "web", "revision": 7, "wait": true}),
            s(&["helm", "rollback", "web", "7", "--wait"]),
        ),
        (
            Helm,
            "uninstall",
            json!({"release": "web"}),
            s(&["helm", "uninstall", "web"]),
        ),
        (
            Helm,
            "template",
            json!({"release": "web", "chart": "charts/web", "namespace": "web", "version": "1.2.3", "values_file": "values/web.yaml"}),
            s(&[
                "helm",
                "template",
                "web",
                "charts/web",
                "--namespace=web",
                "--version=1.2.3",
                "--values=values/web.yaml",
            ]),
        ),
        (
            Helm,
            "lint",
            json!({"chart": "charts/web", "strict": true, "values_file": "values/web.yaml"}),
            s(&[
                "helm",
                "lint",
                "charts/web",
                "--strict",
                "--values=values/web.yaml",
            ]),
        ),
        (
            Helm,
            "show",
            json!({"chart": "charts/web"}),
            s(&["helm", "show", "values", "charts/web"]),
        ),
        (
            Argocd,
            "status",
            json!({"app": "web"}),
            s(&["argocd", "app", "get", "web", "--output=json"]),
        ),
        (
            Argocd,
            "list",
            json!({"project": "default"}),
            s(&[
                "argocd",
                "app",
                "list",
                "--output=json",
                "--project=default",
            ]),
        ),
        (
            Argocd,
            "sync",
            json!({"app": "web", "revision": "v1.2", "prune": true}),
            s(&["argocd", "app", "sync", "web", "--revision=v1.2", "--prune"]),
        ),
        (
            Argocd,
            "sync-dry-run",
            json!({"app": "web"}),
            s(&["argocd", "app", "sync", "web", "--dry-run"]),
        ),
        (
            Argocd,
            "sync-preview",
            json!({"app": "web"}),
            s(&[
                "argocd",
                "app",
                "sync",
                "web",
                "--dry-run",
                "--preview-changes",
            ]),
        ),
        (
            Argocd,
            "wait",
            json!({"app": "web", "timeout": 300}),
            s(&["argocd", "app", "wait", "web", "--health", "--timeout=300"]),
        ),
        (
            Argocd,
            "rollback",
            json!({"app": "web", "id": 3}),
            s(&["argocd", "app", "rollback", "web", "3"]),
        ),
        (
            Argocd,
            "history",
            json!({"app": "web"}),
            s(&["argocd", "app", "history", "web", "--output=json"]),
        ),
        (
            Aws,
            "assume-role",
            json!({"role_arn": "arn:aws:iam::123456789012:role/deploy", "duration_seconds": 900, "region": "eu-west-1"}),
            s(&[
                "aws",
                "sts",
                "assume-role",
                "--role-arn=arn:aws:iam::123456789012:role/deploy",
                "--role-session-name=carapulse",
                "--duration-seconds=900",
                "--region=eu-west-1",
                "--output=json",
            ]),
        ),
        (
            Aws,
            "tagging-get-resources",
            json!({"tag_filters": [{"key": "app", "values": ["web", "api"]}]}),
            s(&[
                "aws",
                "resourcegroupstaggingapi",
                "get-resources",
                "--tag-filters=Key=app,Values=web,api",
                "--output=json",
            ]),
        ),
        (
            Aws,
            "cloudtrail-lookup-events",
            json!({"lookup_key": "EventName", "lookup_value": "ConsoleLogin", "max_results": 10}),
            s(&[
                "aws",
                "cloudtrail",
                "lookup-events",
                "--lookup-attributes=AttributeKey=EventName,AttributeValue=ConsoleLogin",
                "--max-results=10",
                "--output=json",
            ]),
        ),
        (
            Aws,
            "cloudwatch-get-metric-data",
            json!({"metric_data_queries": [{"Id": "m1"}], "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T01:00:00Z"}),
            s(&[
                "aws",
                "cloudwatch",
                "get-metric-data",
                "--metric-data-queries=[{\"Id\":\"m1\"}]",
                "--start-time=2026-01-01T00:00:00Z",
                "--end-time=2026-01-01T01:00:00Z",
                "--output=json",
            ]),
        ),
        (
            Vault,
            "health",
            json!({}),
            s(&["vault", "status", "-format=json"]),
        ),
        (
            Vault,
            "read",
            json!({"path": "secret/data/web"}),
            s(&["vault", "read", "-format=json", "secret/data/web"]),
        ),
        (
            Vault,
            "rotate",
            json!({"path": "database/rotate-role/web"}),
            s(&[
                "vault",
                "write",
                "-format=json",
                "-force",
                "database/rotate-role/web",
            ]),
        ),
        (
            Vault,
            "token-renew",
            json!({}),
            s(&["vault", "token", "renew", "-format=json"]),
        ),
        (
            Vault,
            "lease-renew",
            json!({"lease_id": "database/creds/web/abc123"}),
            s(&[
                "vault",
                "lease",
                "renew",
                "-format=json",
                "database/creds/web/abc123",
            ]),
        ),
        (
            Vault,
            "lease-revoke",
            json!({"lease_id": "database/creds/web/abc123"}),
            s(&["vault", "lease", "revoke", "database/creds/web/abc123"]),
        ),
        (
            Boundary,
            "targets-list",
            json!({"scope_id": "p_1234567890"}),
            s(&[
                "boundary",
                "targets",
                "list",
                "-format=json",
                "-scope-id=p_1234567890",
            ]),
        ),
        (
            Boundary,
            "authorize-session",
            json!({"target_id": "ttcp_1234567890"}),
            s(&[
                "boundary",
                "targets",
                "authorize-session",
                "-format=json",
                "-id=ttcp_1234567890",
            ]),
        ),
        (
            Boundary,
            "session-cancel",
            json!({"session_id": "s_1234567890"}),
            s(&[
                "boundary",
                "sessions",
                "cancel",
                "-format=json",
                "-id=s_1234567890",
            ]),
        ),
        (
            Git,
            "status",
            json!({}),
            s(&["git", "status", "--porcelain=v1"]),
        ),
        (Git, "diff", json!({}), s(&["git", "diff", "--stat"])),
        (
            Git,
            "log",
            json!({"max_count": 5}),
            s(&["git", "log", "--oneline", "--max-count=5"]),
        ),
        (
            Git,
            "branch",
            json!({"name": "fix/web", "base": "main"}),
            s(&["git", "switch", "--create", "fix/web", "main"]),
        ),
        (
            Git,
            "add",
            json!({"paths": ["values/web.yaml", "README.md"]}),
            s(&["git", "add", "--", "values/web.yaml", "README.md"]),
        ),
        (
            Git,
            "commit",
            json!({"message": "-rf scale web", "all": true}),
            s(&["git", "commit", "--all", "--message=-rf scale web"]),
        ),
        (
            Git,
            "push",
            json!({"branch": "fix/web", "set_upstream": true}),
            s(&["git", "push", "--set-upstream", "origin", "fix/web"]),
        ),
        (
            Git,
            "fetch",
            json!({"remote": "upstream", "ref": "main"}),
            s(&["git", "fetch", "upstream", "main"]),
        ),
        (
            Github,
            "pr-create",
            json!({"repo": "acme/web", "title": "Scale web", "base": "main", "head": "fix/web", "draft": true}),
            s(&[
                "gh",
                "pr",
                "create",
                "--repo=acme/web",
                "--title=Scale web",
                "--body=",
                "--base=main",
                "--head=fix/web",
                "--draft",
            ]),
        ),
        (
            Github,
            "pr-status",
            json!({}),
            s(&[
                "gh",
                "pr",
                "status",
                "--json=number,url,state,headRefName,headRefOid",
            ]),
        ),
        (
            Github,
            "pr-view",
            json!({"pr": 12, "repo": "acme/web"}),
            s(&[
                "gh",
                "pr",
                "view",
                "12",
                "--json=number,url,state,headRefName,headRefOid,mergeCommit",
                "--repo=acme/web",
            ]),
        ),
        (
            Github,
            "pr-merge",
            json!({"pr": 12, "method": "squash"}),
            s(&["gh", "pr", "merge", "12", "--squash"]),
        ),
        (
            Github,
            "branch-create",
            json!({"repo": "acme/web", "branch": "fix/web", "sha": "abc1234"}),
            s(&[
                "gh",
                "api",
                "--method=POST",
                "repos/acme/web/git/refs",
                "--raw-field=ref=refs/heads/fix/web",
                "--raw-field=sha=abc1234",
            ]),
        ),
        (
            Gitlab,
            "mr-create",
            json!({"title": "Scale", "source": "fix/web", "target": "main", "labels": ["ops"]}),
            s(&[
                "glab",
                "mr",
                "create",
                "--yes",
                "--title=Scale",
                "--description=",
                "--source-branch=fix/web",
                "--target-branch=main",
                "--label=ops",
            ]),
        ),
        (
            Gitlab,
            "mr-list",
            json!({}),
            s(&["glab", "mr", "list", "--output=json"]),
        ),
        (
            Gitlab,
            "mr-view",
            json!({"mr": 3, "project": "group/app"}),
            s(&[
                "glab",
                "mr",
                "view",
                "3",
                "--output=json",
                "--repo=group/app",
            ]),
        ),
        (
            Gitlab,
            "mr-merge",
            json!({"mr": 3, "squash": true}),
            s(&["glab", "mr", "merge", "3", "--yes", "--squash"]),
        ),
    ];
    let mut covered = std::collections::BTreeSet::new();
    for (tool, action, input, expected) in cases {
        assert_eq!(argv(tool, action, input), expected, "{tool}.{action}");
        covered.insert((tool, action));
    }
    // Every CLI action in the catalogue has a row above.
    for spec in catalogue().iter().filter(|s| s.cli.is_some()) {
        assert!(
            covered.contains(&(spec.tool, spec.action)),
            "no argv test for {}.{}",
            spec.tool,
            spec.action
        );
    }
}

#[test]
fn api_requests() {
    let req = |tool, action: &str, input: Value| {
        let spec = find(tool, action).unwrap();
        let input = spec.validate(&input).unwrap();
        spec.api_request(&input).unwrap()
    };
    let r = req(
        ToolName::Prometheus,
        "query_range",
        json!({"query": "rate(x[5m])", "start": "1700000000", "end": "1700003600", "step": "30s"}),
    );
    assert_eq!(
        (r.method, r.path.as_str()),
        (HttpMethod::Get, "/api/v1/query_range")
    );
    assert_eq!(r.query[0], ("query".into(), "rate(x[5m])".into()));
    let r = req(
        ToolName::Thanos,
        "query",
        json!({"query": "up", "dedup": true, "max_source_resolution": "5m"}),
    );
    assert!(r.query.contains(&("dedup".into(), "true".into())));
    let r = req(ToolName::Argocd, "status", json!({"app": "web"}));
    assert_eq!(r.path, "/api/v1/applications/web");
    let r = req(ToolName::Argocd, "rollback", json!({"app": "web", "id": 2}));
    assert_eq!(
        (r.method, r.body),
        (HttpMethod::Put, Some(json!({"id": 2})))
    );
    let r = req(ToolName::Grafana, "dashboard-get", json!({"uid": "a/b"}));
    assert_eq!(
        r.path, "/api/dashboards/uid/a%2Fb",
        "path segments are encoded"
    );
    let r = req(
        ToolName::Tempo,
        "trace",
        json!({"trace_id": "0123456789abcdef0123456789abcdef"}),
    );
    assert_eq!(r.path, "/api/traces/0123456789abcdef0123456789abcdef");
    let r = req(
        ToolName::Pagerduty,
        "resolve",
        json!({"dedup_key": "web-down"}),
    );
    assert_eq!(r.body.unwrap()["event_action"], "resolve");
    let r = req(
        ToolName::Alertmanager,
        "alerts",
        json!({"filter": ["alertname=\"X\""], "active": true}),
    );
    assert_eq!(r.query.len(), 2);
    let r = req(ToolName::Vault, "health", json!({}));
    assert_eq!(r.path, "/v1/sys/health");
    // API-only tools have no CLI and every catalogue entry has at least one path.
    for spec in catalogue() {
        assert!(
            spec.cli.is_some() || spec.api.is_some(),
            "{}.{} has no way to run",
            spec.tool,
            spec.action
        );
        if matches!(
            spec.tool,
            ToolName::Prometheus
                | ToolName::Thanos
                | ToolName::Alertmanager
                | ToolName::Grafana
                | ToolName::Tempo
                | ToolName::Linear
                | ToolName::Pagerduty
        ) {
            assert!(spec.cli.is_none());
        }
    }
}

#[test]
fn injection_attempts_are_rejected_naming_the_field() {
    let cases: Vec<(ToolName, &str, Value, &str)> = vec![
        (
            ToolName::Kubectl,
            "get",
            json!({"resource": "--all-namespaces"}),
            "resource",
        ),
        (
            ToolName::Kubectl,
            "get",
            json!({"resource": "pods", "namespace": "-A"}),
            "namespace",
        ),
        (
            ToolName::Kubectl,
            "get",
            json!({"resource": "pods", "namespace": "web; rm -rf /"}),
            "namespace",
        ),
        (
            ToolName::Kubectl,
            "get",
            json!({"resource": "pods", "selector": "--kubeconfig=/x"}),
            "selector",
        ),
        (
            ToolName::Kubectl,
            "scale",
            json!({"resource": "deployment/web", "replicas": "3 --all"}),
            "replicas",
        ),
        (
            ToolName::Kubectl,
            "scale",
            json!({"resource": "deployment/web", "replicas": -1}),
            "replicas",
        ),
        (ToolName::Kubectl, "logs", json!({"pod": "$(id)"}), "pod"),
        (
            ToolName::Kubectl,
            "get",
            json!({"resource": "pods", "extra": "x"}),
            "extra",
        ),
        (
            ToolName::Helm,
            "upgrade",
            json!({"release": "web", "chart": "../../etc"}),
            "chart",
        ),
        (
            ToolName::Helm,
            "upgrade",
            json!({"release": "web", "chart": "charts/web", "values_file": "/etc/shadow"}),
            "values_file",
        ),
        (
            ToolName::Helm,
            "upgrade",
            json!({"release": "web", "chart": "charts/web", "version": "--post-renderer=x"}),
            "version",
        ),
        (
            ToolName::Helm,
            "status",
            json!({"release": "-h"}),
            "release",
        ),
        (
            ToolName::Argocd,
            "sync",
            json!({"app": "web", "revision": "--server=evil"}),
            "revision",
        ),
        (
            ToolName::Aws,
            "assume-role",
            json!({"role_arn": "--profile=admin"}),
            "role_arn",
        ),
        (
            ToolName::Aws,
            "assume-role",
            json!({"role_arn": "arn:aws:iam::123456789012:role/x", "region": "us-east-1 --debug"}),
            "region",
        ),
        (
            ToolName::Vault,
            "read",
            json!({"path": "../sys/raw"}),
            "path",
        ),
        (
            ToolName::Vault,
            "read",
            json!({"path": "-field=token"}),
            "path",
        ),
        (
            ToolName::Git,
            "branch",
            json!({"name": "--upload-pack=evil"}),
            "name",
        ),
        (
            ToolName::Git,
            "add",
            json!({"paths": ["ok.txt", "../../.ssh/id_rsa"]}),
            "paths",
        ),
        (
            ToolName::Git,
            "push",
            json!({"branch": "main", "remote": "-o"}),
            "remote",
        ),
        (
            ToolName::Github,
            "pr-create",
            json!({"title": "x", "base": "main", "head": "a..b"}),
            "head",
        ),
        (
            ToolName::Github,
            "branch-create",
            json!({"repo": "acme", "branch": "x", "sha": "abc1234"}),
            "repo",
        ),
        (
            ToolName::Prometheus,
            "query",
            json!({"query": "up", "time": "now; drop"}),
            "time",
        ),
        (
            ToolName::Tempo,
            "trace",
            json!({"trace_id": "../../admin"}),
            "trace_id",
        ),
        (
            ToolName::Kubectl,
            "scale",
            json!({"replicas": 3}),
            "resource",
        ),
    ];
    for (tool, action, input, field) in cases {
        let spec = find(tool, action).unwrap();
        let err = spec
            .validate(&input)
            .expect_err(&format!("{tool}.{action} accepted {input}"));
        assert_eq!(err.field, field, "{tool}.{action} {input}: {err}");
        assert!(
            err.to_string().starts_with(&format!("input.{field}")),
            "{err}"
        );
    }
    assert!(
        find(ToolName::Kubectl, "exec").is_none(),
        "exec is not in the catalogue"
    );
    assert!(find(ToolName::Helm, "delete").is_none());
}

#[test]
fn destructive_actions_are_break_glass_and_high() {
    for spec in catalogue() {
        if spec.break_glass {
            assert_eq!(
                spec.risk(),
                carapulse_core::model::RiskLevel::High,
                "{}.{}",
                spec.tool,
                spec.action
            );
        }
        if ["delete", "uninstall", "lease-revoke"].contains(&spec.action) {
            assert!(
                spec.break_glass,
                "{}.{} must be break-glass",
                spec.tool, spec.action
            );
        }
    }
}

#[test]
fn schemas_are_published_for_every_action() {
    for spec in catalogue() {
        let schema = spec.schema();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.len(), spec.fields.len());
        for f in spec.fields {
            assert!(props.contains_key(f.name));
            if f.required {
                assert!(schema["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == f.name));
            }
        }
        let d = spec.describe();
        assert_eq!(d["action"], spec.action);
    }
    let tools: std::collections::BTreeSet<_> = catalogue().iter().map(|s| s.tool).collect();
    assert_eq!(tools.len(), 16, "all sixteen tools have actions");
}

/// The real `helm` (3.17.1, `scripts/lib.sh ensure_helm`; `CARAPULSE_HELM` overrides).
fn real_helm() -> std::path::PathBuf {
    let helm = std::env::var_os("CARAPULSE_HELM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.dev/bin/helm")
        });
    assert!(
        helm.exists(),
        "helm not found at {}: run ./scripts/test.sh (it installs helm into .dev/bin)",
        helm.display()
    );
    helm
}

/// What helm's command-line parser says when it refuses an argv (cobra's messages).
const PARSE_ERRORS: &[&str] = &[
    "unknown flag",
    "unknown shorthand flag",
    "unknown command",
    "flag needs an argument",
    "invalid argument",
    "accepts ",
    "requires at least",
    "requires exactly",
    "requires a minimum",
];

/// Runs `argv` through the real helm with no cluster (an unreachable kubeconfig, scratch helm
/// homes) and no chart, and returns helm's stderr: a good argv fails dialling the cluster or
/// finding the chart, never in helm's parser.
fn helm_stderr(helm: &std::path::Path, home: &std::path::Path, argv: &[String]) -> String {
    let out = std::process::Command::new(helm)
        .args(&argv[1..])
        .env_clear()
        .env("HOME", home)
        .env("KUBECONFIG", home.join("kubeconfig"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm runs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn real_helm_parses_every_helm_argv() {
    let helm = real_helm();
    let home =
        std::env::temp_dir().join(format!("carapulse-helm-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&home).expect("scratch home");
    std::fs::write(
        home.join("kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: https://127.0.0.1:1\n\
         contexts:\n- name: none\n  context:\n    cluster: none\n    user: none\n\
         current-context: none\nusers:\n- name: none\n  user:\n    token: x\n",
    )
    .expect("kubeconfig");
    // Every helm action with every optional field set (and each choice of an enum).
    let inputs: Vec<(&str, Value)> = vec![
        ("status", json!({"release": "web", "namespace": "web"})),
        ("list", json!({"namespace": "web"})),
        ("list", json!({"all_namespaces": true})),
        (
            "get",
            json!({"release": "web", "namespace": "web", "what": "all"}),
        ),
        (
            "get",
            json!({"release": "web", "namespace": "web", "what": "values"}),
        ),
        (
            "get",
            json!({"release": "web", "namespace": "web", "what": "manifest"}),
        ),
        (
            "get",
            json!({"release": "web", "namespace": "web", "what": "notes"}),
        ),
        ("history", json!({"release": "web", "namespace": "web"})),
        (
            "upgrade",
            json!({"release": "web", "chart": "charts/web", "namespace": "web", "version": "1.2.3",
                   "values_file": "values/web.yaml", "wait": true, "atomic": true, "timeout": "5m"}),
        ),
        (
            "rollback",
            json!({"release": "web", "namespace": "web", "revision": 7, "wait": true}),
        ),
        ("rollback", json!({"release": "web"})),
        ("uninstall", json!({"release": "web", "namespace": "web"})),
        (
            "template",
            json!({"release": "web", "chart": "charts/web", "namespace": "web", "version": "1.2.3",
                   "values_file": "values/web.yaml"}),
        ),
        (
            "lint",
            json!({"chart": "charts/web", "strict": true, "values_file": "values/web.yaml"}),
        ),
        (
            "show",
            json!({"chart": "charts/web", "version": "1.2.3", "what": "values"}),
        ),
        ("show", json!({"chart": "charts/web", "what": "chart"})),
        ("show", json!({"chart": "charts/web", "what": "readme"})),
        ("show", json!({"chart": "charts/web", "what": "all"})),
    ];
    let covered: std::collections::BTreeSet<&str> = inputs.iter().map(|(a, _)| *a).collect();
    let helm_actions: std::collections::BTreeSet<&str> = catalogue()
        .iter()
        .filter(|s| s.tool == ToolName::Helm)
        .map(|s| s.action)
        .collect();
    assert_eq!(
        covered, helm_actions,
        "every helm action is run through helm"
    );
    for (action, input) in inputs {
        let argv = argv(ToolName::Helm, action, input);
        let stderr = helm_stderr(&helm, &home, &argv);
        assert!(
            !PARSE_ERRORS.iter().any(|e| stderr.contains(e)),
            "helm refused {argv:?}: {stderr}"
        );
        // It got past parsing and failed where it should: dialling the (absent) cluster, or, for
        // the actions that need no cluster, looking for the (absent) chart or values file.
        let local = ["template", "lint", "show"].contains(&action);
        assert!(
            if local {
                stderr.contains("repo charts not found")
                    || stderr.contains("values/web.yaml: no such file")
            } else {
                stderr.contains("Kubernetes cluster unreachable")
            },
            "{argv:?}: unexpected failure: {stderr}"
        );
        // And the check can fail: the same argv with a flag helm does not know is refused.
        let mut bad = argv.clone();
        bad.push("--no-such-flag".into());
        let stderr = helm_stderr(&helm, &home, &bad);
        assert!(stderr.contains("unknown flag"), "{bad:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&home);
}
