//! SQL for the audit chain: head locking, batch insert, ordered reads and filtered queries.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::model::{AuditEventId, TenantId};

use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
use super::{Page, Paged, Store, StoreError};

/// Filters of `GET /v1/audit/events`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub decision: Option<String>,
    pub resource_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    event_id: Uuid,
    tenant_id: String,
    seq: i64,
    occurred_at: DateTime<Utc>,
    actor_json: Value,
    action: String,
    decision: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    reason: Option<String>,
    request_id: Option<String>,
    context_json: Value,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        Self {
            event_id: AuditEventId(r.event_id),
            tenant_id: r.tenant_id,
            seq: r.seq,
            occurred_at: r.occurred_at,
            actor: r.actor_json,
            action: r.action,
            decision: r.decision,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            reason: r.reason,
            request_id: r.request_id,
            context: r.context_json,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

const AUDIT_COLUMNS: &str = "event_id, tenant_id, seq, occurred_at, actor_json, action, decision, \
     resource_type, resource_id, reason, request_id, context_json, prev_hash, hash";

/// Locks (creating if needed) the chain heads of `tenants`, in tenant order so concurrent
/// appenders cannot deadlock; returns each tenant's `(last_seq, last_hash)`. One round trip
/// whatever the number of tenants: the no-op update on conflict locks an existing head (like
/// FOR UPDATE) and RETURNING reads it; a tenant's first append creates its head.
pub(crate) async fn lock_audit_heads(
    conn: &mut PgConnection,
    tenants: &[String],
    genesis: &str,
) -> Result<std::collections::HashMap<String, (i64, String)>, StoreError> {
    let mut sorted = tenants.to_vec();
    sorted.sort();
    sorted.dedup();
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "INSERT INTO audit_chain_heads (tenant_id, last_seq, last_hash) \
         SELECT t, 0, $2 FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n \
         ON CONFLICT (tenant_id) DO UPDATE SET last_seq = audit_chain_heads.last_seq \
         RETURNING tenant_id, last_seq, last_hash",
    )
    .bind(&sorted)
    .bind(genesis)
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() != sorted.len() {
        return Err(StoreError::Corrupt(format!(
            "locked {} audit chain heads for {} tenants",
            rows.len(),
            sorted.len()
        )));
    }
    Ok(rows
        .into_iter()
        .map(|(tenant, seq, hash)| (tenant, (seq, hash)))
        .collect())
}

