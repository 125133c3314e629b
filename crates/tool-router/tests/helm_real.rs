//! The router's helm actions that need no cluster, run for real: the real Helm 3.17.1
//! (`scripts/lib.sh ensure_helm`) on a fixture chart in the workspace, inside the sandbox. `lint`
//! with `values_ref` proves the resolved values reach helm (the chart's values schema refuses its
//! own default marker); `show values` returns the chart's defaults; `template` is a sensitive read (rendered
//! Secrets): granted, it renders and its output is withheld; a chart path that leads out of the
//! workspace is refused before anything runs. Its own test binary: PATH holds the real helm here,
//! not the recording fakes of `router.rs`.

mod common;

use common::{TEST_GRANT_KEY, TOKEN};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use carapulse_core::testing::{grant_for_call, GrantOptions};
use serde_json::{json, Value};
use tool_router::Application;

fn real_helm() -> PathBuf {
    let helm = std::env::var_os("CARAPULSE_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.dev/bin/helm"));
    let helm = std::fs::canonicalize(&helm).unwrap_or_else(|_| {
        panic!(
            "helm not found at {}: run ./scripts/test.sh (it installs helm into .dev/bin)",
            helm.display()
        )
    });
    helm
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Readable by the sandbox's unprivileged uid, like a deployed workspace. Symlinks are left
/// alone (changing one's mode would change its target's).
fn open_up(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_symlink() {
            continue;
        }
        if path.is_dir() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            open_up(&path);
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn call(action: &str, input: Value) -> Value {
    json!({"tool_name": "helm", "action": action, "input": input,
           "context": {"tenant_id": "acme", "environment": "dev", "namespace": "web"}})
}

#[tokio::test]
async fn helm_lint_show_and_template_run_for_real_on_a_workspace_chart() {
    // PATH: a directory holding only the real helm (a copy: the sandbox binds the program's
    // own path, not what a symlink points to), then the system.
    let bin = tempfile::tempdir().unwrap();
    std::fs::copy(real_helm(), bin.path().join("helm")).unwrap();
    open_up(bin.path());
    std::fs::set_permissions(
        bin.path().join("helm"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let old = std::env::var("PATH").unwrap_or_default();
    // SAFETY: set before the router (the only reader) starts; this binary has one test.
    unsafe { std::env::set_var("PATH", format!("{}:{old}", bin.path().display())) };

    let workspace = tempfile::tempdir().unwrap();
    let ws = std::fs::canonicalize(workspace.path()).unwrap();
    write(
        &ws.join("charts/web/Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write(
        &ws.join("charts/web/values.yaml"),
        "marker: chart-default\nreplicas: 1\n",
    );
    write(
        &ws.join("charts/web/templates/cm.yaml"),
        "{{- if ne .Values.marker \"from-values-ref\" }}{{ fail (printf \"marker is %s\" .Values.marker) }}{{ end }}\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-web\ndata:\n  marker: {{ .Values.marker | quote }}\n",
    );
    // Lint does not stop at a template's `fail` (it only reports it), but it validates the merged
    // values against the chart's schema: the marker must come from the values given.
    write(
        &ws.join("charts/web/values.schema.json"),
        r#"{"type": "object", "properties": {"marker": {"const": "from-values-ref"}}}"#,
    );
    write(&ws.join("values/web.yaml"), "marker: from-values-ref\n");
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), ws.join("charts/escape")).unwrap();
    open_up(&ws);

    let objects = tempfile::tempdir().unwrap();
    let mut config = common::router_config(objects.path());
    config.storage.workspace_dir = Some(ws.to_string_lossy().into_owned());
    config.sandbox.timeout_ms = 30_000;
    let app = Application::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}/v1/tools/execute", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let exec = |body: Value, grant: Option<String>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut req = http.post(&url).bearer_auth(TOKEN).json(&body);
            if let Some(g) = grant {
                req = req.header("x-carapulse-grant", g);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // values_ref (inline) reaches helm: lint passes only with the marker it carries.
    let (status, body) = exec(
        call(
            "lint",
            json!({"chart": "charts/web", "strict": true,
                   "values_ref": {"kind": "inline", "ref": "marker: from-values-ref\n"}}),
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert!(
        body["output"]
            .as_str()
            .unwrap_or("")
            .contains("1 chart(s) linted, 0 chart(s) failed"),
        "{body}"
    );
    // Without it, the chart's own default fails the lint, and helm says why.
    let (_, body) = exec(call("lint", json!({"chart": "charts/web"})), None).await;
    assert_eq!(body["status"], "failed", "{body}");
    assert!(body.to_string().contains("from-values-ref"), "{body}");
    // A values file in the workspace is found too.
    let (_, body) = exec(
        call(
            "lint",
            json!({"chart": "charts/web", "values_file": "values/web.yaml"}),
        ),
        None,
    )
    .await;
    assert_eq!(body["status"], "succeeded", "{body}");

    // show values: the chart's defaults, not sensitive, returned as they are.
    let (_, body) = exec(
        call("show", json!({"chart": "charts/web", "what": "values"})),
        None,
    )
    .await;
    assert_eq!(body["status"], "succeeded", "{body}");
    assert!(
        body["output"]
            .as_str()
            .unwrap_or("")
            .contains("marker: chart-default"),
        "{body}"
    );

    // template: a sensitive read. Without a grant it is refused; granted, it renders (with the
    // resolved values, or the chart would fail) and the output is withheld.
    let template = call(
        "template",
        json!({"release": "web", "chart": "charts/web", "namespace": "web",
               "values_ref": {"kind": "inline", "ref": "marker: from-values-ref\n"}}),
    );
    let (status, _) = exec(template.clone(), None).await;
    assert_eq!(status, 403, "a sensitive read needs a grant");
    let mut granted = template;
    let g = grant_for_call(
        &mut granted,
        GrantOptions {
            key: TEST_GRANT_KEY,
            approved: true,
            break_glass: false,
            ttl_secs: 300,
        },
    );
    let (status, body) = exec(granted, Some(g.header)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    let output = body["output"].as_str().unwrap_or("");
    assert!(output.starts_with("[output withheld"), "{body}");
    assert!(!output.contains("from-values-ref"), "{body}");

    // A chart path that leads out of the workspace is refused before helm runs.
    let (status, body) = exec(call("lint", json!({"chart": "charts/escape"})), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("input.chart"), "{body}");
}
