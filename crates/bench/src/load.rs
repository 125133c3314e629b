//! The load mix: gateway processes (see `stack`) under minutes of mixed, valid traffic on
//! loopback: plans created, listed, approved and executed, alert storms through the Alertmanager
//! webhook, audit and execution reads, while SSE subscribers stay connected. Requests go round
//! robin over the stack's gateways. Every `--load-sample-secs` it prints requests, errors, p99,
//! RSS, open descriptors and sockets; at the end it reports the error rate (must be 0: every
//! request is valid), the last window's throughput against the first, how the executions ended
//! (when the stack has workers) and RSS growth after the warm-up. The `load` suite runs it on a
//! fresh database against one gateway; the `year` suite on a year of data against two.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use carapulse_core::auth::{mint_dev_token, DevTokenRequest};
use carapulse_core::testing::{TestDatabase, TEST_JWT_SECRET};

use crate::stack::{process_stats, Stack, StackOptions, HOOK_TOKEN, TENANT};

use crate::{millis, percentile, Row};

/// Settings of a load run.
pub struct LoadSettings {
    pub duration: Duration,
    pub warmup: Duration,
    pub workers: usize,
    pub subscribers: usize,
    pub sample: Duration,
}

fn token(sub: &str, roles: &[&str]) -> anyhow::Result<String> {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    Ok(mint_dev_token(&DevTokenRequest {
        secret: TEST_JWT_SECRET,
        issuer: "carapulse-dev",
        audience: None,
        subject: sub,
        tenant: TENANT,
        roles: &roles,
        email: None,
        ttl_secs: 24 * 3600,
        tenant_claim: "tenant_id",
        roles_claim: "groups",
    })?)
}

fn plan_body(i: u64) -> Value {
    json!({
        "summary": format!("Scale web to {} replicas", 2 + i % 5),
        "context": {"environment": "staging", "namespace": "web"},
        "steps": [
            {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 2 + i % 5, "namespace": "web"},
             "rollback": {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 2, "namespace": "web"}}},
            {"stage": "verify", "tool": "kubectl", "action": "rollout-status", "input": {"resource": "deployment/web", "namespace": "web"}}
        ]
    })
}

fn alert_storm(i: u64) -> Value {
    let alerts: Vec<Value> = (0..50)
        .map(|n| {
            json!({"status": if (i + n).is_multiple_of(7) { "resolved" } else { "firing" },
                   "labels": {"alertname": format!("Load{}", n % 10), "instance": format!("i-{}", (i * 50 + n) % 5000), "severity": "warning"},
                   "annotations": {"summary": "load"}, "startsAt": "2026-11-30T00:00:00Z",
                   "fingerprint": format!("{:016x}", (i * 50 + n) % 5000)})
        })
        .collect();
    json!({"version": "4", "status": "firing", "receiver": "carapulse", "alerts": alerts})
}

/// Shared counters of a run.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    events: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    first_errors: Mutex<Vec<String>>,
}

/// A load run on a fresh database against one gateway (executions stay pending: no workers).
pub async fn run(settings: &LoadSettings, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let db = TestDatabase::create().await;
    let result = async {
        let opts = StackOptions {
            gateways: 1,
            workers: 0,
            temporal: String::new(),
            retention: true,
        };
        let stack = Stack::start(&db, &opts).await?;
        let result = mix(&db, &stack, settings, "load", rows).await;
        stack.stop().await;
        result
    }
    .await;
    db.drop_now().await;
    result
}

