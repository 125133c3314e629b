//! The Go importer against a real Go-shaped database: the Go original's final schema
//! (`fixtures/go-schema.sql`) filled with generated rows, including the bad data Go let through
//! (empty summaries and hashes, NULLs, unknown statuses, a tenant id that is not one, children
//! of rows that cannot come over). A dry run writes nothing; a run stopped half way resumes
//! without duplicates; a second run imports nothing; every tenant's audit chain verifies with
//! the Go events bracketed by the import's own events; imported plans cannot run.

use serde_json::{json, Value};

use carapulse_core::audit::verify_chain;
use carapulse_core::go_import::{self, ImportOptions, Silent};
use carapulse_core::model::TenantId;
use carapulse_core::testing::go::GoDatabase;
use carapulse_core::testing::TestDatabase;

const PLANS: usize = 120;

/// Generated history: `PLANS` plans of two tenants (every 7th names none), each with two steps,
/// an approval, an execution with a tool call and evidence; then the bad rows.
async fn seed(go: &GoDatabase) {
    for i in 0..PLANS {
        let plan = format!("plan-{i:04}");
        let context = if i % 7 == 0 {
            json!({"environment": "prod"})
        } else {
            json!({"tenant_id": if i % 2 == 0 { "acme" } else { "globex" }, "environment": "prod"})
        };
        let summary = if i == 3 { "" } else { "scale web" };
        let trigger = if i == 5 { "telepathy" } else { "manual" };
        go.exec(
            "INSERT INTO plans (plan_id, created_at, trigger, summary, context_json, risk_level, intent, meta_json) \
             VALUES ($1::text, now() - interval '1 day', $2::text, $3::text, $4::jsonb, 'medium', 'scale web to 3', '{}'::jsonb)",
            &[json!(plan), json!(trigger), json!(summary), context],
        )
        .await;
        for (n, action) in ["scale", "alerts_list"].iter().enumerate() {
            let tool = if n == 0 { "kubectl" } else { "alertmanager" };
            go.exec(
                "INSERT INTO plan_steps (step_id, plan_id, action, tool, input_json) VALUES ($1::text, $2::text, $3::text, $4::text, '{}'::jsonb)",
                &[json!(format!("{plan}-step-{n}")), json!(plan), json!(action), json!(tool)],
            )
            .await;
        }
        let status = match i % 4 {
            0 => "approved",
            1 => "denied",
            2 => "pending",
            _ => "maybe",
        };
        go.exec(
            "INSERT INTO approvals (approval_id, plan_id, status, approver_json, expires_at, source, approved_hash) \
             VALUES ($1::text, $2::text, $3::text, $4::jsonb, now(), 'slack', '')",
            &[
                json!(format!("{plan}-approval")),
                json!(plan),
                json!(status),
                if i == 8 { Value::Null } else { json!({"actor_id": "bob", "email": "bob@example.com"}) },
            ],
        )
        .await;
        let exec_status = match i % 5 {
            0 => "running",
            1 => "weird",
            _ => "succeeded",
        };
        let exec = format!("exec-{i:04}");
        go.exec(
            "INSERT INTO executions (execution_id, plan_id, status, started_at) VALUES ($1::text, $2::text, $3::text, NULL)",
            &[json!(exec), json!(plan), json!(exec_status)],
        )
        .await;
        go.exec(
            "INSERT INTO tool_calls (tool_call_id, execution_id, tool_name, status) VALUES ($1::text, $2::text, 'kubectl', 'succeeded')",
            &[json!(format!("{exec}-call")), json!(exec)],
        )
        .await;
        go.exec(
            "INSERT INTO evidence (evidence_id, execution_id, type, query, link) VALUES ($1::text, $2::text, 'promql', 'up', 'http://grafana/d/x')",
            &[json!(format!("{exec}-evidence")), json!(exec)],
        )
        .await;
    }
    // A tenant id that is not one: the plan and everything under it are refused.
    go.exec(
        "INSERT INTO plans (plan_id, created_at, trigger, summary, context_json, risk_level) \
         VALUES ('plan-bad-tenant', now(), 'manual', 'x', '{\"tenant_id\": \"Not A Tenant!\"}', 'low')",
        &[],
    )
    .await;
    go.exec(
        "INSERT INTO plan_steps (step_id, plan_id, action, tool, input_json) VALUES ('orphan-step', 'plan-bad-tenant', 'scale', 'kubectl', '{}')",
        &[],
    )
    .await;
    // Sessions, schedules, library, memory, context.
    go.exec("INSERT INTO sessions (session_id, name, tenant_id, created_at, updated_at) VALUES ('s1', 'incident 42', 'acme', now(), now())", &[]).await;
    go.exec("INSERT INTO session_members (session_id, member_id, role, added_at) VALUES ('s1', 'alice', 'owner', now())", &[]).await;
    go.exec("INSERT INTO schedules (schedule_id, created_at, cron, context_json, summary, intent, trigger, enabled) VALUES ('sch-ok', now(), '0 3 * * *', '{\"tenant_id\": \"acme\"}', 'nightly', 'restart web', 'scheduled', true)", &[]).await;
    go.exec("INSERT INTO schedules (schedule_id, created_at, cron, context_json, summary, intent, trigger) VALUES ('sch-bad', now(), 'every night', '{\"tenant_id\": \"acme\"}', 'nightly', 'restart web', 'scheduled')", &[]).await;
    go.exec("INSERT INTO playbooks (playbook_id, name, version, spec_json, tenant_id) VALUES ('pb1', 'restart', 1, '{\"steps\": []}', 'acme'), ('pb0', 'broken', 0, '{}', 'acme')", &[]).await;
    go.exec("INSERT INTO runbooks (runbook_id, service, name, version, body, created_at, tenant_id) VALUES ('rb1', 'web', 'restart', 1, 'kubectl rollout restart', now(), NULL)", &[]).await;
    go.exec("INSERT INTO operator_memory (memory_id, tenant_id, title, body, created_at, updated_at) VALUES ('m1', 'globex', 'db failover', 'use the runbook', now(), now())", &[]).await;
    go.exec("INSERT INTO context_nodes (node_id, kind, name, labels_json) VALUES ('service/web', 'service', 'web', '{\"tenant_id\": \"acme\"}'), ('k8s/ns/shop', 'k8s.namespace', 'shop', '{\"tenant_id\": \"acme\"}')", &[]).await;
    go.exec("INSERT INTO context_edges (edge_id, from_node_id, to_node_id, relation) VALUES ('e1', 'service/web', 'k8s/ns/shop', 'runs_in')", &[]).await;
    go.exec("INSERT INTO context_snapshots (snapshot_id, source, collected_at, nodes_json, edges_json, labels_json) VALUES ('snap1', 'k8s', now(), '[]', '[]', '{\"tenant_id\": \"acme\"}')", &[]).await;
    // Audit events: the Go chain, one with an unknown decision, one naming no tenant.
    for i in 0..30 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let decision = if i == 4 { "shrug" } else { "allow" };
        go.exec(
            "INSERT INTO audit_events (event_id, occurred_at, actor_json, action, decision, context_json, hash) \
             VALUES ($1::text, now() - ($2::text)::interval, '{\"actor_id\": \"alice\", \"roles\": [\"operator\"]}', 'plan.create', $3::text, $4::jsonb, '')",
            &[json!(format!("ev-{i:03}")), json!(format!("{} minutes", 60 - i)), json!(decision), json!({"tenant_id": tenant})],
        )
        .await;
    }
    go.exec("INSERT INTO audit_events (event_id, occurred_at, actor_json, action, decision, hash) VALUES ('ev-none', now(), '{}', 'login', 'allow', 'h')", &[]).await;
}

