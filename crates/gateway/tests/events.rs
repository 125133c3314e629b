//! Events across processes: two gateways on one database; a change made through one reaches
//! SSE and WebSocket subscribers of the other; tenants never see each other's events; resume
//! with Last-Event-ID; filters; heartbeats.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
struct Frame {
    id: Option<i64>,
    event: String,
    data: Value,
}

/// A subscriber: frames as they arrive, and the ones already looked at.
struct Sub {
    rx: mpsc::UnboundedReceiver<Frame>,
    seen: Vec<Frame>,
}

/// Opens an SSE stream and forwards its frames (comments become `:` frames).
async fn sse(url: String, headers: Vec<(&'static str, String)>) -> Sub {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = reqwest::Client::new();
    let mut req = client.get(&url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("sse request");
    assert_eq!(resp.status(), 200, "{url}");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut parser = carapulse_core::sse::SseParser::new();
        while let Some(Ok(chunk)) = body.next().await {
            for f in parser.push(&chunk) {
                let frame = Frame {
                    id: f.id.as_deref().and_then(|i| i.parse().ok()),
                    data: serde_json::from_str(&f.data).unwrap_or(Value::String(f.data.clone())),
                    event: f.event,
                };
                if tx.send(frame).is_err() {
                    return;
                }
            }
        }
    });
    Sub {
        rx,
        seen: Vec::new(),
    }
}

/// Waits for a frame of `kind` matching `pred` (looking at earlier frames too).
async fn expect(sub: &mut Sub, kind: &str, pred: impl Fn(&Value) -> bool) -> Frame {
    if let Some(f) = sub.seen.iter().find(|f| f.event == kind && pred(&f.data)) {
        return f.clone();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, sub.rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {kind} event within 10s; saw {:?}",
                    sub.seen.iter().map(|f| &f.event).collect::<Vec<_>>()
                )
            })
            .expect("stream ended");
        sub.seen.push(frame.clone());
        if frame.event == kind && pred(&frame.data) {
            return frame;
        }
    }
}

async fn second_gateway(first: &TestApp) -> TestApp {
    let app = gateway::Application::build(first.db.config())
        .await
        .expect("second gateway");
    let url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        url,
        ui_url: None,
        db: first.db.clone(),
        http: reqwest::Client::new(),
        shutdown,
        handle,
    }
}

