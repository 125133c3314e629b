//! Table tests: intent -> workflow + inputs, alert -> workflow + inputs.

use super::*;

fn ctx(namespace: &str) -> ContextRef {
    ContextRef {
        tenant_id: "t1".into(),
        environment: "prod".into(),
        namespace: namespace.into(),
        ..Default::default()
    }
}

#[test]
fn intents_map_to_workflows() {
    let table: &[(&str, &str, Value)] = &[
        (
            "scale web to 4 from 2",
            "scale_service",
            json!({"resource": "deployment/web", "namespace": "shop", "replicas": 4, "current_replicas": 2}),
        ),
        (
            "Please scale deployment api in payments to 6 replicas from 3 replicas.",
            "scale_service",
            json!({"resource": "deployment/api", "namespace": "payments", "replicas": 6, "current_replicas": 3}),
        ),
        (
            "scale statefulset/db -n data to 3 from 1",
            "scale_service",
            json!({"resource": "statefulset/db", "namespace": "data", "replicas": 3, "current_replicas": 1}),
        ),
        (
            "scale sts cache in namespace infra to 2 from 5",
            "scale_service",
            json!({"resource": "statefulset/cache", "namespace": "infra", "replicas": 2, "current_replicas": 5}),
        ),
        (
            "deploy app checkout at revision 3f9c2ab",
            "gitops_deploy",
            json!({"app": "checkout", "revision": "3f9c2ab"}),
        ),
        (
            "Deploy checkout to v1.4.0-RC1",
            "gitops_deploy",
            json!({"app": "checkout", "revision": "v1.4.0-RC1"}),
        ),
        ("sync billing", "gitops_deploy", json!({"app": "billing"})),
        (
            "rollback release web",
            "release_rollback",
            json!({"release": "web", "namespace": "shop"}),
        ),
        (
            "roll back release web in staging to revision 7",
            "release_rollback",
            json!({"release": "web", "namespace": "staging", "revision": 7}),
        ),
        (
            "restart service web",
            "service_restart",
            json!({"resource": "deployment/web", "namespace": "shop"}),
        ),
        (
            "restart daemonset node-agent in monitoring",
            "service_restart",
            json!({"resource": "daemonset/node-agent", "namespace": "monitoring"}),
        ),
        (
            "rotate secret database/rotate-role/web",
            "secret_rotation",
            json!({"path": "database/rotate-role/web"}),
        ),
    ];
    for (intent, workflow, input) in table {
        let plan = plan_intent(intent, &ctx("shop")).unwrap_or_else(|e| panic!("{intent}: {e}"));
        assert_eq!(plan.workflow, *workflow, "{intent}");
        assert_eq!(&plan.input, input, "{intent}");
        // Every rule output builds valid catalogue steps.
        let draft = plan
            .into_draft()
            .unwrap_or_else(|e| panic!("{intent}: {e}"));
        assert!(!draft.steps.is_empty());
        assert_eq!(draft.label(), "rules");
    }
}

#[test]
fn unknown_and_incomplete_intents_say_what_is_missing() {
    let err = plan_intent("make it faster", &ctx("shop")).unwrap_err();
    assert!(matches!(err, RuleError::NoRule { .. }));
    assert!(err.to_string().contains("scale <workload>"), "{err}");

    // No "from": the workflow reads the live count, bounds the change against it and rolls
    // back to it.
    let plan = plan_intent("scale web to 5", &ctx("shop")).unwrap();
    assert_eq!(
        plan.input,
        json!({"resource": "deployment/web", "namespace": "shop", "replicas": 5})
    );
    let draft = plan.into_draft().unwrap();
    assert_eq!(
        draft.steps[0].capture["current_replicas"], ".spec.replicas",
        "the live count is read first"
    );
    assert_eq!(
        draft.steps[1].rollback.as_ref().unwrap().input["replicas"],
        json!("${capture.current_replicas}")
    );
    assert_eq!(
        draft.steps[1].preconditions,
        vec![
            json!({"path": ".current_replicas", "op": ">=", "value": 0}),
            json!({"path": ".current_replicas", "op": "<=", "value": 15}),
        ]
    );

    let err = plan_intent("restart web", &ctx("")).unwrap_err();
    assert!(err.to_string().contains("which namespace"), "{err}");

    // Values that reach argv are validated by the workflow schema.
    let err = plan_intent("scale web to 4000 from 2", &ctx("shop"))
        .unwrap()
        .into_draft()
        .unwrap_err();
    assert!(
        matches!(&err, RuleError::Invalid { field, .. } if field == "input.replicas"),
        "{err}"
    );
    let plan = plan_intent("scale web to 40 from 2", &ctx("shop")).unwrap();
    let err = plan.into_draft().unwrap_err();
    assert!(err.to_string().contains("max_delta"), "{err}");
    assert!(plan_intent("deploy --all", &ctx("shop")).is_err());
}

