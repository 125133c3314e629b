//! Regression tests for the classes of defect the hostile security review found, one test per
//! class, each against a real gateway on a fresh Postgres database. (The tool router's classes —
//! grants, people's tokens, secret reads — are in `crates/tool-router/tests/router.rs`; the
//! sandbox's in `crates/sandbox-exec/tests/isolation.rs`.)

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A read step whose rollback deletes, in production.
fn sneaky_rollback_plan() -> Value {
    json!({
        "summary": "Look at web",
        "context": {"environment": "prod", "namespace": "web"},
        "steps": [{"tool": "kubectl", "action": "get", "input": {"resource": "deployment/web", "namespace": "web"},
                   "rollback": {"tool": "kubectl", "action": "delete", "input": {"resource": "deployment/web", "namespace": "web"}}},
                  {"stage": "verify", "tool": "prometheus", "action": "query", "input": {"query": "vector(0) > 1"}}]
    })
}

#[tokio::test]
async fn every_call_a_plan_can_make_is_scored_rollbacks_included() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let (status, created) = app.post("/v1/plans", &alice, &sneaky_rollback_plan()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["plan"]["risk_level"], "high", "{created}");
    assert_eq!(created["approval_required"], true);
    assert_eq!(created["plan"]["constraints"]["break_glass_required"], true);
    let reasons = created["plan"]["meta"]["risk"]["reasons"].to_string();
    assert!(reasons.contains("rollback:kubectl.delete"), "{reasons}");
    // Secret reads are gated like writes.
    let read_secret = json!({
        "summary": "Read the db secret",
        "context": {"environment": "dev", "namespace": "web"},
        "steps": [{"tool": "kubectl", "action": "get", "input": {"resource": "secret/db", "namespace": "web"}}]
    });
    let (status, created) = app.post("/v1/plans", &alice, &read_secret).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["approval_required"], true, "{created}");
    app.stop().await;
}