#[tokio::test]
async fn events_cross_gateways_and_tenants_stay_apart() {
    let a = spawn_app().await;
    let b = second_gateway(&a).await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let eve = token("eve", "other", &["operator"]);

    let mut acme_sse = sse(
        format!("{}/v1/events", b.url),
        vec![("authorization", format!("Bearer {bob}"))],
    )
    .await;
    // Browsers' EventSource cannot send headers: the token rides in the query.
    let mut other_sse = sse(format!("{}/v1/events?access_token={eve}", b.url), vec![]).await;
    let mut filtered = sse(
        format!("{}/v1/events?kinds=execution.updated", b.url),
        vec![("authorization", format!("Bearer {bob}"))],
    )
    .await;
    let ws_url = format!(
        "{}/v1/ws?access_token={bob}&kinds=plan.updated,approval.updated",
        b.url.replace("http", "ws")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("websocket");

    // Changes through gateway A.
    let (status, created) = a.create_scale_plan(&alice).await;
    assert_eq!(status, 201, "{created}");
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (status, body) = a
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, exec) = a
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert!(
        status == 200 || status == 201 || status == 202,
        "{status} {exec}"
    );
    let exec_id = exec["execution_id"].as_str().unwrap().to_owned();

    let plan_event = expect(&mut acme_sse, "plan.updated", |d| {
        d["data"]["plan_id"] == plan_id.as_str()
    })
    .await;
    assert!(plan_event.id.is_some(), "SSE frames carry ids");
    assert_eq!(plan_event.data["event"], "plan.updated");
    assert!(plan_event.data["ts"].is_string());
    expect(&mut acme_sse, "approval.updated", |d| {
        d["data"]["status"] == "approved"
    })
    .await;
    expect(&mut acme_sse, "execution.updated", |d| {
        d["data"]["execution_id"] == exec_id.as_str()
    })
    .await;
    expect(&mut acme_sse, "audit.created", |d| {
        d["data"]["action"] == "plan.create"
    })
    .await;
    let only = expect(&mut filtered, "execution.updated", |d| {
        d["data"]["execution_id"] == exec_id.as_str()
    })
    .await;
    assert_eq!(only.data["data"]["status"], "pending");

    // WebSocket on gateway B gets the same changes (filtered to two kinds).
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("ws event")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v["id"].is_i64());
            kinds.push(v["event"].as_str().unwrap().to_owned());
        }
    }
    assert!(kinds.contains(&"plan.updated".to_string()), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .all(|k| k == "plan.updated" || k == "approval.updated"),
        "{kinds:?}"
    );
    ws.send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await
        .ok();

    // Tenant "other" saw none of it: its first event is its own plan.
    let (status, theirs) = a.create_scale_plan(&eve).await;
    assert_eq!(status, 201, "{theirs}");
    let first = expect(&mut other_sse, "plan.updated", |_| true).await;
    assert_eq!(first.data["data"]["plan_id"], theirs["plan_id"]);
    while let Ok(frame) = other_sse.rx.try_recv() {
        other_sse.seen.push(frame);
    }
    for frame in &other_sse.seen {
        assert_ne!(
            frame.data["data"]["plan_id"],
            plan_id.as_str(),
            "cross-tenant leak"
        );
        assert_ne!(
            frame.data["data"]["execution_id"],
            exec_id.as_str(),
            "cross-tenant leak"
        );
    }

    // Resume: everything after the plan event is replayed to a new subscriber.
    let mut resumed = sse(
        format!("{}/v1/events", a.url),
        vec![
            ("authorization", format!("Bearer {bob}")),
            ("last-event-id", plan_event.id.unwrap().to_string()),
        ],
    )
    .await;
    expect(&mut resumed, "approval.updated", |d| {
        d["data"]["plan_id"] == plan_id.as_str()
    })
    .await;
    expect(&mut resumed, "execution.updated", |d| {
        d["data"]["execution_id"] == exec_id.as_str()
    })
    .await;

    // Bad filters and missing auth.
    let resp = reqwest::get(format!(
        "{}/v1/events?kinds=plan.deleted&access_token={bob}",
        a.url
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = reqwest::get(format!("{}/v1/events", a.url)).await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = reqwest::get(format!("{}/v1/plans?access_token={bob}", a.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "query tokens only on streaming routes");

    let metrics = a
        .http
        .get(format!("{}/metrics", b.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("carapulse_event_subscribers{transport=\"sse\"} 3"),
        "{metrics}"
    );
    b.stop().await;
    a.stop().await;
}

/// Commits out of id order never cost a subscriber an event: writers take event ids and commit
/// after random delays (some roll back, one holds a transaction open), while SSE subscribers on
/// two gateways keep dropping their connection and resuming with `Last-Event-ID`. Every
/// subscriber sees every committed event exactly once, in increasing `id`, and no rolled-back one.
#[tokio::test]
async fn resumed_subscribers_see_every_commit_once_in_order() {
    const WRITERS: usize = 6;
    const PER_WRITER: usize = 15;
    let rolled_back = |n: usize| n % 7 == 3;
    let a = spawn_app().await;
    let b = second_gateway(&a).await;
    let viewer = token("vic", "acme", &["viewer"]);
    let mut expected: std::collections::BTreeSet<(u64, u64)> = (0..WRITERS)
        .flat_map(|w| (0..PER_WRITER).map(move |n| (w, n)))
        .filter(|(_, n)| !rolled_back(*n))
        .map(|(w, n)| (w as u64, n as u64))
        .collect();
    // The long transaction's event.
    expected.insert((99, 0));

    // Subscribers first, from the log head; each reconnects every few events.
    let mut subscribers = Vec::new();
    for (i, url) in [&a.url, &a.url, &b.url].into_iter().enumerate() {
        let url = format!("{url}/v1/events?kinds=plan.updated");
        let auth = format!("Bearer {viewer}");
        let want = expected.len();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        subscribers.push((
            ready_rx,
            tokio::spawn(async move {
                let mut got: Vec<(i64, u64, u64)> = Vec::new();
                let mut resume: Option<i64> = None;
                let mut ready = Some(ready_tx);
                let mut connections = 0;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                while got.len() < want && tokio::time::Instant::now() < deadline {
                    let mut headers = vec![("authorization", auth.clone())];
                    if let Some(id) = resume {
                        headers.push(("last-event-id", id.to_string()));
                    }
                    let mut sub = sse(url.clone(), headers).await;
                    connections += 1;
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    // Drop the connection after a few events (a different count per subscriber).
                    let take = 3 + (connections * (i + 2)) % 7;
                    let mut taken = 0;
                    while taken < take && got.len() < want {
                        let frame = match tokio::time::timeout_at(deadline, sub.rx.recv()).await {
                            Ok(Some(frame)) => frame,
                            _ => break,
                        };
                        if frame.event != "plan.updated" {
                            continue;
                        }
                        let id = frame.id.expect("every event has an id");
                        let w = frame.data["data"]["writer"].as_u64().expect("writer");
                        let n = frame.data["data"]["n"].as_u64().expect("n");
                        got.push((id, w, n));
                        resume = Some(id);
                        taken += 1;
                    }
                }
                (got, connections)
            }),
        ));
    }
    for (ready, _) in &mut subscribers {
        ready.await.expect("subscriber connected");
    }

    // Writers: each event's id is taken at INSERT, its commit comes a random while later.
    let pool = a.db.store.pool().clone();
    let long = {
        let pool = pool.clone();
        tokio::spawn(async move {
            // Holds an event uncommitted while everyone else commits: later events must wait
            // for it instead of overtaking it.
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(
                "SELECT carapulse_emit('plan.updated', 'acme', NULL, '{\"writer\": 99, \"n\": 0}')",
            )
            .execute(&mut *tx)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(700)).await;
            tx.commit().await.unwrap();
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = pool.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..PER_WRITER {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("SELECT carapulse_emit('plan.updated', 'acme', NULL, jsonb_build_object('writer', $1::int, 'n', $2::int))")
                    .bind(w as i32)
                    .bind(n as i32)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let jitter = uuid::Uuid::new_v4().as_bytes()[0] as u64 % 25;
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                if rolled_back(n) {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    long.await.unwrap();

    for (i, (_, handle)) in subscribers.into_iter().enumerate() {
        let (got, connections) = handle.await.unwrap();
        assert!(
            connections > 5,
            "subscriber {i} reconnected only {connections} times"
        );
        let ids: Vec<i64> = got.iter().map(|(id, _, _)| *id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "subscriber {i}: ids not strictly increasing: {ids:?}"
        );
        let seen: Vec<(u64, u64)> = got.iter().map(|(_, w, n)| (*w, *n)).collect();
        let unique: std::collections::BTreeSet<(u64, u64)> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "subscriber {i} got a duplicate");
        let missing: Vec<_> = expected.difference(&unique).collect();
        let extra: Vec<_> = unique.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "subscriber {i}: missing {missing:?}, unexpected {extra:?}"
        );
    }
    b.stop().await;
    a.stop().await;
}
