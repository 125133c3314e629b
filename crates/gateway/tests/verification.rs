//! Verification parts of plan steps at the API: captures, preconditions, expectations and
//! analysis windows are validated at plan creation (422 naming the step and field), stored and
//! returned, and covered by the plan hash (changing one after approval stops the execution).

mod common;

use common::*;
use serde_json::{json, Value};

/// A scale guarded by what was there before it, verified by an error-ratio analysis.
fn guarded_scale() -> Value {
    json!({
        "summary": "Scale web to 3 replicas, verified",
        "context": {"environment": "staging", "namespace": "web", "cluster_id": "c1"},
        "steps": [
            {"tool": "kubectl", "action": "get", "input": {"resource": "deployment/web", "namespace": "web"},
             "capture": {"replicas_before": ".spec.replicas"}},
            {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 3, "namespace": "web"},
             "preconditions": [{"path": ".replicas_before", "op": "<=", "value": 10}],
             "rollback": {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 2, "namespace": "web"}}},
            {"stage": "verify", "tool": "prometheus", "action": "query", "input": {"query": "sum(rate(http_errors_total[1m])) / sum(rate(http_requests_total[1m]))"},
             "expect": [{"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05, "on_empty": "inconclusive"}],
             "analysis": {"initial_delay": "10s", "interval": "30s", "count": 5, "failure_limit": 1}}
        ]
    })
}

#[tokio::test]
async fn verification_is_validated_stored_and_bound_by_the_approval() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    // Invalid documents: 422 naming the step and the field.
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut body = guarded_scale();
        f(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            mutate(&|b| b["steps"][2]["expect"][0]["op"] = json!("~=")),
            "steps[2].expect[0].op",
        ),
        (
            mutate(&|b| b["steps"][2]["analysis"]["interval"] = json!("3h")),
            "steps[2].analysis.interval",
        ),
        (
            mutate(&|b| b["steps"][0]["capture"]["replicas_before"] = json!("spec.replicas")),
            "steps[0].capture.replicas_before",
        ),
        (
            mutate(&|b| b["steps"][1]["preconditions"][0]["path"] = json!(".replicas_after")),
            "steps[1].preconditions[0].path",
        ),
        (
            mutate(&|b| b["steps"][1]["expect"] = json!([{"path": ".a", "op": "exists"}])),
            "steps[1].expect",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/v1/plans", &alice, &body).await;
        assert_eq!(status, 422, "{field}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.starts_with(field), "{field}: {answer}");
    }
    // A valid plan keeps every part, and the approval binds them.
    let (status, created) = app.post("/v1/plans", &alice, &guarded_scale()).await;
    assert_eq!(status, 201, "{created}");
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (_, plan) = app.get(&format!("/v1/plans/{plan_id}"), &alice).await;
    let steps = &plan["steps"];
    assert_eq!(
        steps[0]["capture"]["replicas_before"], ".spec.replicas",
        "{plan}"
    );
    assert_eq!(steps[1]["preconditions"][0]["op"], "<=");
    assert_eq!(steps[2]["expect"][0]["value"], 0.05);
    assert_eq!(steps[2]["analysis"]["count"], 5);
    if plan["approval_state"] == "pending" {
        let (status, body) = app
            .post(
                "/v1/approvals",
                &bob,
                &json!({"plan_id": plan_id, "status": "approved"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // Someone with database access loosens the threshold after approval: execution refuses.
    sqlx::query(
        "UPDATE plan_steps SET verification_json = jsonb_set(verification_json, '{expect,0,value}', '0.9') \
         WHERE plan_id = $1 AND ordinal = 2",
    )
    .bind(uuid::Uuid::parse_str(&plan_id).unwrap())
    .execute(app.db.store.pool())
    .await
    .unwrap();
    let (status, body) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "plan_modified", "{body}");
    app.stop().await;
}

/// Policy sees what a plan verifies: a production write plan without any expectation on a
/// verify step gets the `unverified_production_write` approval reason; with one it does not.
#[tokio::test]
async fn policy_flags_unverified_production_writes() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let mut verified = guarded_scale();
    verified["context"]["environment"] = json!("prod");
    let (status, created) = app.post("/v1/plans", &alice, &verified).await;
    assert_eq!(status, 201, "{created}");
    let reasons = created["policy"]["reasons"].as_array().unwrap().clone();
    assert!(
        reasons.contains(&json!("production_environment")),
        "{created}"
    );
    assert!(
        !reasons.contains(&json!("unverified_production_write")),
        "{created}"
    );

    let mut unverified = verified.clone();
    unverified["steps"][2]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k != "expect" && k != "analysis");
    let (status, created) = app.post("/v1/plans", &alice, &unverified).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["approval_required"], true);
    let reasons = created["policy"]["reasons"].as_array().unwrap();
    assert!(
        reasons.contains(&json!("unverified_production_write")),
        "{created}"
    );
    app.stop().await;
}
