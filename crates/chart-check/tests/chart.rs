//! The Helm chart lints (`helm lint --strict`) and renders (`helm template`, the real helm
//! 3.17.1) with its defaults (plus the two values every install must set) and with every option
//! on — every values file in `ci/`. Each document is well-formed Kubernetes, passes the Kubernetes 1.32
//! schemas (`kubernetes-validate --strict`, installed by scripts/test.sh), carries the guarantees
//! the chart promises (hooks, probes, non-root read-only pods, read-only collector RBAC, scoped
//! router writes, network policies), and the rendered config loads in every component.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use carapulse_core::config::{Component, Config};
use chart_check::{documents, lint, render_chart, Release};
use serde_json::Value;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/carapulse")
}

fn release() -> Release {
    Release {
        name: "carapulse".into(),
        namespace: "sre".into(),
    }
}

fn render(files: &[&str]) -> Vec<(String, Value)> {
    let files: Vec<PathBuf> = files.iter().map(|f| chart().join(f)).collect();
    let rendered = render_chart(&chart(), &files, &release()).expect("chart renders");
    documents(&rendered).expect("every document is YAML")
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn validator() -> PathBuf {
    if let Ok(path) = std::env::var("CARAPULSE_KUBE_VALIDATE") {
        return PathBuf::from(path);
    }
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.dev/venv/bin/kubernetes-validate");
    assert!(
        dev.exists(),
        "kubernetes-validate not found at {}: run ./scripts/test.sh (it pip-installs it)",
        dev.display()
    );
    dev
}

/// Writes the documents to one file and validates them against the Kubernetes 1.32 schemas.
fn validate_schemas(docs: &[(String, Value)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("manifests.yaml");
    let text: Vec<String> = docs
        .iter()
        .map(|(_, d)| serde_yaml::to_string(d).expect("yaml"))
        .collect();
    std::fs::write(&file, text.join("---\n")).expect("write");
    let out = std::process::Command::new(validator())
        .args(["--strict", "-k", "1.32.0"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schema validation failed:\n{stdout}\n{stderr}"
    );
    let passed = stdout.lines().filter(|l| l.contains("passed")).count();
    assert_eq!(passed, docs.len(), "every document validated:\n{stdout}");
}

fn containers(doc: &Value) -> &Vec<Value> {
    doc["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
}

/// The guarantees every workload of the chart must keep.
fn check_workloads(docs: &[(String, Value)], expected: &[&str]) {
    let deployments: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "Deployment")
        .collect();
    let names: BTreeSet<&str> = deployments
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, expected.iter().copied().collect(), "deployments");
    for d in deployments {
        let name = d["metadata"]["name"].as_str().unwrap_or("");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
            "{name}: selector matches the pod"
        );
        for c in containers(d) {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{name}");
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
            let probe_port = c["readinessProbe"]["httpGet"]["port"].clone();
            assert!(
                c["ports"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == probe_port)),
                "{name}: probes use a declared port"
            );
            assert!(c["resources"]["limits"]["memory"].is_string(), "{name}");
            assert!(c["envFrom"][0]["secretRef"]["name"].is_string(), "{name}");
            let mounts = c["volumeMounts"].as_array().expect("mounts");
            assert!(
                mounts.iter().any(|m| m["mountPath"] == "/tmp"),
                "{name}: writable /tmp"
            );
        }
    }
}

fn hook(doc: &Value) -> (&str, &str) {
    (
        doc["metadata"]["annotations"]["helm.sh/hook"]
            .as_str()
            .unwrap_or(""),
        doc["metadata"]["annotations"]["helm.sh/hook-weight"]
            .as_str()
            .unwrap_or(""),
    )
}

