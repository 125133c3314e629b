//! The tool router end to end: fake CLIs on PATH that assert the exact argv they receive, API
//! fallbacks against wiremock, policy, break-glass, live SSE logs, output references, redaction
//! and timeouts.

mod common;

use common::{TEST_GRANT_KEY, TOKEN};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use carapulse_core::config::Config;
use carapulse_core::testing::{grant_for_call, GrantOptions};
use serde_json::{json, Value};
use tool_router::Application;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A directory of fake CLIs, put first on PATH once for the whole test binary. Each fake compares
/// its arguments with `$CARAPULSE_FAKE_DIR/<tool>.expect` and prints `<tool>.out`; on a mismatch
/// it exits 97 and says what it got.
fn fake_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("carapulse-fakes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for tool in [
            "helm", "argocd", "vault", "boundary", "gh", "glab", "aws", "git", "kubectl",
        ] {
            let script = format!(
                "#!/bin/sh\nexpect=\"$CARAPULSE_FAKE_DIR/{tool}.expect\"\n\
                 if [ \"$*\" != \"$(cat \"$expect\")\" ]; then echo \"{tool}: unexpected argv: $*\" >&2; exit 97; fi\n\
                 if [ -f \"$CARAPULSE_FAKE_DIR/{tool}.sh\" ]; then . \"$CARAPULSE_FAKE_DIR/{tool}.sh\"; fi\n\
                 cat \"$CARAPULSE_FAKE_DIR/{tool}.out\" 2>/dev/null\nexit 0\n"
            );
            let path = dir.join(tool);
            std::fs::write(&path, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let old = std::env::var("PATH").unwrap_or_default();
        // SAFETY: done once, before any router of this binary starts.
        unsafe {
            std::env::set_var("PATH", format!("{}:{old}", dir.display()));
            std::env::set_var("CARAPULSE_FAKE_DIR", dir.join("expect"));
        }
        std::fs::create_dir_all(dir.join("expect")).unwrap();
        dir
    })
}

/// The fakes share one expectation directory, so tests that use them take turns.
async fn fakes_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

fn expect_dir() -> PathBuf {
    fake_bin().join("expect")
}

fn expect(tool: &str, args: &str, out: &str) {
    std::fs::write(expect_dir().join(format!("{tool}.expect")), args).unwrap();
    std::fs::write(expect_dir().join(format!("{tool}.out")), out).unwrap();
    let _ = std::fs::remove_file(expect_dir().join(format!("{tool}.sh")));
}

struct Router {
    url: String,
    http: reqwest::Client,
    _objects: tempfile::TempDir,
}

async fn spawn(tweak: impl FnOnce(&mut Config)) -> Router {
    fake_bin();
    let objects = tempfile::tempdir().unwrap();
    let mut config = common::router_config(objects.path());
    config.sandbox.env_allow.push("CARAPULSE_FAKE_DIR".into());
    config.sandbox.timeout_ms = 10_000;
    tweak(&mut config);
    let app = Application::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Router {
        url,
        http: reqwest::Client::new(),
        _objects: objects,
    }
}

