//! The events suite: alert ingestion through `/v1/hooks/alertmanager` (100 alerts per request,
//! half of each request repeating the previous one, so deduplication is exercised) and the
//! fan-out latency of one NOTIFY to 1,000 concurrent SSE subscribers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use carapulse_core::auth::{mint_dev_token, DevTokenRequest};
use carapulse_core::config::WebhookSource;
use carapulse_core::testing::{TestDatabase, TEST_JWT_SECRET};

use crate::{millis, percentile, Row};

const BEARER: &str = "bench-alertmanager-bearer-0123456789";

fn alert(i: usize) -> Value {
    json!({"status": "firing", "labels": {"alertname": format!("Bench{}", i % 50), "instance": format!("i-{i}"), "severity": "warning"},
           "annotations": {"summary": "bench"}, "startsAt": "2026-11-29T10:00:00Z", "fingerprint": format!("{i:016x}")})
}

async fn gateway(
    db: &TestDatabase,
) -> anyhow::Result<(
    String,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    crate::spawn_gateway_with(db, |config| {
        config.gateway.request_timeout_secs = 600;
        // The fan-out figure opens every subscription as one actor; the per-actor cap (a
        // defence against one person holding every slot) would stop it at 32.
        config.gateway.max_streams_per_actor = 1_000_000;
        // All subscribers come from 127.0.0.1: the per-peer connection cap would refuse the
        // 257th.
        config.gateway.max_connections_per_peer = 1_000_000;
        config.webhooks.insert(
            "alertmanager".into(),
            WebhookSource {
                tenant_id: "bench".into(),
                bearer_token: Some(BEARER.into()),
                environment: "staging".into(),
                ..Default::default()
            },
        );
    })
    .await
}

/// Alerts per second through the webhook, with deduplication.
pub async fn bench_ingest(
    db: &TestDatabase,
    requests: usize,
    concurrency: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let (url, stop, server) = gateway(db).await?;
    let http = reqwest::Client::new();
    let bodies: Vec<String> = (0..requests)
        .map(|r| {
            // Alerts 50r..50r+100: the first half was in the previous request.
            let alerts: Vec<Value> = (r * 50..r * 50 + 100).map(alert).collect();
            json!({"version": "4", "status": "firing", "receiver": "carapulse", "groupLabels": {}, "commonLabels": {},
                   "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts})
            .to_string()
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, url, bodies, next) = (http.clone(), url.clone(), bodies.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let (mut new, mut dup, mut errors) = (0u64, 0u64, 0u64);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let resp = http
                    .post(format!("{url}/v1/hooks/alertmanager"))
                    .bearer_auth(BEARER)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                samples.push(t.elapsed());
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let v: Value = r.json().await.unwrap_or_default();
                        new += v["new"].as_u64().unwrap_or(0);
                        dup += v["duplicates"].as_u64().unwrap_or(0);
                    }
                    _ => errors += 1,
                }
            }
            (samples, new, dup, errors)
        }));
    }
    let (mut samples, mut new, mut dup, mut errors) = (Vec::new(), 0, 0, 0);
    for w in workers {
        let (s, n, d, e) = w.await?;
        samples.extend(s);
        new += n;
        dup += d;
        errors += e;
    }
    let elapsed = started.elapsed();
    samples.sort();
    let alerts = requests * 100;
    rows.push(Row {
        what: format!("alert ingestion ({requests} webhooks x 100 alerts, c={concurrency})"),
        figure: format!(
            "{:.0} alerts/s, {} stored + {} deduplicated, {} errors; per request p50 {}, p99 {}",
            alerts as f64 / elapsed.as_secs_f64(),
            new,
            dup,
            errors,
            millis(percentile(&samples, 0.5)),
            millis(percentile(&samples, 0.99))
        ),
    });
    stop.cancel();
    let _ = server.await;
    Ok(())
}

fn raise_fd_limit() {
    // SAFETY: plain libc calls on a stack value.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Latency from NOTIFY (commit) to delivery at each of `subscribers` SSE streams.
pub async fn bench_fanout(
    db: &TestDatabase,
    subscribers: usize,
    events: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    raise_fd_limit();
    let (url, stop, server) = gateway(db).await?;
    let roles = vec!["viewer".to_owned()];
    let token = mint_dev_token(&DevTokenRequest {
        secret: TEST_JWT_SECRET,
        issuer: "carapulse-dev",
        audience: None,
        subject: "bench-viewer",
        tenant: "bench",
        roles: &roles,
        email: None,
        ttl_secs: 3600,
        tenant_claim: "tenant_id",
        roles_claim: "groups",
    })?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, i64, Instant)>();
    let mut readers = Vec::new();
    for s in 0..subscribers {
        // One connection each, as separate browsers would have.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?;
        let resp = http
            .get(format!("{url}/v1/events?kinds=plan.updated"))
            .bearer_auth(&token)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "subscribe {s}: {}", resp.status());
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut parser = carapulse_core::sse::SseParser::new();
            while let Some(Ok(chunk)) = body.next().await {
                let at = Instant::now();
                for frame in parser.push(&chunk) {
                    if let Ok(v) = serde_json::from_str::<Value>(&frame.data) {
                        if let Some(n) = v["data"]["n"].as_i64() {
                            let _ = tx.send((s, n, at));
                        }
                    }
                }
            }
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = db.store.pool().clone();
    let mut sent_at = Vec::with_capacity(events);
    let mut samples = Vec::with_capacity(subscribers * events);
    let mut received = 0usize;
    for n in 0..events {
        let t = Instant::now();
        sqlx::query("SELECT carapulse_emit('plan.updated', 'bench', NULL, jsonb_build_object('n', $1::bigint))")
            .bind(n as i64)
            .execute(&pool)
            .await?;
        sent_at.push(t);
        // Collect this event's deliveries before the next one (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = 0;
        while got < subscribers && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some((_, en, at))) if en as usize == n => {
                    samples.push(at.duration_since(sent_at[n]));
                    got += 1;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        received += got;
    }
    samples.sort();
    rows.push(Row {
        what: format!("event fan-out ({subscribers} SSE subscribers, {events} events)"),
        figure: format!(
            "NOTIFY -> delivery p50 {}, p99 {}, max {}; {}/{} deliveries",
            millis(percentile(&samples, 0.5)),
            millis(percentile(&samples, 0.99)),
            millis(samples.last().copied().unwrap_or_default()),
            received,
            subscribers * events
        ),
    });
    stop.cancel();
    for r in readers {
        r.abort();
    }
    let _ = server.await;
    Ok(())
}
