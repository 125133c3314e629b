//! Authentication, tenancy, rate limits and bad input: each gets a precise JSON 4xx, a
//! security decision gets an audit event, and nothing changes.

mod common;

use base64::Engine as _;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn count_plans(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM plans")
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
    n
}

async fn system_auth_denials(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE tenant_id = 'carapulse-system' AND action = 'auth.verify' AND decision = 'deny'",
    )
    .fetch_one(app.db.store.pool())
    .await
    .unwrap();
    n
}

fn hs256(claims: Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn tokens_missing_forged_expired_or_from_wrong_issuer_are_refused() {
    let app = spawn_app().await;
    let good = json!({"sub": "alice", "iss": "carapulse-dev", "exp": now() + 600, "tenant_id": "acme", "groups": ["operator"]});
    let cases = [
        ("no token", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        (
            "bad signature",
            Some(hs256(good.clone(), "another-secret-another-secret-1234567")),
        ),
        (
            "wrong issuer",
            Some(hs256(
                json!({"sub": "alice", "iss": "evil", "exp": now() + 600, "tenant_id": "acme"}),
                carapulse_core::testing::TEST_JWT_SECRET,
            )),
        ),
        (
            "expired",
            Some(hs256(
                json!({"sub": "alice", "iss": "carapulse-dev", "exp": now() - 3600, "tenant_id": "acme"}),
                carapulse_core::testing::TEST_JWT_SECRET,
            )),
        ),
        (
            "no tenant",
            Some(hs256(
                json!({"sub": "alice", "iss": "carapulse-dev", "exp": now() + 600}),
                carapulse_core::testing::TEST_JWT_SECRET,
            )),
        ),
        (
            "no exp",
            Some(hs256(
                json!({"sub": "alice", "iss": "carapulse-dev", "tenant_id": "acme"}),
                carapulse_core::testing::TEST_JWT_SECRET,
            )),
        ),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(r#"{"alg":"none","typ":"JWT"}"#),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good.to_string())
            )),
        ),
        (
            "RS256 without JWKS",
            Some(
                encode(
                    &Header::new(Algorithm::RS256),
                    &good,
                    &EncodingKey::from_rsa_pem(include_bytes!("fixtures/oidc_rsa.pem")).unwrap(),
                )
                .unwrap(),
            ),
        ),
    ];
    for (name, token) in &cases {
        let mut req = app
            .http
            .post(format!("{}/v1/plans", app.url))
            .json(&scale_plan_body());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{name}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(error_code(&body), "unauthorized", "{name}: {body}");
    }
    assert_eq!(count_plans(&app).await, 0, "nothing was created");
    // Refusals are audited on the system chain, one row per peer per window (the rest are
    // counted in the next row), so a flood of bad tokens cannot flood the log.
    assert_eq!(
        system_auth_denials(&app).await,
        1,
        "the first refusal of the window is audited"
    );
    // A valid token works.
    let (status, _) = app
        .post(
            "/v1/plans",
            &hs256(good, carapulse_core::testing::TEST_JWT_SECRET),
            &scale_plan_body(),
        )
        .await;
    assert_eq!(status, 201);
    app.stop().await;
}

