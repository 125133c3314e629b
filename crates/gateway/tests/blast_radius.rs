//! Blast radius before approval, through the API on a real database: a plan's estimate is made
//! from the tenant's service graph (never another tenant's), stored on the plan and put to
//! policy; unknown on a production write asks for approval, a large one for two approvers; an
//! approval estimates again and is refused when the reach grew past what policy decided, until
//! the plan is revised; the approval keeps the estimate it was made with.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};

use carapulse_core::model::TenantId;
use carapulse_core::store::{ContextNode, Snapshot, Traffic};

fn node(id: &str, kind: &str, name: &str, labels: &[(&str, &str)]) -> ContextNode {
    ContextNode {
        node_id: id.into(),
        kind: kind.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        owner_team: None,
    }
}

/// The Kubernetes side: Deployment `shop/web` runs service `web` (team shop, tier 1).
async fn seed_workloads(app: &TestApp, tenant: &str) {
    let mut snap = Snapshot::default();
    let mut web = node("service/web", "service", "web", &[("tier", "tier1")]);
    web.owner_team = Some("shop".into());
    snap.node(web);
    snap.node(node(
        "k8s/deployment/shop/web",
        "k8s.deployment",
        "web",
        &[("namespace", "shop")],
    ));
    snap.edge("service/web", "k8s/deployment/shop/web", "runs");
    let mut api = node("service/api", "service", "api", &[("namespace", "edge")]);
    api.owner_team = Some("platform".into());
    snap.node(api);
    snap.node(node(
        "service/ingress",
        "service",
        "ingress",
        &[("namespace", "edge"), ("tier", "critical")],
    ));
    app.db
        .store
        .replace_context(&TenantId::parse(tenant).unwrap(), "kubernetes", &snap)
        .await
        .unwrap();
}

/// The service-graph collector's view: ingress -> api -> web at `rps` into web.
async fn seed_traffic(app: &TestApp, tenant: &str, rps: f64) {
    let now = chrono::Utc::now();
    let mut snap = Snapshot::default();
    for s in ["web", "api", "ingress"] {
        snap.reference(node(&format!("service/{s}"), "service", s, &[]));
    }
    snap.call(
        "service/api",
        "service/web",
        Traffic::measured(rps, 0.01, now).unwrap(),
    );
    snap.call(
        "service/ingress",
        "service/api",
        Traffic::measured(rps * 2.0, 0.0, now).unwrap(),
    );
    app.db
        .store
        .replace_context(&TenantId::parse(tenant).unwrap(), "service_graph", &snap)
        .await
        .unwrap();
}

fn scale_plan() -> Value {
    json!({
        "summary": "Scale web for the sale",
        "context": {"environment": "production", "namespace": "shop"},
        "steps": [
            {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "namespace": "shop", "replicas": 6}},
            {"stage": "verify", "tool": "kubectl", "action": "get", "input": {"resource": "deployment/web", "namespace": "shop"},
             "expect": [{"path": ".status.readyReplicas", "op": ">=", "value": 6}]}
        ]
    })
}

