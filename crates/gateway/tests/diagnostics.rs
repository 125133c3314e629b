//! `GET /v1/diagnostics` against real dependencies (Postgres, a real tool router, the Temporal dev
//! server) and against dead ones; `GET /v1/policy` and the policy playground.

mod common;

use carapulse_core::testing::TestDatabase;
use common::*;
use serde_json::json;

const ROUTER_TOKEN: &str = "diag-router-token-0000000001";

#[tokio::test]
async fn diagnostics_report_live_and_dead_dependencies() {
    let temporal =
        std::env::var("CARAPULSE_TEST_TEMPORAL").unwrap_or_else(|_| "127.0.0.1:7233".into());
    assert!(
        std::net::TcpStream::connect(&temporal).is_ok(),
        "no Temporal at {temporal}: run ./scripts/test.sh"
    );
    let router_db = TestDatabase::create().await;
    let mut router_config = router_db.config();
    router_config.tool_router.http_addr = "127.0.0.1:0".into();
    router_config.tool_router.auth_token = Some(ROUTER_TOKEN.into());
    router_config.tool_router.grant_key = Some(TEST_GRANT_KEY.into());
    let objects = tempfile::tempdir().expect("tempdir");
    router_config.storage.object_store.fs_root = objects.path().to_string_lossy().into_owned();
    let router = tool_router::Application::build(router_config)
        .await
        .expect("router builds");
    let router_url = format!("http://127.0.0.1:{}", router.port());
    let router_task = tokio::spawn(router.run_until_stopped());

    let (url, t) = (router_url.clone(), temporal.clone());
    let app = spawn_app_with(move |c| {
        c.tool_router.base_url = Some(url);
        c.tool_router.auth_token = Some(ROUTER_TOKEN.into());
        c.tool_router.grant_key = Some(TEST_GRANT_KEY.into());
        c.orchestrator.temporal_addr = Some(t);
    })
    .await;
    let viewer = token("vic", "acme", &["viewer"]);
    let (status, d) = app.get("/v1/diagnostics", &viewer).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
    assert!(d["uptime_secs"].as_i64().is_some_and(|s| s >= 0));
    assert_eq!(d["database"]["ok"], true, "{d}");
    assert!(
        d["database"]["details"]["latest_migration"]
            .as_i64()
            .is_some_and(|v| v >= 5),
        "{d}"
    );
    assert!(d["database"]["details"]["server_version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    assert_eq!(d["tool_router"]["ok"], true, "{d}");
    // The router's own checks travel with it: isolation and grants are visible from here.
    assert!(
        d["tool_router"]["checks"]["isolation"]
            .as_str()
            .is_some_and(|s| s.starts_with("ok")),
        "{d}"
    );
    assert_eq!(d["tool_router"]["checks"]["grants"], "ok", "{d}");
    assert_eq!(
        d["demo"], false,
        "a router with real CLIs is not a demo: {d}"
    );
    assert_eq!(d["orchestrator"]["temporal"]["ok"], true, "{d}");
    assert_eq!(d["orchestrator"]["dispatcher"], "temporal");
    assert!(d["policy"]["files"]
        .as_array()
        .is_some_and(|f| f.iter().any(|n| n == "decision.rego")));
    assert_eq!(d["planner"]["provider"], "rules");
    assert_eq!(d["collectors"], "disabled");
    let text = d.to_string();
    assert!(!text.contains(ROUTER_TOKEN), "router token leaked: {text}");
    assert!(
        !text.contains(carapulse_core::testing::TEST_JWT_SECRET),
        "JWT secret leaked"
    );
    assert!(!text.contains("postgres://"), "DSN leaked: {text}");

    let (status, _) = app
        .http
        .get(format!("{}/v1/diagnostics", app.url))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("request");
    assert_eq!(status, 401, "diagnostics need a token");
    app.stop().await;

    // The same gateway with its router and Temporal gone: still answers, with the errors.
    let (router_port, temporal_port) = (free_port(), free_port());
    let app = spawn_app_with(move |c| {
        c.tool_router.base_url = Some(format!("http://127.0.0.1:{router_port}"));
        c.orchestrator.temporal_addr = Some(format!("127.0.0.1:{temporal_port}"));
    })
    .await;
    let (status, d) = app.get("/v1/diagnostics", &viewer).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["database"]["ok"], true);
    assert_eq!(d["tool_router"]["ok"], false, "{d}");
    assert!(d["tool_router"]["error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
    assert_eq!(d["orchestrator"]["temporal"]["ok"], false, "{d}");
    assert!(d["orchestrator"]["temporal"]["error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
    app.stop().await;
    router_task.abort();

    // A router in demo mode (dev-up.sh --demo): diagnostics say so, with its fake CLIs.
    let mut demo_config = router_db.config();
    demo_config.tool_router.http_addr = "127.0.0.1:0".into();
    demo_config.tool_router.auth_token = Some(ROUTER_TOKEN.into());
    demo_config.gateway.dev_mode = true;
    demo_config.tool_router.demo_cli_dir =
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../e2e/fakes").into());
    demo_config.storage.object_store.fs_root = objects.path().to_string_lossy().into_owned();
    let demo_router = tool_router::Application::build(demo_config)
        .await
        .expect("demo router builds");
    let demo_url = format!("http://127.0.0.1:{}", demo_router.port());
    let demo_task = tokio::spawn(demo_router.run_until_stopped());
    let app = spawn_app_with(move |c| {
        c.tool_router.base_url = Some(demo_url);
    })
    .await;
    let (status, d) = app.get("/v1/diagnostics", &viewer).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["demo"], true, "{d}");
    assert!(
        d["tool_router"]["demo"]["clis"]
            .as_array()
            .is_some_and(|c| c.iter().any(|n| n == "kubectl")),
        "{d}"
    );
    app.stop().await;
    demo_task.abort();
    router_db.drop_now().await;
}

#[tokio::test]
async fn policy_files_and_playground() {
    let app = spawn_app().await;
    let viewer = token("vic", "acme", &["viewer"]);
    let (status, p) = app.get("/v1/policy", &viewer).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["package"], "policy.assistant.v1");
    let files = p["files"].as_array().expect("files");
    let decision = files
        .iter()
        .find(|f| f["name"] == "decision.rego")
        .expect("decision.rego loaded");
    assert!(decision["text"]
        .as_str()
        .is_some_and(|t| t.contains("package policy.assistant.v1")));
    assert!(
        files
            .iter()
            .all(|f| !f["name"].as_str().unwrap_or("").ends_with("_test.rego")),
        "test files are not part of the loaded policy"
    );

    let write = |env: &str, level: &str| {
        json!({"input": {
            "actor": {"id": "alice", "roles": ["operator"], "tenant_id": "acme"},
            "action": {"name": "plan.create", "type": "write"},
            "context": {"tenant_id": "acme", "environment": env},
            "resources": {"break_glass": false},
            "risk": {"level": level, "blast_radius": "namespace", "targets": 1},
        }})
    };
    let (status, low_dev) = app
        .post("/v1/policy/evaluate", &viewer, &write("dev", "low"))
        .await;
    assert_eq!(status, 200, "{low_dev}");
    assert_eq!(low_dev["decision"], "allow", "{low_dev}");
    let (_, high_prod) = app
        .post("/v1/policy/evaluate", &viewer, &write("prod", "high"))
        .await;
    assert_eq!(high_prod["decision"], "require_approval", "{high_prod}");
    assert!(high_prod["reasons"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    let (_, nobody) = app
        .post(
            "/v1/policy/evaluate",
            &viewer,
            &json!({"input": {"action": {"name": "plan.list", "type": "read"}}}),
        )
        .await;
    assert_eq!(nobody["decision"], "deny");
    assert!(nobody["reasons"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x == "unauthenticated")));

    let (status, bad) = app
        .post("/v1/policy/evaluate", &viewer, &json!({"input": [1, 2]}))
        .await;
    assert_eq!(status, 422, "{bad}");
    let big = "x".repeat(70 * 1024);
    let (status, _) = app
        .post(
            "/v1/policy/evaluate",
            &viewer,
            &json!({"input": {"blob": big}}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post("/v1/policy/evaluate", &viewer, &json!({"inptu": {}}))
        .await;
    assert_eq!(status, 400, "unknown fields are refused");
    app.stop().await;
}
