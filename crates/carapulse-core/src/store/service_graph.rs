//! The service-to-service part of the context graph, read for a blast-radius estimate: which
//! services a plan's targets belong to, and the `calls` edges upstream of them, read hop by hop
//! (one indexed query per hop, so only the reachable part of a large graph is read); the pure
//! estimate of [`crate::blast_radius`] does the rest.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::blast_radius::{self, BlastEstimate, CallEdge, CallGraph, ServiceInfo, StepTarget};
use crate::model::TenantId;

use super::{Store, StoreError};

use super::context::Traffic;

/// `name, namespace, team, tier` of a service.
type ServiceRow = (String, Option<String>, Option<String>, Option<String>);

/// `from_node_id, to_node_id, traffic_json, updated_at` of a `calls` edge.
type CallRow = (String, String, Option<Value>, DateTime<Utc>);

impl Store {
    /// The blast radius of changing `targets` in `tenant`'s graph, walking callers up to
    /// `depth` hops.
    pub async fn blast_radius(
        &self,
        tenant: &TenantId,
        targets: Vec<StepTarget>,
        depth: u32,
        now: DateTime<Utc>,
    ) -> Result<BlastEstimate, StoreError> {
        // Nothing to read for no targets, or for more than an estimate resolves.
        if targets.is_empty() || targets.len() > blast_radius::MAX_TARGETS {
            return Ok(blast_radius::estimate(
                targets,
                &CallGraph::default(),
                depth,
                now,
            ));
        }
        let graph = self.call_graph(tenant, &targets, depth).await?;
        Ok(blast_radius::estimate(targets, &graph, depth, now))
    }

