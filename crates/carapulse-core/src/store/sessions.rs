//! Sessions: named collaboration scopes with members (and optional groups). When
//! `gateway.session_required` is on, plans and event streams are scoped to a session the actor
//! belongs to.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::model::TenantId;

use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
use super::{Page, Paged, Store, StoreError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionRecord {
    pub session_id: Uuid,
    pub name: String,
    pub group: Option<String>,
    pub owner_actor_id: Option<String>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionMember {
    pub member_id: String,
    pub role: String,
    pub added_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "s.session_id, s.name, g.name AS \"group\", s.owner_actor_id, s.metadata, s.created_at";
const FROM: &str = "FROM sessions s LEFT JOIN session_groups g ON g.group_id = s.group_id";

impl Store {
    /// Creates a session owned (and joined) by `owner`, in `group` (created when new); `audit`
    /// (given the new session as its resource) commits with it.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_session(
        &self,
        tenant: &TenantId,
        name: &str,
        group: Option<&str>,
        owner: &str,
        members: &[String],
        metadata: &Value,
        audit: AuditEntry,
    ) -> Result<SessionRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let group_id = match group {
            Some(g) => Some(group_id(&mut tx, tenant, g).await?),
            None => None,
        };
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO sessions (session_id, tenant_id, name, group_id, owner_actor_id, metadata) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(name)
        .bind(group_id)
        .bind(owner)
        .bind(metadata)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO session_members (session_id, member_id, role) VALUES ($1, $2, 'owner')",
        )
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        for m in members.iter().filter(|m| m.as_str() != owner) {
            sqlx::query("INSERT INTO session_members (session_id, member_id, role) VALUES ($1, $2, 'member') ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(m)
                .execute(&mut *tx)
                .await?;
        }
        append_in_tx(&mut tx, audit.resource("session", id)).await?;
        tx.commit().await?;
        self.get_session(tenant, id).await
    }

    pub async fn get_session(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<SessionRecord, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} {FROM} WHERE s.tenant_id = $1 AND s.session_id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Sessions of `tenant` that `member` belongs to (all of them when `member` is None).
    pub async fn list_sessions(
        &self,
        tenant: &TenantId,
        member: Option<&str>,
        group: Option<&str>,
        page: Page,
    ) -> Result<Paged<SessionRecord>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "sessions",
            columns: &[
                ("s.created_at", KeyKind::Time),
                ("s.session_id", KeyKind::Uuid),
            ],
            descending: true,
        };
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(qb, COLUMNS, &format!("{FROM} WHERE s.tenant_id = "), tenant);
            if let Some(member) = member {
                qb.push(
                    " AND EXISTS (SELECT 1 FROM session_members m \
                     WHERE m.session_id = s.session_id AND m.member_id = ",
                )
                .push_bind(member.to_owned())
                .push(")");
            }
            if let Some(group) = group {
                qb.push(" AND g.name = ").push_bind(group.to_owned());
            }
        };
        let map = |row: &sqlx::postgres::PgRow| Ok(sqlx::FromRow::from_row(row)?);
        fetch_page(
            self.pool(),
            page,
            &ORDER,
            query,
            map,
            |s: &SessionRecord| vec![KeyValue::Time(s.created_at), KeyValue::Uuid(s.session_id)],
        )
        .await
    }

    pub async fn session_members(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Vec<SessionMember>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT m.member_id, m.role, m.added_at FROM session_members m JOIN sessions s ON s.session_id = m.session_id \
             WHERE s.tenant_id = $1 AND m.session_id = $2 ORDER BY m.added_at, m.member_id",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The member's role in the session, if a member.
    pub async fn session_role(
        &self,
        tenant: &TenantId,
        id: Uuid,
        member: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT m.role FROM session_members m JOIN sessions s ON s.session_id = m.session_id \
             WHERE s.tenant_id = $1 AND m.session_id = $2 AND m.member_id = $3",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(member)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Adds (or re-roles) a member; `audit` commits with the change.
    pub async fn add_session_member(
        &self,
        tenant: &TenantId,
        id: Uuid,
        member: &str,
        role: &str,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        self.get_session(tenant, id).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO session_members (session_id, member_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (session_id, member_id) DO UPDATE SET role = EXCLUDED.role",
        )
        .bind(id)
        .bind(member)
        .bind(role)
        .execute(&mut *tx)
        .await?;
        append_in_tx(&mut tx, audit.resource("session", id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a member (never the owner); `audit` commits with the change.
    pub async fn remove_session_member(
        &self,
        tenant: &TenantId,
        id: Uuid,
        member: &str,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        self.get_session(tenant, id).await?;
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM session_members WHERE session_id = $1 AND member_id = $2 AND role <> 'owner'")
            .bind(id)
            .bind(member)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        append_in_tx(&mut tx, audit.resource("session", id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Renames, regroups or re-describes a session (fields left `None` keep their value); `audit`
    /// commits with the change.
    pub async fn update_session(
        &self,
        tenant: &TenantId,
        id: Uuid,
        change: &SessionChange<'_>,
        audit: AuditEntry,
    ) -> Result<SessionRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let group_id: Option<Option<Uuid>> = match change.group {
            None => None,
            Some(None) => Some(None),
            Some(Some(g)) => Some(Some(group_id(&mut tx, tenant, g).await?)),
        };
        let done = sqlx::query(
            "UPDATE sessions SET name = COALESCE($3, name), \
             group_id = CASE WHEN $4 THEN $5 ELSE group_id END, \
             metadata = COALESCE($6, metadata), updated_at = now() \
             WHERE tenant_id = $1 AND session_id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(change.name)
        .bind(group_id.is_some())
        .bind(group_id.flatten())
        .bind(change.metadata)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        append_in_tx(&mut tx, audit.resource("session", id)).await?;
        tx.commit().await?;
        self.get_session(tenant, id).await
    }

    /// Deletes a session and its memberships, refusing (`Conflict`) while one of its plans has an
    /// execution that has not ended; its plans stay, still naming it. `audit` commits with it.
    pub async fn delete_session(
        &self,
        tenant: &TenantId,
        id: Uuid,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // Locks the row: a plan started in the session meanwhile waits for this to commit.
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT session_id FROM sessions WHERE tenant_id = $1 AND session_id = $2 FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM executions e JOIN plans p ON p.plan_id = e.plan_id \
             WHERE p.tenant_id = $1 AND p.session_id = $2 \
             AND e.status IN ('pending', 'running')",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if active > 0 {
            return Err(StoreError::Conflict(format!(
                "{active} execution(s) of this session's plans have not ended"
            )));
        }
        sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND session_id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        append_in_tx(&mut tx, audit.resource("session", id)).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The id of `tenant`'s session group `name`, created when new.
async fn group_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &TenantId,
    name: &str,
) -> Result<Uuid, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO session_groups (group_id, tenant_id, name) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING group_id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_str())
    .bind(name)
    .fetch_one(&mut **tx)
    .await?)
}

/// What `PUT /v1/sessions/{id}` changes; `None` keeps the current value (`group: Some(None)`
/// takes the session out of its group).
#[derive(Debug, Default)]
pub struct SessionChange<'a> {
    pub name: Option<&'a str>,
    pub group: Option<Option<&'a str>>,
    pub metadata: Option<&'a Value>,
}
