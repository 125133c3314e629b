//! The web UI in a real browser: headless Chromium (Debian `chromium`) driven by
//! `e2e/browser/ui.test.mjs` (playwright-core) against a real gateway with its UI listener, tool
//! router (fake `helm`), orchestrator worker and the Temporal dev server. A plan is created and
//! executed through the API (the run waits for approval); the browser approves it on the plan
//! page and watches the execution page turn to `succeeded` live, its verify step's three analysis
//! samples drawn against the threshold. Then an operator starts a workflow from the "New plan"
//! form (previewed first), it is approved and executed in the browser and followed to the end.
//! Screenshots are kept in `target/ui-screenshots/`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_in_the_browser_and_watch_the_execution_live() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: run ./scripts/test.sh (it installs Debian's chromium)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core missing: run ./scripts/test.sh (npm ci in e2e/browser)"
    );
    let temporal = temporal_addr();
    // JSON reads answer the release at revision 2, so the verify step's analysis has numbers.
    fake_tool_on_path(
        "helm",
        "case \"$*\" in *--output=json*) echo '{\"version\":2,\"info\":{\"status\":\"deployed\"}}'; exit 0;; esac\necho \"helm ok: $*\"",
    );
    let queue = format!("ui-browser-{}", uuid::Uuid::new_v4().simple());
    // The router's port is chosen first so the gateway knows it (diagnostics, integrations page).
    let router_port = free_port();
    let (q, t) = (queue.clone(), temporal.clone());
    let app = spawn_app_with(move |c| {
        execution_config(c, &t, &q, router_port);
        c.gateway.ws_addr = Some("127.0.0.1:0".into());
    })
    .await;
    let ui_url = app.ui_url.clone().expect("UI listener started");
    let stack = ExecutionStack::start(&app, &temporal, &queue, router_port).await;

    // The UI shell itself: served with a strict CSP, assets embedded.
    let page = app
        .http
        .get(format!("{ui_url}/ui/"))
        .send()
        .await
        .expect("ui");
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.expect("body").contains("/ui/app.js"));

    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let summary = "Upgrade web (browser test)";
    let (status, created) = app
        .post(
            "/v1/plans",
            &alice,
            &json!({
                "summary": summary,
                "context": {"environment": "staging", "namespace": "web"},
                "steps": [
                    {"tool": "helm", "action": "upgrade", "input": {"release": "web", "chart": "charts/web", "namespace": "web"},
                     "rollback": {"tool": "helm", "action": "rollback", "input": {"release": "web", "namespace": "web"}}},
                    {"stage": "verify", "tool": "helm", "action": "status", "input": {"release": "web", "namespace": "web"},
                     "expect": [{"path": ".version", "op": ">=", "value": 1}],
                     "analysis": {"interval": "1s", "count": 3}}
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["approval_required"], true);
    let plan_id = created["plan_id"].as_str().expect("plan id").to_owned();
    let (status, exec) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    assert_eq!(status, 202, "{exec}");
    assert_eq!(exec["awaiting_approval"], true);
    let exec_id = exec["execution_id"]
        .as_str()
        .expect("execution id")
        .to_owned();
    // Traffic into web (the scaled deployment's service) for the plan page's blast radius:
    // ingress -> api -> web.
    seed_traffic(
        &app,
        "acme",
        &[("api", "web", 30.0), ("ingress", "api", 120.0)],
    )
    .await;
    // A revised plan for the plan page's changes section.
    let (status, revisable) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 201, "{revisable}");
    let revised_id = revisable["plan_id"].as_str().expect("plan id").to_owned();
    let mut new_steps = revisable["plan"]["steps"].clone();
    new_steps[0]["input"]["replicas"] = json!(4);
    for step in new_steps.as_array_mut().expect("steps") {
        let map = step.as_object_mut().expect("step");
        map.remove("step_id");
        map.remove("ordinal");
    }
    let (status, revised) = app
        .post(
            &format!("/v1/plans/{revised_id}/revisions"),
            &alice,
            &json!({"steps": new_steps, "note": "browser test"}),
        )
        .await;
    assert_eq!(status, 201, "{revised}");
    // A little graph for the context page.
    let (status, ingested) = app
        .post(
            "/v1/context/refresh",
            &alice,
            &json!({"service": "web",
                "nodes": [
                    {"node_id": "service/web", "kind": "service", "name": "web"},
                    {"node_id": "k8s/deployment/web/web", "kind": "deployment", "name": "web"},
                    {"node_id": "helm/release/web/web", "kind": "helm_release", "name": "web"}],
                "edges": [
                    {"edge_id": "e1", "from_node_id": "service/web", "to_node_id": "k8s/deployment/web/web", "relation": "runs"},
                    {"edge_id": "e2", "from_node_id": "helm/release/web/web", "to_node_id": "service/web", "relation": "deploys"}]}),
        )
        .await;
    assert_eq!(status, 200, "{ingested}");
    // A playbook for the library page.
    let (status, playbook) = app
        .post(
            "/v1/playbooks",
            &alice,
            &json!({"name": "latency", "tags": ["web"], "spec": {"alertname": "HighLatency", "workflow": "service_restart",
                    "input": {"resource": "deployment/{{labels.deployment}}", "namespace": "{{labels.namespace}}"}}}),
        )
        .await;
    assert_eq!(status, 201, "{playbook}");
    // Enough history for the audit page to need a second page at 10 rows ("Load more").
    let writer = carapulse_core::audit::AuditWriter::spawn(app.db.store.clone());
    let acme = carapulse_core::model::TenantId::parse("acme").expect("tenant");
    for i in 0..15 {
        writer
            .append(
                carapulse_core::audit::AuditEntry::new(
                    acme.clone(),
                    carapulse_core::audit::AuditActor::person("alice", None),
                    "session.note",
                    carapulse_core::audit::AuditDecision::Info,
                )
                .reason(format!("history {i}")),
            )
            .await
            .expect("audit history");
    }

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    // Only this run's pictures: a stale failure shot would mislead whoever reads them.
    let _ = std::fs::remove_dir_all(&shots);
    let output = tokio::process::Command::new("node")
        .arg("ui.test.mjs")
        .current_dir(browser_dir())
        .env("UI_URL", &ui_url)
        .env("APPROVER_TOKEN", &bob)
        .env("OPERATOR_TOKEN", &alice)
        .env("PLAN_ID", &plan_id)
        .env("REVISED_PLAN_ID", &revised_id)
        .env("PLAN_SUMMARY", summary)
        .env("EXECUTION_ID", &exec_id)
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(360), output)
        .await
        .expect("browser test finished within 6 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "browser test failed (screenshots in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    assert!(stdout.contains("all checks passed"));

    // What the browser did is what the server recorded.
    let (_, view) = app.get(&format!("/v1/executions/{exec_id}"), &alice).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let (_, approvals) = app
        .get(
            &format!("/v1/approvals?status=approved&plan_id={plan_id}"),
            &alice,
        )
        .await;
    assert_eq!(approvals["data"][0]["source"], "ui", "{approvals}");
    assert_eq!(approvals["data"][0]["approver"], "bob", "{approvals}");
    // The plan made from the "New plan" form: alice's, previewed first, run to the end.
    let form = stdout
        .lines()
        .find_map(|l| l.strip_prefix("[ui-test] form plan "))
        .expect("the browser test names the plan it created");
    let (form_plan, form_exec) = form.split_once(" execution ").expect("plan and execution");
    let (_, plan) = app.get(&format!("/v1/plans/{form_plan}"), &alice).await;
    assert_eq!(plan["created_by"], "alice", "{plan}");
    assert_eq!(plan["summary"], "Release web from the form", "{plan}");
    assert_eq!(plan["meta"]["workflow"]["name"], "helm_release", "{plan}");
    let (_, run) = app
        .get(&format!("/v1/executions/{form_exec}"), &alice)
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["plan_id"], form_plan, "{run}");
    let (_, previews) = app
        .get("/v1/audit/events?action=plan.preview", &alice)
        .await;
    assert!(
        previews["data"].as_array().is_some_and(|p| p.len() >= 2),
        "both previews audited: {previews}"
    );
    for shot in [
        "02-dashboard.png",
        "12-new-plan-preview.png",
        "13-form-plan-succeeded.png",
        "05-plan-approved.png",
        "06-execution-succeeded.png",
    ] {
        assert!(shots.join(shot).exists(), "{shot} not written");
    }

    stack.stop();
    app.stop().await;
}
