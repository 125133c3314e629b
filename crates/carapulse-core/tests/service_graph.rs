//! The blast-radius estimate read from Postgres: targets resolve to services through the
//! graph's own links (a Deployment in its namespace, a Helm release, a secret path), and the
//! hop-by-hop upstream read gives exactly the estimate the pure walk gives over the whole graph
//! — on random graphs with cycles, at every depth.

use std::collections::BTreeMap;

use carapulse_core::blast_radius::{self, CallEdge, CallGraph, ServiceInfo, StepTarget};
use carapulse_core::model::TenantId;
use carapulse_core::store::{ContextNode, Snapshot, Traffic};
use carapulse_core::testing::TestDatabase;

fn node(id: &str, kind: &str, name: &str, labels: &[(&str, &str)]) -> ContextNode {
    ContextNode {
        node_id: id.into(),
        kind: kind.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        owner_team: None,
    }
}

fn target(kind: &str, name: &str, namespace: Option<&str>) -> StepTarget {
    StepTarget {
        step: 0,
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.map(Into::into),
    }
}

#[tokio::test]
async fn targets_resolve_through_the_graph_links() {
    let db = TestDatabase::create().await;
    let tenant = TenantId::parse("acme").unwrap();
    let mut snap = Snapshot::default();
    for s in ["web", "cart", "payments"] {
        snap.node(node(&format!("service/{s}"), "service", s, &[]));
    }
    snap.node(node(
        "k8s/deployment/shop/web-v2",
        "k8s.deployment",
        "web-v2",
        &[("namespace", "shop")],
    ));
    snap.edge("service/web", "k8s/deployment/shop/web-v2", "runs");
    snap.node(node(
        "helm/release/shop/cart-chart",
        "helm.release",
        "cart-chart",
        &[("namespace", "shop")],
    ));
    snap.edge(
        "service/cart",
        "helm/release/shop/cart-chart",
        "released_by",
    );
    db.store
        .replace_context(&tenant, "kubernetes", &snap)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let mut calls = Snapshot::default();
    calls.call(
        "service/cart",
        "service/web",
        Traffic::measured(5.0, 0.0, now).unwrap(),
    );
    calls.call(
        "service/web",
        "service/payments",
        Traffic::measured(3.0, 0.0, now).unwrap(),
    );
    db.store
        .replace_context(&tenant, "service_graph", &calls)
        .await
        .unwrap();

    let targets = [
        target("workload", "web-v2", Some("shop")),
        target("workload", "web-v2", Some("other")),
        target("release", "cart-chart", Some("shop")),
        target("secret", "secret/data/payments/db", None),
        target("service", "cart", None),
        target("workload", "ghost", None),
    ];
    let graph = db.store.call_graph(&tenant, &targets, 4).await.unwrap();
    let expected = vec![
        vec!["web".to_owned()],
        vec![],
        vec!["cart".to_owned()],
        vec!["payments".to_owned()],
        vec!["cart".to_owned()],
        vec![],
    ];
    assert_eq!(graph.resolved, expected);
    // A snapshot of the same graph (what incident replay reads) resolves the same way.
    let whole = db.store.context_all(&tenant).await.unwrap();
    assert_eq!(
        blast_radius::snapshot_graph(&whole, &targets).resolved,
        expected
    );
    // Another tenant sees none of it.
    let other = db
        .store
        .blast_radius(
            &TenantId::parse("other").unwrap(),
            vec![target("service", "web", None)],
            4,
            now,
        )
        .await
        .unwrap();
    assert!(other.unknown);
    db.drop_now().await;
}

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

