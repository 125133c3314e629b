//! Incoming alerts and webhook events (`alert_events`), the event gates that keep an alert storm
//! from becoming a plan storm (`event_gates`), and the playbook rules the planner matches alerts
//! against.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::model::TenantId;
use crate::planner::rules::PlaybookRule;

use super::{Store, StoreError};

/// How an event gate counts and suppresses.
#[derive(Debug, Clone, Copy)]
pub struct GateRule {
    /// Occurrences older than this start a new count (zero: never reset).
    pub window: Duration,
    /// After a pass, the key is suppressed this long.
    pub backoff: Duration,
    /// Occurrences needed within the window before the first pass.
    pub min_count: i32,
}

/// A key's count as the gate keeps it (`event_gates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateState {
    pub first_seen: DateTime<Utc>,
    pub count: i32,
    pub suppressed_until: Option<DateTime<Utc>>,
}

impl GateRule {
    /// One occurrence of a key at `now`, given what the gate knew of it (`None`: never seen):
    /// whether it passes, and what the gate knows after. It passes when at least `min_count`
    /// occurrences fell within `window` and the key is not suppressed; a pass suppresses the
    /// key for `backoff`. The event loop (through `event_gates`) and incident replay (in
    /// memory) both count with this.
    pub fn count(&self, known: Option<GateState>, now: DateTime<Utc>) -> (bool, GateState) {
        let (first_seen, count, suppressed) = match known {
            Some(k) => {
                let expired = self.window > Duration::zero() && now - k.first_seen > self.window;
                if expired {
                    (now, 1, k.suppressed_until)
                } else {
                    (k.first_seen, k.count.saturating_add(1), k.suppressed_until)
                }
            }
            None => (now, 1, None),
        };
        let suppressed_now = suppressed.is_some_and(|u| now < u);
        let pass = !suppressed_now && count >= self.min_count.max(1);
        let suppressed_until = if pass && self.backoff > Duration::zero() {
            Some(now + self.backoff)
        } else {
            suppressed.filter(|u| now < *u)
        };
        (
            pass,
            GateState {
                first_seen,
                count,
                suppressed_until,
            },
        )
    }
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Never seen before.
    New,
    /// Seen, and its status changed (firing -> resolved, or back).
    Changed,
    /// Seen with the same status: nothing new.
    Duplicate,
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewAlertEvent<'a> {
    pub tenant: &'a TenantId,
    pub source: &'a str,
    pub fingerprint: &'a str,
    pub status: &'a str,
    pub started_at: Option<DateTime<Utc>>,
    pub payload: &'a Value,
}

impl Store {
    /// Stores an event, deduplicated by (tenant, source, fingerprint) and status.
    pub async fn upsert_alert_event(
        &self,
        e: &NewAlertEvent<'_>,
    ) -> Result<(Uuid, Stored), StoreError> {
        let mut conn = self.pool().acquire().await?;
        upsert_alert(&mut conn, e).await
    }

    /// Stores one delivery's events and its receipt `audit` in one transaction: either every
    /// event and the audit event commit, or nothing does. With a `delivery` key
    /// (`(source, key)`: the sender's delivery id or signature) a delivery already recorded
    /// stores nothing and answers `None` (a replay); the key is recorded in the same transaction,
    /// so a delivery that failed to store can be retried. The audit context gains the counts
    /// (`new`, `changed`, `duplicates`).
    pub async fn record_alert_delivery(
        &self,
        delivery: Option<(&str, &str)>,
        events: &[NewAlertEvent<'_>],
        audit: AuditEntry,
    ) -> Result<Option<Vec<(Uuid, Stored)>>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if let Some((source, key)) = delivery {
            let inserted: Option<(String,)> = sqlx::query_as(
                "INSERT INTO webhook_deliveries (source, delivery_key) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING RETURNING source",
            )
            .bind(source)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                return Ok(None);
            }
        }
        let outcomes = upsert_alerts(&mut tx, events).await?;
        let count = |kind: Stored| outcomes.iter().filter(|(_, s)| *s == kind).count();
        let mut context = match audit.context.clone() {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        context.insert("new".into(), count(Stored::New).into());
        context.insert("changed".into(), count(Stored::Changed).into());
        context.insert("duplicates".into(), count(Stored::Duplicate).into());
        append_in_tx(&mut tx, audit.context(Value::Object(context))).await?;
        tx.commit().await?;
        Ok(Some(outcomes))
    }

