//! Approvals beyond the API call: the pending/decided lists, the expiry sweeper, and the Linear
//! flow against a mock GraphQL server (issue created with `approval:pending`, a label added by
//! a person becomes an attributed decision, separation of duties, expiry comment).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn approval_state(app: &TestApp, plan_id: &str) -> String {
    let row: (String,) =
        sqlx::query_as("SELECT approval_state FROM plans WHERE plan_id = $1::uuid")
            .bind(plan_id)
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();
    row.0
}

async fn make_overdue(app: &TestApp, plan_id: &str) {
    sqlx::query("UPDATE plans SET approval_expires_at = now() - interval '1 second' WHERE plan_id = $1::uuid")
        .bind(plan_id)
        .execute(app.db.store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn lists_and_the_expiry_sweeper() {
    let app = spawn_app_with(|c| c.approvals.sweep_interval_secs = 1).await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let other = token("eve", "other", &["approver"]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, created) = app.create_scale_plan(&alice).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["plan_id"].as_str().unwrap().to_owned());
    }
    let (status, pending) = app
        .get("/v1/approvals?status=pending&limit=2&count=exact", &bob)
        .await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["pagination"]["total"], 3);
    assert_eq!(pending["data"].as_array().unwrap().len(), 2);
    assert_eq!(pending["data"][0]["plan_id"], ids[0], "oldest first");
    assert_eq!(pending["pagination"]["next_offset"], 2);
    let cursor = pending["pagination"]["next_cursor"].as_str().unwrap();
    let (status, rest) = app
        .get(
            &format!("/v1/approvals?status=pending&limit=2&cursor={cursor}"),
            &bob,
        )
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        rest["data"][0]["plan_id"], ids[2],
        "the page after the cursor"
    );
    assert!(rest["pagination"]["next_cursor"].is_null());
    let (status, both) = app
        .get(
            &format!("/v1/approvals?status=pending&offset=2&cursor={cursor}"),
            &bob,
        )
        .await;
    assert_eq!(status, 400, "cursor and offset together: {both}");
    let (status, deep) = app.get("/v1/approvals?offset=10001", &bob).await;
    assert_eq!(status, 400, "offsets are capped: {deep}");
    let (_, foreign) = app.get("/v1/approvals?count=exact", &other).await;
    assert_eq!(foreign["pagination"]["total"], 0, "tenants are separate");

    let (status, body) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": ids[0], "status": "approved", "source": "cli"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, approved) = app.get("/v1/approvals?status=approved", &bob).await;
    assert_eq!(approved["data"][0]["plan_id"], ids[0]);
    // The body claimed "cli": the server records the channel it saw (the API), not the claim.
    assert_eq!(approved["data"][0]["source"], "api");
    assert_eq!(approved["data"][0]["approver"], "bob");

    make_overdue(&app, &ids[1]).await;
    wait_for("the sweeper", || async {
        approval_state(&app, &ids[1]).await == "expired"
    })
    .await;
    assert_eq!(approval_state(&app, &ids[2]).await, "pending");
    let (_, expired) = app.get("/v1/approvals?status=expired", &bob).await;
    assert_eq!(expired["data"][0]["approver"], "carapulse:expiry");
    assert_eq!(expired["data"][0]["source"], "system");
    let (_, events) = app
        .get("/v1/audit/events?action=approval.expired", &bob)
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
    // An expired plan can no longer be approved.
    let (status, _) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": ids[1], "status": "approved"}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app.get("/v1/approvals?status=maybe", &bob).await;
    assert_eq!(status, 422);
    let (_, verify) = app.get("/v1/audit/verify", &bob).await;
    assert_eq!(verify["ok"], true, "{verify}");
    app.stop().await;
}

/// The status of a plan's Linear approval request.
async fn request_status(app: &TestApp, plan: &str) -> String {
    let (status,): (String,) =
        sqlx::query_as("SELECT status FROM approval_requests WHERE plan_id = $1::uuid")
            .bind(plan)
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();
    status
}

fn gql(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": data}))
}

