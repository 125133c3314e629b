//! The tenant's library: operator memory notes, playbooks and runbooks. Playbooks and runbooks
//! are versioned — an update stores a new version, lists show the newest of each name — and
//! every query filters by tenant before paging.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::model::TenantId;

use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
use super::{Page, Paged, Store, StoreError};

/// An operator memory note.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MemoryRecord {
    pub memory_id: Uuid,
    pub title: String,
    pub body: String,
    pub tags: Value,
    pub owner_actor_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A versioned library document (playbook or runbook).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Versioned {
    pub id: Uuid,
    pub name: String,
    /// The service of a runbook (empty for playbooks).
    pub service: String,
    pub version: i32,
    pub tags: Value,
    pub spec: Value,
    pub body: Option<String>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which library table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    Playbooks,
    Runbooks,
}

impl Shelf {
    fn select(self) -> &'static str {
        match self {
            Self::Playbooks => "SELECT playbook_id AS id, name, '' AS service, version, tags, spec_json AS spec, NULL::text AS body, created_by, created_at FROM playbooks",
            Self::Runbooks => "SELECT runbook_id AS id, name, service, version, tags, COALESCE(spec_json, '{}'::jsonb) AS spec, body, created_by, created_at FROM runbooks",
        }
    }

    /// The audit resource type of a document on this shelf.
    fn resource(self) -> &'static str {
        match self {
            Self::Playbooks => "playbook",
            Self::Runbooks => "runbook",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Playbooks => "name",
            Self::Runbooks => "service, name",
        }
    }

    /// The list order of the shelf's latest documents (its `key`), for cursors.
    fn order(self) -> &'static Keyset {
        const PLAYBOOKS: Keyset = Keyset {
            list: "playbooks",
            columns: &[("name", KeyKind::Text)],
            descending: false,
        };
        const RUNBOOKS: Keyset = Keyset {
            list: "runbooks",
            columns: &[("service", KeyKind::Text), ("name", KeyKind::Text)],
            descending: false,
        };
        match self {
            Self::Playbooks => &PLAYBOOKS,
            Self::Runbooks => &RUNBOOKS,
        }
    }
}

