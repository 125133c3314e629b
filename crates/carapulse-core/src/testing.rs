//! Test support (feature `testing`): a fresh, migrated Postgres database per test, dropped
//! afterwards, and a dev-mode config pointing at it.

#[path = "go_database.rs"]
pub mod go;
#[path = "prometheus_server.rs"]
pub mod prometheus;
#[path = "s3_server.rs"]
pub mod s3;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::store::Store;

/// The HS256 secret of test configs.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Admin DSN used to create and drop test databases (`CARAPULSE_TEST_PG`).
pub fn admin_dsn() -> String {
    std::env::var("CARAPULSE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A uniquely named database that exists for the lifetime of this value.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub dsn: String,
    pub store: Store,
    /// The object store root of this database's services (checkpoints, tool outputs); removed
    /// with the database.
    pub objects_dir: std::path::PathBuf,
    dropped: AtomicBool,
}

/// The audit checkpoint key test configs use.
pub const TEST_CHECKPOINT_KEY: &str = "test-checkpoint-key-0123456789abcdef01234567";

impl TestDatabase {
    /// Creates `carapulse_test_<uuid>` and runs the migrations.
    pub async fn create() -> Self {
        let name = format!("carapulse_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_dsn();
        let admin_pool = sqlx::PgPool::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Postgres at {admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin_pool)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        admin_pool.close().await;
        Self::connect(name, &admin, false).await
    }

    /// Connects to the existing database `name` and runs the migrations; `kept` ones are never
    /// dropped.
    async fn connect(name: String, admin: &str, kept: bool) -> Self {
        let dsn = match admin.rfind('/') {
            Some(i) => format!("{}/{name}", &admin[..i]),
            None => panic!("admin DSN has no database path: {admin}"),
        };
        let mut storage = crate::config::StorageConfig {
            postgres_dsn: dsn.clone(),
            ..Default::default()
        };
        storage.max_open_conns = 40;
        storage.max_idle_conns = 0;
        let store = Store::connect_lazy(&storage).expect("test store");
        store.migrate().await.expect("migrations apply");
        let objects_dir = std::env::temp_dir().join(format!("{name}-objects"));
        Self {
            name,
            dsn,
            store,
            objects_dir,
            dropped: AtomicBool::new(kept),
        }
    }

    /// Opens the database `name`, creating it (and running the migrations) when it does not
    /// exist; it is kept afterwards (never dropped), so a bench can seed it once and measure it
    /// many times. Returns whether it existed.
    pub async fn open_kept(name: &str) -> (Self, bool) {
        let admin = admin_dsn();
        let admin_pool = sqlx::PgPool::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Postgres at {admin}: {e}"));
        let existed: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&admin_pool)
                .await
                .unwrap_or_else(|e| panic!("look up database {name}: {e}"));
        if !existed {
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&admin_pool)
                .await
                .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        }
        admin_pool.close().await;
        let db = Self::connect(name.to_owned(), &admin, true).await;
        (db, existed)
    }

    /// A gateway-ready config: dev mode with [`TEST_JWT_SECRET`], listeners on port 0.
    pub fn config(&self) -> Config {
        let mut cfg = Config::default();
        cfg.storage.postgres_dsn = self.dsn.clone();
        cfg.storage.max_idle_conns = 0;
        cfg.gateway.http_addr = "127.0.0.1:0".into();
        // Tests that want the UI listener ask for it on port 0.
        cfg.gateway.ws_addr = None;
        cfg.gateway.dev_mode = true;
        cfg.gateway.dev_jwt_secret = Some(TEST_JWT_SECRET.into());
        cfg.policy.policy_dir = policies_dir();
        cfg.storage.object_store.fs_root = self.objects_dir.to_string_lossy().into_owned();
        cfg.storage.audit_checkpoint_key = Some(TEST_CHECKPOINT_KEY.into());
        cfg
    }

    /// Drops the database now (also done on drop).
    pub async fn drop_now(&self) {
        if self.dropped.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.objects_dir);
        self.store.close().await;
        if let Ok(pool) = sqlx::PgPool::connect(&admin_dsn()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&pool)
            .await;
            pool.close().await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped.load(Ordering::SeqCst) {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.objects_dir);
        drop_database_blocking(self.name.clone());
    }
}

/// Drops database `name` (lowercase letters, digits and `_`, as the test helpers make them)
/// from a `Drop`: a private runtime on a thread, since a drop has no async context to use.
fn drop_database_blocking(name: String) {
    let handle = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&admin_dsn()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        });
    });
    let _ = handle.join();
}

/// Absolute path of the repository's `policies/` directory.
pub fn policies_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies").to_owned()
}

/// A grant minted for one call in tests, with the ids it binds.
#[derive(Debug, Clone)]
pub struct TestGrant {
    pub execution_id: String,
    pub tool_call_id: String,
    /// The `X-Carapulse-Grant` header value.
    pub header: String,
}