    /// What an estimate of `targets` needs from the graph.
    pub async fn call_graph(
        &self,
        tenant: &TenantId,
        targets: &[StepTarget],
        depth: u32,
    ) -> Result<CallGraph, StoreError> {
        let depth = depth.clamp(1, blast_radius::MAX_DEPTH);
        let mut conn = self.pool().acquire().await?;
        let newest: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT max(updated_at) FROM context_edges WHERE tenant_id = $1 AND relation = 'calls'",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *conn)
        .await?;
        // Without traffic data the estimate is unknown whatever the targets are: a plan of a
        // tenant with no service graph costs this one query, not a resolution as well.
        if newest.is_none() {
            return Ok(CallGraph {
                resolved: vec![Vec::new(); targets.len()],
                ..Default::default()
            });
        }
        let resolved = self.resolve_targets(&mut conn, tenant, targets).await?;
        let roots: Vec<String> = {
            let mut r: Vec<String> = resolved.iter().flatten().cloned().collect();
            r.sort();
            r.dedup();
            r
        };
        if roots.is_empty() {
            return Ok(CallGraph {
                resolved,
                newest_observation: newest,
                ..Default::default()
            });
        }
        // Callers of callers, one indexed query per hop (`to_node_id = ANY(frontier)` on the
        // partial index of `calls` edges), whatever the table's statistics say; each node is
        // expanded once, so cycles end. The hop past `depth` is read too, to know whether
        // callers were left beyond the cap.
        let mut seen: BTreeSet<String> = roots.iter().map(|s| format!("service/{s}")).collect();
        let mut frontier: Vec<String> = seen.iter().cloned().collect();
        let mut rows: Vec<CallRow> = Vec::new();
        for _ in 0..=depth {
            if frontier.is_empty() {
                break;
            }
            let hop: Vec<CallRow> = sqlx::query_as(
                "SELECT from_node_id, to_node_id, traffic_json, updated_at FROM context_edges \
                 WHERE tenant_id = $1 AND relation = 'calls' AND to_node_id = ANY($2)",
            )
            .bind(tenant.as_str())
            .bind(&frontier)
            .fetch_all(&mut *conn)
            .await?;
            frontier = hop
                .iter()
                .filter(|(from, ..)| seen.insert(from.clone()))
                .map(|(from, ..)| from.clone())
                .collect();
            rows.extend(hop);
        }
        let service_name = |id: &str| id.strip_prefix("service/").unwrap_or(id).to_owned();
        let edges: Vec<CallEdge> = rows
            .into_iter()
            .map(|(from, to, traffic, updated_at)| {
                let traffic: Option<Traffic> = traffic.and_then(|t| serde_json::from_value(t).ok());
                CallEdge {
                    caller: service_name(&from),
                    callee: service_name(&to),
                    rps: traffic.map_or(0.0, |t| t.rps),
                    error_ratio: traffic.map_or(0.0, |t| t.error_ratio),
                    observed_at: traffic.map_or(updated_at, |t| t.observed_at),
                }
            })
            .collect();
        let root_ids: Vec<String> = roots.iter().map(|s| format!("service/{s}")).collect();
        let calling: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT from_node_id FROM context_edges \
             WHERE tenant_id = $1 AND relation = 'calls' AND from_node_id = ANY($2)",
        )
        .bind(tenant.as_str())
        .bind(&root_ids)
        .fetch_all(&mut *conn)
        .await?;
        let calling = calling.into_iter().map(|(id,)| service_name(&id)).collect();
        let mut names: Vec<String> = edges
            .iter()
            .flat_map(|e| [e.caller.clone(), e.callee.clone()])
            .chain(roots)
            .collect();
        names.sort();
        names.dedup();
        let services = self.service_infos(&mut conn, tenant, &names).await?;
        Ok(CallGraph {
            resolved,
            edges,
            services,
            newest_observation: newest,
            calling,
        })
    }

    /// For each target, the service nodes it is: a service of that name, or a service linked
    /// (by any non-`calls` edge) to a node of that name in the target's namespace — a
    /// Deployment, a Helm release, an Argo CD app. A secret path resolves to the services named
    /// by its path segments, deepest first.
    async fn resolve_targets(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant: &TenantId,
        targets: &[StepTarget],
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let mut index: Vec<i32> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut namespaces: Vec<String> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            if t.kind == "secret" {
                for segment in t.name.split('/').filter(|s| !s.is_empty()).rev() {
                    index.push(i);
                    names.push(segment.to_owned());
                    namespaces.push(String::new());
                }
            } else if !t.name.is_empty() {
                index.push(i);
                names.push(t.name.clone());
                namespaces.push(t.namespace.clone().unwrap_or_default());
            }
        }
        let rows: Vec<(i32, String)> = sqlx::query_as(
            "WITH t AS (SELECT * FROM unnest($2::int[], $3::text[], $4::text[]) AS t(i, name, ns)), \
             hit AS ( \
                SELECT t.i, n.node_id, n.kind FROM t JOIN context_nodes n \
                ON n.tenant_id = $1 AND n.name = t.name \
                AND (t.ns = '' OR n.kind = 'service' OR COALESCE(n.labels_json->>'namespace', '') IN ('', t.ns)) \
             ) \
             SELECT hit.i, n.name FROM hit JOIN context_nodes n \
                ON n.tenant_id = $1 AND n.node_id = hit.node_id WHERE hit.kind = 'service' \
             UNION \
             SELECT hit.i, s.name FROM hit \
                JOIN context_edges e ON e.tenant_id = $1 AND e.to_node_id = hit.node_id AND e.relation <> 'calls' \
                JOIN context_nodes s ON s.tenant_id = $1 AND s.node_id = e.from_node_id AND s.kind = 'service' \
             UNION \
             SELECT hit.i, s.name FROM hit \
                JOIN context_edges e ON e.tenant_id = $1 AND e.from_node_id = hit.node_id AND e.relation <> 'calls' \
                JOIN context_nodes s ON s.tenant_id = $1 AND s.node_id = e.to_node_id AND s.kind = 'service' \
             ORDER BY 1, 2",
        )
        .bind(tenant.as_str())
        .bind(&index)
        .bind(&names)
        .bind(&namespaces)
        .fetch_all(&mut *conn)
        .await?;
        let mut resolved = vec![Vec::new(); targets.len()];
        for (i, service) in rows {
            if let Some(list) = usize::try_from(i).ok().and_then(|i| resolved.get_mut(i)) {
                list.push(service);
            }
        }
        Ok(resolved)
    }

    /// Namespace, team and tier of each named service: its own labels, else the namespace of
    /// a Kubernetes object linked to it.
    async fn service_infos(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant: &TenantId,
        names: &[String],
    ) -> Result<BTreeMap<String, ServiceInfo>, StoreError> {
        let ids: Vec<String> = names.iter().map(|n| format!("service/{n}")).collect();
        let rows: Vec<ServiceRow> = sqlx::query_as(
            "SELECT s.name, \
               COALESCE(NULLIF(s.labels_json->>'namespace', ''), ( \
                 SELECT n.labels_json->>'namespace' FROM context_edges e \
                 JOIN context_nodes n ON n.tenant_id = e.tenant_id \
                   AND n.node_id = CASE WHEN e.from_node_id = s.node_id THEN e.to_node_id ELSE e.from_node_id END \
                 WHERE e.tenant_id = $1 AND e.relation <> 'calls' \
                   AND (e.from_node_id = s.node_id OR e.to_node_id = s.node_id) \
                   AND n.kind LIKE 'k8s.%' AND COALESCE(n.labels_json->>'namespace', '') <> '' \
                 ORDER BY n.node_id LIMIT 1)), \
               COALESCE(s.owner_team, NULLIF(s.labels_json->>'team', ''), NULLIF(s.labels_json->>'owner', '')), \
               COALESCE(NULLIF(s.labels_json->>'tier', ''), NULLIF(s.labels_json->>'criticality', '')) \
             FROM context_nodes s WHERE s.tenant_id = $1 AND s.node_id = ANY($2)",
        )
        .bind(tenant.as_str())
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, namespace, team, tier)| {
                (
                    name.clone(),
                    ServiceInfo {
                        name,
                        namespace,
                        team,
                        tier,
                    },
                )
            })
            .collect())
    }
}
