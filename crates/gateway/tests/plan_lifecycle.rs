//! The plan lifecycle end to end: create -> approval required -> self-approval refused ->
//! approval by another approver -> execute -> idempotent re-execute; tampering refused.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn create_approve_execute_and_reexecute() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator", "approver"]);
    let bob = token("bob", "acme", &["approver"]);

    let (status, created) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["approval_required"], true);
    assert_eq!(created["plan"]["risk_level"], "medium");
    assert_eq!(created["plan"]["approval_state"], "pending");
    assert_eq!(created["plan"]["created_by"], "alice");
    assert_eq!(created["plan"]["context"]["tenant_id"], "acme");
    assert_eq!(created["plan"]["steps"].as_array().unwrap().len(), 2);
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();

    // Executing before approval is refused.
    let (status, body) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "approval_required");

    // The creator cannot approve their own plan, even with the approver role.
    let (status, body) = app
        .post(
            "/v1/approvals",
            &alice,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "self_approval");

    // A plain operator without the approver role cannot approve.
    let carol = token("carol", "acme", &["operator"]);
    let (status, body) = app
        .post(
            "/v1/approvals",
            &carol,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "forbidden");

    // Another approver approves; the plan hash is stored.
    let (status, approval) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "approved", "note": "lgtm"}),
        )
        .await;
    assert_eq!(status, 201, "{approval}");
    assert_eq!(approval["approver"], "bob");
    let (_, plan) = app.get(&format!("/v1/plans/{plan_id}"), &alice).await;
    assert_eq!(plan["approval_state"], "approved");
    assert_eq!(approval["approved_hash"], plan["plan_hash"]);

    // A second decision conflicts.
    let (status, body) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "denied"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // Execute creates a pending execution.
    let (status, exec) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 202, "{exec}");
    assert_eq!(exec["status"], "pending");
    assert_eq!(exec["created"], true);
    let exec_id = exec["execution_id"].as_str().unwrap().to_owned();

    // Re-executing (either URL form) returns the same execution.
    let (status, again) = app
        .post(&format!("/v1/plans/{plan_id}:execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["execution_id"], exec_id.as_str());
    assert_eq!(again["created"], false);

    let (status, view) = app.get(&format!("/v1/executions/{exec_id}"), &alice).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["plan_id"], plan_id.as_str());
    assert!(view["tool_calls"].as_array().unwrap().is_empty());
    let (status, list) = app
        .get("/v1/executions?status=pending&count=exact", &alice)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["pagination"]["total"], 1);

    // Concurrent executes still give one execution.
    let mut handles = Vec::new();
    for _ in 0..8 {
        let http = app.http.clone();
        let url = format!("{}/v1/plans/{plan_id}/execute", app.url);
        let t = alice.clone();
        handles.push(tokio::spawn(async move {
            let r = http.post(url).bearer_auth(t).send().await.unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            v["execution_id"].as_str().unwrap().to_owned()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), exec_id);
    }

    // The audit trail has the story, and the chain verifies.
    let (_, events) = app.get("/v1/audit/events?limit=200", &alice).await;
    let actions: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for wanted in [
        "plan.create",
        "plan.execute",
        "approval.create",
        "approval.approved",
    ] {
        assert!(actions.contains(&wanted), "missing {wanted} in {actions:?}");
    }
    let (_, verify) = app.get("/v1/audit/verify", &alice).await;
    assert_eq!(verify["ok"], true, "{verify}");
    app.stop().await;
}

#[tokio::test]
async fn plan_edited_after_approval_is_refused() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let (_, created) = app.create_scale_plan(&alice).await;
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 201);

    // Someone with database access bumps the replica count after approval.
    sqlx::query("UPDATE plan_steps SET input_json = jsonb_set(input_json, '{replicas}', '30') WHERE plan_id = $1::uuid AND ordinal = 0")
        .bind(&plan_id)
        .execute(app.db.store.pool())
        .await
        .unwrap();

    let (status, body) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_code(&body), "plan_modified");
    let (_, list) = app.get("/v1/executions?count=exact", &alice).await;
    assert_eq!(list["pagination"]["total"], 0, "nothing was executed");
    let (_, denied) = app
        .get(
            "/v1/audit/events?action=plan.execute&decision=deny&count=exact",
            &alice,
        )
        .await;
    assert_eq!(denied["pagination"]["total"], 1, "{denied}");
    app.stop().await;
}

