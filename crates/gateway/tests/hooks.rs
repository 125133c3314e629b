//! Webhooks: per-source authentication before anything is stored, deduplication, size limits,
//! and the event loop turning firing alerts into gated, never auto-approved plans.

mod common;

use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use carapulse_core::config::{Config, WebhookSource};

const BEARER: &str = "alertmanager-bearer-token-0123456789";
const SECRET: &str = "git-hmac-secret-0123456789abcdef";

fn configure(c: &mut Config) {
    c.webhooks.insert(
        "alertmanager".into(),
        WebhookSource {
            tenant_id: "acme".into(),
            bearer_token: Some(BEARER.into()),
            environment: "prod".into(),
            namespace: "shop".into(),
            ..Default::default()
        },
    );
    c.webhooks.insert(
        "git".into(),
        WebhookSource {
            tenant_id: "acme".into(),
            hmac_secret: Some(SECRET.into()),
            environment: "prod".into(),
            ..Default::default()
        },
    );
    c.gateway.enable_event_loop = true;
    c.gateway.event_gate_service_per_hour = 2;
}

fn alert(name: &str, status: &str, fingerprint: &str, labels: Value) -> Value {
    let mut l = json!({"alertname": name, "severity": "page"});
    if let (Some(dst), Some(src)) = (l.as_object_mut(), labels.as_object()) {
        dst.extend(src.clone());
    }
    json!({"status": status, "labels": l, "annotations": {"summary": format!("{name} is bad")},
           "startsAt": "2026-11-29T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
           "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint})
}

fn payload(alerts: Vec<Value>) -> Value {
    json!({"version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0, "status": "firing",
           "receiver": "carapulse", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
           "externalURL": "http://alertmanager:9093", "alerts": alerts})
}

async fn post_hook(
    app: &TestApp,
    source: &str,
    body: &str,
    headers: &[(&str, String)],
) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/v1/hooks/{source}", app.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM alert_events")
        .fetch_one(app.db.store.pool())
        .await
        .unwrap()
}

async fn alert_plans(app: &TestApp) -> Vec<Value> {
    let admin = token("admin", "acme", &["admin"]);
    let (_, list) = app.get("/v1/plans?trigger=alert", &admin).await;
    let mut plans = Vec::new();
    for p in list["data"].as_array().unwrap() {
        let (_, full) = app
            .get(
                &format!("/v1/plans/{}", p["plan_id"].as_str().unwrap()),
                &admin,
            )
            .await;
        plans.push(full);
    }
    plans
}