    /// One gate check: counts the occurrence of `key` and says whether it may pass. It passes
    /// when at least `min_count` occurrences fell within `window` and `key` is not suppressed;
    /// a pass suppresses `key` for `backoff`. Atomic per key (row lock).
    pub async fn pass_event_gate(
        &self,
        tenant: &TenantId,
        source: &str,
        key: &str,
        now: DateTime<Utc>,
        rule: GateRule,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row: Option<(DateTime<Utc>, i32, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT first_seen, count, suppressed_until FROM event_gates \
             WHERE tenant_id = $1 AND source = $2 AND fingerprint = $3 FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(source)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let seen = rule.count(
            row.map(|(first_seen, count, suppressed_until)| GateState {
                first_seen,
                count,
                suppressed_until,
            }),
            now,
        );
        let (
            pass,
            GateState {
                first_seen,
                count,
                suppressed_until: until,
            },
        ) = seen;
        sqlx::query(
            "INSERT INTO event_gates (tenant_id, source, fingerprint, first_seen, last_seen, count, suppressed_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, source, fingerprint) DO UPDATE SET \
             first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen, count = EXCLUDED.count, \
             suppressed_until = EXCLUDED.suppressed_until",
        )
        .bind(tenant.as_str())
        .bind(source)
        .bind(key)
        .bind(first_seen)
        .bind(now)
        .bind(count)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(pass)
    }

    /// Plans born from alerts for `service` since `since` (for the per-service rate gate).
    pub async fn alert_plans_since(
        &self,
        tenant: &TenantId,
        service: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM plans WHERE tenant_id = $1 AND trigger = 'alert' AND created_at >= $2 \
             AND meta_json->'alert'->>'service' = $3",
        )
        .bind(tenant.as_str())
        .bind(since)
        .bind(service)
        .fetch_one(self.pool())
        .await?;
        Ok(n)
    }

    /// Stored alert events of `tenant`, most recently updated first, optionally by `status`
    /// (`firing`, `resolved`) and `source`.
    pub async fn list_alerts(
        &self,
        tenant: &TenantId,
        status: Option<&str>,
        source: Option<&str>,
        page: super::Page,
    ) -> Result<super::Paged<AlertRecord>, StoreError> {
        use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
        const ORDER: Keyset = Keyset {
            list: "alerts",
            columns: &[("updated_at", KeyKind::Time), ("alert_id", KeyKind::Uuid)],
            descending: true,
        };
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(qb, "alert_id, source, fingerprint, status, started_at, updated_at, \
                     payload_json -> 'labels' AS labels, payload_json -> 'annotations' AS annotations", "FROM alert_events WHERE tenant_id = ", tenant);
            if let Some(status) = status {
                qb.push(" AND status = ").push_bind(status.to_owned());
            }
            if let Some(source) = source {
                qb.push(" AND source = ").push_bind(source.to_owned());
            }
        };
        let map = |row: &sqlx::postgres::PgRow| Ok(sqlx::FromRow::from_row(row)?);
        fetch_page(self.pool(), page, &ORDER, query, map, |a: &AlertRecord| {
            vec![KeyValue::Time(a.updated_at), KeyValue::Uuid(a.alert_id)]
        })
        .await
    }

    /// Firing alerts of `tenant` updated in the last `hours`, newest first (planner evidence).
    pub async fn recent_firing_alerts(
        &self,
        tenant: &TenantId,
        hours: i64,
        limit: i64,
    ) -> Result<Vec<Value>, StoreError> {
        let rows: Vec<(String, String, Value, DateTime<Utc>)> = sqlx::query_as(
            "SELECT source, fingerprint, payload_json, updated_at FROM alert_events WHERE tenant_id = $1 \
             AND status = 'firing' AND updated_at > now() - make_interval(hours => $2::int) \
             ORDER BY updated_at DESC LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(hours)
        .bind(limit.clamp(1, 100))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(source, fingerprint, payload, at)| {
                serde_json::json!({"source": source, "fingerprint": fingerprint, "updated_at": at,
                                   "labels": payload.get("labels"), "annotations": payload.get("annotations")})
            })
            .collect())
    }

    /// The newest version of each playbook of `tenant` whose spec is an alert rule.
    pub async fn playbook_rules(&self, tenant: &TenantId) -> Result<Vec<PlaybookRule>, StoreError> {
        let rows: Vec<(String, Value, Option<String>)> = sqlx::query_as(
            "SELECT DISTINCT ON (name) name, spec_json, created_by FROM playbooks WHERE tenant_id = $1 \
             ORDER BY name, version DESC",
        )
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, mut spec, author)| {
                if let Some(obj) = spec.as_object_mut() {
                    obj.entry("name").or_insert(Value::String(name));
                }
                let mut rule = serde_json::from_value::<PlaybookRule>(spec).ok()?;
                rule.author = author;
                Some(rule)
            })
            .collect())
    }
}

