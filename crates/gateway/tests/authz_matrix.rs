//! The authorisation matrix: every operation of `/openapi.json` (webhooks aside: they
//! authenticate per source, see hooks.rs) is called as six identities, and the status must be
//! the one the table below expects:
//!
//! * no token, a token with a bad signature: 401 everywhere;
//! * `other`: an admin of another tenant, pointed at acme's resources: 404 on acme's items, its own
//!   (empty) data on lists, its own tenant on creates;
//! * `viewer`, `approver`, `admin` of acme.
//!
//! Each identity gets its own fresh acme resources (plans, an execution, a session, a schedule, a
//! note, a playbook, a runbook), so deletes and decisions of one row never change another. The
//! table must name every documented operation: a new route without a row fails the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::{json, Value};

const IDENTITIES: [&str; 6] = [
    "none",
    "bad_signature",
    "other",
    "viewer",
    "approver",
    "admin",
];

/// `(method, path) -> [other, viewer, approver, admin]` accepted statuses ("none" and
/// "bad_signature" are 401 for every row).
fn table() -> BTreeMap<(&'static str, &'static str), [&'static [u16]; 4]> {
    const OK: &[u16] = &[200];
    const GONE: &[u16] = &[404];
    const DENIED: &[u16] = &[403];
    let rows: Vec<(&str, &str, [&[u16]; 4])> = vec![
        // Plans.
        ("get", "/v1/plans", [OK, OK, OK, OK]),
        ("post", "/v1/plans", [&[201], DENIED, DENIED, &[201]]),
        ("get", "/v1/plans/{id}/risk", [GONE, OK, OK, OK]),
        // Revisions: writers revise (the approver role alone does not), readers read.
        (
            "post",
            "/v1/plans/{id}/revisions",
            [GONE, DENIED, DENIED, &[201]],
        ),
        ("get", "/v1/plans/{id}/revisions", [GONE, OK, OK, OK]),
        (
            "get",
            "/v1/plans/{id}/revisions/{revision}",
            [GONE, OK, OK, OK],
        ),
        ("get", "/v1/plans/{id}/diff", [GONE, OK, OK, OK]),
        // What-if: readers ask, nothing is stored.
        ("post", "/v1/plans/{id}/whatif", [GONE, OK, OK, OK]),
        ("post", "/v1/policy/whatif", [OK, OK, OK, OK]),
        // Impact re-runs the caller's tenant's own decisions: writers only.
        ("post", "/v1/policy/impact", [OK, DENIED, DENIED, OK]),
        // Its background job, read by writers of its tenant only.
        (
            "get",
            "/v1/policy/impact/{job_id}",
            [GONE, DENIED, DENIED, OK],
        ),
        // Replays re-run the caller's tenant's own incidents: writers start and read them.
        ("post", "/v1/replays", [OK, DENIED, DENIED, OK]),
        ("get", "/v1/replays", [OK, DENIED, DENIED, OK]),
        ("get", "/v1/replays/{id}", [GONE, DENIED, DENIED, OK]),
        // Only the creator (alice, not in the matrix) or an admin withdraws a plan.
        ("delete", "/v1/plans/{id}", [GONE, DENIED, DENIED, &[204]]),
        ("get", "/v1/plans/{id}", [GONE, OK, OK, OK]),
        ("post", "/v1/plans/{id}", [GONE, DENIED, DENIED, &[202]]),
        (
            "post",
            "/v1/plans/{id}/execute",
            [GONE, DENIED, DENIED, &[202]],
        ),
        // Approvals: only approvers decide.
        ("get", "/v1/approvals", [OK, OK, OK, OK]),
        ("post", "/v1/approvals", [GONE, DENIED, &[201], &[201]]),
        // Executions.
        ("get", "/v1/executions", [OK, OK, OK, OK]),
        ("get", "/v1/executions/{id}", [GONE, OK, OK, OK]),
        (
            "post",
            "/v1/executions/{id}/cancel",
            [GONE, DENIED, DENIED, OK],
        ),
        // Continuing past an inconclusive analysis is an approver's call; the matrix's
        // executions are not waiting for one, so permitted callers get 409.
        (
            "post",
            "/v1/executions/{id}/decision",
            [GONE, DENIED, &[409], &[409]],
        ),
        ("get", "/v1/executions/{id}/logs", [GONE, OK, OK, OK]),
        // Workflows.
        ("get", "/v1/workflows", [OK, OK, OK, OK]),
        ("get", "/v1/workflows/{name}", [OK, OK, OK, OK]),
        (
            "post",
            "/v1/workflows/{name}/versions",
            [&[201], DENIED, DENIED, &[201]],
        ),
        (
            "post",
            "/v1/workflows/{name}/start",
            [&[201, 202], DENIED, DENIED, &[201, 202]],
        ),
        // Audit.
        ("get", "/v1/audit/events", [OK, OK, OK, OK]),
        ("get", "/v1/audit/verify", [OK, OK, OK, OK]),
        ("get", "/v1/audit/checkpoints", [OK, OK, OK, OK]),
        // Checkpoints are published by admins (the test gateway has a checkpoint key).
        (
            "post",
            "/v1/audit/checkpoints",
            [&[201], DENIED, DENIED, &[201]],
        ),
        ("get", "/v1/audit/export", [OK, OK, OK, OK]),
        // Schedules: writers change them.
        ("get", "/v1/schedules", [OK, OK, OK, OK]),
        ("post", "/v1/schedules", [&[201], DENIED, DENIED, &[201]]),
        ("get", "/v1/schedules/{id}", [GONE, OK, OK, OK]),
        ("put", "/v1/schedules/{id}", [GONE, DENIED, DENIED, OK]),
        (
            "delete",
            "/v1/schedules/{id}",
            [GONE, DENIED, DENIED, &[204]],
        ),
        // Sessions: members see them; owners (and admins) manage members.
        ("get", "/v1/sessions", [OK, OK, OK, OK]),
        ("post", "/v1/sessions", [&[201], DENIED, DENIED, &[201]]),
        ("get", "/v1/sessions/{id}", [GONE, DENIED, DENIED, OK]),
        ("put", "/v1/sessions/{id}", [GONE, DENIED, DENIED, OK]),
        (
            "delete",
            "/v1/sessions/{id}",
            [GONE, DENIED, DENIED, &[204]],
        ),
        (
            "post",
            "/v1/sessions/{id}/members",
            [GONE, DENIED, DENIED, &[204]],
        ),
        (
            "delete",
            "/v1/sessions/{id}/members/{member}",
            [GONE, DENIED, DENIED, &[204]],
        ),
        // Library: writers change it.
        ("post", "/v1/library/reload", [DENIED, DENIED, DENIED, OK]),
        ("get", "/v1/memory", [OK, OK, OK, OK]),
        ("post", "/v1/memory", [&[201], DENIED, DENIED, &[201]]),
        ("get", "/v1/memory/{id}", [GONE, OK, OK, OK]),
        ("put", "/v1/memory/{id}", [GONE, DENIED, DENIED, OK]),
        ("delete", "/v1/memory/{id}", [GONE, DENIED, DENIED, &[204]]),
        ("get", "/v1/playbooks", [OK, OK, OK, OK]),
        ("post", "/v1/playbooks", [&[201], DENIED, DENIED, &[201]]),
        ("get", "/v1/playbooks/{id}", [GONE, OK, OK, OK]),
        ("put", "/v1/playbooks/{id}", [GONE, DENIED, DENIED, &[201]]),
        (
            "delete",
            "/v1/playbooks/{id}",
            [GONE, DENIED, DENIED, &[204]],
        ),
        ("get", "/v1/runbooks", [OK, OK, OK, OK]),
        ("post", "/v1/runbooks", [&[201], DENIED, DENIED, &[201]]),
        ("get", "/v1/runbooks/{id}", [GONE, OK, OK, OK]),
        ("put", "/v1/runbooks/{id}", [GONE, DENIED, DENIED, &[201]]),
        (
            "delete",
            "/v1/runbooks/{id}",
            [GONE, DENIED, DENIED, &[204]],
        ),
        // Context: reads for everyone of the tenant; this gateway runs no collectors (409).
        ("get", "/v1/context/services", [OK, OK, OK, OK]),
        ("get", "/v1/context/graph", [GONE, OK, OK, OK]),
        ("get", "/v1/context/snapshots", [OK, OK, OK, OK]),
        (
            "get",
            "/v1/context/snapshots/{id}",
            [GONE, GONE, GONE, GONE],
        ),
        (
            "get",
            "/v1/context/snapshots/{id}/diff",
            [GONE, GONE, GONE, GONE],
        ),
        (
            "post",
            "/v1/context/refresh",
            [&[409], &[409], &[409], &[409]],
        ),
        // Everything else any authenticated caller may read.
        ("get", "/v1/alerts", [OK, OK, OK, OK]),
        ("get", "/v1/diagnostics", [OK, OK, OK, OK]),
        ("get", "/v1/policy", [OK, OK, OK, OK]),
        ("post", "/v1/policy/evaluate", [OK, OK, OK, OK]),
        // Policy is the process's, not a tenant's: any admin may have it re-read from disk.
        ("post", "/v1/policy/reload", [OK, DENIED, DENIED, OK]),
        ("get", "/v1/events", [OK, OK, OK, OK]),
        ("get", "/v1/ws", [&[101], &[101], &[101], &[101]]),
    ];
    rows.into_iter().map(|(m, p, e)| ((m, p), e)).collect()
}

