//! Fault: the policy files are broken at reload. The gateway keeps deciding with the last good
//! policy (never an empty or allow-all one), says so with a 422, audits it, and installs a good
//! directory on the next reload; SIGHUP does the same as the route.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn broken_policy_at_reload_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_policies(dir.path());
    let policy_dir = dir.path().to_string_lossy().into_owned();
    let app = spawn_app_with(move |c| c.policy.policy_dir = policy_dir).await;
    let admin = token("root", "acme", &["admin"]);
    let alice = token("alice", "acme", &["operator"]);
    let viewer = token("vic", "acme", &["viewer"]);

    let (status, plan) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["policy"]["decision"], "require_approval");

    // A syntax error in one file.
    let decision = dir.path().join("decision.rego");
    let good = std::fs::read_to_string(&decision).expect("read");
    std::fs::write(&decision, format!("{good}\ndecision := \"allow\" if {{")).expect("break");
    let (status, body) = app.post("/v1/policy/reload", &admin, &json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "policy_invalid");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("generation 1 stays in force")));
    // Decisions are still the old policy's.
    let (status, plan) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["policy"]["decision"], "require_approval");
    let (status, _) = app.get("/v1/plans", &viewer).await;
    assert_eq!(status, 200);

    // Every file gone, or the package renamed: also refused.
    std::fs::write(
        &decision,
        good.replace("package policy.assistant.v1", "package somewhere.else"),
    )
    .expect("rename package");
    // Every other module too (whatever files the project ships), so the package is gone.
    for entry in std::fs::read_dir(dir.path()).expect("policy dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rego") || path == decision {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(
            &path,
            text.replace("package policy.assistant.v1", "package somewhere.else"),
        )
        .expect("rename package");
    }
    let (status, body) = app.post("/v1/policy/reload", &admin, &json!({})).await;
    assert_eq!(status, 422, "{body}");
    let (status, plan) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["policy"]["decision"], "require_approval");

    // Only admins may ask.
    let (status, _) = app.post("/v1/policy/reload", &alice, &json!({})).await;
    assert_eq!(status, 403);

    // A good directory that denies plan creation is installed by the next reload...
    copy_policies(dir.path());
    let deny = dir.path().join("zz_freeze.rego");
    std::fs::write(
        &deny,
        "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"change_freeze\" if input.action.name == \"plan.create\"\n",
    )
    .expect("freeze");
    let (status, body) = app.post("/v1/policy/reload", &admin, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generation"], 2);
    let (status, refused) = app.create_scale_plan(&alice).await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("change_freeze")));

    // ...and SIGHUP reloads too (here: back without the freeze).
    std::fs::remove_file(&deny).expect("unfreeze");
    // SAFETY: sends SIGHUP to this test process, where the gateway under test listens for it.
    let rc = unsafe { libc_kill_self_hup() };
    assert_eq!(rc, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = app.create_scale_plan(&alice).await;
        if status == 201 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, policy) = app.get("/v1/policy", &viewer).await;
    assert_eq!(policy["generation"], 3);

    // The refusals and reloads are in the audit log.
    let (_, audit) = app
        .get("/v1/audit/events?action=policy.reload&limit=50", &admin)
        .await;
    let decisions: Vec<&str> = audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["decision"].as_str())
        .collect();
    assert_eq!(
        decisions.iter().filter(|d| **d == "error").count(),
        2,
        "{audit}"
    );
    assert_eq!(
        decisions.iter().filter(|d| **d == "allow").count(),
        1,
        "{audit}"
    );
    assert_eq!(
        decisions.iter().filter(|d| **d == "deny").count(),
        1,
        "{audit}"
    );
    app.stop().await;
}

/// `kill(getpid(), SIGHUP)` without a libc dependency in this test crate.
unsafe fn libc_kill_self_hup() -> i32 {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
        fn getpid() -> i32;
    }
    const SIGHUP: i32 = 1;
    kill(getpid(), SIGHUP)
}
