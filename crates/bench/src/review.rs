//! Review tools (issue 18), through a real gateway on a fresh database: what-if latency on a
//! 20-step plan (loaded policy alone, and side by side with a candidate), and policy impact
//! throughput over stored decisions (decisions re-evaluated per second, end to end: read from
//! Postgres, evaluated under the candidate, compared).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use carapulse_core::model::TenantId;
use carapulse_core::policy::PolicyEngine;
use carapulse_core::store::DecisionRecord;
use carapulse_core::testing::{policies_dir, TestDatabase};

use crate::{millis, Row};

const FREEZE: &str = "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"prod_writes_frozen\" if {\n\tis_write\n\tprod_env\n}\n";

/// The grid of inputs the stored decisions cycle through.
fn grid() -> Vec<Value> {
    let mut inputs = Vec::new();
    for env in ["dev", "staging", "prod"] {
        for level in ["read", "low", "medium", "high"] {
            for kind in ["read", "write"] {
                for blast in ["namespace", "account"] {
                    inputs.push(json!({
                        "actor": {"id": "bench", "roles": ["operator"], "tenant_id": "review"},
                        "action": {"name": "plan.create", "type": kind},
                        "context": {"tenant_id": "review", "environment": env},
                        "resources": {"break_glass": false},
                        "risk": {"level": level, "blast_radius": blast, "targets": 1},
                    }));
                }
            }
        }
    }
    inputs
}

