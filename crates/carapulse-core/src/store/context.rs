//! The service graph (`context_nodes`, `context_edges`) and its snapshots. Collectors replace
//! what they own (`source`) in one transaction — upserting what they saw and removing what they
//! no longer see — or apply watch deltas; readers get services, a neighbourhood graph and
//! snapshots, always scoped to a tenant.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{append_in_tx, AuditEntry};
use crate::model::TenantId;

use super::page::{fetch_page, KeyKind, KeyValue, Keyset, Select};
use super::{Page, Paged, Store, StoreError};

/// A node of the graph (`service/web`, `k8s/deployment/shop/web`, ...).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextNode {
    pub node_id: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_team: Option<String>,
}

/// A directed, named relation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEdge {
    pub edge_id: String,
    pub from_node_id: String,
    pub to_node_id: String,
    pub relation: String,
    /// What flows along a `calls` edge (caller -> callee), as last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
}

impl ContextEdge {
    pub fn new(from: &str, to: &str, relation: &str) -> Self {
        Self {
            edge_id: format!("{relation}:{from}->{to}"),
            from_node_id: from.to_owned(),
            to_node_id: to.to_owned(),
            relation: relation.to_owned(),
            traffic: None,
        }
    }
}

/// Requests from one service to another, from service-graph metrics.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    /// Requests per second.
    pub rps: f64,
    /// Failed requests / all requests, 0..=1.
    pub error_ratio: f64,
    pub observed_at: DateTime<Utc>,
}

impl Traffic {
    /// Measured traffic; `None` unless `rps` is a positive finite rate (an edge without
    /// traffic is no edge). The error ratio is clamped to 0..=1 (0 when unreadable).
    pub fn measured(rps: f64, error_ratio: f64, observed_at: DateTime<Utc>) -> Option<Self> {
        (rps.is_finite() && rps > 0.0).then(|| Self {
            rps,
            error_ratio: if error_ratio.is_finite() {
                error_ratio.clamp(0.0, 1.0)
            } else {
                0.0
            },
            observed_at,
        })
    }
}

// Every `Traffic` holds finite numbers (see `measured`; stored values are read back through
// serde, which has no NaN in JSON), so equality is reflexive.
impl Eq for Traffic {}

/// What a collector saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub nodes: Vec<ContextNode>,
    pub edges: Vec<ContextEdge>,
    /// Nodes this collector only points at (a service an alert names): created when missing,
    /// never overwritten, so one collector cannot clobber another's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<ContextNode>,
}

impl Snapshot {
    /// Adds a referenced node (see [`Snapshot::refs`]).
    pub fn reference(&mut self, node: ContextNode) -> String {
        let id = node.node_id.clone();
        if !self.refs.iter().any(|n| n.node_id == id) && !self.nodes.iter().any(|n| n.node_id == id)
        {
            self.refs.push(node);
        }
        id
    }

    /// Gives every node (owned or referenced) the labels of `base` it does not set itself: the
    /// deployment-wide labels of `context.labels` (a node's own labels win).
    pub fn add_base_labels(&mut self, base: &BTreeMap<String, String>) {
        if base.is_empty() {
            return;
        }
        for node in self.nodes.iter_mut().chain(self.refs.iter_mut()) {
            for (key, value) in base {
                node.labels
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }

    pub fn node(&mut self, node: ContextNode) -> String {
        let id = node.node_id.clone();
        if !self.nodes.iter().any(|n| n.node_id == id) {
            self.nodes.push(node);
        }
        id
    }

    pub fn edge(&mut self, from: &str, to: &str, relation: &str) {
        let e = ContextEdge::new(from, to, relation);
        if !self.edges.iter().any(|x| x.edge_id == e.edge_id) {
            self.edges.push(e);
        }
    }

    /// Adds (or updates) a `calls` edge from `caller` to `callee` carrying `traffic`.
    pub fn call(&mut self, caller: &str, callee: &str, traffic: Traffic) {
        let mut e = ContextEdge::new(caller, callee, "calls");
        e.traffic = Some(traffic);
        match self.edges.iter_mut().find(|x| x.edge_id == e.edge_id) {
            Some(existing) => *existing = e,
            None => self.edges.push(e),
        }
    }
}

/// What a replace did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplaceOutcome {
    pub nodes: u64,
    pub edges: u64,
    pub removed_nodes: u64,
    pub removed_edges: u64,
}

/// A stored snapshot header.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SnapshotInfo {
    pub snapshot_id: Uuid,
    pub source: String,
    pub collected_at: DateTime<Utc>,
    pub node_count: i64,
    pub edge_count: i64,
}

