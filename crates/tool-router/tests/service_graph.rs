//! Service-to-service traffic from real Prometheus: a small exporter serves recorded
//! service-graph series (Tempo's `traces_service_graph_request_total` and Istio's
//! `istio_requests_total`, counters growing at known rates), a real Prometheus scrapes it, the
//! context service's service-graph collector queries it through this router, and the `calls`
//! edges it stores carry those rates; a blast-radius estimate over them walks the callers; an
//! edge vanishes when its traffic stops.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carapulse_context::collectors::polled::{PollKind, Polled};
use carapulse_context::Collector;
use carapulse_core::blast_radius::StepTarget;
use carapulse_core::config::ServiceGraphQuery;
use carapulse_core::model::TenantId;
use carapulse_core::store::Snapshot;
use carapulse_core::testing::prometheus::RealPrometheus;
use carapulse_core::testing::TestDatabase;
use tool_router::Application;

/// Counters of the exporter: (metric, labels, requests per second).
const SERIES: &[(&str, &str, f64)] = &[
    (
        "traces_service_graph_request_total",
        r#"client="web",server="api""#,
        50.0,
    ),
    (
        "traces_service_graph_request_total",
        r#"client="api",server="db""#,
        120.0,
    ),
    (
        "traces_service_graph_request_failed_total",
        r#"client="api",server="db""#,
        6.0,
    ),
    // Istio sees api -> db too, lower: the same requests, the larger rate is kept.
    (
        "istio_requests_total",
        r#"reporter="destination",source_workload="api",destination_workload="db",response_code="200""#,
        100.0,
    ),
    (
        "istio_requests_total",
        r#"reporter="destination",source_workload="batch",destination_workload="db",response_code="200""#,
        9.0,
    ),
    (
        "istio_requests_total",
        r#"reporter="destination",source_workload="batch",destination_workload="db",response_code="503""#,
        1.0,
    ),
];