#[tokio::test]
async fn authentication_comes_first_and_nothing_unverified_is_stored() {
    let app = spawn_app_with(configure).await;
    let body = payload(vec![alert(
        "HighLatency",
        "firing",
        "aa01",
        json!({"deployment": "web"}),
    )])
    .to_string();
    let bearer = |t: &str| vec![("authorization", format!("Bearer {t}"))];

    assert_eq!(post_hook(&app, "alertmanager", &body, &[]).await.0, 401);
    assert_eq!(
        post_hook(
            &app,
            "alertmanager",
            &body,
            &bearer("wrong-token-0123456789")
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post_hook(&app, "k8s", &body, &bearer(BEARER)).await.0,
        404,
        "unconfigured source"
    );
    // A user's JWT is not a webhook credential.
    let alice = token("alice", "acme", &["admin"]);
    assert_eq!(
        post_hook(&app, "alertmanager", &body, &bearer(&alice))
            .await
            .0,
        401
    );
    assert_eq!(
        stored(&app).await,
        0,
        "nothing stored from refused requests"
    );

    // GitHub-style HMAC.
    let push = json!({"ref": "refs/heads/main", "after": "3f9c2ab1d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9", "repository": {"full_name": "acme/web"}}).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(push.as_bytes());
    let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let headers = vec![
        ("x-hub-signature-256", good.clone()),
        ("x-github-event", "push".into()),
        ("x-github-delivery", "d-1".into()),
    ];
    let (status, body_json) = post_hook(&app, "git", &push, &headers).await;
    assert_eq!(status, 202, "{body_json}");
    assert_eq!(body_json["new"], 1);
    let tampered = push.replace("main", "evil");
    assert_eq!(
        post_hook(&app, "git", &tampered, &headers).await.0,
        401,
        "signature of another body"
    );
    // GitLab sends the secret itself.
    let (status, _) = post_hook(
        &app,
        "git",
        &json!({"object_kind": "push", "checkout_sha": "abc1234"}).to_string(),
        &[("x-gitlab-token", SECRET.into())],
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(stored(&app).await, 2);

    // Oversize payloads are refused before they are read (gateway.max_body_bytes = 1 MiB).
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    assert_eq!(
        post_hook(&app, "alertmanager", &huge, &bearer(BEARER))
            .await
            .0,
        413
    );
    // Refusals are audited on the system chain, throttled per peer: the first of the window is
    // written, the rest are counted into the next row (so unsigned posts cannot flood it).
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'hook.verify' AND decision = 'deny'",
    )
    .fetch_one(app.db.store.pool())
    .await
    .unwrap();
    assert_eq!(n, 1);
    app.stop().await;
}

#[tokio::test]
async fn alerts_are_deduplicated_and_planned_behind_gates() {
    let app = spawn_app_with(configure).await;
    let auth = vec![("authorization", format!("Bearer {BEARER}"))];
    let first = payload(vec![
        alert(
            "HighLatency",
            "firing",
            "fp-web-latency",
            json!({"deployment": "web", "namespace": "shop"}),
        ),
        alert(
            "HighErrors",
            "firing",
            "fp-web-errors",
            json!({"deployment": "web"}),
        ),
        alert(
            "DiskFull",
            "resolved",
            "fp-db-disk",
            json!({"statefulset": "db"}),
        ),
    ]);
    let (status, body) = post_hook(&app, "alertmanager", &first.to_string(), &auth).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["new"].as_i64(), body["queued_for_planning"].as_i64()),
        (Some(3), Some(2))
    );
    // The same notification again (Alertmanager repeats): all duplicates, nothing queued.
    let (_, body) = post_hook(&app, "alertmanager", &first.to_string(), &auth).await;
    assert_eq!(
        (
            body["duplicates"].as_i64(),
            body["queued_for_planning"].as_i64()
        ),
        (Some(3), Some(0))
    );

    for _ in 0..50 {
        if alert_plans(&app).await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plans = alert_plans(&app).await;
    assert_eq!(plans.len(), 2, "{plans:#?}");
    for plan in &plans {
        assert_eq!(plan["trigger"], "alert");
        assert_eq!(
            plan["approval_state"], "pending",
            "alert-born plans are never auto-approved"
        );
        assert_eq!(plan["planner"], "rules");
        assert_eq!(plan["meta"]["workflow"]["name"], "incident_remediation");
        assert_eq!(plan["meta"]["alert"]["service"], "web");
        assert_eq!(plan["context"]["environment"], "prod");
        assert_eq!(plan["context"]["namespace"], "shop");
    }

    // Resolved then firing again within the backoff: the alert is stored, not re-planned.
    let resolved = payload(vec![alert(
        "HighLatency",
        "resolved",
        "fp-web-latency",
        json!({"deployment": "web"}),
    )]);
    let (_, body) = post_hook(&app, "alertmanager", &resolved.to_string(), &auth).await;
    assert_eq!(body["changed"], 1);
    let refire = payload(vec![alert(
        "HighLatency",
        "firing",
        "fp-web-latency",
        json!({"deployment": "web"}),
    )]);
    let (_, body) = post_hook(&app, "alertmanager", &refire.to_string(), &auth).await;
    assert_eq!(body["queued_for_planning"], 1);
    // A third alert for service web exceeds event_gate_service_per_hour = 2.
    let third = payload(vec![alert(
        "PodCrashLooping",
        "firing",
        "fp-web-crash",
        json!({"deployment": "web"}),
    )]);
    post_hook(&app, "alertmanager", &third.to_string(), &auth).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(alert_plans(&app).await.len(), 2);
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT reason FROM audit_events WHERE action = 'event.gate' ORDER BY seq",
    )
    .fetch_all(app.db.store.pool())
    .await
    .unwrap();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("duplicate suppressed"), "{reasons:?}");
    assert!(reasons[1].contains("rate limit"), "{reasons:?}");

    // An alert naming no workload and matching no playbook is refused with the reason.
    let vague = payload(vec![alert("Watchdog", "firing", "fp-watchdog", json!({}))]);
    post_hook(&app, "alertmanager", &vague.to_string(), &auth).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loop_denials: Vec<String> = sqlx::query_scalar(
        "SELECT reason FROM audit_events WHERE action = 'event.loop' AND decision = 'deny'",
    )
    .fetch_all(app.db.store.pool())
    .await
    .unwrap();
    assert!(
        loop_denials.iter().any(|r| r.contains("names no workload")),
        "{loop_denials:?}"
    );
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
        metrics.contains(r#"carapulse_webhooks_total{source="alertmanager",outcome="planned"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn stored_alerts_are_listed_filtered_and_paged() {
    let app = spawn_app_with(configure).await;
    let auth = [("authorization", format!("Bearer {BEARER}"))];
    let body = payload(vec![
        alert("HighLatency", "firing", "fp-1", json!({"service": "web"})),
        alert("ErrorRate", "firing", "fp-2", json!({"service": "api"})),
        alert("DiskFull", "resolved", "fp-3", json!({"service": "db"})),
    ]);
    let (status, _) = post_hook(&app, "alertmanager", &body.to_string(), &auth).await;
    assert_eq!(status, 202);
    let viewer = token("vic", "acme", &["viewer"]);

    let (status, all) = app.get("/v1/alerts?count=exact", &viewer).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["pagination"]["total"], 3);
    let (_, firing) = app
        .get("/v1/alerts?status=firing&count=exact", &viewer)
        .await;
    assert_eq!(firing["pagination"]["total"], 2);
    let names: Vec<&str> = firing["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert!(names.contains(&"HighLatency") && names.contains(&"ErrorRate"));
    let (_, page1) = app.get("/v1/alerts?limit=2", &viewer).await;
    assert_eq!(page1["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(page1["pagination"]["next_offset"], 2);
    let (_, page2) = app.get("/v1/alerts?limit=2&offset=2", &viewer).await;
    assert_eq!(page2["data"].as_array().map(Vec::len), Some(1));
    assert!(page2["pagination"]["next_offset"].is_null());
    let (_, by_source) = app
        .get("/v1/alerts?source=argocd&count=exact", &viewer)
        .await;
    assert_eq!(by_source["pagination"]["total"], 0);
    let (status, _) = app.get("/v1/alerts?status=burning", &viewer).await;
    assert_eq!(status, 400);
    let (_, other) = app
        .get("/v1/alerts?count=exact", &token("eve", "other", &["admin"]))
        .await;
    assert_eq!(other["pagination"]["total"], 0, "tenants stay apart");
    app.stop().await;
}

/// A plan made from a playbook is requested by the playbook's author: they cannot approve it,
/// someone else can. Alerts no playbook matches stay the event loop's.
#[tokio::test]
async fn playbook_plans_are_requested_by_the_playbooks_author() {
    let app = spawn_app_with(configure).await;
    let paula = token("Paula", "acme", &["operator", "approver"]);
    let (status, pb) = app
        .post(
            "/v1/playbooks",
            &paula,
            &json!({"name": "latency", "spec": {"alertname": "HighLatency", "workflow": "service_restart",
                    "input": {"resource": "deployment/{{labels.deployment}}", "namespace": "{{labels.namespace}}"}}}),
        )
        .await;
    assert_eq!(status, 201, "{pb}");
    let auth = vec![("authorization", format!("Bearer {BEARER}"))];
    let body = payload(vec![
        alert(
            "HighLatency",
            "firing",
            "fp-pb-latency",
            json!({"deployment": "web", "namespace": "shop"}),
        ),
        alert(
            "HighErrors",
            "firing",
            "fp-pb-errors",
            json!({"deployment": "api"}),
        ),
    ]);
    let (status, answer) = post_hook(&app, "alertmanager", &body.to_string(), &auth).await;
    assert_eq!(status, 202, "{answer}");
    for _ in 0..50 {
        if alert_plans(&app).await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plans = alert_plans(&app).await;
    assert_eq!(plans.len(), 2, "{plans:#?}");
    let from_playbook = plans
        .iter()
        .find(|p| p["meta"]["workflow"]["name"] == "service_restart")
        .expect("the playbook's plan");
    let other = plans
        .iter()
        .find(|p| p["meta"]["workflow"]["name"] == "incident_remediation")
        .expect("the default plan");
    assert_eq!(from_playbook["created_by"], "Paula", "{from_playbook}");
    assert_eq!(other["created_by"], "carapulse:event-loop", "{other}");
    let plan_id = from_playbook["plan_id"].as_str().unwrap();
    // The author, under any spelling of their id, cannot approve it.
    let paula_lower = token("paula", "acme", &["approver"]);
    for who in [&paula, &paula_lower] {
        let (status, refused) = app
            .post(
                "/v1/approvals",
                who,
                &json!({"plan_id": plan_id, "status": "approved"}),
            )
            .await;
        assert_eq!(status, 403, "{refused}");
    }
    let bob = token("bob", "acme", &["approver"]);
    let (status, ok) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    app.stop().await;
}