/// Inserts chained events with one statement.
pub(crate) async fn insert_audit_events(
    conn: &mut PgConnection,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new(format!("INSERT INTO audit_events ({AUDIT_COLUMNS}) "));
    qb.push_values(events, |mut b, e| {
        b.push_bind(e.event_id.0)
            .push_bind(&e.tenant_id)
            .push_bind(e.seq)
            .push_bind(e.occurred_at)
            .push_bind(&e.actor)
            .push_bind(&e.action)
            .push_bind(&e.decision)
            .push_bind(&e.resource_type)
            .push_bind(&e.resource_id)
            .push_bind(&e.reason)
            .push_bind(&e.request_id)
            .push_bind(&e.context)
            .push_bind(&e.prev_hash)
            .push_bind(&e.hash);
    });
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

pub(crate) async fn update_audit_heads(
    conn: &mut PgConnection,
    heads: &[(String, i64, String)],
) -> Result<(), StoreError> {
    let tenants: Vec<&str> = heads.iter().map(|(t, _, _)| t.as_str()).collect();
    let seqs: Vec<i64> = heads.iter().map(|(_, s, _)| *s).collect();
    let hashes: Vec<&str> = heads.iter().map(|(_, _, h)| h.as_str()).collect();
    sqlx::query(
        "UPDATE audit_chain_heads h SET last_seq = u.seq, last_hash = u.hash, updated_at = now() \
         FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(tenant, seq, hash) \
         WHERE h.tenant_id = u.tenant",
    )
    .bind(&tenants)
    .bind(&seqs)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// The tenant's chain head, if it has any events.
    pub async fn audit_head(&self, tenant: &TenantId) -> Result<Option<(i64, String)>, StoreError> {
        Ok(
            sqlx::query_as(
                "SELECT last_seq, last_hash FROM audit_chain_heads WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .fetch_optional(self.pool())
            .await?,
        )
    }

    /// Events with `seq > after`, in order, at most `limit`.
    pub async fn audit_events_after(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(tenant.as_str())
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Newest first, filtered, one page.
    pub async fn list_audit_events(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<Paged<AuditEvent>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "audit",
            columns: &[("seq", KeyKind::Int)],
            descending: true,
        };
        let query = |qb: &mut QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(
                qb,
                AUDIT_COLUMNS,
                "FROM audit_events WHERE tenant_id = ",
                tenant,
            );
            push_audit_filters(qb, filter);
        };
        let map = |row: &sqlx::postgres::PgRow| {
            use sqlx::FromRow;
            Ok(AuditRow::from_row(row)?.into())
        };
        fetch_page(self.pool(), page, &ORDER, query, map, |e: &AuditEvent| {
            vec![KeyValue::Int(e.seq)]
        })
        .await
    }

    /// Oldest first, filtered, events with `after_seq < seq <= up_to_seq`, for exports streamed
    /// page by page.
    pub async fn export_audit_events(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        after_seq: i64,
        up_to_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE tenant_id = "
        ));
        qb.push_bind(tenant.as_str());
        push_audit_filters(&mut qb, filter);
        qb.push(" AND seq > ")
            .push_bind(after_seq)
            .push(" AND seq <= ")
            .push_bind(up_to_seq)
            .push(" ORDER BY seq LIMIT ")
            .push_bind(limit);
        let rows: Vec<AuditRow> = qb.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

fn push_audit_filters(qb: &mut QueryBuilder<'_, sqlx::Postgres>, f: &AuditFilter) {
    if let Some(from) = f.from {
        qb.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        qb.push(" AND occurred_at <= ").push_bind(to);
    }
    if let Some(actor) = &f.actor_id {
        qb.push(" AND actor_json->>'id' = ")
            .push_bind(actor.clone());
    }
    if let Some(action) = &f.action {
        qb.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(decision) = &f.decision {
        qb.push(" AND decision = ").push_bind(decision.clone());
    }
    if let Some(resource) = &f.resource_id {
        qb.push(" AND resource_id = ").push_bind(resource.clone());
    }
}

impl Store {
    /// Indexes a published checkpoint (the checkpoint itself lives in the sink; this row is for
    /// listing and is not trusted by verification).
    pub async fn record_audit_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: &crate::audit::Checkpoint,
        sink_ref: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (checkpoint_id, tenant_id, seq, hash, signature, sink_ref, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(tenant.as_str())
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(&checkpoint.signature)
        .bind(sink_ref)
        .bind(checkpoint.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Checkpoints of `tenant`, newest first.
    pub async fn audit_checkpoints(
        &self,
        tenant: &TenantId,
        limit: i64,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows: Vec<(i64, String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT seq, hash, sink_ref, created_at FROM audit_checkpoints WHERE tenant_id = $1 \
             ORDER BY seq DESC, created_at DESC LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(limit.clamp(1, 200))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, hash, sink, at)| {
                serde_json::json!({"seq": seq, "hash": hash, "sink_ref": sink, "created_at": at})
            })
            .collect())
    }

    /// Tenants with at least one audit event (for periodic checkpoints).
    pub async fn audit_tenants(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM audit_chain_heads ORDER BY tenant_id")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// The stored hash of `tenant`'s event `seq`, if it exists.
    pub async fn audit_event_hash(
        &self,
        tenant: &TenantId,
        seq: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM audit_events WHERE tenant_id = $1 AND seq = $2")
                .bind(tenant.as_str())
                .bind(seq)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