/// Serves the counters on `/metrics`, each at `rate * seconds since start`; the batch series go
/// away once `batch_stopped` is set.
async fn exporter(batch_stopped: Arc<AtomicBool>) -> String {
    let started = Instant::now();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let batch_stopped = batch_stopped.clone();
            async move {
                let elapsed = started.elapsed().as_secs_f64();
                let mut body = String::new();
                for (metric, labels, rate) in SERIES {
                    if batch_stopped.load(Ordering::SeqCst) && labels.contains("batch") {
                        continue;
                    }
                    body.push_str(&format!("# TYPE {metric} counter\n"));
                    body.push_str(&format!("{metric}{{{labels}}} {}\n", rate * elapsed));
                }
                body
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

fn rate(snapshot: &Snapshot, caller: &str, callee: &str) -> Option<(f64, f64)> {
    snapshot
        .edges
        .iter()
        .find(|e| {
            e.relation == "calls"
                && e.from_node_id == format!("service/{caller}")
                && e.to_node_id == format!("service/{callee}")
        })
        .and_then(|e| e.traffic)
        .map(|t| (t.rps, t.error_ratio))
}

fn near(got: f64, want: f64) -> bool {
    (got - want).abs() <= want * 0.15
}

#[tokio::test]
async fn service_graph_metrics_become_calls_edges_with_rates() {
    let batch_stopped = Arc::new(AtomicBool::new(false));
    let target = exporter(batch_stopped.clone()).await;
    let Some(prom) = RealPrometheus::start(std::slice::from_ref(&target)).await else {
        return;
    };
    let objects = tempfile::tempdir().unwrap();
    let mut config = common::router_config(objects.path());
    config.connectors.prometheus.addr = Some(prom.url.clone());
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let runner = carapulse_context::tool_runner::ToolRunner::new(
        &base,
        Some(common::TOKEN.into()),
        carapulse_core::model::ContextRef {
            tenant_id: "acme".into(),
            ..Default::default()
        },
        Duration::from_secs(10),
    )
    .unwrap();
    // The standard queries (`context.service_graph_queries` defaults) over a 5 s window: these
    // series are seconds old, and rate over 5 m would spread a few seconds of increase over
    // five minutes. The short window also lets a stopped pair drop out within seconds.
    let queries: Vec<ServiceGraphQuery> = ServiceGraphQuery::standard()
        .into_iter()
        .map(|q| ServiceGraphQuery {
            requests: q.requests.replace("[5m]", "[5s]"),
            errors: q.errors.replace("[5m]", "[5s]"),
            ..q
        })
        .collect();
    assert!(queries.iter().all(|q| q.requests.contains("[5s]")));
    let collector = Polled {
        kind: PollKind::ServiceGraph {
            tool: "prometheus",
            queries,
        },
        runner,
    };
    assert_eq!(collector.name(), "service_graph");
    let deadline = Instant::now() + Duration::from_secs(40);
    let snapshot = loop {
        let snapshot = collector.collect().await.unwrap();
        let settled = [
            ("web", "api", 50.0),
            ("api", "db", 120.0),
            ("batch", "db", 10.0),
        ]
        .iter()
        .all(|(a, b, want)| rate(&snapshot, a, b).is_some_and(|(rps, _)| near(rps, *want)));
        if settled {
            break snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "rates never settled: {:?}",
            snapshot.edges
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    };
    assert_eq!(
        snapshot
            .edges
            .iter()
            .filter(|e| e.relation == "calls")
            .count(),
        3,
        "{:?}",
        snapshot.edges
    );
    let (_, api_db_errors) = rate(&snapshot, "api", "db").unwrap();
    assert!(
        (api_db_errors - 0.05).abs() < 0.01,
        "6 of 120 req/s fail: {api_db_errors}"
    );
    let (_, batch_errors) = rate(&snapshot, "batch", "db").unwrap();
    assert!(
        (batch_errors - 0.1).abs() < 0.02,
        "1 of 10 req/s fail: {batch_errors}"
    );

    // Stored as collector-owned data, then walked for a change to db.
    let db = TestDatabase::create().await;
    let tenant = TenantId::parse("acme").unwrap();
    db.store
        .replace_context(&tenant, "service_graph", &snapshot)
        .await
        .unwrap();
    let target = StepTarget {
        step: 0,
        kind: "service".into(),
        name: "db".into(),
        namespace: None,
    };
    let estimate = db
        .store
        .blast_radius(&tenant, vec![target.clone()], 4, chrono::Utc::now())
        .await
        .unwrap();
    assert!(!estimate.unknown, "{:?}", estimate.unknown_reasons);
    let reached: Vec<(&str, u32)> = estimate
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.depth))
        .collect();
    assert_eq!(
        reached,
        vec![("db", 0), ("api", 1), ("batch", 1), ("web", 2)]
    );
    assert!(near(estimate.rps, 130.0), "into db: {}", estimate.rps);
    assert_eq!(estimate.entry_points, vec!["batch", "web"]);

    // Traffic stops: the pair drops out of the query, the collector's next replace removes
    // its edge.
    batch_stopped.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    let snapshot = loop {
        let snapshot = collector.collect().await.unwrap();
        if rate(&snapshot, "batch", "db").is_none() && rate(&snapshot, "api", "db").is_some() {
            break snapshot;
        }
        assert!(Instant::now() < deadline, "batch -> db never stopped");
        tokio::time::sleep(Duration::from_millis(700)).await;
    };
    let outcome = db
        .store
        .replace_context(&tenant, "service_graph", &snapshot)
        .await
        .unwrap();
    assert!(outcome.removed_edges >= 1, "{outcome:?}");
    let estimate = db
        .store
        .blast_radius(&tenant, vec![target], 4, chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        estimate.services.iter().all(|s| s.name != "batch"),
        "{:?}",
        estimate.services
    );
    db.drop_now().await;
}
