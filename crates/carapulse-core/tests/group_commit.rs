//! Group commit of plans against a real Postgres: thousands of concurrent plan creations from
//! three tenants through one [`PlanWriter`] keep every invariant of one-plan-per-transaction —
//! each plan exists with exactly its audit event, every tenant's hash chain verifies — and a plan
//! Postgres refuses fails alone, leaving neither a plan nor an audit event behind.

use std::collections::HashMap;

use carapulse_core::audit::{verify_chain, AuditActor, AuditDecision, AuditEntry};
use carapulse_core::model::TenantId;
use carapulse_core::store::{NewPlan, PlanWriter, StoreError};
use carapulse_core::testing::{annotation_plan, TestDatabase};
use serde_json::json;

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
                let new = annotation_plan(tenant, input);
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

/// Approval decisions through one [`ApprovalWriter`]: 64 tasks decide 3,000 pending plans of
/// three tenants, every plan twice (two approvers racing), a few decisions poisoned (a NUL in the
/// note, which Postgres refuses) and a few plans past their approval window. Exactly one decision
/// per plan wins, the racing one is a conflict, a poisoned or late decision fails alone, and every
/// recorded decision has its one audit event on a chain that verifies.
#[tokio::test]
async fn concurrent_approvals_keep_every_invariant() {
    use carapulse_core::model::{ActorId, ApprovalSource, ApprovalStatus, PlanApprovalState};
    use carapulse_core::store::{ApprovalDecision, ApprovalWriter};
    const PLANS: usize = 3_000;
    const TASKS: usize = 64;
    let db = TestDatabase::create().await;
    let plans = PlanWriter::spawn(db.store.clone());
    let approvals = ApprovalWriter::spawn(db.store.clone());
    let tenants: Vec<TenantId> = ["acme", "globex", "initech"]
        .iter()
        .map(|t| TenantId::parse(t).unwrap())
        .collect();
    let poisoned_at = [5usize, 1_234, 2_999];
    let expired_at = [77usize, 2_000];
    let mut ids = Vec::with_capacity(PLANS);
    for i in 0..PLANS {
        let tenant = &tenants[i % tenants.len()];
        let mut new = annotation_plan(tenant, json!({"text": format!("plan {i}")}));
        new.approval_state = PlanApprovalState::Pending;
        new.approval_expires_at = Some(if expired_at.contains(&i) {
            chrono::Utc::now() - chrono::Duration::minutes(1)
        } else {
            chrono::Utc::now() + chrono::Duration::hours(1)
        });
        let entry = created(tenant, &new);
        ids.push(plans.create(new, entry).await.unwrap().plan_id);
    }
    let ids = std::sync::Arc::new(ids);
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (approvals, tenants, ids) = (approvals.clone(), tenants.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            // Every plan is decided by two tasks: i and i + PLANS share a plan.
            for j in (task..2 * PLANS).step_by(TASKS) {
                let i = j % PLANS;
                let tenant = &tenants[i % tenants.len()];
                let approver = format!("approver-{}", j / PLANS);
                let note = if poisoned_at.contains(&i) {
                    "bad \u{0} byte".to_owned()
                } else {
                    format!("ok {j}")
                };
                let decision = ApprovalDecision {
                    status: ApprovalStatus::Approved,
                    approver: ActorId::parse(&approver).unwrap(),
                    approver_email: None,
                    source: ApprovalSource::Api,
                    note: Some(note),
                };
                let entry = AuditEntry::new(
                    tenant.clone(),
                    AuditActor::person(approver, None),
                    "approval.approved",
                    AuditDecision::Allow,
                )
                .resource("plan", ids[i]);
                let outcome = approvals
                    .record(tenant, ids[i], decision, entry, chrono::Utc::now())
                    .await;
                outcomes.push((i, outcome));
            }
            outcomes
        }));
    }
    let mut wins = vec![0usize; PLANS];
    for task in tasks {
        for (i, outcome) in task.await.unwrap() {
            match outcome {
                Ok(approval) => {
                    assert_eq!(approval.plan_id, ids[i]);
                    wins[i] += 1;
                }
                Err(StoreError::InvalidValue(_)) => assert!(poisoned_at.contains(&i), "plan {i}"),
                Err(StoreError::Conflict(msg)) => assert!(
                    expired_at.contains(&i) || msg.contains("already"),
                    "plan {i}: {msg}"
                ),
                Err(other) => panic!("plan {i}: {other:?}"),
            }
        }
    }
    for (i, n) in wins.iter().enumerate() {
        let expected = usize::from(!poisoned_at.contains(&i) && !expired_at.contains(&i));
        assert_eq!(*n, expected, "plan {i}: {n} winning decisions");
    }
    let decided = PLANS - poisoned_at.len() - expired_at.len();
    // Decisions were committed in batches, and refusals (races, poison, late) stayed inside
    // theirs: no batch had to be retried decision by decision.
    let stats = approvals.stats();
    assert!(
        stats.batches > 0 && stats.batched_decisions > PLANS as u64,
        "{stats:?}"
    );
    assert_eq!(stats.retried, 0, "{stats:?}");

    let pool = db.store.pool();
    let (rows, events, approved, orphans): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM approvals), \
                (SELECT count(*) FROM audit_events WHERE action = 'approval.approved'), \
                (SELECT count(*) FROM plans WHERE approval_state = 'approved'), \
                (SELECT count(*) FROM approvals p WHERE NOT EXISTS (SELECT 1 FROM audit_events a \
                  WHERE a.resource_id = p.plan_id::text AND a.action = 'approval.approved'))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(rows, decided as i64);
    assert_eq!(
        events, rows,
        "one audit event per recorded decision, none for refused ones"
    );
    assert_eq!(approved, rows);
    assert_eq!(orphans, 0);
    for tenant in &tenants {
        let report = verify_chain(&db.store, tenant).await.unwrap();
        assert!(report.ok, "{tenant}: {report:?}");
    }
    db.drop_now().await;
}