/// Loads the rendered config.json with a component's environment, as the binary would.
fn load_config(docs: &[(String, Value)], deployment: &str, component: Component) -> Config {
    let config_map = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["config.json"].is_string())
        .expect("config map");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        config_map["data"]["config.json"].as_str().unwrap_or(""),
    )
    .expect("write");
    let d = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == deployment)
        .expect("deployment");
    let secret_value = |name: &str, key: &str| -> Option<String> {
        docs.iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == name)
            .and_then(|s| s["stringData"][key].as_str())
            .map(str::to_owned)
    };
    let mut env: Vec<(String, String)> = Vec::new();
    for e in containers(d)[0]["env"].as_array().expect("env") {
        let name = e["name"].as_str().unwrap_or("").to_owned();
        if name == "CARAPULSE_CONFIG" {
            continue;
        }
        let reference = &e["valueFrom"]["secretKeyRef"];
        if reference.is_object() {
            let value = secret_value(
                reference["name"].as_str().unwrap_or(""),
                reference["key"].as_str().unwrap_or(""),
            );
            match value {
                Some(v) => env.push((name, v)),
                None => assert_eq!(
                    reference["optional"], true,
                    "{deployment}: {name} refers to a missing secret key"
                ),
            }
        } else {
            env.push((name, e["value"].as_str().unwrap_or("").to_owned()));
        }
    }
    // envFrom: every key of the referenced Secret.
    let from = containers(d)[0]["envFrom"][0]["secretRef"]["name"]
        .as_str()
        .unwrap_or("");
    let secret = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == from)
        .expect("secret");
    for (k, v) in secret["stringData"].as_object().expect("stringData") {
        env.push((k.clone(), v.as_str().unwrap_or("").to_owned()));
    }
    let config = Config::load_with_env(Some(&path), &env)
        .unwrap_or_else(|e| panic!("{deployment}: config does not load: {e}"));
    config
        .validate(component)
        .unwrap_or_else(|e| panic!("{deployment}: config invalid for {component:?}: {e}"));
    config
}

/// The grant key reaches only the orchestrator (mints) and the tool router (checks), the audit
/// checkpoint key only the gateway, both by secretKeyRef from their own Secret; the tool router
/// pod gets the user namespace and unmasked /proc its sandbox needs.
fn check_signing_keys(docs: &[(String, Value)], prefix: &str) {
    let keys = find(docs, "Secret", &format!("{prefix}-keys"));
    assert!(keys["stringData"]["CARAPULSE_TOOL_ROUTER_GRANT_KEY"].is_string());
    let shared = find(docs, "Secret", prefix);
    assert!(shared["stringData"]["CARAPULSE_TOOL_ROUTER_GRANT_KEY"].is_null());
    for (_, d) in docs.iter().filter(|(_, d)| d["kind"] == "Deployment") {
        let component = d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .unwrap_or("");
        let names: BTreeSet<&str> = containers(d)[0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str())
            .collect();
        let has_grant = names.contains("CARAPULSE_TOOL_ROUTER_GRANT_KEY");
        assert_eq!(
            has_grant,
            component == "orchestrator" || component == "tool-router",
            "{component}: grant key"
        );
        if names.contains("CARAPULSE_AUDIT_CHECKPOINT_KEY") {
            assert_eq!(component, "gateway", "checkpoint key only in the gateway");
        }
        let pod = &d["spec"]["template"]["spec"];
        if component == "tool-router" {
            assert_eq!(pod["hostUsers"], false, "router pod in a user namespace");
            assert_eq!(
                containers(d)[0]["securityContext"]["procMount"],
                "Unmasked",
                "the sandbox mounts a fresh /proc"
            );
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "Unconfined",
                "RuntimeDefault forbids the sandbox's unshare; it installs its own filter"
            );
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        } else {
            assert!(pod["hostUsers"].is_null(), "{component}");
        }
    }
}

/// Every values file under `ci/`.
fn ci_values() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .expect("ci/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    files
}

