//! `assistantctl import-go` end to end: the real binary, a Go-shaped database and a fresh
//! target. A dry run says so and writes nothing, the real run prints its table and every
//! skipped row with its reason, a second run imports nothing, `-o json` gives the report.

use std::process::Command;

use serde_json::{json, Value};

use carapulse_core::testing::go::GoDatabase;
use carapulse_core::testing::TestDatabase;

fn import(go: &GoDatabase, target: &TestDatabase, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_assistantctl"))
        .args([
            "import-go",
            "--from",
            &go.dsn,
            "--dsn",
            &target.dsn,
            "--tenant",
            "acme",
        ])
        .args(extra)
        .env_remove("CARAPULSE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn import_go_reports_dry_runs_and_reruns() {
    let go = GoDatabase::create().await;
    for (id, summary) in [("p1", "restart web"), ("p2", "scale api")] {
        go.exec(
            "INSERT INTO plans (plan_id, created_at, trigger, summary, context_json, risk_level) \
             VALUES ($1::text, now(), 'manual', $2::text, '{}'::jsonb, 'low')",
            &[json!(id), json!(summary)],
        )
        .await;
    }
    go.exec(
        "INSERT INTO plan_steps (step_id, plan_id, action, tool, input_json) VALUES ('s1', 'p1', 'scale', 'kubectl', '{}')",
        &[],
    )
    .await;
    go.exec(
        "INSERT INTO approvals (approval_id, plan_id, status, expires_at, source) VALUES ('a1', 'p1', 'pending', now(), 'api')",
        &[],
    )
    .await;
    let target = TestDatabase::create().await;
    let plans = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM plans")
            .fetch_one(target.store.pool())
            .await
            .unwrap();
        n
    };

    let (code, stdout, stderr) = import(&go, &target, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("dry run: 3 rows imported, 1 skipped")
            && stdout.contains("nothing was written"),
        "{stdout}"
    );
    assert_eq!(plans().await, 0);

    let (code, stdout, stderr) = import(&go, &target, &[]);
    assert_eq!(code, 0, "{stderr}");
    let plan_row = stdout
        .lines()
        .find(|l| l.starts_with("plan "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        plan_row.split_whitespace().collect::<Vec<_>>(),
        ["plan", "2", "2", "0", "0", "0"]
    );
    assert!(
        stdout.contains("skipped approval a1: pending: not a decision"),
        "{stdout}"
    );
    assert!(stderr.contains("plan"), "progress per kind: {stderr}");
    assert_eq!(plans().await, 2);

    let (code, stdout, _) = import(&go, &target, &["-o", "json"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["counts"]["plan"]["already"], 2, "{report}");
    assert_eq!(report["counts"]["plan"]["imported"], 0);
    assert_eq!(report["skipped"][0]["go_id"], "a1");
    assert_eq!(plans().await, 2);

    // Not a Go database: refused with a reason, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_assistantctl"))
        .args(["import-go", "--from", &target.dsn, "--dsn", &target.dsn])
        .env_remove("CARAPULSE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Go Carapulse database"));

    target.drop_now().await;
    go.drop_now().await;
}