impl Store {
    /// Stores a memory note; `audit` (given the note as its resource) commits with it.
    pub async fn create_memory(
        &self,
        tenant: &TenantId,
        title: &str,
        body: &str,
        tags: &Value,
        owner: &str,
        audit: AuditEntry,
    ) -> Result<MemoryRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let note: MemoryRecord = sqlx::query_as(
            "INSERT INTO operator_memory (memory_id, tenant_id, title, body, tags, owner_actor_id) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING memory_id, title, body, tags, owner_actor_id, created_at, updated_at",
        )
        .bind(Uuid::now_v7())
        .bind(tenant.as_str())
        .bind(title)
        .bind(body)
        .bind(tags)
        .bind(owner)
        .fetch_one(&mut *tx)
        .await?;
        append_in_tx(&mut tx, audit.resource("memory", note.memory_id)).await?;
        tx.commit().await?;
        Ok(note)
    }

    pub async fn list_memory(
        &self,
        tenant: &TenantId,
        search: Option<&str>,
        tag: Option<&str>,
        page: Page,
    ) -> Result<Paged<MemoryRecord>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "memory",
            columns: &[("updated_at", KeyKind::Time), ("memory_id", KeyKind::Uuid)],
            descending: true,
        };
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(
                qb,
                "memory_id, title, body, tags, owner_actor_id, created_at, updated_at",
                "FROM operator_memory WHERE tenant_id = ",
                tenant,
            );
            if let Some(search) = search {
                qb.push(" AND (title ILIKE '%' || ")
                    .push_bind(search.to_owned())
                    .push(" || '%' OR body ILIKE '%' || ")
                    .push_bind(search.to_owned())
                    .push(" || '%')");
            }
            if let Some(tag) = tag {
                qb.push(" AND tags ? ").push_bind(tag.to_owned());
            }
        };
        let map = |row: &sqlx::postgres::PgRow| Ok(sqlx::FromRow::from_row(row)?);
        fetch_page(self.pool(), page, &ORDER, query, map, |m: &MemoryRecord| {
            vec![KeyValue::Time(m.updated_at), KeyValue::Uuid(m.memory_id)]
        })
        .await
    }

    pub async fn get_memory(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<MemoryRecord, StoreError> {
        sqlx::query_as(
            "SELECT memory_id, title, body, tags, owner_actor_id, created_at, updated_at FROM operator_memory WHERE tenant_id = $1 AND memory_id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Rewrites a memory note; `audit` commits with the change.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_memory(
        &self,
        tenant: &TenantId,
        id: Uuid,
        title: &str,
        body: &str,
        tags: &Value,
        audit: AuditEntry,
    ) -> Result<MemoryRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let note: MemoryRecord = sqlx::query_as(
            "UPDATE operator_memory SET title = $3, body = $4, tags = $5, updated_at = now() WHERE tenant_id = $1 AND memory_id = $2 \
             RETURNING memory_id, title, body, tags, owner_actor_id, created_at, updated_at",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(title)
        .bind(body)
        .bind(tags)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        append_in_tx(&mut tx, audit.resource("memory", id)).await?;
        tx.commit().await?;
        Ok(note)
    }

    /// Deletes a memory note; `audit` commits with the change.
    pub async fn delete_memory(
        &self,
        tenant: &TenantId,
        id: Uuid,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let done =
            sqlx::query("DELETE FROM operator_memory WHERE tenant_id = $1 AND memory_id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        append_in_tx(&mut tx, audit.resource("memory", id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new version of `name` (and `service` for runbooks): version = newest + 1.
    /// `audit` commits with it, given the version as its resource and `{name, service, version}`
    /// as its context.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_version(
        &self,
        shelf: Shelf,
        tenant: &TenantId,
        service: &str,
        name: &str,
        tags: &Value,
        spec: &Value,
        body: Option<&str>,
        created_by: &str,
        audit: AuditEntry,
    ) -> Result<Versioned, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Serialise versions of one document: a transaction-level advisory lock on its key.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("{shelf:?}:{tenant}:{service}:{name}"))
            .execute(&mut *tx)
            .await?;
        let id = Uuid::now_v7();
        match shelf {
            Shelf::Playbooks => {
                sqlx::query(
                    "INSERT INTO playbooks (playbook_id, tenant_id, name, version, tags, spec_json, created_by) \
                     SELECT $1, $2, $3, COALESCE(max(version), 0) + 1, $4, $5, $6 FROM playbooks WHERE tenant_id = $2 AND name = $3",
                )
                .bind(id)
                .bind(tenant.as_str())
                .bind(name)
                .bind(tags)
                .bind(spec)
                .bind(created_by)
                .execute(&mut *tx)
                .await?;
            }
            Shelf::Runbooks => {
                sqlx::query(
                    "INSERT INTO runbooks (runbook_id, tenant_id, service, name, version, tags, body, spec_json, created_by) \
                     SELECT $1, $2, $3, $4, COALESCE(max(version), 0) + 1, $5, $6, $7, $8 FROM runbooks \
                     WHERE tenant_id = $2 AND service = $3 AND name = $4",
                )
                .bind(id)
                .bind(tenant.as_str())
                .bind(service)
                .bind(name)
                .bind(tags)
                .bind(body)
                .bind(spec)
                .bind(created_by)
                .execute(&mut *tx)
                .await?;
            }
        }
        let doc: Versioned = sqlx::query_as(&format!(
            "SELECT * FROM ({} WHERE tenant_id = $1) d WHERE id = $2",
            shelf.select()
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let audit = audit.resource(shelf.resource(), id).context(
            serde_json::json!({"name": doc.name, "service": doc.service, "version": doc.version}),
        );
        append_in_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(doc)
    }

    pub async fn get_version(
        &self,
        shelf: Shelf,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Versioned, StoreError> {
        let id_col = if shelf == Shelf::Playbooks {
            "playbook_id"
        } else {
            "runbook_id"
        };
        sqlx::query_as(&format!(
            "{} WHERE tenant_id = $1 AND {id_col} = $2",
            shelf.select()
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Newest version of each document, filtered by name / service / tag.
    pub async fn list_latest(
        &self,
        shelf: Shelf,
        tenant: &TenantId,
        name: Option<&str>,
        service: Option<&str>,
        tag: Option<&str>,
        page: Page,
    ) -> Result<Paged<Versioned>, StoreError> {
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            let from = format!(
                "FROM (SELECT DISTINCT ON ({key}) * FROM ({inner} WHERE tenant_id = ",
                key = shelf.key(),
                inner = shelf.select()
            );
            select.head(qb, "*", &from, tenant);
            qb.push(format!(
                ") d ORDER BY {key}, version DESC) latest WHERE true",
                key = shelf.key()
            ));
            if let Some(name) = name {
                qb.push(" AND name = ").push_bind(name.to_owned());
            }
            if let Some(service) = service {
                qb.push(" AND service = ").push_bind(service.to_owned());
            }
            if let Some(tag) = tag {
                qb.push(" AND tags ? ").push_bind(tag.to_owned());
            }
        };
        let map = |row: &sqlx::postgres::PgRow| Ok(sqlx::FromRow::from_row(row)?);
        fetch_page(
            self.pool(),
            page,
            shelf.order(),
            query,
            map,
            |v: &Versioned| match shelf {
                Shelf::Playbooks => vec![KeyValue::Text(v.name.clone())],
                Shelf::Runbooks => vec![
                    KeyValue::Text(v.service.clone()),
                    KeyValue::Text(v.name.clone()),
                ],
            },
        )
        .await
    }

    /// Every version of the document `id` belongs to, newest first.
    pub async fn versions_of(
        &self,
        shelf: Shelf,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Vec<Versioned>, StoreError> {
        let doc = self.get_version(shelf, tenant, id).await?;
        // Through a subquery, `service` exists for both shelves ('' for playbooks).
        let sql = format!(
            "SELECT * FROM ({} WHERE tenant_id = $1) d WHERE name = $2 AND service = $3 ORDER BY version DESC",
            shelf.select()
        );
        Ok(sqlx::query_as(&sql)
            .bind(tenant.as_str())
            .bind(&doc.name)
            .bind(&doc.service)
            .fetch_all(self.pool())
            .await?)
    }

    /// Deletes one version; `audit` commits with the change.
    pub async fn delete_version(
        &self,
        shelf: Shelf,
        tenant: &TenantId,
        id: Uuid,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let sql = match shelf {
            Shelf::Playbooks => "DELETE FROM playbooks WHERE tenant_id = $1 AND playbook_id = $2",
            Shelf::Runbooks => "DELETE FROM runbooks WHERE tenant_id = $1 AND runbook_id = $2",
        };
        let done = sqlx::query(sql)
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        append_in_tx(&mut tx, audit.resource(shelf.resource(), id)).await?;
        tx.commit().await?;
        Ok(())
    }
}
