//! Plan workflows on a real Temporal dev server (started by scripts/test.sh on 127.0.0.1:7233),
//! with a real Postgres, the real tool router and a fake `helm` on PATH whose behaviour depends
//! on the release name (`*fail*` releases fail).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use carapulse_core::model::*;
use common::*;
use orchestrator::model::{ApprovalSignal, PlanRun};
use orchestrator::workflow::PlanExecutionWorkflow;
use serde_json::{json, Value};
use temporalio_client::{WorkflowSignalOptions, WorkflowStartOptions};

fn fakes() {
    fake_bin();
}

/// Fake `helm`, `kubectl`, `argocd` and `vault`: `*fail*` in the arguments fails; `*slow*`
/// sleeps 3 s first; a JSON read (`--output=json`) answers a fixed document; anything else
/// echoes `<tool> ok: <argv>`.
fn fake_bin() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("carapulse-orch-fakes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = "#!/bin/sh\ncase \"$*\" in *slow*) sleep 3;; esac\ncase \"$*\" in *fail*) echo \"helm failed: $*\" >&2; exit 1;; esac\ncase \"$*\" in *--output=json*) echo 'JSON'; exit 0;; esac\necho \"helm ok: $*\"\n";
        // What each tool's JSON reads answer: a deployed release at revision 5; a deployment
        // of 2 replicas with 3 ready; a healthy, synced Argo CD app with one history entry.
        let answers = [
            ("helm", r#"{"name":"web","version":5,"info":{"status":"deployed"}}"#),
            ("kubectl", r#"{"spec":{"replicas":2},"status":{"readyReplicas":3}}"#),
            (
                "argocd",
                r#"{"status":{"health":{"status":"Healthy"},"sync":{"status":"Synced","revision":"v2"},"history":[{"id":3}]}}"#,
            ),
            ("vault", r#"{"data":{}}"#),
        ];
        for (tool, answer) in answers {
            let path = dir.join(tool);
            std::fs::write(&path, script.replace("helm", tool).replace("JSON", answer)).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let old = std::env::var("PATH").unwrap_or_default();
        // SAFETY: set once before any router starts in this test binary.
        unsafe { std::env::set_var("PATH", format!("{}:{old}", dir.display())) };
        dir
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_step_plan_succeeds_with_tool_calls_and_evidence() {
    let env = Env::start().await;
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "web", Some("web")),
            helm(Stage::Act, "upgrade", "api", Some("api")),
            helm(Stage::Verify, "status", "web", None),
        ])
        .await;
    dispatch(&env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert!(done.started_at.is_some() && done.completed_at.is_some());
    assert_eq!(
        env.calls(exec).await,
        vec![
            ("upgrade".into(), "succeeded".into()),
            ("upgrade".into(), "succeeded".into()),
            ("status".into(), "succeeded".into()),
        ]
    );
    let view = env
        .store()
        .get_execution_view(&TenantId::parse("acme").unwrap(), exec)
        .await
        .unwrap();
    assert_eq!(view.evidence.len(), 1);
    assert_eq!(view.evidence[0].kind, "helm.status");
    assert_eq!(view.steps.len(), 3);
    assert!(
        view.steps.iter().all(|s| s["status"] == "succeeded"),
        "{:?}",
        view.steps
    );
    // The tools' output lines were copied from the router's live stream into tool_call_logs.
    let lines = env
        .store()
        .tool_logs(
            &TenantId::parse("acme").unwrap(),
            exec,
            &Default::default(),
            100,
        )
        .await
        .unwrap();
    let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(lines.len(), 3, "{messages:?}");
    assert!(
        messages[..2]
            .iter()
            .all(|m| m.starts_with("helm ok: upgrade ")),
        "{messages:?}"
    );
    assert!(messages[2].starts_with("{\"name\":\"web\""), "{messages:?}");
    assert!(lines
        .iter()
        .all(|l| l.level == "info" && l.stream == "stdout"));
    // The router's decision on each write was kept with the plan (policy impact): the two
    // upgrades, not the status read.
    let kept: Vec<(String, String, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT action, decision, plan_id FROM policy_decisions WHERE tenant_id = 'acme' \
         AND action = 'tool.execute' AND plan_id = $1 ORDER BY decided_at",
    )
    .bind(plan.0)
    .fetch_all(env.store().pool())
    .await
    .unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter().all(|(_, decision, _)| !decision.is_empty()),
        "{kept:?}"
    );
    // Starting the same execution again is refused by Temporal and reported as started.
    dispatch(&env, plan, exec).await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_roll_back_and_rollback_failures_surface() {
    let env = Env::start().await;
    // A failing act step: completed steps are rolled back in reverse.
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "web", Some("web")),
            helm(Stage::Act, "upgrade", "api", Some("api")),
            helm(Stage::Act, "upgrade", "fail-db", Some("db")),
            helm(Stage::Verify, "status", "web", None),
        ])
        .await;
    dispatch(&env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::RolledBack, "{done:?}");
    let calls = env.calls(exec).await;
    let actions: Vec<&str> = calls.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        vec!["upgrade", "upgrade", "upgrade", "rollback", "rollback"]
    );
    assert!(done.error.unwrap().contains("act step 2"));

    // A failing verify step rolls back every act step.
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "web", Some("web")),
            helm(Stage::Verify, "status", "fail-web", None),
        ])
        .await;
    dispatch(&env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::RolledBack, "{done:?}");
    assert_eq!(env.calls(exec).await.last().unwrap().0, "rollback");

    // A failing rollback: failed, with the reason.
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "web", Some("fail-rb")),
            helm(Stage::Verify, "status", "fail-web", None),
        ])
        .await;
    dispatch(&env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
    let error = done.error.unwrap();
    assert!(error.contains("rollback_failed"), "{error}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_signal_denial_and_expiry() {
    let env = Env::start().await;
    let client = orchestrator::worker::connect(&env.config).await.unwrap();
    let start = |plan: PlanId, exec: ExecutionId, timeout: u64| {
        let client = client.clone();
        let queue = env.config.orchestrator.task_queue.clone();
        async move {
            let input = PlanRun {
                execution_id: exec.to_string(),
                tenant_id: "acme".into(),
                plan_id: plan.to_string(),
                approval_required: true,
                approval_timeout_secs: timeout,
                decision_timeout_secs: 60,
            };
            client
                .start_workflow(
                    PlanExecutionWorkflow::run,
                    input,
                    WorkflowStartOptions::new(queue, exec.to_string()).build(),
                )
                .await
                .unwrap();
        }
    };
    let steps = || {
        vec![
            helm(Stage::Act, "upgrade", "web", Some("web")),
            helm(Stage::Verify, "status", "web", None),
        ]
    };

    // Blocks until approved.
    let (plan, exec) = env.plan(steps()).await;
    start(plan, exec, 600).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        env.calls(exec).await.is_empty(),
        "nothing runs before approval"
    );
    let handle = client.get_workflow_handle::<PlanExecutionWorkflow>(exec.to_string());
    handle
        .signal(
            PlanExecutionWorkflow::approval,
            ApprovalSignal {
                approved: true,
                approver: "bob".into(),
                note: None,
            },
            WorkflowSignalOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        env.wait_terminal(exec).await.status,
        ExecutionStatus::Succeeded
    );

    // Denied.
    let (plan, exec) = env.plan(steps()).await;
    start(plan, exec, 600).await;
    client
        .get_workflow_handle::<PlanExecutionWorkflow>(exec.to_string())
        .signal(
            PlanExecutionWorkflow::approval,
            ApprovalSignal {
                approved: false,
                approver: "bob".into(),
                note: Some("no".into()),
            },
            WorkflowSignalOptions::default(),
        )
        .await
        .unwrap();
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert!(done.error.unwrap().contains("denied"));
    assert!(env.calls(exec).await.is_empty());

    // Expired after a short durable timer.
    let (plan, exec) = env.plan(steps()).await;
    start(plan, exec, 2).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::Expired, "{done:?}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_run_compensates() {
    let env = Env::start().await;
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "web", Some("web")),
            helm(Stage::Act, "upgrade", "slow-api", Some("api")),
            helm(Stage::Act, "upgrade", "db", Some("db")),
        ])
        .await;
    dispatch(&env, plan, exec).await;
    // Wait until the slow step is running, then cancel.
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.calls(exec).await.len() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = orchestrator::worker::connect(&env.config).await.unwrap();
    client
        .get_workflow_handle::<PlanExecutionWorkflow>(exec.to_string())
        .signal(
            PlanExecutionWorkflow::cancel,
            "operator request".to_string(),
            WorkflowSignalOptions::default(),
        )
        .await
        .unwrap();
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::Cancelled, "{done:?}");
    let actions: Vec<String> = env.calls(exec).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        actions,
        vec!["upgrade", "upgrade", "rollback", "rollback"],
        "the third step never ran; both completed ones were compensated"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_activity_resumes_and_finishes_once() {
    let mut env = Env::start().await;
    env.stop_worker(); // this test uses the real binary, which it can SIGKILL
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("orchestrator.json");
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut binary_config = env.config.clone();
    binary_config.orchestrator.health_addr = Some(format!("127.0.0.1:{admin_port}"));
    std::fs::write(&config_path, serde_json::to_string(&binary_config).unwrap()).unwrap();
    let spawn_worker = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn_worker();
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "slow-web", Some("web")),
            helm(Stage::Verify, "status", "web", None),
        ])
        .await;
    dispatch(&env, plan, exec).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.calls(exec).await.is_empty() {
        assert!(Instant::now() < deadline, "the first step never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap(); // SIGKILL while the activity runs
    first.wait().unwrap();
    let mut second = spawn_worker();
    let done = env.wait_terminal(exec).await;
    // The admin port of the surviving worker: ready (Postgres + Temporal) and counting.
    let http = reqwest::Client::new();
    let ready: serde_json::Value = http
        .get(format!("http://127.0.0.1:{admin_port}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["temporal"], "ok");
    let metrics = http
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("carapulse_executions_finished_total{status=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("carapulse_process_open_fds "),
        "process metrics on every service: {metrics}"
    );
    second.kill().ok();
    second.wait().ok();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let rows: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT action, status, attempt FROM tool_calls WHERE execution_id = $1 ORDER BY created_at, tool_call_id",
    )
    .bind(exec.0)
    .fetch_all(env.store().pool())
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("upgrade".into(), "failed".into(), 1),
            ("upgrade".into(), "succeeded".into(), 2),
            ("status".into(), "succeeded".into(), 1),
        ],
        "the retried attempt is visible and the abandoned one is marked"
    );
    let (finished,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = 'execution.finished' AND resource_id = $1")
        .bind(exec.to_string())
        .fetch_one(env.store().pool())
        .await
        .unwrap();
    assert_eq!(finished, 1, "finished exactly once");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_catalogue_workflow_runs_and_rolls_back() {
    use carapulse_core::workflows::find;
    let env = Env::start().await;
    let cases = [
        (
            "gitops_deploy",
            json!({"app": "web", "revision": "v2", "promql": "up"}),
            "argocd",
        ),
        (
            "helm_release",
            json!({"release": "web", "chart": "charts/web", "namespace": "web", "resource": "deployment/web", "promql": "up"}),
            "helm",
        ),
        (
            "scale_service",
            json!({"resource": "deployment/web", "namespace": "web", "replicas": 3, "current_replicas": 2, "promql": "up"}),
            "kubectl",
        ),
        (
            "incident_remediation",
            json!({"alertname": "HighLatency", "resource": "deployment/web", "namespace": "web", "dedup_key": "web-latency", "promql": "up"}),
            "kubectl",
        ),
        (
            "secret_rotation",
            json!({"path": "database/rotate-role/web", "rollback_path": "database/rotate-role/web-previous", "dependents": ["web", "api"], "promql": "up"}),
            "vault",
        ),
    ];
    for (name, input, _) in &cases {
        let template = find(name).unwrap();
        // Happy path.
        let (plan, exec) = env.plan_named(template.steps(input).unwrap(), name).await;
        dispatch(&env, plan, exec).await;
        let done = env.wait_terminal(exec).await;
        if done.status != ExecutionStatus::Succeeded {
            let errs: Vec<(String, Option<String>)> =
                sqlx::query_as("SELECT action, error FROM tool_calls WHERE execution_id = $1")
                    .bind(exec.0)
                    .fetch_all(env.store().pool())
                    .await
                    .unwrap();
            panic!("{name}: {done:?}\n{errs:#?}");
        }
        // Verification fails: the act steps with a rollback are undone.
        let mut failing = input.clone();
        failing["promql"] = json!("fail");
        let steps = template.steps(&failing).unwrap();
        let rollbacks = steps
            .iter()
            .filter(|s| s.stage == Stage::Act && s.rollback.is_some())
            .count();
        let (plan, exec) = env.plan_named(steps, name).await;
        dispatch(&env, plan, exec).await;
        let done = env.wait_terminal(exec).await;
        // "Rolled back" only when something was undone (a restart, say, cannot be).
        let expected = if rollbacks > 0 {
            ExecutionStatus::RolledBack
        } else {
            ExecutionStatus::Failed
        };
        assert_eq!(done.status, expected, "{name}: {done:?}");
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT stage FROM execution_steps WHERE execution_id = $1 AND stage = 'rollback'",
        )
        .bind(exec.0)
        .fetch_all(env.store().pool())
        .await
        .unwrap();
        assert_eq!(
            rows.len(),
            rollbacks,
            "{name}: every act step with a rollback was rolled back"
        );
        // Rollbacks return to what was read before the change, not to a guess.
        let rolled_back_to: Vec<(Value,)> = sqlx::query_as(
            "SELECT input_json FROM tool_calls WHERE execution_id = $1 AND input_json IS NOT NULL \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(exec.0)
        .fetch_all(env.store().pool())
        .await
        .unwrap();
        let expected = match *name {
            "gitops_deploy" => Some(("id", json!(3))),
            "helm_release" => Some(("revision", json!(5))),
            "scale_service" => Some(("replicas", json!(2))),
            _ => None,
        };
        if let Some((field, value)) = expected {
            assert_eq!(
                rolled_back_to.first().map(|r| r.0[field].clone()),
                Some(value),
                "{name}: {rolled_back_to:?}"
            );
        }
    }
    env.finish().await;
}

/// Fault: the tool router is down. Step activities retry with backoff (5 attempts: about 15 s),
/// then the execution fails and says why; nothing ran, so nothing is rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_router_down_retries_then_fails_with_the_reason() {
    let mut env = Env::start().await;
    env.stop_worker();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    env.config.tool_router.base_url = Some(format!("http://127.0.0.1:{dead_port}"));
    env.start_worker();
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "web", Some("web")),
            helm(Stage::Verify, "status", "web", None),
        ])
        .await;
    let started = Instant::now();
    dispatch(&env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    let took = started.elapsed();
    assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
    let error = done.error.clone().unwrap_or_default();
    assert!(
        error.contains("act step 0") && (error.contains("router") || error.contains("connect")),
        "the reason names the step and the router: {error}"
    );
    assert!(
        took >= Duration::from_secs(10),
        "failed after {took:?}: the activity was not retried with backoff"
    );
    assert!(
        env.calls(exec).await.iter().all(|(a, _)| a != "rollback"),
        "nothing ran, nothing to roll back"
    );
    env.finish().await;
}

