//! Store repositories against a real Postgres: executions with tool calls and evidence, state
//! transitions, tenant scoping, and audit queries.

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry, AuditWriter};
use carapulse_core::model::{
    ActorId, ExecutionId, ExecutionStatus, Stage, TenantId, ToolCallStatus, ToolName,
};
use carapulse_core::store::{
    AuditFilter, CountMode, NewEvidence, NewPlan, NewToolCall, Page, StartOutcome, StoreError,
};
use carapulse_core::testing::{sample_plan, sample_step, TestDatabase};
use serde_json::{json, Value};

fn audit(tenant: &TenantId, action: &str) -> AuditEntry {
    AuditEntry::new(
        tenant.clone(),
        AuditActor::system(),
        action,
        AuditDecision::Allow,
    )
}

fn new_plan(tenant: &TenantId) -> NewPlan {
    sample_plan(
        tenant,
        vec![
            sample_step(
                Stage::Act,
                ToolName::Grafana,
                "annotation-create",
                json!({"text": "x"}),
            ),
            sample_step(
                Stage::Verify,
                ToolName::Prometheus,
                "query",
                json!({"query": "up"}),
            ),
        ],
    )
}

#[tokio::test]
async fn executions_tool_calls_evidence_and_transitions() {
    let db = TestDatabase::create().await;
    let store = &db.store;
    let acme = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("other").unwrap();
    let plan = store
        .create_plan(new_plan(&acme), audit(&acme, "plan.create"))
        .await
        .unwrap();
    assert_eq!(plan.steps.len(), 2);
    assert_eq!(
        plan.steps[1].stage,
        Stage::Verify,
        "stage survives the round trip"
    );
    assert!(matches!(
        store.get_plan(&other, plan.plan_id).await,
        Err(StoreError::NotFound)
    ));

    let actor = ActorId::parse("alice").unwrap();
    let exec_id = ExecutionId::new();
    let started = store
        .start_execution(
            &acme,
            plan.plan_id,
            exec_id,
            &actor,
            audit(&acme, "plan.execute"),
            carapulse_core::store::StartOptions::new(
                carapulse_core::store::StartMode::RequireApproved,
            ),
        )
        .await
        .unwrap();
    assert!(matches!(started, StartOutcome::Created(ref e) if e.execution_id == exec_id));
    let again = store
        .start_execution(
            &acme,
            plan.plan_id,
            ExecutionId::new(),
            &actor,
            audit(&acme, "plan.execute"),
            carapulse_core::store::StartOptions::new(
                carapulse_core::store::StartMode::RequireApproved,
            ),
        )
        .await
        .unwrap();
    assert!(matches!(again, StartOutcome::Existing(ref e) if e.execution_id == exec_id));

    let call = NewToolCall {
        execution_id: exec_id,
        step_id: Some(plan.steps[0].step_id),
        tool_name: "grafana".into(),
        action: "annotation-create".into(),
        status: ToolCallStatus::Running,
        input_ref: Some("fs://tool-input/1.json".into()),
        attempt: 1,
    };
    let call_id = store.insert_tool_call(&acme, &call).await.unwrap();
    assert!(
        matches!(
            store.insert_tool_call(&other, &call).await,
            Err(StoreError::NotFound)
        ),
        "other tenant cannot attach calls"
    );
    store
        .finish_tool_call(
            &acme,
            call_id,
            ToolCallStatus::Succeeded,
            Some("fs://tool-output/1.json"),
            Some(0),
            None,
        )
        .await
        .unwrap();
    let ev = NewEvidence {
        execution_id: exec_id,
        step_id: Some(plan.steps[1].step_id),
        kind: "promql".into(),
        query: Some("up".into()),
        result_ref: None,
        summary: json!({"value": 1}),
        external_ids: json!({}),
    };
    store.insert_evidence(&acme, &ev).await.unwrap();

    let running = store
        .transition_execution(&acme, exec_id, ExecutionStatus::Running, None)
        .await
        .unwrap();
    assert!(running.started_at.is_some());
    let err = store
        .transition_execution(&acme, exec_id, ExecutionStatus::Pending, None)
        .await;
    assert!(matches!(err, Err(StoreError::Conflict(_))));
    let done = store
        .transition_execution(&acme, exec_id, ExecutionStatus::Succeeded, None)
        .await
        .unwrap();
    assert!(done.completed_at.is_some());
    assert!(matches!(
        store
            .transition_execution(&acme, exec_id, ExecutionStatus::Failed, Some("late"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.set_workflow_id(&acme, exec_id, "wf-1").await.unwrap();
    assert!(matches!(
        store.set_workflow_id(&other, exec_id, "x").await,
        Err(StoreError::NotFound)
    ));

    let view = store.get_execution_view(&acme, exec_id).await.unwrap();
    assert_eq!(view.execution.status, ExecutionStatus::Succeeded);
    assert_eq!(view.execution.workflow_id.as_deref(), Some("wf-1"));
    assert_eq!(view.tool_calls.len(), 1);
    assert_eq!(view.tool_calls[0].status, ToolCallStatus::Succeeded);
    assert_eq!(view.tool_calls[0].exit_code, Some(0));
    assert_eq!(view.evidence.len(), 1);
    assert_eq!(view.evidence[0].kind, "promql");
    // Completion and what the call returned, in one statement: a small result inline, a large
    // one only by reference; the substituted input replaces the stored one.
    let small = json!({"ok": true});
    let big = json!({"blob": "x".repeat(carapulse_core::store::INLINE_RESULT_BYTES)});
    let concrete = json!({"text": "substituted"});
    // The second call ran a demo CLI: the view says so; the first (real) one does not.
    for (result, inline, demo) in [(&small, true, false), (&big, false, true)] {
        let second = store.insert_tool_call(&acme, &call).await.unwrap();
        let finished = carapulse_core::store::FinishedToolCall {
            status: ToolCallStatus::Succeeded,
            output_ref: None,
            exit_code: Some(0),
            error: None,
            recorded: Some(carapulse_core::store::RecordedResult {
                input: Some(&concrete),
                result: Some(result),
                result_ref: Some("fs://tool-results/2.json"),
            }),
            demo,
        };
        store
            .finish_tool_call_with_result(&acme, second, &finished)
            .await
            .unwrap();
        let (status, input, stored, result_ref): (String, Option<Value>, Option<Value>, Option<String>) =
            sqlx::query_as(
                "SELECT status, input_json, result_json, result_ref FROM tool_calls WHERE tool_call_id = $1",
            )
            .bind(second.0)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(status, "succeeded");
        assert_eq!(input.as_ref(), Some(&concrete));
        assert_eq!(stored.is_some(), inline, "inline only up to the limit");
        if inline {
            assert_eq!(stored.as_ref(), Some(result));
        }
        assert_eq!(result_ref.as_deref(), Some("fs://tool-results/2.json"));
        let view = store.get_execution_view(&acme, exec_id).await.unwrap();
        let shown = view
            .tool_calls
            .iter()
            .find(|c| c.tool_call_id == second)
            .unwrap();
        assert_eq!(shown.demo, demo, "the demo mark is stored and shown");
    }
    assert!(!view.tool_calls[0].demo, "a real call is not marked demo");
    assert!(matches!(
        store.get_execution_view(&other, exec_id).await,
        Err(StoreError::NotFound)
    ));

    // After completion a new execution may start.
    let next = store
        .start_execution(
            &acme,
            plan.plan_id,
            ExecutionId::new(),
            &actor,
            audit(&acme, "plan.execute"),
            carapulse_core::store::StartOptions::new(
                carapulse_core::store::StartMode::RequireApproved,
            ),
        )
        .await
        .unwrap();
    assert!(matches!(next, StartOutcome::Created(_)));
    let page = store
        .list_executions(
            &acme,
            &Default::default(),
            Page::default().with_count(CountMode::Exact),
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(2));
    let page = store
        .list_executions(
            &other,
            &Default::default(),
            Page::default().with_count(CountMode::Exact),
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(0));
    db.drop_now().await;
}

#[tokio::test]
async fn audit_queries_filter_in_sql() {
    let db = TestDatabase::create().await;
    let writer = AuditWriter::spawn(db.store.clone());
    let t = TenantId::parse("acme").unwrap();
    let bob = AuditActor::person("bob", None);
    for i in 0..10 {
        let actor = if i % 2 == 0 {
            bob.clone()
        } else {
            AuditActor::system()
        };
        let decision = if i % 3 == 0 {
            AuditDecision::Deny
        } else {
            AuditDecision::Allow
        };
        writer
            .append(AuditEntry::new(
                t.clone(),
                actor,
                if i < 5 { "plan.create" } else { "plan.execute" },
                decision,
            ))
            .await
            .unwrap();
    }
    let by_actor = AuditFilter {
        actor_id: Some("bob".into()),
        ..Default::default()
    };
    assert_eq!(
        db.store
            .list_audit_events(&t, &by_actor, Page::default().with_count(CountMode::Exact))
            .await
            .unwrap()
            .total,
        Some(5)
    );
    let denies = AuditFilter {
        decision: Some("deny".into()),
        action: Some("plan.create".into()),
        ..Default::default()
    };
    assert_eq!(
        db.store
            .list_audit_events(&t, &denies, Page::default().with_count(CountMode::Exact))
            .await
            .unwrap()
            .total,
        Some(2)
    );
    let future = AuditFilter {
        from: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        ..Default::default()
    };
    assert_eq!(
        db.store
            .list_audit_events(&t, &future, Page::default().with_count(CountMode::Exact))
            .await
            .unwrap()
            .total,
        Some(0)
    );
    let past = AuditFilter {
        to: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
        ..Default::default()
    };
    assert_eq!(
        db.store
            .list_audit_events(&t, &past, Page::default().with_count(CountMode::Exact))
            .await
            .unwrap()
            .total,
        Some(0)
    );
    let page = db
        .store
        .list_audit_events(
            &t,
            &AuditFilter::default(),
            Page::new(Some(3), Some(9)).with_count(CountMode::Exact),
        )
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total), (1, Some(10)));
    let beyond = db
        .store
        .list_audit_events(
            &t,
            &AuditFilter::default(),
            Page::new(Some(3), Some(50)).with_count(CountMode::Exact),
        )
        .await
        .unwrap();
    assert_eq!(
        (beyond.items.len(), beyond.total),
        (0, Some(10)),
        "total stays right past the end"
    );
    let export = db
        .store
        .export_audit_events(&t, &AuditFilter::default(), 4, i64::MAX, 100)
        .await
        .unwrap();
    assert_eq!(export.first().map(|e| e.seq), Some(5));
    assert_eq!(export.len(), 6);
    db.drop_now().await;
}

/// One statement per delivery: outcomes in input order (new, changed, duplicate), a key repeated
/// within a delivery stored once with its last state, and overlapping deliveries committed
/// concurrently neither deadlock nor lose a row.
#[tokio::test]
async fn alert_deliveries_upsert_in_one_statement() {
    use carapulse_core::store::{NewAlertEvent, Stored};
    let db = TestDatabase::create().await;
    let store = &db.store;
    let tenant = TenantId::parse("acme").unwrap();
    let payload = json!({"labels": {"alertname": "X"}});
    let event = |fingerprint: &'static str, status: &'static str| NewAlertEvent {
        tenant: &tenant,
        source: "alertmanager",
        fingerprint,
        status,
        started_at: None,
        payload: &payload,
    };
    let first = store
        .record_alert_delivery(
            None,
            &[
                event("a", "firing"),
                event("b", "firing"),
                event("a", "resolved"),
            ],
            audit(&tenant, "hook.received"),
        )
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<Stored> = first.iter().map(|(_, s)| *s).collect();
    assert_eq!(kinds, vec![Stored::Duplicate, Stored::New, Stored::New]);
    assert_eq!(first[0].0, first[2].0, "a repeated key is one row");
    let status: String = sqlx::query_scalar(
        "SELECT status FROM alert_events WHERE tenant_id = 'acme' AND fingerprint = 'a'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(status, "resolved", "the last occurrence wins");

    let second = store
        .record_alert_delivery(
            Some(("alertmanager", "delivery-2")),
            &[
                event("b", "firing"),
                event("a", "firing"),
                event("c", "firing"),
            ],
            audit(&tenant, "hook.received"),
        )
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<Stored> = second.iter().map(|(_, s)| *s).collect();
    assert_eq!(kinds, vec![Stored::Duplicate, Stored::Changed, Stored::New]);
    assert_eq!(second[0].0, first[1].0, "a duplicate answers the stored id");
    assert_eq!(second[1].0, first[0].0);
    let replay = store
        .record_alert_delivery(
            Some(("alertmanager", "delivery-2")),
            &[event("z", "firing")],
            audit(&tenant, "hook.received"),
        )
        .await
        .unwrap();
    assert!(replay.is_none(), "a replayed delivery stores nothing");
    // One `alert.received` event per new alert and per status change, none for duplicates:
    // a, b (first delivery), then a changed and c (second).
    let events: Vec<(Value,)> = sqlx::query_as(
        "SELECT data FROM event_log WHERE tenant_id = 'acme' AND kind = 'alert.received' ORDER BY event_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|(d,)| {
            (
                d["fingerprint"].as_str().unwrap_or("").to_owned(),
                d["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut first_delivery = seen[..2].to_vec();
    first_delivery.sort();
    assert_eq!(
        first_delivery,
        vec![
            ("a".into(), "resolved".into()),
            ("b".into(), "firing".into())
        ]
    );
    let mut second_delivery = seen[2..].to_vec();
    second_delivery.sort();
    assert_eq!(
        second_delivery,
        vec![("a".into(), "firing".into()), ("c".into(), "firing".into())]
    );

    // Overlapping deliveries in opposite orders, concurrently: no deadlock, every key once.
    let fingerprints: Vec<String> = (0..200).map(|i| format!("k{i:03}")).collect();
    let mut tasks = Vec::new();
    for round in 0..8 {
        let store = store.clone();
        let tenant = tenant.clone();
        let mut keys = fingerprints.clone();
        if round % 2 == 1 {
            keys.reverse();
        }
        tasks.push(tokio::spawn(async move {
            let payload = json!({});
            let events: Vec<NewAlertEvent<'_>> = keys
                .iter()
                .map(|k| NewAlertEvent {
                    tenant: &tenant,
                    source: "alertmanager",
                    fingerprint: k,
                    status: "firing",
                    started_at: None,
                    payload: &payload,
                })
                .collect();
            store
                .record_alert_delivery(None, &events, audit(&tenant, "hook.received"))
                .await
                .map(|o| o.map(|o| o.iter().filter(|(_, s)| *s == Stored::New).count()))
        }));
    }
    let mut new_total = 0;
    for t in tasks {
        new_total += t.await.unwrap().unwrap().unwrap();
    }
    assert_eq!(
        new_total, 200,
        "each key is new exactly once across the deliveries"
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alert_events WHERE tenant_id = 'acme' AND fingerprint LIKE 'k%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(stored, 200);
    db.drop_now().await;
}
