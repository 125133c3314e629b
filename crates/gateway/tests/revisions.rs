//! Plans as reviewed changes: revise a plan, see the semantic diff, and the approval follows
//! the revision — an approval of revision 1 is superseded by revision 2, which needs its own,
//! from someone who wrote neither; execution then runs revision 2's hash. Refusals change
//! nothing: another tenant's plan (404), a reader (403), an active execution (409), a policy
//! denial, bad input (422).

mod common;

use common::*;
use serde_json::{json, Value};

fn steps(replicas: i64) -> Value {
    json!([
        {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": replicas, "namespace": "web"},
         "rollback": {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 2, "namespace": "web"}}},
        {"stage": "verify", "tool": "kubectl", "action": "rollout-status", "input": {"resource": "deployment/web", "namespace": "web"}}
    ])
}

async fn approvals_of(app: &TestApp, tok: &str, plan: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for status in ["superseded", "approved"] {
        let (_, page) = app
            .get(
                &format!("/v1/approvals?plan_id={plan}&status={status}"),
                tok,
            )
            .await;
        out.extend(page["data"].as_array().into_iter().flatten().map(|a| {
            (
                a["status"].as_str().unwrap_or("").to_owned(),
                a["revision"].as_i64().unwrap_or(0),
            )
        }));
    }
    out
}