/// Fault: a tool hangs. The router's sandbox timeout kills it, the step fails, and the act
/// steps already done are rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tool_is_killed_and_rolled_back() {
    let env = Env::start_with(|c| c.sandbox.timeout_ms = 1_000).await;
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "web", Some("web")),
            helm(Stage::Act, "upgrade", "slow-api", Some("api")),
            helm(Stage::Verify, "status", "web", None),
        ])
        .await;
    let started = Instant::now();
    dispatch(&env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::RolledBack, "{done:?}");
    let error = done.error.clone().unwrap_or_default();
    assert!(error.contains("act step 1"), "{error}");
    assert!(
        error.to_lowercase().contains("timed out") || error.to_lowercase().contains("timeout"),
        "{error}"
    );
    let calls = env.calls(exec).await;
    let actions: Vec<&str> = calls.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions.last(), Some(&"rollback"), "{calls:?}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the hung tool was not cut short"
    );
    env.finish().await;
}

/// A Temporal dev server of our own (the fault test kills and restarts it).
struct OwnTemporal {
    child: std::process::Child,
    port: u16,
    db: PathBuf,
}

impl OwnTemporal {
    fn binary() -> PathBuf {
        if let Ok(bin) = std::env::var("CARAPULSE_TEMPORAL_BIN") {
            return PathBuf::from(bin);
        }
        let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.dev/venv/bin/temporal");
        if dev.exists() {
            return dev;
        }
        PathBuf::from("temporal")
    }