#[test]
fn every_ci_values_file_lints_strictly_and_renders() {
    for file in ci_values() {
        let report = lint(&chart(), std::slice::from_ref(&file))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(report.contains("0 chart(s) failed"), "{report}");
        let rendered = render_chart(&chart(), std::slice::from_ref(&file), &release())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let docs = documents(&rendered).expect("YAML");
        assert!(
            docs.len() > 20,
            "{}: {} documents",
            file.display(),
            docs.len()
        );
        validate_schemas(&docs);
    }
    // The lint can fail: the same chart with one broken template does.
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(&chart(), copy.path());
    std::fs::write(
        copy.path().join("templates/broken.yaml"),
        "kind: ConfigMap\nmetadata:\n  name: {{ .Values.nope | noSuchFunction }}\n",
    )
    .expect("write");
    let err = lint(copy.path(), &ci_values()[..1]).expect_err("a broken template fails lint");
    assert!(err.to_string().contains("noSuchFunction"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn defaults_need_a_dsn_and_a_router_token() {
    let err = render_chart(&chart(), &[], &release()).expect_err("defaults alone must not render");
    assert!(
        err.to_string().contains("postgres.dsn is required"),
        "{err}"
    );
}

#[test]
fn defaults_render_valid_manifests() {
    let docs = render(&["ci/required-values.yaml"]);
    validate_schemas(&docs);
    check_workloads(
        &docs,
        &[
            "carapulse-gateway",
            "carapulse-orchestrator",
            "carapulse-tool-router",
        ],
    );
    let kinds: BTreeSet<&str> = docs
        .iter()
        .filter_map(|(_, d)| d["kind"].as_str())
        .collect();
    for kind in [
        "ConfigMap",
        "Secret",
        "Job",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
    assert!(!kinds.contains("Ingress"), "ingress is off by default");
    let job = find(&docs, "Job", "carapulse-migrate");
    assert_eq!(hook(job), ("pre-install,pre-upgrade", "0"));
    assert_eq!(
        containers(job)[0]["command"],
        serde_json::json!(["/usr/local/bin/assistantctl", "migrate"])
    );
    let secret = find(&docs, "Secret", "carapulse");
    assert_eq!(
        hook(secret),
        ("pre-install,pre-upgrade", "-10"),
        "the DSN exists before the migration hook"
    );
    // Collectors only read.
    let collector = find(&docs, "ClusterRole", "carapulse-collector");
    for rule in collector["rules"].as_array().expect("rules") {
        assert_eq!(rule["verbs"], serde_json::json!(["get", "list", "watch"]));
    }
    // Router writes are scoped to the release namespace by default.
    let write = find(&docs, "Role", "carapulse-tool-router-write");
    assert_eq!(write["metadata"]["namespace"], "sre");
    let cluster_write = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "ClusterRole")
        .any(|d| {
            d["rules"].as_array().into_iter().flatten().any(|r| {
                r["verbs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v != "get" && v != "list" && v != "watch")
            })
        });
    assert!(!cluster_write, "no cluster-wide write verbs");
    // Only the gateway and orchestrator reach the tool router.
    let np = find(&docs, "NetworkPolicy", "carapulse-tool-router");
    let from = np["spec"]["ingress"][0]["from"].as_array().expect("from");
    let sources: BTreeSet<&str> = from
        .iter()
        .filter_map(|p| p["podSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str())
        .collect();
    assert_eq!(sources, ["gateway", "orchestrator"].into_iter().collect());
    assert_eq!(from.len(), 2);
    // Two or more replicas get a disruption budget.
    find(&docs, "PodDisruptionBudget", "carapulse-gateway");
    // The gateway serves the API and the UI.
    let svc = find(&docs, "Service", "carapulse-gateway");
    let ports: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(ports, vec![8080, 8082]);
    check_signing_keys(&docs, "carapulse");
    // Every object is labelled for the release.
    for (template, d) in &docs {
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/instance"], "carapulse",
            "{template}: {}",
            d["metadata"]["name"]
        );
    }
}

#[test]
fn full_values_render_valid_manifests_and_a_loadable_config() {
    let docs = render(&["ci/full-values.yaml"]);
    validate_schemas(&docs);
    check_workloads(
        &docs,
        &[
            "cp-agent",
            "cp-gateway",
            "cp-orchestrator",
            "cp-tool-router",
        ],
    );
    let ingress = find(&docs, "Ingress", "cp");
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "carapulse.sre.example.com"
    );
    let policies = find(&docs, "ConfigMap", "cp-policies");
    assert!(policies["data"]["decision.rego"]
        .as_str()
        .is_some_and(|t| t.contains("package policy.assistant.v1")));
    let gateway = find(&docs, "Deployment", "cp-gateway");
    assert!(gateway["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .is_some_and(|v| v.iter().any(|v| v["configMap"]["name"] == "cp-policies")));
    assert_eq!(
        containers(gateway)[0]["image"],
        "registry.example.com/sre/gateway:0.1.0-ci"
    );
    let writes: BTreeSet<&str> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "Role")
        .filter_map(|d| d["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(writes, ["shop", "web"].into_iter().collect());
    let secret = find(&docs, "Secret", "cp");
    for key in [
        "CARAPULSE_POSTGRES_DSN",
        "CARAPULSE_TOOL_ROUTER_TOKEN",
        "CARAPULSE_LLM_API_KEY",
        "CARAPULSE_SLACK_BOT_TOKEN",
        "CARAPULSE_SLACK_SIGNING_SECRET",
        "CARAPULSE_AGENT_GATEWAY_TOKEN",
        "CARAPULSE_LINEAR_TOKEN",
    ] {
        assert!(secret["stringData"][key].is_string(), "secret lacks {key}");
    }
    // No secret value leaks into a ConfigMap or an env value.
    for (_, d) in docs.iter().filter(|(_, d)| d["kind"] != "Secret") {
        let text = d.to_string();
        for leak in [
            "sk-ant-ci",
            "xoxb-ci",
            "ci-signing-secret",
            "lin_api_ci",
            ":secret@",
        ] {
            assert!(
                !text.contains(leak),
                "{leak} outside the Secret: {}",
                d["metadata"]["name"]
            );
        }
    }
    let np = find(&docs, "NetworkPolicy", "cp-tool-router");
    assert!(np["spec"]["egress"].as_array().is_some_and(|e| e
        .iter()
        .any(|r| r["to"][0]["ipBlock"]["cidr"] == "10.20.0.0/16")));
    check_signing_keys(&docs, "cp");
    let _ = load_config(&docs, "cp-gateway", Component::Gateway);
    let _ = load_config(&docs, "cp-tool-router", Component::ToolRouter);
    let _ = load_config(&docs, "cp-orchestrator", Component::Orchestrator);
    let _ = load_config(&docs, "cp-agent", Component::Agent);
}

#[test]
fn rendering_is_deterministic() {
    let a = render(&["ci/full-values.yaml"]);
    let b = render(&["ci/full-values.yaml"]);
    assert_eq!(a, b, "checksums and maps must not depend on hash order");
}

/// The default install keeps tool outputs over 64 KiB somewhere it can write: the rendered config
/// names an object-store root that the tool-router pod mounts from an emptyDir (its root
/// filesystem is read-only), and a tool router started with that rendered config stores a large
/// output there (a temporary directory stands in for the volume the kubelet would mount).
#[tokio::test]
async fn rendered_router_stores_large_outputs_on_its_writable_volume() {
    let docs = render(&["ci/required-values.yaml"]);
    let mut config = load_config(&docs, "carapulse-tool-router", Component::ToolRouter);
    let store = &config.storage.object_store;
    assert_eq!(store.backend, "fs");
    let root = store.fs_root.clone();
    assert!(root.starts_with('/'), "an absolute path: {root}");
    let pod = &docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "carapulse-tool-router")
        .expect("tool router deployment")["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == root.as_str())
        .unwrap_or_else(|| panic!("nothing is mounted at {root}: {pod}"));
    assert_ne!(mount["readOnly"], true, "{mount}");
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert!(volume["emptyDir"].is_object(), "{volume}");
    assert_eq!(
        pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );

    // The router, started with the rendered config. What differs from the pod: the volume's
    // place (a temporary directory), the listen address, the policy files (the image's are at
    // /etc/carapulse/policies), and the sandbox helper (in-process here; the image ships it).
    let volume_dir = tempfile::tempdir().expect("tempdir");
    config.storage.object_store.fs_root = volume_dir.path().to_string_lossy().into_owned();
    config.tool_router.http_addr = "127.0.0.1:0".into();
    config.policy.policy_dir = carapulse_core::testing::policies_dir();
    config.sandbox.exec_helper = None;
    let resp = large_kubectl_get(config).await;
    let reference = resp["output_ref"].as_str().expect("stored by reference");
    let key = reference.strip_prefix("fs://").expect("fs reference");
    let stored = std::fs::read(volume_dir.path().join(key)).expect("the output is on the volume");
    assert!(stored.len() > 64 * 1024, "{} bytes", stored.len());
}

/// Starts a tool router with `config` and runs a `kubectl get` (a fake on PATH) whose ~84 KB
/// output is over the inline limit; answers the router's reply.
async fn large_kubectl_get(config: Config) -> Value {
    static PATH_SET: std::sync::Once = std::sync::Once::new();
    let fakes = std::env::temp_dir().join(format!("carapulse-chart-fakes-{}", std::process::id()));
    PATH_SET.call_once(|| {
        std::fs::create_dir_all(&fakes).expect("fakes dir");
        let kubectl = fakes.join("kubectl");
        // About 84 KB of output, with shell builtins only (the sandbox root is minimal).
        std::fs::write(
            &kubectl,
            "#!/bin/sh\ni=0\nwhile [ $i -lt 1200 ]; do echo \"pod-$i Running 1/1 0 10d ......................................\"; i=$((i+1)); done\n",
        )
        .expect("fake kubectl");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = std::env::var("PATH").unwrap_or_default();
        // SAFETY: set once, before any router of this binary starts.
        unsafe { std::env::set_var("PATH", format!("{}:{path}", fakes.display())) };
    });
    let token = config
        .tool_router
        .auth_token
        .clone()
        .expect("router token from the chart's Secret");
    let app = tool_router::Application::build(config)
        .await
        .expect("router starts");
    let url = format!("http://127.0.0.1:{}/v1/tools/execute", app.port());
    tokio::spawn(app.run_until_stopped());
    let resp: Value = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({"tool_name": "kubectl", "action": "get",
            "input": {"resource": "pods", "namespace": "web"},
            "context": {"tenant_id": "acme", "environment": "dev", "namespace": "web"}}))
        .send()
        .await
        .expect("execute")
        .json()
        .await
        .expect("json");
    assert_eq!(resp["status"], "succeeded", "{resp}");
    assert_eq!(resp["output_truncated"], true, "{resp}");
    resp
}

/// `objectStore.backend: s3`: every pod gets the bucket settings (credentials by secretKeyRef
/// when a Secret is named), and a tool router started with that rendered config stores a large
/// output in a real S3-compatible bucket (s3s-fs standing in for the service).
#[tokio::test]
async fn rendered_s3_object_store_keeps_outputs_in_the_bucket() {
    let server = carapulse_core::testing::s3::S3Server::start("carapulse-objects");
    let dir = tempfile::tempdir().expect("tempdir");
    let values = dir.path().join("s3.yaml");
    let write_values = |secret: &str| {
        std::fs::write(
            &values,
            format!(
                "objectStore:\n  backend: s3\n  s3:\n    bucket: carapulse-objects\n    endpoint: {}\n    region: us-east-1\n    pathStyle: true\n    credentialsSecret: \"{secret}\"\n",
                server.endpoint
            ),
        )
        .expect("values");
    };
    write_values("objects-s3");
    let files = [chart().join("ci/required-values.yaml"), values.clone()];
    let docs =
        documents(&render_chart(&chart(), &files, &release()).expect("renders")).expect("yaml");
    validate_schemas(&docs);
    for deployment in [
        "carapulse-gateway",
        "carapulse-tool-router",
        "carapulse-orchestrator",
    ] {
        let env = containers(find(&docs, "Deployment", deployment))[0]["env"].clone();
        let named = |name: &str| {
            env.as_array()
                .and_then(|a| a.iter().find(|e| e["name"] == name))
                .cloned()
                .unwrap_or_else(|| panic!("{deployment}: no {name}"))
        };
        assert_eq!(
            named("CARAPULSE__STORAGE__OBJECT_STORE__BACKEND")["value"],
            "s3"
        );
        assert_eq!(
            named("CARAPULSE__STORAGE__OBJECT_STORE__BUCKET")["value"],
            "carapulse-objects"
        );
        assert_eq!(
            named("CARAPULSE_S3_SECRET_ACCESS_KEY")["valueFrom"]["secretKeyRef"],
            serde_json::json!({"name": "objects-s3", "key": "secret-access-key"})
        );
    }
    // Without a named Secret the pod's own AWS identity is used: no credential variables.
    write_values("");
    let docs =
        documents(&render_chart(&chart(), &files, &release()).expect("renders")).expect("yaml");
    let mut config = load_config(&docs, "carapulse-tool-router", Component::ToolRouter);
    assert_eq!(config.storage.object_store.backend, "s3");
    assert_eq!(
        config.storage.object_store.endpoint.as_deref(),
        Some(server.endpoint.as_str())
    );
    assert!(config.storage.object_store.path_style);
    assert!(config.storage.object_store.access_key_id.is_none());
    // What differs from the pod: the credentials (the pod's identity; here the server's keys),
    // the listen address, the policy files and the sandbox helper (as above).
    config.storage.object_store.access_key_id =
        Some(carapulse_core::testing::s3::ACCESS_KEY.into());
    config.storage.object_store.secret_access_key =
        Some(carapulse_core::testing::s3::SECRET_KEY.into());
    config.tool_router.http_addr = "127.0.0.1:0".into();
    config.policy.policy_dir = carapulse_core::testing::policies_dir();
    config.sandbox.exec_helper = None;
    let resp = large_kubectl_get(config).await;
    let reference = resp["output_ref"].as_str().expect("stored by reference");
    let key = reference
        .strip_prefix("s3://carapulse-objects/")
        .unwrap_or_else(|| panic!("an s3 reference: {reference}"));
    let stored = std::fs::read(server.root.path().join("carapulse-objects").join(key))
        .expect("the output is an object of the bucket");
    assert!(stored.len() > 64 * 1024, "{} bytes", stored.len());

    // A wrong backend name or a missing bucket stops the render with a message.
    std::fs::write(&values, "objectStore:\n  backend: gcs\n").expect("values");
    let err = render_chart(&chart(), &files, &release())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("objectStore.backend must be fs or s3"),
        "{err}"
    );
    std::fs::write(&values, "objectStore:\n  backend: s3\n").expect("values");
    let err = render_chart(&chart(), &files, &release())
        .unwrap_err()
        .to_string();
    assert!(err.contains("objectStore.s3.bucket is required"), "{err}");
}