fn issue(id: &str, key: &str, labels: &[(&str, &str)], added: Option<(&str, &str)>) -> Value {
    let history: Vec<Value> = added
        .map(|(label, email)| {
            vec![json!({"createdAt": "2026-11-29T10:00:00Z", "addedLabelIds": [label], "actor": {"id": "u1", "name": "X", "email": email}})]
        })
        .unwrap_or_default();
    json!({
        "id": id, "identifier": key,
        "labels": {"nodes": labels.iter().map(|(i, n)| json!({"id": i, "name": n})).collect::<Vec<_>>()},
        "history": {"nodes": history}
    })
}

async fn mount_base(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(header("authorization", "lin_api_test"))
        .and(body_string_contains("CarapulseTeamLabels"))
        .respond_with(gql(json!({"team": {"labels": {"nodes": [
            {"id": "L-pending", "name": "approval:pending"},
            {"id": "L-approved", "name": "approval:approved"},
            {"id": "L-other", "name": "bug"}]}}})))
        .mount(server)
        .await;
    // approval:denied is missing and gets created.
    Mock::given(method("POST"))
        .and(body_string_contains("CarapulseLabelCreate"))
        .and(body_string_contains("approval:denied"))
        .respond_with(gql(json!({"issueLabelCreate": {"success": true, "issueLabel": {"id": "L-denied", "name": "approval:denied"}}})))
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("CarapulseComment"))
        .respond_with(gql(json!({"commentCreate": {"success": true}})))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("CarapulseLabelCreate"))
        .and(body_string_contains("approval:expired"))
        .respond_with(gql(json!({"issueLabelCreate": {"success": true, "issueLabel": {"id": "L-expired", "name": "approval:expired"}}})))
        .expect(1)
        .mount(server)
        .await;
    for mutation in ["CarapulseIssueAddLabel", "CarapulseIssueRemoveLabel"] {
        Mock::given(method("POST"))
            .and(body_string_contains(mutation))
            .respond_with(gql(json!({"issueAddLabel": {"success": true}})))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn linear_issue_labels_become_attributed_decisions() {
    let server = MockServer::start().await;
    mount_base(&server).await;
    let created = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = created.clone();
    Mock::given(method("POST"))
        .and(body_string_contains("CarapulseIssueCreate"))
        .respond_with(move |req: &wiremock::Request| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let input = &body["variables"]["input"];
            assert_eq!(input["teamId"], "team-1");
            assert_eq!(input["labelIds"], json!(["L-pending"]));
            assert!(input["title"].as_str().unwrap().starts_with("[Carapulse] Approve: Scale web"));
            let description = input["description"].as_str().unwrap();
            assert!(description.contains("kubectl scale"));
            // Who depends on it and how many must approve, before anyone does.
            assert!(description.contains("- Approvers required: 1\n"), "{description}");
            assert!(
                description.contains("- Blast radius: **unknown: no service-graph data for this tenant"),
                "{description}"
            );
            gql(json!({"issueCreate": {"success": true, "issue": {"id": format!("iss-{n}"), "identifier": format!("OPS-{n}"), "url": format!("https://linear.app/acme/issue/OPS-{n}")}}}))
        })
        .mount(&server)
        .await;
    // Issue 1: approved by bob; issue 2: approved by its own creator (refused);
    // issue 3: denied by carol; issue 4: no label yet (expires).
    Mock::given(method("POST"))
        .and(body_string_contains("CarapulseIssues"))
        .respond_with(gql(json!({"issues": {"nodes": [
            issue("iss-1", "OPS-1", &[("L-pending", "approval:pending"), ("L-approved", "approval:approved")], Some(("L-approved", "Bob@Example.com"))),
            issue("iss-2", "OPS-2", &[("L-approved", "approval:approved")], Some(("L-approved", "alice@example.com"))),
            issue("iss-3", "OPS-3", &[("L-denied", "approval:denied")], Some(("L-denied", "carol@example.com"))),
            issue("iss-4", "OPS-4", &[("L-pending", "approval:pending")], None),
            issue("iss-5", "OPS-5", &[("L-pending", "approval:pending")], None),
        ]}})))
        .mount(&server)
        .await;

    let base = format!("{}/graphql", server.uri());
    let app = spawn_app_with(move |c| {
        c.connectors.linear.token = Some("lin_api_test".into());
        c.connectors.linear.team_id = Some("team-1".into());
        c.connectors.linear.base_url = base;
        c.connectors.linear.poll_interval_ms = 200;
        c.connectors.linear.user_map =
            [("alice@example.com".to_string(), "alice".to_string())].into();
        c.approvals.sweep_interval_secs = 1;
    })
    .await;
    let alice = token("alice", "acme", &["operator"]);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (status, created) = app.create_scale_plan(&alice).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["plan_id"].as_str().unwrap().to_owned());
    }
    wait_for("four issues", || async {
        created.load(std::sync::atomic::Ordering::SeqCst) == 4
    })
    .await;
    wait_for("bob's approval", || async {
        approval_state(&app, &ids[0]).await == "approved"
    })
    .await;
    wait_for("carol's denial", || async {
        approval_state(&app, &ids[2]).await == "denied"
    })
    .await;

    let bob = token("bob", "acme", &["approver"]);
    let (_, approved) = app.get("/v1/approvals?status=approved", &bob).await;
    let row = &approved["data"][0];
    assert_eq!(row["source"], "linear");
    assert_eq!(row["approver"], "bob@example.com");
    assert!(row["note"].as_str().unwrap().contains("OPS-1"));
    let (_, denied) = app.get("/v1/approvals?status=denied", &bob).await;
    assert_eq!(denied["data"][0]["approver"], "carol@example.com");

    // Separation of duties: alice labelled her own plan; it stays pending, refused once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(approval_state(&app, &ids[1]).await, "pending");
    let (_, pending) = app.get("/v1/approvals", &bob).await;
    let item = pending["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plan_id"] == ids[1].as_str())
        .unwrap()
        .clone();
    assert_eq!(item["external"]["key"], "OPS-2");
    assert_eq!(
        item["external"]["url"],
        "https://linear.app/acme/issue/OPS-2"
    );
    let comments: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter(|b| b.contains("CarapulseComment"))
        .collect();
    let sod: Vec<&String> = comments
        .iter()
        .filter(|c| c.contains("separation of duties"))
        .collect();
    assert_eq!(
        sod.len(),
        1,
        "refusal commented once, not on every poll: {comments:#?}"
    );
    assert!(comments
        .iter()
        .any(|c| c.contains("recorded: approved by bob@example.com")));
    let (_, events) = app
        .get("/v1/audit/events?action=approval.create", &bob)
        .await;
    assert!(
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["decision"] == "deny"
                && e["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("separation of duties")),
        "{events}"
    );

    // Expiry: the sweeper expires plan 4 and the watcher closes its issue with a comment.
    make_overdue(&app, &ids[3]).await;
    wait_for("expiry", || async {
        approval_state(&app, &ids[3]).await == "expired"
    })
    .await;
    wait_for("the expiry comment", || async {
        server.received_requests().await.unwrap().iter().any(|r| {
            let b = String::from_utf8_lossy(&r.body);
            b.contains("CarapulseComment") && b.contains("iss-4") && b.contains("expired")
        })
    })
    .await;
    // Labelled like the Go version did: approval:expired added, approval:pending removed, and
    // nothing else touched.
    let bodies: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let label_calls: Vec<&String> = bodies
        .iter()
        .filter(|b| b.contains("CarapulseIssueAddLabel") || b.contains("CarapulseIssueRemoveLabel"))
        .collect();
    assert!(
        label_calls
            .iter()
            .any(|b| b.contains("issueAddLabel") && b.contains("iss-4") && b.contains("L-expired")),
        "{label_calls:?}"
    );
    assert!(
        label_calls.iter().any(|b| b.contains("issueRemoveLabel")
            && b.contains("iss-4")
            && b.contains("L-pending")),
        "{label_calls:?}"
    );
    assert!(
        label_calls.iter().all(|b| b.contains("iss-4")),
        "only the expired issue is relabelled: {label_calls:?}"
    );
    // The watcher comments first and records the closed request after: wait for the record.
    wait_for("the request recorded as expired", || async {
        request_status(&app, &ids[3]).await == "expired"
    })
    .await;

    // Withdrawn: a plan deleted before its decision gets a comment on its issue, and its
    // request closes.
    let (status, created5) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 201, "{created5}");
    let id5 = created5["plan_id"].as_str().unwrap().to_owned();
    wait_for("the fifth issue", || async {
        created.load(std::sync::atomic::Ordering::SeqCst) == 5
    })
    .await;
    wait_for("the fifth request open", || async {
        request_status(&app, &id5).await == "open"
    })
    .await;
    let (status, body) = app.delete(&format!("/v1/plans/{id5}"), &alice).await;
    assert_eq!(status, 204, "{body}");
    wait_for("the withdrawal comment", || async {
        server.received_requests().await.unwrap().iter().any(|r| {
            let b = String::from_utf8_lossy(&r.body);
            b.contains("CarapulseComment") && b.contains("iss-5") && b.contains("withdrawn")
        })
    })
    .await;
    wait_for("the request closed", || async {
        request_status(&app, &id5).await == "closed"
    })
    .await;

    // Revised after bob approved it: a new issue asks again for revision 2, and the first
    // issue is told where the decision went.
    let mut steps = created5["plan"]["steps"].clone();
    for step in steps.as_array_mut().unwrap() {
        let map = step.as_object_mut().unwrap();
        map.remove("step_id");
        map.remove("ordinal");
    }
    steps[0]["input"]["replicas"] = json!(6);
    let (status, revised) = app
        .post(
            &format!("/v1/plans/{}/revisions", ids[0]),
            &alice,
            &json!({"steps": steps}),
        )
        .await;
    assert_eq!(status, 201, "{revised}");
    assert_eq!(revised["superseded_approvals"], 1);
    wait_for("a sixth issue, for revision 2", || async {
        created.load(std::sync::atomic::Ordering::SeqCst) == 6
    })
    .await;
    wait_for("the first issue told", || async {
        server.received_requests().await.unwrap().iter().any(|r| {
            let b = String::from_utf8_lossy(&r.body);
            b.contains("CarapulseComment")
                && b.contains("iss-1")
                && b.contains("revised to revision 2")
                && b.contains("OPS-6")
        })
    })
    .await;
    let issued: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter(|b| b.contains("CarapulseIssueCreate"))
        .collect();
    assert!(
        issued
            .last()
            .unwrap()
            .contains("Revision: **2**, changes: 1 step changed"),
        "{:?}",
        issued.last()
    );
    app.stop().await;
}