impl Router {
    /// The full output of a tool call, as stored (`/v1/resources/tool-output/{id}`).
    async fn stored_output(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/v1/resources/tool-output/{id}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn exec(&self, body: Value) -> (u16, Value) {
        self.exec_with(body, &[]).await
    }

    /// Runs `body` as a step of an approved execution would: with a grant covering it.
    async fn exec_granted(&self, mut body: Value) -> (u16, Value) {
        let g = grant_for_call(
            &mut body,
            GrantOptions {
                key: TEST_GRANT_KEY,
                approved: true,
                break_glass: false,
                ttl_secs: 300,
            },
        );
        self.exec_with(body, &[("x-carapulse-grant", &g.header)])
            .await
    }

    async fn exec_with(&self, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/tools/execute", self.url))
            .bearer_auth(TOKEN)
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn call(tool: &str, action: &str, input: Value) -> Value {
    json!({"tool_name": tool, "action": action, "input": input,
           "context": {"tenant_id": "acme", "environment": "dev", "namespace": "web"}})
}

#[tokio::test]
async fn fake_clis_receive_exactly_the_built_argv() {
    let _fakes = fakes_lock().await;
    let r = spawn(|_| {}).await;
    let cases = [
        ("helm", "status", json!({"release": "web", "namespace": "web"}), "status web --output=json --namespace=web", "{\"info\":{\"status\":\"deployed\"}}"),
        ("helm", "upgrade", json!({"release": "web", "chart": "charts/web", "version": "1.2.3", "wait": true}), "upgrade --install web charts/web --version=1.2.3 --wait", "Release \"web\" has been upgraded."),
        ("helm", "rollback", json!({"release": "web", "revision": 4}), "rollback web 4", "Rollback was a success!"),
        ("argocd", "sync", json!({"app": "web", "revision": "v2"}), "app sync web --revision=v2", "Phase: Succeeded"),
        ("argocd", "sync-preview", json!({"app": "web"}), "app sync web --dry-run --preview-changes", "===== apps/Deployment web/web ====="),
        ("vault", "health", json!({}), "status -format=json", "{\"sealed\":false}"),
        ("vault", "rotate", json!({"path": "database/rotate-role/web"}), "write -format=json -force database/rotate-role/web", "{}"),
        ("gh", "pr-merge", json!({"pr": 7, "method": "squash", "repo": "acme/web"}), "pr merge 7 --squash --repo=acme/web", "Merged"),
        ("glab", "mr-merge", json!({"mr": 3}), "mr merge 3 --yes", "Merged"),
        ("boundary", "targets-list", json!({"scope_id": "p_1234567890"}), "targets list -format=json -scope-id=p_1234567890", "{\"items\":[]}"),
        ("aws", "assume-role", json!({"role_arn": "arn:aws:iam::123456789012:role/deploy"}), "sts assume-role --role-arn=arn:aws:iam::123456789012:role/deploy --role-session-name=carapulse --output=json", "{\"Credentials\":{}}"),
    ];
    for (bin, action, input, argv, out) in cases {
        expect(bin, argv, out);
        let tool = match bin {
            "gh" => "github",
            "glab" => "gitlab",
            other => other,
        };
        let (status, resp) = r.exec_granted(call(tool, action, input)).await;
        assert_eq!(status, 200, "{tool}.{action}: {resp}");
        assert_eq!(resp["used"], "cli", "{tool}.{action}");
        assert_eq!(resp["status"], "succeeded", "{tool}.{action}: {resp}");
        assert_eq!(resp["exit_code"], 0);
        assert_eq!(resp["output"], out, "{tool}.{action}");
    }
    // A wrong expectation makes the fake fail: the comparison is real.
    expect("helm", "status other", "");
    let (_, resp) = r
        .exec(call("helm", "status", json!({"release": "web"})))
        .await;
    assert_eq!(resp["status"], "failed");
    assert_eq!(resp["exit_code"], 97);
    assert!(
        resp["stderr"]
            .as_str()
            .unwrap()
            .contains("unexpected argv: status web --output=json"),
        "{resp}"
    );
}

/// `connectors.aws.region` reaches the aws CLI as its default region.
#[tokio::test]
async fn aws_cli_gets_the_configured_region() {
    let _fakes = fakes_lock().await;
    let r = spawn(|c| c.connectors.aws.region = Some("eu-central-1".into())).await;
    expect(
        "aws",
        "sts assume-role --role-arn=arn:aws:iam::123456789012:role/deploy --role-session-name=carapulse --output=json",
        "{}",
    );
    let check = fake_bin().join("expect").join("aws.sh");
    std::fs::write(
        &check,
        "if [ \"$AWS_REGION:$AWS_DEFAULT_REGION\" != eu-central-1:eu-central-1 ]; then echo \"region: $AWS_REGION:$AWS_DEFAULT_REGION\" >&2; exit 98; fi\n",
    )
    .unwrap();
    let input = json!({"role_arn": "arn:aws:iam::123456789012:role/deploy"});
    let (status, resp) = r
        .exec_granted(call("aws", "assume-role", input.clone()))
        .await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (200, Some("succeeded")),
        "{resp}"
    );
    // Without the setting the check fails: the fake really looks at the variables.
    let plain = spawn(|_| {}).await;
    let (_, resp) = plain.exec_granted(call("aws", "assume-role", input)).await;
    std::fs::remove_file(&check).unwrap();
    assert_eq!(resp["exit_code"], 98, "{resp}");
}

/// Demo mode (`dev-up.sh --demo`): the recording fakes of `e2e/fakes` run instead of the real
/// CLIs of the same name, each such call is marked `demo`, and `/readyz` says so; a CLI the demo
/// directory does not have still comes from PATH and is not marked.
#[tokio::test]
async fn demo_clis_run_instead_of_real_ones_and_are_marked() {
    let _fakes = fakes_lock().await;
    let fakes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/fakes");
    let calls = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        // The tools run as an unprivileged uid: the recording directory must be writable to it.
        std::fs::set_permissions(calls.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let (dir, mount) = (
        fakes.to_string_lossy().into_owned(),
        format!("{}:/e2e-calls:rw", calls.path().display()),
    );
    let r = spawn(move |c| {
        c.gateway.dev_mode = true;
        c.tool_router.demo_cli_dir = Some(dir);
        c.sandbox.mounts = vec![mount];
    })
    .await;
    // The PATH fake of kubectl would fail this call (no expectation matches): the demo one runs.
    expect("kubectl", "never called", "");
    let scale = json!({"resource": "deployment/web", "replicas": 3, "namespace": "web"});
    let (status, resp) = r.exec_granted(call("kubectl", "scale", scale)).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status"], "succeeded", "{resp}");
    assert_eq!(resp["demo"], true, "{resp}");
    let log = std::fs::read_to_string(calls.path().join("calls.log")).unwrap();
    assert!(
        log.contains("kubectl scale deployment/web --replicas=3"),
        "the fake recorded the call: {log}"
    );
    // gh is not among the demo CLIs: the real (here: PATH) one runs, unmarked.
    expect(
        "gh",
        "pr view 7 --json=number,url,state,headRefName,headRefOid,mergeCommit",
        "{}",
    );
    let (status, resp) = r.exec(call("github", "pr-view", json!({"pr": 7}))).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["demo"], false, "{resp}");
    let ready: Value = r
        .http
        .get(format!("{}/readyz", r.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["demo"]["clis"],
        json!(["argocd", "helm", "kubectl", "vault"]),
        "{ready}"
    );
    assert!(ready["demo"]["note"]
        .as_str()
        .unwrap()
        .contains("recording fakes"));
}

/// Go callers' spellings: `tool` for `tool_name`, and old action names, run as the current ones
/// and are answered with `Deprecation` and a `Warning` naming the replacement.
#[tokio::test]
async fn go_spellings_run_and_are_marked_deprecated() {
    let _fakes = fakes_lock().await;
    let r = spawn(|_| {}).await;
    expect(
        "gh",
        "pr view 7 --json=number,url,state,headRefName,headRefOid,mergeCommit",
        "{}",
    );
    let body = json!({"tool": "github", "action": "pr_view", "input": {"pr": 7},
                      "context": {"tenant_id": "acme", "environment": "dev", "namespace": "web"}});
    let resp = r
        .http
        .post(format!("{}/v1/tools/execute", r.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["deprecation"], "true");
    let warning = resp.headers()["warning"].to_str().unwrap().to_owned();
    assert!(warning.contains("use tool_name"), "{warning}");
    assert!(warning.contains("use github.pr-view"), "{warning}");
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["status"], "succeeded", "{out}");
    assert_eq!(out["deprecations"].as_array().unwrap().len(), 2, "{out}");
    // Current spellings: no notice.
    let (status, out) = r.exec(call("github", "pr-view", json!({"pr": 7}))).await;
    assert_eq!(status, 200, "{out}");
    assert!(out.get("deprecations").is_none(), "{out}");
    // Both names, disagreeing: refused, not guessed.
    let mut both = call("github", "pr-view", json!({"pr": 7}));
    both["tool"] = json!("gitlab");
    let (status, out) = r.exec(both).await;
    assert_eq!(status, 400, "{out}");
}

#[tokio::test]
async fn schema_violations_and_injection_are_400_naming_the_field() {
    let r = spawn(|_| {}).await;
    for (tool, action, input, field) in [
        (
            "helm",
            "status",
            json!({"release": "--kube-context=prod"}),
            "input.release",
        ),
        (
            "kubectl",
            "get",
            json!({"resource": "pods", "namespace": "-A"}),
            "input.namespace",
        ),
        (
            "helm",
            "status",
            json!({"release": "web", "debug": true}),
            "input.debug",
        ),
        (
            "vault",
            "read",
            json!({"path": "../../sys/raw"}),
            "input.path",
        ),
        ("helm", "launch", json!({}), "action"),
        ("bash", "run", json!({}), "tool_name"),
    ] {
        let (status, body) = r.exec(call(tool, action, input)).await;
        assert_eq!(status, 400, "{tool}.{action}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{field}: {body}"
        );
    }
    let resp = r
        .http
        .post(format!("{}/v1/tools/execute", r.url))
        .json(&call("vault", "health", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = r
        .http
        .post(format!("{}/v1/tools/execute", r.url))
        .bearer_auth("wrong")
        .json(&call("vault", "health", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn writes_and_secret_reads_need_a_grant_and_people_are_refused() {
    let _fakes = fakes_lock().await;
    let r = spawn(|c| {
        c.gateway.dev_mode = true;
        c.gateway.dev_jwt_secret = Some(carapulse_core::testing::TEST_JWT_SECRET.into());
    })
    .await;
    // A person's token is refused outright, whatever its roles: people use the gateway.
    let admin = person_token("alice", &["admin".to_owned(), "operator".to_owned()]);
    for body in [
        call("vault", "read", json!({"path": "sys/raw/core/keyring"})),
        call("kubectl", "get", json!({"resource": "secret/db"})),
        call("helm", "status", json!({"release": "web"})),
    ] {
        let resp = r
            .http
            .post(format!("{}/v1/tools/execute", r.url))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            401,
            "user token accepted for {body}"
        );
    }
    // Plain reads with the service token need no grant (the context collectors).
    expect("helm", "status web --output=json", "ok");
    let (s, b) = r
        .exec(call("helm", "status", json!({"release": "web"})))
        .await;
    assert_eq!(s, 200, "{b}");
    // Naming the tool call id needs a grant, reads included (it binds the log stream).
    let mut named = call("helm", "status", json!({"release": "web"}));
    named["tool_call_id"] = json!(uuid::Uuid::now_v7().to_string());
    let (s, b) = r.exec(named).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("grant_required")),
        "{b}"
    );
    // A write with the service token alone, even with an execution id: refused.
    let mut body = call("helm", "rollback", json!({"release": "web"}));
    body["execution_id"] = json!(uuid::Uuid::now_v7().to_string());
    let (s, b) = r.exec(body).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("grant_required")),
        "{b}"
    );
    // Secret reads are gated like writes: no grant, no read.
    for body in [
        call("vault", "read", json!({"path": "sys/raw/core/keyring"})),
        call("kubectl", "get", json!({"resource": "secret/db"})),
        call("helm", "get", json!({"release": "web", "what": "values"})),
    ] {
        let (s, b) = r.exec(body.clone()).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("grant_required")),
            "{body}: {b}"
        );
    }
    let approved = GrantOptions {
        key: TEST_GRANT_KEY,
        approved: true,
        break_glass: false,
        ttl_secs: 300,
    };
    // A grant signed with another key, expired, for another input or tenant: refused.
    expect("helm", "rollback web", "ok");
    let cases: Vec<(Value, GrantOptions, &str)> = vec![
        (
            call("helm", "rollback", json!({"release": "web"})),
            GrantOptions {
                key: "another-key-0123456789abcdef0123456789",
                ..approved
            },
            "signature",
        ),
        (
            call("helm", "rollback", json!({"release": "web"})),
            GrantOptions {
                ttl_secs: -5,
                ..approved
            },
            "expired",
        ),
    ];
    for (mut body, opts, why) in cases {
        let g = grant_for_call(&mut body, opts);
        let (s, b) = r.exec_with(body, &[("x-carapulse-grant", &g.header)]).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("grant_required")),
            "{why}: {b}"
        );
        assert!(
            b["error"]["message"].as_str().unwrap().contains(why),
            "{why}: {b}"
        );
    }
    let mut granted = call("helm", "rollback", json!({"release": "web"}));
    let g = grant_for_call(&mut granted, approved);
    let mut other_input = granted.clone();
    other_input["input"]["release"] = json!("db");
    let (s, b) = r
        .exec_with(other_input, &[("x-carapulse-grant", &g.header)])
        .await;
    assert_eq!(s, 403, "another input under the same grant: {b}");
    let mut other_tenant = granted.clone();
    other_tenant["context"]["tenant_id"] = json!("globex");
    let (s, b) = r
        .exec_with(other_tenant, &[("x-carapulse-grant", &g.header)])
        .await;
    assert_eq!(s, 403, "another tenant under the same grant: {b}");
    // The grant of an approved plan runs the write, once per tool call id.
    let (s, b) = r
        .exec_with(granted.clone(), &[("x-carapulse-grant", &g.header)])
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["tool_call_id"], json!(g.tool_call_id));
    // The write's policy decision comes back for the orchestrator to keep (policy impact):
    // what was decided and on which input, without an e-mail address.
    let kept = &b["policy_decision"];
    assert_eq!(
        (kept["action"].as_str(), kept["decision"].as_str()),
        (Some("tool.execute"), Some("require_approval")),
        "{b}"
    );
    assert_eq!(kept["tenant_id"], json!("acme"), "{kept}");
    assert_eq!(kept["input"]["action"]["type"], json!("write"), "{kept}");
    assert!(kept["input"]["actor"].get("email").is_none(), "{kept}");
    assert!(
        kept["reasons"].as_array().is_some_and(|r| !r.is_empty()),
        "{kept}"
    );
    let (s, b) = r
        .exec_with(granted, &[("x-carapulse-grant", &g.header)])
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("tool_call_id_in_use")),
        "{b}"
    );
    // A medium-risk write of a plan nobody approved: policy still requires approval.
    let mut unapproved = call("helm", "rollback", json!({"release": "web"}));
    let g = grant_for_call(
        &mut unapproved,
        GrantOptions {
            approved: false,
            ..approved
        },
    );
    let (s, b) = r
        .exec_with(unapproved, &[("x-carapulse-grant", &g.header)])
        .await;
    assert_eq!(s, 403, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not approved"),
        "{b}"
    );
    assert_eq!(b["error"]["code"], json!("policy_denied"), "{b}");
    // A refusal carries its decision too: refused writes are what policy impact most needs.
    assert_eq!(
        (
            b["policy_decision"]["action"].as_str(),
            b["policy_decision"]["decision"].as_str()
        ),
        (Some("tool.execute"), Some("require_approval")),
        "{b}"
    );
    // Break-glass comes from the grant: the header is ignored.
    expect("helm", "uninstall web", "release \"web\" uninstalled");
    let mut body = call("helm", "uninstall", json!({"release": "web"}));
    let g = grant_for_call(&mut body, approved);
    let (s, b) = r
        .exec_with(
            body,
            &[("x-carapulse-grant", &g.header), ("X-Break-Glass", "true")],
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("break_glass_required")),
        "{b}"
    );
    let mut body = call("helm", "uninstall", json!({"release": "web"}));
    let g = grant_for_call(
        &mut body,
        GrantOptions {
            break_glass: true,
            ..approved
        },
    );
    let (s, b) = r.exec_with(body, &[("x-carapulse-grant", &g.header)]).await;
    assert_eq!(s, 200, "{b}");
    // Unknown environments are denied for writes, even with a grant.
    let mut moon = call("helm", "rollback", json!({"release": "web"}));
    moon["context"]["environment"] = json!("moon");
    let g = grant_for_call(&mut moon, approved);
    let (s, _) = r.exec_with(moon, &[("x-carapulse-grant", &g.header)]).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn granted_secret_reads_are_masked_structurally_and_not_streamed() {
    let _fakes = fakes_lock().await;
    let r = spawn(|_| {}).await;
    let approved = GrantOptions {
        key: TEST_GRANT_KEY,
        approved: true,
        break_glass: false,
        ttl_secs: 300,
    };
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"pw\":\"aHVudGVyMg==\"}}"}},
        "data": {"pw": "aHVudGVyMg==", "odd-key-name": "c3VwZXJzZWNyZXQ="}});
    expect(
        "kubectl",
        "get secret/db --output=json --namespace=web",
        &secret.to_string(),
    );
    let mut body = call(
        "kubectl",
        "get",
        json!({"resource": "secret/db", "namespace": "web"}),
    );
    let g = grant_for_call(&mut body, approved);
    let (s, b) = r.exec_with(body, &[("x-carapulse-grant", &g.header)]).await;
    assert_eq!(s, 200, "{b}");
    let out = b["output"].as_str().unwrap();
    assert!(
        !out.contains("aHVudGVyMg==") && !out.contains("c3VwZXJzZWNyZXQ="),
        "{out}"
    );
    assert!(
        out.contains("odd-key-name") && out.contains("[MASKED]"),
        "{out}"
    );
    // Nothing of the raw output reached the live log stream.
    let logs = r
        .http
        .get(format!(
            "{}/v1/tools/logs?tool_call_id={}",
            r.url, g.tool_call_id
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!logs.contains("aHVudGVyMg=="), "{logs}");
    assert!(logs.contains("masked"), "{logs}");
    // Vault: values of `data` masked, keys kept; a non-JSON answer is withheld entirely.
    expect(
        "vault",
        "read -format=json kv/app",
        "{\"data\":{\"password\":\"hunter2\"}}",
    );
    let mut body = call("vault", "read", json!({"path": "kv/app"}));
    let g = grant_for_call(&mut body, approved);
    let (s, b) = r.exec_with(body, &[("x-carapulse-grant", &g.header)]).await;
    assert_eq!(s, 200, "{b}");
    let out = b["output"].as_str().unwrap();
    assert!(
        !out.contains("hunter2") && out.contains("password"),
        "{out}"
    );
    expect("vault", "read -format=json kv/app", "password hunter2");
    let mut body = call("vault", "read", json!({"path": "kv/app"}));
    let g = grant_for_call(&mut body, approved);
    let (_, b) = r.exec_with(body, &[("x-carapulse-grant", &g.header)]).await;
    let out = b["output"].as_str().unwrap();
    assert!(
        out.starts_with("[output withheld") && !out.contains("hunter2"),
        "{out}"
    );
}