/// An alert as listed by `GET /v1/alerts`.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct AlertRecord {
    pub alert_id: uuid::Uuid,
    pub source: String,
    pub fingerprint: String,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub labels: Option<Value>,
    pub annotations: Option<Value>,
}

/// The dedup upsert of a whole delivery in one statement, outcomes in `events` order.
///
/// Why one statement: a row-per-alert upsert costs a round trip (two for duplicates) per alert;
/// this costs one per webhook. Rows are upserted in key order, so concurrent deliveries lock in
/// the same order and cannot deadlock. Within one delivery the last occurrence of a key wins
/// (its state is the newest) and earlier ones count as duplicates: one statement cannot touch a
/// row twice. A duplicate's id comes from the statement's snapshot, or, for a row another
/// delivery inserted after that snapshot, from a follow-up read.
async fn upsert_alerts(
    conn: &mut sqlx::PgConnection,
    events: &[NewAlertEvent<'_>],
) -> Result<Vec<(Uuid, Stored)>, StoreError> {
    use std::collections::HashMap;
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // The index of the last occurrence of each key.
    let mut last: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        last.insert((e.tenant.as_str(), e.source, e.fingerprint), i);
    }
    let mut winners: Vec<usize> = last.values().copied().collect();
    winners.sort_by_key(|&i| {
        let e = &events[i];
        (e.tenant.as_str(), e.source, e.fingerprint)
    });
    let pick = |f: &dyn Fn(&NewAlertEvent<'_>) -> String| -> Vec<String> {
        winners.iter().map(|&i| f(&events[i])).collect()
    };
    let ids: Vec<Uuid> = winners.iter().map(|_| Uuid::now_v7()).collect();
    let tenants = pick(&|e| e.tenant.to_string());
    let sources = pick(&|e| e.source.to_owned());
    let fingerprints = pick(&|e| e.fingerprint.to_owned());
    let statuses = pick(&|e| e.status.to_owned());
    let started: Vec<Option<DateTime<Utc>>> =
        winners.iter().map(|&i| events[i].started_at).collect();
    let payloads: Vec<sqlx::types::Json<&Value>> = winners
        .iter()
        .map(|&i| sqlx::types::Json(events[i].payload))
        .collect();
    let rows: Vec<(String, String, String, Option<Uuid>, String)> = sqlx::query_as(
        "WITH input AS ( \
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                $6::timestamptz[], $7::jsonb[]) WITH ORDINALITY \
             AS t(alert_id, tenant_id, source, fingerprint, status, started_at, payload_json, ord) \
         ), upserted AS ( \
           INSERT INTO alert_events (alert_id, tenant_id, source, fingerprint, status, started_at, payload_json) \
           SELECT alert_id, tenant_id, source, fingerprint, status, started_at, payload_json \
             FROM input ORDER BY ord \
           ON CONFLICT (tenant_id, source, fingerprint) DO UPDATE SET status = EXCLUDED.status, \
             started_at = COALESCE(EXCLUDED.started_at, alert_events.started_at), \
             payload_json = EXCLUDED.payload_json, updated_at = now() \
           WHERE alert_events.status IS DISTINCT FROM EXCLUDED.status \
           RETURNING alert_id, tenant_id, source, fingerprint, (xmax = 0) AS inserted \
         ) \
         SELECT i.tenant_id, i.source, i.fingerprint, COALESCE(u.alert_id, a.alert_id), \
                CASE WHEN u.alert_id IS NULL THEN 'duplicate' WHEN u.inserted THEN 'new' ELSE 'changed' END \
           FROM input i \
           LEFT JOIN upserted u ON u.tenant_id = i.tenant_id AND u.source = i.source AND u.fingerprint = i.fingerprint \
           LEFT JOIN alert_events a ON u.alert_id IS NULL AND a.tenant_id = i.tenant_id \
                AND a.source = i.source AND a.fingerprint = i.fingerprint \
          ORDER BY i.ord",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&sources)
    .bind(&fingerprints)
    .bind(&statuses)
    .bind(&started)
    .bind(&payloads)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_key: HashMap<(String, String, String), (Uuid, Stored)> =
        HashMap::with_capacity(rows.len());
    for (tenant, source, fingerprint, id, kind) in rows {
        let stored = match kind.as_str() {
            "new" => Stored::New,
            "changed" => Stored::Changed,
            _ => Stored::Duplicate,
        };
        let id = match id {
            Some(id) => id,
            // Inserted by another delivery after this statement's snapshot.
            None => {
                let (id,): (Uuid,) = sqlx::query_as(
                    "SELECT alert_id FROM alert_events WHERE tenant_id = $1 AND source = $2 AND fingerprint = $3",
                )
                .bind(&tenant)
                .bind(&source)
                .bind(&fingerprint)
                .fetch_one(&mut *conn)
                .await?;
                id
            }
        };
        by_key.insert((tenant, source, fingerprint), (id, stored));
    }
    let mut outcomes = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let key = (e.tenant.as_str(), e.source, e.fingerprint);
        let (id, stored) = by_key
            .get(&(key.0.to_owned(), key.1.to_owned(), key.2.to_owned()))
            .copied()
            .ok_or_else(|| StoreError::Corrupt("an alert of the delivery was not stored".into()))?;
        // Earlier occurrences of a key in the same delivery are superseded by the last one.
        let stored = if last.get(&key) == Some(&i) {
            stored
        } else {
            Stored::Duplicate
        };
        outcomes.push((id, stored));
    }
    Ok(outcomes)
}