async fn upsert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &TenantId,
    source: &str,
    snapshot: &Snapshot,
) -> Result<(), StoreError> {
    // Referenced nodes are only created; owned nodes are created or replaced.
    const KEEP: &str = " ON CONFLICT (tenant_id, node_id) DO NOTHING";
    const REPLACE: &str = " ON CONFLICT (tenant_id, node_id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, \
         labels_json = EXCLUDED.labels_json, owner_team = COALESCE(EXCLUDED.owner_team, context_nodes.owner_team), \
         source = EXCLUDED.source, updated_at = now()";
    for (nodes, conflict) in [(&snapshot.refs, KEEP), (&snapshot.nodes, REPLACE)] {
        for chunk in nodes.chunks(500) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO context_nodes (tenant_id, node_id, kind, name, labels_json, owner_team, source) ",
            );
            qb.push_values(chunk, |mut b, n| {
                b.push_bind(tenant.as_str())
                    .push_bind(&n.node_id)
                    .push_bind(&n.kind)
                    .push_bind(&n.name)
                    .push_bind(serde_json::to_value(&n.labels).unwrap_or(Value::Null))
                    .push_bind(&n.owner_team)
                    .push_bind(source);
            });
            qb.push(conflict);
            qb.build().execute(&mut **tx).await?;
        }
    }
    for chunk in snapshot.edges.chunks(500) {
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT INTO context_edges (tenant_id, edge_id, from_node_id, to_node_id, relation, source, traffic_json) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(tenant.as_str())
                .push_bind(&e.edge_id)
                .push_bind(&e.from_node_id)
                .push_bind(&e.to_node_id)
                .push_bind(&e.relation)
                .push_bind(source)
                .push_bind(e.traffic.and_then(|t| serde_json::to_value(t).ok()));
        });
        qb.push(" ON CONFLICT (tenant_id, edge_id) DO UPDATE SET source = EXCLUDED.source, traffic_json = EXCLUDED.traffic_json, updated_at = now()");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Edges whose ends are not both in the graph (after this write) are dropped before insert.
fn consistent(snapshot: &Snapshot, known: &BTreeSet<String>) -> Snapshot {
    let ids: BTreeSet<&str> = snapshot
        .nodes
        .iter()
        .chain(snapshot.refs.iter())
        .map(|n| n.node_id.as_str())
        .collect();
    let has = |id: &str| ids.contains(id) || known.contains(id);
    Snapshot {
        nodes: snapshot.nodes.clone(),
        refs: snapshot.refs.clone(),
        edges: snapshot
            .edges
            .iter()
            .filter(|e| has(&e.from_node_id) && has(&e.to_node_id))
            .cloned()
            .collect(),
    }
}

impl Store {
    async fn existing_node_ids(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<BTreeSet<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT node_id FROM context_nodes WHERE tenant_id = $1 AND node_id = ANY($2)",
        )
        .bind(tenant.as_str())
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    fn edge_ends(snapshot: &Snapshot) -> Vec<String> {
        snapshot
            .edges
            .iter()
            .flat_map(|e| [e.from_node_id.clone(), e.to_node_id.clone()])
            .collect()
    }

