//! Schedules: validation, CRUD, and the scheduler firing each due run exactly once with two
//! gateways on one database; missed-run policies.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn scheduled_plans(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT meta_json->'schedule'->>'schedule_id', approval_state FROM plans WHERE trigger = 'scheduled' ORDER BY created_at",
    )
    .fetch_all(app.db.store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn schedules_fire_exactly_once_across_replicas() {
    let tweak = |c: &mut carapulse_core::config::Config| {
        c.scheduler.enabled = true;
        c.scheduler.poll_interval_secs = 1;
    };
    let a = spawn_app_with(tweak).await;
    let mut config_b = a.db.config();
    tweak(&mut config_b);
    let b_app = gateway::Application::build(config_b).await.unwrap();
    let b_stop = b_app.shutdown_token();
    let b_handle = tokio::spawn(b_app.run_until_stopped());

    let op = token("op", "acme", &["operator"]);
    let viewer = token("viewer", "acme", &["viewer"]);
    let body = |n: usize| {
        json!({
            "summary": format!("nightly scale {n}"),
            "cron": "0 3 1 1 *",
            "timezone": "Europe/Paris",
            "workflow": {"name": "scale_service", "input": {"resource": "deployment/web", "namespace": "web", "replicas": 3, "current_replicas": 2}},
            "context": {"environment": "staging", "namespace": "web"}
        })
    };
    assert_eq!(a.post("/v1/schedules", &viewer, &body(0)).await.0, 403);
    let mut bad = body(0);
    bad["cron"] = json!("every night");
    assert_eq!(a.post("/v1/schedules", &op, &bad).await.0, 422);
    let mut bad = body(0);
    bad["workflow"]["name"] = json!("nope");
    assert_eq!(a.post("/v1/schedules", &op, &bad).await.0, 422);
    let mut bad = body(0);
    bad["workflow"]["input"]["replicas"] = json!(5000);
    assert_eq!(
        a.post("/v1/schedules", &op, &bad).await.0,
        422,
        "workflow input validated at write time"
    );

    let mut ids = Vec::new();
    for n in 0..5 {
        let (status, s) = a.post("/v1/schedules", &op, &body(n)).await;
        assert_eq!(status, 201, "{s}");
        assert!(
            s["next_run_at"]
                .as_str()
                .unwrap()
                .contains("-01-01T02:00:00"),
            "03:00 Paris = 02:00 UTC: {s}"
        );
        ids.push(s["schedule_id"].as_str().unwrap().to_owned());
    }
    let (_, list) = a.get("/v1/schedules?limit=2&count=exact", &viewer).await;
    assert_eq!(list["pagination"]["total"], 5);

    // All five become due now; both gateways' schedulers race for them.
    sqlx::query("UPDATE schedules SET next_run_at = now() - interval '1 second'")
        .execute(a.db.store.pool())
        .await
        .unwrap();
    for _ in 0..60 {
        if scheduled_plans(&a).await.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let plans = scheduled_plans(&a).await;
    assert_eq!(plans.len(), 5, "exactly once per schedule: {plans:?}");
    let mut seen: Vec<&str> = plans.iter().map(|(s, _)| s.as_str()).collect();
    seen.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert!(
        plans.iter().all(|(_, state)| state == "pending"),
        "scheduled writes are never auto-approved"
    );
    let (_, one) = a.get(&format!("/v1/schedules/{}", ids[0]), &viewer).await;
    assert!(one["last_run_at"].is_string());
    assert!(one["next_run_at"]
        .as_str()
        .unwrap()
        .contains("-01-01T02:00:00"));

    // Missed runs: skip drops an old one, run_once runs it once.
    let mut skip = body(10);
    skip["missed_run_policy"] = json!("skip");
    let (_, skip) = a.post("/v1/schedules", &op, &skip).await;
    let mut once = body(11);
    once["missed_run_policy"] = json!("run_once");
    let (_, once) = a.post("/v1/schedules", &op, &once).await;
    sqlx::query(
        "UPDATE schedules SET next_run_at = now() - interval '2 hours' WHERE schedule_id = ANY($1)",
    )
    .bind(vec![
        uuid::Uuid::parse_str(skip["schedule_id"].as_str().unwrap()).unwrap(),
        uuid::Uuid::parse_str(once["schedule_id"].as_str().unwrap()).unwrap(),
    ])
    .execute(a.db.store.pool())
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let plans = scheduled_plans(&a).await;
    let count = |id: &serde_json::Value| {
        plans
            .iter()
            .filter(|(s, _)| s == id.as_str().unwrap())
            .count()
    };
    assert_eq!(count(&skip["schedule_id"]), 0);
    assert_eq!(count(&once["schedule_id"]), 1);
    let (_, skipped) = a
        .get(
            &format!("/v1/schedules/{}", skip["schedule_id"].as_str().unwrap()),
            &viewer,
        )
        .await;
    assert!(skipped["last_run_at"].is_null() && skipped["next_run_at"].is_string());

    // Update and delete.
    let mut disabled = body(0);
    disabled["enabled"] = json!(false);
    let resp = a
        .http
        .put(format!("{}/v1/schedules/{}", a.url, ids[1]))
        .bearer_auth(&op)
        .json(&disabled)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (v["enabled"].as_bool(), v["next_run_at"].is_null()),
        (Some(false), true)
    );
    let resp = a
        .http
        .delete(format!("{}/v1/schedules/{}", a.url, ids[2]))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        a.get(&format!("/v1/schedules/{}", ids[2]), &viewer).await.0,
        404
    );
    b_stop.cancel();
    let _ = b_handle.await;
    a.stop().await;
}

/// `scheduler.default_cron` fills in a schedule created without a cron; without one configured
/// a missing cron is refused, naming the setting.
#[tokio::test]
async fn default_cron_fills_a_schedule_without_one() {
    let app = spawn_app_with(|c| c.scheduler.default_cron = Some("30 2 * * 1".into())).await;
    let op = token("op", "acme", &["operator"]);
    let body = json!({
        "summary": "weekly restart",
        "workflow": {"name": "scale_service", "input": {"resource": "deployment/web", "namespace": "web", "replicas": 3, "current_replicas": 2}},
        "context": {"environment": "staging", "namespace": "web"}
    });
    let (status, created) = app.post("/v1/schedules", &op, &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["cron"], "30 2 * * 1");
    let mut explicit = body.clone();
    explicit["cron"] = json!("0 4 * * *");
    let (status, created) = app.post("/v1/schedules", &op, &explicit).await;
    assert_eq!((status, created["cron"].as_str()), (201, Some("0 4 * * *")));
    app.stop().await;

    let plain = spawn_app().await;
    let (status, refused) = plain.post("/v1/schedules", &op, &body).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.to_string().contains("scheduler.default_cron"),
        "{refused}"
    );
    plain.stop().await;
}
