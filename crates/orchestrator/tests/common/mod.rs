//! The harness of the orchestrator's integration tests: a fresh Postgres database, the real
//! tool router, a worker on its own task queue of the real Temporal dev server (started by
//! scripts/test.sh on 127.0.0.1:7233), and helpers to store and dispatch plans. Each test binary
//! defines `fakes()` at its root: the fake executables it puts on PATH before a router starts.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry};
use carapulse_core::config::Config;
use carapulse_core::dispatch::{DispatchOutcome, DispatchRequest, ExecutionDispatcher};
use carapulse_core::model::*;
use carapulse_core::store::{NewPlan, StartOutcome, Store};
use carapulse_core::testing::TestDatabase;
use orchestrator::dispatcher::TemporalDispatcher;
use serde_json::json;

/// Signs execution grants in tests (the orchestrator mints, the tool router checks).
pub const TEST_GRANT_KEY: &str = "test-grant-key-0123456789abcdef0123456789";

pub const TOKEN: &str = "orchestrator-test-service-token-0001";

pub struct Env {
    pub db: TestDatabase,
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Env {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Env::start`] with `tweak` applied to the config the router is built with.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        super::fakes();
        let temporal =
            std::env::var("CARAPULSE_TEST_TEMPORAL").unwrap_or_else(|_| "127.0.0.1:7233".into());
        assert!(
            std::net::TcpStream::connect(&temporal).is_ok(),
            "no Temporal server at {temporal}: run ./scripts/test.sh (it starts the dev server)"
        );
        let db = TestDatabase::create().await;
        let mut config = db.config();
        let objects = tempfile::tempdir().unwrap().keep();
        config.storage.object_store.fs_root = objects.to_string_lossy().into_owned();
        config.tool_router.http_addr = "127.0.0.1:0".into();
        config.tool_router.auth_token = Some(TOKEN.into());
        config.tool_router.grant_key = Some(TEST_GRANT_KEY.into());
        // API-only tools answer from a mock: every query succeeds except `fail`, which is a 500.
        let apis = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::query_param("query", "fail"))
            .respond_with(wiremock::ResponseTemplate::new(500).set_body_string("query failed"))
            .with_priority(1)
            .mount(&apis)
            .await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(json!({"status": "success", "data": {"result": [1]}})),
            )
            .with_priority(10)
            .mount(&apis)
            .await;
        for connector in [
            &mut config.connectors.prometheus,
            &mut config.connectors.alertmanager,
            &mut config.connectors.pagerduty,
            &mut config.connectors.tempo,
        ] {
            connector.addr = Some(apis.uri());
            connector.token = Some("t".into());
        }
        config.connectors.grafana.addr = Some(apis.uri());
        // The mock must outlive the router, which lives as long as the test.
        std::mem::forget(apis);
        tweak(&mut config);
        let router = tool_router::Application::build(config.clone())
            .await
            .unwrap();
        config.tool_router.base_url = Some(format!("http://127.0.0.1:{}", router.port()));
        tokio::spawn(router.run_until_stopped());
        // A test may point at its own Temporal server through the tweak.
        config.orchestrator.temporal_addr.get_or_insert(temporal);
        config.orchestrator.task_queue = format!("test-{}", uuid::Uuid::new_v4().simple());
        let mut env = Self {
            db,
            config,
            stop: None,
            worker: None,
        };
        env.start_worker();
        env
    }

    /// The worker runs on its own thread: its future is not Send.
    pub fn start_worker(&mut self) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = self.config.clone();
        let store = self.db.store.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let stop = async move {
                    let _ = rx.await;
                };
                if let Err(e) = orchestrator::worker::run(&config, store, stop).await {
                    eprintln!("worker ended: {e}");
                }
            });
        });
        self.stop = Some(tx);
        self.worker = Some(handle);
    }

    pub fn stop_worker(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }

    pub fn store(&self) -> &Store {
        &self.db.store
    }

    /// Stores a plan of `steps`, approved by bob, and a pending execution of it.
    pub async fn plan(&self, steps: Vec<StepDraft>) -> (PlanId, ExecutionId) {
        self.plan_named(steps, "test plan").await
    }

    pub async fn plan_named(&self, steps: Vec<StepDraft>, summary: &str) -> (PlanId, ExecutionId) {
        let tenant = TenantId::parse("acme").unwrap();
        let plan = NewPlan {
            plan_id: PlanId::new(),
            tenant_id: tenant.clone(),
            created_by: ActorId::parse("alice").unwrap(),
            trigger: Trigger::Manual,
            summary: Summary::parse(summary).unwrap(),
            intent: Intent::parse("").unwrap(),
            context: ContextRef {
                tenant_id: "acme".into(),
                environment: "dev".into(),
                namespace: "web".into(),
                ..Default::default()
            },
            risk_level: RiskLevel::Medium,
            policy_decision: Decision::Allow,
            constraints: json!({}),
            // Medium-risk writes: approved by a person, as the gateway would require (the tool
            // router refuses them for a plan nobody approved).
            approval_state: PlanApprovalState::Pending,
            approval_expires_at: None,
            session_id: None,
            planner: None,
            plan_text: None,
            meta: json!({}),
            steps,
            planning_record: None,
        };
        let audit = AuditEntry::new(
            tenant.clone(),
            AuditActor::system(),
            "plan.create",
            AuditDecision::Allow,
        );
        let plan = self.store().create_plan(plan, audit).await.unwrap();
        self.store()
            .record_approval(
                &tenant,
                plan.plan_id,
                carapulse_core::store::ApprovalDecision {
                    status: carapulse_core::model::ApprovalStatus::Approved,
                    approver: ActorId::parse("bob").unwrap(),
                    approver_email: None,
                    source: carapulse_core::model::ApprovalSource::Api,
                    note: None,
                },
                AuditEntry::new(
                    tenant.clone(),
                    AuditActor::system(),
                    "approval.approved",
                    AuditDecision::Allow,
                ),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        let exec_id = ExecutionId::new();
        let audit = AuditEntry::new(
            tenant.clone(),
            AuditActor::system(),
            "plan.execute",
            AuditDecision::Allow,
        );
        let started = self
            .store()
            .start_execution(
                &tenant,
                plan.plan_id,
                exec_id,
                &ActorId::parse("alice").unwrap(),
                audit,
                carapulse_core::store::StartOptions::new(
                    carapulse_core::store::StartMode::RequireApproved,
                ),
            )
            .await
            .unwrap();
        assert!(matches!(started, StartOutcome::Created(_)));
        (plan.plan_id, exec_id)
    }

    pub async fn wait_terminal(&self, exec: ExecutionId) -> Execution {
        let tenant = TenantId::parse("acme").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let e = self.store().get_execution(&tenant, exec).await.unwrap();
            if !e.status.is_active() {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "execution {exec} still {:?}",
                e.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn calls(&self, exec: ExecutionId) -> Vec<(String, String)> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT action, status FROM tool_calls WHERE execution_id = $1 ORDER BY created_at, tool_call_id",
        )
        .bind(exec.0)
        .fetch_all(self.store().pool())
        .await
        .unwrap();
        rows
    }

    pub async fn finish(mut self) {
        self.stop_worker();
        self.db.drop_now().await;
    }
}

pub fn helm(
    stage: Stage,
    action: &str,
    release: &str,
    rollback_release: Option<&str>,
) -> StepDraft {
    let input = match action {
        "upgrade" => json!({"release": release, "chart": "charts/web", "namespace": "web"}),
        _ => json!({"release": release, "namespace": "web"}),
    };
    StepDraft {
        stage,
        tool: ToolName::Helm,
        action: ActionName::parse(action).unwrap(),
        input,
        preconditions: vec![],
        rollback: rollback_release.map(|r| RollbackSpec {
            tool: ToolName::Helm,
            action: ActionName::parse("rollback").unwrap(),
            input: json!({"release": r, "namespace": "web"}),
        }),
        evidence: vec![],
        capture: Default::default(),
        expect: Vec::new(),
        analysis: None,
    }
}

pub async fn dispatch(env: &Env, plan: PlanId, exec: ExecutionId) {
    let dispatcher = TemporalDispatcher::new(&env.config.orchestrator).unwrap();
    let out = dispatcher
        .dispatch(DispatchRequest {
            execution_id: exec,
            plan_id: plan,
            tenant_id: TenantId::parse("acme").unwrap(),
            await_approval_secs: None,
        })
        .await
        .unwrap();
    assert_eq!(
        out,
        DispatchOutcome::Started {
            workflow_id: exec.to_string()
        }
    );
}