    /// Replaces everything `source` owns for `tenant` with `snapshot`, in one transaction.
    pub async fn replace_context(
        &self,
        tenant: &TenantId,
        source: &str,
        snapshot: &Snapshot,
    ) -> Result<ReplaceOutcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let known = self
            .existing_node_ids(&mut tx, tenant, &Self::edge_ends(snapshot))
            .await?;
        let snapshot = consistent(snapshot, &known);
        upsert(&mut tx, tenant, source, &snapshot).await?;
        // Referenced nodes this source created stay while it still references them.
        let node_ids: Vec<String> = snapshot
            .nodes
            .iter()
            .chain(snapshot.refs.iter())
            .map(|n| n.node_id.clone())
            .collect();
        let edge_ids: Vec<String> = snapshot.edges.iter().map(|e| e.edge_id.clone()).collect();
        let removed_edges = sqlx::query(
            "DELETE FROM context_edges WHERE tenant_id = $1 AND source = $2 AND NOT (edge_id = ANY($3))",
        )
        .bind(tenant.as_str())
        .bind(source)
        .bind(&edge_ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let removed_nodes = sqlx::query(
            "DELETE FROM context_nodes WHERE tenant_id = $1 AND source = $2 AND NOT (node_id = ANY($3))",
        )
        .bind(tenant.as_str())
        .bind(source)
        .bind(&node_ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(ReplaceOutcome {
            nodes: snapshot.nodes.len() as u64,
            edges: snapshot.edges.len() as u64,
            removed_nodes,
            removed_edges,
        })
    }

    /// Applies a watch delta: upserts `changed`, removes `deleted` node ids (their edges go too).
    /// `audit` (for changes people make; collectors' deltas are not audited) commits with it.
    pub async fn apply_context_delta(
        &self,
        tenant: &TenantId,
        source: &str,
        changed: &Snapshot,
        deleted: &[String],
        audit: Option<AuditEntry>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let known = self
            .existing_node_ids(&mut tx, tenant, &Self::edge_ends(changed))
            .await?;
        upsert(&mut tx, tenant, source, &consistent(changed, &known)).await?;
        if !deleted.is_empty() {
            sqlx::query("DELETE FROM context_nodes WHERE tenant_id = $1 AND node_id = ANY($2)")
                .bind(tenant.as_str())
                .bind(deleted)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(audit) = audit {
            append_in_tx(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Service nodes of `tenant`, by name.
    pub async fn context_services(
        &self,
        tenant: &TenantId,
        page: Page,
    ) -> Result<Paged<ContextNode>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "context-services",
            columns: &[("name", KeyKind::Text), ("node_id", KeyKind::Text)],
            descending: false,
        };
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(
                qb,
                "node_id, kind, name, labels_json, owner_team",
                "FROM context_nodes WHERE kind = 'service' AND tenant_id = ",
                tenant,
            );
        };
        let map = |row: &sqlx::postgres::PgRow| {
            use sqlx::Row;
            Ok(node_from(
                row.try_get("node_id")?,
                row.try_get("kind")?,
                row.try_get("name")?,
                row.try_get("labels_json")?,
                row.try_get("owner_team")?,
            ))
        };
        fetch_page(self.pool(), page, &ORDER, query, map, |n: &ContextNode| {
            vec![
                KeyValue::Text(n.name.clone()),
                KeyValue::Text(n.node_id.clone()),
            ]
        })
        .await
    }

    /// The neighbourhood of `service/<name>` up to `depth` hops (both directions).
    pub async fn context_graph(
        &self,
        tenant: &TenantId,
        service: &str,
        depth: u32,
    ) -> Result<Snapshot, StoreError> {
        let root = format!("service/{service}");
        let mut seen: BTreeSet<String> = BTreeSet::from([root.clone()]);
        let mut frontier = vec![root];
        let mut edges: BTreeMap<String, ContextEdge> = BTreeMap::new();
        for _ in 0..depth.clamp(1, 6) {
            if frontier.is_empty() {
                break;
            }
            let rows: Vec<EdgeRow> = sqlx::query_as(
                "SELECT edge_id, from_node_id, to_node_id, relation, traffic_json FROM context_edges WHERE tenant_id = $1 \
                 AND (from_node_id = ANY($2) OR to_node_id = ANY($2)) LIMIT 5000",
            )
            .bind(tenant.as_str())
            .bind(&frontier)
            .fetch_all(self.pool())
            .await?;
            let mut next = Vec::new();
            for row in rows {
                let edge = edge_from(row);
                for id in [&edge.from_node_id, &edge.to_node_id] {
                    if seen.insert(id.clone()) {
                        next.push(id.clone());
                    }
                }
                edges.insert(edge.edge_id.clone(), edge);
            }
            frontier = next;
        }
        let ids: Vec<String> = seen.into_iter().collect();
        let rows: Vec<(String, String, String, Value, Option<String>)> = sqlx::query_as(
            "SELECT node_id, kind, name, labels_json, owner_team FROM context_nodes WHERE tenant_id = $1 AND node_id = ANY($2) ORDER BY node_id",
        )
        .bind(tenant.as_str())
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound);
        }
        Ok(Snapshot {
            nodes: rows
                .into_iter()
                .map(|r| node_from(r.0, r.1, r.2, r.3, r.4))
                .collect(),
            edges: edges.into_values().collect(),
            refs: Vec::new(),
        })
    }

