//! Policy what-if: the loaded policy and a candidate side by side on a stored plan and on a
//! draft, per step, with the rules (and their file:line) behind each answer; candidates that
//! do not compile, declare another package or break the limits are 422 naming the file; nothing
//! changes but an audit event.

mod common;

use common::*;
use serde_json::{json, Value};

const FREEZE: &str = "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"prod_writes_frozen\" if {\n\tis_write\n\tprod_env\n}\n";

fn prod_plan() -> Value {
    json!({
        "summary": "Scale web in production",
        "context": {"environment": "production", "namespace": "web"},
        "steps": [
            {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 4, "namespace": "web"}},
            {"stage": "verify", "tool": "kubectl", "action": "rollout-status", "input": {"resource": "deployment/web", "namespace": "web"},
             "expect": [{"path": ".status", "op": "==", "value": "complete"}]}
        ]
    })
}

fn has_rule(answer: &Value, rule: &str, value: &str, at: &str) -> bool {
    answer["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["rule"] == rule && r["value"] == value && r["at"] == at)
}

#[tokio::test]
async fn a_candidate_that_freezes_production_shows_the_exact_step_and_rule() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let viewer = token("vic", "acme", &["viewer"]);
    let other = token("olga", "globex", &["admin"]);
    let (status, created) = app.post("/v1/plans", &alice, &prod_plan()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["plan_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/plans/{id}/whatif");

    let (status, answer) = app
        .post(
            &path,
            &viewer,
            &json!({"candidate": {"files": {"freeze.rego": FREEZE}}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let plan = &answer["plan"];
    assert_eq!(plan["current"]["decision"], "require_approval");
    assert_eq!(plan["candidate"]["decision"], "deny");
    assert_eq!(plan["changed"], true);
    let write = &answer["steps"][0];
    assert_eq!(write["step"], "kubectl scale deployment/web@web");
    assert_eq!(write["current"]["decision"], "require_approval", "{write}");
    assert!(
        has_rule(
            &write["current"],
            "approval_reasons",
            "production_environment",
            "write.rego:15"
        ),
        "{write}"
    );
    assert_eq!(write["candidate"]["decision"], "deny");
    assert!(
        has_rule(
            &write["candidate"],
            "deny_reasons",
            "prod_writes_frozen",
            "freeze.rego:5"
        ),
        "the exact rule, file and line: {write}"
    );
    assert_eq!(write["changed"], true);
    // The candidate's answer names only what produced it: the freeze, no stray reasons.
    let candidate_reasons: Vec<&str> = write["candidate"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule"].as_str().unwrap().ends_with("_reasons"))
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = write["candidate"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    expected.extend([
        "production_environment",
        "risk_medium",
        "unverified_production_write",
    ]);
    let mut got = candidate_reasons.clone();
    got.sort_unstable();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(got, expected, "{write}");
    let read = &answer["steps"][1];
    assert_eq!(read["step"], "kubectl rollout-status deployment/web@web");
    assert_eq!(
        (
            read["current"]["decision"].as_str(),
            read["candidate"]["decision"].as_str(),
            read["changed"].as_bool()
        ),
        (Some("allow"), Some("allow"), Some(false)),
        "{read}"
    );
    assert!(answer["candidate_files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "freeze.rego"));

    // Without a candidate: the loaded policy alone.
    let (status, alone) = app.post(&path, &viewer, &json!({})).await;
    assert_eq!(status, 200, "{alone}");
    assert!(alone["plan"]["candidate"].is_null());

    // Candidates that cannot be compared are 422, naming the file.
    for (files, needle) in [
        (
            json!({"bad.rego": "package policy.assistant.v1\n\nthis is not rego {"}),
            "bad.rego",
        ),
        (
            json!({"other.rego": "package other.place\n\nallow := true\n"}),
            "package other.place is not policy.assistant.v1",
        ),
        (json!({"../escape.rego": FREEZE}), "not a file name"),
        (json!({"notes.txt": FREEZE}), "not a file name"),
        (json!({}), "at least one file"),
    ] {
        let (status, refused) = app
            .post(&path, &viewer, &json!({"candidate": {"files": files}}))
            .await;
        assert_eq!(status, 422, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{needle}: {refused}"
        );
    }
    let many: serde_json::Map<String, Value> = (0..21)
        .map(|i| (format!("f{i}.rego"), json!(FREEZE)))
        .collect();
    assert_eq!(
        app.post(&path, &viewer, &json!({"candidate": {"files": many}}))
            .await
            .0,
        422
    );
    let big = format!("{FREEZE}\n# {}\n", "x".repeat(130 * 1024));
    let (status, _) = app
        .post(
            &path,
            &alice,
            &json!({"candidate": {"files": {"big.rego": big}}}),
        )
        .await;
    assert!(status == 422 || status == 413, "{status}");
    assert_eq!(app.post(&path, &other, &json!({})).await.0, 404);

    // A draft, unsaved: the same answer shape; another tenant's context is refused.
    let draft = prod_plan();
    let body = json!({"plan": {"context": draft["context"], "steps": draft["steps"]},
                      "candidate": {"files": {"freeze.rego": FREEZE}}});
    let (status, answer) = app.post("/v1/policy/whatif", &viewer, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["steps"][0]["candidate"]["decision"], "deny");
    let mut foreign = body.clone();
    foreign["plan"]["context"]["tenant_id"] = json!("globex");
    assert_eq!(
        app.post("/v1/policy/whatif", &viewer, &foreign).await.0,
        403
    );
    let mut bad = body.clone();
    bad["plan"]["steps"][0]["input"]["replicas"] = json!("many");
    assert_eq!(app.post("/v1/policy/whatif", &viewer, &bad).await.0, 422);

    // Nothing changed but the audit trail.
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), &alice).await;
    assert_eq!(
        (plan["approval_state"].as_str(), plan["revision"].as_i64()),
        (Some("pending"), Some(1))
    );
    // The answers do not wait for their audit events to commit: give them a moment.
    let mut events = Value::Null;
    for _ in 0..50 {
        events = app
            .get("/v1/audit/events?action=policy.whatif", &alice)
            .await
            .1;
        if events["data"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(events["data"].as_array().unwrap().len(), 3, "{events}");
    app.stop().await;
}

/// A candidate file that sorts before the loaded ones: the rules named are still exactly the
/// ones behind each answer (evaluating the whole package document at once named stray deny
/// reasons for this file order).
#[tokio::test]
async fn rules_follow_the_decision_whatever_the_file_order() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let (_, created) = app.create_scale_plan(&alice).await;
    let id = created["plan_id"].as_str().unwrap().to_owned();
    let candidate = "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"writes_frozen\" if {\n\tis_write\n}\n";
    let (status, answer) = app
        .post(
            &format!("/v1/plans/{id}/whatif"),
            &bob,
            &json!({"candidate": {"files": {"a_first.rego": candidate}}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    for row in std::iter::once(&answer["plan"]).chain(answer["steps"].as_array().unwrap()) {
        for side in ["current", "candidate"] {
            let judged = &row[side];
            let mut reasons: Vec<&str> = judged["rules"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["rule"].as_str().unwrap().ends_with("_reasons"))
                .map(|r| r["value"].as_str().unwrap())
                .collect();
            reasons.sort_unstable();
            let decision = judged["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["rule"] == "decision")
                .map(|r| r["value"].clone());
            assert_eq!(
                decision.as_ref(),
                Some(&judged["decision"]),
                "{side}: {row}"
            );
            // Deny reasons appear exactly when the answer is a denial.
            let denies = judged["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["rule"] == "deny_reasons");
            assert_eq!(denies, judged["decision"] == "deny", "{side}: {row}");
            if judged["decision"] == "deny" {
                assert_eq!(
                    reasons.iter().filter(|r| **r == "writes_frozen").count(),
                    1,
                    "{row}"
                );
            }
        }
    }
    assert_eq!(answer["steps"][1]["candidate"]["decision"], "allow");
    app.stop().await;
}

/// A long plan is judged on two threads: every step comes back once, in plan order, with the
/// answer judging it alone gives (each step here judged as a one-step draft for comparison).
#[tokio::test]
async fn long_plans_keep_their_step_order() {
    let app = spawn_app().await;
    let viewer = token("vic", "acme", &["viewer"]);
    let steps: Vec<Value> = (0..12)
        .map(|i| {
            let env_kind = if i % 3 == 0 { "get" } else { "scale" };
            if env_kind == "get" {
                json!({"tool": "kubectl", "action": "get", "input": {"resource": format!("deployment/svc{i}"), "namespace": "web"}})
            } else {
                json!({"tool": "kubectl", "action": "scale", "input": {"resource": format!("deployment/svc{i}"), "replicas": i, "namespace": "web"}})
            }
        })
        .collect();
    let context = json!({"environment": "production", "namespace": "web"});
    let body = json!({"plan": {"context": context, "steps": steps},
                      "candidate": {"files": {"freeze.rego": FREEZE}}});
    let (status, answer) = app.post("/v1/policy/whatif", &viewer, &body).await;
    assert_eq!(status, 200, "{answer}");
    let judged = answer["steps"].as_array().unwrap();
    assert_eq!(judged.len(), 12);
    for (i, step) in judged.iter().enumerate() {
        assert_eq!(step["index"], i, "{step}");
        let alone = json!({"plan": {"context": context, "steps": [steps[i]]},
                           "candidate": {"files": {"freeze.rego": FREEZE}}});
        let (_, single) = app.post("/v1/policy/whatif", &viewer, &alone).await;
        assert_eq!(step["step"], single["steps"][0]["step"], "step {i}");
        assert_eq!(step["current"], single["steps"][0]["current"], "step {i}");
        assert_eq!(
            step["candidate"], single["steps"][0]["candidate"],
            "step {i}"
        );
        assert!(
            step["step"].to_string().contains(&format!("svc{i}")),
            "step {i}: {}",
            step["step"]
        );
    }
    app.stop().await;
}

/// Compiled candidates are kept by their content: the same file name with another text is
/// judged by that text, the first text again by the first, and a reload of the loaded policy
/// (other merged files) is not answered from an engine compiled over the old ones.
#[tokio::test]
async fn kept_candidates_answer_for_their_own_text() {
    let dir = copied_policies();
    let policy_dir = dir.path().to_string_lossy().into_owned();
    let app = spawn_app_with(move |c| c.policy.policy_dir = policy_dir).await;
    let alice = token("alice", "acme", &["operator"]);
    let (status, created) = app.post("/v1/plans", &alice, &prod_plan()).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/v1/plans/{}/whatif", created["plan_id"].as_str().unwrap());
    let never = "package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains \"never\" if {\n\tinput.no_such_field == \"x\"\n}\n";
    let decide = |text: &str| json!({"candidate": {"files": {"freeze.rego": text}}});
    for (text, expected, changed) in [
        (FREEZE, "deny", true),
        (never, "require_approval", false),
        (FREEZE, "deny", true),
        (never, "require_approval", false),
    ] {
        let (status, answer) = app.post(&path, &alice, &decide(text)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["plan"]["candidate"]["decision"], expected,
            "{answer}"
        );
        assert_eq!(answer["plan"]["changed"], changed, "{answer}");
    }
    // The loaded policy changes under the kept candidate: a file that freezes production too.
    std::fs::write(dir.path().join("zz_freeze.rego"), FREEZE).unwrap();
    let admin = token("ada", "acme", &["admin"]);
    let (status, reloaded) = app.post("/v1/policy/reload", &admin, &json!({})).await;
    assert_eq!(status, 200, "{reloaded}");
    let (status, answer) = app.post(&path, &alice, &decide(never)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["plan"]["current"]["decision"], "deny", "{answer}");
    assert_eq!(answer["plan"]["candidate"]["decision"], "deny", "{answer}");
    app.stop().await;
}
