//! `/v1/context/*` on a gateway with the context service on (static mappings as the source):
//! refresh, services, graph, snapshots, write protection of client-supplied nodes, tenancy,
//! collector health in `/readyz`.

mod common;

use common::*;
use serde_json::json;

use carapulse_core::config::ServiceMapping;
use carapulse_core::model::TenantId;

#[tokio::test]
async fn refresh_services_graph_snapshots_and_tenancy() {
    let app = spawn_app_with(|c| {
        c.context.enabled = true;
        c.context.tenant_id = "acme".into();
        c.context.k8s_resources = Vec::new();
        c.context.services = vec![
            ServiceMapping {
                service: "web".into(),
                environment: "prod".into(),
                cluster_id: "eu-1".into(),
                namespace: "shop".into(),
                dashboards: vec!["web-overview".into()],
                ..Default::default()
            },
            ServiceMapping {
                service: "api".into(),
                environment: "prod".into(),
                ..Default::default()
            },
        ];
    })
    .await;
    let viewer = token("viewer", "acme", &["viewer"]);
    let operator = token("op", "acme", &["operator"]);
    let eve = token("eve", "other", &["admin"]);

    let (status, body) = app.post("/v1/context/refresh", &viewer, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["collectors"]["static"]["ok"], true);

    let (_, services) = app.get("/v1/context/services", &viewer).await;
    let names: Vec<&str> = services["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["api", "web"]);

    let (status, graph) = app
        .get("/v1/context/graph?service=web&depth=1", &viewer)
        .await;
    assert_eq!(status, 200, "{graph}");
    let kinds: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "service",
        "env",
        "cluster",
        "k8s.namespace",
        "grafana.dashboard",
    ] {
        assert!(kinds.contains(&kind), "{kind}: {kinds:?}");
    }
    assert_eq!(
        app.get("/v1/context/graph?service=nope", &viewer).await.0,
        404
    );
    assert_eq!(
        app.get("/v1/context/graph?service=web", &eve).await.0,
        404,
        "other tenant"
    );
    assert_eq!(app.get("/v1/context/graph", &viewer).await.0, 400);

    // Client-supplied nodes: refused for readers, accepted (and tenant-scoped) for writers.
    let supplied = json!({"nodes": [{"node_id": "runbook/web-restart", "kind": "runbook", "name": "restart web"}],
                          "edges": [{"edge_id": "documents:runbook/web-restart->service/web", "from_node_id": "runbook/web-restart", "to_node_id": "service/web", "relation": "documents"}]});
    assert_eq!(
        app.post("/v1/context/refresh", &viewer, &supplied).await.0,
        403
    );
    let (status, body) = app.post("/v1/context/refresh", &operator, &supplied).await;
    assert_eq!(status, 200, "{body}");
    let (_, graph) = app
        .get("/v1/context/graph?service=web&depth=1", &viewer)
        .await;
    assert!(graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["node_id"] == "runbook/web-restart"));
    // The other tenant's refresh is refused: this gateway collects for acme.
    assert_eq!(
        app.post("/v1/context/refresh", &eve, &json!({})).await.0,
        403
    );

    // Snapshots.
    let tenant = TenantId::parse("acme").unwrap();
    let all = app.db.store.context_all(&tenant).await.unwrap();
    let id = app
        .db
        .store
        .insert_context_snapshot(&tenant, "context", &all)
        .await
        .unwrap();
    let (_, list) = app.get("/v1/context/snapshots", &viewer).await;
    assert_eq!(list["data"][0]["snapshot_id"], id.to_string());
    assert_eq!(
        list["data"][0]["node_count"].as_u64().unwrap() as usize,
        all.nodes.len()
    );
    let (status, one) = app
        .get(&format!("/v1/context/snapshots/{id}"), &viewer)
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["nodes"].as_array().unwrap().len(), all.nodes.len());
    assert_eq!(
        app.get(&format!("/v1/context/snapshots/{id}"), &eve)
            .await
            .0,
        404
    );
    // A later snapshot with one node gone and one new: the diff names exactly those.
    let mut later = all.clone();
    let gone = later.nodes.remove(0);
    later
        .edges
        .retain(|e| e.from_node_id != gone.node_id && e.to_node_id != gone.node_id);
    let fresh = carapulse_core::store::ContextNode {
        node_id: "service/cache".into(),
        kind: "service".into(),
        name: "cache".into(),
        labels: Default::default(),
        owner_team: Some("platform".into()),
    };
    later.nodes.push(fresh.clone());
    let id2 = app
        .db
        .store
        .insert_context_snapshot(&tenant, "context", &later)
        .await
        .unwrap();
    let (status, diff) = app
        .get(
            &format!("/v1/context/snapshots/{id2}/diff?base={id}"),
            &viewer,
        )
        .await;
    assert_eq!(status, 200, "{diff}");
    assert_eq!(diff["counts"]["nodes_added"], 1, "{diff}");
    assert_eq!(diff["counts"]["nodes_removed"], 1, "{diff}");
    assert_eq!(diff["counts"]["nodes_changed"], 0, "{diff}");
    assert_eq!(diff["diff"]["nodes_added"][0]["node_id"], "service/cache");
    assert_eq!(
        diff["diff"]["nodes_removed"][0]["node_id"],
        gone.node_id.as_str()
    );
    let (_, same) = app
        .get(
            &format!("/v1/context/snapshots/{id}/diff?base={id}"),
            &viewer,
        )
        .await;
    assert_eq!(same["counts"]["nodes_added"], 0);
    assert_eq!(same["counts"]["edges_removed"], 0);
    assert_eq!(
        app.get(&format!("/v1/context/snapshots/{id2}/diff"), &viewer)
            .await
            .0,
        400,
        "base is required"
    );
    assert_eq!(
        app.get(&format!("/v1/context/snapshots/{id2}/diff?base={id}"), &eve)
            .await
            .0,
        404,
        "another tenant's snapshots"
    );

    let ready: serde_json::Value = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["collectors"]["static"]["ok"], true, "{ready}");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"carapulse_context_collector_up{collector="static"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}