    /// The whole graph of `tenant` (for snapshots).
    pub async fn context_all(&self, tenant: &TenantId) -> Result<Snapshot, StoreError> {
        let nodes: Vec<(String, String, String, Value, Option<String>)> = sqlx::query_as(
            "SELECT node_id, kind, name, labels_json, owner_team FROM context_nodes WHERE tenant_id = $1 ORDER BY node_id",
        )
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        let edges: Vec<EdgeRow> = sqlx::query_as(
            "SELECT edge_id, from_node_id, to_node_id, relation, traffic_json FROM context_edges WHERE tenant_id = $1 ORDER BY edge_id",
        )
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(Snapshot {
            nodes: nodes
                .into_iter()
                .map(|r| node_from(r.0, r.1, r.2, r.3, r.4))
                .collect(),
            edges: edges.into_iter().map(edge_from).collect(),
            refs: Vec::new(),
        })
    }

    /// Stores a snapshot of the graph.
    pub async fn insert_context_snapshot(
        &self,
        tenant: &TenantId,
        source: &str,
        snapshot: &Snapshot,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO context_snapshots (snapshot_id, tenant_id, source, nodes_json, edges_json) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(source)
        .bind(serde_json::to_value(&snapshot.nodes).unwrap_or(Value::Null))
        .bind(serde_json::to_value(&snapshot.edges).unwrap_or(Value::Null))
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Snapshot headers of `tenant`, newest first.
    pub async fn context_snapshots(
        &self,
        tenant: &TenantId,
        page: Page,
    ) -> Result<Paged<SnapshotInfo>, StoreError> {
        const ORDER: Keyset = Keyset {
            list: "context-snapshots",
            columns: &[
                ("collected_at", KeyKind::Time),
                ("snapshot_id", KeyKind::Uuid),
            ],
            descending: true,
        };
        let query = |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, select: Select| {
            select.head(qb, "snapshot_id, source, collected_at, jsonb_array_length(nodes_json)::bigint AS node_count, \
                     jsonb_array_length(edges_json)::bigint AS edge_count", "FROM context_snapshots WHERE tenant_id = ", tenant);
        };
        let map = |row: &sqlx::postgres::PgRow| {
            use sqlx::Row;
            Ok(SnapshotInfo {
                snapshot_id: row.try_get("snapshot_id")?,
                source: row.try_get("source")?,
                collected_at: row.try_get("collected_at")?,
                node_count: row.try_get("node_count")?,
                edge_count: row.try_get("edge_count")?,
            })
        };
        fetch_page(self.pool(), page, &ORDER, query, map, |s: &SnapshotInfo| {
            vec![
                KeyValue::Time(s.collected_at),
                KeyValue::Uuid(s.snapshot_id),
            ]
        })
        .await
    }

    /// One snapshot with its nodes and edges.
    pub async fn context_snapshot(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<(SnapshotInfo, Snapshot), StoreError> {
        let row: Option<(String, DateTime<Utc>, Value, Value)> = sqlx::query_as(
            "SELECT source, collected_at, nodes_json, edges_json FROM context_snapshots WHERE tenant_id = $1 AND snapshot_id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let (source, collected_at, nodes, edges) = row.ok_or(StoreError::NotFound)?;
        let snapshot = Snapshot {
            nodes: serde_json::from_value(nodes).unwrap_or_default(),
            edges: serde_json::from_value(edges).unwrap_or_default(),
            refs: Vec::new(),
        };
        Ok((
            SnapshotInfo {
                snapshot_id: id,
                source,
                collected_at,
                node_count: snapshot.nodes.len() as i64,
                edge_count: snapshot.edges.len() as i64,
            },
            snapshot,
        ))
    }
}

/// `edge_id, from_node_id, to_node_id, relation, traffic_json` of `context_edges`.
type EdgeRow = (String, String, String, String, Option<Value>);

fn edge_from((edge_id, from_node_id, to_node_id, relation, traffic): EdgeRow) -> ContextEdge {
    ContextEdge {
        edge_id,
        from_node_id,
        to_node_id,
        relation,
        traffic: traffic.and_then(|t| serde_json::from_value(t).ok()),
    }
}

fn node_from(
    node_id: String,
    kind: String,
    name: String,
    labels: Value,
    owner_team: Option<String>,
) -> ContextNode {
    ContextNode {
        node_id,
        kind,
        name,
        labels: serde_json::from_value(labels).unwrap_or_default(),
        owner_team,
    }
}

impl Store {
    /// The newest context snapshot of `tenant`: its id and when it was collected.
    pub async fn latest_context_snapshot(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<(Uuid, DateTime<Utc>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT snapshot_id, collected_at FROM context_snapshots WHERE tenant_id = $1 \
             ORDER BY collected_at DESC, snapshot_id DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(self.pool())
        .await?)
    }
}
