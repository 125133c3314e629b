//! Approval decisions at concurrency 32 (issue 15), side by side in one run: one transaction per
//! decision (`Store::record_approval`, what routes called before) against the group-commit
//! `ApprovalWriter`, alternating rounds on the same database, each round deciding its own fresh
//! pending plans of one tenant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry};
use carapulse_core::model::{
    ActorId, ApprovalSource, ApprovalStatus, PlanApprovalState, PlanId, TenantId,
};
use carapulse_core::store::{ApprovalDecision, ApprovalWriter, PlanWriter, Store};
use carapulse_core::testing::{annotation_plan, TestDatabase};
use serde_json::json;

use crate::{millis, percentile, Row};

const ROUNDS: usize = 2;

pub async fn bench_approvals(
    db: &TestDatabase,
    decisions: usize,
    concurrency: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let tenant = TenantId::parse("bench-approvals")?;
    let plans = PlanWriter::spawn(db.store.clone());
    let writer = ApprovalWriter::spawn(db.store.clone());
    for round in 0..ROUNDS {
        for grouped in [false, true] {
            let ids = pending_plans(&plans, &tenant, decisions).await?;
            let (rate, lat) =
                decide_all(&db.store, &writer, grouped, &tenant, ids, concurrency).await?;
            rows.push(Row {
                what: format!(
                    "approval decisions, c={concurrency}, {decisions} plans, round {}: {}",
                    round + 1,
                    if grouped {
                        "group commit (ApprovalWriter)"
                    } else {
                        "one transaction each (before)"
                    }
                ),
                figure: format!(
                    "{rate:.0} decisions/s, p50 {}, p99 {}",
                    millis(percentile(&lat, 0.5)),
                    millis(percentile(&lat, 0.99))
                ),
            });
        }
    }
    Ok(())
}

async fn pending_plans(
    plans: &PlanWriter,
    tenant: &TenantId,
    n: usize,
) -> anyhow::Result<Vec<PlanId>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let mut new = annotation_plan(tenant, json!({"text": format!("approve me {i}")}));
        new.approval_state = PlanApprovalState::Pending;
        new.approval_expires_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        let entry = AuditEntry::new(
            tenant.clone(),
            AuditActor::person("alice", None),
            "plan.create",
            AuditDecision::Allow,
        )
        .resource("plan", new.plan_id);
        ids.push(plans.create(new, entry).await?.plan_id);
    }
    Ok(ids)
}

/// Decides every plan of `ids` with `concurrency` tasks; decisions/s and sorted latencies.
async fn decide_all(
    store: &Store,
    writer: &ApprovalWriter,
    grouped: bool,
    tenant: &TenantId,
    ids: Vec<PlanId>,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let total = ids.len();
    let queue = Arc::new(std::sync::Mutex::new(ids));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, writer, tenant, queue) =
            (store.clone(), writer.clone(), tenant.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(plan_id) = next else { break };
                let decision = ApprovalDecision {
                    status: ApprovalStatus::Approved,
                    approver: ActorId::parse("bob")?,
                    approver_email: None,
                    source: ApprovalSource::Api,
                    note: None,
                };
                let entry = AuditEntry::new(
                    tenant.clone(),
                    AuditActor::person("bob", None),
                    "approval.approved",
                    AuditDecision::Allow,
                )
                .resource("plan", plan_id);
                let t = Instant::now();
                let now = chrono::Utc::now();
                if grouped {
                    writer
                        .record(&tenant, plan_id, decision, entry, now)
                        .await?;
                } else {
                    store
                        .record_approval(&tenant, plan_id, decision, entry, now)
                        .await?;
                }
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    anyhow::ensure!(all.len() == total, "{} of {total} decided", all.len());
    Ok((rate, all))
}
