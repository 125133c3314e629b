//! Incident replay throughput (issue 19), through a real gateway on a fresh database: 500
//! Alertmanager alerts are delivered to the webhook and planned by the event loop (each with its
//! planning record), then the window is replayed over HTTP — with the rule planner, with the
//! recorded answers, and with the recorded answers under a candidate policy — and incidents per
//! second are reported end to end (records read, gates, planner, risk, blast radius, policy,
//! results stored).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use carapulse_core::testing::TestDatabase;

use crate::Row;

const BEARER: &str = "bench-replay-bearer-0123456789abcdef";
const FREEZE: &str = "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"prod_writes_frozen\" if {\n\tis_write\n\tprod_env\n}\n";

pub async fn run(
    db: &TestDatabase,
    alerts: usize,
    rounds: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let (base, shutdown, server) = crate::spawn_gateway_with(db, |c| {
        c.webhooks.insert(
            "alertmanager".into(),
            carapulse_core::config::WebhookSource {
                tenant_id: "replay".into(),
                bearer_token: Some(BEARER.into()),
                environment: "prod".into(),
                namespace: "shop".into(),
                ..Default::default()
            },
        );
        c.gateway.enable_event_loop = true;
        c.gateway.event_gate_service_per_hour = 0;
    })
    .await?;
    let http = reqwest::Client::new();
    let token = crate::lists::token_for("replay", "operator")?;
    let result = async {
        let since = chrono::Utc::now() - chrono::Duration::minutes(1);
        for chunk in (0..alerts).collect::<Vec<_>>().chunks(100) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|i| {
                    let alertname = ["HighLatency", "PodCrashLooping", "ErrorBudgetBurn"][i % 3];
                    let namespace = ["shop", "payments", "search"][i % 3];
                    json!({"status": "firing",
                           "labels": {"alertname": alertname,
                                      "severity": "page", "namespace": namespace,
                                      "deployment": format!("svc-{}", i % 40)},
                           "annotations": {"summary": "bench"}, "startsAt": "2026-12-01T10:00:00Z",
                           "fingerprint": format!("bench-{i:05}")})
                })
                .collect();
            let r = http
                .post(format!("{base}/v1/hooks/alertmanager"))
                .bearer_auth(BEARER)
                .json(&json!({"version": "4", "status": "firing", "receiver": "carapulse", "alerts": batch}))
                .send()
                .await?;
            anyhow::ensure!(r.status().as_u16() == 202, "webhook got {}", r.status());
        }
        let planned_by = Instant::now() + Duration::from_secs(300);
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM planning_records WHERE alert_id IS NOT NULL",
            )
            .fetch_one(db.store.pool())
            .await?;
            if n >= alerts as i64 {
                break;
            }
            anyhow::ensure!(Instant::now() < planned_by, "only {n} of {alerts} alerts planned");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let until = chrono::Utc::now() + chrono::Duration::minutes(1);
        let window = json!({"since": since.to_rfc3339(), "until": until.to_rfc3339()});
        for (label, extra) in [
            ("rule planner", json!({"planner": "rules"})),
            ("recorded answers", json!({"planner": "recorded"})),
            ("recorded answers, candidate policy", json!({"planner": "recorded", "policy": "candidate", "candidate": {"files": {"freeze.rego": FREEZE}}})),
        ] {
            let mut rates = Vec::with_capacity(rounds);
            let mut changed = Value::Null;
            for _ in 0..rounds {
                let mut body = extra.clone();
                body["source"] = window.clone();
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/v1/replays"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().as_u16() == 200, "replay got {}", r.status());
                let run: Value = r.json().await?;
                let secs = t.elapsed().as_secs_f64();
                anyhow::ensure!(run["total"] == alerts, "replayed {} of {alerts}", run["total"]);
                changed = run["summary"]["changed"].clone();
                rates.push(alerts as f64 / secs);
            }
            rates.sort_by(f64::total_cmp);
            rows.push(Row {
                what: format!("incident replay of {alerts} alert events, {label} ({rounds} runs, end to end over HTTP)"),
                figure: format!(
                    "median {:.0} incidents/s (slowest run {:.0}/s); {changed} changed",
                    rates[rates.len() / 2],
                    rates[0]
                ),
            });
        }
        Ok(())
    }
    .await;
    shutdown.cancel();
    let _ = server.await;
    result
}
