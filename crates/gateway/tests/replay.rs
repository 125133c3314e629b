//! Incident replay: Alertmanager incidents planned by the event loop are replayed from their
//! records — under the current everything (reproduced exactly, twice with the same report
//! hash), under a stricter candidate policy (checked against a direct evaluation of each
//! recorded input), with candidate playbooks — without writing a live table; bad requests are
//! refused precisely and write nothing.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

use carapulse_core::config::{Config, WebhookSource};
use carapulse_core::policy::PolicyEngine;

const BEARER: &str = "alertmanager-replay-bearer-0123456789";
const PACKAGE: &str = "policy.assistant.v1";

/// Denies production writes in the `payments` namespace: a stricter policy for some of the
/// replayed incidents only.
const STRICT: &str = "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"payments_frozen\" if {\n\tis_write\n\tinput.context.namespace == \"payments\"\n}\n";

fn configure(c: &mut Config) {
    c.webhooks.insert(
        "alertmanager".into(),
        WebhookSource {
            tenant_id: "acme".into(),
            bearer_token: Some(BEARER.into()),
            environment: "prod".into(),
            namespace: "shop".into(),
            ..Default::default()
        },
    );
    c.gateway.enable_event_loop = true;
    c.gateway.event_gate_service_per_hour = 0;
}

fn alert(name: &str, fingerprint: &str, namespace: &str, deployment: &str) -> Value {
    json!({"status": "firing",
           "labels": {"alertname": name, "severity": "page", "namespace": namespace, "deployment": deployment},
           "annotations": {"summary": format!("{name} on {deployment}")},
           "startsAt": "2026-12-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
           "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint})
}

async fn deliver(app: &TestApp, alerts: Vec<Value>) {
    let body = json!({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
           "receiver": "carapulse", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
           "externalURL": "http://alertmanager:9093", "alerts": alerts});
    let resp = app
        .http
        .post(format!("{}/v1/hooks/alertmanager", app.url))
        .bearer_auth(BEARER)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.db.store.pool())
        .await
        .unwrap()
}

/// Rows of every live table a replay must never write.
async fn live_tables(app: &TestApp) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for table in [
        "plans",
        "plan_revisions",
        "planning_records",
        "approvals",
        "executions",
        "alert_events",
        "event_gates",
        "policy_decisions",
        "context_snapshots",
    ] {
        out.insert(
            table,
            count(app, &format!("SELECT count(*) FROM {table}")).await,
        );
    }
    out
}

async fn wait_for_plans(app: &TestApp, n: i64) {
    for _ in 0..200 {
        if count(
            app,
            "SELECT count(*) FROM planning_records WHERE alert_id IS NOT NULL",
        )
        .await
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the event loop did not plan {n} alerts");
}

/// Six incidents over three namespaces, planned by the event loop.
async fn incidents(app: &TestApp) {
    let mut alerts = Vec::new();
    for (i, ns) in ["shop", "payments", "search"].iter().enumerate() {
        alerts.push(alert(
            "HighLatency",
            &format!("fp-lat-{i}"),
            ns,
            &format!("web-{ns}"),
        ));
        alerts.push(alert(
            "PodCrashLooping",
            &format!("fp-crash-{i}"),
            ns,
            &format!("api-{ns}"),
        ));
    }
    deliver(app, alerts).await;
    wait_for_plans(app, 6).await;
}

async fn replay(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, answer) = app.post("/v1/replays", token, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "done", "{answer}");
    answer
}