#[tokio::test]
async fn api_fallback_and_api_only_tools_against_mock_servers() {
    let prom = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", "up{job=\"web\"}"))
        .and(header("authorization", "Bearer prom-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "1"]}]}})))
        .expect(1)
        .mount(&prom)
        .await;
    let boundary = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/targets"))
        .and(query_param("scope_id", "p_1234567890"))
        .and(header("authorization", "Bearer b-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .expect(1)
        .mount(&boundary)
        .await;
    let pd = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .and(body_partial_json(json!({"routing_key": "pd-routing-key", "event_action": "resolve", "dedup_key": "web-down"})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"status": "success"})))
        .expect(1)
        .mount(&pd)
        .await;
    let grafana = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/annotations"))
        .and(header("x-grafana-org-id", "1"))
        .and(body_partial_json(
            json!({"text": "deploy web v2", "tags": ["deploy"]}),
        ))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .expect(1)
        .mount(&grafana)
        .await;
    // context.grafana_folders: one folderIds parameter per folder.
    Mock::given(method("GET"))
        .and(path("/api/search"))
        .and(query_param("type", "dash-db"))
        .and(|req: &wiremock::Request| {
            let ids: Vec<String> = req
                .url
                .query_pairs()
                .filter(|(k, _)| k == "folderIds")
                .map(|(_, v)| v.into_owned())
                .collect();
            ids == ["7", "12"]
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"uid": "abc"}])))
        .expect(1)
        .mount(&grafana)
        .await;
    let (p, b, d, g) = (prom.uri(), boundary.uri(), pd.uri(), grafana.uri());
    // The sandbox is not enabled (while enforced): CLIs are not permitted, so tools with an API
    // use it even though a (fake) binary is on PATH.
    let _fakes = fakes_lock().await;
    let r = spawn(move |c| {
        c.sandbox.enabled = false;
        c.connectors.prometheus.addr = Some(p);
        c.connectors.prometheus.token = Some("prom-token".into());
        c.connectors.boundary.addr = Some(b);
        c.connectors.boundary.token = Some("b-token".into());
        c.connectors.pagerduty.addr = Some(d);
        c.connectors.pagerduty.token = Some("pd-routing-key".into());
        c.connectors.grafana.addr = Some(g);
    })
    .await;
    let (s, resp) = r
        .exec(call(
            "prometheus",
            "query",
            json!({"query": "up{job=\"web\"}"}),
        ))
        .await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(
        (resp["used"].as_str(), resp["http_status"].as_u64()),
        (Some("api"), Some(200))
    );
    assert!(resp["output"].as_str().unwrap().contains("vector"));
    // boundary's CLI is not permitted here: the API path runs and says so.
    let (s, resp) = r
        .exec(call(
            "boundary",
            "targets-list",
            json!({"scope_id": "p_1234567890"}),
        ))
        .await;
    assert_eq!((s, resp["used"].as_str()), (200, Some("api")), "{resp}");
    let resolve = call("pagerduty", "resolve", json!({"dedup_key": "web-down"}));
    let (s, resp) = r.exec_granted(resolve).await;
    assert_eq!(
        (s, resp["status"].as_str()),
        (200, Some("succeeded")),
        "{resp}"
    );
    let (s, resp) = r
        .exec_granted(call(
            "grafana",
            "annotation-create",
            json!({"text": "deploy web v2", "tags": ["deploy"]}),
        ))
        .await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(
        (resp["status"].as_str(), resp["http_status"].as_u64()),
        (Some("failed"), Some(500)),
        "upstream errors are failures, not successes"
    );
    let (s, resp) = r
        .exec(call(
            "grafana",
            "dashboards",
            json!({"folder_ids": [7, 12]}),
        ))
        .await;
    assert_eq!(
        (s, resp["status"].as_str()),
        (200, Some("succeeded")),
        "{resp}"
    );
    let (s, resp) = r
        .exec(call("grafana", "dashboards", json!({"folder_ids": [0]})))
        .await;
    assert_eq!(s, 400, "folder ids are positive: {resp}");
    // A CLI-only tool cannot run at all, and says why.
    let (s, resp) = r
        .exec(call("helm", "status", json!({"release": "web"})))
        .await;
    assert_eq!(
        (s, resp["error"]["code"].as_str()),
        (503, Some("tool_unavailable")),
        "{resp}"
    );
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sandbox.enabled"),
        "{resp}"
    );
    // No API address and no CLI: a clear 503.
    let (s, resp) = r.exec(call("tempo", "search", json!({"q": "{ }"}))).await;
    assert_eq!(
        (s, resp["error"]["code"].as_str()),
        (503, Some("tool_unavailable")),
        "{resp}"
    );
    assert!(resp["error"]["message"]
        .as_str()
        .unwrap()
        .contains("connectors.tempo.addr"));
}

