//! Verification that observes, end to end on real parts: a real Temporal dev server, a real
//! Prometheus (Debian package) scraping a small exporter whose error ratio the test flips, the
//! real `kubectl` against a local fake Kubernetes API server that records every write, and a
//! fake `helm` that answers `status` in JSON and echoes the argv it received for everything else.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use carapulse_core::model::*;
use common::*;
use orchestrator::model::{ApprovalSignal, PlanRun};
use orchestrator::workflow::PlanExecutionWorkflow;
use serde_json::{json, Value};
use temporalio_client::{WorkflowSignalOptions, WorkflowStartOptions};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A fake `helm`: `status <release>` prints the release as JSON with the revision named in the
/// release (`web-rev4` is at revision 4); anything else prints `helm ok: <argv>`.
fn fakes() {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("carapulse-verify-fakes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = r#"#!/bin/sh
if [ "$1" = "status" ]; then
  rev=$(echo "$2" | sed -n 's/.*-rev\([0-9][0-9]*\).*/\1/p')
  printf '{"name":"%s","version":%s,"info":{"status":"deployed"}}\n' "$2" "${rev:-1}"
  exit 0
fi
echo "helm ok: $*"
"#;
        let path = dir.join("helm");
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let old = std::env::var("PATH").unwrap_or_default();
        // SAFETY: set once before any router starts in this test binary.
        unsafe { std::env::set_var("PATH", format!("{}:{old}", dir.display())) };
        dir
    });
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// A `/metrics` endpoint serving `carapulse_test_error_ratio{service="web"}` at a value the
/// test sets.
struct Exporter {
    ratio: Arc<AtomicU64>,
    addr: String,
}