#[tokio::test]
async fn the_stored_walk_equals_the_pure_walk_on_random_graphs() {
    let db = TestDatabase::create().await;
    let now = chrono::Utc::now();
    let mut rng = Lcg(7);
    for round in 0..4 {
        let tenant = TenantId::parse(&format!("t{round}")).unwrap();
        let n = 40 + 10 * round;
        let mut snap = Snapshot::default();
        let mut infos = BTreeMap::new();
        for i in 0..n {
            let name = format!("s{i}");
            let team = format!("team{}", i % 5);
            let mut svc = node(
                &format!("service/{name}"),
                "service",
                &name,
                &[("namespace", &format!("ns{}", i % 3))],
            );
            svc.owner_team = Some(team.clone());
            snap.node(svc);
            infos.insert(
                name.clone(),
                ServiceInfo {
                    name,
                    namespace: Some(format!("ns{}", i % 3)),
                    team: Some(team),
                    tier: None,
                },
            );
        }
        db.store
            .replace_context(&tenant, "kubernetes", &snap)
            .await
            .unwrap();
        let mut calls = Snapshot::default();
        let mut edges = Vec::new();
        for _ in 0..(n * 2) {
            let (a, b) = (rng.next(n), rng.next(n));
            if a == b {
                continue;
            }
            let rps = 1.0 + rng.next(100) as f64;
            calls.call(
                &format!("service/s{a}"),
                &format!("service/s{b}"),
                Traffic::measured(rps, 0.0, now).unwrap(),
            );
        }
        for e in &calls.edges {
            edges.push(CallEdge {
                caller: e.from_node_id.trim_start_matches("service/").to_owned(),
                callee: e.to_node_id.trim_start_matches("service/").to_owned(),
                rps: e.traffic.unwrap().rps,
                error_ratio: 0.0,
                observed_at: now,
            });
        }
        db.store
            .replace_context(&tenant, "service_graph", &calls)
            .await
            .unwrap();
        let snapshot = db.store.context_all(&tenant).await.unwrap();
        for depth in 1..=5 {
            for pick in 0..5 {
                let name = format!("s{}", rng.next(n));
                let stored = db
                    .store
                    .blast_radius(&tenant, vec![target("service", &name, None)], depth, now)
                    .await
                    .unwrap();
                let whole = CallGraph {
                    resolved: vec![vec![name.clone()]],
                    edges: edges.clone(),
                    services: infos.clone(),
                    newest_observation: Some(now),
                    calling: Default::default(),
                };
                let pure = blast_radius::estimate(
                    vec![target("service", &name, None)],
                    &whole,
                    depth,
                    now,
                );
                // The stored walk reads edges back with the observation time it wrote; only the
                // services, edges, totals and flags are compared.
                assert_eq!(
                    (
                        &stored.services,
                        stored.service_count,
                        &stored.namespaces,
                        &stored.teams,
                        stored.rps,
                        &stored.entry_points,
                        stored.depth_capped,
                        stored.unknown,
                    ),
                    (
                        &pure.services,
                        pure.service_count,
                        &pure.namespaces,
                        &pure.teams,
                        pure.rps,
                        &pure.entry_points,
                        pure.depth_capped,
                        pure.unknown,
                    ),
                    "round {round} depth {depth} pick {pick} target {name}"
                );
                let key = |e: &CallEdge| (e.caller.clone(), e.callee.clone(), e.rps.to_bits());
                assert_eq!(
                    stored.edges.iter().map(key).collect::<Vec<_>>(),
                    pure.edges.iter().map(key).collect::<Vec<_>>(),
                    "round {round} depth {depth} target {name}"
                );
                // The estimate from a snapshot of the whole graph (incident replay) is the same.
                let targets = vec![target("service", &name, None)];
                let snapped = blast_radius::estimate(
                    targets.clone(),
                    &blast_radius::snapshot_graph(&snapshot, &targets),
                    depth,
                    now,
                );
                assert_eq!(
                    (
                        &snapped.services,
                        snapped.service_count,
                        &snapped.namespaces,
                        &snapped.teams,
                        snapped.rps,
                        &snapped.entry_points,
                        snapped.depth_capped,
                        snapped.unknown,
                    ),
                    (
                        &stored.services,
                        stored.service_count,
                        &stored.namespaces,
                        &stored.teams,
                        stored.rps,
                        &stored.entry_points,
                        stored.depth_capped,
                        stored.unknown,
                    ),
                    "snapshot: round {round} depth {depth} target {name}"
                );
                assert_eq!(
                    snapped.edges.iter().map(key).collect::<Vec<_>>(),
                    stored.edges.iter().map(key).collect::<Vec<_>>(),
                );
            }
        }
    }
    db.drop_now().await;
}
