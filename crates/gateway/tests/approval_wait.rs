//! With Temporal configured, a plan that still needs approval can be executed: its run starts
//! and waits, and `POST /v1/approvals` delivers the decision as a signal. Real gateway, tool
//! router (fake `helm`), worker and Temporal dev server (started by scripts/test.sh).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_before_approval_waits_for_the_signal() {
    fake_tool_on_path("helm", "echo \"helm ok: $*\"");
    let temporal = temporal_addr();
    let queue = format!("gw-approval-{}", uuid::Uuid::new_v4().simple());
    let router_port = free_port();
    // Gateway first (it owns the test database); then router and worker share its config.
    let (q, t) = (queue.clone(), temporal.clone());
    let app = spawn_app_with(move |c| execution_config(c, &t, &q, router_port)).await;
    let stack = ExecutionStack::start(&app, &temporal, &queue, router_port).await;

    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let plan_body = json!({
        "summary": "Upgrade web",
        "context": {"environment": "staging", "namespace": "web"},
        "steps": [
            {"tool": "helm", "action": "upgrade", "input": {"release": "web", "chart": "charts/web", "namespace": "web"},
             "rollback": {"tool": "helm", "action": "rollback", "input": {"release": "web", "namespace": "web"}}},
            {"stage": "verify", "tool": "helm", "action": "status", "input": {"release": "web", "namespace": "web"}}
        ]
    });
    let wait_status = |exec: String| {
        let app = &app;
        let alice = alice.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (_, view) = app.get(&format!("/v1/executions/{exec}"), &alice).await;
                let status = view["status"].as_str().unwrap_or("").to_owned();
                if status != "pending" && status != "running" {
                    return view;
                }
                assert!(Instant::now() < deadline, "still {status}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    // Approved after the run started: it waits, then runs.
    let (_, created) = app.post("/v1/plans", &alice, &plan_body).await;
    assert_eq!(created["approval_required"], true);
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (status, exec) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 202, "{exec}");
    assert_eq!(exec["awaiting_approval"], true);
    let exec_id = exec["execution_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, view) = app.get(&format!("/v1/executions/{exec_id}"), &alice).await;
    assert_eq!(view["status"], "pending");
    assert!(
        view["tool_calls"].as_array().unwrap().is_empty(),
        "nothing ran before approval"
    );
    let (status, approval) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 201, "{approval}");
    assert_eq!(approval["signalled_run"], true);
    let done: Value = wait_status(exec_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["tool_calls"].as_array().unwrap().len(), 2);

    // Denied after the run started: it ends failed without running anything.
    let (_, created) = app.post("/v1/plans", &alice, &plan_body).await;
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (_, exec) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    let exec_id = exec["execution_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "denied"}),
        )
        .await;
    assert_eq!(status, 201);
    let done = wait_status(exec_id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["error"].as_str().unwrap().contains("denied"));
    assert!(done["tool_calls"].as_array().unwrap().is_empty());

    stack.stop();
    app.stop().await;
}