#[tokio::test]
async fn linear_outages_back_off_and_recover() {
    let server = MockServer::start().await;
    mount_base(&server).await;
    Mock::given(method("POST"))
        .and(body_string_contains("CarapulseIssueCreate"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("CarapulseIssueCreate"))
        .respond_with(gql(json!({"issueCreate": {"success": true, "issue": {"id": "iss-9", "identifier": "OPS-9", "url": "https://linear.app/x/OPS-9"}}})))
        .mount(&server)
        .await;
    let base = format!("{}/graphql", server.uri());
    let app = spawn_app_with(move |c| {
        c.connectors.linear.token = Some("lin_api_test".into());
        c.connectors.linear.team_id = Some("team-1".into());
        c.connectors.linear.base_url = base;
        c.connectors.linear.poll_interval_ms = 200;
    })
    .await;
    let alice = token("alice", "acme", &["operator"]);
    let (_, created) = app.create_scale_plan(&alice).await;
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    wait_for("the failure to be recorded", || async {
        let row: Option<(i32, Option<String>)> = sqlx::query_as(
            "SELECT attempts, last_error FROM approval_requests WHERE plan_id = $1::uuid",
        )
        .bind(&plan_id)
        .fetch_optional(app.db.store.pool())
        .await
        .unwrap();
        matches!(row, Some((1, Some(e))) if e.contains("503"))
    })
    .await;
    // First retry after 5 s of back-off.
    let started = std::time::Instant::now();
    for _ in 0..200 {
        let row: (String,) =
            sqlx::query_as("SELECT status FROM approval_requests WHERE plan_id = $1::uuid")
                .bind(&plan_id)
                .fetch_one(app.db.store.pool())
                .await
                .unwrap();
        if row.0 == "open" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "retried too early: {waited:?}"
    );
    let bob = token("bob", "acme", &["approver"]);
    let (_, pending) = app.get("/v1/approvals", &bob).await;
    assert_eq!(pending["data"][0]["external"]["key"], "OPS-9", "{pending}");
    app.stop().await;
}