fn reasons(created: &Value) -> Vec<String> {
    created["policy"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn plans_carry_their_blast_radius_and_policy_reads_it() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    // Another tenant's graph never counts for acme.
    seed_workloads(&app, "other").await;
    seed_traffic(&app, "other", 500.0).await;

    let (status, created) = app.post("/v1/plans", &alice, &scale_plan()).await;
    assert_eq!(status, 201, "{created}");
    let blast = &created["plan"]["blast_radius"];
    assert_eq!(blast["estimate"]["unknown"], true, "{blast}");
    assert_eq!(blast["stage"], "revision");
    assert!(
        blast["headline"]
            .as_str()
            .unwrap()
            .starts_with("unknown: no service-graph data"),
        "{blast}"
    );
    assert!(
        reasons(&created).contains(&"unknown_blast_radius".to_owned()),
        "{created}"
    );
    // acme has no graph: nothing to snapshot (other's graph is never taken).
    assert_eq!(created["plan"]["meta"]["context_snapshot_id"], Value::Null);
    assert_eq!(
        created["plan"]["constraints"]["approvals_required"],
        Value::Null
    );

    // With acme's own graph: deployment shop/web is service web, called by api, called by
    // ingress (critical tier): two approvers.
    seed_workloads(&app, "acme").await;
    seed_traffic(&app, "acme", 40.0).await;
    let (status, created) = app.post("/v1/plans", &alice, &scale_plan()).await;
    assert_eq!(status, 201, "{created}");
    let estimate = &created["plan"]["blast_radius"]["estimate"];
    assert_eq!(estimate["unknown"], false, "{estimate}");
    assert_eq!(estimate["target_services"], json!(["web"]));
    let reached: Vec<(String, u64)> = estimate["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reached,
        vec![("web".into(), 0), ("api".into(), 1), ("ingress".into(), 2)]
    );
    assert_eq!(estimate["rps"], 40.0);
    assert_eq!(estimate["namespaces"], json!(["edge", "shop"]));
    assert_eq!(estimate["teams"], json!(["platform", "shop"]));
    assert_eq!(estimate["tier"], "critical");
    assert_eq!(estimate["entry_points"], json!(["ingress"]));
    assert_eq!(estimate["edges"].as_array().unwrap().len(), 2);
    let reasons = reasons(&created);
    assert!(
        reasons.contains(&"large_blast_radius".to_owned()),
        "{reasons:?}"
    );
    assert!(!reasons.contains(&"unknown_blast_radius".to_owned()));
    assert_eq!(created["plan"]["constraints"]["approvals_required"], 2);
    let id = created["plan_id"].as_str().unwrap();
    let (_, got) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(got["blast_radius"]["estimate"]["rps"], 40.0);
    // What planning saw is kept for replay: a snapshot of acme's graph taken for it, reused
    // while fresh, replaced once stale.
    let snapshot = got["meta"]["context_snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (source, nodes): (String, i64) = sqlx::query_as(
        "SELECT source, jsonb_array_length(nodes_json)::bigint FROM context_snapshots \
         WHERE snapshot_id = $1::uuid AND tenant_id = 'acme'",
    )
    .bind(&snapshot)
    .fetch_one(app.db.store.pool())
    .await
    .unwrap();
    assert_eq!((source.as_str(), nodes), ("planning", 4));
    // The plan's planning record holds what decided it: the policy input with the estimate,
    // the outcome, the snapshot.
    let plan_id = carapulse_core::model::PlanId::parse(id).unwrap();
    let (_, record) = app
        .db
        .store
        .planning_record(&TenantId::parse("acme").unwrap(), plan_id, 1)
        .await
        .unwrap()
        .expect("planning record");
    assert_eq!(record["version"], 1);
    assert_eq!(record["trigger"], "manual");
    assert_eq!(record["context_snapshot_id"], snapshot.as_str());
    assert_eq!(record["policy"]["input"]["action"]["name"], "plan.create");
    assert_eq!(record["policy"]["input"]["blast_radius"]["rps"], 40.0);
    assert_eq!(record["policy"]["outcome"]["decision"], "require_approval");
    assert_eq!(
        record["policy"]["outcome"]["constraints"]["approvals_required"],
        2
    );
    assert_eq!(record["llm_request"], Value::Null, "no model planned it");
    let (_, again) = app.post("/v1/plans", &alice, &scale_plan()).await;
    assert_eq!(
        again["plan"]["meta"]["context_snapshot_id"],
        snapshot.as_str()
    );
    sqlx::query("UPDATE context_snapshots SET collected_at = now() - interval '11 minutes'")
        .execute(app.db.store.pool())
        .await
        .unwrap();
    let (_, later) = app.post("/v1/plans", &alice, &scale_plan()).await;
    let newer = later["plan"]["meta"]["context_snapshot_id"]
        .as_str()
        .unwrap();
    assert_ne!(newer, snapshot, "a stale snapshot is replaced");
    // The estimate is what policy was asked: the kept decision input carries it (decisions
    // are written in the background).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let kept: Value = loop {
        let row: Option<(Value,)> = sqlx::query_as(
            "SELECT input_json->'blast_radius' FROM policy_decisions WHERE action = 'plan.create' \
             AND input_json->'blast_radius'->>'unknown' = 'false'",
        )
        .fetch_optional(app.db.store.pool())
        .await
        .unwrap();
        if let Some((v,)) = row {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "decision not kept");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        kept,
        json!({"unknown": false, "services": 3, "namespaces": 2, "teams": 2, "rps": 40.0, "tier": "critical", "targets": 1})
    );
    app.stop().await;
}