#[tokio::test]
async fn denied_plan_cannot_execute_and_low_risk_dev_plan_needs_no_approval() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let (_, created) = app.create_scale_plan(&alice).await;
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "denied", "note": "not now"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 403, "{body}");

    let low = json!({
        "summary": "Annotate the deploy",
        "context": {"environment": "dev", "namespace": "web"},
        "steps": [{"tool": "grafana", "action": "annotation-create", "input": {"text": "deploy"}}]
    });
    let (status, created) = app.post("/v1/plans", &alice, &low).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["plan"]["risk_level"], "low");
    assert_eq!(created["approval_required"], false);
    let plan_id = created["plan_id"].as_str().unwrap();
    let (status, exec) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 202, "{exec}");
    app.stop().await;
}

#[tokio::test]
async fn policy_denials_and_risk_from_steps() {
    let app = spawn_app().await;
    let viewer = token("vic", "acme", &["viewer"]);
    let alice = token("alice", "acme", &["operator"]);
    // A viewer cannot create write plans.
    let (status, body) = app.create_scale_plan(&viewer).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "policy_denied");
    // Unknown environments are denied for writes.
    let mut plan = scale_plan_body();
    plan["context"]["environment"] = json!("moon");
    let (status, body) = app.post("/v1/plans", &alice, &plan).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown_environment"));
    // A destructive step is high risk and needs break-glass to execute.
    let delete = json!({
        "summary": "Delete a stuck pod",
        "context": {"environment": "dev", "namespace": "web"},
        "steps": [{"tool": "kubectl", "action": "delete", "input": {"resource": "pod/web-1", "namespace": "web"}}]
    });
    let (status, created) = app.post("/v1/plans", &alice, &delete).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["plan"]["risk_level"], "high");
    assert_eq!(created["plan"]["constraints"]["break_glass_required"], true);
    let plan_id = created["plan_id"].as_str().unwrap();
    let bob = token("bob", "acme", &["approver"]);
    app.post(
        "/v1/approvals",
        &bob,
        &json!({"plan_id": plan_id, "status": "approved"}),
    )
    .await;
    let (status, body) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "break_glass_required");
    // Break-glass is a role (gateway.break_glass_roles) plus a reason, never just a header.
    let execute = |token: String, reason: Option<&'static str>| {
        let mut req = app
            .http
            .post(format!("{}/v1/plans/{plan_id}/execute", app.url))
            .bearer_auth(token)
            .header("X-Break-Glass", "true");
        if let Some(reason) = reason {
            req = req.header("X-Break-Glass-Reason", reason);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = execute(alice.clone(), Some("pod stuck")).await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "break_glass_forbidden"),
        "{body}"
    );
    let carol = token("carol", "acme", &["operator", "break-glass"]);
    let (status, body) = execute(carol.clone(), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "break_glass_reason_required"),
        "{body}"
    );
    let (status, body) = execute(carol, Some("pod stuck since 03:00, paging on-call")).await;
    assert_eq!(status, 202, "{body}");
    let execution = body["execution_id"].as_str().unwrap();
    let (_, exec) = app
        .get(&format!("/v1/executions/{execution}"), &alice)
        .await;
    assert_eq!(exec["break_glass"], true, "{exec}");
    assert_eq!(
        exec["break_glass_reason"],
        "pod stuck since 03:00, paging on-call"
    );
    // The caller's risk claim is not accepted.
    let mut claimed = scale_plan_body();
    claimed["risk_level"] = json!("low");
    let (status, body) = app.post("/v1/plans", &alice, &claimed).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("risk_level"));
    app.stop().await;
}

/// A low-risk dev plan that needs no approval.
fn annotate_plan() -> serde_json::Value {
    json!({
        "summary": "Annotate the deploy",
        "context": {"environment": "dev", "namespace": "web"},
        "steps": [{"tool": "grafana", "action": "annotation-create", "input": {"text": "deploy"}}]
    })
}

