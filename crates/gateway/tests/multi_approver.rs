//! Several approvers: policy asks for two on a high-risk production write
//! (`constraints.approvals_required`); the plan stays pending until two different people, neither
//! its author, approve the same revision; a repeat by the same person is refused; any denial ends
//! it; execution checks every approval's hash and the count; a revision supersedes them all.

mod common;

use common::*;
use serde_json::{json, Value};

fn delete_plan() -> Value {
    json!({
        "summary": "Delete a stuck pod",
        "context": {"environment": "production", "namespace": "web"},
        "steps": [{"tool": "kubectl", "action": "delete", "input": {"resource": "pod/web-1", "namespace": "web"}}]
    })
}

#[tokio::test]
async fn two_distinct_approvers_are_needed_and_a_denial_ends_it() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let carol = token("carol", "acme", &["approver"]);
    let dave = token("dave", "acme", &["approver"]);

    let (status, created) = app.post("/v1/plans", &alice, &delete_plan()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["plan"]["risk_level"], "high", "{created}");
    assert_eq!(
        created["plan"]["constraints"]["approvals_required"], 2,
        "{created}"
    );
    let id = created["plan_id"].as_str().unwrap().to_owned();
    let approve = |plan: &str| json!({"plan_id": plan, "status": "approved"});

    // The first approval leaves it pending, and says so.
    let (status, first) = app.post("/v1/approvals", &bob, &approve(&id)).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["plan_approval_state"], "pending");
    assert_eq!(first["approvals_required"], 2);
    assert_eq!(first["approved_by"], json!(["bob"]));
    // Not twice by the same person, not by the author.
    let (status, again) = app.post("/v1/approvals", &bob, &approve(&id)).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("already_decided")),
        "{again}"
    );
    assert_eq!(
        app.post("/v1/approvals", &alice, &approve(&id)).await.0,
        403
    );
    // One approval does not let it run.
    let (status, refused) = app
        .post(&format!("/v1/plans/{id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 403, "{refused}");
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(plan["approval_state"], "pending");
    assert_eq!(
        plan["approvals"],
        json!({"required": 2, "approved_by": ["bob"]})
    );

    // The second, by someone else, approves the plan.
    let (status, second) = app.post("/v1/approvals", &carol, &approve(&id)).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["plan_approval_state"], "approved");
    assert_eq!(second["approved_by"], json!(["bob", "carol"]));
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(plan["approval_state"], "approved");
    // A third decision comes too late.
    assert_eq!(app.post("/v1/approvals", &dave, &approve(&id)).await.0, 409);
    // Both approvals are checked at execution: one edited in the database stops it.
    sqlx::query("UPDATE approvals SET approved_hash = 'forged' WHERE plan_id = $1::uuid AND approver = 'bob'")
        .bind(&id)
        .execute(app.db.store.pool())
        .await
        .unwrap();
    // (A high-risk run needs break-glass, which needs an admin.)
    let erin = token("erin", "acme", &["admin"]);
    let resp = app
        .http
        .post(format!("{}/v1/plans/{id}/execute", app.url))
        .bearer_auth(&erin)
        .header("x-break-glass", "true")
        .header("x-break-glass-reason", "stuck pod")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let tampered: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (status, tampered["error"]["code"].as_str()),
        (409, Some("plan_modified")),
        "{tampered}"
    );

    // Any denial ends it, whoever approved before.
    let (_, other) = app.post("/v1/plans", &alice, &delete_plan()).await;
    let other_id = other["plan_id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post("/v1/approvals", &bob, &approve(&other_id)).await.0,
        201
    );
    let (status, denied) = app
        .post(
            "/v1/approvals",
            &dave,
            &json!({"plan_id": other_id, "status": "denied"}),
        )
        .await;
    assert_eq!(status, 201, "{denied}");
    assert_eq!(denied["plan_approval_state"], "denied");
    assert_eq!(
        app.post("/v1/approvals", &carol, &approve(&other_id))
            .await
            .0,
        409
    );

    // A revision supersedes the approvals gathered so far.
    let (_, third) = app.post("/v1/plans", &alice, &delete_plan()).await;
    let third_id = third["plan_id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post("/v1/approvals", &bob, &approve(&third_id)).await.0,
        201
    );
    let (status, revised) = app
        .post(
            &format!("/v1/plans/{third_id}/revisions"),
            &alice,
            &json!({"steps": [{"tool": "kubectl", "action": "delete", "input": {"resource": "pod/web-2", "namespace": "web"}}]}),
        )
        .await;
    assert_eq!(status, 201, "{revised}");
    assert_eq!(revised["superseded_approvals"], 1);
    let (_, plan) = app.get(&format!("/v1/plans/{third_id}"), &alice).await;
    assert_eq!(plan["approvals"], json!({"required": 2, "approved_by": []}));
    // Bob approves the new revision: his earlier (superseded) decision does not block him.
    let (status, again) = app.post("/v1/approvals", &bob, &approve(&third_id)).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["revision"], 2);
    app.stop().await;
}
