//! Group commit of plans against a real Postgres: thousands of concurrent plan creations from
//! three tenants through one [`PlanWriter`] keep every invariant of one-plan-per-transaction —
//! each plan exists with exactly its audit event, every tenant's hash chain verifies — and a plan
//! Postgres refuses fails alone, leaving neither a plan nor an audit event behind.

use std::collections::HashMap;

use carapulse_core::audit::{verify_chain, AuditActor, AuditDecision, AuditEntry};
use carapulse_core::model::{Stage, TenantId, ToolName};
use carapulse_core::store::{NewPlan, PlanWriter, StoreError};
use carapulse_core::testing::{sample_plan, sample_step, TestDatabase};
use serde_json::{json, Value};

fn plan(tenant: &TenantId, input: Value) -> NewPlan {
    sample_plan(
        tenant,
        vec![sample_step(
            Stage::Act,
            ToolName::Grafana,
            "annotation-create",
            input,
        )],
    )
}

fn created(tenant: &TenantId, plan: &NewPlan) -> AuditEntry {
    AuditEntry::new(
        tenant.clone(),
        AuditActor::person("alice", None),
        "plan.create",
        AuditDecision::Allow,
    )
    .resource("plan", plan.plan_id)
}

#[tokio::test]
async fn concurrent_plans_from_three_tenants_keep_every_invariant() {
    const PLANS: usize = 10_000;
    const TASKS: usize = 64;
    let db = TestDatabase::create().await;
    let writer = PlanWriter::spawn(db.store.clone());
    let tenants: Vec<TenantId> = ["acme", "globex", "initech"]
        .iter()
        .map(|t| TenantId::parse(t).unwrap())
        .collect();
    let poisoned_at = [17usize, 4_321, 9_999];
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let writer = writer.clone();
        let tenants = tenants.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in (task..PLANS).step_by(TASKS) {
                let tenant = &tenants[i % tenants.len()];
                // Postgres refuses a NUL in jsonb: this plan's batch fails, and only it may.
                let input = if poisoned_at.contains(&i) {
                    json!({"text": "bad \u{0} byte"})
                } else {
                    json!({"text": format!("plan {i}")})
                };
                let new = plan(tenant, input);
                let id = new.plan_id;
                let entry = created(tenant, &new);
                outcomes.push((i, id, writer.create(new, entry).await));
            }
            outcomes
        }));
    }
    let mut ok: HashMap<String, usize> = HashMap::new();
    let mut refused = Vec::new();
    for task in tasks {
        for (i, id, outcome) in task.await.unwrap() {
            match outcome {
                Ok(stored) => {
                    assert_eq!(stored.plan_id, id);
                    assert_eq!(stored.steps.len(), 1);
                    assert_eq!(stored.steps[0].input["text"], format!("plan {i}"));
                    *ok.entry(stored.tenant_id.to_string()).or_default() += 1;
                }
                Err(err) => {
                    assert!(poisoned_at.contains(&i), "plan {i} failed: {err}");
                    assert!(matches!(err, StoreError::InvalidValue(_)), "{err:?}");
                    refused.push(id);
                }
            }
        }
    }
    assert_eq!(refused.len(), poisoned_at.len());
    assert_eq!(ok.values().sum::<usize>(), PLANS - poisoned_at.len());

    let pool = db.store.pool();
    // No change without its event, no event without its change.
    let (plans, events, orphans): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM plans), \
                (SELECT count(*) FROM audit_events WHERE action = 'plan.create'), \
                (SELECT count(*) FROM plans p WHERE NOT EXISTS (SELECT 1 FROM audit_events a \
                  WHERE a.resource_id = p.plan_id::text AND a.tenant_id = p.tenant_id AND a.action = 'plan.create'))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(plans, (PLANS - poisoned_at.len()) as i64);
    assert_eq!(events, plans);
    assert_eq!(orphans, 0);
    for id in &refused {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM plans WHERE plan_id = $1) + \
                    (SELECT count(*) FROM audit_events WHERE resource_id = $1::text)",
        )
        .bind(id.0)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "a refused plan leaves nothing behind");
    }
    for tenant in &tenants {
        let report = verify_chain(&db.store, tenant).await.unwrap();
        assert!(report.ok, "{tenant}: {report:?}");
        assert_eq!(
            report.events_checked as usize,
            ok[tenant.as_str()],
            "{tenant}: one chained event per plan"
        );
    }
    db.drop_now().await;
}