impl Exporter {
    async fn start(initial: f64) -> Self {
        let ratio = Arc::new(AtomicU64::new(initial.to_bits()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let value = ratio.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let value = f64::from_bits(value.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let body = format!(
                        "# TYPE carapulse_test_error_ratio gauge\ncarapulse_test_error_ratio{{service=\"web\"}} {value}\n"
                    );
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        Self { ratio, addr }
    }

    fn set(&self, value: f64) {
        self.ratio.store(value.to_bits(), Ordering::SeqCst);
    }
}

type Prometheus = carapulse_core::testing::prometheus::RealPrometheus;

async fn start_prometheus(target: &str) -> Prometheus {
    Prometheus::start(&[target.to_owned()])
        .await
        .expect("prometheus is not installed: run ./scripts/test.sh (it installs it)")
}

/// Waits until Prometheus answers `carapulse_test_error_ratio` with `expected`.
async fn wait_for_ratio(prom: &Prometheus, expected: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let answer: Option<Value> = async {
            http.get(format!("{}/api/v1/query", prom.url))
                .query(&[("query", "carapulse_test_error_ratio{service=\"web\"}")])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        }
        .await;
        let value = answer.as_ref().and_then(|a| {
            a["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_owned)
        });
        if value.as_deref() == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never reported {expected}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn step(stage: Stage, tool: ToolName, action: &str, input: Value) -> StepDraft {
    StepDraft {
        stage,
        tool,
        action: ActionName::parse(action).unwrap(),
        input,
        preconditions: vec![],
        rollback: None,
        evidence: vec![],
        capture: Default::default(),
        expect: Vec::new(),
        analysis: None,
    }
}

/// Checks `steps` as the gateway does at plan creation, so the tests run only valid plans.
fn valid(steps: Vec<StepDraft>) -> Vec<StepDraft> {
    for s in &steps {
        carapulse_core::tools::check_step(s).unwrap_or_else(|e| panic!("{e}: {s:?}"));
    }
    carapulse_core::model::check_step_references(&steps).unwrap();
    steps
}

/// Read the deployed revision, upgrade with a rollback to exactly that revision, and guard the
/// upgrade with an error-ratio analysis.
fn guarded_upgrade(release: &str, query: &str, analysis: Value) -> Vec<StepDraft> {
    let mut read = step(
        Stage::Act,
        ToolName::Helm,
        "status",
        json!({"release": release, "namespace": "web"}),
    );
    read.capture = [("revision".to_owned(), ".version".to_owned())].into();
    let mut upgrade = step(
        Stage::Act,
        ToolName::Helm,
        "upgrade",
        json!({"release": release, "chart": "charts/web", "namespace": "web"}),
    );
    upgrade.rollback = Some(RollbackSpec {
        tool: ToolName::Helm,
        action: ActionName::parse("rollback").unwrap(),
        input: json!({"release": release, "namespace": "web", "revision": "${capture.revision}"}),
    });
    let mut check = step(
        Stage::Verify,
        ToolName::Prometheus,
        "query",
        json!({"query": query}),
    );
    check.expect = vec![json!({"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05})];
    check.analysis = Some(analysis);
    valid(vec![read, upgrade, check])
}

async fn evidence(env: &Env, exec: ExecutionId) -> Vec<Evidence> {
    env.store()
        .get_execution_view(&tenant(), exec)
        .await
        .unwrap()
        .evidence
}

async fn log_lines(env: &Env, exec: ExecutionId) -> Vec<String> {
    env.store()
        .tool_logs(&tenant(), exec, &Default::default(), 500)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect()
}

/// Stores `steps` as a valid plan, runs it, and checks it ended `status` with `error_part` in
/// its error; returns the execution id.
async fn run_expecting(
    env: &Env,
    steps: Vec<StepDraft>,
    status: ExecutionStatus,
    error_part: &str,
) -> ExecutionId {
    let (plan, exec) = env.plan(valid(steps)).await;
    dispatch(env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, status, "{done:?}");
    assert!(
        done.error.as_deref().unwrap_or("").contains(error_part),
        "expected {error_part:?} in the error: {done:?}"
    );
    exec
}

const RATIO: &str = "carapulse_test_error_ratio{service=\"web\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_ratio_analysis_rolls_back_to_the_captured_revision_or_passes() {
    let exporter = Exporter::start(0.31).await;
    let prom = start_prometheus(&exporter.addr).await;
    let prom_url = prom.url.clone();
    let env = Env::start_with(move |c| c.connectors.prometheus.addr = Some(prom_url)).await;
    wait_for_ratio(&prom, "0.31").await;

    // Unhealthy: the second failing sample (failure_limit 1) ends the analysis and the upgrade
    // is rolled back to the revision read before it.
    let window = json!({"interval": "1s", "count": 3, "failure_limit": 1});
    let (plan, exec) = env
        .plan(guarded_upgrade("web-rev4", RATIO, window.clone()))
        .await;
    dispatch(&env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::RolledBack, "{done:?}");
    let error = done.error.unwrap_or_default();
    assert!(
        error.contains("0.31") && error.contains("failed in 2 of 2 samples"),
        "{error}"
    );
    assert_eq!(
        env.calls(exec).await,
        vec![
            ("status".into(), "succeeded".into()),
            ("upgrade".into(), "succeeded".into()),
            ("query".into(), "succeeded".into()),
            ("query".into(), "succeeded".into()),
            ("rollback".into(), "succeeded".into()),
        ]
    );
    let lines = log_lines(&env, exec).await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("helm ok: rollback web-rev4 4 ")),
        "the fake helm received the captured revision: {lines:?}"
    );
    let view = env
        .store()
        .get_execution_view(&tenant(), exec)
        .await
        .unwrap();
    let progress = |stage: &str| -> Vec<Value> {
        view.steps
            .iter()
            .filter(|s| s["stage"] == stage)
            .map(|s| s["status"].clone())
            .collect()
    };
    assert_eq!(
        progress("rollback"),
        vec![json!("rolled_back")],
        "a templated rollback reports rolled_back"
    );
    assert_eq!(progress("verify"), vec![json!("failed")]);
    let rollback = view.tool_calls.last().unwrap();
    assert_eq!(
        rollback.input.as_ref().unwrap()["revision"],
        json!(4),
        "the concrete input is kept on the tool call"
    );
    assert_eq!(
        view.tool_calls[0].result.as_ref().unwrap()["version"],
        json!(4)
    );
    let ev = evidence(&env, exec).await;
    let captures: Vec<&Evidence> = ev.iter().filter(|e| e.kind == "capture").collect();
    assert_eq!(captures.len(), 1);
    assert_eq!(captures[0].summary["captured"]["revision"], json!(4));
    let samples: Vec<&Evidence> = ev.iter().filter(|e| e.kind == "analysis.sample").collect();
    assert_eq!(samples.len(), 2);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s.summary["verdict"], "failed", "{:?}", s.summary);
        assert_eq!(s.summary["sample"]["number"], json!(i + 1));
        assert_eq!(
            s.summary["expectations"][0]["outcome"]["measured"],
            json!(["0.31"])
        );
        assert_eq!(
            s.summary["expectations"][0]["outcome"]["threshold"],
            json!(0.05)
        );
    }
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'execution.captured' AND resource_id = $1",
    )
    .bind(exec.to_string())
    .fetch_one(env.store().pool())
    .await
    .unwrap();
    assert_eq!(audited, 1, "each capture is audited");

    // Healthy: three passing samples about a second apart, and the run succeeds.
    exporter.set(0.01);
    wait_for_ratio(&prom, "0.01").await;
    let (plan, exec) = env.plan(guarded_upgrade("web-rev7", RATIO, window)).await;
    dispatch(&env, plan, exec).await;
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let samples: Vec<Evidence> = evidence(&env, exec)
        .await
        .into_iter()
        .filter(|e| e.kind == "analysis.sample")
        .collect();
    assert_eq!(samples.len(), 3);
    assert!(samples.iter().all(|s| s.summary["verdict"] == "passed"));
    let first = samples[0].collected_at;
    let last = samples[2].collected_at;
    assert!(
        last - first >= chrono::Duration::milliseconds(1900),
        "durable 1 s waits between samples: {first} .. {last}"
    );
    env.finish().await;
    drop(prom);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_waits_for_a_person_and_a_timeout_rolls_back() {
    let exporter = Exporter::start(0.01).await;
    let prom = start_prometheus(&exporter.addr).await;
    let prom_url = prom.url.clone();
    let env = Env::start_with(move |c| c.connectors.prometheus.addr = Some(prom_url)).await;
    wait_for_ratio(&prom, "0.01").await;
    let absent = "carapulse_test_metric_nobody_exports";
    let window = json!({"interval": "1s", "count": 1});
    let client = orchestrator::worker::connect(&env.config).await.unwrap();

    // Inconclusive, then a person says continue: the run succeeds and the decision is audited.
    let (plan, exec) = env
        .plan(guarded_upgrade("web-rev2", absent, window.clone()))
        .await;
    dispatch(&env, plan, exec).await;
    wait_for_step(&env, exec, "awaiting_decision").await;
    client
        .get_workflow_handle::<PlanExecutionWorkflow>(exec.to_string())
        .signal(
            PlanExecutionWorkflow::approval,
            ApprovalSignal {
                approved: true,
                approver: "carol".into(),
                note: Some("dashboards look fine".into()),
            },
            WorkflowSignalOptions::default(),
        )
        .await
        .unwrap();
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let decided: Vec<(String, Value)> = sqlx::query_as(
        "SELECT actor_json->>'id', context_json FROM audit_events WHERE action = 'execution.decision' AND resource_id = $1",
    )
    .bind(exec.to_string())
    .fetch_all(env.store().pool())
    .await
    .unwrap();
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0].0, "carol");

    // Nobody answers within the decision timeout: rolled back to the captured revision.
    let (plan, exec) = env.plan(guarded_upgrade("web-rev2", absent, window)).await;
    let input = PlanRun {
        execution_id: exec.to_string(),
        tenant_id: "acme".into(),
        plan_id: plan.to_string(),
        approval_required: false,
        approval_timeout_secs: 60,
        decision_timeout_secs: 3,
    };
    client
        .start_workflow(
            PlanExecutionWorkflow::run,
            input,
            WorkflowStartOptions::new(env.config.orchestrator.task_queue.clone(), exec.to_string())
                .build(),
        )
        .await
        .unwrap();
    let done = env.wait_terminal(exec).await;
    assert_eq!(done.status, ExecutionStatus::RolledBack, "{done:?}");
    let error = done.error.unwrap_or_default();
    assert!(error.contains("no decision within 3s"), "{error}");
    assert!(
        log_lines(&env, exec)
            .await
            .iter()
            .any(|l| l.starts_with("helm ok: rollback web-rev2 2 ")),
        "rolled back to the captured revision"
    );
    env.finish().await;
    drop(prom);
}

async fn wait_for_step(env: &Env, exec: ExecutionId, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = env
            .store()
            .get_execution_view(&tenant(), exec)
            .await
            .unwrap();
        if view.steps.iter().any(|s| s["status"] == status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no step reached {status}: {:?} {:?}",
            view.execution.status,
            view.steps
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .set_body_json(body)
}

/// A Kubernetes API server with one deployment (`web`, 3 replicas, 3 ready) that accepts scale
/// patches and keeps them for the test to read.
async fn fake_apiserver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path("/api")).respond_with(ok(json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
    }))).mount(&server).await;
    Mock::given(method("GET"))
        .and(path("/apis"))
        .respond_with(ok(json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1"))
        .respond_with(ok(json!({
            "kind": "APIResourceList", "groupVersion": "v1", "resources": []
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path("/apis/apps/v1")).respond_with(ok(json!({
        "kind": "APIResourceList", "groupVersion": "apps/v1",
        "resources": [
            {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "verbs": ["get", "list", "patch", "update", "watch"]},
            {"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}
        ]
    }))).mount(&server).await;
    Mock::given(method("GET"))
        .and(path("/apis/apps/v1/namespaces/web/deployments/web"))
        .respond_with(ok(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "web", "resourceVersion": "7", "uid": "u1",
                         "annotations": {"evil": "--kubeconfig=x"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
            "status": {"replicas": 3, "readyReplicas": 3}
        })))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/apis/apps/v1/namespaces/web/deployments/web/scale"))
        .respond_with(ok(json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "namespace": "web", "resourceVersion": "8"},
            "spec": {"replicas": 5}, "status": {"replicas": 3}
        })))
        .mount(&server)
        .await;
    server
}

/// The replica counts of the scale patches the API server received, in order.
async fn scale_patches(api: &MockServer) -> Vec<Value> {
    api.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            body["spec"]["replicas"].clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_read_from_the_api_server_are_the_rollback_target() {
    let api = fake_apiserver().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {}\n  name: fake\ncontexts:\n- context:\n    cluster: fake\n    user: u\n  name: fake\ncurrent-context: fake\nusers:\n- name: u\n  user:\n    token: kube-test-token\n",
            api.uri()
        ),
    )
    .unwrap();
    let host_port = api.uri().trim_start_matches("http://").to_owned();
    let kube_path = kubeconfig.to_string_lossy().into_owned();
    let env = Env::start_with(move |c| {
        c.connectors.k8s.kubeconfig_path = Some(kube_path);
        c.sandbox.egress_allowlist = vec![host_port];
        c.sandbox.timeout_ms = 20_000;
    })
    .await;
    let deploy = json!({"resource": "deployment/web", "namespace": "web"});
    let read = |capture: &[(&str, &str)]| {
        let mut s = step(Stage::Act, ToolName::Kubectl, "get", deploy.clone());
        s.capture = capture
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        s
    };
    let scale = |replicas: Value, preconditions: Vec<Value>| {
        let mut s = step(
            Stage::Act,
            ToolName::Kubectl,
            "scale",
            json!({"resource": "deployment/web", "namespace": "web", "replicas": replicas}),
        );
        s.preconditions = preconditions;
        s.rollback = Some(RollbackSpec {
            tool: ToolName::Kubectl,
            action: ActionName::parse("scale").unwrap(),
            input: json!({"resource": "deployment/web", "namespace": "web", "replicas": "${capture.replicas}"}),
        });
        s
    };
    // The verify step reads the deployment and expects 5 ready replicas; the fake server keeps
    // reporting 3, so the scale is rolled back.
    let mut check = step(Stage::Verify, ToolName::Kubectl, "get", deploy.clone());
    check.expect = vec![json!({"path": ".status.readyReplicas", "op": ">=", "value": 5})];
    let within_two = vec![
        json!({"path": ".replicas", "op": ">=", "value": 3}),
        json!({"path": ".replicas", "op": "<=", "value": 7}),
    ];
    let exec = run_expecting(
        &env,
        vec![
            read(&[("replicas", ".spec.replicas")]),
            scale(json!(5), within_two),
            check.clone(),
        ],
        ExecutionStatus::RolledBack,
        ".status.readyReplicas",
    )
    .await;
    assert_eq!(
        scale_patches(&api).await,
        vec![json!(5), json!(3)],
        "scaled to 5, then back to the 3 the API server reported"
    );
    let preconditions: Vec<Evidence> = evidence(&env, exec)
        .await
        .into_iter()
        .filter(|e| e.kind == "precondition")
        .collect();
    assert_eq!(preconditions.len(), 1);
    assert_eq!(preconditions[0].summary["passed"], json!(true));

    // A precondition that does not hold stops the run before the change.
    let exec = run_expecting(
        &env,
        vec![
            read(&[("replicas", ".spec.replicas")]),
            scale(
                json!(5),
                vec![json!({"path": ".replicas", "op": "<=", "value": 2})],
            ),
            check.clone(),
        ],
        ExecutionStatus::Failed,
        "precondition 0 not met",
    )
    .await;
    assert_eq!(env.calls(exec).await.len(), 1, "only the read ran");

    // A capture path that selects nothing fails the read, before any change.
    run_expecting(
        &env,
        vec![
            read(&[("replicas", ".spec.nothing")]),
            scale(json!(5), vec![]),
            check.clone(),
        ],
        ExecutionStatus::Failed,
        "selects nothing",
    )
    .await;

    // A captured value shaped like a flag cannot reach an argv: re-validation refuses it.
    let mut evil = step(
        Stage::Act,
        ToolName::Kubectl,
        "scale",
        json!({"resource": "${capture.target}", "namespace": "web", "replicas": 5}),
    );
    evil.rollback = None;
    run_expecting(
        &env,
        vec![read(&[("target", ".metadata.annotations.evil")]), evil],
        ExecutionStatus::Failed,
        "refused by the kubectl catalogue",
    )
    .await;
    assert_eq!(
        scale_patches(&api).await,
        vec![json!(5), json!(3)],
        "no further writes reached the API server"
    );
    env.finish().await;
}
