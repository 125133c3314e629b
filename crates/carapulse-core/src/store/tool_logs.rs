//! Tool call log lines: appended by the orchestrator while a step runs, read back by the
//! gateway's `/v1/executions/{id}/logs` stream.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{ExecutionId, TenantId, ToolCallId};

use super::{Store, StoreError};

/// One line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ToolLogLine {
    pub execution_id: Uuid,
    pub tool_call_id: Uuid,
    pub tenant_id: String,
    pub seq: i64,
    pub stream: String,
    pub level: String,
    pub message: String,
    pub ts: DateTime<Utc>,
}

/// Filters of a log read.
#[derive(Debug, Clone, Default)]
pub struct ToolLogFilter {
    pub tool_call_id: Option<ToolCallId>,
    pub level: Option<String>,
}

impl ToolLogFilter {
    pub fn matches(&self, line: &ToolLogLine) -> bool {
        self.tool_call_id.is_none_or(|t| t.0 == line.tool_call_id)
            && self.level.as_deref().is_none_or(|l| l == line.level)
    }
}

impl Store {
    /// Appends lines (duplicates by `(tool_call_id, seq)` are ignored, so a retried copy is safe).
    pub async fn append_tool_logs(&self, lines: &[ToolLogLine]) -> Result<u64, StoreError> {
        if lines.is_empty() {
            return Ok(0);
        }
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT INTO tool_call_logs (tool_call_id, seq, execution_id, tenant_id, stream, level, message, ts) ",
        );
        qb.push_values(lines, |mut b, l| {
            b.push_bind(l.tool_call_id)
                .push_bind(l.seq)
                .push_bind(l.execution_id)
                .push_bind(&l.tenant_id)
                .push_bind(&l.stream)
                .push_bind(&l.level)
                .push_bind(&l.message)
                .push_bind(l.ts);
        });
        qb.push(" ON CONFLICT (tool_call_id, seq) DO NOTHING");
        Ok(qb.build().execute(self.pool()).await?.rows_affected())
    }

    /// Lines of an execution of `tenant`, oldest first (at most `limit`).
    pub async fn tool_logs(
        &self,
        tenant: &TenantId,
        execution: ExecutionId,
        filter: &ToolLogFilter,
        limit: i64,
    ) -> Result<Vec<ToolLogLine>, StoreError> {
        let rows: Vec<ToolLogLine> = sqlx::query_as(
            "SELECT execution_id, tool_call_id, tenant_id, seq, stream, level, message, ts FROM tool_call_logs \
             WHERE tenant_id = $1 AND execution_id = $2 AND ($3::uuid IS NULL OR tool_call_id = $3) \
             AND ($4::text IS NULL OR level = $4) ORDER BY ts, tool_call_id, seq LIMIT $5",
        )
        .bind(tenant.as_str())
        .bind(execution.0)
        .bind(filter.tool_call_id.map(|t| t.0))
        .bind(filter.level.as_deref())
        .bind(limit.clamp(1, 100_000))
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}
