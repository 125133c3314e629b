//! Operator memory as the planner reads it: the newest notes of a tenant (CRUD comes with the
//! `/v1/memory` API).

use crate::model::TenantId;
use crate::planner::prompt::MemoryNote;

use super::{Store, StoreError};

impl Store {
    /// The `limit` most recently updated notes of `tenant`.
    pub async fn planner_memory(
        &self,
        tenant: &TenantId,
        limit: i64,
    ) -> Result<Vec<MemoryNote>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT title, body FROM operator_memory WHERE tenant_id = $1 ORDER BY updated_at DESC LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(limit.clamp(0, 100))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(title, body)| MemoryNote { title, body })
            .collect())
    }
}
