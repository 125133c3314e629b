//! Runs the Rego unit tests in `policies/*_test.rego` through regorus, and checks the decision
//! table whose answers were worked out by hand from the rules.

use std::path::Path;

use carapulse_core::model::Decision;
use carapulse_core::policy::PolicyEngine;
use serde_json::{json, Value};

fn policies() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies"))
}

#[test]
fn rego_unit_tests_pass() {
    let engine = PolicyEngine::load_dir_with_tests(policies(), "policy.assistant.v1").unwrap();
    let results = engine.run_rego_tests(policies()).unwrap();
    assert!(
        results.len() >= 20,
        "expected the Rego tests to be found, got {}",
        results.len()
    );
    let failed: Vec<_> = results.iter().filter(|(_, ok, _)| !ok).collect();
    assert!(failed.is_empty(), "failing Rego tests: {failed:#?}");
}

#[test]
fn runtime_engine_skips_test_files() {
    let engine = PolicyEngine::load_dir(policies(), "policy.assistant.v1").unwrap();
    assert!(engine.files().iter().all(|f| !f.ends_with("_test.rego")));
    assert!(engine.files().contains(&"decision.rego".to_owned()));
}

fn input(
    roles: &[&str],
    kind: &str,
    env: &str,
    level: &str,
    blast: &str,
    targets: u32,
    bg: bool,
) -> serde_json::Value {
    json!({
        "actor": {"id": "alice", "roles": roles, "tenant_id": "acme"},
        "action": {"name": "plan.create", "type": kind},
        "context": {"tenant_id": "acme", "environment": env},
        "resources": {"break_glass": bg},
        "risk": {"level": level, "blast_radius": blast, "targets": targets},
    })
}

/// Expected answers derived by hand from deny.rego / write.rego / decision.rego.
#[test]
fn hand_worked_decision_table() {
    use Decision::*;
    let engine = PolicyEngine::load_dir(policies(), "policy.assistant.v1").unwrap();
    let op = &["operator"][..];
    let cases = [
        (op, "read", "prod", "read", "namespace", 0, false, Allow),
        (&[][..], "read", "", "read", "namespace", 0, false, Allow),
        (op, "write", "dev", "low", "namespace", 1, false, Allow),
        (op, "write", "local", "low", "cluster", 5, false, Allow),
        (
            op,
            "write",
            "staging",
            "medium",
            "namespace",
            1,
            false,
            RequireApproval,
        ),
        (
            op,
            "write",
            "dev",
            "high",
            "namespace",
            1,
            false,
            RequireApproval,
        ),
        (
            op,
            "write",
            "prod",
            "low",
            "namespace",
            1,
            false,
            RequireApproval,
        ),
        (
            op,
            "write",
            "production",
            "low",
            "namespace",
            1,
            false,
            RequireApproval,
        ),
        (
            op,
            "write",
            "dev",
            "low",
            "account",
            1,
            false,
            RequireApproval,
        ),
        (
            op,
            "write",
            "dev",
            "low",
            "namespace",
            1,
            true,
            RequireApproval,
        ),
        (
            op,
            "write",
            "prod",
            "medium",
            "cluster",
            10,
            false,
            RequireApproval,
        ),
        (op, "write", "prod", "medium", "cluster", 11, false, Deny),
        (op, "write", "nope", "low", "namespace", 1, false, Deny),
        (op, "write", "", "low", "namespace", 1, false, Deny),
        (op, "write", "dev", "read", "namespace", 1, false, Deny),
        (
            &["viewer"][..],
            "write",
            "dev",
            "low",
            "namespace",
            1,
            false,
            Deny,
        ),
        (
            &["approver"][..],
            "write",
            "dev",
            "low",
            "namespace",
            1,
            false,
            Deny,
        ),
        (
            &["admin"][..],
            "write",
            "dev",
            "low",
            "namespace",
            1,
            false,
            Allow,
        ),
        (op, "delete", "dev", "low", "namespace", 1, false, Deny),
    ];
    for (i, (roles, kind, env, level, blast, targets, bg, want)) in cases.into_iter().enumerate() {
        let got = engine.evaluate_json(&input(roles, kind, env, level, blast, targets, bg));
        assert_eq!(
            got.decision, want,
            "case {i}: {kind} {env} {level} {blast} {targets} bg={bg}: {got:?}"
        );
        assert!(got.error.is_none(), "case {i}: {got:?}");
    }
}

