//! Planning records: what planning saw for each plan revision (see migration 0020), written
//! in the transaction that stores the plan or its revision, read by incident replay.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::model::{PlanId, TenantId};

use super::{Store, StoreError};

/// Most bytes of one record; over it the model request's text is dropped first (and said so).
pub const MAX_RECORD_BYTES: usize = 512 * 1024;

/// Caps `record` at [`MAX_RECORD_BYTES`]: the model request, then the model answer, are
/// replaced by a note of their size. Returns the record as stored.
pub fn capped(mut record: Value) -> Value {
    for field in ["llm_request", "llm_response"] {
        let size = serde_json::to_vec(&record).map(|b| b.len()).unwrap_or(0);
        if size <= MAX_RECORD_BYTES {
            break;
        }
        if let Some(map) = record.as_object_mut() {
            if let Some(dropped) = map.get(field).filter(|v| !v.is_null()) {
                let bytes = serde_json::to_vec(dropped).map(|b| b.len()).unwrap_or(0);
                map.insert(
                    field.to_owned(),
                    serde_json::json!({"dropped": true, "bytes": bytes, "reason": "record over 512 KiB"}),
                );
            }
        }
    }
    record
}

/// The alert event a record's plan was born from (`alert.alert_id`), indexed for replays.
fn alert_of(record: &Value) -> Option<Uuid> {
    record["alert"]["alert_id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// Inserts the records of `rows` (plan, revision, tenant, record) in `tx`.
pub(crate) async fn insert_planning_records(
    tx: &mut sqlx::PgConnection,
    rows: &[(Uuid, i32, &str, &Value)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut qb = sqlx::QueryBuilder::new(
        "INSERT INTO planning_records (record_id, plan_id, revision, tenant_id, record_json, alert_id) ",
    );
    qb.push_values(rows, |mut b, (plan, revision, tenant, record)| {
        b.push_bind(Uuid::now_v7())
            .push_bind(*plan)
            .push_bind(*revision)
            .push_bind(*tenant)
            .push_bind(*record)
            .push_bind(alert_of(record));
    });
    qb.build().execute(&mut *tx).await?;
    Ok(())
}

impl Store {
    /// The planning record of `plan_id`'s `revision` in `tenant`, with when it was written.
    pub async fn planning_record(
        &self,
        tenant: &TenantId,
        plan_id: PlanId,
        revision: i32,
    ) -> Result<Option<(DateTime<Utc>, Value)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT recorded_at, record_json FROM planning_records \
             WHERE tenant_id = $1 AND plan_id = $2 AND revision = $3",
        )
        .bind(tenant.as_str())
        .bind(plan_id.0)
        .bind(revision)
        .fetch_optional(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_oversized_record_drops_the_model_request_first_and_says_so() {
        let small = json!({"version": 1, "llm_request": {"user": "short"}, "llm_response": "ok"});
        assert_eq!(capped(small.clone()), small);
        let big = json!({
            "version": 1,
            "llm_request": {"user": "x".repeat(MAX_RECORD_BYTES)},
            "llm_response": "the answer",
            "policy": {"input": {"action": {"name": "plan.create"}}},
        });
        let kept = capped(big);
        assert_eq!(kept["llm_request"]["dropped"], true);
        assert!(kept["llm_request"]["bytes"].as_u64().unwrap() > MAX_RECORD_BYTES as u64);
        assert_eq!(
            kept["llm_response"], "the answer",
            "only what was needed goes"
        );
        assert_eq!(kept["policy"]["input"]["action"]["name"], "plan.create");
        let both = json!({
            "llm_request": {"user": "x".repeat(MAX_RECORD_BYTES)},
            "llm_response": "y".repeat(MAX_RECORD_BYTES),
        });
        let kept = capped(both);
        assert_eq!(kept["llm_response"]["dropped"], true);
        assert!(serde_json::to_vec(&kept).unwrap().len() <= MAX_RECORD_BYTES);
    }
}