#[tokio::test]
async fn unreadable_text_is_a_4xx_everywhere_and_the_audit_chain_stays_whole() {
    let app = spawn_app_with(|c| c.gateway.rate_limit_burst = 1000).await;
    let alice = token("alice", "acme", &["operator", "admin"]);
    let bob = token("bob", "acme", &["approver"]);
    let (_, plan) = app.create_scale_plan(&alice).await;
    let plan_id = plan["plan_id"].as_str().unwrap().to_owned();
    let mut with_constraints = scale_plan_body();
    with_constraints["constraints"] = json!({"note": "a\u{0}b"});
    let mut bidi_summary = scale_plan_body();
    bidi_summary["summary"] = json!("Scale web \u{202e}3 ot");
    let mut zero_width = scale_plan_body();
    zero_width["summary"] = json!("Scale\u{200b} web");
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "/v1/approvals",
            bob.as_str(),
            json!({"plan_id": plan_id, "status": "approved", "note": "ok\u{0}"}),
        ),
        ("/v1/plans", alice.as_str(), with_constraints),
        ("/v1/plans", alice.as_str(), bidi_summary),
        ("/v1/plans", alice.as_str(), zero_width),
        (
            "/v1/sessions",
            alice.as_str(),
            json!({"name": "s", "metadata": {"k": "v\u{1b}[31m"}}),
        ),
        (
            "/v1/playbooks",
            alice.as_str(),
            json!({"name": "p", "spec": {"alertname": "A\u{0}", "workflow": "scale_service"}}),
        ),
        (
            "/v1/memory",
            alice.as_str(),
            json!({"title": "t", "body": "b\u{7}"}),
        ),
    ];
    for (path, who, body) in cases {
        let (status, answer) = app.post(path, who, &body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(error_code(&answer), "invalid_text", "{path}: {answer}");
    }
    // Query strings too.
    let (status, answer) = app.get("/v1/plans?created_by=al%00ice", &alice).await;
    assert_eq!(
        (status, error_code(&answer)),
        (400, "invalid_text"),
        "{answer}"
    );
    // Concurrent changes, each with its audit event: nothing lost, the chain verifies.
    let mut handles = Vec::new();
    for i in 0..60 {
        let app_url = app.url.clone();
        let t = alice.clone();
        handles.push(tokio::spawn(async move {
            let mut body = scale_plan_body();
            if i % 3 == 0 {
                body["summary"] = json!(format!("poisoned {i} \u{0}"));
            }
            reqwest::Client::new()
                .post(format!("{app_url}/v1/plans"))
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut created = 0;
    for h in handles {
        match h.await.unwrap() {
            201 => created += 1,
            400 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 40);
    let pool = app.db.store.pool();
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM plans p WHERE NOT EXISTS (SELECT 1 FROM audit_events a \
         WHERE a.tenant_id = p.tenant_id AND a.action = 'plan.create' AND a.resource_id = p.plan_id::text)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0, "every committed plan has its audit event");
    let (_, verify) = app.get("/v1/audit/verify", &alice).await;
    assert_eq!(verify["ok"], true, "{verify}");
    app.stop().await;
}

#[tokio::test]
async fn approvals_authorise_one_execution_by_someone_else_within_their_validity() {
    let app = spawn_app_with(|c| c.approvals.validity_hours = 1).await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    // Same person, other spelling: still the creator.
    let alice_upper = token("ALICE", "acme", &["approver"]);
    let (_, plan) = app.create_scale_plan(&alice).await;
    let plan_id = plan["plan_id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(
            "/v1/approvals",
            &alice_upper,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "self_approval"),
        "{body}"
    );
    let (status, body) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "approved", "source": "slack"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["source"], "api",
        "the channel decides the source: {body}"
    );
    let (status, run) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 202, "{run}");
    let execution = run["execution_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("/v1/executions/{execution}/cancel"),
            &alice,
            &json!({}),
        )
        .await;
    assert!(status == 200 || status == 202);
    // The run is over: the same approval does not start another.
    let (status, again) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 403, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("one approval authorises one execution"),
        "{again}"
    );
    // An approval older than approvals.validity_hours no longer executes.
    let (_, plan) = app.create_scale_plan(&alice).await;
    let old_plan = plan["plan_id"].as_str().unwrap().to_owned();
    app.post(
        "/v1/approvals",
        &bob,
        &json!({"plan_id": old_plan, "status": "approved"}),
    )
    .await;
    sqlx::query(
        "UPDATE approvals SET created_at = now() - interval '2 hours' WHERE plan_id = $1::uuid",
    )
    .bind(&old_plan)
    .execute(app.db.store.pool())
    .await
    .unwrap();
    let (status, stale) = app
        .post(&format!("/v1/plans/{old_plan}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 403, "{stale}");
    assert!(
        stale["error"]["message"]
            .as_str()
            .unwrap()
            .contains("validity_hours"),
        "{stale}"
    );
    // The trigger is the server's word.
    let mut claims_alert = scale_plan_body();
    claims_alert["trigger"] = json!("alert");
    let (_, created) = app.post("/v1/plans", &alice, &claims_alert).await;
    assert_eq!(created["plan"]["trigger"], "manual", "{created}");
    app.stop().await;
}

#[tokio::test]
async fn with_sessions_required_reads_are_scoped_to_the_callers_sessions() {
    let app = spawn_app_with(|c| c.gateway.session_required = true).await;
    let alice = token("alice", "acme", &["operator"]);
    let mallory = token("mallory", "acme", &["operator"]);
    let (status, session) = app
        .post("/v1/sessions", &alice, &json!({"name": "incident-42"}))
        .await;
    assert_eq!(status, 201, "{session}");
    let sid = session["session_id"].as_str().unwrap().to_owned();
    let mut body = scale_plan_body();
    body["session_id"] = json!(sid);
    let (status, created) = app.post("/v1/plans", &alice, &body).await;
    assert_eq!(status, 201, "{created}");
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    // A caller-set trigger no longer exempts a plan from the session requirement.
    let mut exempt = scale_plan_body();
    exempt["trigger"] = json!("alert");
    let (status, _) = app.post("/v1/plans", &mallory, &exempt).await;
    assert_eq!(status, 403);
    let (status, _) = app.get(&format!("/v1/plans/{plan_id}"), &mallory).await;
    assert_eq!(status, 404, "another session's plan is hidden");
    let (_, list) = app.get("/v1/plans", &mallory).await;
    assert!(!list.to_string().contains(&plan_id), "{list}");
    let (status, _) = app.get(&format!("/v1/plans/{plan_id}"), &alice).await;
    assert_eq!(status, 200);
    let (_, list) = app.get("/v1/plans", &alice).await;
    assert!(list.to_string().contains(&plan_id), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn environments_are_the_servers_word_and_silences_are_scored_by_reach() {
    let app = spawn_app_with(|c| {
        c.connectors.default_environment = Some("prod".into());
        c.connectors
            .environments
            .insert("grafana".into(), "*".into());
    })
    .await;
    let alice = token("alice", "acme", &["operator"]);
    let silence = |env: &str, matchers: Value, ends: &str| {
        json!({
            "summary": "Silence",
            "context": {"environment": env, "namespace": "web"},
            "steps": [{"tool": "alertmanager", "action": "silence-create", "input": {
                "matchers": matchers, "starts_at": "2026-12-01T00:00:00Z", "ends_at": ends,
                "comment": "maintenance", "created_by": "alice"}}]
        })
    };
    let catch_all = json!([{"name": "alertname", "value": ".*", "isRegex": true}]);
    // Labelled dev, but the Alertmanager connector acts in prod: refused.
    let (status, body) = app
        .post(
            "/v1/plans",
            &alice,
            &silence("dev", catch_all.clone(), "2030-12-01T00:00:00Z"),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("steps[0].tool"),
        "{body}"
    );
    // In prod a catch-all, four-year silence is high risk, never auto-allowed.
    let (status, body) = app
        .post(
            "/v1/plans",
            &alice,
            &silence("prod", catch_all, "2030-12-01T00:00:00Z"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["plan"]["risk_level"], "high", "{body}");
    assert_eq!(body["approval_required"], true);
    // A shared connector works from any environment.
    let annotate = json!({
        "summary": "Annotate",
        "context": {"environment": "dev", "namespace": "web"},
        "steps": [{"tool": "grafana", "action": "annotation-create", "input": {"text": "deploy"}}]
    });
    let (status, body) = app.post("/v1/plans", &alice, &annotate).await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}

/// When the server closed `s` (a blocking read on a helper thread, so the server keeps running).
async fn closed_after(mut s: std::net::TcpStream, limit: Duration) -> Option<Duration> {
    tokio::task::spawn_blocking(move || {
        s.set_read_timeout(Some(limit)).unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_half_sent_connections_are_closed_and_streams_are_capped() {
    let app = spawn_app_with(|c| {
        c.gateway.header_read_timeout_secs = 1;
        c.gateway.idle_timeout_secs = 2;
        c.gateway.max_connections_per_peer = 20;
        c.gateway.max_streams_per_actor = 2;
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    // Half a request head: closed after the header-read timeout (no token needed to try).
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let held = closed_after(half, Duration::from_secs(8)).await;
    assert!(
        held.is_some_and(|t| t < Duration::from_secs(4)),
        "half-sent head held: {held:?}"
    );
    // Silent connections: closed after the idle timeout.
    let idle = std::net::TcpStream::connect(&addr).unwrap();
    let held = closed_after(idle, Duration::from_secs(8)).await;
    assert!(
        held.is_some_and(|t| t < Duration::from_secs(4)),
        "idle connection held: {held:?}"
    );
    // One peer cannot hold more than max_connections_per_peer sockets.
    let held: Vec<std::net::TcpStream> = (0..40)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut closed = 0;
    for s in held {
        if closed_after(s, Duration::from_millis(200)).await.is_some() {
            closed += 1;
        }
    }
    assert!(
        closed >= 20,
        "only {closed} of 40 connections were refused (cap 20)"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Streams per actor.
    let alice = token("alice", "acme", &["operator"]);
    let open = |t: String| {
        let url = format!("{}/v1/events", app.url);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };
    let first = open(alice.clone()).await;
    let second = open(alice.clone()).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open(alice.clone()).await;
    assert_eq!(third.status().as_u16(), 429);
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = open(alice).await;
    assert_eq!(
        again.status().as_u16(),
        200,
        "a closed stream frees its slot"
    );
    app.stop().await;
}

#[tokio::test]
async fn edges_of_authentication_are_exact() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator", "admin"]);
    let (_, session) = app
        .post("/v1/sessions", &alice, &json!({"name": "s"}))
        .await;
    let sid = session["session_id"].as_str().unwrap().to_owned();
    // A query-string token on a non-stream route whose path ends like one: refused.
    let resp = app
        .http
        .delete(format!(
            "{}/v1/sessions/{sid}/members/events?access_token={alice}",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // The system tenant is reserved.
    let system = token("root", "carapulse-system", &["admin"]);
    let (status, _) = app.get("/v1/audit/events", &system).await;
    assert_eq!(status, 401);
    // X-Request-Id is bounded and checked.
    for bad in ["x".repeat(200), "a b".into(), "<script>".into()] {
        let resp = app
            .http
            .get(format!("{}/v1/plans", app.url))
            .bearer_auth(&alice)
            .header("x-request-id", bad.as_bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{bad:?}");
    }
    // CSV export neutralises cells a spreadsheet would evaluate.
    let formula = token("=HYPERLINK(\"http://evil\")", "acme", &["operator"]);
    app.post("/v1/plans", &formula, &scale_plan_body()).await;
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
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    assert!(
        !csv.contains(",=HYPERLINK") && !csv.contains(",\"=HYPERLINK"),
        "{csv}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_truncated_and_rewritten_chain_is_caught_by_the_signed_checkpoint() {
    let app = spawn_app().await;
    let admin = token("ada", "acme", &["admin", "operator"]);
    for _ in 0..3 {
        app.post("/v1/plans", &admin, &scale_plan_body()).await;
    }
    let (status, cp) = app.post("/v1/audit/checkpoints", &admin, &json!({})).await;
    assert_eq!(status, 201, "{cp}");
    let seq = cp["checkpoint"]["seq"].as_i64().unwrap();
    assert!(seq >= 3);
    let (_, verify) = app.get("/v1/audit/verify", &admin).await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["checkpoint"]["ok"], true, "{verify}");
    // A database admin deletes the tail and rewrites the head to match: the chain alone still
    // verifies, the checkpoint outside the database does not agree.
    let pool = app.db.store.pool();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE tenant_id = 'acme' AND seq > $1")
        .bind(seq - 2)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_chain_heads h SET last_seq = e.seq, last_hash = e.hash FROM audit_events e \
         WHERE h.tenant_id = 'acme' AND e.tenant_id = 'acme' AND e.seq = $1",
    )
    .bind(seq - 2)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE audit_events ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (_, verify) = app.get("/v1/audit/verify", &admin).await;
    assert_eq!(
        verify["first_break"],
        Value::Null,
        "the chain alone is fooled: {verify}"
    );
    assert_eq!(verify["ok"], false, "{verify}");
    assert!(
        verify["checkpoint"]["problem"]
            .as_str()
            .unwrap()
            .starts_with("truncated"),
        "{verify}"
    );
    app.stop().await;
}

#[tokio::test]
async fn signed_webhook_deliveries_are_processed_once() {
    let app = spawn_app_with(|c| {
        with_git_hook(c);
    })
    .await;
    let send = || send_signed_push(&app);
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let replay = send().await.unwrap();
    assert_eq!(replay.status().as_u16(), 200);
    let answer: Value = replay.json().await.unwrap();
    assert_eq!(answer["duplicate_delivery"], true, "{answer}");
    app.stop().await;
}

/// Makes every audit append of `actions` fail inside Postgres (a trigger), as a full disk or a
/// lost connection at the wrong moment would.
async fn fail_audit_appends(app: &TestApp, actions: &[&str]) {
    let list = actions
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(",");
    let pool = app.db.store.pool();
    sqlx::query(&format!(
        "CREATE OR REPLACE FUNCTION test_fail_audit() RETURNS trigger AS $$ BEGIN \
         IF NEW.action IN ({list}) THEN RAISE EXCEPTION 'audit append failed (test)'; END IF; \
         RETURN NEW; END $$ LANGUAGE plpgsql"
    ))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_events \
         FOR EACH ROW EXECUTE FUNCTION test_fail_audit()",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.db.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_change_and_its_audit_event_commit_together_or_not_at_all() {
    let app = spawn_app_with(|c| {
        c.gateway.rate_limit_burst = 1000;
        with_git_hook(c);
    })
    .await;
    let alice = token("alice", "acme", &["operator", "admin"]);
    let writes: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/v1/schedules",
            json!({"summary": "nightly scale", "cron": "0 3 * * *", "timezone": "UTC",
                   "workflow": {"name": "scale_service", "input": {"resource": "deployment/web", "namespace": "web", "replicas": 3, "current_replicas": 2}},
                   "context": {"environment": "staging", "namespace": "web"}}),
            "schedule.create",
            "SELECT count(*) FROM schedules",
        ),
        (
            "/v1/sessions",
            json!({"name": "incident-1"}),
            "session.create",
            "SELECT count(*) FROM sessions",
        ),
        (
            "/v1/memory",
            json!({"title": "web quirk", "body": "two replicas at night"}),
            "memory.create",
            "SELECT count(*) FROM operator_memory",
        ),
        (
            "/v1/playbooks",
            json!({"name": "latency", "spec": {"alertname": "HighLatency", "workflow": "service_restart",
                   "input": {"resource": "deployment/{{labels.deployment}}", "namespace": "{{labels.namespace}}"}}}),
            "playbook.create",
            "SELECT count(*) FROM playbooks",
        ),
        (
            "/v1/plans",
            scale_plan_body(),
            "plan.create",
            "SELECT count(*) FROM plans",
        ),
    ];
    let actions: Vec<&str> = writes
        .iter()
        .map(|w| w.2)
        .chain(["hook.received"])
        .collect();
    fail_audit_appends(&app, &actions).await;
    for (path, body, action, rows) in &writes {
        let (status, answer) = app.post(path, &alice, body).await;
        assert_eq!(status, 500, "{path}: {answer}");
        assert_eq!(
            count(&app, rows).await,
            0,
            "{action}: committed without its audit event"
        );
    }
    // A signed webhook delivery whose receipt cannot be audited stores nothing and is not
    // remembered as delivered, so the sender's retry is processed.
    let send = || send_signed_push(&app);
    assert_eq!(send().await.unwrap().status().as_u16(), 500);
    assert_eq!(count(&app, "SELECT count(*) FROM alert_events").await, 0);
    // The fault clears: every change now lands with exactly one audit event naming it.
    sqlx::query("DROP TRIGGER test_fail_audit ON audit_events")
        .execute(app.db.store.pool())
        .await
        .unwrap();
    for (path, body, action, rows) in &writes {
        let (status, answer) = app.post(path, &alice, body).await;
        assert_eq!(status, 201, "{path}: {answer}");
        assert_eq!(count(&app, rows).await, 1, "{path}");
        let audited = count(
            &app,
            &format!("SELECT count(*) FROM audit_events WHERE action = '{action}'"),
        )
        .await;
        assert_eq!(audited, 1, "{action}");
    }
    assert_eq!(
        send().await.unwrap().status().as_u16(),
        202,
        "the retry is processed"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_events WHERE action = 'hook.received'"
        )
        .await,
        1
    );
    let (_, verify) = app.get("/v1/audit/verify", &alice).await;
    assert_eq!(verify["ok"], true, "{verify}");
    app.stop().await;
}

/// A `git` webhook source for tenant acme, signed with HMAC.
fn with_git_hook(c: &mut carapulse_core::config::Config) {
    c.webhooks.insert(
        "git".into(),
        carapulse_core::config::WebhookSource {
            tenant_id: "acme".into(),
            hmac_secret: Some("git-hook-secret-0123456789".into()),
            environment: "dev".into(),
            ..Default::default()
        },
    );
}

/// Posts the same signed push delivery every time (a replay when repeated).
async fn send_signed_push(app: &TestApp) -> reqwest::Result<reqwest::Response> {
    use hmac::Mac;
    let body =
        json!({"ref": "refs/heads/main", "after": "0123456789abcdef0123456789abcdef01234567",
                      "repository": {"full_name": "acme/web"}})
        .to_string();
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(b"git-hook-secret-0123456789").unwrap();
    mac.update(body.as_bytes());
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    app.http
        .post(format!("{}/v1/hooks/git", app.url))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
}