#[test]
fn high_risk_sets_break_glass_required_and_reads_get_ttl() {
    let engine = PolicyEngine::load_dir(policies(), "policy.assistant.v1").unwrap();
    let out = engine.evaluate_json(&input(
        &["operator"],
        "write",
        "dev",
        "high",
        "namespace",
        1,
        false,
    ));
    assert_eq!(
        out.constraints.get("break_glass_required"),
        Some(&json!(true))
    );
    assert!(out.reasons.contains(&"risk_high".to_owned()), "{out:?}");
    let read = engine.evaluate_json(&input(
        &["viewer"],
        "read",
        "dev",
        "read",
        "namespace",
        0,
        false,
    ));
    assert_eq!(read.ttl, 300);
}

#[test]
fn evaluation_errors_fail_closed() {
    // A policy whose decision is not a string, one that errors at runtime, and one that leaves
    // the decision undefined: all must deny, reads included.
    let bad_sources = [
        "package policy.assistant.v1\nimport rego.v1\ndecision := 42\n",
        "package policy.assistant.v1\nimport rego.v1\ndecision := \"allow\" if { 1 / 0 == 1 }\n",
        "package policy.assistant.v1\nimport rego.v1\nx := 1\n",
        "package policy.assistant.v1\nimport rego.v1\ndecision := \"maybe\"\n",
    ];
    for src in bad_sources {
        let engine =
            PolicyEngine::from_sources("policy.assistant.v1", vec![("p.rego".into(), src.into())])
                .unwrap();
        let out = engine.evaluate_json(&input(
            &["admin"],
            "read",
            "dev",
            "read",
            "namespace",
            0,
            false,
        ));
        assert_eq!(out.decision, Decision::Deny, "{src}: {out:?}");
        assert!(out.error.is_some(), "{src}: {out:?}");
    }
}

#[test]
fn broken_files_and_wrong_package_are_load_errors() {
    let err = PolicyEngine::from_sources(
        "policy.assistant.v1",
        vec![("p.rego".into(), "package x\nthis is not rego(".into())],
    );
    assert!(err.is_err());
    let err = PolicyEngine::from_sources(
        "policy.assistant.v1",
        vec![(
            "p.rego".into(),
            "package other\nimport rego.v1\ndecision := \"allow\"\n".into(),
        )],
    );
    assert!(matches!(
        err,
        Err(carapulse_core::policy::PolicyError::MissingPackage(_))
    ));
}