fn alert(labels: &[(&str, &str)]) -> AlertFacts {
    AlertFacts {
        fingerprint: "abc123".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("summary".to_string(), "p99 high".to_string())].into(),
    }
}

#[test]
fn alerts_map_to_incident_remediation_by_workload_labels() {
    type Labels<'a> = &'a [(&'a str, &'a str)];
    let table: &[(Labels<'_>, &str, &str)] = &[
        (
            &[
                ("alertname", "HighLatency"),
                ("deployment", "web"),
                ("namespace", "prod"),
            ],
            "deployment/web",
            "prod",
        ),
        (
            &[("alertname", "DiskFull"), ("statefulset", "db")],
            "statefulset/db",
            "shop",
        ),
        (
            &[
                ("alertname", "Errors"),
                ("service", "api"),
                ("namespace", "edge"),
            ],
            "deployment/api",
            "edge",
        ),
        (
            &[("alertname", "Down"), ("app", "cart")],
            "deployment/cart",
            "shop",
        ),
    ];
    for (labels, resource, namespace) in table {
        let plan = plan_alert(&alert(labels), &[], &ctx("shop")).unwrap();
        assert_eq!(plan.workflow, "incident_remediation");
        assert_eq!(plan.input["resource"], *resource);
        assert_eq!(plan.input["namespace"], *namespace);
        assert_eq!(plan.input["alertname"], labels[0].1);
        plan.into_draft().unwrap();
    }
    let err = plan_alert(&alert(&[("alertname", "Watchdog")]), &[], &ctx("shop")).unwrap_err();
    assert!(err.to_string().contains("names no workload"), "{err}");
}

#[test]
fn playbooks_win_and_fill_placeholders() {
    let playbooks = vec![
        PlaybookRule {
            name: "other".into(),
            alertname: Some("Other".into()),
            match_labels: Default::default(),
            workflow: "service_restart".into(),
            input: json!({}),
            author: None,
        },
        PlaybookRule {
            name: "latency-rollback".into(),
            alertname: Some("HighLatency".into()),
            match_labels: [("severity".to_string(), "page".to_string())].into(),
            workflow: "release_rollback".into(),
            input: json!({"release": "{{labels.release}}", "namespace": "{{labels.namespace}}", "revision": "{{labels.good_revision}}"}),
            author: None,
        },
    ];
    let firing = alert(&[
        ("alertname", "HighLatency"),
        ("severity", "page"),
        ("release", "web"),
        ("namespace", "prod"),
        ("good_revision", "12"),
        ("deployment", "web"),
    ]);
    let plan = plan_alert(&firing, &playbooks, &ctx("shop")).unwrap();
    assert_eq!(plan.rule, "playbook latency-rollback");
    assert_eq!(plan.workflow, "release_rollback");
    assert_eq!(
        plan.input,
        json!({"release": "web", "namespace": "prod", "revision": 12})
    );
    plan.into_draft().unwrap();

    // A label the playbook matches on is missing: the default mapping applies.
    let warning = alert(&[
        ("alertname", "HighLatency"),
        ("severity", "warning"),
        ("deployment", "web"),
    ]);
    assert_eq!(
        plan_alert(&warning, &playbooks, &ctx("shop"))
            .unwrap()
            .workflow,
        "incident_remediation"
    );
    // A placeholder without a value is an error, not an empty string in argv.
    let partial = alert(&[
        ("alertname", "HighLatency"),
        ("severity", "page"),
        ("namespace", "prod"),
    ]);
    let err = plan_alert(&partial, &playbooks, &ctx("shop")).unwrap_err();
    assert!(err.to_string().contains("labels.release"), "{err}");
}
