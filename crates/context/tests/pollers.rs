//! The pollers through a mock tool router (wiremock asserting each tool/action request), the
//! static mappings, the assembled service graph, isolation of a failing collector, and
//! snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use carapulse_context::collectors::polled::{PollKind, Polled};
use carapulse_context::collectors::static_map::StaticMappings;
use carapulse_context::service::Schedule;
use carapulse_context::tool_runner::ToolRunner;
use carapulse_context::{Collector, ContextService, HealthBoard};
use carapulse_core::config::ServiceMapping;
use carapulse_core::model::{ContextRef, TenantId};
use carapulse_core::store::Page;
use carapulse_core::testing::TestDatabase;

fn ran(output: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"tool_call_id": "t", "status": "succeeded", "exit_code": 0,
        "output": output.to_string(), "stderr": "", "used": "cli"}),
    )
}

async fn tool(server: &MockServer, tool: &str, action: &str, output: Value) {
    Mock::given(method("POST"))
        .and(path("/v1/tools/execute"))
        .and(header("authorization", "Bearer router-token"))
        .and(body_partial_json(
            json!({"tool_name": tool, "action": action}),
        ))
        .respond_with(ran(output))
        .mount(server)
        .await;
}

#[tokio::test]
async fn pollers_build_the_service_graph_and_fail_alone() {
    let router = MockServer::start().await;
    tool(&router, "helm", "list", json!([{"name": "web", "namespace": "shop", "chart": "web-1.2.0", "status": "deployed", "app_version": "1.2"}])).await;
    tool(&router, "argocd", "list", json!([{"metadata": {"name": "web"}, "spec": {"destination": {"namespace": "shop"}},
        "status": {"sync": {"status": "Synced", "revision": "3f9c2ab"}, "health": {"status": "Healthy"}}}])).await;
    tool(
        &router,
        "prometheus",
        "query",
        json!({"status": "success", "data": {"resultType": "vector",
        "result": [{"metric": {"job": "web"}, "value": [1700000000, "0.42"]}]}}),
    )
    .await;
    tool(&router, "alertmanager", "alerts", json!([{"fingerprint": "fp1", "labels": {"alertname": "HighLatency", "service": "web", "severity": "page"},
        "status": {"state": "active"}}])).await;
    tool(&router, "tempo", "search", json!({"traces": [{"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "rootServiceName": "web", "rootTraceName": "GET /checkout", "durationMs": 812}]})).await;
    tool(&router, "aws", "tagging-get-resources", json!({"ResourceTagMappingList": [{"ResourceARN": "arn:aws:rds:eu-west-1:123456789012:db:web-db",
        "Tags": [{"Key": "service", "Value": "web"}]}]})).await;
    // Grafana is down: only its collector suffers.
    Mock::given(method("POST"))
        .and(body_partial_json(
            json!({"tool_name": "grafana", "action": "dashboards"}),
        ))
        .respond_with(ResponseTemplate::new(502).set_body_json(
            json!({"error": {"code": "upstream", "message": "grafana unreachable"}}),
        ))
        .mount(&router)
        .await;

    let context = ContextRef {
        tenant_id: "acme".into(),
        environment: "prod".into(),
        ..Default::default()
    };
    let runner = ToolRunner::new(
        &router.uri(),
        Some("router-token".into()),
        context,
        Duration::from_secs(5),
    )
    .unwrap();
    let polled = |kind| {
        Arc::new(Polled {
            kind,
            runner: runner.clone(),
        }) as Arc<dyn Collector>
    };
    let workspace = tempfile_dir();
    std::fs::write(
        workspace.join("service_mappings.json"),
        r#"[{"service": "web", "environment": "prod", "cluster_id": "eu-1", "namespace": "shop", "dashboards": ["web-overview"]}]"#,
    )
    .unwrap();
    let pollers = vec![
        Arc::new(StaticMappings {
            configured: vec![ServiceMapping {
                service: "api".into(),
                environment: "prod".into(),
                ..Default::default()
            }],
            workspace_file: Some(workspace.join("service_mappings.json")),
        }) as Arc<dyn Collector>,
        polled(PollKind::Helm {
            namespaces: vec!["shop".into()],
        }),
        polled(PollKind::Argocd { apps: vec![] }),
        polled(PollKind::Metrics {
            tool: "prometheus",
            queries: vec!["up{job=\"web\"}".into()],
        }),
        polled(PollKind::Alertmanager),
        polled(PollKind::Grafana { folder_ids: vec![] }),
        polled(PollKind::Tempo {
            queries: vec!["{ resource.service.name = \"web\" }".into()],
        }),
        polled(PollKind::Aws {
            tags: BTreeMap::new(),
        }),
    ];
    let db = TestDatabase::create().await;
    let tenant = TenantId::parse("acme").unwrap();
    let health = HealthBoard::default();
    let service = ContextService::new(
        db.store.clone(),
        tenant.clone(),
        pollers,
        vec![],
        Schedule {
            poll_interval: Duration::from_secs(60),
            intervals: BTreeMap::new(),
            timeout: Duration::from_secs(5),
            snapshot_interval: Duration::from_secs(60),
        },
        health.clone(),
    )
    // context.labels: under every node's own labels (a node's own "value" wins).
    .with_base_labels(Arc::new(BTreeMap::from([
        ("team".to_owned(), "sre".to_owned()),
        ("value".to_owned(), "from-base".to_owned()),
    ])));
    let outcome = service.refresh_now().await;
    assert!(
        outcome["grafana"].as_ref().unwrap_err().contains("502"),
        "{outcome:?}"
    );
    for name in [
        "static",
        "helm",
        "argocd",
        "prometheus",
        "alertmanager",
        "tempo",
        "aws",
    ] {
        assert!(outcome[name].is_ok(), "{name}: {:?}", outcome[name]);
    }
    let board = health.snapshot().await;
    assert!(!board["grafana"].ok && board["grafana"].consecutive_failures == 1);
    assert!(board["helm"].ok);

    let graph = db.store.context_graph(&tenant, "web", 2).await.unwrap();
    let kinds: std::collections::BTreeSet<&str> =
        graph.nodes.iter().map(|n| n.kind.as_str()).collect();
    for kind in [
        "service",
        "helm.release",
        "argocd.app",
        "prometheus.query",
        "alert",
        "tempo.trace",
        "aws.resource",
        "grafana.dashboard",
        "env",
        "cluster",
        "k8s.namespace",
    ] {
        assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
    }
    let web = graph
        .nodes
        .iter()
        .find(|n| n.node_id == "service/web")
        .unwrap();
    assert_eq!(
        web.labels.get("cluster_id").map(String::as_str),
        Some("eu-1"),
        "static mapping labels survive references"
    );
    let q = graph
        .nodes
        .iter()
        .find(|n| n.kind == "prometheus.query")
        .unwrap();
    assert_eq!(
        q.labels.get("value").map(String::as_str),
        Some("0.42"),
        "query results are kept, over a base label of the same name"
    );
    assert!(
        graph
            .nodes
            .iter()
            .all(|n| n.labels.get("team").map(String::as_str) == Some("sre")),
        "every node carries context.labels: {:?}",
        graph.nodes
    );
    let services = db
        .store
        .context_services(&tenant, Page::new(None, None))
        .await
        .unwrap();
    let names: Vec<&str> = services.items.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["api", "web"]);
    // Other tenants see nothing.
    let other = TenantId::parse("other").unwrap();
    assert!(db.store.context_graph(&other, "web", 2).await.is_err());

    // Grafana back: dashboards (linked by tag) and data sources.
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"tool_name": "grafana", "action": "dashboards", "input": {"folder_ids": [7]}})))
        .respond_with(ran(json!([{"uid": "abc", "title": "Web latency", "tags": ["service:web"], "folderTitle": "SRE"}])))
        .with_priority(1)
        .mount(&router)
        .await;
    tool(
        &router,
        "grafana",
        "datasources",
        json!([{"uid": "prom", "name": "Prometheus", "type": "prometheus"}]),
    )
    .await;
    let grafana = Polled {
        kind: PollKind::Grafana {
            folder_ids: vec![7],
        },
        runner: runner.clone(),
    };
    let snap = grafana.collect().await.unwrap();
    assert!(snap.nodes.iter().any(|n| n.kind == "grafana.datasource"
        && n.labels.get("type").map(String::as_str) == Some("prometheus")));
    assert!(snap
        .edges
        .iter()
        .any(|e| e.from_node_id == "service/web" && e.to_node_id == "grafana/dashboard/abc"));

    // A later poll that no longer sees the Helm release removes it.
    router.reset().await;
    tool(&router, "helm", "list", json!([])).await;
    let helm = Polled {
        kind: PollKind::Helm {
            namespaces: vec!["shop".into()],
        },
        runner,
    };
    let snap = helm.collect().await.unwrap();
    db.store
        .replace_context(&tenant, "helm", &snap)
        .await
        .unwrap();
    let graph = db.store.context_graph(&tenant, "web", 2).await.unwrap();
    assert!(!graph.nodes.iter().any(|n| n.kind == "helm.release"));

    let mut last = None;
    let id = service
        .snapshot_now(&mut last)
        .await
        .unwrap()
        .expect("a snapshot");
    assert!(
        service.snapshot_now(&mut last).await.unwrap().is_none(),
        "unchanged graph: no new snapshot"
    );
    let (info, snapshot) = db.store.context_snapshot(&tenant, id).await.unwrap();
    assert_eq!(info.node_count as usize, snapshot.nodes.len());
    assert!(snapshot.nodes.len() > 10);
    db.drop_now().await;
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("carapulse-ctx-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
