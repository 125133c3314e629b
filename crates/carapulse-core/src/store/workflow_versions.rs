//! Workflow versions (`workflow_catalog`): a team's presets of a catalogue workflow — input
//! defaults and a description — numbered per tenant and name. Starting a workflow at a version
//! fills the input fields the caller left out; the steps still come from the reviewed template.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::model::TenantId;

use super::{Store, StoreError};

/// One stored version.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WorkflowVersion {
    pub workflow_id: Uuid,
    pub name: String,
    pub version: i32,
    /// `{defaults, description?, created_by}`.
    pub spec: Value,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "workflow_id, name, version, spec_json AS spec, created_at";

impl Store {
    /// Stores the next version of workflow `name` for `tenant`; `audit` commits with it.
    pub async fn add_workflow_version(
        &self,
        tenant: &TenantId,
        name: &str,
        spec: &Value,
        audit: AuditEntry,
    ) -> Result<WorkflowVersion, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Versions of one workflow are numbered one at a time.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("carapulse:workflow-version:{tenant}:{name}"))
            .execute(&mut *tx)
            .await?;
        let version: WorkflowVersion = sqlx::query_as(&format!(
            "INSERT INTO workflow_catalog (workflow_id, tenant_id, name, version, spec_json) \
             SELECT $1, $2, $3, COALESCE(max(version), 0) + 1, $4 FROM workflow_catalog \
             WHERE tenant_id = $2 AND name = $3 RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(tenant.as_str())
        .bind(name)
        .bind(spec)
        .fetch_one(&mut *tx)
        .await?;
        append_in_tx(&mut tx, audit.resource("workflow", version.workflow_id)).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// The newest `limit` versions of workflow `name` for `tenant`, newest first.
    pub async fn workflow_versions(
        &self,
        tenant: &TenantId,
        name: &str,
        limit: i64,
    ) -> Result<Vec<WorkflowVersion>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM workflow_catalog WHERE tenant_id = $1 AND name = $2 \
             ORDER BY version DESC LIMIT $3"
        ))
        .bind(tenant.as_str())
        .bind(name)
        .bind(limit.clamp(1, 200))
        .fetch_all(self.pool())
        .await?)
    }

    /// One version of workflow `name` for `tenant`.
    pub async fn workflow_version(
        &self,
        tenant: &TenantId,
        name: &str,
        version: i32,
    ) -> Result<WorkflowVersion, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM workflow_catalog WHERE tenant_id = $1 AND name = $2 AND version = $3"
        ))
        .bind(tenant.as_str())
        .bind(name)
        .bind(version)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)
    }
}