#[tokio::test]
async fn replays_reproduce_the_record_and_a_stricter_candidate_matches_direct_evaluation() {
    let app = spawn_app_with(configure).await;
    let alice = token("alice", "acme", &["operator"]);
    incidents(&app).await;
    let before = live_tables(&app).await;

    // The current everything reproduces each original exactly, and says nothing drifted. The
    // same window is the same absolute bounds (an age such as `1h` moves with the clock).
    let now = chrono::Utc::now();
    let window = json!({"source": {"since": (now - chrono::Duration::hours(1)).to_rfc3339(),
                                   "until": (now + chrono::Duration::minutes(5)).to_rfc3339()}});
    let first = replay(&app, &alice, window.clone()).await;
    assert_eq!(first["total"], 6, "{first}");
    assert_eq!(first["summary"]["changed"], 0, "{first}");
    assert_eq!(first["summary"]["with_drift"], 0, "{first}");
    assert_eq!(first["summary"]["with_missing_data"], 0, "{first}");
    for incident in first["incidents"].as_array().unwrap() {
        let r = &incident["result"];
        assert_eq!(r["original"]["decision"], r["replayed"]["decision"], "{r}");
        assert_eq!(
            r["original"]["approvals_required"], r["replayed"]["approvals_required"],
            "{r}"
        );
        assert_eq!(r["replayed"]["planned"], true, "{r}");
        assert!(
            r["replayed"]["planner"]
                .as_str()
                .unwrap()
                .starts_with("recorded"),
            "{r}"
        );
    }
    // Twice: the same report, hash for hash.
    let second = replay(&app, &alice, window.clone()).await;
    assert_eq!(first["report_hash"], second["report_hash"]);
    assert!(first["report_hash"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_ne!(first["replay_id"], second["replay_id"]);

    // A stricter candidate: each replayed decision is the one a direct evaluation of the
    // recorded input under the candidate gives.
    let strict = replay(
        &app,
        &alice,
        json!({"source": {"since": "1h"}, "policy": "candidate", "candidate": {"files": {"zz_strict.rego": STRICT}}}),
    )
    .await;
    let mut files = PolicyEngine::load_dir(
        std::path::Path::new(&carapulse_core::testing::policies_dir()),
        PACKAGE,
    )
    .unwrap()
    .sources()
    .to_vec();
    files.push(("zz_strict.rego".into(), STRICT.into()));
    let direct = PolicyEngine::from_sources(PACKAGE, files).unwrap();
    let mut changed = 0;
    for incident in strict["incidents"].as_array().unwrap() {
        let r = &incident["result"];
        let plan_id = r["plan_id"].as_str().unwrap();
        let record: Value = sqlx::query_scalar(
            "SELECT record_json FROM planning_records WHERE plan_id = $1::uuid AND revision = 1",
        )
        .bind(plan_id)
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
        let expected = direct.evaluate_json(&record["policy"]["input"]);
        assert_eq!(r["replayed"]["decision"], expected.decision.as_str(), "{r}");
        let mut reasons = expected.reasons.clone();
        reasons.sort();
        assert_eq!(r["replayed"]["reasons"], json!(reasons), "{r}");
        let denied = record["policy"]["input"]["context"]["namespace"] == "payments";
        assert_eq!(r["changed"], denied, "{r}");
        if denied {
            changed += 1;
            assert_eq!(r["replayed"]["decision"], "deny");
            assert_eq!(r["replayed"]["approvals_required"], 0);
            assert!(
                r["changes"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("decision")),
                "{r}"
            );
        }
    }
    assert_eq!(changed, 2);
    assert_eq!(strict["summary"]["changed"], 2, "{strict}");
    assert_eq!(
        strict["summary"]["by_transition"]["require_approval -> deny"], 2,
        "{strict}"
    );
    assert_eq!(strict["request"]["policy"]["choice"], "candidate");

    // Only the changed ones, paged.
    let id = strict["replay_id"].as_str().unwrap();
    let (status, page) = app
        .get(&format!("/v1/replays/{id}?changed=true&limit=1"), &alice)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["incidents"].as_array().unwrap().len(), 1);
    let after = page["next_after"].as_i64().expect("a second page");
    let (_, rest) = app
        .get(
            &format!("/v1/replays/{id}?changed=true&after={after}"),
            &alice,
        )
        .await;
    assert_eq!(rest["incidents"].as_array().unwrap().len(), 1);
    assert!(rest["next_after"].is_null());
    let (_, list) = app.get("/v1/replays?limit=2", &alice).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["replay_id"], strict["replay_id"]);
    let cursor = list["next_cursor"].as_str().unwrap().to_owned();
    let (_, older) = app
        .get(
            &format!("/v1/replays?cursor={}", urlencode(&cursor)),
            &alice,
        )
        .await;
    assert_eq!(older["items"].as_array().unwrap().len(), 1);
    assert_eq!(older["items"][0]["replay_id"], first["replay_id"]);

    // Candidate playbooks and the rule planner: the matched alerts get the playbook's workflow.
    let playbooks = replay(
        &app,
        &alice,
        json!({"source": {"since": "1h"}, "planner": "rules", "playbooks": "candidate",
               "candidate_playbooks": [{"name": "latency-rollback", "alertname": "HighLatency",
                                         "workflow": "service_restart",
                                         "input": {"resource": "deployment/{{labels.deployment}}", "namespace": "{{labels.namespace}}"}}]}),
    )
    .await;
    for incident in playbooks["incidents"].as_array().unwrap() {
        let r = &incident["result"];
        let latency = r["alertname"] == "HighLatency";
        assert_eq!(
            r["changes"].as_array().unwrap().contains(&json!("steps")),
            latency,
            "{r}"
        );
        if latency {
            assert!(!r["diff"]["text"].as_array().unwrap().is_empty(), "{r}");
        }
    }

    // Nothing live was written; one audit event per replay.
    assert_eq!(live_tables(&app).await, before);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_events WHERE action = 'replay.start'"
        )
        .await,
        4
    );
    assert_eq!(count(&app, "SELECT count(*) FROM replay_runs").await, 4);
    app.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn drift_and_missing_data_are_said_and_bad_requests_write_nothing() {
    let dir = copied_policies();
    let policy_dir = dir.path().to_string_lossy().into_owned();
    let app = spawn_app_with(move |c| {
        configure(c);
        c.policy.policy_dir = policy_dir;
    })
    .await;
    let alice = token("alice", "acme", &["operator"]);
    let admin = token("root", "acme", &["admin"]);
    incidents(&app).await;
    let plan_id: String = sqlx::query_scalar(
        "SELECT plan_id::text FROM planning_records WHERE alert_id IS NOT NULL ORDER BY recorded_at LIMIT 1",
    )
    .fetch_one(app.db.store.pool())
    .await
    .unwrap();
    let alert_id: String =
        sqlx::query_scalar("SELECT alert_id::text FROM planning_records WHERE plan_id = $1::uuid")
            .bind(&plan_id)
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();

    // One plan, one alert event: the same incident, unchanged.
    let by_plan = replay(&app, &alice, json!({"source": {"plan_id": plan_id}})).await;
    assert_eq!(by_plan["total"], 1);
    assert_eq!(by_plan["summary"]["changed"], 0, "{by_plan}");
    let by_alert = replay(
        &app,
        &alice,
        json!({"source": {"alert_event_id": alert_id}}),
    )
    .await;
    assert_eq!(
        by_alert["incidents"][0]["result"]["plan_id"],
        json!(plan_id)
    );

    // Policy changed since: the replay under the current policy says so.
    std::fs::write(dir.path().join("zz_strict.rego"), STRICT).unwrap();
    let (status, body) = app.post("/v1/policy/reload", &admin, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let drifted = replay(&app, &alice, json!({"source": {"since": "1h"}})).await;
    assert_eq!(drifted["summary"]["with_drift"], 6, "{drifted}");
    let drift = drifted["incidents"][0]["result"]["drift"][0]
        .as_str()
        .unwrap();
    assert!(
        drift.starts_with("policy changed since: recorded sha256:"),
        "{drift}"
    );
    assert_eq!(drifted["summary"]["changed"], 2, "{drifted}");

    let runs_before = count(&app, "SELECT count(*) FROM replay_runs").await;
    let live = live_tables(&app).await;
    let refused = |status: u16, code: &str, body: &Value| {
        assert_eq!(error_code(body), code, "{body}");
        assert!((400..500).contains(&status), "{status} {body}");
    };
    // Another tenant's ids are not found.
    let mallory = token("mallory", "globex", &["operator"]);
    let (s, b) = app
        .post(
            "/v1/replays",
            &mallory,
            &json!({"source": {"plan_id": plan_id}}),
        )
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = app
        .post(
            "/v1/replays",
            &mallory,
            &json!({"source": {"alert_event_id": alert_id}}),
        )
        .await;
    assert_eq!(s, 404, "{b}");
    // Readers may not replay.
    let viewer = token("vic", "acme", &["viewer"]);
    let (s, b) = app
        .post("/v1/replays", &viewer, &json!({"source": {"since": "1h"}}))
        .await;
    assert_eq!(s, 403, "{b}");
    // A candidate that does not compile names its file.
    let (s, b) = app
        .post(
            "/v1/replays",
            &alice,
            &json!({"source": {"since": "1h"}, "policy": "candidate", "candidate": {"files": {"bad.rego": "package policy.assistant.v1\nnot rego {"}}}),
        )
        .await;
    refused(s, "invalid_policy", &b);
    assert!(
        b["error"]["message"].as_str().unwrap().contains("bad.rego"),
        "{b}"
    );
    // Candidate without asking for it; two sources; a bad window; a bad playbook.
    for body in [
        json!({"source": {"since": "1h"}, "candidate": {"files": {"x.rego": STRICT}}}),
        json!({"source": {"since": "1h", "plan_id": plan_id}}),
        json!({"source": {"since": "1h", "until": "2h"}}),
        json!({"source": {"since": "yesterday"}}),
        json!({"source": {"since": "1h"}, "playbooks": "candidate", "candidate_playbooks": [{"name": "x", "workflow": "no_such_workflow"}]}),
    ] {
        let (s, b) = app.post("/v1/replays", &alice, &body).await;
        assert_eq!(s, 422, "{body} -> {b}");
    }
    // A candidate playbook named with a control character is refused at the edge (as every
    // body is), naming the field.
    let (s, b) = app
        .post(
            "/v1/replays",
            &alice,
            &json!({"source": {"since": "1h"}, "playbooks": "candidate",
                    "candidate_playbooks": [{"name": "restart\u{7}web", "workflow": "service_restart",
                                             "input": {"resource": "deployment/web", "namespace": "shop"}}]}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(error_code(&b), "invalid_text", "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("candidate_playbooks[0].name"),
        "{b}"
    );
    // An empty name is refused like one sent to /v1/playbooks.
    let (s, b) = app
        .post(
            "/v1/replays",
            &alice,
            &json!({"source": {"since": "1h"}, "playbooks": "candidate",
                    "candidate_playbooks": [{"name": "  ", "workflow": "service_restart", "input": {}}]}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1-128 characters"),
        "{b}"
    );
    // A body that is not a replay request at all.
    let (s, b) = app
        .post(
            "/v1/replays",
            &alice,
            &json!({"source": {"since": "1h"}, "planner": "oracle"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // A plan whose record was purged: gone, and said why.
    sqlx::query("DELETE FROM planning_records WHERE plan_id = $1::uuid")
        .bind(&plan_id)
        .execute(app.db.store.pool())
        .await
        .unwrap();
    let (s, b) = app
        .post(
            "/v1/replays",
            &alice,
            &json!({"source": {"plan_id": plan_id}}),
        )
        .await;
    assert_eq!(s, 410, "{b}");
    refused(s, "planning_record_missing", &b);
    let (s, b) = app
        .post(
            "/v1/replays",
            &alice,
            &json!({"source": {"alert_event_id": alert_id}}),
        )
        .await;
    assert_eq!(s, 410, "{b}");
    // A window over 500 alert events.
    sqlx::query(
        "INSERT INTO alert_events (alert_id, tenant_id, source, fingerprint, status, payload_json) \
         SELECT gen_random_uuid(), 'acme', 'alertmanager', 'bulk-' || i, 'firing', '{\"labels\": {}}' \
         FROM generate_series(1, 500) AS i",
    )
    .execute(app.db.store.pool())
    .await
    .unwrap();
    let (s, b) = app
        .post("/v1/replays", &alice, &json!({"source": {"since": "1h"}}))
        .await;
    assert_eq!(s, 422, "{b}");
    refused(s, "window_too_large", &b);
    sqlx::query("DELETE FROM alert_events WHERE fingerprint LIKE 'bulk-%'")
        .execute(app.db.store.pool())
        .await
        .unwrap();
    // Nothing was written by any refusal (the purge above is the test's own).
    assert_eq!(
        count(&app, "SELECT count(*) FROM replay_runs").await,
        runs_before
    );
    let mut live_after = live_tables(&app).await;
    live_after.insert("planning_records", live["planning_records"]);
    assert_eq!(live_after, live);
    // Not a replay id, another tenant's replay.
    let (s, _) = app.get("/v1/replays/not-a-uuid", &alice).await;
    assert_eq!(s, 404);
    let id = drifted["replay_id"].as_str().unwrap();
    let (s, _) = app.get(&format!("/v1/replays/{id}"), &mallory).await;
    assert_eq!(s, 404);
    let (s, b) = app
        .get(&format!("/v1/replays/{id}?limit=501"), &alice)
        .await;
    assert_eq!(s, 422, "{b}");
    app.stop().await;
}

/// A replay in the background reports its progress on the event stream; a candidate playbook
/// that moves the remediation to another workload gets a blast radius estimated from the
/// context snapshot recorded at planning, not from today's graph.
#[tokio::test]
async fn background_replay_reports_progress_and_estimates_new_targets_from_the_snapshot() {
    let app = spawn_app_with(configure).await;
    let alice = token("alice", "acme", &["operator"]);
    // ingress -> api -> {web, checkout}: the graph planning sees (and snapshots).
    seed_traffic(
        &app,
        "acme",
        &[
            ("api", "web", 30.0),
            ("ingress", "api", 120.0),
            ("api", "checkout", 8.0),
        ],
    )
    .await;
    deliver(&app, vec![alert("HighLatency", "fp-snap", "shop", "web")]).await;
    wait_for_plans(&app, 1).await;
    let snapshot: Option<String> = sqlx::query_scalar(
        "SELECT record_json->>'context_snapshot_id' FROM planning_records WHERE alert_id IS NOT NULL",
    )
    .fetch_one(app.db.store.pool())
    .await
    .unwrap();
    assert!(snapshot.is_some(), "planning recorded no context snapshot");
    // Today's graph loses checkout's callers: the replay must not read it.
    seed_traffic(&app, "acme", &[("ingress", "api", 120.0)]).await;

    let (status, started) = app
        .post(
            "/v1/replays",
            &alice,
            &json!({"source": {"since": "1h"}, "planner": "rules", "playbooks": "candidate", "background": true,
                    "candidate_playbooks": [{"name": "restart-checkout", "alertname": "HighLatency",
                                             "workflow": "service_restart",
                                             "input": {"resource": "deployment/checkout", "namespace": "shop"}}]}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["replay_id"].as_str().unwrap().to_owned();
    let mut run = Value::Null;
    for _ in 0..100 {
        let (_, r) = app.get(&format!("/v1/replays/{id}"), &alice).await;
        run = r;
        if run["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(run["status"], "done", "{run}");
    let r = &run["incidents"][0]["result"];
    assert_eq!(r["replayed"]["blast_radius_source"], "snapshot", "{r}");
    assert_eq!(r["replayed"]["blast_radius"]["unknown"], false, "{r}");
    // checkout, api and ingress, as the snapshot had them.
    assert_eq!(r["replayed"]["blast_radius"]["services"], 3, "{r}");
    assert_eq!(r["replayed"]["blast_radius"]["rps"], 8.0, "{r}");
    assert!(
        r["changes"].as_array().unwrap().contains(&json!("steps")),
        "{r}"
    );
    // Progress went out on the event stream, ending with the run.
    let statuses: Vec<String> = sqlx::query_scalar(
        "SELECT data->>'status' FROM event_log WHERE kind = 'replay.progress' AND data->>'replay_id' = $1 \
         ORDER BY event_id",
    )
    .bind(&id)
    .fetch_all(app.db.store.pool())
    .await
    .unwrap();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("running"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("done"),
        "{statuses:?}"
    );
    app.stop().await;
}
