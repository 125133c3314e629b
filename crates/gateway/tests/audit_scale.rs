//! Audit verification and export of long chains (issue 15): the walk streams progress as NDJSON
//! past the request timeout, a plain JSON request that would outlast it gets a clear 503 instead
//! of a bare gateway timeout, tampering is still found on the streamed path, and the export is
//! the whole chain as it stood when it started, with its head in a header.

mod common;

use std::time::{Duration, Instant};

use common::{spawn_app_with, token};
use serde_json::Value;

use carapulse_core::model::TenantId;
use carapulse_core::testing::seed_audit_chain;

const EVENTS: i64 = 5_000;

/// The lines of an NDJSON body.
async fn ndjson(resp: reqwest::Response) -> Vec<Value> {
    let text = resp.text().await.expect("body");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

async fn verify_streamed(app: &common::TestApp, token: &str) -> Vec<Value> {
    let resp = app
        .http
        .get(format!("{}/v1/audit/verify", app.url))
        .bearer_auth(token)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    ndjson(resp).await
}

#[tokio::test]
async fn long_chains_verify_as_a_stream_and_export_whole() {
    // The shortest request timeout there is (2 s: the JSON walk gets 1 s of it).
    let app = spawn_app_with(|c| c.gateway.request_timeout_secs = 2).await;
    let tenant = TenantId::parse("acme").unwrap();
    seed_audit_chain(&app.db.store, &tenant, EVENTS, chrono::Duration::days(365))
        .await
        .unwrap();
    let alice = token("alice", "acme", &["viewer"]);

    // Streamed: progress lines (increasing), then the report, last.
    let lines = verify_streamed(&app, &alice).await;
    let (last, progress) = lines.split_last().expect("lines");
    assert_eq!(last["report"]["ok"], true, "{last}");
    assert_eq!(last["report"]["events_checked"], EVENTS);
    assert!(!progress.is_empty(), "no progress line: {lines:?}");
    let checked: Vec<i64> = progress
        .iter()
        .map(|p| p["progress"]["events_checked"].as_i64().expect("progress"))
        .collect();
    assert!(checked.windows(2).all(|w| w[0] < w[1]), "{checked:?}");
    assert!(progress.iter().all(|p| p["progress"]["head_seq"] == EVENTS));

    // A walk that cannot finish within the request timeout: the table is locked for 3 s.
    let mut locker = app.db.store.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        locker.rollback().await.unwrap();
    });
    let (json_walk, streamed_walk) = tokio::join!(app.get("/v1/audit/verify", &alice), async {
        let started = Instant::now();
        (verify_streamed(&app, &alice).await, started.elapsed())
    });
    release.await.unwrap();
    // JSON: a clear 503 naming the way out, not the timeout layer's bare 504.
    assert_eq!(json_walk.0, 503, "{}", json_walk.1);
    assert_eq!(json_walk.1["error"]["code"], "verify_too_long");
    assert!(json_walk.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("application/x-ndjson"));
    // NDJSON: outlives the request timeout and still reports.
    let (lines, took) = streamed_walk;
    assert!(took > Duration::from_secs(2), "{took:?}");
    assert_eq!(lines.last().unwrap()["report"]["ok"], true, "{lines:?}");

    // Tampering is found on the streamed path too (the hashes are checked on several threads:
    // the break must still be the exact event).
    let mut conn = app.db.store.pool().acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_events SET reason = 'forged' WHERE tenant_id = 'acme' AND seq = 4321",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    let lines = verify_streamed(&app, &alice).await;
    let report = &lines.last().unwrap()["report"];
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_break"]["seq"], 4321);
    assert_eq!(report["events_checked"], 4320);

    // The export is the whole chain, with its head in a header.
    let resp = app
        .http
        .get(format!("{}/v1/audit/export?format=csv", app.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-audit-head-seq"],
        EVENTS.to_string().as_str()
    );
    let csv = resp.text().await.unwrap();
    assert_eq!(
        csv.lines().count() as i64,
        EVENTS + 1,
        "header + every event"
    );

    app.stop().await;
}