#[tokio::test]
async fn temporal_outage_leaves_execution_pending_and_cancel_works_without_a_workflow() {
    // Nothing listens on port 1: dispatch fails and execute answers 503.
    let app = spawn_app_with(|c| c.orchestrator.temporal_addr = Some("127.0.0.1:1".into())).await;
    let alice = token("alice", "acme", &["operator"]);
    let (_, created) = app.post("/v1/plans", &alice, &annotate_plan()).await;
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "orchestrator_unavailable");
    let (_, list) = app
        .get("/v1/executions?status=pending&count=exact", &alice)
        .await;
    assert_eq!(
        list["pagination"]["total"], 1,
        "the execution is kept, pending, for a retry"
    );
    let exec_id = list["data"][0]["execution_id"].as_str().unwrap().to_owned();

    let viewer = token("vic", "acme", &["viewer"]);
    let (status, _) = app
        .post(
            &format!("/v1/executions/{exec_id}/cancel"),
            &viewer,
            &json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .post(
            &format!("/v1/executions/{exec_id}/cancel"),
            &alice,
            &json!({"reason": "not needed"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let (status, body) = app
        .post(
            &format!("/v1/executions/{exec_id}/cancel"),
            &alice,
            &json!({}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "already_finished"));
    let (_, view) = app.get(&format!("/v1/executions/{exec_id}"), &alice).await;
    assert_eq!(view["error"], "not needed");
    let (status, _) = app
        .post(
            &format!("/v1/executions/{}/cancel", uuid::Uuid::now_v7()),
            &alice,
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn execute_starts_a_temporal_workflow_named_after_the_execution() {
    let temporal =
        std::env::var("CARAPULSE_TEST_TEMPORAL").unwrap_or_else(|_| "127.0.0.1:7233".into());
    assert!(
        std::net::TcpStream::connect(&temporal).is_ok(),
        "no Temporal at {temporal}: run ./scripts/test.sh"
    );
    let queue = format!("gateway-test-{}", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(move |c| {
        c.orchestrator.temporal_addr = Some(temporal);
        c.orchestrator.task_queue = queue;
    })
    .await;
    let alice = token("alice", "acme", &["operator"]);
    let (_, created) = app.post("/v1/plans", &alice, &annotate_plan()).await;
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (status, exec) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 202, "{exec}");
    let exec_id = exec["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(exec["workflow_id"], exec_id.as_str());
    let (_, view) = app.get(&format!("/v1/executions/{exec_id}"), &alice).await;
    assert_eq!(view["workflow_id"], exec_id.as_str());
    // No worker polls this queue, so the workflow waits; cancel reaches it as a signal.
    let (status, body) = app
        .post(
            &format!("/v1/executions/{exec_id}/cancel"),
            &alice,
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("cancelling")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn workflow_catalogue_list_and_start() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let (status, list) = app.get("/v1/workflows", &alice).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "gitops_deploy",
            "helm_release",
            "scale_service",
            "incident_remediation",
            "secret_rotation",
            "release_rollback",
            "service_restart"
        ]
    );
    assert!(list["data"][2]["input_schema"]["properties"]["replicas"].is_object());

    let start = json!({
        "input": {"resource": "deployment/web", "namespace": "web", "replicas": 3, "current_replicas": 2},
        "context": {"environment": "staging", "namespace": "web"}
    });
    let (status, created) = app
        .post("/v1/workflows/scale_service/start", &alice, &start)
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["approval_required"], true,
        "medium risk needs approval"
    );
    assert_eq!(created["workflow"], "scale_service");
    assert_eq!(created["plan"]["meta"]["workflow"]["name"], "scale_service");
    assert_eq!(created["plan"]["planner"], "workflow");
    // Read (captures the live count), scale, rollout status, ready replicas.
    let steps = created["plan"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "{created}");
    assert_eq!(steps[0]["capture"]["current_replicas"], ".spec.replicas");
    assert_eq!(steps[3]["expect"][0]["path"], ".status.readyReplicas");

    let mut too_far = start.clone();
    too_far["input"]["replicas"] = json!(50);
    let (status, body) = app
        .post("/v1/workflows/scale_service/start", &alice, &too_far)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("input.replicas"),
        "{body}"
    );
    let (status, _) = app.post("/v1/workflows/nope/start", &alice, &start).await;
    assert_eq!(status, 404);
    let viewer = token("vic", "acme", &["viewer"]);
    let (status, _) = app
        .post("/v1/workflows/scale_service/start", &viewer, &start)
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}