/// Fresh acme resources for one identity's row of calls.
struct Fixtures {
    pending_plan: String,
    /// Revised by the revision rows (so the approval rows keep their own plan).
    revisable_plan: String,
    runnable_plan: String,
    /// A second one: the `:execute` form and `/execute` each start their own.
    runnable_plan2: String,
    execution: String,
    session: String,
    schedule: String,
    memory: String,
    playbook: String,
    runbook: String,
    /// A background policy impact job (over no decisions: it ends at once).
    impact_job: String,
    /// A replay (of a window without incidents).
    replay: String,
}

async fn created(app: &TestApp, path: &str, tok: &str, body: Value, key: &str) -> String {
    let (status, out) = app.post(path, tok, &body).await;
    assert!(status == 201 || status == 202, "{path}: {status} {out}");
    out[key]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: no {key} in {out}"))
        .to_owned()
}

async fn fixtures(app: &TestApp, alice: &str) -> Fixtures {
    let pending_plan = created(app, "/v1/plans", alice, scale_plan_body(), "plan_id").await;
    let revisable_plan = created(app, "/v1/plans", alice, scale_plan_body(), "plan_id").await;
    let runnable_plan = created(app, "/v1/plans", alice, read_plan_body(), "plan_id").await;
    let runnable_plan2 = created(app, "/v1/plans", alice, read_plan_body(), "plan_id").await;
    let to_run = created(app, "/v1/plans", alice, read_plan_body(), "plan_id").await;
    let execution = created(
        app,
        &format!("/v1/plans/{to_run}/execute"),
        alice,
        json!({}),
        "execution_id",
    )
    .await;
    let session = created(
        app,
        "/v1/sessions",
        alice,
        json!({"name": "matrix", "members": ["carol"]}),
        "session_id",
    )
    .await;
    let schedule = created(app, "/v1/schedules", alice, schedule_body(), "schedule_id").await;
    let memory = created(app, "/v1/memory", alice, memory_body(), "memory_id").await;
    let playbook = created(app, "/v1/playbooks", alice, playbook_body(), "id").await;
    let runbook = created(app, "/v1/runbooks", alice, runbook_body(), "id").await;
    let impact_job = created(
        app,
        "/v1/policy/impact",
        alice,
        json!({"candidate": {"files": {
            "matrix.rego": "package policy.assistant.v1\n\nimport rego.v1\n\nmatrix_marker := true\n"}},
            "background": true}),
        "job_id",
    )
    .await;
    let (status, out) = app
        .post("/v1/replays", alice, &json!({"source": {"since": "1h"}}))
        .await;
    assert_eq!(status, 200, "{out}");
    let replay = out["replay_id"].as_str().expect("replay_id").to_owned();
    Fixtures {
        replay,
        pending_plan,
        revisable_plan,
        runnable_plan,
        runnable_plan2,
        execution,
        session,
        schedule,
        memory,
        playbook,
        runbook,
        impact_job,
    }
}