fn skipped_ids<'a>(report: &'a go_import::ImportReport, kind: &str) -> Vec<&'a str> {
    report
        .skipped
        .iter()
        .filter(|n| n.kind == kind)
        .map(|n| n.go_id.as_str())
        .collect()
}

#[tokio::test]
async fn go_history_imports_once_resumes_and_keeps_the_chain() {
    let go = GoDatabase::create().await;
    seed(&go).await;
    let db = TestDatabase::create().await;
    let pool = db.store.pool().clone();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.unwrap();
            n
        }
    };
    let options = ImportOptions {
        default_tenant: Some(TenantId::parse("acme").unwrap()),
        batch_size: 50,
        ..ImportOptions::default()
    };

    // A dry run maps everything and writes nothing.
    let dry = go_import::import(
        &go.pool,
        &db.store,
        &ImportOptions {
            dry_run: true,
            ..options.clone()
        },
        &mut Silent,
    )
    .await
    .unwrap();
    assert!(dry.dry_run && dry.imported() > 400, "{:?}", dry.counts);
    assert_eq!(count("SELECT count(*) FROM plans").await, 0);
    assert_eq!(count("SELECT count(*) FROM go_import_ledger").await, 0);
    assert_eq!(count("SELECT count(*) FROM audit_events").await, 0);

    // Killed after three pages, then run again: the rest comes, nothing twice.
    let first = go_import::import(
        &go.pool,
        &db.store,
        &ImportOptions {
            stop_after_batches: Some(3),
            ..options.clone()
        },
        &mut Silent,
    )
    .await
    .unwrap();
    assert!(first.interrupted);
    assert_eq!(first.counts["plan"].imported, 121 - 1);
    let second = go_import::import(&go.pool, &db.store, &options, &mut Silent)
        .await
        .unwrap();
    assert!(!second.interrupted);
    assert_eq!(second.counts["plan"].already, 120);
    assert_eq!(second.counts["plan"].imported, 0);
    for (kind, counts) in &second.counts {
        assert_eq!(
            counts.imported + counts.already + counts.skipped,
            counts.total,
            "{kind}: every row is accounted for: {counts:?}"
        );
    }
    // The dry run counted what the real runs did.
    for (kind, counts) in &dry.counts {
        let real = &second.counts[kind];
        assert_eq!(
            counts.imported,
            real.imported + real.already,
            "{kind}: the dry run predicted the import"
        );
    }
    assert_eq!(count("SELECT count(*) FROM plans").await, 120);
    assert_eq!(count("SELECT count(*) FROM plan_steps").await, 240);

    // A third run imports nothing.
    let third = go_import::import(&go.pool, &db.store, &options, &mut Silent)
        .await
        .unwrap();
    assert_eq!(third.imported(), 0, "{:?}", third.counts);

    // Bad rows are reported, never dropped silently.
    assert_eq!(skipped_ids(&second, "plan"), ["plan-bad-tenant"]);
    assert!(
        second
            .skipped
            .iter()
            .any(|n| n.go_id == "orphan-step"
                && n.reason.contains("plan-bad-tenant was not imported"))
    );
    let approvals = skipped_ids(&second, "approval");
    assert_eq!(
        approvals.len(),
        60,
        "pending and unknown statuses: {approvals:?}"
    );
    assert!(second
        .skipped
        .iter()
        .any(|n| n.kind == "approval" && n.reason.starts_with("pending")));
    assert!(second
        .skipped
        .iter()
        .any(|n| n.kind == "approval" && n.reason.contains("unknown status")));
    assert_eq!(skipped_ids(&second, "schedule"), ["sch-bad"]);
    assert_eq!(skipped_ids(&second, "playbook"), ["pb0"]);
    let fixed = |kind: &str, id: &str| {
        second
            .fixed
            .iter()
            .chain(first.fixed.iter())
            .find(|n| n.kind == kind && n.go_id == id)
            .map(|n| n.reason.clone())
            .unwrap_or_default()
    };
    assert!(fixed("plan", "plan-0003").contains("summary was empty"));
    assert!(fixed("plan", "plan-0005").contains("trigger \"telepathy\" is unknown"));
    assert!(fixed("plan_step", "plan-0001-step-1").contains("\"alerts_list\" is now \"alerts\""));
    assert!(fixed("execution", "exec-0000").contains("cancelled"));
    assert!(fixed("execution", "exec-0001").contains("\"weird\" is unknown"));

    // What landed: tenants, states, the never-runnable rule, disabled schedules.
    let (tenant, state): (String, String) = sqlx::query_as(
        "SELECT tenant_id, approval_state FROM plans WHERE meta_json->'go'->>'plan_id' = 'plan-0007'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (tenant.as_str(), state.as_str()),
        ("acme", "expired"),
        "no tenant named: --tenant"
    );
    assert_eq!(
        count("SELECT count(*) FROM approvals WHERE approved_hash IS NOT NULL").await,
        0,
        "imported approvals carry no hash, so no imported plan can run"
    );
    assert_eq!(
        count("SELECT count(*) FROM plans WHERE approval_state NOT IN ('approved','denied','expired')").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM executions WHERE status IN ('pending','running')").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM schedules WHERE enabled").await,
        0
    );
    assert_eq!(count("SELECT count(*) FROM session_members").await, 1);
    assert_eq!(count("SELECT count(*) FROM context_edges").await, 1);
    let (ordinals,): (Vec<i32>,) = sqlx::query_as(
        "SELECT array_agg(ordinal ORDER BY ordinal) FROM plan_steps s JOIN plans p USING (plan_id) \
         WHERE p.meta_json->'go'->>'plan_id' = 'plan-0010'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ordinals, [0, 1]);

    // Each tenant's chain verifies, with the Go events between the import's own.
    for tenant in ["acme", "globex"] {
        let tenant = TenantId::parse(tenant).unwrap();
        let report = verify_chain(&db.store, &tenant).await.unwrap();
        assert!(report.ok, "{tenant}: {report:?}");
        let actions: Vec<(String,)> =
            sqlx::query_as("SELECT action FROM audit_events WHERE tenant_id = $1 ORDER BY seq")
                .bind(tenant.as_str())
                .fetch_all(&pool)
                .await
                .unwrap();
        let actions: Vec<&str> = actions.iter().map(|(a,)| a.as_str()).collect();
        assert_eq!(actions.first(), Some(&"import.go.started"), "{actions:?}");
        assert!(actions.contains(&"go.plan.create"));
        assert!(actions.contains(&"import.go.finished"));
    }
    let (kept,): (Value,) =
        sqlx::query_as("SELECT context_json->'go' FROM audit_events WHERE resource_id = 'ev-004'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        kept["decision"], "shrug",
        "the original fields are kept: {kept}"
    );
    assert_eq!(kept["actor"]["actor_id"], "alice");
    assert_eq!(
        count("SELECT count(*) FROM audit_events WHERE action LIKE 'go.%'").await,
        31,
        "every Go event, once (ev-none went to --tenant)"
    );

    db.drop_now().await;
    go.drop_now().await;
}

#[tokio::test]
async fn a_database_that_is_not_go_s_is_refused() {
    let db = TestDatabase::create().await;
    let other = TestDatabase::create().await;
    let err = go_import::import(
        other.store.pool(),
        &db.store,
        &ImportOptions::default(),
        &mut Silent,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a Go Carapulse database"), "{err}");
    db.drop_now().await;
    other.drop_now().await;
}