#[tokio::test]
async fn revisions_supersede_approvals_and_diff_semantically() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let carol = token("carol", "acme", &["operator", "approver"]);
    let viewer = token("vic", "acme", &["viewer"]);
    let other = token("olga", "globex", &["admin"]);

    let (status, created) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 201, "{created}");
    let id = created["plan_id"].as_str().unwrap().to_owned();
    assert_eq!(created["plan"]["revision"], 1);
    let hash1 = created["plan"]["plan_hash"].as_str().unwrap().to_owned();

    // Bob approves revision 1.
    let (status, approved) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 201, "{approved}");

    // Refusals change nothing.
    let revise = |body: Value| body;
    let path = format!("/v1/plans/{id}/revisions");
    assert_eq!(
        app.post(&path, &other, &revise(json!({"steps": steps(5)})))
            .await
            .0,
        404
    );
    assert_eq!(
        app.post(&path, &viewer, &revise(json!({"steps": steps(5)})))
            .await
            .0,
        403
    );
    assert_eq!(
        app.post(&path, &alice, &json!({"steps": steps(5), "replan": true}))
            .await
            .0,
        422
    );
    assert_eq!(
        app.post(&path, &alice, &json!({"note": "x".repeat(501)}))
            .await
            .0,
        422
    );
    assert_eq!(
        app.post(
            &path,
            &alice,
            &json!({"steps": [{"tool": "bash", "action": "run"}]})
        )
        .await
        .0,
        400,
        "not a tool: the body does not parse"
    );
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(
        (plan["revision"].as_i64(), plan["approval_state"].as_str()),
        (Some(1), Some("approved"))
    );

    // Carol revises to 5 replicas: a new revision, bob's approval superseded, pending again.
    let (status, revised) = app
        .post(
            &path,
            &carol,
            &json!({"steps": steps(5), "note": "traffic is higher than planned"}),
        )
        .await;
    assert_eq!(status, 201, "{revised}");
    assert_eq!(revised["revision"], 2);
    assert_eq!(revised["superseded_approvals"], 1);
    assert_eq!(revised["approval_required"], true);
    assert_ne!(revised["hash"].as_str(), Some(hash1.as_str()));
    assert_eq!(revised["diff"]["summary"], "1 step changed");
    assert_eq!(
        revised["diff"]["changed"][0]["fields"],
        json!([{"field": "input.replicas", "from": 3, "to": 5}])
    );
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(plan["revision"], 2);
    assert_eq!(plan["approval_state"], "pending");
    assert_eq!(
        plan["steps"][0]["input"]["replicas"], 5,
        "GET returns the current revision"
    );
    assert_eq!(
        plan["meta"]["revision_summary"], "1 step changed",
        "said where approvers look"
    );
    assert_eq!(plan["meta"]["revised_by"], "carol");
    assert_eq!(
        approvals_of(&app, &bob, &id).await,
        [("superseded".to_owned(), 1)],
        "bob's approval is kept, superseded"
    );

    // Executing now is refused: revision 2 is not approved.
    let (status, refused) = app
        .post(&format!("/v1/plans/{id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("approval_required")),
        "{refused}"
    );

    // The reviser cannot approve her own revision; bob approves revision 2.
    let (status, refused) = app
        .post(
            "/v1/approvals",
            &carol,
            &json!({"plan_id": id, "status": "approved"}),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("self_approval")),
        "{refused}"
    );
    let (status, approved) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 201, "{approved}");
    assert_eq!(
        approvals_of(&app, &bob, &id).await,
        [("superseded".to_owned(), 1), ("approved".to_owned(), 2)]
    );

    // A third revision restoring revision 1's steps does not bring revision 1's approval back:
    // the hash names the revision.
    let (status, third) = app
        .post(
            &path,
            &alice,
            &json!({"steps": steps(3), "summary": "Scale web to 3 replicas"}),
        )
        .await;
    assert_eq!(status, 201, "{third}");
    assert_eq!(third["revision"], 3);
    assert_ne!(third["hash"].as_str(), Some(hash1.as_str()));
    assert_eq!(third["superseded_approvals"], 1);

    // Revisions: listed, each readable whole, immutable.
    let (status, list) = app.get(&path, &viewer).await;
    assert_eq!(status, 200, "{list}");
    let numbers: Vec<i64> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(list["data"][1]["created_by"], "carol");
    assert_eq!(list["data"][1]["note"], "traffic is higher than planned");
    let (_, first) = app.get(&format!("{path}/1"), &viewer).await;
    assert_eq!(first["hash"], hash1.as_str());
    assert_eq!(first["plan"]["steps"][0]["input"]["replicas"], 3);
    assert_eq!(app.get(&format!("{path}/9"), &viewer).await.0, 404);
    assert_eq!(app.get(&format!("{path}/0"), &viewer).await.0, 422);
    let changed = sqlx::query("UPDATE plan_revisions SET note = 'edited' WHERE plan_id = $1::uuid")
        .bind(&id)
        .execute(app.db.store.pool())
        .await;
    assert!(changed.is_err(), "revisions are immutable");

    // The diff between any two revisions; 2 -> 3 by default from 3.
    let (status, diff) = app
        .get(&format!("/v1/plans/{id}/diff?from=1&to=3"), &viewer)
        .await;
    assert_eq!(status, 200, "{diff}");
    assert!(
        diff["changed"].as_array().unwrap().is_empty(),
        "same steps: {diff}"
    );
    let (_, diff) = app.get(&format!("/v1/plans/{id}/diff"), &viewer).await;
    assert_eq!(
        (diff["from"].as_i64(), diff["to"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(diff["changed"][0]["fields"][0]["from"], 5);
    assert!(diff["text"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().contains("input.replicas: 5 -> 3")));
    assert_eq!(
        app.get(&format!("/v1/plans/{id}/diff?from=3&to=1"), &viewer)
            .await
            .0,
        422
    );
    assert_eq!(
        app.get(&format!("/v1/plans/{id}/diff"), &other).await.0,
        404
    );

    // Audited: one plan.revise per revision, with the numbers and what was superseded.
    let (_, events) = app.get("/v1/audit/events?action=plan.revise", &carol).await;
    let ok: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["decision"] != "deny")
        .collect();
    assert_eq!(ok.len(), 2, "{events}");
    assert!(ok
        .iter()
        .any(|e| e["context"]["to_revision"] == 2 && e["context"]["superseded_approvals"] == 1));

    // Approve revision 3 and start it: revising while it is active is a 409.
    let (status, _) = app
        .post(
            "/v1/approvals",
            &carol,
            &json!({"plan_id": id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, started) = app
        .post(&format!("/v1/plans/{id}/execute"), &alice, &json!({}))
        .await;
    assert!(status == 202 || status == 503, "{status} {started}");
    let (status, busy) = app.post(&path, &alice, &json!({"steps": steps(4)})).await;
    assert_eq!(
        (status, busy["error"]["code"].as_str()),
        (409, Some("plan_active")),
        "{busy}"
    );
    app.stop().await;
}