/// The dedup upsert of one event on `conn` (a pooled connection or a transaction).
async fn upsert_alert(
    conn: &mut sqlx::PgConnection,
    e: &NewAlertEvent<'_>,
) -> Result<(Uuid, Stored), StoreError> {
    // `xmax = 0` tells an insert from an update; the WHERE skips same-status updates.
    let row: Option<(Uuid, bool)> = sqlx::query_as(
        "INSERT INTO alert_events (alert_id, tenant_id, source, fingerprint, status, started_at, payload_json) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, source, fingerprint) DO UPDATE SET status = EXCLUDED.status, \
           started_at = COALESCE(EXCLUDED.started_at, alert_events.started_at), \
           payload_json = EXCLUDED.payload_json, updated_at = now() \
         WHERE alert_events.status IS DISTINCT FROM EXCLUDED.status \
         RETURNING alert_id, (xmax = 0) AS inserted",
    )
    .bind(Uuid::now_v7())
    .bind(e.tenant.as_str())
    .bind(e.source)
    .bind(e.fingerprint)
    .bind(e.status)
    .bind(e.started_at)
    .bind(e.payload)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((id, true)) => Ok((id, Stored::New)),
        Some((id, false)) => Ok((id, Stored::Changed)),
        None => {
            let (id,): (Uuid,) = sqlx::query_as(
                "SELECT alert_id FROM alert_events WHERE tenant_id = $1 AND source = $2 AND fingerprint = $3",
            )
            .bind(e.tenant.as_str())
            .bind(e.source)
            .bind(e.fingerprint)
            .fetch_one(&mut *conn)
            .await?;
            Ok((id, Stored::Duplicate))
        }
    }
}
