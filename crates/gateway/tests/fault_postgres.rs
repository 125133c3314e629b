//! Fault: PostgreSQL restarts while plans are being created and executions run (real tool
//! router with a 2 s fake `helm`, worker, Temporal dev server). Requests caught by the restart fail
//! cleanly (503 with Retry-After, never a 500 or a hang), the gateway serves again once the
//! database is back without being restarted itself, nothing is half-written (every stored plan
//! has its audit event, every 201 names a stored plan), the runs caught mid-step finish
//! `succeeded`, and the audit chain still verifies.
//!
//! It restarts the real local cluster (`pg_ctlcluster <version> main restart`), so it lives in its
//! own test binary: cargo runs test binaries one after another.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::sync::Mutex;

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql: this test restarts the local PostgreSQL cluster")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .expect("a PostgreSQL version");
    let status = std::process::Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "-m",
            "fast",
        ])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster restart failed");
}

/// One answer: status, the plan id of a 201, the Retry-After of a refusal.
type Outcome = (u16, Option<String>, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_traffic() {
    let temporal = temporal_addr();
    // A `helm` that takes 2 s, so runs are mid-step when the database goes away.
    fake_tool_on_path("helm", "sleep 2\necho \"helm ok: $*\"");
    let queue = format!("pgfault-{}", uuid::Uuid::new_v4().simple());
    let router_port = free_port();
    let (q, t) = (queue.clone(), temporal.clone());
    let app = Arc::new(
        spawn_app_with(move |c| {
            c.gateway.rate_limit_per_second = 10_000.0;
            c.gateway.rate_limit_burst = 10_000;
            execution_config(c, &t, &q, router_port);
        })
        .await,
    );
    // The tool router and a worker, so executions run through the restart too.
    let stack = ExecutionStack::start(&app, &temporal, &queue, router_port).await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    // Three approved two-step plans, executed just before the restart.
    let mut executions = Vec::new();
    for n in 0..3 {
        let (status, created) = app
            .post(
                "/v1/plans",
                &alice,
                &serde_json::json!({
                    "summary": format!("Upgrade web {n}"),
                    "context": {"environment": "staging", "namespace": "web"},
                    "steps": [
                        {"tool": "helm", "action": "upgrade", "input": {"release": "web", "chart": "charts/web", "namespace": "web"},
                         "rollback": {"tool": "helm", "action": "rollback", "input": {"release": "web", "namespace": "web"}}},
                        {"stage": "verify", "tool": "helm", "action": "status", "input": {"release": "web", "namespace": "web"}}
                    ]
                }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let plan_id = created["plan_id"].as_str().expect("plan").to_owned();
        if created["approval_required"] == true {
            let (status, body) = app
                .post(
                    "/v1/approvals",
                    &bob,
                    &serde_json::json!({"plan_id": plan_id, "status": "approved"}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        executions.push(plan_id);
    }
    let mut execution_ids = Vec::new();
    for plan_id in &executions {
        let (status, exec) = app
            .post(
                &format!("/v1/plans/{plan_id}/execute"),
                &alice,
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 202, "{exec}");
        execution_ids.push(exec["execution_id"].as_str().expect("execution").to_owned());
    }
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(9);
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (app, alice, outcomes) = (app.clone(), alice.clone(), outcomes.clone());
        writers.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                let resp = app
                    .http
                    .post(format!("{}/v1/plans", app.url))
                    .bearer_auth(&alice)
                    .json(&scale_plan_body())
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await
                    .expect("the gateway answers (no hang, no reset)");
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                let plan = body["plan_id"].as_str().map(str::to_owned);
                outcomes.lock().await.push((status, plan, retry_after));
                if status != 201 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restart = tokio::task::spawn_blocking(restart_postgres);
    // Readiness says so while the database is away (or the restart was too quick to see).
    let mut saw_not_ready = false;
    while !restart.is_finished() {
        if let Ok(r) = app.http.get(format!("{}/readyz", app.url)).send().await {
            saw_not_ready |= r.status().as_u16() == 503;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    restart.await.expect("restart task");
    for w in writers {
        w.await.expect("writer");
    }

    let outcomes = outcomes.lock().await.clone();
    let created: Vec<&String> = outcomes
        .iter()
        .filter(|(s, _, _)| *s == 201)
        .filter_map(|(_, p, _)| p.as_ref())
        .collect();
    let refused: Vec<&Outcome> = outcomes.iter().filter(|(s, _, _)| *s != 201).collect();
    eprintln!(
        "{} requests: {} created, {} refused during the restart; readyz went 503: {saw_not_ready}",
        outcomes.len(),
        created.len(),
        refused.len()
    );
    for (status, _, retry_after) in &refused {
        assert_eq!(
            *status, 503,
            "a request caught by the restart must be a 503, got {status}"
        );
        assert!(retry_after.is_some(), "503 without Retry-After");
    }
    // Plans were created both before and after the restart: the pool reconnected by itself.
    let first_refusal = outcomes.iter().position(|(s, _, _)| *s != 201);
    let last_created = outcomes.iter().rposition(|(s, _, _)| *s == 201);
    assert!(
        created.len() >= 10,
        "too few plans created: {}",
        created.len()
    );
    if let (Some(first), Some(last)) = (first_refusal, last_created) {
        assert!(last > first, "nothing was created after the restart");
    }

    // Wait until the gateway is ready again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.http.get(format!("{}/readyz", app.url)).send().await;
        if r.is_ok_and(|r| r.status().as_u16() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing half-written.
    let pool = app.db.store.pool().clone();
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM plans p WHERE NOT EXISTS (SELECT 1 FROM audit_events a \
         WHERE a.tenant_id = p.tenant_id AND a.action = 'plan.create' AND a.resource_id = p.plan_id::text)",
    )
    .fetch_one(&pool)
    .await
    .expect("query");
    assert_eq!(orphans, 0, "plans stored without their audit event");
    let stepless: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM plans p WHERE NOT EXISTS (SELECT 1 FROM plan_steps s WHERE s.plan_id = p.plan_id)",
    )
    .fetch_one(&pool)
    .await
    .expect("query");
    assert_eq!(stepless, 0, "plans stored without their steps");
    for plan in &created {
        let (status, _) = app.get(&format!("/v1/plans/{plan}"), &alice).await;
        assert_eq!(status, 200, "a 201 named plan {plan}, which is not stored");
    }
    // The runs caught by the restart finish: activities retried their database writes.
    let deadline = Instant::now() + Duration::from_secs(120);
    for exec in &execution_ids {
        loop {
            let (_, view) = app.get(&format!("/v1/executions/{exec}"), &alice).await;
            let status = view["status"].as_str().unwrap_or("").to_owned();
            if status != "pending" && status != "running" && !status.is_empty() {
                assert_eq!(status, "succeeded", "{view}");
                let calls = view["tool_calls"].as_array().map(Vec::len).unwrap_or(0);
                assert!(calls >= 2, "{view}");
                break;
            }
            assert!(Instant::now() < deadline, "execution {exec} still {status}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let (status, verify) = app.get("/v1/audit/verify", &alice).await;
    assert_eq!(status, 200, "{verify}");
    assert_eq!(verify["ok"], true, "audit chain broken: {verify}");

    stack.stop();
    match Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => panic!("writers still hold the app"),
    }
}