/// Options of [`grant_for_call`].
#[derive(Debug, Clone, Copy)]
pub struct GrantOptions<'a> {
    pub key: &'a str,
    pub approved: bool,
    pub break_glass: bool,
    /// Seconds from now; negative for an already expired grant.
    pub ttl_secs: i64,
}

/// Mints a grant covering exactly the call in `body` (a router `execute` body: `tool_name`,
/// `action`, `input`, `context.tenant_id`) and writes its ids into `body`, as the orchestrator
/// would.
pub fn grant_for_call(body: &mut serde_json::Value, opts: GrantOptions<'_>) -> TestGrant {
    use crate::grant::{call_digest, mint, GrantClaims};
    let tool = crate::model::ToolName::parse(body["tool_name"].as_str().unwrap_or_default())
        .expect("tool_name");
    let action = body["action"].as_str().unwrap_or_default().to_owned();
    let execution_id = crate::model::ExecutionId::new().to_string();
    let tool_call_id = crate::model::ToolCallId::new().to_string();
    let claims = GrantClaims {
        v: 1,
        tenant_id: body["context"]["tenant_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        execution_id: execution_id.clone(),
        plan_id: crate::model::PlanId::new().to_string(),
        plan_hash: "test".into(),
        tool_call_id: tool_call_id.clone(),
        calls: vec![call_digest(tool, &action, &body["input"])],
        approved: opts.approved,
        break_glass: opts.break_glass,
        exp: chrono::Utc::now().timestamp() + opts.ttl_secs,
    };
    body["execution_id"] = serde_json::Value::String(execution_id.clone());
    body["tool_call_id"] = serde_json::Value::String(tool_call_id.clone());
    TestGrant {
        execution_id,
        tool_call_id,
        header: mint(&claims, opts.key.as_bytes()).expect("mint"),
    }
}

/// A [`sample_plan`] of one step: a Grafana annotation with `input` (the plan tests and benches
/// use when only its identity and its tenant matter).
pub fn annotation_plan(
    tenant: &crate::model::TenantId,
    input: serde_json::Value,
) -> crate::store::NewPlan {
    sample_plan(
        tenant,
        vec![sample_step(
            crate::model::Stage::Act,
            crate::model::ToolName::Grafana,
            "annotation-create",
            input,
        )],
    )
}

/// A low-risk, approval-free dev plan of `tenant`, created by alice, with `steps`: the plan
/// store tests insert when the plan's content does not matter.
pub fn sample_plan(
    tenant: &crate::model::TenantId,
    steps: Vec<crate::model::StepDraft>,
) -> crate::store::NewPlan {
    use crate::model::{
        ActorId, ContextRef, Decision, Intent, PlanApprovalState, PlanId, RiskLevel, Summary,
        Trigger,
    };
    crate::store::NewPlan {
        plan_id: PlanId::new(),
        tenant_id: tenant.clone(),
        created_by: ActorId::parse("alice").expect("actor"),
        trigger: Trigger::Manual,
        summary: Summary::parse("annotate").expect("summary"),
        intent: Intent::parse("").expect("intent"),
        context: ContextRef {
            tenant_id: tenant.to_string(),
            environment: "dev".into(),
            ..Default::default()
        },
        risk_level: RiskLevel::Low,
        policy_decision: Decision::Allow,
        constraints: serde_json::json!({}),
        approval_state: PlanApprovalState::NotRequired,
        approval_expires_at: None,
        session_id: None,
        planner: None,
        plan_text: None,
        meta: serde_json::json!({}),
        steps,
        planning_record: None,
    }
}

/// A step with `input` and nothing else (no rollback, evidence or verification).
pub fn sample_step(
    stage: crate::model::Stage,
    tool: crate::model::ToolName,
    action: &str,
    input: serde_json::Value,
) -> crate::model::StepDraft {
    crate::model::StepDraft {
        stage,
        tool,
        action: crate::model::ActionName::parse(action).expect("action name"),
        input,
        preconditions: Vec::new(),
        rollback: None,
        evidence: Vec::new(),
        capture: Default::default(),
        expect: Vec::new(),
        analysis: None,
    }
}

/// Rows of COPY text per chunk sent by [`seed_audit_chain`].
const COPY_CHUNK: i64 = 20_000;

/// Appends `n` valid chained audit events for `tenant` (a fresh chain: the tenant must have
/// none), timestamps spread over the `span` before now, and records the chain head; returns it.
/// For tests and benches that need long chains fast: the events are hashed on a thread (the chain
/// is sequential) while the previous chunk streams into Postgres with `COPY`, with triggers off
/// (like a restored backup: no `audit.created` change event per row).
pub async fn seed_audit_chain(
    store: &Store,
    tenant: &crate::model::TenantId,
    n: i64,
    span: chrono::Duration,
) -> Result<(i64, String), crate::store::StoreError> {
    use crate::audit::{AuditEvent, GENESIS_HASH};
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let chain_tenant = tenant.clone();
    let generator = std::thread::spawn(move || -> (i64, String) {
        let now = chrono::Utc::now();
        let step_us = span.num_microseconds().unwrap_or(0) as f64 / n.max(1) as f64;
        let mut prev = GENESIS_HASH.to_owned();
        let mut chunk = Vec::with_capacity(COPY_CHUNK as usize * 600);
        for seq in 1..=n {
            let at = now - chrono::Duration::microseconds(((n - seq) as f64 * step_us) as i64);
            let event = AuditEvent::chain(sample_audit_entry(&chain_tenant, seq), seq, &prev, at);
            write_audit_copy_row(&mut chunk, &event);
            prev = event.hash;
            if (seq % COPY_CHUNK == 0 || seq == n) && tx.send(std::mem::take(&mut chunk)).is_err() {
                break;
            }
        }
        (n, prev)
    });
    // SET LOCAL: the setting ends with the transaction, even when the COPY fails.
    let mut tx = store.pool().begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY audit_events (event_id, tenant_id, seq, occurred_at, actor_json, action, decision, \
             resource_type, resource_id, reason, request_id, context_json, prev_hash, hash) FROM STDIN",
        )
        .await?;
    // The receiver blocks: wait for each chunk on a blocking thread.
    let mut receiver = Some(rx);
    while let Some(rx) = receiver.take() {
        let (chunk, rx) = tokio::task::spawn_blocking(move || (rx.recv().ok(), rx))
            .await
            .map_err(|e| crate::store::StoreError::Unavailable(e.to_string()))?;
        if let Some(chunk) = chunk {
            copy.send(chunk).await?;
            receiver = Some(rx);
        }
    }
    copy.finish().await?;
    tx.commit().await?;
    let (head_seq, head_hash) = generator.join().map_err(|_| {
        crate::store::StoreError::Unavailable("the chain generator panicked".into())
    })?;
    sqlx::query(
        "INSERT INTO audit_chain_heads (tenant_id, last_seq, last_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash",
    )
    .bind(tenant.as_str())
    .bind(head_seq)
    .bind(&head_hash)
    .execute(store.pool())
    .await?;
    Ok((head_seq, head_hash))
}

