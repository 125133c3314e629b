//! The real `kubectl` (installed on this machine) run by the router against a local fake
//! Kubernetes API server: read actions and a `--dry-run=client` write that must not change
//! anything.

mod common;

use common::{TEST_GRANT_KEY, TOKEN};
use serde_json::{json, Value};
use tool_router::Application;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .set_body_json(body)
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "web", "resourceVersion": "7", "uid": "u1"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2}
    })
}

async fn fake_apiserver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path("/api")).respond_with(ok(json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
    }))).mount(&server).await;
    Mock::given(method("GET"))
        .and(path("/apis"))
        .respond_with(ok(json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path("/api/v1")).respond_with(ok(json!({
        "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [{"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["get", "list", "watch"]}]
    }))).mount(&server).await;
    Mock::given(method("GET")).and(path("/apis/apps/v1")).respond_with(ok(json!({
        "kind": "APIResourceList", "groupVersion": "apps/v1",
        "resources": [
            {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "verbs": ["get", "list", "patch", "update", "watch"]},
            {"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}
        ]
    }))).mount(&server).await;
    Mock::given(method("GET")).and(path("/api/v1/namespaces/web/pods")).respond_with(ok(json!({
        "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"},
        "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-abc", "namespace": "web"}, "status": {"phase": "Running"}}]
    }))).expect(1).mount(&server).await;
    Mock::given(method("GET"))
        .and(path("/apis/apps/v1/namespaces/web/deployments/web"))
        .respond_with(ok(deployment()))
        .mount(&server)
        .await;
    // A dry run must not write.
    for m in ["PUT", "PATCH", "POST", "DELETE"] {
        Mock::given(method(m))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
    }
    server
}

async fn router(kubeconfig: &std::path::Path, allow: Option<String>) -> String {
    let objects = tempfile::tempdir().unwrap().keep();
    let mut config = common::router_config(&objects);
    config.connectors.k8s.kubeconfig_path = Some(kubeconfig.to_string_lossy().into_owned());
    config.sandbox.egress_allowlist = allow.into_iter().collect();
    config.sandbox.timeout_ms = 20_000;
    let app = Application::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

async fn exec(url: &str, action: &str, input: Value) -> Value {
    let mut body = json!({"tool_name": "kubectl", "action": action, "input": input,
                      "context": {"tenant_id": "acme", "environment": "dev", "namespace": "web"}});
    // As a step of an approved execution: the orchestrator's grant covers the call.
    let grant = carapulse_core::testing::grant_for_call(
        &mut body,
        carapulse_core::testing::GrantOptions {
            key: TEST_GRANT_KEY,
            approved: true,
            break_glass: false,
            ttl_secs: 300,
        },
    );
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/tools/execute"))
        .bearer_auth(TOKEN)
        .header("x-carapulse-grant", grant.header)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn real_kubectl_reads_and_dry_runs_against_a_fake_apiserver() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        panic!("kubectl is expected on this machine");
    }
    let api = fake_apiserver().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {}\n  name: fake\ncontexts:\n- context:\n    cluster: fake\n    user: u\n  name: fake\ncurrent-context: fake\nusers:\n- name: u\n  user:\n    token: kube-test-token\n",
            api.uri()
        ),
    )
    .unwrap();
    let host_port = api.uri().trim_start_matches("http://").to_owned();
    let url = router(&kubeconfig, Some(host_port)).await;

    let pods = exec(&url, "get", json!({"resource": "pods", "namespace": "web"})).await;
    assert_eq!(pods["status"], "succeeded", "{pods}");
    assert_eq!(pods["used"], "cli");
    let list: Value = serde_json::from_str(pods["output"].as_str().unwrap()).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "web-abc");

    let dry = exec(
        &url,
        "scale",
        json!({"resource": "deployment/web", "namespace": "web", "replicas": 5, "dry_run": true}),
    )
    .await;
    assert_eq!(dry["status"], "succeeded", "{dry}");
    let obj: Value = serde_json::from_str(dry["output"].as_str().unwrap()).unwrap();
    assert_eq!(obj["kind"], "Deployment", "{obj}");

    // With no egress allowed the sandbox has no network, and kubectl cannot reach the server.
    if sandbox_exec::isolation_available().is_ok() {
        let isolated = router(&kubeconfig, None).await;
        let denied = exec(
            &isolated,
            "get",
            json!({"resource": "pods", "namespace": "web"}),
        )
        .await;
        assert_eq!(denied["status"], "failed", "{denied}");
        assert_eq!(
            denied["sandbox"]["namespaces"],
            json!(["user", "mount", "pid", "net", "ipc", "uts"])
        );
        assert_eq!(denied["sandbox"]["root"], "minimal", "{denied}");
        assert_eq!(denied["sandbox"]["seccomp"], "default", "{denied}");
        assert_eq!(denied["sandbox"]["uid"], 65534, "{denied}");
    }
    drop(api);
}
