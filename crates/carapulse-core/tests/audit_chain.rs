//! The audit chain against a real Postgres: concurrent appends never fork it, and edits,
//! deletions and re-linking are detected by verification.

use carapulse_core::audit::{verify_chain, AuditActor, AuditDecision, AuditEntry, AuditWriter};
use carapulse_core::model::TenantId;
use carapulse_core::testing::TestDatabase;
use serde_json::json;

fn entry(tenant: &TenantId, i: usize) -> AuditEntry {
    AuditEntry::new(
        tenant.clone(),
        AuditActor::system(),
        "test.append",
        AuditDecision::Info,
    )
    .resource("test", i)
    .context(json!({"i": i, "nested": {"b": 1, "a": [1.5, "x"]}}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_appends_from_sixteen_tasks_form_one_chain() {
    let db = TestDatabase::create().await;
    let writer = AuditWriter::spawn(db.store.clone());
    let tenant = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("globex").unwrap();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let writer = writer.clone();
        let tenant = if task % 4 == 3 {
            other.clone()
        } else {
            tenant.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..63 {
                let e = writer.append(entry(&tenant, task * 100 + i)).await.unwrap();
                seqs.push(e.seq);
            }
            seqs
        }));
    }
    // 16 * 63 = 1008 appends; plus direct in-transaction appends racing the writer.
    let mut direct = Vec::new();
    for i in 0..8 {
        let store = db.store.clone();
        let tenant = tenant.clone();
        direct.push(tokio::spawn(async move {
            let mut tx = store.pool().begin().await.unwrap();
            carapulse_core::audit::append_in_tx(&mut tx, entry(&tenant, 9000 + i))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for d in direct {
        d.await.unwrap();
    }

    let acme = verify_chain(&db.store, &tenant).await.unwrap();
    let globex = verify_chain(&db.store, &other).await.unwrap();
    assert!(acme.ok, "{acme:?}");
    assert!(globex.ok, "{globex:?}");
    assert_eq!(acme.events_checked, 12 * 63 + 8);
    assert_eq!(globex.events_checked, 4 * 63);
    assert_eq!(acme.head_seq, acme.events_checked);

    // An attacker with table access edits an event (bypassing the append-only trigger).
    let mut conn = db.store.pool().acquire().await.unwrap();
    let refused =
        sqlx::query("UPDATE audit_events SET action = 'x' WHERE tenant_id = 'acme' AND seq = 5")
            .execute(&mut *conn)
            .await;
    assert!(
        refused.is_err(),
        "the append-only trigger must refuse updates"
    );
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_events SET action = 'tampered' WHERE tenant_id = 'acme' AND seq = 500",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let broken = verify_chain(&db.store, &tenant).await.unwrap();
    assert!(!broken.ok);
    let first = broken.first_break.clone().unwrap();
    assert_eq!(first.seq, 500, "{broken:?}");
    assert!(first.reason.contains("edited"), "{first:?}");
    assert_eq!(broken.events_checked, 499);
    // The other tenant's chain is untouched.
    assert!(verify_chain(&db.store, &other).await.unwrap().ok);

    // Deleting an event in the middle of globex's chain is also found.
    sqlx::query("DELETE FROM audit_events WHERE tenant_id = 'globex' AND seq = 7")
        .execute(&mut *conn)
        .await
        .unwrap();
    let gap = verify_chain(&db.store, &other).await.unwrap();
    assert_eq!(gap.first_break.unwrap().seq, 7);
    drop(conn);
    db.drop_now().await;
}

#[tokio::test]
async fn deleting_the_newest_events_is_detected() {
    let db = TestDatabase::create().await;
    let writer = AuditWriter::spawn(db.store.clone());
    let tenant = TenantId::parse("t").unwrap();
    for i in 0..5 {
        writer.append(entry(&tenant, i)).await.unwrap();
    }
    assert!(verify_chain(&db.store, &tenant).await.unwrap().ok);
    let mut conn = db.store.pool().acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE tenant_id = 't' AND seq = 5")
        .execute(&mut *conn)
        .await
        .unwrap();
    let report = verify_chain(&db.store, &tenant).await.unwrap();
    assert!(!report.ok);
    assert!(report.first_break.unwrap().reason.contains("deleted"));
    drop(conn);
    db.drop_now().await;
}

/// The review's finding: one entry Postgres cannot store made the whole batch (any tenant's
/// entries) disappear. Entries with NUL anywhere are now stored (NUL replaced, hash over what is
/// stored), and no entry is lost when many arrive in one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poisoned_entry_costs_no_other_entry_its_event() {
    let db = TestDatabase::create().await;
    let writer = AuditWriter::spawn(db.store.clone());
    let tenant = TenantId::parse("acme").unwrap();
    let mut tasks = Vec::new();
    for i in 0..150 {
        let writer = writer.clone();
        let tenant = tenant.clone();
        tasks.push(tokio::spawn(async move {
            let mut e = entry(&tenant, i);
            if i % 10 == 0 {
                e = e
                    .reason(format!("nul \u{0} in reason {i}"))
                    .context(json!({"k\u{0}": "v\u{0}", "list": ["\u{0}"]}));
                e.actor.id = format!("actor\u{0}{i}");
            }
            writer.append(e).await
        }));
    }
    for t in tasks {
        let event = t.await.unwrap().expect("every entry is stored");
        assert!(!event.actor.to_string().contains('\u{0}'));
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant_id = 'acme'")
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert_eq!(n, 150);
    let report = verify_chain(&db.store, &tenant).await.unwrap();
    assert!(report.ok, "{report:?}");
    db.drop_now().await;
}

/// Events appended "soon" are committed in few transactions (they linger for each other),
/// each caller hears the outcome, a flush waits for all of them, and they chain like any
/// other: interleaved with waited-for appends, the chain verifies and every event is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_soon_are_batched_flushed_and_chained() {
    let db = TestDatabase::create().await;
    let writer = AuditWriter::spawn(db.store.clone());
    let tenant = TenantId::parse("soon").unwrap();
    let committed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..200 {
        let counter = committed.clone();
        let done: carapulse_core::audit::SoonDone = Box::new(move |ok| {
            if ok {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        assert!(writer.append_soon(entry(&tenant, i), done).is_ok());
        if i % 50 == 0 {
            writer.append(entry(&tenant, 1_000 + i)).await.unwrap();
        }
    }
    writer.flush_soon().await;
    assert_eq!(committed.load(std::sync::atomic::Ordering::SeqCst), 200);
    let (events, transactions): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT xmin::text) FROM audit_events WHERE tenant_id = 'soon'",
    )
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!(events, 204);
    // 200 lingering events and 4 waited-for ones: far fewer transactions than events.
    assert!(
        transactions <= 40,
        "{transactions} transactions for {events} events"
    );
    let report = verify_chain(&db.store, &tenant).await.unwrap();
    assert!(report.ok, "{report:?}");
    db.drop_now().await;
}
