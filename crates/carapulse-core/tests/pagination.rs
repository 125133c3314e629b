//! Keyset pagination against a real Postgres: cursor pages never skip or repeat a row while
//! other writers insert, cursor pages and one big page agree, totals come only on request, and a
//! cursor works only on the list that handed it out.

use std::collections::HashSet;

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry, AuditWriter};
use carapulse_core::model::{PlanId, TenantId};
use carapulse_core::store::{AuditFilter, CountMode, Page, Store, StoreError};
use carapulse_core::testing::{annotation_plan, TestDatabase};
use serde_json::json;

async fn create_plans(store: &Store, tenant: &TenantId, n: usize) -> Vec<PlanId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let entry = AuditEntry::new(
            tenant.clone(),
            AuditActor::system(),
            "plan.create",
            AuditDecision::Allow,
        );
        ids.push(
            store
                .create_plan(annotation_plan(tenant, json!({"text": "x"})), entry)
                .await
                .unwrap()
                .plan_id,
        );
    }
    ids
}

/// Every plan that existed before paging started is seen exactly once, and no plan twice, while
/// another task keeps inserting plans between (and during) page reads.
#[tokio::test]
async fn plan_pages_never_skip_or_repeat_under_concurrent_inserts() {
    let db = TestDatabase::create().await;
    let acme = TenantId::parse("acme").unwrap();
    let before: HashSet<PlanId> = create_plans(&db.store, &acme, 120)
        .await
        .into_iter()
        .collect();

    let writer = {
        let store = db.store.clone();
        let acme = acme.clone();
        tokio::spawn(async move { create_plans(&store, &acme, 80).await })
    };
    let mut seen = Vec::new();
    let mut page = Page::first(7);
    let mut pages = 0;
    loop {
        let got = db
            .store
            .list_plans(&acme, &Default::default(), page.clone())
            .await
            .unwrap();
        assert!(got.items.len() <= 7);
        assert!(got.total.is_none(), "no count unless asked for");
        seen.extend(got.items.iter().map(|p| p.plan_id));
        pages += 1;
        // Let the writer interleave with the reader.
        tokio::task::yield_now().await;
        match got.next_cursor {
            Some(cursor) => {
                page = Page::parse(Some(7), None, Some(&cursor), None).unwrap();
            }
            None => break,
        }
    }
    let during: HashSet<PlanId> = writer.await.unwrap().into_iter().collect();
    let unique: HashSet<PlanId> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no plan is repeated");
    assert!(
        before.is_subset(&unique),
        "every plan that existed before paging started is seen ({} missing)",
        before.difference(&unique).count()
    );
    assert!(unique.is_subset(&before.union(&during).copied().collect()));
    assert!(pages >= 120 / 7, "{pages} pages");

    let counted = db
        .store
        .list_plans(
            &acme,
            &Default::default(),
            Page::first(1).with_count(CountMode::Exact),
        )
        .await
        .unwrap();
    assert_eq!(counted.total, Some(200));
    assert!(!counted.total_is_estimate());
    db.drop_now().await;
}

/// Cursor pages of the audit log (an integer key) in order are exactly one big page; the
/// planner's estimate is flagged as one; a cursor from another list is refused.
#[tokio::test]
async fn cursor_pages_match_one_page_and_cursors_stay_on_their_list() {
    let db = TestDatabase::create().await;
    let acme = TenantId::parse("acme").unwrap();
    let writer = AuditWriter::spawn(db.store.clone());
    for i in 0..45 {
        writer
            .append(AuditEntry::new(
                acme.clone(),
                AuditActor::system(),
                if i % 2 == 0 {
                    "plan.create"
                } else {
                    "plan.execute"
                },
                AuditDecision::Allow,
            ))
            .await
            .unwrap();
    }
    let filter = AuditFilter {
        action: Some("plan.create".into()),
        ..Default::default()
    };
    let whole = db
        .store
        .list_audit_events(&acme, &filter, Page::first(200))
        .await
        .unwrap();
    assert_eq!(whole.items.len(), 23);
    assert!(!whole.has_more && whole.next_cursor.is_none());

    let mut paged = Vec::new();
    let mut page = Page::first(5);
    let mut last_cursor = None;
    loop {
        let got = db
            .store
            .list_audit_events(&acme, &filter, page.clone())
            .await
            .unwrap();
        paged.extend(got.items.iter().map(|e| e.seq));
        match got.next_cursor {
            Some(cursor) => {
                last_cursor = Some(cursor.clone());
                page = Page::parse(Some(5), None, Some(&cursor), None).unwrap();
            }
            None => break,
        }
    }
    let whole_seqs: Vec<i64> = whole.items.iter().map(|e| e.seq).collect();
    assert_eq!(paged, whole_seqs, "newest first, same rows, same order");

    // Offset pages agree with cursor pages within the offset cap.
    let second = db
        .store
        .list_audit_events(&acme, &filter, Page::new(Some(5), Some(5)))
        .await
        .unwrap();
    let seqs: Vec<i64> = second.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, whole_seqs[5..10]);
    assert_eq!(second.next_offset(), Some(10));

    // With fresh statistics the planner's estimate is near the truth (23 of 45 rows match); it
    // is only an estimate, so within a factor of two, but it must come from the plan, not be a
    // placeholder.
    sqlx::query("ANALYZE audit_events")
        .execute(db.store.pool())
        .await
        .unwrap();
    let estimate = db
        .store
        .list_audit_events(
            &acme,
            &filter,
            Page::first(5).with_count(CountMode::Estimate),
        )
        .await
        .unwrap();
    assert!(estimate.total_is_estimate());
    let estimated = estimate.total.expect("an estimate");
    assert!(
        (12..=46).contains(&estimated),
        "estimate {estimated} for 23 matching rows"
    );
    assert_eq!(estimate.items.len(), 5, "the page itself is exact");

    // A cursor handed out by the audit list means nothing to the plan list.
    let audit_cursor = last_cursor.expect("several pages");
    let err = db
        .store
        .list_plans(
            &acme,
            &Default::default(),
            Page::parse(Some(5), None, Some(&audit_cursor), None).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor(_)), "{err:?}");
    db.drop_now().await;
}