#[tokio::test]
async fn an_approval_is_refused_when_the_blast_radius_grew_until_the_plan_is_revised() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let carol = token("carol", "acme", &["approver"]);
    // A small graph (no critical tier, low traffic): one approver.
    let mut snap = Snapshot::default();
    snap.node(node(
        "service/web",
        "service",
        "web",
        &[("namespace", "shop")],
    ));
    snap.node(node(
        "service/api",
        "service",
        "api",
        &[("namespace", "shop")],
    ));
    let acme = TenantId::parse("acme").unwrap();
    app.db
        .store
        .replace_context(&acme, "kubernetes", &snap)
        .await
        .unwrap();
    let small = |rps: f64| {
        let mut s = Snapshot::default();
        s.reference(node("service/web", "service", "web", &[]));
        s.reference(node("service/api", "service", "api", &[]));
        s.call(
            "service/api",
            "service/web",
            Traffic::measured(rps, 0.0, chrono::Utc::now()).unwrap(),
        );
        s
    };
    app.db
        .store
        .replace_context(&acme, "service_graph", &small(20.0))
        .await
        .unwrap();
    let mut body = scale_plan();
    body["steps"][0]["input"]["resource"] = json!("deployment/web");
    let (status, created) = app.post("/v1/plans", &alice, &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["plan"]["constraints"]["approvals_required"],
        Value::Null
    );
    assert_eq!(created["plan"]["approval_state"], "pending");
    let id = created["plan_id"].as_str().unwrap().to_owned();

    // Traffic grows past the threshold before anyone approves.
    app.db
        .store
        .replace_context(&acme, "service_graph", &small(450.0))
        .await
        .unwrap();
    let approve = json!({"plan_id": id, "status": "approved"});
    let (status, refused) = app.post("/v1/approvals", &bob, &approve).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "blast_radius_changed");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("450.0 req/s"), "{message}");
    assert!(
        message.contains("policy now asks for 2 approvers, the plan records 1"),
        "{message}"
    );
    // Nothing changed, and the refusal is audited.
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(plan["approval_state"], "pending");
    assert_eq!(plan["approvals"]["approved_by"], json!([]));
    let (denied,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_events WHERE action = 'approval.create' AND decision = 'deny' \
         AND reason LIKE 'the blast radius changed%'",
    )
    .fetch_one(app.db.store.pool())
    .await
    .unwrap();
    assert_eq!(denied, 1);

    // Revised, policy decides again: two approvers now, and they can approve.
    let (status, revised) = app
        .post(
            &format!("/v1/plans/{id}/revisions"),
            &alice,
            &json!({"note": "traffic grew"}),
        )
        .await;
    assert_eq!(status, 201, "{revised}");
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(plan["constraints"]["approvals_required"], 2, "{plan}");
    // Each revision has its own planning record.
    let plan_id = carapulse_core::model::PlanId::parse(&id).unwrap();
    for (revision, rps) in [(1, 20.0), (2, 450.0)] {
        let (_, record) = app
            .db
            .store
            .planning_record(&acme, plan_id, revision)
            .await
            .unwrap()
            .expect("planning record");
        assert_eq!(record["policy"]["input"]["blast_radius"]["rps"], rps);
    }
    assert_eq!(plan["blast_radius"]["estimate"]["rps"], 450.0);
    let (status, first) = app.post("/v1/approvals", &bob, &approve).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["blast_radius"]["rps"], 450.0, "{first}");
    assert_eq!(first["blast_radius"]["approvals_required"], 2);
    let (status, second) = app.post("/v1/approvals", &carol, &approve).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["plan_approval_state"], "approved");
    // The plan shows the estimate its approval was made with.
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(plan["blast_radius"]["stage"], "approval", "{plan}");
    assert!(plan["blast_radius"]["age_secs"].as_i64().unwrap() < 60);
    app.stop().await;
}