#[tokio::test]
async fn logs_stream_live_while_the_command_runs() {
    let _fakes = fakes_lock().await;
    let r = spawn(|_| {}).await;
    expect("helm", "history web --output=json", "");
    std::fs::write(
        expect_dir().join("helm.sh"),
        "echo line-1; sleep 0.4; echo line-2; sleep 0.4; echo line-3\n",
    )
    .unwrap();
    let mut body = call("helm", "history", json!({"release": "web"}));
    // A caller that names its tool call id (to follow its logs) holds a grant binding it.
    let grant = grant_for_call(
        &mut body,
        GrantOptions {
            key: TEST_GRANT_KEY,
            approved: true,
            break_glass: false,
            ttl_secs: 300,
        },
    );
    let id = grant.tool_call_id.clone();
    let exec = {
        let http = r.http.clone();
        let url = format!("{}/v1/tools/execute", r.url);
        tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(TOKEN)
                .header("x-carapulse-grant", grant.header)
                .json(&body)
                .send()
                .await
                .unwrap();
            (Instant::now(), resp.json::<Value>().await.unwrap())
        })
    };
    // Subscribe as soon as the call exists.
    let mut resp = None;
    for _ in 0..100 {
        let res = r
            .http
            .get(format!("{}/v1/tools/logs?tool_call_id={id}", r.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if res.status().as_u16() == 200 {
            resp = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut resp = resp.expect("log stream opened");
    let mut text = String::new();
    let mut first_line_at = None;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if first_line_at.is_none() && text.contains("line-1") {
            first_line_at = Some(Instant::now());
        }
        if text.contains("event: end") {
            break;
        }
    }
    let (finished_at, result) = exec.await.unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    assert!(text.contains("line-2") && text.contains("line-3"), "{text}");
    let first = first_line_at.expect("saw line-1");
    assert!(
        finished_at.duration_since(first) >= Duration::from_millis(500),
        "line-1 arrived while the command was still running"
    );
    // Replay after the end gives the whole history and the end event.
    let replay = r
        .http
        .get(format!("{}/v1/tools/logs?tool_call_id={id}", r.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        replay.contains("line-1") && replay.contains("event: end"),
        "{replay}"
    );
    let unknown = r
        .http
        .get(format!(
            "{}/v1/tools/logs?tool_call_id={}",
            r.url,
            uuid::Uuid::now_v7()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn large_output_goes_to_the_object_store_and_secrets_are_redacted() {
    let _fakes = fakes_lock().await;
    let r = spawn(|_| {}).await;
    // Release notes: a plain read (values and manifests are sensitive reads, masked).
    expect("helm", "get notes web", "");
    std::fs::write(
        expect_dir().join("helm.sh"),
        "echo 'password=hunter2hunter2 AKIAIOSFODNN7EXAMPLE'; head -c 200000 /dev/zero | tr '\\0' 'x'\n",
    )
    .unwrap();
    let (s, resp) = r
        .exec(call(
            "helm",
            "get",
            json!({"release": "web", "what": "notes"}),
        ))
        .await;
    assert_eq!(s, 200, "{resp}");
    let output = resp["output"].as_str().unwrap();
    assert!(
        !output.contains("hunter2hunter2") && !output.contains("AKIAIOSFODNN7EXAMPLE"),
        "redacted"
    );
    assert!(output.len() <= tool_router::executor::INLINE_OUTPUT_BYTES);
    assert_eq!(resp["output_truncated"], true);
    let reference = resp["output_ref"].as_str().unwrap();
    assert!(reference.starts_with("fs://tool-output/"));
    let id = resp["tool_call_id"].as_str().unwrap();
    let stored = r.stored_output(id).await;
    let full = stored["output"].as_str().unwrap();
    assert!(full.len() > 200_000, "the stored output is complete");
    assert!(!full.contains("hunter2hunter2"));
}

/// `storage.object_store.backend: s3` against a real S3-compatible server: a large output is
/// written to the bucket and read back through the router, and helm values come from it.
#[tokio::test]
async fn s3_backend_keeps_outputs_and_values_in_the_bucket() {
    let _fakes = fakes_lock().await;
    let server = carapulse_core::testing::s3::S3Server::start("router");
    let store_config = server.config();
    let r = spawn(move |c| c.storage.object_store = store_config).await;
    expect("helm", "get notes web", "");
    std::fs::write(
        expect_dir().join("helm.sh"),
        "head -c 100000 /dev/zero | tr '\\0' 'y'\n",
    )
    .unwrap();
    let (s, resp) = r
        .exec(call(
            "helm",
            "get",
            json!({"release": "web", "what": "notes"}),
        ))
        .await;
    assert_eq!(s, 200, "{resp}");
    let id = resp["tool_call_id"].as_str().unwrap();
    assert_eq!(
        resp["output_ref"].as_str(),
        Some(format!("s3://router/tool-output/{id}.json").as_str()),
        "{resp}"
    );
    let in_bucket = server
        .root
        .path()
        .join(format!("router/tool-output/{id}.json"));
    assert!(in_bucket.is_file(), "the output is an object of the bucket");
    let stored = r.stored_output(id).await;
    assert_eq!(stored["output"].as_str().map(str::len), Some(100_000));

    // Values of the calling tenant, by key or by the bucket's reference.
    std::fs::create_dir_all(server.root.path().join("router/values/acme")).unwrap();
    std::fs::write(
        server.root.path().join("router/values/acme/web.yaml"),
        "replicaCount: 5\n",
    )
    .unwrap();
    for reference in ["values/acme/web.yaml", "s3://router/values/acme/web.yaml"] {
        expect(
            "helm",
            "upgrade --install web charts/web --values=values.yaml",
            "",
        );
        std::fs::write(expect_dir().join("helm.sh"), "cat values.yaml\n").unwrap();
        let upgrade = call(
            "helm",
            "upgrade",
            json!({"release": "web", "chart": "charts/web", "values_ref": {"kind": "object_store", "ref": reference}}),
        );
        let (s, resp) = r.exec_granted(upgrade).await;
        assert_eq!(
            (s, resp["status"].as_str()),
            (200, Some("succeeded")),
            "{resp}"
        );
        assert_eq!(resp["output"].as_str().unwrap().trim(), "replicaCount: 5");
    }
    let missing = call(
        "helm",
        "upgrade",
        json!({"release": "web", "chart": "charts/web", "values_ref": {"kind": "object_store", "ref": "values/acme/none.yaml"}}),
    );
    let (s, resp) = r.exec_granted(missing).await;
    assert_eq!(s, 400, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("input.values_ref.ref"),
        "{resp}"
    );
}

/// Step outputs are data: a JSON answer comes back parsed as `result`; one larger than a tool
/// call row keeps inline is also written to the object store (`result_ref`); text gives none.
#[tokio::test]
async fn json_answers_come_back_as_results_and_large_ones_are_stored() {
    let _fakes = fakes_lock().await;
    let r = spawn(|_| {}).await;
    let status = || {
        call(
            "helm",
            "status",
            json!({"release": "web", "namespace": "web"}),
        )
    };
    expect(
        "helm",
        "status web --output=json --namespace=web",
        r#"{"name":"web","version":7,"info":{"status":"deployed"}}"#,
    );
    let (s, small) = r.exec(status()).await;
    assert_eq!(s, 200, "{small}");
    assert_eq!(small["result"]["version"], json!(7), "{small}");
    assert!(small.get("result_ref").is_none(), "{small}");

    expect("helm", "status web --output=json --namespace=web", "");
    std::fs::write(
        expect_dir().join("helm.sh"),
        "printf '{\"version\":8,\"notes\":\"'; head -c 100000 /dev/zero | tr '\\0' 'x'; printf '\"}'\n",
    )
    .unwrap();
    let (s, large) = r.exec(status()).await;
    assert_eq!(s, 200, "{large}");
    assert_eq!(large["result"]["version"], json!(8));
    let reference = large["result_ref"].as_str().expect("result_ref");
    assert!(reference.starts_with("fs://tool-result/"), "{reference}");

    expect(
        "helm",
        "status web --output=json --namespace=web",
        "not json at all",
    );
    let (s, text) = r.exec(status()).await;
    assert_eq!(s, 200, "{text}");
    assert!(text.get("result").is_none(), "{text}");
}

#[tokio::test]
async fn slow_tools_are_killed_at_the_timeout_and_metrics_count_calls() {
    let _fakes = fakes_lock().await;
    let r = spawn(|c| c.sandbox.timeout_ms = 300).await;
    expect("vault", "status -format=json", "");
    std::fs::write(expect_dir().join("vault.sh"), "sleep 5\n").unwrap();
    let started = Instant::now();
    let (s, resp) = r.exec(call("vault", "health", json!({}))).await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(
        (resp["status"].as_str(), resp["timed_out"].as_bool()),
        (Some("failed"), Some(true))
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let metrics = r
        .http
        .get(format!("{}/metrics", r.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("carapulse_tool_calls_total{tool=\"vault\",action=\"health\",outcome=\"failed\",used=\"cli\"} 1"), "{metrics}");
    let tools: Value = r
        .http
        .get(format!("{}/v1/tools", r.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tools["tools"].as_array().unwrap().len(), 16);
    assert!(tools["tools"][0]["actions"][0]["input_schema"]["properties"].is_object());
}

#[tokio::test]
async fn helm_values_ref_is_resolved_and_checksummed() {
    let _fakes = fakes_lock().await;
    let workspace = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("/usr/bin/git")
            .args(args)
            .current_dir(workspace.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    std::fs::create_dir_all(workspace.path().join("values")).unwrap();
    std::fs::write(
        workspace.path().join("values/web.yaml"),
        "replicaCount: 3\n",
    )
    .unwrap();
    git(&["add", "values/web.yaml"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "-m",
        "values",
    ]);
    let ws = workspace.path().to_string_lossy().into_owned();
    let r = spawn(move |c| c.storage.workspace_dir = Some(ws)).await;
    std::fs::create_dir_all(r._objects.path().join("values/acme")).unwrap();
    std::fs::create_dir_all(r._objects.path().join("values/globex")).unwrap();
    std::fs::write(
        r._objects.path().join("values/globex/web.yaml"),
        "theirs: 1\n",
    )
    .unwrap();
    std::fs::write(
        r._objects.path().join("values/acme/web.yaml"),
        "replicaCount: 4\n",
    )
    .unwrap();

    let sha = |s: &str| carapulse_core::canonical::sha256_hex(s.as_bytes());
    let upgrade = |values_ref: Value| {
        call(
            "helm",
            "upgrade",
            json!({"release": "web", "chart": "charts/web", "values_ref": values_ref}),
        )
    };
    for (values_ref, content) in [
        (
            json!({"kind": "inline", "ref": "replicaCount: 2\n", "sha256": sha("replicaCount: 2\n")}),
            "replicaCount: 2",
        ),
        (
            json!({"kind": "object_store", "ref": "fs://values/acme/web.yaml", "sha256": sha("replicaCount: 4\n")}),
            "replicaCount: 4",
        ),
        (
            json!({"kind": "git_path", "ref": "HEAD:values/web.yaml"}),
            "replicaCount: 3",
        ),
    ] {
        expect(
            "helm",
            "upgrade --install web charts/web --values=values.yaml",
            "",
        );
        std::fs::write(expect_dir().join("helm.sh"), "cat values.yaml\n").unwrap();
        let (s, resp) = r.exec_granted(upgrade(values_ref.clone())).await;
        assert_eq!(s, 200, "{values_ref}: {resp}");
        assert_eq!(resp["status"], "succeeded", "{values_ref}: {resp}");
        assert_eq!(
            resp["output"].as_str().unwrap().trim(),
            content,
            "{values_ref}"
        );
    }
    for (values_ref, field) in [
        (
            json!({"kind": "inline", "ref": "a: 1\n", "sha256": sha("a: 2\n")}),
            "input.values_ref.sha256",
        ),
        (
            json!({"kind": "git_path", "ref": "HEAD:../../etc/passwd"}),
            "input.values_ref.ref",
        ),
        (
            json!({"kind": "git_path", "ref": "--output=/tmp/x:values.yaml"}),
            "input.values_ref.ref",
        ),
        (
            json!({"kind": "object_store", "ref": "fs://../secret"}),
            "input.values_ref.ref",
        ),
        // Another tenant's values, and stored tool outputs, are out of reach.
        (
            json!({"kind": "object_store", "ref": "fs://values/globex/web.yaml"}),
            "input.values_ref.ref",
        ),
        (
            json!({"kind": "object_store", "ref": "fs://tool-output/x.json"}),
            "input.values_ref.ref",
        ),
        (
            json!({"kind": "object_store", "ref": "fs://values/acme/../globex/web.yaml"}),
            "input.values_ref.ref",
        ),
        (
            json!({"kind": "http", "ref": "http://evil"}),
            "input.values_ref.kind",
        ),
    ] {
        let (s, resp) = r.exec_granted(upgrade(values_ref.clone())).await;
        assert_eq!(s, 400, "{values_ref}: {resp}");
        // No error names the real digest of anything it read.
        assert!(
            !resp.to_string().contains(&sha("a: 1\n")),
            "the actual digest leaked: {resp}"
        );
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{field}: {resp}"
        );
    }
}

/// Who may call what on the router: every route as five identities, each answer as the table
/// says. Only service principals get in; among them, writes and secret reads need a grant.
#[tokio::test]
async fn authorisation_matrix_of_the_router() {
    let _fakes = fakes_lock().await;
    let r = spawn(|c| {
        c.gateway.dev_mode = true;
        c.gateway.dev_jwt_secret = Some(carapulse_core::testing::TEST_JWT_SECRET.into());
    })
    .await;
    let person = person_token(
        "ada",
        &[
            "admin".to_owned(),
            "operator".to_owned(),
            "break-glass".to_owned(),
        ],
    );
    #[derive(Clone, Copy, Debug)]
    enum Who {
        Nobody,
        BadToken,
        Person,
        Service,
        ServiceWithGrant,
    }
    const WHO: [Who; 5] = [
        Who::Nobody,
        Who::BadToken,
        Who::Person,
        Who::Service,
        Who::ServiceWithGrant,
    ];
    let unknown = uuid::Uuid::now_v7().to_string();
    // (method, path, body, [fake tool, its argv, its output], expected status per identity)
    type Row<'a> = (
        &'a str,
        String,
        Option<Value>,
        Option<(&'a str, &'a str, &'a str)>,
        [u16; 5],
    );
    let rows: Vec<Row> = vec![
        (
            "get",
            "/v1/tools".into(),
            None,
            None,
            [401, 401, 401, 200, 200],
        ),
        (
            "post",
            "/v1/tools/execute".into(),
            Some(call("helm", "status", json!({"release": "web"}))),
            Some(("helm", "status web --output=json", "{}")),
            [401, 401, 401, 200, 200],
        ),
        (
            "post",
            "/v1/tools/execute".into(),
            Some(call("helm", "rollback", json!({"release": "web"}))),
            Some(("helm", "rollback web", "ok")),
            [401, 401, 401, 403, 200],
        ),
        (
            "post",
            "/v1/tools:execute".into(),
            Some(call(
                "kubectl",
                "get",
                json!({"resource": "secret/db", "namespace": "web"}),
            )),
            Some((
                "kubectl",
                "get secret/db --output=json --namespace=web",
                "{\"kind\": \"Secret\", \"data\": {\"pw\": \"eA==\"}}",
            )),
            [401, 401, 401, 403, 200],
        ),
        (
            "post",
            "/v1/tools/execute".into(),
            Some(call("vault", "read", json!({"path": "kv/app"}))),
            Some((
                "vault",
                "read -format=json kv/app",
                "{\"data\": {\"k\": \"v\"}}",
            )),
            [401, 401, 401, 403, 200],
        ),
        (
            "get",
            format!("/v1/tools/logs?tool_call_id={unknown}"),
            None,
            None,
            [401, 401, 401, 404, 404],
        ),
        (
            "get",
            format!("/v1/resources/tool-output/{unknown}"),
            None,
            None,
            [401, 401, 401, 404, 404],
        ),
        (
            "get",
            "/v1/resources".into(),
            None,
            None,
            [401, 401, 401, 200, 200],
        ),
        (
            "get",
            "/v1/prompts".into(),
            None,
            None,
            [401, 401, 401, 200, 200],
        ),
        (
            "post",
            "/v1/resources:resolve".into(),
            Some(json!({"uri": "workflow://scale_service"})),
            None,
            [401, 401, 401, 200, 200],
        ),
    ];
    let approved = GrantOptions {
        key: TEST_GRANT_KEY,
        approved: true,
        break_glass: false,
        ttl_secs: 300,
    };
    let mut calls = 0;
    for (method, path, body, fake, expected) in &rows {
        for (who, want) in WHO.iter().zip(expected) {
            if let Some((tool, argv, out)) = fake {
                expect(tool, argv, out);
            }
            let mut body = body.clone();
            let url = format!("{}{}", r.url, path);
            let mut req = match *method {
                "get" => r.http.get(&url),
                _ => r.http.post(&url),
            };
            match who {
                Who::Nobody => {}
                Who::BadToken => req = req.bearer_auth("not-the-service-token-0123456789"),
                Who::Person => req = req.bearer_auth(&person),
                Who::Service => req = req.bearer_auth(TOKEN),
                Who::ServiceWithGrant => {
                    req = req.bearer_auth(TOKEN);
                    // Grants are for tool calls; the resource routes take none.
                    if let (Some(b), Some(_)) = (body.as_mut(), fake) {
                        let g = grant_for_call(b, approved);
                        req = req.header("x-carapulse-grant", g.header);
                    }
                }
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            assert_eq!(status, *want, "{method} {path} as {who:?}: {text}");
            calls += 1;
        }
    }
    assert_eq!(calls, rows.len() * WHO.len());
}

/// A person's dev-mode token of tenant acme (the router must refuse it whatever its roles).
fn person_token(subject: &str, roles: &[String]) -> String {
    carapulse_core::auth::mint_dev_token(&carapulse_core::auth::DevTokenRequest {
        secret: carapulse_core::testing::TEST_JWT_SECRET,
        issuer: "carapulse-dev",
        audience: None,
        subject,
        tenant: "acme",
        roles,
        email: None,
        ttl_secs: 600,
        tenant_claim: "tenant_id",
        roles_claim: "groups",
    })
    .unwrap()
}
