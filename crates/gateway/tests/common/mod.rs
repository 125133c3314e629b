//! Shared helpers: `spawn_app()` starts the real gateway on port 0 against a fresh Postgres
//! database, and `token()` mints dev tokens for it.

#![allow(dead_code)]

use std::sync::Arc;

use carapulse_core::auth::{mint_dev_token, DevTokenRequest};
use carapulse_core::config::Config;
use carapulse_core::testing::{TestDatabase, TEST_JWT_SECRET};
use gateway::Application;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Signs execution grants in tests (the orchestrator mints, the tool router checks).
pub const TEST_GRANT_KEY: &str = "test-grant-key-0123456789abcdef0123456789";

pub struct TestApp {
    pub url: String,
    /// The web UI listener, when `gateway.ws_addr` was set.
    pub ui_url: Option<String>,
    pub db: Arc<TestDatabase>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    carapulse_core::telemetry::init("gateway-test");
    let db = TestDatabase::create().await;
    let mut config = db.config();
    tweak(&mut config);
    let app = Application::build(config).await.expect("gateway builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    let ui_url = app.ui_port().map(|p| format!("http://127.0.0.1:{p}"));
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        url,
        ui_url,
        db: Arc::new(db),
        http: reqwest::Client::new(),
        shutdown,
        handle,
    }
}

pub fn token(sub: &str, tenant: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    mint_dev_token(&DevTokenRequest {
        secret: TEST_JWT_SECRET,
        issuer: "carapulse-dev",
        audience: None,
        subject: sub,
        tenant,
        roles: &roles,
        email: Some(&format!("{sub}@example.com")),
        ttl_secs: 3600,
        tenant_claim: "tenant_id",
        roles_claim: "groups",
    })
    .expect("mint")
}

impl TestApp {
    /// One request as `token`, with a JSON body when given; the status and the JSON answer
    /// (`Null` when there is none).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, token, None).await
    }

    /// Creates a medium-risk dev plan (needs approval) as `creator`.
    pub async fn create_scale_plan(&self, creator: &str) -> (u16, Value) {
        self.post("/v1/plans", creator, &scale_plan_body()).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
        self.db.drop_now().await;
    }
}

/// A one-step read plan (policy lets it run without approval).
pub fn read_plan_body() -> Value {
    json!({"summary": "Read web", "context": {"environment": "dev", "namespace": "web"},
           "steps": [{"stage": "verify", "tool": "kubectl", "action": "get", "input": {"resource": "deployment/web", "namespace": "web"}}]})
}

pub fn scale_plan_body() -> Value {
    json!({
        "summary": "Scale web to 3 replicas",
        "intent": "scale deployment web to 3",
        "context": {"environment": "staging", "namespace": "web", "cluster_id": "c1"},
        "steps": [
            {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 3, "namespace": "web"},
             "rollback": {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 2, "namespace": "web"}}},
            {"stage": "verify", "tool": "kubectl", "action": "rollout-status", "input": {"resource": "deployment/web", "namespace": "web"}}
        ]
    })
}

/// A writable copy of the project's policy files (for tests that change the loaded policy).
pub fn copied_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_policies(dir.path());
    dir
}

/// Copies the project's `.rego` files into `to`.
pub fn copy_policies(to: &std::path::Path) {
    for entry in std::fs::read_dir(carapulse_core::testing::policies_dir()).expect("policies") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rego") {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The Temporal dev server the tests share (started by scripts/test.sh); panics with how to get
/// one when nothing listens.
pub fn temporal_addr() -> String {
    let temporal =
        std::env::var("CARAPULSE_TEST_TEMPORAL").unwrap_or_else(|_| "127.0.0.1:7233".into());
    assert!(
        std::net::TcpStream::connect(&temporal).is_ok(),
        "no Temporal at {temporal}: run ./scripts/test.sh"
    );
    temporal
}

/// A port nothing listens on right now (for a server started later, or a dead address).
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr").port()
}

/// Puts an executable `tool` running `script` (POSIX sh) first on this test process's PATH.
/// Call before the tool router starts: PATH is read when the router spawns tools.
pub fn fake_tool_on_path(tool: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("carapulse-gw-fakes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("fake dir");
    let path = dir.join(tool);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("fake tool");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let old = std::env::var("PATH").unwrap_or_default();
    if !old.split(':').any(|p| std::path::Path::new(p) == dir) {
        // SAFETY: tests call this before starting the router, from their only test function.
        unsafe { std::env::set_var("PATH", format!("{}:{old}", dir.display())) };
    }
}

/// A real tool router and orchestrator worker behind a gateway started with
/// [`execution_config`]: executions run for real on the shared Temporal dev server.
pub struct ExecutionStack {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    worker: Option<std::thread::JoinHandle<()>>,
    _objects: tempfile::TempDir,
}

/// Points `config` at Temporal on `queue` and at a tool router on `router_port`.
pub fn execution_config(config: &mut Config, temporal: &str, queue: &str, router_port: u16) {
    config.orchestrator.temporal_addr = Some(temporal.to_owned());
    config.orchestrator.task_queue = queue.to_owned();
    config.tool_router.base_url = Some(format!("http://127.0.0.1:{router_port}"));
}

impl ExecutionStack {
    /// Starts the router on `router_port` and a worker on `queue`, sharing `app`'s database.
    pub async fn start(app: &TestApp, temporal: &str, queue: &str, router_port: u16) -> Self {
        let objects = tempfile::tempdir().expect("tempdir");
        let mut config = app.db.config();
        execution_config(&mut config, temporal, queue, router_port);
        config.tool_router.http_addr = format!("127.0.0.1:{router_port}");
        config.tool_router.auth_token = Some("gateway-tests-router-token-00001".into());
        config.tool_router.grant_key = Some(TEST_GRANT_KEY.into());
        config.storage.object_store.fs_root = objects.path().to_string_lossy().into_owned();
        let router = tool_router::Application::build(config.clone())
            .await
            .expect("router builds");
        tokio::spawn(router.run_until_stopped());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let store = app.db.store.clone();
        // The worker's future is not Send: it gets a thread and a runtime of its own.
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let stop = async move {
                    let _ = stop_rx.await;
                };
                let _ = orchestrator::worker::run(&config, store, stop).await;
            });
        });
        Self {
            stop: Some(stop_tx),
            worker: Some(worker),
            _objects: objects,
        }
    }

    pub fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Replaces `tenant`'s service-graph traffic with `calls` (`caller, callee, req/s`, observed
/// now; each service a plain service node), as the `service_graph` collector would.
pub async fn seed_traffic(app: &TestApp, tenant: &str, calls: &[(&str, &str, f64)]) {
    let tenant = carapulse_core::model::TenantId::parse(tenant).expect("tenant");
    let mut traffic = carapulse_core::store::Snapshot::default();
    let now = chrono::Utc::now();
    for (caller, callee, rps) in calls {
        for name in [caller, callee] {
            traffic.reference(carapulse_core::store::ContextNode {
                node_id: format!("service/{name}"),
                kind: "service".into(),
                name: (*name).to_owned(),
                labels: Default::default(),
                owner_team: None,
            });
        }
        traffic.call(
            &format!("service/{caller}"),
            &format!("service/{callee}"),
            carapulse_core::store::Traffic::measured(*rps, 0.0, now).expect("traffic"),
        );
    }
    app.db
        .store
        .replace_context(&tenant, "service_graph", &traffic)
        .await
        .expect("service graph");
}