/// Minutes of mixed traffic spread over every gateway of `stack`; `label` names the run's rows.
pub async fn mix(
    db: &TestDatabase,
    stack: &Stack,
    s: &LoadSettings,
    label: &str,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let bases = Arc::new(stack.gateways.clone());
    let pids = stack.gateway_pids();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(s.workers)
        .timeout(Duration::from_secs(30))
        .build()?;
    let alice = token("alice", &["operator"])?;
    let bob = token("bob", &["approver"])?;
    let counters = Arc::new(Counters::default());
    let deadline = Instant::now() + s.duration;

    // Subscribers: connected for the whole run, counting events.
    let mut subs = Vec::new();
    for n in 0..s.subscribers {
        let base = bases[n % bases.len()].clone();
        let (tok, counters) = (alice.clone(), counters.clone());
        subs.push(tokio::spawn(async move {
            // Its own client: the shared one's 30 s request timeout would cut the stream.
            let Ok(resp) = reqwest::Client::new()
                .get(format!(
                    "{base}/v1/events?kinds=plan.updated,execution.updated"
                ))
                .bearer_auth(&tok)
                .send()
                .await
            else {
                return;
            };
            let mut body = resp.bytes_stream();
            while Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(1), body.next()).await {
                    Ok(Some(Ok(chunk))) => {
                        let n = chunk.windows(6).filter(|w| w == b"event:").count() as u64;
                        counters.events.fetch_add(n, Ordering::Relaxed);
                    }
                    Ok(_) => return,
                    Err(_) => {}
                }
            }
        }));
    }

    // Workers: a fixed mix of valid requests.
    let to_approve: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let to_execute: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let seq = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..s.workers {
        let (http, bases, alice, bob) = (http.clone(), bases.clone(), alice.clone(), bob.clone());
        let (counters, seq) = (counters.clone(), seq.clone());
        let (to_approve, to_execute) = (to_approve.clone(), to_execute.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let i = seq.fetch_add(1, Ordering::Relaxed);
                // Round robin over the gateways (i / 10: each gateway sees the whole mix).
                let base = &bases[(i / 10) as usize % bases.len()];
                let started = Instant::now();
                let (what, result) = match i % 10 {
                    0..=3 => {
                        let r = http
                            .post(format!("{base}/v1/plans"))
                            .bearer_auth(&alice)
                            .json(&plan_body(i))
                            .send()
                            .await;
                        if let Ok(resp) = r {
                            let status = resp.status();
                            let body: Value = resp.json().await.unwrap_or_default();
                            if let Some(id) = body["plan_id"].as_str() {
                                to_approve.lock().await.push_back(id.to_owned());
                            }
                            ("create plan", Ok(status))
                        } else {
                            ("create plan", r.map(|r| r.status()))
                        }
                    }
                    4 => {
                        let next = to_approve.lock().await.pop_front();
                        match next {
                            Some(id) => {
                                let r = http
                                    .post(format!("{base}/v1/approvals"))
                                    .bearer_auth(&bob)
                                    .json(&json!({"plan_id": id, "status": "approved"}))
                                    .send()
                                    .await;
                                if r.as_ref().is_ok_and(|r| r.status().is_success()) {
                                    to_execute.lock().await.push_back(id);
                                }
                                ("approve", r.map(|r| r.status()))
                            }
                            None => (
                                "list plans",
                                http.get(format!("{base}/v1/plans?limit=20"))
                                    .bearer_auth(&alice)
                                    .send()
                                    .await
                                    .map(|r| r.status()),
                            ),
                        }
                    }
                    5 => {
                        let next = to_execute.lock().await.pop_front();
                        match next {
                            Some(id) => (
                                "execute",
                                http.post(format!("{base}/v1/plans/{id}/execute"))
                                    .bearer_auth(&alice)
                                    .json(&json!({}))
                                    .send()
                                    .await
                                    .map(|r| r.status()),
                            ),
                            None => (
                                "list executions",
                                http.get(format!("{base}/v1/executions?limit=20"))
                                    .bearer_auth(&alice)
                                    .send()
                                    .await
                                    .map(|r| r.status()),
                            ),
                        }
                    }
                    6 => (
                        "alert storm",
                        http.post(format!("{base}/v1/hooks/alertmanager"))
                            .bearer_auth(HOOK_TOKEN)
                            .json(&alert_storm(i))
                            .send()
                            .await
                            .map(|r| r.status()),
                    ),
                    7 => (
                        "list plans",
                        http.get(format!("{base}/v1/plans?limit=50&approval_state=pending"))
                            .bearer_auth(&alice)
                            .send()
                            .await
                            .map(|r| r.status()),
                    ),
                    8 => (
                        "audit",
                        http.get(format!("{base}/v1/audit/events?limit=50"))
                            .bearer_auth(&alice)
                            .send()
                            .await
                            .map(|r| r.status()),
                    ),
                    _ => (
                        "executions",
                        http.get(format!("{base}/v1/executions?limit=50"))
                            .bearer_auth(&alice)
                            .send()
                            .await
                            .map(|r| r.status()),
                    ),
                };
                let elapsed = started.elapsed();
                counters.requests.fetch_add(1, Ordering::Relaxed);
                let ok = result.as_ref().is_ok_and(|s| s.is_success());
                if ok {
                    counters.latencies.lock().await.push(elapsed);
                } else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    let mut first = counters.first_errors.lock().await;
                    if first.len() < 5 {
                        first.push(format!("{what}: {result:?}"));
                    }
                }
            }
        }));
    }

    // Sampler. RSS is the largest gateway's; descriptors and sockets are summed.
    println!(
        "{:>6}  {:>8}  {:>7}  {:>6}  {:>9}  {:>8}  {:>4}  {:>7}",
        "t (s)", "requests", "req/s", "errors", "p99", "RSS MiB", "fds", "sockets"
    );
    let started = Instant::now();
    let (mut last_requests, mut last_errors) = (0, 0);
    let mut rss_after_warmup: Option<f64> = None;
    let mut rss_max_after_warmup: f64 = 0.0;
    let mut max_sockets = 0usize;
    let mut all_latencies: Vec<Duration> = Vec::new();
    let mut window_rates: Vec<f64> = Vec::new();
    while Instant::now() < deadline {
        let window_started = Instant::now();
        tokio::time::sleep(
            s.sample
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        let requests = counters.requests.load(Ordering::Relaxed);
        let errors = counters.errors.load(Ordering::Relaxed);
        let mut window = std::mem::take(&mut *counters.latencies.lock().await);
        window.sort();
        let stats: Vec<_> = pids.iter().map(|&pid| process_stats(pid)).collect();
        let rss = stats.iter().map(|p| p.rss_mib).fold(0.0, f64::max);
        let fds: usize = stats.iter().map(|p| p.fds).sum();
        let sockets: usize = stats.iter().map(|p| p.sockets).sum();
        max_sockets = max_sockets.max(sockets);
        let t = started.elapsed();
        if t >= s.warmup {
            if rss_after_warmup.is_none() {
                rss_after_warmup = Some(rss);
            }
            rss_max_after_warmup = rss_max_after_warmup.max(rss);
        }
        let rate = (requests - last_requests) as f64 / window_started.elapsed().as_secs_f64();
        // A last window cut short by the deadline is too noisy to compare.
        if window_started.elapsed() >= s.sample / 2 {
            window_rates.push(rate);
        }
        println!(
            "{:>6.0}  {:>8}  {:>7.0}  {:>6}  {:>9}  {:>8.1}  {:>4}  {:>7}",
            t.as_secs_f64(),
            requests,
            rate,
            errors - last_errors,
            millis(percentile(&window, 0.99)),
            rss,
            fds,
            sockets
        );
        last_requests = requests;
        last_errors = errors;
        all_latencies.extend(window);
    }
    for w in workers {
        let _ = w.await;
    }
    for sub in subs {
        let _ = sub.await;
    }

    all_latencies.sort();
    let requests = counters.requests.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let first_errors = counters.first_errors.lock().await.clone();
    let growth = match rss_after_warmup {
        Some(base) if base > 0.0 => (rss_max_after_warmup - base) / base * 100.0,
        _ => 0.0,
    };
    let flatness = match (window_rates.first(), window_rates.last()) {
        (Some(first), Some(last)) if *first > 0.0 => format!(
            "; first window {first:.0} req/s, last {last:.0} req/s ({:.0} % of the first; target >= 90 %)",
            last / first * 100.0
        ),
        _ => String::new(),
    };
    let executions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM executions WHERE tenant_id = $1 \
         AND created_by <> 'bench-seed' GROUP BY status ORDER BY status",
    )
    .bind(TENANT)
    .fetch_all(db.store.pool())
    .await?;
    let executions = executions
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect::<Vec<_>>()
        .join(", ");
    rows.push(Row {
        what: format!(
            "{label}: {} s mixed traffic, {} gateway(s), {} workers, {} SSE subscribers",
            s.duration.as_secs(),
            bases.len(),
            s.workers,
            s.subscribers
        ),
        figure: format!(
            "{requests} requests ({:.0}/s), errors {errors} ({:.4}%), p50 {}, p99 {}{flatness}; events delivered {}; \
             executions started {}; RSS (largest gateway) after {} s warm-up {:.1} MiB, max after {:.1} MiB ({growth:+.1}%); max sockets {max_sockets}{}",
            requests as f64 / s.duration.as_secs_f64(),
            if requests > 0 { errors as f64 * 100.0 / requests as f64 } else { 0.0 },
            millis(percentile(&all_latencies, 0.5)),
            millis(percentile(&all_latencies, 0.99)),
            counters.events.load(Ordering::Relaxed),
            if executions.is_empty() { "none".to_owned() } else { executions },
            s.warmup.as_secs(),
            rss_after_warmup.unwrap_or(0.0),
            rss_max_after_warmup,
            if first_errors.is_empty() { String::new() } else { format!("; first errors: {first_errors:?}") },
        ),
    });
    anyhow::ensure!(
        errors == 0,
        "{errors} valid requests failed: {first_errors:?}"
    );
    Ok(())
}
