//! Sessions: create with members and a group, list the caller's, get with members, owner-only
//! membership changes, owner-only update and delete (refused while the session's plans run), and
//! `gateway.session_required` scoping plans and event streams.

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

#[tokio::test]
async fn owners_update_and_delete_sessions() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["operator"]);
    let (_, s1) = app
        .post(
            "/v1/sessions",
            &alice,
            &json!({"name": "incident-7", "group": "sre", "members": ["bob"]}),
        )
        .await;
    let id = s1["session_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/sessions/{id}");

    // Members do not change the session; its owner does.
    let (status, body) = app.put(&path, &bob, &json!({"name": "mine now"})).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
    let (status, updated) = app
        .put(
            &path,
            &alice,
            &json!({"name": "incident-7 (resolved)", "group": null, "metadata": {"ticket": "INC-7"}}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "incident-7 (resolved)");
    assert_eq!(
        updated["group"],
        serde_json::Value::Null,
        "null takes it out of its group"
    );
    assert_eq!(updated["metadata"]["ticket"], "INC-7");
    let (status, _) = app.put(&path, &alice, &json!({"group": "oncall"})).await;
    assert_eq!(status, 200);
    let (_, again) = app.get(&path, &alice).await;
    assert_eq!(
        again["name"], "incident-7 (resolved)",
        "an absent field keeps its value"
    );
    assert_eq!(again["group"], "oncall");
    assert_eq!(
        app.put(&path, &alice, &json!({})).await.0,
        422,
        "nothing to change"
    );
    assert_eq!(app.put(&path, &alice, &json!({"name": " "})).await.0, 422);
    assert_eq!(
        app.put(&path, &alice, &json!({"owner": "bob"})).await.0,
        400
    );

    // Not while one of its plans has an execution that has not ended.
    let mut plan = read_plan_body();
    plan["session_id"] = json!(id);
    let (status, created) = app.post("/v1/plans", &alice, &plan).await;
    assert_eq!(status, 201, "{created}");
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let (status, started) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert!(status == 202 || status == 200, "{started}");
    let exec_id = started["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&path, &bob).await.0, 403);
    let (status, busy) = app.delete(&path, &alice).await;
    assert_eq!((status, error_code(&busy)), (409, "session_busy"), "{busy}");
    let (status, cancelled) = app
        .post(
            &format!("/v1/executions/{exec_id}/cancel"),
            &alice,
            &json!({"reason": "closing the session"}),
        )
        .await;
    assert!(status < 300, "{cancelled}");
    let (_, view) = app.get(&format!("/v1/executions/{exec_id}"), &alice).await;
    assert_eq!(view["status"], "cancelled", "{view}");
    let (status, _) = app.delete(&path, &alice).await;
    assert_eq!(status, 204);
    assert_eq!(app.get(&path, &alice).await.0, 404);
    assert_eq!(app.delete(&path, &alice).await.0, 404);
    // Its plans stay, still naming it.
    let (_, kept) = app.get(&format!("/v1/plans/{plan_id}"), &alice).await;
    assert_eq!(kept["session_id"], id.as_str(), "{kept}");
    let (_, events) = app
        .get(&format!("/v1/audit/events?resource_id={id}"), &alice)
        .await;
    let actions: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    for action in ["session.update", "session.delete"] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    let denied = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["decision"] == "deny")
        .count();
    assert_eq!(
        denied, 2,
        "bob's update and delete were refused and audited: {events}"
    );
    app.stop().await;
}