    fn start(port: u16, db: &Path) -> Self {
        let child = std::process::Command::new(Self::binary())
            .args([
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
            ])
            .arg(port.to_string())
            .arg("--db-filename")
            .arg(db)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("temporal CLI (./scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "own Temporal server did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The frontend accepts connections a moment before it serves.
        std::thread::sleep(Duration::from_secs(2));
        Self {
            child,
            port,
            db: db.to_owned(),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnTemporal {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fault: the Temporal server goes away mid-workflow and comes back (same database). The
/// worker reconnects and the run finishes as if nothing happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_restart_mid_workflow_completes() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("temporal.db");
    let mut server = OwnTemporal::start(port, &db);
    let address = format!("127.0.0.1:{}", server.port);
    let env = Env::start_with(move |c| c.orchestrator.temporal_addr = Some(address)).await;
    let (plan, exec) = env
        .plan(vec![
            helm(Stage::Act, "upgrade", "slow-web", Some("web")),
            helm(Stage::Act, "upgrade", "api", Some("api")),
            helm(Stage::Verify, "status", "web", None),
        ])
        .await;
    dispatch(&env, plan, exec).await;
    // The first step takes 3 s: stop the server while it runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let db_path = server.db.clone();
    let server = tokio::task::spawn_blocking(move || OwnTemporal::start(port, &db_path))
        .await
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let e = env.store().get_execution(&tenant, exec).await.unwrap();
        if !e.status.is_active() {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "still {:?} after the restart",
            e.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let calls = env.calls(exec).await;
    let succeeded: Vec<&str> = calls
        .iter()
        .filter(|(_, status)| status == "succeeded")
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(succeeded, vec!["upgrade", "upgrade", "status"], "{calls:?}");
    env.finish().await;
    drop(server);
}

/// Where recorded workflow histories live: replayed against the current workflow code by
/// `recorded_histories_replay_against_this_code`, so a change that would break executions
/// already in flight fails CI.
fn histories_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories")
}

async fn history_json(env: &Env, exec: ExecutionId) -> Vec<u8> {
    let client = orchestrator::worker::connect(&env.config).await.unwrap();
    client
        .get_workflow_handle::<PlanExecutionWorkflow>(exec.to_string())
        .fetch_history(Default::default())
        .to_json()
        .await
        .unwrap()
}

async fn replay(history: &[u8]) -> Result<(), String> {
    let options = temporalio_sdk::workflow_replayer::WorkflowReplayerOptions::new()
        .register_workflow::<PlanExecutionWorkflow>()
        .map_err(|e| e.to_string())?
        .build();
    let replayer = temporalio_sdk::workflow_replayer::WorkflowReplayer::new(options)
        .map_err(|e| e.to_string())?;
    let history =
        temporalio_client::WorkflowHistory::from_json(history).map_err(|e| e.to_string())?;
    replayer
        .replay_workflow(history)
        .await
        .map_err(|e| e.to_string())
}

/// Runs representative executions on the real server and replays each fresh history against
/// this code. With `CARAPULSE_RECORD_HISTORIES=<prefix>` it also writes them to `tests/histories/`
/// (done once per workflow shape that must keep replaying; old files stay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_histories_replay_deterministically() {
    let env = Env::start().await;
    let record = std::env::var("CARAPULSE_RECORD_HISTORIES").ok();
    let scenarios: Vec<(&str, Vec<StepDraft>)> = vec![
        (
            "succeeded",
            vec![
                helm(Stage::Act, "upgrade", "web", Some("web")),
                helm(Stage::Verify, "status", "web", None),
            ],
        ),
        (
            "verify-failed-rolled-back",
            vec![
                helm(Stage::Act, "upgrade", "web", Some("web")),
                helm(Stage::Verify, "status", "fail-web", None),
            ],
        ),
    ];
    for (name, steps) in scenarios {
        let (plan, exec) = env.plan(steps).await;
        dispatch(&env, plan, exec).await;
        env.wait_terminal(exec).await;
        // The workflow's last task completes just after the execution row turns terminal.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let history = history_json(&env, exec).await;
        replay(&history)
            .await
            .unwrap_or_else(|e| panic!("{name}: fresh history does not replay: {e}"));
        if let Some(prefix) = &record {
            let dir = histories_dir();
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{prefix}-{name}.json"));
            std::fs::write(&path, &history).unwrap();
        }
    }
    env.finish().await;
}

/// Histories recorded by earlier versions of the workflow replay against this code: executions
/// in flight during an upgrade keep working. Needs no server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_histories_replay_against_this_code() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(histories_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "recorded histories missing: {files:?}");
    for file in files {
        let history = std::fs::read(&file).unwrap();
        replay(&history)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