fn schedule_body() -> Value {
    json!({"summary": "nightly scale", "cron": "0 3 * * *", "timezone": "UTC",
           "workflow": {"name": "scale_service", "input": {"resource": "deployment/web", "namespace": "web", "replicas": 3, "current_replicas": 2}},
           "context": {"environment": "staging", "namespace": "web"}})
}
fn memory_body() -> Value {
    json!({"title": "web quirk", "body": "web needs two replicas at night"})
}
fn playbook_body() -> Value {
    json!({"name": "latency", "spec": {"alertname": "HighLatency", "workflow": "service_restart",
           "input": {"resource": "deployment/{{labels.deployment}}", "namespace": "{{labels.namespace}}"}}})
}
fn runbook_body() -> Value {
    json!({"name": "restart", "service": "web", "body": "# Restart web"})
}

/// The concrete path and body of a row for an identity's fixtures.
fn request(method: &str, path: &str, f: &Fixtures) -> (String, Option<Value>) {
    let item = |id: &str| path.replace("{id}", id);
    let concrete = match path {
        "/v1/plans/{id}" if method == "post" => {
            path.replace("{id}", &format!("{}:execute", f.runnable_plan))
        }
        "/v1/plans/{id}" => item(&f.pending_plan),
        "/v1/plans/{id}/execute" => item(&f.runnable_plan2),
        "/v1/plans/{id}/risk" => item(&f.pending_plan),
        p if p.starts_with("/v1/plans/{id}/revisions")
            || p == "/v1/plans/{id}/diff"
            || p == "/v1/plans/{id}/whatif" =>
        {
            item(&f.revisable_plan).replace("{revision}", "1")
        }
        p if p.starts_with("/v1/executions/{id}") => item(&f.execution),
        p if p.starts_with("/v1/schedules/{id}") => item(&f.schedule),
        p if p.starts_with("/v1/sessions/{id}") => item(&f.session).replace("{member}", "carol"),
        p if p.starts_with("/v1/memory/{id}") => item(&f.memory),
        p if p.starts_with("/v1/playbooks/{id}") => item(&f.playbook),
        p if p.starts_with("/v1/runbooks/{id}") => item(&f.runbook),
        "/v1/policy/impact/{job_id}" => path.replace("{job_id}", &f.impact_job),
        "/v1/replays/{id}" => item(&f.replay),
        "/v1/context/snapshots/{id}" => item("0196e0a4-1b2c-7d3e-8f40-123456789abc"),
        "/v1/context/snapshots/{id}/diff" => format!(
            "{}?base=0196e0a4-1b2c-7d3e-8f40-123456789abd",
            item("0196e0a4-1b2c-7d3e-8f40-123456789abc")
        ),
        "/v1/workflows/{name}/start" | "/v1/workflows/{name}" | "/v1/workflows/{name}/versions" => {
            path.replace("{name}", "scale_service")
        }
        "/v1/context/graph" => format!("{path}?service=web"),
        other => other.to_owned(),
    };
    let body = match (method, path) {
        ("post", "/v1/plans") => Some(scale_plan_body()),
        ("post", "/v1/replays") => Some(json!({"source": {"since": "1h"}})),
        ("post", "/v1/policy/impact") => Some(json!({"candidate": {"files": {
            "matrix.rego": "package policy.assistant.v1\n\nimport rego.v1\n\nmatrix_marker := true\n"}}})),
        ("post", "/v1/policy/whatif") => Some(json!({"plan": {
            "context": {"environment": "staging", "namespace": "web"},
            "steps": [{"tool": "kubectl", "action": "get", "input": {"resource": "deployment/web", "namespace": "web"}}]}})),
        ("post", "/v1/plans/{id}/revisions") => {
            Some(json!({"summary": "revised by the matrix", "note": "matrix"}))
        }
        ("post", "/v1/approvals") => {
            Some(json!({"plan_id": f.pending_plan, "status": "approved", "source": "api"}))
        }
        ("post", "/v1/executions/{id}/cancel") => Some(json!({"reason": "matrix"})),
        ("post", "/v1/executions/{id}/decision") => Some(json!({"decision": "continue"})),
        ("post", "/v1/workflows/{name}/start") => Some(json!({
            "input": {"resource": "deployment/web", "namespace": "web", "replicas": 3, "current_replicas": 2},
            "context": {"environment": "dev", "namespace": "web"}})),
        ("post" | "put", "/v1/schedules" | "/v1/schedules/{id}") => Some(schedule_body()),
        ("post", "/v1/sessions") => Some(json!({"name": "matrix"})),
        ("post", "/v1/workflows/{name}/versions") => {
            Some(json!({"defaults": {"namespace": "web", "max_delta": 2}}))
        }
        ("post", "/v1/sessions/{id}/members") => Some(json!({"member_id": "dave"})),
        ("put", "/v1/sessions/{id}") => Some(json!({"name": "matrix renamed"})),
        ("post" | "put", "/v1/memory" | "/v1/memory/{id}") => Some(memory_body()),
        ("post" | "put", "/v1/playbooks" | "/v1/playbooks/{id}") => Some(playbook_body()),
        ("post" | "put", "/v1/runbooks" | "/v1/runbooks/{id}") => Some(runbook_body()),
        ("post", "/v1/policy/evaluate") => {
            Some(json!({"input": {"action": {"name": "plan.list", "type": "read"}}}))
        }
        ("post", _) => Some(json!({})),
        _ => None,
    };
    (concrete, body)
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    tok: Option<&str>,
) -> (u16, Value) {
    if path.starts_with("/v1/ws") {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("{}{path}", app.url.replace("http", "ws")),
            )
            .expect("ws request");
        if let Some(t) = tok {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        return match tokio_tungstenite::connect_async(req).await {
            Ok((mut ws, resp)) => {
                let _ = ws.close(None).await;
                (resp.status().as_u16(), Value::Null)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                (resp.status().as_u16(), Value::Null)
            }
            Err(e) => panic!("websocket: {e}"),
        };
    }
    let method =
        reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
    let mut req = app.http.request(method, format!("{}{path}", app.url));
    if let Some(t) = tok {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = if stream {
        Value::Null
    } else {
        resp.json().await.unwrap_or(Value::Null)
    };
    (status, body)
}

fn bad_signature_token() -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let now = chrono::Utc::now().timestamp();
    encode(
        &Header::default(),
        &json!({"sub": "root", "iss": "carapulse-dev", "exp": now + 600, "iat": now,
                "tenant_id": "acme", "groups": ["admin"]}),
        &EncodingKey::from_secret(b"not-the-gateway-secret-but-just-as-long-0001"),
    )
    .expect("token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_identity() {
    let workspace = tempfile::tempdir().expect("workspace");
    let workspace_dir = workspace.path().to_string_lossy().into_owned();
    let app = spawn_app_with(move |c| {
        // An (empty) workspace that belongs to acme, so acme's admin may reload it.
        c.context.tenant_id = "acme".into();
        c.storage.workspace_dir = Some(workspace_dir);
        // One matrix sends a few hundred requests per identity.
        c.gateway.rate_limit_per_second = 10_000.0;
        c.gateway.rate_limit_burst = 10_000;
    })
    .await;
    let alice = token("alice", "acme", &["operator"]);
    let tokens: BTreeMap<&str, Option<String>> = [
        ("none", None),
        ("bad_signature", Some(bad_signature_token())),
        ("other", Some(token("eve", "other", &["admin"]))),
        ("viewer", Some(token("vic", "acme", &["viewer"]))),
        ("approver", Some(token("bob", "acme", &["approver"]))),
        ("admin", Some(token("root", "acme", &["admin"]))),
    ]
    .into_iter()
    .collect();

    // The table covers exactly the documented operations.
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") || path.starts_with("/v1/hooks/") {
            continue;
        }
        for method in item.as_object().expect("item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let table = table();
    let covered: BTreeSet<(String, String)> = table
        .keys()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        covered, documented,
        "the matrix must list every documented /v1 operation"
    );

    // A small graph for acme, so the graph route has something to show.
    let (status, body) = app
        .post(
            "/v1/context/refresh",
            &alice,
            &json!({"service": "web",
                "nodes": [{"node_id": "service/web", "kind": "service", "name": "web"}], "edges": []}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Deletes last, so each identity's reads and updates find what they address.
    let mut rows: Vec<_> = table.iter().collect();
    // Deletes last, the most specific path first (a session's member before the session).
    rows.sort_by_key(|((method, path), _)| {
        let delete = *method == "delete";
        (
            delete,
            std::cmp::Reverse(if delete { path.len() } else { 0 }),
        )
    });

    let mut mismatches = Vec::new();
    let mut calls = 0;
    for identity in IDENTITIES {
        let tok = tokens[identity].as_deref();
        let f = fixtures(&app, &alice).await;
        for ((method, path), expected) in &rows {
            let (concrete, body) = request(method, path, &f);
            let (status, answer) = call(&app, method, &concrete, body.as_ref(), tok).await;
            calls += 1;
            let allowed: &[u16] = match identity {
                "none" | "bad_signature" => &[401],
                "other" => expected[0],
                "viewer" => expected[1],
                "approver" => expected[2],
                _ => expected[3],
            };
            if !allowed.contains(&status) {
                mismatches.push(format!(
                    "{identity:>13} {method:>6} {path}: {status} (expected {allowed:?}) {answer}"
                ));
            }
            // Another tenant's lists never show acme's data.
            if identity == "other" && status == 200 && *method == "get" {
                let listed = answer["data"].as_array().map(Vec::len);
                if let (Some(total), true) = (listed, answer.get("pagination").is_some()) {
                    let own_creates = [
                        "/v1/plans",
                        "/v1/audit/events",
                        "/v1/sessions",
                        "/v1/schedules",
                        "/v1/memory",
                        "/v1/playbooks",
                        "/v1/runbooks",
                        "/v1/executions",
                        "/v1/approvals",
                    ];
                    let text = answer.to_string();
                    assert!(
                        !text.contains("\"acme\"") && !text.contains("alice"),
                        "{path} leaks acme data to another tenant: {text}"
                    );
                    if !own_creates.contains(path) {
                        assert_eq!(total, 0, "{path}: {answer}");
                    }
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {calls} calls answered otherwise:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    app.stop().await;
}

/// The roles the security review added, as a matrix of their own: executing an approved
/// high-risk plan with break-glass (and a reason) as each role. Only `gateway.break_glass_roles`
/// (`admin`, `break-glass`) get through; writers without it are refused, readers too.
#[tokio::test]
async fn break_glass_is_a_role_matrix() {
    let app = spawn_app_with(|c| c.gateway.rate_limit_burst = 500).await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let delete = json!({
        "summary": "Delete a stuck pod",
        "context": {"environment": "dev", "namespace": "web"},
        "steps": [{"tool": "kubectl", "action": "delete", "input": {"resource": "pod/web-1", "namespace": "web"}}]
    });
    let cases: [(&str, &[&str], u16, &str); 6] = [
        ("vera", &["viewer"], 403, "break_glass_forbidden"),
        ("bob2", &["approver"], 403, "break_glass_forbidden"),
        ("oscar", &["operator"], 403, "break_glass_forbidden"),
        ("gina", &["break-glass"], 403, "forbidden"),
        ("gwen", &["operator", "break-glass"], 202, ""),
        ("ada", &["admin"], 202, ""),
    ];
    for (who, roles, want, code) in cases {
        let (status, created) = app.post("/v1/plans", &alice, &delete).await;
        assert_eq!(status, 201, "{created}");
        let plan_id = created["plan_id"].as_str().unwrap().to_owned();
        let (status, body) = app
            .post(
                "/v1/approvals",
                &bob,
                &json!({"plan_id": plan_id, "status": "approved"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let resp = app
            .http
            .post(format!("{}/v1/plans/{plan_id}/execute", app.url))
            .bearer_auth(token(who, "acme", roles))
            .header("X-Break-Glass", "true")
            .header("X-Break-Glass-Reason", "pod stuck, on-call paged")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{who} {roles:?}: {body}");
        if !code.is_empty() {
            assert_eq!(body["error"]["code"], code, "{who}: {body}");
        }
    }
    app.stop().await;
}