#[test]
fn rego_test_runner_reports_failures() {
    let dir = std::env::temp_dir().join(format!("carapulse-rego-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.rego"),
        "package policy.assistant.v1\nimport rego.v1\ndecision := \"deny\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("p_test.rego"),
        "package policy.assistant.v1_test\nimport rego.v1\nimport data.policy.assistant.v1 as p\n\
         test_passes if { p.decision == \"deny\" }\ntest_fails if { p.decision == \"allow\" }\n",
    )
    .unwrap();
    let engine = PolicyEngine::load_dir_with_tests(&dir, "policy.assistant.v1").unwrap();
    let results = engine.run_rego_tests(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let passed: Vec<_> = results.iter().map(|(n, ok, _)| (n.as_str(), *ok)).collect();
    assert_eq!(passed, vec![("test_passes", true), ("test_fails", false)]);
}

#[test]
fn pooled_engines_give_consistent_answers_across_threads() {
    let engine =
        std::sync::Arc::new(PolicyEngine::load_dir(policies(), "policy.assistant.v1").unwrap());
    let allow = input(&["operator"], "write", "dev", "low", "namespace", 1, false);
    let deny = input(&["viewer"], "write", "dev", "low", "namespace", 1, false);
    let approve = input(
        &["operator"],
        "write",
        "prod",
        "high",
        "namespace",
        1,
        false,
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let engine = engine.clone();
            let cases = [
                (allow.clone(), Decision::Allow),
                (deny.clone(), Decision::Deny),
                (approve.clone(), Decision::RequireApproval),
            ];
            std::thread::spawn(move || {
                for i in 0..150 {
                    let (inp, want) = &cases[(i + t) % 3];
                    let out = engine.evaluate_json(inp);
                    assert_eq!(out.decision, *want, "thread {t} iteration {i}: {out:?}");
                    if *want == Decision::RequireApproval {
                        assert_eq!(
                            out.constraints.get("break_glass_required"),
                            Some(&json!(true))
                        );
                    } else {
                        assert!(
                            out.constraints.get("break_glass_required").is_none(),
                            "{out:?}"
                        );
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// The compiled (RVM) path and the interpreter give the same decision, ttl, constraints and
/// reasons (as a set) on every input of a grid over everything the rules read. Any difference
/// fails CI: the compiled path is what production decisions use.
#[test]
fn compiled_and_interpreted_decisions_agree_on_the_input_grid() {
    let engine = PolicyEngine::load_dir(policies(), "policy.assistant.v1").unwrap();
    assert!(engine.is_compiled(), "the project policies compile to RVM");
    let roles: [&[&str]; 5] = [
        &[],
        &["viewer"],
        &["operator"],
        &["admin"],
        &["approver", "break-glass"],
    ];
    let mut compared = 0usize;
    let mut mismatches = Vec::new();
    let reasons_set = |o: &carapulse_core::policy::PolicyOutcome| {
        let mut r = o.reasons.clone();
        r.sort();
        r
    };
    for roles in roles {
        for action in ["read", "write", ""] {
            for name in ["plan.create", "tool.execute"] {
                for env in ["dev", "prod", "production", "moon", ""] {
                    for level in ["read", "low", "medium", "high", "weird"] {
                        for blast in ["namespace", "cluster", "account"] {
                            for targets in [1, 10, 11] {
                                for break_glass in [false, true] {
                                    for (tenant, actor) in
                                        [("acme", true), ("other", true), ("acme", false)]
                                    {
                                        for verified in [None, Some(2)] {
                                            let mut resources = json!({"break_glass": break_glass});
                                            if let Some(n) = verified {
                                                resources["verification"] = json!({"expectations": n, "verify_steps_with_expectations": n});
                                            }
                                            let mut input = json!({
                                                "action": {"name": name, "type": action},
                                                "context": {"tenant_id": tenant, "environment": env},
                                                "resources": resources,
                                                "risk": {"level": level, "blast_radius": blast, "targets": targets},
                                            });
                                            if actor {
                                                input["actor"] = json!({"id": "alice", "roles": roles, "tenant_id": "acme"});
                                            }
                                            let compiled = engine.evaluate_json(&input);
                                            let interpreted =
                                                engine.evaluate_interpreted_json(&input);
                                            compared += 1;
                                            if compiled.error.is_some()
                                                || compiled.decision != interpreted.decision
                                                || compiled.ttl != interpreted.ttl
                                                || compiled.constraints != interpreted.constraints
                                                || reasons_set(&compiled)
                                                    != reasons_set(&interpreted)
                                            {
                                                mismatches.push((input, compiled, interpreted));
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(compared >= 40_000, "grid too small: {compared}");
    assert!(
        mismatches.is_empty(),
        "{} of {compared} inputs differ; first: {:#?}",
        mismatches.len(),
        mismatches.first()
    );
}

/// The blast-radius rules read `input.blast_radius`; compiled and interpreted paths agree on
/// every shape of it (absent, unknown, small, over each threshold, malformed), decisions and
/// explanations both.
#[test]
fn compiled_and_interpreted_agree_on_blast_radius_inputs() {
    let engine = PolicyEngine::load_dir(policies(), "policy.assistant.v1").unwrap();
    let small = json!({"unknown": false, "services": 3, "namespaces": 1, "teams": 1, "rps": 12.5, "tier": "medium", "targets": 1});
    let with = |k: &str, v: Value| {
        let mut e = small.clone();
        e[k] = v;
        Some(e)
    };
    let estimates = [
        None,
        Some(json!({"unknown": true, "services": 0, "rps": 0, "tier": ""})),
        Some(small.clone()),
        with("rps", json!(100)),
        with("services", json!(10)),
        with("tier", json!("critical")),
        Some(json!({"services": 1})),
        Some(json!("not an object")),
    ];
    let mut compared = 0usize;
    let mut large_seen = 0usize;
    for roles in [&["operator"][..], &["viewer"]] {
        for action in ["write", "read"] {
            for name in ["plan.create", "tool.execute"] {
                for env in ["dev", "prod", ""] {
                    for level in ["low", "medium", "high"] {
                        for estimate in &estimates {
                            for verified in [false, true] {
                                let mut input = json!({
                                    "actor": {"id": "alice", "roles": roles, "tenant_id": "acme"},
                                    "action": {"name": name, "type": action},
                                    "context": {"tenant_id": "acme", "environment": env},
                                    "resources": {"break_glass": false, "verification": {"verify_steps_with_expectations": u8::from(verified)}},
                                    "risk": {"level": level, "blast_radius": "namespace", "targets": 1},
                                });
                                if let Some(e) = estimate {
                                    input["blast_radius"] = e.clone();
                                }
                                let compiled = engine.evaluate_json(&input);
                                let interpreted = engine.evaluate_interpreted_json(&input);
                                assert!(compiled.error.is_none(), "{input}: {:?}", compiled.error);
                                let mut a = compiled.reasons.clone();
                                let mut b = interpreted.reasons.clone();
                                a.sort();
                                b.sort();
                                assert_eq!(
                                    (&compiled.decision, compiled.ttl, &compiled.constraints, &a),
                                    (
                                        &interpreted.decision,
                                        interpreted.ttl,
                                        &interpreted.constraints,
                                        &b
                                    ),
                                    "{input}"
                                );
                                let explained = engine.explain_interpreted_json(&input).unwrap();
                                assert_eq!(
                                    engine.explain_json(&input).unwrap(),
                                    explained,
                                    "{input}"
                                );
                                let (judged, judged_rules) = engine.judge_json(&input);
                                // The same question as JSON text (what-if's way) is judged
                                // the same.
                                assert_eq!(
                                    engine.judge_text(&input.to_string()),
                                    (judged.clone(), judged_rules.clone()),
                                    "{input}"
                                );
                                assert_eq!(judged.decision, interpreted.decision, "{input}");
                                assert_eq!(judged_rules.unwrap(), explained, "{input}");
                                if a.iter().any(|r| r == "large_blast_radius") {
                                    large_seen += 1;
                                }
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(compared, 2 * 2 * 2 * 3 * 3 * 8 * 2);
    assert!(
        large_seen > 0,
        "the grid reaches the large-blast-radius rule"
    );
}

/// What-if explanations run on the compiled program; they must name the same rules and values
/// as the interpreter, rule by rule, over a grid of inputs (smaller than the decision grid: the
/// interpreter side is a query per rule).
#[test]
fn compiled_and_interpreted_explanations_agree() {
    let engine = PolicyEngine::load_dir(policies(), "policy.assistant.v1").unwrap();
    assert!(
        engine.explains_compiled_path(),
        "the explaining rules compile to RVM entry points"
    );
    assert!(
        engine.judges_in_one_run(),
        "the judgement rule compiles with the project policies"
    );
    let mut compared = 0usize;
    let mut mismatches = Vec::new();
    for roles in [&["viewer"][..], &["operator"], &[]] {
        for action in ["read", "write", ""] {
            for env in ["dev", "prod", "moon"] {
                for level in ["low", "medium", "high", "weird"] {
                    for blast in ["namespace", "account"] {
                        for targets in [1, 11] {
                            for break_glass in [false, true] {
                                for verified in [None, Some(2)] {
                                    let mut resources = json!({"break_glass": break_glass});
                                    if let Some(n) = verified {
                                        resources["verification"] =
                                            json!({"verify_steps_with_expectations": n});
                                    }
                                    let input = json!({
                                        "actor": {"id": "alice", "roles": roles, "tenant_id": "acme"},
                                        "action": {"name": "plan.create", "type": action},
                                        "context": {"tenant_id": "acme", "environment": env},
                                        "resources": resources,
                                        "risk": {"level": level, "blast_radius": blast, "targets": targets},
                                    });
                                    let compiled = engine.explain_json(&input).unwrap();
                                    let interpreted =
                                        engine.explain_interpreted_json(&input).unwrap();
                                    // The one-run judgement gives both answers the same way.
                                    let (judged, judged_rules) = engine.judge_json(&input);
                                    assert_eq!(
                                        engine.judge_text(&input.to_string()),
                                        (judged.clone(), judged_rules.clone()),
                                        "{input}"
                                    );
                                    let decided = engine.evaluate_interpreted_json(&input);
                                    let mut a = judged.reasons.clone();
                                    let mut b = decided.reasons.clone();
                                    a.sort();
                                    b.sort();
                                    assert_eq!(
                                        (
                                            &judged.decision,
                                            judged.ttl,
                                            &judged.constraints,
                                            &a,
                                            &judged.error
                                        ),
                                        (
                                            &decided.decision,
                                            decided.ttl,
                                            &decided.constraints,
                                            &b,
                                            &decided.error
                                        ),
                                        "{input}"
                                    );
                                    assert_eq!(judged_rules.unwrap(), interpreted, "{input}");
                                    compared += 1;
                                    assert!(!compiled.is_empty(), "a decision is always named");
                                    if compiled != interpreted {
                                        mismatches.push((input, compiled, interpreted));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(compared >= 1_700, "grid too small: {compared}");
    assert!(
        mismatches.is_empty(),
        "{} of {compared} explanations differ; first: {:#?}",
        mismatches.len(),
        mismatches.first()
    );
}

/// A package without the aggregate `outputs` rule still works, on the interpreter; a VM error
/// denies.
#[test]
fn packages_without_outputs_use_the_interpreter() {
    let engine = PolicyEngine::from_sources(
        "custom",
        vec![(
            "p.rego".into(),
            "package custom\nimport rego.v1\ndefault decision := \"deny\"\ndecision := \"allow\" if input.ok\nconstraints := {}\nttl := 0\nreasons := set()\n".into(),
        )],
    )
    .unwrap();
    assert!(!engine.is_compiled());
    let out = engine.evaluate_json(&json!({"ok": true}));
    assert_eq!(out.decision, Decision::Allow, "{out:?}");
    // What-if's way in (JSON text) takes the interpreter too; text that is not JSON denies.
    assert_eq!(
        engine.judge_text(r#"{"ok": true}"#).0.decision,
        Decision::Allow
    );
    let (unreadable, rules) = engine.judge_text("{not json");
    assert_eq!(unreadable.decision, Decision::Deny, "{unreadable:?}");
    assert!(
        unreadable.error.is_some() && rules.is_err(),
        "{unreadable:?}"
    );
    let compiled = PolicyEngine::from_sources(
        "custom",
        vec![(
            "p.rego".into(),
            "package custom\nimport rego.v1\ndecision := \"allow\" if 1 / input.zero > 0\noutputs := {\"decision\": decision}\n".into(),
        )],
    )
    .unwrap();
    assert!(compiled.is_compiled());
    let out = compiled.evaluate_json(&json!({"zero": 0}));
    assert_eq!(out.decision, Decision::Deny, "{out:?}");
    assert!(
        out.error.is_some(),
        "a VM error is reported and denies: {out:?}"
    );
    assert_eq!(
        compiled.evaluate_json(&json!({"zero": 1})).decision,
        Decision::Allow
    );
}

/// What-if's explanation: the rules behind a decision are exactly the reasons and constraints
/// the decision carries, each with the file:line naming it; an allowed read names no reason.
#[test]
fn explain_names_the_rules_behind_a_decision() {
    let engine = PolicyEngine::load_dir(policies(), "policy.assistant.v1").unwrap();
    let write = input(
        &["operator"],
        "write",
        "prod",
        "high",
        "namespace",
        1,
        false,
    );
    let outcome = engine.evaluate_json(&write);
    let hits = engine.explain_json(&write).unwrap();
    let reasons: Vec<&str> = hits
        .iter()
        .filter(|h| h.rule.ends_with("_reasons"))
        .filter_map(|h| h.value.as_str())
        .collect();
    let mut expected: Vec<&str> = outcome.reasons.iter().map(String::as_str).collect();
    let mut got = reasons.clone();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected, "{hits:?}");
    assert!(hits.iter().any(|h| h.rule == "approval_reasons"
        && h.value == "production_environment"
        && h.at.as_deref() == Some("write.rego:15")));
    let constraint_keys: Vec<&str> = hits
        .iter()
        .filter(|h| h.rule == "constraint_entries")
        .filter_map(|h| h.value[0].as_str())
        .collect();
    for key in outcome.constraints.keys() {
        assert!(constraint_keys.contains(&key.as_str()), "{key}: {hits:?}");
    }
    let read = input(&["viewer"], "read", "prod", "read", "namespace", 0, false);
    let hits = engine.explain_json(&read).unwrap();
    assert!(
        hits.iter().all(|h| !h.rule.ends_with("_reasons")),
        "an allowed read has no reasons: {hits:?}"
    );
    assert!(hits
        .iter()
        .any(|h| h.rule == "decision" && h.value == "allow"));
}
