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
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
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

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}
