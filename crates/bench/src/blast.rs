//! Blast radius at scale (issue 19): a 1,000-service graph in Postgres — five layers of 200
//! services, each called by three services of the layer above plus cross-layer and backward
//! (cycle-making) edges, every service run by a Deployment — and the estimate of changing one
//! Deployment of the deepest layer, walked 4 hops upstream: end to end through the store (target
//! resolution, the recursive upstream query, service details, the walk), and the in-memory walk
//! alone over the whole graph for comparison.

use std::collections::BTreeMap;
use std::time::Instant;

use carapulse_core::blast_radius::{self, CallEdge, CallGraph, ServiceInfo, StepTarget};
use carapulse_core::model::TenantId;
use carapulse_core::store::{ContextNode, Snapshot, Traffic};
use carapulse_core::testing::TestDatabase;

use crate::{latency_row, Row};

const LAYERS: usize = 5;
const PER_LAYER: usize = 200;

/// A small deterministic generator (the same graph every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % below
    }
}

fn name(layer: usize, i: usize) -> String {
    format!("svc-{layer}-{i:03}")
}

fn service(name: &str, team: usize, tier: &str) -> ContextNode {
    ContextNode {
        node_id: format!("service/{name}"),
        kind: "service".into(),
        name: name.into(),
        labels: [
            ("namespace".to_owned(), format!("ns-{}", team % 12)),
            ("tier".to_owned(), tier.to_owned()),
        ]
        .into(),
        owner_team: Some(format!("team-{}", team % 30)),
    }
}

/// The `calls` edges (caller, callee, rps).
fn edges() -> Vec<(String, String, f64)> {
    let mut rng = Lcg(19);
    let mut out = Vec::new();
    for layer in 1..LAYERS {
        for i in 0..PER_LAYER {
            for _ in 0..3 {
                let caller = rng.next(PER_LAYER);
                out.push((
                    name(layer - 1, caller),
                    name(layer, i),
                    1.0 + rng.next(500) as f64,
                ));
            }
            // Now and then a call skipping a layer, or one back up (a cycle).
            if rng.next(4) == 0 && layer >= 2 {
                out.push((name(layer - 2, rng.next(PER_LAYER)), name(layer, i), 5.0));
            }
            if rng.next(10) == 0 {
                out.push((name(layer, i), name(layer - 1, rng.next(PER_LAYER)), 2.0));
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    out
}

pub async fn run(db: &TestDatabase, samples: usize, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let tenant = TenantId::parse("blast")?;
    let now = chrono::Utc::now();
    let mut workloads = Snapshot::default();
    let mut graph = Snapshot::default();
    let mut infos = BTreeMap::new();
    for layer in 0..LAYERS {
        for i in 0..PER_LAYER {
            let n = name(layer, i);
            let tier = ["tier0", "tier1", "tier2", "tier3"][(layer + i) % 4];
            let svc = service(&n, layer * PER_LAYER + i, tier);
            infos.insert(
                n.clone(),
                ServiceInfo {
                    name: n.clone(),
                    namespace: svc.labels.get("namespace").cloned(),
                    team: svc.owner_team.clone(),
                    tier: Some(tier.to_owned()),
                },
            );
            workloads.node(svc);
            let deployment = format!("k8s/deployment/ns/{n}");
            workloads.node(ContextNode {
                node_id: deployment.clone(),
                kind: "k8s.deployment".into(),
                name: n.clone(),
                labels: [("namespace".to_owned(), "ns".to_owned())].into(),
                owner_team: None,
            });
            workloads.edge(&format!("service/{n}"), &deployment, "runs");
            graph.reference(ContextNode {
                node_id: format!("service/{n}"),
                kind: "service".into(),
                name: n.clone(),
                labels: BTreeMap::new(),
                owner_team: None,
            });
        }
    }
    let calls = edges();
    for (caller, callee, rps) in &calls {
        let traffic =
            Traffic::measured(*rps, 0.01, now).ok_or_else(|| anyhow::anyhow!("bad rate {rps}"))?;
        graph.call(
            &format!("service/{caller}"),
            &format!("service/{callee}"),
            traffic,
        );
    }
    db.store
        .replace_context(&tenant, "kubernetes", &workloads)
        .await?;
    db.store
        .replace_context(&tenant, "service_graph", &graph)
        .await?;
    for table in ["context_nodes", "context_edges"] {
        sqlx::query(&format!("ANALYZE {table}"))
            .execute(db.store.pool())
            .await?;
    }

    let target = |i: usize| StepTarget {
        step: 0,
        kind: "workload".into(),
        name: name(LAYERS - 1, i % PER_LAYER),
        namespace: Some("ns".into()),
    };
    // Warm the pool and the plan cache.
    for i in 0..20 {
        db.store
            .blast_radius(&tenant, vec![target(i)], 4, chrono::Utc::now())
            .await?;
    }
    let mut end_to_end = Vec::with_capacity(samples);
    let mut reached = 0usize;
    for i in 0..samples {
        let t = Instant::now();
        let estimate = db
            .store
            .blast_radius(&tenant, vec![target(i * 7)], 4, chrono::Utc::now())
            .await?;
        end_to_end.push(t.elapsed());
        anyhow::ensure!(!estimate.unknown, "{:?}", estimate.unknown_reasons);
        reached += estimate.service_count;
    }
    rows.push(latency_row(
        format!(
            "blast radius, 1,000 services / {} calls edges, depth 4, through Postgres ({samples} estimates, {} services reached on average)",
            calls.len(),
            reached / samples.max(1)
        ),
        end_to_end,
    ));

    // The walk alone, over the whole graph held in memory.
    let whole = CallGraph {
        resolved: Vec::new(),
        edges: calls
            .iter()
            .map(|(caller, callee, rps)| CallEdge {
                caller: caller.clone(),
                callee: callee.clone(),
                rps: *rps,
                error_ratio: 0.01,
                observed_at: now,
            })
            .collect(),
        services: infos,
        newest_observation: Some(now),
        calling: Default::default(),
    };
    let mut walk = Vec::with_capacity(samples);
    for i in 0..samples {
        let mut g = whole.clone();
        g.resolved = vec![vec![name(LAYERS - 1, (i * 7) % PER_LAYER)]];
        let t = Instant::now();
        let estimate = blast_radius::estimate(vec![target(i * 7)], &g, 4, now);
        walk.push(t.elapsed());
        anyhow::ensure!(!estimate.unknown, "{:?}", estimate.unknown_reasons);
    }
    rows.push(latency_row(
        format!("blast radius walk alone, in memory, same graph ({samples} estimates)"),
        walk,
    ));
    Ok(())
}
