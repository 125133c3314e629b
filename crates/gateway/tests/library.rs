//! Memory, playbooks and runbooks: CRUD, versions, paging, filters, write protection, tenancy —
//! and a playbook created here steering the event loop's plan for an alert.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

use carapulse_core::config::WebhookSource;

#[tokio::test]
async fn memory_playbooks_runbooks() {
    let app = spawn_app_with(|c| {
        c.webhooks.insert(
            "alertmanager".into(),
            WebhookSource {
                tenant_id: "acme".into(),
                bearer_token: Some("library-test-bearer-0123".into()),
                environment: "prod".into(),
                ..Default::default()
            },
        );
        c.gateway.enable_event_loop = true;
    })
    .await;
    let op = token("op", "acme", &["operator"]);
    let viewer = token("viewer", "acme", &["viewer"]);
    let eve = token("eve", "other", &["admin"]);

    // Memory.
    for i in 0..3 {
        let (status, body) = app
            .post("/v1/memory", &op, &json!({"title": format!("note {i}"), "body": if i == 1 { "never scale web above 10" } else { "misc" }, "tags": ["web"]}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(
        app.post("/v1/memory", &viewer, &json!({"title": "x", "body": "y"}))
            .await
            .0,
        403
    );
    assert_eq!(
        app.post("/v1/memory", &op, &json!({"title": "", "body": "y"}))
            .await
            .0,
        422
    );
    let (_, page) = app.get("/v1/memory?limit=2&count=exact", &viewer).await;
    assert_eq!(
        (
            page["pagination"]["total"].as_i64(),
            page["data"].as_array().unwrap().len()
        ),
        (Some(3), 2)
    );
    let (_, found) = app.get("/v1/memory?q=scale", &viewer).await;
    assert_eq!(found["data"][0]["title"], "note 1");
    let id = found["data"][0]["memory_id"].as_str().unwrap().to_owned();
    let resp = app
        .http
        .put(format!("{}/v1/memory/{id}", app.url))
        .bearer_auth(&op)
        .json(&json!({"title": "note 1", "body": "never scale web above 12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(app.get(&format!("/v1/memory/{id}"), &eve).await.0, 404);
    let resp = app
        .http
        .delete(format!("{}/v1/memory/{id}", app.url))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get(&format!("/v1/memory/{id}"), &op).await.0, 404);

    // Playbooks: validated specs, versions.
    let bad = json!({"name": "latency", "spec": {"alertname": "HighLatency", "workflow": "reboot_everything"}});
    let (status, body) = app.post("/v1/playbooks", &op, &bad).await;
    assert_eq!(status, 422, "{body}");
    let spec = json!({"alertname": "HighLatency", "workflow": "service_restart",
                      "input": {"resource": "deployment/{{labels.deployment}}", "namespace": "{{labels.namespace}}"}});
    let (status, v1) = app
        .post(
            "/v1/playbooks",
            &op,
            &json!({"name": "latency", "spec": spec, "tags": ["web"]}),
        )
        .await;
    assert_eq!(status, 201, "{v1}");
    assert_eq!(v1["version"], 1);
    let v1_id = v1["id"].as_str().unwrap();
    let resp = app
        .http
        .put(format!("{}/v1/playbooks/{v1_id}", app.url))
        .bearer_auth(&op)
        .json(&json!({"tags": ["web", "latency"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v2: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (v2["version"].as_i64(), v2["name"].as_str()),
        (Some(2), Some("latency"))
    );
    assert_eq!(v2["spec"], spec, "an update without spec keeps it");
    let (_, list) = app.get("/v1/playbooks?count=exact", &viewer).await;
    assert_eq!(list["pagination"]["total"], 1, "latest version only");
    assert_eq!(list["data"][0]["version"], 2);
    let (_, one) = app.get(&format!("/v1/playbooks/{v1_id}"), &viewer).await;
    assert_eq!(one["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/v1/playbooks?count=exact", &eve).await.1["pagination"]["total"],
        0
    );

    // Runbooks per service.
    for (service, name) in [("web", "restart"), ("web", "drain"), ("db", "failover")] {
        let (status, _) = app
            .post(
                "/v1/runbooks",
                &op,
                &json!({"service": service, "name": name, "body": "# Steps\n1. check"}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (_, web) = app
        .get("/v1/runbooks?service=web&count=exact", &viewer)
        .await;
    assert_eq!(web["pagination"]["total"], 2);
    assert_eq!(
        app.post("/v1/runbooks", &op, &json!({"name": "x"})).await.0,
        422,
        "runbooks need a service"
    );

    // The playbook steers the event loop.
    let alert = json!({"version": "4", "status": "firing", "receiver": "r", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "x",
        "alerts": [{"status": "firing", "labels": {"alertname": "HighLatency", "deployment": "checkout", "namespace": "shop"}, "annotations": {},
                    "startsAt": "2026-11-29T10:00:00Z", "fingerprint": "fp-playbook"}]});
    let resp = app
        .http
        .post(format!("{}/v1/hooks/alertmanager", app.url))
        .bearer_auth("library-test-bearer-0123")
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let mut plan = serde_json::Value::Null;
    for _ in 0..50 {
        let (_, list) = app.get("/v1/plans?trigger=alert", &viewer).await;
        if let Some(p) = list["data"].as_array().and_then(|d| d.first()) {
            plan = app
                .get(
                    &format!("/v1/plans/{}", p["plan_id"].as_str().unwrap()),
                    &viewer,
                )
                .await
                .1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        plan["meta"]["workflow"]["name"], "service_restart",
        "{plan}"
    );
    assert_eq!(
        plan["meta"]["planning"]["notes"][0],
        "rule: playbook latency"
    );
    assert_eq!(
        plan["meta"]["workflow"]["input"]["resource"],
        "deployment/checkout"
    );
    app.stop().await;
}
