//! With Temporal configured, a plan that still needs approval can be executed: its run starts
//! and waits, and `POST /v1/approvals` delivers the decision as a signal. Real gateway, tool
//! router (fake `helm`), worker and Temporal dev server (started by scripts/test.sh).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn fake_helm_on_path() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("carapulse-gw-fakes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let helm = dir.join("helm");
        std::fs::write(&helm, "#!/bin/sh\necho \"helm ok: $*\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
        let old = std::env::var("PATH").unwrap_or_default();
        // SAFETY: once, before the router of this test binary starts.
        unsafe { std::env::set_var("PATH", format!("{}:{old}", dir.display())) };
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_before_approval_waits_for_the_signal() {
    fake_helm_on_path();
    let temporal =
        std::env::var("CARAPULSE_TEST_TEMPORAL").unwrap_or_else(|_| "127.0.0.1:7233".into());
    assert!(
        std::net::TcpStream::connect(&temporal).is_ok(),
        "no Temporal at {temporal}: run ./scripts/test.sh"
    );
    let queue = format!("gw-approval-{}", uuid::Uuid::new_v4().simple());
    let objects = tempfile::tempdir().unwrap();
    let objects_root = objects.path().to_string_lossy().into_owned();

    // Gateway first (it owns the test database); then router and worker share its config.
    let (q, t) = (queue.clone(), temporal.clone());
    let app = spawn_app_with(move |c| {
        c.orchestrator.temporal_addr = Some(t);
        c.orchestrator.task_queue = q;
    })
    .await;
    let mut config = app.db.config();
    config.orchestrator.temporal_addr = Some(temporal);
    config.orchestrator.task_queue = queue;
    config.tool_router.http_addr = "127.0.0.1:0".into();
    config.tool_router.auth_token = Some("gw-approval-router-token-000001".into());
    config.storage.object_store.fs_root = objects_root;
    let router = tool_router::Application::build(config.clone())
        .await
        .unwrap();
    config.tool_router.base_url = Some(format!("http://127.0.0.1:{}", router.port()));
    tokio::spawn(router.run_until_stopped());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let store = app.db.store.clone();
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            let _ = orchestrator::worker::run(&config, store, stop).await;
        });
    });

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

    let _ = stop_tx.send(());
    let _ = worker.join();
    app.stop().await;
}