pub async fn run(
    db: &TestDatabase,
    samples: usize,
    decisions: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let (base, shutdown, server) = crate::spawn_gateway(db).await?;
    let http = reqwest::Client::new();
    let token = crate::lists::token_for("review", "operator")?;
    let result = async {
        // Two 20-step staging plans. "same shape": one scale per deployment, so every step asks
        // policy the same question (answered once per request). "distinct": no two steps ask the
        // same question (three writes, a read, and sixteen verify steps with 1..=16 expectations),
        // the worst case.
        let same: Vec<Value> = (0..20)
            .map(|i| json!({"tool": "kubectl", "action": "scale",
                            "input": {"resource": format!("deployment/web-{i}"), "replicas": 3, "namespace": "web"}}))
            .collect();
        let mut distinct: Vec<Value> = vec![
            json!({"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 3, "namespace": "web"}}),
            json!({"tool": "kubectl", "action": "rollout-restart", "input": {"resource": "deployment/web", "namespace": "web"}}),
            json!({"tool": "kubectl", "action": "rollout-undo", "input": {"resource": "deployment/web", "namespace": "web"}}),
            json!({"tool": "kubectl", "action": "get", "input": {"resource": "deployment/web", "namespace": "web"}}),
        ];
        distinct.extend((1..=16).map(|n| {
            let expect: Vec<Value> = (0..n)
                .map(|j| json!({"path": ".status", "op": "!=", "value": format!("failed-{j}")}))
                .collect();
            json!({"stage": "verify", "tool": "kubectl", "action": "rollout-status",
                   "input": {"resource": "deployment/web", "namespace": "web"}, "expect": expect})
        }));
        let mut plans = Vec::new();
        for (shape, steps) in [("same shape", same), ("distinct steps", distinct)] {
            let created: Value = http
                .post(format!("{base}/v1/plans"))
                .bearer_auth(&token)
                .json(&json!({"summary": "twenty steps", "context": {"environment": "staging", "namespace": "web"}, "steps": steps}))
                .send()
                .await?
                .json()
                .await?;
            let id = created["plan_id"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("plan not created: {created}"))?
                .to_owned();
            plans.push((shape, id));
        }
        // The request path alone, for scale: reading the same stored plan (auth, the read
        // decision, the plan's select, the answer), no what-if.
        if let Some((_, id)) = plans.first() {
            let lat = timed_requests(samples, |_| {
                http.get(format!("{base}/v1/plans/{id}")).bearer_auth(&token)
            })
            .await?;
            rows.push(crate::latency_row(
                format!("for scale: GET the same 20-step plan ({samples} requests)"),
                lat,
            ));
        }
        // "candidate": the same candidate each time, as a reviewer asks about one candidate
        // across plans (compiled once, then kept); "new candidate": a different text each
        // request, so each is compiled.
        for ((shape, id), (label, body)) in plans.iter().flat_map(|plan| {
            [
                (plan, ("loaded policy", json!({}))),
                (plan, ("loaded + candidate", json!({"candidate": {"files": {"freeze.rego": FREEZE}}}))),
                (plan, ("loaded + new candidate each request", Value::Null)),
            ]
        }) {
            let lat = timed_requests(samples, |i| {
                let body = if body.is_null() {
                    let text = format!("{FREEZE}\n# revision {i} {shape}\n");
                    json!({"candidate": {"files": {"freeze.rego": text}}})
                } else {
                    body.clone()
                };
                http.post(format!("{base}/v1/plans/{id}/whatif"))
                    .bearer_auth(&token)
                    .json(&body)
            })
            .await?;
            rows.push(crate::latency_row(
                format!("what-if, 20-step plan ({shape}), {label} ({samples} requests)"),
                lat,
            ));
        }

        if decisions == 0 {
            return Ok(());
        }
        // Stored decisions, as the loaded policy took them.
        let engine = PolicyEngine::load_dir(std::path::Path::new(&policies_dir()), "policy.assistant.v1")?;
        let grid = grid();
        let tenant = TenantId::parse("review")?;
        let mut batch = Vec::with_capacity(1_000);
        for i in 0..decisions {
            let input = grid[i % grid.len()].clone();
            let then = engine.evaluate_json(&input);
            batch.push(DecisionRecord {
                tenant_id: tenant.clone(),
                action: "plan.create".into(),
                environment: input["context"]["environment"].as_str().unwrap_or("").to_owned(),
                plan_id: None,
                decision: then.decision.as_str().to_owned(),
                reasons: then.reasons,
                input,
            });
            if batch.len() == 1_000 {
                db.store.insert_decisions(&batch).await?;
                batch.clear();
            }
        }
        db.store.insert_decisions(&batch).await?;
        sqlx::query("ANALYZE policy_decisions").execute(db.store.pool()).await?;
        let mut runs = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let report: Value = http
                .post(format!("{base}/v1/policy/impact"))
                .bearer_auth(&token)
                .json(&json!({"candidate": {"files": {"freeze.rego": FREEZE}}, "since": "1d", "limit": decisions}))
                .send()
                .await?
                .json()
                .await?;
            let took = t.elapsed();
            anyhow::ensure!(
                report["evaluated"].as_u64() == Some(decisions as u64),
                "impact evaluated {report}"
            );
            runs.push((took, report["changed"].as_u64().unwrap_or(0)));
        }
        runs.sort();
        let (median, changed) = runs[1];
        rows.push(Row {
            what: format!("policy impact, {decisions} stored decisions (3 runs, median)"),
            figure: format!(
                "{:.0} decisions/s ({} in {}; {changed} would change)",
                decisions as f64 / median.as_secs_f64(),
                decisions,
                millis(median)
            ),
        });
        Ok::<_, anyhow::Error>(())
    }
    .await;
    shutdown.cancel();
    let _ = server.await;
    result
}

/// Latencies of `samples` requests made by `request(i)`, each answered 200 and read whole,
/// after 10 untimed warm-up requests.
async fn timed_requests(
    samples: usize,
    mut request: impl FnMut(usize) -> reqwest::RequestBuilder,
) -> anyhow::Result<Vec<Duration>> {
    let mut lat: Vec<Duration> = Vec::with_capacity(samples);
    for i in 0..samples + 10 {
        let t = Instant::now();
        let r = request(i).send().await?;
        anyhow::ensure!(r.status().as_u16() == 200, "got {}", r.status());
        let _ = r.bytes().await?;
        if i >= 10 {
            lat.push(t.elapsed());
        }
    }
    Ok(lat)
}
