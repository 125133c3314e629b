//! Runs the real `assistantctl` binary against a gateway spawned on port 0 with a fresh database.

use std::path::PathBuf;

use carapulse_core::testing::{TestDatabase, TEST_JWT_SECRET};
use gateway::Application;
use serde_json::Value;

struct Env {
    url: String,
    config_path: PathBuf,
    db: TestDatabase,
    shutdown: tokio_util::sync::CancellationToken,
    dir: PathBuf,
}

async fn start() -> Env {
    let db = TestDatabase::create().await;
    let config = db.config();
    let dir = std::env::temp_dir().join(format!("assistantctl-test-{}", uuid_simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let app = Application::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    Env {
        url,
        config_path,
        db,
        shutdown,
        dir,
    }
}

fn uuid_simple() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// The CLI binary pointed at the test gateway, with `vars` added to its environment.
fn command(
    env: &Env,
    token: Option<&str>,
    args: &[&str],
    vars: &[(&str, &str)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_assistantctl"));
    cmd.args(args)
        .env("CARAPULSE_URL", &env.url)
        .env("CARAPULSE_CONFIG", &env.config_path)
        .env_remove("CARAPULSE_TOKEN");
    if let Some(t) = token {
        cmd.env("CARAPULSE_TOKEN", t);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn out(o: std::process::Output) -> Out {
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

async fn ctl(env: &Env, token: Option<&str>, args: &[&str]) -> Out {
    out(command(env, token, args, &[]).output().await.unwrap())
}

/// Starts the CLI without waiting (for commands that follow a stream).
fn spawn_ctl(env: &Env, token: &str, args: &[&str]) -> tokio::task::JoinHandle<Out> {
    let mut child = command(env, Some(token), args, &[]);
    tokio::spawn(async move { out(child.output().await.unwrap()) })
}

async fn dev_token(env: &Env, sub: &str, roles: &str) -> String {
    let out = ctl(
        env,
        None,
        &[
            "dev-token",
            "--sub",
            sub,
            "--tenant",
            "acme",
            "--roles",
            roles,
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.trim().to_owned()
}

#[tokio::test]
async fn full_flow_through_the_cli() {
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    let bob = dev_token(&env, "bob", "approver").await;
    assert!(TEST_JWT_SECRET.len() >= 32);

    let step = r#"{"tool":"kubectl","action":"scale","input":{"resource":"deployment/web","replicas":3,"namespace":"web"}}"#;
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "plan",
            "create",
            "--summary",
            "Scale web",
            "--env",
            "staging",
            "--namespace",
            "web",
            "--step",
            step,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let created = out.json();
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    assert_eq!(created["approval_required"], true);

    let out = ctl(&env, Some(&alice), &["plan", "list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("PLAN"), "{}", out.stdout);
    assert!(out.stdout.contains(&plan_id));
    assert!(out.stderr.contains("1 shown"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("--cursor"),
        "one page only: {}",
        out.stderr
    );
    // Both streams into one pipe (a terminal, `2>&1 | less`): the footer is a line of its own,
    // never glued to the last row ("Scale web to 31 of 1" was seen once).
    let shell = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("\"$0\" plan list 2>&1")
        .arg(env!("CARGO_BIN_EXE_assistantctl"))
        .env("CARAPULSE_URL", &env.url)
        .env("CARAPULSE_CONFIG", &env.config_path)
        .env("CARAPULSE_TOKEN", &alice)
        .output()
        .await
        .unwrap();
    assert!(shell.status.success());
    let text = String::from_utf8_lossy(&shell.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"1 shown"), "{text}");
    assert!(
        lines
            .iter()
            .rev()
            .nth(1)
            .is_some_and(|row| row.starts_with(plan_id.as_str())),
        "the last row stands alone: {text}"
    );

    let out = ctl(&env, Some(&alice), &["plan", "get", &plan_id]).await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("kubectl") && out.stdout.contains("scale"),
        "{}",
        out.stdout
    );

    let out = ctl(&env, Some(&alice), &["plan", "risk", &plan_id]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("recomputed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("kubectl scale") && out.stdout.contains("write"),
        "{}",
        out.stdout
    );

    // A second plan, withdrawn by its creator: gone from reads (exit 3 on get).
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "plan",
            "create",
            "--summary",
            "Scale web again",
            "--env",
            "staging",
            "--namespace",
            "web",
            "--step",
            step,
            "-o",
            "json",
        ],
    )
    .await;
    let extra = out.json()["plan_id"].as_str().unwrap().to_owned();
    let out = ctl(&env, Some(&bob), &["plan", "delete", &extra]).await;
    assert_eq!(out.code, 3, "not bob's plan: {}", out.stderr);
    let out = ctl(&env, Some(&alice), &["plan", "delete", &extra]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("withdrawn"), "{}", out.stdout);
    assert_eq!(
        ctl(&env, Some(&alice), &["plan", "get", &extra]).await.code,
        3
    );

    // Executing before approval is an API rejection: exit 3.
    let out = ctl(&env, Some(&alice), &["plan", "execute", &plan_id]).await;
    assert_eq!(out.code, 3, "{} {}", out.stdout, out.stderr);
    assert!(out.stderr.contains("approval_required"), "{}", out.stderr);

    // The Go CLI's spelling of an approval works, and says what replaced it (here refused
    // for self-approval like the current spelling: the request reached the gateway).
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "plan",
            "approve",
            "--plan-id",
            &plan_id,
            "--status",
            "approved",
            "--gateway",
            &env.url,
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("`plan approve` is deprecated")
            && out.stderr.contains("--gateway is deprecated"),
        "{}",
        out.stderr
    );

    // Self-approval: exit 3.
    let out = ctl(&env, Some(&alice), &["approve", &plan_id]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);

    let out = ctl(
        &env,
        Some(&bob),
        &["approve", &plan_id, "--note", "ok", "-o", "json"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["status"], "approved");

    let out = ctl(
        &env,
        Some(&alice),
        &["plan", "execute", &plan_id, "-o", "json"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let exec_id = out.json()["execution_id"].as_str().unwrap().to_owned();

    let out = ctl(&env, Some(&alice), &["exec", "get", &exec_id]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("pending"), "{}", out.stdout);
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "exec", "list", "--status", "pending", "--count", "exact", "-o", "json",
        ],
    )
    .await;
    assert_eq!(out.json()["pagination"]["total"], 1);

    let out = ctl(
        &env,
        Some(&alice),
        &["audit", "list", "--action", "plan.create"],
    )
    .await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("plan.create"), "{}", out.stdout);
    let out = ctl(&env, Some(&alice), &["audit", "verify"]).await;
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    let csv_path = env.dir.join("audit.csv");
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "--file",
            csv_path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv.lines().count() >= 5, "{csv}");

    let out = ctl(&env, None, &["health"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ready"));

    // Tamper with the audit log: verify exits 6.
    let mut conn = env.db.store.pool().acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET reason = 'forged' WHERE tenant_id = 'acme' AND seq = 1")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let out = ctl(&env, Some(&alice), &["audit", "verify"]).await;
    assert_eq!(out.code, 6, "{} {}", out.stdout, out.stderr);

    env.shutdown.cancel();
    env.db.drop_now().await;
    std::fs::remove_dir_all(&env.dir).ok();
}

#[tokio::test]
async fn exit_codes_for_usage_network_and_auth_errors() {
    let env = start().await;
    let out = ctl(&env, None, &["plan", "list", "--bogus"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = ctl(&env, None, &["plan", "list"]).await;
    assert_eq!(out.code, 3, "no token: {}", out.stderr);
    assert!(out.stderr.contains("401"));
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_assistantctl"));
    let out = cmd
        .args(["--url", "http://127.0.0.1:1", "--timeout", "2", "health"])
        .env_remove("CARAPULSE_URL")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctl(&env, None, &["completions", "bash"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("assistantctl"));
    let out = ctl(&env, None, &["--help"]).await;
    assert!(out.stdout.contains("Exit codes"));
    env.shutdown.cancel();
    env.db.drop_now().await;
    std::fs::remove_dir_all(&env.dir).ok();
}

#[tokio::test]
async fn policy_test_and_migrate() {
    let env = start().await;
    let input = env.dir.join("input.json");
    std::fs::write(
        &input,
        r#"{"input": {"actor": {"id": "a", "roles": ["operator"], "tenant_id": "t"},
            "action": {"name": "plan.create", "type": "write"},
            "context": {"tenant_id": "t", "environment": "prod"},
            "risk": {"level": "high", "blast_radius": "namespace", "targets": 1}}}"#,
    )
    .unwrap();
    let policies = carapulse_core::testing::policies_dir();
    let out = ctl(
        &env,
        None,
        &[
            "policy",
            "test",
            "--input",
            input.to_str().unwrap(),
            "--policy-dir",
            &policies,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["decision"], "require_approval");
    assert_eq!(v["constraints"]["break_glass_required"], true);
    assert_eq!(v["ttl"], 0);
    let out = ctl(
        &env,
        None,
        &[
            "policy",
            "test",
            "--input",
            "/nonexistent.json",
            "--policy-dir",
            &policies,
        ],
    )
    .await;
    assert_eq!(out.code, 1);

    // migrate into a brand-new database.
    let fresh = TestDatabase::create().await;
    let raw_dsn = fresh.dsn.clone();
    fresh.drop_now().await;
    let admin = sqlx::PgPool::connect(&carapulse_core::testing::admin_dsn())
        .await
        .unwrap();
    let name = raw_dsn.rsplit('/').next().unwrap().to_owned();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&admin)
        .await
        .unwrap();
    let out = ctl(&env, None, &["migrate", "--dsn", &raw_dsn]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pool = sqlx::PgPool::connect(&raw_dsn).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('plans','audit_events','operator_memory')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
    env.shutdown.cancel();
    env.db.drop_now().await;
    std::fs::remove_dir_all(&env.dir).ok();
}

async fn ctl_env(env: &Env, token: Option<&str>, args: &[&str], vars: &[(&str, &str)]) -> Out {
    out(command(env, token, args, vars).output().await.unwrap())
}

#[tokio::test]
async fn planning_approvals_workflows_and_executions() {
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    let bob = dev_token(&env, "bob", "approver").await;

    // An intent only: the rule planner fills the steps.
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "plan",
            "create",
            "--summary",
            "more capacity",
            "--intent",
            "scale web to 4 from 2",
            "--env",
            "staging",
            "--namespace",
            "web",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let created = out.json();
    assert_eq!(created["plan"]["planner"], "rules");
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "plan",
            "create",
            "--summary",
            "x",
            "--intent",
            "do something clever",
            "--env",
            "staging",
        ],
    )
    .await;
    assert_eq!(out.code, 3, "422 is an API rejection");
    assert!(
        out.stderr.contains("rule planner does not understand"),
        "{}",
        out.stderr
    );

    let out = ctl(&env, Some(&bob), &["approvals", "list", "-o", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["data"][0]["plan_id"], plan_id.as_str());
    let out = ctl(&env, Some(&bob), &["approvals", "list"]).await;
    assert!(
        out.stdout.starts_with("PLAN") && out.stdout.contains(&plan_id),
        "{}",
        out.stdout
    );

    let out = ctl(&env, Some(&bob), &["approve", &plan_id]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = ctl(
        &env,
        Some(&bob),
        &["approvals", "list", "--status", "approved", "-o", "yaml"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("source: api") && out.stdout.contains("approver: bob"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("plan_id: {plan_id}")),
        "{}",
        out.stdout
    );

    // Execute (no orchestrator here: it stays pending), cancel it, and wait sees the end.
    let out = ctl(
        &env,
        Some(&alice),
        &["plan", "execute", &plan_id, "-o", "json"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let exec_id = out.json()["execution_id"].as_str().unwrap().to_owned();
    let out = ctl(
        &env,
        Some(&alice),
        &["exec", "cancel", &exec_id, "-o", "json"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = ctl(
        &env,
        Some(&alice),
        &["exec", "wait", &exec_id, "--timeout", "10", "-o", "json"],
    )
    .await;
    assert_eq!(
        out.code, 6,
        "a cancelled run is not a success: {}",
        out.stderr
    );
    assert_eq!(out.json()["status"], "cancelled");

    // The workflow catalogue.
    let out = ctl(&env, Some(&alice), &["workflow", "list", "-o", "json"]).await;
    assert_eq!(out.json()["data"].as_array().unwrap().len(), 7);
    let out = ctl(&env, Some(&alice), &["workflow", "list"]).await;
    assert!(out.stdout.contains("replicas*"), "{}", out.stdout);
    let input = env.dir.join("input.json");
    std::fs::write(
        &input,
        r#"{"resource":"deployment/web","namespace":"web","replicas":3,"current_replicas":2}"#,
    )
    .unwrap();
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "workflow",
            "start",
            "scale_service",
            "--input",
            &format!("@{}", input.display()),
            "--env",
            "staging",
            "--namespace",
            "web",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["workflow"], "scale_service");
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "workflow",
            "start",
            "scale_service",
            "--input",
            r#"{"resource":"--all"}"#,
            "--env",
            "staging",
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    env.shutdown.cancel();
    env.db.drop_now().await;
}

#[tokio::test]
async fn llm_auth_import_login_and_list() {
    use std::os::unix::fs::PermissionsExt;
    let env = start().await;
    let store = env.dir.join("state/auth-profiles.json");
    let codex_home = env.dir.join("codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("auth.json"),
        r#"{"tokens":{"access_token":"codex-secret-token","refresh_token":"r","account_id":"acct-1"}}"#,
    )
    .unwrap();
    let store_arg = store.display().to_string();
    let home = codex_home.display().to_string();
    let out = ctl_env(
        &env,
        None,
        &[
            "llm",
            "auth",
            "import",
            "--auth-path",
            &store_arg,
            "-o",
            "json",
        ],
        &[("CODEX_HOME", &home)],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["id"], "openai-codex:default");
    assert!(!out.stdout.contains("codex-secret-token"));
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let openclaw = env.dir.join("openclaw.json");
    std::fs::write(&openclaw, r#"{"profiles":[{"id":"anthropic:work","provider":"anthropic","key":"sk-ant-x","expires":4102444800000}]}"#).unwrap();
    let out = ctl(
        &env,
        None,
        &[
            "llm",
            "auth",
            "import",
            "--provider",
            "anthropic",
            "--openclaw-auth",
            &openclaw.display().to_string(),
            "--auth-path",
            &store_arg,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["expires_at"], "2100-01-01T00:00:00Z");

    // login runs `codex login` (a fake here that writes a new auth.json), then imports it.
    let fake = env.dir.join("codex-fake");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\n[ \"$1\" = login ] || exit 9\nprintf '%s' '{{\"tokens\":{{\"access_token\":\"fresh-token\"}}}}' > \"{home}/auth.json\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = ctl_env(
        &env,
        None,
        &[
            "llm",
            "auth",
            "login",
            "--codex-bin",
            &fake.display().to_string(),
            "--auth-path",
            &store_arg,
            "--profile-id",
            "openai-codex:ops",
            "-o",
            "json",
        ],
        &[("CODEX_HOME", &home)],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let saved = std::fs::read_to_string(&store).unwrap();
    assert!(saved.contains("fresh-token"));

    let out = ctl(
        &env,
        None,
        &[
            "llm",
            "auth",
            "list",
            "--auth-path",
            &store_arg,
            "-o",
            "json",
        ],
    )
    .await;
    let list = out.json();
    let ids: Vec<&str> = list["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["openai-codex:default", "anthropic:work", "openai-codex:ops"]
    );
    assert_eq!(
        list["profiles"][2]["default"], true,
        "login made it the default"
    );
    for secret in ["codex-secret-token", "fresh-token", "sk-ant-x"] {
        assert!(
            !out.stdout.contains(secret),
            "tokens never printed: {}",
            out.stdout
        );
    }
    let out = ctl(
        &env,
        None,
        &[
            "llm",
            "auth",
            "login",
            "--codex-bin",
            "/nonexistent/codex",
            "--auth-path",
            &store_arg,
        ],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Codex CLI"), "{}", out.stderr);
    env.shutdown.cancel();
    env.db.drop_now().await;
}

#[tokio::test]
async fn exec_logs_replays_and_follows() {
    use carapulse_core::model::{ExecutionId, ExecutionStatus, TenantId, ToolCallStatus};
    use carapulse_core::store::{NewToolCall, ToolLogLine};
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    let bob = dev_token(&env, "bob", "approver").await;
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "plan",
            "create",
            "--summary",
            "s",
            "--intent",
            "restart web",
            "--env",
            "staging",
            "--namespace",
            "web",
            "-o",
            "json",
        ],
    )
    .await;
    let plan_id = out.json()["plan_id"].as_str().unwrap().to_owned();
    assert_eq!(ctl(&env, Some(&bob), &["approve", &plan_id]).await.code, 0);
    let out = ctl(
        &env,
        Some(&alice),
        &["plan", "execute", &plan_id, "-o", "json"],
    )
    .await;
    let exec = ExecutionId::parse(out.json()["execution_id"].as_str().unwrap()).unwrap();
    let store = env.db.store.clone();
    let tenant = TenantId::parse("acme").unwrap();
    let call = store
        .insert_tool_call(
            &tenant,
            &NewToolCall {
                execution_id: exec,
                step_id: None,
                tool_name: "kubectl".into(),
                action: "rollout-restart".into(),
                status: ToolCallStatus::Running,
                input_ref: None,
                attempt: 1,
            },
        )
        .await
        .unwrap();
    let line = |seq: i64, level: &str, message: &str| ToolLogLine {
        execution_id: exec.0,
        tool_call_id: call.0,
        tenant_id: "acme".into(),
        seq,
        stream: "stdout".into(),
        level: level.into(),
        message: message.into(),
        ts: chrono::Utc::now(),
    };
    store
        .append_tool_logs(&[line(1, "info", "deployment.apps/web restarted")])
        .await
        .unwrap();

    // --follow: prints the replay, then live lines, and returns when the execution ends.
    let exec_s = exec.to_string();
    let follower = spawn_ctl(
        &env,
        &alice,
        &["exec", "logs", &exec_s, "--follow", "-o", "json"],
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    store
        .append_tool_logs(&[line(2, "warn", "waiting for pods")])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    store
        .transition_execution(&tenant, exec, ExecutionStatus::Running, None)
        .await
        .unwrap();
    store
        .transition_execution(&tenant, exec, ExecutionStatus::Succeeded, None)
        .await
        .unwrap();
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), follower)
        .await
        .expect("follow ends with the execution")
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stdout = &out.stdout;
    let messages: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        messages,
        vec!["deployment.apps/web restarted", "waiting for pods"]
    );
    assert!(out.stderr.contains("succeeded"));

    let out = ctl(
        &env,
        Some(&alice),
        &["exec", "logs", &exec_s, "--level", "warn"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(out.stdout.contains("waiting for pods"));
    env.shutdown.cancel();
    env.db.drop_now().await;
}

#[tokio::test]
async fn context_and_events_commands() {
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    // Seed the graph through the API (client-supplied nodes need a writer role).
    let http = reqwest::Client::new();
    let seeded = http
        .post(format!("{}/v1/context/refresh", env.url))
        .bearer_auth(&alice)
        .json(&serde_json::json!({
            "nodes": [
                {"node_id": "service/web", "kind": "service", "name": "web", "labels": {"environment": "prod"}},
                {"node_id": "k8s/deployment/shop/web", "kind": "k8s.deployment", "name": "web"}
            ],
            "edges": [{"edge_id": "runs:web", "from_node_id": "service/web", "to_node_id": "k8s/deployment/shop/web", "relation": "runs"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 200);
    let out = ctl(&env, Some(&alice), &["context", "services", "-o", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["data"][0]["name"], "web");
    let out = ctl(&env, Some(&alice), &["context", "graph", "web"]).await;
    assert!(
        out.stdout.contains("service/web") && out.stdout.contains("runs"),
        "{}",
        out.stdout
    );
    let out = ctl(&env, Some(&alice), &["context", "graph", "nope"]).await;
    assert_eq!(out.code, 3);
    let out = ctl(&env, Some(&alice), &["context", "refresh"]).await;
    assert_eq!(
        out.code, 3,
        "no context service on this gateway: a 409 (switched off by configuration)"
    );

    // events --count 1 returns after the first matching event.
    let follower = spawn_ctl(
        &env,
        &alice,
        &[
            "events",
            "--kinds",
            "plan.updated",
            "--count",
            "1",
            "-o",
            "json",
        ],
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "plan",
            "create",
            "--summary",
            "s",
            "--intent",
            "restart web",
            "--env",
            "staging",
            "--namespace",
            "web",
            "-o",
            "json",
        ],
    )
    .await;
    let plan_id = out.json()["plan_id"].as_str().unwrap().to_owned();
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), follower)
        .await
        .expect("events returns")
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(line["event"], "plan.updated");
    assert_eq!(line["data"]["plan_id"], plan_id.as_str());
    env.shutdown.cancel();
    env.db.drop_now().await;
}

#[tokio::test]
async fn sessions_schedules_playbooks_runbooks_memory() {
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    let t = Some(alice.as_str());

    let out = ctl(
        &env,
        t,
        &[
            "session",
            "create",
            "--name",
            "incident-7",
            "--group",
            "sre",
            "--member",
            "bob",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let session = out.json()["session_id"].as_str().unwrap().to_owned();
    let out = ctl(
        &env,
        t,
        &[
            "session",
            "add-member",
            &session,
            "carol",
            "--role",
            "viewer",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = ctl(&env, t, &["session", "get", &session, "-o", "json"]).await;
    let members: Vec<String> = out.json()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(members, vec!["alice", "bob", "carol"]);
    assert_eq!(
        ctl(&env, t, &["session", "remove-member", &session, "carol"])
            .await
            .code,
        0
    );
    let out = ctl(&env, t, &["session", "list"]).await;
    assert!(out.stdout.contains("incident-7"), "{}", out.stdout);
    let out = ctl(
        &env,
        t,
        &[
            "session",
            "update",
            &session,
            "--name",
            "incident-7 (closed)",
            "--no-group",
            "--metadata",
            r#"{"ticket": "INC-7"}"#,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let updated = out.json();
    assert_eq!(updated["name"], "incident-7 (closed)");
    assert_eq!(updated["group"], serde_json::Value::Null);
    assert_eq!(updated["metadata"]["ticket"], "INC-7");
    let other = ctl(
        &env,
        t,
        &["session", "create", "--name", "scratch", "-o", "json"],
    )
    .await;
    let scratch = other.json()["session_id"].as_str().unwrap().to_owned();
    let out = ctl(&env, t, &["session", "delete", &scratch]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        ctl(&env, t, &["session", "get", &scratch]).await.code,
        3,
        "gone"
    );

    let out = ctl(
        &env,
        t,
        &[
            "schedule",
            "create",
            "--summary",
            "nightly restart",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Europe/Paris",
            "--workflow",
            "service_restart",
            "--input",
            r#"{"resource":"deployment/web","namespace":"web"}"#,
            "--env",
            "staging",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let schedule = out.json()["schedule_id"].as_str().unwrap().to_owned();
    let out = ctl(
        &env,
        t,
        &[
            "schedule",
            "create",
            "--summary",
            "x",
            "--cron",
            "bad cron",
            "--intent",
            "restart web",
            "--env",
            "staging",
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = ctl(&env, t, &["schedule", "list"]).await;
    assert!(
        out.stdout.contains("Europe/Paris") && out.stdout.contains("nightly restart"),
        "{}",
        out.stdout
    );
    assert_eq!(
        ctl(&env, t, &["schedule", "delete", &schedule]).await.code,
        0
    );
    assert_eq!(ctl(&env, t, &["schedule", "get", &schedule]).await.code, 3);

    let spec = env.dir.join("playbook.json");
    std::fs::write(&spec, r#"{"alertname":"HighLatency","workflow":"service_restart","input":{"resource":"deployment/{{labels.deployment}}","namespace":"{{labels.namespace}}"}}"#).unwrap();
    let out = ctl(
        &env,
        t,
        &[
            "playbook",
            "create",
            "--name",
            "latency",
            "--spec",
            &format!("@{}", spec.display()),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pb = out.json()["id"].as_str().unwrap().to_owned();
    let out = ctl(
        &env,
        t,
        &["playbook", "update", &pb, "--tag", "web", "-o", "json"],
    )
    .await;
    assert_eq!(out.json()["version"], 2);
    let out = ctl(&env, t, &["playbook", "list"]).await;
    assert!(
        out.stdout.contains("latency") && out.stdout.contains("  2"),
        "{}",
        out.stdout
    );

    let out = ctl(
        &env,
        t,
        &[
            "runbook",
            "create",
            "--service",
            "web",
            "--name",
            "restart",
            "--body",
            "1. kubectl rollout restart",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = ctl(
        &env,
        t,
        &["runbook", "list", "--service", "web", "-o", "json"],
    )
    .await;
    assert_eq!(out.json()["data"][0]["body"], "1. kubectl rollout restart");

    let out = ctl(
        &env,
        t,
        &[
            "memory",
            "add",
            "--title",
            "web limits",
            "--body",
            "never scale web above 10",
            "--tag",
            "web",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let note = out.json()["memory_id"].as_str().unwrap().to_owned();
    let out = ctl(&env, t, &["memory", "list", "--q", "scale", "-o", "json"]).await;
    assert_eq!(out.json()["data"][0]["title"], "web limits");
    let out = ctl(&env, t, &["memory", "get", &note]).await;
    assert!(
        out.stdout.contains("title: web limits"),
        "YAML by default for documents: {}",
        out.stdout
    );
    assert_eq!(ctl(&env, t, &["memory", "delete", &note]).await.code, 0);

    // Lists page by cursor: the table's footer names the next cursor, --cursor continues after
    // it, --all-pages follows every cursor, --count reports the total.
    for i in 0..5 {
        let title = format!("note {i}");
        let out = ctl(
            &env,
            t,
            &["memory", "add", "--title", &title, "--body", "b"],
        )
        .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let out = ctl(
        &env,
        t,
        &["memory", "list", "--limit", "2", "--count", "exact"],
    )
    .await;
    assert!(out.stderr.contains("2 shown of 5"), "{}", out.stderr);
    let cursor = out
        .stderr
        .split("--cursor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a next-page cursor in the footer")
        .to_owned();
    let out = ctl(
        &env,
        t,
        &[
            "memory", "list", "--limit", "2", "--cursor", &cursor, "-o", "json",
        ],
    )
    .await;
    let page = out.json();
    let titles: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["note 2", "note 1"],
        "newest first, after the cursor"
    );
    let out = ctl(
        &env,
        t,
        &[
            "memory",
            "list",
            "--limit",
            "2",
            "--all-pages",
            "-o",
            "json",
        ],
    )
    .await;
    let all = out.json();
    assert_eq!(all["data"].as_array().map(Vec::len), Some(5), "{all}");
    assert!(all["pagination"]["next_cursor"].is_null());
    let out = ctl(&env, t, &["memory", "list", "--cursor", "garbage"]).await;
    assert_ne!(out.code, 0, "a forged cursor is refused");
    env.shutdown.cancel();
    env.db.drop_now().await;
}

/// `plan revise`, `plan revisions` and `plan diff`: a revision through the CLI, its change
/// summary and diff lines, the list with the current one marked, and a chosen range.
#[tokio::test]
async fn plan_revise_revisions_and_diff() {
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    let plan_id = create_step_plan(&env, &alice, "staging", &scale_step(3)).await;

    let second = scale_step(6);
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "plan",
            "revise",
            &plan_id,
            "--step",
            &second,
            "--note",
            "more traffic",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("revision") && out.stdout.contains('2'),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1 step changed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("input.replicas: 3 -> 6"),
        "{}",
        out.stdout
    );

    let out = ctl(&env, Some(&alice), &["plan", "revisions", &plan_id]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", out.stdout);
    assert!(
        rows[1].starts_with("2*") && rows[1].contains("more traffic"),
        "{}",
        out.stdout
    );

    let out = ctl(
        &env,
        Some(&alice),
        &["plan", "diff", &plan_id, "--from", "1", "--to", "2"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("revision 1 -> 2: 1 step changed"),
        "{}",
        out.stdout
    );
    let out = ctl(
        &env,
        Some(&alice),
        &["plan", "diff", &plan_id, "--from", "2", "--to", "1"],
    )
    .await;
    assert_eq!(
        out.code, 3,
        "from after to is refused by the API: {}",
        out.stderr
    );
    // --replan and --step together are a usage error, caught before any request.
    let out = ctl(
        &env,
        Some(&alice),
        &["plan", "revise", &plan_id, "--replan", "--step", &second],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    env.shutdown.cancel();
    env.db.drop_now().await;
}

/// `policy whatif --plan ID --dir DIR`: the loaded policy against a candidate directory, per
/// step, with the candidate's rule (file and line) behind each change.
#[tokio::test]
async fn policy_whatif_compares_a_candidate_directory() {
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    let plan_id = create_step_plan(&env, &alice, "production", &scale_step(4)).await;
    let dir = candidate_dir(&env, "candidate", &[("freeze.rego", "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"prod_writes_frozen\" if {\n\tis_write\n\tprod_env\n}\n")]);
    let out = ctl(
        &env,
        Some(&alice),
        &["policy", "whatif", "--plan", &plan_id, "--dir", &dir],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("CHANGED"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("step 1: deny_reasons \"prod_writes_frozen\" (freeze.rego:5)"),
        "{}",
        out.stdout
    );
    // An empty directory is a usage error, before any request.
    let empty = env.dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = ctl(
        &env,
        Some(&alice),
        &[
            "policy",
            "whatif",
            "--plan",
            &plan_id,
            "--dir",
            &empty.to_string_lossy(),
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    env.shutdown.cancel();
    env.db.drop_now().await;
}

/// `policy impact --dir DIR --since 1h`: the plan created here was kept with its decision, and
/// a candidate that denies every write changes it.
#[tokio::test]
async fn policy_impact_reports_what_a_candidate_changes() {
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    create_step_plan(&env, &alice, "staging", &scale_step(4)).await;
    let dir = candidate_dir(&env, "impact-candidate", &[("freeze.rego", "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"writes_frozen\" if is_write\n")]);
    // The decision log writes in the background: give it a moment.
    let mut last = String::new();
    for _ in 0..30 {
        let out = ctl(
            &env,
            Some(&alice),
            &["policy", "impact", "--dir", &dir, "--since", "1h"],
        )
        .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        last = out.stdout;
        if !last.starts_with("0 decisions") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(last.contains("would change"), "{last}");
    assert!(last.contains("require_approval -> deny"), "{last}");
    assert!(last.contains("staging"), "{last}");
    // It ran as a background job, followed to its end.
    let (done,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM policy_impact_jobs WHERE status = 'done' AND requested_by = 'alice' AND evaluated > 0",
    )
    .fetch_one(env.db.store.pool())
    .await
    .unwrap();
    assert!(done >= 1, "no finished impact job");
    env.shutdown.cancel();
    env.db.drop_now().await;
}

/// A kubectl scale step of deployment/web, as `--step` JSON.
fn scale_step(replicas: u32) -> String {
    format!(
        r#"{{"tool": "kubectl", "action": "scale", "input": {{"resource": "deployment/web", "replicas": {replicas}, "namespace": "web"}}}}"#
    )
}

/// Creates a one-step plan of namespace web in `environment` through the CLI; its id.
/// `plan get` states the blast radius: unknown without graph data, then the numbers and the
/// services reached once the tenant's graph has traffic.
#[tokio::test]
async fn plan_get_states_the_blast_radius() {
    use carapulse_core::store::{ContextNode, Snapshot, Traffic};
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    let step = r#"{"tool":"kubectl","action":"scale","input":{"resource":"deployment/web","replicas":3,"namespace":"web"}}"#;
    let unknown = create_step_plan(&env, &alice, "staging", step).await;
    let out = ctl(&env, Some(&alice), &["plan", "get", &unknown]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("blast radius  unknown: no service-graph data"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("approvers     1 required, approved by []"),
        "{}",
        out.stdout
    );

    let tenant = carapulse_core::model::TenantId::parse("acme").unwrap();
    let service = |name: &str, team: &str| ContextNode {
        node_id: format!("service/{name}"),
        kind: "service".into(),
        name: name.into(),
        labels: [("namespace".to_owned(), "web".to_owned())].into(),
        owner_team: Some(team.into()),
    };
    let mut snap = Snapshot::default();
    snap.node(service("web", "storefront"));
    snap.node(service("checkout", "payments"));
    let now = chrono::Utc::now();
    snap.call(
        "service/checkout",
        "service/web",
        Traffic::measured(12.5, 0.0, now).unwrap(),
    );
    env.db
        .store
        .replace_context(&tenant, "service_graph", &snap)
        .await
        .unwrap();
    let known = create_step_plan(&env, &alice, "staging", step).await;
    let out = ctl(&env, Some(&alice), &["plan", "get", &known]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "blast radius  2 services, 1 namespace, 2 teams, 12.5 req/s (traffic observed"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("estimated with the revision"),
        "{}",
        out.stdout
    );
    let table_rows: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("SERVICE"))
        .take(3)
        .collect();
    assert_eq!(table_rows.len(), 3, "{}", out.stdout);
    assert!(
        table_rows[1].starts_with("web ")
            && table_rows[1].contains("storefront")
            && table_rows[1].ends_with("12.5"),
        "{table_rows:?}"
    );
    assert!(
        table_rows[2].starts_with("checkout ") && table_rows[2].contains("payments"),
        "{table_rows:?}"
    );
    env.shutdown.cancel();
}

async fn create_step_plan(env: &Env, token: &str, environment: &str, step: &str) -> String {
    let out = ctl(
        env,
        Some(token),
        &[
            "plan",
            "create",
            "--summary",
            "scale web",
            "--env",
            environment,
            "--namespace",
            "web",
            "--step",
            step,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.json()["plan_id"].as_str().unwrap().to_owned()
}

/// A directory `name` under the test's directory holding `files`; its path.
fn candidate_dir(env: &Env, name: &str, files: &[(&str, &str)]) -> String {
    let dir = env.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir.to_string_lossy().into_owned()
}

/// `replay run --plan ID --policy-dir DIR`: a background replay followed to its end, then the
/// summary and the incident table; `replay list` and `replay get` show it again.
#[tokio::test]
async fn replay_runs_in_the_background_and_prints_a_summary_table() {
    let env = start().await;
    let alice = dev_token(&env, "alice", "operator").await;
    let plan_id = create_step_plan(&env, &alice, "staging", &scale_step(4)).await;
    // The current everything: unchanged.
    let out = ctl(&env, Some(&alice), &["replay", "run", "--plan", &plan_id]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("1 incidents, 0 changed, 1 unchanged"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("report sha256:"), "{}", out.stdout);
    // A candidate that denies writes: the plan's approval becomes a denial.
    let dir = candidate_dir(&env, "replay-candidate", &[("freeze.rego", "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"writes_frozen\" if is_write\n")]);
    let out = ctl(
        &env,
        Some(&alice),
        &["replay", "run", "--plan", &plan_id, "--policy-dir", &dir],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("1 incidents, 1 changed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("require_approval -> deny"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("require_approval (1 approver)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("decision,reasons,approvals_required"),
        "{}",
        out.stdout
    );
    let (done,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM replay_runs WHERE status = 'done' AND requested_by = 'alice' \
         AND (request_json->>'planner') = 'recorded'",
    )
    .fetch_one(env.db.store.pool())
    .await
    .unwrap();
    assert_eq!(done, 2);
    let out = ctl(&env, Some(&alice), &["replay", "list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().filter(|l| l.contains(" done ")).count(),
        2,
        "{}",
        out.stdout
    );
    let out = ctl(&env, Some(&alice), &["replay", "list", "-o", "json"]).await;
    let newest = out.json()["items"][0]["replay_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ctl(
        &env,
        Some(&alice),
        &["replay", "get", &newest, "--changed", "-o", "json"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.json()["incidents"][0]["result"]["replayed"]["decision"],
        "deny"
    );
    // No source is a usage error before any request.
    let out = ctl(&env, Some(&alice), &["replay", "run"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    env.shutdown.cancel();
    env.db.drop_now().await;
}
