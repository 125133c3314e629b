//! Policy impact: write decisions are kept with their inputs, and a candidate re-run over 10,000
//! stored decisions reports exactly the ones a direct re-evaluation changes, by transition;
//! windows, limits and tenants bound it; bad candidates and bad windows are refused.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};

use carapulse_core::model::TenantId;
use carapulse_core::policy::PolicyEngine;
use carapulse_core::store::DecisionRecord;

const FREEZE: &str = "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"prod_writes_frozen\" if {\n\tis_write\n\tprod_env\n}\n";

fn grid() -> Vec<Value> {
    let mut inputs = Vec::new();
    for env in ["dev", "staging", "prod"] {
        for level in ["read", "low", "medium", "high"] {
            for kind in ["read", "write"] {
                for roles in [vec!["operator"], vec!["viewer"]] {
                    for blast in ["namespace", "account"] {
                        for targets in [1, 3] {
                            inputs.push(json!({
                                "actor": {"id": "grid-user", "roles": roles, "tenant_id": "acme"},
                                "action": {"name": "plan.create", "type": kind},
                                "context": {"tenant_id": "acme", "environment": env},
                                "resources": {"break_glass": false},
                                "risk": {"level": level, "blast_radius": blast, "targets": targets},
                            }));
                        }
                    }
                }
            }
        }
    }
    inputs
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[tokio::test]
async fn impact_over_ten_thousand_stored_decisions_matches_a_direct_re_evaluation() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let current = PolicyEngine::load_dir(
        std::path::Path::new(&carapulse_core::testing::policies_dir()),
        "policy.assistant.v1",
    )
    .unwrap();
    let mut files = current.sources().to_vec();
    files.push(("freeze.rego".into(), FREEZE.into()));
    let candidate = PolicyEngine::from_sources("policy.assistant.v1", files).unwrap();

    // 10,000 decisions as the loaded policy took them.
    let grid = grid();
    let tenant = TenantId::parse("acme").unwrap();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut batch = Vec::new();
    for i in 0..10_000 {
        let input = grid[i % grid.len()].clone();
        let then = current.evaluate_json(&input);
        let now = candidate.evaluate_json(&input);
        if then.decision != now.decision || sorted(&then.reasons) != sorted(&now.reasons) {
            *expected
                .entry(format!(
                    "{} -> {}",
                    then.decision.as_str(),
                    now.decision.as_str()
                ))
                .or_default() += 1;
        }
        batch.push(DecisionRecord {
            tenant_id: tenant.clone(),
            action: "plan.create".into(),
            environment: input["context"]["environment"].as_str().unwrap().to_owned(),
            plan_id: None,
            decision: then.decision.as_str().to_owned(),
            reasons: then.reasons.clone(),
            input,
        });
        if batch.len() == 1_000 {
            app.db.store.insert_decisions(&batch).await.unwrap();
            batch.clear();
        }
    }
    let changed: u64 = expected.values().sum();
    assert!(
        changed > 500,
        "the candidate changes something: {expected:?}"
    );

    let body =
        json!({"candidate": {"files": {"freeze.rego": FREEZE}}, "since": "1h", "limit": 100000});
    let (status, report) = app.post("/v1/policy/impact", &alice, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["evaluated"], 10_000);
    assert_eq!(report["changed"], changed);
    assert_eq!(report["by_transition"], json!(expected));
    assert_eq!(
        report["by_environment"],
        json!({"prod": changed}),
        "only production writes froze"
    );
    assert_eq!(report["truncated"], false);
    let sample = &report["samples"]["require_approval -> deny"][0];
    assert!(
        sample["reasons_candidate"]
            .as_array()
            .unwrap()
            .contains(&json!("prod_writes_frozen")),
        "{sample}"
    );

    // The same run as a background job: 202 with its id at once, progress on the event stream
    // page by page, the same report from its job once done.
    let events = {
        use futures::StreamExt;
        let resp = app
            .http
            .get(format!("{}/v1/events?kinds=policy.impact", app.url))
            .bearer_auth(&alice)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        tokio::spawn(async move {
            let mut parser = carapulse_core::sse::SseParser::new();
            let mut seen = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                for frame in parser.push(&chunk) {
                    if frame.event != "policy.impact" {
                        continue;
                    }
                    let event: Value = serde_json::from_str(&frame.data).unwrap();
                    let done = event["data"]["status"] != "running";
                    seen.push(event["data"].clone());
                    if done {
                        return seen;
                    }
                }
            }
            seen
        })
    };
    let mut background = body.clone();
    background["background"] = json!(true);
    let (status, started) = app.post("/v1/policy/impact", &alice, &background).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["status"], "running");
    assert_eq!(started["total"], 10_000);
    let job = started["job_id"].as_str().unwrap().to_owned();
    let progress = tokio::time::timeout(std::time::Duration::from_secs(60), events)
        .await
        .expect("the job ends within a minute")
        .unwrap();
    let mine: Vec<&Value> = progress.iter().filter(|e| e["job_id"] == job).collect();
    let evaluated: Vec<u64> = mine
        .iter()
        .map(|e| e["evaluated"].as_u64().unwrap())
        .collect();
    assert!(
        mine.len() >= 10,
        "a progress event per page of 1,000 and the end: {evaluated:?}"
    );
    assert!(evaluated.windows(2).all(|w| w[0] <= w[1]), "{evaluated:?}");
    let last = mine.last().unwrap();
    assert_eq!(
        (
            &last["status"],
            &last["evaluated"],
            &last["changed"],
            &last["total"]
        ),
        (
            &json!("done"),
            &json!(10_000),
            &json!(changed),
            &json!(10_000)
        )
    );
    let (status, finished) = app.get(&format!("/v1/policy/impact/{job}"), &alice).await;
    assert_eq!(status, 200, "{finished}");
    assert_eq!(finished["status"], "done");
    assert_eq!(finished["report"]["by_transition"], json!(expected));
    assert_eq!(finished["report"]["changed"], changed);
    // Another tenant cannot see it; a viewer cannot read it; an unknown job is a 404.
    let outsider = token("olga", "globex", &["admin"]);
    assert_eq!(
        app.get(&format!("/v1/policy/impact/{job}"), &outsider)
            .await
            .0,
        404
    );
    let reader = token("vic", "acme", &["viewer"]);
    assert_eq!(
        app.get(&format!("/v1/policy/impact/{job}"), &reader)
            .await
            .0,
        403
    );
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        app.get(&format!("/v1/policy/impact/{unknown}"), &alice)
            .await
            .0,
        404
    );
    let (status, not_an_id) = app.get("/v1/policy/impact/not-a-job", &alice).await;
    assert_eq!(
        (status, error_code(&not_an_id)),
        (404, "not_found"),
        "{not_an_id}"
    );

    // Bounded: a limit truncates, another tenant has nothing, an old window is empty.
    let mut small = body.clone();
    small["limit"] = json!(100);
    let (_, report) = app.post("/v1/policy/impact", &alice, &small).await;
    assert_eq!(
        (report["evaluated"].as_u64(), report["truncated"].as_bool()),
        (Some(100), Some(true))
    );
    let viewer = token("vic", "acme", &["viewer"]);
    assert_eq!(
        app.post("/v1/policy/impact", &viewer, &body).await.0,
        403,
        "writers only"
    );
    let other = token("olga", "globex", &["admin"]);
    let (_, report) = app.post("/v1/policy/impact", &other, &body).await;
    assert_eq!(report["evaluated"], 0);
    let mut old = body.clone();
    old["since"] = json!("30d");
    old["until"] = json!("2d");
    let (_, report) = app.post("/v1/policy/impact", &alice, &old).await;
    assert_eq!(report["evaluated"], 0);

    // Refusals.
    for (field, value) in [
        ("since", json!("yesterday")),
        ("limit", json!(0)),
        ("limit", json!(100001)),
    ] {
        let mut bad = body.clone();
        bad[field] = value;
        assert_eq!(
            app.post("/v1/policy/impact", &alice, &bad).await.0,
            422,
            "{field}"
        );
    }
    let mut broken = body.clone();
    broken["candidate"]["files"]["freeze.rego"] = json!("package policy.assistant.v1\nnot rego {");
    let (status, refused) = app.post("/v1/policy/impact", &alice, &broken).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("freeze.rego"));

    // Decisions are kept as they happen: creating a plan records its decision (no e-mail).
    let (status, _) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 201);
    let mut kept = None;
    for _ in 0..50 {
        let row: Option<(Value,)> = sqlx::query_as(
            "SELECT input_json FROM policy_decisions WHERE action = 'plan.create' AND input_json->'actor'->>'id' = 'alice' LIMIT 1",
        )
        .fetch_optional(app.db.store.pool())
        .await
        .unwrap();
        if row.is_some() {
            kept = row;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (input,) = kept.expect("the plan's decision was kept");
    assert_eq!(input["actor"]["id"], "alice");
    assert!(input["actor"].get("email").is_none(), "{input}");
    app.stop().await;
}