#[tokio::test]
async fn oidc_rs256_tokens_are_checked_against_the_jwks() {
    let idp = MockServer::start().await;
    let jwks: Value = serde_json::from_str(include_str!("fixtures/jwks.json")).unwrap();
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&jwks))
        .expect(1)
        .mount(&idp)
        .await;
    let jwks_url = format!("{}/jwks.json", idp.uri());
    let app = spawn_app_with(|c| {
        c.gateway.dev_mode = false;
        c.gateway.dev_jwt_secret = None;
        c.gateway.oidc_issuer = Some("https://idp.test/".into());
        c.gateway.oidc_client_id = Some("carapulse".into());
        c.gateway.oidc_jwks_url = Some(jwks_url);
    })
    .await;
    let key = EncodingKey::from_rsa_pem(include_bytes!("fixtures/oidc_rsa.pem")).unwrap();
    let other = EncodingKey::from_rsa_pem(include_bytes!("fixtures/other_rsa.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let claims = |iss: &str, aud: &str, exp: i64| json!({"sub": "oidc-user", "email": "o@example.com", "iss": iss, "aud": aud, "exp": exp, "tenant_id": "acme", "groups": ["operator"]});
    let ok = encode(
        &header,
        &claims("https://idp.test/", "carapulse", now() + 600),
        &key,
    )
    .unwrap();
    let (status, body) = app.get("/v1/plans", &ok).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get("/v1/plans", &ok).await;
    assert_eq!(
        status, 200,
        "second request is served from the cached key set"
    );

    // ES256 keys from the same JWKS work too.
    let ec = EncodingKey::from_ec_pem(include_bytes!("fixtures/oidc_ec.pem")).unwrap();
    let mut ec_header = Header::new(Algorithm::ES256);
    ec_header.kid = Some("test-ec-1".into());
    let es = encode(
        &ec_header,
        &claims("https://idp.test/", "carapulse", now() + 600),
        &ec,
    )
    .unwrap();
    let (status, body) = app.get("/v1/plans", &es).await;
    assert_eq!(status, 200, "ES256: {body}");
    // An RS256 header over an EC key id does not verify.
    let mut mixed = Header::new(Algorithm::RS256);
    mixed.kid = Some("test-ec-1".into());
    let confused = encode(
        &mixed,
        &claims("https://idp.test/", "carapulse", now() + 600),
        &key,
    )
    .unwrap();
    let (status, _) = app.get("/v1/plans", &confused).await;
    assert_eq!(status, 401, "algorithm/key confusion is refused");

    let forged = encode(
        &header,
        &claims("https://idp.test/", "carapulse", now() + 600),
        &other,
    )
    .unwrap();
    let wrong_iss = encode(
        &header,
        &claims("https://evil.test/", "carapulse", now() + 600),
        &key,
    )
    .unwrap();
    let wrong_aud = encode(
        &header,
        &claims("https://idp.test/", "other-app", now() + 600),
        &key,
    )
    .unwrap();
    let expired = encode(
        &header,
        &claims("https://idp.test/", "carapulse", now() - 600),
        &key,
    )
    .unwrap();
    let mut unknown_kid = header.clone();
    unknown_kid.kid = Some("nope".into());
    let unknown = encode(
        &unknown_kid,
        &claims("https://idp.test/", "carapulse", now() + 600),
        &key,
    )
    .unwrap();
    // With oidc_client_id set, a token without any `aud` is refused too.
    let mut no_aud_claims = claims("https://idp.test/", "carapulse", now() + 600);
    no_aud_claims.as_object_mut().unwrap().remove("aud");
    let no_aud = encode(&header, &no_aud_claims, &key).unwrap();
    // Dev tokens are not accepted when dev mode is off, whatever their signature.
    let dev = token("alice", "acme", &["admin"]);
    for (name, t) in [
        ("no audience", no_aud),
        ("forged", forged),
        ("issuer", wrong_iss),
        ("audience", wrong_aud),
        ("expired", expired),
        ("kid", unknown),
        ("hs256", dev),
    ] {
        let (status, body) = app.get("/v1/plans", &t).await;
        assert_eq!(status, 401, "{name}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn tenants_cannot_see_or_touch_each_other() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator", "approver"]);
    let mallory = token("mallory", "globex", &["operator", "approver", "admin"]);
    let (_, created) = app.create_scale_plan(&alice).await;
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();

    let (status, body) = app.get(&format!("/v1/plans/{plan_id}"), &mallory).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app
        .post(
            "/v1/approvals",
            &mallory,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/v1/plans/{plan_id}/execute"),
            &mallory,
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let (_, list) = app.get("/v1/plans?count=exact", &mallory).await;
    assert_eq!(list["pagination"]["total"], 0);
    let (_, audit) = app.get("/v1/audit/events", &mallory).await;
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant_id"] == "globex"),
        "{audit}"
    );

    // Claiming another tenant in the body is refused and audited.
    let mut body = scale_plan_body();
    body["context"]["tenant_id"] = json!("acme");
    let (status, resp) = app.post("/v1/plans", &mallory, &body).await;
    assert_eq!(status, 403, "{resp}");
    assert_eq!(error_code(&resp), "tenant_mismatch");
    let (_, own) = app
        .get(
            "/v1/audit/events?action=plan.create&decision=deny&count=exact",
            &mallory,
        )
        .await;
    assert_eq!(own["pagination"]["total"], 1);
    // An X-Tenant-Id header changes nothing: the token decides.
    let resp = app
        .http
        .get(format!("{}/v1/plans/{plan_id}", app.url))
        .bearer_auth(&mallory)
        .header("X-Tenant-Id", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_per_actor() {
    let app = spawn_app_with(|c| {
        c.gateway.rate_limit_per_second = 1.0;
        c.gateway.rate_limit_burst = 5;
    })
    .await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["operator"]);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let resp = app
            .http
            .get(format!("{}/v1/plans", app.url))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 429 {
            assert!(resp.headers().get("retry-after").is_some());
            let body: Value = resp.json().await.unwrap();
            assert_eq!(error_code(&body), "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(resp.status().as_u16());
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    let (status, _) = app.get("/v1/plans", &bob).await;
    assert_eq!(status, 200, "another actor has its own bucket");
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_precise_errors_and_changes_nothing() {
    let app = spawn_app_with(|c| c.gateway.max_body_bytes = 4096).await;
    let alice = token("alice", "acme", &["operator"]);
    let send_raw = |body: String, ct: &'static str| {
        let req = app
            .http
            .post(format!("{}/v1/plans", app.url))
            .bearer_auth(&alice)
            .header("content-type", ct)
            .body(body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, b) = send_raw("{\"summary\": ".into(), "application/json").await;
    assert_eq!((s, error_code(&b)), (400, "invalid_json"), "{b}");
    let (s, b) = send_raw(String::new(), "application/json").await;
    assert_eq!((s, error_code(&b)), (400, "invalid_json"), "{b}");
    let (s, b) = send_raw("summary=x".into(), "application/x-www-form-urlencoded").await;
    assert_eq!((s, error_code(&b)), (415, "unsupported_media_type"), "{b}");
    let big =
        json!({"summary": "x", "intent": "a".repeat(5000), "context": {"environment": "dev"}});
    let (s, b) = send_raw(big.to_string(), "application/json").await;
    assert_eq!((s, error_code(&b)), (413, "payload_too_large"), "{b}");

    let mut unknown = scale_plan_body();
    unknown["steps"][0]["shell"] = json!("rm -rf /");
    let (s, b) = app.post("/v1/plans", &alice, &unknown).await;
    assert_eq!((s, error_code(&b)), (400, "invalid_request"), "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("steps[0]"),
        "{b}"
    );

    let mut bad_tool = scale_plan_body();
    bad_tool["steps"][0]["tool"] = json!("bash");
    let (s, b) = app.post("/v1/plans", &alice, &bad_tool).await;
    assert_eq!(s, 400, "{b}");
    let mut injection = scale_plan_body();
    injection["steps"][0]["action"] = json!("--kubeconfig=/etc/shadow");
    let (s, b) = app.post("/v1/plans", &alice, &injection).await;
    assert_eq!(s, 400, "{b}");
    for (mutate, field) in [
        (json!(["steps", 0, "action", "exec"]), "steps[0].action"),
        (
            json!(["steps", 0, "input", {"resource": "deployment/web", "replicas": 3, "namespace": "--all"}]),
            "steps[0].input.namespace",
        ),
        (
            json!(["steps", 0, "input", {"resource": "deployment/web", "replicas": 3, "shell": "id"}]),
            "steps[0].input.shell",
        ),
        (
            json!(["steps", 0, "rollback", {"tool": "kubectl", "action": "scale", "input": {"resource": "-A", "replicas": 1}}]),
            "steps[0].rollback.input.resource",
        ),
    ] {
        let mut body = scale_plan_body();
        let path = mutate.as_array().unwrap();
        let step = &mut body["steps"][path[1].as_u64().unwrap() as usize];
        step[path[2].as_str().unwrap()] = path[3].clone();
        let (s, b) = app.post("/v1/plans", &alice, &body).await;
        assert_eq!(
            (s, error_code(&b)),
            (422, "invalid_request"),
            "{field}: {b}"
        );
        assert!(
            b["error"]["message"].as_str().unwrap().starts_with(field),
            "{field}: {b}"
        );
    }
    let mut bad_trigger = scale_plan_body();
    bad_trigger["trigger"] = json!("cron-ish");
    let (s, b) = app.post("/v1/plans", &alice, &bad_trigger).await;
    assert_eq!(s, 400, "{b}");
    let mut bad_ns = scale_plan_body();
    bad_ns["context"]["namespace"] = json!("-n kube-system");
    let (s, b) = app.post("/v1/plans", &alice, &bad_ns).await;
    assert_eq!((s, error_code(&b)), (422, "invalid_request"), "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("context.namespace"),
        "{b}"
    );
    let mut no_summary = scale_plan_body();
    no_summary["summary"] = json!("   ");
    let (s, b) = app.post("/v1/plans", &alice, &no_summary).await;
    assert_eq!((s, error_code(&b)), (422, "invalid_request"), "{b}");

    let (s, b) = app.get("/v1/plans?approval_state=maybe", &alice).await;
    assert_eq!((s, error_code(&b)), (400, "invalid_query"), "{b}");
    let (s, b) = app.get("/v1/executions?status=done", &alice).await;
    assert_eq!((s, error_code(&b)), (400, "invalid_query"), "{b}");
    let (s, b) = app.get("/v1/audit/events?from=yesterday", &alice).await;
    assert_eq!((s, error_code(&b)), (400, "invalid_query"), "{b}");
    let (s, b) = app.get("/v1/plans/not-a-uuid", &alice).await;
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");
    let (s, b) = app
        .post(
            "/v1/approvals",
            &alice,
            &json!({"plan_id": "x", "status": "approved"}),
        )
        .await;
    assert_eq!((s, error_code(&b)), (422, "invalid_request"), "{b}");
    let (s, b) = app
        .post(
            "/v1/approvals",
            &alice,
            &json!({"plan_id": uuid_v4(), "status": "maybe"}),
        )
        .await;
    assert_eq!((s, error_code(&b)), (422, "invalid_request"), "{b}");
    let (s, b) = app.get("/v1/nope", &alice).await;
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");
    let resp = app
        .http
        .delete(format!("{}/v1/plans", app.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&b), "method_not_allowed");
    assert_eq!(
        count_plans(&app).await,
        0,
        "no bad request created anything"
    );
    app.stop().await;
}

/// A well-formed id that names no plan.
fn uuid_v4() -> String {
    "0190f5a2-3c4d-7e8f-9a0b-1c2d3e4f5a6b".into()
}

#[tokio::test]
async fn pagination_is_capped_and_tenant_scoped() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    for _ in 0..7 {
        let (s, _) = app.create_scale_plan(&alice).await;
        assert_eq!(s, 201);
    }
    let (_, page) = app
        .get("/v1/plans?limit=3&offset=0&count=exact", &alice)
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["pagination"]["total"], 7);
    assert_eq!(page["pagination"]["next_offset"], 3);
    let (_, last) = app.get("/v1/plans?limit=3&offset=6", &alice).await;
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert!(last["pagination"]["next_offset"].is_null());
    let (_, capped) = app.get("/v1/plans?limit=100000", &alice).await;
    assert_eq!(capped["pagination"]["limit"], 200);
    let (_, pending) = app
        .get(
            "/v1/plans?approval_state=pending&risk_level=medium&count=exact",
            &alice,
        )
        .await;
    assert_eq!(pending["pagination"]["total"], 7);
    app.stop().await;
}

#[tokio::test]
async fn health_ready_metrics_and_audit_export() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let (s, b) = app.get("/healthz", "").await;
    assert_eq!((s, b["status"].as_str()), (200, Some("ok")));
    let (s, b) = app.get("/readyz", "").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["checks"]["postgres"], "ok");
    app.create_scale_plan(&alice).await;
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("carapulse_plans_created_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("carapulse_policy_decisions_total{action=\"plan.create\",decision=\"require_approval\"} 1"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/plans\""), "{metrics}");
    let csv = app
        .http
        .get(format!("{}/v1/audit/export?format=csv", app.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("seq,event_id"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains("plan.create"));
    let json_export: Value = app
        .http
        .get(format!("{}/v1/audit/export?format=json", app.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json_export.as_array().unwrap().len(), 1);
    let (s, b) = app.get("/v1/audit/export?format=xml", &alice).await;
    assert_eq!((s, error_code(&b)), (400, "invalid_query"));

    // Readiness fails when the database goes away.
    app.db.drop_now().await;
    let (s, b) = app.get("/readyz", "").await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["status"], "not_ready");
    app.shutdown.cancel();
    let _ = app.handle.await;
}
