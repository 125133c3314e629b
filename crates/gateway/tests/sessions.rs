//! Sessions: create with members and a group, list the caller's, get with members, owner-only
//! membership changes, and `gateway.session_required` scoping plans and event streams.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn sessions_and_session_scoping() {
    let app = spawn_app_with(|c| c.gateway.session_required = true).await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["operator"]);
    let carol = token("carol", "acme", &["operator"]);
    let admin = token("root", "acme", &["admin"]);
    let eve = token("eve", "other", &["admin"]);

    let (status, s1) = app
        .post(
            "/v1/sessions",
            &alice,
            &json!({"name": "incident-42", "group": "sre", "members": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201, "{s1}");
    assert_eq!(s1["group"], "sre");
    let id = s1["session_id"].as_str().unwrap().to_owned();
    app.post("/v1/sessions", &carol, &json!({"name": "carol-only"}))
        .await;

    let (_, mine) = app.get("/v1/sessions?count=exact", &bob).await;
    assert_eq!(
        mine["pagination"]["total"], 1,
        "bob sees the session he was added to"
    );
    let (_, all) = app.get("/v1/sessions?all=true&count=exact", &admin).await;
    assert_eq!(all["pagination"]["total"], 2);
    let (_, by_group) = app
        .get("/v1/sessions?group=sre&all=true&count=exact", &admin)
        .await;
    assert_eq!(by_group["pagination"]["total"], 1);
    let (status, one) = app.get(&format!("/v1/sessions/{id}"), &bob).await;
    assert_eq!(status, 200);
    let members: Vec<&str> = one["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_str().unwrap())
        .collect();
    assert_eq!(members, vec!["alice", "bob"]);
    assert_eq!(app.get(&format!("/v1/sessions/{id}"), &carol).await.0, 403);
    assert_eq!(app.get(&format!("/v1/sessions/{id}"), &eve).await.0, 404);

    // Only the owner changes members.
    assert_eq!(
        app.post(
            &format!("/v1/sessions/{id}/members"),
            &bob,
            &json!({"member_id": "carol"})
        )
        .await
        .0,
        403
    );
    let resp = app
        .http
        .post(format!("{}/v1/sessions/{id}/members", app.url))
        .bearer_auth(&alice)
        .json(&json!({"member_id": "carol"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get(&format!("/v1/sessions/{id}"), &carol).await.0, 200);
    let resp = app
        .http
        .delete(format!("{}/v1/sessions/{id}/members/carol", app.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    // Plans need a session the creator belongs to.
    let mut body = scale_plan_body();
    let (status, err) = app.post("/v1/plans", &alice, &body).await;
    assert_eq!((status, error_code(&err)), (403, "session_required"));
    body["session_id"] = json!(id);
    assert_eq!(
        app.post("/v1/plans", &carol, &body).await.0,
        403,
        "carol was removed"
    );
    let (status, created) = app.post("/v1/plans", &bob, &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["plan"]["session_id"], id.as_str());

    // Event streams too.
    let resp = app
        .http
        .get(format!("{}/v1/events", app.url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = app
        .http
        .get(format!("{}/v1/events?session_id={id}", app.url))
        .bearer_auth(&carol)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = app
        .http
        .get(format!("{}/v1/events?session_id={id}", app.url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    app.stop().await;
}