/// A plausible mix of what a busy tenant's chain records.
fn sample_audit_entry(tenant: &crate::model::TenantId, seq: i64) -> crate::audit::AuditEntry {
    use crate::audit::{AuditActor, AuditDecision, AuditEntry};
    let (action, decision, kind) = match seq % 10 {
        0..=3 => ("plan.create", AuditDecision::Allow, "plan"),
        4 => ("approval.create", AuditDecision::Allow, "plan"),
        5 | 6 => ("plan.execute", AuditDecision::Allow, "plan"),
        7 => ("execution.update", AuditDecision::Info, "execution"),
        8 => ("alert.received", AuditDecision::Info, "alert"),
        _ => ("policy.evaluate", AuditDecision::Deny, "plan"),
    };
    let actor = AuditActor::person(format!("user-{}", seq % 50), None);
    let mut entry = AuditEntry::new(tenant.clone(), actor, action, decision)
        .resource(kind, format!("{kind}-{seq}"))
        .request_id(Some(format!("req-{seq}")));
    if decision == AuditDecision::Deny {
        entry = entry.reason("policy denied: production write outside the change window");
    }
    entry.context(serde_json::json!({"environment": "production", "namespace": "web"}))
}

/// One `COPY … FROM STDIN` text row (tab separated, `\N` for NULL, backslash escapes).
fn write_audit_copy_row(out: &mut Vec<u8>, e: &crate::audit::AuditEvent) {
    fn field(out: &mut Vec<u8>, value: Option<&str>, last: bool) {
        match value {
            None => out.extend_from_slice(b"\\N"),
            Some(v) => {
                for b in v.bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(b),
                    }
                }
            }
        }
        out.push(if last { b'\n' } else { b'\t' });
    }
    let seq = e.seq.to_string();
    let at = e
        .occurred_at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (actor, context, id) = (
        e.actor.to_string(),
        e.context.to_string(),
        e.event_id.to_string(),
    );
    let fields = [
        Some(id.as_str()),
        Some(e.tenant_id.as_str()),
        Some(seq.as_str()),
        Some(at.as_str()),
        Some(actor.as_str()),
        Some(e.action.as_str()),
        Some(e.decision.as_str()),
        e.resource_type.as_deref(),
        e.resource_id.as_deref(),
        e.reason.as_deref(),
        e.request_id.as_deref(),
        Some(context.as_str()),
        Some(e.prev_hash.as_str()),
        Some(e.hash.as_str()),
    ];
    let last = fields.len() - 1;
    for (i, value) in fields.into_iter().enumerate() {
        field(out, value, i == last);
    }
}
