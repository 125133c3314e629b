//! Playbooks and runbooks loaded from the workspace folder (YAML/JSON and Markdown files):
//! added once, new versions only when a file changes, bad files reported and skipped.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn workspace_library_loads_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("playbooks")).unwrap();
    std::fs::create_dir_all(root.join("runbooks/web")).unwrap();
    std::fs::write(
        root.join("playbooks/latency.yaml"),
        "alertname: HighLatency\nmatch_labels:\n  severity: page\nworkflow: service_restart\ninput:\n  resource: \"deployment/{{labels.deployment}}\"\n  namespace: \"{{labels.namespace}}\"\ntags: [web]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("playbooks/broken.yaml"),
        "alertname: X\nworkflow: reboot_everything\n",
    )
    .unwrap();
    std::fs::write(
        root.join("runbooks/web/restart.md"),
        "# Restart web\n\n1. `kubectl rollout restart deployment/web`\n",
    )
    .unwrap();
    let root_s = root.display().to_string();
    let app = spawn_app_with(move |c| {
        c.storage.workspace_dir = Some(root_s);
        c.context.tenant_id = "acme".into();
    })
    .await;
    let op = token("op", "acme", &["operator"]);
    let viewer = token("viewer", "acme", &["viewer"]);

    // Loaded at start (in the background) and on demand; the second load changes nothing.
    let (status, report) = app.post("/v1/library/reload", &op, &json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["errors"][0]
            .as_str()
            .unwrap()
            .contains("broken.yaml"),
        "{report}"
    );
    let (_, report) = app.post("/v1/library/reload", &op, &json!({})).await;
    assert_eq!(report["added"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["unchanged"], 2);
    let (_, playbooks) = app.get("/v1/playbooks?count=exact", &viewer).await;
    assert_eq!(playbooks["pagination"]["total"], 1);
    let pb = &playbooks["data"][0];
    assert_eq!(
        (pb["name"].as_str(), pb["version"].as_i64()),
        (Some("latency"), Some(1))
    );
    assert_eq!(pb["spec"]["match_labels"]["severity"], "page");
    assert_eq!(pb["tags"], json!(["web"]));
    let (_, runbooks) = app.get("/v1/runbooks?service=web", &viewer).await;
    assert!(runbooks["data"][0]["body"]
        .as_str()
        .unwrap()
        .contains("rollout restart"));

    // A changed file becomes version 2.
    std::fs::write(
        root.join("runbooks/web/restart.md"),
        "# Restart web\n\nUse the service_restart workflow.\n",
    )
    .unwrap();
    let (_, report) = app.post("/v1/library/reload", &op, &json!({})).await;
    assert_eq!(report["added"], json!(["runbooks/web/restart"]));
    let (_, runbooks) = app.get("/v1/runbooks?service=web", &viewer).await;
    assert_eq!(runbooks["data"][0]["version"], 2);

    assert_eq!(
        app.post("/v1/library/reload", &viewer, &json!({})).await.0,
        403
    );
    let eve = token("eve", "other", &["admin"]);
    assert_eq!(
        app.post("/v1/library/reload", &eve, &json!({})).await.0,
        403,
        "the workspace belongs to acme"
    );
    app.stop().await;
}

/// The Go version's workspace files: `memory/runbooks.json` adds runbook versions and
/// `memory/operator_memory.json` memory notes, once; another tenant's entries and bad ones are
/// reported, not loaded.
#[tokio::test]
async fn go_workspace_memory_files_load_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("memory")).unwrap();
    std::fs::write(
        root.join("memory/runbooks.json"),
        json!([
            {"service": "web", "name": "restart", "body": "# Restart web\nkubectl rollout restart deployment/web", "tags": ["web"]},
            {"service": "db", "name": "failover", "body": "# Fail over", "tenant_id": "other"},
            {"service": "db", "name": "", "body": "nameless"}
        ])
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        root.join("memory/operator_memory.json"),
        json!([
            {"title": "web at night", "body": "web needs two replicas at night", "tags": ["web"]},
            {"title": "no body"}
        ])
        .to_string(),
    )
    .unwrap();
    let root_s = root.display().to_string();
    let app = spawn_app_with(move |c| {
        c.storage.workspace_dir = Some(root_s);
        c.context.tenant_id = "acme".into();
    })
    .await;
    let op = token("op", "acme", &["operator"]);
    let (status, report) = app.post("/v1/library/reload", &op, &json!({})).await;
    assert_eq!(status, 200, "{report}");
    let errors = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        errors.contains("runbooks.json[1]") && errors.contains("\"other\""),
        "{report}"
    );
    assert!(errors.contains("runbooks.json[2]: name"), "{report}");
    assert!(errors.contains("operator_memory.json[1]: body"), "{report}");
    let (_, again) = app.post("/v1/library/reload", &op, &json!({})).await;
    assert_eq!(
        again["added"].as_array().unwrap().len(),
        0,
        "loaded once: {again}"
    );
    let (_, runbooks) = app.get("/v1/runbooks?count=exact", &op).await;
    assert_eq!(runbooks["pagination"]["total"], 1, "{runbooks}");
    assert_eq!(runbooks["data"][0]["service"], "web");
    assert_eq!(runbooks["data"][0]["tags"], json!(["web"]));
    let (_, memory) = app.get("/v1/memory?count=exact", &op).await;
    assert_eq!(memory["pagination"]["total"], 1, "{memory}");
    assert_eq!(memory["data"][0]["title"], "web at night");
    assert_eq!(memory["data"][0]["owner_actor_id"], "workspace");
    app.stop().await;
}
