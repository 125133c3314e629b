//! Retention against a real Postgres: each growing table loses exactly what its policy no longer
//! keeps (old delivered events, old tool output, old resolved alerts, old delivery ids) and
//! nothing else (new rows, undelivered events, firing alerts), and writers keep committing while
//! a large backlog is pruned.

use carapulse_core::store::{Pruned, RetentionPolicy};
use carapulse_core::testing::TestDatabase;

const POLICY: RetentionPolicy = RetentionPolicy {
    event_hours: 24,
    tool_log_hours: 30 * 24,
    resolved_alert_hours: 90 * 24,
    webhook_delivery_hours: 24,
    policy_decision_hours: 30 * 24,
};

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn prune_takes_exactly_what_the_policy_no_longer_keeps() {
    let db = TestDatabase::create().await;
    let mut conn = db.store.pool().acquire().await.unwrap();
    // Fixture rows go in directly (tool output lines without their calls): no triggers, no FKs.
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    for sql in [
        // events: 30 old delivered, 5 old undelivered, 10 new
        "INSERT INTO event_log (tenant_id, kind, data, occurred_at, seq) \
         SELECT 'acme', 'plan.updated', '{}', now() - interval '2 days', i FROM generate_series(1, 30) i",
        "INSERT INTO event_log (tenant_id, kind, data, occurred_at) \
         SELECT 'acme', 'plan.updated', '{}', now() - interval '2 days' FROM generate_series(1, 5)",
        "INSERT INTO event_log (tenant_id, kind, data, seq) \
         SELECT 'acme', 'plan.updated', '{}', 100 + i FROM generate_series(1, 10) i",
        // tool output: 40 lines from 31 days ago, 7 from yesterday
        "INSERT INTO tool_call_logs (tool_call_id, seq, execution_id, tenant_id, stream, level, message, ts) \
         SELECT gen_random_uuid(), i, gen_random_uuid(), 'acme', 'stdout', 'info', 'old', now() - interval '31 days' \
         FROM generate_series(1, 40) i",
        "INSERT INTO tool_call_logs (tool_call_id, seq, execution_id, tenant_id, stream, level, message, ts) \
         SELECT gen_random_uuid(), i, gen_random_uuid(), 'acme', 'stdout', 'info', 'new', now() - interval '1 day' \
         FROM generate_series(1, 7) i",
        // alerts: 12 old resolved, 3 old still firing, 4 recently resolved
        "INSERT INTO alert_events (alert_id, tenant_id, fingerprint, status, updated_at, payload_json) \
         SELECT gen_random_uuid(), 'acme', 'old-' || i, 'resolved', now() - interval '91 days', '{}' FROM generate_series(1, 12) i",
        "INSERT INTO alert_events (alert_id, tenant_id, fingerprint, status, updated_at, payload_json) \
         SELECT gen_random_uuid(), 'acme', 'firing-' || i, 'firing', now() - interval '91 days', '{}' FROM generate_series(1, 3) i",
        "INSERT INTO alert_events (alert_id, tenant_id, fingerprint, status, updated_at, payload_json) \
         SELECT gen_random_uuid(), 'acme', 'new-' || i, 'resolved', now() - interval '1 day', '{}' FROM generate_series(1, 4) i",
        // webhook deliveries: 6 old, 2 new
        "INSERT INTO webhook_deliveries (source, delivery_key, received_at) \
         SELECT 'alertmanager', 'old-' || i, now() - interval '2 days' FROM generate_series(1, 6) i",
        "INSERT INTO webhook_deliveries (source, delivery_key) \
         SELECT 'alertmanager', 'new-' || i FROM generate_series(1, 2) i",
        // policy decisions: 9 from 31 days ago, 3 from yesterday
        "INSERT INTO policy_decisions (decision_id, tenant_id, decided_at, action, decision, input_json) \
         SELECT gen_random_uuid(), 'acme', now() - interval '31 days', 'plan.create', 'allow', '{}' FROM generate_series(1, 9)",
        "INSERT INTO policy_decisions (decision_id, tenant_id, decided_at, action, decision, input_json) \
         SELECT gen_random_uuid(), 'acme', now() - interval '1 day', 'plan.create', 'allow', '{}' FROM generate_series(1, 3)",
        // impact jobs: 2 last moved 31 days ago, 1 yesterday (without their change events, which
        // would move the event counts above)
        "ALTER TABLE policy_impact_jobs DISABLE TRIGGER policy_impact_jobs_event",
        "INSERT INTO policy_impact_jobs (job_id, tenant_id, requested_by, status, window_json, updated_at) \
         SELECT gen_random_uuid(), 'acme', 'alice', 'done', '{}', now() - interval '31 days' FROM generate_series(1, 2)",
        "INSERT INTO policy_impact_jobs (job_id, tenant_id, requested_by, status, window_json, updated_at) \
         VALUES (gen_random_uuid(), 'acme', 'alice', 'done', '{}', now() - interval '1 day')",
        "ALTER TABLE policy_impact_jobs ENABLE TRIGGER policy_impact_jobs_event",
        // planning records (replay's input): 4 from 31 days ago, 2 from yesterday (replica
        // mode: no plans behind them)
        "INSERT INTO planning_records (record_id, plan_id, revision, tenant_id, recorded_at, record_json) \
         SELECT gen_random_uuid(), gen_random_uuid(), 1, 'acme', now() - interval '31 days', '{}' FROM generate_series(1, 4)",
        "INSERT INTO planning_records (record_id, plan_id, revision, tenant_id, recorded_at, record_json) \
         SELECT gen_random_uuid(), gen_random_uuid(), 1, 'acme', now() - interval '1 day', '{}' FROM generate_series(1, 2)",
        // replays: 3 last moved 31 days ago (one with an incident, which goes with it), 1 yesterday
        "ALTER TABLE replay_runs DISABLE TRIGGER replay_runs_event",
        "INSERT INTO replay_runs (replay_id, tenant_id, requested_by, status, request_json, updated_at) \
         SELECT gen_random_uuid(), 'acme', 'alice', 'done', '{}', now() - interval '31 days' FROM generate_series(1, 3)",
        "INSERT INTO replay_incidents (replay_id, seq, changed, result_json) \
         SELECT replay_id, 0, false, '{}' FROM replay_runs WHERE updated_at < now() - interval '30 days' LIMIT 1",
        "INSERT INTO replay_runs (replay_id, tenant_id, requested_by, status, request_json, updated_at) \
         VALUES (gen_random_uuid(), 'acme', 'alice', 'done', '{}', now() - interval '1 day')",
        "ALTER TABLE replay_runs ENABLE TRIGGER replay_runs_event",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    // Back to normal before the connection returns to the pool the prune takes from (a replay's
    // incidents go with it through the foreign key's cascade, a trigger replica mode skips).
    sqlx::query("SET session_replication_role = DEFAULT")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    let pruned = db.store.prune(&POLICY).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            events: 30,
            tool_log_lines: 40,
            resolved_alerts: 12,
            webhook_deliveries: 6,
            policy_decisions: 9,
            impact_jobs: 2,
            planning_records: 4,
            replay_runs: 3,
        }
    );
    assert_eq!(count(&db, "SELECT count(*) FROM replay_runs").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM replay_incidents").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM planning_records").await, 2);
    assert_eq!(
        count(&db, "SELECT count(*) FROM policy_impact_jobs").await,
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM policy_decisions").await, 3);
    assert_eq!(count(&db, "SELECT count(*) FROM event_log").await, 15);
    assert_eq!(
        count(&db, "SELECT count(*) FROM event_log WHERE seq IS NULL").await,
        5,
        "events not yet delivered are never pruned"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM tool_call_logs").await, 7);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM alert_events WHERE status = 'firing'"
        )
        .await,
        3,
        "firing alerts are kept however old"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM alert_events").await, 7);
    assert_eq!(
        count(&db, "SELECT count(*) FROM webhook_deliveries").await,
        2
    );

    // A policy of 0 keeps everything.
    let keep = RetentionPolicy {
        event_hours: 0,
        tool_log_hours: 0,
        resolved_alert_hours: 0,
        webhook_delivery_hours: 0,
        policy_decision_hours: 0,
    };
    assert_eq!(db.store.prune(&keep).await.unwrap(), Pruned::default());
    db.drop_now().await;
}

/// A backlog of many batches drains while a writer keeps committing new events: the prune works
/// in short statements that touch only old rows, so the writer is never queued behind it.
#[tokio::test]
async fn writers_commit_while_a_backlog_is_pruned() {
    let db = TestDatabase::create().await;
    sqlx::query(
        "INSERT INTO event_log (tenant_id, kind, data, occurred_at, seq) \
         SELECT 'acme', 'plan.updated', '{}', now() - interval '2 days', i FROM generate_series(1, 40000) i",
    )
    .execute(db.store.pool())
    .await
    .unwrap();
    let prune = {
        let store = db.store.clone();
        tokio::spawn(async move { store.prune(&POLICY).await })
    };
    let mut written_while_pruning = 0;
    while !prune.is_finished() {
        sqlx::query("SELECT carapulse_emit('plan.updated', 'acme', NULL, '{}')")
            .execute(db.store.pool())
            .await
            .unwrap();
        if !prune.is_finished() {
            written_while_pruning += 1;
        }
    }
    let pruned = prune.await.unwrap().unwrap();
    assert_eq!(pruned.events, 40_000);
    assert!(
        written_while_pruning >= 5,
        "only {written_while_pruning} writes committed during a prune of 8 batches"
    );
    db.drop_now().await;
}

/// Two replicas prune at once while a webhook transaction holds one old alert: neither prune
/// waits for the held row or for the other prune (they used to: the DELETE blocked on the row
/// lock until the holder ended), together they take every other old row exactly once, and the
/// held row goes in a later run.
#[tokio::test]
async fn prunes_skip_held_rows_and_run_side_by_side() {
    let db = TestDatabase::create().await;
    let old = 12_000;
    sqlx::query(
        "INSERT INTO alert_events (alert_id, tenant_id, fingerprint, status, updated_at, payload_json) \
         SELECT gen_random_uuid(), 'acme', 'old-' || i, 'resolved', now() - interval '91 days', '{}' \
         FROM generate_series(0, $1) i",
    )
    .bind(old as i64)
    .execute(db.store.pool())
    .await
    .unwrap();
    // The webhook's transaction: holds old-0 (as an upsert of that fingerprint would).
    let mut holder = db.store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM alert_events WHERE fingerprint = 'old-0' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();

    let policy = RetentionPolicy {
        resolved_alert_hours: 90 * 24,
        ..POLICY
    };
    let side_by_side = async { tokio::join!(db.store.prune(&policy), db.store.prune(&policy)) };
    let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(30), side_by_side)
        .await
        .expect("a prune waited for a held row or for the other prune");
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.resolved_alerts + b.resolved_alerts, old, "{a:?} {b:?}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM alert_events").await,
        1,
        "only the held alert is left"
    );

    holder.commit().await.unwrap();
    let later = db.store.prune(&policy).await.unwrap();
    assert_eq!(later.resolved_alerts, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM alert_events").await, 0);
    db.drop_now().await;
}
